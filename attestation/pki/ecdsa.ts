/**
 * ECDSA verification and hashing over OpenSSL (node:crypto).
 *
 * Why node:crypto and not @noble/curves here: DCAP verification checks about
 * ten P-256 signatures per quote and OpenSSL's constant-time-irrelevant
 * verify path is an order of magnitude faster than pure JS; verification
 * handles only public data, so noble's side-channel hardening buys nothing.
 * Following noble's convention, a bad signature or a bad key returns `false`;
 * only argument misuse throws.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto'
import type { Certificate, SignatureAlgorithm } from './x509.ts'

/**
 * DER SubjectPublicKeyInfo prefix for an uncompressed P-256 point (RFC 5480
 * §2: id-ecPublicKey, prime256v1, BIT STRING of 66 bytes with 0x04 lead).
 */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200' + '04', 'hex')

/**
 * Parsed public keys by SPKI content. OpenSSL 3's key decoder costs more than
 * a signature verification (about 110 us against 70 us here), and the same
 * keys recur: a platform presents the same PCK chain and QE attestation key
 * in every quote. This caches parsing only; every signature is still checked
 * on every call. Bounded, least recently used out first.
 */
const KEY_CACHE_SIZE = 1024
const keyCache = new Map<string, KeyObject | null>()

/** The public key in a DER SubjectPublicKeyInfo; null when it is not a valid key. */
export function keyFromSpki(spki: Uint8Array): KeyObject | null {
  const id = Buffer.from(spki.buffer, spki.byteOffset, spki.byteLength).toString('base64')
  let k = keyCache.get(id)
  if (k !== undefined) {
    keyCache.delete(id)
  } else {
    try {
      k = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' })
    } catch {
      k = null
    }
    if (keyCache.size >= KEY_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value!)
  }
  keyCache.set(id, k)
  return k
}

/** Forget every parsed key (benchmarks measuring a first sighting). */
export function clearKeyCache(): void {
  keyCache.clear()
}

/** The public key of a certificate. */
export function certificateKey(cert: Certificate): KeyObject | null {
  return keyFromSpki(cert.spki)
}

/** A P-256 key from the 64-byte `x || y` form DCAP quotes carry; null when not on the curve. */
export function p256KeyFromRaw(xy: Uint8Array): KeyObject | null {
  if (xy.length !== 64) throw new TypeError('a raw P-256 key is 64 bytes')
  return keyFromSpki(Buffer.concat([P256_SPKI_PREFIX, xy]))
}

/**
 * Successful signature checks of parsed objects (certificates, CRLs, signed
 * collateral documents), remembered on the object with a copy of exactly
 * what was verified: signer key, signed bytes and signature. A later check
 * of the same object is a byte comparison of those three (microseconds)
 * instead of an ECDSA verification (about 70 us); if any byte changed in
 * place, or the signer differs, the signature is verified afresh. Only
 * signatures are remembered: every validity window is checked on every call.
 * This is how verification with prepared collateral stays cheap without
 * skipping a step.
 */
interface Remembered {
  readonly signerSpki: Uint8Array
  readonly data: Uint8Array
  readonly signature: Uint8Array
}
const remembered = new WeakMap<object, Remembered[]>()

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0
}

/**
 * `check()` verifies `signature` over `data` under the key in `signerSpki`;
 * it runs only when this exact triple was not verified before for `owner`.
 */
export function verifiedOnce(
  owner: object,
  signerSpki: Uint8Array,
  data: Uint8Array,
  signature: Uint8Array,
  check: () => boolean,
): boolean {
  const list = remembered.get(owner)
  if (list?.some((r) => same(r.signature, signature) && same(r.signerSpki, signerSpki) && same(r.data, data))) return true
  if (!check()) return false
  const entry = { signerSpki: signerSpki.slice(), data: data.slice(), signature: signature.slice() }
  if (list) list.push(entry)
  else remembered.set(owner, [entry])
  return true
}

function hashName(alg: SignatureAlgorithm): 'sha256' | 'sha384' {
  return alg === 'ecdsa-sha256' ? 'sha256' : 'sha384'
}

/** Verify a DER `ECDSA-Sig-Value` (certificates, CRLs). */
export function verifyDer(alg: SignatureAlgorithm, data: Uint8Array, key: KeyObject | null, sig: Uint8Array): boolean {
  if (!key) return false
  try {
    return verify(hashName(alg), data, key, sig)
  } catch {
    return false
  }
}

/** Verify a raw `r || s` signature (quotes, QE reports, Intel collateral JSON). */
export function verifyRaw(alg: SignatureAlgorithm, data: Uint8Array, key: KeyObject | null, rs: Uint8Array): boolean {
  if (!key) return false
  const n = alg === 'ecdsa-sha256' ? 64 : 96
  if (rs.length !== n) return false
  try {
    return verify(hashName(alg), data, { key, dsaEncoding: 'ieee-p1363' }, rs)
  } catch {
    return false
  }
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}

export function sha384(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha384')
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}
