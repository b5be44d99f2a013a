/**
 * The development root CA: an Intel-shaped PKI for machines without TDX.
 *
 * NOT A TRUST ROOT FOR PRODUCTION. It issues the same certificate profile as
 * Intel's Provisioning Certification Service (Intel SGX PCK Certificate and
 * Certificate Revocation List Profile Specification, "PCK profile" below):
 *
 *   root "Confidential Gateway DEV Root CA - NOT FOR PRODUCTION"  (CA, pathLen 1)
 *   ├── "DEV PCK Platform CA"   (CA, pathLen 0)  → PCK leaves, PCK CRL
 *   └── "DEV TCB Signing"       (end entity)     → TCB info, QE identity
 *
 * so that the production verifier checks dev evidence on the exact code path
 * it uses for Intel's. Only the anchor differs: a verifier accepts this root
 * only when a policy pins `rootFingerprint`; there is no flag that skips a
 * check.
 *
 * Keys: each key is derived from one 32-byte seed with HKDF-SHA256 (RFC 5869,
 * empty salt, info `confidential-gateway/dev-tee/v1/<role>`), 40 output bytes
 * reduced to a P-256 scalar as FIPS 186-5 §A.2.1 ("extra random bits")
 * prescribes, so the same seed gives the same keys and serial numbers. Without
 * a seed a random one is drawn. Certificate and CRL bytes still differ between
 * runs because ECDSA signatures are randomised (OpenSSL draws k), so the root
 * fingerprint names one CA instance: persist `rootCertificateDer` to share it.
 *
 * Why @peculiar/asn1-x509 and not @peculiar/x509's generators: the latter
 * load tsyringe, which throws at import time without a Reflect metadata
 * polyfill this project does not install. The ASN.1 schema classes carry no
 * such requirement; signing is node:crypto over the exact `tbs` bytes, which
 * are then embedded unchanged.
 */
import { createECDH, createHash, createPrivateKey, createPublicKey, hkdfSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import { AsnConvert, OctetString } from '@peculiar/asn1-schema'
import type { PckExtension } from '../tdx/abi/pck-extension.ts'
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  AuthorityKeyIdentifier,
  BasicConstraints,
  CRLDistributionPoints,
  CRLNumber,
  CRLReason,
  CRLReasons,
  DistributionPoint,
  DistributionPointName,
  Extension,
  Extensions,
  GeneralName,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  Name,
  RelativeDistinguishedName,
  RevokedCertificate,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
  TBSCertList,
  TBSCertificate,
  Time,
  Validity,
  Version,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_cRLDistributionPoints,
  id_ce_cRLNumber,
  id_ce_cRLReasons,
  id_ce_keyUsage,
  id_ce_subjectKeyIdentifier,
} from '@peculiar/asn1-x509'
import { ConfigError } from '../errors.ts'
import { derToPem } from '../asn1/pem.ts'
import { OID_ECDSA_WITH_SHA256 } from '../pki/x509.ts'
import {
  OID_SGX_EXTENSION,
  OID_SGX_FMSPC,
  OID_SGX_PCEID,
  OID_SGX_PPID,
  OID_SGX_TCB,
  OID_SGX_TCB_CPUSVN,
  OID_SGX_TCB_PCESVN,
  OID_SGX_TYPE,
} from '../tdx/abi/pck-extension.ts'
import { bitString, boolean, enumerated, integer, octetString, oid, sequence, type Der } from './der-encode.ts'
import { hex } from '../bytes/hex.ts'

/** Subject common names. The root's says what it is wherever it is displayed. */
export const DEV_ROOT_CA_NAME = 'Confidential Gateway DEV Root CA - NOT FOR PRODUCTION'
export const DEV_PLATFORM_CA_NAME = 'DEV PCK Platform CA'
export const DEV_TCB_SIGNING_NAME = 'DEV TCB Signing'
export const DEV_PCK_LEAF_NAME = 'DEV PCK Certificate'

