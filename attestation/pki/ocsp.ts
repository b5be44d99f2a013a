/**
 * OCSP response parsing (RFC 6960 §4.2.1) into offsets and small values.
 *
 * Bytes only: no hashing, no signature check, no clock. `ocsp-verify.ts`
 * checks the signature over `tbsResponseData` (the exact signed bytes, kept
 * as a view, never re-encoded), the CertID and the validity window. Shared by
 * every chain whose revocation status arrives as stapled OCSP responses
 * (NVIDIA's GPU device identity chain and its RIM signing chains).
 *
 * A response whose `responseStatus` is not `successful` is parsed and
 * reported as such (it has no body to read); it is the verifier that rejects
 * it, so that a caller can tell "the responder said tryLater" from garbage.
 */
import { interned } from './parse-cache.ts'
import { ParseError } from '../errors.ts'
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
import { parseCertificate, signatureAlgorithmOf, type Certificate, type Extension, type SignatureAlgorithm } from './x509.ts'

/** id-pkix-ocsp-basic: the only responseType RFC 6960 §4.2.1 requires, and the only one parsed here. */
export const OID_OCSP_BASIC = '1.3.6.1.5.5.7.48.1.1'
/** id-pkix-ocsp-nonce (RFC 6960 §4.4.1; value syntax RFC 8954 §2.1). */
export const OID_OCSP_NONCE = '1.3.6.1.5.5.7.48.1.2'
/** id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): a responder certificate extension, listed for reports. */
export const OID_OCSP_NOCHECK = '1.3.6.1.5.5.7.48.1.5'

/** CertID hash algorithms (RFC 6960 §4.1.1 with RFC 5754 §2 identifiers). */
export const OID_SHA1 = '1.3.14.3.2.26'
export const OID_SHA256 = '2.16.840.1.101.3.4.2.1'
export const OID_SHA384 = '2.16.840.1.101.3.4.2.2'

/** A CertID hash algorithm the verifier can recompute; anything else is kept as its OID. */
export type CertIdHashAlgorithm = 'sha1' | 'sha256' | 'sha384'

const HASH_BY_OID: ReadonlyMap<string, CertIdHashAlgorithm> = new Map([
  [OID_SHA1, 'sha1'],
  [OID_SHA256, 'sha256'],
  [OID_SHA384, 'sha384'],
])

/**
 * OCSPResponseStatus (RFC 6960 §4.2.1), by ENUMERATED value. Value 4 is
 * "not used" by the RFC; it and anything above 6 are malformed.
 */
export const OCSP_RESPONSE_STATUS = ['successful', 'malformedRequest', 'internalError', 'tryLater', null, 'sigRequired', 'unauthorized'] as const
export type OcspResponseStatus = Exclude<(typeof OCSP_RESPONSE_STATUS)[number], null>

/** CRLReason (RFC 5280 §5.3.1), by ENUMERATED value; 7 is not used. */
export const CRL_REASONS = [
  'unspecified',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'certificateHold',
  null,
  'removeFromCRL',
  'privilegeWithdrawn',
  'aACompromise',
] as const
export type CrlReason = Exclude<(typeof CRL_REASONS)[number], null>

/** CertID (RFC 6960 §4.1.1): which certificate a SingleResponse speaks about. */
export interface CertId {
  /** The AlgorithmIdentifier's OID, whatever it is. */
  readonly hashAlgorithmOid: string
  /** The algorithm by name when it is one the verifier can recompute, else null. */
  readonly hashAlgorithm: CertIdHashAlgorithm | null
  /** Hash of the issuer's DER subject Name. */
  readonly issuerNameHash: Uint8Array
  /** Hash of the issuer's subjectPublicKey BIT STRING value (without the unused-bits octet). */
  readonly issuerKeyHash: Uint8Array
  /** Serial number, lower-case hex without sign octet (as `Certificate.serial`). */
  readonly serialNumber: string
}

