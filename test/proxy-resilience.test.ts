/**
 * The proxy when things around it go wrong, each failure closed with its
 * own code and nothing sent that should not be:
 *
 * - stopping: a socket that connected and never sent a request, answers in
 *   flight (they finish), a stream that never ends (cut after the grace);
 * - a caller that disconnects mid-request: no provider cooled down, no
 *   refusal recorded, no next provider tried;
 * - a background re-verification that fails (registration revoked): the
 *   provider is not used again on its old verification — the pool fails
 *   over, or the caller gets PROXY_VERIFICATION_FAILED with the reason;
 * - the audit file removed or failing to write: PROXY_AUDIT_UNAVAILABLE,
 *   /readyz says so, no further request leaves the proxy;
 * - discovery while the registry is down or on another chain:
 *   PROXY_REGISTRY_UNAVAILABLE with the client's code, not PROXY_NO_PROVIDER;
 * - a relay named per discovered model.
 *
 * Nothing here bounds wall-clock time: without the fix, close() with a
 * silent socket open never resolves, and the test runner's timeout is what
 * reports it.
 */
import { once } from 'node:events'
import { rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import OpenAI from 'openai'
import { request } from 'undici'
import type { Address } from 'viem'
import { runProxy } from '../bin/commands/proxy.ts'
import type { RegistryReader } from '../contracts/registry-types.ts'
import { receiptDomain } from '../enclave/receipts.ts'
import { createClient, relayTarget, type ClientFromFileOptions, type ClientResponse, type ConfidentialClient, type SendOptions } from '../gateway/client/client.ts'
import { ClientError } from '../gateway/client/errors.ts'
import { loadClientPolicy, loadPolicyRoots } from '../gateway/client/policy.ts'
import { createFallbackRegistryReader } from '../gateway/client/registry.ts'
import type { VerificationReport } from '../gateway/client/verify.ts'
import { viemRegistryFactory } from '../gateway/client/viem-registry.ts'
import { openAuditLog, type AuditFile, type AuditLog } from '../gateway/proxy/audit.ts'
import { parseProxyConfig } from '../gateway/proxy/config.ts'
import { startProxy, type RunningProxy } from '../gateway/proxy/main.ts'
import type { ProviderPool } from '../gateway/proxy/pool.ts'
import { buildProxy } from '../gateway/proxy/server.ts'
import { startBitFlipRelay } from './helpers/bit-flip-relay.ts'
import { devPolicyDocument, devWorld, startDevProvider, writePolicy, type DevWorld } from './helpers/dev-provider.ts'
import { expectedTokens } from './helpers/engine-server.ts'
import { createMemoryRegistry, MEMORY_REGISTRY_ADDRESS, MEMORY_REGISTRY_CHAIN_ID, type MemoryRegistry } from './helpers/memory-registry.ts'

const REGISTRY_SECTION = { required: true, chainId: Number(MEMORY_REGISTRY_CHAIN_ID), address: MEMORY_REGISTRY_ADDRESS, rpcUrls: ['http://127.0.0.1:1'], matchWorkloadId: true }

interface StackOptions {
  readonly models: Record<string, unknown>
  readonly policy?: Record<string, unknown>
  readonly limits?: Record<string, unknown>
  readonly client?: ClientFromFileOptions
}

async function proxyStack(t: Test, world: DevWorld, o: StackOptions): Promise<{ proxy: RunningProxy; openai: OpenAI; auditFile: string }> {
  const policy = await writePolicy(world, devPolicyDocument(world, o.policy ?? {}))
  const auditFile = join(world.dir, `audit-${Math.random().toString(36).slice(2)}.jsonl`)
  const config = parseProxyConfig({ listen: { host: '127.0.0.1', port: 0 }, policy, models: o.models, audit: { file: auditFile }, logLevel: 'silent', ...(o.limits ? { limits: o.limits } : {}) })
  const proxy = await startProxy(config, { client: o.client ?? {} })
  t.teardown(() => proxy.close())
  return { proxy, openai: new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: 'unused-key', maxRetries: 0 }), auditFile }
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
const codeOf = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string }) => e.code ?? 'untyped')

