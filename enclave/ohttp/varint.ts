/**
 * QUIC variable-length integers (RFC 9000 §16), the length encoding of
 * Binary HTTP (RFC 9292 §3) and of chunked OHTTP (draft-ietf-ohai-chunked-ohttp §4, §5).
 *
 * The two most significant bits of the first byte give the encoded length
 * (1, 2, 4 or 8 bytes); the rest is the value, big-endian. Non-minimal
 * encodings are valid (RFC 9000 §16: "values do not need to be encoded on the
 * minimum number of bytes"), and this reader accepts them.
 *
 * JavaScript numbers are exact up to 2^53 - 1. An 8-byte value above that is
 * read as an inexact number still greater than `Number.MAX_SAFE_INTEGER`, which
 * every length limit in this folder rejects; the writer refuses such values.
 */

/** RFC 9000 §16: the largest value a varint can carry is 2^62 - 1; this module writes at most 2^53 - 1. */
export const MAX_WRITABLE_VARINT = Number.MAX_SAFE_INTEGER

/** Number of bytes the minimal encoding of `v` takes (RFC 9000 §16, Table 4). */
export function varintSize(v: number): 1 | 2 | 4 | 8 {
  if (v < 0x40) return 1
  if (v < 0x4000) return 2
  if (v < 0x40000000) return 4
  return 8
}

/** Write the minimal encoding of `v` at `offset`; returns the offset after it. `v` must be an integer in [0, 2^53 - 1]. */
export function writeVarint(out: Uint8Array, offset: number, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError('varint value must be a safe non-negative integer')
  const size = varintSize(v)
  switch (size) {
    case 1:
      out[offset] = v
      return offset + 1
    case 2:
      out[offset] = 0x40 | (v >>> 8)
      out[offset + 1] = v & 0xff
      return offset + 2
    case 4:
      out[offset] = 0x80 | (v >>> 24)
      out[offset + 1] = (v >>> 16) & 0xff
      out[offset + 2] = (v >>> 8) & 0xff
      out[offset + 3] = v & 0xff
      return offset + 4
    default: {
      const hi = Math.floor(v / 0x100000000)
      const lo = v >>> 0
      out[offset] = 0xc0 | (hi >>> 24)
      out[offset + 1] = (hi >>> 16) & 0xff
      out[offset + 2] = (hi >>> 8) & 0xff
      out[offset + 3] = hi & 0xff
      out[offset + 4] = lo >>> 24
      out[offset + 5] = (lo >>> 16) & 0xff
      out[offset + 6] = (lo >>> 8) & 0xff
      out[offset + 7] = lo & 0xff
      return offset + 8
    }
  }
}

/** The minimal encoding of `v` as a fresh array. */
export function encodeVarint(v: number): Uint8Array {
  const out = new Uint8Array(varintSize(v))
  writeVarint(out, 0, v)
  return out
}

/** Encoded length announced by a varint's first byte (RFC 9000 §16: the two high bits). */
export function varintLengthOf(firstByte: number): 1 | 2 | 4 | 8 {
  return (1 << (firstByte >>> 6)) as 1 | 2 | 4 | 8
}

/**
 * Read a varint at `offset` of `buf`. Returns undefined when `buf` ends before
 * the varint does (the caller waits for more bytes or reports truncation).
 */
export function readVarint(buf: Uint8Array, offset: number): { value: number; next: number } | undefined {
  if (offset >= buf.length) return undefined
  const first = buf[offset]!
  const size = varintLengthOf(first)
  if (offset + size > buf.length) return undefined
  let value = first & 0x3f
  for (let i = 1; i < size; i++) value = value * 256 + buf[offset + i]!
  return { value, next: offset + size }
}
