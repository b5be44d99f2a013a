/**
 * Errors of the inference engines: one registry of stable codes, each with
 * the INNER HTTP status the client sees (inside the OHTTP encryption) and an
 * OpenAI-style error `type`.
 *
 * The codes answer different questions and are never collapsed: a client
 * retries ENGINE_RATE_LIMITED after `Retry-After`, fails over on
 * ENGINE_UNAVAILABLE, fixes its request on ENGINE_BAD_REQUEST, and reports a
 * provider bug on ENGINE_BAD_RESPONSE. The gateway logs these errors, and an
 * upstream error body may echo the prompt, so messages and details carry
 * only upstream statuses, byte counts, event counts, timeouts and the
 * upstream's own `error.type` / `error.code` tokens — never `error.message`,
 * never prompt or completion text, and no `cause` (undici parser errors can
 * hold raw response bytes).
 */
import { BaseError, type BaseErrorOptions } from '../../attestation/errors.ts'

/** One entry of the registry. */
export interface EngineErrorCodeInfo {
  /** Inner HTTP status answered to the client (an instance may carry another, see `EngineError.status`). */
  readonly status: number
  /** OpenAI-style `error.type` of the inner error body. */
  readonly type: string
  readonly description: string
}

/**
 * Every engine error code. `status` 499 is nginx's "client closed request":
 * nobody reads it, but metrics keep it apart from server-side failures.
 */
export const ENGINE_ERROR_CODES = {
  ENGINE_UNAVAILABLE: {
    status: 503,
    type: 'service_unavailable_error',
    description: 'the engine refused or reset the connection before answering, or answered 502/503',
  },
  ENGINE_TIMEOUT: {
    status: 504,
    type: 'timeout_error',
    description: 'no response headers within headersTimeoutMs, or no body bytes within bodyTimeoutMs',
  },
  ENGINE_RATE_LIMITED: {
    status: 429,
    type: 'rate_limit_error',
    description: 'the engine answered 429; its Retry-After is kept',
  },
  ENGINE_BAD_REQUEST: {
    status: 400,
    type: 'invalid_request_error',
    description: 'the request was refused (unsupported path, body not JSON) or the engine answered a 4xx other than 404/429 (its status is passed through)',
  },
  ENGINE_MODEL_NOT_FOUND: {
    status: 404,
    type: 'invalid_request_error',
    description: 'the engine does not serve the requested model (it answered 404, or code model_not_found)',
  },
  ENGINE_UPSTREAM_ERROR: {
    status: 502,
    type: 'server_error',
    description: 'the engine answered a 5xx other than 502/503',
  },
  ENGINE_BAD_RESPONSE: {
    status: 502,
    type: 'server_error',
    description: 'the engine answered something that is not what it promised: not JSON, malformed SSE, wrong content type, too large, truncated',
  },
  ENGINE_STREAM_INTERRUPTED: {
    status: 502,
    type: 'server_error',
    description: 'the engine ended or dropped a stream before data: [DONE]',
  },
  ENGINE_CANCELLED: {
    status: 499,
    type: 'cancelled',
    description: 'the client went away; the upstream request was cancelled',
  },
  ENGINE_OPTIONS_INVALID: {
    status: 500,
    type: 'server_error',
    description: 'the engine was configured with invalid options',
  },
} as const satisfies Record<string, EngineErrorCodeInfo>

export type EngineErrorCode = keyof typeof ENGINE_ERROR_CODES

export interface EngineErrorOptions extends BaseErrorOptions {
  /**
   * Inner status other than the registry's: used by ENGINE_BAD_REQUEST to pass
   * the upstream's own 4xx through (401, 413, 422…).
   */
  status?: number
  /** The upstream's `Retry-After` header, already checked to be delta-seconds or an HTTP-date. */
  retryAfter?: string
}

/** The inner error body the client receives (OpenAI's `{ error: {…} }` shape; `code` is ours). */
export interface OpenAiErrorBody {
  readonly error: {
    readonly message: string
    readonly type: string
    readonly param: null
    readonly code: EngineErrorCode
  }
}

/** A failure of an engine, with a stable code and the inner HTTP status to answer. */
export class EngineError extends BaseError<EngineErrorCode> {
  override name = 'EngineError'
  /** Inner HTTP status for the client. */
  readonly status: number
  /** OpenAI-style error type. */
  readonly type: string
  /** Upstream `Retry-After`, when the engine sent a well-formed one (429, 503). */
  readonly retryAfter: string | undefined

  constructor(code: EngineErrorCode, shortMessage: string, options: EngineErrorOptions = {}) {
    const { status, retryAfter, ...base } = options
    super(code, shortMessage, base)
    const info = ENGINE_ERROR_CODES[code]
    this.status = status ?? info.status
    this.type = info.type
    this.retryAfter = retryAfter
  }

  /** The inner JSON error body; the message is the short message, which never holds content. */
  toOpenAi(): OpenAiErrorBody {
    return { error: { message: this.shortMessage, type: this.type, param: null, code: this.code } }
  }
}

/** True for an error of this registry (as opposed to a bug). */
export function isEngineError(e: unknown): e is EngineError {
  return e instanceof EngineError && Object.hasOwn(ENGINE_ERROR_CODES, e.code)
}
