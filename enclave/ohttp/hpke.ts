/**
 * The HPKE side of OHTTP: which suites exist here, the AEAD parameters the
 * response encapsulation needs, and the request header and `info` strings
 * (RFC 9458 §4.3; draft-ietf-ohai-chunked-ohttp-08 §6.1). HPKE itself is
 * @hpke/core's `CipherSuite` (RFC 9180), given node:crypto primitives
 * through its KEM/KDF/AEAD interfaces (hpke-primitives.ts explains why).
 */
import { CipherSuite } from '@hpke/core'
import { NodeAesGcm, NodeDhkemX25519HkdfSha256, NodeHkdfSha256 } from './hpke-primitives.ts'
import { AEAD_AES_128_GCM, AEAD_AES_256_GCM, KDF_HKDF_SHA256, KEM_X25519_HKDF_SHA256 } from './key-config.ts'

/** RFC 9180 §7.1, Table 2: Nenc of DHKEM(X25519, HKDF-SHA256). */
export const X25519_ENC_LENGTH = 32

/** RFC 9458 §4.1: Key Identifier (8), KEM ID (16), KDF ID (16), AEAD ID (16). */
export const REQUEST_HEADER_LENGTH = 7

/** RFC 9458 §4.3: `info` label of a request; its context also seals the response. */
export const LABEL_REQUEST = 'message/bhttp request'
/** RFC 9458 §4.4: exporter label of a (non-chunked) response. */
export const LABEL_RESPONSE = 'message/bhttp response'
/** draft-ietf-ohai-chunked-ohttp-08 §6.1: `info` label of a chunked request. */
export const LABEL_CHUNKED_REQUEST = 'message/bhttp chunked request'
/** draft-ietf-ohai-chunked-ohttp-08 §6.2: exporter label of a chunked response. */
export const LABEL_CHUNKED_RESPONSE = 'message/bhttp chunked response'
/** draft-ietf-ohai-chunked-ohttp-08 §6.1, §6.2: AAD of the final chunk, ASCII "final" (0x66696e616c). */
export const FINAL_CHUNK_AAD: Uint8Array = new TextEncoder().encode('final')

/** RFC 9180 §7.3, Table 5: the parameters of an AEAD, plus node:crypto's name for it. */
export interface AeadParams {
  readonly id: number
  /** Key length in bytes. */
  readonly nk: number
  /** Nonce length in bytes. */
  readonly nn: number
  /** Tag length in bytes. */
  readonly nt: number
  readonly nodeCipher: 'aes-128-gcm' | 'aes-256-gcm'
}

/** The AEADs implemented here (@hpke/core for requests, node:crypto for responses). */
export const AEADS: ReadonlyMap<number, AeadParams> = new Map<number, AeadParams>([
  [AEAD_AES_128_GCM, Object.freeze({ id: AEAD_AES_128_GCM, nk: 16, nn: 12, nt: 16, nodeCipher: 'aes-128-gcm' as const })],
  [AEAD_AES_256_GCM, Object.freeze({ id: AEAD_AES_256_GCM, nk: 32, nn: 12, nt: 16, nodeCipher: 'aes-256-gcm' as const })],
])

/** Whether this module implements the (KEM, KDF, AEAD) triple. */
export function isImplementedSuite(kemId: number, kdfId: number, aeadId: number): boolean {
  return kemId === KEM_X25519_HKDF_SHA256 && kdfId === KDF_HKDF_SHA256 && AEADS.has(aeadId)
}

const suites = new Map<number, CipherSuite>()

/** The @hpke/core suite for DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and `aeadId` (cached; suites are stateless). */
export function cipherSuite(aeadId: number): CipherSuite {
  let suite = suites.get(aeadId)
  if (suite === undefined) {
    const aead = AEADS.get(aeadId)
    if (aead === undefined) throw new RangeError(`AEAD ${aeadId} is not implemented`)
    suite = new CipherSuite({ kem: new NodeDhkemX25519HkdfSha256(), kdf: new NodeHkdfSha256(), aead: new NodeAesGcm(aead) })
    suites.set(aeadId, suite)
  }
  return suite
}

/** RFC 9458 §4.3: hdr = key_id (1) || kem_id (2) || kdf_id (2) || aead_id (2). */
export function requestHeader(keyId: number, kemId: number, kdfId: number, aeadId: number): Uint8Array {
  return new Uint8Array([keyId, kemId >>> 8, kemId & 0xff, kdfId >>> 8, kdfId & 0xff, aeadId >>> 8, aeadId & 0xff])
}

/** RFC 9458 §4.3 (and chunked §6.1): info = label || 0x00 || hdr. */
export function requestInfo(label: string, hdr: Uint8Array): Uint8Array {
  const l = new TextEncoder().encode(label)
  const out = new Uint8Array(l.length + 1 + hdr.length)
  out.set(l, 0)
  out.set(hdr, l.length + 1)
  return out
}
