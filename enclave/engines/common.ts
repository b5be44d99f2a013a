/**
 * What the HTTP engine (http.ts) and the embedded engine (llama.ts) share:
 * the API paths they serve, the request-body check, the errors both raise
 * for the same event, and small helpers. Kept in one place so the two
 * engines cannot drift apart on codes, messages or details that clients and
 * logs rely on.
 */
import { EngineError } from './errors.ts'

/** The OpenAI API paths an engine serves; anything else is refused before the engine sees it. */
export const ENGINE_PATHS = ['/v1/chat/completions', '/v1/completions', '/v1/embeddings'] as const
export type EnginePath = (typeof ENGINE_PATHS)[number]

/** Refuse (ENGINE_BAD_REQUEST, reason `path`) a path outside ENGINE_PATHS; narrows `path` for the caller. */
export function checkEnginePath(path: string): asserts path is EnginePath {
  if (!(ENGINE_PATHS as readonly string[]).includes(path)) {
    throw new EngineError('ENGINE_BAD_REQUEST', `path is not one of ${ENGINE_PATHS.join(', ')}`, { details: { reason: 'path' } })
  }
}

/**
 * Identifier-like tokens: only strings of this shape (upstream error
 * type/code, a request's field name) go into error details, never free text
 * that could quote a prompt.
 */
export const TOKEN_RE = /^[A-Za-z0-9_.:-]{1,64}$/

/** Fatal: a body that is not valid UTF-8 is refused rather than decoded with replacement characters. */
export const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Parse a request body as a JSON object; anything else is the client's
 * mistake (ENGINE_BAD_REQUEST, reason `body`, with only the byte count).
 */
export function parseJsonObject(body: Uint8Array): Record<string, unknown> {
  let parsed: unknown
  try {
    parsed = JSON.parse(utf8.decode(body))
  } catch {
    throw new EngineError('ENGINE_BAD_REQUEST', 'the request body is not UTF-8 JSON', { details: { reason: 'body', bytes: body.length } })
  }
  if (!isObject(parsed)) {
    throw new EngineError('ENGINE_BAD_REQUEST', 'the request body is not a JSON object', { details: { reason: 'body', bytes: body.length } })
  }
  return parsed
}

/** The request was stopped before its answer was complete; `why` is a fixed phrase, never content. */
export function cancelled(why: string): EngineError {
  return new EngineError('ENGINE_CANCELLED', `request cancelled: ${why}`)
}

/** A request reached an engine after close() began. */
export function closedError(): EngineError {
  return new EngineError('ENGINE_UNAVAILABLE', 'the engine is closed', { details: { reason: 'closed' } })
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** A plain (non-streamed) answer as the one-chunk body iterator `Engine.request` returns. */
export async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array, void, undefined> {
  yield bytes
}
