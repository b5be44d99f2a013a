/**
 * The enterprise proxy's error registry: every code the proxy answers an
 * internal caller with, its HTTP status, its OpenAI error `type` and a fixed
 * message, so that the official `openai` SDK surfaces it as an APIError
 * whose `code` is ours. Bodies are `{"error": {"message", "type", "code",
 * "param": null, "reason"?}}`, where `reason` is the underlying CLIENT_* (or
 * engine) code — e.g. why verification failed. Messages never carry request
 * data: nothing here quotes a prompt, a model name a caller made up, or a header.
 */
import { BaseError, type BaseErrorOptions } from '../../attestation/errors.ts'

export interface ProxyErrorInfo {
  readonly status: number
  /** OpenAI's error `type`. */
  readonly type: string
  readonly message: string
}

export const PROXY_ERROR_CODES = {
  PROXY_BAD_REQUEST: { status: 400, type: 'invalid_request_error', message: 'the request is not a JSON object naming a model' },
  PROXY_UNAUTHORIZED: { status: 401, type: 'authentication_error', message: 'a valid API key for this proxy is required' },
  PROXY_NOT_FOUND: { status: 404, type: 'invalid_request_error', message: 'no such route' },
  PROXY_BODY_TOO_LARGE: { status: 413, type: 'invalid_request_error', message: 'the request body exceeds the configured limit' },
  PROXY_UNSUPPORTED_MEDIA_TYPE: { status: 415, type: 'invalid_request_error', message: 'requests must be application/json' },
  PROXY_NO_PROVIDER: { status: 503, type: 'server_error', message: 'no provider is configured or registered for this model' },
  /** Discovery could not read the registry (outage, or an endpoint on another chain): not the same as "none registered". */
  PROXY_REGISTRY_UNAVAILABLE: {
    status: 503,
    type: 'server_error',
    message: 'the on-chain registry could not be read to find providers for this model (see reason)',
  },
  /** The audit trail cannot be written: every forwarded request is refused rather than served unrecorded. */
  PROXY_AUDIT_UNAVAILABLE: {
    status: 503,
    type: 'server_error',
    message: 'the proxy cannot write its audit file, so it refuses requests until an operator restores it (see reason)',
  },
  PROXY_VERIFICATION_FAILED: { status: 502, type: 'verification_error', message: 'no provider for this model could be verified (see reason)' },
  PROXY_UPSTREAM_RATE_LIMITED: { status: 429, type: 'rate_limit_error', message: 'every verified provider for this model is rate-limiting' },
  PROXY_UPSTREAM_FAILED: { status: 502, type: 'server_error', message: 'the verified providers failed to answer (see reason)' },
  PROXY_RESPONSE_REJECTED: {
    status: 502,
    type: 'verification_error',
    message: 'the provider’s answer failed its integrity or receipt checks and was discarded (see reason)',
  },
  PROXY_RESPONSE_TOO_LARGE: { status: 502, type: 'server_error', message: 'the answer exceeds the configured response size limit' },
  /** nginx's "client closed request": never sent (the caller is gone), recorded so a cut stream shows in the logs. */
  PROXY_CLIENT_CLOSED: { status: 499, type: 'server_error', message: 'the caller closed the connection before the answer was complete' },
  PROXY_INTERNAL: { status: 500, type: 'server_error', message: 'internal proxy error' },
} as const satisfies Record<string, ProxyErrorInfo>

export type ProxyErrorCode = keyof typeof PROXY_ERROR_CODES

export interface ProxyErrorOptions extends BaseErrorOptions {
  /** The underlying stable code (CLIENT_*, ENGINE_*, …). */
  readonly reason?: string
  /** Response headers the error implies (Retry-After); fixed values only. */
  readonly headers?: Record<string, string>
}

export class ProxyError extends BaseError<ProxyErrorCode> {
  override name = 'ProxyError'
  readonly reason: string | undefined
  readonly headers: Readonly<Record<string, string>>
  constructor(code: ProxyErrorCode, options: ProxyErrorOptions = {}) {
    super(code, PROXY_ERROR_CODES[code].message, { ...options, details: { ...options.details, ...(options.reason ? { reason: options.reason } : {}) } })
    this.reason = options.reason
    this.headers = options.headers ?? {}
  }
  get status(): number {
    return PROXY_ERROR_CODES[this.code].status
  }
}

export function isProxyError(e: unknown): e is ProxyError {
  return e instanceof ProxyError && Object.hasOwn(PROXY_ERROR_CODES, e.code)
}

/** The OpenAI-style body for a proxy error. */
export function openAiErrorBody(e: ProxyError): { error: { message: string; type: string; code: string; param: null; reason?: string } } {
  const info = PROXY_ERROR_CODES[e.code]
  return { error: { message: info.message, type: info.type, code: e.code, param: null, ...(e.reason ? { reason: e.reason } : {}) } }
}

/** fastify's client-error codes, by the proxy code they become. */
const FASTIFY_CODES: Readonly<Record<string, ProxyErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PROXY_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'PROXY_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'PROXY_BAD_REQUEST',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'PROXY_BAD_REQUEST',
  FST_ERR_VALIDATION: 'PROXY_BAD_REQUEST',
  FST_ERR_BAD_URL: 'PROXY_BAD_REQUEST',
  FST_ERR_NOT_FOUND: 'PROXY_NOT_FOUND',
}

/** Any thrown value as a ProxyError (unknown errors become PROXY_INTERNAL: their text could hold anything). */
export function toProxyError(e: unknown): ProxyError {
  if (isProxyError(e)) return e
  const code = (e as { code?: unknown } | null)?.code
  if (typeof code === 'string' && Object.hasOwn(FASTIFY_CODES, code)) return new ProxyError(FASTIFY_CODES[code]!)
  const status = (e as { statusCode?: unknown } | null)?.statusCode
  if (typeof code === 'string' && code.startsWith('FST_') && typeof status === 'number' && status >= 400 && status < 500) return new ProxyError('PROXY_BAD_REQUEST')
  return new ProxyError('PROXY_INTERNAL', { cause: e })
}
