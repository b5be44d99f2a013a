/**
 * A strict, allocation-free DER reader (ITU-T X.690 §8 and §10).
 *
 * Why not an ASN.1 schema library: verifying a signature needs the exact
 * signed bytes (`tbsCertificate`, `tbsCertList`), and schema libraries hand
 * back decoded objects that must be re-encoded to get them — re-encoding what
 * was signed is a classic verification bug. This reader returns offsets into
 * the original buffer instead, and rejects every non-DER form (indefinite
 * lengths, non-minimal lengths, high tag numbers we never need) so that one
 * byte string has exactly one reading. No crypto here.
 */
import { ParseError } from '../errors.ts'

/** Universal tags used by X.509 and CRLs (X.680 §8.6). */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTF8_STRING: 0x0c,
  SEQUENCE: 0x30,
  SET: 0x31,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
} as const

/** One TLV: `tag` is the identifier octet; offsets index the original buffer. */
export interface Tlv {
  readonly tag: number
  /** Offset of the identifier octet. */
  readonly start: number
  /** Offset of the first content octet. */
  readonly contentStart: number
  /** Offset just past the last content octet. */
  readonly end: number
}

function fail(what: string, offset: number): never {
  throw new ParseError('ATTESTATION_DER_INVALID', what, { details: { offset } })
}

/**
 * Read the TLV at `offset`, bounded by `limit`. Enforces definite, minimal
 * length encoding (X.690 §10.1) and single-octet tags (tag numbers < 31).
 */
export function readTlv(buf: Uint8Array, offset: number, limit: number = buf.length): Tlv {
  if (offset + 2 > limit) fail('truncated TLV header', offset)
  const tag = buf[offset]!
  if ((tag & 0x1f) === 0x1f) fail('high tag numbers are not used here', offset)
  let len = buf[offset + 1]!
  let p = offset + 2
  if (len & 0x80) {
    const n = len & 0x7f
    // 0x80 is the indefinite form (BER only); four octets cover any buffer we read.
    if (n === 0 || n > 4) fail('unsupported length form', offset)
    if (p + n > limit) fail('truncated length', offset)
    if (buf[p] === 0) fail('non-minimal length', offset)
    len = 0
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!
    if (len < 0x80) fail('non-minimal length', offset)
    p += n
  }
  const end = p + len
  if (end > limit) fail('content runs past its container', offset)
  return { tag, start: offset, contentStart: p, end }
}

/** Read a TLV and require its tag. */
export function expectTlv(buf: Uint8Array, offset: number, tag: number, limit?: number): Tlv {
  const tlv = readTlv(buf, offset, limit)
  if (tlv.tag !== tag) fail(`expected tag 0x${tag.toString(16)}, found 0x${tlv.tag.toString(16)}`, offset)
  return tlv
}

/** The children of a constructed TLV, in order; the content must be consumed exactly. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = []
  let p = parent.contentStart
  while (p < parent.end) {
    const c = readTlv(buf, p, parent.end)
    out.push(c)
    p = c.end
  }
  return out
}

/** The whole encoding of a TLV (header and content), as a view. */
export function encodingOf(buf: Uint8Array, tlv: Tlv): Uint8Array {
  return buf.subarray(tlv.start, tlv.end)
}

/** The content octets of a TLV, as a view. */
export function contentOf(buf: Uint8Array, tlv: Tlv): Uint8Array {
  return buf.subarray(tlv.contentStart, tlv.end)
}

/** Decode an OBJECT IDENTIFIER's content to dotted form (X.690 §8.19). */
export function decodeOid(buf: Uint8Array, tlv: Tlv): string {
  if (tlv.tag !== TAG.OID) fail('expected an OID', tlv.start)
  if (tlv.end === tlv.contentStart) fail('empty OID', tlv.start)
  const arcs: number[] = []
  let v = 0
  for (let p = tlv.contentStart; p < tlv.end; p++) {
    const b = buf[p]!
    if (v === 0 && b === 0x80) fail('non-minimal OID arc', p)
    v = v * 128 + (b & 0x7f)
    if (v > Number.MAX_SAFE_INTEGER / 128) fail('OID arc too large', p)
    if ((b & 0x80) === 0) {
      if (arcs.length === 0) {
        const first = v < 40 ? 0 : v < 80 ? 1 : 2
        arcs.push(first, v - first * 40)
      } else arcs.push(v)
      v = 0
    } else if (p === tlv.end - 1) fail('truncated OID arc', p)
  }
  return arcs.join('.')
}

