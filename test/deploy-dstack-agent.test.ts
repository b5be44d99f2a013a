/**
 * The dstack guest agent path, against a fake agent on a unix socket that
 * behaves like dstack's: its RTMR3 already holds dstack's boot events,
 * EmitEvent extends it by the runtime event rule and logs the record in
 * dstack's format, GetQuote signs a (dev) quote over the live registers and
 * returns the log. Boot registers come from a real CCEL (GCE COS TD). The
 * gateway's events land after dstack's; the bundle's runtime events replay
 * onto the CCEL's value to the quote; `cgw measure` with that bundle as the
 * reference predicts the same RTMR3; a restarted gateway emits nothing
 * twice, another release in the same boot is refused. Failures are typed.
 */
import t from 'tap'
import { createServer, type Server } from 'node:http'
import { mkdtemp, rm, mkdir, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import { createDevQuoteSigner, createDevRootCa, DEV_FMSPC } from '../attestation/dev/index.ts'
import { parseQuote } from '../attestation/tdx/abi/quote.ts'
import { createRuntimeEvent, RUNTIME_EVENT_TYPE, runtimeEventDigest, verifyRuntimeEvents } from '../attestation/eventlog/runtime-events.ts'
import { parseEventLog } from '../attestation/eventlog/event-log.ts'
import { replayRtmrs } from '../attestation/eventlog/replay.ts'
import { createMemoryRtmrs } from '../enclave/quote-providers/rtmr-extend.ts'
import { createDstackProviders, dstackSocketCall } from '../enclave/quote-providers/dstack.ts'
import { emitGatewayStart } from '../enclave/quote-providers/runtime-measurement.ts'
import { createEnclaveFromConfig } from '../enclave/index.ts'
import { computeMeasurement, referenceFromEvidence } from '../deploy/measure/measure.ts'
import { createReleaseManifest, encodeReleaseManifest, releaseHash } from '../deploy/release/manifest.ts'
import { codeOf, thrown } from './helpers/errors.ts'

const dir = await mkdtemp(join(tmpdir(), 'cgw-dstack-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))
const h = (b: Uint8Array) => Buffer.from(b).toString('hex')
// The boot part of the CVM: a real TD's CCEL, so RTMR0-2 (and RTMR3's start) are what firmware and kernel left.
const ccelDir = 'test/vectors/eventlog/gce-cos113/'
const ccelTable = await readFile(`${ccelDir}ccel_table.dat`)
const ccelData = await readFile(`${ccelDir}ccel_data.dat`)
const bootRtmrs = replayRtmrs(parseEventLog(new Uint8Array(ccelData)).events)
const eventLog = { table: ccelTable.toString('base64'), data: ccelData.toString('base64') }

/** A fake dstack guest agent. `tamper` corrupts the digest of the log's first runtime event. */
async function fakeAgent(socket: string, o: { tamper?: boolean; noEmit?: boolean } = {}): Promise<{ server: Server; log: Record<string, unknown>[] }> {
  const regs = createMemoryRtmrs(bootRtmrs)
  const signer = createDevQuoteSigner(createDevRootCa({ now: new Date('2025-06-01T00:00:00Z') }), { fmspc: DEV_FMSPC })
  const log: Record<string, unknown>[] = [{ imr: 0, event_type: 0x80000001, digest: '00'.repeat(48), event: '', event_payload: '' }]
  const emit = async (event: string, payload: string) => {
    const digest = runtimeEventDigest(event, Buffer.from(payload, 'hex'))
    await regs.extender.extend(3, digest, { event, payload })
    log.push({ imr: 3, event_type: RUNTIME_EVENT_TYPE, digest: h(digest).toUpperCase(), event, event_payload: payload })
  }
  // dstack's boot events, before any app runs.
  await emit('app-id', 'ab'.repeat(20))
  await emit('compose-hash', 'cd'.repeat(32))
  await emit('boot-mr-done', '')
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', async () => {
      const doc = JSON.parse(body || '{}')
      if (req.url === '/EmitEvent' && !o.noEmit) {
        await emit(doc.event, doc.payload)
        return res.writeHead(200).end()
      }
      if (req.url === '/GetQuote') {
        const quote = signer.signQuote({ reportData: Buffer.from(doc.report_data, 'hex'), rtmrs: regs.values() })
        const out = o.tamper ? log.map((e, i) => (i === 1 ? { ...e, digest: '11'.repeat(48) } : e)) : log
        res.writeHead(200, { 'content-type': 'application/json' })
        return res.end(JSON.stringify({ quote: h(quote), event_log: JSON.stringify(out), report_data: doc.report_data }))
      }
      res.writeHead(404).end(JSON.stringify({ error: 'not found' }))
    })
  })
  await new Promise<void>((r) => server.listen(socket, r))
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  return { server, log }
}

