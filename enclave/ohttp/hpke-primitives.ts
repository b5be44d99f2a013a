/**
 * The cryptographic primitives under @hpke/core, on node:crypto.
 *
 * Why: @hpke/core runs every primitive through WebCrypto, and in Node each
 * WebCrypto call is a round trip to the libuv thread pool (~0.1 ms). One
 * decapsulation makes about fifteen of them (X25519, each HMAC of the KEM
 * and of the key schedule, AES-GCM) and cost ~1 ms at the median in
 * measurement — the whole latency budget of a request. The same operations
 * on node:crypto (OpenSSL, synchronous) cost ~0.1 ms.
 *
 * How: @hpke/core's `CipherSuite` takes its KEM, KDF and AEAD as objects
 * implementing its public `KemInterface`, `KdfInterface` and
 * `AeadInterface`. These classes implement them; the HPKE protocol — key
 * schedule, contexts, sequence numbers, nonces, exporter, mode checks — is
 * still @hpke/core's. What is written here is the DHKEM of RFC 9180 §4.1
 * for X25519 (§7.1), HKDF (RFC 5869) and AES-GCM (RFC 5116). The RFC 9180
 * test vector for the suite (test/ohttp-vectors.test.ts) and a cross-check
 * against @hpke/core's own WebCrypto classes (test/ohttp.test.ts) pin them.
 *
 * Only base mode is supported (OHTTP uses nothing else): `encap`/`decap`
 * refuse a sender key (auth modes).
 *
 * Keys stay WebCrypto `CryptoKey`s at the interface (that is @hpke/core's
 * contract); the KEM turns a private CryptoKey into a node `KeyObject` once
 * and caches it for the key's lifetime (a WeakMap: it goes when the
 * CryptoKey does). `KeyObject.from` works on non-extractable keys too —
 * in-process, "non-extractable" only guards the WebCrypto API.
 */
import { concatBytes } from '../../attestation/bytes/concat.ts'
import { KeyObject, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync } from 'node:crypto'
import {
  AeadId,
  HkdfSha256,
  KemId,
  type AeadEncryptionContext,
  type AeadInterface,
  type KemInterface,
  type RecipientContextParams,
  type SenderContextParams,
} from '@hpke/core'
import { aeadOpen, aeadSeal, hkdfExpand, hkdfExtract } from './symmetric.ts'
import type { AeadParams } from './hpke.ts'

type Bytes = ArrayBufferLike | ArrayBufferView

function u8(x: Bytes): Uint8Array {
  return ArrayBuffer.isView(x) ? new Uint8Array(x.buffer, x.byteOffset, x.byteLength) : new Uint8Array(x)
}
function toArrayBuffer(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer
}
const concat = (...parts: Uint8Array[]) => concatBytes(parts)
const ascii = (s: string) => new TextEncoder().encode(s)

/** RFC 9180 §4: HashLen of SHA-256; an empty salt is HashLen zero bytes (RFC 5869 §2.2). */
const ZERO_SALT = new Uint8Array(32)

/** HKDF-SHA256 for @hpke/core's key schedule: its labeling, node:crypto HMAC underneath. */
export class NodeHkdfSha256 extends HkdfSha256 {
  override async extract(salt: Bytes, ikm: Bytes): Promise<ArrayBuffer> {
    const s = u8(salt)
    return toArrayBuffer(hkdfExtract(s.length === 0 ? ZERO_SALT : s, u8(ikm)))
  }
  override async expand(prk: Bytes, info: Bytes, len: number): Promise<ArrayBuffer> {
    return toArrayBuffer(hkdfExpand(u8(prk), u8(info), len))
  }
  override async extractAndExpand(salt: Bytes, ikm: Bytes, info: Bytes, len: number): Promise<ArrayBuffer> {
    const s = u8(salt)
    const prk = hkdfExtract(s.length === 0 ? ZERO_SALT : s, u8(ikm))
    const okm = hkdfExpand(prk, u8(info), len)
    prk.fill(0)
    return toArrayBuffer(okm)
  }
}

