/**
 * X.509 certificate parsing (RFC 5280 §4.1) into offsets and small values.
 * No crypto: signatures are checked in `chain.ts` over `tbs`, the exact
 * signed bytes. Shared by the Intel DCAP and NVIDIA verifiers.
 */
import { ParseError } from '../errors.ts'
import { interned } from './parse-cache.ts'
import {
  TAG,
  bitString,
  booleanValue,
  children,
  contentOf,
  decodeOid,
  encodingOf,
  expectTlv,
  integerBytes,
  integerValue,
  readTlv,
  timeValue,
  type Tlv,
} from '../asn1/der.ts'

/** Signature algorithm OIDs (RFC 5758 §3.2). */
export const OID_ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2'
export const OID_ECDSA_WITH_SHA384 = '1.2.840.10045.4.3.3'
/** id-ecPublicKey and the named curves we accept (RFC 5480 §2.1.1). */
export const OID_EC_PUBLIC_KEY = '1.2.840.10045.2.1'
export const OID_P256 = '1.2.840.10045.3.1.7'
export const OID_P384 = '1.3.132.0.34'
/** Standard extensions (RFC 5280 §4.2.1). */
export const OID_BASIC_CONSTRAINTS = '2.5.29.19'
export const OID_KEY_USAGE = '2.5.29.15'
/** Common name attribute (X.520). */
export const OID_COMMON_NAME = '2.5.4.3'
/** keyUsage bit for keyCertSign (RFC 5280 §4.2.1.3: bit 5) and cRLSign (bit 6). */
export const KEY_USAGE_KEY_CERT_SIGN = 1 << 5
export const KEY_USAGE_CRL_SIGN = 1 << 6

export type SignatureAlgorithm = 'ecdsa-sha256' | 'ecdsa-sha384'
export type Curve = 'P-256' | 'P-384'

export interface Extension {
  readonly critical: boolean
  /** The extnValue OCTET STRING content (the DER of the extension itself). */
  readonly value: Uint8Array
}

/** A parsed certificate; every byte field is a view into `der`. */
export interface Certificate {
  readonly der: Uint8Array
  /** The exact `tbsCertificate` encoding: what the issuer signed. */
  readonly tbs: Uint8Array
  readonly signatureAlgorithm: SignatureAlgorithm
  /** DER `ECDSA-Sig-Value` from the signatureValue BIT STRING. */
  readonly signature: Uint8Array
  /** Serial number, lower-case hex without sign octet. */
  readonly serial: string
  /** Raw DER of the issuer and subject Names, compared byte for byte. */
  readonly issuer: Uint8Array
  readonly subject: Uint8Array
  readonly notBefore: number
  readonly notAfter: number
  /** SubjectPublicKeyInfo DER, ready for `crypto.createPublicKey`. */
  readonly spki: Uint8Array
  readonly curve: Curve
  readonly extensions: ReadonlyMap<string, Extension>
  /** basicConstraints, when present (RFC 5280 §4.2.1.9). */
  readonly basicConstraints?: { readonly ca: boolean; readonly pathLen?: number }
  /** keyUsage bits (bit 0 = digitalSignature) when present. */
  readonly keyUsage?: number
}

function invalid(what: string, cause?: unknown): never {
  throw new ParseError('ATTESTATION_CERT_INVALID', what, { cause })
}

/** Map an AlgorithmIdentifier to the signature algorithms we verify. */
export function signatureAlgorithmOf(buf: Uint8Array, algId: Tlv): SignatureAlgorithm {
  const [oid] = children(buf, algId)
  if (!oid) invalid('empty AlgorithmIdentifier')
  const o = decodeOid(buf, oid)
  if (o === OID_ECDSA_WITH_SHA256) return 'ecdsa-sha256'
  if (o === OID_ECDSA_WITH_SHA384) return 'ecdsa-sha384'
  return invalid(`unsupported signature algorithm ${o}`)
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0
}

function curveOf(buf: Uint8Array, spki: Tlv): Curve {
  const [alg] = children(buf, spki)
  if (!alg) invalid('empty SubjectPublicKeyInfo')
  const [kind, param] = children(buf, alg)
  if (!kind || !param || decodeOid(buf, kind) !== OID_EC_PUBLIC_KEY) invalid('public key is not an EC key')
  const curve = decodeOid(buf, param)
  if (curve === OID_P256) return 'P-256'
  if (curve === OID_P384) return 'P-384'
  return invalid(`unsupported curve ${curve}`)
}

/**
 * Parse one DER certificate. Throws `ParseError` (ATTESTATION_CERT_INVALID).
 * The input is copied: the result owns its bytes, so what a verifier checked
 * cannot be changed afterwards through the caller's buffer. Identical DER
 * yields the same object (parse-cache.ts).
 */
export function parseCertificate(der: Uint8Array): Certificate {
  return interned('certificate', der, parseCertificateFresh)
}

function parseCertificateFresh(der: Uint8Array): Certificate {
  try {
    return parseCertificateUnchecked(der.slice())
  } catch (e) {
    if (e instanceof ParseError && e.code === 'ATTESTATION_CERT_INVALID') throw e
    return invalid('malformed certificate', e)
  }
}

