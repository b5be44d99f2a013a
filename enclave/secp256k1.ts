/**
 * secp256k1 for the per-request paths: the enclave signing each receipt
 * (keys.ts) and clients checking them (gateway/client/receipt.ts). Same
 * curve and same signatures as @noble/curves' `secp256k1` (ECDSA, SEC 1
 * v2 §4.1.3; low s, EIP-2), with two things tuned, both measured on the
 * gateway and proxy benchmarks:
 *
 *   - Presignatures. ECDSA's expensive part, the nonce point R = k·G and
 *     the inverse k⁻¹, does not depend on the message ("k and k⁻¹ may be
 *     pre-computed, since knowledge of the message to be signed is not
 *     required", FIPS 186-4 §4.5), so keys.ts computes them while the
 *     enclave is idle and a receipt at the end of a response costs only
 *     s = k⁻¹(z + r·d) mod n (a few bigint operations, ~20 µs, instead of
 *     ~0.5 ms on the critical path of every response). The nonce is
 *     therefore random (FIPS 186-5 A.3.1: extra random bits from the
 *     CSPRNG, reduced by noble's `randomSecretKey`), not RFC 6979's
 *     deterministic one: RFC 6979 guards against a broken random source,
 *     and an enclave whose CSPRNG is broken has lost its HPKE and signing
 *     keys already (they come from the same source). A presignature is
 *     used once and dropped; the pool dies with its key.
 *   - The base point's precomputed table uses 8-bit windows instead of
 *     noble's default 6: the constant-time multiplication k·G and the
 *     public u1·G of a receipt check then take ~25% fewer point additions.
 *     The price is a table of ~10k points (~5 MB), built once per process
 *     on first use (~80 ms for signing, ~50 ms for checks).
 *
 * Nothing about constant time changes: k·G is noble's constant-time
 * multiplication and the inversion is blinded as noble blinds it; only the
 * window width and the moment of computation differ.
 *
 * The window is set once per process, here (noble rebuilds a point's tables
 * whenever its window is set again), and only on this module's noble
 * instance — viem bundles its own.
 */
import { randomBytes } from 'node:crypto'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js'

/** wNAF window of the base point's table (noble's default is 6). */
export const BASE_PRECOMPUTE_WINDOW = 8

// Lazy: the tables are built by the first multiplication that needs them.
secp256k1.Point.BASE.precompute(BASE_PRECOMPUTE_WINDOW)

const Fn = secp256k1.Point.Fn
const N = Fn.ORDER
/** Seed length for a random scalar: the order's byte length plus half (FIPS 186-5 A.3.1: at least 64 extra bits). */
export const SCALAR_SEED_LENGTH = 48

/** A uniformly random scalar in [1, n): CSPRNG bytes reduced by noble's `randomSecretKey` (negligible bias). */
function randomScalar(): bigint {
  const seed = randomBytes(SCALAR_SEED_LENGTH)
  const k = secp256k1.utils.randomSecretKey(seed)
  seed.fill(0)
  const scalar = bytesToNumberBE(k)
  k.fill(0)
  return scalar
}

/**
 * The message-independent half of one ECDSA signature (SEC 1 v2 §4.1.3
 * steps 1-3, 5 and the inverse of step 6): r = x(k·G) mod n, k⁻¹, and the
 * parity of y(k·G) for Ethereum's recovery id. Secret: whoever learns k⁻¹
 * and one signature made with it learns the key.
 */
export interface Presignature {
  readonly r: bigint
  readonly kInv: bigint
  readonly yOdd: boolean
}

/** A fresh presignature (~0.4 ms: one constant-time k·G). */
export function createPresignature(): Presignature {
  for (;;) {
    const k = randomScalar()
    const R = secp256k1.Point.BASE.multiply(k).toAffine()
    const r = Fn.create(R.x)
    // x(R) >= n (probability ~2^-128) would need recovery id 2 or 3, which
    // Ethereum's v cannot carry; r = 0 is no signature. Draw again.
    if (r === 0n || r !== R.x) continue
    // Blinded inversion, as noble's own signer: the inverted value is decorrelated from k.
    const b = randomScalar()
    const kInv = Fn.mul(b, Fn.inv(Fn.mul(b, k)))
    return { r, kInv, yOdd: (R.y & 1n) === 1n }
  }
}

/**
 * Sign a 32-byte digest with a presignature (SEC 1 v2 §4.1.3 steps 4-6): s
 * = k⁻¹(z + r·d) mod n, made low (EIP-2: s ≤ n/2, flipping the recovery
 * id). Returns Ethereum's 65 bytes r ‖ s ‖ v (v = 27 + y-parity), or
 * undefined in the negligible case s = 0 (take another presignature).
 * The caller must never use `pre` again.
 */
export function signWithPresignature(digest: Uint8Array, secretKey: Uint8Array, pre: Presignature): Uint8Array | undefined {
  if (digest.length !== 32) throw new TypeError('a digest is 32 bytes')
  // SEC 1 §4.1.3 step 5: z = the digest as an integer (256 bits, as long as n), reduced mod n.
  const z = Fn.create(bytesToNumberBE(digest))
  const d = bytesToNumberBE(secretKey)
  let s = Fn.create(pre.kInv * Fn.create(z + pre.r * d))
  if (s === 0n) return undefined
  let yOdd = pre.yOdd
  if (s > N >> 1n) {
    s = N - s
    yOdd = !yOdd
  }
  const out = new Uint8Array(65)
  out.set(numberToBytesBE(pre.r, 32), 0)
  out.set(numberToBytesBE(s, 32), 32)
  out[64] = yOdd ? 28 : 27
  return out
}

export { secp256k1 }