t.test('stopping', async (t) => {
  const world = await devWorld(t)

  await t.test('a socket that never sent a request does not hold close() up', async (t) => {
    const p = await startDevProvider(t, world)
    const { proxy } = await proxyStack(t, world, { models: { 'test-model': { providers: [p.url] } } })
    const accepted = once(proxy.server.server, 'connection')
    const silent = connect((proxy.server.server.address() as AddressInfo).port, '127.0.0.1')
    silent.on('error', () => undefined)
    await accepted
    let received = ''
    silent.on('data', (d: Buffer) => void (received += d.toString('latin1')))
    const closed = once(silent, 'close')
    await proxy.close()
    await closed
    // Left alone, it would hold close() up: Node stops enforcing its headers timeout once the server closes.
    t.equal(received, '', 'closed by the proxy without an answer')
  })

  await t.test('an answer in flight finishes; then the proxy stops', async (t) => {
    const p = await startDevProvider(t, world)
    p.engine.knobs.tokens = 12
    p.engine.knobs.tokenDelayMs = 5
    const { proxy, openai } = await proxyStack(t, world, { models: { 'test-model': { providers: [p.url] } } })
    const stream = await openai.chat.completions.create({ model: 'test-model', messages: messages('drain'), stream: true })
    let text = ''
    let closing: Promise<void> | undefined
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? ''
      closing ??= proxy.close()
    }
    await closing
    t.equal(text, expectedTokens('drain', 12).join(''), 'the whole answer, [DONE] included')
  })

  await t.test('a stream that never ends is cut after the grace', async (t) => {
    const p = await startDevProvider(t, world)
    p.engine.knobs.stallAfter = 2
    t.teardown(() => {
      p.engine.knobs.stallAfter = null
      p.engine.release()
    })
    const { proxy, openai } = await proxyStack(t, world, { models: { 'test-model': { providers: [p.url] } }, limits: { shutdownGraceMs: 1 } })
    const stream = await openai.chat.completions.create({ model: 'test-model', messages: messages('stall'), stream: true })
    const read = codeOf(
      (async () => {
        for await (const _ of stream);
      })(),
    )
    await proxy.close()
    t.not(await read, 'ok', 'the caller sees the stream cut, never a [DONE]')
  })
})

t.test('a background re-verification that fails stops use of the provider at once', async (t) => {
  const world = await devWorld(t)
  const registry = createMemoryRegistry()
  const domain = receiptDomain({ chainId: registry.chainId, registry: registry.address })
  const a = await startDevProvider(t, world, { receiptDomain: domain })
  const b = await startDevProvider(t, world, { receiptDomain: domain })
  await a.register(registry)
  await b.register(registry)
  let told: (r: VerificationReport) => void = () => undefined
  const failed = new Promise<VerificationReport>((resolve) => (told = resolve))
  const { proxy, openai } = await proxyStack(t, world, {
    models: { 'test-model': { providers: [a.url, b.url] }, solo: { providers: [a.url] } },
    policy: { registry: REGISTRY_SECTION },
    client: {
      registry,
      // Every use renews in the background, so the test needs no clock to reach the renewal window.
      refreshAheadMs: 24 * 3_600_000,
      onVerification: (r) => {
        if (!r.ok && r.provider === a.url) told(r)
      },
    },
  })
  t.ok(proxy.client.cached(a.url) && proxy.client.cached(b.url), 'both verified ahead of the first request')

  registry.remove(a.enclave.status().signingAddress)
  const sentToA = a.ohttpRequests()
  await proxy.client.verify(a.url) // still valid: answered from the cache, renewal started
  const report = await failed
  t.equal(report.error?.code, 'CLIENT_REGISTRATION_EXPIRED', 'the renewal failed on the registry')
  t.equal(proxy.client.cached(a.url), undefined, 'the old verification is gone with it')

  const sentToB = b.ohttpRequests()
  for (let i = 0; i < 4; i++) {
    const r = await openai.chat.completions.create({ model: 'test-model', messages: messages(`after ${i}`) })
    t.equal(r.choices[0]?.message.content, expectedTokens(`after ${i}`, 8).join(''))
  }
  t.equal(b.ohttpRequests() - sentToB, 4, 'the pool failed over to the provider that still verifies')
  t.same(await apiError(openai.chat.completions.create({ model: 'solo', messages: messages('secret') })), {
    status: 502,
    code: 'PROXY_VERIFICATION_FAILED',
    reason: 'CLIENT_REGISTRATION_EXPIRED',
  })
  t.equal(a.ohttpRequests(), sentToA, 'no request reached the revoked provider')
})

