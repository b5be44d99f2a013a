/**
 * Property tests of the parsers that read attacker-supplied bytes: the DCAP
 * quote parser, the DER reader, X.509, CRL, PEM, the SGX PCK extension and
 * the collateral JSON. The one property: on any input a parser either
 * returns a result that stays inside its input, or throws a `ParseError`
 * with a code of its own kind — never a TypeError, RangeError or another
 * family, which a caller could not tell from a bug.
 *
 * Inputs are random bytes, structured look-alikes (valid headers, valid DER
 * trees) and mutations of the real vectors, so the parsers are driven past
 * their first check. Seeds are fixed: a failure reproduces exactly.
 */
import t from 'tap'
import fc from 'fast-check'
import { ParseError, type ParseErrorCode } from '../attestation/errors.ts'
import {
  TAG,
  bitString,
  booleanValue,
  children,
  decodeOid,
  integerBytes,
  integerValue,
  readTlv,
  timeValue,
  type Tlv,
} from '../attestation/asn1/der.ts'
import { pemToDer } from '../attestation/asn1/pem.ts'
import { parseCertificate } from '../attestation/pki/x509.ts'
import { parseCrl } from '../attestation/pki/crl.ts'
import { OID_SGX_EXTENSION, parsePckExtension } from '../attestation/tdx/abi/pck-extension.ts'
import { parseCollateral, parseQeIdentity, parseTcbInfo } from '../attestation/tdx/abi/collateral.ts'
import { parseQuote, type Quote } from '../attestation/tdx/abi/quote.ts'
import { tdxCases } from './helpers/vectors.ts'

const SEED = 42
const cases = tdxCases()
const quotes = cases.map((c) => ({ id: c.id, raw: c.quote, q: parseQuote(c.quote) }))

/** Run fast-check with the fixed seed; a counterexample fails the assertion with fast-check's report. */
function check<T>(
  t: { doesNotThrow(fn: () => unknown, message: string): unknown },
  name: string,
  arb: fc.Arbitrary<T>,
  pred: (v: T) => void,
  numRuns: number,
): void {
  t.doesNotThrow(() => fc.assert(fc.property(arb, pred), { seed: SEED, numRuns }), name)
}

/**
 * Run a parser; rethrow (failing the property) unless it returned or threw a
 * ParseError with one of `codes`. Wrappers that re-code lower-level errors
 * (certificate, CRL) keep the original as `cause`; a cause that is not a
 * ParseError is a bug the wrapper would otherwise hide.
 */
function parsesOrRejects<R>(codes: readonly ParseErrorCode[], run: () => R): R | ParseError {
  try {
    return run()
  } catch (e) {
    if (!(e instanceof ParseError)) throw new Error(`not a ParseError: ${String(e)}`, { cause: e })
    if (!codes.includes(e.code)) throw new Error(`unexpected code ${e.code}, expected ${codes.join('|')}`, { cause: e })
    if (e.cause !== undefined && !(e.cause instanceof ParseError)) throw new Error(`${e.code} wraps a non-ParseError: ${String(e.cause)}`, { cause: e })
    return e
  }
}

/** Every byte view of a parsed quote lies inside `raw`, where the parser says. */
function quoteInvariants(q: Quote, raw: Uint8Array): void {
  const inside = (v: Uint8Array, what: string): void => {
    const o = v.byteOffset - raw.byteOffset
    if (v.buffer !== raw.buffer || o < 0 || o + v.length > raw.length) throw new Error(`${what} is not a view into the quote`)
  }
  inside(q.signedRegion, 'signedRegion')
  if (q.signedRegion.byteOffset !== raw.byteOffset) throw new Error('signed region does not start the quote')
  inside(q.signature, 'signature')
  inside(q.attestationKey, 'attestationKey')
  inside(q.certification.qeReport.raw, 'qeReport')
  inside(q.certification.qeAuthData, 'qeAuthData')
  inside(q.certification.certData, 'certData')
  if (q.signature.length !== 64 || q.attestationKey.length !== 64 || q.certification.qeReport.raw.length !== 384) throw new Error('fixed sizes')
  if (q.trailingBytes < 0 || q.trailingBytes > raw.length) throw new Error('trailing bytes out of range')
  if (q.certification.pckChain.length === 0) throw new Error('empty PCK chain accepted')
}

