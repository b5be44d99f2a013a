/**
 * The OpenAI-compatible HTTP engine: vLLM, SGLang, llama.cpp server, Ollama
 * or TGI on loopback inside the CVM, reached over one undici `Pool`
 * (keep-alive, pipelining 1).
 *
 * Requests are forwarded byte for byte; the JSON body is parsed once, only to
 * learn whether the client asked for a stream. Answers come back as:
 *
 * - a stream: each SSE event handed out the moment its blank line arrives
 *   (enclave/engines/sse.ts), ending with `data: [DONE]`;
 * - a plain answer: the whole JSON body, once.
 *
 * Every failure is an `EngineError` with its own code (enclave/engines/
 * errors.ts): connection failures, timeouts, each class of upstream status,
 * garbage, a stream cut before [DONE], and a cancelled client are never
 * collapsed. The upstream's error body is read only for its `error.type` and
 * `error.code` tokens: engines echo the prompt in `error.message`.
 *
 * Why `dispatch` with a handler of our own instead of `pool.request()`: no
 * Readable stream per request, backpressure by pause/resume on the socket,
 * and after [DONE] the iterator returns at once while the handler quietly
 * reads the chunked terminator, so the connection goes back to the pool
 * instead of being destroyed.
 *
 * A stream is offered twice, for the consumer to pick one: `body`, an async
 * iterator, and `push(sink)`, which parses each socket read on the spot and
 * hands its events to the sink synchronously. Push is what the enclave uses:
 * an iterator costs several promises and microtask hops per event, which at
 * one event per token was a measurable share of the gateway's CPU.
 */
import { Pool, type Dispatcher } from 'undici'
import type { Engine, EngineEventSink, PushControl } from '../types.ts'
import { cancelled, checkEnginePath, closedError, isObject, once, parseJsonObject, TOKEN_RE, utf8 } from './common.ts'
import { EngineError, type EngineErrorCode } from './errors.ts'
import { SseParser } from './sse.ts'

export interface HttpEngineOptions {
  /**
   * Origin of the engine, optionally with a path prefix that comes before
   * `/v1/...` (e.g. `http://127.0.0.1:8000`). Loopback only, unless
   * `allowNonLoopback`: plaintext prompts must not leave the CVM.
   */
  readonly baseUrl: string
  /** Sent as `Authorization: Bearer …` (vLLM `--api-key`, llama.cpp `--api-key`). */
  readonly apiKey?: string
  /** Pool size: concurrent upstream requests. Default 128. */
  readonly connections?: number
  /**
   * Time from sending the request to the response headers. Default 300 000 ms:
   * a non-streamed completion sends its headers only after generating.
   */
  readonly headersTimeoutMs?: number
  /** Longest silence between body bytes, e.g. mid-stream. Default 60 000 ms. */
  readonly bodyTimeoutMs?: number
  /**
   * Largest plain (non-streamed) body, and largest single SSE event. A stream
   * as a whole is not capped: it is never held. Default 16 MiB.
   */
  readonly maxResponseBytes?: number
  /**
   * Accept a non-loopback engine address. Only for an engine whose network
   * path is itself inside the trust domain (a container network within the
   * same CVM); never across hosts.
   */
  readonly allowNonLoopback?: boolean
  /** `Engine.name`. Default `'http'`. */
  readonly name?: string
}

export const HTTP_ENGINE_DEFAULTS = {
  connections: 128,
  headersTimeoutMs: 300_000,
  bodyTimeoutMs: 60_000,
  maxResponseBytes: 16 * 1024 * 1024,
} as const

