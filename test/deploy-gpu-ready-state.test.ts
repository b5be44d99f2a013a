/**
 * The GPU ready-state gate with a fake nvidia-smi runner: the ready state is
 * set only after the local GPU evidence verified and passed the GPU policy,
 * never when collection, verification or policy fails, and the enclave's
 * readiness (what /readyz reads) follows it. A GPU already ready before the
 * gate ran is refused unless the config allows it (then verified, reported,
 * not set again). Dev GPUs stand in for the H100 behind the same provider
 * interface; only the trust root differs.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createDevGpu, createDevGpuRootCa } from '../attestation/dev/index.ts'
import { trustedRootFromDer } from '../attestation/roots/trust-root.ts'
import { parseGpuPolicy } from '../attestation/policy/policy.ts'
import { createDevGpuProvider } from '../enclave/gpu/dev.ts'
import { GpuCollectionError } from '../enclave/gpu/errors.ts'
import type { RunCommand } from '../enclave/gpu/nvattest-cli.ts'
import { createGpuReadyGate, withGpuReadyGate, GET_READY_STATE_ARGS, SET_READY_STATE_ARGS, type GpuReadyGateOptions } from '../enclave/gpu/ready-state.ts'
import type { Enclave } from '../enclave/types.ts'
import type { GpuEvidenceProvider } from '../enclave/gpu/provider.ts'
import { codeOf } from './helpers/errors.ts'

const NOW = new Date('2025-06-01T12:00:00Z')
const AT = new Date(NOW.getTime() + 3_600_000)
const seed = (label: string) => new Uint8Array(createHash('sha256').update(`ready-state ${label}`).digest())
const ca = createDevGpuRootCa({ seed: seed('ca'), now: NOW })
const root = trustedRootFromDer('dev', ca.rootCertificateDer, ca.rootFingerprint)
const gpu = createDevGpu(ca, { index: 0 })
const policyDoc = { trustRoot: { dev: ca.rootFingerprint }, count: 1, driverVersions: ['550.90.07'], vbiosVersions: 'any' }

/** A fake nvidia-smi with a ready state (-srs sets it, -grs reports it): records each call with what had happened before it. */
function fakeSmi(o: { setExit?: number; getOutput?: string; missing?: boolean; initiallyReady?: boolean } = {}) {
  const calls: { args: readonly string[]; collectedBefore: number }[] = []
  let collected = 0
  let ready = o.initiallyReady ?? false
  const run: RunCommand = async (file, args) => {
    calls.push({ args, collectedBefore: collected })
    if (o.missing) throw Object.assign(new Error('spawn nvidia-smi ENOENT'), { code: 'ENOENT' })
    t.equal(file, 'nvidia-smi')
    if (args.includes('-srs')) {
      if ((o.setExit ?? 0) === 0) ready = true
      return { stdout: '', stderr: '', exitCode: o.setExit ?? 0 }
    }
    return { stdout: o.getOutput ?? `Confidential Compute GPUs Ready state: ${ready ? 'ready' : 'not-ready'}\n`, stderr: '', exitCode: 0 }
  }
  const counting = (p: GpuEvidenceProvider): GpuEvidenceProvider => ({ name: p.name, collect: async (n, c) => ((collected++), p.collect(n, c)) })
  return { run, calls, counting }
}

function gate(over: Partial<GpuReadyGateOptions> & { smi?: ReturnType<typeof fakeSmi> } = {}) {
  const smi = over.smi ?? fakeSmi()
  const provider = smi.counting(over.provider ?? createDevGpuProvider({ ca, gpus: [gpu], now: () => AT }))
  return { smi, gate: createGpuReadyGate({ provider, policy: parseGpuPolicy(policyDoc), deviceRoot: root, rimRoot: root, run: smi.run, now: () => AT, ...over, ...(over.provider ? { provider } : {}) }) }
}

const fakeEnclave = (): Enclave => ({
  keyConfigs: () => new Uint8Array(0),
  attest: async () => {
    throw new Error('unused')
  },
  handle: async () => {
    throw new Error('unused')
  },
  models: async () => [],
  status: () => ({ epoch: '1', ready: true, signingAddress: '0x0000000000000000000000000000000000000000' }),
  close: async () => {},
})

