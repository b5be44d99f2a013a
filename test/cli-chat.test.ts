/**
 * `cgw chat` against real dev-TEE gateways, in process: the answer streams
 * to stdout and the verified receipt follows; discovery by model from a
 * registry; a provider that fails verification gets nothing and the exit
 * code says why. --model is required with a URL too (the gateway's model
 * list is not attested, so it never picks the model); --relay sends the
 * encrypted request through an RFC 9458 relay, and a relay that tampers is
 * caught.
 */
import t from 'tap'
import { main } from '../bin/cgw.ts'
import { runChat } from '../bin/commands/chat.ts'
import { receiptDomain } from '../enclave/receipts.ts'
import { startBitFlipRelay } from './helpers/bit-flip-relay.ts'
import { devPolicyDocument, devWorld, startDevProvider, writePolicy } from './helpers/dev-provider.ts'
import { expectedTokens } from './helpers/engine-server.ts'
import { createMemoryRegistry, MEMORY_REGISTRY_ADDRESS, MEMORY_REGISTRY_CHAIN_ID } from './helpers/memory-registry.ts'

function io() {
  const out: string[] = []
  const err: string[] = []
  return { io: { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s) }, out: () => out.join(''), err: () => err.join(''), chunks: out }
}

t.test('chat with a gateway URL: streamed answer, then the receipt', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const policy = await writePolicy(world, devPolicyDocument(world))
  const c = io()
  t.equal(await main(['chat', p.url, '--model', 'test-model', 'hello from the terminal', '--policy', policy], c.io), 0, c.err())
  const answer = expectedTokens('hello from the terminal', 8).join('')
  t.ok(c.out().startsWith(answer), 'the answer first')
  t.ok(c.chunks.length >= 8, 'printed as it streamed')
  t.match(c.out(), /--- receipt \(verified\) ---/)
  t.match(c.out(), new RegExp(`signer\\s+${p.enclave.status().signingAddress}`))
  t.match(c.out(), /model\s+test-model/)
  const j = io()
  t.equal(await runChat([p.url, 'json please', '--model', 'test-model', '--policy', policy, '--json', '--max-tokens', '3'], j.io), 0)
  const doc = JSON.parse(j.out())
  t.equal(doc.answer, expectedTokens('json please', 3).join(''))
  t.equal(doc.receipt.signer, p.enclave.status().signingAddress)
})

t.test('chat --model: discovered on-chain, first verifying provider answers', async (t) => {
  const world = await devWorld(t)
  const registry = createMemoryRegistry()
  const domain = receiptDomain({ chainId: registry.chainId, registry: registry.address })
  const bad = await startDevProvider(t, world, { measurements: { mrTd: new Uint8Array(48).fill(4) }, receiptDomain: domain })
  const good = await startDevProvider(t, world, { receiptDomain: domain })
  await bad.register(registry, { enclaveId: `0x${'01'.repeat(32)}` })
  await good.register(registry, { enclaveId: `0x${'02'.repeat(32)}` })
  const policy = await writePolicy(
    world,
    devPolicyDocument(world, { registry: { required: true, chainId: Number(MEMORY_REGISTRY_CHAIN_ID), address: MEMORY_REGISTRY_ADDRESS, rpcUrls: ['http://rpc.invalid'], matchWorkloadId: true } }, { mrTd: ['00'.repeat(48)] }),
  )
  const c = io()
  t.equal(await runChat(['--model', 'test-model', 'who answers?', '--policy', policy], c.io, { registryFactory: () => registry }), 0, c.err())
  t.match(c.out(), /--- receipt \(verified\) ---/)
  t.match(c.out(), /domain\s+chain 31337/)
  t.equal(bad.engine.stats.requests, 0, 'the provider that failed verification got nothing')
  t.equal(good.engine.stats.requests, 1)
})

t.test('chat refused: exit code and report, nothing sent', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world, { measurements: { mrTd: new Uint8Array(48).fill(6) } })
  const policy = await writePolicy(world, devPolicyDocument(world, {}, { mrTd: ['00'.repeat(48)] }))
  const c = io()
  t.equal(await runChat([p.url, 'must not be sent', '--model', 'test-model', '--policy', policy], c.io), 4)
  t.match(c.err(), /CLIENT_POLICY_REJECTED/)
  t.equal(c.out(), '')
  t.same(p.engine.stats.log, [], 'nothing reached the engine')
  t.equal(p.ohttpRequests(), 0)
  t.equal(await runChat(['only a prompt'], io().io), 1)
})

t.test('chat with a URL and no --model: refused before anything is asked of the gateway', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const policy = await writePolicy(world, devPolicyDocument(world))
  const c = io()
  t.equal(await runChat([p.url, 'which model?', '--policy', policy, '--json'], c.io), 1)
  t.equal(JSON.parse(c.out()).error.code, 'CLIENT_CONFIG_INVALID')
  t.same(p.engine.stats.log, [], 'the unattested model list was not consulted')
  t.equal(p.ohttpRequests(), 0)
})

t.test('chat --relay: through an RFC 9458 relay; a tampering relay is caught', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const policy = await writePolicy(world, devPolicyDocument(world))
  const relay = await startBitFlipRelay(p.url)
  t.teardown(() => relay.close())
  const c = io()
  t.equal(await runChat([p.url, '--model', 'test-model', 'via the relay', '--policy', policy, '--relay', relay.url], c.io), 0, c.err())
  t.ok(c.out().startsWith(expectedTokens('via the relay', 8).join('')))
  t.match(c.out(), /--- receipt \(verified\) ---/)
  t.equal(relay.stats.forwarded, 1, 'the request went through the relay')
  relay.knobs.flipAt = 400
  const bad = io()
  t.equal(await runChat([p.url, '--model', 'test-model', 'tampered', '--policy', policy, '--relay', relay.url, '--json'], bad.io), 9)
  t.equal(JSON.parse(bad.out()).error.code, 'CLIENT_RESPONSE_INVALID')
  t.equal(await runChat([p.url, '--model', 'test-model', 'x', '--policy', policy, '--relay', 'ftp://relay.example/'], io().io), 1, 'a relay must be http(s)')
})
