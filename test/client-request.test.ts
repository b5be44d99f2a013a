/**
 * Encrypted requests through the client SDK to real dev-TEE gateways: the
 * streamed answer decrypts event by event and its receipt checks out (and
 * against viem's verifyReceipt); the inner request carries a `date` field;
 * an RFC 9458 relay in the path changes nothing — unless it is hostile: a
 * flipped bit or a replayed response is refused with CLIENT_RESPONSE_INVALID.
 * Engine errors come back with their status; a stream the engine breaks
 * ends in CLIENT_UPSTREAM_FAILED, never silently. A background renewal of a
 * verification that fails (the registration revoked) ends the cached one at
 * once: the next send fails with the renewal's code and sends nothing.
 */
import t from 'tap'
import { keccak256 } from 'viem'
import { decodeBhttpRequest } from '../enclave/ohttp/index.ts'
import { verifyReceipt } from '../enclave/receipts.ts'
import { createClient } from '../gateway/client/client.ts'
import { isClientError } from '../gateway/client/errors.ts'
import type { VerificationReport } from '../gateway/client/verify.ts'
import { createMemoryRegistry, MEMORY_REGISTRY_ADDRESS, MEMORY_REGISTRY_CHAIN_ID } from './helpers/memory-registry.ts'
import { loadClientPolicy, loadPolicyRoots } from '../gateway/client/policy.ts'
import { createReceiptVerifier } from '../gateway/client/receipt.ts'
import { encodeInnerRequest } from '../gateway/client/request.ts'
import { startBitFlipRelay } from './helpers/bit-flip-relay.ts'
import { devPolicyDocument, devWorld, startDevProvider, writePolicy, type DevWorld } from './helpers/dev-provider.ts'
import { expectedTokens } from './helpers/engine-server.ts'
import type { Test } from 'tap'

async function clientFor(t: Test, world: DevWorld, relay?: string) {
  const policy = await loadClientPolicy(await writePolicy(world, devPolicyDocument(world)))
  const client = createClient({ policy, roots: await loadPolicyRoots(policy), ...(relay ? { relay: () => relay } : {}) })
  t.teardown(() => client.close())
  return client
}

const chat = (content: string, extra: Record<string, unknown> = {}) => ({ model: 'test-model', messages: [{ role: 'user', content }], ...extra })
const text = (chunks: Uint8Array[]) => Buffer.concat(chunks).toString('utf8')

async function drain(content: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  for await (const c of content) out.push(c)
  return out
}

t.test('streamed answer, receipt checked (and by viem too)', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const client = await clientFor(t, world)
  const body = chat('hello client', { stream: true })
  const res = await client.send(p.url, { path: '/v1/chat/completions', body })
  t.equal(res.status, 200)
  t.match(res.contentType, /text\/event-stream/)
  const events = await drain(res.content)
  t.equal(events.length, p.engine.stats.log.at(-1)!.eventsSent, 'one chunk per SSE event')
  const deltas = events
    .map((e) => Buffer.from(e).toString('utf8'))
    .filter((e) => e.startsWith('data: {'))
    .map((e) => JSON.parse(e.slice(6)).choices[0].delta.content ?? '')
    .join('')
  t.equal(deltas, expectedTokens('hello client', 8).join(''))
  const receipt = res.receipt()!
  t.ok(receipt, 'receipt present once the stream ended')
  t.equal(receipt.fields.requestHash, keccak256(new TextEncoder().encode(JSON.stringify(body))))
  t.equal(receipt.fields.responseHash, keccak256(Buffer.concat(events)))
  t.equal(receipt.signer, res.provider.signingAddress)
  t.ok(await verifyReceipt(receipt.fields, receipt.signature, res.provider.signingAddress, receipt.domain), 'viem agrees')
})

t.test('non-streamed, completions and embeddings', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const client = await clientFor(t, world)
  for (const [path, body] of [
    ['/v1/chat/completions', chat('plain')],
    ['/v1/completions', { model: 'test-model', prompt: 'complete me' }],
    ['/v1/embeddings', { model: 'test-model', input: 'embed me' }],
  ] as const) {
    const res = await client.send(p.url, { path, body })
    const out = JSON.parse(text(await drain(res.content)))
    t.equal(res.status, 200, path)
    t.ok(out.object, `${path} answered`)
    t.ok(res.receipt(), `${path} receipt`)
  }
})

