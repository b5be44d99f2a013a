/**
 * The enclave: everything that may see plaintext, behind the narrow
 * `Enclave` interface of types.ts.
 *
 * One request: decapsulate (OHTTP, the epoch's key; unknown/expired key,
 * tampering, replay and malformed Binary HTTP are refused before anything is
 * answered) → check the inner request (method, path, JSON with a model) →
 * forward it to the engine → answer inside the encryption:
 *
 *   - streamed: a chunked OHTTP response whose first chunk is the Binary HTTP
 *     head and where every engine SSE event becomes one content chunk, sealed
 *     and handed to the gateway at once; the final chunk carries the trailer
 *     `cgw-receipt` (the signed EIP-712 receipt, base64 JSON). An engine that
 *     fails mid-stream (stall, drop, garbage) yields one `event: error` SSE
 *     event and a final chunk with the trailer `cgw-error` instead of a
 *     receipt — never a silent cut;
 *   - not streamed: one Binary HTTP response with the receipt as a trailer;
 *   - errors after decryption (bad inner request, unknown model, engine
 *     4xx/429/5xx) are inner responses with their own status and an
 *     OpenAI-style error body: the client sees them, the gateway does not.
 *
 * The gateway learns an outcome code per request (for metrics) and nothing
 * else. No plaintext is logged, thrown or stored here.
 */
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
  generateOhttpKeyPair,
  type DecapsulatedRequest,
  type OhttpKeyPair,
} from './ohttp/index.ts'
import { createBodyHasher, createMemoryReceiptLog, issueReceipt, NO_CHAIN_RECEIPT_DOMAIN, type ReceiptDomain, type ReceiptLog } from './receipts.ts'
import type { Enclave, EncapsulatedResponse, Engine, EventLogProvider, HandleOutcome, QuoteProvider } from './types.ts'

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
  /** Replay window; at least epoch length + grace (a later replay meets a destroyed key). Default that sum. */
  readonly replayWindowMs?: number
  /** Bound on remembered requests; when full of live entries new requests are refused. Default 1,000,000. */
  readonly replayMaxEntries?: number
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
  return { status: 500, code: 'ENCLAVE_INTERNAL', type: 'server_error' }
}

/** The model a JSON request names, or an inner 400. */
function modelOf(content: Uint8Array): string | InnerError {
  let body: unknown
  try {
    body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(content))
  } catch {
    return { status: 400, code: 'ENCLAVE_REQUEST_NOT_JSON', type: 'invalid_request_error' }
  }
  const model = (body as { model?: unknown } | null)?.model
  if (typeof model !== 'string' || model.length === 0 || model.length > 256) {
    return { status: 400, code: 'ENCLAVE_REQUEST_NO_MODEL', type: 'invalid_request_error' }
  }
  return model
}

function b64json(v: unknown): string {
  return Buffer.from(JSON.stringify(v)).toString('base64')
}

