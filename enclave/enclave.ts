/**
 * The enclave: everything that may see plaintext, behind the narrow
 * `Enclave` interface of types.ts.
 *
 * One request: decapsulate (OHTTP, the epoch's key; unknown/expired key,
 * tampering, replay and malformed Binary HTTP are refused before anything is
 * answered; a request without a fresh `date` field gets an encapsulated 400
 * with the enclave's Date, RFC 9458 §6.5) → check the inner request (method,
 * path, JSON with a model) → forward it to the engine → answer inside the
 * encryption:
 *
 *   - streamed: a chunked OHTTP response whose first chunk is the Binary HTTP
 *     head and where every engine SSE event becomes one content chunk, sealed
 *     and handed to the gateway at once (the terminal `data: [DONE]` together
 *     with the final chunk, see answer()); the final chunk carries the trailer
 *     `cgw-receipt` (the signed EIP-712 receipt, base64 JSON). An engine that
 *     fails mid-stream (stall, drop, garbage) yields one `event: error` SSE
 *     event and a final chunk with the trailer `cgw-error` instead of a
 *     receipt — never a silent cut;
 *   - not streamed: one Binary HTTP response with the receipt as a trailer;
 *   - errors after decryption (bad inner request, unknown model, engine
 *     4xx/429/5xx) are inner responses with their own status and an
 *     OpenAI-style error body: the client sees them, the gateway does not.
 *
 * The receipt is signed by the key of the epoch that decrypted the request,
 * even after a rotation; if that key is destroyed before the response ends
 * (the epoch's grace is over), the stream ends with ENCLAVE_RECEIPT_KEY_DESTROYED
 * instead — never a receipt by another epoch's key.
 *
 * A stream is pushed, not pulled: the engine hands each SSE event over
 * synchronously from its socket read (`Engine.request(...).push`), and it is
 * hashed, sealed and handed to the gateway's sink (`EncapsulatedResponse.pipe`)
 * in the same call — no promise or generator step per event. `chunks` is
 * the same stream as an async iterator, for consumers that pull.
 *
 * The gateway learns an outcome code per request (for metrics) and nothing
 * else. No plaintext is logged, thrown or stored here.
 */
import { randomBytes } from 'node:crypto'
import { ConfigError } from '../attestation/errors.ts'
import { EnclaveError } from './errors.ts'
import { EngineError } from './engines/errors.ts'
import { createEpochManager, type Epoch, type EpochManager } from './epochs.ts'
import { createEvidenceSource } from './evidence.ts'
import type { GpuEvidenceProvider } from './gpu/provider.ts'
import {
  beginResponse,
  contentChunk,
  createOhttpServer,
  createReplayCache,
  encodeBhttpResponse,
  encodeKeyConfigs,
  endResponse,
  formatHttpDate,
  generateOhttpKeyPair,
  requestOfDateError,
  type DecapsulatedRequest,
  type OhttpKeyPair,
} from './ohttp/index.ts'
import {
  createBodyHasher,
  createMemoryReceiptLog,
  hashBody,
  issueReceipt,
  NO_CHAIN_RECEIPT_DOMAIN,
  type ReceiptDomain,
  type ReceiptLog,
} from './receipts.ts'
import type { AttestationLogSink } from './log/sink.ts'
import { createAnchorWorker, type AnchorWorker, type CheckpointAnchorer } from './log/anchor-worker.ts'
import { loggedRegistrationEvidence } from './log/sink.ts'
import { createRegistrationEvidence } from './registration.ts'
import type {
  EncapsulatedChunkSink,
  Enclave,
  EnclaveRegistration,
  EncapsulatedResponse,
  Engine,
  EngineEventSink,
  EventLogProvider,
  HandleOutcome,
  PushControl,
  QuoteProvider,
  RegisteredEvent,
} from './types.ts'

/** Inner paths the enclave forwards (OpenAI API); anything else is an inner 404. */
export const FORWARDED_PATHS: ReadonlySet<string> = new Set(['/v1/chat/completions', '/v1/completions', '/v1/embeddings'])
/** Trailer carrying the receipt (base64 of its JSON, `ReceiptJson`). */
export const RECEIPT_TRAILER = 'cgw-receipt'
/** Trailer carrying the error code of a stream that failed after it started. */
export const ERROR_TRAILER = 'cgw-error'

