/**
 * A small but real OpenAI-compatible inference server for tests and
 * benchmarks: node:http on 127.0.0.1, port 0, serving GET /v1/models, POST
 * /v1/chat/completions and /v1/completions (streamed as SSE or plain) and
 * POST /v1/embeddings, the way vLLM does (flushed headers, one write per
 * event, `data: [DONE]`).
 *
 * Completions are deterministic: the tokens are drawn from a fixed word list
 * by the SHA-256 of the prompt (`expectedTokens` gives them to a test), as
 * many as `max_tokens` asks, or `knobs.tokens`. Error bodies echo the prompt
 * in `error.message`, as real engines do, so tests can check that nothing
 * downstream keeps it.
 *
 * Misbehaviour is set through `knobs`, which may be changed while the server
 * runs (a request reads them as it goes): error statuses, slow headers,
 * stalls, cuts, garbage, line endings, fragmentation. `stats` counts
 * requests and events and notices a client that went away; `until()` waits
 * for a condition on them without polling a clock.
 */
import { createHash } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { performance } from 'node:perf_hooks'

/** Ways the server misbehaves; all fields may be changed at run time. */
export interface EngineServerKnobs {
  /** Model ids served; a request for another gets 404 `model_not_found`. */
  models: string[]
  /** Tokens per completion when the request sets no `max_tokens`. */
  tokens: number
  /** Pause before every stream event after the first. */
  tokenDelayMs: number
  /** Pause before the response headers. */
  headersDelayMs: number
  /** Answer every request with this error status (429, 400, 404, 500, 503…) and an OpenAI error body. */
  status: number | null
  /** `Retry-After` sent with an error status. */
  retryAfter: string | null
  /** Send this body with an error status instead of the OpenAI-shaped one. */
  errorBody: string | null
  /** After this many events, send nothing more and keep the connection open until `release()` (re-checked then). */
  stallAfter: number | null
  /** After this many events, end the response cleanly, without [DONE]. */
  closeAfter: number | null
  /** After this many events, destroy the socket. */
  resetAfter: number | null
  /** Destroy the socket as soon as a request arrives, before any response byte. */
  resetBeforeHeaders: boolean
  /**
   * Garbage instead of a proper answer (every route, the model list included):
   * - `body`: right content type, body that is neither JSON nor SSE;
   * - `sse-data`: one good event, then `data:` that is not JSON (plain answers: as `body`);
   * - `content-type`: 200 with `text/html`;
   * - `http`: bytes that are not an HTTP response.
   */
  garbage: null | 'body' | 'sse-data' | 'content-type' | 'http'
  /** Line break used in SSE. */
  lineEnding: '\n' | '\r\n' | '\r'
  /** Put a `: keep-alive` comment block before every event. */
  comments: boolean
  /** Write each event in pieces of this many bytes, one event-loop turn apart. */
  fragmentBytes: number | null
  /** Write all events of a stream in one write (ignores the stall/close/reset knobs). */
  coalesce: boolean
  /** Length of each embedding vector. */
  embeddingDims: number
}

/** What one request saw. */
export interface EngineServerRequest {
  readonly id: number
  readonly method: string
  readonly path: string
  readonly stream: boolean
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  /** The request body exactly as received. */
  readonly body: Buffer
  /** Events written so far (including [DONE]). */
  eventsSent: number
  /** `performance.now()` just before each event was written. */
  readonly sentAt: number[]
  /** The client went away before the server finished the response. */
  aborted: boolean
  /** The server finished the response (end or its own cut). */
  finished: boolean
}

export interface EngineServerStats {
  /** Requests received. */
  requests: number
  /** Requests per path. */
  byPath: Record<string, number>
  /** Responses in progress. */
  active: number
  /** Responses whose client went away before the server finished. */
  aborted: number
  /** Events written, all streams together. */
  eventsSent: number
  /** TCP connections accepted so far (keep-alive reuse keeps this low). */
  connections: number
  /** TCP connections open now. */
  openConnections: number
  /** Every request, in arrival order. */
  readonly log: EngineServerRequest[]
}

