/**
 * The HTTP engine against a real OpenAI-compatible server on loopback
 * (test/helpers/engine-server.ts): models, plain and streamed completions,
 * embeddings; every upstream failure mode and its distinct code; client
 * cancellation reaching the server; keep-alive reuse; and the SSE parser,
 * with a property test (fixed seed) that any split of a valid event stream
 * into chunks yields the same events.
 *
 * Ordering is proven with the server's own counters (a stalled server that
 * has sent exactly one event) and with timestamps compared to each other,
 * never with wall-clock bounds. Every test closes the engine and server it
 * starts.
 */
import t, { type Test } from 'tap'
import fc from 'fast-check'
import { performance } from 'node:perf_hooks'
import { createHttpEngine, upstreamErrorTokens, type HttpEngineOptions } from '../enclave/engines/http.ts'
import { ENGINE_ERROR_CODES, EngineError, isEngineError, type EngineErrorCode } from '../enclave/engines/errors.ts'
import { SseParser, type SseEvent } from '../enclave/engines/sse.ts'
import type { Engine } from '../enclave/types.ts'
import { expectedTokens, startEngineServer, type EngineServer, type EngineServerKnobs } from './helpers/engine-server.ts'
import { codeOf } from './helpers/errors.ts'

const SEED = 20240611
const MODEL = 'test-model'
/** Sent as the prompt wherever an error could leak it. */
const CANARY = 'CANARY-7f3a-do-not-log'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

function json(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value))
}

function chat(stream: boolean, extra: Record<string, unknown> = {}): Uint8Array {
  return json({ model: MODEL, stream, messages: [{ role: 'user', content: CANARY }], ...extra })
}

/** Start a server and an engine on it; both are closed when the test ends. */
async function setup(
  t: Test,
  knobs: Partial<EngineServerKnobs> = {},
  options: Partial<HttpEngineOptions> = {},
): Promise<{ server: EngineServer; engine: Engine }> {
  const server = await startEngineServer(knobs)
  const engine = createHttpEngine({ baseUrl: server.url, ...options })
  t.teardown(async () => {
    // Server first: a test that failed half-way may leave a stalled request that a graceful pool close would wait for.
    await server.close()
    await engine.close()
  })
  return { server, engine }
}

async function collect(body: AsyncIterable<Uint8Array>): Promise<string[]> {
  const out: string[] = []
  for await (const chunk of body) out.push(decoder.decode(chunk))
  return out
}

/** The code of what `p` rejects with (undefined when it resolves or throws a non-project error). */
async function rejection(p: Promise<unknown>): Promise<EngineError> {
  try {
    await p
  } catch (e) {
    if (e instanceof EngineError) return e
    throw e
  }
  throw new Error('expected a rejection')
}

/** Content of a streamed chat/completions event list (without [DONE]). */
function streamedText(events: string[]): string {
  return events
    .filter((e) => e !== 'data: [DONE]\n\n')
    .map((e) => {
      const v = JSON.parse(e.slice('data: '.length)) as { choices: { delta?: { content?: string }; text?: string }[] }
      const c = v.choices[0]!
      return c.delta?.content ?? c.text ?? ''
    })
    .join('')
}

/** No error the engine throws may carry the prompt: not in its message, details or JSON form. */
function assertNoCanary(t: Test, e: EngineError): void {
  const rendered = `${e.message} ${JSON.stringify(e.toJSON())} ${JSON.stringify(e.toOpenAi())} ${String(e.cause ?? '')}`
  t.notOk(rendered.includes(CANARY), `${e.code} carries no prompt text`)
}

// --- the registry ---------------------------------------------------------

t.test('error registry: every code has an inner status and an OpenAI type; the body is OpenAI-shaped', async (t) => {
  for (const [code, info] of Object.entries(ENGINE_ERROR_CODES)) {
    t.ok(info.status >= 400 && info.status < 600, `${code} status`)
    t.match(info.type, /^[a-z_]+$/, `${code} type`)
    const e = new EngineError(code as EngineErrorCode, 'x')
    t.equal(e.status, info.status)
    t.ok(isEngineError(e))
    t.same(e.toOpenAi(), { error: { message: 'x', type: info.type, param: null, code } })
  }
  const passThrough = new EngineError('ENGINE_BAD_REQUEST', 'x', { status: 422 })
  t.equal(passThrough.status, 422)
  t.notOk(isEngineError(new Error('x')))
})

t.test('options are validated with a message saying what to give instead', async (t) => {
  const bad: HttpEngineOptions[] = [
    { baseUrl: 'not a url' },
    { baseUrl: 'ftp://127.0.0.1:1' },
    { baseUrl: 'http://10.0.0.5:8000' },
    { baseUrl: 'http://engine.example:8000' },
    { baseUrl: 'http://127.0.0.1:8000/v1' },
    { baseUrl: 'http://user:pw@127.0.0.1:8000' },
    { baseUrl: 'http://127.0.0.1:8000', connections: 0 },
    { baseUrl: 'http://127.0.0.1:8000', bodyTimeoutMs: -1 },
    { baseUrl: 'http://127.0.0.1:8000', maxResponseBytes: 1.5 },
    { baseUrl: 'http://127.0.0.1:8000', apiKey: 'a\nb' },
  ]
  for (const options of bad) {
    let err: unknown
    try {
      createHttpEngine(options)
    } catch (e) {
      err = e
    }
    t.equal(codeOf(err), 'ENGINE_OPTIONS_INVALID', JSON.stringify(options))
  }
  for (const baseUrl of ['http://127.0.0.1:8000', 'http://localhost:8000', 'http://[::1]:8000', 'http://127.1.2.3:1/prefix']) {
    await createHttpEngine({ baseUrl }).close()
  }
  await createHttpEngine({ baseUrl: 'http://10.0.0.5:8000', allowNonLoopback: true }).close()
  t.pass('loopback (and opted-in non-loopback) addresses are accepted')
})

