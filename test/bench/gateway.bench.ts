/**
 * Gateway overhead: the same streaming chat completions, from a client in
 * this process, sent (a) straight to the test engine and (b) through the
 * gateway with OHTTP (the client encapsulates every request and decrypts
 * every chunk; the gateway's enclave decapsulates, forwards, seals each SSE
 * event and signs a receipt). Engine and gateway run as child processes of
 * this one, all on loopback.
 *
 *   npm run bench:gateway                  # 32 tokens/request, 10 ms/token
 *   npm run bench:gateway -- --tokens 64 --delay-ms 5 --requests 400
 *   BENCH_CPU_PROF=/tmp/prof npm run bench:gateway -- --streams 64   # one configuration, profiled
 *
 * For 1 and 64 concurrent streams: time to first token and request latency
 * (p50, p99) direct and through the gateway, the added latency, and the
 * throughput ratio (tokens/s through the gateway / direct). The engine paces
 * tokens like a GPU decoding at 1000/delay tokens/s per stream; with no pacing
 * the comparison would measure this 2-core machine's CPU, not the gateway.
 * Targets (issue 4): added p50 latency <= 1 ms at 1 stream; ratio >= 0.9 at
 * 64 streams. The last line is one JSON object; no assertion on time.
 *
 * A third path, the same requests through a bare HTTP pass-through process
 * (serve.ts `forwarder`: no crypto, no parsing), is the floor: what any extra
 * process hop costs on this machine. `added_over_forwarder_*` is what the
 * gateway's own work adds beyond that hop.
 *
 * Fairness. All paths share one keep-alive client pool and are warmed at
 * the largest concurrency first (every connection, the gateway's engine pool
 * included, exists before timing), run at the same concurrency, and
 * alternate (direct, gateway, direct, gateway) so drift hits both. What is
 * timed is the gateway, not this client: requests are encapsulated before
 * their run (as a client SDK does while the user types, and on another
 * machine), and that cost is reported on its own (`client_encapsulate_cpu_ms`);
 * every chunk is still decrypted as it arrives, inside the timed path, and
 * the decryption's own CPU cost is measured apart by re-opening recorded
 * responses (`client_decrypt_cpu_ms_per_request`). CPU per request of each
 * process comes from /proc/PID/schedstat (nanoseconds on CPU), which other
 * load on the machine does not inflate the way wall time is inflated.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Agent, request, type Dispatcher } from 'undici'
import { argValue, quantile, round } from './harness.ts'
import { encapsulate, type EncapsulatedTestRequest } from '../helpers/ohttp-client.ts'
import { BhttpResponseDecoder, type BhttpResponseEvent } from '../../enclave/ohttp/index.ts'

const SERVE = fileURLToPath(new URL('./serve.ts', import.meta.url))
const args = process.argv.slice(2)
const TOKENS = Number(argValue(args, '--tokens') ?? 32)
const DELAY_MS = Number(argValue(args, '--delay-ms') ?? 10)
const REQUESTS = Number(argValue(args, '--requests') ?? 256)
/** `--streams 64` runs one configuration only (for profiling); the targets need both. */
const STREAMS = (argValue(args, '--streams') ?? '1,64').split(',').map(Number)
const TARGETS = { addedP50MsOneStream: 1, throughputRatio64: 0.9 }

async function child(...argv: string[]): Promise<{ proc: ChildProcess; url: string }> {
  // BENCH_CPU_PROF=DIR writes a V8 CPU profile of each child there (for finding where the time goes).
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []
  const proc = spawn(process.execPath, [...prof, '--import', 'tsx', SERVE, ...argv], { stdio: ['ignore', 'pipe', 'inherit'] })
  const [line] = (await once(createInterface({ input: proc.stdout! }), 'line')) as [string]
  return { proc, url: JSON.parse(line).url }
}

interface Sample {
  ttft: number
  latency: number
  tokens: number
}

const dispatcher = new Agent({ connections: 256, pipelining: 1 })
const body = (i: number) => ({ model: 'test-model', stream: true, messages: [{ role: 'user', content: `request ${i}` }] })

/** Read a response body as 'data' events (both paths alike: no async iterator per chunk in this client). */
function readBody(res: Dispatcher.ResponseData, onData: (chunk: Buffer) => void | Promise<void>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let chain: Promise<void> | null = null
    res.body.on('data', (chunk: Buffer) => {
      if (chain !== null) {
        chain = chain.then(() => onData(chunk))
        return
      }
      const r = onData(chunk)
      if (r instanceof Promise) chain = r
    })
    res.body.on('end', () => (chain ?? Promise.resolve()).then(resolve, reject))
    res.body.on('error', reject)
  })
}

