/**
 * The Oblivious Gateway side (RFC 9458 §4.3, §4.4, §5; chunked:
 * draft-ietf-ohai-chunked-ohttp-08 §4-6): decapsulate an encapsulated
 * request into its Binary HTTP request, and seal the response to the same
 * HPKE context, whole or chunk by chunk.
 *
 * Checks run in this order and stop at the first failure, each with its own
 * `EnclaveError` code:
 *
 *   1. media type, header length            → ENCLAVE_OHTTP_MALFORMED
 *   2. KEM id                               → ENCLAVE_OHTTP_UNSUPPORTED_SUITE
 *   3. key id (the `keys` lookup)           → ENCLAVE_OHTTP_KEY_UNKNOWN (the lookup may throw
 *                                             ENCLAVE_OHTTP_EPOCH_EXPIRED itself; a destroyed
 *                                             key is reported as EPOCH_EXPIRED)
 *   4. (KDF, AEAD) offered by that key      → ENCLAVE_OHTTP_UNSUPPORTED_SUITE
 *   5. enc and ciphertext lengths, chunking → ENCLAVE_OHTTP_MALFORMED
 *   6. HPKE decapsulation and Open          → ENCLAVE_OHTTP_DECRYPT_FAILED
 *   7. Binary HTTP request                  → ENCLAVE_BHTTP_MALFORMED (recorded in the
 *                                             replay cache first: the encryption was genuine)
 *   8. `date` field, when `requestDate` is set (RFC 9458 §6.5)
 *                                           → ENCLAVE_OHTTP_DATE_INVALID / ENCLAVE_OHTTP_DATE_OUT_OF_RANGE
 *   9. replay cache (after decryption, so forged junk cannot fill it)
 *                                           → ENCLAVE_OHTTP_REPLAYED / ENCLAVE_OHTTP_REPLAY_CACHE_FULL
 *
 * Why the date (step 8): anyone can encrypt to a public key config, so the
 * replay cache, which must remember every request for as long as a replay
 * of it could be served, can be filled by anyone at the rate limit. With
 * every request dated within ±W of the gateway clock, a replay is refused by
 * its date once `first sight + 2W` has passed, so the cache need remember
 * requests for only 2W: its size is bounded by rate × 2W instead of rate ×
 * key lifetime. A request refused for its date is not recorded (a replay of
 * it is refused again); the error keeps the decapsulated request so the
 * enclave can answer inside the encryption with its own Date (RFC 9458
 * §6.5), see `requestOfDateError`.
 *
 * Responses: to a `message/ohttp-req` request the gateway may answer
 * `message/ohttp-res` (RFC 9458 §4.4) or `message/ohttp-chunked-res`; to a
 * `message/ohttp-chunked-req` it must answer chunked (draft §3), so
 * `respond.seal()` then produces a chunked response of one final chunk.
 * A chunked response always derives its keys with the label "message/bhttp
 * chunked response" (draft §6.2). The draft pairs chunked responses with
 * chunked requests only; answering a non-chunked request with a chunked
 * response is this project's extension (the labels keep the two key
 * derivations apart). Clients that want a standard exchange send
 * `message/ohttp-chunked-req`, which costs one extra byte.
 */
