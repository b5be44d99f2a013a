/**
 * Intel PCS API v4 responses ↔ the `QuoteCollateralV3` bundle. No network,
 * no crypto.
 *
 * The PCS spreads one bundle over four responses: JSON bodies whose
 * `tcbInfo` / `enclaveIdentity` member is what Intel signed, `*-Issuer-Chain`
 * headers carrying URL-encoded PEM, and CRL bodies (DER from Intel, hex or
 * PEM text from some PCCS versions). This module turns those raw pieces into
 * a bundle, so the client (`client.ts`) and the offline CLI path (a user with
 * saved PCS files) assemble collateral with the same code, and back again for
 * the fake PCS in tests.
 *
 * The one rule that matters: the signed members are copied out of the raw
 * body text byte for byte. `JSON.stringify(JSON.parse(body).tcbInfo)` would
 * reorder nothing but can still change bytes (number forms, `\u` escapes,
 * `/` escapes, whitespace), and a single changed byte breaks the signature.
 * See Intel PCS API v4, "Get TCB Info" / "Get Quoting Enclave Identity"
 * (https://api.portal.trustedservices.intel.com/content/documentation.html).
 */
import { CollateralError } from '../errors.ts'
import { pemToDer } from '../asn1/pem.ts'
import { parseCrl } from '../pki/crl.ts'
import type { QuoteCollateralV3 } from './types.ts'

/** Body member Intel signs in a TCB info response (PCS v4 "Get TCB Info"). */
export const TCB_INFO_MEMBER = 'tcbInfo'
/** Body member Intel signs in a QE identity response (PCS v4 "Get Quoting Enclave Identity"). */
export const QE_IDENTITY_MEMBER = 'enclaveIdentity'
/**
 * ECDSA P-256 `r || s` as hex: 2 × 32 bytes (PCS v4 response schema,
 * `signature`: "Hex-encoded string representation of a signature").
 */
const SIGNATURE_HEX = /^[0-9a-fA-F]{128}$/
const HEX = /^(?:[0-9a-fA-F]{2})+$/
/** RFC 7468 §5.1 label of a PEM-encoded CRL. */
const PEM_CRL_LABEL = 'X509 CRL'
/** DER SEQUENCE identifier octet: the first byte of every DER CRL (X.690 §8.9). */
const DER_SEQUENCE = 0x30

/**
 * Raw PCS v4 pieces of one bundle, as a client receives them or a user saved
 * them. Bodies may be bytes (as read from a socket or file) or text; issuer
 * chains may be the header value as sent (URL-encoded PEM) or decoded PEM.
 */
export interface PcsResponses {
  /** Body of `GET /{tdx|sgx}/certification/v4/tcb?fmspc=…`. */
  tcbInfoBody: string | Uint8Array
  /** `TCB-Info-Issuer-Chain` header (URL-encoded PEM, or PEM). */
  tcbInfoIssuerChain: string
  /** Body of `GET /{tdx|sgx}/certification/v4/qe/identity`. */
  qeIdentityBody: string | Uint8Array
  /** `SGX-Enclave-Identity-Issuer-Chain` header (URL-encoded PEM, or PEM). */
  qeIdentityIssuerChain: string
  /** Body of `GET /sgx/certification/v4/pckcrl?ca=…`: DER bytes, hex text or PEM text. */
  pckCrl: string | Uint8Array
  /** `SGX-PCK-CRL-Issuer-Chain` header (URL-encoded PEM, or PEM). */
  pckCrlIssuerChain: string
  /** Intel SGX Root CA CRL: DER bytes, hex text or PEM text. */
  rootCaCrl: string | Uint8Array
}

/** A signed JSON response split into the exact signed text and its signature. */
export interface SignedJsonResponse {
  /** The member's value exactly as it appears in the body: the signed bytes. */
  readonly json: string
  /** Hex `r || s`, as the body carries it. */
  readonly signature: string
}

/** Extra facts (URL, status) the caller wants on any error thrown here. */
export type ErrorContext = Record<string, unknown>