t.test('a caller that disconnects cools no provider down and records no refusal', async (t) => {
  // A client whose send (or whose buffered answer) fails only because the caller's signal was aborted:
  // exactly what the real client does when the proxy's caller goes away mid-request.
  const aborted = (signal: AbortSignal | undefined) =>
    new Promise<never>((_resolve, reject) => {
      const fail = () => reject(new ClientError('CLIENT_UPSTREAM_FAILED', 'the gateway could not be reached', { details: { reason: 'ABORT_ERR' } }))
      if (signal?.aborted) fail()
      else signal?.addEventListener('abort', fail, { once: true })
    })
  for (const where of ['send', 'buffered body'] as const) {
    await t.test(`while in ${where}`, async (t) => {
      const sent: string[] = []
      let ended: () => void = () => undefined
      const over = new Promise<void>((resolve) => (ended = resolve))
      const client = {
        send: async (url: string, o: SendOptions): Promise<ClientResponse> => {
          sent.push(url)
          if (where === 'send') {
            try {
              return await aborted(o.signal)
            } finally {
              setImmediate(ended)
            }
          }
          return {
            status: 200,
            contentType: 'application/json',
            content: {
              async *[Symbol.asyncIterator]() {
                try {
                  yield await aborted(o.signal)
                } finally {
                  setImmediate(ended)
                }
              },
            },
            receipt: () => null,
          } as unknown as ClientResponse
        },
      } as unknown as ConfidentialClient
      const failed: string[] = []
      const pool: ProviderPool = {
        models: ['test-model'],
        candidates: async () => [{ url: 'http://a.invalid' }, { url: 'http://b.invalid' }],
        failed: (url) => void failed.push(url),
        succeeded: () => undefined,
        warm: async () => undefined,
      }
      const refusals: unknown[] = []
      const audit = { file: 'memory', status: () => ({ ok: true }), refusal: (r: unknown) => void refusals.push(r), receipt: async () => undefined } as unknown as AuditLog
      const config = parseProxyConfig({ policy: 'unused.json', models: { 'test-model': { providers: ['http://a.invalid', 'http://b.invalid'] } }, audit: { file: 'unused.jsonl' }, logLevel: 'silent' })
      const app = buildProxy({ config, client, pool, audit })
      t.teardown(() => app.close())
      const base = await app.listen({ host: '127.0.0.1', port: 0 })
      const ac = new AbortController()
      const req = request(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'test-model', messages: messages('gone') }), signal: ac.signal })
      req.catch(() => undefined)
      while (sent.length === 0) await new Promise((resolve) => setTimeout(resolve, 5))
      ac.abort()
      await over
      t.same(sent, ['http://a.invalid'], 'no next provider tried for a caller that is gone')
      t.same(failed, [], 'no provider cooled down')
      t.same(refusals, [], 'no refusal on record')
    })
  }
})

