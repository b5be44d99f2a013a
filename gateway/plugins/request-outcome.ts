/**
 * One record per finished request — route pattern, method, status, outcome
 * code, duration — handed to the log line and the metrics. Built when the
 * response closes (not on fastify's onResponse, which never fires for a
 * response the client cut), so a stream the client abandoned is counted too.
 *
 * The record holds no request data: the route is the registered pattern
 * (never the raw URL, which could carry anything in its path or query) and
 * the outcome is a code from a registry.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { sharedPlugin } from './shared.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** 'ok' or the code this request ended with; set by routes and the error handler. */
    cgwOutcome: string | null
  }
}

export interface RequestRecord {
  /** The registered route pattern, or 'unmatched' for a 404. */
  readonly route: string
  readonly method: string
  /** The status sent, or 499 when the client left before the status line. */
  readonly status: number
  /** 'ok' or a stable code (GATEWAY_*, ENCLAVE_*, ENGINE_*). */
  readonly outcome: string
  readonly durationMs: number
}

export type RequestRecordListener = (record: RequestRecord, request: FastifyRequest) => void

/** Label-safe codes only: anything else a component reports becomes 'UNKNOWN' rather than free text. */
const CODE = /^(ok|[A-Z][A-Z0-9_]{0,63})$/

export function safeCode(code: string | null | undefined): string {
  return code != null && CODE.test(code) ? code : 'UNKNOWN'
}

/** The code a thrown value reports for metrics: its own `code` when label-safe, else 'UNKNOWN'. */
export function reportedCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' ? safeCode(code) : 'UNKNOWN'
}

/** The route label of a request: its pattern, never its URL. */
export function routeOf(request: FastifyRequest): string {
  return request.routeOptions.url ?? 'unmatched'
}

function recordOf(request: FastifyRequest, reply: FastifyReply, finished: boolean): RequestRecord {
  const res = reply.raw
  let outcome = safeCode(request.cgwOutcome ?? 'ok')
  let status = res.statusCode
  if (!finished) {
    // The response did not complete: the client left, or a stream was cut.
    if (outcome === 'ok') outcome = 'GATEWAY_CLIENT_CLOSED'
    if (!res.headersSent) status = 499
  }
  return { route: routeOf(request), method: request.method, status, outcome, durationMs: reply.elapsedTime }
}

/** Calls every listener once per request, when its response closes. */
export const requestOutcomePlugin = sharedPlugin<{ listeners: readonly RequestRecordListener[] }>(
  'cgw-request-outcome',
  async (app, { listeners }) => {
    app.decorateRequest('cgwOutcome', null)
    app.addHook('onRequest', async (request, reply) => {
      // 'finish' rather than writableFinished: light-my-request's response
      // (inject) emits the events but does not keep that property.
      let finished = false
      reply.raw.once('finish', () => (finished = true))
      reply.raw.once('close', () => {
        const record = recordOf(request, reply, finished)
        for (const listener of listeners) listener(record, request)
      })
    })
  },
)