/** CertStatus (RFC 6960 §4.2.1): a CHOICE of good, revoked (with RevokedInfo) and unknown. */
export type CertStatus =
  | { readonly kind: 'good' }
  | { readonly kind: 'revoked'; readonly revocationTime: number; readonly reason?: CrlReason }
  | { readonly kind: 'unknown' }

/** SingleResponse (RFC 6960 §4.2.1). Times are milliseconds since the epoch. */
export interface SingleResponse {
  readonly certId: CertId
  readonly certStatus: CertStatus
  readonly thisUpdate: number
  /** Absent means "newer information is available all the time" (RFC 6960 §2.4): the verifier needs a maximum age. */
  readonly nextUpdate?: number
  readonly singleExtensions: ReadonlyMap<string, Extension>
}

/** ResponderID (RFC 6960 §4.2.2.3). */
export type ResponderId =
  | { readonly kind: 'byName'; /** DER of the responder's subject Name. */ readonly name: Uint8Array }
  | { readonly kind: 'byKey'; /** SHA-1 of the responder's subjectPublicKey BIT STRING value. */ readonly keyHash: Uint8Array }

/** BasicOCSPResponse with its ResponseData (RFC 6960 §4.2.1); byte fields are views into the response. */
export interface BasicOcspResponse {
  /** The exact `tbsResponseData` encoding: what the responder signed. */
  readonly tbsResponseData: Uint8Array
  readonly responderId: ResponderId
  readonly producedAt: number
  readonly responses: readonly SingleResponse[]
  readonly responseExtensions: ReadonlyMap<string, Extension>
  /** The nonce (RFC 8954 §2.1: the OCTET STRING inside the extension value) when the response carries one. */
  readonly nonce?: Uint8Array
  readonly signatureAlgorithm: SignatureAlgorithm
  /** DER `ECDSA-Sig-Value` from the signature BIT STRING. */
  readonly signature: Uint8Array
  /** Certificates the responder included (RFC 6960 §4.2.2.2: a delegated responder's own certificate). */
  readonly certs: readonly Certificate[]
}

/** A parsed OCSPResponse: a body only when the responder says `successful`. */
export type OcspResponse =
  | { readonly der: Uint8Array; readonly responseStatus: 'successful'; readonly basic: BasicOcspResponse }
  | { readonly der: Uint8Array; readonly responseStatus: Exclude<OcspResponseStatus, 'successful'> }

function malformed(what: string, cause?: unknown): never {
  throw new ParseError('ATTESTATION_OCSP_MALFORMED', what, cause === undefined ? {} : { cause })
}

/**
 * Parse one DER OCSPResponse. Throws `ParseError` (ATTESTATION_OCSP_MALFORMED)
 * on anything malformed, including an embedded certificate that does not
 * parse (the original error is the `cause`). The input is copied, as for
 * certificates: what a verifier checked cannot change afterwards.
 */
export function parseOcspResponse(der: Uint8Array): OcspResponse {
  return interned('ocsp', der, parseOcspResponseFresh)
}

function parseOcspResponseFresh(der: Uint8Array): OcspResponse {
  try {
    return parseOcspResponseUnchecked(der.slice())
  } catch (e) {
    if (e instanceof ParseError && e.code === 'ATTESTATION_OCSP_MALFORMED') throw e
    return malformed('malformed OCSP response', e)
  }
}