const config = { enclave: { tee: 'dstack', gpu: 'none', engine: { url: 'http://127.0.0.1:8000' } } }
const RELEASE = new Uint8Array(createHash('sha384').update('a release').digest())

t.test('gateway events after dstack\'s, one log, replaying to the quote; measure agrees', async (t) => {
  const socket = join(dir, 'ok.sock')
  await fakeAgent(socket)
  const d = createDstackProviders({ call: dstackSocketCall(socket) })
  const own = await emitGatewayStart({ extender: d.extender, releaseHash: RELEASE, config })
  await d.refresh()
  t.same(d.runtimeEvents().map((e) => e.event), ['app-id', 'compose-hash', 'boot-mr-done', 'cgw-release', 'cgw-config'], 'dstack\'s runtime events then ours; firmware entries left to the CCEL')
  t.same(d.runtimeEvents().slice(3), own)

  const quote = await d.quotes.getQuote(new Uint8Array(64).fill(7))
  const q = parseQuote(quote)
  if (q.body.kind === 'sgx') throw new Error('sgx')
  const rtmrs = q.body.report.rtmrs
  t.doesNotThrow(() => verifyRuntimeEvents(d.runtimeEvents(), rtmrs, { base: bootRtmrs }), 'the agent log replays onto the CCEL value to the quote\'s RTMR3')

  // The bundle as a reference boot: measure recomputes RTMR3 from dstack's prior events and ours.
  const bundle = { quote: Buffer.from(quote).toString('base64'), eventLog, runtimeEvents: d.runtimeEvents() }
  const ref = referenceFromEvidence(bundle)
  const m = computeMeasurement({ config, configProvenance: {}, releaseHash: RELEASE, releaseProvenance: {}, reference: ref, trustRoot: 'intel' })
  t.equal(m.expected.rtmr3, h(rtmrs[3]))
  t.equal(codeOf(thrown(() => referenceFromEvidence({ ...bundle, eventLog: null }))), 'MEASURE_REFERENCE_INCOMPLETE', 'a reference without its CCEL is refused, not read as zeros')
})

t.test('a restarted gateway emits nothing twice; another release in the same boot is refused', async (t) => {
  const socket = join(dir, 'restart.sock')
  const agent = await fakeAgent(socket)
  const first = createDstackProviders({ call: dstackSocketCall(socket) })
  await emitGatewayStart({ extender: first.extender, releaseHash: RELEASE, config })
  const entries = agent.log.length
  // The container restarts; the agent (and RTMR3) live on for the whole boot.
  const second = createDstackProviders({ call: dstackSocketCall(socket) })
  await emitGatewayStart({ extender: second.extender, releaseHash: RELEASE, config })
  t.equal(agent.log.length, entries, 'no EmitEvent the second time')
  await second.refresh()
  t.same(second.runtimeEvents().map((e) => e.event), ['app-id', 'compose-hash', 'boot-mr-done', 'cgw-release', 'cgw-config'], 'each event once')

  const other = await emitGatewayStart({ extender: second.extender, releaseHash: new Uint8Array(48).fill(9), config }).then(() => undefined, (x: unknown) => x)
  t.equal(codeOf(other), 'ENCLAVE_EVIDENCE_UNAVAILABLE')
  t.same((other as { details: unknown }).details, { step: 'runtime-measurement', code: 'ENCLAVE_RTMR_BOOT_CONFLICT' }, 'exit 6 naming the conflict; reboot to change release')
  t.equal(agent.log.length, entries, 'and nothing emitted')

  const { extender } = createMemoryRtmrs()
  const noLog = await emitGatewayStart({ extender, releaseHash: RELEASE, config }).then(() => undefined, (x: unknown) => x)
  t.same((noLog as { details: unknown }).details, { step: 'runtime-measurement', code: 'ENCLAVE_RTMR_UNAVAILABLE' }, 'an extender that keeps no log cannot be used this way')
})