export interface CreateEnclaveOptions {
  readonly engine: Engine
  readonly quotes: QuoteProvider
  readonly eventLog: EventLogProvider
  /** null for a TD without GPU (its evidence then binds NO_GPU_EVIDENCE_HASH). */
  readonly gpu: GpuEvidenceProvider | null
  readonly epochLengthMs: number
  readonly graceMs: number
  /** The clock (ms). Default Date.now. */
  readonly now?: () => number
  /** Default: an in-memory log (the transparency log replaces it). */
  readonly receiptLog?: ReceiptLog
  /** EIP-712 domain of receipts: the registry's when a chain is configured. */
  readonly receiptDomain?: ReceiptDomain
  /** The transparency log's public key, bound into REPORTDATA; null without a log. */
  readonly logPublicKey?: Uint8Array | null
  /** The attestation log (enclave/log/sink.ts): every evidence bundle and key epoch is recorded there. */
  readonly logSink?: AttestationLogSink | null
  /**
   * RFC 9458 §6.5: every inner request must carry a `date` field within
   * ±this many ms of `now` (ohttp/server.ts explains why). Default 60 000.
   */
  readonly requestDateWindowMs?: number
  /**
   * How long a request is remembered against replay. A replay is refused by
   * its date once 2 × requestDateWindowMs have passed since first sight, so
   * that (plus 1 ms) is the default and the least that is safe; the cache
   * then holds at most rate × 2 × window entries. A shorter window would let
   * a replay whose date still passes through after its entry expired, so
   * createEnclave refuses one (ATTESTATION_OPTIONS_INVALID).
   */
  readonly replayWindowMs?: number
  /** Bound on remembered requests; when full of live entries new requests are refused. Default 1,000,000. */
  readonly replayMaxEntries?: number
  /**
   * Run before every self-attestation (at start and after each rotation);
   * readiness waits for it. The attestation log archives the platform's
   * collateral here (log/collateral.ts), so that every evidence entry has
   * its collateral recorded before it.
   */
  readonly beforeSelfAttest?: () => Promise<void>
  /** Failures of background work (self-attestation, anchoring), already typed; default: ignored (readiness shows them). */
  readonly onError?: (error: unknown) => void
  /** First retry delay of a failed self-attestation, ms (doubling up to a minute). Default 1000. */
  readonly selfAttestRetryMs?: number
  /** Build for a chain: `Enclave.registration` appears (model and public URL recorded on-chain). */
  readonly registration?: {
    readonly model: string
    readonly url: string
    /** Where successful registrations are recorded (the attestation log). */
    readonly record?: (event: RegisteredEvent) => Promise<void>
  }
  /**
   * Anchor the attestation log's signed checkpoints on-chain with the current
   * epoch's key (log/anchor-worker.ts): at most one transaction per period.
   * Needs `logPublicKey` and a chain `receiptDomain`.
   */
  readonly anchoring?: {
    readonly anchorer: CheckpointAnchorer
    readonly periodMs: number
    /** The log writer's latest signed checkpoint. */
    readonly checkpoint: () => string | null
    readonly logId: `0x${string}`
  }
}

interface InnerError {
  readonly status: number
  readonly code: string
  readonly type: string
  readonly retryAfter?: string
}

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v))

/** An OpenAI-style error body: code and type only, a generic message (upstream messages may echo the prompt). */
function errorBody(e: InnerError): Uint8Array {
  return json({ error: { message: `request failed: ${e.code}`, type: e.type, code: e.code } })
}