function parseCertificateUnchecked(der: Uint8Array): Certificate {
  const outer = expectTlv(der, 0, TAG.SEQUENCE)
  if (outer.end !== der.length) invalid('trailing bytes after certificate')
  const [tbsTlv, sigAlgTlv, sigTlv, extra] = children(der, outer)
  if (!tbsTlv || !sigAlgTlv || !sigTlv || extra) invalid('certificate is not three elements')
  if (tbsTlv.tag !== TAG.SEQUENCE || sigAlgTlv.tag !== TAG.SEQUENCE) invalid('bad certificate structure')
  const signatureAlgorithm = signatureAlgorithmOf(der, sigAlgTlv)
  const sig = bitString(der, sigTlv)
  if (sig.unused !== 0) invalid('signature has unused bits')

  const f = children(der, tbsTlv)
  let i = 0
  // version [0] EXPLICIT; only v3 certificates carry the extensions we rely on.
  if (f[i]?.tag === 0xa0) {
    const [v] = children(der, f[i]!)
    if (!v || integerValue(der, v) !== 2) invalid('only X.509 v3 certificates are accepted')
    i++
  } else invalid('only X.509 v3 certificates are accepted')
  const serialTlv = f[i++]
  const innerAlg = f[i++]
  const issuerTlv = f[i++]
  const validity = f[i++]
  const subjectTlv = f[i++]
  const spkiTlv = f[i++]
  if (!serialTlv || !innerAlg || !issuerTlv || !validity || !subjectTlv || !spkiTlv) invalid('truncated tbsCertificate')
  // RFC 5280 §4.1.1.2: the inner and outer algorithm must be the same.
  if (!sameBytes(encodingOf(der, innerAlg), encodingOf(der, sigAlgTlv))) invalid('signature algorithm mismatch')
  if (issuerTlv.tag !== TAG.SEQUENCE || subjectTlv.tag !== TAG.SEQUENCE || spkiTlv.tag !== TAG.SEQUENCE) {
    invalid('bad tbsCertificate structure')
  }
  const [nb, na, vExtra] = children(der, validity)
  if (!nb || !na || vExtra) invalid('bad validity')

  const extensions = new Map<string, Extension>()
  for (; i < f.length; i++) {
    const t = f[i]!
    if (t.tag === 0x81 || t.tag === 0x82) continue // unique identifiers (unused by PKIX profiles)
    if (t.tag !== 0xa3) invalid('unexpected field in tbsCertificate')
    const [seq, more] = children(der, t)
    if (!seq || more || seq.tag !== TAG.SEQUENCE) invalid('bad extensions')
    for (const ext of children(der, seq)) {
      const parts = children(der, ext)
      const oid = decodeOid(der, parts[0] ?? invalid('empty extension'))
      let critical = false
      let valueTlv = parts[1]
      if (valueTlv?.tag === TAG.BOOLEAN) {
        critical = booleanValue(der, valueTlv)
        valueTlv = parts[2]
      }
      if (!valueTlv || valueTlv.tag !== TAG.OCTET_STRING) invalid('extension without value')
      if (extensions.has(oid)) invalid(`duplicate extension ${oid}`)
      extensions.set(oid, { critical, value: contentOf(der, valueTlv) })
    }
  }

  const bc = extensions.get(OID_BASIC_CONSTRAINTS)
  let basicConstraints: Certificate['basicConstraints']
  if (bc) {
    const seq = expectTlv(bc.value, 0, TAG.SEQUENCE)
    let ca = false
    let pathLen: number | undefined
    for (const c of children(bc.value, seq)) {
      if (c.tag === TAG.BOOLEAN) ca = booleanValue(bc.value, c)
      else if (c.tag === TAG.INTEGER) pathLen = integerValue(bc.value, c)
      else invalid('bad basicConstraints')
    }
    basicConstraints = pathLen === undefined ? { ca } : { ca, pathLen }
  }
  const ku = extensions.get(OID_KEY_USAGE)
  let keyUsage: number | undefined
  if (ku) {
    const { bytes } = bitString(ku.value, readTlv(ku.value, 0))
    // Bit 0 is the most significant bit of the first octet (X.690 §8.6.2.1).
    keyUsage = 0
    for (let b = 0; b < Math.min(bytes.length * 8, 16); b++) {
      if (bytes[b >> 3]! & (0x80 >> (b & 7))) keyUsage |= 1 << b
    }
  }

  return {
    der,
    tbs: encodingOf(der, tbsTlv),
    signatureAlgorithm,
    signature: sig.bytes,
    serial: Buffer.from(integerBytes(der, serialTlv)).toString('hex'),
    issuer: encodingOf(der, issuerTlv),
    subject: encodingOf(der, subjectTlv),
    notBefore: timeValue(der, nb),
    notAfter: timeValue(der, na),
    spki: encodingOf(der, spkiTlv),
    curve: curveOf(der, spkiTlv),
    extensions,
    ...(basicConstraints ? { basicConstraints } : {}),
    ...(keyUsage !== undefined ? { keyUsage } : {}),
  }
}

/** The first common name in a DER Name, for reports; '' when there is none. */
export function commonName(name: Uint8Array): string {
  try {
    for (const rdn of children(name, readTlv(name, 0))) {
      for (const atv of children(name, rdn)) {
        const [oid, value] = children(name, atv)
        if (oid && value && decodeOid(name, oid) === OID_COMMON_NAME) {
          return Buffer.from(contentOf(name, value)).toString('utf8')
        }
      }
    }
  } catch {
    // A report label is best effort; the Name was already parsed strictly.
  }
  return ''
}

/** Byte equality of two DER values (names, keys, whole certificates). */
export { sameBytes }
