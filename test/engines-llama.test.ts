/**
 * The embedded engine with the real llama.cpp (node-llama-cpp's prebuilt
 * CPU binary) and a real GGUF file that this test generates itself: the GGUF
 * writer and the tiny-model generator (determinism, layout checked by
 * node-llama-cpp's own GGUF reader), then chat and text completions streamed
 * and not, stop sequences, seeded sampling, abort, the concurrency limit,
 * bad input, embeddings, close, and one run through the real enclave and
 * gateway with the canary harness (no prompt in any log).
 */
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { readGgufFileInfo } from 'node-llama-cpp'
import { request } from 'undici'
import { keccak256 } from 'viem'
import { buildTinyModel, encodeGguf, generateTinyModel, TINY_MODEL_DEFAULTS, type GgufValue } from '../enclave/engines/gguf/index.ts'
import { createLlamaEngine, llamaEngineOptionsFromConfig, type LlamaEngine } from '../enclave/engines/llama.ts'
import { EngineError } from '../enclave/engines/errors.ts'
import { createEnclaveFromConfig } from '../enclave/index.ts'
import { receiptFromJson, verifyReceipt } from '../enclave/receipts.ts'
import { runCanaryHarness } from './helpers/canary.ts'
import { ohttpRequest, requestBody, text, type Transport } from './helpers/ohttp-client.ts'

const CANARY = 'CANARY-llama-7f3a9c-zebra'
const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o))
const dec = new TextDecoder()
const logs: string[] = []
const logger = {
  info: (obj: Record<string, unknown>, msg: string) => void logs.push(JSON.stringify({ msg, ...obj })),
  warn: (obj: Record<string, unknown>, msg: string) => void logs.push(JSON.stringify({ msg, ...obj })),
}

