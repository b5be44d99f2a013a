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
 * hashStruct(message))`) and signs the digest on @noble/curves directly
 * from the key bytes (low s). Going through viem's `privateKeyToAccount`
 * would need the key as a hex *string*, an immutable copy that can never
 * be wiped.
 *
 * Each key keeps a pool of presignatures (secp256k1.ts: the nonce point
 * and inverse, computed ahead), so that a signature costs ~20 µs where the
 * receipt is waited for. The pool starts with the first signature (a key
 * that never signs costs nothing), refills once no signature has been
 * taken for a few milliseconds (idle time, not in the middle of a burst of
 * responses ending together), and doubles its size, up to a bound, each
 * time a burst empties it. An empty pool never blocks: the signature then
 * computes its own.
 *
 * `destroy()` overwrites the key bytes with zeros and drops the pool. That
 * is best effort in JavaScript: the scalar and the nonces are bigints while
 * signing (and the pool's nonces always), which cannot be overwritten, and
 * the engine may have copied buffers we cannot reach; those copies stay in
 * the heap until the garbage collector reuses their memory. What destroy()
 * guarantees is that this object can never sign again.
 */
import { randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { getAddress, hashTypedData, type Address, type Hex, type TypedData, type TypedDataDefinition } from 'viem'
import { EnclaveError } from './errors.ts'
import { SCALAR_SEED_LENGTH, createPresignature, secp256k1, signWithPresignature, type Presignature } from './secp256k1.ts'

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

export interface SigningKeyOptions {
  /** Most presignatures the pool grows to; 0: none, each signature computes its own. Default `MAX_PRESIGNATURES`. */
  readonly maxPresignatures?: number
}

/** The pool's bound: a wave of 128 streams ending at once signs without computing a nonce point. */
export const MAX_PRESIGNATURES = 128
/** The pool's first size; it doubles whenever a burst of signatures finds it empty. */
const FIRST_POOL_SIZE = 8
/** The pool refills once no signature has been taken for this long (ms). */
const REFILL_IDLE_MS = 5
/** Presignatures made per macrotask while refilling (~0.4 ms each), so I/O waits at most ~1 ms between them. */
const REFILL_SLICE = 2

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
export function createSigningKey(options: SigningKeyOptions = {}): SigningKey {
  const max = options.maxPresignatures ?? MAX_PRESIGNATURES
  if (!(Number.isSafeInteger(max) && max >= 0)) throw new TypeError('maxPresignatures must be a non-negative integer')
  const seed = randomBytes(SCALAR_SEED_LENGTH)
  let secret: Uint8Array | null = secp256k1.utils.randomSecretKey(seed)
  seed.fill(0)
  const address = addressOf(secp256k1.getPublicKey(secret, false))

  const view = () => ({ address, destroyed: secret === null })

  const pool: Presignature[] = []
  let poolSize = Math.min(FIRST_POOL_SIZE, max)
  /** Whether the pool has been asked for before (the first signature finds it empty by design). */
  let started = false
  let idle: NodeJS.Timeout | undefined
  let slice: NodeJS.Immediate | undefined
  const fillSlice = () => {
    slice = undefined
    if (secret === null) return
    for (let i = 0; i < REFILL_SLICE && pool.length < poolSize; i++) pool.push(createPresignature())
    if (pool.length < poolSize) slice = setImmediate(fillSlice).unref()
  }
  const onIdle = () => {
    idle = undefined
    if (slice === undefined) fillSlice()
  }
  /** Take a presignature (or make one) and (re)arm the refill for the next idle moment. */
  const presignature = (): Presignature => {
    const pre = pool.pop()
    if (pre === undefined && started) poolSize = Math.min(poolSize * 2, max)
    started = true
    if (poolSize > 0) {
      if (idle === undefined) idle = setTimeout(onIdle, REFILL_IDLE_MS).unref()
      else idle.refresh()
    }
    return pre ?? createPresignature()
  }

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
      for (;;) {
        // Each presignature is used once, whatever the outcome (s = 0 has probability ~2^-256).
        const signature = signWithPresignature(digest, secret, presignature())
        if (signature !== undefined) return `0x${Buffer.from(signature).toString('hex')}`
      }
    },
    destroy() {
      if (secret === null) return
      secret.fill(0)
      secret = null
      // The nonces are bigints, which cannot be overwritten: dropped for the collector (module header).
      pool.length = 0
      clearTimeout(idle)
      clearImmediate(slice)
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