// --- the happy paths ------------------------------------------------------

t.test('models() lists the engine models', async (t) => {
  const { server, engine } = await setup(t, { models: ['a', 'b'] })
  const models = await engine.models()
  t.same(models.map((m) => m.id), ['a', 'b'])
  t.equal(server.stats.byPath['/v1/models'], 1)
})

t.test('non-streamed chat: the body is forwarded as is and the answer comes whole, once', async (t) => {
  const { server, engine } = await setup(t, {}, { apiKey: 'secret-key' })
  const body = chat(false, { max_tokens: 5 })
  const res = await engine.request('/v1/chat/completions', body, { signal: new AbortController().signal })
  t.equal(res.status, 200)
  t.equal(res.stream, false)
  t.match(res.contentType, /^application\/json/)
  const chunks = await collect(res.body)
  t.equal(chunks.length, 1, 'one chunk')
  const answer = JSON.parse(chunks[0]!) as { choices: { message: { content: string } }[] }
  t.equal(answer.choices[0]!.message.content, expectedTokens(CANARY, 5).join(''))
  const seen = server.stats.log[0]!
  t.same(new Uint8Array(seen.body), body, 'request bytes forwarded unchanged')
  t.equal(seen.headers.authorization, 'Bearer secret-key')
  t.equal(seen.headers['content-type'], 'application/json')
})

t.test('non-streamed completions and embeddings', async (t) => {
  const { engine } = await setup(t)
  const signal = new AbortController().signal
  const c = await engine.request('/v1/completions', json({ model: MODEL, prompt: 'hello world', max_tokens: 3 }), { signal })
  const text = (JSON.parse((await collect(c.body))[0]!) as { choices: { text: string }[] }).choices[0]!.text
  t.equal(text, expectedTokens('hello world', 3).join(''))

  const e = await engine.request('/v1/embeddings', json({ model: MODEL, input: ['a', 'b'], stream: true }), { signal })
  t.equal(e.stream, false, 'embeddings are never streamed')
  const emb = JSON.parse((await collect(e.body))[0]!) as { data: { index: number; embedding: number[] }[] }
  t.equal(emb.data.length, 2)
  t.equal(emb.data[0]!.embedding.length, 8)
})

t.test('streamed chat: canonical events, in order, ending with [DONE]', async (t) => {
  const { engine } = await setup(t)
  const res = await engine.request('/v1/chat/completions', chat(true, { max_tokens: 6 }), { signal: new AbortController().signal })
  t.equal(res.status, 200)
  t.equal(res.stream, true)
  t.match(res.contentType, /^text\/event-stream/)
  const events = await collect(res.body)
  t.equal(events.length, 6 + 2, 'one event per token, the finish event, [DONE]')
  for (const e of events) t.match(e, /^data: [^\n]*\n\n$/, 'one data line, LF framed')
  t.equal(events.at(-1), 'data: [DONE]\n\n')
  t.equal(streamedText(events), expectedTokens(CANARY, 6).join(''))
})

t.test('streamed completions', async (t) => {
  const { engine } = await setup(t)
  const res = await engine.request('/v1/completions', json({ model: MODEL, prompt: 'p', stream: true, max_tokens: 4 }), {
    signal: new AbortController().signal,
  })
  const events = await collect(res.body)
  t.equal(streamedText(events), expectedTokens('p', 4).join(''))
})

t.test('each event is handed out before the server has sent the next (stepped by the server)', async (t) => {
  const { server, engine } = await setup(t, { stallAfter: 1 })
  const res = await engine.request('/v1/chat/completions', chat(true, { max_tokens: 4 }), { signal: new AbortController().signal })
  const it = res.body[Symbol.asyncIterator]()
  const total = 4 + 2
  for (let i = 0; i < total; i++) {
    const r = await it.next()
    t.notOk(r.done)
    t.equal(server.stats.log[0]!.eventsSent, i + 1, `event ${i} arrived while the server had sent exactly ${i + 1}`)
    server.knobs.stallAfter = i + 2
    server.release()
  }
  t.ok((await it.next()).done)
})

t.test('each event is handed out before the server sends the next (delay knob, timestamps ordered)', async (t) => {
  const { server, engine } = await setup(t, { tokenDelayMs: 40 })
  const res = await engine.request('/v1/chat/completions', chat(true, { max_tokens: 3 }), { signal: new AbortController().signal })
  const receivedAt: number[] = []
  for await (const _ of res.body) receivedAt.push(performance.now())
  const sentAt = server.stats.log[0]!.sentAt
  t.equal(receivedAt.length, sentAt.length)
  for (let i = 0; i + 1 < sentAt.length; i++) {
    t.ok(receivedAt[i]! < sentAt[i + 1]!, `event ${i} received before event ${i + 1} was sent`)
  }
})