const dir = await mkdtemp(join(tmpdir(), 'cgw-llama-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))
// A 4096-token training context lets one request generate long enough to be aborted mid-way.
const modelPath = join(dir, 'tiny.gguf')
const genStart = performance.now()
await generateTinyModel({ path: modelPath, seed: 7, contextLength: 4096 })
const generationMs = performance.now() - genStart

const signal = () => new AbortController().signal
const chat = (content: string, extra: Record<string, unknown> = {}) => ({ model: 'tiny', messages: [{ role: 'user', content }], ...extra })

async function call(engine: LlamaEngine, path: string, body: unknown, s = signal()) {
  const res = await engine.request(path, body instanceof Uint8Array ? body : enc(body), { signal: s })
  const parts: Uint8Array[] = []
  for await (const p of res.body) parts.push(p)
  return { ...res, parts, text: dec.decode(Buffer.concat(parts)) }
}

async function codeOf(p: Promise<unknown>): Promise<{ code: string; reason?: unknown; field?: unknown; status?: number }> {
  try {
    await p
    return { code: 'ok' }
  } catch (e) {
    if (!(e instanceof EngineError)) throw e
    return { code: e.code, status: e.status, ...(e.details.reason !== undefined ? { reason: e.details.reason } : {}), ...(e.details.field !== undefined ? { field: e.details.field } : {}) }
  }
}

/** The SSE events of a streamed answer, parsed; the last one must be [DONE]. */
function events(parts: readonly Uint8Array[]): Record<string, any>[] {
  const all = parts.map((p) => dec.decode(p))
  for (const e of all) if (!/^data: .*\n\n$/s.test(e)) throw new Error('not one SSE event per part')
  if (all.at(-1) !== 'data: [DONE]\n\n') throw new Error('no [DONE]')
  return all.slice(0, -1).map((e) => JSON.parse(e.slice(6)))
}

const streamedText = (evs: Record<string, any>[]) => evs.map((e) => e.choices[0]?.delta?.content ?? e.choices[0]?.text ?? '').join('')

async function until(cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting')
    await new Promise((r) => setTimeout(r, 5))
  }
}

// Loaded in t.before: a top-level await between subtests would not keep tap's root test (and its teardown) waiting.
let engine!: LlamaEngine
let small!: LlamaEngine
let loadMs = 0
t.before(async () => {
  const loadStart = performance.now()
  engine = await createLlamaEngine({ modelPath, modelId: 'tiny', threads: 1, maxConcurrency: 2, maxQueue: 1, embeddings: true, logger })
  loadMs = performance.now() - loadStart
  small = await createLlamaEngine({ modelPath, modelId: 'tiny', threads: 1, maxConcurrency: 1, maxQueue: 0, contextSize: 256, logger })
})
t.teardown(() => Promise.all([engine?.close(), small?.close()]))

// --- the GGUF writer and the generator ----------------------------------------

t.test('the generator: deterministic bytes, fast, and a layout llama.cpp tools read', async (t) => {
  const a = buildTinyModel({ seed: 7, contextLength: 4096 })
  const b = buildTinyModel({ seed: 7, contextLength: 4096 })
  t.ok(Buffer.from(a).equals(Buffer.from(b)), 'same seed, same bytes')
  t.ok(Buffer.from(a).equals(await readFile(modelPath)), 'generateTinyModel wrote exactly buildTinyModel')
  t.notOk(Buffer.from(a).equals(Buffer.from(buildTinyModel({ seed: 8, contextLength: 4096 }))), 'another seed, other weights')
  t.ok(generationMs < 1000, `generated in ${generationMs.toFixed(0)} ms`)
  t.ok(a.length < 4 * 1024 * 1024, `${a.length} bytes`)
  t.equal(a.length % 32, 0, 'the data section ends aligned')

  const view = new DataView(a.buffer, a.byteOffset)
  t.equal(dec.decode(a.subarray(0, 4)), 'GGUF')
  t.equal(view.getUint32(4, true), 3, 'version 3')
  const info = await readGgufFileInfo(modelPath, { sourceType: 'filesystem' })
  const meta = info.metadata as any
  t.equal(info.version, 3)
  t.equal(meta.general.architecture, 'llama')
  t.equal(meta.general.alignment, 32)
  t.equal(meta.llama.embedding_length, TINY_MODEL_DEFAULTS.embeddingLength)
  t.equal(meta.llama.block_count, TINY_MODEL_DEFAULTS.blockCount)
  t.equal(meta.llama.context_length, 4096)
  t.equal(meta.tokenizer.ggml.model, 'gpt2')
  t.equal(meta.tokenizer.ggml.tokens.length, 256 + meta.tokenizer.ggml.merges.length + 3)
  t.match(meta.tokenizer.chat_template, /<\|im_start\|>/)
  const tensors = info.tensorInfo!
  t.equal(tensors.length, 3 + 9 * TINY_MODEL_DEFAULTS.blockCount)
  t.ok(tensors.every((x) => Number(x.offset) % 32 === 0), 'every tensor offset is aligned')
  t.same(tensors.find((x) => x.name === 'token_embd.weight')!.dimensions, [64, meta.tokenizer.ggml.tokens.length])
})

t.test('the writer: every value type reads back, F16 rounding, typed errors', async (t) => {
  const metadata: [string, GgufValue][] = [
    ['general.architecture', { type: 'string', value: 'test' }],
    ['t.u8', { type: 'uint8', value: 255 }],
    ['t.i8', { type: 'int8', value: -128 }],
    ['t.u16', { type: 'uint16', value: 65535 }],
    ['t.i16', { type: 'int16', value: -32768 }],
    ['t.u32', { type: 'uint32', value: 4294967295 }],
    ['t.i32', { type: 'int32', value: -2147483648 }],
    ['t.f32', { type: 'float32', value: 1.5 }],
    ['t.f64', { type: 'float64', value: Math.PI }],
    ['t.b', { type: 'bool', value: true }],
    ['t.s', { type: 'string', value: 'héllo ✓' }],
    ['t.u64', { type: 'uint64', value: 2n ** 64n - 1n }],
    ['t.i64', { type: 'int64', value: -(2n ** 63n) }],
    ['t.as', { type: 'array', itemType: 'string', value: ['a', ''] }],
    ['t.ai', { type: 'array', itemType: 'int32', value: [1, -2] }],
    ['t.ab', { type: 'array', itemType: 'bool', value: [true, false] }],
  ]
  const bytes = encodeGguf({ metadata, tensors: [{ name: 'x', dims: [3, 2], type: 'F16', data: new Float32Array([1, -2, 0.5, 65504, 1e-8, 1 + 2 ** -11]) }] })
  const file = join(dir, 'types.gguf')
  await writeFile(file, bytes)
  const info = await readGgufFileInfo(file, { sourceType: 'filesystem' })
  t.same(info.metadata, {
    general: { architecture: 'test' },
    t: {
      u8: 255, i8: -128, u16: 65535, i16: -32768, u32: 4294967295, i32: -2147483648, f32: 1.5, f64: Math.PI, b: true, s: 'héllo ✓',
      u64: 2n ** 64n - 1n, i64: -(2n ** 63n), as: ['a', ''], ai: [1, -2], ab: [true, false],
    },
  })
  const x = info.tensorInfo![0]!
  const data = new DataView(bytes.buffer, bytes.byteOffset + Number(x.fileOffset))
  // 1, -2, 0.5, max half, below the smallest subnormal → 0, and a tie that rounds to even (1.0).
  t.same([0, 1, 2, 3, 4, 5].map((i) => data.getUint16(i * 2, true)), [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0000, 0x3c00])

  const code = (f: () => unknown) => {
    try {
      f()
      return 'ok'
    } catch (e) {
      return (e as { code?: string }).code
    }
  }
  const doc = (m: [string, GgufValue][], tensors: Parameters<typeof encodeGguf>[0]['tensors'] = []) => () => encodeGguf({ metadata: m, tensors })
  t.equal(code(doc([['a', { type: 'uint8', value: 256 }]])), 'GGUF_VALUE_INVALID')
  t.equal(code(doc([['a', { type: 'int32', value: 1.5 }]])), 'GGUF_VALUE_INVALID')
  t.equal(code(doc([['a', { type: 'string', value: '\ud800' }]])), 'GGUF_VALUE_INVALID')
  t.equal(code(doc([['a', { type: 'bool', value: true }], ['a', { type: 'bool', value: false }]])), 'GGUF_VALUE_INVALID')
  t.equal(code(doc([['general.alignment', { type: 'int32', value: 32 }]])), 'GGUF_VALUE_INVALID')
  t.equal(code(doc([['general.alignment', { type: 'uint32', value: 24 }]])), 'GGUF_VALUE_INVALID')
  t.equal(code(doc([['a', { type: 'array', itemType: 'uint64', value: [-1n] }]])), 'GGUF_VALUE_INVALID')
  t.equal(code(doc([], [{ name: 'x', dims: [2, 2], type: 'F32', data: new Float32Array(3) }])), 'GGUF_TENSOR_INVALID')
  t.equal(code(doc([], [{ name: 'x'.repeat(64), dims: [1], type: 'F32', data: new Float32Array(1) }])), 'GGUF_TENSOR_INVALID')
  t.equal(code(doc([], [{ name: 'x', dims: [1, 1, 1, 1, 1], type: 'F32', data: new Float32Array(1) }])), 'GGUF_TENSOR_INVALID')
  t.equal(code(() => buildTinyModel({ headCount: 5 })), 'GGUF_OPTIONS_INVALID')
  t.equal(code(() => buildTinyModel({ seed: -1 })), 'GGUF_OPTIONS_INVALID')
  t.equal(code(() => buildTinyModel({ embeddingLength: 64, headCount: 64 })), 'GGUF_OPTIONS_INVALID', 'odd head size cannot take RoPE')
})

// --- the engine ----------------------------------------------------------------


t.test('models, load info', async (t) => {
  t.same(await engine.models(), [{ id: 'tiny', object: 'model', created: 0, owned_by: 'cgw', context_length: 4096 }])
  t.equal(engine.info.contextSize, 4096)
  t.equal(engine.info.chatWrapper, 'ChatML', 'the chat template of the GGUF was recognised')
  t.equal(engine.info.gpu, false)
  t.comment(`model generation ${generationMs.toFixed(0)} ms; first engine load ${loadMs.toFixed(0)} ms (binding + model + contexts); second ${small.info.loadMs} ms`)
})

t.test('chat completion: one chat.completion, deterministic at temperature 0', async (t) => {
  const res = await call(engine, '/v1/chat/completions', chat(`Hello ${CANARY}`, { max_tokens: 24, temperature: 0 }))
  t.equal(res.status, 200)
  t.equal(res.contentType, 'application/json')
  t.equal(res.stream, false)
  const body = JSON.parse(res.text)
  t.match(body, { object: 'chat.completion', model: 'tiny', choices: [{ index: 0, message: { role: 'assistant' }, finish_reason: 'length' }] })
  t.match(body.id, /^chatcmpl-[0-9a-f]{24}$/)
  t.equal(body.usage.completion_tokens, 24)
  t.ok(body.usage.prompt_tokens > 10)
  const content: string = body.choices[0].message.content
  t.ok(content.length > 0 && /^[\x20-\x7e]*$/.test(content), 'printable ASCII by construction of the tiny model')
  const again = JSON.parse((await call(engine, '/v1/chat/completions', chat(`Hello ${CANARY}`, { max_tokens: 24, temperature: 0 }))).text)
  t.equal(again.choices[0].message.content, content, 'greedy decoding repeats')
  const other = JSON.parse((await call(small, '/v1/chat/completions', chat(`Hello ${CANARY}`, { max_tokens: 24, temperature: 0 }))).text)
  t.equal(other.choices[0].message.content, content, 'the same on another engine (and context size) with the same model')
})

t.test('chat completion streamed: chunks per token, then finish, usage and [DONE]', async (t) => {
  const started = performance.now()
  const res = await call(engine, '/v1/chat/completions', chat(`Hello ${CANARY}`, { max_tokens: 100, temperature: 0, stream: true, stream_options: { include_usage: true } }))
  const ms = performance.now() - started
  t.equal(res.contentType, 'text/event-stream')
  t.equal(res.stream, true)
  const evs = events(res.parts)
  t.ok(evs.every((e) => e.object === 'chat.completion.chunk' && e.id === evs[0]!.id && e.model === 'tiny'))
  t.same(evs[0]!.choices[0].delta, { role: 'assistant', content: '' })
  const deltas = evs.slice(1, -2)
  t.ok(deltas.length >= 50, `${deltas.length} content chunks for 100 tokens`)
  t.same(evs.at(-2)!.choices, [{ index: 0, delta: {}, logprobs: null, finish_reason: 'length' }])
  t.same(evs.at(-1)!.choices, [])
  t.equal(evs.at(-1)!.usage.completion_tokens, 100)
  const plain = JSON.parse((await call(engine, '/v1/chat/completions', chat(`Hello ${CANARY}`, { max_tokens: 100, temperature: 0 }))).text)
  t.equal(streamedText(evs), plain.choices[0].message.content, 'streamed text = plain text')
  t.comment(`100 tokens streamed in ${ms.toFixed(0)} ms on CPU (1 thread): ${(100_000 / ms).toFixed(0)} tokens/s`)
})

t.test('sampling: a seed repeats, temperature and seed change the text', async (t) => {
  const ask = async (extra: Record<string, unknown>) =>
    JSON.parse((await call(engine, '/v1/chat/completions', chat('Tell me a story', { max_tokens: 16, ...extra }))).text).choices[0].message.content as string
  const a = await ask({ temperature: 1, seed: 42 })
  t.equal(await ask({ temperature: 1, seed: 42 }), a, 'same seed, same sample')
  const others = await Promise.all([1, 2, 3].map((seed) => ask({ temperature: 1.5, seed })))
  t.ok(others.some((o) => o !== a), 'other seeds sample other text')
  const greedy = await ask({ temperature: 0 })
  t.equal(await ask({ temperature: 0, seed: 1 }), greedy, 'a seed changes nothing at temperature 0')
})

t.test('stop sequences end the answer before them, finish_reason stop', async (t) => {
  const full = JSON.parse((await call(engine, '/v1/chat/completions', chat('stop test', { max_tokens: 40, temperature: 0 }))).text).choices[0].message.content as string
  const stop = full.slice(10, 13)
  const cut = full.indexOf(stop)
  const res = JSON.parse((await call(engine, '/v1/chat/completions', chat('stop test', { max_tokens: 40, temperature: 0, stop: [stop, '\u0000never'] }))).text)
  t.equal(res.choices[0].message.content, full.slice(0, cut))
  t.equal(res.choices[0].finish_reason, 'stop')
  const streamed = events((await call(engine, '/v1/chat/completions', chat('stop test', { max_tokens: 40, temperature: 0, stop, stream: true }))).parts)
  t.equal(streamedText(streamed), full.slice(0, cut), 'streamed, the stop sequence is withheld too')
  t.equal(streamed.at(-1)!.choices[0].finish_reason, 'stop')
})

t.test('text completions: raw prompt, default max_tokens 16, streamed and not', async (t) => {
  const res = await call(engine, '/v1/completions', { model: 'tiny', prompt: `Once upon ${CANARY}`, temperature: 0 })
  const body = JSON.parse(res.text)
  t.match(body, { object: 'text_completion', model: 'tiny', choices: [{ index: 0, finish_reason: 'length', logprobs: null }] })
  t.match(body.id, /^cmpl-/)
  t.equal(body.usage.completion_tokens, 16, "OpenAI's default for /v1/completions")
  const streamed = events((await call(engine, '/v1/completions', { model: 'tiny', prompt: [`Once upon ${CANARY}`], temperature: 0, stream: true })).parts)
  t.ok(streamed.every((e) => e.object === 'text_completion'))
  t.equal(streamedText(streamed), body.choices[0].text)
  t.equal(streamed.at(-1)!.choices[0].finish_reason, 'length')
  const chatText = JSON.parse((await call(engine, '/v1/chat/completions', chat(`Once upon ${CANARY}`, { max_tokens: 16, temperature: 0 }))).text).choices[0].message.content
  t.not(chatText, body.choices[0].text, 'the chat template makes a different prompt than the raw text')
})

t.test('a client that disconnects mid-stream stops generation and frees the sequence', async (t) => {
  const before = engine.stats()
  const ac = new AbortController()
  const res = await engine.request('/v1/chat/completions', enc(chat(CANARY, { max_tokens: 4000, temperature: 0, stream: true })), { signal: ac.signal })
  let n = 0
  const outcome = await codeOf(
    (async () => {
      for await (const _ of res.body) if (++n === 4) ac.abort()
    })(),
  )
  t.equal(outcome.code, 'ENGINE_CANCELLED')
  t.equal(n, 4, 'nothing after the abort')
  await until(() => engine.stats().active === 0)
  const after = engine.stats()
  t.equal(after.cancelled, before.cancelled + 1)
  t.ok(after.generatedTokens - before.generatedTokens < 4000, `stopped after ${after.generatedTokens - before.generatedTokens} of 4000 tokens`)

  // A reader that just stops (break) cancels too.
  const res2 = await engine.request('/v1/chat/completions', enc(chat(CANARY, { max_tokens: 4000, stream: true })), { signal: signal() })
  for await (const _ of res2.body) break
  await until(() => engine.stats().active === 0)
  t.equal(engine.stats().cancelled, before.cancelled + 2)
  // An already aborted signal is refused before anything runs.
  const ac3 = new AbortController()
  ac3.abort()
  t.same(await codeOf(engine.request('/v1/chat/completions', enc(chat('x')), { signal: ac3.signal })), { code: 'ENGINE_CANCELLED', status: 499 })
  t.equal((await call(engine, '/v1/chat/completions', chat('still serving', { max_tokens: 4 }))).status, 200)
})

t.test('concurrency: sequences, a bounded queue, then ENGINE_RATE_LIMITED', async (t) => {
  const long = (s: AbortSignal) => engine.request('/v1/chat/completions', enc(chat(CANARY, { max_tokens: 300, stream: true })), { signal: s })
  const drain = async (p: ReturnType<typeof long>) => {
    const r = await p
    const parts: Uint8Array[] = []
    for await (const x of r.body) parts.push(x)
    return events(parts).at(-1)!.choices[0].finish_reason
  }
  const queuedAbort = new AbortController()
  const [a, b, c, d] = [long(signal()), long(signal()), long(queuedAbort.signal), long(signal())]
  const busy = await codeOf(d)
  t.same(busy, { code: 'ENGINE_RATE_LIMITED', status: 429, reason: 'busy' })
  const err = await d.catch((e: EngineError) => e)
  t.equal((err as EngineError).retryAfter, '1', 'Retry-After for the client')
  t.equal(engine.stats().queued, 1)
  queuedAbort.abort()
  t.same(await codeOf(c), { code: 'ENGINE_CANCELLED', status: 499 }, 'leaving the queue cancels')
  t.equal(engine.stats().queued, 0)
  const e = long(signal())
  t.same(await Promise.all([drain(a), drain(b), drain(e)]), ['length', 'length', 'length'], 'the queued one runs once a sequence is free')
  t.ok(engine.stats().refusedBusy >= 1)
})

t.test('bad input: typed 4xx errors, and the engine keeps serving', async (t) => {
  const bad = (path: string, body: unknown) => codeOf(call(small, path, body))
  const C = '/v1/chat/completions'
  t.same(await bad(C, new TextEncoder().encode('{not json')), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'body' })
  t.same(await bad(C, new Uint8Array([0x7b, 0xff, 0x7d])), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'body' })
  t.same(await bad(C, [1, 2]), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'body' })
  t.same(await bad('/v1/other', chat('x')), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'path' })
  t.same(await bad(C, chat('x', { bogus: 1 })), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'unknown_field', field: 'bogus' })
  t.same(await bad(C, chat('x', { tools: [] })), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'unsupported_field', field: 'tools' })
  t.same(await bad(C, chat('x', { n: 2 })), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'unsupported_field', field: 'n' })
  t.same(await bad(C, chat('x', { model: 'other' })), { code: 'ENGINE_MODEL_NOT_FOUND', status: 404, reason: 'model' })
  t.same(await bad(C, { messages: [{ role: 'user', content: 'x' }] }), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'invalid_field', field: 'model' })
  t.same(await bad(C, { model: 'tiny', messages: [] }), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'invalid_field', field: 'messages' })
  t.same(await bad(C, { model: 'tiny', messages: [{ role: 'wizard', content: 'x' }] }), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'invalid_message', field: 'messages' })
  t.same(await bad(C, { model: 'tiny', messages: [{ role: 'user', content: 42 }] }), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'invalid_message', field: 'messages' })
  t.same(await bad(C, { model: 'tiny', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }), {
    code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'unsupported_field', field: 'messages',
  })
  t.same(await bad(C, chat('x', { temperature: 3 })), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'invalid_field', field: 'temperature' })
  t.same(await bad(C, chat('x', { max_tokens: 0 })), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'invalid_field', field: 'max_tokens' })
  t.same(await bad(C, chat('x', { max_tokens: 257 })), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'max_tokens', field: 'max_tokens' })
  t.same(await bad(C, chat('x', { stop: ['a', 'b', 'c', 'd', 'e'] })), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'invalid_field', field: 'stop' })
  t.same(await bad(C, chat('x', { stream_options: { include_usage: true } })), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'invalid_field', field: 'stream_options' })
  t.same(await bad(C, chat('x'.repeat(300))), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'context_length_exceeded' })
  t.same(await bad(C, chat('x'.repeat(300), { stream: true })), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'context_length_exceeded' }, 'refused before a stream starts')
  // Asking for the whole context is allowed; the answer stops where the context ends, with no context shift.
  const full = JSON.parse((await call(small, C, chat('x', { max_tokens: 256 }))).text)
  t.equal(full.usage.prompt_tokens + full.usage.completion_tokens, 255, 'one cell of slack')
  t.equal(full.choices[0].finish_reason, 'length')
  t.same(await bad('/v1/completions', { model: 'tiny', prompt: ['a', 'b'] }), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'unsupported_field', field: 'prompt' })
  t.same(await bad('/v1/completions', { model: 'tiny', prompt: 'x', echo: true }), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'unsupported_field', field: 'echo' })
  t.same(await bad('/v1/embeddings', { model: 'tiny', input: 'x' }), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'unsupported_endpoint' })
  const ok = JSON.parse((await call(small, C, { model: 'tiny', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: [{ type: 'text', text: 'hi' }] }], max_tokens: 3 })).text)
  t.equal(ok.usage.completion_tokens, 3, 'still serving')
  t.equal(small.stats().active, 0)
})