t.test('failures are typed', async (t) => {
  const none = createDstackProviders({ call: dstackSocketCall(join(dir, 'absent.sock')) })
  await t.rejects(none.quotes.getQuote(new Uint8Array(64)), { code: 'ENCLAVE_QUOTE_PROVIDER_UNAVAILABLE' }, 'no socket: no quote provider')
  const e = await emitGatewayStart({ extender: none.extender, releaseHash: RELEASE, config }).then(() => undefined, (x: unknown) => x)
  t.equal(codeOf(e), 'ENCLAVE_EVIDENCE_UNAVAILABLE')
  t.same((e as { details: unknown }).details, { step: 'runtime-measurement', code: 'ENCLAVE_RTMR_UNAVAILABLE' })

  const old = join(dir, 'old.sock')
  await fakeAgent(old, { noEmit: true })
  const o = createDstackProviders({ call: dstackSocketCall(old) })
  await t.rejects(o.extender.extend(3, new Uint8Array(Buffer.from(createRuntimeEvent(3, 'x', new Uint8Array(1)).digest, 'hex')), { event: 'x', payload: '00' }), { code: 'ENCLAVE_RTMR_EXTEND_FAILED' }, 'an agent without EmitEvent (dstack OS < 0.5)')
  await t.rejects(o.extender.extend(3, new Uint8Array(48), { event: 'x', payload: '00' }), { code: 'ENCLAVE_RTMR_EXTEND_FAILED' }, 'a digest that is not of its event')
  await t.rejects(o.extender.extend(2, new Uint8Array(48), { event: 'x', payload: '00' }), { code: 'ENCLAVE_RTMR_EXTEND_FAILED' })

  const bad = join(dir, 'bad.sock')
  await fakeAgent(bad, { tamper: true })
  await t.rejects(createDstackProviders({ call: dstackSocketCall(bad) }).quotes.getQuote(new Uint8Array(64)), { code: 'ENCLAVE_EVIDENCE_UNAVAILABLE' }, 'an agent log whose digest is not of its record')
})

t.test('tee "dstack" in the config: a real TD (release required, no socket here: exit-6 class error)', async (t) => {
  const engine = { url: 'http://127.0.0.1:9' }
  const noRelease = await createEnclaveFromConfig({ tee: 'dstack', engine }).then(() => undefined, (x: unknown) => x)
  t.equal(codeOf(noRelease), 'ENCLAVE_EVIDENCE_UNAVAILABLE')
  t.same((noRelease as { details: unknown }).details, { step: 'runtime-measurement', code: 'RELEASE_MANIFEST_MISSING' }, 'no unreleased mode outside the dev TEE')

  const release = join(dir, 'release')
  await mkdir(release)
  const files = [{ path: 'cgw.mjs', mode: '0644' as const, bytes: new TextEncoder().encode('x') }]
  await writeFile(join(release, 'cgw.mjs'), 'x', { mode: 0o644 })
  const bytes = encodeReleaseManifest(createReleaseManifest({ name: 'confidential-gateway', packageVersion: '0.1.0', external: {}, files }))
  await writeFile(join(release, 'release.json'), bytes)
  t.ok(releaseHash(bytes).length === 48)
  // The configured release must be what runs: this test file is not in it.
  const notRunning = await createEnclaveFromConfig({ tee: 'dstack', engine, release }).then(() => undefined, (x: unknown) => x)
  t.same((notRunning as { details: unknown }).details, { step: 'runtime-measurement', code: 'RELEASE_FILE_MISMATCH' }, 'the running entry is not in the configured release')
  // Run "from" the release (its entry file), as the image does.
  const entry = process.argv[1]!
  process.argv[1] = join(release, 'cgw.mjs')
  t.teardown(() => void (process.argv[1] = entry))
  const noAgent = await createEnclaveFromConfig({ tee: 'dstack', engine, release }).then(() => undefined, (x: unknown) => x).finally(() => void (process.argv[1] = entry))
  t.equal(codeOf(noAgent), 'ENCLAVE_EVIDENCE_UNAVAILABLE')
  t.same((noAgent as { details: unknown }).details, { step: 'runtime-measurement', code: 'ENCLAVE_RTMR_UNAVAILABLE' }, 'no /var/run/dstack.sock here')
  t.equal(codeOf(await createEnclaveFromConfig({ tee: 'dstack', engine, gpu: 'nvml' }).then(() => undefined, (x: unknown) => x)), 'ATTESTATION_OPTIONS_INVALID', 'a GPU needs the ready-state gate here too')
})
