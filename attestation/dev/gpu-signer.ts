/**
 * The development GPU: an NVIDIA-shaped PKI, SPDM measurement reports, RIMs
 * and OCSP responses for machines without an H100 in CC mode.
 *
 * ============================================================================
 *  NOT A TRUST ROOT FOR PRODUCTION. Every key below lives in the process that
 *  made it; dev GPU evidence proves nothing about any hardware. A verifier
 *  accepts it only when the caller passes the dev root explicitly AND the GPU
 *  policy names that root's fingerprint (`gpu.trustRoot: { dev: "<sha256>" }`).
 *  NVIDIA's pinned roots never verify it, and there is no bypass flag.
 * ============================================================================
 *
 * The point is that the REAL verifier (attestation/nvidia) runs its real
 * code path on dev evidence: SPDM parse, device chain, report signature,
 * FWID, nonce, RIM XML signature and chain, measurement comparison, OCSP.
 * So everything here mirrors NVIDIA's sample H100 evidence
 * (test/vectors/nvidia/hopper-sample) in structure:
 *
 *   root "Confidential Gateway DEV GPU Root CA - NOT FOR PRODUCTION"
 *   ├── "DEV GH100 Identity"                     (CA)   ~ "NVIDIA GH100 Identity"
 *   │   └── "DEV GH100 Provisioner ICA 1"        (CA)   ~ "NVIDIA GH100 Provisioner ICA 1"
 *   │       └── "DEV GH100 A01 GSP BROM"         (CA, one per GPU)
 *   │           └── "DEV GH100 A01 GSP FMC LF"   (leaf, digitalSignature, DICE FWID; signs reports)
 *   └── "DEV Reference Value GH100 CA"           (CA)   ~ "NVIDIA Reference Value GH100 CA"
 *       └── "DEV Reference Value L3 GH100"       (CA, pathLen 0)
 *           └── "DEV RIM Signer"                 (leaf, digitalSignature; signs RIMs)
 *
 * Unlike NVIDIA, one root anchors both the device and the RIM chains, so a
 * GPU policy names one dev fingerprint for both.
 *
 * - Reports: SPDM 1.1 GET_MEASUREMENTS (signature requested, all blocks,
 *   slot 0) || MEASUREMENTS with 64 DMTF SHA-384 blocks and NVIDIA's opaque
 *   TLVs in the sample's order and sizes, signed ECDSA P-384 / SHA-384 as raw
 *   r || s (DSP0274 1.1 §10.11; `attestation/nvidia/abi/spdm.ts`).
 * - RIMs: SWID tags signed with the exact XML-DSig profile NVIDIA uses and
 *   `attestation/nvidia/rim/verify.ts` accepts (enveloped, C14N 1.1,
 *   ecdsa-sha384 r || s, SHA-384, one Reference URI="", KeyInfo X509Data
 *   chain leaf first, root last). Driver and VBIOS RIMs split the indices as
 *   NVIDIA's 550.90.07 / 96.00.9F.00.01 RIMs do.
 * - OCSP: RFC 6960 BasicOCSPResponses signed by the certificate's issuer
 *   itself (responder byKey, CertID under SHA-384).
 *
 * Keys: derived from a 32-byte seed with HKDF-SHA256 (RFC 5869, empty salt,
 * info `confidential-gateway/dev-gpu/v1/<role>`), 56 bytes reduced to a
 * P-384 scalar as FIPS 186-5 §A.2.1 prescribes, as the dev TDX CA does for
 * P-256 (`root-ca.ts`), under another prefix so no key is shared between the
 * two. Signatures are randomised, so certificate bytes and the root
 * fingerprint differ between runs even with one seed. Time is always a
 * parameter.
 */