function invalid(field: string, what: string, context: ErrorContext = {}, cause?: unknown): never {
  throw new CollateralError('ATTESTATION_PCS_RESPONSE_INVALID', `${field}: ${what}`, {
    cause,
    details: { ...context, field },
  })
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Body bytes to text; PCS JSON is UTF-8 (RFC 8259 §8.1), anything else is not collateral. */
function bodyText(body: string | Uint8Array, field: string, context?: ErrorContext): string {
  if (typeof body === 'string') return body
  try {
    return utf8.decode(body)
  } catch (e) {
    return invalid(field, 'body is not UTF-8', context, e)
  }
}

function isWhitespace(c: number): boolean {
  // RFC 8259 §2: the only insignificant whitespace in JSON.
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d
}

/** Index just past the JSON string starting at `i` (which holds the opening quote). */
function skipString(text: string, i: number): number {
  let p = i + 1
  while (p < text.length) {
    const c = text.charCodeAt(p)
    if (c === 0x5c /* \ */) p += 2
    else if (c === 0x22 /* " */) return p + 1
    else p++
  }
  return -1
}

/** Index just past the JSON value starting at `i`, or -1 if the text ends first. */
function skipValue(text: string, i: number): number {
  const c = text.charCodeAt(i)
  if (c === 0x22) return skipString(text, i)
  if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
    let depth = 0
    let p = i
    while (p < text.length) {
      const d = text.charCodeAt(p)
      if (d === 0x22) {
        p = skipString(text, p)
        if (p === -1) return -1
        continue
      }
      if (d === 0x7b || d === 0x5b) depth++
      else if (d === 0x7d /* } */ || d === 0x5d /* ] */) {
        depth--
        if (depth === 0) return p + 1
      }
      p++
    }
    return -1
  }
  // A literal or number runs to the next structural character or whitespace.
  let p = i
  while (p < text.length) {
    const d = text.charCodeAt(p)
    if (d === 0x2c || d === 0x7d || d === 0x5d || isWhitespace(d)) break
    p++
  }
  return p
}

/**
 * The exact source text of top-level member `name` of the JSON object in
 * `text`, or `undefined` if there is none. `text` must already be known to be
 * valid JSON (`JSON.parse` it first): this scanner relies on that and only
 * tracks strings, escapes and nesting depth. Keys are compared after
 * unescaping, as `JSON.parse` would; a duplicated member is ambiguous (parsers
 * disagree on which one wins) and is rejected.
 */
