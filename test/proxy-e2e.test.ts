/**
 * The enterprise proxy end to end on loopback, driven by the official
 * `openai` package unchanged: openai → proxy → verify → OHTTP → dev-TEE
 * gateway → test engine → decrypted stream → receipt checked → audit file.
 * Failover between providers; every refusal an OpenAI-style error with its
 * code (and reason), never a 200 with an empty body; no plaintext sent to a
 * provider that failed verification; API keys and size limits.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import OpenAI from 'openai'
import { request } from 'undici'
import { generateOhttpKeyPair } from '../enclave/ohttp/index.ts'
import { receiptDomain, receiptFromJson, verifyReceipt, type ReceiptJson } from '../enclave/receipts.ts'
import { parseProxyConfig } from '../gateway/proxy/config.ts'
import { startProxy } from '../gateway/proxy/main.ts'
import { runProxy } from '../bin/commands/proxy.ts'
import type { RegistryReader } from '../contracts/registry-types.ts'
import { startBitFlipRelay } from './helpers/bit-flip-relay.ts'
import { devPolicyDocument, devWorld, startDevProvider, writePolicy, type DevWorld } from './helpers/dev-provider.ts'
import { expectedTokens } from './helpers/engine-server.ts'
import { createMemoryRegistry, MEMORY_REGISTRY_ADDRESS, MEMORY_REGISTRY_CHAIN_ID } from './helpers/memory-registry.ts'

const REGISTRY_SECTION = { required: true, chainId: Number(MEMORY_REGISTRY_CHAIN_ID), address: MEMORY_REGISTRY_ADDRESS, rpcUrls: ['http://127.0.0.1:1'], matchWorkloadId: true }

interface StackOptions {
  readonly providers: readonly (string | { url: string; relay: string })[]
  readonly policy?: Record<string, unknown>
  readonly tdx?: Record<string, unknown>
  readonly config?: Record<string, unknown>
  readonly registry?: RegistryReader
  readonly apiKey?: string
}

async function proxyStack(t: Test, world: DevWorld, o: StackOptions) {
  const policy = await writePolicy(world, devPolicyDocument(world, o.policy ?? {}, o.tdx ?? {}))
  const auditFile = join(world.dir, `audit-${Math.random().toString(36).slice(2)}.jsonl`)
  const config = parseProxyConfig({
    listen: { host: '127.0.0.1', port: 0 },
    policy,
    models: { 'test-model': { providers: o.providers } },
    audit: { file: auditFile },
    logLevel: 'silent',
    ...(o.apiKey ? { apiKeys: [o.apiKey] } : {}),
    ...o.config,
  })
  const proxy = await startProxy(config, { client: o.registry ? { registry: o.registry } : {} })
  t.teardown(() => proxy.close())
  const openai = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: o.apiKey ?? 'unused-key', maxRetries: 0 })
  const audit = async () => {
    await proxy.audit.flush()
    return (await readFile(auditFile, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
  }
  return { proxy, openai, audit, auditFile }
}

/** The error an openai call ends in: status, code and reason. */
async function apiError(p: Promise<unknown>): Promise<{ status: number | undefined; code: string | null | undefined; reason?: string }> {
  try {
    await p
  } catch (e) {
    if (e instanceof OpenAI.APIError) return { status: e.status, code: e.code, reason: (e.error as { reason?: string } | undefined)?.reason }
    throw e
  }
  return { status: 200, code: 'ok' }
}

const messages = (content: string) => [{ role: 'user' as const, content }]

t.test('openai → proxy → gateway → engine: streamed, receipt checked and audited', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const { openai, audit } = await proxyStack(t, world, { providers: [p.url] })
  const prompt = 'stream through the proxy'
  const stream = await openai.chat.completions.create({ model: 'test-model', messages: messages(prompt), stream: true })
  let text = ''
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
  t.equal(text, expectedTokens(prompt, 8).join(''))

  const lines = await audit()
  const verification = lines.find((l) => l.type === 'verification') as { report: { ok: boolean } } | undefined
  t.equal(verification?.report.ok, true, 'the verification report is in the audit file')
  const receipts = lines.filter((l) => l.type === 'receipt')
  t.equal(receipts.length, 1)
  const { fields, signature, domain } = receiptFromJson(receipts[0]!.receipt as ReceiptJson)
  t.ok(await verifyReceipt(fields, signature, p.enclave.status().signingAddress, domain), 'the audited receipt verifies')
  t.equal(fields.requestHash, receipts[0]!.requestHash)
  t.notOk(JSON.stringify(lines).includes(prompt), 'no prompt text in the audit file')
  t.notOk(JSON.stringify(lines).includes('alpha') && text.includes('alpha') && JSON.stringify(lines).includes(text), 'no completion text in the audit file')
})