import { createECDH, createHash, createPrivateKey, createPublicKey, hkdfSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import { AsnConvert, OctetString } from '@peculiar/asn1-schema'
import {
  AccessDescription,
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  AuthorityInfoAccessSyntax,
  AuthorityKeyIdentifier,
  BasicConstraints,
  CRLDistributionPoints,
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
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
  id_ad_ocsp,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_cRLDistributionPoints,
  id_ce_keyUsage,
  id_ce_subjectKeyIdentifier,
  id_pe_authorityInfoAccess,
} from '@peculiar/asn1-x509'
import { ancestorNamespaces, canonicalizer } from '../nvidia/rim/c14n.ts'
import { ConfigError } from '../errors.ts'
import { derToPem } from '../asn1/pem.ts'
import { OID_ECDSA_WITH_SHA384, parseCertificate, sameBytes, type Certificate } from '../pki/x509.ts'
import { CRL_REASONS, OID_OCSP_BASIC, OID_SHA384, subjectPublicKeyBits, type CrlReason } from '../pki/ocsp.ts'
import { OID_TCG_DICE_TCB_INFO } from '../nvidia/abi/dice.ts'
import {
  DMTF_MEASUREMENT_TYPE,
  GET_MEASUREMENTS_SIGNATURE_REQUESTED,
  MEASUREMENT_OPERATION_ALL,
  MEASUREMENT_SPECIFICATION_DMTF,
  NVDEC_STATUS_DISABLED,
  NVDEC_STATUS_ENABLED,
  OPAQUE_FIELD,
  SPDM_GET_MEASUREMENTS,
  SPDM_MAX_OPAQUE_DATA_SIZE,
  SPDM_MEASUREMENTS,
  SPDM_NONCE_SIZE,
  SPDM_VERSION_11,
  VBIOS_VERSION_SIZE,
} from '../nvidia/abi/spdm.ts'
import {
  MAX_RIM_INDEX,
  RIM_DIGEST_SIZE,
  SHA384_HASH_NAMESPACE,
  SWID_NAMESPACE,
  TCG_RIM_NAMESPACE,
  XMLDSIG_NAMESPACE,
  parseXmlDocument,
} from '../nvidia/rim/parse.ts'
import { C14N11_ALGORITHM, ECDSA_SHA384_ALGORITHM, ENVELOPED_SIGNATURE_TRANSFORM, SHA384_DIGEST_ALGORITHM } from '../nvidia/rim/verify.ts'
import {
  bitString,
  enumerated,
  explicit,
  generalizedTime,
  implicitPrimitive,
  integer,
  nullValue,
  octetString,
  oid,
  sequence,
  type Der,
} from './der-encode.ts'
import { hex } from '../bytes/hex.ts'

// ---------------------------------------------------------------------------
// Names and constants

/** Subject common names; the root's says what it is wherever it is displayed. */
export const DEV_GPU_ROOT_CA_NAME = 'Confidential Gateway DEV GPU Root CA - NOT FOR PRODUCTION'
export const DEV_GPU_IDENTITY_CA_NAME = 'DEV GH100 Identity'
export const DEV_GPU_PROVISIONER_CA_NAME = 'DEV GH100 Provisioner ICA 1'
export const DEV_GPU_BROM_NAME = 'DEV GH100 A01 GSP BROM'
export const DEV_GPU_FMC_LEAF_NAME = 'DEV GH100 A01 GSP FMC LF'
export const DEV_RIM_CA_NAME = 'DEV Reference Value GH100 CA'
export const DEV_RIM_L3_CA_NAME = 'DEV Reference Value L3 GH100'
export const DEV_RIM_SIGNER_NAME = 'DEV RIM Signer'
/** The organisation of every dev certificate and RIM, so no dev artefact can be mistaken for NVIDIA's. */
const DEV_ORGANIZATION = 'Confidential Gateway DEV'

/** Default validity of every dev GPU certificate from the CA's `now` (NVIDIA's device certificates run to 9999; a dev CA need not). */
export const DEFAULT_GPU_VALIDITY_DAYS = 3650

/** Defaults of a dev GPU: the values NVIDIA's sample H100 report states (test/vectors/nvidia/hopper-sample). */
export const DEV_GPU_DRIVER_VERSION = '550.90.07'
export const DEV_GPU_VBIOS_VERSION = '96.00.9F.00.01'
export const DEV_GPU_PROJECT = '1010'
export const DEV_GPU_PROJECT_SKU = '0200'
export const DEV_GPU_CHIP_SKU = '882'
/** The chip a Hopper RIM names (`SoftwareIdentity/@name`, `Meta/@product`); the verifier picks RIMs by it. */
export const DEV_GPU_PRODUCT = 'GH100'

/**
 * RIM indices golden-measured by the driver RIM and by the VBIOS RIM: the
 * active indices of NVIDIA's `NV_GPU_DRIVER_GH100_550.90.07.xml` (7, 21-40)
 * and `NV_GPU_VBIOS_1010_0200_882_96009F0001.xml` (0-6, 8-12). RIM index i is
 * SPDM measurement block i + 1. The other indices are measured but have no
 * golden value, as on real GPUs.
 */
export const DEV_DRIVER_RIM_INDICES: readonly number[] = [7, ...range(21, 40)]
export const DEV_VBIOS_RIM_INDICES: readonly number[] = [...range(0, 6), ...range(8, 12)]
/** Measurement blocks of a Hopper report (the sample carries blocks 1..64). */
export const DEV_GPU_MEASUREMENT_COUNT = 64

/** KDF domain separation: one label per key role, versioned, and distinct from the dev TDX CA's prefix. */
const KDF_INFO_PREFIX = 'confidential-gateway/dev-gpu/v1/'
/** Order of the P-384 base point (SEC 2 v2 §2.5.1; FIPS 186-5 / SP 800-186 §3.2.1.4). */
const P384_N = 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n
/** FIPS 186-5 §A.2.1: bitlen(n) + 64 bits of KDF output per scalar (384 + 64 = 448 bits). */
const P384_SCALAR_SEED_BYTES = 56
/** Seed length: 256 bits, the security level HKDF-SHA256 delivers. */
const SEED_SIZE = 32
/** SHA-384 output length: every GPU measurement and FWID. */
const SHA384_SIZE = 48
const DAY_MS = 86_400_000

/**
 * URLs in NVIDIA's shape (ocsp.ndis.nvidia.com, crl.ndis.nvidia.com) but
 * under `.invalid` (RFC 6761 §6.4), which never resolves: nothing may try to
 * fetch dev revocation data.
 */
const DEV_OCSP_URL = 'http://ocsp.dev-ndis.invalid'
const DEV_CRL_URL = 'http://crl.dev-ndis.invalid/crl/l1-root.crl'

/**
 * Opaque fields the verifier does not interpret, with the sample report's
 * values and sizes so the dev report has the same layout: GPU_INFO (type 4)
 * and CPRINFO (type 13).
 */
const SAMPLE_GPU_INFO = Uint8Array.from([0x80, 0x01, 0, 0, 0, 0, 0, 0])
const SAMPLE_CPR_INFO = Uint8Array.from([0x00, 0xc0, 0x01, 0x00])
/** NUL-padded widths of the sample's string fields (chip SKU 9, chip SKU mod 5, project 5, project SKU 5, project SKU mod 2). */
const FIELD_WIDTH = { chipSku: 9, chipSkuMod: 5, project: 5, projectSku: 5, projectSkuMod: 2 } as const

/**
 * TCG-style identifiers in the RIM `Meta`: NVIDIA writes its IANA Private
 * Enterprise Number (5703); the dev RIMs use 32473, the PEN RFC 5612 reserves
 * for documentation, which no vendor owns.
 */
const DEV_RIM_MANUFACTURER_ID = '32473'
const DEV_RIM_MANUFACTURER = 'Confidential Gateway DEV - NOT FOR PRODUCTION'

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i)
}

// ---------------------------------------------------------------------------
// Small helpers

function invalid(what: string, details: Record<string, unknown> = {}): never {
  throw new ConfigError('ATTESTATION_OPTIONS_INVALID', what, { details })
}

function b64url(b: Uint8Array): string {
  return Buffer.from(b).toString('base64url')
}

function toArrayBuffer(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer
}

function sha384(data: Uint8Array | string): Uint8Array {
  return new Uint8Array(createHash('sha384').update(data).digest())
}

function checkDate(d: Date, name: string): Date {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) invalid(`${name} must be a valid Date`, { name })
  return d
}

function checkDays(days: number, name: string): number {
  if (!Number.isFinite(days) || days <= 0) invalid(`${name} must be a positive number of days`, { name, value: days })
  return days
}

function checkSeed(seed: Uint8Array | undefined, name: string): Uint8Array {
  if (seed === undefined) return new Uint8Array(randomBytes(SEED_SIZE))
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_SIZE) invalid(`${name} must be ${SEED_SIZE} bytes`, { name })
  return seed
}

function addDays(d: Date, days: number): Date {
  return new Date(d.getTime() + days * DAY_MS)
}

function hkdf(seed: Uint8Array, label: string, size: number): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', seed, new Uint8Array(0), KDF_INFO_PREFIX + label, size))
}

// ---------------------------------------------------------------------------
// Keys

/** A P-384 key pair with the encodings certificates need. */
export interface DevGpuKeyPair {
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
  /** SubjectPublicKeyInfo DER. */
  readonly spki: Uint8Array
}

/** Derive the P-384 key of role `label` from `seed` (FIPS 186-5 §A.2.1: d = (c mod (n - 1)) + 1). */
export function deriveDevGpuKey(seed: Uint8Array, label: string): DevGpuKeyPair {
  const c = BigInt(`0x${hex(hkdf(seed, `key/${label}`, P384_SCALAR_SEED_BYTES))}`)
  const d = Buffer.from(((c % (P384_N - 1n)) + 1n).toString(16).padStart(96, '0'), 'hex')
  const ecdh = createECDH('secp384r1')
  ecdh.setPrivateKey(d)
  const point = ecdh.getPublicKey() // 0x04 || x || y
  const privateKey = createPrivateKey({
    key: { kty: 'EC', crv: 'P-384', d: b64url(d), x: b64url(point.subarray(1, 49)), y: b64url(point.subarray(49, 97)) },
    format: 'jwk',
  })
  const publicKey = createPublicKey(privateKey)
  return { privateKey, publicKey, spki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })) }
}

/** A positive serial of `size` octets (RFC 5280 §4.1.2.2 allows up to 20). */
function deriveSerial(seed: Uint8Array, label: string, size: number): Uint8Array {
  const s = hkdf(seed, `serial/${label}`, size)
  // Top bit clear keeps the INTEGER positive without a sign octet; bit 6 set keeps it minimal.
  s[0] = 0x40 | (s[0]! & 0x3f)
  return s
}

