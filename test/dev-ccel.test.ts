/**
 * The development TEE's generated CCEL (attestation/dev/ccel.ts): the table
 * and the TCG2 crypto-agile log parse with the verifier's own parsers
 * (ACPI 6.5 §5.2.34, TCG PFP §10.2), the events sit on the registers TDVF
 * and the Linux EFI stub use, each input moves exactly its register, the
 * bytes are deterministic, and a dev quote's RTMR0-2 are the log's replay.
 * Then a dev gateway's evidence end to end: runtime events extended onto
 * the CCEL's replay, the bundle replayed the way the auditor replays it,
 * and the real auditor over a gateway log finding nothing.
 */
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { createDevCcel, createDevQuoteSigner, createDevRootCa, DEV_CCEL_LOG_AREA_LENGTH, DEV_FMSPC, DEV_KERNEL, DEV_KERNEL_CMDLINE, signDevCollateral } from '../attestation/dev/index.ts'
import { CC_TYPE_TDX, parseCcelTable, parseEventLog, replayRtmrs, TPM_ALG_SHA384, verifyRtmrs } from '../attestation/eventlog/index.ts'
import { parseRuntimeEvents, verifyRuntimeEvents } from '../attestation/eventlog/runtime-events.ts'
import { auditLog } from '../attestation/log/audit/audit.ts'
import { createDirectoryLogSource } from '../attestation/log/reader.ts'
import { trustedRootFromDer } from '../attestation/roots/trust-root.ts'
import { parseQuote, type TdReport } from '../attestation/tdx/abi/quote.ts'
import { createEnclave } from '../enclave/enclave.ts'
import { createEnclaveFromConfig } from '../enclave/index.ts'
import { openGatewayLog } from '../enclave/log/index.ts'
import { createDevEventLogProvider, createDevQuoteProvider } from '../enclave/quote-providers/dev.ts'
import { createMemoryEventStore, createMemoryRtmrs } from '../enclave/quote-providers/rtmr-extend.ts'
import { ccelBase, measureGatewayStart } from '../enclave/quote-providers/runtime-measurement.ts'
import { UNRELEASED_RELEASE_HASH } from '../deploy/release/manifest.ts'
import type { EvidenceBundle } from '../enclave/types.ts'
import { codeOf, thrown } from './helpers/errors.ts'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const sha384 = (b: Uint8Array) => createHash('sha384').update(b).digest('hex')
const seed = (label: string) => new Uint8Array(createHash('sha256').update(`dev-ccel test ${label}`).digest())
const T = Date.parse('2026-03-01T12:00:00Z')
const ZERO48 = '00'.repeat(48)

async function tmp(t: Test): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'cgw-dev-ccel-'))
  t.teardown(() => rm(d, { recursive: true, force: true }))
  return d
}

const reportOf = (b: EvidenceBundle): TdReport => parseQuote(new Uint8Array(Buffer.from(b.quote, 'base64'))).body.report as TdReport

/**
 * The evidence checks of attestation/log/audit/evidence.ts, by hand: the
 * CCEL reproduces RTMR0-2 and, onto its replay, the runtime events RTMR3.
 * Throws (ATTESTATION_RTMR_MISMATCH, ...) where they do not.
 */
function replayLikeTheAuditor(b: EvidenceBundle): void {
  if (b.eventLog === null) throw new Error('no event log')
  const rtmrs = reportOf(b).rtmrs
  parseCcelTable(new Uint8Array(Buffer.from(b.eventLog.table, 'base64')))
  const events = parseEventLog(new Uint8Array(Buffer.from(b.eventLog.data, 'base64'))).events
  verifyRtmrs(events, rtmrs, { rtmrs: [0, 1, 2] })
  verifyRuntimeEvents(parseRuntimeEvents(b.runtimeEvents ?? []), rtmrs, { base: replayRtmrs(events) })
}

t.test('the table: ACPI 6.5 §5.2.34, TDX, describing the whole log area', async (t) => {
  const c = createDevCcel()
  t.equal(c.table.length, 56)
  const table = parseCcelTable(c.table)
  t.equal(table.ccType, CC_TYPE_TDX)
  t.equal(table.ccSubtype, 0)
  t.equal(table.oemId, 'CGWDEV', 'no reader mistakes it for real firmware')
  t.equal(table.logAreaMinimumLength, BigInt(c.data.length), 'LAML is the log data length')
  t.equal(c.data.length, DEV_CCEL_LOG_AREA_LENGTH)
})

