/**
 * Errors of the attestation library: data, not prose.
 *
 * Every error carries a stable string `code` that callers branch on and tests
 * assert; the message is for people and may change. The codes fall into
 * families that answer different questions (the sigstore split):
 *
 * - `parse`:        the bytes are not a well-formed structure of the expected kind.
 * - `verification`: the evidence is not genuine (a signature, chain, CRL or
 *                   collateral check failed, or a step could not run at all).
 * - `policy`:       the evidence is genuine but not acceptable to this caller.
 * - `config`:       the caller's own options or policy file are invalid.
 * - `collateral`:   collateral could not be obtained (network, cache).
 *
 * There is no "warning" family: a step that cannot run is a verification
 * failure (fail closed). Messages never contain evidence payloads beyond
 * identifiers (FMSPC, serial numbers), so they are safe to log.
 */

/** One entry of the code registry: which family, and what it means. */
export interface ErrorCodeInfo {
  readonly family: ErrorFamily
  readonly description: string
}

export type ErrorFamily = 'parse' | 'verification' | 'policy' | 'config' | 'collateral'

/**
 * The registry of every attestation error code (the fastify `lib/errors.js`
 * idea): one place to read what can go wrong, and a test checks that every
 * thrown code is registered here.
 */
export const ERROR_CODES = {
  // --- parse: bytes that are not what they claim to be -------------------
  ATTESTATION_QUOTE_TRUNCATED: { family: 'parse', description: 'the quote ends before a structure it declares' },
  ATTESTATION_QUOTE_UNSUPPORTED_VERSION: { family: 'parse', description: 'quote version is not 3, 4 or 5' },
  ATTESTATION_QUOTE_UNSUPPORTED_TEE: { family: 'parse', description: 'TEE type is neither SGX (0x0) nor TDX (0x81), or does not fit the version' },
  ATTESTATION_QUOTE_UNSUPPORTED_KEY_TYPE: { family: 'parse', description: 'attestation key type is not ECDSA-256-with-P-256' },
  ATTESTATION_QUOTE_UNSUPPORTED_BODY: { family: 'parse', description: 'v5 body type/size is not a TD report 1.0 or 1.5' },
  ATTESTATION_QUOTE_MALFORMED: { family: 'parse', description: 'a length or type field is inconsistent with the data' },
  ATTESTATION_CERT_DATA_UNSUPPORTED: { family: 'parse', description: 'certification data type is not 5 (PCK chain) or 6 (QE report)' },
  ATTESTATION_PEM_INVALID: { family: 'parse', description: 'PEM text is not a sequence of certificates' },
  ATTESTATION_DER_INVALID: { family: 'parse', description: 'DER encoding is malformed' },
  ATTESTATION_CERT_INVALID: { family: 'parse', description: 'an X.509 certificate could not be parsed' },
  ATTESTATION_CRL_MALFORMED: { family: 'parse', description: 'a CRL could not be parsed' },
  ATTESTATION_SGX_EXTENSION_INVALID: { family: 'parse', description: 'the PCK certificate SGX extension is missing or malformed' },
  ATTESTATION_COLLATERAL_MALFORMED: { family: 'parse', description: 'collateral JSON or its fields are malformed' },
  ATTESTATION_EVENTLOG_MALFORMED: { family: 'parse', description: 'CCEL table or TCG event log is malformed' },
  ATTESTATION_GPU_REPORT_MALFORMED: { family: 'parse', description: 'the SPDM GET_MEASUREMENTS request/response of a GPU is malformed' },
  ATTESTATION_GPU_EVIDENCE_MALFORMED: { family: 'parse', description: 'GPU evidence (JSON list, certificate chain encoding) is malformed' },
  ATTESTATION_RIM_MALFORMED: { family: 'parse', description: 'a reference integrity manifest (SWID XML) is malformed or incomplete' },
  ATTESTATION_OCSP_MALFORMED: { family: 'parse', description: 'an OCSP response could not be parsed' },

  // --- verification: the evidence is not genuine -------------------------
  ATTESTATION_ROOT_CA_UNTRUSTED: { family: 'verification', description: 'a chain does not end at the pinned trust root' },
  ATTESTATION_CERT_CHAIN_INVALID: { family: 'verification', description: 'a certificate is not signed by its issuer, or is not a CA where it must be' },
  ATTESTATION_CERT_EXPIRED: { family: 'verification', description: 'a certificate is outside its validity period at the given instant' },
  ATTESTATION_CERT_REVOKED: { family: 'verification', description: 'a certificate in a chain is listed on its issuer CRL' },
  ATTESTATION_CRL_SIGNATURE_INVALID: { family: 'verification', description: 'a CRL is not signed by the expected issuer' },
  ATTESTATION_CRL_MISSING: { family: 'verification', description: 'no CRL from the issuer of a certificate in the chain was given' },
  ATTESTATION_COLLATERAL_EXPIRED: { family: 'verification', description: 'a collateral item (TCB info, QE identity, CRL) is not valid at the given instant' },
  ATTESTATION_QUOTE_SIGNATURE_INVALID: { family: 'verification', description: 'the attestation key signature over header and body does not verify' },
  ATTESTATION_QE_REPORT_SIGNATURE_INVALID: { family: 'verification', description: 'the QE report is not signed by the PCK leaf key' },
  ATTESTATION_QE_REPORT_DATA_MISMATCH: { family: 'verification', description: 'QE REPORTDATA is not SHA-256(attestation key || QE auth data) with a zero upper half' },
  ATTESTATION_TCB_INFO_SIGNATURE_INVALID: { family: 'verification', description: 'TCB info is not signed by the TCB signing chain' },
  ATTESTATION_TCB_INFO_MISMATCH: { family: 'verification', description: 'TCB info is for another FMSPC, PCEID, TEE type or version' },
  ATTESTATION_QE_IDENTITY_SIGNATURE_INVALID: { family: 'verification', description: 'QE identity is not signed by the TCB signing chain' },
  ATTESTATION_QE_IDENTITY_MISMATCH: { family: 'verification', description: 'the QE report does not match the QE identity (MRSIGNER, ISVPRODID, attributes, MISCSELECT, id)' },
  ATTESTATION_TCB_LEVEL_NOT_FOUND: { family: 'verification', description: 'no TCB level of the platform, TDX module or QE is met' },
  ATTESTATION_TDX_MODULE_MISMATCH: { family: 'verification', description: 'MRSIGNERSEAM or SEAM attributes do not match the TDX module identity' },
  ATTESTATION_TCB_REVOKED: { family: 'verification', description: 'the combined TCB status is Revoked' },
  ATTESTATION_QE_VENDOR_UNKNOWN: { family: 'verification', description: 'QE vendor id is not Intel' },
  ATTESTATION_GPU_SIGNATURE_INVALID: { family: 'verification', description: 'the GPU measurement report signature does not verify under the device leaf key' },
  ATTESTATION_GPU_NONCE_MISMATCH: { family: 'verification', description: 'the GPU report answers another nonce' },
  ATTESTATION_GPU_FWID_MISMATCH: { family: 'verification', description: 'the device certificate FWID does not match the report FWID' },
  ATTESTATION_GPU_MEASUREMENT_MISMATCH: { family: 'verification', description: 'a GPU measurement does not match its golden value in the RIMs' },
  ATTESTATION_RIM_SIGNATURE_INVALID: { family: 'verification', description: 'a RIM XML signature does not verify, or covers other content than the measurements used' },
  ATTESTATION_RIM_MISMATCH: { family: 'verification', description: 'a RIM does not belong to this GPU (version, chip) or two RIMs claim one index' },
  ATTESTATION_OCSP_INVALID: { family: 'verification', description: 'an OCSP response is not signed by an authorised responder, is stale, or is for another certificate' },
  ATTESTATION_OCSP_MISSING: { family: 'verification', description: 'no OCSP response was given for a certificate whose status is required' },
  ATTESTATION_BINDING_MISMATCH: { family: 'verification', description: 'REPORTDATA does not bind the presented key config, signing address, GPU evidence and freshness value' },
  ATTESTATION_RTMR_MISMATCH: { family: 'verification', description: 'replaying the event log does not reproduce the quote RTMRs' },

  // --- policy: genuine, but not acceptable to this caller ----------------
  ATTESTATION_POLICY_REJECTED: { family: 'policy', description: 'the evidence is genuine but one or more policy checks failed (see mismatches)' },

  // --- config: the caller's own inputs -----------------------------------
  ATTESTATION_POLICY_INVALID: { family: 'config', description: 'the policy document is invalid' },
  ATTESTATION_OPTIONS_INVALID: { family: 'config', description: 'an option passed to a function is invalid' },

  // --- collateral: could not obtain collateral ---------------------------
  ATTESTATION_PCS_UNAVAILABLE: { family: 'collateral', description: 'the PCS/PCCS could not be reached or answered with an error' },
  ATTESTATION_PCS_RESPONSE_INVALID: { family: 'collateral', description: 'the PCS/PCCS answered with a response that is not collateral' },
} as const satisfies Record<string, ErrorCodeInfo>