// ---------------------------------------------------------------------------
// Certificates (RFC 5280), in NVIDIA's profile

interface NameSpec {
  readonly cn: string
  /** X.520 serialNumber attribute: NVIDIA's GSP BROM and FMC certificates carry their serial here. */
  readonly serialNumber?: string
}

/**
 * NVIDIA's attribute order: CA certificates CN, O, C; per-GPU certificates
 * serialNumber, C, O, CN. CN and O UTF8String, C and serialNumber
 * PrintableString (X.520), as in the sample chain. C is "XX", a code
 * ISO 3166-1 leaves to users: no country's.
 */
function devName(spec: NameSpec): Name {
  const rdn = (type: string, value: AttributeValue) => new RelativeDistinguishedName([new AttributeTypeAndValue({ type, value })])
  const cn = rdn('2.5.4.3', new AttributeValue({ utf8String: spec.cn }))
  const o = rdn('2.5.4.10', new AttributeValue({ utf8String: DEV_ORGANIZATION }))
  const c = rdn('2.5.4.6', new AttributeValue({ printableString: 'XX' }))
  if (spec.serialNumber === undefined) return new Name([cn, o, c])
  return new Name([rdn('2.5.4.5', new AttributeValue({ printableString: spec.serialNumber })), c, o, cn])
}

function ext(extnID: string, critical: boolean, value: unknown): Extension {
  return new Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) })
}

function rawExt(extnID: string, critical: boolean, der: Uint8Array): Extension {
  return new Extension({ extnID, critical, extnValue: new OctetString(toArrayBuffer(der)) })
}

/** Subject key identifier: SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2, method 1). */
function keyId(spki: Uint8Array): ArrayBuffer {
  const parsed = AsnConvert.parse(toArrayBuffer(spki), SubjectPublicKeyInfo)
  return toArrayBuffer(new Uint8Array(createHash('sha1').update(new Uint8Array(parsed.subjectPublicKey)).digest()))
}

/** ecdsa-with-SHA384 with absent parameters (RFC 5758 §3.2): what every NVIDIA GPU certificate is signed with. */
function ecdsaSha384(): AlgorithmIdentifier {
  return new AlgorithmIdentifier({ algorithm: OID_ECDSA_WITH_SHA384 })
}

interface CertProfile {
  readonly serial: Uint8Array
  readonly subject: NameSpec
  readonly issuer: NameSpec
  readonly subjectKey: DevGpuKeyPair
  readonly issuerKey: DevGpuKeyPair
  readonly notBefore: Date
  readonly notAfter: Date
  /** 'ca' (keyCertSign | cRLSign), 'brom' (keyCertSign only, like the sample's GSP BROM), 'leaf' (digitalSignature). */
  readonly role: 'ca' | 'brom' | 'leaf'
  readonly pathLen?: number
  /** Whether it carries NVIDIA's OCSP AIA (and, for CAs, a CRL distribution point). */
  readonly published: boolean
  /** Leaves: whether a basicConstraints (cA FALSE) is present, as on NVIDIA's RIM signers but not on the FMC leaf. */
  readonly leafBasicConstraints?: boolean
  readonly extra?: readonly Extension[]
}

/** One certificate with the extensions NVIDIA's carry, in the sample's order. */
function issueCertificate(p: CertProfile): Uint8Array {
  const usage =
    p.role === 'ca'
      ? KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign
      : p.role === 'brom'
        ? KeyUsageFlags.keyCertSign
        : KeyUsageFlags.digitalSignature
  const list: Extension[] = []
  if (p.role !== 'leaf') {
    list.push(ext(id_ce_basicConstraints, true, new BasicConstraints(p.pathLen === undefined ? { cA: true } : { cA: true, pathLenConstraint: p.pathLen })))
  } else if (p.leafBasicConstraints) list.push(ext(id_ce_basicConstraints, true, new BasicConstraints({})))
  list.push(ext(id_ce_keyUsage, true, new KeyUsage(usage)))
  if (p.published && p.role === 'ca') {
    list.push(
      ext(
        id_ce_cRLDistributionPoints,
        false,
        new CRLDistributionPoints([
          new DistributionPoint({ distributionPoint: new DistributionPointName({ fullName: [new GeneralName({ uniformResourceIdentifier: DEV_CRL_URL })] }) }),
        ]),
      ),
    )
  }
  if (p.published) {
    list.push(
      ext(
        id_pe_authorityInfoAccess,
        false,
        new AuthorityInfoAccessSyntax([new AccessDescription({ accessMethod: id_ad_ocsp, accessLocation: new GeneralName({ uniformResourceIdentifier: DEV_OCSP_URL }) })]),
      ),
    )
  }
  list.push(ext(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(keyId(p.subjectKey.spki))))
  list.push(ext(id_ce_authorityKeyIdentifier, false, new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(keyId(p.issuerKey.spki)) })))
  list.push(...(p.extra ?? []))
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: toArrayBuffer(p.serial),
    signature: ecdsaSha384(),
    issuer: devName(p.issuer),
    validity: new Validity({ notBefore: p.notBefore, notAfter: p.notAfter }),
    subject: devName(p.subject),
    subjectPublicKeyInfo: AsnConvert.parse(toArrayBuffer(p.subjectKey.spki), SubjectPublicKeyInfo),
    extensions: new Extensions(list),
  })
  const tbsDer = new Uint8Array(AsnConvert.serialize(tbs))
  const sig = sign('sha384', tbsDer, p.issuerKey.privateKey) // DER ECDSA-Sig-Value (RFC 5758 §3.2)
  return sequence(tbsDer, new Uint8Array(AsnConvert.serialize(ecdsaSha384())), bitString(sig))
}

/**
 * The FWID extension of a Hopper FMC leaf (OID 2.23.133.5.4.1, see
 * `attestation/nvidia/abi/dice.ts`): the Microsoft RIoT composite device
 * identity `SEQUENCE { version INTEGER (1), deviceId SubjectPublicKeyInfo,
 * fwid SEQUENCE { hashAlg OID, digest OCTET STRING } }`, with deviceId the
 * issuing GSP BROM key, as in the sample leaf.
 */
function riotFwidExtension(deviceIdSpki: Uint8Array, fwid: Uint8Array): Der {
  return sequence(integer(1), deviceIdSpki, sequence(oid(OID_SHA384), octetString(fwid)))
}

// ---------------------------------------------------------------------------
// The CA

export interface DevGpuRootCaOptions {
  /** 32 bytes; the same seed gives the same keys and serials. Random when absent. */
  readonly seed?: Uint8Array
  /** Start of validity of every CA certificate (and default for GPU certificates). */
  readonly now: Date
  /** Validity from `now`; default {@link DEFAULT_GPU_VALIDITY_DAYS}. */
  readonly validityDays?: number
}