import { randomBytes as nodeRandomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import type { RecipientContext } from '@hpke/core'
import { EnclaveError } from '../errors.ts'
import { DEFAULT_BHTTP_REQUEST_LIMITS, decodeBhttpRequest, type BhttpLimits, type BhttpRequest } from './bhttp.ts'
import { openRequestChunks } from './chunked-request.ts'
import { createChunkedResponseSealer, type ChunkedResponseSealer } from './chunked-response.ts'
import { invalidArgument } from './errors.ts'
import { parseHttpDate } from './http-date.ts'
import {
  AEADS,
  LABEL_CHUNKED_REQUEST,
  LABEL_CHUNKED_RESPONSE,
  LABEL_REQUEST,
  LABEL_RESPONSE,
  REQUEST_HEADER_LENGTH,
  X25519_ENC_LENGTH,
  cipherSuite,
  isImplementedSuite,
  requestInfo,
} from './hpke.ts'
import { KEM_X25519_HKDF_SHA256 } from './key-config.ts'
import { recipientKeyOf, type OhttpKeyPair } from './keys.ts'
import {
  MEDIA_TYPE_OHTTP_CHUNKED_REQUEST,
  MEDIA_TYPE_OHTTP_CHUNKED_RESPONSE,
  MEDIA_TYPE_OHTTP_REQUEST,
  MEDIA_TYPE_OHTTP_RESPONSE,
  mediaTypeEssence,
} from './media-types.ts'
import type { ReplayCache } from './replay-cache.ts'
import { deriveResponseKeys, responseNonceLength, sealResponse } from './response.ts'

export interface OhttpServerOptions {
  /**
   * The live key for a key id, or undefined when there is none. Consulted on
   * every request, so rotation is the caller's: it may throw
   * `ENCLAVE_OHTTP_EPOCH_EXPIRED` for a key id whose epoch has ended.
   */
  readonly keys: (keyId: number) => OhttpKeyPair | undefined | Promise<OhttpKeyPair | undefined>
  /** Where requests are remembered against replay (replay-cache.ts). */
  readonly replay: ReplayCache
  /** Limits on the inner request. Default `DEFAULT_BHTTP_REQUEST_LIMITS`. */
  readonly bhttpLimits?: BhttpLimits
  /** Source of response nonces. Default node:crypto `randomBytes`; replace only in known-answer tests. */
  readonly randomBytes?: (length: number) => Uint8Array
  /**
   * RFC 9458 §6.5: require a `date` field (RFC 9110 §6.6.1) in every inner
   * request, within ±`windowMs` of `now()` (ms). The replay cache's window
   * then needs to be only 2·windowMs (module header). Absent: no date check.
   */
  readonly requestDate?: { readonly windowMs: number; readonly now: () => number }
}

/** Requests refused for their date, kept by their error so the enclave can still answer them (encapsulated). */
const dateRefused = new WeakMap<EnclaveError, DecapsulatedRequest>()

/**
 * The decapsulated request behind an ENCLAVE_OHTTP_DATE_* error of
 * `decapsulate`, so that the refusal can be answered inside the encryption
 * (RFC 9458 §6.5: 400 with the gateway's Date); undefined for any other
 * value. Held by the error object itself, out of reach of serialisation:
 * the error is safe to log, the request never is.
 */
export function requestOfDateError(e: unknown): DecapsulatedRequest | undefined {
  return e instanceof EnclaveError ? dateRefused.get(e) : undefined
}

/** A whole sealed response and the media type to send it with. */
export interface SealedResponse {
  readonly contentType: string
  readonly body: Uint8Array
}

/** A request that decrypted, with the one response it may get. */
export interface DecapsulatedRequest {
  readonly keyId: number
  /** The request was `message/ohttp-chunked-req`. */
  readonly chunked: boolean
  /** The decoded Binary HTTP request. Plaintext: never log it. */
  readonly request: BhttpRequest
  /** The Binary HTTP request bytes exactly as decrypted (what a receipt hashes). Plaintext: never log it. */
  readonly bhttp: Uint8Array
  /**
   * The response; use one of the two, once. A second call throws
   * `OHTTP_ARGUMENT_INVALID`.
   */
  readonly respond: {
    /** Seal a whole Binary HTTP response: `message/ohttp-res`, or a one-chunk `message/ohttp-chunked-res` to a chunked request. */
    seal(bhttpResponse: Uint8Array): Promise<SealedResponse>
    /** A sealer for a `message/ohttp-chunked-res` response, sealing each chunk synchronously. */
    chunkedSealer(): Promise<ChunkedResponseSealer>
  }
  /** Public view only: key id and framing, never content. */
  toJSON(): { keyId: number; chunked: boolean }
}

export interface OhttpServer {
  /** Decapsulate one request body of the given Content-Type (see the module header for the checks and codes). */
  decapsulate(body: Uint8Array, contentType: string): Promise<DecapsulatedRequest>
}

const malformed = (message: string, details: Record<string, unknown>): never => {
  throw new EnclaveError('ENCLAVE_OHTTP_MALFORMED', message, { details })
}

export function createOhttpServer(options: OhttpServerOptions): OhttpServer {
  const { keys, replay } = options
  if (typeof keys !== 'function') invalidArgument('keys must be a function from key id to key pair')
  if (replay === undefined || typeof replay.check !== 'function') invalidArgument('a replay cache is required (createReplayCache)')
  const limits = options.bhttpLimits ?? DEFAULT_BHTTP_REQUEST_LIMITS
  const random = options.randomBytes ?? ((n: number) => new Uint8Array(nodeRandomBytes(n)))
  const requestDate = options.requestDate
  if (requestDate !== undefined && !(Number.isSafeInteger(requestDate.windowMs) && requestDate.windowMs > 0 && typeof requestDate.now === 'function')) {
    invalidArgument('requestDate needs a positive integer windowMs and a now() clock')
  }

  /** Step 8: the reason the request's date is refused, or null when it is fresh. */
  function dateProblem(request: BhttpRequest): EnclaveError | null {
    if (requestDate === undefined) return null
    const values = request.headers.filter(([name]) => name === 'date')
    const now = requestDate.now()
    const at = values.length === 1 ? parseHttpDate(values[0]![1], now) : undefined
    if (at === undefined) {
      return new EnclaveError('ENCLAVE_OHTTP_DATE_INVALID', 'the inner request needs exactly one date field holding an HTTP-date', {
        details: { dateFields: values.length },
      })
    }
    const skewMs = at - now
    if (Math.abs(skewMs) > requestDate.windowMs) {
      return new EnclaveError('ENCLAVE_OHTTP_DATE_OUT_OF_RANGE', 'the inner request is dated outside the accepted window', {
        details: { skewSeconds: Math.round(skewMs / 1000), windowSeconds: requestDate.windowMs / 1000 },
      })
    }
    return null
  }

  async function decapsulate(body: Uint8Array, contentType: string): Promise<DecapsulatedRequest> {
    // 1. Media type and header (RFC 9458 §4.1; draft §4).
    const essence = mediaTypeEssence(String(contentType))
    if (essence !== MEDIA_TYPE_OHTTP_REQUEST && essence !== MEDIA_TYPE_OHTTP_CHUNKED_REQUEST) {
      malformed('the content type is not an encapsulated request', {})
    }
    const chunked = essence === MEDIA_TYPE_OHTTP_CHUNKED_REQUEST
    if (!(body instanceof Uint8Array) || body.length < REQUEST_HEADER_LENGTH) malformed('the encapsulated request is shorter than its header', { length: body?.length })
    const keyId = body[0]!
    const kemId = (body[1]! << 8) | body[2]!
    const kdfId = (body[3]! << 8) | body[4]!
    const aeadId = (body[5]! << 8) | body[6]!

    // 2. KEM (RFC 9458 §4.3 step 1a).
    if (kemId !== KEM_X25519_HKDF_SHA256) {
      throw new EnclaveError('ENCLAVE_OHTTP_UNSUPPORTED_SUITE', 'the request names a KEM this gateway does not offer', { details: { kemId } })
    }

    // 3. Key (RFC 9458 §5.2: an unknown key id tells the client to refetch the key config).
    const pair = await keys(keyId)
    if (pair === undefined) throw new EnclaveError('ENCLAVE_OHTTP_KEY_UNKNOWN', 'the key id is not a live key', { details: { keyId } })
    const recipientKey = recipientKeyOf(pair)
    if (recipientKey === undefined) {
      throw new EnclaveError('ENCLAVE_OHTTP_EPOCH_EXPIRED', 'the key of this key id is destroyed', { details: { keyId } })
    }
    if (pair.config.kemId !== kemId) throw new EnclaveError('ENCLAVE_OHTTP_KEY_UNKNOWN', 'the key id does not name a key of this KEM', { details: { keyId, kemId } })

    // 4. Symmetric algorithms this key is offered with (RFC 9458 §4.3 step 1b).
    const offered = pair.config.symmetric.some((s) => s.kdfId === kdfId && s.aeadId === aeadId)
    const aead = AEADS.get(aeadId)
    if (!offered || !isImplementedSuite(kemId, kdfId, aeadId) || aead === undefined) {
      throw new EnclaveError('ENCLAVE_OHTTP_UNSUPPORTED_SUITE', 'the request names a KDF or AEAD this key is not offered with', {
        details: { keyId, kdfId, aeadId },
      })
    }

    // 5. Lengths: enc is fixed-length (RFC 9458 §4.3); a ciphertext holds at least a tag.
    const minimum = REQUEST_HEADER_LENGTH + X25519_ENC_LENGTH + (chunked ? 1 : 0) + aead.nt
    if (body.length < minimum) malformed('the encapsulated request is too short', { length: body.length, minimum })
    const hdr = body.subarray(0, REQUEST_HEADER_LENGTH)
    const enc = body.slice(REQUEST_HEADER_LENGTH, REQUEST_HEADER_LENGTH + X25519_ENC_LENGTH)
    const rest = body.subarray(REQUEST_HEADER_LENGTH + X25519_ENC_LENGTH)

    // 6. HPKE (RFC 9180 §5.1 SetupBaseR; RFC 9458 §4.3 steps 2-4; draft §6.1).
    const suite = cipherSuite(aeadId)
    const info = requestInfo(chunked ? LABEL_CHUNKED_REQUEST : LABEL_REQUEST, hdr)
    let context: RecipientContext
    try {
      context = await suite.createRecipientContext({ recipientKey, enc, info })
    } catch (e) {
      throw new EnclaveError('ENCLAVE_OHTTP_DECRYPT_FAILED', 'the encapsulated key does not decapsulate', { cause: e, details: { keyId } })
    }
    let bhttp: Uint8Array
    if (chunked) bhttp = await openRequestChunks(context, rest)
    else {
      try {
        bhttp = new Uint8Array(await context.open(rest))
      } catch (e) {
        throw new EnclaveError('ENCLAVE_OHTTP_DECRYPT_FAILED', 'the request does not decrypt', { cause: e, details: { keyId } })
      }
    }

    // RFC 9458 §6.5: hdr || enc names the request.
    const id = new Uint8Array(REQUEST_HEADER_LENGTH + X25519_ENC_LENGTH)
    id.set(hdr, 0)
    id.set(enc, REQUEST_HEADER_LENGTH)

    // 7. The inner request (RFC 9292). A malformed one is still recorded: the encryption was genuine.
    let request: BhttpRequest
    try {
      request = decodeBhttpRequest(bhttp, limits)
    } catch (e) {
      replay.check(id)
      throw e
    }

    let answered = false
    const claim = () => {
      if (answered) invalidArgument('this request already has its response')
      answered = true
    }
    const newSealer = async (): Promise<ChunkedResponseSealer> => {
      const nonce = random(responseNonceLength(aead))
      const responseKeys = await deriveResponseKeys(context, LABEL_CHUNKED_RESPONSE, enc, nonce, aead)
      return createChunkedResponseSealer(responseKeys, nonce, MEDIA_TYPE_OHTTP_CHUNKED_RESPONSE)
    }
    const view = () => ({ keyId, chunked })
    const decapsulated: DecapsulatedRequest = {
      keyId,
      chunked,
      request,
      bhttp,
      respond: Object.freeze({
        async seal(bhttpResponse: Uint8Array): Promise<SealedResponse> {
          claim()
          if (chunked) {
            const sealer = await newSealer()
            return { contentType: sealer.contentType, body: sealer.seal(bhttpResponse, true) }
          }
          const nonce = random(responseNonceLength(aead))
          const responseKeys = await deriveResponseKeys(context, LABEL_RESPONSE, enc, nonce, aead)
          const sealed = sealResponse(responseKeys, nonce, bhttpResponse)
          responseKeys.key.fill(0)
          return { contentType: MEDIA_TYPE_OHTTP_RESPONSE, body: sealed }
        },
        async chunkedSealer(): Promise<ChunkedResponseSealer> {
          claim()
          return newSealer()
        },
      }),
      toJSON: view,
    }
    Object.defineProperty(decapsulated, inspect.custom, { value: () => `DecapsulatedRequest ${JSON.stringify(view())}`, enumerable: false })
    Object.freeze(decapsulated)

    // 8. Date (RFC 9458 §6.5), before the replay cache so a refused request takes no entry.
    const problem = dateProblem(request)
    if (problem !== null) {
      dateRefused.set(problem, decapsulated)
      throw problem
    }
    // 9. Replay.
    replay.check(id)
    return decapsulated
  }

  return { decapsulate }
}
