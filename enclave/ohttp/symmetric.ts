/**
 * The symmetric primitives of the response side, on node:crypto (synchronous,
 * so a chunk is sealed the moment it is handed over):
 *
 * - HKDF-SHA256 Extract and Expand as two separate steps (RFC 5869 §2.2,
 *   §2.3). RFC 9458 §4.4 extracts once and expands twice ("key", "nonce")
 *   from the same PRK; node's `hkdfSync` only offers the fused
 *   Extract-then-Expand, so both steps are written here with HMAC.
 * - AES-GCM seal/open (RFC 5116) with a 16-byte tag appended to the ciphertext.
 *
 * These are the plain KDF functions of the HPKE suite, not HPKE's labeled
 * variants (RFC 9180 §4): RFC 9458 §4.4 says "the Extract function provided
 * by the KDF algorithm".
 */
import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto'
import type { AeadParams } from './hpke.ts'

/** RFC 5869 §2.1: HashLen of SHA-256. */
const HASH_LEN = 32

/** RFC 5869 §2.2: PRK = HMAC-Hash(salt, IKM). */
export function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha256', salt).update(ikm).digest())
}

/** RFC 5869 §2.3: T(i) = HMAC-Hash(PRK, T(i-1) || info || i); OKM = first L bytes of T(1) || T(2) || ... */
export function hkdfExpand(prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 0 || length > 255 * HASH_LEN) throw new RangeError('HKDF-Expand length out of range')
  const okm = new Uint8Array(length)
  let previous = new Uint8Array(0)
  for (let i = 1, filled = 0; filled < length; i++) {
    previous = new Uint8Array(createHmac('sha256', prk).update(previous).update(info).update(new Uint8Array([i])).digest())
    okm.set(previous.subarray(0, Math.min(HASH_LEN, length - filled)), filled)
    filled += HASH_LEN
  }
  return okm
}

/** AEAD Seal (RFC 5116 §2.1): ciphertext || tag. */
export function aeadSeal(aead: AeadParams, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const out = new Uint8Array(plaintext.length + aead.nt)
  aeadSealInto(aead, key, nonce, aad, plaintext, out, 0)
  return out
}

/**
 * AEAD Seal (RFC 5116 §2.1) written into `out` at `offset`: ciphertext ||
 * tag, exactly `plaintext.length + aead.nt` bytes (AES-GCM is a stream mode:
 * the ciphertext is as long as the plaintext). Returns the offset after the
 * tag. For callers that frame the sealed bytes (chunked-response.ts: once
 * per streamed event), so no intermediate buffer is allocated and copied.
 * Throws a RangeError when `out` has no room for them.
 */
export function aeadSealInto(
  aead: AeadParams,
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
  out: Uint8Array,
  offset: number,
): number {
  const end = offset + plaintext.length + aead.nt
  // Checked before sealing: a short buffer must not leave a partial ciphertext behind.
  if (!Number.isSafeInteger(offset) || offset < 0 || end > out.length) throw new RangeError('aeadSealInto: the output has no room for the sealed bytes')
  const cipher = createCipheriv(aead.nodeCipher, key, nonce, { authTagLength: aead.nt })
  if (aad.length > 0) cipher.setAAD(aad)
  const body = cipher.update(plaintext)
  const last = cipher.final()
  const tag = cipher.getAuthTag()
  // Fail closed should a cipher ever not be length-preserving: never a mis-framed chunk.
  if (body.length + last.length + tag.length !== end - offset) throw new RangeError('aeadSealInto: the cipher did not preserve the plaintext length')
  out.set(body, offset)
  out.set(last, offset + body.length)
  out.set(tag, offset + body.length + last.length)
  return end
}

/** AEAD Open (RFC 5116 §2.2): the plaintext, or undefined when the tag does not verify (or the input is shorter than a tag). */
export function aeadOpen(aead: AeadParams, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | undefined {
  if (sealed.length < aead.nt) return undefined
  const decipher = createDecipheriv(aead.nodeCipher, key, nonce, { authTagLength: aead.nt })
  decipher.setAuthTag(sealed.subarray(sealed.length - aead.nt))
  if (aad.length > 0) decipher.setAAD(aad)
  const body = decipher.update(sealed.subarray(0, sealed.length - aead.nt))
  try {
    const last = decipher.final()
    if (last.length === 0) return new Uint8Array(body.buffer, body.byteOffset, body.length)
    const out = new Uint8Array(body.length + last.length)
    out.set(body, 0)
    out.set(last, body.length)
    return out
  } catch {
    return undefined
  }
}