t.test('the log: Spec ID Event03 with SHA-384 only, then the boot events on TDVF’s registers', async (t) => {
  const c = createDevCcel()
  const log = parseEventLog(c.data)
  t.same(log.specId.algorithms, [{ algId: TPM_ALG_SHA384, digestSize: 48 }])
  t.equal(log.specId.specVersionMajor, 2)
  t.equal(log.specId.uintnSize, 2, 'UINT64')
  t.same(
    log.events.map((e) => [e.rtmr, e.eventTypeName]),
    [
      [0, 'EV_EFI_PLATFORM_FIRMWARE_BLOB2'],
      [0, 'EV_EFI_VARIABLE_DRIVER_CONFIG'],
      [0, 'EV_EFI_VARIABLE_DRIVER_CONFIG'],
      [0, 'EV_EFI_VARIABLE_DRIVER_CONFIG'],
      [0, 'EV_EFI_VARIABLE_DRIVER_CONFIG'],
      [0, 'EV_EFI_VARIABLE_DRIVER_CONFIG'],
      [0, 'EV_SEPARATOR'],
      [1, 'EV_EFI_ACTION'],
      [1, 'EV_SEPARATOR'],
      [1, 'EV_EFI_BOOT_SERVICES_APPLICATION'],
      [2, 'EV_EVENT_TAG'],
      [2, 'EV_EVENT_TAG'],
      [1, 'EV_EFI_ACTION'],
      [1, 'EV_EFI_ACTION'],
    ],
  )
  t.ok(log.events.every((e) => e.digests.size === 1 && e.digests.get(TPM_ALG_SHA384)?.length === 48), 'one SHA-384 digest per event')
  t.ok(c.data.subarray(log.byteLength).every((b) => b === 0xff), 'the rest of the log area is 0xFF, as TDVF leaves it')
  const kernel = log.events.find((e) => e.eventTypeName === 'EV_EFI_BOOT_SERVICES_APPLICATION')!
  t.equal(hex(kernel.digests.get(TPM_ALG_SHA384)!), sha384(DEV_KERNEL), 'the kernel event digests the kernel')
  const cmdline = log.events.find((e) => e.eventTypeName === 'EV_EVENT_TAG')!
  t.equal(hex(cmdline.digests.get(TPM_ALG_SHA384)!), sha384(Buffer.from(`${DEV_KERNEL_CMDLINE}\0`, 'utf16le')), 'the command line as UTF-16 LoadOptions')
  t.same(c.rtmrs.map(hex), replayRtmrs(log.events).map(hex), 'rtmrs is the replay')
  t.equal(hex(c.rtmrs[3]!), ZERO48, 'RTMR3 is left to the OS')
  t.ok(c.rtmrs.slice(0, 3).every((r) => hex(r) !== ZERO48))
})

t.test('deterministic, and each input moves exactly its register', async (t) => {
  const base = createDevCcel()
  const again = createDevCcel()
  t.equal(hex(again.table), hex(base.table))
  t.equal(hex(again.data), hex(base.data))
  const moved = (o: Parameters<typeof createDevCcel>[0]) => {
    const c = createDevCcel(o)
    return [0, 1, 2, 3].filter((i) => hex(c.rtmrs[i]!) !== hex(base.rtmrs[i]!))
  }
  t.same(moved({ firmware: new Uint8Array([1, 2, 3]) }), [0])
  t.same(moved({ kernel: new Uint8Array([1, 2, 3]) }), [1])
  t.same(moved({ cmdline: 'console=hvc0 quiet' }), [2])
  t.same(moved({ initrd: new Uint8Array([1, 2, 3]) }), [2])
  t.same(moved({ cmdline: new Uint8Array(Buffer.from(`${DEV_KERNEL_CMDLINE}\0`, 'utf16le')) }), [], 'bytes are the LoadOptions as given')
  t.equal(codeOf(thrown(() => createDevCcel({ kernel: 'vmlinuz' as unknown as Uint8Array }))), 'ATTESTATION_OPTIONS_INVALID')
  t.equal(codeOf(thrown(() => createDevCcel({ cmdline: 7 as unknown as string }))), 'ATTESTATION_OPTIONS_INVALID')
})