t.test('embeddings when enabled: one vector per input, float or base64', async (t) => {
  const res = JSON.parse((await call(engine, '/v1/embeddings', { model: 'tiny', input: [`a ${CANARY}`, 'b'] })).text)
  t.equal(res.object, 'list')
  t.equal(res.data.length, 2)
  t.equal(res.data[0].embedding.length, TINY_MODEL_DEFAULTS.embeddingLength)
  t.ok(res.usage.prompt_tokens > 0)
  const b64 = JSON.parse((await call(engine, '/v1/embeddings', { model: 'tiny', input: 'b', encoding_format: 'base64' })).text)
  const floats = new Float32Array(new Uint8Array(Buffer.from(b64.data[0].embedding, 'base64')).buffer)
  t.same(Array.from(floats), res.data[1].embedding.map((x: number) => Math.fround(x)), 'base64 is the float32 vector')
  t.same(await codeOf(call(engine, '/v1/embeddings', { model: 'tiny', input: [1, 2] })), { code: 'ENGINE_BAD_REQUEST', status: 400, reason: 'unsupported_field', field: 'input' })
})

t.test('options and load failures are typed; no URL, no download', async (t) => {
  const opt = (o: Record<string, unknown>) => codeOf(createLlamaEngine({ modelPath, threads: 1, ...o } as never))
  t.same(await opt({ modelPath: join(dir, 'missing.gguf') }), { code: 'ENGINE_OPTIONS_INVALID', status: 500, reason: 'model_file' })
  t.same(await opt({ modelPath: 'https://huggingface.co/x/y.gguf' }), { code: 'ENGINE_OPTIONS_INVALID', status: 500, reason: 'option' })
  t.same(await opt({ gpu: 'metal' }), { code: 'ENGINE_OPTIONS_INVALID', status: 500, reason: 'option' })
  t.same(await opt({ maxConcurrency: 0 }), { code: 'ENGINE_OPTIONS_INVALID', status: 500, reason: 'option' })
  const junk = join(dir, 'junk.gguf')
  await writeFile(junk, Buffer.from('GGUF this is not a model'))
  t.same(await opt({ modelPath: junk }), { code: 'ENGINE_OPTIONS_INVALID', status: 500, reason: 'model_load' }, 'not GGUF v2/v3')
  // A well-formed GGUF with nothing in it: llama.cpp itself refuses it (no architecture).
  const empty = Buffer.alloc(24)
  empty.write('GGUF', 0, 'latin1')
  empty.writeUInt32LE(3, 4)
  await writeFile(junk, empty)
  t.same(await opt({ modelPath: junk }), { code: 'ENGINE_OPTIONS_INVALID', status: 500, reason: 'model_load' }, 'llama.cpp refuses it')
  t.same(llamaEngineOptionsFromConfig({ kind: 'llama', modelPath, gpu: 'cpu', maxConcurrency: 2, embeddings: true }), { modelPath, gpu: false, maxConcurrency: 2, embeddings: true })
  t.throws(() => llamaEngineOptionsFromConfig({ kind: 'llama', modelPath, url: 'http://x' }), { code: 'ATTESTATION_OPTIONS_INVALID' })
  t.throws(() => llamaEngineOptionsFromConfig({ kind: 'llama' }), { code: 'ATTESTATION_OPTIONS_INVALID' })
})

