/**
 * secp256k1 for the per-request paths: the enclave signing each receipt
 * (keys.ts) and clients checking them (gateway/client/receipt.ts).
 *
 * Both run on libsecp256k1 — Bitcoin Core's constant-time, exhaustively
 * reviewed implementation — compiled to WebAssembly by tiny-secp256k1 (no
 * native build, no install script). ECDSA as SEC 1 v2 §4.1.3 with RFC 6979
 * deterministic nonces, s always low (EIP-2: libsecp256k1 normalises every
 * signature it makes), and public-key recovery as Ethereum's `ecrecover`
 * does it (SEC 1 §4.1.6). Signatures are byte for byte @noble/curves'
 * `secp256k1.sign` (test/enclave-keys.test.ts checks it).
 *
 * Why not @noble/curves, which the rest of the project uses: measured on
 * this project's 2-core CI machine, libsecp256k1 signs in ~0.12 ms where
 * noble took ~0.55 ms even with an 8-bit base table, and recovers a key in
 * ~0.27 ms where noble took ~1.7 ms — per request, on the gateway's and the
 * proxy's critical paths. noble stays for key generation (once per epoch).
 */
import * as ecc from 'tiny-secp256k1'

/** SEC 1 v2 §2.4.1 / Ethereum: 32-byte r ‖ 32-byte s ‖ v, with v = 27 + recovery id (Yellow Paper, Appendix F). */
export const SIGNATURE_LENGTH = 65

/**
 * Sign a 32-byte digest (no hashing here): r ‖ s ‖ v with v = 27 or 28, s
 * low (EIP-2). RFC 6979 nonces: the same digest and key give the same bytes.
 */
export function signDigest(digest: Uint8Array, secretKey: Uint8Array): Uint8Array {
  if (digest.length !== 32) throw new TypeError('a digest is 32 bytes')
  const { signature, recoveryId } = ecc.signRecoverable(digest, secretKey)
  // libsecp256k1 reports recovery ids 2 and 3 (x(R) >= n, probability ~2^-127) too; Ethereum's v cannot carry them.
  if (recoveryId > 1) throw new RangeError('recovery id not representable in an Ethereum signature')
  const out = new Uint8Array(SIGNATURE_LENGTH)
  out.set(signature, 0)
  out[64] = 27 + recoveryId
  return out
}

/**
 * The uncompressed public key (0x04 ‖ x ‖ y) that `ecrecover` would
 * recover from `signature` (r ‖ s ‖ v) over `digest`, or null when it
 * recovers none. Only v = 27 or 28, the precompile's own values (a
 * contract that also maps 0 and 1 onto them is laxer than this). High s is
 * accepted, as `ecrecover` accepts it; callers that require low s
 * (receipts) check it themselves.
 */
export function recoverPublicKey(digest: Uint8Array, signature: Uint8Array): Uint8Array | null {
  if (digest.length !== 32 || signature.length !== SIGNATURE_LENGTH) return null
  const v = signature[64]!
  if (v !== 27 && v !== 28) return null
  try {
    return ecc.recover(digest, signature.subarray(0, 64), (v - 27) as 0 | 1, false) ?? null
  } catch {
    // r or s out of range, or zero: no key, as ecrecover returns the zero address.
    return null
  }
}

/** The uncompressed public key (0x04 ‖ x ‖ y) of a secret key. */
export function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  const q = ecc.pointFromScalar(secretKey, false)
  if (q === null) throw new RangeError('not a secp256k1 secret key')
  return q
}