t.test('CRLF, CR, comments, fragmented and coalesced writes give the same events', async (t) => {
  const variants: Partial<EngineServerKnobs>[] = [
    { lineEnding: '\r\n' },
    { lineEnding: '\r' },
    { comments: true },
    { comments: true, lineEnding: '\r\n', fragmentBytes: 3 },
    { fragmentBytes: 1 },
    { coalesce: true },
    { coalesce: true, lineEnding: '\r' },
  ]
  const { server, engine } = await setup(t)
  const signal = new AbortController().signal
  const baseline = await collect((await engine.request('/v1/chat/completions', chat(true), { signal })).body)
  for (const v of variants) {
    Object.assign(server.knobs, { lineEnding: '\n', comments: false, fragmentBytes: null, coalesce: false }, v)
    const events = await collect((await engine.request('/v1/chat/completions', chat(true), { signal })).body)
    // ids carry the request number: compare with it normalised.
    const norm = (es: string[]): string[] => es.map((e) => e.replace(/chatcmpl-\d+/, 'chatcmpl-N'))
    t.same(norm(events), norm(baseline), JSON.stringify(v))
  }
})

t.test('keep-alive: sequential streams reuse connections (the post-[DONE] terminator is drained, not dropped)', async (t) => {
  const { server, engine } = await setup(t)
  const signal = new AbortController().signal
  for (let i = 0; i < 10; i++) await collect((await engine.request('/v1/chat/completions', chat(true), { signal })).body)
  t.ok(server.stats.connections <= 2, `10 streams over ${server.stats.connections} connection(s)`)
})

t.test('64 concurrent streams all complete intact', async (t) => {
  const { engine } = await setup(t, { tokenDelayMs: 1 })
  const signal = new AbortController().signal
  const results = await Promise.all(
    Array.from({ length: 64 }, async (_, i) => {
      const prompt = `prompt ${i}`
      const res = await engine.request('/v1/chat/completions', json({ model: MODEL, stream: true, max_tokens: 5, messages: [{ role: 'user', content: prompt }] }), { signal })
      return streamedText(await collect(res.body)) === expectedTokens(prompt, 5).join('')
    }),
  )
  t.ok(results.every(Boolean))
})

// --- refused before contacting the engine ---------------------------------

t.test('unsupported paths and non-JSON bodies are ENGINE_BAD_REQUEST, and never reach the engine', async (t) => {
  const { server, engine } = await setup(t)
  const signal = new AbortController().signal
  for (const path of ['/v1/models', '/v1/chat/completions/', '/admin', '/v1/files']) {
    const e = await rejection(engine.request(path, chat(false), { signal }))
    t.equal(e.code, 'ENGINE_BAD_REQUEST', path)
    t.equal(e.status, 400)
  }
  for (const body of [encoder.encode('not json'), encoder.encode('[1]'), encoder.encode('null'), new Uint8Array([0x7b, 0xff, 0x7d])]) {
    const e = await rejection(engine.request('/v1/chat/completions', body, { signal }))
    t.equal(e.code, 'ENGINE_BAD_REQUEST')
  }
  t.equal(server.stats.requests, 0)
})

// --- upstream failures: one code each -------------------------------------

t.test('connection refused is ENGINE_UNAVAILABLE', async (t) => {
  const server = await startEngineServer()
  const url = server.url
  await server.close()
  const engine = createHttpEngine({ baseUrl: url })
  t.teardown(() => engine.close())
  const e = await rejection(engine.request('/v1/chat/completions', chat(false), { signal: new AbortController().signal }))
  t.equal(e.code, 'ENGINE_UNAVAILABLE')
  t.equal(e.status, 503)
  t.equal(e.details.transportCode, 'ECONNREFUSED')
  const m = await rejection(engine.models())
  t.equal(m.code, 'ENGINE_UNAVAILABLE')
})

t.test('a connection reset before the response is ENGINE_UNAVAILABLE', async (t) => {
  const { engine } = await setup(t, { resetBeforeHeaders: true })
  const e = await rejection(engine.request('/v1/chat/completions', chat(true), { signal: new AbortController().signal }))
  t.equal(e.code, 'ENGINE_UNAVAILABLE')
})

t.test('upstream statuses map to distinct codes; Retry-After is kept; error.message (the prompt echo) never is', async (t) => {
  const cases: { status: number; retryAfter?: string; code: EngineErrorCode; inner: number; errorBody?: string }[] = [
    { status: 429, retryAfter: '7', code: 'ENGINE_RATE_LIMITED', inner: 429 },
    { status: 400, code: 'ENGINE_BAD_REQUEST', inner: 400 },
    { status: 401, code: 'ENGINE_BAD_REQUEST', inner: 401 },
    { status: 413, code: 'ENGINE_BAD_REQUEST', inner: 413 },
    { status: 422, code: 'ENGINE_BAD_REQUEST', inner: 422 },
    { status: 404, code: 'ENGINE_MODEL_NOT_FOUND', inner: 404 },
    { status: 500, code: 'ENGINE_UPSTREAM_ERROR', inner: 502 },
    { status: 504, code: 'ENGINE_UPSTREAM_ERROR', inner: 502 },
    { status: 502, code: 'ENGINE_UNAVAILABLE', inner: 503 },
    { status: 503, retryAfter: 'Wed, 21 Oct 2015 07:28:00 GMT', code: 'ENGINE_UNAVAILABLE', inner: 503 },
    // vLLM's older top-level error object; the code says "model not found" on a 400.
    {
      status: 400,
      code: 'ENGINE_MODEL_NOT_FOUND',
      inner: 404,
      errorBody: JSON.stringify({ object: 'error', message: `no model for ${CANARY}`, type: 'NotFoundError', code: 'model_not_found' }),
    },
    // An error body that is not JSON, or whose tokens are text: the status still decides.
    { status: 500, code: 'ENGINE_UPSTREAM_ERROR', inner: 502, errorBody: `<html>${CANARY}</html>` },
    {
      status: 400,
      code: 'ENGINE_BAD_REQUEST',
      inner: 400,
      errorBody: JSON.stringify({ error: { type: `bad ${CANARY}`, code: `${CANARY} ${CANARY}`, message: CANARY } }),
    },
  ]
  const { server, engine } = await setup(t)
  const signal = new AbortController().signal
  for (const c of cases) {
    Object.assign(server.knobs, { status: c.status, retryAfter: c.retryAfter ?? null, errorBody: c.errorBody ?? null })
    for (const stream of [false, true]) {
      const e = await rejection(engine.request('/v1/chat/completions', chat(stream), { signal }))
      const label = `${c.status}${c.errorBody ? ' (custom body)' : ''} stream=${stream}`
      t.equal(e.code, c.code, label)
      t.equal(e.status, c.inner, `${label}: inner status`)
      t.equal(e.details.upstreamStatus, c.status)
      t.equal(e.retryAfter, c.retryAfter, `${label}: Retry-After`)
      assertNoCanary(t, e)
    }
  }
  server.knobs.status = 429
  server.knobs.errorBody = null
  const e = await rejection(engine.request('/v1/chat/completions', chat(false), { signal }))
  t.equal(e.details.upstreamType, 'requests')
  t.equal(e.details.upstreamCode, 'rate_limit_exceeded')
  server.knobs.retryAfter = `7; ${CANARY}`
  t.equal((await rejection(engine.request('/v1/chat/completions', chat(false), { signal }))).retryAfter, undefined, 'a malformed Retry-After is dropped')
})

