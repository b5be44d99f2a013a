/**
 * The Client side (RFC 9458 §4.3, §4.4; chunked: draft-ietf-ohai-chunked-ohttp-08
 * §4-6): encapsulate a Binary HTTP request to a key configuration, then open
 * the response — whole, or chunk by chunk as it streams in.
 *
 * The key configuration must be one the caller has authenticated (RFC 9458
 * §3: "the key configuration MUST be authenticated"); here that means the
 * one bound in the attestation the client verified.
 */
import type { SenderContext } from '@hpke/core'
import { sealRequestChunks, REQUEST_CHUNK_PLAINTEXT_LENGTH } from './chunked-request.ts'
import { ChunkedResponseOpener, openChunkedResponse, type OpenChunkedResponseOptions } from './chunked-response.ts'
import { OhttpError, invalidArgument } from './errors.ts'
import {
  AEADS,
  LABEL_CHUNKED_REQUEST,
  LABEL_CHUNKED_RESPONSE,
  LABEL_REQUEST,
  LABEL_RESPONSE,
  cipherSuite,
  isImplementedSuite,
  requestHeader,
  requestInfo,
  type AeadParams,
} from './hpke.ts'
import { parseKeyConfig, type KeyConfig } from './key-config.ts'
import { x25519KeyPairFromSecret } from './keys.ts'
import {
  MEDIA_TYPE_OHTTP_CHUNKED_REQUEST,
  MEDIA_TYPE_OHTTP_CHUNKED_RESPONSE,
  MEDIA_TYPE_OHTTP_REQUEST,
  MEDIA_TYPE_OHTTP_RESPONSE,
  mediaTypeEssence,
} from './media-types.ts'
import { deriveResponseKeys, openResponse, responseNonceLength } from './response.ts'
import { concatBytes } from '../../attestation/bytes/concat.ts'
import { hex } from '../../attestation/bytes/hex.ts'

export interface EncapsulateRequestOptions {
  /**
   * Send `message/ohttp-chunked-req` (draft §4), to which the gateway must
   * answer chunked. Default false: `message/ohttp-req` (RFC 9458 §4.1).
   */
  readonly chunked?: boolean
  /** Plaintext bytes per request chunk when chunked (draft §3: 2^14 unless the gateway takes more). */
  readonly chunkLength?: number
}

/** An encapsulated request, ready to send, and the means to open its response. */
export interface EncapsulatedRequest {
  /** The request body. */
  readonly body: Uint8Array
  /** `message/ohttp-req` or `message/ohttp-chunked-req`. */
  readonly contentType: string
  readonly keyId: number
  readonly kdfId: number
  readonly aeadId: number
  /**
   * Open a `message/ohttp-res` body (RFC 9458 §4.4) to the Binary HTTP
   * response. Throws `OHTTP_RESPONSE_INVALID` (also for a chunked request,
   * which must not get a non-chunked response).
   */
  openResponse(body: Uint8Array): Promise<Uint8Array>
  /**
   * Open a `message/ohttp-chunked-res` body read from `source`, yielding
   * each chunk's plaintext as soon as it verifies (chunked-response.ts).
   * Throws `OHTTP_RESPONSE_TRUNCATED` when the final chunk never comes and
   * `OHTTP_RESPONSE_INVALID` for anything altered, reordered or dropped.
   */
  openChunkedResponse(
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    options?: OpenChunkedResponseOptions,
  ): AsyncGenerator<Uint8Array, void, undefined>
  /**
   * `openChunkedResponse` for a caller that reads the bytes itself and wants
   * no promise per chunk: `push` returns the plaintexts each fragment
   * completed — as a promise only for the fragment that completes the
   * response nonce (the keys are derived then; push nothing more until it
   * settles) — and `end` the final chunk's. Same checks and errors.
   */
  chunkedResponseOpener(options?: OpenChunkedResponseOptions): ChunkedResponseReader
  /** Open a response by its Content-Type: either of the two above; another media type is `OHTTP_RESPONSE_INVALID`. */
  open(
    contentType: string,
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    options?: OpenChunkedResponseOptions,
  ): AsyncGenerator<Uint8Array, void, undefined>
}

/** What `EncapsulatedRequest.chunkedResponseOpener` returns. */
export interface ChunkedResponseReader {
  push(fragment: Uint8Array): Uint8Array[] | Promise<Uint8Array[]>
  end(): Uint8Array[]
  /** Zero the response key when abandoning the response (`end` does it too). */
  wipe(): void
}

/** The first (KDF, AEAD) pair of `config`, in the gateway's order, that this module implements. */
function chooseSuite(config: KeyConfig): { kdfId: number; aead: AeadParams } {
  for (const { kdfId, aeadId } of config.symmetric) {
    const aead = AEADS.get(aeadId)
    if (aead !== undefined && isImplementedSuite(config.kemId, kdfId, aeadId)) return { kdfId, aead }
  }
  throw new OhttpError('OHTTP_KEY_CONFIG_INVALID', 'the key config offers no suite this client implements', {
    details: { keyId: config.keyId, kemId: config.kemId },
  })
}