/** AES-GCM (RFC 5116) for @hpke/core's encryption contexts, on node:crypto. */
export class NodeAesGcm implements AeadInterface {
  readonly id: AeadId
  readonly keySize: number
  readonly nonceSize: number
  readonly tagSize: number
  readonly #params: AeadParams
  constructor(params: AeadParams) {
    this.#params = params
    this.id = params.id as AeadId
    this.keySize = params.nk
    this.nonceSize = params.nn
    this.tagSize = params.nt
  }
  createEncryptionContext(key: Bytes): AeadEncryptionContext {
    const k = u8(key).slice()
    const params = this.#params
    return {
      async seal(iv: Bytes, data: Bytes, aad: Bytes): Promise<ArrayBuffer> {
        return toArrayBuffer(aeadSeal(params, k, u8(iv), u8(aad), u8(data)))
      },
      async open(iv: Bytes, data: Bytes, aad: Bytes): Promise<ArrayBuffer> {
        const pt = aeadOpen(params, k, u8(iv), u8(aad), u8(data))
        if (pt === undefined) throw new Error('AEAD open failed')
        return toArrayBuffer(pt)
      },
    }
  }
}

/** RFC 8410 §7: the DER prefix of a raw X25519 private key (PKCS #8). */
const PKCS8_X25519_PREFIX = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20])

/** RFC 9180 §4.1: suite_id = "KEM" || I2OSP(kem_id, 2) for DHKEM(X25519, HKDF-SHA256). */
const KEM_SUITE_ID = concat(ascii('KEM'), new Uint8Array([0x00, 0x20]))
const HPKE_V1 = ascii('HPKE-v1')
const LABEL_EAE_PRK = ascii('eae_prk')
const LABEL_SHARED_SECRET = ascii('shared_secret')
const LABEL_DKP_PRK = ascii('dkp_prk')
const LABEL_SK = ascii('sk')
const X25519 = { name: 'X25519' } as const

/** RFC 9180 §4: LabeledExtract(salt, label, ikm) with the KEM's suite_id. */
function labeledExtract(label: Uint8Array, ikm: Uint8Array): Uint8Array {
  return hkdfExtract(ZERO_SALT, concat(HPKE_V1, KEM_SUITE_ID, label, ikm))
}
/** RFC 9180 §4: LabeledExpand(prk, label, info, L) with the KEM's suite_id. */
function labeledExpand(prk: Uint8Array, label: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  return hkdfExpand(prk, concat(new Uint8Array([length >>> 8, length & 0xff]), HPKE_V1, KEM_SUITE_ID, label, info), length)
}

const privateKeyObjects = new WeakMap<CryptoKey, KeyObject>()
const publicKeyBytes = new WeakMap<CryptoKey, Uint8Array>()

function privateKeyObject(key: CryptoKey): KeyObject {
  let ko = privateKeyObjects.get(key)
  if (ko === undefined) {
    if (key.type !== 'private' || key.algorithm.name !== 'X25519') throw new Error('an X25519 private key is needed')
    ko = KeyObject.from(key)
    privateKeyObjects.set(key, ko)
  }
  return ko
}

async function rawPublicKey(key: CryptoKey): Promise<Uint8Array> {
  let raw = publicKeyBytes.get(key)
  if (raw === undefined) {
    if (key.type !== 'public' || key.algorithm.name !== 'X25519') throw new Error('an X25519 public key is needed')
    raw = new Uint8Array(await crypto.subtle.exportKey('raw', key))
    publicKeyBytes.set(key, raw)
  }
  return raw
}

/**
 * The raw public key of a node X25519 key object. Through JWK (RFC 8037 §2:
 * `x` is the raw key, base64url): OpenSSL's DER encoder costs ~0.17 ms, the
 * JWK export ~3 µs. The public half is taken first so that a private key's
 * `d` never becomes a (non-wipeable) JS string.
 */