/**
 * PlatformInstanceID [PCK profile §1.3.5, OID .6] and Configuration (.7 with
 * .7.1 dynamicPlatform, .7.2 cachedKeys, .7.3 SMTEnabled): present in leaves
 * issued by Intel's Platform CA, absent from Processor CA leaves.
 */
export const OID_SGX_PLATFORM_INSTANCE_ID = `${OID_SGX_EXTENSION}.6`
export const OID_SGX_CONFIGURATION = `${OID_SGX_EXTENSION}.7`

/** SGX Type [PCK profile §1.3.5, OID .5]: 0 Standard, 1 Scalable, 2 Scalable with integrity. */
export const SGX_TYPE_SCALABLE = 1

/** Default validity of every dev certificate (Intel's PCK leaves carry 7 years; a dev CA may live longer). */
export const DEFAULT_VALIDITY_DAYS = 3650

/** KDF domain separation: one label per key role, versioned so a change of scheme changes every key. */
const KDF_INFO_PREFIX = 'confidential-gateway/dev-tee/v1/'
/** Order of the P-256 base point (SEC 2 v2 §2.4.2). */
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n
/** Seed length: 256 bits, the security level HKDF-SHA256 delivers. */
const SEED_SIZE = 32
const DAY_MS = 86_400_000

/**
 * CRL distribution points, in Intel's URL shape but under `.invalid` (RFC 6761
 * §6.4), which never resolves: nothing may try to fetch dev collateral.
 */
const DEV_ROOT_CRL_URL = 'https://certificates.dev-pcs.invalid/DevRootCA.der'
const DEV_PCK_CRL_URL = 'https://api.dev-pcs.invalid/sgx/certification/v4/pckcrl?ca=platform&encoding=der'

/** A P-256 key pair with the encodings the quote and certificates need. */
export interface DevKeyPair {
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
  /** SubjectPublicKeyInfo DER. */
  readonly spki: Uint8Array
  /** `x || y`, 64 bytes: the form DCAP quotes carry. */
  readonly raw: Uint8Array
}

export interface DevRootCaOptions {
  /** 32 bytes; the same seed gives the same keys and serials. Random when absent. */
  readonly seed?: Uint8Array
  /** Start of validity of the CA certificates (and default for leaves). */
  readonly now: Date
  /** Validity of the CA certificates from `now`; default {@link DEFAULT_VALIDITY_DAYS}. */
  readonly validityDays?: number
}

/** The Configuration member (.7) of the SGX extension. */
export interface PckConfiguration {
  readonly dynamicPlatform: boolean
  readonly cachedKeys: boolean
  readonly smtEnabled: boolean
}

/** What a PCK leaf certifies [PCK profile §1.3.5]. Byte fields take bytes or hex. */
export interface IssuePckLeafOptions {
  /** 6 bytes (12 hex digits). */
  readonly fmspc: Uint8Array | string
  /** 2 bytes (4 hex digits). */
  readonly pceId: Uint8Array | string
  /** 16 bytes. Intel's leaves carry the 16 component SVNs here too. */
  readonly cpuSvn: Uint8Array | string
  /** Exactly 16 SVNs, 0..255 each (TCB members .2.1 - .2.16). */
  readonly sgxTcbComponents: readonly number[]
  /** 0..65535. */
  readonly pceSvn: number
  /** 16 bytes; default derived from the CA seed (one dev platform per CA). */
  readonly ppid?: Uint8Array | string
  /** Default {@link SGX_TYPE_SCALABLE}, as for TDX-capable servers. */
  readonly sgxType?: number
  /** 16 bytes, or null to omit the .6 and .7 members; default derived from the seed. */
  readonly platformInstanceId?: Uint8Array | string | null
  /** Default all true, as on the Emerald Rapids vector's leaf. */
  readonly configuration?: PckConfiguration
  /** Start of validity; default the CA's `now`. */
  readonly now?: Date
  /** Default the CA's validity. */
  readonly validityDays?: number
}