/** The dev GPU root CA and what it issued at creation. Keys stay inside (see `signDevOcsp`, `signDevRim`). */
export interface DevGpuRootCa {
  /** The anchor a verifier is given and a GPU policy must name to accept dev GPU evidence. */
  readonly rootCertificateDer: Uint8Array
  readonly rootCertificatePem: string
  /** Lower-case hex SHA-256 of `rootCertificateDer`: how a policy names the dev root. */
  readonly rootFingerprint: string
  readonly now: Date
  readonly validityDays: number
  /** The device CAs between a GPU's BROM certificate and the root: "DEV GH100 Provisioner ICA 1", "DEV GH100 Identity". */
  readonly deviceCaChainDer: readonly Uint8Array[]
  /** The RIM signing chain as RIMs carry it in KeyInfo: "DEV RIM Signer", L3 CA, GH100 CA, root. */
  readonly rimCertificateChainDer: readonly Uint8Array[]
}

/** What only this module may touch: seeds and private keys. */
interface CaState {
  readonly seed: Uint8Array
  readonly rootKey: DevGpuKeyPair
  readonly provisionerKey: DevGpuKeyPair
  readonly rimSignerKey: DevGpuKeyPair
  readonly rimSigner: Certificate
  /** Every key this CA may sign with, by SubjectPublicKeyInfo (hex): issuers answer OCSP for what they issued. */
  readonly keys: Map<string, DevGpuKeyPair>
}

const caStates = new WeakMap<DevGpuRootCa, CaState>()

function stateOf(ca: DevGpuRootCa): CaState {
  const s = typeof ca === 'object' && ca !== null ? caStates.get(ca) : undefined
  if (!s) invalid('ca must be a result of createDevGpuRootCa')
  return s
}

/**
 * Create the dev GPU root CA with its device CAs (GH100 Identity,
 * Provisioner ICA 1) and its RIM signing chain (GH100 CA, L3, RIM Signer).
 * Synchronous; every instant comes from `options.now`.
 */
export function createDevGpuRootCa(options: DevGpuRootCaOptions): DevGpuRootCa {
  const now = checkDate(options?.now, 'now')
  const validityDays = checkDays(options.validityDays ?? DEFAULT_GPU_VALIDITY_DAYS, 'validityDays')
  const seed = checkSeed(options.seed, 'seed')
  const notAfter = addDays(now, validityDays)
  const key = (label: string) => deriveDevGpuKey(seed, label)
  const rootKey = key('root-ca')
  const identityKey = key('gh100-identity')
  const provisionerKey = key('gh100-provisioner-ica-1')
  const rimCaKey = key('rim-ca')
  const rimL3Key = key('rim-l3')
  const rimSignerKey = key('rim-signer')

  const root: NameSpec = { cn: DEV_GPU_ROOT_CA_NAME }
  const identity: NameSpec = { cn: DEV_GPU_IDENTITY_CA_NAME }
  const provisioner: NameSpec = { cn: DEV_GPU_PROVISIONER_CA_NAME }
  const rimCa: NameSpec = { cn: DEV_RIM_CA_NAME }
  const rimL3: NameSpec = { cn: DEV_RIM_L3_CA_NAME }
  const common = { notBefore: now, notAfter }
  // Serial sizes as NVIDIA's: 16 octets for the device CAs, 17 for the RIM CA, 8 for RIM signers.
  const rootDer = issueCertificate({
    ...common,
    serial: deriveSerial(seed, 'root-ca', 16),
    subject: root,
    issuer: root,
    subjectKey: rootKey,
    issuerKey: rootKey,
    role: 'ca',
    published: false,
  })
  const identityDer = issueCertificate({
    ...common,
    serial: deriveSerial(seed, 'gh100-identity', 16),
    subject: identity,
    issuer: root,
    subjectKey: identityKey,
    issuerKey: rootKey,
    role: 'ca',
    published: true,
  })
  const provisionerDer = issueCertificate({
    ...common,
    serial: deriveSerial(seed, 'gh100-provisioner-ica-1', 16),
    subject: provisioner,
    issuer: identity,
    subjectKey: provisionerKey,
    issuerKey: identityKey,
    role: 'ca',
    published: true,
  })
  const rimCaDer = issueCertificate({
    ...common,
    serial: deriveSerial(seed, 'rim-ca', 16),
    subject: rimCa,
    issuer: root,
    subjectKey: rimCaKey,
    issuerKey: rootKey,
    role: 'ca',
    published: true,
  })
  // NVIDIA's L3 is pathLen 0: it issues signers only.
  const rimL3Der = issueCertificate({
    ...common,
    serial: deriveSerial(seed, 'rim-l3', 16),
    subject: rimL3,
    issuer: rimCa,
    subjectKey: rimL3Key,
    issuerKey: rimCaKey,
    role: 'ca',
    pathLen: 0,
    published: true,
  })
  const rimSignerDer = issueCertificate({
    ...common,
    serial: deriveSerial(seed, 'rim-signer', 8),
    subject: { cn: DEV_RIM_SIGNER_NAME },
    issuer: rimL3,
    subjectKey: rimSignerKey,
    issuerKey: rimL3Key,
    role: 'leaf',
    leafBasicConstraints: true,
    published: true,
  })

  const keys = new Map<string, DevGpuKeyPair>()
  for (const k of [rootKey, identityKey, provisionerKey, rimCaKey, rimL3Key, rimSignerKey]) keys.set(hex(k.spki), k)
  const ca: DevGpuRootCa = Object.freeze({
    rootCertificateDer: rootDer,
    rootCertificatePem: derToPem(rootDer),
    rootFingerprint: createHash('sha256').update(rootDer).digest('hex'),
    now,
    validityDays,
    deviceCaChainDer: Object.freeze([provisionerDer, identityDer]),
    rimCertificateChainDer: Object.freeze([rimSignerDer, rimL3Der, rimCaDer, rootDer]),
  })
  caStates.set(ca, { seed, rootKey, provisionerKey, rimSignerKey, rimSigner: parseCertificate(rimSignerDer), keys })
  return ca
}

// ---------------------------------------------------------------------------
// GPUs

export interface DevGpuOptions {
  /** The GPU's position on the dev machine (0, 1, ...); with no `seed` it selects the GPU's keys. Default 0. */
  readonly index?: number
  /** 32 bytes: the GPU's own keys and serials. Default derived from the CA seed and `index`. */
  readonly seed?: Uint8Array
  /** Opaque field 3; default {@link DEV_GPU_DRIVER_VERSION}. */
  readonly driverVersion?: string
  /** Opaque field 6, as NVIDIA prints it ("96.00.9F.00.01", five hex octets); default {@link DEV_GPU_VBIOS_VERSION}. */
  readonly vbiosVersion?: string
  /** Opaque field 17; default {@link DEV_GPU_PROJECT}. */
  readonly project?: string
  /** Opaque field 18; default {@link DEV_GPU_PROJECT_SKU}. */
  readonly projectSku?: string
  /** Opaque field 15; default {@link DEV_GPU_CHIP_SKU}. */
  readonly chipSku?: string
  /**
   * Measurement values by SPDM block index (1-based, 1..254; RIM index + 1),
   * 48 bytes each. Replaces the default set: {@link devGpuMeasurements} of the
   * two versions, 64 blocks.
   */
  readonly measurements?: ReadonlyMap<number, Uint8Array>
  /**
   * Opaque field 11: {@link NVDEC_STATUS_ENABLED} (default) or
   * {@link NVDEC_STATUS_DISABLED}. Enabled by default so every golden
   * measurement, index 35 included, is compared; the sample GPU reports
   * disabled, which exempts index 35 (see `rim/compare.ts`).
   */
  readonly nvdecStatus?: number
  /** Opaque field 21, one byte; default 0x55 (off), as the sample GPU reports. */
  readonly protectedPcieStatus?: number
  /** Issue instant of the GPU's BROM and FMC certificates; default the CA's `now`. */
  readonly now?: Date
}

