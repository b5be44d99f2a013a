/**
 * The GPU ready-state gate with a fake nvidia-smi runner: the ready state is
 * set only after the local GPU evidence verified and passed the GPU policy,
 * never when collection, verification or policy fails, and the enclave's
 * readiness (what /readyz reads) follows it. Dev GPUs stand in for the H100
 * behind the same provider interface; only the trust root differs.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
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

/** A fake nvidia-smi: records each call with what had happened before it. */
function fakeSmi(o: { setExit?: number; getOutput?: string; missing?: boolean } = {}) {
  const calls: { args: readonly string[]; collectedBefore: number }[] = []
  let collected = 0
  const run: RunCommand = async (file, args) => {
    calls.push({ args, collectedBefore: collected })
    if (o.missing) throw Object.assign(new Error('spawn nvidia-smi ENOENT'), { code: 'ENOENT' })
    t.equal(file, 'nvidia-smi')
    if (args.includes('-srs')) return { stdout: '', stderr: '', exitCode: o.setExit ?? 0 }
    return { stdout: o.getOutput ?? 'Confidential Compute GPUs Ready state: ready\n', stderr: '', exitCode: 0 }
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
  t.same(smi.calls.map((c) => c.args), [SET_READY_STATE_ARGS, GET_READY_STATE_ARGS], 'nvidia-smi conf-compute -srs 1, then -grs')
  t.ok(smi.calls.every((c) => c.collectedBefore === 1), 'evidence was collected before any nvidia-smi call')
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
    t.equal(smi.calls.length, 0, `${name}: nvidia-smi never ran`)
    t.match(g.state(), { state: 'failed', code }, `${name}: state says why`)
    t.equal(withGpuReadyGate(fakeEnclave(), g).status().ready, false, `${name}: /readyz stays false`)
  }

  // Dev evidence under NVIDIA's pinned roots (no dev root given): not genuine.
  const smi = fakeSmi()
  const g = createGpuReadyGate({ provider: devProvider(), policy: parseGpuPolicy(policyDoc), run: smi.run, now: () => AT })
  const e = await g.run().then(() => undefined, (x: unknown) => x)
  t.equal(codeOf(e), 'ENCLAVE_GPU_READY_VERIFICATION_FAILED', 'another root than the pinned one')
  t.equal((e as { details: { code: string } }).details.code, 'ATTESTATION_ROOT_CA_UNTRUSTED', 'details name the verifier\'s code')
  t.equal(smi.calls.length, 0)
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