/** An INTEGER's content as unsigned big-endian bytes without the sign octet. */
export function integerBytes(buf: Uint8Array, tlv: Tlv): Uint8Array {
  if (tlv.tag !== TAG.INTEGER) fail('expected an INTEGER', tlv.start)
  const c = contentOf(buf, tlv)
  if (c.length === 0) fail('empty INTEGER', tlv.start)
  // X.690 §8.3.2: the first nine bits may not all be equal.
  if (c.length > 1 && ((c[0] === 0 && (c[1]! & 0x80) === 0) || (c[0] === 0xff && (c[1]! & 0x80) !== 0))) {
    fail('non-minimal INTEGER', tlv.start)
  }
  return c[0] === 0 && c.length > 1 ? c.subarray(1) : c
}

/** A small non-negative INTEGER as a number (SVNs, versions, path lengths). */
export function integerValue(buf: Uint8Array, tlv: Tlv): number {
  const c = contentOf(buf, tlv)
  const bytes = integerBytes(buf, tlv)
  if (c[0]! & 0x80) fail('negative INTEGER where a count is expected', tlv.start)
  if (bytes.length > 6) fail('INTEGER too large', tlv.start)
  let v = 0
  for (const b of bytes) v = v * 256 + b
  return v
}

/** A BIT STRING's bytes; `unused` is the count of unused trailing bits (X.690 §8.6.2). */
export function bitString(buf: Uint8Array, tlv: Tlv): { bytes: Uint8Array; unused: number } {
  if (tlv.tag !== TAG.BIT_STRING) fail('expected a BIT STRING', tlv.start)
  if (tlv.end === tlv.contentStart) fail('empty BIT STRING', tlv.start)
  const unused = buf[tlv.contentStart]!
  if (unused > 7 || (unused > 0 && tlv.end - tlv.contentStart === 1)) fail('bad BIT STRING padding', tlv.start)
  return { bytes: buf.subarray(tlv.contentStart + 1, tlv.end), unused }
}

/** A BOOLEAN in DER: 0x00 or 0xFF only (X.690 §11.1). */
export function booleanValue(buf: Uint8Array, tlv: Tlv): boolean {
  if (tlv.tag !== TAG.BOOLEAN || tlv.end - tlv.contentStart !== 1) fail('expected a BOOLEAN', tlv.start)
  const b = buf[tlv.contentStart]
  if (b !== 0 && b !== 0xff) fail('non-DER BOOLEAN', tlv.start)
  return b === 0xff
}

function digits(buf: Uint8Array, p: number, n: number): number {
  let v = 0
  for (let i = 0; i < n; i++) {
    const d = buf[p + i]! - 0x30
    if (d < 0 || d > 9) fail('non-digit in time', p + i)
    v = v * 10 + d
  }
  return v
}

/**
 * UTCTime / GeneralizedTime to milliseconds since the epoch. DER and RFC 5280
 * §4.1.2.5 fix the forms: `YYMMDDHHMMSSZ` (years 1950-2049) and
 * `YYYYMMDDHHMMSSZ`; anything else (fractions, offsets) is rejected.
 */
export function timeValue(buf: Uint8Array, tlv: Tlv): number {
  const n = tlv.end - tlv.contentStart
  const p = tlv.contentStart
  let year: number
  let q: number
  if (tlv.tag === TAG.UTC_TIME && n === 13) {
    const yy = digits(buf, p, 2)
    year = yy < 50 ? 2000 + yy : 1900 + yy
    q = p + 2
  } else if (tlv.tag === TAG.GENERALIZED_TIME && n === 15) {
    year = digits(buf, p, 4)
    q = p + 4
  } else fail('unsupported time encoding', tlv.start)
  if (buf[tlv.end - 1] !== 0x5a) fail('time must end in Z', tlv.start)
  const month = digits(buf, q, 2)
  const day = digits(buf, q + 2, 2)
  const hour = digits(buf, q + 4, 2)
  const min = digits(buf, q + 6, 2)
  const sec = digits(buf, q + 8, 2)
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 59) fail('time out of range', tlv.start)
  const ms = Date.UTC(year, month - 1, day, hour, min, sec)
  if (new Date(ms).getUTCDate() !== day) fail('no such day', tlv.start)
  return ms
}
