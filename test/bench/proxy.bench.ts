/**
 * Proxy overhead: the official `openai` client sending the same chat
 * completions (a) straight to the test engine and (b) to the enterprise
 * proxy, which verifies the provider (cached), encrypts with OHTTP, sends to
 * the dev-TEE gateway, decrypts the stream and checks the receipt. Engine,
 * gateway and proxy are child processes; the openai client runs here, all on
 * loopback. Requests run one at a time, direct and proxied alternating.
 *
 *   npm run bench:proxy                       # 16 tokens, no pacing, 300 requests per contender
 *   npm run bench:proxy -- --tokens 64 --requests 500
 *
 * Reported: p50/p90 request latency, direct and through the proxy, for
 * streamed and non-streamed chat, and the added p50 (warm verification
 * cache); for context, the SDK in this process straight to the gateway (no
 * proxy hop, no openai client) and the tests' bare OHTTP client to the
 * gateway (no verification, no receipt check); the floor: the openai client
 * through two bare pass-through processes in a row (serve.ts `forwarder`,
 * the same two extra hops as proxy → gateway, with no crypto); the first request to a provider including its full verification
 * (fresh client, JIT warm, collateral cached) — p50 and max over fresh
 * clients — and, for information, the first request a freshly started proxy
 * process serves (cold JIT). Targets (issue 6): added p50 <= 2 ms; first
 * request with verification < 50 ms. The last line is one JSON object.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import OpenAI from 'openai'
import { argValue, quantile, round } from './harness.ts'

const SELF = fileURLToPath(import.meta.url)
const SERVE = fileURLToPath(new URL('./serve.ts', import.meta.url))
const args = process.argv.slice(2)
const TARGETS = { addedP50Ms: 2, firstRequestMs: 50 }

async function gatewayChild(engineUrl: string, dir: string): Promise<void> {
  const { createDevQuoteSigner, createDevRootCa, DEV_FMSPC, signDevCollateral } = await import('../../attestation/dev/index.ts')
  const { createEnclave } = await import('../../enclave/enclave.ts')
  const { createHttpEngine } = await import('../../enclave/engines/http.ts')
  const { createDevEventLogProvider, createDevQuoteProvider } = await import('../../enclave/quote-providers/dev.ts')
  const { buildServer } = await import('../../gateway/server.ts')
  const { parseGatewayConfig } = await import('../../gateway/config.ts')
  const now = new Date()
  const ca = createDevRootCa({ now: new Date(now.getTime() - 86_400_000) })
  const signer = createDevQuoteSigner(ca, { fmspc: DEV_FMSPC })
  const collateral = signDevCollateral(ca, { fmspc: DEV_FMSPC, now: new Date(now.getTime() - 3_600_000), nextUpdateDays: 30, platform: signer.platform })
  await writeFile(join(dir, 'dev-tdx-root.pem'), ca.rootCertificatePem)
  await writeFile(join(dir, 'collateral.json'), JSON.stringify(collateral))
  await writeFile(join(dir, 'fingerprint'), ca.rootFingerprint)
  const enclave = await createEnclave({
    engine: createHttpEngine({ baseUrl: engineUrl }),
    quotes: createDevQuoteProvider({ signer }),
    eventLog: createDevEventLogProvider(),
    gpu: null,
    epochLengthMs: 3_600_000,
    graceMs: 300_000,
  })
  const config = parseGatewayConfig({
    listen: { host: '127.0.0.1', port: 0 },
    logLevel: 'warn',
    limits: { maxConcurrentStreams: 1024, rate: { requestsPerSecond: 100000, burst: 100000 }, attestationRate: { requestsPerSecond: 100000, burst: 100000 } },
  })
  const app = buildServer({ enclave, config })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  process.stdout.write(`${JSON.stringify({ url })}\n`)
}

async function proxyChild(configFile: string): Promise<void> {
  const { loadProxyConfig } = await import('../../gateway/proxy/config.ts')
  const { startProxy } = await import('../../gateway/proxy/main.ts')
  const proxy = await startProxy(await loadProxyConfig(configFile), { warm: false })
  process.stdout.write(`${JSON.stringify({ url: proxy.url })}\n`)
}

async function child(script: string, ...argv: string[]): Promise<{ proc: ChildProcess; url: string }> {
  // BENCH_CPU_PROF=DIR writes a V8 CPU profile of each child there (for finding where the time goes).
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []
  const proc = spawn(process.execPath, [...prof, '--import', 'tsx', script, ...argv], { stdio: ['ignore', 'pipe', 'inherit'] })
  const [line] = (await once(createInterface({ input: proc.stdout! }), 'line')) as [string]
  return { proc, url: JSON.parse(line).url }
}

interface Contender {
  readonly name: string
  readonly run: () => Promise<unknown>
  readonly times: number[]
}

async function chat(client: OpenAI, stream: boolean, i: number): Promise<number> {
  const messages = [{ role: 'user' as const, content: `benchmark request ${i}` }]
  if (stream) {
    let n = 0
    for await (const c of await client.chat.completions.create({ model: 'test-model', messages, stream: true })) if (c.choices[0]?.delta?.content) n++
    return n
  }
  const r = await client.chat.completions.create({ model: 'test-model', messages })
  return r.choices[0]?.message.content?.length ?? 0
}

async function timeAlternating(contenders: Contender[], requests: number): Promise<void> {
  for (let i = 0; i < requests; i++) {
    for (let j = 0; j < contenders.length; j++) {
      const c = contenders[(i + j) % contenders.length]!
      const t0 = performance.now()
      await c.run()
      c.times.push(performance.now() - t0)
    }
  }
}

const stats = (xs: readonly number[]) => ({ p50: round(quantile(xs, 0.5), 3), p90: round(quantile(xs, 0.9), 3), n: xs.length })

async function parent(): Promise<void> {
  const tokens = Number(argValue(args, '--tokens') ?? 16)
  const requests = Number(argValue(args, '--requests') ?? 300)
  const dir = await mkdtemp(join(tmpdir(), 'cgw-bench-proxy-'))
  const procs: ChildProcess[] = []
  try {
    const engine = await child(SERVE, 'engine', String(tokens), '0')
    procs.push(engine.proc)
    const gateway = await child(SELF, '--child', 'gateway', engine.url, dir)
    procs.push(gateway.proc)
    const fingerprint = await readFile(join(dir, 'fingerprint'), 'utf8')
    const policy = {
      version: 1,
      quote: {
        version: 1,
        trustRoot: { dev: fingerprint },
        tdx: { maxCollateralAgeSeconds: 86_400, mrTd: 'any', rtmr0: 'any', rtmr1: 'any', rtmr2: 'any', rtmr3: 'any', mrConfigId: 'any', mrOwner: 'any', mrOwnerConfig: 'any' },
      },
      gpu: { required: false },
      registry: { required: false },
      collateral: { file: 'collateral.json' },
      maxEvidenceAgeSeconds: 3600,
      devRoots: { tdx: 'dev-tdx-root.pem' },
    }
    await writeFile(join(dir, 'policy.json'), JSON.stringify(policy))
    await writeFile(
      join(dir, 'proxy.json'),
      JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, policy: 'policy.json', models: { 'test-model': { providers: [gateway.url] } }, audit: { file: 'audit.jsonl' }, logLevel: 'warn' }),
    )
    const proxy = await child(SELF, '--child', 'proxy', join(dir, 'proxy.json'))
    procs.push(proxy.proc)
    const inner = await child(SERVE, 'forwarder', engine.url)
    procs.push(inner.proc)
    const outer = await child(SERVE, 'forwarder', inner.url)
    procs.push(outer.proc)

    const { createClient } = await import('../../gateway/client/client.ts')
    const { loadClientPolicy, loadPolicyRoots } = await import('../../gateway/client/policy.ts')
    const { collateralFromPolicy } = await import('../../gateway/client/collateral.ts')
    const clientPolicy = await loadClientPolicy(join(dir, 'policy.json'))
    const roots = await loadPolicyRoots(clientPolicy)
    const collateral = collateralFromPolicy(clientPolicy.collateral)
    // The SDK straight to the gateway (no proxy hop): how much of the added latency is the gateway's.
    const sdk = createClient({ policy: clientPolicy, roots, collateral })
    const viaSdk = async (stream: boolean) => {
      const res = await sdk.send(gateway.url, { path: '/v1/chat/completions', body: { model: 'test-model', messages: [{ role: 'user', content: 'benchmark request 0' }], ...(stream ? { stream: true } : {}) } })
      for await (const _ of res.content);
    }
    // The test helper's bare OHTTP client to the gateway (encryption included; no verification, no receipt check).
    const { ohttpRequest } = await import('../helpers/ohttp-client.ts')
    const { Agent, request: undiciRequest } = await import('undici')
    const agent = new Agent({ connections: 16 })
    const keyConfigs = new Uint8Array(await (await undiciRequest(`${gateway.url}/.well-known/ohttp-gateway`, { dispatcher: agent })).body.arrayBuffer())
    const viaBareOhttp = (stream: boolean) =>
      ohttpRequest(keyConfigs, async (payload, contentType, signal) => {
        const res = await undiciRequest(`${gateway.url}/v1/ohttp`, { method: 'POST', dispatcher: agent, body: payload, headers: { 'content-type': contentType }, signal })
        return { contentType: String(res.headers['content-type']), chunks: res.body }
      }, '/v1/chat/completions', { model: 'test-model', messages: [{ role: 'user', content: 'benchmark request 0' }], ...(stream ? { stream: true } : {}) })
    const direct = new OpenAI({ baseURL: `${engine.url}/v1`, apiKey: 'bench', maxRetries: 0 })
    const proxied = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: 'bench', maxRetries: 0 })
    const forwarded = new OpenAI({ baseURL: `${outer.url}/v1`, apiKey: 'bench', maxRetries: 0 })

    // The proxy process's very first request: its verification, cold JIT.
    let t0 = performance.now()
    await chat(proxied, true, -1)
    const firstColdProcessMs = performance.now() - t0

    // Warm-up, then the measured rounds.
    for (let i = 0; i < 50; i++) {
      await viaSdk(true)
      await viaSdk(false)
      await viaBareOhttp(true)
      await chat(direct, true, i)
      await chat(proxied, true, i)
      await chat(forwarded, true, i)
      await chat(direct, false, i)
      await chat(proxied, false, i)
      await chat(forwarded, false, i)
    }
    const streamed = [
      { name: 'direct', run: () => chat(direct, true, 0), times: [] as number[] },
      { name: 'proxy', run: () => chat(proxied, true, 0), times: [] as number[] },
      { name: 'sdk-gateway', run: () => viaSdk(true), times: [] as number[] },
      { name: 'bare-ohttp-gateway', run: () => viaBareOhttp(true), times: [] as number[] },
      { name: 'two-forwarders', run: () => chat(forwarded, true, 0), times: [] as number[] },
    ]
    await timeAlternating(streamed, requests)
    const plain = [
      { name: 'direct', run: () => chat(direct, false, 0), times: [] as number[] },
      { name: 'proxy', run: () => chat(proxied, false, 0), times: [] as number[] },
      { name: 'sdk-gateway', run: () => viaSdk(false), times: [] as number[] },
      { name: 'bare-ohttp-gateway', run: () => viaBareOhttp(false), times: [] as number[] },
      { name: 'two-forwarders', run: () => chat(forwarded, false, 0), times: [] as number[] },
    ]
    await timeAlternating(plain, requests)
    await sdk.close()
    await agent.close()

    // First request to a provider with full verification: a fresh SDK client each time (empty
    // verification cache), JIT warm, collateral already read and parsed (the "cached collateral" case).
    const firsts: number[] = []
    const verifications: number[] = []
    for (let i = 0; i < 40; i++) {
      const client = createClient({ policy: clientPolicy, roots, collateral })
      t0 = performance.now()
      const v = await client.verify(gateway.url)
      const verified = performance.now()
      const res = await client.send(gateway.url, { path: '/v1/chat/completions', body: { model: 'test-model', messages: [{ role: 'user', content: `first ${i}` }], stream: true } })
      for await (const _ of res.content);
      const done = performance.now()
      if (!res.receipt() || !v.report.ok) throw new Error('first request did not verify')
      if (i >= 5) {
        firsts.push(done - t0)
        verifications.push(verified - t0)
      }
      await client.close()
    }

    const s = { direct: stats(streamed[0]!.times), proxy: stats(streamed[1]!.times), sdk: stats(streamed[2]!.times), bare: stats(streamed[3]!.times), floor: stats(streamed[4]!.times) }
    const p = { direct: stats(plain[0]!.times), proxy: stats(plain[1]!.times), sdk: stats(plain[2]!.times), bare: stats(plain[3]!.times), floor: stats(plain[4]!.times) }
    const addedStream = s.proxy.p50 - s.direct.p50
    const addedPlain = p.proxy.p50 - p.direct.p50
    const first = stats(firsts)
    const result = {
      bench: 'proxy',
      tokens,
      requests,
      streamed: { directMs: s.direct, proxyMs: s.proxy, sdkToGatewayMs: s.sdk, bareOhttpToGatewayMs: s.bare, twoForwardersMs: s.floor, addedP50Ms: round(addedStream, 3), floorAddedP50Ms: round(s.floor.p50 - s.direct.p50, 3), ratioP50: round(s.proxy.p50 / s.direct.p50, 3) },
      nonStreamed: { directMs: p.direct, proxyMs: p.proxy, sdkToGatewayMs: p.sdk, bareOhttpToGatewayMs: p.bare, twoForwardersMs: p.floor, addedP50Ms: round(addedPlain, 3), floorAddedP50Ms: round(p.floor.p50 - p.direct.p50, 3), ratioP50: round(p.proxy.p50 / p.direct.p50, 3) },
      firstRequestWithVerificationMs: { p50: first.p50, max: round(Math.max(...firsts), 3), verifyP50: round(quantile(verifications, 0.5), 3), n: first.n },
      firstRequestColdProxyProcessMs: round(firstColdProcessMs, 3),
      targets: TARGETS,
      meetsAddedP50: addedStream <= TARGETS.addedP50Ms && addedPlain <= TARGETS.addedP50Ms,
      meetsFirstRequest: first.p50 < TARGETS.firstRequestMs,
    }
    process.stdout.write(`streamed chat (${tokens} tokens):  direct p50 ${s.direct.p50} ms, proxy p50 ${s.proxy.p50} ms, added ${round(addedStream, 3)} ms (SDK → gateway: ${s.sdk.p50} ms; bare OHTTP → gateway: ${s.bare.p50} ms; floor, two bare forwarders: +${result.streamed.floorAddedP50Ms} ms)\n`)
    process.stdout.write(`non-streamed chat:           direct p50 ${p.direct.p50} ms, proxy p50 ${p.proxy.p50} ms, added ${round(addedPlain, 3)} ms (SDK → gateway: ${p.sdk.p50} ms; bare OHTTP → gateway: ${p.bare.p50} ms; floor, two bare forwarders: +${result.nonStreamed.floorAddedP50Ms} ms)\n`)
    process.stdout.write(`first request incl. verification (fresh client, cached collateral): p50 ${first.p50} ms, max ${result.firstRequestWithVerificationMs.max} ms\n`)
    process.stdout.write(`first request of a cold proxy process: ${result.firstRequestColdProxyProcessMs} ms\n`)
    process.stdout.write(`${JSON.stringify(result)}\n`)
  } finally {
    for (const p of procs) p.kill('SIGINT')
    await Promise.all(procs.map((p) => (p.exitCode === null ? once(p, 'exit') : Promise.resolve())))
    await rm(dir, { recursive: true, force: true })
  }
}

const mode = argValue(args, '--child')
if (mode === 'gateway') {
  await gatewayChild(args[2]!, args[3]!)
  process.on('SIGINT', () => process.exit(0))
} else if (mode === 'proxy') {
  await proxyChild(args[2]!)
  process.on('SIGINT', () => process.exit(0))
} else {
  await parent()
}
