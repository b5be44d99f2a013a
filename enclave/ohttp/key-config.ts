/**
 * OHTTP key configurations (RFC 9458 §3): bytes ↔ structure, no crypto.
 *
 *   Key Config {
 *     Key Identifier (8),
 *     HPKE KEM ID (16),
 *     HPKE Public Key (Npk * 8),
 *     HPKE Symmetric Algorithms Length (16) = 4..65532,
 *     HPKE Symmetric Algorithms (32) ...,        // (KDF ID (16), AEAD ID (16))
 *   }
 *
 * `application/ohttp-keys` (RFC 9458 §3.2) is a concatenation of configs,
 * each prefixed with its length as a 2-byte big-endian integer. A client
 * "MUST discard incorrectly encoded key configuration collections": one
 * malformed entry rejects the whole object.
 *
 * The enclave offers exactly one suite (DESIGN.md, "Wire formats"):
 * DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM.
 */
import { OhttpError, invalidArgument } from './errors.ts'

/** RFC 9180 §7.1: DHKEM(X25519, HKDF-SHA256). */
export const KEM_X25519_HKDF_SHA256 = 0x0020
/** RFC 9180 §7.2: HKDF-SHA256. */
export const KDF_HKDF_SHA256 = 0x0001
/** RFC 9180 §7.3: AES-128-GCM (used by the RFC 9458 Appendix A example; accepted when a key config lists it). */
export const AEAD_AES_128_GCM = 0x0001
/** RFC 9180 §7.3: AES-256-GCM, the enclave's AEAD. */
export const AEAD_AES_256_GCM = 0x0002
/** RFC 9180 §7.3: ChaCha20Poly1305 (recognised in key configs; not implemented here). */
export const AEAD_CHACHA20_POLY1305 = 0x0003

/** RFC 9180 §7.1, Table 2: Npk (= Nenc) of each KEM, needed to find where a config's public key ends. */
export const KEM_PUBLIC_KEY_LENGTH: Readonly<Record<number, number>> = {
  0x0010: 65, // DHKEM(P-256, HKDF-SHA256)
  0x0011: 97, // DHKEM(P-384, HKDF-SHA384)
  0x0012: 133, // DHKEM(P-521, HKDF-SHA512)
  0x0020: 32, // DHKEM(X25519, HKDF-SHA256)
  0x0021: 56, // DHKEM(X448, HKDF-SHA512)
}

/** One (KDF, AEAD) pair a key may be used with (RFC 9458 §3.1, "HPKE Symmetric Algorithms"). */
export interface SymmetricAlgorithm {
  readonly kdfId: number
  readonly aeadId: number
}

/** The enclave's only pair: HKDF-SHA256 with AES-256-GCM (DESIGN.md). */
export const ENCLAVE_SYMMETRIC_ALGORITHMS: readonly SymmetricAlgorithm[] = Object.freeze([
  Object.freeze({ kdfId: KDF_HKDF_SHA256, aeadId: AEAD_AES_256_GCM }),
])

/** A parsed key configuration (RFC 9458 §3.1). */
export interface KeyConfig {
  /** Key Identifier, 0..255. */
  readonly keyId: number
  readonly kemId: number
  /** The KEM public key, Npk bytes. */
  readonly publicKey: Uint8Array
  /** At least one (KDF, AEAD) pair, in the gateway's order of preference. */
  readonly symmetric: readonly SymmetricAlgorithm[]
}

const u16 = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffff

/**
 * Encode one key configuration (RFC 9458 §3.1). Throws `OHTTP_ARGUMENT_INVALID`
 * for a key id outside 0..255, ids outside 16 bits, a public key of the wrong
 * length for a known KEM, or an empty/oversized algorithm list.
 */
export function encodeKeyConfig(config: KeyConfig): Uint8Array {
  const { keyId, kemId, publicKey, symmetric } = config
  if (!Number.isInteger(keyId) || keyId < 0 || keyId > 0xff) invalidArgument('key id must be an integer in 0..255')
  if (!u16(kemId)) invalidArgument('KEM id must be a 16-bit integer')
  const npk = KEM_PUBLIC_KEY_LENGTH[kemId]
  if (npk !== undefined && publicKey.length !== npk) invalidArgument('public key length does not match the KEM', { kemId, expected: npk })
  if (symmetric.length === 0 || symmetric.length * 4 > 65532) invalidArgument('between 1 and 16383 symmetric algorithms are needed')
  const out = new Uint8Array(1 + 2 + publicKey.length + 2 + symmetric.length * 4)
  const view = new DataView(out.buffer)
  out[0] = keyId
  view.setUint16(1, kemId)
  out.set(publicKey, 3)
  let p = 3 + publicKey.length
  view.setUint16(p, symmetric.length * 4)
  p += 2
  for (const { kdfId, aeadId } of symmetric) {
    if (!u16(kdfId) || !u16(aeadId)) invalidArgument('KDF and AEAD ids must be 16-bit integers')
    view.setUint16(p, kdfId)
    view.setUint16(p + 2, aeadId)
    p += 4
  }
  return out
}

