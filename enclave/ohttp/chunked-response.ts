/**
 * Chunked Encapsulated Responses, draft-ietf-ohai-chunked-ohttp-08 §5, §6.2:
 *
 *   Chunked Encapsulated Response {
 *     Response Nonce (8 * max(Nn, Nk)),
 *     Non-Final Response Chunk (..) ...,        // Length (i) = 1.., AEAD-Protected Chunk
 *     Final Response Chunk Indicator (i) = 0,
 *     AEAD-Protected Final Response Chunk (..), // runs to the end of the stream
 *   }
 *
 *   chunk_nonce  = aead_nonce XOR encode(Nn, counter)     // counter = 0, 1, 2, ...
 *   non-final    = varint(len(ct)) || Seal(key, chunk_nonce, "", chunk)
 *   final        = 0x00 || Seal(key, chunk_nonce, "final", chunk)
 *
 * The counter in the nonce fixes the order of chunks; the "final" AAD marks
 * the last one, so a receiver that reaches the end of the stream without it
 * knows the response was cut (§7.1: never consider such a message complete).
 * A non-final chunk must not be empty (§6: receivers treat one as a
 * decryption error). The counter must never wrap (§6.2: at most 256^Nn
 * chunks); here it stops far earlier, at 2^53 - 1.
 *
 * The sealer is synchronous (node:crypto), so each engine event is sealed
 * and can be flushed the moment it exists. The opener consumes bytes with
 * any fragmentation and yields each plaintext chunk as soon as it verifies.
 */
import { ByteQueue } from './byte-queue.ts'
import { OhttpError, invalidArgument } from './errors.ts'
import { FINAL_CHUNK_AAD, type AeadParams } from './hpke.ts'
import { aeadOpen, aeadSealInto } from './symmetric.ts'
import type { ResponseKeys } from './response.ts'
import { varintSize, writeVarint } from './varint.ts'

/** The last chunk counter used; beyond it the sealer and the opener refuse (draft §6.2: the nonce must never repeat). */
export const MAX_CHUNK_COUNTER = Number.MAX_SAFE_INTEGER

/**
 * draft §3: receivers MUST accept chunks of 2^14 bytes of plaintext. The
 * opener's default ceiling on one sealed chunk (non-final or final) is far
 * above that, bounding what a hostile relay can make a client buffer.
 */
export const DEFAULT_MAX_SEALED_CHUNK_LENGTH = 1 << 24

/** draft §6.2: chunk_nonce = aead_nonce XOR encode(Nn, counter), the counter big-endian in the last bytes. */
export function chunkNonce(base: Uint8Array, counter: number): Uint8Array {
  if (!Number.isSafeInteger(counter) || counter < 0 || counter > MAX_CHUNK_COUNTER) throw new RangeError('chunk counter out of range')
  const out = base.slice()
  const n = out.length
  let hi = Math.floor(counter / 0x100000000)
  let lo = counter >>> 0
  for (let i = 0; i < 4; i++) {
    out[n - 1 - i]! ^= lo & 0xff
    lo >>>= 8
  }
  for (let i = 4; i < 8; i++) {
    out[n - 1 - i]! ^= hi & 0xff
    hi >>>= 8
  }
  return out
}

/** Seals one response's chunks, in order. Obtain one from a decapsulated request (server.ts). */
export interface ChunkedResponseSealer {
  /** `message/ohttp-chunked-res`. */
  readonly contentType: string
  /**
   * Seal `chunk` as the next chunk and return the bytes to send: the first
   * call's output starts with the response nonce. `final` marks the last
   * chunk (it may be empty); after it, any call throws `OHTTP_ARGUMENT_INVALID`.
   * An empty non-final chunk is not sent (draft §6 forbids it): the call
   * returns only what is still unsent (the nonce, on a first call) and the
   * counter does not advance.
   */
  seal(chunk: Uint8Array, final?: boolean): Uint8Array
  /** True once the final chunk is sealed. */
  readonly finished: boolean
}