/** Strict base64 (RFC 4648 §4); whitespace between characters is tolerated, as in files wrapped at 64 or 76 columns. */
const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** Parse a base64-encoded DER OCSPResponse (the form NVIDIA's tools store). */
export function parseOcspResponseBase64(text: string): OcspResponse {
  const body = text.replace(/\s+/g, '')
  if (body.length === 0 || !B64.test(body)) malformed('OCSP response is not base64')
  return parseOcspResponse(new Uint8Array(Buffer.from(body, 'base64')))
}

function parseOcspResponseUnchecked(der: Uint8Array): OcspResponse {
  const outer = expectTlv(der, 0, TAG.SEQUENCE)
  if (outer.end !== der.length) malformed('trailing bytes after OCSP response')
  const [statusTlv, bytesTlv, extra] = children(der, outer)
  if (!statusTlv || extra) malformed('OCSPResponse is not one or two elements')
  if (statusTlv.tag !== TAG.ENUMERATED) malformed('responseStatus is not ENUMERATED')
  const code = enumValue(der, statusTlv)
  const responseStatus = OCSP_RESPONSE_STATUS[code] ?? malformed(`unknown responseStatus ${code}`)

  if (responseStatus !== 'successful') {
    // RFC 6960 §4.2.1: error statuses carry no responseBytes.
    if (bytesTlv) malformed('responseBytes present with an error status')
    return { der, responseStatus }
  }
  if (!bytesTlv || bytesTlv.tag !== 0xa0) malformed('successful response without responseBytes')
  const [rb, rbExtra] = children(der, bytesTlv)
  if (!rb || rbExtra || rb.tag !== TAG.SEQUENCE) malformed('bad responseBytes')
  const [typeTlv, respTlv, rbMore] = children(der, rb)
  if (!typeTlv || !respTlv || rbMore || respTlv.tag !== TAG.OCTET_STRING) malformed('bad ResponseBytes')
  const type = decodeOid(der, typeTlv)
  if (type !== OID_OCSP_BASIC) malformed(`unsupported responseType ${type}`)
  return { der, responseStatus, basic: parseBasic(der, respTlv) }
}

/** ENUMERATED content as a small non-negative number (same encoding rules as INTEGER, X.690 §8.4). */
function enumValue(der: Uint8Array, tlv: Tlv): number {
  return integerValue(der, { ...tlv, tag: TAG.INTEGER })
}

/** GeneralizedTime only: RFC 6960 §4.2.1 types every OCSP time so (UTCTime is malformed here). */
function generalizedTime(der: Uint8Array, tlv: Tlv | undefined, what: string): number {
  if (!tlv || tlv.tag !== TAG.GENERALIZED_TIME) malformed(`${what} is not a GeneralizedTime`)
  return timeValue(der, tlv)
}

/** The single child of an EXPLICIT tag. */
function explicit(der: Uint8Array, tlv: Tlv, what: string): Tlv {
  const [inner, more] = children(der, tlv)
  if (!inner || more) malformed(`bad ${what}`)
  return inner
}

function parseBasic(der: Uint8Array, octets: Tlv): BasicOcspResponse {
  // The OCTET STRING holds exactly one BasicOCSPResponse.
  const basic = expectTlv(der, octets.contentStart, TAG.SEQUENCE, octets.end)
  if (basic.end !== octets.end) malformed('trailing bytes after BasicOCSPResponse')
  const [tbsTlv, algTlv, sigTlv, certsTlv, extra] = children(der, basic)
  if (!tbsTlv || !algTlv || !sigTlv || extra) malformed('BasicOCSPResponse is not three or four elements')
  if (tbsTlv.tag !== TAG.SEQUENCE || algTlv.tag !== TAG.SEQUENCE) malformed('bad BasicOCSPResponse structure')
  const signatureAlgorithm = signatureAlgorithmOf(der, algTlv)
  const sig = bitString(der, sigTlv)
  if (sig.unused !== 0) malformed('signature has unused bits')

  const certs: Certificate[] = []
  if (certsTlv) {
    if (certsTlv.tag !== 0xa0) malformed('unexpected field after signature')
    const seq = explicit(der, certsTlv, 'certs')
    if (seq.tag !== TAG.SEQUENCE) malformed('certs is not a SEQUENCE')
    for (const c of children(der, seq)) {
      const cert = parseCertificate(encodingOf(der, c))
      // The verifier hashes this key to match the ResponderID; a certificate
      // parse does not look inside the BIT STRING, so check it reads here.
      subjectPublicKeyBits(cert)
      certs.push(cert)
    }
  }

  const f = children(der, tbsTlv)
  // version [0] EXPLICIT DEFAULT v1: v1 is the only version, and DER
  // (X.690 §11.5) omits a DEFAULT value, so the field never appears.
  if (f[0]?.tag === 0xa0) malformed('ResponseData carries a version field')
  let i = 0
  const ridTlv = f[i++]
  if (!ridTlv) malformed('truncated ResponseData')
  const responderId = parseResponderId(der, ridTlv)
  const producedAt = generalizedTime(der, f[i++], 'producedAt')
  const listTlv = f[i++]
  if (!listTlv || listTlv.tag !== TAG.SEQUENCE) malformed('responses is not a SEQUENCE')
  const responses = children(der, listTlv).map((s) => parseSingleResponse(der, s))
  let responseExtensions: ReadonlyMap<string, Extension> = new Map()
  if (f[i]?.tag === 0xa1) responseExtensions = parseExtensions(der, explicit(der, f[i++]!, 'responseExtensions'))
  if (f[i]) malformed('unexpected field in ResponseData')

  const nonceExt = responseExtensions.get(OID_OCSP_NONCE)
  let nonce: Uint8Array | undefined
  if (nonceExt) {
    const n = expectTlv(nonceExt.value, 0, TAG.OCTET_STRING)
    if (n.end !== nonceExt.value.length || n.end === n.contentStart) malformed('nonce is not one non-empty OCTET STRING')
    nonce = contentOf(nonceExt.value, n)
  }

  return {
    tbsResponseData: encodingOf(der, tbsTlv),
    responderId,
    producedAt,
    responses,
    responseExtensions,
    ...(nonce ? { nonce } : {}),
    signatureAlgorithm,
    signature: sig.bytes,
    certs,
  }
}

function parseResponderId(der: Uint8Array, tlv: Tlv): ResponderId {
  // ResponderID's tags are EXPLICIT (the RFC 6960 ASN.1 module's default).
  if (tlv.tag === 0xa1) {
    const name = explicit(der, tlv, 'responderID byName')
    if (name.tag !== TAG.SEQUENCE) malformed('responderID byName is not a Name')
    return { kind: 'byName', name: encodingOf(der, name) }
  }
  if (tlv.tag === 0xa2) {
    const key = explicit(der, tlv, 'responderID byKey')
    if (key.tag !== TAG.OCTET_STRING) malformed('responderID byKey is not an OCTET STRING')
    return { kind: 'byKey', keyHash: contentOf(der, key) }
  }
  return malformed('bad responderID')
}

function parseCertId(der: Uint8Array, tlv: Tlv): CertId {
  if (tlv.tag !== TAG.SEQUENCE) malformed('certID is not a SEQUENCE')
  const [algTlv, nameHash, keyHash, serial, extra] = children(der, tlv)
  if (!algTlv || !nameHash || !keyHash || !serial || extra) malformed('certID is not four elements')
  if (algTlv.tag !== TAG.SEQUENCE || nameHash.tag !== TAG.OCTET_STRING || keyHash.tag !== TAG.OCTET_STRING) malformed('bad certID')
  const [oidTlv, params, algMore] = children(der, algTlv)
  if (!oidTlv || algMore) malformed('bad certID hashAlgorithm')
  // RFC 5754 §2: hash parameters are absent or NULL.
  if (params && (params.tag !== TAG.NULL || params.end !== params.contentStart)) malformed('certID hash parameters are not NULL')
  const hashAlgorithmOid = decodeOid(der, oidTlv)
  return {
    hashAlgorithmOid,
    hashAlgorithm: HASH_BY_OID.get(hashAlgorithmOid) ?? null,
    issuerNameHash: contentOf(der, nameHash),
    issuerKeyHash: contentOf(der, keyHash),
    serialNumber: Buffer.from(integerBytes(der, serial)).toString('hex'),
  }
}

function parseCertStatus(der: Uint8Array, tlv: Tlv | undefined): CertStatus {
  if (!tlv) malformed('truncated SingleResponse')
  // good [0] IMPLICIT NULL and unknown [2] IMPLICIT NULL: empty primitives.
  if (tlv.tag === 0x80 || tlv.tag === 0x82) {
    if (tlv.end !== tlv.contentStart) malformed('good/unknown status is not NULL')
    return { kind: tlv.tag === 0x80 ? 'good' : 'unknown' }
  }
  if (tlv.tag !== 0xa1) malformed('bad certStatus')
  // revoked [1] IMPLICIT RevokedInfo: revocationTime, then revocationReason [0] EXPLICIT CRLReason OPTIONAL.
  const [timeTlv, reasonTlv, extra] = children(der, tlv)
  if (extra) malformed('bad RevokedInfo')
  const revocationTime = generalizedTime(der, timeTlv, 'revocationTime')
  if (!reasonTlv) return { kind: 'revoked', revocationTime }
  if (reasonTlv.tag !== 0xa0) malformed('bad revocationReason')
  const e = explicit(der, reasonTlv, 'revocationReason')
  if (e.tag !== TAG.ENUMERATED) malformed('revocationReason is not ENUMERATED')
  const code = enumValue(der, e)
  const reason = CRL_REASONS[code] ?? malformed(`unknown CRLReason ${code}`)
  return { kind: 'revoked', revocationTime, reason }
}

function parseSingleResponse(der: Uint8Array, tlv: Tlv): SingleResponse {
  if (tlv.tag !== TAG.SEQUENCE) malformed('SingleResponse is not a SEQUENCE')
  const f = children(der, tlv)
  const certId = parseCertId(der, f[0] ?? malformed('empty SingleResponse'))
  const certStatus = parseCertStatus(der, f[1])
  const thisUpdate = generalizedTime(der, f[2], 'thisUpdate')
  let i = 3
  let nextUpdate: number | undefined
  if (f[i]?.tag === 0xa0) nextUpdate = generalizedTime(der, explicit(der, f[i++]!, 'nextUpdate'), 'nextUpdate')
  let singleExtensions: ReadonlyMap<string, Extension> = new Map()
  if (f[i]?.tag === 0xa1) singleExtensions = parseExtensions(der, explicit(der, f[i++]!, 'singleExtensions'))
  if (f[i]) malformed('unexpected field in SingleResponse')
  return { certId, certStatus, thisUpdate, ...(nextUpdate === undefined ? {} : { nextUpdate }), singleExtensions }
}

/** Extensions (RFC 5280 §4.1): as `x509.ts` reads them; a repeated OID is malformed. */
function parseExtensions(der: Uint8Array, seq: Tlv): ReadonlyMap<string, Extension> {
  if (seq.tag !== TAG.SEQUENCE) malformed('Extensions is not a SEQUENCE')
  const out = new Map<string, Extension>()
  for (const ext of children(der, seq)) {
    if (ext.tag !== TAG.SEQUENCE) malformed('Extension is not a SEQUENCE')
    const parts = children(der, ext)
    const oid = decodeOid(der, parts[0] ?? malformed('empty extension'))
    let critical = false
    let k = 1
    if (parts[k]?.tag === TAG.BOOLEAN) critical = booleanValue(der, parts[k++]!)
    const valueTlv = parts[k++]
    if (!valueTlv || valueTlv.tag !== TAG.OCTET_STRING || parts[k]) malformed('bad extension')
    if (out.has(oid)) malformed(`duplicate extension ${oid}`)
    out.set(oid, { critical, value: contentOf(der, valueTlv) })
  }
  return out
}

/**
 * The value of a certificate's subjectPublicKey BIT STRING without the
 * unused-bits octet: what CertID's issuerKeyHash (RFC 6960 §4.1.1) and
 * ResponderID's byKey (§4.2.2.3) hash. Bytes only; the caller hashes.
 * Throws `ParseError` (ATTESTATION_CERT_INVALID) when the key does not read.
 */
export function subjectPublicKeyBits(cert: Certificate): Uint8Array {
  const spki = cert.spki
  const [, bits, extra] = children(spki, readTlv(spki, 0))
  if (!bits || extra) throw new ParseError('ATTESTATION_CERT_INVALID', 'bad SubjectPublicKeyInfo')
  const { bytes, unused } = bitString(spki, bits)
  if (unused !== 0) throw new ParseError('ATTESTATION_CERT_INVALID', 'subjectPublicKey has unused bits')
  return bytes
}

