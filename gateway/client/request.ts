/**
 * One encrypted exchange with a verified provider: the OpenAI request goes
 * into a Binary HTTP request (RFC 9292) carrying a `date` field (RFC 9458
 * §6.5: the gateway bounds its replay window by it), is encapsulated to the
 * attested key config (chunked OHTTP), sent to the gateway — or to an
 * RFC 9458 relay, so the provider never sees the client's address — and the
 * answer is decrypted chunk by chunk as it streams in.
 *
 * The content chunks are handed to the caller as they verify; the response
 * is complete only when the iteration ends, which is when the receipt
 * (trailer `cgw-receipt`) has been checked against what was sent and what
 * was decrypted. Anything altered, reordered, replayed or cut throws
 * CLIENT_RESPONSE_INVALID from the iteration; a bad or missing receipt
 * throws at its end. Error answers of the engine (inner 4xx/5xx) carry no
 * receipt; they are returned with their status for the caller to judge.
 */
import { request as undiciRequest, type Dispatcher } from 'undici'
import type { Hex } from 'viem'
import { createBodyHasher, hashBody } from '../../enclave/receipts.ts'
import { decodeBhttpResponseStream, encapsulateRequest, encodeBhttpRequest, type BhttpField, type BhttpResponseEvent } from '../../enclave/ohttp/index.ts'
import { MAX_ERROR_BODY_BYTES, readLimited } from './body.ts'
import { ClientError, codeInBody, reasonOf } from './errors.ts'
import type { ReceiptVerifier, VerifiedReceipt } from './receipt.ts'
import type { VerifiedProvider } from './verify.ts'

/** The trailer names the enclave uses (enclave/enclave.ts). */
export const RECEIPT_TRAILER = 'cgw-receipt'
export const ERROR_TRAILER = 'cgw-error'

/** The outer HTTP exchange: POST the encapsulated request, get status, content type and the body as it streams. */
export type OhttpTransport = (
  target: string,
  body: Uint8Array,
  contentType: string,
  signal: AbortSignal | undefined,
) => Promise<{ readonly status: number; readonly headers: Readonly<Record<string, string | string[] | undefined>>; readonly body: AsyncIterable<Uint8Array> }>

/** The default transport: undici over a keep-alive dispatcher. */
export function createUndiciTransport(dispatcher?: Dispatcher): OhttpTransport {
  return async (target, body, contentType, signal) => {
    const res = await undiciRequest(target, {
      method: 'POST',
      body,
      headers: { 'content-type': contentType },
      ...(dispatcher ? { dispatcher } : {}),
      ...(signal ? { signal } : {}),
    })
    return { status: res.statusCode, headers: res.headers, body: res.body }
  }
}

export interface ExchangeParameters {
  readonly provider: VerifiedProvider
  readonly receipts: ReceiptVerifier
  /** Inner path, e.g. `/v1/chat/completions`. */
  readonly path: string
  /** The JSON body bytes (what the receipt's requestHash covers). */
  readonly body: Uint8Array
  /** The model the body names (the receipt must name it too). */
  readonly model: string
  readonly transport: OhttpTransport
  /** Where to POST: the gateway's `/v1/ohttp` or a relay resource. */
  readonly target: string
  readonly now: () => Date
  readonly signal?: AbortSignal
}

/** A decrypted answer: head now, content as it streams, the receipt once the content is done. */
export interface DecryptedResponse {
  /** Inner HTTP status (the engine's, or the enclave's error status). */
  readonly status: number
  readonly headers: readonly BhttpField[]
  readonly contentType: string
  /** Content chunks (one SSE event each when streamed); ends after the receipt checked out. Iterate once. */
  readonly content: AsyncIterable<Uint8Array>
  /** Set once `content` has ended: the checked receipt (null for inner error statuses, which carry none). */
  receipt(): VerifiedReceipt | null
  readonly requestHash: Hex
  /** keccak256 of the content, once ended. */
  responseHash(): Hex | null
}

/** The inner Binary HTTP request bytes for one OpenAI call (exported for tests of the wire form). */
export function encodeInnerRequest(url: string, path: string, body: Uint8Array, now: Date): Uint8Array {
  const authority = new URL(url).host
  return encodeBhttpRequest({
    method: 'POST',
    scheme: 'https',
    authority,
    path,
    // RFC 9110 §5.6.7 IMF-fixdate is what toUTCString() writes.
    headers: [
      ['content-type', 'application/json'],
      ['date', now.toUTCString()],
    ],
    content: body,
  })
}

/** The enclave codes that mean "fetch the key configuration again" (gateway/errors.ts OHTTP_KEY_PROBLEM_CODES). */
const KEY_PROBLEMS = new Set(['ENCLAVE_OHTTP_KEY_UNKNOWN', 'ENCLAVE_OHTTP_EPOCH_EXPIRED', 'ENCLAVE_OHTTP_UNSUPPORTED_SUITE'])

function responseError(e: unknown, provider: string): ClientError {
  if (e instanceof ClientError) return e
  const reason = reasonOf(e)
  if (reason.startsWith('OHTTP_')) {
    return new ClientError('CLIENT_RESPONSE_INVALID', 'the encrypted response does not decrypt in order', { cause: e, details: { provider, reason } })
  }
  return new ClientError('CLIENT_UPSTREAM_FAILED', 'the response stream failed', { cause: e, details: { provider, reason } })
}

