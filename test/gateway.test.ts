/**
 * The provider gateway (gateway/) against an in-memory enclave: every
 * route and its schema through inject(), the limits (body size, media type,
 * per-client rate, concurrent streams, deadlines), the error registry and
 * problem documents, the metrics exposition; then real sockets for what
 * inject() cannot show — chunks reaching the client one at a time, a client
 * disconnect cancelling the enclave's work, graceful shutdown.
 *
 * Errors are asserted by code; timing only by order of events, never by
 * wall-clock bounds.
 */
import t from 'tap'
import { once } from 'node:events'
import { request as httpRequest } from 'node:http'
import { ENCLAVE_ERROR_CODES, EnclaveError, type EnclaveErrorCode } from '../enclave/errors.ts'
import {
  GATEWAY_ERROR_CODES,
  GatewayError,
  OHTTP_KEY_PROBLEM_TYPE,
  errorCodeOf,
  problemFor,
} from '../gateway/errors.ts'
import { startGateway } from '../gateway/main.ts'
import { createTokenBucketLimiter, clientKeyResolver, rateLimitKeyOf } from '../gateway/plugins/limits.ts'
import {
  FAKE_KEY_CONFIGS,
  MARK,
  createGate,
  errorRequest,
  fakeChunk,
  fakeRequest,
  listenLocal,
  problemOf,
  streamingPost,
  testConfig,
  testGateway,
  until,
  FakeEnclave,
} from './helpers/fake-enclave.ts'
import { createGatewayLogger } from '../gateway/plugins/logging.ts'

const NONCE = 'ab'.repeat(32)
const OHTTP = { 'content-type': 'message/ohttp-req' }
const CHUNKED = { 'content-type': 'message/ohttp-chunked-req' }
const text = (i: number) => Buffer.from(fakeChunk(i)).toString('latin1')

t.test('error registry', async (t) => {
  for (const [code, info] of Object.entries(GATEWAY_ERROR_CODES)) {
    t.ok(code.startsWith('GATEWAY_'), `${code} is namespaced`)
    t.ok(info.status >= 400 && info.status < 600, `${code} has an error status`)
    t.equal(new GatewayError(code as keyof typeof GATEWAY_ERROR_CODES).status, info.status)
  }
  t.match(GATEWAY_ERROR_CODES, {
    GATEWAY_BODY_TOO_LARGE: { status: 413 },
    GATEWAY_UNSUPPORTED_MEDIA_TYPE: { status: 415 },
    GATEWAY_RATE_LIMITED: { status: 429 },
    GATEWAY_TOO_MANY_STREAMS: { status: 503 },
    GATEWAY_BAD_NONCE: { status: 400 },
    GATEWAY_NOT_READY: { status: 503 },
    GATEWAY_UPSTREAM_UNAVAILABLE: { status: 502 },
    GATEWAY_INTERNAL: { status: 500 },
  })
  t.equal(OHTTP_KEY_PROBLEM_TYPE, 'https://iana.org/assignments/http-problem-types#ohttp-key')

  const leaky = new Error('secret prompt text')
  const p = problemFor(leaky)
  t.equal(p.status, 500)
  t.equal(p.problem.code, 'GATEWAY_INTERNAL')
  t.notMatch(JSON.stringify(p), /secret/, 'an unknown error message never reaches the problem document')
  t.equal(errorCodeOf(Object.assign(new Error('x'), { code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 })), 'GATEWAY_BODY_TOO_LARGE')
  t.equal(errorCodeOf(Object.assign(new Error('x'), { code: 'FST_ERR_SOMETHING_NEW', statusCode: 400 })), 'GATEWAY_BAD_REQUEST')
  t.equal(errorCodeOf(Object.assign(new Error('x'), { code: 'FST_ERR_SOMETHING_NEW', statusCode: 500 })), 'GATEWAY_INTERNAL')
})

t.test('GET /healthz and /readyz', async (t) => {
  const { app, enclave } = testGateway(t)
  const health = await app.inject({ url: '/healthz' })
  t.equal(health.statusCode, 200)
  t.same(health.json(), { status: 'ok' })

  const ready = await app.inject({ url: '/readyz' })
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'ready', epoch: '7', registration: 'not-required' })

  enclave.ready = false
  const notReady = await app.inject({ url: '/readyz' })
  t.equal(notReady.statusCode, 503)
  t.match(notReady.headers['content-type'], /^application\/problem\+json/)
  t.match(problemOf(notReady), { code: 'GATEWAY_NOT_READY', status: 503, checks: { evidence: false, registration: 'not-required' } })
  t.equal((await app.inject({ url: '/healthz' })).statusCode, 200, 'liveness does not depend on readiness')
})

