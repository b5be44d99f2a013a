/**
 * `buildProxy()`: the enterprise proxy as a fastify instance that never
 * listens (gateway/proxy/main.ts does). Internal apps speak the plain OpenAI
 * API to it — the official `openai` SDK unchanged — and it speaks only
 * verified, encrypted OHTTP to providers:
 *
 *   POST /v1/chat/completions, /v1/completions, /v1/embeddings (stream or not)
 *   GET  /v1/models                                   (the configured models)
 *   GET  /readyz        (no API key: 200, or 503 with the failing check's code)
 *
 * Per request: pick the model's providers (pool.ts), verify (cached, see the
 * client), encrypt, send; on a failed verification, an unreachable or
 * rate-limiting gateway, an engine 5xx/429, or — before anything was sent
 * to the caller — an answer that fails its checks, fail over to the next
 * provider. When none succeeds the caller gets one clear OpenAI-style error
 * (PROXY_VERIFICATION_FAILED with the reason code, PROXY_NO_PROVIDER,
 * PROXY_UPSTREAM_RATE_LIMITED, PROXY_UPSTREAM_FAILED), never a 200 with an
 * empty body. A caller that disconnects ends the attempts there
 * (PROXY_CLIENT_CLOSED in the log): that is no provider's fault, so none is
 * cooled down or recorded as refused for it.
 *
 * Streams: each decrypted SSE event is forwarded as it verifies; the
 * engine's `data: [DONE]` is held back until the receipt has checked out,
 * so a caller that sees the end of a stream knows it was whole and signed.
 * Anything wrong after the first byte ends the stream with an `event: error`
 * (the openai SDK raises it as an APIError) and no [DONE].
 *
 * Every receipt and verification report goes to the audit file (hashes
 * only), and an answer is released only once its receipt is written: when
 * the audit file fails, requests are refused with PROXY_AUDIT_UNAVAILABLE
 * (a stream in flight ends in an error event instead of [DONE]) and
 * /readyz reports it, rather than serving unrecorded.
 *
 * Stopping: fastify's close() waits for every open connection, and Node
 * counts a socket that connected but never sent a request as busy, not
 * idle (its headers timeout would end it, but Node stops checking that once
 * the server closes) — and an HTTP client that opens a spare socket (the
 * `openai` package after an aborted stream does) leaves one behind.
 * So once closing starts, answers in flight get `limits.shutdownGraceMs`
 * to finish, and then, or as soon as none is left, every remaining
 * connection is closed.
 *
 * Logs: one line per request with route, status, duration, outcome
 * code, and provider URL — through the gateway's pino redaction; a model
 * name is logged only when it is a configured one (a caller could put
 * anything there).
 */
import { timingSafeEqual } from 'node:crypto'
import Fastify, { LogController, type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import type { ClientResponse, ConfidentialClient } from '../client/client.ts'
import { codeInBody, isClientError, type ClientError } from '../client/errors.ts'
import { createGatewayLogger } from '../plugins/logging.ts'
import type { AuditLog } from './audit.ts'
import { apiKeyHash, type ProxyConfig } from './config.ts'
import { openAiErrorBody, ProxyError, toProxyError, type ProxyErrorCode } from './errors.ts'
import { createProviderPool, type ProviderPool } from './pool.ts'

declare module 'fastify' {
  interface FastifyRequest {
    proxyRawBody?: Buffer
    proxyOutcome?: string
    proxyProvider?: string
    proxyModel?: string
  }
}

export interface BuildProxyParameters {
  readonly config: ProxyConfig
  readonly client: ConfidentialClient
  /** Default: a pool over `config.models`. */
  readonly pool?: ProviderPool
  /** Where receipts and refusals go; verification reports are the client's `onVerification`. */
  readonly audit?: AuditLog | null
  /** Default: the gateway's redacting pino logger at `config.logLevel`. */
  readonly logger?: Logger
}

const FORWARDED = ['/v1/chat/completions', '/v1/completions', '/v1/embeddings'] as const
/** Probes carry no API key (a load balancer or kubelet asks); the answer holds codes only. */
const READYZ = '/readyz'

const ERROR_SCHEMA = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['message', 'type', 'code'],
      properties: { message: { type: 'string' }, type: { type: 'string' }, code: { type: 'string' }, param: { type: 'null' }, reason: { type: 'string' } },
    },
  },
} as const
const ERROR_RESPONSES = { '4xx': ERROR_SCHEMA, '5xx': ERROR_SCHEMA } as const

