/**
 * Bit-flip mutations of the real DCAP vectors (test/vectors/tdx): every
 * region of a quote and of its collateral, checked against the verifier.
 *
 * The property: a quote or collateral that differs from what Intel's
 * hardware and PCS produced is never accepted, and the rejection is always a
 * registered attestation error (never a TypeError, RangeError or anything
 * else a caller cannot branch on), with the code that names the broken link.
 * The single exception is PEM text (the PCK chain in the quote, the issuer
 * chains in the collateral), where a handful of flips provably decode to the
 * very same DER (whitespace to whitespace, a pad bit of the last base64
 * character): those must verify, exactly as the original does. Each is
 * classified by its own rule here, not by asking the parser, so a parser
 * that skipped real characters would show.
 *
 * Cost: a quote mutation that gets past parsing still verifies the PCK
 * chain and both quote signatures (~0.4 ms), a collateral mutation re-parses
 * and re-verifies the whole bundle (~1.2 ms). Small regions (header,
 * signatures, key, QE report, auth data, framing) are flipped bit by bit;
 * large ones (body, PEM, DER, JSON, CRLs) at a deterministic stride, with
 * the fields that matter most flipped densely — see `stride` below.
 * `QUOTE_MUTATION_EXHAUSTIVE=1` flips every bit of every region instead
 * (several minutes; run it when the parser or verifier changes).
 */
import t from 'tap'
import { errorFamily, isAttestationError, type ErrorCode, type ErrorFamily } from '../attestation/errors.ts'
import { ENCLAVE_REPORT, TD_REPORT10 } from '../attestation/tdx/abi/constants.ts'
import { parseCollateral, type Collateral } from '../attestation/tdx/abi/collateral.ts'
import { parsePckExtension } from '../attestation/tdx/abi/pck-extension.ts'
import { parseQuote, type Quote } from '../attestation/tdx/abi/quote.ts'
import { verifyQuote } from '../attestation/tdx/verify/verify-quote.ts'
import { parseCertificate } from '../attestation/pki/x509.ts'
import type { QuoteCollateralV3 } from '../attestation/pcs/types.ts'
import { tdxCases, type TdxCase } from './helpers/vectors.ts'

const EXHAUSTIVE = process.env.QUOTE_MUTATION_EXHAUSTIVE === '1'

/**
 * How densely each region is sampled. A stride s flips bit i of a region when
 * i ≡ (vector index) mod s, so the vectors, which share layouts, flip
 * different bits of the same fields. With s ≤ 8 every byte of a region is
 * flipped (8 consecutive bits always contain one hit), which is what catches
 * an off-by-one in a signed or hashed range. Header and framing fields are
 * always exhaustive.
 */
const stride = EXHAUSTIVE
  ? { small: 1, dense: 1, sparse: 1, pem: 1, der: 1, json: 1, crlDense: 1, crlSparse: 1, chain: 1 }
  : { small: 1, dense: 1, sparse: 7, pem: 29, der: 29, json: 61, crlDense: 5, crlSparse: 61, chain: 41 }

const cases = tdxCases()
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

// ---------------------------------------------------------------------------
// Outcomes and bookkeeping

type Outcome =
  | { readonly kind: 'accepted'; readonly status: string }
  | { readonly kind: 'error'; readonly code: ErrorCode; readonly family: ErrorFamily }
  | { readonly kind: 'bug'; readonly what: string }

/** Run a verification and classify how it ended. */
function outcome(run: () => { readonly tcbStatus: string }): Outcome {
  try {
    return { kind: 'accepted', status: run().tcbStatus }
  } catch (e) {
    if (isAttestationError(e)) return { kind: 'error', code: e.code, family: errorFamily(e.code) }
    // Anything else is a library bug; its name and message are the report.
    return { kind: 'bug', what: e instanceof Error ? `${e.name}: ${e.message}` : String(e) }
  }
}

/** The two tap assertions a region needs (structural, so any tap Test fits). */
interface Asserts {
  ok(value: unknown, message: string): unknown
  same(found: unknown, wanted: unknown, message: string): unknown
}

/** What a mutation must produce: a code from `codes` (all of `family` when given). */
interface Expectation {
  readonly codes: readonly ErrorCode[]
  readonly family?: ErrorFamily
}

/** One region's run: counts, codes seen, and failures, asserted once at the end. */
class RegionRun {
  count = 0
  readonly failures: string[] = []
  readonly codes = new Map<string, number>()
  constructor(readonly name: string) {}