export type ErrorCode = keyof typeof ERROR_CODES
type CodeOf<F extends ErrorFamily> = {
  [K in ErrorCode]: (typeof ERROR_CODES)[K]['family'] extends F ? K : never
}[ErrorCode]
export type ParseErrorCode = CodeOf<'parse'>
export type VerificationErrorCode = CodeOf<'verification'>
export type ConfigErrorCode = CodeOf<'config'>
export type CollateralErrorCode = CodeOf<'collateral'>

export interface BaseErrorOptions {
  /** The underlying error, kept for debugging; never shown by default. */
  cause?: unknown
  /** Structured facts about the failure (identifiers, offsets, expected/actual). */
  details?: Record<string, unknown>
  /** Extra lines for a human-readable rendering. */
  metaMessages?: string[]
}

/**
 * The root of every error this project throws (viem's `BaseError` shape):
 * a short message, a stable code, structured details and an optional cause.
 */
export class BaseError<C extends string = string> extends Error {
  override name = 'BaseError'
  readonly code: C
  readonly shortMessage: string
  readonly details: Record<string, unknown>
  readonly metaMessages: readonly string[]

  constructor(code: C, shortMessage: string, options: BaseErrorOptions = {}) {
    super(`${code}: ${shortMessage}`, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.shortMessage = shortMessage
    this.details = options.details ?? {}
    this.metaMessages = options.metaMessages ?? []
  }

  /** A JSON-safe view for reports and logs (no cause, no stack). */
  toJSON(): { code: C; message: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.shortMessage, details: this.details }
  }
}