/** A dev GPU: its identity, what it measures, and its SPDM responder. */
export interface DevGpu {
  readonly index: number
  readonly driverVersion: string
  /** Upper-case, as NVIDIA prints it and the parser reads it back. */
  readonly vbiosVersion: string
  readonly project: string
  readonly projectSku: string
  readonly chipSku: string
  readonly nvdecStatus: number
  readonly protectedPcieStatus: number
  /** Measurement values by SPDM block index (1-based). */
  readonly measurements: ReadonlyMap<number, Uint8Array>
  /** SHA-384 "firmware identity": the report's FWID and the FMC leaf's DICE FWID. */
  readonly fwid: Uint8Array
  /** PEM chain as the GPU hands it out: FMC leaf, BROM, Provisioner ICA, Identity, root (like hopperCertChain.txt). */
  readonly certificateChainPem: string
  /** The same chain, DER. */
  readonly certificateChainDer: readonly Uint8Array[]
  /** Answer a GET_MEASUREMENTS request with nonce `nonce` (32 bytes): the SPDM request || signed response. */
  signReport(nonce: Uint8Array): Uint8Array
}

/**
 * The default measurements of a dev GPU: SPDM blocks 1..64, each a SHA-384
 * of a label. Blocks the driver RIM measures depend on the driver version
 * only and blocks the VBIOS RIM measures on the VBIOS version only, so every
 * dev GPU with the same versions measures the same, like real firmware, and
 * one pair of golden RIMs covers all of them.
 */
export function devGpuMeasurements(driverVersion: string = DEV_GPU_DRIVER_VERSION, vbiosVersion: string = DEV_GPU_VBIOS_VERSION): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>()
  for (let block = 1; block <= DEV_GPU_MEASUREMENT_COUNT; block++) {
    const i = block - 1
    const owner = DEV_DRIVER_RIM_INDICES.includes(i)
      ? `driver/${driverVersion}`
      : DEV_VBIOS_RIM_INDICES.includes(i)
        ? `vbios/${vbiosVersion.toUpperCase()}`
        : 'unmeasured'
    out.set(block, sha384(`${KDF_INFO_PREFIX}measurement/${owner}/${i}`))
  }
  return out
}

/** Printable ASCII (what the parser accepts before the NUL padding). */
function asciiText(value: string, name: string, maxLength: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength || !/^[\x20-\x7e]+$/.test(value)) {
    invalid(`${name} must be 1..${maxLength} printable ASCII characters`, { name })
  }
  return value
}

/** "96.00.9F.00.01" → the 8-byte field `formatVbiosVersion` prints so (see spdm.ts): bytes 3,2,1,0 then 4. */
function vbiosField(version: string): Uint8Array {
  if (typeof version !== 'string' || !/^([0-9A-Fa-f]{2}\.){4}[0-9A-Fa-f]{2}$/.test(version)) {
    invalid('vbiosVersion must be five dot-separated hex octets, e.g. 96.00.9F.00.01', { vbiosVersion: version })
  }
  const b = version.split('.').map((x) => Number.parseInt(x, 16))
  const field = new Uint8Array(VBIOS_VERSION_SIZE)
  field.set([b[3]!, b[2]!, b[1]!, b[0]!, b[4]!])
  return field
}

/** NUL-padded ASCII of at least `width` bytes, always NUL-terminated (as the driver writes them). */
function padded(text: string, width: number): Uint8Array {
  const out = new Uint8Array(Math.max(width, text.length + 1))
  out.set(new TextEncoder().encode(text))
  return out
}

function u16le(n: number): Uint8Array {
  return Uint8Array.of(n & 0xff, (n >> 8) & 0xff)
}

function u24le(n: number): Uint8Array {
  return Uint8Array.of(n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff)
}

function u32le(n: number): Uint8Array {
  return Uint8Array.of(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff)
}

function statusByte(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) invalid(`${name} must be one byte`, { name, value })
  return value
}

function checkMeasurements(m: ReadonlyMap<number, Uint8Array>): Map<number, Uint8Array> {
  if (!(m instanceof Map) || m.size === 0) invalid('measurements must be a non-empty Map of SPDM block index to digest')
  const out = new Map<number, Uint8Array>()
  for (const [index, value] of [...m].sort((a, b) => a[0] - b[0])) {
    // SPDM indices 1..0xFE (0 is not a block, 0xFF means "all"); NumberOfBlocks is one byte.
    if (!Number.isInteger(index) || index < 1 || index > MAX_RIM_INDEX + 1) invalid('measurement block indices must be 1..254', { index })
    if (!(value instanceof Uint8Array) || value.length !== SHA384_SIZE) invalid('every measurement must be a 48-byte SHA-384 digest', { index })
    out.set(index, value.slice())
  }
  return out
}

/**
 * Create a dev GPU under `ca`: its GSP BROM CA certificate and FMC leaf
 * (carrying the FWID), and an SPDM responder whose reports that leaf signs.
 */