/** An issued PCK leaf with its private key (the dev "PCE" signs QE reports with it). */
export interface DevPckLeaf {
  readonly der: Uint8Array
  readonly pem: string
  /** Serial number, lower-case hex without sign octet (as `parseCertificate` reports it). */
  readonly serial: string
  readonly key: DevKeyPair
  /** PEM chain leaf, platform CA, root: what certification data type 5 carries. */
  readonly chainPem: string
  readonly ppid: Uint8Array
}

export interface IssueCrlOptions {
  /** 'root' issues the root CA CRL, 'platform' the PCK CRL. */
  readonly issuer: 'root' | 'platform'
  /** Serial numbers in hex (any case, leading zeros ignored). */
  readonly revokedSerials: readonly string[]
  readonly thisUpdate: Date
  readonly nextUpdate: Date
  /** CRL Number extension (RFC 5280 §5.2.3); default 1, as Intel's. */
  readonly crlNumber?: number
}

/** The dev CA: certificates, keys (it is a dev CA: keys are handed out) and issuing functions. */
export interface DevRootCa {
  /** The anchor a policy must pin to accept dev evidence. */
  readonly rootCertificateDer: Uint8Array
  readonly rootCertificatePem: string
  /** Lower-case hex SHA-256 of `rootCertificateDer`: how a policy names the dev root. */
  readonly rootFingerprint: string
  readonly platformCaDer: Uint8Array
  readonly tcbSigningDer: Uint8Array
  /** PEM platform CA, root: `pck_crl_issuer_chain` (Intel: SGX-PCK-CRL-Issuer-Chain). */
  readonly pckCrlIssuerChainPem: string
  /** PEM TCB signing, root: `tcb_info_issuer_chain` and `qe_identity_issuer_chain`. */
  readonly tcbSigningChainPem: string
  /** Signs TCB info and QE identity JSON. */
  readonly tcbSigningKey: DevKeyPair
  readonly now: Date
  readonly validityDays: number
  /** Issue a PCK leaf under the platform CA (synchronous: node:crypto signs). */
  issuePckLeaf(options: IssuePckLeafOptions): DevPckLeaf
  /** Issue a DER CRL by the root or the platform CA. */
  issueCrl(options: IssueCrlOptions): Uint8Array
}

function invalid(what: string, details: Record<string, unknown> = {}): never {
  throw new ConfigError('ATTESTATION_OPTIONS_INVALID', what, { details })
}

/** Bytes from bytes or hex, of an exact size; argument misuse throws ConfigError. */
export function devBytes(value: Uint8Array | string, size: number, name: string): Uint8Array {
  let out: Uint8Array
  if (typeof value === 'string') {
    if (!/^([0-9a-fA-F]{2})*$/.test(value)) invalid(`${name} is not hex`, { name })
    out = new Uint8Array(Buffer.from(value, 'hex'))
  } else out = value
  if (out.length !== size) invalid(`${name} must be ${size} bytes`, { name, size, actual: out.length })
  return out
}

function b64url(b: Uint8Array): string {
  return Buffer.from(b).toString('base64url')
}

function hkdf(seed: Uint8Array, label: string, size: number): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', seed, new Uint8Array(0), KDF_INFO_PREFIX + label, size))
}

/**
 * Derive a P-256 key pair from `seed` for role `label` (see module header).
 * FIPS 186-5 §A.2.1: d = (c mod (n - 1)) + 1 with c of bitlen(n) + 64 bits,
 * which makes the bias negligible without rejection sampling.
 */
