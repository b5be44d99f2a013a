/**
 * PEM text to DER bytes (RFC 7468 §2, strict base64 per §3). No crypto.
 *
 * DCAP carries PEM in two places: the quote's certification data (type 5,
 * often NUL-terminated) and the `*-Issuer-Chain` collateral fields. Both are
 * sequences of CERTIFICATE blocks; anything else between blocks except
 * whitespace and trailing NULs is an error, not something to skip.
 */
import { ParseError } from '../errors.ts'

const BEGIN = '-----BEGIN '
const END = '-----END '
const B64 = /^[A-Za-z0-9+/]*={0,2}$/

/** Decode every `label` block of `text`, in order. At least one is required. */
export function pemToDer(text: string, label = 'CERTIFICATE'): Uint8Array[] {
  const out: Uint8Array[] = []
  let p = 0
  for (;;) {
    const b = text.indexOf(BEGIN, p)
    const gap = b === -1 ? text.slice(p) : text.slice(p, b)
    if (!/^[ \t\r\n\0]*$/.test(gap)) {
      throw new ParseError('ATTESTATION_PEM_INVALID', 'text outside PEM blocks', { details: { offset: p } })
    }
    if (b === -1) break
    const header = `${BEGIN}${label}-----`
    if (!text.startsWith(header, b)) {
      throw new ParseError('ATTESTATION_PEM_INVALID', `expected a ${label} block`, { details: { offset: b } })
    }
    const footer = `${END}${label}-----`
    const e = text.indexOf(footer, b + header.length)
    if (e === -1) throw new ParseError('ATTESTATION_PEM_INVALID', 'unterminated PEM block', { details: { offset: b } })
    // RFC 7468 §3: only space, tab, CR and LF may break the base64 lines.
    const body = text.slice(b + header.length, e).replace(/[ \t\r\n]+/g, '')
    const der = Buffer.from(body, 'base64')
    // Canonical base64 only (no stray characters, zero pad bits), so one DER
    // value has exactly one PEM spelling inside a block.
    if (body.length === 0 || body.length % 4 !== 0 || !B64.test(body) || der.toString('base64') !== body) {
      throw new ParseError('ATTESTATION_PEM_INVALID', 'PEM body is not canonical base64', { details: { offset: b } })
    }
    out.push(new Uint8Array(der))
    p = e + footer.length
  }
  if (out.length === 0) throw new ParseError('ATTESTATION_PEM_INVALID', `no ${label} block`)
  return out
}

/** DER bytes to a single PEM block (for reports and the dev CA). */
export function derToPem(der: Uint8Array, label = 'CERTIFICATE'): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`
}