const QUOTE_CODES: readonly ParseErrorCode[] = [
  'ATTESTATION_QUOTE_TRUNCATED',
  'ATTESTATION_QUOTE_UNSUPPORTED_VERSION',
  'ATTESTATION_QUOTE_UNSUPPORTED_TEE',
  'ATTESTATION_QUOTE_UNSUPPORTED_KEY_TYPE',
  'ATTESTATION_QUOTE_UNSUPPORTED_BODY',
  'ATTESTATION_QUOTE_MALFORMED',
  'ATTESTATION_CERT_DATA_UNSUPPORTED',
  'ATTESTATION_PEM_INVALID',
]

function parseQuoteChecked(bytes: Uint8Array): Quote | ParseError {
  const r = parsesOrRejects(QUOTE_CODES, () => parseQuote(bytes))
  if (!(r instanceof ParseError)) quoteInvariants(r, bytes)
  return r
}

const le = (n: number, size: number): number[] => Array.from({ length: size }, (_, i) => Math.floor(n / 256 ** i) & 0xff)

/** A length or type field: the right value (most often), off by a little, or anything. */
const field = (max: number): fc.Arbitrary<(right: number) => number> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constant((right: number) => right) },
    { weight: 2, arbitrary: fc.integer({ min: -3, max: 3 }).map((d) => (right: number) => Math.min(max, Math.max(0, right + d))) },
    { weight: 1, arbitrary: fc.nat({ max }).map((v) => () => v) },
  )

const u16 = (v: number): number[] => le(v, 2)
const u32 = (v: number): number[] => le(v, 4)

const assembledQuote: fc.Arbitrary<Uint8Array> = fc
  .record({
    version: fc.constantFrom(3, 4, 5),
    td15: fc.boolean(),
    bodyType: field(0xffff),
    bodySize: field(0xffffffff),
    sigLen: field(0xffffffff),
    outerType: field(0xffff),
    outerSize: field(0xffffffff),
    authSize: field(0xffff),
    auth: fc.uint8Array({ maxLength: 40 }),
    certType: field(0xffff),
    certSize: field(0xffffffff),
    // Real PEM chains, a real one cut short, or bytes.
    certData: fc.oneof(
      fc.nat({ max: quotes.length - 1 }).map((k) => quotes[k]!.q.certification.certData),
      fc.tuple(fc.nat({ max: quotes.length - 1 }), fc.nat()).map(([k, n]) => quotes[k]!.q.certification.certData.subarray(0, n % 4000)),
      fc.uint8Array({ maxLength: 64 }),
    ),
    trailing: fc.uint8Array({ maxLength: 16 }),
  })
  .map((f) => {
    const tee = f.version === 3 ? 0 : 0x81
    const header = [...u16(f.version), ...u16(2), ...u32(tee), ...new Array<number>(40).fill(0)]
    const bodyLen = f.version === 3 ? 384 : f.version === 5 && f.td15 ? 648 : 584
    const descriptor = f.version === 5 ? [...u16(f.bodyType(f.td15 ? 3 : 2)), ...u32(f.bodySize(bodyLen))] : []
    const cert = [...u16(f.certType(5)), ...u32(f.certSize(f.certData.length)), ...f.certData]
    const qeCert = [...new Array<number>(384 + 64).fill(0), ...u16(f.authSize(f.auth.length)), ...f.auth, ...cert]
    const outer = f.version === 3 ? qeCert : [...u16(f.outerType(6)), ...u32(f.outerSize(qeCert.length)), ...qeCert]
    const sigData = [...new Array<number>(128).fill(0), ...outer]
    return Uint8Array.from([...header, ...descriptor, ...new Array<number>(bodyLen).fill(0), ...u32(f.sigLen(sigData.length)), ...sigData, ...f.trailing])
  })