function rawPublicOf(ko: KeyObject): Uint8Array {
  const pub = ko.type === 'private' ? createPublicKey(ko) : ko
  const x = pub.export({ format: 'jwk' }).x
  if (typeof x !== 'string') throw new Error('an X25519 public key has no JWK x')
  return new Uint8Array(Buffer.from(x, 'base64url'))
}

/**
 * Import a raw X25519 public key. As a JWK (RFC 8037 §2) rather than SPKI
 * DER: OpenSSL 3's DER decoder costs ~0.2 ms a key, the raw import behind
 * JWK ~20 µs — and the server imports one (the client's `enc`) per request.
 */
function importRawPublicKey(pkRaw: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(pkRaw.buffer, pkRaw.byteOffset, pkRaw.byteLength).toString('base64url') }, format: 'jwk' })
}

function privateKeyObjectFromRaw(sk: Uint8Array): KeyObject {
  const der = Buffer.from(concat(PKCS8_X25519_PREFIX, sk))
  const ko = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
  der.fill(0)
  return ko
}

/**
 * RFC 9180 §4.1 DH(sk, pk) for X25519 (RFC 7748 §5), refusing the all-zero
 * output a small-order public key produces (RFC 9180 §7.1.4).
 */
/**
 * Imported X25519 public keys by their bytes. A client encapsulates to the
 * same recipient key again and again, and OpenSSL's key import costs more
 * than the DH itself; a server's peers (fresh ephemeral keys) just miss.
 */
const PUBLIC_KEY_CACHE_SIZE = 64
const publicKeys = new Map<string, KeyObject>()

function publicKeyObject(pkRaw: Uint8Array): KeyObject {
  const id = Buffer.from(pkRaw).toString('hex')
  let pk = publicKeys.get(id)
  if (pk === undefined) {
    pk = importRawPublicKey(pkRaw)
    if (publicKeys.size >= PUBLIC_KEY_CACHE_SIZE) publicKeys.delete(publicKeys.keys().next().value!)
    publicKeys.set(id, pk)
  }
  return pk
}

function dh(sk: KeyObject, pkRaw: Uint8Array, cachePeer: boolean): Uint8Array {
  if (pkRaw.length !== 32) throw new Error('an X25519 public key is 32 bytes')
  const pk = cachePeer ? publicKeyObject(pkRaw) : importRawPublicKey(pkRaw)
  const shared = new Uint8Array(diffieHellman({ privateKey: sk, publicKey: pk }))
  if (shared.every((b) => b === 0)) throw new Error('X25519 produced the all-zero value')
  return shared
}

/** RFC 9180 §4.1 ExtractAndExpand(dh, kem_context). */
function extractAndExpand(dhValue: Uint8Array, kemContext: Uint8Array): Uint8Array {
  const prk = labeledExtract(LABEL_EAE_PRK, dhValue)
  const secret = labeledExpand(prk, LABEL_SHARED_SECRET, kemContext, 32)
  prk.fill(0)
  dhValue.fill(0)
  return secret
}

/** RFC 9180 §7.1.3 DeriveKeyPair for X25519: sk = LabeledExpand(LabeledExtract("", "dkp_prk", ikm), "sk", "", 32). */
function deriveSecretKey(ikm: Uint8Array): Uint8Array {
  const prk = labeledExtract(LABEL_DKP_PRK, ikm)
  const sk = labeledExpand(prk, LABEL_SK, new Uint8Array(0), 32)
  prk.fill(0)
  return sk
}

function isKeyPair(x: unknown): x is CryptoKeyPair {
  return typeof x === 'object' && x !== null && 'privateKey' in x && 'publicKey' in x
}

/** DHKEM(X25519, HKDF-SHA256), RFC 9180 §4.1 and §7.1, base mode only. */
export class NodeDhkemX25519HkdfSha256 implements KemInterface {
  readonly id = KemId.DhkemX25519HkdfSha256
  readonly secretSize = 32
  readonly encSize = 32
  readonly publicKeySize = 32
  readonly privateKeySize = 32

