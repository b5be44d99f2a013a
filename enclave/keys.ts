/**
 * The enclave's secp256k1 signing key: one per key epoch, made in memory,
 * used only to sign EIP-712 typed data (receipts), never exported.
 *
 * The key object holds no key bytes: they live in a closure, so no property,
 * getter, `JSON.stringify`, `util.inspect`, structured clone or
 * `Object.getOwnPropertyNames` reaches them. The only way out of this module
 * is a signature.
 *
 * Signing hashes the typed data with viem's `hashTypedData` (EIP-712 §"Specification
 * of the eth_signTypedData JSON RPC": `keccak256("\x19\x01" ‖ domainSeparator ‖
 * hashStruct(message))`) and signs the digest directly from the key bytes
 * on libsecp256k1 (secp256k1.ts: RFC 6979 nonces, low s). Going through
 * viem's `privateKeyToAccount` would need the key as a hex *string*, an
 * immutable copy that can never be wiped.
 *
 * `destroy()` overwrites the key bytes with zeros. That is best effort in
 * JavaScript: key generation passes the scalar through a bigint
 * (@noble/curves), signing copies it into WebAssembly memory (tiny-secp256k1
 * zeroes its input buffer after each call; copies libsecp256k1 makes on
 * the WebAssembly stack are not wiped), and the engine may have copied
 * buffers we cannot reach; those copies stay in the heap until the
 * garbage collector reuses their memory. What destroy() guarantees is that
 * this object can never sign again.
 */
import { randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { getAddress, hashTypedData, type Address, type Hex, type TypedData, type TypedDataDefinition } from 'viem'
import { EnclaveError } from './errors.ts'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { publicKeyOf, signDigest } from './secp256k1.ts'

/** A secp256k1 signing key that can sign typed data and nothing else. */
export interface SigningKey {
  /** The key's Ethereum address (EIP-55 mixed-case checksum). */
  readonly address: Address
  /**
   * Sign EIP-712 typed data; resolves to the 65-byte `r ‖ s ‖ v` signature
   * (v = 27 or 28, s low per EIP-2) that viem's `verifyTypedData` and
   * Solidity's `ecrecover` accept. Same parameters as viem's
   * `LocalAccount.signTypedData`. Rejects with `ENCLAVE_CLOSED` once destroyed.
   */
  signTypedData<const typedData extends TypedData | Record<string, unknown>, primaryType extends keyof typedData | 'EIP712Domain'>(
    parameters: TypedDataDefinition<typedData, primaryType>,
  ): Promise<Hex>
  /** Sign a 32-byte digest (an EIP-712 digest computed by the caller); same signature form as `signTypedData`. */
  signDigest(digest: Uint8Array): Promise<Hex>
  /** Zero the key bytes (best effort, see the module header). Idempotent. */
  destroy(): void
  readonly destroyed: boolean
  /** Public view only: `{ address, destroyed }`. */
  toJSON(): { address: Address; destroyed: boolean }
}

/** Seed length for secp256k1 keygen: the order's byte length plus half (FIPS 186-5 A.2.1: at least 64 extra bits). */
const SEED_LENGTH = 48

/** Ethereum address of an uncompressed secp256k1 public key: the last 20 bytes of keccak256(x ‖ y) (Yellow Paper, eq. 284). */
function addressOf(uncompressed: Uint8Array): Address {
  const digest = keccak_256(uncompressed.subarray(1))
  return getAddress(`0x${Buffer.from(digest.subarray(12)).toString('hex')}`)
}

/**
 * Create a fresh signing key: 48 bytes from node:crypto's CSPRNG reduced
 * into [1, n) by @noble/curves' `randomSecretKey` ("extra random bits", FIPS
 * 186-5 A.2.1), so every result is a valid scalar with negligible bias.
 */
export function createSigningKey(): SigningKey {
  const seed = randomBytes(SEED_LENGTH)
  let secret: Uint8Array | null = secp256k1.utils.randomSecretKey(seed)
  seed.fill(0)
  const address = addressOf(publicKeyOf(secret))

  const view = () => ({ address, destroyed: secret === null })

  const key: SigningKey = {
    address,
    async signTypedData(parameters) {
      // Hash before checking the key: a malformed definition is the caller's error either way.
      const digest = hashTypedData(parameters as TypedDataDefinition)
      return key.signDigest(Buffer.from(digest.slice(2), 'hex'))
    },
    async signDigest(digest) {
      if (!(digest instanceof Uint8Array) || digest.length !== 32) throw new TypeError('a digest is 32 bytes')
      if (secret === null) throw new EnclaveError('ENCLAVE_CLOSED', 'the signing key of this epoch is destroyed', { details: { address } })
      return `0x${Buffer.from(signDigest(digest, secret)).toString('hex')}`
    },
    destroy() {
      if (secret === null) return
      secret.fill(0)
      secret = null
    },
    get destroyed() {
      return secret === null
    },
    toJSON: view,
  }
  Object.defineProperty(key, inspect.custom, {
    value: () => `SigningKey ${JSON.stringify(view())}`,
    enumerable: false,
  })
  return Object.freeze(key)
}