t.test('an unknown model (the real 404 path) is ENGINE_MODEL_NOT_FOUND', async (t) => {
  const { engine } = await setup(t)
  const e = await rejection(engine.request('/v1/chat/completions', json({ model: 'nope', messages: [] }), { signal: new AbortController().signal }))
  t.equal(e.code, 'ENGINE_MODEL_NOT_FOUND')
  t.equal(e.details.upstreamCode, 'model_not_found')
})

t.test('models(): a failing or malformed model list has its own codes', async (t) => {
  const { server, engine } = await setup(t)
  server.knobs.status = 404
  t.equal((await rejection(engine.models())).code, 'ENGINE_UPSTREAM_ERROR', '404 on /v1/models is not a missing model')
  server.knobs.status = 503
  t.equal((await rejection(engine.models())).code, 'ENGINE_UNAVAILABLE')
  server.knobs.status = null
  server.knobs.models = []
  t.same(await engine.models(), [])
})

t.test('slow headers are ENGINE_TIMEOUT (headers)', async (t) => {
  const { server, engine } = await setup(t, { headersDelayMs: 60_000 }, { headersTimeoutMs: 100 })
  const e = await rejection(engine.request('/v1/chat/completions', chat(true), { signal: new AbortController().signal }))
  t.equal(e.code, 'ENGINE_TIMEOUT')
  t.equal(e.status, 504)
  t.equal(e.details.phase, 'headers')
  await server.until((s) => s.aborted === 1)
  t.pass('the server saw the request dropped')
})

t.test('a stall mid-stream is ENGINE_TIMEOUT (body), thrown from the iterator after the events that did arrive', async (t) => {
  const { engine } = await setup(t, { stallAfter: 2 }, { bodyTimeoutMs: 100 })
  const res = await engine.request('/v1/chat/completions', chat(true), { signal: new AbortController().signal })
  const got: string[] = []
  const e = await rejection(
    (async () => {
      for await (const ev of res.body) got.push(decoder.decode(ev))
    })(),
  )
  t.equal(got.length, 2)
  t.equal(e.code, 'ENGINE_TIMEOUT')
  t.equal(e.details.phase, 'body')
  t.equal(e.details.events, 2)
})

t.test('a stream closed (or reset) before [DONE] is ENGINE_STREAM_INTERRUPTED', async (t) => {
  for (const knobs of [{ closeAfter: 3 }, { resetAfter: 3 }, { closeAfter: 0 }]) {
    const { engine } = await setup(t, knobs)
    const res = await engine.request('/v1/chat/completions', chat(true), { signal: new AbortController().signal })
    const got: string[] = []
    const e = await rejection(
      (async () => {
        for await (const ev of res.body) got.push(decoder.decode(ev))
      })(),
    )
    t.equal(got.length, Object.values(knobs)[0], `${JSON.stringify(knobs)}: events before the cut`)
    t.equal(e.code, 'ENGINE_STREAM_INTERRUPTED', JSON.stringify(knobs))
    t.equal(e.status, 502)
  }
})

t.test('garbage is ENGINE_BAD_RESPONSE, in each of its forms', async (t) => {
  const { server, engine } = await setup(t)
  const signal = new AbortController().signal
  const forms: { garbage: EngineServerKnobs['garbage']; stream: boolean; reason: string; before?: number }[] = [
    { garbage: 'body', stream: false, reason: 'not_json' },
    { garbage: 'body', stream: true, reason: 'sse_unknown_field', before: 0 },
    { garbage: 'sse-data', stream: true, reason: 'sse_data_not_json', before: 1 },
    { garbage: 'content-type', stream: false, reason: 'content_type' },
    { garbage: 'content-type', stream: true, reason: 'content_type' },
    { garbage: 'http', stream: false, reason: 'http' },
    { garbage: 'http', stream: true, reason: 'http' },
  ]
  for (const f of forms) {
    server.knobs.garbage = f.garbage
    const label = `${f.garbage} stream=${f.stream}`
    let e: EngineError
    const got: string[] = []
    if (f.before === undefined) {
      e = await rejection(engine.request('/v1/chat/completions', chat(f.stream), { signal }))
    } else {
      const res = await engine.request('/v1/chat/completions', chat(f.stream), { signal })
      e = await rejection(
        (async () => {
          for await (const ev of res.body) got.push(decoder.decode(ev))
        })(),
      )
      t.equal(got.length, f.before, `${label}: good events first`)
    }
    t.equal(e.code, 'ENGINE_BAD_RESPONSE', label)
    t.equal(e.details.reason, f.reason, label)
    assertNoCanary(t, e)
  }
  server.knobs.garbage = 'body'
  t.equal((await rejection(engine.models())).code, 'ENGINE_BAD_RESPONSE', 'models() too')
})