  /** Record a mutation that must be rejected as `expected`. */
  reject(label: string, o: Outcome, expected: Expectation): void {
    this.count++
    if (o.kind === 'error') this.codes.set(o.code, (this.codes.get(o.code) ?? 0) + 1)
    if (o.kind === 'accepted') this.failures.push(`${label}: accepted (${o.status})`)
    else if (o.kind === 'bug') this.failures.push(`${label}: not an attestation error: ${o.what}`)
    else if (!expected.codes.includes(o.code)) this.failures.push(`${label}: ${o.code}, expected one of ${expected.codes.join('|')}`)
    else if (expected.family && o.family !== expected.family) this.failures.push(`${label}: family ${o.family}, expected ${expected.family}`)
  }

  /**
   * Record a case that must verify: a mutation that provably leaves the
   * evidence unchanged (with the original's `status`), or genuine evidence
   * (`status` null: any status).
   */
  accept(label: string, o: Outcome, status: string | null, tally = '(equivalent, verified)'): void {
    this.count++
    this.codes.set(tally, (this.codes.get(tally) ?? 0) + 1)
    if (o.kind !== 'accepted' || (status !== null && o.status !== status)) {
      this.failures.push(`${label}: not verified${status ? ` as ${status}` : ''}: ${o.kind === 'error' ? o.code : o.kind === 'bug' ? o.what : o.status}`)
    }
  }

  /** The two assertions of a region: it ran what was planned, and nothing failed. */
  finish(t: Asserts, planned: number): void {
    t.ok(planned > 0 && this.count === planned, `${this.name}: ${this.count} of ${planned} planned mutations ran`)
    const seen = [...this.codes].map(([c, n]) => `${c.replace('ATTESTATION_', '')}×${n}`).join(', ')
    const shown = this.failures.length === 0 ? [] : [`${this.failures.length} failures, first ones:`, ...this.failures.slice(0, 5)]
    t.same(shown, [], `${this.name}: ${seen}`)
  }
}

/**
 * Bit indices (from the region's first byte) to flip: bit i when
 * i ≡ vi mod s, with s = the stride of the dense range holding byte i>>3,
 * else `base`.
 */
function pickBits(
  lengthBytes: number,
  vi: number,
  base: number,
  dense: readonly (readonly [number, number])[] = [],
  denseStride: number = stride.dense,
): number[] {
  const out: number[] = []
  for (let i = 0; i < lengthBytes * 8; i++) {
    const byte = i >> 3
    const s = dense.some(([a, b]) => byte >= a && byte < b) ? denseStride : base
    if (i % s === vi % s) out.push(i)
  }
  return out
}

function flipped(bytes: Uint8Array, at: number, bit: number): Uint8Array {
  const copy = bytes.slice()
  copy[at] = copy[at]! ^ (1 << bit)
  return copy
}

// ---------------------------------------------------------------------------
// Expected codes per quote region, each with the reason the verifier must
// stop exactly there. verifyQuote's order is: parse, QE vendor, collateral,
// PCK chain, QE report signature, QE REPORTDATA binding, quote signature,
// TCB matching; the first failing step names the error.

const E = {
  /**
   * Header || body is exactly what the attestation key signed, and the quote
   * signature is the first check that reads the body (TCB matching comes
   * after it), so any body flip fails there.
   */
  body: { codes: ['ATTESTATION_QUOTE_SIGNATURE_INVALID'], family: 'verification' },
  /** The signature itself: same check. */
  quoteSignature: { codes: ['ATTESTATION_QUOTE_SIGNATURE_INVALID'], family: 'verification' },
  /**
   * The attestation key is bound by QE REPORTDATA = SHA-256(key || auth data),
   * checked (after the QE report signature, which does not cover the key)
   * before the key is ever used, so a different key is a binding mismatch —
   * never QUOTE_SIGNATURE_INVALID, which would mean the binding was skipped.
   */
  attestationKey: { codes: ['ATTESTATION_QE_REPORT_DATA_MISMATCH'], family: 'verification' },
  /** The QE report is signed by the PCK leaf key; that is the first check reading it. */
  qeReport: { codes: ['ATTESTATION_QE_REPORT_SIGNATURE_INVALID'], family: 'verification' },
  qeReportSignature: { codes: ['ATTESTATION_QE_REPORT_SIGNATURE_INVALID'], family: 'verification' },
  /** Auth data only enters the REPORTDATA hash. */
  qeAuthData: { codes: ['ATTESTATION_QE_REPORT_DATA_MISMATCH'], family: 'verification' },
  /**
   * PEM text of the PCK chain: either the text stops being PEM, or the DER it
   * decodes to stops being a certificate (parse), or a certificate changed
   * and its issuer's signature (or, for the chain's copy of the root, the
   * pinned root's) no longer verifies. Nothing after the chain can be reached.
   */
  pckPem: {
    codes: ['ATTESTATION_PEM_INVALID', 'ATTESTATION_CERT_INVALID', 'ATTESTATION_CERT_CHAIN_INVALID', 'ATTESTATION_ROOT_CA_UNTRUSTED'],
  },
  /** Valid PEM of changed DER: not a certificate, or not signed by its issuer. */
  pckDer: { codes: ['ATTESTATION_CERT_INVALID', 'ATTESTATION_CERT_CHAIN_INVALID', 'ATTESTATION_ROOT_CA_UNTRUSTED'] },
} as const satisfies Record<string, Expectation>

