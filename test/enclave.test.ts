/**
 * The enclave end to end, without the gateway: a real OpenAI-compatible test
 * engine on loopback, real OHTTP with chunked responses, the dev TEE, and
 * receipts checked with viem. Every "bad input" of the issue that the
 * enclave owns gets its code; errors after decryption reach the client as
 * inner statuses or an error event, never as a silent cut.
 */
import t, { type Test } from 'tap'
import { keccak256 } from 'viem'
import { createDevQuoteSigner, createDevRootCa, DEV_FMSPC, signDevCollateral } from '../attestation/dev/index.ts'
import { trustedRootFromDer } from '../attestation/roots/trust-root.ts'
import { verifyQuote } from '../attestation/tdx/verify/verify-quote.ts'
import { createEnclave } from '../enclave/enclave.ts'
import { createHttpEngine } from '../enclave/engines/http.ts'
import { verifyEvidenceBinding } from '../enclave/evidence.ts'
import { createDevEventLogProvider, createDevQuoteProvider } from '../enclave/quote-providers/dev.ts'
import { receiptFromJson, verifyReceipt } from '../enclave/receipts.ts'
import { codeOf } from './helpers/errors.ts'
import { startEngineServer } from './helpers/engine-server.ts'
import { encapsulate, ohttpRequest, requestBody, text, type Transport } from './helpers/ohttp-client.ts'

const NOW = new Date('2026-11-01T00:00:00Z')
const ca = createDevRootCa({ now: NOW, seed: new Uint8Array(32).fill(1) })
const signer = createDevQuoteSigner(ca, { fmspc: DEV_FMSPC, now: NOW })

async function setup(t: Test, o: { epochLengthMs?: number; graceMs?: number; now?: () => number; bodyTimeoutMs?: number } = {}) {
  const server = await startEngineServer()
  const engine = createHttpEngine({ baseUrl: server.url, bodyTimeoutMs: o.bodyTimeoutMs ?? 2000, headersTimeoutMs: 2000 })
  const enclave = await createEnclave({
    engine,
    quotes: createDevQuoteProvider({ signer }),
    eventLog: createDevEventLogProvider(),
    gpu: null,
    epochLengthMs: o.epochLengthMs ?? 3_600_000,
    graceMs: o.graceMs ?? 60_000,
    ...(o.now ? { now: o.now } : {}),
  })
  t.teardown(async () => {
    await enclave.close()
    await server.close()
  })
  const transport: Transport = async (body, contentType, signal) => enclave.handle(body, contentType, { signal })
  return { server, enclave, transport }
}

const chat = (extra: Record<string, unknown> = {}) => ({ model: 'test-model', messages: [{ role: 'user', content: 'hello enclave' }], ...extra })

async function rejection(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p
  } catch (e) {
    return codeOf(e) ?? (e as { code?: string }).code
  }
  return undefined
}

t.test('a streamed completion: one chunk per event, and a receipt that verifies', async (t) => {
  const { enclave, transport, server } = await setup(t)
  const body = chat({ stream: true })
  const res = await ohttpRequest(enclave.keyConfigs(), transport, '/v1/chat/completions', body)
  t.equal(res.status, 200)
  const sent = server.stats.log.at(-1)!
  t.equal(res.events.length, sent.eventsSent, 'every SSE event arrived as its own chunk')
  t.match(text(res.events.at(-1)!), /data: \[DONE\]/)
  t.ok(res.receipt, 'receipt in the trailer')
  const { fields, signature, domain } = receiptFromJson(res.receipt!)
  t.equal(fields.requestHash, keccak256(requestBody(body)), 'request hash covers the plaintext request')
  t.equal(fields.responseHash, keccak256(Buffer.concat(res.events)), 'response hash covers every event as sent')
  t.equal(fields.model, 'test-model')
  t.equal(fields.epoch.toString(), enclave.status().epoch)
  t.ok(await verifyReceipt(fields, signature, enclave.status().signingAddress, domain), 'signed by the attested epoch key')
  t.notOk(await verifyReceipt({ ...fields, model: 'other' }, signature, enclave.status().signingAddress, domain))
})