// ---------------------------------------------------------------------------
// (1) Random bytes, quotes assembled from fields, real prefixes with random tails.

t.test('parseQuote on random bytes returns or throws a ParseError', async (t) => {
  check(t, 'uniform random bytes', fc.uint8Array({ minLength: 0, maxLength: 6000 }), (b) => void parseQuoteChecked(b), 1000)

  // Quotes assembled field by field (header, v5 descriptor, body, signature
  // data, QE certification data, PCK chain), each length or type field
  // either right or slightly or wholly wrong, so that parsing reaches every
  // check in turn, and sometimes succeeds.
  check(t, 'assembled quotes with some fields wrong', assembledQuote, (b) => void parseQuoteChecked(b), 4000)

  // A real quote's first n bytes followed by random bytes: the parser gets
  // as deep as the real prefix allows, then meets garbage.
  const realPrefix = fc
    .record({ k: fc.nat({ max: quotes.length - 1 }), cut: fc.nat(), tail: fc.uint8Array({ maxLength: 400 }) })
    .map(({ k, cut, tail }) => {
      const raw = quotes[k]!.raw
      const n = cut % (raw.length + 1)
      const out = new Uint8Array(raw.length)
      out.set(raw.subarray(0, n))
      out.set(tail.subarray(0, raw.length - n), n)
      return out
    })
  check(t, 'real prefix, random rest', realPrefix, (b) => void parseQuoteChecked(b), 3000)
})

// ---------------------------------------------------------------------------
// (2) Truncations: every length of every real quote (about 33k parses, cheap).

t.test('every truncation of every real quote', async (t) => {
  for (const { id, raw, q } of quotes) {
    // Where the declared signature data ends; the rest are trailing bytes.
    const sigEnd = raw.length - q.trailingBytes
    const failures: string[] = []
    let parsed = 0
    for (let n = 0; n <= raw.length; n++) {
      // A copy of exactly n bytes, so a read past it cannot hide in the same buffer.
      const cut = raw.slice(0, n)
      let r: Quote | ParseError
      try {
        r = parseQuoteChecked(cut)
      } catch (e) {
        failures.push(`length ${n}: ${String(e)}`)
        continue
      }
      if (n < sigEnd) {
        // Every field, the certification data included, lies before sigEnd
        // and each read is bounds-checked, so any shorter quote is "truncated".
        if (!(r instanceof ParseError) || r.code !== 'ATTESTATION_QUOTE_TRUNCATED') {
          failures.push(`length ${n}: ${r instanceof ParseError ? r.code : 'parsed'}, expected ATTESTATION_QUOTE_TRUNCATED`)
        }
      } else if (r instanceof ParseError) {
        failures.push(`length ${n}: ${r.code}, but the declared data is complete`)
      } else {
        parsed++
        const same = Buffer.compare(r.signature, q.signature) === 0 && Buffer.compare(r.certification.certData, q.certification.certData) === 0
        if (!same || r.trailingBytes !== n - sigEnd) failures.push(`length ${n}: parsed differently (trailing ${r.trailingBytes})`)
      }
    }
    t.equal(parsed, q.trailingBytes + 1, `${id}: parses exactly at lengths ${sigEnd}..${raw.length}`)
    t.same(failures.slice(0, 5), [], `${id}: ${raw.length + 1} truncations`)
  }
})

// ---------------------------------------------------------------------------
// (3) Overwrites of the header and of every length/type field of a real quote.

interface Field {
  readonly name: string
  readonly at: number
  readonly size: 2 | 4
}

