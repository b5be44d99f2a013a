/**
 * Event log tests: the real Google COS 113 CCEL table, log and quote
 * (test/vectors/eventlog/gce-cos113, from google/go-tdx-guest testdata), and
 * mutations of them generated here, each named after what it breaks.
 */

import { readFileSync } from 'node:fs'
import t from 'tap'
import fc from 'fast-check'
import { ParseError, VerificationError, ConfigError } from '../attestation/errors.ts'
import {
  parseCcelTable,
  parseEventLog,
  replayRtmrs,
  verifyRtmrs,
  CC_TYPE_TDX,
  EV_NO_ACTION,
  TPM_ALG_SHA384,
} from '../attestation/eventlog/index.ts'
import type { CcEvent } from '../attestation/eventlog/index.ts'
import { thrown } from './helpers/errors.ts'

const DIR = new URL('./vectors/eventlog/gce-cos113/', import.meta.url)
const table = new Uint8Array(readFileSync(new URL('ccel_table.dat', DIR)))
const data = new Uint8Array(readFileSync(new URL('ccel_data.dat', DIR)))
const quote = new Uint8Array(readFileSync(new URL('cos-113-tdx-quote.dat', DIR)))

/**
 * RTMR0..3 of a TDX v4 quote, read at fixed offsets so this test does not
 * depend on the quote parser: the 48-byte header is followed by the TD report
 * body, whose rtmr0..rtmr3 sit at body offsets 328, 376, 424, 472.
 */