t.test('a named GPU backend that cannot load is an error, never a silent CPU fallback', { skip: existsSync('/dev/nvidiactl') ? 'this machine has an NVIDIA GPU' : false }, async (t) => {
  t.same(await codeOf(createLlamaEngine({ modelPath, threads: 1, gpu: 'cuda' })), { code: 'ENGINE_UNAVAILABLE', status: 503, reason: 'backend' })
})

t.test('through the real enclave and gateway (dev TEE): streamed chat, receipt, no prompt anywhere in logs', async (t) => {
  const enclave = await createEnclaveFromConfig({ tee: 'dev', gpu: 'none', engine: { kind: 'llama', modelPath, modelId: 'tiny', threads: 1, contextSize: 512, maxConcurrency: 1 } })
  t.teardown(() => enclave.close())
  t.same(await enclave.models(), ['tiny'])
  const results: Record<string, any> = {}
  const report = await runCanaryHarness({
    canaries: [CANARY],
    enclave,
    scenario: async ({ port }) => {
      const configs = new Uint8Array(await (await request(`http://127.0.0.1:${port}/.well-known/ohttp-gateway`)).body.arrayBuffer())
      const transport: Transport = async (body, contentType, s) => {
        const res = await request(`http://127.0.0.1:${port}/v1/ohttp`, { method: 'POST', body, headers: { 'content-type': contentType }, signal: s })
        return { contentType: String(res.headers['content-type']), chunks: res.body }
      }
      const streamed = chat(`Hello ${CANARY}`, { max_tokens: 20, temperature: 0, stream: true })
      results.streamed = { body: streamed, res: await ohttpRequest(configs, transport, '/v1/chat/completions', streamed) }
      results.plain = await ohttpRequest(configs, transport, '/v1/chat/completions', chat(`Hello ${CANARY}`, { max_tokens: 20, temperature: 0 }))
      results.completion = await ohttpRequest(configs, transport, '/v1/completions', { model: 'tiny', prompt: CANARY, max_tokens: 5 })
      results.embeddings = await ohttpRequest(configs, transport, '/v1/embeddings', { model: 'tiny', input: CANARY })
      results.badField = await ohttpRequest(configs, transport, '/v1/chat/completions', chat(CANARY, { [CANARY]: 1 }))
    },
  })
  t.same(report.leaks, [], 'the prompt appears in no log line, stdout, stderr, metrics or file')
  t.ok(report.logLines.length > 0, 'the gateway did log')
  const { body, res } = results.streamed
  t.equal(res.status, 200)
  const evs = events(res.events)
  t.equal(evs.at(-1)!.choices[0].finish_reason, 'length')
  const { fields, signature, domain } = receiptFromJson(res.receipt!)
  t.equal(fields.requestHash, keccak256(requestBody(body)))
  t.equal(fields.responseHash, keccak256(Buffer.concat(res.events)))
  t.ok(await verifyReceipt(fields, signature, enclave.status().signingAddress, domain))
  t.equal(JSON.parse(text(Buffer.concat(results.plain.events))).choices[0].message.content, streamedText(evs), 'the same answer, streamed or not')
  t.equal(results.completion.status, 200)
  t.equal(results.embeddings.status, 400)
  t.equal(JSON.parse(text(Buffer.concat(results.embeddings.events))).error.code, 'ENGINE_BAD_REQUEST')
  t.equal(results.badField.status, 400)
})

t.test('close: in-flight generations stop, later requests are refused', async (t) => {
  const res = await engine.request('/v1/chat/completions', enc(chat(CANARY, { max_tokens: 4000, stream: true })), { signal: signal() })
  const it = res.body[Symbol.asyncIterator]()
  await it.next()
  const closed = engine.close()
  const rest = await codeOf(
    (async () => {
      for (let s = await it.next(); !s.done; s = await it.next());
    })(),
  )
  t.same(rest, { code: 'ENGINE_UNAVAILABLE', status: 503, reason: 'closed' })
  await closed
  t.same(await codeOf(engine.request('/v1/chat/completions', enc(chat('x')), { signal: signal() })), { code: 'ENGINE_UNAVAILABLE', status: 503, reason: 'closed' })
  t.same(await codeOf(engine.models()), { code: 'ENGINE_UNAVAILABLE', status: 503, reason: 'closed' })
  await engine.close()
})

t.test('no prompt or completion text in the engine logs', async (t) => {
  t.ok(logs.length >= 2, 'the engine logged its load')
  t.notOk(logs.some((l) => l.includes(CANARY) || l.includes('Hello') || l.includes('Once upon')), 'no prompt text')
})
