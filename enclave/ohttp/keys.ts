/**
 * OHTTP key pairs: an X25519 HPKE key (DHKEM(X25519, HKDF-SHA256), RFC 9180
 * §7.1) and the RFC 9458 key configuration that publishes it.
 *
 * The private key is a WebCrypto `CryptoKey` created non-extractable, so no
 * WebCrypto call can export it; the key pair object itself holds no key
 * material at all — the CryptoKey lives in a module-private WeakMap that
 * only the decapsulation code in this folder reads. No property, getter,
 * `JSON.stringify` or `util.inspect` reaches it.
 *
 * Limits of what JavaScript gives: "non-extractable" binds the WebCrypto API,
 * not the process (node's `KeyObject.from(cryptoKey)` can still export it),
 * and `destroy()` can only drop the reference — the key bytes stay in native
 * memory until the garbage collector frees the CryptoKey. What destroy()
 * guarantees is that this object can never decapsulate again.
 *
 * enclave/keys.ts (key epochs) calls `generateOhttpKeyPair` once per epoch.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto'
import { inspect } from 'node:util'
import { invalidArgument } from './errors.ts'
import {
  ENCLAVE_SYMMETRIC_ALGORITHMS,
  KEM_X25519_HKDF_SHA256,
  encodeKeyConfig,
  type KeyConfig,
  type SymmetricAlgorithm,
} from './key-config.ts'

/** An OHTTP key: public parts readable, private part reachable only by this folder's server. */
export interface OhttpKeyPair {
  /** RFC 9458 §3.1 Key Identifier, 0..255. */
  readonly keyId: number
  /** The parsed key configuration (frozen). */
  readonly config: KeyConfig
  /** The encoded key configuration (RFC 9458 §3.1), a fresh copy on every read. */
  readonly keyConfig: Uint8Array
  /** Drop the private key; the pair can never decapsulate again. Idempotent. */
  destroy(): void
  readonly destroyed: boolean
  /** Public view only. */
  toJSON(): { keyId: number; keyConfig: string; destroyed: boolean }
}

export interface GenerateOhttpKeyPairOptions {
  /** (KDF, AEAD) pairs to offer, in preference order. Default: HKDF-SHA256 + AES-256-GCM only (DESIGN.md). */
  readonly symmetric?: readonly SymmetricAlgorithm[]
}

const privateKeys = new WeakMap<OhttpKeyPair, CryptoKeyPair>()

/**
 * The recipient key of a pair made by this module, or undefined for a
 * destroyed pair or an object that was not made here. For server.ts only.
 */
export function recipientKeyOf(pair: OhttpKeyPair): CryptoKeyPair | undefined {
  return privateKeys.get(pair)
}

function makePair(keyId: number, keys: CryptoKeyPair, publicKey: Uint8Array, symmetric: readonly SymmetricAlgorithm[]): OhttpKeyPair {
  const config: KeyConfig = Object.freeze({
    keyId,
    kemId: KEM_X25519_HKDF_SHA256,
    publicKey,
    symmetric: Object.freeze(symmetric.map((s) => Object.freeze({ kdfId: s.kdfId, aeadId: s.aeadId }))),
  })
  const encoded = encodeKeyConfig(config)
  let destroyed = false
  const view = () => ({ keyId, keyConfig: Buffer.from(encoded).toString('base64'), destroyed })
  const pair: OhttpKeyPair = {
    keyId,
    config,
    get keyConfig() {
      return encoded.slice()
    },
    destroy() {
      destroyed = true
      privateKeys.delete(pair)
    },
    get destroyed() {
      return destroyed
    },
    toJSON: view,
  }
  Object.defineProperty(pair, inspect.custom, { value: () => `OhttpKeyPair ${JSON.stringify(view())}`, enumerable: false })
  Object.freeze(pair)
  privateKeys.set(pair, keys)
  return pair
}

function checkKeyId(keyId: number): void {
  if (!Number.isInteger(keyId) || keyId < 0 || keyId > 0xff) invalidArgument('an OHTTP key id is an integer in 0..255', { keyId })
}

/**
 * Generate a fresh X25519 key pair from the platform CSPRNG (WebCrypto
 * `generateKey`, private key non-extractable) and its key configuration.
 */
export async function generateOhttpKeyPair(keyId: number, options: GenerateOhttpKeyPairOptions = {}): Promise<OhttpKeyPair> {
  checkKeyId(keyId)
  const symmetric = options.symmetric ?? ENCLAVE_SYMMETRIC_ALGORITHMS
  const keys = (await crypto.subtle.generateKey({ name: 'X25519' }, false, ['deriveBits'])) as CryptoKeyPair
  const publicKey = new Uint8Array(await crypto.subtle.exportKey('raw', keys.publicKey))
  return makePair(keyId, keys, publicKey, symmetric)
}

/** RFC 8410 §7: the PKCS #8 prefix of a raw 32-byte X25519 private key. */
const X25519_PKCS8_PREFIX = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20])

/**
 * An X25519 WebCrypto key pair from raw private key bytes (RFC 7748 §5). For
 * known-answer tests: production keys are generated, never imported.
 */
export async function x25519KeyPairFromSecret(secretKey: Uint8Array): Promise<{ keys: CryptoKeyPair; publicKey: Uint8Array }> {
  if (secretKey.length !== 32) invalidArgument('an X25519 private key is 32 bytes')
  const pkcs8 = new Uint8Array(X25519_PKCS8_PREFIX.length + 32)
  pkcs8.set(X25519_PKCS8_PREFIX, 0)
  pkcs8.set(secretKey, X25519_PKCS8_PREFIX.length)
  const privateKey = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'X25519' }, false, ['deriveBits'])
  const jwk = createPublicKey(createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' })).export({ format: 'jwk' })
  pkcs8.fill(0)
  const publicKey = new Uint8Array(Buffer.from(jwk.x!, 'base64url'))
  const publicCryptoKey = await crypto.subtle.importKey('raw', publicKey, { name: 'X25519' }, true, [])
  return { keys: { privateKey, publicKey: publicCryptoKey }, publicKey }
}

/**
 * An OHTTP key pair from raw private key bytes — for known-answer tests
 * (RFC 9458 Appendix A, draft-ietf-ohai-chunked-ohttp Appendix A) only.
 * Not re-exported from index.ts; production keys come from `generateOhttpKeyPair`.
 */
export async function importOhttpKeyPairForTesting(
  keyId: number,
  secretKey: Uint8Array,
  symmetric: readonly SymmetricAlgorithm[] = ENCLAVE_SYMMETRIC_ALGORITHMS,
): Promise<OhttpKeyPair> {
  checkKeyId(keyId)
  const { keys, publicKey } = await x25519KeyPairFromSecret(secretKey)
  return makePair(keyId, keys, publicKey, symmetric)
}