function malformed(message: string, details: Record<string, unknown> = {}): never {
  throw new OhttpError('OHTTP_KEY_CONFIG_INVALID', message, { details })
}

/**
 * Parse exactly one key configuration (RFC 9458 §3.1); `bytes` must hold it
 * and nothing else. A KEM whose Npk this module does not know cannot be
 * delimited and is rejected. Throws `OHTTP_KEY_CONFIG_INVALID`.
 */
export function parseKeyConfig(bytes: Uint8Array): KeyConfig {
  if (bytes.length < 3) malformed('key config is shorter than its header', { length: bytes.length })
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const keyId = bytes[0]!
  const kemId = view.getUint16(1)
  const npk = KEM_PUBLIC_KEY_LENGTH[kemId]
  if (npk === undefined) malformed('key config names a KEM of unknown public key length', { kemId })
  let p = 3
  if (bytes.length < p + npk + 2) malformed('key config ends inside the public key', { length: bytes.length })
  const publicKey = bytes.slice(p, p + npk)
  p += npk
  const symLength = view.getUint16(p)
  p += 2
  // RFC 9458 §3.1: HPKE Symmetric Algorithms Length (16) = 4..65532, whole (KDF, AEAD) pairs.
  if (symLength < 4 || symLength > 65532 || symLength % 4 !== 0) malformed('symmetric algorithms length is not a positive multiple of 4', { symLength })
  if (bytes.length !== p + symLength) malformed('key config length does not match its algorithm list', { length: bytes.length, expected: p + symLength })
  const symmetric: SymmetricAlgorithm[] = []
  for (let q = p; q < p + symLength; q += 4) symmetric.push(Object.freeze({ kdfId: view.getUint16(q), aeadId: view.getUint16(q + 2) }))
  return Object.freeze({ keyId, kemId, publicKey, symmetric: Object.freeze(symmetric) })
}

/** `application/ohttp-keys` (RFC 9458 §3.2): each encoded config prefixed with its 2-byte length. */
export function encodeKeyConfigs(configs: readonly Uint8Array[]): Uint8Array {
  let total = 0
  for (const c of configs) {
    if (c.length > 0xffff) invalidArgument('an encoded key config exceeds 65535 bytes')
    total += 2 + c.length
  }
  const out = new Uint8Array(total)
  let p = 0
  for (const c of configs) {
    out[p] = c.length >>> 8
    out[p + 1] = c.length & 0xff
    out.set(c, p + 2)
    p += 2 + c.length
  }
  return out
}

/**
 * Parse `application/ohttp-keys` (RFC 9458 §3.2). Any encoding error, or an
 * empty object, rejects the whole collection with `OHTTP_KEY_CONFIG_INVALID`,
 * as §3.2 requires. A config for a KEM this module does not know is well
 * delimited by its length prefix but cannot be checked inside: it is skipped,
 * so a server may list newer KEMs first. Returns the rest in the server's order
 * (possibly none).
 */
export function parseKeyConfigs(bytes: Uint8Array): KeyConfig[] {
  if (bytes.length === 0) malformed('application/ohttp-keys is empty')
  const out: KeyConfig[] = []
  let p = 0
  while (p < bytes.length) {
    if (p + 2 > bytes.length) malformed('application/ohttp-keys ends inside a length prefix', { offset: p })
    const len = (bytes[p]! << 8) | bytes[p + 1]!
    p += 2
    if (p + len > bytes.length) malformed('application/ohttp-keys ends inside a key config', { offset: p, length: len })
    if (len < 3) malformed('key config is shorter than its header', { offset: p, length: len })
    const kemId = (bytes[p + 1]! << 8) | bytes[p + 2]!
    if (KEM_PUBLIC_KEY_LENGTH[kemId] !== undefined) out.push(parseKeyConfig(bytes.subarray(p, p + len)))
    p += len
  }
  return out
}