/** Build the enclave (keys for the first epoch are made here, in memory). */
export async function createEnclave(o: CreateEnclaveOptions): Promise<Enclave> {
  const now = o.now ?? Date.now
  const receiptLog = o.receiptLog ?? createMemoryReceiptLog()
  const domain = o.receiptDomain ?? NO_CHAIN_RECEIPT_DOMAIN
  const epochs: EpochManager<OhttpKeyPair> = await createEpochManager({
    epochLengthMs: o.epochLengthMs,
    graceMs: o.graceMs,
    now,
    newOhttpKey: (keyId) => generateOhttpKeyPair(keyId),
  })
  const evidence = createEvidenceSource({
    quotes: o.quotes,
    eventLog: o.eventLog,
    gpu: o.gpu,
    epochs,
    logPublicKey: o.logPublicKey ?? null,
  })
  const replay = createReplayCache({
    windowMs: o.replayWindowMs ?? o.epochLengthMs + o.graceMs,
    maxEntries: o.replayMaxEntries ?? 1_000_000,
    now,
  })
  const ohttp = createOhttpServer({
    replay,
    keys: (keyId) => {
      const found = epochs.lookup(keyId)
      if (found.status === 'expired') {
        throw new EnclaveError('ENCLAVE_OHTTP_EPOCH_EXPIRED', 'the key id belongs to an expired epoch', { details: { keyId } })
      }
      return found.status === 'live' ? found.epoch.ohttpKey : undefined
    },
  })
  let closed = false

  /** The epoch whose key signs a receipt: the one that decrypted the request while it lives, else the current one. */
  function signer(epoch: Epoch<OhttpKeyPair>): Epoch<OhttpKeyPair> {
    return epochs.live().find((e) => e.number === epoch.number) ?? epochs.current()
  }

  async function receiptFor(epoch: Epoch<OhttpKeyPair>, model: string, requestHash: `0x${string}`, responseHash: `0x${string}`) {
    const e = signer(epoch)
    return issueReceipt({
      signingKey: e.signingKey,
      log: receiptLog,
      domain,
      requestHash,
      responseHash,
      model,
      epoch: e.number,
      time: BigInt(Math.floor(now() / 1000)),
    })
  }

  async function answer(
    req: DecapsulatedRequest,
    epoch: Epoch<OhttpKeyPair>,
    signal: AbortSignal,
  ): Promise<EncapsulatedResponse> {
    let resolveOutcome!: (o: HandleOutcome) => void
    const outcome = new Promise<HandleOutcome>((r) => (resolveOutcome = r))
    const done = (code: string, innerStatus: number, stream: boolean) => resolveOutcome({ code, innerStatus, stream, epoch: epoch.number.toString() })

    const single = async (status: number, headers: Record<string, string>, content: Uint8Array, trailers: Record<string, string>, code: string) => {
      const sealed = await req.respond.seal(encodeBhttpResponse({ status, headers, content, trailers }))
      done(code, status, false)
      return {
        contentType: sealed.contentType,
        chunks: (async function* () {
          yield sealed.body
        })(),
        outcome,
      }
    }
    const fail = (e: InnerError) =>
      single(e.status, { 'content-type': 'application/json', ...(e.retryAfter ? { 'retry-after': e.retryAfter } : {}) }, errorBody(e), {}, e.code)

    const { method, path, content } = req.request
    const route = path.split('?')[0]!
    if (method !== 'POST' || !FORWARDED_PATHS.has(route)) {
      return fail({ status: method !== 'POST' && FORWARDED_PATHS.has(route) ? 405 : 404, code: 'ENCLAVE_ROUTE_NOT_FOUND', type: 'invalid_request_error' })
    }
    const model = modelOf(content)
    if (typeof model !== 'string') return fail(model)
    const requestHash = createBodyHasher().update(content).digest()

    let upstream: Awaited<ReturnType<Engine['request']>>
    try {
      upstream = await o.engine.request(route, content, { signal })
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
      const receipt = await receiptFor(epoch, model, requestHash, createBodyHasher().update(body).digest())
      return single(upstream.status, { 'content-type': upstream.contentType }, body, { [RECEIPT_TRAILER]: b64json(receipt) }, 'ok')
    }

    const sealer = await req.respond.chunkedSealer()
    const hasher = createBodyHasher()
    const stream = upstream
    async function* chunks(): AsyncGenerator<Uint8Array> {
      let code = 'ok'
      try {
        yield sealer.seal(beginResponse(stream.status, { 'content-type': stream.contentType }))
        let trailer: Record<string, string>
        try {
          for await (const event of stream.body) {
            if (event.length === 0) continue
            hasher.update(event)
            yield sealer.seal(contentChunk(event))
          }
          trailer = { [RECEIPT_TRAILER]: b64json(await receiptFor(epoch, model as string, requestHash, hasher.digest())) }
        } catch (e) {
          const inner = innerErrorOf(e)
          code = inner.code
          if (code === 'ENGINE_CANCELLED') return // the client is gone: nothing to tell it
          yield sealer.seal(contentChunk(`event: error\ndata: ${JSON.stringify({ error: { type: inner.type, code: inner.code } })}\n\n`))
          trailer = { [ERROR_TRAILER]: inner.code }
        }
        yield sealer.seal(endResponse(trailer), true)
      } finally {
        done(code, stream.status, true)
      }
    }
    return { contentType: sealer.contentType, chunks: chunks(), outcome }
  }

  return {
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
      const req = await ohttp.decapsulate(encapsulated, contentType)
      // The epoch whose key decrypted it (it may have retired meanwhile: then the current one signs).
      const found = epochs.lookup(req.keyId)
      return answer(req, found.status === 'live' ? found.epoch : epochs.current(), signal)
    },
    async models(options) {
      const list = await o.engine.models(options?.signal ? { signal: options.signal } : {})
      return list.map((m) => m.id)
    },
    status() {
      const e = epochs.current()
      return { epoch: e.number.toString(), ready: !closed, signingAddress: e.signingKey.address }
    },
    async close() {
      if (closed) return
      closed = true
      epochs.close()
      await o.engine.close()
    },
  }
}