t.test('/readyz with a registration check', async (t) => {
  let registered: boolean | Error = false
  const { app } = testGateway(t, {
    registrationReady: async () => {
      if (registered instanceof Error) throw registered
      return registered
    },
  })
  t.match(problemOf(await app.inject({ url: '/readyz' })), { code: 'GATEWAY_NOT_READY', checks: { evidence: true, registration: false } })
  registered = true
  t.same((await app.inject({ url: '/readyz' })).json(), { status: 'ready', epoch: '7', registration: 'registered' })
  registered = new Error('rpc down')
  const failing = await app.inject({ url: '/readyz' })
  t.equal(failing.statusCode, 503, 'a check that throws fails closed')
})

t.test('GET /.well-known/ohttp-gateway', async (t) => {
  const { app } = testGateway(t)
  const res = await app.inject({ url: '/.well-known/ohttp-gateway' })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'application/ohttp-keys')
  t.match(res.headers['cache-control'], /max-age=\d+/)
  t.same(new Uint8Array(res.rawPayload), FAKE_KEY_CONFIGS)
})

t.test('GET /v1/attestation', async (t) => {
  t.test('a valid nonce gets the bundle, cached per nonce', async (t) => {
    const { app, enclave } = testGateway(t, { config: { limits: { attestationRate: { requestsPerSecond: 1, burst: 100 } } } })
    const res = await app.inject({ url: `/v1/attestation?nonce=${NONCE}` })
    t.equal(res.statusCode, 200)
    t.match(res.headers['content-type'], /^application\/json/)
    t.match(res.json(), { version: 1, nonce: NONCE, epoch: '7', eventLog: null, gpu: null, signingAddress: `0x${'ab'.repeat(20)}` })
    const upper = await app.inject({ url: `/v1/attestation?nonce=${NONCE.toUpperCase()}` })
    t.equal(upper.json().nonce, NONCE, 'hex is case-insensitive; the bundle names the nonce in lower case')
    t.equal(enclave.calls.attest, 1, 'the same nonce is answered from the cache')
    await app.inject({ url: `/v1/attestation?nonce=${'cd'.repeat(32)}` })
    t.equal(enclave.calls.attest, 2, 'a new nonce makes new evidence')
    const extra = await app.inject({ url: `/v1/attestation?nonce=${NONCE}&other=1` })
    t.equal(extra.statusCode, 200, 'unknown query parameters are dropped by the schema')
  })

  t.test('bad nonces are refused with GATEWAY_BAD_NONCE', async (t) => {
    const { app, enclave } = testGateway(t, { config: { limits: { attestationRate: { requestsPerSecond: 1, burst: 100 } } } })
    const bad = ['', 'ab', NONCE.slice(2), `${NONCE}ab`, `${NONCE.slice(2)}zz`, `0x${NONCE.slice(2)}`, `${NONCE.slice(1)} `]
    for (const nonce of bad) {
      const res = await app.inject({ url: `/v1/attestation?nonce=${encodeURIComponent(nonce)}` })
      t.equal(res.statusCode, 400, `nonce ${JSON.stringify(nonce)}`)
      t.match(res.headers['content-type'], /^application\/problem\+json/)
      t.match(problemOf(res), { type: 'about:blank', status: 400, code: 'GATEWAY_BAD_NONCE' })
    }
    t.equal(problemOf(await app.inject({ url: '/v1/attestation' })).code, 'GATEWAY_BAD_NONCE', 'missing')
    t.equal(problemOf(await app.inject({ url: `/v1/attestation?nonce=${NONCE}&nonce=${NONCE}` })).code, 'GATEWAY_BAD_NONCE', 'repeated')
    t.equal(enclave.calls.attest, 0, 'the enclave never saw a bad nonce')
  })

  t.test('enclave failures keep their codes; failures are not cached', async (t) => {
    const { app, enclave } = testGateway(t, {
      config: { limits: { attestationRate: { requestsPerSecond: 1, burst: 100 } } },
      enclave: { attestError: new EnclaveError('ENCLAVE_EVIDENCE_UNAVAILABLE', 'quote provider failed') },
    })
    const res = await app.inject({ url: `/v1/attestation?nonce=${NONCE}` })
    t.equal(res.statusCode, 503)
    t.equal(problemOf(res).code, 'ENCLAVE_EVIDENCE_UNAVAILABLE')
    await app.inject({ url: `/v1/attestation?nonce=${NONCE}` })
    t.equal(enclave.calls.attest, 2, 'a failure is retried, not remembered')
    enclave.options.attestError = new Error('surprise')
    const other = await app.inject({ url: `/v1/attestation?nonce=${NONCE}` })
    t.equal(other.statusCode, 502)
    t.equal(problemOf(other).code, 'GATEWAY_UPSTREAM_UNAVAILABLE')
  })
})

