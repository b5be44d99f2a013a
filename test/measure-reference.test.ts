/**
 * `cgw measure` with a real reference boot: the GCE COS TD vector's quote
 * and CCEL (test/vectors/eventlog/gce-cos113) fix MRTD, RTMR0..2 and the
 * config registers; the CCEL must replay to the quote (a tampered log is
 * refused, and so is a bundle without a CCEL: zeros would be a guess);
 * RTMR3 is the gateway's events replayed on the CCEL's value; a
 * dstack-style reference's own runtime events precede ours (they must replay
 * to its quote), its compose-hash replaced by the deployment's.
 */
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { parseQuote } from '../attestation/tdx/abi/quote.ts'
import { parseEventLog } from '../attestation/eventlog/event-log.ts'
import { replayRtmrs } from '../attestation/eventlog/replay.ts'
import { createDevQuoteSigner, createDevRootCa, DEV_FMSPC } from '../attestation/dev/index.ts'
import { parsePolicy } from '../attestation/policy/policy.ts'
import { computeWorkloadId } from '../attestation/workload.ts'
import { createRuntimeEvent, gatewayConfigHash, gatewayStartEvents, replayRuntimeEvents } from '../attestation/eventlog/runtime-events.ts'
import { computeMeasurement, referenceFromEvidence, DSTACK_COMPOSE_HASH_EVENT } from '../deploy/measure/measure.ts'
import { UNRELEASED_RELEASE_HASH } from '../deploy/release/manifest.ts'
import { codeOf, thrown } from './helpers/errors.ts'

const dir = 'test/vectors/eventlog/gce-cos113/'
const quote = await readFile(`${dir}cos-113-tdx-quote.dat`)
const table = await readFile(`${dir}ccel_table.dat`)
const data = await readFile(`${dir}ccel_data.dat`)
const bundle = { quote: quote.toString('base64'), eventLog: { table: table.toString('base64'), data: data.toString('base64') } }
const report = (() => {
  const q = parseQuote(new Uint8Array(quote))
  if (q.body.kind === 'sgx') throw new Error('sgx')
  return q.body.report
})()
const h = (b: Uint8Array) => Buffer.from(b).toString('hex')
const config = { listen: { host: '0.0.0.0', port: 8080 }, enclave: { tee: 'tdx', gpu: 'none', engine: { url: 'http://127.0.0.1:8000' } } }

t.test('a real reference boot fixes firmware and kernel registers; RTMR3 is computed on top', async (t) => {
  const ref = referenceFromEvidence(bundle)
  t.equal(h(ref.mrTd), h(report.mrTd))
  const events = (ref.provenance as { ccelEvents: { rtmr: number; digest: string; type: string }[] }).ccelEvents
  t.ok(events.length > 10, 'every CCEL event of RTMR0-2 is listed for review')
  t.ok(events.every((e) => e.rtmr >= 0 && e.rtmr <= 2 && /^[0-9a-f]{96}$/.test(e.digest)))

  const m = computeMeasurement({ config, configProvenance: {}, releaseHash: UNRELEASED_RELEASE_HASH, releaseProvenance: {}, reference: ref, trustRoot: 'intel' })
  for (const i of [0, 1, 2] as const) t.equal(m.expected[`rtmr${i}`], h(report.rtmrs[i]), `RTMR${i} from the reference`)
  const own = gatewayStartEvents({ releaseHash: UNRELEASED_RELEASE_HASH, configHash: gatewayConfigHash(config) })
  t.equal(m.expected.rtmr3, h(replayRuntimeEvents(own, ref.base)[3]!), 'RTMR3: our events on the CCEL value')
  const rtmrs = [report.rtmrs[0], report.rtmrs[1], report.rtmrs[2], replayRuntimeEvents(own, ref.base)[3]!] as const
  t.same(m.workloadIds, [computeWorkloadId({ mrTd: report.mrTd, mrConfigId: report.mrConfigId, mrOwner: report.mrOwner, mrOwnerConfig: report.mrOwnerConfig, rtmrs: [...rtmrs] as [Uint8Array, Uint8Array, Uint8Array, Uint8Array] })])
  t.doesNotThrow(() => parsePolicy(m.quotePolicy), 'the policy is one cgw verify-quote accepts')
  t.equal(m.policy, undefined, 'no client policy without a collateral source')
  t.same(m.provenance.registers, { firmware: ['mrTd', 'rtmr0'], kernel: ['rtmr1', 'rtmr2'], host: ['mrConfigId', 'mrOwner', 'mrOwnerConfig'], application: { rtmr3: ['cgw-release', 'cgw-config'] } })
})

