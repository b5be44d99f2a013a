/**
 * A tiny DER writer (ITU-T X.690 §8 and §10) for the few values the dev CA
 * builds by hand: the Intel SGX extension of PCK certificates and the CRL
 * number. Development only; production code never encodes certificates.
 *
 * Why hand-written and not an ASN.1 schema: the SGX extension is a flat
 * SEQUENCE of (OID, value) pairs whose exact shape is the point of the test
 * (the PCK profile fixes tags and sizes), and writing those octets directly
 * keeps that shape visible. The output is checked by the strict reader in
 * `attestation/asn1/der.ts` in the tests.
 */
import { TAG } from '../asn1/der.ts'

/** One encoded TLV, ready to nest. */
export type Der = Uint8Array


/** Definite length octets in the minimal form DER requires (X.690 §10.1). */
function lengthOctets(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n)
  const bytes: number[] = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
  return Uint8Array.of(0x80 | bytes.length, ...bytes)
}

/** A TLV with a single-octet tag. */
export function tlv(tag: number, content: Uint8Array): Der {
  const len = lengthOctets(content.length)
  const out = new Uint8Array(1 + len.length + content.length)
  out[0] = tag
  out.set(len, 1)
  out.set(content, 1 + len.length)
  return out
}

/** SEQUENCE of already-encoded members, in the order given. */
export function sequence(...members: readonly Der[]): Der {
  return tlv(TAG.SEQUENCE, Buffer.concat(members))
}

export function octetString(bytes: Uint8Array): Der {
  return tlv(TAG.OCTET_STRING, bytes)
}

/** BIT STRING of whole octets (no unused bits): signatures (X.690 §8.6). */
export function bitString(bytes: Uint8Array): Der {
  return tlv(TAG.BIT_STRING, Buffer.concat([Uint8Array.of(0), bytes]))
}

/** DER BOOLEAN: TRUE is 0xFF (X.690 §11.1). */
export function boolean(value: boolean): Der {
  return tlv(TAG.BOOLEAN, Uint8Array.of(value ? 0xff : 0x00))
}

/** Two's-complement content octets of a non-negative integer, minimal (X.690 §8.3.2). */
function unsignedContent(value: bigint): Uint8Array {
  if (value < 0n) throw new RangeError('only non-negative integers are encoded here')
  const bytes: number[] = []
  for (let v = value; v > 0n; v >>= 8n) bytes.unshift(Number(v & 0xffn))
  // A leading 0x00 keeps the value positive when the top bit is set; zero is one 0x00.
  if (bytes.length === 0 || bytes[0]! & 0x80) bytes.unshift(0)
  return Uint8Array.from(bytes)
}

export function integer(value: number | bigint): Der {
  return tlv(TAG.INTEGER, unsignedContent(BigInt(value)))
}

export function enumerated(value: number): Der {
  return tlv(TAG.ENUMERATED, unsignedContent(BigInt(value)))
}

/** OBJECT IDENTIFIER from dotted text (X.690 §8.19: base-128 arcs, first two combined). */
export function oid(dotted: string): Der {
  const arcs = dotted.split('.').map((a) => {
    if (!/^\d+$/.test(a)) throw new RangeError(`bad OID arc in ${dotted}`)
    return BigInt(a)
  })
  if (arcs.length < 2 || arcs[0]! > 2n || (arcs[0]! < 2n && arcs[1]! > 39n)) throw new RangeError(`bad OID ${dotted}`)
  const out: number[] = []
  const subs = [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)]
  for (const sub of subs) {
    const groups: number[] = [Number(sub & 0x7fn)]
    for (let v = sub >> 7n; v > 0n; v >>= 7n) groups.unshift(Number(v & 0x7fn) | 0x80)
    out.push(...groups)
  }
  return tlv(TAG.OID, Uint8Array.from(out))
}

// ---------------------------------------------------------------------------
// Additions for the dev GPU (attestation/dev/gpu-signer.ts): the values an
// OCSP response (RFC 6960 §4.2.1) needs beyond the ones above.


/** DER NULL: the `parameters` of a hash AlgorithmIdentifier (RFC 5754 §2 allows NULL or absent). */
export function nullValue(): Der {
  return tlv(TAG.NULL, new Uint8Array(0))
}

/**
 * GeneralizedTime `YYYYMMDDHHMMSSZ`: UTC, whole seconds, no fraction, which
 * is the only form DER admits for it (X.690 §11.7) and the one RFC 6960
 * (via RFC 5280 §4.1.2.5.2) uses. Milliseconds are dropped, i.e. rounded
 * down, so a time never lands later than the instant given.
 */
export function generalizedTime(date: Date): Der {
  const ms = date.getTime()
  if (!Number.isFinite(ms)) throw new RangeError('invalid Date')
  const year = date.getUTCFullYear()
  if (year < 0 || year > 9999) throw new RangeError('GeneralizedTime needs a four-digit year')
  const text = date.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:T]/g, '')
  return tlv(TAG.GENERALIZED_TIME, new TextEncoder().encode(text))
}

/** A context-specific constructed tag `[n]` around already-encoded content (X.690 §8.14: EXPLICIT tagging). */
export function explicit(n: number, ...members: readonly Der[]): Der {
  if (!Number.isInteger(n) || n < 0 || n > 30) throw new RangeError('only low tag numbers are encoded here')
  return tlv(0xa0 | n, Buffer.concat(members))
}

/** A context-specific primitive tag `[n]` with raw content octets (X.690 §8.14: IMPLICIT tagging of a primitive). */
export function implicitPrimitive(n: number, content: Uint8Array): Der {
  if (!Number.isInteger(n) || n < 0 || n > 30) throw new RangeError('only low tag numbers are encoded here')
  return tlv(0x80 | n, content)
}
