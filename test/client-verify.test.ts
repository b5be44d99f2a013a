/**
 * The client SDK's verification against real dev-TEE gateways on loopback:
 * the full report for a good provider; each way a provider fails refused
 * with its code and no request sent; the on-chain checks against an
 * in-memory registry (missing, expired, replaced, other key config, other
 * workload, endpoints down with fallback); the verification cache (reused,
 * renewed at the end of its validity, dropped when the gateway presents
 * another key config).
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { createDevGpuRootCa } from '../attestation/dev/index.ts'
import { generateOhttpKeyPair } from '../enclave/ohttp/index.ts'
import { createClient, type ClientOptions } from '../gateway/client/client.ts'
import { isClientError, type ClientErrorCode } from '../gateway/client/errors.ts'
import { loadClientPolicy, loadPolicyRoots, parseClientPolicy } from '../gateway/client/policy.ts'
import { reportOf } from '../gateway/client/verify.ts'
import { createMemoryRegistry, MEMORY_REGISTRY_ADDRESS, MEMORY_REGISTRY_CHAIN_ID } from './helpers/memory-registry.ts'
import { devPolicyDocument, devWorld, startDevProvider, writePolicy, type DevWorld } from './helpers/dev-provider.ts'

const REGISTRY_SECTION = { required: true, chainId: Number(MEMORY_REGISTRY_CHAIN_ID), address: MEMORY_REGISTRY_ADDRESS, rpcUrls: ['http://127.0.0.1:1'], matchWorkloadId: true }

async function clientFor(t: Test, world: DevWorld, doc: Record<string, unknown>, extra: Partial<ClientOptions> = {}) {
  const policy = await loadClientPolicy(await writePolicy(world, doc))
  const client = createClient({ policy, roots: await loadPolicyRoots(policy), ...extra })
  t.teardown(() => client.close())
  return client
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'ok'
  } catch (e) {
    if (isClientError(e)) return e.code
    throw e
  }
}

const chat = (content: string) => ({ model: 'test-model', messages: [{ role: 'user', content }] })

t.test('a good provider: every stage reported, then cached', async (t) => {
  const world = await devWorld(t)
  const provider = await startDevProvider(t, world)
  const registry = createMemoryRegistry()
  await provider.register(registry)
  const reports: unknown[] = []
  const client = await clientFor(t, world, devPolicyDocument(world, { registry: REGISTRY_SECTION }), { registry, onVerification: (r) => reports.push(r) })
  const v = await client.verify(provider.url)
  const r = v.report
  t.equal(r.ok, true)
  t.equal(r.stage, 'accepted')
  t.equal(r.tdx?.tcbStatus, 'UpToDate')
  t.equal(r.tdx?.root.kind, 'dev')
  t.equal(r.tdx?.measurements.length, 8)
  t.ok(r.tdx?.measurements.every((m) => m.allowListed === 'any'))
  t.equal(r.gpu.status, 'not required')
  t.equal(r.binding.status, 'bound')
  t.equal(r.policy.status, 'accepted')
  t.equal(r.registry.status, 'registered')
  t.equal(r.registry.check?.record.keyConfigHash, (await provider.facts()).keyConfigHash)
  t.equal(v.signingAddress, provider.enclave.status().signingAddress)
  t.ok(v.receiptDomain !== null && v.receiptDomain.chainId === MEMORY_REGISTRY_CHAIN_ID)
  t.ok(v.validUntil > Date.now())
  const again = await client.verify(provider.url)
  t.equal(again, v, 'the second call is served from the cache')
  t.equal(reports.length, 1, 'one verification')
  t.equal(provider.engine.stats.requests, 0, 'verification sends nothing to the engine')
})

t.test('refused providers: each with its code, and nothing sent', async (t) => {
  const world = await devWorld(t)
  const cases: { name: string; code: ClientErrorCode; setup: () => Promise<{ url: string; doc: Record<string, unknown>; registry?: ReturnType<typeof createMemoryRegistry>; sent: () => number; engine: () => number }> }[] = [
    {
      name: 'measurement not on the allow-list',
      code: 'CLIENT_POLICY_REJECTED',
      setup: async () => {
        const p = await startDevProvider(t, world, { measurements: { mrTd: new Uint8Array(48).fill(7) } })
        return { url: p.url, doc: devPolicyDocument(world, {}, { mrTd: ['01'.repeat(48)] }), sent: p.ohttpRequests, engine: () => p.engine.stats.requests }
      },
    },
    {
      name: 'key config differs from the one the quote binds',
      code: 'CLIENT_BINDING_MISMATCH',
      setup: async () => {
        const other = await generateOhttpKeyPair(1)
        const p = await startDevProvider(t, world, { alterBundle: (b) => ({ ...b, keyConfig: Buffer.from(other.keyConfig).toString('base64') }) })
        return { url: p.url, doc: devPolicyDocument(world), sent: p.ohttpRequests, engine: () => p.engine.stats.requests }
      },
    },
    {
      name: 'signing address differs from the one the quote binds',
      code: 'CLIENT_BINDING_MISMATCH',
      setup: async () => {
        const p = await startDevProvider(t, world, { alterBundle: (b) => ({ ...b, signingAddress: `0x${'12'.repeat(20)}` }) })
        return { url: p.url, doc: devPolicyDocument(world), sent: p.ohttpRequests, engine: () => p.engine.stats.requests }
      },
    },
    {
      name: 'not registered on-chain',
      code: 'CLIENT_NOT_REGISTERED',
      setup: async () => {
        const p = await startDevProvider(t, world)
        return { url: p.url, doc: devPolicyDocument(world, { registry: REGISTRY_SECTION }), registry: createMemoryRegistry(), sent: p.ohttpRequests, engine: () => p.engine.stats.requests }
      },
    },
    {
      name: 'registration expired',
      code: 'CLIENT_REGISTRATION_EXPIRED',
      setup: async () => {
        const p = await startDevProvider(t, world)
        const registry = createMemoryRegistry()
        const now = BigInt(Math.floor(Date.now() / 1000))
        await p.register(registry, { registeredAt: now - 7200n, expiresAt: now - 60n })
        return { url: p.url, doc: devPolicyDocument(world, { registry: REGISTRY_SECTION }), registry, sent: p.ohttpRequests, engine: () => p.engine.stats.requests }
      },
    },
    {
      name: 'registration expired, and the node hides it (history tells)',
      code: 'CLIENT_REGISTRATION_EXPIRED',
      setup: async () => {
        const p = await startDevProvider(t, world)
        const registry = createMemoryRegistry()
        registry.knobs.liveOnly = true
        const now = BigInt(Math.floor(Date.now() / 1000))
        await p.register(registry, { registeredAt: now - 7200n, expiresAt: now - 60n })
        return { url: p.url, doc: devPolicyDocument(world, { registry: REGISTRY_SECTION }), registry, sent: p.ohttpRequests, engine: () => p.engine.stats.requests }
      },
    },
    {
      name: 'registered with another key config',
      code: 'CLIENT_REGISTRY_MISMATCH',
      setup: async () => {
        const p = await startDevProvider(t, world)
        const registry = createMemoryRegistry()
        await p.register(registry, { keyConfigHash: `0x${'ab'.repeat(32)}` })
        return { url: p.url, doc: devPolicyDocument(world, { registry: REGISTRY_SECTION }), registry, sent: p.ohttpRequests, engine: () => p.engine.stats.requests }
      },
    },
    {
      name: 'registered with another workload',
      code: 'CLIENT_REGISTRY_MISMATCH',
      setup: async () => {
        const p = await startDevProvider(t, world)
        const registry = createMemoryRegistry()
        await p.register(registry, { workloadId: `0x${'cd'.repeat(32)}` })
        return { url: p.url, doc: devPolicyDocument(world, { registry: REGISTRY_SECTION }), registry, sent: p.ohttpRequests, engine: () => p.engine.stats.requests }
      },
    },
    {
      name: 'every registry endpoint down',
      code: 'CLIENT_REGISTRY_UNAVAILABLE',
      setup: async () => {
        const p = await startDevProvider(t, world)
        const registry = createMemoryRegistry()
        await p.register(registry)
        registry.knobs.fail = true
        return { url: p.url, doc: devPolicyDocument(world, { registry: REGISTRY_SECTION }), registry, sent: p.ohttpRequests, engine: () => p.engine.stats.requests }
      },
    },
    {
      name: 'GPU evidence required and absent',
      code: 'CLIENT_GPU_EVIDENCE_MISSING',
      setup: async () => {
        const p = await startDevProvider(t, world)
        return { url: p.url, doc: devPolicyDocument(world, { gpu: { trustRoot: 'nvidia', count: 'any', driverVersions: 'any', vbiosVersions: 'any' } }), sent: p.ohttpRequests, engine: () => p.engine.stats.requests }
      },
    },
    {
      name: 'dev quote under a policy naming Intel’s root',
      code: 'CLIENT_QUOTE_INVALID',
      setup: async () => {
        const p = await startDevProvider(t, world)
        const doc = devPolicyDocument(world)
        const quote = { ...(doc.quote as Record<string, unknown>), trustRoot: 'intel' }
        const { devRoots: _drop, ...rest } = doc
        return { url: p.url, doc: { ...rest, quote }, sent: p.ohttpRequests, engine: () => p.engine.stats.requests }
      },
    },
    {
      name: 'a gateway that serves no evidence',
      code: 'CLIENT_EVIDENCE_UNAVAILABLE',
      setup: async () => ({ url: 'http://127.0.0.1:1', doc: devPolicyDocument(world), sent: () => 0, engine: () => 0 }),
    },
  ]
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const s = await c.setup()
      const client = await clientFor(t, world, s.doc, s.registry ? { registry: s.registry } : {})
      let error: unknown
      try {
        await client.send(s.url, { path: '/v1/chat/completions', body: chat('must never leave') })
      } catch (e) {
        error = e
      }
      t.ok(isClientError(error), 'a typed error')
      t.equal((error as { code?: string }).code, c.code)
      const report = reportOf(error)
      if (c.code !== 'CLIENT_EVIDENCE_UNAVAILABLE') {
        t.equal(report?.ok, false)
        t.equal(report?.error?.code, c.code, 'the report carries the code')
      }
      t.equal(s.sent(), 0, 'no encrypted request reached the gateway')
      t.equal(s.engine(), 0, 'no request reached the engine')
    })
  }
})

t.test('a provider with a (development) GPU: evidence verified for the same nonce, reported per GPU', async (t) => {
  const world = await devWorld(t)
  const gca = createDevGpuRootCa({ now: new Date(Date.now() - 86_400_000) })
  const p = await startDevProvider(t, world, { gpu: gca })
  const gpuRoot = join(world.dir, 'dev-gpu-root.pem')
  await writeFile(gpuRoot, gca.rootCertificatePem)
  const gpu = { trustRoot: { dev: gca.rootFingerprint }, count: 1, driverVersions: 'any', vbiosVersions: 'any' }
  const client = await clientFor(t, world, devPolicyDocument(world, { gpu, devRoots: { tdx: world.rootFile, gpu: gpuRoot } }))
  const v = await client.verify(p.url)
  t.equal(v.report.gpu.status, 'verified')
  t.equal(v.report.gpu.gpus?.length, 1)
  t.equal(v.report.gpu.gpus?.[0]?.arch, 'HOPPER')
  t.equal(v.report.binding.status, 'bound', 'the GPU evidence hash is bound in REPORTDATA')
  const pinned = await clientFor(t, world, devPolicyDocument(world, { gpu: { ...gpu, count: 2 }, devRoots: { tdx: world.rootFile, gpu: gpuRoot } }))
  t.equal(await codeOf(pinned.verify(p.url)), 'CLIENT_GPU_POLICY_REJECTED')
  const none = await clientFor(t, world, devPolicyDocument(world))
  t.equal(await codeOf(none.verify(p.url)), 'CLIENT_GPU_POLICY_REJECTED', '"no GPU" refuses GPU evidence rather than ignore it')
})

t.test('policy mismatches are listed in the report', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world, { measurements: { mrTd: new Uint8Array(48).fill(7) } })
  const client = await clientFor(t, world, devPolicyDocument(world, {}, { mrTd: ['01'.repeat(48)] }))
  const error = await client.verify(p.url).catch((e: unknown) => e)
  const report = reportOf(error)!
  t.equal(report.stage, 'policy')
  t.same(report.policy.mismatches?.map((m) => m.code), ['POLICY_MRTD_NOT_ALLOWED'])
  const row = report.tdx?.measurements.find((m) => m.field === 'mrTd')
  t.same(row, { field: 'mrTd', value: '07'.repeat(48), allowListed: false })
})

t.test('registry fallback: a failing endpoint is skipped', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const down = createMemoryRegistry()
  down.knobs.fail = true
  const up = createMemoryRegistry()
  await p.register(up)
  const client = await clientFor(t, world, devPolicyDocument(world, { registry: REGISTRY_SECTION }), { registry: [down, up] })
  const v = await client.verify(p.url)
  t.equal(v.report.registry.status, 'registered')
  t.equal(down.calls.enclaveBySigner, 1)
  t.equal(up.calls.enclaveBySigner, 1)
})

t.test('registry factory from the policy’s RPC URLs', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const byUrl = new Map([['http://rpc-a.invalid', createMemoryRegistry()], ['http://rpc-b.invalid', createMemoryRegistry()]])
  byUrl.get('http://rpc-a.invalid')!.knobs.fail = true
  await p.register(byUrl.get('http://rpc-b.invalid')!)
  const doc = devPolicyDocument(world, { registry: { ...REGISTRY_SECTION, rpcUrls: [...byUrl.keys()] } })
  const client = await clientFor(t, world, doc, { registryFactory: (url) => byUrl.get(url)! })
  t.equal((await client.verify(p.url)).report.registry.status, 'registered')
})

t.test('discovery by model from the registry', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const registry = createMemoryRegistry()
  await p.register(registry, { model: 'test-model' })
  const client = await clientFor(t, world, devPolicyDocument(world, { registry: REGISTRY_SECTION }), { registry })
  t.same(await client.discover('test-model'), [p.url])
  t.equal(await codeOf(client.discover('no-such-model')), 'CLIENT_NO_PROVIDER')
})

t.test('cache: renewed when its validity ends, never continued silently', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  let clock = Date.now()
  const reports: unknown[] = []
  const client = await clientFor(t, world, devPolicyDocument(world, { maxEvidenceAgeSeconds: 60 }), { now: () => new Date(clock), onVerification: (r) => reports.push(r) })
  const first = await client.verify(p.url)
  t.equal(first.validUntil, clock + 60_000, 'bounded by maxEvidenceAgeSeconds')
  clock += 30_000
  t.equal(await client.verify(p.url), first)
  clock += 31_000
  t.equal(client.cached(p.url), undefined, 'expired entries are not served')
  const second = await client.verify(p.url)
  t.not(second, first)
  t.not(second.report.nonce, first.report.nonce, 'a fresh nonce')
  t.equal(reports.length, 2)
})

t.test('cache: renewed in the background shortly before its end', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  let clock = Date.now()
  let reports = 0
  let second!: () => void
  const renewedAgain = new Promise<void>((r) => (second = r))
  const client = await clientFor(t, world, devPolicyDocument(world, { maxEvidenceAgeSeconds: 60 }), {
    now: () => new Date(clock),
    refreshAheadMs: 10_000,
    onVerification: () => {
      if (++reports === 2) second()
    },
  })
  const first = await client.verify(p.url)
  clock += 55_000
  t.equal(await client.verify(p.url), first, 'the current verification still serves')
  await renewedAgain
  const renewed = await client.verify(p.url)
  t.not(renewed, first, 'verified again in the background')
  t.equal(renewed.validUntil, clock + 60_000)
})

t.test('cache: a gateway that presents another key config is verified again', async (t) => {
  const world = await devWorld(t)
  const p = await startDevProvider(t, world)
  const reports: unknown[] = []
  const client = await clientFor(t, world, devPolicyDocument(world), { onVerification: (r) => reports.push(r) })
  const first = await client.verify(p.url)
  // Poison the cache with a key id the gateway does not know: the gateway answers 422 (RFC 9458 §5.3).
  const cached = client.cached(p.url)!
  ;(cached as { keyConfig: unknown }).keyConfig = { ...cached.keyConfig, keyId: (cached.keyConfig.keyId + 1) & 0xff }
  const res = await client.send(p.url, { path: '/v1/chat/completions', body: chat('hello') })
  for await (const _ of res.content);
  t.ok(res.receipt(), 'answered after re-verification')
  t.equal(reports.length, 2, 'verified twice')
  t.not(res.provider, first)
  t.equal(p.engine.stats.requests, 1, 'the engine saw the request once')
})

t.test('policy documents fail closed', async (t) => {
  const world = await devWorld(t)
  const good = devPolicyDocument(world)
  const bad: [string, Record<string, unknown>][] = [
    ['no gpu section', { ...good, gpu: undefined }],
    ['no registry section', { ...good, registry: undefined }],
    ['registry without matchWorkloadId', { ...good, registry: { ...REGISTRY_SECTION, matchWorkloadId: undefined } }],
    ['no collateral', { ...good, collateral: undefined }],
    ['no evidence age', { ...good, maxEvidenceAgeSeconds: undefined }],
    ['unknown key', { ...good, skipChecks: true }],
    ['gpu inside the quote policy', { ...good, quote: { ...(good.quote as object), gpu: { required: false } } }],
    ['unpinned measurement missing', { ...good, quote: { version: 1, trustRoot: 'intel', tdx: { maxCollateralAgeSeconds: 1 } } }],
    ['dev root file for an Intel policy', { ...good, quote: { ...(good.quote as object), trustRoot: 'intel' } }],
    ['a bare quote policy document (cgw measure --quote-policy-out) instead of a client policy', { ...(good.quote as object), gpu: { required: false } }],
  ]
  for (const [name, doc] of bad) {
    const json = JSON.parse(JSON.stringify(doc))
    let code = 'ok'
    try {
      parseClientPolicy(json)
    } catch (e) {
      code = (e as { code: string }).code
    }
    t.equal(code, 'CLIENT_CONFIG_INVALID', name)
  }
  const wrongRoot = parseClientPolicy(JSON.parse(JSON.stringify({ ...good, quote: { ...(good.quote as object), trustRoot: { dev: '00'.repeat(32) } } })))
  t.equal(await codeOf(loadPolicyRoots(wrongRoot)), 'CLIENT_CONFIG_INVALID', 'a root file that is not the pinned root')
})