/** Malformed bytes. Parsers throw only this. */
export class ParseError extends BaseError<ParseErrorCode> {
  override name = 'ParseError'
}

/** The evidence is not genuine, or a verification step could not run. */
export class VerificationError extends BaseError<VerificationErrorCode> {
  override name = 'VerificationError'
}

/** The caller's options or policy document are invalid. */
export class ConfigError extends BaseError<ConfigErrorCode> {
  override name = 'ConfigError'
}

/** Collateral could not be obtained. */
export class CollateralError extends BaseError<CollateralErrorCode> {
  override name = 'CollateralError'
}

/** One failed policy check; a `PolicyError` carries all of them at once. */
export interface PolicyMismatch {
  /** Stable code of the check, e.g. `POLICY_TCB_STATUS_NOT_ALLOWED`. */
  readonly code: string
  /** The policy field that rejected the evidence, e.g. `tdx.mrTd`. */
  readonly field: string
  readonly expected: unknown
  readonly actual: unknown
}

/** The evidence is genuine but not acceptable: every mismatch is listed. */
export class PolicyError extends BaseError<'ATTESTATION_POLICY_REJECTED'> {
  override name = 'PolicyError'
  readonly mismatches: readonly PolicyMismatch[]

  constructor(mismatches: readonly PolicyMismatch[], options: BaseErrorOptions = {}) {
    super('ATTESTATION_POLICY_REJECTED', `policy rejected the evidence: ${mismatches.map((m) => m.code).join(', ')}`, {
      ...options,
      details: { ...options.details, mismatches },
    })
    this.mismatches = mismatches
  }
}

/** The family of a registered code (for exit codes and HTTP statuses). */
export function errorFamily(code: ErrorCode): ErrorFamily {
  return ERROR_CODES[code].family
}

/** True for errors thrown by this library (as opposed to bugs). */
export function isAttestationError(e: unknown): e is BaseError<ErrorCode> {
  return e instanceof BaseError && Object.hasOwn(ERROR_CODES, e.code)
}