const REQUEST_SCHEMA = {
  type: 'object',
  required: ['model'],
  properties: { model: { type: 'string', minLength: 1, maxLength: 256 }, stream: { type: 'boolean' } },
  additionalProperties: true,
} as const

const MODELS_SCHEMA = {
  type: 'object',
  required: ['object', 'data'],
  properties: {
    object: { type: 'string' },
    data: {
      type: 'array',
      items: { type: 'object', required: ['id', 'object', 'created', 'owned_by'], properties: { id: { type: 'string' }, object: { type: 'string' }, created: { type: 'integer' }, owned_by: { type: 'string' } } },
    },
  },
} as const

function sendError(e: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply | undefined {
  const pe = toProxyError(e)
  request.proxyOutcome = pe.code
  if (pe.code === 'PROXY_INTERNAL') request.log.error({ err: e }, 'unexpected error')
  if (reply.raw.headersSent) {
    reply.raw.destroy()
    return undefined
  }
  return reply.code(pe.status).headers(pe.headers).header('content-type', 'application/json; charset=utf-8').send(openAiErrorBody(pe))
}

const DONE = /^data:\s*\[DONE\]\s*$/

function isDoneEvent(chunk: Uint8Array): boolean {
  return chunk.length < 32 && DONE.test(Buffer.from(chunk).toString('utf8'))
}

/** What a failed attempt says about its provider. */
type AttemptKind = 'verification' | 'rate' | 'upstream' | 'response'

function kindOf(e: ClientError): AttemptKind {
  switch (e.code) {
    case 'CLIENT_UPSTREAM_RATE_LIMITED':
      return 'rate'
    case 'CLIENT_UPSTREAM_FAILED':
      return 'upstream'
    case 'CLIENT_RESPONSE_INVALID':
    case 'CLIENT_RECEIPT_INVALID':
    case 'CLIENT_RECEIPT_MISSING':
      return 'response'
    default:
      return 'verification'
  }
}

/** A failed attempt as the final error will weigh it. */
interface Attempt {
  readonly kind: AttemptKind
  readonly reason: string
  readonly retryAfter?: string
}

/**
 * What a send that failed says about its provider: the client code for a
 * verification or a rejected answer, the provider's own code (when it gave
 * a usable one) for a gateway that failed or rate-limited, and a Retry-After
 * only when it is a plain number of seconds.
 */
function attemptOf(e: ClientError): Attempt {
  const kind = kindOf(e)
  const reason = kind === 'verification' || kind === 'response' ? e.code : typeof e.details.reason === 'string' && e.details.reason !== 'UNKNOWN' ? e.details.reason : e.code
  const retryAfter = typeof e.details.retryAfter === 'string' && /^[0-9]{1,6}$/.test(e.details.retryAfter) ? e.details.retryAfter : undefined
  return { kind, reason, ...(retryAfter ? { retryAfter } : {}) }
}

/** The one error a caller gets when every attempt failed. */
function finalError(attempts: readonly Attempt[]): ProxyError {
  const first = (k: AttemptKind) => attempts.find((a) => a.kind === k)
  if (attempts.every((a) => a.kind === 'verification')) return new ProxyError('PROXY_VERIFICATION_FAILED', { reason: attempts[0]!.reason })
  const others = attempts.filter((a) => a.kind !== 'verification')
  if (others.every((a) => a.kind === 'rate')) {
    const ra = others.find((a) => a.retryAfter)?.retryAfter
    return new ProxyError('PROXY_UPSTREAM_RATE_LIMITED', { reason: others[0]!.reason, ...(ra ? { headers: { 'retry-after': ra } } : {}) })
  }
  const response = first('response')
  if (response) return new ProxyError('PROXY_RESPONSE_REJECTED', { reason: response.reason })
  return new ProxyError('PROXY_UPSTREAM_FAILED', { reason: (first('upstream') ?? others[0]!).reason })
}

/** The engine's sanitized code in an OpenAI error body (`error.code`), or 'UNKNOWN': never body text. */
function innerCode(body: Buffer): string {
  return codeInBody(body, (json) => (json as { error?: { code?: unknown } } | null)?.error?.code)
}

interface RouteOptions {
  readonly config: ProxyConfig
  readonly client: ConfidentialClient
  readonly pool: ProviderPool
  readonly audit: AuditLog | null
}

const openAiRoutes: FastifyPluginAsync<RouteOptions> = async (app, { config, client, pool, audit }) => {
  const known = new Set(pool.models)
  const maxResponse = config.limits.maxResponseBytes

  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: config.limits.bodyLimitBytes }, (request, body, done) => {
    try {
      const value = JSON.parse((body as Buffer).toString('utf8')) as unknown
      request.proxyRawBody = body as Buffer
      done(null, value)
    } catch {
      // JSON.parse's message quotes the input: never passed on.
      done(new ProxyError('PROXY_BAD_REQUEST'), undefined)
    }
  })

  app.get(READYZ, async (_request, reply) => {
    const a = audit?.status() ?? { ok: true }
    const checks = { audit: a.ok ? { ok: true } : { ok: false, code: 'PROXY_AUDIT_UNAVAILABLE', reason: a.reason } }
    return reply.code(a.ok ? 200 : 503).header('cache-control', 'no-store').send({ status: a.ok ? 'ready' : 'unavailable', checks })
  })

  app.get('/v1/models', { schema: { response: { 200: MODELS_SCHEMA, ...ERROR_RESPONSES } } }, async () => ({
    object: 'list',
    data: pool.models.map((id) => ({ id, object: 'model', created: 0, owned_by: 'cgw-proxy' })),
  }))

  for (const path of FORWARDED) {
    app.post<{ Body: { model: string; stream?: boolean } }>(path, { schema: { body: REQUEST_SCHEMA, response: ERROR_RESPONSES } }, async (request, reply) => {
      const { model } = request.body
      const raw = request.proxyRawBody!
      if (known.has(model)) request.proxyModel = model
      // Nothing leaves for a provider while the audit trail cannot record what comes back.
      const auditState = audit?.status()
      if (auditState && !auditState.ok) throw new ProxyError('PROXY_AUDIT_UNAVAILABLE', auditState.reason ? { reason: auditState.reason } : {})
      const candidates = (await pool.candidates(model)).slice(0, config.limits.maxAttempts)
      if (candidates.length === 0) throw new ProxyError('PROXY_NO_PROVIDER')

      const ac = new AbortController()
      reply.raw.on('close', () => {
        if (!reply.raw.writableFinished) ac.abort()
      })
      const attempts: Attempt[] = []
      for (const { url, relay } of candidates) {
        request.proxyProvider = url
        let res: ClientResponse
        try {
          res = await client.send(url, { path, body: raw, model, signal: ac.signal, ...(relay !== undefined ? { relay } : {}) })
        } catch (e) {
          if (!isClientError(e)) throw e
          // The caller went away: not the provider's fault (nothing cooled down, no refusal on record), and no next provider.
          if (ac.signal.aborted) throw new ProxyError('PROXY_CLIENT_CLOSED')
          const attempt = attemptOf(e)
          attempts.push(attempt)
          audit?.refusal({ provider: url, path, code: e.code, reason: attempt.reason })
          pool.failed(url)
          continue
        }
        const streamed = /^text\/event-stream\b/i.test(res.contentType) && res.status >= 200 && res.status < 300

        if (!streamed) {
          // Buffered: nothing reaches the caller until the answer and its receipt checked out.
          const parts: Uint8Array[] = []
          let size = 0
          try {
            for await (const c of res.content) {
              size += c.length
              if (size > maxResponse) throw new ProxyError('PROXY_RESPONSE_TOO_LARGE')
              parts.push(c)
            }
          } catch (e) {
            if (e instanceof ProxyError) throw e
            if (!isClientError(e)) throw e
            // As above: a caller that went away says nothing about the provider.
            if (ac.signal.aborted) throw new ProxyError('PROXY_CLIENT_CLOSED')
            // The client code, not details.reason as attemptOf gives: what callers and the audit file have always seen here.
            attempts.push({ kind: kindOf(e), reason: e.code })
            audit?.refusal({ provider: url, path, code: e.code })
            pool.failed(url)
            continue
          }
          const body = Buffer.concat(parts)
          if (res.status === 429 || res.status >= 500) {
            // The engine behind a verified enclave failed or is busy: another provider may not be.
            const reason = innerCode(body)
            attempts.push({ kind: res.status === 429 ? 'rate' : 'upstream', reason })
            audit?.refusal({ provider: url, path, code: res.status === 429 ? 'PROXY_UPSTREAM_RATE_LIMITED' : 'PROXY_UPSTREAM_FAILED', reason })
            if (res.status >= 500) pool.failed(url)
            continue
          }
          pool.succeeded(url)
          const receipt = res.receipt()
          if (receipt) {
            await audit?.receipt({ provider: url, path, model, status: res.status, receipt })
            reply.header('cgw-receipt-digest', receipt.digest).header('cgw-signer', receipt.signer)
          }
          request.proxyOutcome = res.status < 400 ? 'ok' : innerCode(body)
          return reply.code(res.status).header('content-type', res.contentType).header('cache-control', 'no-store').send(body)
        }

        pool.succeeded(url)
        const stream = res
        // Written straight to the socket (fastify still runs onResponse): one hop less than a
        // Readable pipeline. Events that decrypt in the same turn of the event loop leave in one
        // write (one writev, not one syscall and packet each); each is flushed in the turn it arrived.
        reply.hijack()
        const out = reply.raw
        out.writeHead(stream.status, { 'content-type': stream.contentType, 'cache-control': 'no-cache', 'x-accel-buffering': 'no' })
        let corked = false
        const uncork = () => {
          corked = false
          out.uncork()
        }
        const write = async (chunk: Uint8Array): Promise<void> => {
          if (out.destroyed) return
          if (!corked) {
            corked = true
            out.cork()
            setImmediate(uncork)
          }
          if (!out.write(chunk)) await new Promise<void>((resolve) => {
            const done = () => {
              out.off('drain', done)
              out.off('close', done)
              resolve()
            }
            out.on('drain', done)
            out.on('close', done)
          })
        }
        let size = 0
        let done: Uint8Array | null = null
        try {
          for await (const c of stream.content) {
            size += c.length
            if (size > maxResponse) throw new ProxyError('PROXY_RESPONSE_TOO_LARGE')
            if (isDoneEvent(c)) {
              done = c
              continue
            }
            await write(c)
          }
          const receipt = stream.receipt()!
          // [DONE] only after the receipt is on record; a failed write ends the stream in an error event.
          await audit?.receipt({ provider: url, path, model, status: stream.status, receipt })
          request.proxyOutcome = 'ok'
          if (done) await write(done)
        } catch (e) {
          let pe: ProxyError
          if (e instanceof ProxyError) pe = e
          else if (isClientError(e)) pe = new ProxyError(kindOf(e) === 'upstream' ? 'PROXY_UPSTREAM_FAILED' : 'PROXY_RESPONSE_REJECTED', { reason: typeof e.details.reason === 'string' && kindOf(e) === 'upstream' ? e.details.reason : e.code })
          else pe = toProxyError(e)
          request.proxyOutcome = ac.signal.aborted ? 'PROXY_CLIENT_CLOSED' : pe.code
          audit?.refusal({ provider: url, path, code: pe.code, ...(pe.reason ? { reason: pe.reason } : {}) })
          if (!ac.signal.aborted) await write(Buffer.from(`event: error\ndata: ${JSON.stringify(openAiErrorBody(pe))}\n\n`))
        }
        out.end()
        return reply
      }
      throw finalError(attempts.length > 0 ? attempts : [{ kind: 'upstream', reason: 'CLIENT_UPSTREAM_FAILED' }])
    })
  }
}