function fieldsOf(q: Quote): Field[] {
  const at = (v: Uint8Array): number => v.byteOffset - q.raw.byteOffset
  const f: Field[] = [
    { name: 'version', at: 0, size: 2 },
    { name: 'attestationKeyType', at: 2, size: 2 },
    { name: 'teeType', at: 4, size: 4 },
    { name: 'signatureData.size', at: at(q.signature) - 4, size: 4 },
    { name: 'qeAuthData.size', at: at(q.certification.qeAuthData) - 2, size: 2 },
    { name: 'certData.type', at: at(q.certification.certData) - 6, size: 2 },
    { name: 'certData.size', at: at(q.certification.certData) - 4, size: 4 },
  ]
  if (q.header.version === 5) f.push({ name: 'body.type', at: 48, size: 2 }, { name: 'body.size', at: 50, size: 4 })
  if (q.header.version !== 3) {
    const qe = at(q.certification.qeReport.raw)
    f.push({ name: 'outer certData.type', at: qe - 6, size: 2 }, { name: 'outer certData.size', at: qe - 4, size: 4 })
  }
  return f
}

t.test('overwritten header and length fields of real quotes', async (t) => {
  const arb = fc.record({
    k: fc.nat({ max: quotes.length - 1 }),
    writes: fc.array(
      fc.record({
        field: fc.nat(),
        // Boundary values and small deltas find off-by-ones; uniform values the rest.
        value: fc.oneof(
          fc.constantFrom(0, 1, 2, 3, 4, 5, 6, 0x81, 0x7f, 0xff, 0x100, 0xfffe, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff),
          fc.integer({ min: -8, max: 8 }),
          fc.nat({ max: 0xffffffff }),
        ),
        delta: fc.boolean(),
      }),
      { minLength: 1, maxLength: 3 },
    ),
  })
  check(
    t,
    'parse or a typed error',
    arb,
    ({ k, writes }) => {
      const { raw, q } = quotes[k]!
      const fields = fieldsOf(q)
      const b = raw.slice()
      for (const w of writes) {
        const f = fields[w.field % fields.length]!
        const old = f.size === 2 ? b[f.at]! | (b[f.at + 1]! << 8) : (b[f.at]! | (b[f.at + 1]! << 8) | (b[f.at + 2]! << 16) | (b[f.at + 3]! << 24)) >>> 0
        const v = (w.delta ? old + w.value : w.value) >>> 0
        b.set(le(v % 2 ** (8 * f.size), f.size), f.at)
      }
      parseQuoteChecked(b)
    },
    6000,
  )
})

// ---------------------------------------------------------------------------
// (4) DER, X.509, CRL, PEM, PCK extension and collateral JSON.

/** Decode whatever `tlv` might be, then its children: only DER errors allowed. */
function walk(buf: Uint8Array, tlv: Tlv, depth: number): void {
  if (tlv.start < 0 || tlv.contentStart < tlv.start || tlv.end < tlv.contentStart || tlv.end > buf.length) throw new Error('TLV outside its buffer')
  const decoders: ((b: Uint8Array, x: Tlv) => unknown)[] = [decodeOid, integerBytes, integerValue, timeValue, bitString, booleanValue]
  for (const d of decoders) parsesOrRejects(['ATTESTATION_DER_INVALID'], () => d(buf, tlv))
  if (tlv.tag & 0x20 && depth < 12) {
    const kids = parsesOrRejects(['ATTESTATION_DER_INVALID'], () => children(buf, tlv))
    if (!(kids instanceof ParseError)) for (const k of kids) walk(buf, k, depth + 1)
  }
}