t.test('GET /v1/models', async (t) => {
  t.test('lists the enclave models in the OpenAI shape', async (t) => {
    const { app } = testGateway(t, { enclave: { models: ['m1', 'm2'] } })
    const res = await app.inject({ url: '/v1/models' })
    t.equal(res.statusCode, 200)
    t.same(res.json(), { object: 'list', data: [{ id: 'm1', object: 'model' }, { id: 'm2', object: 'model' }] })
  })
  t.test('an engine list that cannot be fetched is 502', async (t) => {
    const { app } = testGateway(t, { enclave: { modelsError: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ENGINE_UNREACHABLE' }) } })
    const res = await app.inject({ url: '/v1/models' })
    t.equal(res.statusCode, 502)
    t.match(problemOf(res), { code: 'GATEWAY_UPSTREAM_UNAVAILABLE' })
    t.notMatch(res.body, /ECONNREFUSED/)
  })
  t.test('an EnclaveError keeps its status', async (t) => {
    const { app } = testGateway(t, { enclave: { modelsError: new EnclaveError('ENCLAVE_CLOSED', 'closing') } })
    const res = await app.inject({ url: '/v1/models' })
    t.equal(res.statusCode, 503)
    t.equal(problemOf(res).code, 'ENCLAVE_CLOSED')
  })
  t.test('an engine that does not answer in time is 504', async (t) => {
    const { app } = testGateway(t, { config: { timeouts: { upstreamMs: 1 } }, enclave: { modelsHang: true } })
    const res = await app.inject({ url: '/v1/models' })
    t.equal(res.statusCode, 504)
    t.equal(problemOf(res).code, 'GATEWAY_UPSTREAM_TIMEOUT')
  })
})

t.test('POST /v1/ohttp', async (t) => {
  t.test('a chunked response is relayed byte for byte, uncompressed, unstored, without a length', async (t) => {
    const { app, enclave } = testGateway(t)
    const res = await app.inject({ method: 'POST', url: '/v1/ohttp', headers: { ...CHUNKED, 'accept-encoding': 'gzip, br' }, payload: fakeRequest(MARK.STREAM, 'ciphertext') })
    t.equal(res.statusCode, 200)
    t.equal(res.headers['content-type'], 'message/ohttp-chunked-res')
    t.equal(res.headers['cache-control'], 'no-store')
    t.equal(res.headers['content-length'], undefined)
    t.equal(res.headers['content-encoding'], undefined)
    t.equal(res.body, `${text(0)}${text(1)}${text(2)}`)
    t.notOk(enclave.aborted(), 'a completed stream is not cancelled')
    t.same(enclave.outcomes.map((o) => o.code), ['ok'])
  })

  t.test('a non-chunked response keeps its media type; media type parameters and case are accepted', async (t) => {
    const { app } = testGateway(t)
    const res = await app.inject({ method: 'POST', url: '/v1/ohttp', headers: { 'content-type': 'Message/OHTTP-Req; x=1' }, payload: fakeRequest(MARK.SINGLE) })
    t.equal(res.statusCode, 200)
    t.equal(res.headers['content-type'], 'message/ohttp-res')
    t.equal(res.body, text(0))
  })

  t.test('other media types are 415, before the enclave sees anything', async (t) => {
    const { app, enclave } = testGateway(t)
    for (const headers of [{ 'content-type': 'application/json' }, { 'content-type': 'text/plain' }, { 'content-type': 'message/ohttp-res' }, {}]) {
      const res = await app.inject({ method: 'POST', url: '/v1/ohttp', headers, payload: fakeRequest(MARK.STREAM, '{"prompt":"x"}') })
      t.equal(res.statusCode, 415, JSON.stringify(headers))
      t.match(res.headers['content-type'], /^application\/problem\+json/)
      t.equal(problemOf(res).code, 'GATEWAY_UNSUPPORTED_MEDIA_TYPE')
    }
    t.equal(enclave.calls.handle, 0)
  })

  t.test('an oversized body is 413, with or without a declared length', async (t) => {
    const { app, enclave } = testGateway(t, { config: { limits: { bodyLimitBytes: 1024 } } })
    const fits = await app.inject({ method: 'POST', url: '/v1/ohttp', headers: OHTTP, payload: Buffer.concat([fakeRequest(MARK.SINGLE), Buffer.alloc(1023)]) })
    t.equal(fits.statusCode, 200, 'exactly the limit is accepted')
    const big = await app.inject({ method: 'POST', url: '/v1/ohttp', headers: OHTTP, payload: Buffer.concat([fakeRequest(MARK.SINGLE), Buffer.alloc(1024)]) })
    t.equal(big.statusCode, 413)
    t.equal(problemOf(big).code, 'GATEWAY_BODY_TOO_LARGE')
    const { Readable } = await import('node:stream')
    const chunked = await app.inject({
      method: 'POST',
      url: '/v1/ohttp',
      headers: { ...OHTTP, 'transfer-encoding': 'chunked' },
      payload: Readable.from([fakeRequest(MARK.SINGLE), Buffer.alloc(4096)]),
    })
    t.equal(chunked.statusCode, 413)
    t.equal(enclave.calls.handle, 1, 'only the request within the limit reached the enclave')
  })

  t.test('every EnclaveError code becomes its status and a problem document', async (t) => {
    const { app } = testGateway(t, { config: { limits: { rate: { requestsPerSecond: 1, burst: 1000 } } } })
    for (const [code, info] of Object.entries(ENCLAVE_ERROR_CODES)) {
      const res = await app.inject({ method: 'POST', url: '/v1/ohttp', headers: OHTTP, payload: errorRequest(code as EnclaveErrorCode) })
      t.equal(res.statusCode, info.status, code)
      t.match(res.headers['content-type'], /^application\/problem\+json/)
      const problem = problemOf(res)
      t.equal(problem.code, code)
      t.equal(problem.status, info.status)
      const keyProblem = ['ENCLAVE_OHTTP_KEY_UNKNOWN', 'ENCLAVE_OHTTP_EPOCH_EXPIRED', 'ENCLAVE_OHTTP_UNSUPPORTED_SUITE'].includes(code)
      t.equal(problem.type, keyProblem ? OHTTP_KEY_PROBLEM_TYPE : 'about:blank', `${code} problem type (RFC 9458 §5.3)`)
    }
  })

  t.test('an unexpected enclave failure is 500 and its message goes nowhere', async (t) => {
    const { app } = testGateway(t)
    const res = await app.inject({ method: 'POST', url: '/v1/ohttp', headers: OHTTP, payload: fakeRequest(MARK.PLAIN_ERROR, 'do not repeat me') })
    t.equal(res.statusCode, 500)
    t.equal(problemOf(res).code, 'GATEWAY_INTERNAL')
    t.notMatch(res.body, /repeat/)
  })

  t.test('an enclave that never answers is cut at the first-byte deadline, and cancelled', async (t) => {
    const { app, enclave } = testGateway(t, { config: { timeouts: { firstByteMs: 1 } } })
    const res = await app.inject({ method: 'POST', url: '/v1/ohttp', headers: OHTTP, payload: fakeRequest(MARK.HANG) })
    t.equal(res.statusCode, 504)
    t.equal(problemOf(res).code, 'GATEWAY_UPSTREAM_TIMEOUT')
    t.ok(enclave.aborted(), 'the enclave was told to stop')
    t.equal((enclave.signals[0]!.reason as GatewayError).code, 'GATEWAY_UPSTREAM_TIMEOUT')
    t.equal(app.gatewayLimits.slots.active, 0, 'the stream slot is free again')
  })

  t.test('other methods on the route are 404 problems', async (t) => {
    const { app } = testGateway(t)
    const res = await app.inject({ method: 'GET', url: '/v1/ohttp' })
    t.equal(res.statusCode, 404)
    t.equal(problemOf(res).code, 'GATEWAY_NOT_FOUND')
  })
})

t.test('unknown routes are 404 problem documents', async (t) => {
  const { app } = testGateway(t)
  const res = await app.inject({ url: '/v1/chat/completions?x=1' })
  t.equal(res.statusCode, 404)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  t.match(problemOf(res), { code: 'GATEWAY_NOT_FOUND', status: 404, title: 'Not Found' })
})

t.test('per-client rate limits', async (t) => {
  t.test('token bucket: burst, then Retry-After, refill with time', async (t) => {
    const { app, clock } = testGateway(t, { config: { limits: { rate: { requestsPerSecond: 2, burst: 3 } } } })
    const get = (remoteAddress = '10.0.0.1') => app.inject({ url: '/v1/models', remoteAddress })
    for (let i = 0; i < 3; i++) t.equal((await get()).statusCode, 200, `burst request ${i + 1}`)
    const limited = await get()
    t.equal(limited.statusCode, 429)
    t.equal(limited.headers['retry-after'], '1')
    t.match(problemOf(limited), { code: 'GATEWAY_RATE_LIMITED', status: 429 })
    t.equal((await get('10.0.0.2')).statusCode, 200, 'another client has its own bucket')
    clock.advance(500)
    t.equal((await get()).statusCode, 200, 'one token refilled after 1/rate seconds')
    t.equal((await get()).statusCode, 429)
    t.equal((await app.inject({ url: '/healthz', remoteAddress: '10.0.0.1' })).statusCode, 200, 'probes are never limited')
  })

  t.test('attestation has its own, tighter bucket', async (t) => {
    const { app } = testGateway(t, { config: { limits: { rate: { requestsPerSecond: 100, burst: 100 }, attestationRate: { requestsPerSecond: 0.1, burst: 1 } } } })
    t.equal((await app.inject({ url: `/v1/attestation?nonce=${NONCE}` })).statusCode, 200)
    const limited = await app.inject({ url: `/v1/attestation?nonce=${NONCE}` })
    t.equal(limited.statusCode, 429)
    t.equal(limited.headers['retry-after'], '10')
    t.equal((await app.inject({ url: '/v1/models' })).statusCode, 200, 'the general bucket is untouched')
  })

  t.test('a relay header names clients only for trusted peers', async (t) => {
    const { app } = testGateway(t, {
      config: { limits: { rate: { requestsPerSecond: 1, burst: 1 } }, clientAddress: { header: 'X-Relay-Client', trustedPeers: ['10.9.9.9'] } },
    })
    const viaRelay = (client: string) => app.inject({ url: '/v1/models', remoteAddress: '10.9.9.9', headers: { 'x-relay-client': client } })
    t.equal((await viaRelay('alice')).statusCode, 200)
    t.equal((await viaRelay('bob')).statusCode, 200, 'two clients behind one relay')
    t.equal((await viaRelay('alice')).statusCode, 429)
    const direct = (client: string) => app.inject({ url: '/v1/models', remoteAddress: '10.1.1.1', headers: { 'x-relay-client': client } })
    t.equal((await direct('carol')).statusCode, 200)
    t.equal((await direct('dave')).statusCode, 429, 'an untrusted peer cannot choose its bucket with the header')
  })

  t.test('limiter bookkeeping', async (t) => {
    let now = 0
    const limiter = createTokenBucketLimiter({ requestsPerSecond: 1, burst: 1, now: () => now, maxClients: 2 })
    t.equal(limiter.take('a'), 0)
    t.equal(limiter.take('a'), 1)
    limiter.take('b')
    limiter.take('c')
    t.equal(limiter.size, 2, 'the least recently seen client is forgotten past maxClients')
    now = -5000
    t.equal(limiter.take('c'), 1, 'a clock stepping back refills nothing')
    t.throws(() => createTokenBucketLimiter({ requestsPerSecond: 0, burst: 1 }))
    const key = clientKeyResolver(null)
    t.equal(key({ socket: { remoteAddress: '::ffff:192.0.2.1' } } as never), 'a:192.0.2.1', 'IPv4-mapped addresses are one client')
  })

  t.test('IPv6 clients are rate limited by /64', async (t) => {
    t.equal(rateLimitKeyOf('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64')
    t.equal(rateLimitKeyOf('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64', 'every address of the /64 is one client')
    t.equal(rateLimitKeyOf('2001:db8::1'), '2001:db8:0:0::/64', 'compressed zeros')
    t.equal(rateLimitKeyOf('::1'), '0:0:0:0::/64')
    t.equal(rateLimitKeyOf('fe80::1%eth0'), 'fe80:0:0:0::/64', 'zone id dropped')
    t.equal(rateLimitKeyOf('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64', 'embedded IPv4')
    t.equal(rateLimitKeyOf('192.0.2.1'), '192.0.2.1', 'IPv4 stays whole')
    for (const bad of ['1::2::3', '1:2:3:4:5:6:7:8:9', 'g::1', 'not an address', '1:2:3:4:5:6:7']) t.equal(rateLimitKeyOf(bad), bad, `${bad}: kept as is`)

    const { app } = testGateway(t, { config: { limits: { rate: { requestsPerSecond: 1, burst: 1 } } } })
    const from = (remoteAddress: string) => app.inject({ url: '/v1/models', remoteAddress })
    t.equal((await from('2001:db8:1:2::a')).statusCode, 200)
    t.equal((await from('2001:db8:1:2::b')).statusCode, 429, 'another address of the same /64 shares the bucket')
    t.equal((await from('2001:db8:1:3::a')).statusCode, 200, 'the next /64 is another client')
  })
})

t.test('concurrent streams beyond the limit are 503 before the body is read', async (t) => {
  const gate = createGate()
  const { app, enclave } = testGateway(t, { config: { limits: { maxConcurrentStreams: 1 } }, enclave: { gate, chunks: 2 } })
  const first = app.inject({ method: 'POST', url: '/v1/ohttp', headers: CHUNKED, payload: fakeRequest(MARK.STREAM) })
  await until(() => gate.waiting === 1)
  t.equal(app.gatewayLimits.slots.active, 1)
  const second = await app.inject({ method: 'POST', url: '/v1/ohttp', headers: CHUNKED, payload: fakeRequest(MARK.STREAM) })
  t.equal(second.statusCode, 503)
  t.equal(second.headers['retry-after'], '1')
  t.equal(problemOf(second).code, 'GATEWAY_TOO_MANY_STREAMS')
  t.equal(enclave.calls.handle, 1, 'the refused request never reached the enclave')
  gate.release()
  gate.release()
  t.equal((await first).statusCode, 200)
  await until(() => app.gatewayLimits.slots.active === 0)
  gate.release()
  gate.release()
  const third = await app.inject({ method: 'POST', url: '/v1/ohttp', headers: CHUNKED, payload: fakeRequest(MARK.STREAM) })
  t.equal(third.statusCode, 200, 'the slot was given back')
})

t.test('metrics: route, status class and outcome labels only', async (t) => {
  const { app } = testGateway(t, { config: { limits: { rate: { requestsPerSecond: 1, burst: 1000 } } } })
  await app.inject({ url: '/v1/models' })
  await app.inject({ url: '/v1/attestation?nonce=zz' })
  await app.inject({ url: `/v1/attestation?nonce=${NONCE}` })
  await app.inject({ method: 'POST', url: '/v1/ohttp', headers: OHTTP, payload: fakeRequest(MARK.STREAM, 'SECRET-BODY') })
  await app.inject({ method: 'POST', url: '/v1/ohttp', headers: OHTTP, payload: errorRequest('ENCLAVE_OHTTP_REPLAYED') })
  await app.inject({ url: '/no/such/path?q=SECRET-QUERY', headers: { 'user-agent': 'SECRET-UA' } })
  const res = await app.inject({ url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  const body = res.body
  t.match(body, 'cgw_gateway_requests_total{route="/v1/models",status_class="2xx",outcome="ok"} 1')
  t.match(body, 'cgw_gateway_requests_total{route="/v1/attestation",status_class="4xx",outcome="GATEWAY_BAD_NONCE"} 1')
  t.match(body, 'cgw_gateway_requests_total{route="/v1/ohttp",status_class="2xx",outcome="ok"} 1')
  t.match(body, 'cgw_gateway_requests_total{route="/v1/ohttp",status_class="4xx",outcome="ENCLAVE_OHTTP_REPLAYED"} 1')
  t.match(body, 'cgw_gateway_requests_total{route="unmatched",status_class="4xx",outcome="GATEWAY_NOT_FOUND"} 1')
  t.match(body, 'cgw_gateway_request_duration_seconds_bucket{le="0.001",route="/v1/models",status_class="2xx",outcome="ok"}')
  t.match(body, 'cgw_gateway_enclave_outcomes_total{operation="handle",code="ok"} 1')
  t.match(body, 'cgw_gateway_enclave_outcomes_total{operation="handle",code="ENCLAVE_OHTTP_REPLAYED"} 1')
  t.match(body, 'cgw_gateway_enclave_outcomes_total{operation="attest",code="ok"} 1')
  t.match(body, 'cgw_gateway_active_streams 0')
  t.notMatch(body, /SECRET/)

  const allowed = new Set(['route', 'status_class', 'outcome', 'operation', 'code', 'le'])
  for (const line of body.split('\n')) {
    if (line.startsWith('#') || line === '') continue
    t.match(line, /^cgw_gateway_/, 'only the gateway\'s own series')
    const labels = /\{(.*)\}/.exec(line)?.[1] ?? ''
    for (const [, name] of labels.matchAll(/(\w+)="/g)) t.ok(allowed.has(name!), `label ${name} is allowed`)
  }

  const hidden = testGateway(t, { config: { metrics: false } })
  t.equal((await hidden.app.inject({ url: '/metrics' })).statusCode, 404, 'metrics can be left off the public port')
})

t.test('each server has its own registry', async (t) => {
  const a = testGateway(t)
  const b = testGateway(t)
  await a.app.inject({ url: '/v1/models' })
  t.match((await a.app.inject({ url: '/metrics' })).body, 'route="/v1/models"')
  t.notMatch((await b.app.inject({ url: '/metrics' })).body, 'route="/v1/models"')
})

// ------------------------------------------------------------ real sockets --

t.test('streaming over a socket: each chunk reaches the client before the next exists', async (t) => {
  const gate = createGate()
  const { app, enclave } = testGateway(t, { enclave: { gate, chunks: 4 } })
  const port = await listenLocal(app)
  const post = streamingPost(port, fakeRequest(MARK.STREAM, 'ciphertext'))
  gate.release()
  const res = await post.response
  t.equal(res.statusCode, 200)
  t.equal(res.headers['transfer-encoding'], 'chunked')
  t.equal(res.headers['content-length'], undefined)
  for (let i = 0; i < 4; i++) {
    await post.waitFor(text(i))
    t.equal(enclave.produced[0], i + 1, `chunk ${i} arrived while the enclave had produced only ${i + 1}`)
    t.notMatch(post.received(), text(i + 1))
    if (i < 3) gate.release()
  }
  const done = await post.done
  t.ok(done.complete, 'the response ended properly')
  t.equal(done.body, [0, 1, 2, 3].map(text).join(''), 'in order, nothing added')
})

t.test('a client disconnect mid-stream aborts the enclave signal', async (t) => {
  const gate = createGate()
  const { app, enclave } = testGateway(t, { enclave: { gate, chunks: 5 } })
  const port = await listenLocal(app)
  const post = streamingPost(port, fakeRequest(MARK.STREAM))
  gate.release()
  await post.waitFor(text(0))
  const signal = enclave.signals[0]!
  t.notOk(signal.aborted)
  post.destroy()
  if (!signal.aborted) await once(signal, 'abort')
  t.equal((signal.reason as GatewayError).code, 'GATEWAY_CLIENT_CLOSED')
  await until(() => app.gatewayLimits.slots.active === 0)
  t.ok(enclave.produced[0]! < 5, 'the enclave stopped producing')
  await until(() => enclave.outcomes.length === 1)
  t.equal(enclave.outcomes[0]!.code, 'ENGINE_CANCELLED')
  const metrics = (await app.inject({ url: '/metrics' })).body
  t.match(metrics, 'cgw_gateway_requests_total{route="/v1/ohttp",status_class="2xx",outcome="GATEWAY_CLIENT_CLOSED"} 1')
})

t.test('a failure after the first byte cuts the response (no silent success)', async (t) => {
  const { app, enclave } = testGateway(t)
  const port = await listenLocal(app)
  const post = streamingPost(port, fakeRequest(MARK.FAIL_MID_STREAM, 'secret'))
  const done = await post.done
  t.notOk(done.complete, 'the client sees an incomplete response')
  t.equal(done.body, text(0), 'what was produced was delivered, nothing else')
  await until(() => app.gatewayLimits.slots.active === 0)
  t.ok(enclave.aborted())
  const metrics = (await app.inject({ url: '/metrics' })).body
  t.match(metrics, 'cgw_gateway_requests_total{route="/v1/ohttp",status_class="2xx",outcome="GATEWAY_INTERNAL"} 1')
})

t.test('an enclave stalled mid-stream is cut at the idle deadline', async (t) => {
  const { app, enclave } = testGateway(t, { config: { timeouts: { streamIdleMs: 5 } } })
  const port = await listenLocal(app)
  const post = streamingPost(port, fakeRequest(MARK.STALL))
  const done = await post.done
  t.notOk(done.complete)
  t.equal(done.body, text(0))
  t.equal((enclave.signals[0]!.reason as GatewayError).code, 'GATEWAY_UPSTREAM_TIMEOUT')
  await until(() => app.gatewayLimits.slots.active === 0)
  const metrics = (await app.inject({ url: '/metrics' })).body
  t.match(metrics, 'cgw_gateway_requests_total{route="/v1/ohttp",status_class="2xx",outcome="GATEWAY_UPSTREAM_TIMEOUT"} 1', 'the gateway names the cause')
  t.match(metrics, 'cgw_gateway_enclave_outcomes_total{operation="handle",code="ENGINE_CANCELLED"} 1', 'the enclave reports the cancellation')
})

t.test('graceful shutdown', async (t) => {
  t.test('running streams finish; new connections are refused; the enclave closes last', async (t) => {
    const gate = createGate()
    const enclave = new FakeEnclave({ gate, chunks: 3 })
    const gw = await startGateway(testConfig({ listen: { port: 0 } }), { enclave, logger: createGatewayLogger('silent'), handleSignals: false })
    t.teardown(() => gw.shutdown())
    const post = streamingPost(gw.address.port, fakeRequest(MARK.STREAM))
    gate.release()
    await post.waitFor(text(0))

    const stopped = gw.shutdown('test')
    const refused = await new Promise<string>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port: gw.address.port, path: '/healthz' }, (res) => resolve(`answered ${res.statusCode}`))
      req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'))
      req.end()
    })
    t.equal(refused, 'ECONNREFUSED', 'no new connections once shutdown began')
    t.notOk(enclave.closed, 'the enclave stays open while a stream runs')
    t.notOk(enclave.aborted(), 'the running stream is not cut within the grace period')

    gate.release()
    gate.release()
    const done = await post.done
    t.ok(done.complete)
    t.equal(done.body, [0, 1, 2].map(text).join(''))
    await stopped
    t.ok(enclave.closed, 'the enclave is closed after the last stream')
    await gw.closed
  })

  t.test('streams still running at the deadline are cut and cancelled', async (t) => {
    const gate = createGate()
    const enclave = new FakeEnclave({ gate, chunks: 3 })
    const gw = await startGateway(testConfig({ listen: { port: 0 }, timeouts: { shutdownGraceMs: 1 } }), { enclave, logger: createGatewayLogger('silent'), handleSignals: false })
    const post = streamingPost(gw.address.port, fakeRequest(MARK.STREAM))
    gate.release()
    await post.waitFor(text(0))
    await gw.shutdown('test')
    t.equal((enclave.signals[0]!.reason as GatewayError).code, 'GATEWAY_SHUTTING_DOWN')
    t.notOk((await post.done).complete, 'the client sees the cut')
    t.ok(enclave.closed)
  })

  t.test('SIGTERM and SIGINT handlers are installed and removed', async (t) => {
    const before = { term: process.listenerCount('SIGTERM'), int: process.listenerCount('SIGINT') }
    const enclave = new FakeEnclave()
    const gw = await startGateway(testConfig({ listen: { port: 0 } }), { enclave, logger: createGatewayLogger('silent') })
    t.equal(process.listenerCount('SIGTERM'), before.term + 1)
    t.equal(process.listenerCount('SIGINT'), before.int + 1)
    // Call the installed handler as the signal would, without signalling the test process.
    const handler = process.listeners('SIGTERM').at(-1) as (s: NodeJS.Signals) => void
    handler('SIGTERM')
    await gw.closed
    t.ok(enclave.closed)
    t.equal(process.listenerCount('SIGTERM'), before.term)
    t.equal(process.listenerCount('SIGINT'), before.int)
  })
})
