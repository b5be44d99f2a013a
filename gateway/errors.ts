/**
 * The gateway's error registry (the fastify `lib/errors.js` idea): every
 * code the gateway itself answers with, its HTTP status and a fixed message,
 * plus the one function that turns any thrown value — our errors, the
 * enclave's, fastify's own — into an RFC 9457 problem document.
 *
 * Problem documents and log lines are built from the registry only: a
 * message never carries request data, so an error can be logged and sent
 * without a redaction step that could be forgotten.
 */
import { STATUS_CODES } from 'node:http'
import { BaseError, type BaseErrorOptions } from '../attestation/errors.ts'
import { ENCLAVE_ERROR_CODES, isEnclaveError, type EnclaveErrorCode } from '../enclave/errors.ts'

/** One registry entry: the HTTP status the gateway answers with and a fixed, content-free message. */
export interface GatewayErrorInfo {
  readonly status: number
  readonly message: string
}

export const GATEWAY_ERROR_CODES = {
  GATEWAY_BAD_REQUEST: { status: 400, message: 'the request does not match the route schema' },
  GATEWAY_BAD_NONCE: { status: 400, message: 'nonce must be 32 bytes written as 64 hexadecimal characters' },
  GATEWAY_NOT_FOUND: { status: 404, message: 'no such route' },
  GATEWAY_BODY_TOO_LARGE: { status: 413, message: 'the request body exceeds the configured limit' },
  GATEWAY_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    message: 'encapsulated requests must be message/ohttp-req or message/ohttp-chunked-req',
  },
  GATEWAY_RATE_LIMITED: { status: 429, message: 'too many requests from this client; retry after the Retry-After delay' },
  /**
   * nginx's "client closed request": never sent (the client is gone), but
   * recorded so that a cut stream is visible in metrics and logs.
   */
  GATEWAY_CLIENT_CLOSED: { status: 499, message: 'the client closed the connection before the response was complete' },
  GATEWAY_INTERNAL: { status: 500, message: 'internal gateway error' },
  GATEWAY_UPSTREAM_UNAVAILABLE: { status: 502, message: 'the enclave could not produce the answer (engine list or evidence unavailable)' },
  GATEWAY_NOT_READY: { status: 503, message: 'the gateway is not ready: no evidence yet, or on-chain registration pending' },
  GATEWAY_TOO_MANY_STREAMS: { status: 503, message: 'the gateway is serving its maximum number of concurrent streams' },
  GATEWAY_SHUTTING_DOWN: { status: 503, message: 'the gateway is shutting down' },
  GATEWAY_UPSTREAM_TIMEOUT: { status: 504, message: 'the enclave did not answer within the configured timeout' },
} as const satisfies Record<string, GatewayErrorInfo>

export type GatewayErrorCode = keyof typeof GATEWAY_ERROR_CODES

export interface GatewayErrorOptions extends BaseErrorOptions {
  /** Response headers the error implies (e.g. `Retry-After`); values must hold no request data. */
  headers?: Record<string, string>
  /** RFC 9457 §3.2 extension members added to the problem document; fixed values only, never request data. */
  extensions?: Record<string, unknown>
}

/** An error the gateway answers with: a registered code, its status, optional headers. */
export class GatewayError extends BaseError<GatewayErrorCode> {
  override name = 'GatewayError'
  readonly headers: Readonly<Record<string, string>>
  readonly extensions: Readonly<Record<string, unknown>>

  constructor(code: GatewayErrorCode, options: GatewayErrorOptions = {}) {
    super(code, GATEWAY_ERROR_CODES[code].message, options)
    this.headers = options.headers ?? {}
    this.extensions = options.extensions ?? {}
  }

  get status(): number {
    return GATEWAY_ERROR_CODES[this.code].status
  }
}

export function isGatewayError(e: unknown): e is GatewayError {
  return e instanceof GatewayError && Object.hasOwn(GATEWAY_ERROR_CODES, e.code)
}

/** A config file or environment that does not describe a valid gateway (exit code 1, never an HTTP answer). */
export class GatewayConfigError extends BaseError<'GATEWAY_CONFIG_INVALID'> {
  override name = 'GatewayConfigError'
  constructor(shortMessage: string, options: BaseErrorOptions = {}) {
    super('GATEWAY_CONFIG_INVALID', shortMessage, options)
  }
}

/** The outer HTTP status the gateway answers an `EnclaveError` code with (enclave/errors.ts owns the numbers). */
export function enclaveErrorStatus(code: EnclaveErrorCode): number {
  return ENCLAVE_ERROR_CODES[code].status
}