/** The proxy as a fastify instance: routes registered, not listening. */
export function buildProxy({ config, client, pool, audit = null, logger }: BuildProxyParameters): FastifyInstance {
  const app = Fastify({
    loggerInstance: logger ?? createGatewayLogger(config.logLevel),
    // fastify's own request lines carry the raw URL; one redacted line is written below instead.
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: false,
    bodyLimit: config.limits.bodyLimitBytes,
  }) as unknown as FastifyInstance
  const providers = pool ?? createProviderPool({ client, models: config.models, cooldownMs: config.limits.cooldownMs })
  const hashes = config.apiKeyHashes.map((h) => Buffer.from(h, 'hex'))

  // Answers in flight, so that a close can end the connections as soon as none is left.
  let inFlight = 0
  let closing = false
  let graceTimer: NodeJS.Timeout | undefined
  const reap = () => {
    if (!closing) return
    if (graceTimer !== undefined) clearTimeout(graceTimer)
    graceTimer = undefined
    app.server.closeAllConnections()
  }
  app.server.on('request', (_req, res) => {
    inFlight++
    res.once('close', () => {
      if (--inFlight === 0) reap()
    })
  })
  app.addHook('preClose', async () => {
    closing = true
    // Runs before fastify's server.close(): idle sockets go with that, silent ones with reap().
    if (inFlight === 0) reap()
    else graceTimer = setTimeout(reap, config.limits.shutdownGraceMs)
  })

  app.removeAllContentTypeParsers()
  app.setErrorHandler((error, request, reply) => sendError(error, request, reply))
  app.setNotFoundHandler((request, reply) => sendError(new ProxyError('PROXY_NOT_FOUND'), request, reply))

  app.addHook('onRequest', async (request) => {
    ;(request as FastifyRequest & { proxyStart?: bigint }).proxyStart = process.hrtime.bigint()
    if (hashes.length === 0 || (request.method === 'GET' && request.url === READYZ)) return
    const header = request.headers.authorization
    const m = typeof header === 'string' ? /^Bearer\s+(\S{1,512})$/.exec(header) : null
    const given = m ? Buffer.from(apiKeyHash(m[1]!), 'hex') : Buffer.alloc(32)
    let ok = false
    for (const h of hashes) ok = timingSafeEqual(h, given) || ok
    if (!m || !ok) throw new ProxyError('PROXY_UNAUTHORIZED')
  })
  app.addHook('onResponse', async (request, reply) => {
    const start = (request as FastifyRequest & { proxyStart?: bigint }).proxyStart
    const durationMs = start === undefined ? 0 : Math.round(Number(process.hrtime.bigint() - start) / 1000) / 1000
    const outcome: string = request.proxyOutcome ?? (reply.statusCode < 400 ? 'ok' : 'PROXY_INTERNAL')
    const line = {
      method: request.method,
      path: request.routeOptions.url ?? 'unmatched',
      status: reply.statusCode,
      durationMs,
      outcome,
      ...(request.proxyModel ? { model: request.proxyModel } : {}),
      ...(request.proxyProvider ? { provider: request.proxyProvider } : {}),
    }
    if (reply.statusCode >= 500) request.log.warn(line, 'request')
    else request.log.info(line, 'request')
  })

  app.register(openAiRoutes, { config, client, pool: providers, audit })
  return app
}

export type { ProxyErrorCode }