t.test('answers larger than maxResponseBytes are ENGINE_BAD_RESPONSE (too large)', async (t) => {
  const { engine } = await setup(t, {}, { maxResponseBytes: 300 })
  const signal = new AbortController().signal
  const e = await rejection(engine.request('/v1/chat/completions', chat(false, { max_tokens: 100 }), { signal }))
  t.equal(e.code, 'ENGINE_BAD_RESPONSE')
  t.equal(e.details.reason, 'too_large')
  // Streams are not capped as a whole, only per event.
  const res = await engine.request('/v1/chat/completions', chat(true, { max_tokens: 20 }), { signal })
  t.equal((await collect(res.body)).length, 22)
})

// --- cancellation -----------------------------------------------------------

t.test('abort mid-stream: the iterator throws ENGINE_CANCELLED at once and the server sees the client go', async (t) => {
  const { server, engine } = await setup(t, { stallAfter: 2 })
  const ac = new AbortController()
  const res = await engine.request('/v1/chat/completions', chat(true), { signal: ac.signal })
  const it = res.body[Symbol.asyncIterator]()
  t.notOk((await it.next()).done)
  t.notOk((await it.next()).done)
  const pending = it.next() // waits on the stalled server
  ac.abort()
  const e = await rejection(pending)
  t.equal(e.code, 'ENGINE_CANCELLED')
  t.equal(e.status, 499)
  await server.until((s) => s.aborted === 1)
  t.equal(server.stats.log[0]!.aborted, true)
})

t.test('abort while waiting for headers rejects the request with ENGINE_CANCELLED; the server sees it', async (t) => {
  const { server, engine } = await setup(t, { headersDelayMs: 60_000 })
  const ac = new AbortController()
  const p = engine.request('/v1/chat/completions', chat(true), { signal: ac.signal })
  await server.until((s) => s.requests === 1)
  ac.abort()
  t.equal((await rejection(p)).code, 'ENGINE_CANCELLED')
  await server.until((s) => s.aborted === 1)
  t.pass('upstream request cancelled')
})

t.test('abort after the engine finished, with events still unread: the reader gets ENGINE_CANCELLED', async (t) => {
  const { server, engine } = await setup(t, { coalesce: true })
  const ac = new AbortController()
  const res = await engine.request('/v1/chat/completions', chat(true), { signal: ac.signal })
  const it = res.body[Symbol.asyncIterator]()
  t.notOk((await it.next()).done)
  await server.until((s) => s.log[0]!.finished)
  ac.abort()
  t.equal((await rejection(it.next())).code, 'ENGINE_CANCELLED')
})