export function deriveDevKey(seed: Uint8Array, label: string): DevKeyPair {
  const c = BigInt(`0x${hex(hkdf(seed, `key/${label}`, 40))}`)
  const d = Buffer.from(((c % (P256_N - 1n)) + 1n).toString(16).padStart(64, '0'), 'hex')
  const ecdh = createECDH('prime256v1')
  ecdh.setPrivateKey(d)
  const point = ecdh.getPublicKey() // 0x04 || x || y
  const x = point.subarray(1, 33)
  const y = point.subarray(33, 65)
  const privateKey = createPrivateKey({ key: { kty: 'EC', crv: 'P-256', d: b64url(d), x: b64url(x), y: b64url(y) }, format: 'jwk' })
  const publicKey = createPublicKey(privateKey)
  return {
    privateKey,
    publicKey,
    spki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })),
    raw: new Uint8Array(point.subarray(1)),
  }
}

/** Deterministic bytes for non-key values (PPID, QE ID, serials). */
export function deriveDevBytes(seed: Uint8Array, label: string, size: number): Uint8Array {
  return hkdf(seed, `bytes/${label}`, size)
}

/** A positive 20-byte serial, as Intel's (RFC 5280 §4.1.2.2 allows up to 20 octets). */
function deriveSerial(seed: Uint8Array, label: string): Uint8Array {
  const s = deriveDevBytes(seed, `serial/${label}`, 20)
  // Top bit clear keeps the INTEGER positive without a sign octet; a set bit 6 keeps it minimal.
  s[0] = 0x40 | (s[0]! & 0x3f)
  return s
}

/** Hex serial → INTEGER content octets: minimal, positive (X.690 §8.3.2). */
function serialContent(serialHex: string): Uint8Array {
  if (!/^[0-9a-fA-F]+$/.test(serialHex)) invalid('serial number is not hex', { serial: serialHex })
  let b = Buffer.from(serialHex.length % 2 ? `0${serialHex}` : serialHex, 'hex')
  while (b.length > 1 && b[0] === 0) b = b.subarray(1)
  return b[0]! & 0x80 ? Buffer.concat([Buffer.of(0), b]) : b
}

function toArrayBuffer(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer
}

/** A Name in Intel's layout: CN, O, L, ST (UTF8String), C (PrintableString, X.520). */
function devName(commonName: string): Name {
  const rdn = (type: string, value: AttributeValue) => new RelativeDistinguishedName([new AttributeTypeAndValue({ type, value })])
  return new Name([
    rdn('2.5.4.3', new AttributeValue({ utf8String: commonName })),
    rdn('2.5.4.10', new AttributeValue({ utf8String: 'Confidential Gateway DEV' })),
    rdn('2.5.4.7', new AttributeValue({ utf8String: 'Localhost' })),
    rdn('2.5.4.8', new AttributeValue({ utf8String: 'DEV' })),
    // "XX" is user-assigned in ISO 3166-1: no country's.
    rdn('2.5.4.6', new AttributeValue({ printableString: 'XX' })),
  ])
}

function ext(extnID: string, critical: boolean, value: unknown): Extension {
  return new Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) })
}

function rawExt(extnID: string, critical: boolean, der: Uint8Array): Extension {
  return new Extension({ extnID, critical, extnValue: new OctetString(toArrayBuffer(der)) })
}

/** Subject key identifier: SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2, method 1). */
function keyId(key: DevKeyPair): ArrayBuffer {
  const point = Buffer.concat([Buffer.of(0x04), key.raw])
  return toArrayBuffer(new Uint8Array(createHash('sha1').update(point).digest()))
}

/** ecdsa-with-SHA256 with absent parameters (RFC 5758 §3.2). */
function ecdsaSha256(): AlgorithmIdentifier {
  return new AlgorithmIdentifier({ algorithm: OID_ECDSA_WITH_SHA256 })
}

/** Sign `tbs` and wrap it unchanged: SEQUENCE { tbs, algorithm, BIT STRING signature } (RFC 5280 §4.1, §5.1). */
function signed(tbs: Uint8Array, key: DevKeyPair): Uint8Array {
  const sig = sign('sha256', tbs, key.privateKey) // DER ECDSA-Sig-Value
  return sequence(tbs, new Uint8Array(AsnConvert.serialize(ecdsaSha256())), bitString(sig))
}