t.test('the inner request carries an RFC 9110 date', async (t) => {
  const now = new Date('2026-11-22T03:04:05Z')
  const bytes = encodeInnerRequest('https://gw.example:8443', '/v1/chat/completions', new TextEncoder().encode('{}'), now)
  const req = decodeBhttpRequest(bytes)
  t.equal(req.authority, 'gw.example:8443')
  t.equal(req.path, '/v1/chat/completions')
  const date = req.headers.find(([k]) => k === 'date')?.[1]
  t.equal(date, 'Sun, 22 Nov 2026 03:04:05 GMT')
  t.match(date!, /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$/)
})

t.test('through an honest relay: same answer, the gateway sees the relay', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const relay = await startBitFlipRelay(p.url)
  t.teardown(() => relay.close())
  const client = await clientFor(t, world, relay.url)
  const res = await client.send(p.url, { path: '/v1/chat/completions', body: chat('via relay', { stream: true }) })
  await drain(res.content)
  t.ok(res.receipt())
  t.equal(relay.stats.forwarded, 1)
})

t.test('a flipped bit in transit is refused', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const relay = await startBitFlipRelay(p.url)
  t.teardown(() => relay.close())
  const client = await clientFor(t, world, relay.url)
  for (const [where, offset] of [['in the head chunk', 40], ['mid-stream', 400]] as const) {
    relay.knobs.flipAt = offset
    let code = 'ok'
    const seen: Uint8Array[] = []
    try {
      const res = await client.send(p.url, { path: '/v1/chat/completions', body: chat(`flip ${where}`, { stream: true }) })
      for await (const c of res.content) seen.push(c)
    } catch (e) {
      code = isClientError(e) ? e.code : 'untyped'
    }
    t.equal(code, 'CLIENT_RESPONSE_INVALID', where)
  }
  t.equal(relay.stats.flipped, 2)
})

t.test('a replayed response is refused', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const relay = await startBitFlipRelay(p.url, { replay: true })
  t.teardown(() => relay.close())
  const client = await clientFor(t, world, relay.url)
  const first = await client.send(p.url, { path: '/v1/chat/completions', body: chat('first', { stream: true }) })
  await drain(first.content)
  t.ok(first.receipt(), 'the recorded exchange was genuine')
  let code = 'ok'
  try {
    const second = await client.send(p.url, { path: '/v1/chat/completions', body: chat('first', { stream: true }) })
    await drain(second.content)
  } catch (e) {
    code = isClientError(e) ? e.code : 'untyped'
  }
  t.equal(code, 'CLIENT_RESPONSE_INVALID')
  t.equal(relay.stats.replayed, 1)
})

t.test('engine errors: status passed back; a broken stream is an error', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const client = await clientFor(t, world)
  p.engine.knobs.status = 429
  const limited = await client.send(p.url, { path: '/v1/chat/completions', body: chat('busy') })
  t.equal(limited.status, 429)
  t.equal(JSON.parse(text(await drain(limited.content))).error.code, 'ENGINE_RATE_LIMITED')
  t.equal(limited.receipt(), null, 'error answers carry no receipt')
  p.engine.knobs.status = null
  p.engine.knobs.resetAfter = 2
  let code = 'ok'
  try {
    const res = await client.send(p.url, { path: '/v1/chat/completions', body: chat('cut', { stream: true }) })
    await drain(res.content)
  } catch (e) {
    code = isClientError(e) ? e.code : 'untyped'
  }
  t.equal(code, 'CLIENT_UPSTREAM_FAILED')
})