t.test('a slow consumer of a large burst loses nothing (the socket is paused, and a paused socket does not time out)', async (t) => {
  const { engine } = await setup(t, { coalesce: true }, { bodyTimeoutMs: 100 })
  const res = await engine.request('/v1/chat/completions', chat(true, { max_tokens: 4000 }), { signal: new AbortController().signal })
  let n = 0
  for await (const _ of res.body) {
    // Far longer than bodyTimeoutMs, while the queue is full and the socket paused.
    if (n++ === 0) await new Promise((resolve) => setTimeout(resolve, 1500))
    else await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(n, 4000 + 2)
})

/** Read a stream through `push`: every event, and how it ended. */
function pushed(res: Awaited<ReturnType<Engine['request']>>, onEvent?: (n: number) => boolean) {
  const events: string[] = []
  let control!: ReturnType<NonNullable<typeof res.push>>
  const ended = new Promise<EngineError | undefined>((resolve) => {
    control = res.push!({
      event(bytes) {
        events.push(decoder.decode(bytes))
        return onEvent ? onEvent(events.length) : true
      },
      end: (e) => resolve(e as EngineError | undefined),
    })
  })
  return { events, ended, control }
}

t.test('push: the same events as the iterator, each handed over synchronously as parsed', async (t) => {
  const { engine } = await setup(t, { fragmentBytes: 7, comments: true, lineEnding: '\r\n' })
  const a = await engine.request('/v1/chat/completions', chat(true, { max_tokens: 9 }), { signal: new AbortController().signal })
  const viaIterator = await collect(a.body)
  const b = await engine.request('/v1/chat/completions', chat(true, { max_tokens: 9 }), { signal: new AbortController().signal })
  const p = pushed(b)
  t.equal(await p.ended, undefined, 'ended after [DONE]')
  const sameId = (events: string[]) => events.map((e) => e.replace(/"chatcmpl-\d+"/, '"chatcmpl-N"'))
  t.same(sameId(p.events), sameId(viaIterator))
  t.throws(() => b.push!({ event: () => true, end: () => {} }), 'a stream is read once')
  const c = await engine.request('/v1/chat/completions', chat(true), { signal: new AbortController().signal })
  for await (const _ of c.body) break
  t.throws(() => c.push!({ event: () => true, end: () => {} }), 'not through both')
  const plain = await engine.request('/v1/chat/completions', chat(false), { signal: new AbortController().signal })
  t.equal(plain.push, undefined, 'only streams are pushed')
})

t.test('push: a paused sink gets nothing until resume(), and loses nothing', async (t) => {
  const { engine } = await setup(t, { coalesce: true }, { bodyTimeoutMs: 100 })
  const res = await engine.request('/v1/chat/completions', chat(true, { max_tokens: 4000 }), { signal: new AbortController().signal })
  let paused = false
  const p = pushed(res, (n) => {
    t.notOk(paused, 'no event while paused')
    if (n % 1000 === 0) {
      paused = true
      // Far longer than bodyTimeoutMs: the socket is paused, and a paused socket does not time out.
      setTimeout(() => {
        paused = false
        p.control.resume()
      }, n === 1000 ? 300 : 1)
      return false
    }
    return true
  })
  t.equal(await p.ended, undefined)
  t.equal(p.events.length, 4000 + 2)
})

t.test('push: failures end the sink with their codes; cancel() and abort stop the engine', async (t) => {
  {
    const { engine } = await setup(t, { closeAfter: 3 })
    const p = pushed(await engine.request('/v1/chat/completions', chat(true), { signal: new AbortController().signal }))
    const e = await p.ended
    t.same([p.events.length, e?.code], [3, 'ENGINE_STREAM_INTERRUPTED'])
  }
  {
    const { engine } = await setup(t, { stallAfter: 2 }, { bodyTimeoutMs: 100 })
    const p = pushed(await engine.request('/v1/chat/completions', chat(true), { signal: new AbortController().signal }))
    const e = await p.ended
    t.same([p.events.length, e?.code, e?.details.events], [2, 'ENGINE_TIMEOUT', 2])
  }
  {
    const { engine } = await setup(t, { garbage: 'sse-data' })
    const p = pushed(await engine.request('/v1/chat/completions', chat(true), { signal: new AbortController().signal }))
    t.equal((await p.ended)?.code, 'ENGINE_BAD_RESPONSE')
  }
  {
    const { server, engine } = await setup(t, { stallAfter: 2 })
    const ac = new AbortController()
    const p = pushed(await engine.request('/v1/chat/completions', chat(true), { signal: ac.signal }), (n) => {
      if (n === 2) queueMicrotask(() => ac.abort())
      return true
    })
    t.equal((await p.ended)?.code, 'ENGINE_CANCELLED', 'abort')
    await server.until((s) => s.aborted === 1)
  }
  {
    const { server, engine } = await setup(t, { stallAfter: 1 })
    const p = pushed(await engine.request('/v1/chat/completions', chat(true), { signal: new AbortController().signal }), () => {
      queueMicrotask(() => p.control.cancel())
      return true
    })
    t.equal((await p.ended)?.code, 'ENGINE_CANCELLED', 'cancel()')
    await server.until((s) => s.aborted === 1)
    p.control.cancel()
    t.pass('cancel() after the end is harmless')
  }
  {
    // A sink that throws is a bug on our side: the engine is stopped and the sink told once.
    const { server, engine } = await setup(t, { stallAfter: 3 })
    const res = await engine.request('/v1/chat/completions', chat(true), { signal: new AbortController().signal })
    const ends: unknown[] = []
    res.push!({
      event() {
        throw new Error('sink bug')
      },
      end: (e) => ends.push(e),
    })
    await server.until((s) => s.aborted === 1)
    t.same(ends.map((e) => (e as EngineError).code), ['ENGINE_BAD_RESPONSE'])
  }
  {
    // A paused sink whose client goes away is ended at once, without a resume().
    const { server, engine } = await setup(t, { stallAfter: 3 })
    const ac = new AbortController()
    const p = pushed(await engine.request('/v1/chat/completions', chat(true), { signal: ac.signal }), (n) => {
      if (n === 1) queueMicrotask(() => ac.abort())
      return false
    })
    t.equal((await p.ended)?.code, 'ENGINE_CANCELLED', 'abort while paused')
    await server.until((s) => s.aborted === 1)
  }
  {
    const { engine } = await setup(t, { stallAfter: 3 })
    const p = pushed(await engine.request('/v1/chat/completions', chat(true), { signal: new AbortController().signal }), (n) => {
      if (n === 1) queueMicrotask(() => p.control.cancel())
      return false
    })
    t.equal((await p.ended)?.code, 'ENGINE_CANCELLED', 'cancel() while paused')
  }
  {
    // A sink that throws on the terminal event still gets end(), once.
    const { engine } = await setup(t)
    const res = await engine.request('/v1/chat/completions', chat(true), { signal: new AbortController().signal })
    const ends: unknown[] = []
    await new Promise<void>((resolve) => {
      res.push!({
        event(_bytes, last) {
          if (last === true) throw new Error('sink bug')
          return true
        },
        end: (e) => {
          ends.push(e)
          resolve()
        },
      })
    })
    t.same(ends.map((e) => (e as EngineError).code), ['ENGINE_BAD_RESPONSE'])
  }
})

t.test('the caller may say whether the body asks for a stream (parsed once, by the enclave)', async (t) => {
  const { server, engine } = await setup(t)
  const res = await engine.request('/v1/chat/completions', chat(true), { signal: new AbortController().signal, stream: true })
  t.equal(res.stream, true)
  await collect(res.body)
  t.equal(server.stats.log[0]!.stream, true)
})

t.test('an already aborted signal never reaches the engine', async (t) => {
  const { server, engine } = await setup(t)
  const ac = new AbortController()
  ac.abort()
  t.equal((await rejection(engine.request('/v1/chat/completions', chat(true), { signal: ac.signal }))).code, 'ENGINE_CANCELLED')
  t.equal(server.stats.requests, 0)
})

t.test('a consumer that stops reading cancels the upstream request', async (t) => {
  const { server, engine } = await setup(t, { stallAfter: 1 })
  const res = await engine.request('/v1/chat/completions', chat(true), { signal: new AbortController().signal })
  for await (const _ of res.body) break
  await server.until((s) => s.aborted === 1)
  t.pass('break cancelled the upstream')
})

t.test('abort of a request still queued in the pool settles at once; the others go on', async (t) => {
  const { server, engine } = await setup(t, { stallAfter: 1 }, { connections: 1 })
  const first = await engine.request('/v1/chat/completions', chat(true, { max_tokens: 2 }), { signal: new AbortController().signal })
  const it = first.body[Symbol.asyncIterator]()
  t.notOk((await it.next()).done)
  const ac = new AbortController()
  const queued = engine.request('/v1/chat/completions', chat(true), { signal: ac.signal })
  ac.abort()
  t.equal((await rejection(queued)).code, 'ENGINE_CANCELLED')
  server.knobs.stallAfter = null
  server.release()
  let n = 1
  while (!(await it.next()).done) n++
  t.equal(n, 2 + 2)
  t.equal(server.stats.byPath['/v1/chat/completions'], 1, 'the cancelled request never reached the engine')
})

t.test('close(): the pool is closed, its sockets are gone, and later requests are ENGINE_UNAVAILABLE', async (t) => {
  const server = await startEngineServer()
  t.teardown(() => server.close())
  const engine = createHttpEngine({ baseUrl: server.url })
  await collect((await engine.request('/v1/chat/completions', chat(true), { signal: new AbortController().signal })).body)
  await engine.models()
  t.ok(server.stats.openConnections >= 1)
  await engine.close()
  await server.until((s) => s.openConnections === 0)
  const e = await rejection(engine.request('/v1/chat/completions', chat(false), { signal: new AbortController().signal }))
  t.equal(e.code, 'ENGINE_UNAVAILABLE')
  t.equal(e.details.reason, 'closed')
})

t.test('upstreamErrorTokens keeps identifier-like type/code only', async (t) => {
  t.same(upstreamErrorTokens(json({ error: { message: CANARY, type: 'invalid_request_error', code: 400 } })), { type: 'invalid_request_error', code: '400' })
  t.same(upstreamErrorTokens(json({ object: 'error', message: CANARY, type: 'BadRequestError', code: 400 })), { type: 'BadRequestError', code: '400' })
  t.same(upstreamErrorTokens(json({ error: { type: 'has spaces', code: 'x'.repeat(65) } })), {})
  t.same(upstreamErrorTokens(encoder.encode('nope')), {})
  t.same(upstreamErrorTokens(json([1])), {})
})

// --- the SSE parser -----------------------------------------------------------

/** Feed `chunks` in order; every event out. */
function parseAll(chunks: Uint8Array[], maxEventBytes = 1 << 20): { events: SseEvent[]; pending: number } {
  const parser = new SseParser({ maxEventBytes })
  const events: SseEvent[] = []
  for (const c of chunks) {
    parser.feed(c)
    for (let e = parser.next(); e !== null; e = parser.next()) events.push(e)
  }
  return { events, pending: parser.pendingBytes }
}

const text = (events: SseEvent[]): string[] => events.map((e) => decoder.decode(e.bytes))

t.test('SSE parser: multi-line data, comments, other fields, CR/CRLF, [DONE], no-data blocks', async (t) => {
  const stream =
    ': hello\n\n' + // comment-only block: nothing
    'data: {"a":\ndata: 1}\n\n' + // multi-line data
    'event: message\r\nid: 7\r\ndata: {"b":2}\r\n\r\n' +
    'retry: 10\n\n' + // no data: nothing
    ': ka\rdata:{"c":3}\r\r' +
    '\n\n\n' + // stray blank lines
    'data: [DONE]\n\n'
  const { events, pending } = parseAll([encoder.encode(stream)])
  t.same(text(events), ['data: {"a":\ndata: 1}\n\n', 'event: message\nid: 7\ndata: {"b":2}\n\n', 'data:{"c":3}\n\n', 'data: [DONE]\n\n'])
  t.same(events.map((e) => e.done), [false, false, false, true])
  t.equal(pending, 0)
})

t.test('SSE parser: an event comes out on the byte that completes it, not later', async (t) => {
  for (const eol of ['\n', '\r\n']) {
    const stream = `data: {"x":1}${eol}${eol}data: {"y":2}${eol}${eol}data: [DONE]${eol}${eol}`
    const bytes = encoder.encode(stream)
    const parser = new SseParser({ maxEventBytes: 1024 })
    const emittedAt: number[] = []
    for (let i = 0; i < bytes.length; i++) {
      parser.feed(bytes.subarray(i, i + 1))
      for (let e = parser.next(); e !== null; e = parser.next()) emittedAt.push(i)
    }
    // The blank line's first byte (LF, or the CR of CRLF) completes the event.
    const ends: number[] = []
    const sep = `${eol}${eol}`
    for (let at = stream.indexOf(sep); at !== -1; at = stream.indexOf(sep, at + sep.length)) ends.push(at + eol.length)
    t.same(emittedAt, ends, JSON.stringify(eol))
  }
})

t.test('SSE parser: malformed events and oversized events are ENGINE_BAD_RESPONSE', async (t) => {
  const bad: [string, string][] = [
    ['garbage line\n\n', 'sse_unknown_field'],
    ['data: not json\n\n', 'sse_data_not_json'],
    ['data: {"cut": \n\n', 'sse_data_not_json'],
    ['data: [DONE]\ndata: x\n\n', 'sse_data_not_json'],
    ['data:\n\n', 'sse_data_not_json'],
  ]
  for (const [stream, reason] of bad) {
    let err: unknown
    try {
      parseAll([encoder.encode(stream)])
    } catch (e) {
      err = e
    }
    t.equal(codeOf(err), 'ENGINE_BAD_RESPONSE', JSON.stringify(stream))
    t.equal((err as EngineError).details.reason, reason)
  }
  // Over the cap, whether it arrives whole or split: the parser never holds more than one event.
  const big = encoder.encode(`data: {"x":"${'a'.repeat(200)}"}\n\n`)
  for (const chunks of [[big], [big.subarray(0, 150), big.subarray(150)]]) {
    let err: unknown
    try {
      parseAll(chunks, 100)
    } catch (e) {
      err = e
    }
    t.equal((err as EngineError).details.reason, 'sse_event_too_large')
  }
  t.equal(parseAll([encoder.encode('data: {"half":')]).pending, 14, 'an unfinished event is reported as pending')
})

/** One event of the property test: its lines (without breaks) and the break it uses. */
interface GenEvent {
  readonly lines: string[]
  readonly eol: '\n' | '\r\n' | '\r'
}

const lineText = fc.string({ unit: fc.constantFrom('a', 'b', ' ', ':', '"', 'é', '{', '}', '1', '\t'), maxLength: 12 })

const jsonData = fc
  .tuple(fc.dictionary(fc.string({ maxLength: 4 }), fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean()), { maxKeys: 4 }), fc.array(fc.nat(), { maxLength: 3 }))
  .map(([obj, cuts]) => {
    const s = JSON.stringify(obj)
    const points = [...new Set(cuts.map((c) => 1 + (c % Math.max(1, s.length - 1))))].sort((a, b) => a - b).filter((p) => p < s.length)
    const pieces: string[] = []
    let at = 0
    for (const p of points) {
      pieces.push(s.slice(at, p))
      at = p
    }
    pieces.push(s.slice(at))
    return pieces
  })