/** Header fields [TDX-QL A.3.1], same layout in v3, v4 and v5. */
function headerExpectation(offset: number, version: number): { field: string; e: Expectation } {
  if (offset < 2) {
    // 4 -> 5 (bit 0) reads the TD report's first bytes as a v5 body
    // descriptor (UNSUPPORTED_BODY); 5 -> 4 reads the descriptor and body as
    // a 584-byte v4 body and then a signature-data length from inside the TD
    // report 1.5 tail, which overruns the quote (TRUNCATED). Every other flip
    // (and every flip of 3) is a version that does not exist.
    const codes: ErrorCode[] = ['ATTESTATION_QUOTE_UNSUPPORTED_VERSION']
    if (version === 4) codes.push('ATTESTATION_QUOTE_UNSUPPORTED_BODY')
    if (version === 5) codes.push('ATTESTATION_QUOTE_TRUNCATED')
    return { field: 'version', e: { codes, family: 'parse' } }
  }
  if (offset < 4) return { field: 'attestationKeyType', e: { codes: ['ATTESTATION_QUOTE_UNSUPPORTED_KEY_TYPE'], family: 'parse' } }
  // 0x81 and 0x00 are two bits apart, so no single flip turns TDX into SGX.
  if (offset < 8) return { field: 'teeType', e: { codes: ['ATTESTATION_QUOTE_UNSUPPORTED_TEE'], family: 'parse' } }
  // Reserved in v4/v5, QE/PCE SVN in v3: signed, but no check reads them before the signature.
  if (offset < 12) return { field: 'qeSvn/pceSvn', e: { codes: ['ATTESTATION_QUOTE_SIGNATURE_INVALID'], family: 'verification' } }
  // The vendor is checked right after parsing, before any crypto.
  if (offset < 28) return { field: 'qeVendorId', e: { codes: ['ATTESTATION_QE_VENDOR_UNKNOWN'], family: 'verification' } }
  return { field: 'userData', e: { codes: ['ATTESTATION_QUOTE_SIGNATURE_INVALID'], family: 'verification' } }
}

// ---------------------------------------------------------------------------
// The quote's regions, located from the parsed views into `raw`.

interface Layout {
  readonly q: Quote
  readonly at: (v: Uint8Array) => number
  /** Absolute byte ranges of the "large" fields sampled densely in the body. */
  readonly bodyDense: readonly (readonly [number, number])[]
  readonly body: readonly [number, number]
}

function layoutOf(c: TdxCase): Layout {
  const q = parseQuote(c.quote)
  const at = (v: Uint8Array): number => v.byteOffset - q.raw.byteOffset
  const r = q.body.report
  const start = at(r.raw)
  // REPORTDATA and the main measurement (MRTD, or MRENCLAVE for SGX): what a
  // relying party actually compares, so they get every-byte density.
  const dense: [number, number][] =
    q.body.kind === 'sgx'
      ? [
          [ENCLAVE_REPORT.REPORT_DATA, ENCLAVE_REPORT.REPORT_DATA + 64],
          [ENCLAVE_REPORT.MR_ENCLAVE, ENCLAVE_REPORT.MR_ENCLAVE + 32],
        ]
      : [
          [TD_REPORT10.REPORT_DATA, TD_REPORT10.REPORT_DATA + 64],
          [TD_REPORT10.MR_TD, TD_REPORT10.MR_TD + 48],
        ]
  return { q, at, bodyDense: dense, body: [start, start + r.raw.length] }
}