/** Imported recipient public keys by their bytes: importing costs a WebCrypto round trip, and clients reuse few configs. */
const recipientKeys = new Map<string, CryptoKey>()
const RECIPIENT_KEY_CACHE_SIZE = 64

async function recipientKey(config: KeyConfig, aeadId: number): Promise<CryptoKey> {
  const id = Buffer.from(config.publicKey).toString('hex')
  let key = recipientKeys.get(id)
  if (key === undefined) {
    try {
      key = await cipherSuite(aeadId).kem.deserializePublicKey(config.publicKey)
    } catch (e) {
      throw new OhttpError('OHTTP_KEY_CONFIG_INVALID', 'the key config public key is not a valid X25519 key', { cause: e, details: { keyId: config.keyId } })
    }
    if (recipientKeys.size >= RECIPIENT_KEY_CACHE_SIZE) recipientKeys.delete(recipientKeys.keys().next().value!)
    recipientKeys.set(id, key)
  }
  return key
}

/**
 * Sender contexts made ahead. SetupBaseS (RFC 9180 §5.1.1: a fresh
 * ephemeral key pair, X25519 with the recipient's key, the key schedule)
 * depends on the key config and `info` (RFC 9458 §4.3: the label and the
 * request header), never on the request, so it is done while the previous
 * request is in flight instead of while the next one waits (~0.3 ms of
 * every request's latency, measured on bench:proxy). Each context seals
 * one request and is dropped, exactly like one made on the spot: its
 * ephemeral key is fresh and used once (the gateway's replay cache and the
 * unlinkability of requests rely on that), and it never leaves this module.
 */
const SPARES_PER_SLOT = 2
/** Slots (recipient key, info) kept; a client talks to few gateways at once. */
const SPARE_SLOTS = 16
const spares = new Map<string, SenderContext[]>()
const refilling = new Set<string>()

function takeSpare(slot: string): SenderContext | undefined {
  return spares.get(slot)?.pop()
}

/** Run `fn` after the pending I/O, without keeping a Node process alive (browsers: a zero timeout). */
function afterIo(fn: () => void): void {
  if (typeof setImmediate === 'function') setImmediate(fn).unref()
  else setTimeout(fn, 0)
}

/**
 * Top the slot up after the current I/O (the request being sent), one
 * context per turn of the loop. A slot evicted meanwhile (more than
 * SPARE_SLOTS in use) stops its refill: re-creating it would evict another
 * and the refills would chase each other for ever.
 */
function refillSpares(slot: string, suite: ReturnType<typeof cipherSuite>, recipientPublicKey: CryptoKey, info: Uint8Array): void {
  if (refilling.has(slot)) return
  let list = spares.get(slot)
  if (list === undefined) {
    if (spares.size >= SPARE_SLOTS) spares.delete(spares.keys().next().value!)
    list = []
    spares.set(slot, list)
  }
  const mine = list
  refilling.add(slot)
  const step = () => {
    if (spares.get(slot) !== mine || mine.length >= SPARES_PER_SLOT) {
      refilling.delete(slot)
      return
    }
    suite.createSenderContext({ recipientPublicKey, info }).then(
      (context) => {
        mine.push(context)
        afterIo(step)
      },
      // The request itself makes its context on the spot and reports the failure.
      () => refilling.delete(slot),
    )
  }
  afterIo(step)
}

async function collect(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  for await (const part of source) parts.push(part)
  return concatBytes(parts)
}