async function direct(engineUrl: string, i: number): Promise<Sample> {
  const t0 = performance.now()
  const res = await request(`${engineUrl}/v1/chat/completions`, {
    method: 'POST',
    dispatcher,
    body: JSON.stringify(body(i)),
    headers: { 'content-type': 'application/json' },
  })
  let ttft = 0
  let tokens = 0
  let pending = ''
  await readBody(res, (chunk) => {
    pending += chunk.toString()
    let at: number
    while ((at = pending.indexOf('\n\n')) >= 0) {
      const event = pending.slice(0, at)
      pending = pending.slice(at + 2)
      if (event.startsWith('data: {')) {
        if (tokens++ === 0) ttft = performance.now() - t0
      }
    }
  })
  return { ttft, latency: performance.now() - t0, tokens }
}

/** Encapsulate `total` requests ahead of a run; returns them and the client's CPU ms per encapsulation. */
async function prepare(keyConfigs: Uint8Array, total: number): Promise<{ requests: EncapsulatedTestRequest[]; cpuMs: number }> {
  const c0 = cpuOf(process.pid)
  const requests: EncapsulatedTestRequest[] = []
  for (let i = 0; i < total; i++) requests.push(await encapsulate(keyConfigs, '/v1/chat/completions', body(i)))
  return { requests, cpuMs: (cpuOf(process.pid) - c0) / total }
}

/**
 * One request through the gateway: every chunk is decrypted and decoded as
 * it arrives, by the push form of the opener (one promise per response, for
 * the key derivation), so that the client's own overhead stays small.
 */
async function viaGateway(req: EncapsulatedTestRequest, url: string): Promise<Sample> {
  const t0 = performance.now()
  const res = await request(`${url}/v1/ohttp`, { method: 'POST', dispatcher, body: req.body, headers: { 'content-type': req.contentType } })
  if (res.statusCode !== 200 || res.headers['content-type'] !== 'message/ohttp-chunked-res') throw new Error(`gateway answered ${res.statusCode}: ${await res.body.text()}`)
  const reader = req.chunkedResponseOpener()
  const decoder = new BhttpResponseDecoder()
  let ttft = 0
  let tokens = 0
  let receipt = false
  const onEvent = (e: BhttpResponseEvent) => {
    if (e.type === 'content' && e.data[6] === 0x7b /* 'data: {' */) {
      if (tokens++ === 0) ttft = performance.now() - t0
    } else if (e.type === 'trailers') receipt = e.trailers.some(([k]) => k === 'cgw-receipt')
  }
  const onPlain = (plaintexts: Uint8Array[]) => {
    for (const p of plaintexts) for (const e of decoder.push(p)) onEvent(e)
  }
  await readBody(res, (chunk) => {
    const out = reader.push(chunk)
    if (out instanceof Promise) return out.then(onPlain)
    onPlain(out)
  })
  onPlain(reader.end())
  for (const e of decoder.end()) onEvent(e)
  if (!receipt) throw new Error('no receipt')
  return { ttft, latency: performance.now() - t0, tokens }
}

/**
 * The client's CPU ms to decrypt and decode one streamed response: record
 * the ciphertext of a few real responses, then open them again and again
 * (opening derives the response keys from the request's HPKE context, so
 * a recorded response can be opened any number of times).
 */
async function decryptCost(keyConfigs: Uint8Array, url: string): Promise<number> {
  const recorded: { req: EncapsulatedTestRequest; contentType: string; chunks: Uint8Array[] }[] = []
  for (let i = 0; i < 4; i++) {
    const req = await encapsulate(keyConfigs, '/v1/chat/completions', body(i))
    const res = await request(`${url}/v1/ohttp`, { method: 'POST', dispatcher, body: req.body, headers: { 'content-type': req.contentType } })
    const chunks: Uint8Array[] = []
    for await (const c of res.body) chunks.push(c)
    recorded.push({ req, contentType: String(res.headers['content-type']), chunks })
  }
  // Exactly what viaGateway does per response, without the network.
  const open = async (r: (typeof recorded)[0]) => {
    const reader = r.req.chunkedResponseOpener()
    const decoder = new BhttpResponseDecoder()
    for (const c of r.chunks) {
      const out = reader.push(c)
      for (const p of out instanceof Promise ? await out : out) decoder.push(p)
    }
    for (const p of reader.end()) decoder.push(p)
    decoder.end()
  }
  for (let i = 0; i < 50; i++) await open(recorded[i % 4]!)
  const n = 400
  const c0 = cpuOf(process.pid)
  for (let i = 0; i < n; i++) await open(recorded[i % 4]!)
  return (cpuOf(process.pid) - c0) / n
}