const genEvent: fc.Arbitrary<GenEvent> = fc
  .record({
    data: jsonData,
    space: fc.boolean(),
    comments: fc.array(lineText, { maxLength: 2 }),
    fields: fc.array(fc.constantFrom('event: message', 'id: 42', 'retry: 100'), { maxLength: 2 }),
    eol: fc.constantFrom<GenEvent['eol']>('\n', '\r\n', '\r'),
    shuffle: fc.nat(),
  })
  .map(({ data, space, comments, fields, eol, shuffle }) => {
    const dataLines = data.map((d) => `data:${space ? ' ' : ''}${d}`)
    const extra = [...comments.map((c) => `:${c}`), ...fields]
    const lines = [...dataLines]
    // Interleave the extra lines at positions chosen by `shuffle`, keeping data lines in order.
    extra.forEach((line, i) => lines.splice((shuffle + i * 7) % (lines.length + 1), 0, line))
    return { lines, eol }
  })

function serialize(events: GenEvent[], gaps: boolean[]): string {
  return events
    .map((e, i) => `${e.lines.join(e.eol)}${e.eol}${e.eol}${gaps[i] ? ': between\n\n\n' : ''}`)
    .join('')
}

function canonical(e: GenEvent): string {
  return `${e.lines.filter((l) => !l.startsWith(':')).join('\n')}\n\n`
}