t.test('receipt checks: the first matched by address, later ones by the kept key; a wrong signer, body or high s refused', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const client = await clientFor(t, world)
  const receipts = []
  for (let i = 0; i < 3; i++) {
    const res = await client.send(p.url, { path: '/v1/chat/completions', body: chat(`r${i}`) })
    await drain(res.content)
    receipts.push({ r: res.receipt()!, provider: res.provider })
  }
  const { r, provider } = receipts[2]!
  const v = createReceiptVerifier(provider.signingAddress)
  const expect = { requestHash: r.fields.requestHash, responseHash: r.fields.responseHash, model: 'test-model', epoch: provider.epoch, domain: null }
  t.ok(await v.verify(r.json, expect), 'first (recovered key matched by address)')
  t.ok(await v.verify(r.json, expect), 'second (matched by the kept key)')
  t.ok(await v.verify(receipts[1]!.r.json, { ...expect, requestHash: receipts[1]!.r.fields.requestHash, responseHash: receipts[1]!.r.fields.responseHash }), 'another receipt of the signer')
  const codeOf = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code: string }) => e.code)
  t.equal(await codeOf(v.verify(r.json, { ...expect, responseHash: `0x${'00'.repeat(32)}` })), 'CLIENT_RECEIPT_INVALID')
  t.equal(await codeOf(v.verify(r.json, { ...expect, model: 'other' })), 'CLIENT_RECEIPT_INVALID')
  const other = receipts[1]!.r
  t.equal(await codeOf(v.verify({ ...r.json, signature: other.signature }, expect)), 'CLIENT_RECEIPT_INVALID', 'another receipt’s signature')
  // EIP-2: (r, n - s, v flipped) recovers the same key (ecrecover accepts it), but the enclave never makes it.
  const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
  const sig = r.signature.slice(2)
  const malleated = `0x${sig.slice(0, 64)}${(n - BigInt(`0x${sig.slice(64, 128)}`)).toString(16).padStart(64, '0')}${sig.slice(128) === '1b' ? '1c' : '1b'}`
  const fieldOf = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code: string; details?: { field?: string } }) => `${e.code}/${e.details?.field}`)
  t.equal(await fieldOf(v.verify({ ...r.json, signature: malleated }, expect)), 'CLIENT_RECEIPT_INVALID/signature', 'the high-s twin of a valid signature')
  // A receipt that names another signer: refused by its signature, which recovers the real key (a fresh verifier: first-receipt path).
  const other11 = `0x${'11'.repeat(20)}` as const
  t.equal(await fieldOf(createReceiptVerifier(other11).verify({ ...r.json, signer: other11 }, expect)), 'CLIENT_RECEIPT_INVALID/signature', 'another signer (first receipt)')
  t.equal(await fieldOf(createReceiptVerifier(other11).verify(r.json, expect)), 'CLIENT_RECEIPT_INVALID/signer', 'the receipt names a signer other than the verified one')
})

t.test('a failed background renewal ends the verification at once (no fail-open)', async (t) => {
  const world = await devWorld(t)
  const registry = createMemoryRegistry()
  const p = await startDevProvider(t, world)
  await p.register(registry)
  const section = { required: true, chainId: Number(MEMORY_REGISTRY_CHAIN_ID), address: MEMORY_REGISTRY_ADDRESS, rpcUrls: ['http://127.0.0.1:1'], matchWorkloadId: true }
  const policy = await loadClientPolicy(await writePolicy(world, devPolicyDocument(world, { registry: section })))
  let told: (r: VerificationReport) => void = () => undefined
  const failed = new Promise<VerificationReport>((resolve) => (told = resolve))
  const client = createClient({
    policy,
    roots: await loadPolicyRoots(policy),
    registry,
    // Always inside the renewal window: every use renews, no clock needed.
    refreshAheadMs: 24 * 3_600_000,
    onVerification: (r) => {
      if (!r.ok) told(r)
    },
  })
  t.teardown(() => client.close())
  const first = await client.verify(p.url)
  t.equal(first.report.ok, true)
  registry.remove(p.enclave.status().signingAddress)
  t.equal(await client.verify(p.url), first, 'still valid: the cached one, with a renewal started')
  t.equal((await failed).error?.code, 'CLIENT_REGISTRATION_EXPIRED')
  t.equal(client.cached(p.url), undefined, 'the cached verification ended with the failed renewal')
  const sent = p.ohttpRequests()
  let code = 'ok'
  try {
    await client.send(p.url, { path: '/v1/chat/completions', body: chat('must not be sent') })
  } catch (e) {
    code = isClientError(e) ? e.code : 'untyped'
  }
  t.equal(code, 'CLIENT_REGISTRATION_EXPIRED')
  t.equal(p.ohttpRequests(), sent, 'nothing was sent on the old verification')
})
