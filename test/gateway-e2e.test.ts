/**
 * The provider's product end to end on loopback: the test engine, the real
 * enclave (dev TEE) and the real gateway on a socket, driven by an OHTTP
 * client over HTTP. Streaming, receipts, attestation, the bad-input list at
 * the gateway's edge, and the canary: a prompt that must appear in no log
 * line, metric or file, through every endpoint, streaming or not,
 * succeeding or failing.
 */
import t, { type Test } from 'tap'
import { request } from 'undici'
import { keccak256 } from 'viem'
import { createDevQuoteSigner, createDevRootCa, DEV_FMSPC } from '../attestation/dev/index.ts'
import { createEnclave } from '../enclave/enclave.ts'
import { createHttpEngine } from '../enclave/engines/http.ts'
import { verifyEvidenceBinding } from '../enclave/evidence.ts'
import { createDevEventLogProvider, createDevQuoteProvider } from '../enclave/quote-providers/dev.ts'
import { receiptFromJson, verifyReceipt } from '../enclave/receipts.ts'
import type { EvidenceBundle } from '../enclave/types.ts'
import { buildServer } from '../gateway/server.ts'
import { runCanaryHarness } from './helpers/canary.ts'
import { startEngineServer } from './helpers/engine-server.ts'
import { listenLocal, testConfig } from './helpers/fake-enclave.ts'
import { encapsulate, ohttpRequest, requestBody, text, type Transport } from './helpers/ohttp-client.ts'

const NOW = new Date('2026-11-01T00:00:00Z')
const ca = createDevRootCa({ now: NOW, seed: new Uint8Array(32).fill(2) })
const signer = createDevQuoteSigner(ca, { fmspc: DEV_FMSPC, now: NOW })

async function realEnclave(t: Test, engineUrl: string) {
  const enclave = await createEnclave({
    engine: createHttpEngine({ baseUrl: engineUrl, bodyTimeoutMs: 1000 }),
    quotes: createDevQuoteProvider({ signer }),
    eventLog: createDevEventLogProvider(),
    gpu: null,
    epochLengthMs: 3_600_000,
    graceMs: 60_000,
  })
  t.teardown(() => enclave.close())
  return enclave
}

function httpTransport(port: number): Transport {
  return async (body, contentType, signal) => {
    const res = await request(`http://127.0.0.1:${port}/v1/ohttp`, { method: 'POST', body, headers: { 'content-type': contentType }, signal })
    if (res.statusCode !== 200) throw Object.assign(new Error('outer status'), { code: `HTTP_${res.statusCode}`, body: await res.body.text() })
    return { contentType: String(res.headers['content-type']), chunks: res.body }
  }
}

async function keyConfigs(port: number): Promise<Uint8Array> {
  const res = await request(`http://127.0.0.1:${port}/.well-known/ohttp-gateway`)
  return new Uint8Array(await res.body.arrayBuffer())
}

async function stack(t: Test, config: Record<string, unknown> = {}) {
  const engine = await startEngineServer()
  t.teardown(() => engine.close())
  const enclave = await realEnclave(t, engine.url)
  const app = buildServer({ enclave, config: testConfig(config) })
  t.teardown(() => app.close())
  const port = await listenLocal(app)
  return { engine, enclave, app, port, transport: httpTransport(port) }
}

const chat = (content: string, extra: Record<string, unknown> = {}) => ({ model: 'test-model', messages: [{ role: 'user', content }], ...extra })

t.test('streamed completion through the gateway: events as they come, receipt verifies', async (t) => {
  const { engine, enclave, port, transport } = await stack(t)
  // One request first: the first through a fresh process compiles its code
  // paths, which on a loaded machine can take longer than a token.
  await ohttpRequest(await keyConfigs(port), transport, '/v1/chat/completions', chat('warm up', { stream: true }))
  engine.knobs.tokenDelayMs = 20
  const body = chat('hello gateway', { stream: true })
  const res = await ohttpRequest(await keyConfigs(port), transport, '/v1/chat/completions', body)
  t.equal(res.status, 200)
  const sent = engine.stats.log.at(-1)!
  t.equal(res.events.length, sent.eventsSent, 'one encrypted chunk per SSE event')
  // Flushed at once: each event was decrypted before the engine sent the next one.
  for (let i = 0; i + 1 < res.events.length; i++) t.ok(res.arrivedAt[i]! < sent.sentAt[i + 1]!, `event ${i} before the engine sent event ${i + 1}`)
  const { fields, signature, domain } = receiptFromJson(res.receipt!)
  t.equal(fields.requestHash, keccak256(requestBody(body)))
  t.equal(fields.responseHash, keccak256(Buffer.concat(res.events)))
  t.ok(await verifyReceipt(fields, signature, enclave.status().signingAddress, domain))
})