/**
 * RFC 9458 §5.3 ("Signaling Key Configuration Problems"): a gateway that
 * cannot use the client's key configuration answers with this problem type,
 * telling the client to fetch the key configuration again. (§5.2 of the RFC
 * is about errors inside the encapsulation, not this signal.)
 */
export const OHTTP_KEY_PROBLEM_TYPE = 'https://iana.org/assignments/http-problem-types#ohttp-key'

/**
 * The enclave codes that mean "your key configuration is not (or no
 * longer) usable": unknown key id, an epoch whose key is destroyed, or a
 * suite the configuration never offered. A failed decryption is not one of
 * them: it does not tell the key configuration apart from tampering.
 */
export const OHTTP_KEY_PROBLEM_CODES: ReadonlySet<EnclaveErrorCode> = new Set([
  'ENCLAVE_OHTTP_KEY_UNKNOWN',
  'ENCLAVE_OHTTP_EPOCH_EXPIRED',
  'ENCLAVE_OHTTP_UNSUPPORTED_SUITE',
])

/** RFC 9457 §3: the problem media type. */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json'

/** An RFC 9457 problem document with our `code` extension member. */
export interface Problem {
  readonly [extension: string]: unknown
  /** RFC 9457 §3.1.1: `about:blank` unless a registered problem type applies. */
  readonly type: string
  readonly title: string
  readonly status: number
  /** Stable code (GATEWAY_*, ENCLAVE_*): what clients branch on. */
  readonly code: string
  readonly detail: string
}

/** What the error handler sends for a thrown value. */
export interface ProblemResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly problem: Problem
}

/** fastify's own error codes (lib/errors.js) that are the client's fault, by the gateway code they become. */
const FASTIFY_CODES: Readonly<Record<string, GatewayErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'GATEWAY_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'GATEWAY_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'GATEWAY_BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'GATEWAY_BAD_REQUEST',
  FST_ERR_VALIDATION: 'GATEWAY_BAD_REQUEST',
  FST_ERR_BAD_URL: 'GATEWAY_BAD_REQUEST',
  FST_ERR_NOT_FOUND: 'GATEWAY_NOT_FOUND',
  FST_ERR_HANDLER_TIMEOUT: 'GATEWAY_UPSTREAM_TIMEOUT',
}

/** The stable code a thrown value is reported under (metrics, logs, problem documents). */
export function errorCodeOf(e: unknown): GatewayErrorCode | EnclaveErrorCode {
  if (isGatewayError(e)) return e.code
  if (isEnclaveError(e)) return e.code
  const code = (e as { code?: unknown } | null)?.code
  if (typeof code === 'string' && Object.hasOwn(FASTIFY_CODES, code)) return FASTIFY_CODES[code]!
  const status = (e as { statusCode?: unknown } | null)?.statusCode
  // Any other fastify client error (a malformed header, a bad content-length):
  // the client's fault, never worth a 500.
  if (typeof code === 'string' && code.startsWith('FST_') && typeof status === 'number' && status >= 400 && status < 500) {
    return 'GATEWAY_BAD_REQUEST'
  }
  return 'GATEWAY_INTERNAL'
}

/**
 * The RFC 9457 problem response for any thrown value. Unknown errors become
 * GATEWAY_INTERNAL with the fixed message: their text could hold anything.
 */
export function problemFor(e: unknown): ProblemResponse {
  const code = errorCodeOf(e)
  if (Object.hasOwn(ENCLAVE_ERROR_CODES, code)) {
    const enclaveCode = code as EnclaveErrorCode
    const status = enclaveErrorStatus(enclaveCode)
    const keyProblem = OHTTP_KEY_PROBLEM_CODES.has(enclaveCode)
    return {
      status,
      headers: {},
      problem: {
        type: keyProblem ? OHTTP_KEY_PROBLEM_TYPE : 'about:blank',
        title: keyProblem ? 'key configuration not acceptable' : (STATUS_CODES[status] ?? 'Error'),
        status,
        code,
        detail: ENCLAVE_ERROR_CODES[enclaveCode].description,
      },
    }
  }
  const info = GATEWAY_ERROR_CODES[code as GatewayErrorCode]
  return {
    status: info.status,
    headers: isGatewayError(e) ? e.headers : {},
    problem: {
      // Extensions first: they can add members, never replace the standard ones.
      ...(isGatewayError(e) ? e.extensions : {}),
      type: 'about:blank',
      title: STATUS_CODES[info.status] ?? 'Error',
      status: info.status,
      code,
      detail: info.message,
    },
  }
}

/** The JSON schema of a problem document, for route response schemas. */
export const PROBLEM_SCHEMA = {
  type: 'object',
  additionalProperties: true,
  required: ['type', 'title', 'status', 'code'],
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    code: { type: 'string' },
    detail: { type: 'string' },
  },
} as const