/** CPU ms a process has used so far: sum_exec_runtime from /proc/PID/schedstat (ns; 0 where /proc is absent). */
function cpuOf(pid: number | undefined): number {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6
  } catch {
    return 0
  }
}

let pids: number[] = []

async function run(concurrency: number, total: number, one: (i: number) => Promise<Sample>) {
  const cpu0 = [process.pid, ...pids].map(cpuOf)
  const samples: Sample[] = []
  let next = 0
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) samples.push(await one(next++))
    }),
  )
  const wall = performance.now() - t0
  const tokens = samples.reduce((a, s) => a + s.tokens, 0)
  const [client, engine, gateway, forwarder] = [process.pid, ...pids].map((pid, k) => (cpuOf(pid) - cpu0[k]!) / total)
  const cpuMsPerRequest = { client: client!, engine: engine!, gateway: gateway!, forwarder: forwarder! }
  const q = (f: (s: Sample) => number, p: number) => quantile(samples.map(f), p)
  return {
    ttftP50: q((s) => s.ttft, 0.5),
    ttftP99: q((s) => s.ttft, 0.99),
    latencyP50: q((s) => s.latency, 0.5),
    latencyP99: q((s) => s.latency, 0.99),
    tokensPerSecond: (tokens / wall) * 1000,
    cpuMsPerRequest,
  }
}