/** Send one request and open its answer (throws before any content for outer failures). */
export async function exchange(p: ExchangeParameters): Promise<DecryptedResponse> {
  const provider = p.provider.url
  const requestHash = hashBody(p.body)
  const inner = encodeInnerRequest(provider, p.path, p.body, p.now())
  const req = await encapsulateRequest(p.provider.keyConfig, inner, { chunked: true })
  let res: Awaited<ReturnType<OhttpTransport>>
  try {
    res = await p.transport(p.target, req.body, req.contentType, p.signal)
  } catch (e) {
    throw new ClientError('CLIENT_UPSTREAM_FAILED', 'the gateway could not be reached', { cause: e, details: { provider, reason: reasonOf(e) } })
  }
  if (res.status !== 200) {
    // Only the problem document's code is used: an oversized answer is no problem document, and has none.
    const tooLarge = new Error('too large')
    const reason = await readLimited(res.body, MAX_ERROR_BODY_BYTES, { headers: res.headers, tooLarge: () => tooLarge }).then(
      (bytes) => codeInBody(bytes),
      (e: unknown) => {
        // A stream that failed is still the stream's failure; only the size is judged here.
        if (e === tooLarge) return 'UNKNOWN'
        throw e
      },
    )
    const retryAfter = typeof res.headers['retry-after'] === 'string' ? res.headers['retry-after'] : undefined
    if (res.status === 429) {
      throw new ClientError('CLIENT_UPSTREAM_RATE_LIMITED', 'the gateway is rate-limiting', { details: { provider, status: 429, reason, ...(retryAfter ? { retryAfter } : {}) } })
    }
    if (res.status === 422 && KEY_PROBLEMS.has(reason)) {
      throw new ClientError('CLIENT_KEY_CONFIG_CHANGED', 'the gateway no longer accepts the verified key config', { details: { provider, status: 422, reason } })
    }
    throw new ClientError('CLIENT_UPSTREAM_FAILED', 'the gateway answered with an error', { details: { provider, status: res.status, reason, ...(retryAfter ? { retryAfter } : {}) } })
  }
  const contentType = String(res.headers['content-type'] ?? '')
  const events = decodeBhttpResponseStream(req.open(contentType, res.body))
  const it = events[Symbol.asyncIterator]()

  let head: Extract<BhttpResponseEvent, { type: 'head' }> | undefined
  try {
    for (;;) {
      const n = await it.next()
      if (n.done) throw new ClientError('CLIENT_RESPONSE_INVALID', 'the response ended before its head', { details: { provider, reason: 'NO_HEAD' } })
      if (n.value.type === 'head') {
        head = n.value
        break
      }
      if (n.value.type !== 'informational') throw new ClientError('CLIENT_RESPONSE_INVALID', 'the response has content before its head', { details: { provider } })
    }
  } catch (e) {
    await it.return?.(undefined).catch(() => undefined)
    throw responseError(e, provider)
  }

  const status = head.status
  const headers = head.headers
  const innerType = headers.find(([k]) => k === 'content-type')?.[1] ?? 'application/json'
  const hasher = createBodyHasher()
  let receipt: VerifiedReceipt | null = null
  let responseHash: Hex | null = null
  let consumed = false

  async function* content(): AsyncGenerator<Uint8Array> {
    if (consumed) throw new ClientError('CLIENT_CONFIG_INVALID', 'the response content can be read once')
    consumed = true
    let trailers: readonly BhttpField[] | undefined
    try {
      for (;;) {
        const n = await it.next()
        if (n.done) break
        const ev = n.value
        if (ev.type === 'content') {
          if (ev.data.length === 0) continue
          hasher.update(ev.data)
          yield ev.data
        } else if (ev.type === 'trailers') {
          trailers = ev.trailers
        }
      }
    } catch (e) {
      throw responseError(e, provider)
    } finally {
      await it.return?.(undefined).catch(() => undefined)
    }
    responseHash = hasher.digest()
    const fields = new Map(trailers ?? [])
    const failed = fields.get(ERROR_TRAILER)
    if (failed !== undefined) {
      throw new ClientError('CLIENT_UPSTREAM_FAILED', 'the engine failed during the response', { details: { provider, reason: reasonOf({ code: failed }) } })
    }
    const carried = fields.get(RECEIPT_TRAILER)
    if (status < 200 || status > 299) {
      if (carried === undefined) return
    }
    if (carried === undefined) throw new ClientError('CLIENT_RECEIPT_MISSING', 'the response carries no receipt', { details: { provider } })
    let json: unknown
    try {
      json = JSON.parse(Buffer.from(carried, 'base64').toString('utf8'))
    } catch (e) {
      throw new ClientError('CLIENT_RECEIPT_INVALID', 'the receipt trailer is not base64 JSON', { cause: e, details: { provider, field: 'receipt' } })
    }
    receipt = await p.receipts.verify(json, {
      requestHash,
      responseHash,
      model: p.model,
      epoch: p.provider.epoch,
      domain: p.provider.receiptDomain,
    })
  }

  return {
    status,
    headers,
    contentType: innerType,
    content: { [Symbol.asyncIterator]: () => content() },
    receipt: () => receipt,
    requestHash,
    responseHash: () => responseHash,
  }
}