interface CertProfile {
  readonly serial: Uint8Array
  readonly subject: string
  readonly issuer: string
  readonly subjectKey: DevKeyPair
  readonly issuerKey: DevKeyPair
  readonly notBefore: Date
  readonly notAfter: Date
  readonly ca: boolean
  readonly pathLen?: number
  readonly crlUrl: string
  readonly extra?: readonly Extension[]
}

/** One certificate with the extensions Intel's carry, in Intel's order. */
function issueCertificate(p: CertProfile): Uint8Array {
  const usage = p.ca ? KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign : KeyUsageFlags.digitalSignature | KeyUsageFlags.nonRepudiation
  const extensions = new Extensions([
    ext(id_ce_authorityKeyIdentifier, false, new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(keyId(p.issuerKey)) })),
    ext(
      id_ce_cRLDistributionPoints,
      false,
      new CRLDistributionPoints([
        new DistributionPoint({
          distributionPoint: new DistributionPointName({ fullName: [new GeneralName({ uniformResourceIdentifier: p.crlUrl })] }),
        }),
      ]),
    ),
    ext(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(keyId(p.subjectKey))),
    ext(id_ce_keyUsage, true, new KeyUsage(usage)),
    ext(id_ce_basicConstraints, true, new BasicConstraints(p.ca ? { cA: true, pathLenConstraint: p.pathLen! } : {})),
    ...(p.extra ?? []),
  ])
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: toArrayBuffer(serialContent(hex(p.serial))),
    signature: ecdsaSha256(),
    issuer: devName(p.issuer),
    validity: new Validity({ notBefore: p.notBefore, notAfter: p.notAfter }),
    subject: devName(p.subject),
    subjectPublicKeyInfo: AsnConvert.parse(toArrayBuffer(p.subjectKey.spki), SubjectPublicKeyInfo),
    extensions,
  })
  return signed(new Uint8Array(AsnConvert.serialize(tbs)), p.issuerKey)
}

function svn(value: number, max: number, name: string): number {
  if (!Number.isInteger(value) || value < 0 || value > max) invalid(`${name} must be an integer in 0..${max}`, { name, value })
  return value
}

/**
 * The SGX extension value [PCK profile §1.3.5]: SEQUENCE of (OID, value) in
 * Intel's order — PPID, TCB (.2.1-.2.16 INTEGER, .2.17 PCESVN INTEGER,
 * .2.18 CPUSVN OCTET STRING(16)), PCE-ID, FMSPC, SGX Type, then optionally
 * PlatformInstanceID and Configuration.
 */
export function encodeSgxExtension(
  o: PckExtension & { readonly platformInstanceId?: Uint8Array; readonly configuration?: PckConfiguration },
): Der {
  if (o.sgxTcbComponents.length !== 16) invalid('sgxTcbComponents must hold 16 SVNs', { actual: o.sgxTcbComponents.length })
  const pair = (id: string, value: Der) => sequence(oid(id), value)
  const tcb = sequence(
    ...o.sgxTcbComponents.map((v, i) => pair(`${OID_SGX_TCB}.${i + 1}`, integer(svn(v, 255, `sgxTcbComponents[${i}]`)))),
    pair(OID_SGX_TCB_PCESVN, integer(svn(o.pceSvn, 0xffff, 'pceSvn'))),
    pair(OID_SGX_TCB_CPUSVN, octetString(o.cpuSvn)),
  )
  const members = [
    pair(OID_SGX_PPID, octetString(o.ppid)),
    pair(OID_SGX_TCB, tcb),
    pair(OID_SGX_PCEID, octetString(o.pceId)),
    pair(OID_SGX_FMSPC, octetString(o.fmspc)),
    pair(OID_SGX_TYPE, enumerated(svn(o.sgxType, 2, 'sgxType'))),
  ]
  if (o.platformInstanceId) {
    const c = o.configuration ?? { dynamicPlatform: true, cachedKeys: true, smtEnabled: true }
    members.push(
      pair(OID_SGX_PLATFORM_INSTANCE_ID, octetString(o.platformInstanceId)),
      pair(
        OID_SGX_CONFIGURATION,
        sequence(
          pair(`${OID_SGX_CONFIGURATION}.1`, boolean(c.dynamicPlatform)),
          pair(`${OID_SGX_CONFIGURATION}.2`, boolean(c.cachedKeys)),
          pair(`${OID_SGX_CONFIGURATION}.3`, boolean(c.smtEnabled)),
        ),
      ),
    )
  }
  return sequence(...members)
}