/** The PEM blocks of a text: where each base64 body lies and its DER. */
interface PemBlock {
  readonly bodyStart: number
  readonly bodyEnd: number
  /** Offsets (in the text) of the base64 characters, in order. */
  readonly chars: readonly number[]
  readonly der: Uint8Array
}

const BEGIN = '-----BEGIN CERTIFICATE-----'
const END = '-----END CERTIFICATE-----'

function pemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = []
  for (let p = text.indexOf(BEGIN); p !== -1; p = text.indexOf(BEGIN, p + 1)) {
    const bodyStart = p + BEGIN.length
    const bodyEnd = text.indexOf(END, bodyStart)
    const chars: number[] = []
    for (let i = bodyStart; i < bodyEnd; i++) if (!/\s/.test(text[i]!)) chars.push(i)
    const b64 = chars.map((i) => text[i]).join('')
    const der = new Uint8Array(Buffer.from(b64, 'base64'))
    // The splice below relies on the vectors' PEM being canonical base64.
    if (Buffer.from(der).toString('base64') !== b64) throw new Error('vector PEM is not canonical base64')
    out.push({ bodyStart, bodyEnd, chars, der })
  }
  return out
}

/** The same text with `block`'s body replaced by `der` (same length), layout kept. */
function splicePem(text: string, block: PemBlock, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64')
  const chars = text.split('')
  block.chars.forEach((pos, k) => {
    chars[pos] = b64[k]!
  })
  return chars.join('')
}

/** The whitespace pemToDer accepts between base64 lines (RFC 7468 §3 WSP / CR / LF / HTAB). */
const PEM_WS = new Set([' ', '\t', '\n', '\r'])

/**
 * Why replacing text[pos] by `to` provably decodes to the same DER, or null.
 * Two ways only: whitespace for whitespace inside or between blocks; a NUL
 * terminator or whitespace after the last block turned into whitespace or
 * NUL. (Changes to the pad bits of the last base64 character are rejected:
 * pemToDer accepts canonical base64 only.)
 */
function equivalentPemFlip(text: string, blocks: readonly PemBlock[], pos: number, to: string): string | null {
  const from = text[pos]!
  const inMarker = blocks.some((b) => (pos >= b.bodyStart - BEGIN.length && pos < b.bodyStart) || (pos >= b.bodyEnd && pos < b.bodyEnd + END.length))
  const lastEnd = text.lastIndexOf(END) + END.length
  if (inMarker) return null
  if (PEM_WS.has(from) && PEM_WS.has(to)) return 'whitespace'
  if (pos >= lastEnd && (PEM_WS.has(from) || from === '\0') && (PEM_WS.has(to) || to === '\0')) return 'trailer'
  return null
}

// ---------------------------------------------------------------------------
// Quote mutations