t.test('attestation through the gateway binds the served key config', async (t) => {
  const { port } = await stack(t)
  const nonce = 'ab'.repeat(32)
  const res = await request(`http://127.0.0.1:${port}/v1/attestation?nonce=${nonce}`)
  t.equal(res.statusCode, 200)
  const bundle = (await res.body.json()) as EvidenceBundle
  t.equal(bundle.nonce, nonce)
  verifyEvidenceBinding(bundle, { expectedNonce: new Uint8Array(Buffer.from(nonce, 'hex')) })
  const served = await keyConfigs(port)
  t.same(Buffer.from(bundle.keyConfig, 'base64'), Buffer.from(served.subarray(2)), 'the served key config is the attested one')
  const again = (await (await request(`http://127.0.0.1:${port}/v1/attestation?nonce=${nonce}`)).body.json()) as EvidenceBundle
  t.equal(again.quote, bundle.quote, 'cached per nonce')
})

t.test('bad input at the edge: problem+json codes, and the server keeps serving', async (t) => {
  const { engine, port, transport } = await stack(t, { limits: { bodyLimitBytes: 4096 } })
  const configs = await keyConfigs(port)
  const post = async (body: Uint8Array, contentType = 'message/ohttp-chunked-req') => {
    const res = await request(`http://127.0.0.1:${port}/v1/ohttp`, { method: 'POST', body, headers: { 'content-type': contentType } })
    const text = await res.body.text()
    return { status: res.statusCode, code: res.statusCode === 200 ? 'ok' : JSON.parse(text).code }
  }
  const req = await encapsulate(configs, '/v1/chat/completions', chat('edge'))
  const wrongKey = req.body.slice()
  wrongKey[0] = (wrongKey[0]! + 1) & 0xff
  t.same(await post(wrongKey), { status: 422, code: 'ENCLAVE_OHTTP_KEY_UNKNOWN' })
  const flipped = req.body.slice()
  flipped[flipped.length - 1]! ^= 1
  t.same(await post(flipped), { status: 400, code: 'ENCLAVE_OHTTP_DECRYPT_FAILED' })
  t.same(await post(req.body.subarray(0, 10)), { status: 400, code: 'ENCLAVE_OHTTP_MALFORMED' })
  t.same((await post(req.body, 'application/json')).status, 415)
  t.same((await post(new Uint8Array(8192))).status, 413)
  t.equal((await post(req.body)).status, 200)
  t.same(await post(req.body), { status: 400, code: 'ENCLAVE_OHTTP_REPLAYED' })
  // Engine down: the outer request succeeds, the inner answer says 503.
  await engine.close()
  const down = await ohttpRequest(configs, transport, '/v1/chat/completions', chat('down'))
  t.equal(down.status, 503)
  t.equal(JSON.parse(text(Buffer.concat(down.events))).error.code, 'ENGINE_UNAVAILABLE')
  const health = await request(`http://127.0.0.1:${port}/healthz`)
  t.equal(health.statusCode, 200, 'still serving')
  await health.body.dump()
})

t.test('a stream that fails inside the enclave ends with its code, and the gateway records that code', async (t) => {
  const { engine, app, port, transport } = await stack(t)
  engine.knobs.stallAfter = 2
  const res = await ohttpRequest(await keyConfigs(port), transport, '/v1/chat/completions', chat('stall', { stream: true }))
  engine.release()
  t.equal(res.trailers['cgw-error'], 'ENGINE_TIMEOUT', 'the client is told, inside the encryption')
  t.equal(res.events.length, 3, 'the events that came, then the error event')
  const metrics = (await app.inject({ url: '/metrics' })).body
  t.match(metrics, 'cgw_gateway_requests_total{route="/v1/ohttp",status_class="2xx",outcome="ENGINE_TIMEOUT"} 1', 'recorded before the response closed')
})