function addDays(d: Date, days: number): Date {
  return new Date(d.getTime() + days * DAY_MS)
}

function checkDays(days: number, name: string): number {
  if (!Number.isFinite(days) || days <= 0) invalid(`${name} must be a positive number of days`, { name, value: days })
  return days
}

function checkDate(d: Date, name: string): Date {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) invalid(`${name} must be a valid Date`, { name })
  return d
}

/**
 * Create a dev root CA with its platform CA and TCB signing certificate.
 * Synchronous; every instant comes from `options.now`.
 */
export function createDevRootCa(options: DevRootCaOptions): DevRootCa {
  const now = checkDate(options.now, 'now')
  const validityDays = checkDays(options.validityDays ?? DEFAULT_VALIDITY_DAYS, 'validityDays')
  const seed = options.seed ?? new Uint8Array(randomBytes(SEED_SIZE))
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_SIZE) invalid(`seed must be ${SEED_SIZE} bytes`)
  const notAfter = addDays(now, validityDays)

  const rootKey = deriveDevKey(seed, 'root-ca')
  const platformKey = deriveDevKey(seed, 'platform-ca')
  const tcbKey = deriveDevKey(seed, 'tcb-signing')

  // Intel's root is pathLen 1: one CA level (Platform or Processor CA) below it.
  const rootDer = issueCertificate({
    serial: deriveSerial(seed, 'root-ca'),
    subject: DEV_ROOT_CA_NAME,
    issuer: DEV_ROOT_CA_NAME,
    subjectKey: rootKey,
    issuerKey: rootKey,
    notBefore: now,
    notAfter,
    ca: true,
    pathLen: 1,
    crlUrl: DEV_ROOT_CRL_URL,
  })
  const platformDer = issueCertificate({
    serial: deriveSerial(seed, 'platform-ca'),
    subject: DEV_PLATFORM_CA_NAME,
    issuer: DEV_ROOT_CA_NAME,
    subjectKey: platformKey,
    issuerKey: rootKey,
    notBefore: now,
    notAfter,
    ca: true,
    pathLen: 0,
    crlUrl: DEV_ROOT_CRL_URL,
  })
  const tcbDer = issueCertificate({
    serial: deriveSerial(seed, 'tcb-signing'),
    subject: DEV_TCB_SIGNING_NAME,
    issuer: DEV_ROOT_CA_NAME,
    subjectKey: tcbKey,
    issuerKey: rootKey,
    notBefore: now,
    notAfter,
    ca: false,
    crlUrl: DEV_ROOT_CRL_URL,
  })
  const rootPem = derToPem(rootDer)
  const platformPem = derToPem(platformDer)
  const defaultPpid = deriveDevBytes(seed, 'ppid', 16)
  const defaultInstanceId = deriveDevBytes(seed, 'platform-instance-id', 16)

  function issuePckLeaf(o: IssuePckLeafOptions): DevPckLeaf {
    const ppid = o.ppid === undefined ? defaultPpid : devBytes(o.ppid, 16, 'ppid')
    const cpuSvn = devBytes(o.cpuSvn, 16, 'cpuSvn')
    const fmspc = devBytes(o.fmspc, 6, 'fmspc')
    const pceId = devBytes(o.pceId, 2, 'pceId')
    const instance = o.platformInstanceId === null ? undefined : o.platformInstanceId === undefined ? defaultInstanceId : devBytes(o.platformInstanceId, 16, 'platformInstanceId')
    const extension = encodeSgxExtension({
      ppid,
      sgxTcbComponents: o.sgxTcbComponents,
      pceSvn: o.pceSvn,
      cpuSvn,
      pceId,
      fmspc,
      sgxType: o.sgxType ?? SGX_TYPE_SCALABLE,
      ...(instance ? { platformInstanceId: instance } : {}),
      ...(o.configuration ? { configuration: o.configuration } : {}),
    })
    // A real PCK key is derived by the PCE from the platform and its TCB, so a
    // TCB change means a new key; the label mirrors that.
    const label = `pck-leaf/${hex(ppid)}/${hex(cpuSvn)}/${o.pceSvn}/${hex(pceId)}/${hex(fmspc)}`
    const key = deriveDevKey(seed, label)
    const start = checkDate(o.now ?? now, 'now')
    const serial = deriveSerial(seed, label)
    const der = issueCertificate({
      serial,
      subject: DEV_PCK_LEAF_NAME,
      issuer: DEV_PLATFORM_CA_NAME,
      subjectKey: key,
      issuerKey: platformKey,
      notBefore: start,
      notAfter: addDays(start, checkDays(o.validityDays ?? validityDays, 'validityDays')),
      ca: false,
      crlUrl: DEV_PCK_CRL_URL,
      extra: [rawExt(OID_SGX_EXTENSION, false, extension)],
    })
    const pem = derToPem(der)
    return { der, pem, serial: hex(serial), key, chainPem: pem + platformPem + rootPem, ppid }
  }

  function issueCrl(o: IssueCrlOptions): Uint8Array {
    if (o.issuer !== 'root' && o.issuer !== 'platform') invalid("CRL issuer must be 'root' or 'platform'")
    const thisUpdate = checkDate(o.thisUpdate, 'thisUpdate')
    const nextUpdate = checkDate(o.nextUpdate, 'nextUpdate')
    const issuerName = o.issuer === 'root' ? DEV_ROOT_CA_NAME : DEV_PLATFORM_CA_NAME
    const issuerKey = o.issuer === 'root' ? rootKey : platformKey
    const revoked = o.revokedSerials.map(
      (s) =>
        new RevokedCertificate({
          userCertificate: toArrayBuffer(serialContent(s)),
          revocationDate: new Time(thisUpdate),
          // Intel's PCK CRL gives keyCompromise for every entry.
          crlEntryExtensions: [ext(id_ce_cRLReasons, false, new CRLReason(CRLReasons.keyCompromise))],
        }),
    )
    const tbs = new TBSCertList({
      version: Version.v2,
      signature: ecdsaSha256(),
      issuer: devName(issuerName),
      thisUpdate: new Time(thisUpdate),
      nextUpdate: new Time(nextUpdate),
      ...(revoked.length > 0 ? { revokedCertificates: revoked } : {}),
      crlExtensions: [
        ext(id_ce_cRLNumber, false, new CRLNumber(o.crlNumber ?? 1)),
        ext(id_ce_authorityKeyIdentifier, false, new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(keyId(issuerKey)) })),
      ],
    })
    return signed(new Uint8Array(AsnConvert.serialize(tbs)), issuerKey)
  }

  return {
    rootCertificateDer: rootDer,
    rootCertificatePem: rootPem,
    rootFingerprint: createHash('sha256').update(rootDer).digest('hex'),
    platformCaDer: platformDer,
    tcbSigningDer: tcbDer,
    pckCrlIssuerChainPem: platformPem + rootPem,
    tcbSigningChainPem: derToPem(tcbDer) + rootPem,
    tcbSigningKey: tcbKey,
    now,
    validityDays,
    issuePckLeaf,
    issueCrl,
  }
}