cases.forEach((c, vi) => {
  t.test(`quote mutations: ${c.id}`, async (t) => {
    const col = parseCollateral(c.collateral)
    const now = { now: c.verifyAt }
    const baseline = verifyQuote(c.quote, col, now)
    t.equal(baseline.tcbStatus, c.expected.status, 'the unmutated vector verifies')
    const status = baseline.tcbStatus
    const L = layoutOf(c)
    const { q, at } = L
    const verify = (bytes: Uint8Array): Outcome => outcome(() => verifyQuote(bytes, col, now))

    /** Flip the chosen bits of [start, start+len) and check each outcome. */
    const region = (name: string, start: number, len: number, bits: number[], expect: (byteInRegion: number) => Expectation & { field?: string }): void => {
      const run = new RegionRun(name)
      for (const i of bits) {
        const byte = i >> 3
        const e = expect(byte)
        run.reject(`${e.field ?? name} byte ${byte} bit ${i & 7}`, verify(flipped(c.quote, start + byte, i & 7)), e)
      }
      run.finish(t, bits.length)
      t.ok(len > 0 && bits.every((i) => i < len * 8), `${name}: bits inside the region`)
    }

    // Header: every bit, each field with its own code.
    region('header', 0, 48, pickBits(48, vi, 1), (b) => {
      const h = headerExpectation(b, q.header.version)
      return { ...h.e, field: `header.${h.field}` }
    })

    // v5 body descriptor: type 3 / size 648 must match exactly; a flip of either
    // (including type 3 -> 2, TD report 1.0, with size 648) is not a TD report.
    if (q.header.version === 5) {
      region('v5 body descriptor', 48, 6, pickBits(6, vi, 1), () => ({ codes: ['ATTESTATION_QUOTE_UNSUPPORTED_BODY'], family: 'parse' }))
    }

    const [bodyStart, bodyEnd] = L.body
    region(`body (${q.body.kind})`, bodyStart, bodyEnd - bodyStart, pickBits(bodyEnd - bodyStart, vi, stride.sparse, L.bodyDense), () => E.body)
    region('quote signature', at(q.signature), 64, pickBits(64, vi, stride.small), () => E.quoteSignature)
    region('attestation key', at(q.attestationKey), 64, pickBits(64, vi, stride.small), () => E.attestationKey)
    const cert = q.certification
    region('QE report', at(cert.qeReport.raw), 384, pickBits(384, vi, stride.small), () => E.qeReport)
    region('QE report signature', at(cert.qeReportSignature), 64, pickBits(64, vi, stride.small), () => E.qeReportSignature)
    region('QE auth data', at(cert.qeAuthData), cert.qeAuthData.length, pickBits(cert.qeAuthData.length, vi, stride.small), () => E.qeAuthData)

    // Framing: every length and type field of the signature data, every bit.
    // All are parse errors: the parser cross-checks every length against the
    // next one and the end of the data, so no flip re-frames the quote into
    // another valid one.
    const sigLenAt = at(q.signature) - 4
    const authSizeAt = at(cert.qeAuthData) - 2
    const innerTypeAt = at(cert.certData) - 6
    const fields: { name: string; at: number; size: number; codes: ErrorCode[] }[] = [
      // Longer: past the end (TRUNCATED) or, where trailing bytes allow, a
      // certification size that no longer fits it (MALFORMED). Shorter: the
      // chain no longer fits (TRUNCATED).
      { name: 'signatureData.size', at: sigLenAt, size: 4, codes: ['ATTESTATION_QUOTE_TRUNCATED', 'ATTESTATION_QUOTE_MALFORMED'] },
      // The size of the QE auth data shifts every later field: the cert type
      // and size then come from other bytes.
      {
        name: 'qeAuthData.size',
        at: authSizeAt,
        size: 2,
        codes: ['ATTESTATION_QUOTE_TRUNCATED', 'ATTESTATION_QUOTE_MALFORMED', 'ATTESTATION_CERT_DATA_UNSUPPORTED'],
      },
      { name: 'certData.type (5)', at: innerTypeAt, size: 2, codes: ['ATTESTATION_CERT_DATA_UNSUPPORTED'] },
      // Longer runs past its container; shorter leaves bytes inside it.
      { name: 'certData.size', at: innerTypeAt + 2, size: 4, codes: ['ATTESTATION_QUOTE_TRUNCATED', 'ATTESTATION_QUOTE_MALFORMED'] },
    ]
    if (q.header.version !== 3) {
      const outerAt = at(cert.qeReport.raw) - 6
      fields.push(
        { name: 'outer certData.type (6)', at: outerAt, size: 2, codes: ['ATTESTATION_CERT_DATA_UNSUPPORTED'] },
        // Cross-checked against the signature data size.
        { name: 'outer certData.size', at: outerAt + 2, size: 4, codes: ['ATTESTATION_QUOTE_MALFORMED'] },
      )
    }
    {
      const run = new RegionRun('signature-data framing fields')
      let planned = 0
      for (const f of fields) {
        for (let i = 0; i < f.size * 8; i++, planned++) {
          run.reject(`${f.name} bit ${i}`, verify(flipped(c.quote, f.at + (i >> 3), i & 7)), { codes: f.codes, family: 'parse' })
        }
      }
      run.finish(t, planned)
    }

    // PCK chain, PEM text: flips of the certification data bytes as they are.
    {
      const start = at(cert.certData)
      const text = Buffer.from(cert.certData).toString('latin1')
      const blocks = pemBlocks(text)
      t.equal(blocks.length, cert.pckChain.length, 'PEM blocks located')
      const run = new RegionRun('PCK chain PEM text')
      const bits = pickBits(text.length, vi, stride.pem)
      const kinds = new Map<string, number>()
      for (const i of bits) {
        const pos = i >> 3
        const to = String.fromCharCode(text.charCodeAt(pos) ^ (1 << (i & 7)))
        const o = verify(flipped(c.quote, start + pos, i & 7))
        const why = equivalentPemFlip(text, blocks, pos, to)
        const label = `certData byte ${pos} ${JSON.stringify(text[pos])}->${JSON.stringify(to)}`
        if (why) {
          kinds.set(why, (kinds.get(why) ?? 0) + 1)
          run.accept(`${label} (${why})`, o, status)
        } else run.reject(label, o, E.pckPem)
      }
      run.finish(t, bits.length)
      t.comment(`${c.id}: PEM flips that decode to the same DER: ${[...kinds].map(([k, n]) => `${k}×${n}`).join(', ') || 'none'}`)
    }

    // PCK chain, DER: flip a bit of a certificate, re-encode it in place as
    // PEM of the same length, and splice it back: the quote keeps every
    // length, so only the certificate content changed.
    {
      const start = at(cert.certData)
      const text = Buffer.from(cert.certData).toString('latin1')
      const blocks = pemBlocks(text)
      const run = new RegionRun('PCK chain DER (re-encoded PEM)')
      let planned = 0
      blocks.forEach((block, n) => {
        const bits = pickBits(block.der.length, vi + n, stride.der)
        planned += bits.length
        for (const i of bits) {
          const der = flipped(block.der, i >> 3, i & 7)
          const spliced = Buffer.from(splicePem(text, block, der), 'latin1')
          const bytes = c.quote.slice()
          bytes.set(spliced, start)
          run.reject(`cert ${n} DER byte ${i >> 3} bit ${i & 7}`, verify(bytes), E.pckDer)
        }
      })
      run.finish(t, planned)
    }
  })
})