t.test('pushed stream: the terminal [DONE] is handed over together with the final chunk (one write)', async (t) => {
  const { enclave } = await setup(t)
  const req = await encapsulate(enclave.keyConfigs(), '/v1/chat/completions', chat({ stream: true }))
  const response = await enclave.handle(req.body, req.contentType, { signal: new AbortController().signal })
  // Each hand-over is tagged with how many microtasks (queued at each hand-over) had run by
  // then: chunks handed over back to back, with nothing asynchronous between them, leave the
  // gateway in one write (node's http response flushes corked writes on the next tick).
  let ran = 0
  const handed: { bytes: Uint8Array; ran: number }[] = []
  const ended = new Promise<unknown>((resolve) => {
    response.pipe!({
      chunk(bytes) {
        handed.push({ bytes, ran })
        queueMicrotask(() => ran++)
        return true
      },
      end: resolve,
    })
  })
  t.equal(await ended, undefined, 'a clean end')
  const plaintexts: Uint8Array[] = []
  const opener = req.chunkedResponseOpener()
  for (const h of handed) plaintexts.push(...(await opener.push(h.bytes)))
  plaintexts.push(...opener.end())
  const { BhttpResponseDecoder } = await import('../enclave/ohttp/index.ts')
  const decoder = new BhttpResponseDecoder()
  const events = [...plaintexts.flatMap((p) => decoder.push(p)), ...decoder.end()]
  const contents = events.filter((e) => e.type === 'content').map((e) => text((e as { data: Uint8Array }).data))
  t.match(contents.at(-1), /^data: \[DONE\]/, 'the last content event is [DONE]')
  t.ok(events.some((e) => e.type === 'trailers' && e.trailers.some(([k]) => k === 'cgw-receipt')), 'then the receipt trailer')
  t.equal(handed.at(-1)!.ran, handed.at(-2)!.ran, '[DONE] and the final chunk are handed over back to back (one write)')
  t.ok(handed.length >= contents.length + 1, 'one chunk per event, plus head and final')
})

t.test('a plain completion, embeddings, models', async (t) => {
  const { enclave, transport } = await setup(t)
  const res = await ohttpRequest(enclave.keyConfigs(), transport, '/v1/chat/completions', chat())
  t.equal(res.status, 200)
  t.equal(JSON.parse(text(Buffer.concat(res.events))).object, 'chat.completion')
  t.ok(res.receipt)
  const emb = await ohttpRequest(enclave.keyConfigs(), transport, '/v1/embeddings', { model: 'test-model', input: 'x' })
  t.equal(emb.status, 200)
  t.same(await enclave.models(), ['test-model'])
})

t.test('refused before any answer: key, tampering, replay, framing', async (t) => {
  const { enclave } = await setup(t)
  const ac = new AbortController()
  const handle = (b: Uint8Array, ct: string) => enclave.handle(b, ct, { signal: ac.signal })
  const req = await encapsulate(enclave.keyConfigs(), '/v1/chat/completions', chat())
  const wrongKey = req.body.slice()
  wrongKey[0] = (wrongKey[0]! + 1) & 0xff
  t.equal(await rejection(handle(wrongKey, req.contentType)), 'ENCLAVE_OHTTP_KEY_UNKNOWN')
  const flipped = req.body.slice()
  flipped[flipped.length - 3]! ^= 1
  t.equal(await rejection(handle(flipped, req.contentType)), 'ENCLAVE_OHTTP_DECRYPT_FAILED')
  t.equal(await rejection(handle(req.body.subarray(0, 20), req.contentType)), 'ENCLAVE_OHTTP_MALFORMED')
  t.equal(await rejection(handle(req.body, 'application/json')), 'ENCLAVE_OHTTP_MALFORMED')
  await handle(req.body, req.contentType)
  t.equal(await rejection(handle(req.body, req.contentType)), 'ENCLAVE_OHTTP_REPLAYED', 'a replayed request is refused')
  const { encapsulateRequest, parseKeyConfigs } = await import('../enclave/ohttp/index.ts')
  const garbage = await encapsulateRequest(parseKeyConfigs(enclave.keyConfigs())[0]!, new Uint8Array([0xff, 0xff, 0xff]), { chunked: true })
  t.equal(await rejection(handle(garbage.body, garbage.contentType)), 'ENCLAVE_BHTTP_MALFORMED')
})