t.test('verified evidence: the ready state is set, after verification, and readiness follows', async (t) => {
  const { smi, gate: g } = gate()
  const enclave = withGpuReadyGate(fakeEnclave(), g)
  t.same(g.state(), { state: 'pending' })
  t.equal(enclave.status().ready, false, '/readyz false before the gate ran')
  const running = g.run()
  t.equal(g.run(), running, 'one run; later calls share it')
  await running
  t.equal(g.state().state, 'ready')
  t.equal(enclave.status().ready, true, '/readyz true once the GPU is ready')
  t.same(smi.calls.map((c) => c.args), [GET_READY_STATE_ARGS, SET_READY_STATE_ARGS, GET_READY_STATE_ARGS], '-grs (not ready yet), then -srs 1, then -grs')
  t.equal(smi.calls[0]!.collectedBefore, 0, 'the state is checked before any evidence is collected')
  t.ok(smi.calls.slice(1).every((c) => c.collectedBefore === 1), 'evidence was collected before the ready state was set')
  t.match(g.state(), { state: 'ready', preset: false })
})

t.test('a gateway restarted in the same boot recognises its own ready state (the tmpfs marker)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cgw-ready-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const markerPath = join(dir, 'run/cgw/gpu-ready')
  const smi = fakeSmi()
  const { gate: first } = gate({ smi, markerPath })
  await first.run()
  t.match(first.state(), { state: 'ready', preset: false })
  // The restart: same GPU (ready), same tmpfs.
  const again = fakeSmi({ initiallyReady: true })
  const warnings: string[] = []
  const { gate: second } = gate({ smi: again, markerPath, warn: (m) => void warnings.push(m) })
  await second.run()
  t.match(second.state(), { state: 'ready', preset: 'gateway' }, 'its own, from earlier this boot')
  t.equal(setCalls(again), 0, 'not set again')
  t.ok(again.calls.some((c) => c.collectedBefore === 1), 'but verified again')
  t.equal(warnings.length, 1, 'and reported')
  // No marker (a fresh tmpfs: someone else set it before any gateway ran).
  const { gate: third } = gate({ smi: fakeSmi({ initiallyReady: true }), markerPath: join(dir, 'absent') })
  t.equal(codeOf(await third.run().then(() => undefined, (x: unknown) => x)), 'ENCLAVE_GPU_READY_ALREADY_SET')
})

const setCalls = (smi: ReturnType<typeof fakeSmi>) => smi.calls.filter((c) => c.args.includes('-srs')).length

t.test('a GPU already ready before the gate: refused unless allowed; allowed, still verified and reported', async (t) => {
  const refused = fakeSmi({ initiallyReady: true })
  const { gate: g } = gate({ smi: refused })
  const e = await g.run().then(() => undefined, (x: unknown) => x)
  t.equal(codeOf(e), 'ENCLAVE_GPU_READY_ALREADY_SET', 'someone else set it')
  t.same(refused.calls.map((c) => c.args), [GET_READY_STATE_ARGS], 'nothing collected, nothing set')
  t.match(g.state(), { state: 'failed', code: 'ENCLAVE_GPU_READY_ALREADY_SET' })
  t.equal(withGpuReadyGate(fakeEnclave(), g).status().ready, false, '/readyz stays false')

  const warnings: string[] = []
  const allowed = fakeSmi({ initiallyReady: true })
  const { gate: a } = gate({ smi: allowed, allowAlreadyReady: true, warn: (m) => void warnings.push(m) })
  await a.run()
  t.match(a.state(), { state: 'ready', preset: 'allowed' }, 'the state says it was pre-set, and why it was accepted')
  t.equal(warnings.length, 1, 'and it is reported')
  t.equal(setCalls(allowed), 0, 'not set again')
  t.ok(allowed.calls.some((c) => c.collectedBefore === 1), 'but verified')

  const unverified = fakeSmi({ initiallyReady: true })
  const { gate: u } = gate({ smi: unverified, allowAlreadyReady: true, warn: () => {}, policy: parseGpuPolicy({ ...policyDoc, driverVersions: ['535.104.05'] }) })
  t.equal(codeOf(await u.run().then(() => undefined, (x: unknown) => x)), 'ENCLAVE_GPU_READY_VERIFICATION_FAILED', 'allowed pre-set, but the evidence must still pass')
  t.equal(u.ready(), false)

  const garbled = fakeSmi({ getOutput: 'Confidential Compute: unknown\n' })
  const { gate: x } = gate({ smi: garbled })
  t.equal(codeOf(await x.run().then(() => undefined, (y: unknown) => y)), 'ENCLAVE_GPU_READY_SET_FAILED', 'an answer that is neither ready nor not-ready fails closed')
  t.equal(setCalls(garbled), 0)
})