t.test('a reference whose CCEL does not replay to its quote is refused', async (t) => {
  const bad = Buffer.from(data)
  // TCG_PCR_EVENT2: mrIndex u32, eventType u32, digest count u32, then algId u16 and the digest.
  const first = parseEventLog(new Uint8Array(data)).events.find((e) => e.rtmr === 0 && e.eventType !== 3)!
  bad[first.offset + 14]! ^= 0xff
  const e = thrown(() => referenceFromEvidence({ ...bundle, eventLog: { table: bundle.eventLog.table, data: bad.toString('base64') } }))
  t.equal(codeOf(e), 'ATTESTATION_RTMR_MISMATCH', 'one changed digest: RTMR0 no longer replays')
  t.equal(codeOf(thrown(() => referenceFromEvidence({ nope: 1 }))), 'ATTESTATION_OPTIONS_INVALID')
  t.equal(codeOf(thrown(() => referenceFromEvidence({ quote: bundle.quote }))), 'MEASURE_REFERENCE_INCOMPLETE', 'no CCEL: RTMR0-2 are not pinned to zeros')
  t.equal(codeOf(thrown(() => referenceFromEvidence({ quote: bundle.quote, eventLog: null }))), 'MEASURE_REFERENCE_INCOMPLETE')
})

t.test('dstack-style reference: its runtime events come first, compose-hash is the deployment\'s', async (t) => {
  const appId = createRuntimeEvent(3, 'app-id', new Uint8Array(20).fill(1))
  const oldCompose = createRuntimeEvent(3, DSTACK_COMPOSE_HASH_EVENT, new Uint8Array(32).fill(2))
  const oldOwn = gatewayStartEvents({ releaseHash: new Uint8Array(48).fill(3), configHash: new Uint8Array(48).fill(4) })
  // A reference TD booted from the same firmware and kernel (the CCEL), its RTMR3 extended by dstack and the reference gateway.
  const boot = replayRtmrs(parseEventLog(new Uint8Array(data)).events)
  const logged = [appId, oldCompose, ...oldOwn]
  const signer = createDevQuoteSigner(createDevRootCa({ now: new Date('2025-06-01T00:00:00Z') }), { fmspc: DEV_FMSPC })
  const refQuote = (rtmr3: Uint8Array) => Buffer.from(signer.signQuote({ reportData: new Uint8Array(64), rtmrs: [boot[0]!, boot[1]!, boot[2]!, rtmr3] })).toString('base64')
  const refBundle = { quote: refQuote(replayRuntimeEvents(logged, boot)[3]!), eventLog: bundle.eventLog, runtimeEvents: logged }
  const ref = referenceFromEvidence(refBundle)
  t.equal(codeOf(thrown(() => referenceFromEvidence({ ...refBundle, runtimeEvents: [appId, ...oldOwn] }))), 'ATTESTATION_RTMR_MISMATCH', 'runtime events that do not replay to the reference quote are no account of its RTMR3')
  t.same(ref.priorEvents.map((e) => e.event), ['app-id', 'compose-hash'], 'the reference gateway\'s own events are dropped, they are recomputed')
  const appCompose = new TextEncoder().encode(JSON.stringify({ docker_compose_file: `services:\n  gateway:\n    image: confidential-gateway@sha256:${'ab'.repeat(32)}\n` }))
  const m = computeMeasurement({ config, configProvenance: {}, releaseHash: UNRELEASED_RELEASE_HASH, releaseProvenance: {}, reference: ref, compose: { fileName: 'app-compose.json', bytes: appCompose }, trustRoot: 'intel' })
  const newCompose = createRuntimeEvent(3, DSTACK_COMPOSE_HASH_EVENT, new Uint8Array(createHash('sha256').update(appCompose).digest()))
  const own = gatewayStartEvents({ releaseHash: UNRELEASED_RELEASE_HASH, configHash: gatewayConfigHash(config) })
  t.equal(m.expected.rtmr3, h(replayRuntimeEvents([appId, newCompose, ...own], boot)[3]!), 'app-id, this compose-hash, then the gateway, on the CCEL value')
  t.same(m.provenance.registers, { firmware: ['mrTd', 'rtmr0'], kernel: ['rtmr1', 'rtmr2'], host: ['mrConfigId', 'mrOwner', 'mrOwnerConfig'], application: { rtmr3: ['app-id', 'compose-hash', 'cgw-release', 'cgw-config'] } })
})
