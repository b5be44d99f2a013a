/**
 * Canary test of the gateway's outputs (test/helpers/canary.ts): canary
 * strings go in through every channel a client controls — bodies, query
 * strings, header values, the path, the attestation nonce — on every
 * endpoint, streaming and not, success and each kind of failure; none may
 * come out in a log line, stdout/stderr, the metrics, or a file.
 *
 * The fake enclave is deliberately careless: its plain errors quote the
 * whole request in their message, which is exactly what the gateway must
 * never pass on. A control run proves the harness finds a canary when one
 * does leak.
 */
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { request as httpRequest } from 'node:http'
import { ENCLAVE_ERROR_CODES, type EnclaveErrorCode } from '../enclave/errors.ts'
import { runCanaryHarness, type CanaryScenarioContext } from './helpers/canary.ts'
import { FakeEnclave, MARK, createGate, errorRequest, fakeChunk, fakeRequest, streamingPost, until } from './helpers/fake-enclave.ts'

/** A prompt-like canary and a hex one (usable as an attestation nonce). */
const PROMPT_CANARY = 'CANARY-prompt-9f31c2e7'
const HEX_CANARY = 'c3a7a9e1'.repeat(8)
const CANARIES = [PROMPT_CANARY, HEX_CANARY]

const PROMPT_JSON = JSON.stringify({ model: 'm', prompt: PROMPT_CANARY, messages: [{ role: 'user', content: PROMPT_CANARY }], input: PROMPT_CANARY })

const HEADERS = {
  authorization: `Bearer ${PROMPT_CANARY}`,
  cookie: `session=${PROMPT_CANARY}`,
  'user-agent': PROMPT_CANARY,
  'x-request-id': PROMPT_CANARY,
  'x-relay-client': PROMPT_CANARY,
  'x-forwarded-for': PROMPT_CANARY,
  referer: `https://example.com/?q=${PROMPT_CANARY}`,
}
const QUERY = `?prompt=${encodeURIComponent(PROMPT_CANARY)}&h=${HEX_CANARY}`

/** A raw request over the socket (for what inject() cannot do: a real disconnect). */
function rawGet(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, headers: HEADERS }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end()
  })
}

async function everyChannel({ app, port }: CanaryScenarioContext, enclave: FakeEnclave, gate: ReturnType<typeof createGate>): Promise<void> {
  const post = (payload: Buffer | string, contentType = 'message/ohttp-req') =>
    app.inject({ method: 'POST', url: `/v1/ohttp${QUERY}`, headers: { ...HEADERS, 'content-type': contentType }, payload })

  // Public GET routes, each with canaries in query and headers.
  for (const path of ['/healthz', '/readyz', '/v1/models', '/.well-known/ohttp-gateway', '/metrics']) {
    await app.inject({ url: `${path}${QUERY}`, headers: HEADERS })
  }
  // Attestation: a canary as the (valid) nonce, and as an invalid one.
  await app.inject({ url: `/v1/attestation?nonce=${HEX_CANARY}&x=${PROMPT_CANARY}`, headers: HEADERS })
  await app.inject({ url: `/v1/attestation?nonce=${PROMPT_CANARY}`, headers: HEADERS })
  await app.inject({ url: `/v1/attestation?nonce=${HEX_CANARY}00`, headers: HEADERS })
  // Unknown paths carrying the canary in the path itself.
  await app.inject({ url: `/${PROMPT_CANARY}/${HEX_CANARY}${QUERY}`, headers: HEADERS })
  await app.inject({ method: 'POST', url: `/v1/chat/completions${QUERY}`, headers: { ...HEADERS, 'content-type': 'application/json' }, payload: PROMPT_JSON })

  // Encapsulated requests: success (chunked and single), every enclave error,
  // a careless plain error quoting the input, a mid-stream failure.
  gate.release()
  gate.release()
  gate.release()
  await post(fakeRequest(MARK.STREAM, PROMPT_JSON), 'message/ohttp-chunked-req')
  await post(fakeRequest(MARK.SINGLE, PROMPT_JSON))
  for (const code of Object.keys(ENCLAVE_ERROR_CODES)) await post(Buffer.concat([errorRequest(code as EnclaveErrorCode)]))
  await post(fakeRequest(MARK.PLAIN_ERROR, PROMPT_JSON))
  // inject() rejects a response cut after its first byte, which is the point.
  await post(fakeRequest(MARK.FAIL_MID_STREAM, PROMPT_JSON)).catch(() => {})
  // Refused before the enclave: wrong media type, no media type, oversized.
  await post(PROMPT_JSON, 'application/json')
  await post(PROMPT_JSON, `text/plain; charset=${PROMPT_CANARY}`)
  await post(Buffer.concat([fakeRequest(MARK.STREAM), Buffer.from(PROMPT_JSON.repeat(200))]))

  // Over real sockets: a streamed success, a client disconnect mid-stream,
  // an enclave stalled past the idle deadline, raw GETs.
  const ok = streamingPost(port, fakeRequest(MARK.STREAM, PROMPT_JSON))
  for (let i = 0; i < 3; i++) gate.release()
  await ok.done
  const cut = streamingPost(port, fakeRequest(MARK.STREAM, PROMPT_JSON))
  gate.release()
  await cut.waitFor(Buffer.from(fakeChunk(0)).toString('latin1'))
  const before = enclave.outcomes.length
  cut.destroy()
  await until(() => enclave.outcomes.length > before)
  await streamingPost(port, fakeRequest(MARK.STALL, PROMPT_JSON)).done
  await rawGet(port, `/v1/models${QUERY}`)
  await rawGet(port, `/${PROMPT_CANARY}`)

  // Limits: rate-limited and too-many-streams answers, with canaries.
  await until(() => app.gatewayLimits.slots.active === 0)
  for (let i = 0; i < 12; i++) await app.inject({ url: `/v1/attestation?nonce=${HEX_CANARY}`, headers: HEADERS })
  const held = post(fakeRequest(MARK.STREAM, PROMPT_JSON), 'message/ohttp-chunked-req')
  await until(() => gate.waiting === 1)
  await post(fakeRequest(MARK.STREAM, PROMPT_JSON))
  for (let i = 0; i < 3; i++) gate.release()
  await held
}