export interface EngineServer {
  /** Base URL, e.g. `http://127.0.0.1:40123` (no /v1). */
  readonly url: string
  readonly knobs: EngineServerKnobs
  readonly stats: EngineServerStats
  /** Let stalled streams go on (they stop again if `knobs.stallAfter` still says so). */
  release(): void
  /** Resolve once `predicate(stats)` holds (checked after every change). */
  until(predicate: (stats: EngineServerStats) => boolean): Promise<void>
  /** Stop listening, drop every connection and pending delay. */
  close(): Promise<void>
}

export const DEFAULT_KNOBS: EngineServerKnobs = {
  models: ['test-model'],
  tokens: 8,
  tokenDelayMs: 0,
  headersDelayMs: 0,
  status: null,
  retryAfter: null,
  errorBody: null,
  stallAfter: null,
  closeAfter: null,
  resetAfter: null,
  resetBeforeHeaders: false,
  garbage: null,
  lineEnding: '\n',
  comments: false,
  fragmentBytes: null,
  coalesce: false,
  embeddingDims: 8,
}

/** The word list completions are drawn from. */
export const VOCABULARY = [
  'alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel',
  'india', 'juliett', 'kilo', 'lima', 'mike', 'november', 'oscar', 'papa',
] as const

/** A fixed `created` so answers are byte-for-byte reproducible. */
const CREATED = 1_700_000_000

/** The tokens the server answers `prompt` with (each but the last followed by a space). */
export function expectedTokens(prompt: string, count: number): string[] {
  const digest = createHash('sha256').update(prompt).digest()
  const out: string[] = []
  for (let i = 0; i < count; i++) {
    const word = VOCABULARY[(digest[i % digest.length]! + i) % VOCABULARY.length]!
    out.push(i < count - 1 ? `${word} ` : word)
  }
  return out
}

/** The prompt text of a chat or completion request, as the server derives tokens from it. */
export function promptOf(body: Record<string, unknown>): string {
  if (Array.isArray(body.messages)) {
    return body.messages
      .map((m) => (typeof m === 'object' && m !== null && typeof (m as { content?: unknown }).content === 'string' ? (m as { content: string }).content : ''))
      .join('\n')
  }
  if (typeof body.prompt === 'string') return body.prompt
  if (Array.isArray(body.prompt)) return body.prompt.filter((p) => typeof p === 'string').join('\n')
  return ''
}

