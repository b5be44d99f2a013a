/**
 * The gateway's pino logger: what may be logged is decided here, once.
 *
 * The gateway only ever sees ciphertext, but logs are written outside the
 * CVM's measured code (collected, shipped, kept), so they get a stricter
 * rule than "no plaintext": no request data at all. fastify's own request
 * logging is switched off (server.ts) because its lines carry the raw URL
 * and error messages — and a JSON parse error's message quotes the body.
 * Instead one line per request is written from the `RequestRecord` (route
 * pattern, method, status, duration, outcome code), and the serializers
 * below reduce any `req`, `res` or `err` someone logs to the same fields.
 * For objects logged by hand, `scrubForLog` (any depth) and pino's
 * `redact` (named paths) are the second line of defence.
 */
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino'
import type { FastifyRequest } from 'fastify'
import { BaseError } from '../../attestation/errors.ts'
import type { LogLevel } from '../config.ts'
import type { RequestRecord } from './request-outcome.ts'
import { routeOf, safeCode } from './request-outcome.ts'

/** Field names that hold content or secrets wherever they appear (compared case-insensitively). */
export const SENSITIVE_FIELDS: readonly string[] = [
  'body', 'payload', 'query', 'querystring', 'params', 'prompt', 'messages', 'input', 'content', 'completion', 'choices',
  'nonce', 'authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'headers', 'url', 'password', 'secret',
  'privatekey', 'token',
]
const SENSITIVE = new Set(SENSITIVE_FIELDS)

/**
 * pino `redact` paths: every sensitive field written as an identifier (the
 * hyphenated header names are covered by 'headers') at the top level and
 * one level down. Deeper paths (`*.*.body`) are not used: @pinojs/redact
 * 0.4 turns a logged Buffer into a plain object under a double wildcard,
 * and pino then throws while serialising it. Depth is `scrubForLog`'s job.
 */
export const REDACT_PATHS: readonly string[] = SENSITIVE_FIELDS.filter((f) => /^[a-z]+$/i.test(f)).flatMap((f) => [f, `*.${f}`])

/** Keys pino hands to the serializers below: left for them. */
const SERIALIZED_KEYS = new Set(['req', 'res', 'err', 'error'])
const MAX_SCRUB_DEPTH = 6

/**
 * A copy of a logged value with sensitive fields replaced at any depth, byte
 * arrays reduced to their length (ciphertext or not, bytes say nothing an
 * operator needs), nested errors reduced to class and code, and anything
 * deeper than a few levels cut. Runs as pino's `formatters.log`, before the
 * serializers and `redact`.
 */
export function scrubForLog(value: unknown, depth = 0, seen: WeakSet<object> = new WeakSet()): unknown {
  if (value === null || typeof value !== 'object') return value
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return `[${value.byteLength} bytes]`
  if (value instanceof Error) return serializeError(value)
  if (depth >= MAX_SCRUB_DEPTH) return '[depth]'
  if (seen.has(value)) return '[circular]'
  seen.add(value)
  if (Array.isArray(value)) return value.map((v) => scrubForLog(v, depth + 1, seen))
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) {
    if (SENSITIVE.has(k.toLowerCase())) out[k] = '[redacted]'
    else if (depth === 0 && SERIALIZED_KEYS.has(k)) out[k] = v
    else out[k] = scrubForLog(v, depth + 1, seen)
  }
  return out
}

/** Only these fields of a request: never its URL, query, headers or body. */
export function serializeRequest(req: unknown): { method?: string; path?: string } {
  const r = req as Partial<FastifyRequest> | null
  if (r === null || typeof r !== 'object') return {}
  const path = r.routeOptions && typeof r.routeOptions === 'object' ? routeOf(r as FastifyRequest) : undefined
  return { ...(typeof r.method === 'string' ? { method: r.method } : {}), ...(path !== undefined ? { path } : {}) }
}

/** Only the status of a response. */
export function serializeResponse(res: unknown): { statusCode?: number } {
  const code = (res as { statusCode?: unknown } | null)?.statusCode
  return typeof code === 'number' ? { statusCode: code } : {}
}

/**
 * Only the error's class and code. A message is kept for our own errors,
 * whose messages are fixed registry text (BaseError: no evidence, no
 * content); any other error's message could quote a request (a JSON parse
 * error quotes its input, FST_ERR_BAD_URL quotes the URL), so it is dropped.
 */
export function serializeError(err: unknown): { type: string; code: string; message?: string } {
  if (err instanceof BaseError) return { type: err.name, code: safeCode(err.code), message: err.shortMessage }
  const e = err as { name?: unknown; code?: unknown } | null
  return {
    type: typeof e?.name === 'string' ? e.name.slice(0, 64) : typeof err,
    code: typeof e?.code === 'string' ? safeCode(e.code) : 'UNKNOWN',
  }
}

const QUERY_IN_TEXT = /\?[^\s"']*/g

/** pino options: level, redaction, the three serializers; no hostname/pid noise beyond pino's base. */
export function gatewayLoggerOptions(level: LogLevel): LoggerOptions {
  return {
    level,
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    formatters: { log: (object) => scrubForLog(object) as Record<string, unknown> },
    serializers: { req: serializeRequest, res: serializeResponse, err: serializeError, error: serializeError },
    hooks: {
      // fastify writes a raw URL into a few warning messages (a handler that
      // answered twice); a message string cannot be redacted by path, so
      // any query string in it is cut here.
      logMethod(args, method) {
        const scrubbed = args.map((a) => (typeof a === 'string' ? a.replace(QUERY_IN_TEXT, '?[redacted]') : a)) as typeof args
        method.apply(this, scrubbed)
      },
    },
  }
}

/** The gateway's logger, writing to `destination` (default stdout). */
export function createGatewayLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return destination ? pino(gatewayLoggerOptions(level), destination) : pino(gatewayLoggerOptions(level))
}

/** The one log line per request: fields from the record only. */
export function logRequestRecord(record: RequestRecord, request: FastifyRequest): void {
  const line = { method: record.method, path: record.route, status: record.status, durationMs: Math.round(record.durationMs * 1000) / 1000, outcome: record.outcome }
  if (record.status >= 500 && record.outcome === 'GATEWAY_INTERNAL') request.log.error(line, 'request')
  else if (record.status >= 500) request.log.warn(line, 'request')
  else request.log.info(line, 'request')
}