t.test('errors after decryption are answered inside the encryption, each distinct', async (t) => {
  const { enclave, transport, server } = await setup(t, { bodyTimeoutMs: 300 })
  const ask = (body: unknown, path = '/v1/chat/completions') => ohttpRequest(enclave.keyConfigs(), transport, path, body)
  const code = (r: { events: Uint8Array[] }) => JSON.parse(text(Buffer.concat(r.events))).error.code

  let r = await ask(chat({ model: 'no-such-model' }))
  t.same([r.status, code(r)], [404, 'ENGINE_MODEL_NOT_FOUND'])
  r = await ask(chat(), '/v1/files')
  t.same([r.status, code(r)], [404, 'ENCLAVE_ROUTE_NOT_FOUND'])
  r = await ask('not json at all')
  t.same([r.status, code(r)], [400, 'ENCLAVE_REQUEST_NO_MODEL'])
  server.knobs.status = 429
  server.knobs.retryAfter = '7'
  r = await ask(chat())
  t.same([r.status, code(r)], [429, 'ENGINE_RATE_LIMITED'])
  t.same(r.headers.find(([k]) => k === 'retry-after'), ['retry-after', '7'], 'Retry-After kept')
  server.knobs.status = 500
  r = await ask(chat())
  t.same([r.status, code(r)], [502, 'ENGINE_UPSTREAM_ERROR'])
  server.knobs.status = null
  server.knobs.retryAfter = null
  server.knobs.garbage = 'body'
  r = await ask(chat())
  t.same([r.status, code(r)], [502, 'ENGINE_BAD_RESPONSE'])
  server.knobs.garbage = null
  t.notOk(r.receipt, 'no receipt for a failed request')

  // Mid-stream failures: an error event and the code in a trailer, never a silent cut.
  server.knobs.stallAfter = 2
  r = await ask(chat({ stream: true }))
  t.equal(r.status, 200)
  t.match(text(r.events.at(-1)!), /^event: error\ndata: .*ENGINE_TIMEOUT/)
  t.equal(r.trailers['cgw-error'], 'ENGINE_TIMEOUT')
  t.notOk(r.receipt)
  server.release()
  server.knobs.stallAfter = null
  server.knobs.closeAfter = 2
  r = await ask(chat({ stream: true }))
  t.equal(r.trailers['cgw-error'], 'ENGINE_STREAM_INTERRUPTED')
  server.knobs.closeAfter = null
  // Garbage after a good event: the client gets an error chunk naming it, and no receipt.
  server.knobs.garbage = 'sse-data'
  r = await ask(chat({ stream: true }))
  t.equal(r.status, 200)
  t.match(text(r.events.at(-1)!), /^event: error\ndata: .*ENGINE_BAD_RESPONSE/, 'an error chunk, not a silent cut')
  t.equal(r.trailers['cgw-error'], 'ENGINE_BAD_RESPONSE')
  t.notOk(r.receipt)
  server.knobs.garbage = null
})

t.test('engine down: an inner 503', async (t) => {
  const { enclave, transport, server } = await setup(t)
  await server.close()
  const r = await ohttpRequest(enclave.keyConfigs(), transport, '/v1/chat/completions', chat())
  t.equal(r.status, 503)
  t.equal(JSON.parse(text(Buffer.concat(r.events))).error.code, 'ENGINE_UNAVAILABLE')
})

t.test('client disconnect cancels the engine request', async (t) => {
  const { enclave, transport, server } = await setup(t)
  server.knobs.tokenDelayMs = 50
  server.knobs.tokens = 200
  const ac = new AbortController()
  let seen = 0
  const p = ohttpRequest(enclave.keyConfigs(), transport, '/v1/chat/completions', chat({ stream: true }), {
    signal: ac.signal,
    onEvent: () => {
      if (++seen === 2) ac.abort()
    },
  }).catch((e) => e)
  await server.until((s) => s.aborted >= 1)
  t.equal(server.stats.aborted, 1, 'the engine saw the request go away')
  await p
})