function innerErrorOf(e: unknown): InnerError {
  if (e instanceof EngineError) {
    const retryAfter = typeof e.details.retryAfter === 'string' ? e.details.retryAfter : undefined
    return { status: e.status, code: e.code, type: e.type, ...(retryAfter ? { retryAfter } : {}) }
  }
  if (e instanceof EnclaveError && e.code === 'ENCLAVE_RECEIPT_KEY_DESTROYED') return { status: 500, code: e.code, type: 'server_error' }
  return { status: 500, code: 'ENCLAVE_INTERNAL', type: 'server_error' }
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * The model a JSON request names and whether it asks for a stream, or an
 * inner 400. The one parse of the body inside the enclave: the engine is
 * told `stream` instead of parsing again.
 */
function parseRequest(content: Uint8Array): { model: string; stream: boolean } | InnerError {
  let body: unknown
  try {
    body = JSON.parse(utf8.decode(content))
  } catch {
    return { status: 400, code: 'ENCLAVE_REQUEST_NOT_JSON', type: 'invalid_request_error' }
  }
  const fields = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as { model?: unknown; stream?: unknown }) : {}
  const model = fields.model
  if (typeof model !== 'string' || model.length === 0 || model.length > 256) {
    return { status: 400, code: 'ENCLAVE_REQUEST_NO_MODEL', type: 'invalid_request_error' }
  }
  return { model, stream: fields.stream === true }
}

/** RFC 9458 §6.5, RFC 9457: the problem type of a request refused for its date. */
export const DATE_PROBLEM_TYPE = 'https://iana.org/assignments/http-problem-types#date'
/** Default ± window of a request's `date` around the enclave clock (ms). */
export const DEFAULT_REQUEST_DATE_WINDOW_MS = 60_000

/** A response produced whole: nothing to resume or cancel. */
const IDLE_CONTROL: PushControl = Object.freeze({ resume() {}, cancel() {} })

/**
 * An EncapsulatedResponse from its push form: `pipe` as given (once), and
 * `chunks` as an async iterator over it for consumers that pull. Exported
 * so that other Enclave implementations (the gateway tests' fake) build
 * their responses the same way.
 */
export function responseOf(contentType: string, outcome: Promise<HandleOutcome>, start: (sink: EncapsulatedChunkSink) => PushControl): EncapsulatedResponse {
  let used = false
  const pipe = (sink: EncapsulatedChunkSink): PushControl => {
    if (used) throw new TypeError('an encapsulated response is read once, through chunks or pipe')
    used = true
    return start(sink)
  }
  const chunks: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
      const queue: Uint8Array[] = []
      let ended = false
      let failure: unknown
      let wake: (() => void) | null = null
      let control: PushControl | null = null
      const notify = () => {
        const w = wake
        wake = null
        w?.()
      }
      const started = (): PushControl =>
        (control ??= pipe({
          chunk(bytes) {
            queue.push(bytes)
            notify()
            return queue.length < PULL_QUEUE_CHUNKS
          },
          end(error) {
            ended = true
            failure = error
            notify()
          },
        }))
      return {
        async next(): Promise<IteratorResult<Uint8Array>> {
          const c = started()
          for (;;) {
            const value = queue.shift()
            if (value !== undefined) {
              if (queue.length < PULL_QUEUE_CHUNKS / 2) c.resume()
              return { value, done: false }
            }
            if (ended) {
              if (failure !== undefined) throw failure
              return { value: undefined, done: true }
            }
            await new Promise<void>((resolve) => (wake = resolve))
          }
        },
        async return(): Promise<IteratorResult<Uint8Array>> {
          // Stopping early, even before the first chunk, cancels the engine request.
          if (!ended) started().cancel()
          return { value: undefined, done: true }
        },
      }
    },
  }
  return { contentType, chunks, outcome, pipe }
}

/** Chunks an iterating consumer may have queued before the producer is paused. */
const PULL_QUEUE_CHUNKS = 32

/**
 * The push form of a stream that only offers an async iterable: an engine
 * other than the HTTP one (its `body`), or, exported, any producer of
 * encapsulated chunks (the gateway tests' fake enclave, through responseOf).
 */
export function pushFromIterable(body: AsyncIterable<Uint8Array>, sink: EngineEventSink): PushControl {
  const it = body[Symbol.asyncIterator]()
  let ended = false
  let waiting: (() => void) | null = null
  const end = (error?: unknown) => {
    if (ended) return
    ended = true
    sink.end(error)
  }
  void (async () => {
    try {
      for (;;) {
        const r = await it.next()
        if (ended) return
        if (r.done) break
        if (!sink.event(r.value)) {
          await new Promise<void>((resolve) => (waiting = resolve))
          if (ended) return
        }
      }
      end()
    } catch (e) {
      end(e)
    }
  })()
  const wakeUp = () => {
    const w = waiting
    waiting = null
    w?.()
  }
  return {
    resume: wakeUp,
    cancel() {
      if (ended) return
      end(new EngineError('ENGINE_CANCELLED', 'request cancelled: the consumer stopped reading'))
      void it.return?.()?.catch(() => {})
      wakeUp()
    },
  }
}