t.test('non-streamed chat, completions (both ways), embeddings, models', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const { openai, proxy } = await proxyStack(t, world, { providers: [p.url] })
  const chat = await openai.chat.completions.create({ model: 'test-model', messages: messages('plain') })
  t.equal(chat.choices[0]?.message.content, expectedTokens('plain', 8).join(''))
  const completion = await openai.completions.create({ model: 'test-model', prompt: 'complete' })
  t.equal(completion.choices[0]?.text, expectedTokens('complete', 8).join(''))
  let streamed = ''
  for await (const c of await openai.completions.create({ model: 'test-model', prompt: 'complete', stream: true })) streamed += c.choices[0]?.text ?? ''
  t.equal(streamed, expectedTokens('complete', 8).join(''))
  const emb = await openai.embeddings.create({ model: 'test-model', input: 'embed' })
  t.equal(emb.data[0]?.embedding.length, 8)
  const models = await openai.models.list()
  t.same(models.data.map((m) => m.id), ['test-model'])
  const raw = await request(`${proxy.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'test-model', messages: messages('hdr') }), headers: { 'content-type': 'application/json' } })
  t.match(String(raw.headers['cgw-receipt-digest']), /^0x[0-9a-f]{64}$/, 'receipt digest header')
  await raw.body.dump()
})

t.test('failover: an engine failing, a gateway gone, a provider that does not verify', async (t) => {
  const world = await devWorld(t)
  const a = await startDevProvider(t, world)
  const b = await startDevProvider(t, world)
  const gone = await startDevProvider(t, world)
  const bad = await startDevProvider(t, world, { measurements: { mrTd: new Uint8Array(48).fill(9) } })
  const { openai } = await proxyStack(t, world, { providers: [bad.url, gone.url, a.url, b.url], tdx: { mrTd: ['00'.repeat(48)] }, config: { limits: { maxAttempts: 4 } } })
  a.engine.knobs.status = 503
  await gone.stop()
  for (let i = 0; i < 4; i++) {
    const r = await openai.chat.completions.create({ model: 'test-model', messages: messages(`f${i}`) })
    t.ok(r.choices[0]?.message.content, `request ${i} answered`)
  }
  t.equal(bad.engine.stats.requests, 0, 'the unverifiable provider never got a request')
  t.ok(b.engine.stats.requests >= 4, 'the healthy provider answered')
})

t.test('refusals: each an OpenAI-style error with its code, and nothing sent', async (t) => {
  const world = await devWorld(t)

  await t.test('no provider verifies: PROXY_VERIFICATION_FAILED with the reason', async (t) => {
    const p = await startDevProvider(t, world, { measurements: { mrTd: new Uint8Array(48).fill(3) } })
    const { openai, audit } = await proxyStack(t, world, { providers: [p.url], tdx: { mrTd: ['00'.repeat(48)] } })
    t.same(await apiError(openai.chat.completions.create({ model: 'test-model', messages: messages('secret') })), {
      status: 502,
      code: 'PROXY_VERIFICATION_FAILED',
      reason: 'CLIENT_POLICY_REJECTED',
    })
    t.same(await apiError(openai.chat.completions.create({ model: 'test-model', messages: messages('secret'), stream: true })), {
      status: 502,
      code: 'PROXY_VERIFICATION_FAILED',
      reason: 'CLIENT_POLICY_REJECTED',
    })
    t.equal(p.ohttpRequests(), 0, 'nothing encrypted was sent')
    t.equal(p.engine.stats.requests, 0)
    t.ok((await audit()).some((l) => l.type === 'verification' && (l.report as { ok: boolean }).ok === false), 'the failed report is audited')
  })

  await t.test('key config differs from the quote', async (t) => {
    const other = await generateOhttpKeyPair(7)
    const p = await startDevProvider(t, world, { alterBundle: (b) => ({ ...b, keyConfig: Buffer.from(other.keyConfig).toString('base64') }) })
    const { openai } = await proxyStack(t, world, { providers: [p.url] })
    t.same(await apiError(openai.chat.completions.create({ model: 'test-model', messages: messages('secret') })), { status: 502, code: 'PROXY_VERIFICATION_FAILED', reason: 'CLIENT_BINDING_MISMATCH' })
    t.equal(p.ohttpRequests(), 0)
  })

  for (const [name, reason, setup] of [
    ['not registered', 'CLIENT_NOT_REGISTERED', async () => undefined],
    ['registration expired', 'CLIENT_REGISTRATION_EXPIRED', async (p: Awaited<ReturnType<typeof startDevProvider>>, r: ReturnType<typeof createMemoryRegistry>) => {
      const now = BigInt(Math.floor(Date.now() / 1000))
      await p.register(r, { registeredAt: now - 7200n, expiresAt: now - 1n })
    }],
  ] as const) {
    await t.test(name, async (t) => {
      const p = await startDevProvider(t, world)
      const registry = createMemoryRegistry()
      await setup(p, registry)
      const { openai } = await proxyStack(t, world, { providers: [p.url], policy: { registry: REGISTRY_SECTION }, registry })
      t.same(await apiError(openai.chat.completions.create({ model: 'test-model', messages: messages('secret') })), { status: 502, code: 'PROXY_VERIFICATION_FAILED', reason })
      t.equal(p.ohttpRequests(), 0)
      t.equal(p.engine.stats.requests, 0)
    })
  }

  await t.test('registered: answered, receipts in the registry’s domain', async (t) => {
    const registry = createMemoryRegistry()
    const p = await startDevProvider(t, world, { receiptDomain: receiptDomain({ chainId: registry.chainId, registry: registry.address }) })
    await p.register(registry)
    const { openai, audit } = await proxyStack(t, world, { providers: [p.url], policy: { registry: REGISTRY_SECTION }, registry })
    t.ok((await openai.chat.completions.create({ model: 'test-model', messages: messages('domain') })).choices[0]?.message.content)
    const receipt = (await audit()).find((l) => l.type === 'receipt')!.receipt as ReceiptJson
    t.equal(receipt.domain.chainId, registry.chainId.toString())
  })

  await t.test('registered, but receipts outside the registry’s domain: refused', async (t) => {
    const p = await startDevProvider(t, world)
    const registry = createMemoryRegistry()
    await p.register(registry)
    const { openai } = await proxyStack(t, world, { providers: [p.url], policy: { registry: REGISTRY_SECTION }, registry })
    t.same(await apiError(openai.chat.completions.create({ model: 'test-model', messages: messages('domain') })), {
      status: 502,
      code: 'PROXY_RESPONSE_REJECTED',
      reason: 'CLIENT_RECEIPT_INVALID',
    })
  })

  await t.test('unknown model: PROXY_NO_PROVIDER', async (t) => {
    const p = await startDevProvider(t, world)
    const { openai } = await proxyStack(t, world, { providers: [p.url] })
    t.same(await apiError(openai.chat.completions.create({ model: 'other-model', messages: messages('x') })), { status: 503, code: 'PROXY_NO_PROVIDER', reason: undefined })
  })

  await t.test('every provider rate-limited: PROXY_UPSTREAM_RATE_LIMITED', async (t) => {
    const p = await startDevProvider(t, world)
    p.engine.knobs.status = 429
    p.engine.knobs.retryAfter = '7'
    const { openai } = await proxyStack(t, world, { providers: [p.url] })
    t.same(await apiError(openai.chat.completions.create({ model: 'test-model', messages: messages('x') })), { status: 429, code: 'PROXY_UPSTREAM_RATE_LIMITED', reason: 'ENGINE_RATE_LIMITED' })
  })

  await t.test('every provider failing: PROXY_UPSTREAM_FAILED', async (t) => {
    const p = await startDevProvider(t, world)
    p.engine.knobs.status = 500
    const { openai } = await proxyStack(t, world, { providers: [p.url] })
    const e = await apiError(openai.chat.completions.create({ model: 'test-model', messages: messages('x') }))
    t.equal(e.status, 502)
    t.equal(e.code, 'PROXY_UPSTREAM_FAILED')
  })

  await t.test('a flipped bit in transit: PROXY_RESPONSE_REJECTED; in a stream, an error event', async (t) => {
    const p = await startDevProvider(t, world)
    const relay = await startBitFlipRelay(p.url, { flipAt: 40 })
    t.teardown(() => relay.close())
    const { openai } = await proxyStack(t, world, { providers: [{ url: p.url, relay: relay.url }] })
    t.same(await apiError(openai.chat.completions.create({ model: 'test-model', messages: messages('x') })), { status: 502, code: 'PROXY_RESPONSE_REJECTED', reason: 'CLIENT_RESPONSE_INVALID' })
    relay.knobs.flipAt = 400
    const streamed = async () => {
      for await (const _ of await openai.chat.completions.create({ model: 'test-model', messages: messages('y'), stream: true }));
    }
    const e = await apiError(streamed())
    t.equal(e.code, 'PROXY_RESPONSE_REJECTED', 'the stream ends in an APIError')
    t.equal(e.reason, 'CLIENT_RESPONSE_INVALID')
  })

  await t.test('a replayed response: PROXY_RESPONSE_REJECTED', async (t) => {
    const p = await startDevProvider(t, world)
    const relay = await startBitFlipRelay(p.url, { replay: true })
    t.teardown(() => relay.close())
    const { openai } = await proxyStack(t, world, { providers: [{ url: p.url, relay: relay.url }] })
    t.ok((await openai.chat.completions.create({ model: 'test-model', messages: messages('once') })).choices[0])
    t.same(await apiError(openai.chat.completions.create({ model: 'test-model', messages: messages('once') })), { status: 502, code: 'PROXY_RESPONSE_REJECTED', reason: 'CLIENT_RESPONSE_INVALID' })
  })
})

t.test('a caller that goes away mid-stream cancels the engine request', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  p.engine.knobs.tokenDelayMs = 20
  p.engine.knobs.tokens = 500
  const { openai } = await proxyStack(t, world, { providers: [p.url] })
  const stream = await openai.chat.completions.create({ model: 'test-model', messages: messages('long'), stream: true })
  let n = 0
  for await (const _ of stream) if (++n === 3) break
  await p.engine.until((s) => s.aborted >= 1)
  t.equal(p.engine.stats.aborted, 1, 'the engine saw the cancellation')
})

t.test('API keys and size limits', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const { openai, proxy } = await proxyStack(t, world, { providers: [p.url], apiKey: 'sk-internal-0123456789', config: { limits: { bodyLimitBytes: 2048, maxResponseBytes: 400 } } })
  const wrong = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: 'sk-wrong-key-000', maxRetries: 0 })
  t.same(await apiError(wrong.models.list()), { status: 401, code: 'PROXY_UNAUTHORIZED', reason: undefined })
  t.same(await apiError(openai.models.list()), { status: 200, code: 'ok' })
  t.same(await apiError(openai.chat.completions.create({ model: 'test-model', messages: messages('x'.repeat(4096)) })), { status: 413, code: 'PROXY_BODY_TOO_LARGE', reason: undefined })
  t.same(await apiError(openai.chat.completions.create({ model: 'test-model', messages: messages('big'), max_tokens: 64 })), { status: 502, code: 'PROXY_RESPONSE_TOO_LARGE', reason: undefined })
  const big = async () => {
    for await (const _ of await openai.chat.completions.create({ model: 'test-model', messages: messages('big'), max_tokens: 64, stream: true }));
  }
  t.equal((await apiError(big())).code, 'PROXY_RESPONSE_TOO_LARGE')
  const notJson = await request(`${proxy.url}/v1/chat/completions`, { method: 'POST', body: '{not json', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-internal-0123456789' } })
  t.equal(notJson.statusCode, 400)
  t.equal(((await notJson.body.json()) as { error: { code: string } }).error.code, 'PROXY_BAD_REQUEST')
  const noModel = await request(`${proxy.url}/v1/chat/completions`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-internal-0123456789' } })
  t.equal(((await noModel.body.json()) as { error: { code: string } }).error.code, 'PROXY_BAD_REQUEST')
  const missing = await request(`${proxy.url}/v2/nothing`, { headers: { authorization: 'Bearer sk-internal-0123456789' } })
  t.equal(((await missing.body.json()) as { error: { code: string } }).error.code, 'PROXY_NOT_FOUND')
})

t.test('cgw proxy --config: listens on loopback, serves, stops', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const policy = await writePolicy(world, devPolicyDocument(world))
  const configFile = join(world.dir, 'proxy.json')
  await writeFile(configFile, JSON.stringify({ listen: { port: 0 }, policy, models: { 'test-model': { providers: [p.url] } }, audit: { file: 'audit.jsonl' }, logLevel: 'silent' }))
  const out: string[] = []
  const err: string[] = []
  const io = { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s) }
  let answered = ''
  const code = await runProxy(['--config', configFile], io, {
    until: async (proxy) => {
      t.match(proxy.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'loopback by default')
      const openai = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: 'x', maxRetries: 0 })
      answered = (await openai.chat.completions.create({ model: 'test-model', messages: messages('cli') })).choices[0]?.message.content ?? ''
    },
  })
  t.equal(code, 0, err.join(''))
  t.match(out.join(''), /listening on http:\/\/127\.0\.0\.1:/)
  t.equal(answered, expectedTokens('cli', 8).join(''))
  t.equal(await runProxy([], io), 1, 'no config')
  t.equal(await runProxy(['--config', join(world.dir, 'missing.json')], io), 1, 'unreadable config')
})