function quoteRtmrs(q: Uint8Array): Uint8Array[] {
  const body = 48
  return [328, 376, 424, 472].map((off) => q.subarray(body + off, body + off + 48))
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')


/** Recompute the ACPI checksum so a mutation tests the field, not the checksum. */
function fixChecksum(tbl: Uint8Array): Uint8Array {
  tbl[9] = 0
  let sum = 0
  for (const b of tbl) sum = (sum + b) & 0xff
  tbl[9] = (256 - sum) & 0xff
  return tbl
}

const log = parseEventLog(data)
const rtmrs = quoteRtmrs(quote)

t.test('CCEL table (ACPI 6.5 §5.2.34) of the COS 113 VM', async (t) => {
  const ccel = parseCcelTable(table)
  t.equal(ccel.length, 56)
  t.equal(ccel.revision, 1)
  t.equal(ccel.oemId, 'INTEL ')
  t.equal(ccel.oemTableId, 'EDK2    ')
  t.equal(ccel.ccType, CC_TYPE_TDX)
  t.equal(ccel.ccSubtype, 0)
  t.equal(ccel.logAreaMinimumLength, 0x40000n)
  t.equal(ccel.logAreaStartAddress, 0xbedbf000n)
  // The log file is the whole log area, padding included.
  t.equal(BigInt(data.length), ccel.logAreaMinimumLength)
})

t.test('CCEL table mutations are rejected', async (t) => {
  const cases: Record<string, Uint8Array> = {
    'checksum-byte-changed': (() => {
      const m = table.slice()
      m[9] = (m[9]! + 1) & 0xff
      return m
    })(),
    'lasa-changed-checksum-stale': (() => {
      const m = table.slice()
      m[48] = m[48]! ^ 0x01
      return m
    })(),
    'signature-not-ccel': fixChecksum((() => {
      const m = table.slice()
      m[0] = 0x58
      return m
    })()),
    'cc-type-sev': fixChecksum((() => {
      const m = table.slice()
      m[36] = 1
      return m
    })()),
    'declared-length-too-short': fixChecksum((() => {
      const m = table.slice()
      m[4] = 40
      return m
    })()),
    'declared-length-past-data': fixChecksum((() => {
      const m = table.slice()
      m[4] = 57
      return m
    })()),
    'truncated-table': table.subarray(0, 55),
  }
  for (const [name, bytes] of Object.entries(cases)) {
    const e = thrown(() => parseCcelTable(bytes))
    t.ok(e instanceof ParseError, name)
    t.equal((e as ParseError).code, 'ATTESTATION_EVENTLOG_MALFORMED', name)
    t.type((e as ParseError).details.offset, 'number', name)
  }
})

t.test('the COS 113 log parses (TCG PFP §10.2 crypto-agile)', async (t) => {
  // Spec ID Event03 declares SHA-384 only; TDVF logs it on MR 1 (TCG's PCR 0 → RTMR0).
  t.same(log.specId.algorithms, [{ algId: TPM_ALG_SHA384, digestSize: 48 }])
  t.equal(log.specId.mrIndex, 1)
  t.equal(log.specId.specVersionMajor, 2)
  t.equal(log.specId.uintnSize, 2)
  // 43 TCG_PCR_EVENT2 records, then 0xFF padding to the end of the 256 KiB area.
  t.equal(log.events.length, 43)
  t.equal(log.byteLength, 18101)
  t.ok(data.subarray(log.byteLength).every((b) => b === 0xff))
  t.same(log.events.map((e) => e.index), Array.from({ length: 43 }, (_, i) => i + 1))
  // MR index = RTMR + 1 (UEFI 2.10 §38.4.1); this firmware and OS use MR 1..3 only.
  const perMr = new Map<number, number>()
  for (const e of log.events) perMr.set(e.mrIndex, (perMr.get(e.mrIndex) ?? 0) + 1)
  t.same(Object.fromEntries(perMr), { 1: 16, 2: 7, 3: 20 })
  for (const e of log.events) {
    t.equal(e.rtmr, e.mrIndex - 1)
    t.equal(e.digests.get(TPM_ALG_SHA384)?.length, 48)
  }
  const first = log.events[0]!
  t.equal(first.eventType, 0x8000000b)
  t.equal(first.eventTypeName, 'EV_EFI_HANDOFF_TABLES2')
  // Grub measures the kernel command line into PCR 8 → RTMR2: the event a policy would pin.
  const cmdline = log.events.find((e) => Buffer.from(e.data).toString('latin1').startsWith('kernel_cmdline: '))
  t.ok(cmdline)
  t.equal(cmdline?.rtmr, 2)
  t.equal(cmdline?.eventTypeName, 'EV_IPL')
  t.equal(log.events.filter((e) => e.eventTypeName === 'EV_SEPARATOR').length, 2)
})

t.test('replay reproduces the quote RTMRs', async (t) => {
  const replayed = replayRtmrs(log.events)
  t.equal(hex(replayed[0]!), hex(rtmrs[0]!))
  t.equal(hex(replayed[1]!), hex(rtmrs[1]!))
  t.equal(hex(replayed[2]!), hex(rtmrs[2]!))
  // The log has no MR 4 event: nothing in this boot extended RTMR3, and the
  // quote's RTMR3 is indeed still all zero, so the replay matches it as well.
  t.equal(hex(rtmrs[3]!), '00'.repeat(48))
  t.equal(hex(replayed[3]!), '00'.repeat(48))
  const verified = verifyRtmrs(log.events, rtmrs)
  t.equal(verified.length, 43)
  // Narrowed to RTMR2, only RTMR2's events are vouched for.
  const rtmr2 = verifyRtmrs(log.events, rtmrs, { rtmrs: [2] })
  t.equal(rtmr2.length, 20)
  t.ok(rtmr2.every((e) => e.rtmr === 2))
})

/** The log with one byte of one event's SHA-384 digest flipped. */
function withFlippedDigest(event: CcEvent, at: number): Uint8Array {
  const m = data.slice()
  // offset + mrIndex(4) + eventType(4) + count(4) + algId(2)
  m[event.offset + 14 + at]! ^= 0x80
  return m
}

t.test('a flipped digest byte changes the replay and is caught', async (t) => {
  for (const [name, event, rtmr] of [
    ['rtmr0-first-event-digest-flipped', log.events[0]!, 0],
    ['rtmr1-gpt-digest-flipped', log.events.find((e) => e.eventTypeName === 'EV_EFI_GPT_EVENT')!, 1],
    ['rtmr2-last-ipl-digest-flipped', log.events.findLast((e) => e.rtmr === 2)!, 2],
  ] as const) {
    const mutated = parseEventLog(withFlippedDigest(event, 47))
    t.equal(mutated.events.length, 43, name)
    t.not(hex(replayRtmrs(mutated.events)[rtmr]!), hex(rtmrs[rtmr]!), name)
    const e = thrown(() => verifyRtmrs(mutated.events, rtmrs))
    t.ok(e instanceof VerificationError, name)
    t.equal((e as VerificationError).code, 'ATTESTATION_RTMR_MISMATCH', name)
    t.same((e as VerificationError).details, {
      rtmr,
      expected: hex(rtmrs[rtmr]!),
      actual: hex(replayRtmrs(mutated.events)[rtmr]!),
    }, name)
  }
  // A different quote value is a mismatch too (compute, then compare).
  const wrongQuote = rtmrs.map((r) => r.slice())
  wrongQuote[3]![0] = 1
  const e = thrown(() => verifyRtmrs(log.events, wrongQuote))
  t.equal((e as VerificationError).code, 'ATTESTATION_RTMR_MISMATCH')
  t.equal((e as VerificationError).details.rtmr, 3)
  // ...unless the caller left RTMR3 out, in which case its events are not returned.
  t.equal(verifyRtmrs(log.events, wrongQuote, { rtmrs: [0, 1, 2] }).length, 43)
})

t.test('replay fails closed on events it cannot extend', async (t) => {
  const ev = log.events[3]!
  const cases: Record<string, CcEvent[]> = {
    'sha384-digest-missing': log.events.map((e) => (e === ev ? { ...e, digests: new Map() } : e)),
    'sha384-digest-short': log.events.map((e) => (e === ev ? { ...e, digests: new Map([[TPM_ALG_SHA384, new Uint8Array(32)]]) } : e)),
    'event-extends-mrtd': log.events.map((e) => (e === ev ? { ...e, mrIndex: 0, rtmr: null } : e)),
  }
  for (const [name, events] of Object.entries(cases)) {
    const e = thrown(() => replayRtmrs(events))
    t.ok(e instanceof ParseError, name)
    t.equal((e as ParseError).code, 'ATTESTATION_EVENTLOG_MALFORMED', name)
    t.equal((e as ParseError).details.index, ev.index, name)
    t.equal((thrown(() => verifyRtmrs(events, rtmrs)) as ParseError).code, 'ATTESTATION_EVENTLOG_MALFORMED', name)
  }
  // EV_NO_ACTION events are never extended (TCG PFP §10.4.1), whatever they carry.
  const noAction: CcEvent = { ...ev, eventType: EV_NO_ACTION, eventTypeName: 'EV_NO_ACTION', digests: new Map() }
  const withNoAction = [...log.events.slice(0, 5), noAction, ...log.events.slice(5)]
  t.equal(hex(replayRtmrs(withNoAction)[0]!), hex(rtmrs[0]!))
  t.notOk(verifyRtmrs(withNoAction, rtmrs).includes(noAction), 'EV_NO_ACTION events are not vouched for')
})

t.test('verifyRtmrs rejects misuse', async (t) => {
  for (const [name, q, opts] of [
    ['three-rtmrs', rtmrs.slice(0, 3), {}],
    ['short-rtmr', [...rtmrs.slice(0, 3), new Uint8Array(32)], {}],
    ['no-rtmr-selected', rtmrs, { rtmrs: [] }],
    ['rtmr-index-4', rtmrs, { rtmrs: [4 as 0] }],
  ] as const) {
    const e = thrown(() => verifyRtmrs(log.events, q, opts))
    t.ok(e instanceof ConfigError, name)
    t.equal((e as ConfigError).code, 'ATTESTATION_OPTIONS_INVALID', name)
  }
})

t.test('log mutations are rejected with a parse error', async (t) => {
  const u32 = (m: Uint8Array, at: number, v: number): Uint8Array => {
    new DataView(m.buffer, m.byteOffset).setUint32(at, v, true)
    return m
  }
  const u16 = (m: Uint8Array, at: number, v: number): Uint8Array => {
    new DataView(m.buffer, m.byteOffset).setUint16(at, v, true)
    return m
  }
  const e1 = log.events[1]!.offset
  const cases: Record<string, Uint8Array> = {
    'first-event-not-no-action': u32(data.slice(), 4, 4),
    'spec-id-signature-wrong': (() => {
      const m = data.slice()
      m[32 + 14] = 0x34 // "Spec ID Event04"
      return m
    })(),
    'spec-id-sha384-size-32': u16(data.slice(), 0x3e, 32),
    'spec-id-no-algorithms': u32(data.slice(), 0x38, 0),
    'spec-id-event-size-off-by-one': u32(data.slice(), 28, 34),
    'mr-index-5': u32(data.slice(), e1, 5),
    'digest-count-2': u32(data.slice(), e1 + 8, 2),
    'digest-alg-sha256-undeclared': u16(data.slice(), e1 + 12, 0x000b),
    'event-size-past-end': u32(data.slice(), e1 + 14 + 48, 0x7fffffff),
    'empty': new Uint8Array(0),
    'spec-id-header-truncated': data.subarray(0, 31),
  }
  for (const [name, bytes] of Object.entries(cases)) {
    const e = thrown(() => parseEventLog(bytes))
    t.ok(e instanceof ParseError, name)
    t.equal((e as ParseError).code, 'ATTESTATION_EVENTLOG_MALFORMED', name)
    t.type((e as ParseError).details.offset, 'number', name)
  }
})

t.test('padding: 0xFF, 0x00, or none ends the log cleanly', async (t) => {
  const body = data.subarray(0, log.byteLength)
  const zeroPadded = new Uint8Array(data.length)
  zeroPadded.set(body)
  const shortFf = new Uint8Array(log.byteLength + 5).fill(0xff)
  shortFf.set(body)
  for (const [name, bytes] of [
    ['ff-padded', data],
    ['zero-padded', zeroPadded],
    ['no-padding', body],
    ['5-bytes-of-ff', shortFf],
  ] as const) {
    const parsed = parseEventLog(bytes)
    t.equal(parsed.events.length, 43, name)
    t.equal(parsed.byteLength, log.byteLength, name)
  }
  // Non-padding junk after the last event is a truncated record, not padding.
  const junk = new Uint8Array(log.byteLength + 5)
  junk.set(body)
  junk[log.byteLength] = 1
  t.equal((thrown(() => parseEventLog(junk)) as ParseError).code, 'ATTESTATION_EVENTLOG_MALFORMED')
})

/** Parse `bytes`; fail the test on anything but success or a typed parse error. */
function parseOrTypedError(bytes: Uint8Array): ReturnType<typeof parseEventLog> | undefined {
  try {
    return parseEventLog(bytes)
  } catch (e) {
    if (!(e instanceof ParseError) || e.code !== 'ATTESTATION_EVENTLOG_MALFORMED') throw e
    return undefined
  }
}

t.test('a log truncated at every byte gives a prefix or a parse error', async (t) => {
  // Record boundaries: the end of the Spec ID event, of each record, of the log.
  const ends = new Set(log.events.map((e) => e.offset).concat(log.byteLength))
  let prefixes = 0
  for (let cut = 0; cut <= log.byteLength; cut++) {
    const parsed = parseOrTypedError(data.subarray(0, cut))
    if (parsed === undefined) continue
    prefixes++
    const n = parsed.events.length
    // Every parsed record is the real one at the same place.
    for (let i = 0; i < n; i++) {
      if (parsed.events[i]!.offset !== log.events[i]!.offset || parsed.events[i]!.data.length !== log.events[i]!.data.length) {
        t.fail(`cut ${cut}: event ${i} differs`)
      }
    }
    // A shorter valid log only where the cut falls on a record boundary.
    if (!ends.has(cut)) t.fail(`cut ${cut}: parsed ${n} events`)
  }
  // ...and every boundary does parse.
  t.equal(prefixes, log.events.length + 1)
})

t.test('property: random and mutated logs never throw an untyped error', async (t) => {
  const check = (bytes: Uint8Array): boolean => {
    const parsed = parseOrTypedError(bytes)
    if (parsed === undefined) return true
    try {
      replayRtmrs(parsed.events)
    } catch (e) {
      if (!(e instanceof ParseError)) throw e
    }
    return true
  }
  fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), check), { numRuns: 2000 })
  t.pass('random bytes')
  // Random records behind the real Spec ID event, so the record parser is reached.
  const specId = data.subarray(0, log.events[0]!.offset)
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (tail) => {
      const m = new Uint8Array(specId.length + tail.length)
      m.set(specId)
      m.set(tail, specId.length)
      return check(m)
    }),
    { numRuns: 2000 },
  )
  t.pass('random records after a valid Spec ID event')
  const head = data.subarray(0, log.byteLength + 64)
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat({ max: head.length - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
      fc.nat({ max: head.length }),
      (writes, cut) => {
        const m = head.slice(0, cut)
        for (const [at, v] of writes) if (at < m.length) m[at] = v
        return check(m)
      },
    ),
    { numRuns: 2000 },
  )
  t.pass('overwritten and truncated copies of the real log')
})