/** A DER tree, encoded with correct minimal lengths, so the reader walks into it. */
type Node = { tag: number; content: Uint8Array } | { tag: number; kids: Node[] }
const derNode: fc.Arbitrary<Node> = fc.letrec<{ node: Node; prim: Node; cons: Node }>((tie) => ({
  node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, tie('prim'), tie('cons')),
  prim: fc.record({
    tag: fc.constantFrom(TAG.BOOLEAN, TAG.INTEGER, TAG.BIT_STRING, TAG.OCTET_STRING, TAG.NULL, TAG.OID, TAG.UTF8_STRING, TAG.UTC_TIME, TAG.GENERALIZED_TIME, 0x80, 0x81),
    content: fc.oneof(
      fc.uint8Array({ maxLength: 40 }),
      // Time-shaped and OID-shaped contents reach the deeper checks.
      fc.constantFrom('250719100034Z', '20491231235959Z', '991231235959Z', '000229000000Z', '20250230000000Z', '2025073110003Z').map((s) => new Uint8Array(Buffer.from(s))),
      fc.constantFrom('2a864886f8480d01', '80', '2a8080', 'ffffffffffffffff7f', '00', '0080', 'ff7f').map((h) => new Uint8Array(Buffer.from(h, 'hex'))),
    ),
  }),
  cons: fc.record({ tag: fc.constantFrom(TAG.SEQUENCE, TAG.SET, 0xa0, 0xa3), kids: fc.array(tie('node'), { maxLength: 4 }) }),
})).node

function encode(n: Node): Uint8Array {
  const body = 'content' in n ? n.content : Buffer.concat(n.kids.map(encode))
  const len = body.length
  const head = len < 0x80 ? [len] : len < 0x100 ? [0x81, len] : [0x82, len >> 8, len & 0xff]
  return new Uint8Array(Buffer.concat([Uint8Array.from([n.tag, ...head]), body]))
}

/** Byte-level mutations of a real encoding: flips, overwrites, cuts, inserts, deletes. */
const byteMutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.oneof(fc.constantFrom(0x00, 0x01, 0x02, 0x30, 0x7f, 0x80, 0x81, 0x82, 0x84, 0x85, 0xff), fc.nat({ max: 255 })) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }),
)
type ByteMutation = typeof byteMutation extends fc.Arbitrary<infer M> ? M : never

function mutate(src: Uint8Array, ms: readonly ByteMutation[]): Uint8Array {
  let b = Buffer.from(src)
  for (const m of ms) {
    if (b.length === 0) break
    const at = m.at % b.length
    if (m.kind === 'flip') b[at] = b[at]! ^ (1 << m.bit)
    else if (m.kind === 'set') b[at] = m.value
    else if (m.kind === 'truncate') b = b.subarray(0, at)
    else if (m.kind === 'insert') b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)])
    else b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.n)])
  }
  return new Uint8Array(b)
}
const mutations = fc.array(byteMutation, { minLength: 1, maxLength: 4 })

// Real material: every certificate of the quotes' PCK chains and the
// collateral issuer chains, and both CRLs of every bundle.
const certs = [
  ...new Map(
    [
      ...quotes.flatMap(({ q }) => q.certification.pckChain),
      ...cases.flatMap((c) => [c.collateral.tcb_info_issuer_chain, c.collateral.pck_crl_issuer_chain].flatMap((p) => pemToDer(p))),
    ].map((d) => [Buffer.from(d).toString('hex'), d] as const),
  ).values(),
]
const crls = [...new Set(cases.flatMap((c) => [c.collateral.root_ca_crl.trim(), c.collateral.pck_crl.trim()]))].map((h) => new Uint8Array(Buffer.from(h, 'hex')))
const pems = [...new Set(cases.flatMap((c) => [c.collateral.tcb_info_issuer_chain, c.collateral.pck_crl_issuer_chain]))]