/** Create a sealer from derived response keys and the response nonce that was used to derive them. */
export function createChunkedResponseSealer(keys: ResponseKeys, responseNonce: Uint8Array, contentType: string): ChunkedResponseSealer {
  let counter = 0
  let pendingNonce: Uint8Array | undefined = responseNonce
  let finished = false
  const empty = new Uint8Array(0)
  return {
    contentType,
    get finished() {
      return finished
    },
    seal(chunk: Uint8Array, final = false): Uint8Array {
      if (finished) invalidArgument('the final chunk of this response is already sealed')
      if (!(chunk instanceof Uint8Array)) invalidArgument('a chunk must be a Uint8Array')
      const prefix = pendingNonce ?? empty
      if (chunk.length === 0 && !final) {
        pendingNonce = undefined
        return prefix
      }
      if (counter > MAX_CHUNK_COUNTER) invalidArgument('the chunk counter of this response is exhausted')
      // AES-GCM (RFC 5116) sealed straight into the framed output: this runs once per
      // streamed event, and aeadSeal's own buffer would cost one more allocation and copy.
      const aead = keys.aead
      const nonce = chunkNonce(keys.nonce, counter)
      const ctLength = chunk.length + aead.nt
      const lengthField = final ? 0 : ctLength
      const out = new Uint8Array(prefix.length + varintSize(lengthField) + ctLength)
      out.set(prefix, 0)
      const p = writeVarint(out, prefix.length, lengthField)
      aeadSealInto(aead, keys.key, nonce, final ? FINAL_CHUNK_AAD : empty, chunk, out, p)
      counter++
      pendingNonce = undefined
      if (final) {
        finished = true
        keys.key.fill(0)
      }
      return out
    },
  }
}

export interface OpenChunkedResponseOptions {
  /** Largest sealed chunk (ciphertext + tag) accepted, final chunk included. Default 16 MiB. */
  readonly maxSealedChunkLength?: number
}

function invalid(message: string, details: Record<string, unknown>): never {
  throw new OhttpError('OHTTP_RESPONSE_INVALID', message, { details })
}
function truncated(message: string, details: Record<string, unknown>): never {
  throw new OhttpError('OHTTP_RESPONSE_TRUNCATED', message, { details })
}

/**
 * The opener's state machine, synchronous: bytes in (any fragmentation),
 * plaintext of each chunk that completed and verified out. The keys depend
 * on the response nonce, the stream's first bytes, and are derived by the
 * caller (asynchronously, on the HPKE context): while `nonce` is set and no
 * keys are given, `push` only queues. `openChunkedResponse` is the async
 * iterator over it; a client that reads a socket can drive it directly and
 * spend no promise per chunk.
 *
 * Errors as `openChunkedResponse`'s. A failure that strikes after some
 * chunks of the same `push` verified returns those chunks first and throws
 * at the next call, so that plaintext before a bad chunk is still handed out.
 */
export class ChunkedResponseOpener {
  readonly #aead: AeadParams
  readonly #maxSealed: number
  readonly #nonceLength: number
  readonly #queue = new ByteQueue()
  #keys: ResponseKeys | undefined
  #nonce: Uint8Array | undefined
  #counter = 0
  /** >= 0 once the final chunk indicator is read: bytes of the final chunk so far. */
  #finalLength = -1
  /** Bytes consumed, for error details. */
  #offset = 0
  #failure: unknown = undefined

  constructor(aead: AeadParams, options: OpenChunkedResponseOptions = {}) {
    this.#aead = aead
    this.#maxSealed = options.maxSealedChunkLength ?? DEFAULT_MAX_SEALED_CHUNK_LENGTH
    this.#nonceLength = Math.max(aead.nn, aead.nk)
  }

  /** The response nonce once its bytes are in and no keys were given yet: derive the keys from it and call `setKeys`. */
  get nonce(): Uint8Array | undefined {
    return this.#keys === undefined ? this.#nonce : undefined
  }