t.test('audit file removed: requests refused, /readyz says why, nothing sent', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const { proxy, openai, auditFile } = await proxyStack(t, world, { models: { 'test-model': { providers: [p.url] } } })
  const ready = async () => {
    const r = await request(`${proxy.url}/readyz`)
    return { status: r.statusCode, body: (await r.body.json()) as { status: string; checks: { audit: { ok: boolean; code?: string; reason?: string } } } }
  }
  t.equal((await ready()).status, 200)
  t.ok((await openai.chat.completions.create({ model: 'test-model', messages: messages('audited') })).choices[0])
  await proxy.audit.flush()

  await rm(auditFile)
  const streamed = async () => {
    for await (const _ of await openai.chat.completions.create({ model: 'test-model', messages: messages('unrecorded'), stream: true }));
  }
  const e = await apiError(streamed())
  t.same([e.code, e.reason], ['PROXY_AUDIT_UNAVAILABLE', 'AUDIT_FILE_REMOVED'], 'the stream in flight ends in an error, not [DONE]')

  const sent = p.ohttpRequests()
  t.same(await apiError(openai.chat.completions.create({ model: 'test-model', messages: messages('refused') })), {
    status: 503,
    code: 'PROXY_AUDIT_UNAVAILABLE',
    reason: 'AUDIT_FILE_REMOVED',
  })
  t.equal(p.ohttpRequests(), sent, 'nothing left the proxy while it could not audit')
  const r = await ready()
  t.equal(r.status, 503)
  t.same(r.body.checks.audit, { ok: false, code: 'PROXY_AUDIT_UNAVAILABLE', reason: 'AUDIT_FILE_REMOVED' })
  t.equal(await codeOf(proxy.audit.flush()), 'PROXY_AUDIT_UNAVAILABLE')
})

t.test('audit write fails (injected ENOSPC): the answer is withheld, later requests refused', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const policyPath = await writePolicy(world, devPolicyDocument(world))
  const failing: AuditFile = {
    writeFile: async () => {
      throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })
    },
    stat: async () => ({ nlink: 1 }),
    close: async () => undefined,
  }
  const failures: string[] = []
  const audit = await openAuditLog(join(world.dir, 'never.jsonl'), { open: async () => failing, onFailure: (reason) => void failures.push(reason) })
  const policy = await loadClientPolicy(policyPath)
  const client = createClient({ policy, roots: await loadPolicyRoots(policy) })
  const config = parseProxyConfig({ policy: policyPath, models: { 'test-model': { providers: [p.url] } }, audit: { file: audit.file }, logLevel: 'silent' })
  const app = buildProxy({ config, client, audit })
  t.teardown(async () => {
    await app.close()
    await client.close()
    await audit.close()
  })
  const res = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: 'test-model', messages: messages('withheld') } })
  t.equal(res.statusCode, 503)
  t.same(res.json().error.code, 'PROXY_AUDIT_UNAVAILABLE')
  t.same(res.json().error.reason, 'ENOSPC')
  t.same(failures, ['ENOSPC'], 'told once')
  t.same(audit.status(), { ok: false, reason: 'ENOSPC' })
  const sent = p.ohttpRequests()
  const again = await app.inject({ method: 'POST', url: '/v1/embeddings', payload: { model: 'test-model', input: 'x' } })
  t.equal(again.json().error.code, 'PROXY_AUDIT_UNAVAILABLE')
  t.equal(p.ohttpRequests(), sent)
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503)
})

t.test('cgw proxy refuses to run without a writable audit file', async (t) => {
  const world = await devWorld(t)
  const policy = await writePolicy(world, devPolicyDocument(world))
  const configFile = join(world.dir, 'proxy-noaudit.json')
  await writeFile(configFile, JSON.stringify({ listen: { port: 0 }, policy, models: { m: { providers: ['http://127.0.0.1:1'] } }, audit: { file: 'missing-dir/audit.jsonl' }, logLevel: 'silent' }))
  const err: string[] = []
  t.equal(await runProxy(['--config', configFile], { out: () => undefined, err: (s) => void err.push(s) }, { until: async () => undefined }), 1)
  t.match(err.join(''), /PROXY_AUDIT_UNAVAILABLE \(ENOENT\)/)
})

/** A JSON-RPC endpoint of another chain (id 1) whose registry says "not development". */
async function otherChainRpc(t: Test): Promise<string> {
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (d: Buffer) => void (body += d.toString('utf8')))
    req.on('end', () => {
      const one = (m: { id: unknown; method: string }) =>
        m.method === 'eth_chainId' ? { jsonrpc: '2.0', id: m.id, result: '0x1' } : m.method === 'eth_call' ? { jsonrpc: '2.0', id: m.id, result: `0x${'00'.repeat(32)}` } : { jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'no' } }
      const parsed = JSON.parse(body) as { id: unknown; method: string } | { id: unknown; method: string }[]
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(Array.isArray(parsed) ? parsed.map(one) : one(parsed)))
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