t.test('no canary from any input channel reaches logs, metrics, stdout/stderr or files', async (t) => {
  const gate = createGate()
  const enclave = new FakeEnclave({ gate, chunks: 3 })
  const report = await runCanaryHarness({
    canaries: CANARIES,
    enclave,
    config: {
      limits: { bodyLimitBytes: 4096, maxConcurrentStreams: 1, rate: { requestsPerSecond: 1, burst: 1000 }, attestationRate: { requestsPerSecond: 1, burst: 5 } },
      clientAddress: { header: 'x-relay-client', trustedPeers: ['127.0.0.1'] },
      timeouts: { streamIdleMs: 20 },
    },
    scenario: (context) => everyChannel(context, enclave, gate),
  })
  t.same(report.leaks, [], 'no canary anywhere')
  // The scenario did go down every path it claims to.
  const outcomes = new Set(report.logLines.map((l) => (JSON.parse(l) as { outcome?: string }).outcome).filter((o) => o !== undefined))
  const expected = [
    'ok',
    'GATEWAY_BAD_NONCE',
    'GATEWAY_NOT_FOUND',
    'GATEWAY_UNSUPPORTED_MEDIA_TYPE',
    'GATEWAY_BODY_TOO_LARGE',
    'GATEWAY_INTERNAL',
    'GATEWAY_CLIENT_CLOSED',
    'GATEWAY_UPSTREAM_TIMEOUT',
    'GATEWAY_RATE_LIMITED',
    'GATEWAY_TOO_MANY_STREAMS',
    ...Object.keys(ENCLAVE_ERROR_CODES),
  ]
  for (const code of expected) t.ok(outcomes.has(code), `a request ended with ${code}`)
  t.ok(report.metricsBytes > 0)
  t.same(report.filesScanned, ['gateway.log'])
  t.ok(enclave.calls.handle > Object.keys(ENCLAVE_ERROR_CODES).length, 'the requests did reach the enclave')
})

t.test('control: the harness does find leaks', async (t) => {
  const report = await runCanaryHarness({
    canaries: CANARIES,
    enclave: new FakeEnclave(),
    scenario: async ({ app, dir }) => {
      app.log.info({ note: 'x' }, `careless ${PROMPT_CANARY}`)
      app.log.info({ model: HEX_CANARY.toUpperCase() }, 'upper-case hex')
      await writeFile(join(dir, 'state'), Buffer.from(PROMPT_CANARY).toString('base64'))
      await writeFile(join(dir, 'dump.json'), JSON.stringify(Buffer.from(HEX_CANARY)))
    },
  })
  const found = (canary: string, where: RegExp, encoding: string) =>
    report.leaks.some((l) => l.canary === canary && where.test(l.where) && l.encoding === encoding)
  t.ok(found(PROMPT_CANARY, /^log line \d+$/, 'raw'), 'a canary in a log message')
  t.ok(found(HEX_CANARY, /^log line \d+$/, 'lowercase'), 'hex in another case')
  t.ok(found(PROMPT_CANARY, /^file state$/, 'base64'), 'a base64 canary in a file')
  t.ok(found(HEX_CANARY, /^file dump\.json$/, 'json-buffer'), 'a JSON-serialised Buffer in a file')
})