t.test('DER reader', async (t) => {
  check(
    t,
    'readTlv on random bytes, offsets and limits',
    fc.record({ b: fc.uint8Array({ maxLength: 64 }), offset: fc.nat(), limit: fc.nat() }),
    ({ b, offset, limit }) => {
      // Callers pass limit <= buffer length (a parent's end) and offset <= limit.
      const lim = limit % (b.length + 1)
      const off = offset % (lim + 1)
      const r = parsesOrRejects(['ATTESTATION_DER_INVALID'], () => readTlv(b, off, lim))
      if (!(r instanceof ParseError) && !(r.start === off && r.contentStart > off && r.end >= r.contentStart && r.end <= lim)) {
        throw new Error(`TLV ${JSON.stringify(r)} escapes [${off}, ${lim})`)
      }
    },
    5000,
  )
  check(t, 'walk of random bytes', fc.uint8Array({ minLength: 2, maxLength: 200 }), (b) => {
    const top = parsesOrRejects(['ATTESTATION_DER_INVALID'], () => readTlv(b, 0))
    if (!(top instanceof ParseError)) walk(b, top, 0)
  }, 3000)
  check(t, 'walk of well-formed DER trees, then mutated', fc.tuple(derNode, fc.option(mutations, { nil: undefined })), ([n, ms]) => {
    const b = ms ? mutate(encode(n), ms) : encode(n)
    const top = parsesOrRejects(['ATTESTATION_DER_INVALID'], () => readTlv(b, 0))
    if (!(top instanceof ParseError)) walk(b, top, 0)
  }, 4000)
})

t.test('X.509, CRL and PEM parsers on mutated real inputs', async (t) => {
  t.ok(certs.length >= 5 && crls.length >= 2, `${certs.length} certificates, ${crls.length} CRLs`)
  check(t, 'parseCertificate', fc.tuple(fc.nat({ max: certs.length - 1 }), mutations), ([k, ms]) => {
    const r = parsesOrRejects(['ATTESTATION_CERT_INVALID'], () => parseCertificate(mutate(certs[k]!, ms)))
    if (!(r instanceof ParseError)) walk(r.der, readTlv(r.der, 0), 0)
  }, 4000)
  check(t, 'parseCrl', fc.tuple(fc.nat({ max: crls.length - 1 }), mutations), ([k, ms]) => {
    void parsesOrRejects(['ATTESTATION_CRL_MALFORMED'], () => parseCrl(mutate(crls[k]!, ms)))
  }, 2500)
  check(t, 'pemToDer', fc.tuple(fc.nat({ max: pems.length - 1 }), mutations), ([k, ms]) => {
    const text = Buffer.from(mutate(new Uint8Array(Buffer.from(pems[k]!, 'latin1')), ms)).toString('latin1')
    void parsesOrRejects(['ATTESTATION_PEM_INVALID'], () => pemToDer(text))
  }, 3000)
})

t.test('SGX PCK extension with mutated content', async (t) => {
  // The extension value is an opaque OCTET STRING to the X.509 parser, so
  // overwriting bytes inside it leaves a parseable certificate whose SGX
  // extension parser then meets the garbage.
  const leaves = quotes.map(({ q }) => parseCertificate(q.certification.pckChain[0]!))
  check(
    t,
    'parsePckExtension',
    fc.record({ k: fc.nat({ max: leaves.length - 1 }), writes: fc.array(fc.record({ at: fc.nat(), value: fc.nat({ max: 255 }) }), { minLength: 1, maxLength: 6 }) }),
    ({ k, writes }) => {
      const leaf = leaves[k]!
      const ext = leaf.extensions.get(OID_SGX_EXTENSION)!
      const from = ext.value.byteOffset - leaf.der.byteOffset
      const der = leaf.der.slice()
      for (const w of writes) der[from + (w.at % ext.value.length)] = w.value
      const cert = parseCertificate(der)
      void parsesOrRejects(['ATTESTATION_SGX_EXTENSION_INVALID'], () => parsePckExtension(cert))
    },
    4000,
  )
})

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }
type Path = (string | number)[]

function pathsOf(v: Json, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix)
  if (Array.isArray(v)) v.forEach((x, i) => pathsOf(x, [...prefix, i], out))
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) pathsOf(x, [...prefix, k], out)
  return out
}

const DELETE = Symbol('delete')