// ---------------------------------------------------------------------------
// Collateral mutations, at the vector's instant

/** Hex-encoded DER or signature with one bit of its bytes flipped. */
function flipHex(h: string, i: number): string {
  return hex(flipped(new Uint8Array(Buffer.from(h.trim(), 'hex')), i >> 3, i & 7))
}

/** A UTF-8 text with one bit of its bytes flipped (a flipped high bit decodes to U+FFFD: still different bytes). */
function flipText(s: string, i: number): string {
  return Buffer.from(flipped(new Uint8Array(Buffer.from(s, 'utf8')), i >> 3, i & 7)).toString('utf8')
}

cases.forEach((c, vi) => {
  t.test(`collateral mutations: ${c.id}`, async (t) => {
    const now = { now: c.verifyAt }
    const status = verifyQuote(c.quote, c.collateral, now).tcbStatus
    const quote = parseQuote(c.quote)
    const parsed = parseCollateral(c.collateral)
    const verify = (bundle: QuoteCollateralV3): Outcome => outcome(() => verifyQuote(quote, bundle, now))
    const field = <K extends keyof QuoteCollateralV3>(k: K, v: QuoteCollateralV3[K]): QuoteCollateralV3 => ({ ...c.collateral, [k]: v })

    /**
     * Signed JSON: either it is no longer the JSON the parser requires
     * (MALFORMED), or its exact bytes are not what Intel signed. The root
     * CRL and the document's chain are checked first and are untouched.
     */
    const jsonRegion = (k: 'tcb_info' | 'qe_identity', code: ErrorCode): void => {
      const text = c.collateral[k]
      const bits = pickBits(Buffer.byteLength(text, 'utf8'), vi, stride.json)
      const run = new RegionRun(`${k} text`)
      for (const i of bits) run.reject(`${k} bit ${i}`, verify(field(k, flipText(text, i))), { codes: [code, 'ATTESTATION_COLLATERAL_MALFORMED'] })
      run.finish(t, bits.length)
    }
    jsonRegion('tcb_info', 'ATTESTATION_TCB_INFO_SIGNATURE_INVALID')
    jsonRegion('qe_identity', 'ATTESTATION_QE_IDENTITY_SIGNATURE_INVALID')

    /**
     * The raw r||s signatures, every bit: still 64 bytes, so only the
     * signature check can object. Done on the prepared collateral (one
     * parse, the document object replaced) — the way a cache holds it, and
     * cheaper: the chains stay verified, and the new document object must
     * not inherit its original's verified signature.
     */
    const sigRegion = (k: 'tcbInfo' | 'qeIdentity', code: ErrorCode): void => {
      const bits = pickBits(64, vi, stride.small)
      const run = new RegionRun(`${k} signature`)
      for (const i of bits) {
        const doc = { ...parsed[k], signature: flipped(parsed[k].signature, i >> 3, i & 7) }
        const o = outcome(() => verifyQuote(quote, { ...parsed, [k]: doc }, now))
        run.reject(`${k} signature bit ${i}`, o, { codes: [code], family: 'verification' })
      }
      run.finish(t, bits.length)
    }
    sigRegion('tcbInfo', 'ATTESTATION_TCB_INFO_SIGNATURE_INVALID')
    sigRegion('qeIdentity', 'ATTESTATION_QE_IDENTITY_SIGNATURE_INVALID')

    /**
     * CRL DER: either not a CRL (parse, at parseCollateral) or a CRL whose
     * tbsCertList, issuer or signature changed, so the issuer's signature
     * check fails before its dates are looked at.
     */
    const crlRegion = (k: 'root_ca_crl' | 'pck_crl'): void => {
      const crl = k === 'root_ca_crl' ? parsed.rootCaCrl : parsed.pckCrl
      const issuerAt = crl.issuer.byteOffset - crl.der.byteOffset
      const tbsEnd = crl.tbs.byteOffset - crl.der.byteOffset + crl.tbs.length
      // Dense: everything up to the dates (version, algorithm, issuer,
      // thisUpdate, nextUpdate: 2 × 17 bytes at most) and the outer algorithm
      // and signature; the revoked list, most of a PCK CRL, sparsely.
      const dense: [number, number][] = [
        [0, issuerAt + crl.issuer.length + 34],
        [tbsEnd, crl.der.length],
      ]
      const bits = pickBits(crl.der.length, vi, stride.crlSparse, dense, stride.crlDense)
      const run = new RegionRun(`${k} DER`)
      for (const i of bits) {
        const byte = i >> 3
        // The root CA CRL is first matched by issuer Name against the pinned
        // root, before its signature: a flip inside that Name makes it
        // collateral of another root (verify/collateral.ts), unless it broke
        // the DER. The PCK CRL's issuer is checked with its signature.
        const foreign = k === 'root_ca_crl' && byte >= issuerAt && byte < issuerAt + crl.issuer.length
        run.reject(`${k} byte ${byte} bit ${i & 7}`, verify(field(k, flipHex(c.collateral[k], i))), {
          codes: ['ATTESTATION_CRL_MALFORMED', foreign ? 'ATTESTATION_ROOT_CA_UNTRUSTED' : 'ATTESTATION_CRL_SIGNATURE_INVALID'],
        })
      }
      run.finish(t, bits.length)
    }
    crlRegion('root_ca_crl')
    crlRegion('pck_crl')

    /**
     * Issuer chains (PEM text): as for the PCK chain in the quote. A changed
     * signing certificate fails its issuer's signature; a changed copy of the
     * root fails the pinned root's (ROOT_CA_UNTRUSTED) or, when its name or
     * key changed, the signature of the certificate below it (CHAIN_INVALID).
     */
    const chainRegion = (k: 'tcb_info_issuer_chain' | 'qe_identity_issuer_chain' | 'pck_crl_issuer_chain'): void => {
      const text = c.collateral[k]
      const blocks = pemBlocks(text)
      const bits = pickBits(text.length, vi, stride.chain)
      const run = new RegionRun(`${k} PEM text`)
      for (const i of bits) {
        const pos = i >> 3
        const to = String.fromCharCode(text.charCodeAt(pos) ^ (1 << (i & 7)))
        const o = verify(field(k, text.slice(0, pos) + to + text.slice(pos + 1)))
        const why = equivalentPemFlip(text, blocks, pos, to)
        const label = `${k} char ${pos} ${JSON.stringify(text[pos])}->${JSON.stringify(to)}`
        if (why) run.accept(`${label} (${why})`, o, status)
        else run.reject(label, o, E.pckPem)
      }
      run.finish(t, bits.length)
    }
    chainRegion('tcb_info_issuer_chain')
    chainRegion('qe_identity_issuer_chain')
    chainRegion('pck_crl_issuer_chain')
  })
})