async function main() {
  const engine = await child('engine', String(TOKENS), String(DELAY_MS))
  const gateway = await child('gateway', engine.url)
  const forwarder = await child('forwarder', engine.url)
  pids = [engine.proc.pid!, gateway.proc.pid!, forwarder.proc.pid!]
  try {
    const keyConfigs = new Uint8Array(await (await request(`${gateway.url}/.well-known/ohttp-gateway`, { dispatcher })).body.arrayBuffer())
    const gatewayRun = async (c: number, total: number) => {
      const { requests, cpuMs } = await prepare(keyConfigs, total)
      encapsulateCpuMs.push(cpuMs)
      return run(c, total, (i) => viaGateway(requests[i]!, gateway.url))
    }
    const encapsulateCpuMs: number[] = []
    // Warm-up both paths at the largest concurrency (JIT, every connection, key caches).
    await run(64, 128, (i) => direct(engine.url, i))
    await run(64, 128, (i) => direct(forwarder.url, i))
    await gatewayRun(64, 128)
    const decryptCpuMs = await decryptCost(keyConfigs, gateway.url)
    console.log(`gateway bench: node ${process.version}, ${TOKENS} tokens/request, ${DELAY_MS} ms/token, ${REQUESTS} requests per run`)
    const results: Record<string, unknown> = {}
    for (const c of STREAMS) {
      const total = c === 1 ? Math.min(REQUESTS, 128) : Math.max(REQUESTS, c * 4)
      // Interleave: direct, forwarder, gateway, twice — drift hits all three.
      const d1 = await run(c, total / 2, (i) => direct(engine.url, i))
      const f1 = await run(c, total / 2, (i) => direct(forwarder.url, i))
      const g1 = await gatewayRun(c, total / 2)
      const d2 = await run(c, total / 2, (i) => direct(engine.url, i))
      const f2 = await run(c, total / 2, (i) => direct(forwarder.url, i))
      const g2 = await gatewayRun(c, total / 2)
      const avg = (a: number, b: number) => (a + b) / 2
      const mean = (x: typeof d1, y: typeof d1) => ({
        ttftP50: avg(x.ttftP50, y.ttftP50),
        ttftP99: avg(x.ttftP99, y.ttftP99),
        latencyP50: avg(x.latencyP50, y.latencyP50),
        latencyP99: avg(x.latencyP99, y.latencyP99),
        tps: avg(x.tokensPerSecond, y.tokensPerSecond),
      })
      const [d, f, g] = [mean(d1, d2), mean(f1, f2), mean(g1, g2)]
      const r = {
        direct_ttft_p50_ms: round(d.ttftP50, 3),
        gateway_ttft_p50_ms: round(g.ttftP50, 3),
        added_ttft_p50_ms: round(g.ttftP50 - d.ttftP50, 3),
        added_ttft_p99_ms: round(g.ttftP99 - d.ttftP99, 3),
        direct_latency_p50_ms: round(d.latencyP50, 3),
        gateway_latency_p50_ms: round(g.latencyP50, 3),
        added_latency_p50_ms: round(g.latencyP50 - d.latencyP50, 3),
        added_latency_p99_ms: round(g.latencyP99 - d.latencyP99, 3),
        direct_tokens_per_s: round(d.tps, 1),
        gateway_tokens_per_s: round(g.tps, 1),
        throughput_ratio: round(g.tps / d.tps, 3),
        forwarder_added_latency_p50_ms: round(f.latencyP50 - d.latencyP50, 3),
        forwarder_throughput_ratio: round(f.tps / d.tps, 3),
        added_over_forwarder_latency_p50_ms: round(g.latencyP50 - f.latencyP50, 3),
        throughput_ratio_over_forwarder: round(g.tps / f.tps, 3),
      }
      const cpu = (x: typeof d1, y: typeof d1) => ({
        client: round(avg(x.cpuMsPerRequest.client, y.cpuMsPerRequest.client), 3),
        engine: round(avg(x.cpuMsPerRequest.engine, y.cpuMsPerRequest.engine), 3),
        gateway: round(avg(x.cpuMsPerRequest.gateway, y.cpuMsPerRequest.gateway), 3),
        forwarder: round(avg(x.cpuMsPerRequest.forwarder, y.cpuMsPerRequest.forwarder), 3),
      })
      Object.assign(r, { cpu_ms_per_request_direct: cpu(d1, d2), cpu_ms_per_request_forwarder: cpu(f1, f2), cpu_ms_per_request_gateway: cpu(g1, g2) })
      results[`streams_${c}`] = r
      console.log(`  ${c} stream(s): CPU ms/request direct ${JSON.stringify(cpu(d1, d2))}, via forwarder ${JSON.stringify(cpu(f1, f2))}, via gateway ${JSON.stringify(cpu(g1, g2))}`)
      console.log(`  ${c} stream(s): TTFT p50 ${r.direct_ttft_p50_ms} → ${r.gateway_ttft_p50_ms} ms (+${r.added_ttft_p50_ms}), latency p50 ${r.direct_latency_p50_ms} → ${r.gateway_latency_p50_ms} ms (+${r.added_latency_p50_ms}, p99 +${r.added_latency_p99_ms}), tokens/s ${r.direct_tokens_per_s} → ${r.gateway_tokens_per_s} (ratio ${r.throughput_ratio})`)
      console.log(`  ${c} stream(s): bare forwarder adds p50 ${r.forwarder_added_latency_p50_ms} ms (ratio ${r.forwarder_throughput_ratio}); the gateway adds ${r.added_over_forwarder_latency_p50_ms} ms over it (ratio ${r.throughput_ratio_over_forwarder})`)
    }
    const s1 = results.streams_1 as { added_latency_p50_ms: number } | undefined
    const s64 = results.streams_64 as { throughput_ratio: number } | undefined
    const meets = s1 !== undefined && s64 !== undefined && s1.added_latency_p50_ms <= TARGETS.addedP50MsOneStream && s64.throughput_ratio >= TARGETS.throughputRatio64
    const client = {
      client_encapsulate_cpu_ms: round(quantile(encapsulateCpuMs, 0.5), 3),
      client_decrypt_cpu_ms_per_request: round(decryptCpuMs, 3),
    }
    console.log(`  client (not timed): encapsulate ${client.client_encapsulate_cpu_ms} ms CPU/request; decrypt ${client.client_decrypt_cpu_ms_per_request} ms CPU/request (inside the timed path)`)
    console.log(`  targets: added p50 <= ${TARGETS.addedP50MsOneStream} ms at 1 stream, ratio >= ${TARGETS.throughputRatio64} at 64: ${meets ? 'met' : 'MISSED'}`)
    console.log(JSON.stringify({ bench: 'gateway', node: process.version, tokens: TOKENS, delay_ms: DELAY_MS, ...results, ...client, targets: TARGETS, meets_targets: meets }))
  } finally {
    // SIGINT lets a profiled child write its profile before exiting.
    engine.proc.kill('SIGINT')
    gateway.proc.kill('SIGINT')
    forwarder.proc.kill('SIGINT')
    await dispatcher.close()
  }
}

main().catch((e) => {
  console.error(`gateway bench FAILED: ${e instanceof Error ? e.message : String(e)}`)
  process.exitCode = 1
})