t.test('SSE parser property: any split into chunks yields the same events as the whole stream (fixed seed)', async (t) => {
  const arb = fc.record({
    events: fc.array(genEvent, { minLength: 1, maxLength: 12 }),
    gaps: fc.array(fc.boolean(), { maxLength: 12 }),
    sizes: fc.array(fc.integer({ min: 1, max: 24 }), { minLength: 1, maxLength: 16 }),
    doneEol: fc.constantFrom('\n', '\r\n', '\r'),
  })
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(arb, ({ events, gaps, sizes, doneEol }) => {
        const stream = encoder.encode(`${serialize(events, gaps)}data: [DONE]${doneEol}${doneEol}`)
        const expected = [...events.map(canonical), 'data: [DONE]\n\n']
        const whole = parseAll([stream])
        const chunks: Uint8Array[] = []
        for (let at = 0, k = 0; at < stream.length; k++) {
          const size = sizes[k % sizes.length]!
          chunks.push(stream.slice(at, at + size))
          at += size
        }
        const split = parseAll(chunks)
        if (JSON.stringify(text(whole.events)) !== JSON.stringify(expected)) throw new Error(`whole: ${JSON.stringify(text(whole.events))}`)
        if (JSON.stringify(text(split.events)) !== JSON.stringify(expected)) throw new Error(`split: ${JSON.stringify(text(split.events))}`)
        if (split.events.map((e) => e.done).join() !== expected.map((_, i) => i === expected.length - 1).join()) throw new Error('done flags')
        if (split.pending !== 0) throw new Error('pending bytes')
      }),
      { seed: SEED, numRuns: 500 },
    ),
  )
})