// ---------------------------------------------------------------------------
// Swapped collateral

t.test('swapped collateral: a quote with another vector’s collateral', async (t) => {
  const parsed = new Map(cases.map((c) => [c.id, parseCollateral(c.collateral)]))
  const swapped = new RegionRun('swapped collateral, other FMSPC')
  const sameFmspc = new RegionRun('swapped collateral, same FMSPC')
  for (const a of cases) {
    const qa = parseQuote(a.quote)
    const leaf = parseCertificate(qa.certification.pckChain[0]!)
    const fmspc = hex(parsePckExtension(leaf).fmspc)
    for (const b of cases) {
      if (a === b) continue
      const cb = parsed.get(b.id)!
      // At b's instant b's collateral is current, so what fails is the
      // pairing, not freshness. Which step notices first, in verifyQuote's order:
      // - the PCK leaf outside its validity at b's instant (a leaf issued
      //   after b's collateral was): CERT_EXPIRED;
      // - b's PCK CRL from the other PCK CA (Platform vs Processor): no CRL
      //   covers the leaf, CRL_MISSING (revocation unknown is a failure);
      // - an SGX quote with TDX collateral or the other way round: the QE
      //   identity is TD_QE where QE is required (or vice versa), and it is
      //   matched before the platform TCB: QE_IDENTITY_MISMATCH;
      // - otherwise TCB info for another FMSPC: TCB_INFO_MISMATCH — and with
      //   the same FMSPC, nothing: the collateral is the platform's own.
      const instant = b.verifyAt.getTime()
      const expected: ErrorCode | null =
        instant < leaf.notBefore || instant > leaf.notAfter
          ? 'ATTESTATION_CERT_EXPIRED'
          : hex(leaf.issuer) !== hex(cb.pckCrl.issuer)
            ? 'ATTESTATION_CRL_MISSING'
            : (qa.body.kind === 'sgx') !== (cb.tcbInfo.value.id === 'SGX')
              ? 'ATTESTATION_QE_IDENTITY_MISMATCH'
              : fmspc !== cb.tcbInfo.value.fmspc
                ? 'ATTESTATION_TCB_INFO_MISMATCH'
                : null
      const o = outcome(() => verifyQuote(qa, cb, { now: b.verifyAt }))
      const label = `${a.id} with ${b.id}`
      if (fmspc !== cb.tcbInfo.value.fmspc) swapped.reject(label, o, { codes: [expected ?? 'ATTESTATION_TCB_INFO_MISMATCH'], family: 'verification' })
      else if (expected) sameFmspc.reject(label, o, { codes: [expected], family: 'verification' })
      else sameFmspc.accept(label, o, null, '(verified)')
    }
  }
  swapped.finish(t, swapped.count)
  // tdx-v5-uptodate and tdx-v4-phala-cloud-2026-06 share FMSPC 90c06f000000.
  sameFmspc.finish(t, sameFmspc.count)
})