export function createDevGpu(ca: DevGpuRootCa, options: DevGpuOptions = {}): DevGpu {
  const state = stateOf(ca)
  const index = options.index ?? 0
  if (!Number.isInteger(index) || index < 0 || index > 0xffff) invalid('index must be an integer in 0..65535', { index })
  const seed = options.seed === undefined ? hkdf(state.seed, `gpu/${index}`, SEED_SIZE) : checkSeed(options.seed, 'seed')
  const driverVersion = asciiText(options.driverVersion ?? DEV_GPU_DRIVER_VERSION, 'driverVersion', 64)
  const vbiosVersion = (options.vbiosVersion ?? DEV_GPU_VBIOS_VERSION).toUpperCase()
  const vbios = vbiosField(vbiosVersion)
  const project = asciiText(options.project ?? DEV_GPU_PROJECT, 'project', 32)
  const projectSku = asciiText(options.projectSku ?? DEV_GPU_PROJECT_SKU, 'projectSku', 32)
  const chipSku = asciiText(options.chipSku ?? DEV_GPU_CHIP_SKU, 'chipSku', 32)
  const nvdecStatus = statusByte(options.nvdecStatus ?? NVDEC_STATUS_ENABLED, 'nvdecStatus')
  if (nvdecStatus !== NVDEC_STATUS_ENABLED && nvdecStatus !== NVDEC_STATUS_DISABLED) {
    invalid('nvdecStatus must be 0xAA (enabled) or 0x55 (disabled)', { nvdecStatus })
  }
  const protectedPcieStatus = statusByte(options.protectedPcieStatus ?? NVDEC_STATUS_DISABLED, 'protectedPcieStatus')
  const measurements = checkMeasurements(options.measurements ?? devGpuMeasurements(driverVersion, vbiosVersion))
  const start = checkDate(options.now ?? ca.now, 'now')
  const notAfter = addDays(start, ca.validityDays)

  // The FMC is firmware: its identity follows the VBIOS build, not the board.
  const fwid = sha384(`${KDF_INFO_PREFIX}fwid/${vbiosVersion}`)
  const bromKey = deriveDevGpuKey(seed, 'gsp-brom')
  const fmcKey = deriveDevGpuKey(seed, 'gsp-fmc-alias')
  // Sizes as the sample: a 9-octet BROM serial, a 20-octet FMC serial; each also in the subject's serialNumber.
  const bromSerial = deriveSerial(seed, 'gsp-brom', 9)
  const fmcSerial = deriveSerial(seed, 'gsp-fmc-alias', 20)
  const brom: NameSpec = { cn: DEV_GPU_BROM_NAME, serialNumber: hex(bromSerial).toUpperCase() }
  const bromDer = issueCertificate({
    serial: bromSerial,
    subject: brom,
    issuer: { cn: DEV_GPU_PROVISIONER_CA_NAME },
    subjectKey: bromKey,
    issuerKey: state.provisionerKey,
    notBefore: start,
    notAfter,
    role: 'brom',
    published: false,
  })
  const leafDer = issueCertificate({
    serial: fmcSerial,
    subject: { cn: DEV_GPU_FMC_LEAF_NAME, serialNumber: hex(fmcSerial).toUpperCase() },
    issuer: brom,
    subjectKey: fmcKey,
    issuerKey: bromKey,
    notBefore: start,
    notAfter,
    role: 'leaf',
    published: false,
    extra: [rawExt(OID_TCG_DICE_TCB_INFO, false, riotFwidExtension(bromKey.spki, fwid))],
  })
  state.keys.set(hex(bromKey.spki), bromKey)
  const chainDer = Object.freeze([leafDer, bromDer, ...ca.deviceCaChainDer, ca.rootCertificateDer])
  const boardId = hkdf(seed, 'bytes/board-id', 4)

  // Opaque data in the sample report's order and sizes (see the module header).
  const F = OPAQUE_FIELD
  const msrCounts = new Uint8Array(4 * Math.max(DEV_GPU_MEASUREMENT_COUNT, ...measurements.keys()))
  for (const i of measurements.keys()) msrCounts.set(u32le(1), 4 * (i - 1))
  const tlvs: [number, Uint8Array][] = [
    [F.VBIOS_VERSION, vbios],
    [F.BOARD_ID, boardId],
    [F.CHIP_SKU, padded(chipSku, FIELD_WIDTH.chipSku)],
    [F.CHIP_SKU_MOD, padded('0', FIELD_WIDTH.chipSkuMod)],
    [F.PROJECT, padded(project, FIELD_WIDTH.project)],
    [F.PROJECT_SKU, padded(projectSku, FIELD_WIDTH.projectSku)],
    [F.PROJECT_SKU_MOD, new Uint8Array(FIELD_WIDTH.projectSkuMod)],
    [F.DRIVER_VERSION, padded(driverVersion, 0)],
    [F.GPU_INFO, SAMPLE_GPU_INFO],
    [F.MSRSCNT, msrCounts],
    [F.CPRINFO, SAMPLE_CPR_INFO],
    [F.NVDEC0_STATUS, Uint8Array.of(nvdecStatus)],
    [F.FWID, fwid],
    [F.PROTECTED_PCIE_STATUS, Uint8Array.of(protectedPcieStatus)],
  ]
  const opaque = Buffer.concat(tlvs.flatMap(([type, value]) => [u16le(type), u16le(value.length), value]))
  if (opaque.length > SPDM_MAX_OPAQUE_DATA_SIZE) invalid('opaque data exceeds 1024 bytes; shorten the version or SKU strings')

  // DSP0274 1.1 MEASUREMENTS blocks: Index, MeasurementSpecification (DMTF),
  // MeasurementSize, then DMTFSpecMeasurementValueType (a digest of mutable
  // firmware, as every block of the sample) and its size.
  const record = Buffer.concat(
    [...measurements].map(([i, v]) =>
      Buffer.concat([Uint8Array.of(i, MEASUREMENT_SPECIFICATION_DMTF), u16le(3 + v.length), Uint8Array.of(DMTF_MEASUREMENT_TYPE.MUTABLE_FIRMWARE), u16le(v.length), v]),
    ),
  )

  function signReport(nonce: Uint8Array): Uint8Array {
    if (!(nonce instanceof Uint8Array) || nonce.length !== SPDM_NONCE_SIZE) invalid(`nonce must be ${SPDM_NONCE_SIZE} bytes`)
    const request = Buffer.concat([
      Uint8Array.of(SPDM_VERSION_11, SPDM_GET_MEASUREMENTS, GET_MEASUREMENTS_SIGNATURE_REQUESTED, MEASUREMENT_OPERATION_ALL),
      nonce,
      Uint8Array.of(0), // SlotIDParam: slot 0, the device certificate chain
    ])
    // Param1 (reserved unless counting) and Param2 (slot of the signer) are 0, as in the sample.
    const response = Buffer.concat([
      Uint8Array.of(SPDM_VERSION_11, SPDM_MEASUREMENTS, 0, 0, measurements.size),
      u24le(record.length),
      record,
      // The responder's nonce is fresh on every answer (DSP0274 1.1), so two answers never repeat a signed message.
      randomBytes(SPDM_NONCE_SIZE),
      u16le(opaque.length),
      opaque,
    ])
    const signed = Buffer.concat([request, response])
    const signature = sign('sha384', signed, { key: fmcKey.privateKey, dsaEncoding: 'ieee-p1363' })
    return new Uint8Array(Buffer.concat([signed, signature]))
  }

  return Object.freeze({
    index,
    driverVersion,
    vbiosVersion,
    project,
    projectSku,
    chipSku,
    nvdecStatus,
    protectedPcieStatus,
    measurements,
    fwid,
    // No newline after the last block, as in hopperCertChain.txt.
    certificateChainPem: chainDer.map((d) => derToPem(d)).join('').replace(/\n$/, ''),
    certificateChainDer: chainDer,
    signReport,
  })
}

// ---------------------------------------------------------------------------
// OCSP (RFC 6960)

export interface SignDevOcspOptions {
  /** DER of the certificate whose status is stated. */
  readonly cert: Uint8Array
  /** DER of its issuer, which signs the response (the CA must hold its key). */
  readonly issuer: Uint8Array
  readonly status: 'good' | 'revoked'
  readonly thisUpdate: Date
  readonly nextUpdate: Date
  /** For 'revoked'; default `thisUpdate`. */
  readonly revocationTime?: Date
  /** For 'revoked'; absent by default, as RFC 6960 §4.2.1 allows. */
  readonly reason?: CrlReason
}

/**
 * A DER OCSPResponse (RFC 6960 §4.2.1): status successful, one
 * BasicOCSPResponse with one SingleResponse about `cert` (CertID under
 * SHA-384 of the issuer's Name and key bits, §4.1.1), ResponderID byKey
 * (§4.2.2.3), producedAt = thisUpdate, signed ecdsa-with-SHA384 by the issuer
 * itself (§4.2.2.2, first case), no certs, no nonce (stapled responses have
 * none). Throws ConfigError when `issuer` did not issue `cert` or is not a
 * certificate of this CA.
 */
