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
import { aeadOpen, aeadSeal } from './symmetric.ts'
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
      const ct = aeadSeal(keys.aead, keys.key, chunkNonce(keys.nonce, counter), final ? FINAL_CHUNK_AAD : empty, chunk)
      counter++
      const lengthField = final ? 0 : ct.length
      const out = new Uint8Array(prefix.length + varintSize(lengthField) + ct.length)
      out.set(prefix, 0)
      const p = writeVarint(out, prefix.length, lengthField)
      out.set(ct, p)
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
  const maxSealed = options.maxSealedChunkLength ?? DEFAULT_MAX_SEALED_CHUNK_LENGTH
  const nonceLength = Math.max(aead.nn, aead.nk)
  const queue = new ByteQueue()
  const empty = new Uint8Array(0)
  let keys: ResponseKeys | undefined
  let counter = 0
  let finalLength = -1 // >= 0 once the final chunk indicator is read: bytes of the final chunk so far
  let offset = 0 // bytes consumed, for error details

  try {
    for await (const fragment of source) {
      if (!(fragment instanceof Uint8Array)) invalid('the response stream yielded something other than bytes', { offset })
      if (finalLength >= 0) {
        finalLength += fragment.length
        if (finalLength > maxSealed) invalid('the final chunk exceeds the size limit', { offset, limit: maxSealed })
        queue.push(fragment)
        continue
      }
      queue.push(fragment)
      if (keys === undefined) {
        if (queue.length < nonceLength) continue
        const nonce = queue.take(nonceLength).slice()
        offset += nonceLength
        keys = await deriveKeys(nonce)
      }
      for (;;) {
        const lengthField = queue.peekVarint()
        if (lengthField === undefined) break
        if (lengthField.value === 0) {
          queue.skip(lengthField.size)
          offset += lengthField.size
          finalLength = queue.length
          if (finalLength > maxSealed) invalid('the final chunk exceeds the size limit', { offset, limit: maxSealed })
          break
        }
        const length = lengthField.value
        // A non-final chunk must carry at least one byte of plaintext (draft §6).
        if (length <= aead.nt) invalid('a non-final chunk is too short to hold any plaintext', { offset, chunk: counter })
        if (length > maxSealed) invalid('a chunk exceeds the size limit', { offset, chunk: counter, limit: maxSealed })
        if (queue.length < lengthField.size + length) break
        queue.skip(lengthField.size)
        const sealed = queue.take(length)
        if (counter > MAX_CHUNK_COUNTER) invalid('the response has more chunks than the nonce allows', { offset, chunk: counter })
        const pt = aeadOpen(aead, keys.key, chunkNonce(keys.nonce, counter), empty, sealed)
        if (pt === undefined) invalid('a response chunk does not decrypt in its place', { offset, chunk: counter })
        offset += lengthField.size + length
        counter++
        yield pt
      }
    }
    if (keys === undefined) truncated('the response ended inside its nonce', { offset: queue.length })
    if (finalLength < 0) truncated('the response ended without its final chunk', { offset, chunks: counter })
    if (counter > MAX_CHUNK_COUNTER) invalid('the response has more chunks than the nonce allows', { offset, chunk: counter })
    const pt = aeadOpen(aead, keys.key, chunkNonce(keys.nonce, counter), FINAL_CHUNK_AAD, queue.takeAll())
    if (pt === undefined) invalid('the final chunk does not decrypt (altered, misplaced, or followed by extra bytes)', { offset, chunk: counter })
    if (pt.length > 0) yield pt
  } finally {
    keys?.key.fill(0)
  }
}