  async serializePublicKey(key: CryptoKey): Promise<ArrayBuffer> {
    return toArrayBuffer(await rawPublicKey(key))
  }
  async deserializePublicKey(key: Bytes): Promise<CryptoKey> {
    const raw = u8(key)
    if (raw.length !== 32) throw new Error('an X25519 public key is 32 bytes')
    return crypto.subtle.importKey('raw', raw.slice(), X25519, true, [])
  }
  async serializePrivateKey(key: CryptoKey): Promise<ArrayBuffer> {
    const jwk = await crypto.subtle.exportKey('jwk', key)
    return toArrayBuffer(new Uint8Array(Buffer.from(jwk.d!, 'base64url')))
  }
  async deserializePrivateKey(key: Bytes): Promise<CryptoKey> {
    const raw = u8(key)
    if (raw.length !== 32) throw new Error('an X25519 private key is 32 bytes')
    return crypto.subtle.importKey('pkcs8', concat(PKCS8_X25519_PREFIX, raw), X25519, true, ['deriveBits'])
  }
  async importKey(format: 'raw' | 'jwk', key: ArrayBuffer | JsonWebKey, isPublic = true): Promise<CryptoKey> {
    if (format === 'jwk') return crypto.subtle.importKey('jwk', key as JsonWebKey, X25519, true, isPublic ? [] : ['deriveBits'])
    return isPublic ? this.deserializePublicKey(key as ArrayBuffer) : this.deserializePrivateKey(key as ArrayBuffer)
  }
  async generateKeyPair(): Promise<CryptoKeyPair> {
    return (await crypto.subtle.generateKey(X25519, true, ['deriveBits'])) as CryptoKeyPair
  }
  async deriveKeyPair(ikm: Bytes): Promise<CryptoKeyPair> {
    const sk = deriveSecretKey(u8(ikm))
    const privateKey = await this.deserializePrivateKey(sk)
    const publicKey = await this.deserializePublicKey(rawPublicOf(privateKeyObjectFromRaw(sk)))
    sk.fill(0)
    return { privateKey, publicKey }
  }

  /** RFC 9180 §4.1 Encap(pkR); `ekm` (an ephemeral key pair or the ikm to derive one) only for known-answer tests. */
  async encap(params: SenderContextParams): Promise<{ sharedSecret: ArrayBuffer; enc: ArrayBuffer }> {
    if (params.senderKey !== undefined) throw new Error('only HPKE base mode is supported')
    const pkRm = await rawPublicKey(params.recipientPublicKey)
    let skE: KeyObject
    let enc: Uint8Array
    if (params.ekm === undefined) {
      // Keep the generated public half: deriving it again from the private key costs a key import.
      const pair = generateKeyPairSync('x25519')
      skE = pair.privateKey
      enc = rawPublicOf(pair.publicKey)
    } else if (isKeyPair(params.ekm)) {
      skE = privateKeyObject(params.ekm.privateKey)
      enc = await rawPublicKey(params.ekm.publicKey)
    } else {
      const sk = deriveSecretKey(u8(params.ekm))
      skE = privateKeyObjectFromRaw(sk)
      sk.fill(0)
      enc = rawPublicOf(skE)
    }
    const sharedSecret = extractAndExpand(dh(skE, pkRm, true), concat(enc, pkRm))
    return { sharedSecret: toArrayBuffer(sharedSecret), enc: toArrayBuffer(enc) }
  }

  /** RFC 9180 §4.1 Decap(enc, skR); `recipientKey` must be the key pair (its public half gives pkRm). */
  async decap(params: RecipientContextParams): Promise<ArrayBuffer> {
    if (params.senderPublicKey !== undefined) throw new Error('only HPKE base mode is supported')
    if (!isKeyPair(params.recipientKey)) throw new Error('decap needs the recipient key pair')
    const enc = u8(params.enc)
    const skR = privateKeyObject(params.recipientKey.privateKey)
    const pkRm = await rawPublicKey(params.recipientKey.publicKey)
    return toArrayBuffer(extractAndExpand(dh(skR, enc, false), concat(enc, pkRm)))
  }
}
