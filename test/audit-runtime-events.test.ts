/**
 * The auditor binds an evidence entry's event logs to its quote as clients
 * do (attestation/eventlog/runtime-events.ts verifyEvidenceEvents): the
 * CCEL for RTMR0/1, runtime events replayed onto the CCEL's value for
 * RTMR2/3. A runtime event on RTMR2 (dstack extends it) that the quote
 * holds audits clean; one the quote does not hold, or a quote extended by
 * an event the log leaves out, is LOG_EVENTLOG_MISMATCH; and the CCEL
 * stays required (LOG_EVENTLOG_MISSING) with runtime events alone.
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { createDevQuoteSigner, createDevRootCa, DEV_FMSPC, signDevCollateral } from '../attestation/dev/index.ts'
import { createDevCcel } from '../attestation/dev/ccel.ts'
import { createRuntimeEvent, replayRuntimeEvents, type RuntimeEvent } from '../attestation/eventlog/runtime-events.ts'
import { auditLog } from '../attestation/log/audit/audit.ts'
import { decodeEntry } from '../attestation/log/entry.ts'
import { createDirectoryLogSource } from '../attestation/log/reader.ts'
import { trustedRootFromDer } from '../attestation/roots/trust-root.ts'
import { createEpochManager } from '../enclave/epochs.ts'
import { createEvidenceSource } from '../enclave/evidence.ts'
import { createDevQuoteProvider } from '../enclave/quote-providers/dev.ts'
import { createLogKey } from '../enclave/log/key.ts'
import { createAttestationLogSink } from '../enclave/log/sink.ts'
import { createLogWriter } from '../enclave/log/writer.ts'
import { entriesOf, fakeOhttpKey, NOW, tempDir, writeVariant, withoutEventLog } from './fixtures/log-dev-fixture.ts'

const seed = (label: string) => new Uint8Array(createHash('sha256').update(`runtime events ${label}`).digest())
const pairs = (r: { findings: { code: string; index?: number }[] }) => r.findings.map((f) => [f.code, f.index])

/**
 * A log with collateral, an epoch and one nonce-mode evidence entry whose
 * quote's registers are the dev CCEL's with `extended` replayed onto them,
 * and whose logged runtime events are `logged`.
 */
async function runtimeLog(t: Test, extended: readonly RuntimeEvent[], logged: readonly RuntimeEvent[]) {
  const dir = join(await tempDir(t), 'log')
  const key = createLogKey()
  const writer = await createLogWriter({ dir, key, now: () => NOW.getTime() })
  t.teardown(() => writer.close())
  const sink = createAttestationLogSink(writer)
  const ca = createDevRootCa({ seed: seed('tdx ca'), now: new Date(NOW.getTime() - 86_400_000) })
  const signer = createDevQuoteSigner(ca, { fmspc: DEV_FMSPC, seed: seed('qe'), now: new Date(NOW.getTime() - 86_400_000) })
  await sink.collateral([signDevCollateral(ca, { fmspc: DEV_FMSPC, now: new Date(NOW.getTime() - 3_600_000), nextUpdateDays: 30, platform: signer.platform })])
  const epochs = await createEpochManager({ epochLengthMs: 3_600_000, graceMs: 60_000, now: () => NOW.getTime(), newOhttpKey: fakeOhttpKey, autoRotate: false, logSink: sink })
  t.teardown(() => epochs.close())
  const ccel = createDevCcel()
  const registers = replayRuntimeEvents(extended, ccel.rtmrs)
  const evidence = createEvidenceSource({
    quotes: createDevQuoteProvider({ signer, measurements: { mrTd: new Uint8Array(48).fill(0x5a) }, rtmrs: () => registers }),
    eventLog: { read: async () => ({ table: ccel.table.slice(), data: ccel.data.slice() }), runtimeEvents: () => logged },
    gpu: null,
    epochs,
    logPublicKey: key.publicKey,
    logSink: sink,
  })
  await evidence.attest(seed('nonce'))
  await writer.flush()
  const audit = (from: string) =>
    auditLog({
      source: createDirectoryLogSource(from),
      state: null,
      registry: null,
      tdxRoot: trustedRootFromDer('dev', ca.rootCertificateDer, ca.rootFingerprint),
      now: () => NOW,
    })
  return { dir, key, writer, audit }
}

const release = createRuntimeEvent(3, 'cgw-release', new TextEncoder().encode('release'))
const compose = createRuntimeEvent(2, 'compose-hash', new TextEncoder().encode('compose'))

t.test('a runtime event on RTMR2 that the quote holds audits clean (as clients accept it)', async (t) => {
  const log = await runtimeLog(t, [compose, release], [compose, release])
  const { report } = await log.audit(log.dir)
  t.same(report.findings, [], 'no findings')
  t.equal(report.checks.quotesVerified, 1)
})

t.test('RTMR3 only, as before: clean', async (t) => {
  const log = await runtimeLog(t, [release], [release])
  t.same((await log.audit(log.dir)).report.findings, [])
})

t.test('runtime events that do not reproduce the quote are a mismatch, on either register', async (t) => {
  const index = async (log: Awaited<ReturnType<typeof runtimeLog>>) =>
    (await entriesOf(log.dir, log.writer.size)).findIndex((e) => decodeEntry(e).type === 'evidence')
  // The log claims an RTMR2 event the quote was never extended by.
  const claimed = await runtimeLog(t, [release], [compose, release])
  t.same(pairs((await claimed.audit(claimed.dir)).report), [['LOG_EVENTLOG_MISMATCH', await index(claimed)]])
  // The quote's RTMR2 was extended by an event the log leaves out.
  const hidden = await runtimeLog(t, [compose, release], [release])
  t.same(pairs((await hidden.audit(hidden.dir)).report), [['LOG_EVENTLOG_MISMATCH', await index(hidden)]])
})

t.test('runtime events without the CCEL are still LOG_EVENTLOG_MISSING', async (t) => {
  const log = await runtimeLog(t, [compose, release], [compose, release])
  const entries = await entriesOf(log.dir, log.writer.size)
  const { forged, index: i } = withoutEventLog(entries)
  const dir = await writeVariant(t, log.dir, log.key, forged, NOW.getTime())
  const { report } = await log.audit(dir)
  t.notOk(report.ok)
  t.ok(report.findings.some((f) => f.code === 'LOG_EVENTLOG_MISSING' && f.index === i), 'the CCEL is required')
})