export function signDevOcsp(ca: DevGpuRootCa, options: SignDevOcspOptions): Uint8Array {
  const state = stateOf(ca)
  const cert = parseCertificate(options.cert)
  const issuer = parseCertificate(options.issuer)
  if (!sameBytes(cert.issuer, issuer.subject)) invalid('issuer is not the issuer of cert', { serial: cert.serial })
  const key = state.keys.get(hex(issuer.spki))
  if (!key) invalid('the issuer is not a certificate of this dev GPU CA', { issuer: issuer.serial })
  if (options.status !== 'good' && options.status !== 'revoked') invalid("status must be 'good' or 'revoked'")
  const thisUpdate = checkDate(options.thisUpdate, 'thisUpdate')
  const nextUpdate = checkDate(options.nextUpdate, 'nextUpdate')
  if (nextUpdate.getTime() <= thisUpdate.getTime()) invalid('nextUpdate must be after thisUpdate')

  const h = (d: Uint8Array) => new Uint8Array(createHash('sha384').update(d).digest())
  const issuerKeyBits = subjectPublicKeyBits(issuer)
  const certId = sequence(
    sequence(oid(OID_SHA384), nullValue()),
    octetString(h(issuer.subject)),
    octetString(h(issuerKeyBits)),
    integer(BigInt(`0x${cert.serial}`)),
  )
  let status: Der
  if (options.status === 'good') status = implicitPrimitive(0, new Uint8Array(0)) // good [0] IMPLICIT NULL
  else {
    const reason = options.reason === undefined ? -1 : CRL_REASONS.indexOf(options.reason)
    if (options.reason !== undefined && reason < 0) invalid('reason is not a CRLReason', { reason: options.reason })
    // revoked [1] IMPLICIT RevokedInfo { revocationTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }
    status = explicit(
      1,
      generalizedTime(checkDate(options.revocationTime ?? thisUpdate, 'revocationTime')),
      ...(reason < 0 ? [] : [explicit(0, enumerated(reason))]),
    )
  }
  const single = sequence(certId, status, generalizedTime(thisUpdate), explicit(0, generalizedTime(nextUpdate)))
  const responderKeyHash = new Uint8Array(createHash('sha1').update(issuerKeyBits).digest())
  const tbs = sequence(explicit(2, octetString(responderKeyHash)), generalizedTime(thisUpdate), sequence(single))
  const algorithm = sequence(oid(OID_ECDSA_WITH_SHA384))
  const basic = sequence(tbs, algorithm, bitString(sign('sha384', tbs, key.privateKey)))
  return sequence(enumerated(0), explicit(0, sequence(oid(OID_OCSP_BASIC), octetString(basic))))
}

// ---------------------------------------------------------------------------
// RIMs (SWID + XML-DSig)

/** One golden measurement of a RIM: RIM index (SPDM block index - 1), and its acceptable values. */
export interface DevRimMeasurement {
  readonly index: number
  readonly active: boolean
  /** One or more 48-byte SHA-384 values; any one matches. */
  readonly alternatives: readonly Uint8Array[]
}

export interface SignDevRimOptions {
  readonly kind: 'driver' | 'vbios'
  /** `Meta/@colloquialVersion`: the driver version, or the VBIOS version as NVIDIA prints it. */
  readonly version: string
  readonly product: 'GH100'
  /** In document order; indices unique. */
  readonly measurements: readonly DevRimMeasurement[]
  /** The signing instant: the RIM signer certificate must be valid then. */
  readonly now: Date
}