// ---------------------------------------------------------------------------
// Clocks

/** The earliest instant at which some item of `col` stops being current, and the latest at which one starts. */
function windowOf(col: Collateral): { lastIssued: number; firstExpiry: number } {
  return {
    firstExpiry: Math.min(col.tcbInfo.value.nextUpdate, col.qeIdentity.value.nextUpdate, col.pckCrl.nextUpdate, col.rootCaCrl.nextUpdate),
    lastIssued: Math.max(col.tcbInfo.value.issueDate, col.qeIdentity.value.issueDate, col.pckCrl.thisUpdate, col.rootCaCrl.thisUpdate),
  }
}

for (const c of cases) {
  t.test(`clocks: ${c.id}`, async (t) => {
    const col = parseCollateral(c.collateral)
    const { firstExpiry, lastIssued } = windowOf(col)
    const at = (ms: number): Outcome => outcome(() => verifyQuote(c.quote, col, { now: new Date(ms) }))
    const code = (o: Outcome): string => (o.kind === 'error' ? o.code : o.kind === 'bug' ? `bug: ${o.what}` : `accepted: ${o.status}`)

    t.same(at(c.verifyAt.getTime()), { kind: 'accepted', status: c.expected.status }, 'verifies at verify_at')
    t.ok(lastIssued <= c.verifyAt.getTime() && c.verifyAt.getTime() <= firstExpiry, 'verify_at lies inside the collateral window')
    // Freshness is a collateral property; the certificates are valid for years around it.
    t.equal(code(at(firstExpiry + 1000)), 'ATTESTATION_COLLATERAL_EXPIRED', 'one second after the earliest nextUpdate')
    t.equal(code(at(lastIssued - 1000)), 'ATTESTATION_COLLATERAL_EXPIRED', 'one second before the latest issueDate/thisUpdate')
    // 2060: past the root CA's notAfter (2049) and every nextUpdate; the root
    // CA CRL is checked first, so COLLATERAL_EXPIRED is what is seen today,
    // but either names the cause.
    const far = at(Date.UTC(2060, 0, 1))
    t.ok(far.kind === 'error' && ['ATTESTATION_CERT_EXPIRED', 'ATTESTATION_COLLATERAL_EXPIRED'].includes(far.code), `year 2060: ${code(far)}`)
  })
}