  /** The keys derived from `nonce`; returns the plaintexts of the chunks already queued. */
  setKeys(keys: ResponseKeys): Uint8Array[] {
    if (this.#nonce === undefined || this.#keys !== undefined) invalidArgument('setKeys once, after the nonce is in')
    this.#keys = keys
    return this.#drain()
  }

  /** Queue `fragment`; returns the plaintexts of the chunks it completed (none before `setKeys`). */
  push(fragment: Uint8Array): Uint8Array[] {
    this.#rethrow()
    if (!(fragment instanceof Uint8Array)) invalid('the response stream yielded something other than bytes', { offset: this.#offset })
    if (this.#finalLength >= 0) {
      this.#finalLength += fragment.length
      if (this.#finalLength > this.#maxSealed) invalid('the final chunk exceeds the size limit', { offset: this.#offset, limit: this.#maxSealed })
      this.#queue.push(fragment)
      return []
    }
    this.#queue.push(fragment)
    if (this.#nonce === undefined) {
      if (this.#queue.length < this.#nonceLength) return []
      this.#nonce = this.#queue.take(this.#nonceLength).slice()
      this.#offset += this.#nonceLength
    }
    return this.#keys === undefined ? [] : this.#drain()
  }

  /** The stream ended: the final chunk's plaintext (if not empty), or the truncation / verification error. */
  end(): Uint8Array[] {
    this.#rethrow()
    try {
      const keys = this.#keys
      if (this.#nonce === undefined) truncated('the response ended inside its nonce', { offset: this.#queue.length })
      if (keys === undefined) invalidArgument('end() before setKeys()')
      if (this.#finalLength < 0) truncated('the response ended without its final chunk', { offset: this.#offset, chunks: this.#counter })
      if (this.#counter > MAX_CHUNK_COUNTER) invalid('the response has more chunks than the nonce allows', { offset: this.#offset, chunk: this.#counter })
      const pt = aeadOpen(this.#aead, keys.key, chunkNonce(keys.nonce, this.#counter), FINAL_CHUNK_AAD, this.#queue.takeAll())
      if (pt === undefined) invalid('the final chunk does not decrypt (altered, misplaced, or followed by extra bytes)', { offset: this.#offset, chunk: this.#counter })
      return pt.length > 0 ? [pt] : []
    } finally {
      this.wipe()
    }
  }

  /** Zero the response key (done by `end`; call it when abandoning a response). */
  wipe(): void {
    this.#keys?.key.fill(0)
  }

  #rethrow(): void {
    if (this.#failure !== undefined) throw this.#failure
  }

  #drain(): Uint8Array[] {
    const out: Uint8Array[] = []
    const keys = this.#keys!
    const aead = this.#aead
    const queue = this.#queue
    const empty = new Uint8Array(0)
    try {
      for (;;) {
        const lengthField = queue.peekVarint()
        if (lengthField === undefined) break
        if (lengthField.value === 0) {
          queue.skip(lengthField.size)
          this.#offset += lengthField.size
          this.#finalLength = queue.length
          if (this.#finalLength > this.#maxSealed) invalid('the final chunk exceeds the size limit', { offset: this.#offset, limit: this.#maxSealed })
          break
        }
        const length = lengthField.value
        // A non-final chunk must carry at least one byte of plaintext (draft §6).
        if (length <= aead.nt) invalid('a non-final chunk is too short to hold any plaintext', { offset: this.#offset, chunk: this.#counter })
        if (length > this.#maxSealed) invalid('a chunk exceeds the size limit', { offset: this.#offset, chunk: this.#counter, limit: this.#maxSealed })
        if (queue.length < lengthField.size + length) break
        queue.skip(lengthField.size)
        const sealed = queue.take(length)
        if (this.#counter > MAX_CHUNK_COUNTER) invalid('the response has more chunks than the nonce allows', { offset: this.#offset, chunk: this.#counter })
        const pt = aeadOpen(aead, keys.key, chunkNonce(keys.nonce, this.#counter), empty, sealed)
        if (pt === undefined) invalid('a response chunk does not decrypt in its place', { offset: this.#offset, chunk: this.#counter })
        this.#offset += lengthField.size + length
        this.#counter++
        out.push(pt)
      }
    } catch (e) {
      this.wipe()
      if (out.length === 0) throw e
      this.#failure = e
    }
    return out
  }
}

/**
 * Open a chunked response read from `source` (any fragmentation), yielding
 * each chunk's plaintext as soon as its bytes are in and its tag verifies;
 * the final chunk's plaintext (if not empty) is yielded when `source` ends.
 *
 * Throws `OHTTP_RESPONSE_TRUNCATED` when `source` ends before a final chunk
 * (including mid-nonce or mid-chunk), and `OHTTP_RESPONSE_INVALID` for a chunk
 * that does not verify in its place (altered, reordered, dropped, a
 * non-final chunk turned final or vice versa, bytes appended after the final
 * chunk), an empty non-final chunk, or a chunk over the size limit.
 * Plaintext already yielded stays yielded: a consumer that must act only on
 * complete responses waits for the generator to finish.
 *
 * `deriveKeys` receives the response nonce (max(Nn, Nk) bytes) and returns
 * the keys (response.ts, label "message/bhttp chunked response").
 */
export async function* openChunkedResponse(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  aead: AeadParams,
  deriveKeys: (responseNonce: Uint8Array) => Promise<ResponseKeys>,
  options: OpenChunkedResponseOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  const opener = new ChunkedResponseOpener(aead, options)
  try {
    for await (const fragment of source) {
      let out = opener.push(fragment)
      const nonce = opener.nonce
      if (nonce !== undefined) out = opener.setKeys(await deriveKeys(nonce))
      for (const pt of out) yield pt
    }
    for (const pt of opener.end()) yield pt
  } finally {
    opener.wipe()
  }
}