async function encapsulate(
  keyConfig: KeyConfig | Uint8Array,
  bhttpRequest: Uint8Array,
  options: EncapsulateRequestOptions,
  ephemeral: CryptoKeyPair | undefined,
): Promise<EncapsulatedRequest> {
  const config = keyConfig instanceof Uint8Array ? parseKeyConfig(keyConfig) : keyConfig
  if (!(bhttpRequest instanceof Uint8Array)) invalidArgument('the request must be Binary HTTP bytes')
  const chunked = options.chunked ?? false
  const chunkLength = options.chunkLength ?? REQUEST_CHUNK_PLAINTEXT_LENGTH
  if (!Number.isSafeInteger(chunkLength) || chunkLength < 1) invalidArgument('chunkLength must be a positive integer')
  const { kdfId, aead } = chooseSuite(config)
  const suite = cipherSuite(aead.id)

  // RFC 9458 §4.3: hdr, info, SetupBaseS, Seal; draft §6.1 for the chunked variant.
  const hdr = requestHeader(config.keyId, config.kemId, kdfId, aead.id)
  const info = requestInfo(chunked ? LABEL_CHUNKED_REQUEST : LABEL_REQUEST, hdr)
  const recipientPublicKey = await recipientKey(config, aead.id)
  let context: SenderContext
  if (ephemeral === undefined) {
    const slot = `${hex(config.publicKey)}/${hex(info)}`
    context = takeSpare(slot) ?? (await suite.createSenderContext({ recipientPublicKey, info }))
    refillSpares(slot, suite, recipientPublicKey, info)
  } else {
    context = await suite.createSenderContext({ recipientPublicKey, info, ekm: ephemeral })
  }
  const enc = new Uint8Array(context.enc)
  const sealed = chunked ? await sealRequestChunks(context, bhttpRequest, chunkLength) : new Uint8Array(await context.seal(bhttpRequest))
  const body = new Uint8Array(hdr.length + enc.length + sealed.length)
  body.set(hdr, 0)
  body.set(enc, hdr.length)
  body.set(sealed, hdr.length + enc.length)

  const nonceLength = responseNonceLength(aead)
  const opener = (source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, opts?: OpenChunkedResponseOptions) =>
    openChunkedResponse(source, aead, (nonce) => deriveResponseKeys(context, LABEL_CHUNKED_RESPONSE, enc, nonce, aead), opts)

  const openWhole = async (response: Uint8Array): Promise<Uint8Array> => {
    if (chunked) throw new OhttpError('OHTTP_RESPONSE_INVALID', 'a chunked request must get a chunked response', { details: {} })
    if (!(response instanceof Uint8Array) || response.length < nonceLength + aead.nt) {
      throw new OhttpError('OHTTP_RESPONSE_INVALID', 'the encapsulated response is too short', { details: { length: response?.length } })
    }
    const keys = await deriveResponseKeys(context, LABEL_RESPONSE, enc, response.subarray(0, nonceLength), aead)
    try {
      return openResponse(keys, response.subarray(nonceLength))
    } finally {
      keys.key.fill(0)
    }
  }

  return Object.freeze({
    body,
    contentType: chunked ? MEDIA_TYPE_OHTTP_CHUNKED_REQUEST : MEDIA_TYPE_OHTTP_REQUEST,
    keyId: config.keyId,
    kdfId,
    aeadId: aead.id,
    openResponse: openWhole,
    openChunkedResponse: opener,
    chunkedResponseOpener(opts?: OpenChunkedResponseOptions): ChunkedResponseReader {
      const o = new ChunkedResponseOpener(aead, opts)
      return {
        push(fragment) {
          const out = o.push(fragment)
          const nonce = o.nonce
          if (nonce === undefined) return out
          return deriveResponseKeys(context, LABEL_CHUNKED_RESPONSE, enc, nonce, aead).then((keys) => [...out, ...o.setKeys(keys)])
        },
        end: () => o.end(),
        wipe: () => o.wipe(),
      }
    },
    async *open(contentType: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, opts?: OpenChunkedResponseOptions) {
      const essence = mediaTypeEssence(String(contentType))
      if (essence === MEDIA_TYPE_OHTTP_CHUNKED_RESPONSE) yield* opener(source, opts)
      else if (essence === MEDIA_TYPE_OHTTP_RESPONSE) yield await openWhole(await collect(source))
      else throw new OhttpError('OHTTP_RESPONSE_INVALID', 'the response is not an encapsulated response', { details: {} })
    },
  })
}

/**
 * Encapsulate `bhttpRequest` (RFC 9292 bytes, see `encodeBhttpRequest`) to
 * `keyConfig` (parsed, or its RFC 9458 §3.1 encoding). The suite is the
 * first (KDF, AEAD) pair of the config this module implements; a config
 * with none is `OHTTP_KEY_CONFIG_INVALID`.
 */
export async function encapsulateRequest(
  keyConfig: KeyConfig | Uint8Array,
  bhttpRequest: Uint8Array,
  options: EncapsulateRequestOptions = {},
): Promise<EncapsulatedRequest> {
  return encapsulate(keyConfig, bhttpRequest, options, undefined)
}

/**
 * `encapsulateRequest` with a fixed ephemeral X25519 private key, to
 * reproduce published examples (RFC 9458 Appendix A). Known-answer tests
 * only — reusing an ephemeral key links requests and breaks replay
 * protection. Not re-exported from index.ts.
 */
export async function encapsulateRequestForTesting(
  keyConfig: KeyConfig | Uint8Array,
  bhttpRequest: Uint8Array,
  ephemeralSecretKey: Uint8Array,
  options: EncapsulateRequestOptions = {},
): Promise<EncapsulatedRequest> {
  const { keys } = await x25519KeyPairFromSecret(ephemeralSecretKey)
  return encapsulate(keyConfig, bhttpRequest, options, keys)
}