t.test('client disconnect mid-stream cancels the engine request', async (t) => {
  const { engine, port, transport } = await stack(t)
  engine.knobs.tokenDelayMs = 30
  engine.knobs.tokens = 500
  const ac = new AbortController()
  let n = 0
  await ohttpRequest(await keyConfigs(port), transport, '/v1/chat/completions', chat('bye', { stream: true }), {
    signal: ac.signal,
    onEvent: () => {
      if (++n === 3) ac.abort()
    },
  }).catch(() => undefined)
  await engine.until((s) => s.aborted >= 1)
  t.equal(engine.stats.aborted, 1)
})

t.test('canary: the prompt appears in no log line, metric or file', async (t) => {
  const CANARY = 'CANARY-7f3a9c-never-log-me'
  const engine = await startEngineServer()
  t.teardown(() => engine.close())
  const enclave = await realEnclave(t, engine.url)
  const report = await runCanaryHarness({
    canaries: [CANARY],
    enclave,
    scenario: async ({ port }) => {
      const configs = await keyConfigs(port)
      const transport = httpTransport(port)
      const ask = (path: string, body: unknown) => ohttpRequest(configs, transport, path, body).catch(() => undefined)
      await ask('/v1/chat/completions', chat(CANARY, { stream: true }))
      await ask('/v1/chat/completions', chat(CANARY))
      await ask('/v1/completions', { model: 'test-model', prompt: CANARY, stream: true })
      await ask('/v1/embeddings', { model: 'test-model', input: CANARY })
      await ask('/v1/chat/completions', chat(CANARY, { model: `no-model-${CANARY}` }))
      engine.knobs.status = 400 // upstream error bodies echo the prompt
      await ask('/v1/chat/completions', chat(CANARY))
      engine.knobs.status = null
      engine.knobs.stallAfter = 1
      await ask('/v1/chat/completions', chat(CANARY, { stream: true }))
      engine.release()
      engine.knobs.stallAfter = null
      engine.knobs.garbage = 'sse-data'
      await ask('/v1/chat/completions', chat(CANARY, { stream: true }))
      engine.knobs.garbage = null
      // Plaintext canaries where a careless client might put them, outside the encryption.
      await request(`http://127.0.0.1:${port}/v1/attestation?nonce=${CANARY}`).then((r) => r.body.dump())
      await request(`http://127.0.0.1:${port}/v1/ohttp?q=${CANARY}`, {
        method: 'POST',
        body: Buffer.from(CANARY),
        headers: { 'content-type': 'message/ohttp-req', 'x-prompt': CANARY },
      }).then((r) => r.body.dump())
      const replay = await encapsulate(configs, '/v1/chat/completions', chat(CANARY))
      for (let i = 0; i < 2; i++) {
        await request(`http://127.0.0.1:${port}/v1/ohttp`, { method: 'POST', body: replay.body, headers: { 'content-type': replay.contentType } }).then((r) => r.body.dump())
      }
    },
  })
  t.ok(report.logLines.length > 10, `the scenario logged (${report.logLines.length} lines)`)
  t.ok(report.metricsBytes > 0)
  t.same(report.leaks, [], 'no canary anywhere')
  t.ok(engine.stats.log.some((r) => r.body.includes(CANARY)), 'while the engine did receive the plaintext (inside the CVM)')
})

t.test('a stalled upload gives its stream slot back (no lock-out by slow bodies)', async (t) => {
  const { port } = await stack(t, { limits: { maxConcurrentStreams: 2 }, timeouts: { requestMs: 300 } })
  const { connect } = await import('node:net')
  const stalled = [0, 1].map(() => {
    const s = connect(port, '127.0.0.1')
    s.on('error', () => {})
    s.write('POST /v1/ohttp HTTP/1.1\r\nhost: x\r\ncontent-type: message/ohttp-chunked-req\r\ncontent-length: 100000\r\n\r\nab')
    return new Promise<void>((resolve) => s.on('close', () => resolve()))
  })
  await Promise.all(stalled) // both dropped by the gateway after requestMs
  const res = await request(`http://127.0.0.1:${port}/v1/ohttp`, { method: 'POST', body: new Uint8Array(40), headers: { 'content-type': 'message/ohttp-chunked-req' } })
  const problem = (await res.body.json()) as { code: string }
  t.not(problem.code, 'GATEWAY_TOO_MANY_STREAMS', 'a new client gets a slot')
})