t.test('epochs: a key past its grace is refused with a distinct code', async (t) => {
  let clock = NOW.getTime()
  const { enclave, transport } = await setup(t, { epochLengthMs: 60_000, graceMs: 10_000, now: () => clock })
  const old = enclave.keyConfigs()
  const req = await encapsulate(old, '/v1/chat/completions', chat(), 'POST', { date: new Date(clock) })
  clock += 65_000 // next epoch, old one in grace
  const inGrace = await ohttpRequest(old, transport, '/v1/chat/completions', chat(), { date: new Date(clock) })
  t.equal(inGrace.status, 200, 'the previous epoch still decrypts during its grace')
  clock += 60_000
  t.equal(await rejection(enclave.handle(req.body, req.contentType, { signal: new AbortController().signal })), 'ENCLAVE_OHTTP_EPOCH_EXPIRED')
})

t.test('evidence: a dev quote binding the key config, signing address and no GPU', async (t) => {
  const { enclave } = await setup(t)
  const nonce = new Uint8Array(32).fill(9)
  const bundle = await enclave.attest(nonce)
  t.equal(bundle.signingAddress, enclave.status().signingAddress)
  t.same(Buffer.from(bundle.keyConfig, 'base64'), Buffer.from(enclave.keyConfigs().subarray(2)), 'the key config served is the one bound')
  const collateral = signDevCollateral(ca, { fmspc: DEV_FMSPC, now: NOW, platform: signer.platform })
  const root = trustedRootFromDer('dev', ca.rootCertificateDer, ca.rootFingerprint)
  verifyQuote(new Uint8Array(Buffer.from(bundle.quote, 'base64')), collateral, { now: new Date(NOW.getTime() + 3_600_000), trustedRoot: root })
  verifyEvidenceBinding(bundle, { expectedNonce: nonce })
  t.pass('quote genuine, binding holds')
})

t.test('receipts after a rotation: signed by the epoch that decrypted, or a typed error once its key is gone', async (t) => {
  let clock = NOW.getTime()
  const { enclave, transport, server } = await setup(t, { epochLengthMs: 60_000, graceMs: 10_000, now: () => clock })
  const old = enclave.keyConfigs()
  const oldEpoch = enclave.status().epoch
  const oldSigner = enclave.status().signingAddress
  clock += 65_000 // the next epoch is current; the old one decrypts until its grace ends
  await enclave.handle(new Uint8Array(0), 'message/ohttp-req', { signal: new AbortController().signal }).catch(() => {}) // rotates
  t.not(enclave.status().epoch, oldEpoch, 'rotated')

  // Finishes inside the grace: the old epoch's key signs, and the receipt names the old epoch.
  const inGrace = await ohttpRequest(old, transport, '/v1/chat/completions', chat({ stream: true }), { date: new Date(clock) })
  const { fields, signature, domain } = receiptFromJson(inGrace.receipt!)
  t.equal(fields.epoch.toString(), oldEpoch, 'the receipt names the epoch that decrypted the request')
  t.equal(inGrace.receipt!.signer, oldSigner)
  t.ok(await verifyReceipt(fields, signature, oldSigner, domain), 'signed by that epoch\'s key')

  // Started in the grace, finished after it: no receipt signed by another key, a typed error instead.
  server.knobs.stallAfter = 2
  const late = ohttpRequest(old, transport, '/v1/chat/completions', chat({ stream: true }), { date: new Date(clock) })
  const started = server.stats.log.length
  await server.until((s) => s.log.length > started && s.log.at(-1)!.eventsSent >= 2)
  clock += 10_000
  enclave.keyConfigs() // a look at the live epochs destroys the old one, as the manager's timer would
  server.knobs.stallAfter = null
  server.release()
  const r = await late
  t.equal(r.status, 200)
  t.notOk(r.receipt, 'no receipt')
  t.equal(r.trailers['cgw-error'], 'ENCLAVE_RECEIPT_KEY_DESTROYED')
  t.match(text(r.events.at(-1)!), /^event: error\ndata: .*ENCLAVE_RECEIPT_KEY_DESTROYED/)
  const current = await ohttpRequest(enclave.keyConfigs(), transport, '/v1/chat/completions', chat({ stream: true }), { date: new Date(clock) })
  t.equal(current.receipt?.signer, enclave.status().signingAddress, 'the current epoch still serves and signs')
})