/** A copy of `root` with the value at `path` replaced (or removed). */
function setAt(root: Json, path: Path, value: Json | typeof DELETE): Json {
  if (path.length === 0) return value === DELETE ? null : value
  const copy = structuredClone(root) as Record<string | number, Json>
  let node = copy
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, Json>
  const last = path[path.length - 1]!
  if (value === DELETE) {
    if (Array.isArray(node)) node.splice(Number(last), 1)
    else delete node[last]
  } else node[last] = value
  return copy as Json
}

/** Values that sit on the edges of what the JSON parsers check. */
const edgeValue: fc.Arbitrary<Json | typeof DELETE> = fc.oneof(
  fc.constant(DELETE),
  fc.constantFrom<Json>(null, true, -1, 1.5, 256, 65536, 2 ** 32, 2 ** 53, 1e21, '', 'UpToDate', 'Revoked', 'Unknown', 'TDX', 'SGX', 'TD_QE', [], {}, [{}], '00'.repeat(6), 'zz'.repeat(6)),
  fc.constantFrom<Json>('2025-13-01T00:00:00Z', '2025-02-30T00:00:00Z', '2025-07-19T10:00:34+25:00', '2025-07-19T10:00:34', '2025-07-19T24:00:00Z'),
  fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
  fc.string({ maxLength: 20 }),
  fc.integer(),
)

t.test('collateral JSON parsers on mutated real documents', async (t) => {
  const docs = [
    ...[...new Set(cases.map((c) => c.collateral.tcb_info))].map((text) => ({ kind: 'tcbInfo' as const, text })),
    ...[...new Set(cases.map((c) => c.collateral.qe_identity))].map((text) => ({ kind: 'qeIdentity' as const, text })),
  ]
  const parse = (kind: 'tcbInfo' | 'qeIdentity', text: string): void => {
    void parsesOrRejects(['ATTESTATION_COLLATERAL_MALFORMED'], () => (kind === 'tcbInfo' ? parseTcbInfo(text) : parseQeIdentity(text)))
  }
  check(t, 'byte mutations of the JSON text', fc.tuple(fc.nat({ max: docs.length - 1 }), mutations), ([k, ms]) => {
    const d = docs[k]!
    parse(d.kind, Buffer.from(mutate(new Uint8Array(Buffer.from(d.text, 'utf8')), ms)).toString('utf8'))
  }, 3000)
  // Structural mutations keep the text JSON, so the parsers' field checks run.
  const trees = docs.map((d) => ({ ...d, tree: JSON.parse(d.text) as Json, paths: pathsOf(JSON.parse(d.text) as Json) }))
  check(
    t,
    'a value anywhere in the document replaced or removed',
    fc.record({ k: fc.nat({ max: trees.length - 1 }), edits: fc.array(fc.tuple(fc.nat(), edgeValue), { minLength: 1, maxLength: 3 }) }),
    ({ k, edits }) => {
      const d = trees[k]!
      let tree = d.tree
      for (const [p, v] of edits) {
        const paths = pathsOf(tree)
        tree = setAt(tree, paths[p % paths.length]!, v)
      }
      parse(d.kind, JSON.stringify(tree))
    },
    5000,
  )
  // The whole bundle: any field replaced by a random value.
  const bundleKeys = Object.keys(cases[0]!.collateral)
  check(
    t,
    'parseCollateral with a field replaced',
    fc.record({ k: fc.nat({ max: cases.length - 1 }), key: fc.nat(), value: edgeValue }),
    ({ k, key, value }) => {
      const b = { ...cases[k]!.collateral } as Record<string, unknown>
      const name = bundleKeys[key % bundleKeys.length]!
      if (value === DELETE) delete b[name]
      else b[name] = value
      void parsesOrRejects(
        ['ATTESTATION_COLLATERAL_MALFORMED', 'ATTESTATION_PEM_INVALID', 'ATTESTATION_CERT_INVALID', 'ATTESTATION_CRL_MALFORMED'],
        () => parseCollateral(b as never),
      )
    },
    1000,
  )
})