export function rawJsonMember(text: string, name: string, field = 'body', context?: ErrorContext): string | undefined {
  let p = 0
  const ws = (): void => {
    while (p < text.length && isWhitespace(text.charCodeAt(p))) p++
  }
  ws()
  if (text.charCodeAt(p) !== 0x7b) return invalid(field, 'body is not a JSON object', context)
  p++
  let found: string | undefined
  for (;;) {
    ws()
    if (text.charCodeAt(p) === 0x7d) break
    if (text.charCodeAt(p) !== 0x22) return invalid(field, 'expected a member name', context)
    const keyEnd = skipString(text, p)
    if (keyEnd === -1) return invalid(field, 'unterminated member name', context)
    const key = JSON.parse(text.slice(p, keyEnd)) as string
    p = keyEnd
    ws()
    if (text.charCodeAt(p) !== 0x3a /* : */) return invalid(field, 'expected ":"', context)
    p++
    ws()
    const start = p
    const end = skipValue(text, p)
    if (end === -1 || end === start) return invalid(field, 'unterminated member value', context)
    if (key === name) {
      if (found !== undefined) return invalid(field, `duplicate "${name}" member`, context)
      found = text.slice(start, end)
    }
    p = end
    ws()
    const sep = text.charCodeAt(p)
    if (sep === 0x2c /* , */) {
      p++
      continue
    }
    if (sep === 0x7d) break
    return invalid(field, 'expected "," or "}"', context)
  }
  return found
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Split a PCS v4 signed JSON body (`{"<member>":{…},"signature":"<hex>"}`)
 * into the exact text of `member` and the signature. The whole body must be
 * JSON, the member an object, the signature 128 hex digits.
 */
export function parseSignedJsonResponse(
  body: string | Uint8Array,
  member: string,
  field: string,
  context?: ErrorContext,
): SignedJsonResponse {
  const text = bodyText(body, field, context)
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (e) {
    return invalid(field, 'body is not JSON', context, e)
  }
  if (!isPlainObject(parsed)) return invalid(field, 'body is not a JSON object', context)
  if (!isPlainObject(parsed[member])) return invalid(field, `"${member}" is missing or not an object`, context)
  const signature = parsed['signature']
  if (typeof signature !== 'string' || !SIGNATURE_HEX.test(signature)) {
    return invalid(field, '"signature" is not 64 bytes of hex', context)
  }
  const json = rawJsonMember(text, member, field, context)
  // JSON.parse succeeded and found the member, so the scanner must too; this
  // guards the scanner itself, never a response.
  if (json === undefined) return invalid(field, `"${member}" not found in the raw body`, context)
  return { json, signature }
}

/** Split a TCB info response body (PCS v4 "Get TCB Info"). */
export function parseTcbInfoResponse(body: string | Uint8Array, context?: ErrorContext): SignedJsonResponse {
  return parseSignedJsonResponse(body, TCB_INFO_MEMBER, 'tcbInfoBody', context)
}

/** Split a QE identity response body (PCS v4 "Get Quoting Enclave Identity"). */
export function parseQeIdentityResponse(body: string | Uint8Array, context?: ErrorContext): SignedJsonResponse {
  return parseSignedJsonResponse(body, QE_IDENTITY_MEMBER, 'qeIdentityBody', context)
}

/**
 * An `*-Issuer-Chain` header value to PEM text. PCS v4 sends the PEM chain
 * URL-encoded (RFC 3986 percent-encoding); saved files often hold it decoded
 * already. PEM never contains `%`, so its presence tells the two apart. The
 * decoded text is returned unchanged (it is what the bundle stores) after
 * checking it is a sequence of certificates.
 */
export function decodeIssuerChain(value: string | undefined | null, field: string, context?: ErrorContext): string {
  if (value === undefined || value === null || value.length === 0) return invalid(field, 'issuer chain is missing', context)
  let pem = value
  if (value.includes('%')) {
    try {
      pem = decodeURIComponent(value)
    } catch (e) {
      return invalid(field, 'issuer chain is not valid percent-encoding', context, e)
    }
  }
  try {
    pemToDer(pem, 'CERTIFICATE')
  } catch (e) {
    return invalid(field, 'issuer chain is not a PEM certificate chain', context, e)
  }
  return pem
}

/**
 * A CRL body in any form PCS or PCCS serves it (DER bytes, hex text, PEM
 * text) to lower-case hex of the DER, the bundle's form. The DER must parse
 * as a CRL (RFC 5280 §5.1, structure only: the verifier checks signatures).
 */
export function decodeCrl(body: string | Uint8Array, field: string, context?: ErrorContext): string {
  let der: Uint8Array
  if (typeof body !== 'string' && body[0] === DER_SEQUENCE) {
    der = body
  } else {
    const text = bodyText(body, field, context).trim()
    if (text.startsWith('-----BEGIN')) {
      let blocks: Uint8Array[]
      try {
        blocks = pemToDer(text, PEM_CRL_LABEL)
      } catch (e) {
        return invalid(field, 'PEM CRL is malformed', context, e)
      }
      if (blocks.length !== 1) return invalid(field, 'expected exactly one PEM CRL', context)
      der = blocks[0]!
    } else if (HEX.test(text)) {
      der = new Uint8Array(Buffer.from(text, 'hex'))
    } else {
      return invalid(field, 'CRL is neither DER, hex nor PEM', context)
    }
  }
  try {
    parseCrl(der)
  } catch (e) {
    return invalid(field, 'CRL does not parse', context, e)
  }
  return Buffer.from(der).toString('hex')
}

/**
 * Assemble a bundle from raw PCS v4 pieces. Every piece is checked for form
 * (JSON, hex, PEM, DER structure); none is checked for authenticity.
 * Throws `CollateralError` (ATTESTATION_PCS_RESPONSE_INVALID) naming the
 * offending piece in `details.field`.
 */
export function collateralFromPcsResponses(responses: PcsResponses, context?: ErrorContext): QuoteCollateralV3 {
  const tcb = parseTcbInfoResponse(responses.tcbInfoBody, context)
  const qe = parseQeIdentityResponse(responses.qeIdentityBody, context)
  // Member order follows the vectors' collateral.json (dcap-qvl's field order).
  return {
    pck_crl_issuer_chain: decodeIssuerChain(responses.pckCrlIssuerChain, 'pckCrlIssuerChain', context),
    root_ca_crl: decodeCrl(responses.rootCaCrl, 'rootCaCrl', context),
    pck_crl: decodeCrl(responses.pckCrl, 'pckCrl', context),
    tcb_info_issuer_chain: decodeIssuerChain(responses.tcbInfoIssuerChain, 'tcbInfoIssuerChain', context),
    tcb_info: tcb.json,
    tcb_info_signature: tcb.signature,
    qe_identity_issuer_chain: decodeIssuerChain(responses.qeIdentityIssuerChain, 'qeIdentityIssuerChain', context),
    qe_identity: qe.json,
    qe_identity_signature: qe.signature,
  }
}

/**
 * The raw PCS v4 pieces of a bundle, as Intel would send them: signed members
 * embedded verbatim in `{"<member>":…,"signature":"…"}` bodies, chains
 * URL-encoded as header values, CRLs as DER. The inverse of
 * `collateralFromPcsResponses` (for the fake PCS and round-trip tests).
 */
export function pcsResponsesFromCollateral(bundle: QuoteCollateralV3): {
  tcbInfoBody: string
  tcbInfoIssuerChain: string
  qeIdentityBody: string
  qeIdentityIssuerChain: string
  pckCrl: Uint8Array
  pckCrlIssuerChain: string
  rootCaCrl: Uint8Array
} {
  return {
    tcbInfoBody: `{"${TCB_INFO_MEMBER}":${bundle.tcb_info},"signature":"${bundle.tcb_info_signature}"}`,
    tcbInfoIssuerChain: encodeURIComponent(bundle.tcb_info_issuer_chain),
    qeIdentityBody: `{"${QE_IDENTITY_MEMBER}":${bundle.qe_identity},"signature":"${bundle.qe_identity_signature}"}`,
    qeIdentityIssuerChain: encodeURIComponent(bundle.qe_identity_issuer_chain),
    pckCrl: new Uint8Array(Buffer.from(bundle.pck_crl, 'hex')),
    pckCrlIssuerChain: encodeURIComponent(bundle.pck_crl_issuer_chain),
    rootCaCrl: new Uint8Array(Buffer.from(bundle.root_ca_crl, 'hex')),
  }
}