/** XML attribute value escaping (XML 1.0 §2.4, §3.3.3). */
function attr(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

function base64Lines(der: Uint8Array): string {
  // 64 columns, as NVIDIA's RIMs wrap their certificates.
  return Buffer.from(der).toString('base64').replace(/(.{64})(?!$)/g, '$1\n')
}

interface RimText {
  readonly tagId: string
  readonly version: string
  readonly product: string
  readonly measurements: readonly DevRimMeasurement[]
  readonly chain: readonly Uint8Array[]
  readonly digestValue: string
  readonly signatureValue: string
}

/** The RIM document, in the layout and namespace prefixes of NVIDIA's RIMs (see rims-matching/). */
function rimXml(r: RimText): string {
  const resources = r.measurements.map((m) => {
    const hashes = m.alternatives.map((v, k) => ` ns2:Hash${k}="${hex(v)}"`).join('')
    const active = m.active ? 'True' : 'False'
    return `        <ns0:Resource type="Measurement" index="${m.index}" active="${active}" alternatives="${m.alternatives.length}"${hashes} name="Measurement_${m.index}" size="${RIM_DIGEST_SIZE}"/>\n`
  })
  const root = [
    `xmlns="${SWID_NAMESPACE}"`,
    `xmlns:ns0="${SWID_NAMESPACE}"`,
    `xmlns:ns2="${SHA384_HASH_NAMESPACE}"`,
    'corpus="false"',
    `name="${attr(r.product)}"`,
    'patch="false"',
    'supplemental="false"',
    `tagId="${r.tagId}"`,
    'version="1.0"',
    'tagVersion="0"',
  ].join(' ')
  const meta = [
    `xmlns:ns1="${TCG_RIM_NAMESPACE}"`,
    `colloquialVersion="${attr(r.version)}"`,
    'edition="GPU"',
    `product="${attr(r.product)}"`,
    'revision="r1"',
    'PayloadType="direct"',
    'ns1:BindingSpec="RIMIM"',
    'ns1:BindingSpecVersion="1.01"',
    `ns1:PlatformManufacturerId="${DEV_RIM_MANUFACTURER_ID}"`,
    `ns1:PlatformManufacturerStr="${attr(DEV_RIM_MANUFACTURER)}"`,
    `ns1:PlatformModel="${attr(r.product)}"`,
    `ns1:FirmwareManufacturer="${attr(DEV_RIM_MANUFACTURER)}"`,
    `ns1:FirmwareManufacturerId="${DEV_RIM_MANUFACTURER_ID}"`,
  ].join(' ')
  return (
    `<SoftwareIdentity ${root}>\n` +
    `    <ns0:Entity name="${attr(DEV_RIM_MANUFACTURER)}" role="softwareCreator tagCreator"/>\n` +
    `    <ns0:Meta ${meta}/>\n` +
    `    <ns0:Payload xmlns:SHA384="${SHA384_HASH_NAMESPACE}">\n` +
    resources.join('') +
    `    </ns0:Payload>\n` +
    `<ds:Signature xmlns:ds="${XMLDSIG_NAMESPACE}"><ds:SignedInfo>` +
    `<ds:CanonicalizationMethod Algorithm="${C14N11_ALGORITHM}"/>` +
    `<ds:SignatureMethod Algorithm="${ECDSA_SHA384_ALGORITHM}"/>` +
    `<ds:Reference URI=""><ds:Transforms>` +
    `<ds:Transform Algorithm="${ENVELOPED_SIGNATURE_TRANSFORM}"/>` +
    `<ds:Transform Algorithm="${C14N11_ALGORITHM}"/>` +
    `</ds:Transforms><ds:DigestMethod Algorithm="${SHA384_DIGEST_ALGORITHM}"/>` +
    `<ds:DigestValue>${r.digestValue}</ds:DigestValue></ds:Reference></ds:SignedInfo>` +
    `<ds:SignatureValue>${r.signatureValue}</ds:SignatureValue>` +
    `<ds:KeyInfo><ds:X509Data>${r.chain.map((d) => `<ds:X509Certificate>${base64Lines(d)}\n</ds:X509Certificate>`).join('')}</ds:X509Data></ds:KeyInfo>` +
    `</ds:Signature></SoftwareIdentity>`
  )
}

function signatureElement(root: Element): Element {
  for (let i = 0; i < root.childNodes.length; i++) {
    const n = root.childNodes[i]!
    if (n.nodeType === 1 && (n as Element).namespaceURI === XMLDSIG_NAMESPACE && (n as Element).localName === 'Signature') return n as Element
  }
  throw new Error('dev RIM template has no Signature') // a bug here, not bad input
}

function checkRimMeasurements(list: readonly DevRimMeasurement[]): DevRimMeasurement[] {
  if (!Array.isArray(list) || list.length === 0) invalid('measurements must be a non-empty list')
  const seen = new Set<number>()
  return list.map((m) => {
    if (!Number.isInteger(m?.index) || m.index < 0 || m.index > MAX_RIM_INDEX) invalid('RIM indices must be 0..253', { index: m?.index })
    if (seen.has(m.index)) invalid('RIM indices must be unique', { index: m.index })
    seen.add(m.index)
    if (typeof m.active !== 'boolean') invalid('active must be a boolean', { index: m.index })
    if (!Array.isArray(m.alternatives) || m.alternatives.length === 0 || m.alternatives.length > 64) {
      invalid('each measurement needs 1..64 alternatives', { index: m.index })
    }
    for (const v of m.alternatives) {
      if (!(v instanceof Uint8Array) || v.length !== RIM_DIGEST_SIZE) invalid('alternatives must be 48-byte SHA-384 digests', { index: m.index })
    }
    return { index: m.index, active: m.active, alternatives: m.alternatives.map((v: Uint8Array) => v.slice()) }
  })
}

/**
 * Sign a dev RIM: a SWID tag in NVIDIA's layout listing `measurements`,
 * enveloped-signed by "DEV RIM Signer" with NVIDIA's XML-DSig profile, its
 * KeyInfo carrying the RIM chain leaf first, root last. The digest and the
 * SignedInfo bytes are produced exactly as `rim/verify.ts` recomputes them:
 * the document parsed with the RIM parser's XML reader, the Signature
 * removed from a clone of the root and the rest canonicalised; SignedInfo
 * canonicalised in place with its ancestors' namespaces.
 */
export function signDevRim(ca: DevGpuRootCa, options: SignDevRimOptions): string {
  const state = stateOf(ca)
  if (options?.kind !== 'driver' && options?.kind !== 'vbios') invalid("kind must be 'driver' or 'vbios'")
  if (options.product !== DEV_GPU_PRODUCT) invalid(`product must be ${DEV_GPU_PRODUCT}`, { product: options.product })
  const version = asciiText(options.version, 'version', 64)
  const now = checkDate(options.now, 'now').getTime()
  if (now < state.rimSigner.notBefore || now > state.rimSigner.notAfter) {
    invalid('the dev RIM signer certificate is not valid at `now`: sign within the CA validity', {
      notBefore: new Date(state.rimSigner.notBefore).toISOString(),
      notAfter: new Date(state.rimSigner.notAfter).toISOString(),
    })
  }
  const measurements = checkRimMeasurements(options.measurements)
  // NVIDIA's tagIds are 48-byte hex values; the dev one is a SHA-384 over what the RIM says.
  const tagId = hex(
    sha384(
      `${KDF_INFO_PREFIX}rim/${options.kind}/${options.product}/${version}/` +
        measurements.map((m) => `${m.index}:${m.active}:${m.alternatives.map(hex).join(',')}`).join(';'),
    ),
  )
  const text = (digestValue: string, signatureValue: string) =>
    rimXml({ tagId, version, product: options.product, measurements, chain: ca.rimCertificateChainDer, digestValue, signatureValue })

  // The Reference digest: the document without its Signature (enveloped-signature, then C14N).
  const unsigned = parseXmlDocument(text('', '')).documentElement!
  const content = unsigned.cloneNode(true) as Element
  const position = Array.prototype.indexOf.call(unsigned.childNodes, signatureElement(unsigned))
  content.removeChild(content.childNodes[position]!)
  const digestValue = Buffer.from(sha384(new Uint8Array(Buffer.from(canonicalizer.process(content, { ancestorNamespaces: [] }), 'utf8')))).toString('base64')

  // The signature over canonical SignedInfo, r || s (XML-DSig 1.1 §6.4.3).
  const withDigest = parseXmlDocument(text(digestValue, '')).documentElement!
  const signedInfo = signatureElement(withDigest).getElementsByTagNameNS(XMLDSIG_NAMESPACE, 'SignedInfo')[0]!
  const canonicalSignedInfo = Buffer.from(canonicalizer.process(signedInfo, { ancestorNamespaces: ancestorNamespaces(signedInfo) }), 'utf8')
  const signatureValue = sign('sha384', canonicalSignedInfo, { key: state.rimSignerKey.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64')
  return text(digestValue, signatureValue)
}

/** A driver and a VBIOS RIM. */
export interface DevGoldenRims {
  readonly driver: string
  readonly vbios: string
}

/**
 * The golden RIMs of `gpu`: a driver RIM for its driver version making
 * {@link DEV_DRIVER_RIM_INDICES} active, a VBIOS RIM for its VBIOS version
 * making {@link DEV_VBIOS_RIM_INDICES} active, each with the GPU's value of
 * the block (RIM index i = SPDM block i + 1) as its one alternative. Every
 * other index is listed inactive with a zero value, as NVIDIA's RIMs list
 * all 64. An index the GPU does not measure is inactive in both.
 */
export function devGoldenRims(ca: DevGpuRootCa, gpu: DevGpu, now: Date): DevGoldenRims {
  if (!gpu || !(gpu.measurements instanceof Map)) invalid('gpu must be a result of createDevGpu')
  const last = Math.max(DEV_GPU_MEASUREMENT_COUNT, ...gpu.measurements.keys()) - 1
  const zero = new Uint8Array(RIM_DIGEST_SIZE)
  const list = (owned: readonly number[]): DevRimMeasurement[] =>
    range(0, last).map((index) => {
      const value = gpu.measurements.get(index + 1)
      const active = owned.includes(index) && value !== undefined
      return { index, active, alternatives: [active ? value : zero] }
    })
  return {
    driver: signDevRim(ca, { kind: 'driver', version: gpu.driverVersion, product: DEV_GPU_PRODUCT, measurements: list(DEV_DRIVER_RIM_INDICES), now }),
    vbios: signDevRim(ca, { kind: 'vbios', version: gpu.vbiosVersion, product: DEV_GPU_PRODUCT, measurements: list(DEV_VBIOS_RIM_INDICES), now }),
  }
}
