/**
 * secp256k1 for the per-request paths: the enclave signing each receipt
 * (keys.ts) and clients checking them (gateway/client/receipt.ts). Same
 * curve, same algorithms, same bytes as @noble/curves' `secp256k1`; two
 * things are tuned, both measured on the gateway and proxy benchmarks:
 *
 *   - RFC 6979 (deterministic nonces, unchanged) runs its HMAC-DRBG on
 *     node:crypto's HMAC-SHA256 (OpenSSL) instead of @noble/hashes' JS
 *     SHA-256. The DRBG makes several HMAC calls per signature; in JS they
 *     were a fifth of the signing time. Signatures are byte-for-byte those
 *     of `secp256k1.sign` (test/enclave-keys.test.ts pins it).
 *   - The base point's precomputed table uses 8-bit windows instead of
 *     noble's default 6: the constant-time multiplication k·G (signing,
 *     blinded) and the public u1·G of a receipt check then take ~25% fewer
 *     point additions. The price is a table of ~10k points (~5 MB), built
 *     once per process on first use (~80 ms for signing, ~50 ms for checks).
 *
 * Nothing about constant time changes: noble's secret-scalar path (scalar
 * blinding, data-oblivious table scans, blinded nonce inversion) is used
 * as is; only the window width differs.
 *
 * The window is set once per process, here (noble rebuilds a point's tables
 * whenever its window is set again), and only on this module's noble
 * instance — viem bundles its own.
 */
import { createHmac } from 'node:crypto'
import { ecdsa } from '@noble/curves/abstract/weierstrass.js'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { sha256 } from '@noble/hashes/sha2.js'

/** wNAF window of the base point's table (noble's default is 6). */
export const BASE_PRECOMPUTE_WINDOW = 8

// Lazy: the tables are built by the first multiplication that needs them.
secp256k1.Point.BASE.precompute(BASE_PRECOMPUTE_WINDOW)

/** HMAC-SHA256 over the concatenation of `messages`, for the RFC 6979 DRBG. */
function hmacSha256(key: Uint8Array, ...messages: Uint8Array[]): Uint8Array {
  const h = createHmac('sha256', key)
  for (const m of messages) h.update(m)
  const out = h.digest()
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/**
 * ECDSA over secp256k1 with SHA-256 as noble's `secp256k1` defines it (low-s
 * by default, RFC 6979 nonces), the DRBG's HMAC on node:crypto.
 */
export const secp256k1Signer = ecdsa(secp256k1.Point, sha256, { hmac: hmacSha256 })

export { secp256k1 }