t.test('a dev quote’s RTMR0-2 are the replay of the dev event log', async (t) => {
  const ca = createDevRootCa({ seed: seed('ca'), now: new Date(T - 86_400_000) })
  const signer = createDevQuoteSigner(ca, { fmspc: DEV_FMSPC, seed: seed('qe'), now: new Date(T - 86_400_000) })
  const quote = parseQuote(await createDevQuoteProvider({ signer }).getQuote(new Uint8Array(64)))
  const log = await createDevEventLogProvider().read()
  const rtmrs = (quote.body.report as TdReport).rtmrs
  const events = parseEventLog(log!.data).events
  t.equal(verifyRtmrs(events, rtmrs).length, events.length, 'all four registers replay; every event is vouched for')
  // A policy can pin the kernel command line event (requiredEvents, RTMR2).
  t.ok(verifyRtmrs(events, rtmrs, { rtmrs: [2] }).some((e) => e.eventTypeName === 'EV_EVENT_TAG'))
  const other = parseEventLog(createDevCcel({ cmdline: 'init=/bin/sh' }).data).events
  t.equal(codeOf(thrown(() => verifyRtmrs(other, rtmrs))), 'ATTESTATION_RTMR_MISMATCH', 'another command line does not replay to it')
})

t.test('a dev gateway’s evidence: the auditor’s replay succeeds, and the real auditor finds nothing', async (t) => {
  const ca = createDevRootCa({ seed: seed('ca'), now: new Date(T - 86_400_000) })
  const signer = createDevQuoteSigner(ca, { fmspc: DEV_FMSPC, seed: seed('qe'), now: new Date(T - 86_400_000) })
  const collateral = signDevCollateral(ca, { fmspc: DEV_FMSPC, now: new Date(T - 3_600_000), platform: signer.platform })
  const log = await openGatewayLog({ dataDir: await tmp(t), now: () => T })
  t.teardown(() => log.close())
  await log.sink.collateral([collateral])

  // The dev TEE as a gateway runs it: registers from the CCEL's replay, the runtime measurer's base the same.
  const firmware = createDevEventLogProvider()
  const base = await ccelBase(firmware)
  const regs = createMemoryRtmrs(base)
  const { measurer } = await measureGatewayStart({ extender: regs.extender, store: createMemoryEventStore(), base, releaseHash: UNRELEASED_RELEASE_HASH.slice(), config: { enclave: { tee: 'dev' } } })
  const enclave = await createEnclave({
    engine: { name: 'none', models: async () => [], request: async () => Promise.reject(new Error('no engine')), close: async () => {} },
    quotes: createDevQuoteProvider({ signer, rtmrs: regs.values }),
    eventLog: { read: () => firmware.read(), runtimeEvents: () => measurer.events() },
    gpu: null,
    epochLengthMs: 3_600_000,
    graceMs: 60_000,
    now: () => T,
    logPublicKey: log.publicKey,
    logSink: log.sink,
    receiptLog: log.receiptLog,
  })
  t.teardown(() => enclave.close())
  const bundle = await enclave.attest(seed('nonce'))
  t.equal(bundle.runtimeEvents?.length, 2, 'the gateway extended its release and config into RTMR3')
  t.doesNotThrow(() => replayLikeTheAuditor(bundle), 'CCEL → RTMR0-2, runtime events onto it → RTMR3')
  t.equal(codeOf(thrown(() => replayLikeTheAuditor({ ...bundle, runtimeEvents: [] }))), 'ATTESTATION_RTMR_MISMATCH', 'without its runtime events RTMR3 does not replay')

  await log.writer.flush()
  const { report } = await auditLog({ source: createDirectoryLogSource(log.dir), tdxRoot: trustedRootFromDer('dev', ca.rootCertificateDer, ca.rootFingerprint) })
  t.same(report.findings, [], 'no findings: the event log is there and replays')
  t.ok(report.ok)
  t.ok(report.checks.quotesVerified >= 1)
  t.equal(report.checks.logKey, 'evidence', 'a verified dev quote vouches for the log key')
})

// The dev gateway as `cgw gateway` builds it (enclave/index.ts): its
// registers start from the CCEL's replay, so what it serves replays too.
t.test(
  'createEnclaveFromConfig "dev": the served CCEL replays to the quote',
  async (t) => {
    const enclave = await createEnclaveFromConfig({ tee: 'dev', gpu: 'none', engine: { url: 'http://127.0.0.1:9' } })
    t.teardown(() => enclave.close())
    const bundle = await enclave.attest(seed('nonce from config'))
    t.doesNotThrow(() => replayLikeTheAuditor(bundle))
  },
)