t.test('the inner date (RFC 9458 §6.5): required, within the window, answered inside the encryption', async (t) => {
  let clock = Date.now()
  const { enclave, transport } = await setup(t, { now: () => clock })
  const problem = (r: { events: Uint8Array[] }) => JSON.parse(text(Buffer.concat(r.events)))
  const header = (r: { headers: readonly (readonly [string, string])[] }, name: string) => r.headers.find(([k]) => k === name)?.[1]

  const missing = await ohttpRequest(enclave.keyConfigs(), transport, '/v1/chat/completions', chat(), { date: null })
  t.equal(missing.status, 400)
  t.equal(problem(missing).code, 'ENCLAVE_OHTTP_DATE_INVALID')
  t.equal(problem(missing).type, 'https://iana.org/assignments/http-problem-types#date')
  t.equal(header(missing, 'date'), new Date(clock).toUTCString(), 'the gateway\'s Date, so the client can correct')
  t.notOk(missing.receipt)

  const garbled = await ohttpRequest(enclave.keyConfigs(), transport, '/v1/chat/completions', chat(), { date: 'yesterday' })
  t.equal(problem(garbled).code, 'ENCLAVE_OHTTP_DATE_INVALID')
  const stale = await ohttpRequest(enclave.keyConfigs(), transport, '/v1/chat/completions', chat(), { date: new Date(clock - 61_000) })
  t.same([stale.status, problem(stale).code], [400, 'ENCLAVE_OHTTP_DATE_OUT_OF_RANGE'])
  const future = await ohttpRequest(enclave.keyConfigs(), transport, '/v1/chat/completions', chat(), { date: new Date(clock + 61_000) })
  t.equal(problem(future).code, 'ENCLAVE_OHTTP_DATE_OUT_OF_RANGE')
  const skewed = await ohttpRequest(enclave.keyConfigs(), transport, '/v1/chat/completions', chat(), { date: new Date(clock - 59_000) })
  t.equal(skewed.status, 200, 'inside the window')

  // A refused request takes no replay entry; a fresh one is remembered until its date can no longer pass.
  const ac = new AbortController()
  const handle = (b: Uint8Array, ct: string) => enclave.handle(b, ct, { signal: ac.signal })
  const req = await encapsulate(enclave.keyConfigs(), '/v1/chat/completions', chat(), 'POST', { date: new Date(clock + 60_000) })
  await handle(req.body, req.contentType)
  clock += 119_000
  t.equal(await rejection(handle(req.body, req.contentType)), 'ENCLAVE_OHTTP_REPLAYED', 'within 2 windows of first sight: the cache refuses it')
  clock += 2_000
  const late = await handle(req.body, req.contentType)
  t.equal((await late.outcome).code, 'ENCLAVE_OHTTP_DATE_OUT_OF_RANGE', 'after that, its date refuses it: the cache need not remember it')
})

t.test('replayWindowMs at or below 2 × the date window is refused before anything starts', async (t) => {
  // Never reached: createEnclave refuses the options before the engine is used.
  const engine = { name: 'unused', models: async () => [], request: async () => Promise.reject(new Error('unused')), close: async () => {} }
  const base = { engine, quotes: createDevQuoteProvider({ signer }), eventLog: createDevEventLogProvider(), gpu: null, epochLengthMs: 3_600_000, graceMs: 60_000 }
  const refused: [string, { replayWindowMs: number; requestDateWindowMs?: number }][] = [
    ['exactly 2 × the default window', { replayWindowMs: 120_000 }],
    ['far below it', { replayWindowMs: 1_000 }],
    ['exactly 2 × a configured window', { replayWindowMs: 20_000, requestDateWindowMs: 10_000 }],
    ['not a number', { replayWindowMs: Number.NaN }],
  ]
  for (const [name, o] of refused) t.equal(await rejection(createEnclave({ ...base, ...o })), 'ATTESTATION_OPTIONS_INVALID', name)
  // The least safe value (and the default) is accepted.
  const least = await createEnclave({ ...base, replayWindowMs: 20_001, requestDateWindowMs: 10_000 })
  await least.close()
  const byDefault = await createEnclave(base)
  await byDefault.close()
})