/** Start the server on 127.0.0.1, port 0. */
export async function startEngineServer(initial: Partial<EngineServerKnobs> = {}): Promise<EngineServer> {
  const knobs: EngineServerKnobs = { ...DEFAULT_KNOBS, models: [...DEFAULT_KNOBS.models], ...initial }
  const stats: EngineServerStats = { requests: 0, byPath: {}, active: 0, aborted: 0, eventsSent: 0, connections: 0, openConnections: 0, log: [] }
  const sockets = new Set<Socket>()
  const stalled = new Set<() => void>()
  const watchers = new Set<{ predicate: (s: EngineServerStats) => boolean; resolve: () => void }>()
  let closing = false

  const changed = (): void => {
    for (const w of watchers) {
      if (w.predicate(stats)) {
        watchers.delete(w)
        w.resolve()
      }
    }
  }

  const server = createServer((req, res) => {
    void handle(req, res).catch(() => {
      // A handler bug must not take the test process down; cut the response so the client sees it.
      res.destroy()
    })
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    stats.connections++
    stats.openConnections++
    changed()
    socket.on('close', () => {
      sockets.delete(socket)
      stats.openConnections--
      changed()
    })
  })

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!
    const rawBody = await readBody(req)
    let body: Record<string, unknown> = {}
    let bodyOk = true
    if (req.method === 'POST') {
      try {
        const parsed: unknown = JSON.parse(rawBody.toString('utf8'))
        if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) body = parsed as Record<string, unknown>
        else bodyOk = false
      } catch {
        bodyOk = false
      }
    }
    const stream = body.stream === true && path !== '/v1/embeddings'
    const record: EngineServerRequest = {
      id: stats.requests,
      method: req.method ?? '',
      path,
      stream,
      headers: { ...req.headers },
      body: rawBody,
      eventsSent: 0,
      sentAt: [],
      aborted: false,
      finished: false,
    }
    stats.requests++
    stats.byPath[path] = (stats.byPath[path] ?? 0) + 1
    stats.log.push(record)
    stats.active++
    let cutByServer = false
    const gone = new AbortController()
    res.on('close', () => {
      stats.active--
      if (!res.writableFinished && !cutByServer && !record.finished) {
        record.aborted = true
        stats.aborted++
      }
      record.finished = true
      gone.abort()
      changed()
    })
    changed()

    const cut = async (): Promise<void> => {
      cutByServer = true
      record.finished = true
      // Node corks chunked writes until the next tick; let them reach the wire before the reset.
      while (req.socket.writableLength > 0 || req.socket.writableCorked > 0) {
        await new Promise<void>((resolve) => setImmediate(resolve))
        if (req.socket.destroyed) return
      }
      req.socket.destroy()
    }
    const finish = (): void => {
      record.finished = true
    }

    if (knobs.resetBeforeHeaders) return cut()
    if (knobs.headersDelayMs > 0) await sleep(knobs.headersDelayMs, gone.signal)
    if (gone.signal.aborted) return
    if (knobs.garbage === 'http') {
      cutByServer = true
      record.finished = true
      req.socket.end('HTTP/1.1 200 OK\r\nContent-Length: twelve\r\n\r\nnot http at all')
      return
    }

    const prompt = promptOf(body)
    if (knobs.status !== null) return sendError(res, knobs.status, prompt, finish)
    if (!bodyOk) return sendError(res, 400, prompt, finish)
    if (knobs.garbage === 'content-type') {
      res.writeHead(200, { 'content-type': 'text/html' })
      res.end('<html><body>not an API</body></html>')
      return finish()
    }
    if (knobs.garbage === 'body' || (knobs.garbage === 'sse-data' && !stream)) {
      res.writeHead(200, { 'content-type': stream ? 'text/event-stream' : 'application/json' })
      res.end(stream ? 'this is not an event stream\n\n' : 'this is not json')
      return finish()
    }

    if (req.method === 'GET' && path === '/v1/models') {
      return sendJson(res, {
        object: 'list',
        data: knobs.models.map((id) => ({ id, object: 'model', created: CREATED, owned_by: 'engine-server' })),
      }, finish)
    }
    const known = path === '/v1/chat/completions' || path === '/v1/completions' || path === '/v1/embeddings'
    if (req.method !== 'POST' || !known) return sendError(res, 404, '', finish, 'not_found')
    if (typeof body.model !== 'string' || !knobs.models.includes(body.model)) return sendError(res, 404, prompt, finish)
    const model = body.model

    if (path === '/v1/embeddings') return sendJson(res, embeddings(body, model, knobs.embeddingDims), finish)

    const chat = path === '/v1/chat/completions'
    const count = maxTokens(body) ?? knobs.tokens
    const tokens = expectedTokens(prompt, count)
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-${record.id}`
    const usage = { prompt_tokens: prompt.length === 0 ? 0 : prompt.split(/\s+/).length, completion_tokens: count, total_tokens: 0 }
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens

    if (!stream) {
      const text = tokens.join('')
      const choice = chat
        ? { index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: 'stop' }
        : { index: 0, text, logprobs: null, finish_reason: 'stop' }
      return sendJson(res, { id, object: chat ? 'chat.completion' : 'text_completion', created: CREATED, model, choices: [choice], usage }, finish)
    }

    const payloads: string[] = tokens.map((tok, i) =>
      JSON.stringify({
        id,
        object: chat ? 'chat.completion.chunk' : 'text_completion',
        created: CREATED,
        model,
        choices: [
          chat
            ? { index: 0, delta: i === 0 ? { role: 'assistant', content: tok } : { content: tok }, logprobs: null, finish_reason: null }
            : { index: 0, text: tok, logprobs: null, finish_reason: null },
        ],
      }),
    )
    const last: Record<string, unknown> = {
      id,
      object: chat ? 'chat.completion.chunk' : 'text_completion',
      created: CREATED,
      model,
      choices: [chat ? { index: 0, delta: {}, logprobs: null, finish_reason: 'stop' } : { index: 0, text: '', logprobs: null, finish_reason: 'stop' }],
    }
    const options = body.stream_options
    if (typeof options === 'object' && options !== null && (options as { include_usage?: unknown }).include_usage === true) last.usage = usage
    payloads.push(JSON.stringify(last))
    if (knobs.garbage === 'sse-data') payloads.splice(1, payloads.length, '{"truncated": ')
    else payloads.push('[DONE]')

    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' })
    res.flushHeaders()
    const eol = knobs.lineEnding
    const frame = (data: string): string => `${knobs.comments ? `: keep-alive${eol}${eol}` : ''}data: ${data}${eol}${eol}`

    if (knobs.coalesce) {
      const all = payloads.map(frame).join('')
      for (let i = 0; i < payloads.length; i++) record.sentAt.push(performance.now())
      res.end(all)
      record.eventsSent += payloads.length
      stats.eventsSent += payloads.length
      finish()
      return changed()
    }

    for (let i = 0; i < payloads.length; i++) {
      if (i > 0 && knobs.tokenDelayMs > 0) await sleep(knobs.tokenDelayMs, gone.signal)
      while (knobs.stallAfter !== null && record.eventsSent >= knobs.stallAfter && !gone.signal.aborted && !closing) {
        await new Promise<void>((resolve) => {
          const wake = (): void => {
            stalled.delete(wake)
            gone.signal.removeEventListener('abort', wake)
            resolve()
          }
          stalled.add(wake)
          gone.signal.addEventListener('abort', wake, { once: true })
        })
      }
      if (gone.signal.aborted || closing) return
      if (knobs.closeAfter !== null && record.eventsSent >= knobs.closeAfter) {
        res.end()
        return finish()
      }
      if (knobs.resetAfter !== null && record.eventsSent >= knobs.resetAfter) return cut()
      const bytes = Buffer.from(frame(payloads[i]!))
      record.sentAt.push(performance.now())
      if (knobs.fragmentBytes !== null && knobs.fragmentBytes > 0) {
        for (let at = 0; at < bytes.length; at += knobs.fragmentBytes) {
          res.write(bytes.subarray(at, at + knobs.fragmentBytes))
          await new Promise<void>((resolve) => setImmediate(resolve))
          if (gone.signal.aborted) return
        }
      } else {
        res.write(bytes)
      }
      record.eventsSent++
      stats.eventsSent++
      changed()
    }
    res.end()
    finish()
  }

  function sendError(res: ServerResponse, status: number, prompt: string, finish: () => void, code?: string): void {
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (knobs.retryAfter !== null) headers['retry-after'] = knobs.retryAfter
    const body =
      knobs.errorBody ??
      JSON.stringify({
        error: {
          // Real engines echo the request here; downstream code must never keep it.
          message: `request failed for prompt: ${prompt}`,
          type: ERROR_TYPES[status] ?? 'server_error',
          param: status === 404 ? 'model' : null,
          code: code ?? ERROR_CODES[status] ?? status,
        },
      })
    res.writeHead(status, headers)
    res.end(body)
    finish()
  }

  function sendJson(res: ServerResponse, value: unknown, finish: () => void): void {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(value))
    finish()
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo

  return {
    url: `http://127.0.0.1:${port}`,
    knobs,
    stats,
    release() {
      const waiting = [...stalled]
      stalled.clear()
      for (const resolve of waiting) resolve()
    },
    until(predicate) {
      if (predicate(stats)) return Promise.resolve()
      return new Promise<void>((resolve) => watchers.add({ predicate, resolve }))
    },
    async close() {
      closing = true
      for (const resolve of stalled) resolve()
      stalled.clear()
      const done = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const socket of sockets) socket.destroy()
      await done
    },
  }
}

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  404: 'invalid_request_error',
  429: 'requests',
  500: 'server_error',
  503: 'server_error',
}

const ERROR_CODES: Record<number, string> = {
  400: 'invalid_value',
  404: 'model_not_found',
  429: 'rate_limit_exceeded',
  500: 'internal_error',
  503: 'overloaded',
}

function maxTokens(body: Record<string, unknown>): number | undefined {
  const v = body.max_completion_tokens ?? body.max_tokens
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined
}

function embeddings(body: Record<string, unknown>, model: string, dims: number): unknown {
  const inputs = Array.isArray(body.input) ? body.input.map(String) : [String(body.input ?? '')]
  return {
    object: 'list',
    model,
    data: inputs.map((text, index) => {
      const digest = createHash('sha256').update(text).digest()
      const embedding = Array.from({ length: dims }, (_, i) => Math.round(((digest[i % digest.length]! / 255) * 2 - 1) * 1e6) / 1e6)
      return { object: 'embedding', index, embedding }
    }),
    usage: { prompt_tokens: inputs.length, total_tokens: inputs.length },
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** Wait `ms`, or less if `signal` aborts (the client went away). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done(): void {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}