/** Upstream error bodies are read up to this many bytes: enough for `error.type`/`error.code`. */
const ERROR_BODY_MAX = 8 * 1024
/** Bytes an upstream may send after [DONE] (or in an error body) before its connection is dropped rather than reused. */
const DRAIN_MAX = 64 * 1024
/** Queued stream bytes that pause the socket until the consumer catches up, and the level that resumes it. */
const HIGH_WATER = 256 * 1024
const LOW_WATER = 64 * 1024
const RETRY_AFTER_RE = /^(?:\d{1,10}|[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT)$/

/**
 * Create the HTTP engine. Options are validated here, with a message saying
 * what to give instead (ENGINE_OPTIONS_INVALID).
 */
export function createHttpEngine(options: HttpEngineOptions): Engine {
  const url = checkBaseUrl(options)
  const connections = checkPositiveInt('connections', options.connections ?? HTTP_ENGINE_DEFAULTS.connections)
  const headersTimeoutMs = checkPositiveInt('headersTimeoutMs', options.headersTimeoutMs ?? HTTP_ENGINE_DEFAULTS.headersTimeoutMs)
  const bodyTimeoutMs = checkPositiveInt('bodyTimeoutMs', options.bodyTimeoutMs ?? HTTP_ENGINE_DEFAULTS.bodyTimeoutMs)
  const maxResponseBytes = checkPositiveInt('maxResponseBytes', options.maxResponseBytes ?? HTTP_ENGINE_DEFAULTS.maxResponseBytes)
  if (options.apiKey !== undefined && (options.apiKey === '' || /[\r\n]/.test(options.apiKey))) {
    throw new EngineError('ENGINE_OPTIONS_INVALID', 'apiKey must be a non-empty single-line string, or left out')
  }
  const prefix = url.pathname.replace(/\/+$/, '')
  const limits: Limits = { headersTimeoutMs, bodyTimeoutMs, maxResponseBytes }
  const baseHeaders: Record<string, string> = { 'content-type': 'application/json' }
  if (options.apiKey !== undefined) baseHeaders.authorization = `Bearer ${options.apiKey}`
  const jsonHeaders = { ...baseHeaders, accept: 'application/json' }
  const sseHeaders = { ...baseHeaders, accept: 'text/event-stream' }
  const getHeaders = { accept: 'application/json', ...(options.apiKey === undefined ? {} : { authorization: baseHeaders.authorization! }) }

  const pool = new Pool(url.origin, {
    connections,
    pipelining: 1,
    headersTimeout: headersTimeoutMs,
    bodyTimeout: bodyTimeoutMs,
  })
  let closed: Promise<void> | null = null

  function dispatch(exchange: Exchange, opts: Dispatcher.DispatchOptions): void {
    // Cancelled before it started (an aborted signal): nothing to send.
    if (exchange.settled) return
    if (closed !== null) {
      exchange.fail(closedError())
      return
    }
    pool.dispatch(opts, exchange)
  }

  return {
    name: options.name ?? 'http',

    async models(opts = {}) {
      const exchange = new Exchange('json', limits, opts.signal, 'models')
      dispatch(exchange, { path: `${prefix}/v1/models`, method: 'GET', headers: getHeaders })
      const answer = await exchange.head
      const bytes = answer.bytes
      let parsed: unknown
      try {
        parsed = JSON.parse(utf8.decode(bytes))
      } catch {
        throw badResponse('not_json', { bytes: bytes.length })
      }
      const data = isObject(parsed) ? parsed.data : undefined
      if (!Array.isArray(data) || !data.every((m) => isObject(m) && typeof m.id === 'string')) {
        throw badResponse('models_shape', { bytes: bytes.length })
      }
      return data as { id: string; [k: string]: unknown }[]
    },

    async request(path, body, { signal, stream: asksStream }) {
      checkEnginePath(path)
      // The body is parsed once, only for `stream: true`; anything but a JSON object is the client's mistake.
      const stream = path !== '/v1/embeddings' && (asksStream ?? parseJsonObject(body).stream === true)
      if (signal.aborted) throw cancelled('before the request was sent')
      const exchange = new Exchange(stream ? 'sse' : 'json', limits, signal, 'request')
      dispatch(exchange, { path: prefix + path, method: 'POST', headers: stream ? sseHeaders : jsonHeaders, body })
      const answer = await exchange.head
      return {
        status: answer.status,
        contentType: answer.contentType,
        stream,
        body: stream ? exchange.events() : once(answer.bytes),
        ...(stream ? { push: (sink: EngineEventSink) => exchange.push(sink) } : {}),
      }
    },

    close() {
      // Graceful: requests in flight (and post-[DONE] drains) finish first.
      closed ??= pool.close()
      return closed
    },
  }
}

interface Limits {
  readonly headersTimeoutMs: number
  readonly bodyTimeoutMs: number
  readonly maxResponseBytes: number
}

/** What `Exchange.head` resolves to: the response headers, and for a plain answer its whole body. */
interface Head {
  readonly status: number
  readonly contentType: string
  readonly bytes: Uint8Array
}

type Phase =
  | 'waiting' // request sent (or queued), no response yet
  | 'stream' // 2xx SSE: chunks queue for events()
  | 'collect' // 2xx JSON: body gathered for head
  | 'error-body' // non-2xx: up to ERROR_BODY_MAX gathered for the error's details
  | 'draining' // after [DONE]: read the rest and drop it, so the socket is reused
  | 'done'

/**
 * One upstream exchange: an undici dispatch handler that settles `head` and,
 * for a stream, feeds `events()`. Every path ends in phase 'done' (or
 * 'draining', which ends by itself) with the abort listener removed; for a
 * stream, only once `events()` is finished, so a client that leaves while
 * queued events are unread still stops the reader.
 *
 * The stream's consumer must read to the end, stop early (break / return),
 * or abort the signal: a stream left unread pauses its socket (no body
 * timeout runs while paused) and holds its pool connection.
 */
class Exchange implements Dispatcher.DispatchHandler {
  readonly head: Promise<Head>
  readonly #mode: 'sse' | 'json'
  readonly #limits: Limits
  readonly #signal: AbortSignal | undefined
  readonly #op: 'request' | 'models'
  #phase: Phase = 'waiting'
  #controller: Dispatcher.DispatchController | null = null
  /** Set when we cancel before undici handed us a controller (request still queued in the pool). */
  #pendingAbort: Error | null = null
  #resolveHead!: (head: Head) => void
  #rejectHead!: (e: EngineError) => void
  #headSettled = false
  #status = 0
  #contentType = ''
  #retryAfter: string | undefined
  /** Body bytes: the JSON body, the error body, or stream chunks not yet taken by events(). */
  #chunks: Buffer[] = []
  #chunkHead = 0
  #bytes = 0
  #received = 0
  #ended = false
  /** The failure events() throws once queued chunks are used up (at once for a cancel). */
  #failure: EngineError | null = null
  #wake: (() => void) | null = null
  readonly #onAbort = (): void => this.cancel(cancelled('the client went away'))
  // Push mode (push()): the sink, its parser, and where the pump stands.
  #sink: EngineEventSink | null = null
  #parser: SseParser | null = null
  /** The parser holds a fed chunk whose events are not all taken yet. */
  #loaded = false
  #sinkPaused = false
  #pumping = false
  #sinkEnded = false
  #consumed = false

  constructor(mode: 'sse' | 'json', limits: Limits, signal: AbortSignal | undefined, op: 'request' | 'models') {
    this.#mode = mode
    this.#limits = limits
    this.#signal = signal
    this.#op = op
    this.head = new Promise<Head>((resolve, reject) => {
      this.#resolveHead = resolve
      this.#rejectHead = reject
    })
    if (signal !== undefined) {
      if (signal.aborted) this.cancel(cancelled('before the request was sent'))
      else signal.addEventListener('abort', this.#onAbort, { once: true })
    }
  }

  // --- undici handler --------------------------------------------------

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller
    if (this.#pendingAbort !== null) controller.abort(this.#pendingAbort)
  }

  onResponseStart(_controller: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>): void {
    if (this.#phase !== 'waiting' || status < 200) return
    this.#status = status
    this.#contentType = headerValue(headers['content-type'])
    if (status >= 300) {
      this.#retryAfter = checkRetryAfter(headerValue(headers['retry-after']))
      this.#phase = 'error-body'
      return
    }
    const mediaType = mediaTypeOf(this.#contentType)
    if (this.#mode === 'sse') {
      if (mediaType !== 'text/event-stream') return this.#abortWith(badResponse('content_type', { status, expected: 'text/event-stream' }))
      this.#phase = 'stream'
      this.#settleHead({ status, contentType: this.#contentType, bytes: new Uint8Array(0) })
      return
    }
    if (mediaType !== 'application/json' && !mediaType.endsWith('+json')) {
      return this.#abortWith(badResponse('content_type', { status, expected: 'application/json' }))
    }
    const declared = Number(headerValue(headers['content-length']) || NaN)
    if (declared > this.#limits.maxResponseBytes) {
      return this.#abortWith(badResponse('too_large', { status, bytes: declared, maxResponseBytes: this.#limits.maxResponseBytes }))
    }
    this.#phase = 'collect'
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#received += chunk.length
    switch (this.#phase) {
      case 'stream':
        this.#chunks.push(chunk)
        this.#bytes += chunk.length
        if (this.#bytes > HIGH_WATER) controller.pause()
        this.#notify()
        return
      case 'collect':
        this.#bytes += chunk.length
        if (this.#bytes > this.#limits.maxResponseBytes) {
          return this.#abortWith(badResponse('too_large', { status: this.#status, bytes: this.#bytes, maxResponseBytes: this.#limits.maxResponseBytes }))
        }
        this.#chunks.push(chunk)
        return
      case 'error-body':
        if (this.#bytes < ERROR_BODY_MAX) {
          this.#chunks.push(chunk)
          this.#bytes += chunk.length
        } else if (this.#received > DRAIN_MAX) {
          // Enough for the error's tokens; not worth reading on for the socket.
          this.#phase = 'done'
          this.#detach()
          this.#settleHead(this.#statusError())
          controller.abort(cancelled('error body too large'))
        }
        return
      case 'draining':
        if (this.#received > DRAIN_MAX) {
          this.#phase = 'done'
          controller.abort(cancelled('data after [DONE]'))
        }
        return
      default:
        return
    }
  }

  onResponseEnd(): void {
    switch (this.#phase) {
      case 'stream':
        // The abort listener stays until events() is done: a client that leaves
        // while queued events are still being read must still stop the reader.
        this.#ended = true
        this.#notify()
        return
      case 'collect': {
        this.#phase = 'done'
        this.#detach()
        const bytes = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#bytes)
        this.#chunks = []
        if (!looksLikeJson(bytes)) return this.#settleHead(badResponse('not_json', { status: this.#status, bytes: bytes.length }))
        this.#settleHead({ status: this.#status, contentType: this.#contentType, bytes })
        return
      }
      case 'error-body':
        this.#phase = 'done'
        this.#detach()
        this.#settleHead(this.#statusError())
        return
      case 'waiting':
        // undici ended a request without a response (cannot happen for h1): never leave head pending.
        this.#phase = 'done'
        this.#detach()
        this.#settleHead(new EngineError('ENGINE_UNAVAILABLE', 'the engine closed the request without a response', { details: { reason: 'no_response' } }))
        return
      default:
        this.#phase = 'done'
        this.#detach()
    }
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    const phase = this.#phase
    this.#phase = 'done'
    if (phase === 'done' || phase === 'draining') return
    const mapped = err instanceof EngineError ? err : transportError(err, phase, this.#limits, this.#status, this.#received)
    if (phase === 'stream') {
      // Queued events are still delivered first; see onResponseEnd for the listener.
      this.#ended = true
      this.#failure ??= mapped
      this.#notify()
      return
    }
    this.#detach()
    if (phase === 'error-body') {
      // The status already says what went wrong; a cut error body changes nothing.
      this.#settleHead(this.#statusError())
      return
    }
    this.#settleHead(mapped)
  }

  // --- our side ---------------------------------------------------------

  /** True once the exchange is over (or was cancelled before it began). */
  get settled(): boolean {
    return this.#phase === 'done'
  }

  /** Fail without having dispatched (engine closed). */
  fail(e: EngineError): void {
    this.#phase = 'done'
    this.#detach()
    this.#settleHead(e)
  }

  /**
   * Stop now: the consumer gets `reason` at once (queued data is dropped), and
   * the upstream request is aborted, which destroys its socket so the engine
   * stops generating.
   */
  cancel(reason: EngineError): void {
    const phase = this.#phase
    if (phase === 'draining') return
    if (phase === 'done') {
      // The upstream already finished or failed; a stream reader still gets the cancel.
      if (this.#failure === null || this.#failure.code !== 'ENGINE_CANCELLED') {
        this.#failure = reason
        this.#chunks = []
        this.#chunkHead = 0
        this.#bytes = 0
        this.#notify()
      }
      this.#detach()
      return
    }
    this.#phase = 'done'
    this.#detach()
    this.#chunks = []
    this.#chunkHead = 0
    this.#bytes = 0
    if (phase === 'stream') {
      this.#failure = reason
      this.#notify()
    } else {
      this.#settleHead(reason)
    }
    if (this.#ended) return
    if (this.#controller !== null) this.#controller.abort(reason)
    else this.#pendingAbort = reason
  }

  /** The SSE events of a streamed answer, each yielded as soon as it is complete. */
  async *events(): AsyncGenerator<Uint8Array, void, undefined> {
    if (this.#consumed) throw new EngineError('ENGINE_OPTIONS_INVALID', 'a stream is read once, through body or push')
    this.#consumed = true
    const parser = new SseParser({ maxEventBytes: this.#limits.maxResponseBytes })
    let finished = false
    try {
      for (;;) {
        if (this.#failure !== null && this.#failure.code === 'ENGINE_CANCELLED') throw this.#failure
        const chunk = this.#take()
        if (chunk !== null) {
          parser.feed(chunk)
          for (let event = parser.next(); event !== null; event = parser.next()) {
            if (event.done) {
              finished = true
              this.#drain()
              yield event.bytes
              return
            }
            yield event.bytes
            if (this.#failure !== null && this.#failure.code === 'ENGINE_CANCELLED') throw this.#failure
          }
          continue
        }
        if (this.#failure !== null) throw withStreamDetails(this.#failure, parser.events, parser.pendingBytes)
        if (this.#ended) {
          throw this.#endedEarly(parser)
        }
        await new Promise<void>((resolve) => {
          this.#wake = resolve
        })
      }
    } finally {
      // A consumer that stops early (break, throw) or a parse failure must not leave the engine generating.
      if (!finished) this.cancel(cancelled('the consumer stopped reading'))
      this.#detach()
    }
  }

  /**
   * Push mode: hand every event to `sink` as soon as it is parsed, from
   * within the socket read that completed it (see the module header). Same
   * outcomes as events(): the events up to [DONE] then `end()`, or `end(e)`
   * with the same codes; a sink that returns false pauses the socket once
   * HIGH_WATER bytes are queued.
   */
  push(sink: EngineEventSink): PushControl {
    if (this.#consumed) throw new EngineError('ENGINE_OPTIONS_INVALID', 'a stream is read once, through body or push')
    this.#consumed = true
    this.#sink = sink
    this.#parser = new SseParser({ maxEventBytes: this.#limits.maxResponseBytes })
    this.#pump()
    return {
      resume: () => {
        if (!this.#sinkPaused) return
        this.#sinkPaused = false
        this.#pump()
      },
      cancel: () => {
        if (!this.#sinkEnded) this.cancel(cancelled('the consumer stopped reading'))
      },
    }
  }

  /** Push mode: deliver what is queued, until the queue is empty, the sink pauses, or the stream ends. */
  #pump(): void {
    // Re-entry (the sink cancelling or resuming from inside event()) is picked up by the running loop.
    if (this.#pumping || this.#sinkEnded) return
    this.#pumping = true
    const sink = this.#sink!
    const parser = this.#parser!
    try {
      for (;;) {
        // A cancel ends the stream even while the sink is paused (a slow client that went away).
        if (this.#failure !== null && this.#failure.code === 'ENGINE_CANCELLED') return this.#endPush(this.#failure)
        if (this.#sinkPaused) return
        if (!this.#loaded) {
          const chunk = this.#take()
          if (chunk === null) {
            if (this.#failure !== null) return this.#endPush(withStreamDetails(this.#failure, parser.events, parser.pendingBytes))
            if (this.#ended) {
              return this.#endPush(this.#endedEarly(parser))
            }
            return // more bytes will come (onResponseData notifies)
          }
          parser.feed(chunk)
          this.#loaded = true
        }
        const event = parser.next()
        if (event === null) {
          this.#loaded = false
          continue
        }
        if (event.done) {
          this.#drain()
          // Ended only once the last event is taken: a sink that throws on it still gets end(error).
          sink.event(event.bytes, true)
          this.#sinkEnded = true
          sink.end()
          return
        }
        if (!sink.event(event.bytes)) this.#sinkPaused = true
      }
    } catch (e) {
      // A parse failure (ENGINE_BAD_RESPONSE) or a throwing sink: stop the engine, report once.
      this.#endPush(e instanceof EngineError ? e : badResponse('sink', {}))
    } finally {
      this.#pumping = false
    }
  }

  /** The upstream ended the response cleanly but without [DONE]: the same error for events() and push. */
  #endedEarly(parser: SseParser): EngineError {
    return new EngineError('ENGINE_STREAM_INTERRUPTED', 'the engine ended the stream before data: [DONE]', {
      details: { reason: 'ended', events: parser.events, pendingBytes: parser.pendingBytes, bytes: this.#received },
    })
  }

  #endPush(error: EngineError): void {
    if (this.#sinkEnded) return
    this.#sinkEnded = true
    // As events()'s finally: an unfinished stream must not leave the engine generating.
    this.cancel(cancelled('the consumer stopped reading'))
    this.#detach()
    this.#sink!.end(error)
  }

  #take(): Buffer | null {
    if (this.#chunkHead >= this.#chunks.length) return null
    const chunk = this.#chunks[this.#chunkHead]!
    this.#chunks[this.#chunkHead++] = EMPTY_BUFFER
    this.#bytes -= chunk.length
    if (this.#chunkHead === this.#chunks.length) {
      this.#chunks = []
      this.#chunkHead = 0
    }
    if (this.#controller !== null && this.#controller.paused && this.#bytes <= LOW_WATER) this.#controller.resume()
    return chunk
  }

  /** After [DONE]: stop listening to the client and read the rest for the pool's sake. */
  #drain(): void {
    this.#detach()
    this.#chunks = []
    this.#chunkHead = 0
    this.#bytes = 0
    if (this.#phase !== 'stream') return
    if (this.#ended) {
      this.#phase = 'done'
      return
    }
    this.#phase = 'draining'
    this.#received = 0
    if (this.#controller?.paused) this.#controller.resume()
  }

  #notify(): void {
    if (this.#sink !== null) {
      this.#pump()
      return
    }
    const wake = this.#wake
    if (wake !== null) {
      this.#wake = null
      wake()
    }
  }

  #abortWith(e: EngineError): void {
    this.#phase = 'done'
    this.#detach()
    this.#settleHead(e)
    this.#controller?.abort(e)
  }

  #settleHead(result: Head | EngineError): void {
    if (this.#headSettled) return
    this.#headSettled = true
    if (result instanceof EngineError) this.#rejectHead(result)
    else this.#resolveHead(result)
  }

  #detach(): void {
    this.#signal?.removeEventListener('abort', this.#onAbort)
  }

  /** The error for a non-2xx status, from the status and the error body's tokens. */
  #statusError(): EngineError {
    const body = this.#chunks.length === 0 ? new Uint8Array(0) : Buffer.concat(this.#chunks).subarray(0, ERROR_BODY_MAX)
    this.#chunks = []
    return statusError(this.#status, upstreamErrorTokens(body), this.#retryAfter, this.#op)
  }
}

const EMPTY_BUFFER = Buffer.alloc(0)

/** The upstream's `error.type` / `error.code` (OpenAI, llama.cpp) or top-level ones (vLLM's `{object:"error"}`), if identifier-like. */
export function upstreamErrorTokens(body: Uint8Array): { type?: string; code?: string } {
  let parsed: unknown
  try {
    parsed = JSON.parse(utf8.decode(body))
  } catch {
    return {}
  }
  if (!isObject(parsed)) return {}
  const source = isObject(parsed.error) ? parsed.error : parsed
  const out: { type?: string; code?: string } = {}
  const type = token(source.type)
  const code = token(source.code)
  if (type !== undefined) out.type = type
  if (code !== undefined) out.code = code
  return out
}

function token(v: unknown): string | undefined {
  const s = typeof v === 'number' && Number.isInteger(v) ? String(v) : v
  return typeof s === 'string' && TOKEN_RE.test(s) ? s : undefined
}

/** Map a non-2xx upstream status to its code. */
function statusError(status: number, tokens: { type?: string; code?: string }, retryAfter: string | undefined, op: 'request' | 'models'): EngineError {
  const details: Record<string, unknown> = { upstreamStatus: status }
  if (tokens.type !== undefined) details.upstreamType = tokens.type
  if (tokens.code !== undefined) details.upstreamCode = tokens.code
  const withRetry = retryAfter === undefined ? {} : { retryAfter }
  if (retryAfter !== undefined) details.retryAfter = retryAfter
  const make = (code: EngineErrorCode, message: string, extra: { status?: number } = {}) =>
    new EngineError(code, message, { details, ...withRetry, ...extra })
  if (status === 429) return make('ENGINE_RATE_LIMITED', 'the engine is rate limiting (429)')
  if (status === 502 || status === 503) return make('ENGINE_UNAVAILABLE', `the engine is unavailable (${status})`)
  if (status >= 500) return make('ENGINE_UPSTREAM_ERROR', `the engine failed (${status})`)
  // A 404 on GET /v1/models means the engine lacks the route, not a model.
  if (op === 'models') return make('ENGINE_UPSTREAM_ERROR', `the engine refused the model list (${status})`)
  if (status === 404 || tokens.code === 'model_not_found') return make('ENGINE_MODEL_NOT_FOUND', 'the engine does not serve this model')
  if (status >= 400) return make('ENGINE_BAD_REQUEST', `the engine rejected the request (${status})`, { status })
  return make('ENGINE_BAD_RESPONSE', `the engine answered an unexpected status (${status})`)
}

/** Map an undici/socket error to its code, by where in the exchange it struck. */
function transportError(err: Error, phase: Phase, limits: Limits, status: number, received: number): EngineError {
  const raw = (err as { code?: unknown }).code
  const code = typeof raw === 'string' ? raw : 'unknown'
  const details = { transportCode: code, upstreamStatus: status || undefined, bytes: received }
  if (code === 'UND_ERR_HEADERS_TIMEOUT') {
    return new EngineError('ENGINE_TIMEOUT', `no response headers within ${limits.headersTimeoutMs} ms`, {
      details: { ...details, phase: 'headers', timeoutMs: limits.headersTimeoutMs },
    })
  }
  if (code === 'UND_ERR_BODY_TIMEOUT') {
    return new EngineError('ENGINE_TIMEOUT', `no response bytes within ${limits.bodyTimeoutMs} ms`, {
      details: { ...details, phase: 'body', timeoutMs: limits.bodyTimeoutMs },
    })
  }
  // llhttp rejected the bytes: the engine does not speak HTTP/1.1 properly.
  // (Its error may have no code; its `data` holds response bytes, which is why no cause is kept.)
  if (err.name === 'HTTPParserError' || code.startsWith('HPE_') || code === 'UND_ERR_HEADERS_OVERFLOW') {
    return badResponse('http', details)
  }
  if (phase === 'waiting') {
    return new EngineError('ENGINE_UNAVAILABLE', 'the engine could not be reached or dropped the connection before answering', {
      details: { ...details, reason: 'connection' },
    })
  }
  if (phase === 'stream') {
    return new EngineError('ENGINE_STREAM_INTERRUPTED', 'the engine dropped the connection mid-stream', {
      details: { ...details, reason: 'connection' },
    })
  }
  return badResponse('truncated', details)
}

function withStreamDetails(e: EngineError, events: number, pendingBytes: number): EngineError {
  if (e.code !== 'ENGINE_STREAM_INTERRUPTED' && e.code !== 'ENGINE_TIMEOUT') return e
  Object.assign(e.details, { events, pendingBytes })
  return e
}

function badResponse(reason: string, details: Record<string, unknown>): EngineError {
  return new EngineError('ENGINE_BAD_RESPONSE', `the engine sent a bad response (${reason})`, { details: { reason, ...details } })
}

/**
 * A cheap check that a plain body is a JSON document: first non-blank byte `{`
 * or `[`, last `}` or `]`. It catches HTML error pages, text and truncation
 * without parsing a large embeddings body inside the enclave; the client
 * parses it anyway.
 */
function looksLikeJson(bytes: Uint8Array): boolean {
  let s = 0
  let e = bytes.length
  while (s < e && isWhitespace(bytes[s]!)) s++
  while (e > s && isWhitespace(bytes[e - 1]!)) e--
  if (s >= e) return false
  const first = bytes[s]
  const last = bytes[e - 1]
  return (first === 0x7b && last === 0x7d) || (first === 0x5b && last === 0x5d)
}

function isWhitespace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d
}

function headerValue(v: string | string[] | undefined): string {
  return Array.isArray(v) ? (v[0] ?? '') : (v ?? '')
}

function mediaTypeOf(contentType: string): string {
  const semi = contentType.indexOf(';')
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase()
}

function checkRetryAfter(v: string): string | undefined {
  const s = v.trim()
  return RETRY_AFTER_RE.test(s) ? s : undefined
}

function checkBaseUrl(options: HttpEngineOptions): URL {
  let url: URL
  try {
    url = new URL(options.baseUrl)
  } catch {
    throw new EngineError('ENGINE_OPTIONS_INVALID', 'baseUrl is not a URL; give the engine origin, e.g. http://127.0.0.1:8000')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new EngineError('ENGINE_OPTIONS_INVALID', `baseUrl must be http: or https:, not ${url.protocol}`)
  }
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new EngineError('ENGINE_OPTIONS_INVALID', 'baseUrl must have no query, fragment or credentials; pass the key as apiKey')
  }
  if (/\/v1\/?$/.test(url.pathname)) {
    throw new EngineError('ENGINE_OPTIONS_INVALID', 'baseUrl must not end in /v1: give the origin (the engine adds /v1/...)')
  }
  if (!options.allowNonLoopback && !isLoopback(url.hostname)) {
    throw new EngineError('ENGINE_OPTIONS_INVALID', 'baseUrl must be a loopback address (127.0.0.0/8, ::1, localhost): plaintext must not leave the CVM; set allowNonLoopback only for a network inside the trust domain')
  }
  return url
}

function isLoopback(hostname: string): boolean {
  if (hostname === 'localhost' || hostname === '[::1]') return true
  const parts = hostname.split('.')
  return parts.length === 4 && parts[0] === '127' && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)
}

function checkPositiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v <= 0) {
    throw new EngineError('ENGINE_OPTIONS_INVALID', `${name} must be a positive integer, got ${String(v)}`)
  }
  return v
}