t.test('never on failure: nvidia-smi is not run and readiness stays false', async (t) => {
  const devProvider = () => createDevGpuProvider({ ca, gpus: [gpu], now: () => AT })
  const cases: [string, Partial<GpuReadyGateOptions>, string][] = [
    ['another driver than the policy allows', { policy: parseGpuPolicy({ ...policyDoc, driverVersions: ['535.104.05'] }) }, 'ENCLAVE_GPU_READY_VERIFICATION_FAILED'],
    ['a policy that requires no GPU', { policy: parseGpuPolicy({ required: false }) }, 'ENCLAVE_GPU_READY_VERIFICATION_FAILED'],
    ['no evidence at all', { provider: { name: 'nvml', collect: () => Promise.reject(new GpuCollectionError('ENCLAVE_GPU_UNAVAILABLE', 'no GPU')) } }, 'ENCLAVE_GPU_READY_EVIDENCE_UNAVAILABLE'],
    // A relayed report: it answers some other nonce than the one the gate asked with.
    ['evidence answering another nonce', { provider: { name: 'dev', collect: () => devProvider().collect(new Uint8Array(32).fill(1)) } }, 'ENCLAVE_GPU_READY_VERIFICATION_FAILED'],
  ]
  for (const [name, over, code] of cases) {
    const smi = fakeSmi()
    const { gate: g } = gate({ ...over, smi })
    const e = await g.run().then(() => undefined, (x: unknown) => x)
    t.equal(codeOf(e), code, name)
    t.equal(setCalls(smi), 0, `${name}: the ready state was never set`)
    t.match(g.state(), { state: 'failed', code }, `${name}: state says why`)
    t.equal(withGpuReadyGate(fakeEnclave(), g).status().ready, false, `${name}: /readyz stays false`)
  }

  // Dev evidence under NVIDIA's pinned roots (no dev root given): not genuine.
  const smi = fakeSmi()
  const g = createGpuReadyGate({ provider: devProvider(), policy: parseGpuPolicy(policyDoc), run: smi.run, now: () => AT })
  const e = await g.run().then(() => undefined, (x: unknown) => x)
  t.equal(codeOf(e), 'ENCLAVE_GPU_READY_VERIFICATION_FAILED', 'another root than the pinned one')
  t.equal((e as { details: { code: string } }).details.code, 'ATTESTATION_ROOT_CA_UNTRUSTED', 'details name the verifier\'s code')
  t.equal(setCalls(smi), 0)
  t.equal(g.ready(), false)
})

t.test('nvidia-smi failures leave the GPU not ready', async (t) => {
  for (const [name, o] of [
    ['-srs exits 1', { setExit: 1 }],
    ['-grs says not-ready', { getOutput: 'Confidential Compute GPUs Ready state: not-ready\n' }],
    ['nvidia-smi missing', { missing: true }],
  ] as const) {
    const smi = fakeSmi(o)
    const { gate: g } = gate({ smi })
    const e = await g.run().then(() => undefined, (x: unknown) => x)
    t.equal(codeOf(e), 'ENCLAVE_GPU_READY_SET_FAILED', name)
    t.equal(g.ready(), false, name)
  }
})