function b64json(v: unknown): string {
  return Buffer.from(JSON.stringify(v)).toString('base64')
}

/** Build the enclave (keys for the first epoch are made here, in memory). */
export async function createEnclave(o: CreateEnclaveOptions): Promise<Enclave> {
  // Checked before any key or timer exists: a refused config leaves nothing running.
  const dateWindowMs = o.requestDateWindowMs ?? DEFAULT_REQUEST_DATE_WINDOW_MS
  const replayWindowMs = o.replayWindowMs ?? 2 * dateWindowMs + 1
  // Negated so that NaN (or a non-number) is refused too: fail closed.
  if (!(replayWindowMs > 2 * dateWindowMs)) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'createEnclave: replayWindowMs must exceed 2 × requestDateWindowMs (a replay could pass once its entry expired)', {
      details: { replayWindowMs, requestDateWindowMs: dateWindowMs },
    })
  }
  const now = o.now ?? Date.now
  const receiptLog = o.receiptLog ?? createMemoryReceiptLog()
  const domain = o.receiptDomain ?? NO_CHAIN_RECEIPT_DOMAIN
  const epochListeners = new Set<() => void>()
  const epochs: EpochManager<OhttpKeyPair> = await createEpochManager({
    epochLengthMs: o.epochLengthMs,
    graceMs: o.graceMs,
    now,
    logSink: o.logSink ?? null,
    newOhttpKey: (keyId) => generateOhttpKeyPair(keyId),
    onChange: () => {
      void selfAttest()
      for (const l of epochListeners) l()
    },
    ...(o.onError ? { onError: o.onError } : {}),
  })
  const evidence = createEvidenceSource({
    quotes: o.quotes,
    eventLog: o.eventLog,
    gpu: o.gpu,
    epochs,
    logPublicKey: o.logPublicKey ?? null,
    logSink: o.logSink ?? null,
  })

  // Readiness is evidence, not a flag: the enclave attests itself (a fresh
  // random nonce) at start and after every rotation, and reports ready only
  // once the current epoch's evidence exists; failures retry with backoff.
  let readyEpoch: bigint | null = null
  let selfFailures = 0
  let selfTimer: NodeJS.Timeout | undefined
  let selfRunning: Promise<void> | null = null
  async function selfAttestOnce(): Promise<void> {
    const epoch = epochs.current().number
    await o.beforeSelfAttest?.()
    await evidence.attest(new Uint8Array(randomBytes(32)))
    if (epochs.current().number === epoch) readyEpoch = epoch
  }
  function selfAttest(): Promise<void> {
    if (closed) return Promise.resolve()
    clearTimeout(selfTimer)
    selfRunning ??= selfAttestOnce()
      .then(
        () => {
          selfFailures = 0
          // A rotation while it ran: that epoch needs its own evidence.
          if (!closed && readyEpoch !== epochs.current().number) scheduleSelfAttest(0)
        },
        (e: unknown) => {
          selfFailures++
          o.onError?.(e)
          scheduleSelfAttest(Math.min(60_000, (o.selfAttestRetryMs ?? 1000) * 2 ** Math.min(selfFailures - 1, 16)))
        },
      )
      .finally(() => {
        selfRunning = null
      })
    return selfRunning
  }
  function scheduleSelfAttest(ms: number): void {
    if (closed) return
    clearTimeout(selfTimer)
    selfTimer = setTimeout(() => void selfAttest(), ms)
    selfTimer.unref?.()
  }

  let anchor: AnchorWorker | undefined
  if (o.anchoring) {
    if (domain === NO_CHAIN_RECEIPT_DOMAIN) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'createEnclave: anchoring needs the chain receipt domain')
    anchor = createAnchorWorker({
      logId: o.anchoring.logId,
      checkpoint: o.anchoring.checkpoint,
      signDigest: (digest) => epochs.current().signingKey.signDigest(digest),
      domain,
      anchorer: o.anchoring.anchorer,
      periodMs: o.anchoring.periodMs,
      now,
      ...(o.onError ? { onError: o.onError } : {}),
    })
  }

  let registration: EnclaveRegistration | undefined
  if (o.registration) {
    if (!(o.logPublicKey instanceof Uint8Array) || !o.logSink) {
      throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'createEnclave: registration needs the attestation log (its key is the enclave id on-chain)')
    }
    const record = o.registration.record
    registration = {
      evidence: loggedRegistrationEvidence(
        createRegistrationEvidence({ quotes: o.quotes, gpu: o.gpu, epochs, logPublicKey: o.logPublicKey, model: o.registration.model, url: o.registration.url }),
        // Logged durably before the worker may submit it: the auditor sees every quote that went on-chain.
        { sink: o.logSink, epochs, eventLog: o.eventLog },
      ),
      epoch: () => epochs.current().number,
      onEpochChange(listener) {
        epochListeners.add(listener)
        return () => void epochListeners.delete(listener)
      },
      registered: async (event) => {
        await record?.(event)
      },
    }
  }
  const replay = createReplayCache({
    windowMs: replayWindowMs,
    maxEntries: o.replayMaxEntries ?? 1_000_000,
    now,
  })
  const ohttp = createOhttpServer({
    replay,
    requestDate: { windowMs: dateWindowMs, now },
    keys: (keyId) => {
      const found = epochs.lookup(keyId)
      if (found.status === 'expired') {
        throw new EnclaveError('ENCLAVE_OHTTP_EPOCH_EXPIRED', 'the key id belongs to an expired epoch', { details: { keyId } })
      }
      return found.status === 'live' ? found.epoch.ohttpKey : undefined
    },
  })
  let closed = false

  function keyDestroyed(epoch: Epoch<OhttpKeyPair>): EnclaveError {
    return new EnclaveError('ENCLAVE_RECEIPT_KEY_DESTROYED', 'the signing key of the epoch that decrypted this request is destroyed', {
      details: { epoch: epoch.number.toString() },
    })
  }

  /**
   * The receipt of one response, signed by the key of the epoch that
   * decrypted the request, whether or not it is still current. Once that
   * epoch's grace is over its key is destroyed, and the request ends with
   * ENCLAVE_RECEIPT_KEY_DESTROYED rather than a receipt signed by another
   * epoch's key (which would name an epoch whose key config the client never
   * encrypted to).
   */
  async function receiptFor(epoch: Epoch<OhttpKeyPair>, model: string, requestHash: `0x${string}`, responseHash: `0x${string}`) {
    if (epoch.signingKey.destroyed) throw keyDestroyed(epoch)
    return issueReceipt({
      signingKey: epoch.signingKey,
      log: receiptLog,
      domain,
      requestHash,
      responseHash,
      model,
      epoch: epoch.number,
      time: BigInt(Math.floor(now() / 1000)),
    }).catch((err: unknown) => {
      // issueReceipt signs inside the log append, once the log has assigned
      // the index (the append may first wait behind other entries): the key
      // may have been destroyed meanwhile.
      throw epoch.signingKey.destroyed && !closed ? keyDestroyed(epoch) : err
    })
  }

  /** A whole (non-streamed) inner response, sealed; its outcome is settled at once. */
  async function single(
    req: DecapsulatedRequest,
    epoch: string,
    status: number,
    headers: Record<string, string>,
    content: Uint8Array,
    trailers: Record<string, string>,
    code: string,
  ): Promise<EncapsulatedResponse> {
    const sealed = await req.respond.seal(encodeBhttpResponse({ status, headers, content, trailers }))
    const outcome = Promise.resolve<HandleOutcome>({ code, innerStatus: status, stream: false, epoch })
    return responseOf(sealed.contentType, outcome, (sink) => {
      sink.chunk(sealed.body)
      sink.end()
      return IDLE_CONTROL
    })
  }

  /**
   * RFC 9458 §6.5: a request refused for its `date` is answered inside the
   * encryption — 400, the gateway's Date (so the client can correct its
   * clock and retry), and the `date` problem type (RFC 9457).
   */
  function refuseDate(req: DecapsulatedRequest, e: EnclaveError): Promise<EncapsulatedResponse> {
    const found = epochs.lookup(req.keyId)
    const epoch = (found.status === 'live' ? found.epoch : epochs.current()).number.toString()
    const problem = json({ type: DATE_PROBLEM_TYPE, title: 'date field in request outside of acceptable range', status: 400, code: e.code })
    const headers = { 'content-type': 'application/problem+json', date: formatHttpDate(now()), 'cache-control': 'no-store' }
    return single(req, epoch, 400, headers, problem, {}, e.code)
  }

  async function answer(
    req: DecapsulatedRequest,
    epoch: Epoch<OhttpKeyPair>,
    signal: AbortSignal,
  ): Promise<EncapsulatedResponse> {
    const epochLabel = epoch.number.toString()
    const fail = (e: InnerError) =>
      single(req, epochLabel, e.status, { 'content-type': 'application/json', ...(e.retryAfter ? { 'retry-after': e.retryAfter } : {}) }, errorBody(e), {}, e.code)

    const { method, path, content } = req.request
    const route = path.split('?')[0]!
    if (method !== 'POST' || !FORWARDED_PATHS.has(route)) {
      return fail({ status: method !== 'POST' && FORWARDED_PATHS.has(route) ? 405 : 404, code: 'ENCLAVE_ROUTE_NOT_FOUND', type: 'invalid_request_error' })
    }
    const parsed = parseRequest(content)
    if ('status' in parsed) return fail(parsed)
    const { model } = parsed
    const requestHash = hashBody(content)

    let upstream: Awaited<ReturnType<Engine['request']>>
    try {
      // The body was parsed once here; the engine need not parse it again for `stream`.
      upstream = await o.engine.request(route, content, { signal, stream: parsed.stream })
    } catch (e) {
      return fail(innerErrorOf(e))
    }

    if (!upstream.stream) {
      const parts: Uint8Array[] = []
      try {
        for await (const part of upstream.body) parts.push(part)
      } catch (e) {
        return fail(innerErrorOf(e))
      }
      const body = Buffer.concat(parts)
      let receipt: Awaited<ReturnType<typeof receiptFor>>
      try {
        receipt = await receiptFor(epoch, model, requestHash, hashBody(body))
      } catch (e) {
        return fail(innerErrorOf(e))
      }
      return single(req, epochLabel, upstream.status, { 'content-type': upstream.contentType }, body, { [RECEIPT_TRAILER]: b64json(receipt) }, 'ok')
    }

    const sealer = await req.respond.chunkedSealer()
    const hasher = createBodyHasher()
    const stream = upstream
    let resolveOutcome!: (o: HandleOutcome) => void
    const outcome = new Promise<HandleOutcome>((r) => (resolveOutcome = r))

    /*
     * The whole stream is driven by the engine's socket reads: each event is
     * hashed, sealed and handed to the sink synchronously (no promise per
     * event); only the receipt at the end is asynchronous.
     *
     * One exception: the terminal event (`data: [DONE]`, which the engine
     * marks `last`) is sealed at once but handed over together with the
     * final chunk that carries the receipt. It says nothing a client can use
     * before the receipt (the response is complete only with the final
     * chunk), and sent alone it cost a socket write on the gateway and a
     * wake-up and read on the client per request, in the latency of every
     * response's end.
     */
    return responseOf(sealer.contentType, outcome, (sink) => {
      let ended = false
      let engineDone = false
      /** The sealed terminal event, waiting for the final chunk. */
      let held: Uint8Array | null = null
      const release = () => {
        const h = held
        held = null
        if (h !== null) sink.chunk(h)
      }
      const finish = (code: string, error?: unknown) => {
        if (ended) return
        ended = true
        resolveOutcome({ code, innerStatus: stream.status, stream: true, epoch: epochLabel })
        sink.end(error)
      }
      const failInside = (e: unknown) => {
        if (ended) return
        const inner = innerErrorOf(e)
        // The client is gone (or the consumer stopped): nothing to tell it, the response is cut.
        if (inner.code === 'ENGINE_CANCELLED') return finish(inner.code, e)
        try {
          release()
          sink.chunk(sealer.seal(contentChunk(`event: error\ndata: ${JSON.stringify({ error: { type: inner.type, code: inner.code } })}\n\n`)))
          sink.chunk(sealer.seal(endResponse({ [ERROR_TRAILER]: inner.code }), true))
        } catch (x) {
          return finish(inner.code, x)
        }
        finish(inner.code)
      }
      const events: EngineEventSink = {
        event(bytes, last) {
          if (ended) return false
          if (bytes.length === 0) return true
          hasher.update(bytes)
          const sealed = sealer.seal(contentChunk(bytes))
          if (last === true) {
            held = sealed
            return true
          }
          return sink.chunk(sealed)
        },
        end(error) {
          engineDone = true
          if (error !== undefined) return failInside(error)
          receiptFor(epoch, model, requestHash, hasher.digest()).then(
            (receipt) => {
              if (ended) return
              try {
                release()
                sink.chunk(sealer.seal(endResponse({ [RECEIPT_TRAILER]: b64json(receipt) }), true))
              } catch (x) {
                return finish('ENCLAVE_INTERNAL', x)
              }
              finish('ok')
            },
            failInside,
          )
        },
      }
      sink.chunk(sealer.seal(beginResponse(stream.status, { 'content-type': stream.contentType })))
      const control = stream.push ? stream.push(events) : pushFromIterable(stream.body, events)
      return {
        resume: () => control.resume(),
        cancel: () => {
          if (!engineDone) control.cancel()
          else finish('ENGINE_CANCELLED', new EngineError('ENGINE_CANCELLED', 'request cancelled: the consumer stopped reading'))
        },
      }
    })
  }

  const enclave: Enclave = {
    keyConfigs: () => encodeKeyConfigs(epochs.live().map((e) => e.ohttpKey.keyConfig)),
    attest: (nonce, options) => {
      if (closed) return Promise.reject(new EnclaveError('ENCLAVE_CLOSED', 'the enclave is closed'))
      return evidence.attest(nonce, options)
    },
    async handle(encapsulated, contentType, { signal }) {
      if (closed) throw new EnclaveError('ENCLAVE_CLOSED', 'the enclave is closed')
      // The manager's timer rotates too; checking here keeps a late timer
      // (a suspended VM) from serving an epoch past its window.
      await epochs.rotateIfDue()
      // The epoch whose key will decrypt it: looked up before and after
      // decapsulation, so that a rotation in between (which could give the
      // key id to a new epoch) is noticed rather than misattributed.
      const before = encapsulated.length > 0 ? epochs.lookup(encapsulated[0]!) : null
      let req: DecapsulatedRequest
      try {
        req = await ohttp.decapsulate(encapsulated, contentType)
      } catch (e) {
        const refused = requestOfDateError(e)
        if (refused === undefined) throw e
        return refuseDate(refused, e as EnclaveError)
      }
      const after = epochs.lookup(req.keyId)
      if (before?.status !== 'live' || after.status !== 'live' || after.epoch !== before.epoch) {
        throw new EnclaveError('ENCLAVE_OHTTP_EPOCH_EXPIRED', 'the epoch of this key id ended while the request was being decrypted', { details: { keyId: req.keyId } })
      }
      // That epoch's key alone signs the receipt (receiptFor), even once the epoch is no longer current.
      return answer(req, after.epoch, signal)
    },
    async models(options) {
      const list = await o.engine.models(options?.signal ? { signal: options.signal } : {})
      return list.map((m) => m.id)
    },
    status() {
      const e = epochs.current()
      return { epoch: e.number.toString(), ready: !closed && readyEpoch === e.number, signingAddress: e.signingKey.address }
    },
    ...(registration ? { registration } : {}),
    async close() {
      if (closed) return
      closed = true
      clearTimeout(selfTimer)
      anchor?.stop()
      await selfRunning
      epochs.close()
      await o.engine.close()
    },
  }
  void selfAttest()
  return enclave
}