t.test('discovery: registry down, on another chain, empty — each its own code; a relay per model', async (t) => {
  const world = await devWorld(t)

  await t.test('registry unreachable: PROXY_REGISTRY_UNAVAILABLE, not PROXY_NO_PROVIDER', async (t) => {
    const registry = createMemoryRegistry()
    const { openai } = await proxyStack(t, world, { models: { 'test-model': { discover: true } }, policy: { registry: REGISTRY_SECTION }, client: { registry } })
    registry.knobs.fail = true
    t.same(await apiError(openai.chat.completions.create({ model: 'test-model', messages: messages('x') })), {
      status: 503,
      code: 'PROXY_REGISTRY_UNAVAILABLE',
      reason: 'CLIENT_REGISTRY_UNAVAILABLE',
    })
    registry.knobs.fail = false
    t.same(await apiError(openai.chat.completions.create({ model: 'test-model', messages: messages('x') })), { status: 503, code: 'PROXY_NO_PROVIDER', reason: undefined }, 'reachable, and nothing registered')
  })

  await t.test('an RPC endpoint on another chain: CLIENT_REGISTRY_MISMATCH, through viem and the fallback reader', async (t) => {
    const rpc = await otherChainRpc(t)
    const factory = viemRegistryFactory({ allowDevelopment: true })
    const chain = { chainId: MEMORY_REGISTRY_CHAIN_ID, address: MEMORY_REGISTRY_ADDRESS }
    const signer: Address = `0x${'11'.repeat(20)}`
    t.equal(await codeOf(factory(rpc, chain).enclaveBySigner(signer)), 'CLIENT_REGISTRY_MISMATCH')
    const down: RegistryReader = { ...createMemoryRegistry(), enclaveBySigner: async () => Promise.reject(Object.assign(new Error('down'), { code: 'ECONNREFUSED' })) }
    t.equal(await codeOf(createFallbackRegistryReader([down, factory(rpc, chain)]).enclaveBySigner(signer)), 'CLIENT_REGISTRY_MISMATCH', 'not "unavailable"')
    t.equal(await codeOf(createFallbackRegistryReader([down, down]).enclaveBySigner(signer)), 'CLIENT_REGISTRY_UNAVAILABLE')
    const good = createMemoryRegistry()
    t.equal(await createFallbackRegistryReader([factory(rpc, chain), good]).enclaveBySigner(signer), null, 'a later endpoint on the right chain still answers')

    const { openai } = await proxyStack(t, world, {
      models: { 'test-model': { discover: true } },
      policy: { registry: { ...REGISTRY_SECTION, rpcUrls: [rpc] } },
      client: { registryFactory: factory },
    })
    t.same(await apiError(openai.chat.completions.create({ model: 'test-model', messages: messages('x') })), {
      status: 503,
      code: 'PROXY_REGISTRY_UNAVAILABLE',
      reason: 'CLIENT_REGISTRY_MISMATCH',
    })
  })

  await t.test('a discovered provider reached through the relay its model names', async (t) => {
    const registry: MemoryRegistry = createMemoryRegistry()
    const p = await startDevProvider(t, world, { receiptDomain: receiptDomain({ chainId: registry.chainId, registry: registry.address }) })
    await p.register(registry)
    const relay = await startBitFlipRelay(p.url)
    t.teardown(() => relay.close())
    t.equal(relayTarget(`${relay.url}{gateway}`, p.url), `${relay.url}${encodeURIComponent(p.url)}`)
    const { openai } = await proxyStack(t, world, { models: { 'test-model': { discover: true, relay: `${relay.url}{gateway}` } }, policy: { registry: REGISTRY_SECTION }, client: { registry } })
    const r = await openai.chat.completions.create({ model: 'test-model', messages: messages('relayed') })
    t.equal(r.choices[0]?.message.content, expectedTokens('relayed', 8).join(''))
    t.equal(relay.stats.forwarded, 1, 'the request went through the relay')
  })

  await t.test('a discover route needs a registry in the policy', async (t) => {
    t.equal(await codeOf(proxyStack(t, world, { models: { 'test-model': { discover: true } } })), 'CLIENT_CONFIG_INVALID')
  })
})
