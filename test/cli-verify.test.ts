/**
 * `cgw verify` against real dev-TEE gateways, in process: the table and the
 * JSON report, and the exit code of each failure (policy 4, not genuine 3,
 * not registered 7, unreachable 8, usage 1).
 */
import t from 'tap'
import { main } from '../bin/cgw.ts'
import { runVerify } from '../bin/commands/verify.ts'
import { generateOhttpKeyPair } from '../enclave/ohttp/index.ts'
import { devPolicyDocument, devWorld, startDevProvider, writePolicy } from './helpers/dev-provider.ts'
import { createMemoryRegistry, MEMORY_REGISTRY_ADDRESS, MEMORY_REGISTRY_CHAIN_ID } from './helpers/memory-registry.ts'

const REGISTRY_SECTION = { required: true, chainId: Number(MEMORY_REGISTRY_CHAIN_ID), address: MEMORY_REGISTRY_ADDRESS, rpcUrls: ['http://rpc.invalid'], matchWorkloadId: true }

function io() {
  const out: string[] = []
  const err: string[] = []
  return { io: { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s) }, out: () => out.join(''), err: () => err.join('') }
}

t.test('an accepted provider: table and JSON', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world, { measurements: { mrTd: new Uint8Array(48).fill(1) } })
  const policy = await writePolicy(world, devPolicyDocument(world, {}, { mrTd: ['01'.repeat(48)] }))
  const c = io()
  t.equal(await main(['verify', p.url, '--policy', policy], c.io), 0)
  const table = c.out()
  t.match(table, /^Result\s+ACCEPTED$/m)
  t.match(table, /^\s+mrTd\s+0101.*\[allow-listed\]$/m)
  t.match(table, /^\s+rtmr3\s+.*\[any: not pinned\]$/m)
  t.match(table, /^TCB status\s+UpToDate; advisories: none$/m)
  t.match(table, /^GPU\s+no GPU evidence \(the policy says none is required\)$/m)
  t.match(table, /^Binding\s+REPORTDATA binds/m)
  t.match(table, /^On-chain\s+not checked/m)
  const j = io()
  t.equal(await runVerify([p.url, '--policy', policy, '--json'], j.io), 0)
  const doc = JSON.parse(j.out())
  t.equal(doc.ok, true)
  t.equal(doc.report.stage, 'accepted')
  t.equal(doc.report.evidence.signingAddress, p.enclave.status().signingAddress)
})

t.test('exit codes: policy 4, not genuine 3, unregistered 7, unreachable 8, usage 1', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world, { measurements: { mrTd: new Uint8Array(48).fill(2) } })
  const other = await generateOhttpKeyPair(3)
  const swapped = await startDevProvider(t, world, { alterBundle: (b) => ({ ...b, keyConfig: Buffer.from(other.keyConfig).toString('base64') }) })
  const pinned = await writePolicy(world, devPolicyDocument(world, {}, { mrTd: ['01'.repeat(48)] }))
  const open = await writePolicy(world, devPolicyDocument(world))
  const onChain = await writePolicy(world, devPolicyDocument(world, { registry: REGISTRY_SECTION }))
  const registry = createMemoryRegistry()
  const deps = { registryFactory: () => registry }

  const rejected = io()
  t.equal(await runVerify([p.url, '--policy', pinned], rejected.io), 4)
  t.match(rejected.out(), /^Result\s+GENUINE, REJECTED BY POLICY$/m)
  t.match(rejected.out(), /^\s+mrTd\s+0202.*\[NOT ALLOWED\]$/m)
  t.match(rejected.out(), /mismatch\s+POLICY_MRTD_NOT_ALLOWED/)

  const bound = io()
  t.equal(await runVerify([swapped.url, '--policy', open], bound.io), 3)
  t.match(bound.out(), /CLIENT_BINDING_MISMATCH/)

  const unregistered = io()
  t.equal(await runVerify([p.url, '--policy', onChain], unregistered.io, deps), 7)
  t.match(unregistered.out(), /CLIENT_NOT_REGISTERED/)
  await p.register(registry)
  const registered = io()
  t.equal(await runVerify([p.url, '--policy', onChain], registered.io, deps), 0)
  t.match(registered.out(), /^On-chain\s+registered on chain 31337/m)

  const down = io()
  t.equal(await runVerify(['http://127.0.0.1:1', '--policy', open, '--json'], down.io), 8)
  t.equal(JSON.parse(down.out()).error.code, 'CLIENT_EVIDENCE_UNAVAILABLE')

  const baseline = io()
  t.equal(await runVerify([p.url, '--collateral', world.collateralFile], baseline.io), 3, 'the baseline takes Intel’s root only')
  t.match(baseline.out(), /CLIENT_QUOTE_INVALID/)

  const usage = io()
  t.equal(await runVerify([p.url], usage.io), 1, 'no policy and no collateral')
  t.equal(await runVerify([], io().io), 1)
  t.equal(await runVerify([p.url, '--bogus'], io().io), 1)
  t.equal(await runVerify([p.url, '--policy', '/nonexistent/policy.json'], io().io), 1)
})
