/**
 * Oblivious HTTP between the enclave (server) and its clients:
 *
 * - key configs and key pairs;
 * - round trips: whole and chunked requests, whole and chunked responses,
 *   an SSE-like stream with one Binary HTTP content chunk per OHTTP chunk,
 *   arbitrary network fragmentation (fast-check, fixed seed), and chunks
 *   delivered before the stream ends;
 * - every way a request can be bad, each with its code: wrong key id,
 *   destroyed key, unsupported suite, truncation at every length, every
 *   single bit flipped, replay, a full replay cache, malformed Binary HTTP
 *   inside a valid encryption;
 * - every way a response can be bad, on the client: a flipped bit anywhere,
 *   a dropped, reordered or re-marked chunk, a missing final chunk,
 *   truncation at every length, bytes after the final chunk;
 * - the Binary HTTP parser's strictness and limits, and properties: any
 *   input returns or fails with the parser's own code; any fragmentation
 *   decodes like the whole.
 *
 * Assertions are on `err.code`, never on messages.
 */
import t from 'tap'
import fc from 'fast-check'
import { inspect } from 'node:util'
import { EnclaveError } from '../enclave/errors.ts'
import {
  AEAD_AES_128_GCM,
  AEAD_AES_256_GCM,
  BhttpResponseDecoder,
  beginResponse,
  contentChunk,
  createOhttpServer,
  createReplayCache,
  decodeBhttpRequest,
  decodeBhttpResponse,
  decodeBhttpResponseStream,
  encapsulateRequest,
  encodeBhttpRequest,
  encodeBhttpResponse,
  encodeKeyConfig,
  encodeKeyConfigs,
  endResponse,
  formatHttpDate,
  generateOhttpKeyPair,
  KDF_HKDF_SHA256,
  KEM_X25519_HKDF_SHA256,
  parseKeyConfig,
  parseHttpDate,
  parseKeyConfigs,
  requestOfDateError,
  type BhttpLimits,
  type BhttpResponseEvent,
  type OhttpKeyPair,
} from '../enclave/ohttp/index.ts'
import { recipientKeyOf } from '../enclave/ohttp/keys.ts'
import { MAX_CHUNK_COUNTER, chunkNonce, openChunkedResponse } from '../enclave/ohttp/chunked-response.ts'
import { AEADS, cipherSuite } from '../enclave/ohttp/hpke.ts'
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core'
import { aeadSeal } from '../enclave/ohttp/symmetric.ts'
import { encodeVarint, varintLengthOf } from '../enclave/ohttp/varint.ts'
import { DEFAULT_BHTTP_REQUEST_LIMITS } from '../enclave/ohttp/bhttp.ts'
import { codeOf } from './helpers/errors.ts'

const SEED = 20240917
const enc = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array) => Buffer.from(b).toString()
const concat = (parts: readonly Uint8Array[]) => new Uint8Array(Buffer.concat(parts))

/** The code a promise rejects with ('resolved' if it does not). */
async function rejection(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p
    return 'resolved'
  } catch (e) {
    return codeOf(e) ?? `untyped: ${(e as Error)?.name}`
  }
}
function syncCode(f: () => unknown): string | undefined {
  try {
    f()
    return 'returned'
  } catch (e) {
    return codeOf(e) ?? `untyped: ${(e as Error)?.name}`
  }
}
async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}
/** `bytes` cut at the given offsets (sorted, deduplicated, inside the array). */
function fragment(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < bytes.length))].sort((a, b) => a - b)
  const out: Uint8Array[] = []
  let last = 0
  for (const p of points) {
    out.push(bytes.subarray(last, p))
    last = p
  }
  out.push(bytes.subarray(last))
  return out
}

const KEY_ID = 7
const pair = await generateOhttpKeyPair(KEY_ID)

function setup(options: { keys?: (id: number) => OhttpKeyPair | undefined; maxEntries?: number; windowMs?: number; limits?: BhttpLimits } = {}) {
  const clock = { now: 1_000_000 }
  const replay = createReplayCache({ windowMs: options.windowMs ?? 60_000, maxEntries: options.maxEntries ?? 100_000, now: () => clock.now })
  const server = createOhttpServer({
    keys: options.keys ?? ((id) => (id === KEY_ID ? pair : undefined)),
    replay,
    ...(options.limits === undefined ? {} : { bhttpLimits: options.limits }),
  })
  return { server, replay, clock }
}

const chatRequest = encodeBhttpRequest({
  method: 'POST',
  scheme: 'https',
  authority: 'gateway.example',
  path: '/v1/chat/completions?trace=0',
  headers: [
    ['content-type', 'application/json'],
    ['accept', 'text/event-stream'],
  ],
  content: '{"model":"tiny","stream":true,"messages":[{"role":"user","content":"canary-7f3a"}]}',
})

// ------------------------------------------------------------------ keys

t.test('key configs (RFC 9458 §3)', async (t) => {
  const config = parseKeyConfig(pair.keyConfig)
  t.equal(config.keyId, KEY_ID)
  t.equal(config.kemId, KEM_X25519_HKDF_SHA256)
  t.equal(config.publicKey.length, 32)
  t.same(config.symmetric, [{ kdfId: KDF_HKDF_SHA256, aeadId: AEAD_AES_256_GCM }], 'the enclave offers exactly HKDF-SHA256 + AES-256-GCM')
  t.same(encodeKeyConfig(config), pair.keyConfig, 'encode(parse(x)) = x')
  t.equal(pair.keyConfig.length, 1 + 2 + 32 + 2 + 4)

  const other = await generateOhttpKeyPair(8)
  const list = encodeKeyConfigs([pair.keyConfig, other.keyConfig])
  t.same(
    parseKeyConfigs(list).map((c) => c.keyId),
    [7, 8],
    'application/ohttp-keys: two length-prefixed configs',
  )
  // A config of a KEM we cannot delimit (P-384 here, with a made-up body) is skipped, not fatal.
  const unknownKem = new Uint8Array([9, 0x00, 0x99, 1, 2, 3])
  t.same(
    parseKeyConfigs(encodeKeyConfigs([unknownKem, pair.keyConfig])).map((c) => c.keyId),
    [7],
    'a config for an unknown KEM is skipped',
  )

  // Every truncation of the list either is exactly the first config or is rejected whole (RFC 9458 §3.2).
  const boundary = 2 + pair.keyConfig.length
  for (let n = 0; n < list.length; n++) {
    const code = syncCode(() => parseKeyConfigs(list.subarray(0, n)))
    if (n === boundary) t.equal(code, 'returned', `cut at the config boundary (${n})`)
    else if (code !== 'OHTTP_KEY_CONFIG_INVALID') t.fail(`truncated to ${n}: ${code}`)
  }
  t.equal(syncCode(() => parseKeyConfigs(concat([list, new Uint8Array([0])]))), 'OHTTP_KEY_CONFIG_INVALID', 'a trailing byte')
  const badSymLength = pair.keyConfig.slice()
  badSymLength[36] = 5 // symmetric algorithms length 5: not whole pairs
  t.equal(syncCode(() => parseKeyConfig(badSymLength)), 'OHTTP_KEY_CONFIG_INVALID', 'algorithm list length not a multiple of 4')
  t.equal(syncCode(() => parseKeyConfig(concat([pair.keyConfig, new Uint8Array([0, 1, 0, 2])]))), 'OHTTP_KEY_CONFIG_INVALID', 'bytes after the list')
  t.equal(syncCode(() => encodeKeyConfig({ ...config, keyId: 256 })), 'OHTTP_ARGUMENT_INVALID')
  t.equal(syncCode(() => encodeKeyConfig({ ...config, publicKey: new Uint8Array(31) })), 'OHTTP_ARGUMENT_INVALID')
})

t.test('key pairs hold no reachable key material', async (t) => {
  const p = await generateOhttpKeyPair(3)
  const keys = recipientKeyOf(p)!
  t.equal(keys.privateKey.extractable, false, 'the private key is a non-extractable CryptoKey')
  t.match(await rejection(crypto.subtle.exportKey('pkcs8', keys.privateKey)), /^untyped: InvalidAccess/, 'WebCrypto refuses to export it')
  t.same(Object.keys(JSON.parse(JSON.stringify(p))).sort(), ['destroyed', 'keyConfig', 'keyId'])
  t.notMatch(inspect(p, { showHidden: true, depth: 5 }), /CryptoKey|privateKey/)
  for (const v of Object.values(Object.getOwnPropertyDescriptors(p))) t.notOk(v.value instanceof CryptoKey)
  const copy = p.keyConfig
  copy.fill(0)
  t.notSame(p.keyConfig, copy, 'keyConfig reads are copies')
  t.equal(await rejection(generateOhttpKeyPair(-1)), 'OHTTP_ARGUMENT_INVALID')
  t.equal(await rejection(generateOhttpKeyPair(1.5)), 'OHTTP_ARGUMENT_INVALID')

  // A destroyed key never decapsulates again, even if a stale lookup still returns it.
  const { server } = setup({ keys: () => p })
  const request = await encapsulateRequest(p.keyConfig, chatRequest)
  p.destroy()
  t.ok(p.destroyed)
  t.equal(recipientKeyOf(p), undefined)
  t.equal(await rejection(server.decapsulate(request.body, request.contentType)), 'ENCLAVE_OHTTP_EPOCH_EXPIRED')
  p.destroy()
  // An object that only looks like a key pair is not one.
  const forged = { ...pair }
  const { server: s2 } = setup({ keys: () => forged as OhttpKeyPair })
  const r2 = await encapsulateRequest(pair.keyConfig, chatRequest)
  t.equal(await rejection(s2.decapsulate(r2.body, r2.contentType)), 'ENCLAVE_OHTTP_EPOCH_EXPIRED', 'a look-alike object has no private key')
})

t.test("node:crypto primitives agree with @hpke/core's own WebCrypto ones", async (t) => {
  const stock = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() })
  const ours = cipherSuite(AEAD_AES_256_GCM)
  const info = enc('message/bhttp request\0test')
  for (const recipient of [await stock.kem.generateKeyPair(), recipientKeyOf(pair)!]) {
    for (let i = 0; i < 10; i++) {
      const pt = enc(`message ${i}`.repeat(i + 1))
      const aad = enc(`aad ${i}`)
      for (const [from, to] of [
        [stock, ours],
        [ours, stock],
      ] as const) {
        const sender = await from.createSenderContext({ recipientPublicKey: recipient.publicKey, info })
        const ct = new Uint8Array(await sender.seal(pt, aad))
        const receiver = await to.createRecipientContext({ recipientKey: recipient, enc: sender.enc, info })
        if (Buffer.compare(new Uint8Array(await receiver.open(ct, aad)), pt) !== 0) t.fail('open mismatch')
        const a = new Uint8Array(await sender.export(enc('message/bhttp response'), 32))
        const b = new Uint8Array(await receiver.export(enc('message/bhttp response'), 32))
        if (Buffer.compare(a, b) !== 0) t.fail('export mismatch')
      }
    }
  }
  t.pass('40 exchanges each way, extractable and non-extractable recipient keys: same plaintexts, same exports')
  const kp = await stock.kem.generateKeyPair()
  t.equal(await rejection(ours.createSenderContext({ recipientPublicKey: kp.publicKey, info, senderKey: kp })), 'untyped: Error', 'auth mode is refused')

  // Small-order public keys give the all-zero X25519 output, which RFC 9180 §7.1.4 says to refuse.
  const { server } = setup()
  const request = await encapsulateRequest(pair.keyConfig, chatRequest)
  for (const point of ['00', '01', 'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800']) {
    const bad = request.body.slice()
    bad.set(new Uint8Array(32), 7)
    bad.set(Buffer.from(point.padEnd(64, '0'), 'hex'), 7)
    t.equal(await rejection(server.decapsulate(bad, request.contentType)), 'ENCLAVE_OHTTP_DECRYPT_FAILED', `small-order enc ${point.slice(0, 8)}…`)
  }
})

// ------------------------------------------------------------------ round trips

t.test('round trip: whole request, whole response (RFC 9458)', async (t) => {
  const { server } = setup()
  const request = await encapsulateRequest(pair.keyConfig, chatRequest)
  t.equal(request.contentType, 'message/ohttp-req')
  t.equal(request.aeadId, AEAD_AES_256_GCM)
  const d = await server.decapsulate(request.body, 'Message/OHTTP-Req ')
  t.equal(d.keyId, KEY_ID)
  t.equal(d.chunked, false)
  t.same(d.bhttp, chatRequest, 'the exact Binary HTTP bytes (for the receipt hash)')
  t.match(d.request, { method: 'POST', scheme: 'https', authority: 'gateway.example', path: '/v1/chat/completions?trace=0' })
  t.same(d.request.headers, [
    ['content-type', 'application/json'],
    ['accept', 'text/event-stream'],
  ])
  t.match(text(d.request.content), /canary-7f3a/)
  t.notMatch(JSON.stringify(d) + inspect(d), /canary/, 'the decapsulated request does not print its plaintext')

  const answer = encodeBhttpResponse({ status: 200, headers: { 'content-type': 'application/json' }, content: '{"ok":true}' })
  const sealed = await d.respond.seal(answer)
  t.equal(sealed.contentType, 'message/ohttp-res')
  t.equal(sealed.body.length, 32 + answer.length + 16, 'nonce max(Nn, Nk) = 32, then ciphertext and tag')
  const opened = await request.openResponse(sealed.body)
  t.same(opened, answer)
  const response = decodeBhttpResponse(opened)
  t.equal(response.status, 200)
  t.equal(text(response.content), '{"ok":true}')
  t.same(await collect(request.open('message/ohttp-res', [sealed.body])), [answer], 'open() dispatches on the content type')

  t.equal(await rejection(d.respond.seal(answer)), 'OHTTP_ARGUMENT_INVALID', 'one response per request')
  t.equal(await rejection(d.respond.chunkedSealer()), 'OHTTP_ARGUMENT_INVALID')
})

t.test('round trip: streamed answer, one Binary HTTP chunk per OHTTP chunk', async (t) => {
  const { server } = setup()
  for (const chunkedRequest of [false, true]) {
    const request = await encapsulateRequest(pair.keyConfig, chatRequest, { chunked: chunkedRequest, chunkLength: 16 })
    t.equal(request.contentType, chunkedRequest ? 'message/ohttp-chunked-req' : 'message/ohttp-req')
    const d = await server.decapsulate(request.body, request.contentType)
    t.same(d.bhttp, chatRequest, chunkedRequest ? 'a request in 16-byte chunks joins back' : 'a whole request')
    const sealer = await d.respond.chunkedSealer()
    t.equal(sealer.contentType, 'message/ohttp-chunked-res')
    const events = Array.from({ length: 40 }, (_, i) => `data: {"choices":[{"delta":{"content":"tok${i}"}}]}\n\n`)
    const pieces = [beginResponse(200, { 'content-type': 'text/event-stream' }), ...events.map((e) => contentChunk(e)), endResponse({ 'x-receipt': 'sig-0xabc' })]
    const wire = pieces.map((p, i) => sealer.seal(p, i === pieces.length - 1))
    t.ok(sealer.finished)
    t.equal(syncCode(() => sealer.seal(enc('late'))), 'OHTTP_ARGUMENT_INVALID', 'nothing after the final chunk')

    const body = concat(wire)
    const plaintexts = await collect(request.openChunkedResponse(fragment(body, [1, 5, 31, 32, 33, 100, 101, 700])))
    t.same(plaintexts, pieces, 'the client gets back exactly the sealed pieces, one per OHTTP chunk')
    const decoded = await collect(decodeBhttpResponseStream(request.openChunkedResponse([body])))
    t.same(decoded[0], { type: 'head', status: 200, headers: [['content-type', 'text/event-stream']] })
    t.same(
      decoded.filter((e) => e.type === 'content').map((e) => text((e as { data: Uint8Array }).data)),
      events,
      'each SSE event arrives as its own content event',
    )
    t.same(decoded.at(-1), { type: 'trailers', trailers: [['x-receipt', 'sig-0xabc']] })

    // The push form gives the same pieces, with no promise but the one that derives the keys.
    for (const cuts of [[1, 5, 31, 32, 33, 100, 101, 700], [], Array.from({ length: body.length }, (_, i) => i)]) {
      const reader = request.chunkedResponseOpener()
      const got: Uint8Array[] = []
      let promises = 0
      for (const f of fragment(body, cuts)) {
        const out = reader.push(f)
        if (out instanceof Promise) promises++
        got.push(...(await out))
      }
      got.push(...reader.end())
      t.same(got, pieces, `push form, ${cuts.length} cuts`)
      t.equal(promises, 1, 'one promise: the key derivation')
    }
    const tampered = body.slice()
    tampered[tampered.length - 1]! ^= 1
    const reader = request.chunkedResponseOpener()
    await reader.push(tampered)
    t.equal(syncCode(() => reader.end()), 'OHTTP_RESPONSE_INVALID', 'a tampered final chunk')
    const cut = request.chunkedResponseOpener()
    await cut.push(body.subarray(0, 200))
    t.equal(syncCode(() => cut.end()), 'OHTTP_RESPONSE_TRUNCATED')
  }
})

t.test('a chunked request gets a chunked response even from respond.seal (draft §3)', async (t) => {
  const { server } = setup()
  const request = await encapsulateRequest(pair.keyConfig, chatRequest, { chunked: true })
  const d = await server.decapsulate(request.body, request.contentType)
  const answer = encodeBhttpResponse({ status: 200, content: 'whole' })
  const sealed = await d.respond.seal(answer)
  t.equal(sealed.contentType, 'message/ohttp-chunked-res')
  t.same(await collect(request.open(sealed.contentType, [sealed.body])), [answer])
  t.equal(await rejection(request.openResponse(sealed.body)), 'OHTTP_RESPONSE_INVALID', 'a chunked request must not accept a non-chunked response')
  t.equal(await rejection(collect(request.open('application/json', [sealed.body]))), 'OHTTP_RESPONSE_INVALID', 'not an OHTTP media type')
})

t.test('chunks are yielded as soon as they arrive', async (t) => {
  const { server } = setup()
  const request = await encapsulateRequest(pair.keyConfig, chatRequest)
  const d = await server.decapsulate(request.body, request.contentType)
  const sealer = await d.respond.chunkedSealer()
  const first = sealer.seal(enc('first'))
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  async function* network() {
    yield first.subarray(0, 10)
    yield first.subarray(10)
    await gate
    yield sealer.seal(enc('last'), true)
  }
  const it = request.openChunkedResponse(network())[Symbol.asyncIterator]()
  const timeout = new Promise((r) => setTimeout(() => r('timed out'), 2000))
  const got = await Promise.race([it.next(), timeout])
  t.same(got, { value: enc('first'), done: false }, 'the first chunk is out while the stream is still open')
  release()
  t.same(await it.next(), { value: enc('last'), done: false })
  t.same(await it.next(), { value: undefined, done: true })
})

t.test('property: any chunking and any network fragmentation round-trips', async (t) => {
  const { server } = setup()
  const arb = fc.record({
    chunks: fc.array(fc.uint8Array({ minLength: 0, maxLength: 300 }), { minLength: 0, maxLength: 60 }),
    last: fc.uint8Array({ minLength: 0, maxLength: 100 }),
    cuts: fc.array(fc.nat({ max: 20_000 }), { maxLength: 40 }),
    chunkedRequest: fc.boolean(),
  })
  await t.resolves(
    fc.assert(
      fc.asyncProperty(arb, async ({ chunks, last, cuts, chunkedRequest }) => {
        const request = await encapsulateRequest(pair.keyConfig, chatRequest, { chunked: chunkedRequest, chunkLength: 13 })
        const d = await server.decapsulate(request.body, request.contentType)
        const sealer = await d.respond.chunkedSealer()
        const wire = concat([...chunks.map((c) => sealer.seal(c)), sealer.seal(last, true)])
        const got = await collect(request.openChunkedResponse(fragment(wire, cuts)))
        const expected = [...chunks.filter((c) => c.length > 0), ...(last.length > 0 ? [last] : [])]
        if (Buffer.compare(concat(got), concat(expected)) !== 0 || got.length !== expected.length) throw new Error('mismatch')
      }),
      { seed: SEED, numRuns: 60 },
    ),
  )
})

// ------------------------------------------------------------------ bad requests

t.test('bad requests: key id, suite, media type', async (t) => {
  const { server } = setup()
  const request = await encapsulateRequest(pair.keyConfig, chatRequest)
  const withHeader = (i: number, v: number) => {
    const b = request.body.slice()
    b[i] = v
    return b
  }
  t.equal(await rejection(server.decapsulate(withHeader(0, KEY_ID + 1), request.contentType)), 'ENCLAVE_OHTTP_KEY_UNKNOWN', 'wrong key id')
  t.equal(await rejection(server.decapsulate(withHeader(2, 0x10), request.contentType)), 'ENCLAVE_OHTTP_UNSUPPORTED_SUITE', 'KEM P-256')
  t.equal(await rejection(server.decapsulate(withHeader(4, 0x02), request.contentType)), 'ENCLAVE_OHTTP_UNSUPPORTED_SUITE', 'KDF HKDF-SHA384')
  t.equal(await rejection(server.decapsulate(withHeader(6, AEAD_AES_128_GCM), request.contentType)), 'ENCLAVE_OHTTP_UNSUPPORTED_SUITE', 'AES-128-GCM: implemented, but not offered with this key')
  t.equal(await rejection(server.decapsulate(withHeader(6, 0x03), request.contentType)), 'ENCLAVE_OHTTP_UNSUPPORTED_SUITE', 'ChaCha20Poly1305')
  t.equal(await rejection(server.decapsulate(request.body, 'application/json')), 'ENCLAVE_OHTTP_MALFORMED', 'not an OHTTP media type')
  t.ok(
    ['ENCLAVE_OHTTP_MALFORMED', 'ENCLAVE_OHTTP_DECRYPT_FAILED'].includes((await rejection(server.decapsulate(request.body, 'message/ohttp-chunked-req')))!),
    'a whole request labelled chunked is refused (its ciphertext is no chunk framing, and the info label differs)',
  )

  const expired = createOhttpServer({
    keys: () => {
      throw new EnclaveError('ENCLAVE_OHTTP_EPOCH_EXPIRED', 'epoch 3 is past its grace period')
    },
    replay: createReplayCache({ windowMs: 1, maxEntries: 1, now: () => 0 }),
  })
  t.equal(await rejection(expired.decapsulate(request.body, request.contentType)), 'ENCLAVE_OHTTP_EPOCH_EXPIRED', 'the key lookup may report an expired epoch')
  t.equal(syncCode(() => createOhttpServer({ keys: () => undefined } as never)), 'OHTTP_ARGUMENT_INVALID', 'a replay cache is required')
})

t.test('bad requests: truncated at every length', async (t) => {
  const { server, replay } = setup()
  for (const chunked of [false, true]) {
    const request = await encapsulateRequest(pair.keyConfig, chatRequest, { chunked, chunkLength: 20 })
    const minimum = 7 + 32 + (chunked ? 1 : 0) + 16
    const seen = new Map<string, number>()
    for (let n = 0; n < request.body.length; n++) {
      const code = await rejection(server.decapsulate(request.body.subarray(0, n), request.contentType))
      seen.set(code!, (seen.get(code!) ?? 0) + 1)
      const allowed = n < minimum ? ['ENCLAVE_OHTTP_MALFORMED'] : chunked ? ['ENCLAVE_OHTTP_MALFORMED', 'ENCLAVE_OHTTP_DECRYPT_FAILED'] : ['ENCLAVE_OHTTP_DECRYPT_FAILED']
      if (!allowed.includes(code!)) t.fail(`${chunked ? 'chunked' : 'whole'} request cut to ${n} bytes: ${code}`)
    }
    t.pass(`${chunked ? 'chunked' : 'whole'} request, ${request.body.length} truncations: ${JSON.stringify(Object.fromEntries(seen))}`)
  }
  t.equal(replay.size, 0, 'nothing that failed to decrypt entered the replay cache')
})

t.test('bad requests: every single bit flipped', async (t) => {
  const { server, replay } = setup()
  const small = encodeBhttpRequest({ method: 'POST', scheme: 'https', authority: 'g', path: '/v1/x', content: 'hi' })
  const request = await encapsulateRequest(pair.keyConfig, small)
  const expected = (byte: number) =>
    byte === 0
      ? 'ENCLAVE_OHTTP_KEY_UNKNOWN'
      : byte < 7
        ? 'ENCLAVE_OHTTP_UNSUPPORTED_SUITE'
        : 'ENCLAVE_OHTTP_DECRYPT_FAILED' // enc (bytes 7..38) or ciphertext and tag
  let checked = 0
  for (let byte = 0; byte < request.body.length; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      const b = request.body.slice()
      b[byte]! ^= 1 << bit
      const code = await rejection(server.decapsulate(b, request.contentType))
      if (code !== expected(byte)) t.fail(`bit ${bit} of byte ${byte}: ${code}, expected ${expected(byte)}`)
      checked++
    }
  }
  t.equal(checked, request.body.length * 8, `${checked} flipped bits, each rejected with its code`)
  t.equal(replay.size, 0)
  t.equal((await server.decapsulate(request.body, request.contentType)).request.method, 'POST', 'the unmodified request still works')
})

t.test('replay protection (RFC 9458 §6.5)', async (t) => {
  const { server, replay, clock } = setup({ windowMs: 10_000, maxEntries: 2 })
  const a = await encapsulateRequest(pair.keyConfig, chatRequest)
  const b = await encapsulateRequest(pair.keyConfig, chatRequest)
  const c = await encapsulateRequest(pair.keyConfig, chatRequest)
  t.equal((await server.decapsulate(a.body, a.contentType)).keyId, KEY_ID)
  t.equal(await rejection(server.decapsulate(a.body, a.contentType)), 'ENCLAVE_OHTTP_REPLAYED', 'the same request again')
  clock.now += 9_999
  t.equal(await rejection(server.decapsulate(a.body, a.contentType)), 'ENCLAVE_OHTTP_REPLAYED', 'still inside the window')
  t.equal((await server.decapsulate(b.body, b.contentType)).keyId, KEY_ID)
  t.equal(replay.size, 2)
  t.equal(await rejection(server.decapsulate(c.body, c.contentType)), 'ENCLAVE_OHTTP_REPLAY_CACHE_FULL', 'full of live entries: refuse, do not forget')
  t.equal(await rejection(server.decapsulate(a.body, a.contentType)), 'ENCLAVE_OHTTP_REPLAYED', 'a replay is still a replay when the cache is full')
  clock.now += 1
  t.equal((await server.decapsulate(c.body, c.contentType)).keyId, KEY_ID, 'the oldest entry expired, making room')
  t.equal(await rejection(server.decapsulate(c.body, c.contentType)), 'ENCLAVE_OHTTP_REPLAYED')

  // A replay of a request whose inner message is malformed is still recorded: the encryption was genuine.
  const { server: s2 } = setup()
  const junk = await encapsulateRequest(pair.keyConfig, enc('not binary http'))
  t.equal(await rejection(s2.decapsulate(junk.body, junk.contentType)), 'ENCLAVE_BHTTP_MALFORMED')
  t.equal(await rejection(s2.decapsulate(junk.body, junk.contentType)), 'ENCLAVE_OHTTP_REPLAYED')
})

t.test('contexts made ahead (client.ts): every request has a fresh ephemeral key, whole or chunked, in bursts and after refills', async (t) => {
  const { server } = setup()
  const encs = new Set<string>()
  const send = async (chunked: boolean) => {
    const r = await encapsulateRequest(pair.keyConfig, chatRequest, { chunked })
    encs.add(Buffer.from(r.body.subarray(7, 39)).toString('hex'))
    const d = await server.decapsulate(r.body, r.contentType)
    t.same(d.bhttp, chatRequest)
    // The response is bound to this request's own context.
    const answer = encodeBhttpResponse({ status: 200, headers: {}, content: 'ok' })
    const sealed = await d.respond.seal(answer)
    t.same(await collect(r.open(sealed.contentType, [sealed.body])), [answer])
  }
  let n = 0
  for (const chunked of [false, true]) {
    // A burst (spares run out, contexts made on the spot), a pause (spares made), another burst.
    await Promise.all(Array.from({ length: 5 }, () => send(chunked)))
    n += 5
    await new Promise((r) => setTimeout(r, 20))
    for (let i = 0; i < 5; i++) await send(chunked)
    n += 5
  }
  t.equal(encs.size, n, 'no ephemeral key (enc) is ever used twice')
})

t.test('contexts made ahead: more key configs than slots stop refilling instead of evicting each other for ever', async (t) => {
  // Count every sender context the (cached) suite makes, requests' and spares' alike.
  const suite = cipherSuite(AEAD_AES_256_GCM)
  const original = suite.createSenderContext.bind(suite)
  let made = 0
  suite.createSenderContext = (params) => {
    made++
    return original(params)
  }
  t.teardown(() => {
    suite.createSenderContext = original
  })
  const configs = await Promise.all(Array.from({ length: 40 }, (_, i) => generateOhttpKeyPair(i)))
  await Promise.all(configs.map((c) => encapsulateRequest(c.keyConfig, chatRequest)))
  await new Promise((r) => setTimeout(r, 50))
  const settled = made
  await new Promise((r) => setTimeout(r, 200))
  t.equal(made, settled, 'no context is made once the requests are done and the spares are full')
  t.ok(settled <= 40 + 40 * 2, `at most one context per request plus two spares per slot (${settled})`)
})

t.test('the inner date (RFC 9458 §6.5): checked before the replay cache, refusals stay answerable', async (t) => {
  const clock = { now: Date.UTC(2026, 10, 1, 12, 0, 0) }
  const replay = createReplayCache({ windowMs: 2 * 30_000 + 1, maxEntries: 100, now: () => clock.now })
  const server = createOhttpServer({ keys: (id) => (id === KEY_ID ? pair : undefined), replay, requestDate: { windowMs: 30_000, now: () => clock.now } })
  const dated = (date: string | null) =>
    encapsulateRequest(
      pair.keyConfig,
      encodeBhttpRequest({ method: 'POST', scheme: 'https', authority: 'g', path: '/canary-path', headers: date === null ? {} : { date }, content: '{"x":"CANARY-7"}' }),
    )
  const at = (ms: number) => new Date(ms).toUTCString()

  const fresh = await dated(at(clock.now - 30_000))
  t.equal((await server.decapsulate(fresh.body, fresh.contentType)).request.method, 'POST', 'at the edge of the window')
  t.equal(replay.size, 1)
  for (const [date, code] of [
    [null, 'ENCLAVE_OHTTP_DATE_INVALID'],
    ['tomorrow', 'ENCLAVE_OHTTP_DATE_INVALID'],
    [at(clock.now - 31_000), 'ENCLAVE_OHTTP_DATE_OUT_OF_RANGE'],
    [at(clock.now + 31_000), 'ENCLAVE_OHTTP_DATE_OUT_OF_RANGE'],
  ] as const) {
    const req = await dated(date)
    let caught: unknown
    await server.decapsulate(req.body, req.contentType).catch((e: unknown) => (caught = e))
    t.equal(codeOf(caught), code, String(date))
    const refused = requestOfDateError(caught)
    t.ok(refused, 'the refused request can still be answered inside the encryption')
    t.equal((await refused!.respond.seal(encodeBhttpResponse({ status: 400 }))).contentType, 'message/ohttp-res')
    t.notMatch(`${JSON.stringify(caught)} ${inspect(caught)}`, /CANARY|canary-path|tomorrow|GMT/, 'the error itself carries no part of the request')
  }
  t.equal(replay.size, 1, 'refused requests take no replay entry')
  t.equal(requestOfDateError(new EnclaveError('ENCLAVE_OHTTP_DATE_INVALID', 'x')), undefined)

  // Two dates in one request are not one date.
  const twice = await encapsulateRequest(
    pair.keyConfig,
    encodeBhttpRequest({ method: 'GET', scheme: 'https', authority: 'g', path: '/', headers: [['date', at(clock.now)], ['date', at(clock.now)]] }),
  )
  t.equal(await rejection(server.decapsulate(twice.body, twice.contentType)), 'ENCLAVE_OHTTP_DATE_INVALID')
  t.throws(() => createOhttpServer({ keys: () => pair, replay, requestDate: { windowMs: 0, now: () => 0 } }))
})

t.test('HTTP-date: the three formats of RFC 9110 §5.6.7, nothing else', async (t) => {
  const ms = Date.UTC(1994, 10, 6, 8, 49, 37)
  t.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT'), ms, 'IMF-fixdate')
  t.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', Date.UTC(2026, 0, 1)), ms, 'RFC 850')
  t.equal(parseHttpDate('Sun Nov  6 08:49:37 1994'), ms, 'asctime')
  t.equal(parseHttpDate(formatHttpDate(ms)), ms)
  for (const bad of ['Mon, 06 Nov 1994 08:49:37 GMT', 'Sun, 31 Nov 1994 08:49:37 GMT', 'Sun, 06 Nov 1994 24:00:00 GMT', 'Sun, 06 Nov 1994 08:49:37 UTC', '1994-11-06T08:49:37Z', '', 'x'.repeat(100)]) {
    t.equal(parseHttpDate(bad), undefined, bad)
  }
})

t.test('replay cache: clock, options', async (t) => {
  let now = 100
  const cache = createReplayCache({ windowMs: 50, maxEntries: 3, now: () => now })
  const id = (n: number) => new Uint8Array([n])
  cache.check(id(1))
  now = 120
  cache.check(id(2))
  now = 90 // the clock steps back: nothing is forgotten early
  t.equal(syncCode(() => cache.check(id(1))), 'ENCLAVE_OHTTP_REPLAYED')
  now = 150
  t.equal(syncCode(() => cache.check(id(1))), 'returned', 'expired exactly at first sight + window')
  t.equal(syncCode(() => cache.check(id(2))), 'ENCLAVE_OHTTP_REPLAYED')
  for (const bad of [
    { windowMs: 0, maxEntries: 1, now: () => 0 },
    { windowMs: Number.POSITIVE_INFINITY, maxEntries: 1, now: () => 0 },
    { windowMs: 1, maxEntries: 0, now: () => 0 },
    { windowMs: 1, maxEntries: 1.5, now: () => 0 },
    { windowMs: 1, maxEntries: 1, now: undefined },
  ]) {
    t.equal(syncCode(() => createReplayCache(bad as never)), 'OHTTP_ARGUMENT_INVALID')
  }
  const nan = createReplayCache({ windowMs: 1, maxEntries: 1, now: () => Number.NaN })
  t.equal(syncCode(() => nan.check(id(1))), 'OHTTP_ARGUMENT_INVALID', 'a broken clock fails closed')
})

t.test('malformed Binary HTTP inside a valid encryption', async (t) => {
  const tight: BhttpLimits = { ...DEFAULT_BHTTP_REQUEST_LIMITS, maxFieldLines: 2, maxContentLength: 10, maxControlDataLength: 32 }
  const { server } = setup({ limits: tight })
  const ok = { method: 'POST', scheme: 'https', authority: 'g', path: '/v1/x' }
  const valid = encodeBhttpRequest(ok)
  const hexes = (h: string) => new Uint8Array(Buffer.from(h, 'hex'))
  const cases: [string, Uint8Array][] = [
    ['empty', new Uint8Array(0)],
    ['a response, not a request', encodeBhttpResponse({ status: 200 })],
    ['framing indicator 4', new Uint8Array([4])],
    ['cut inside control data', valid.subarray(0, 5)],
    ['uppercase field name', hexes('0004504f5354056874747073016705' + '2f762f7831' + '04' + '01410131' + '0000')],
    ['field name with a space', hexes('0004504f535405687474707301670' + '52f762f7831' + '04' + '01200131' + '0000')],
    ['empty field name', hexes('0004504f5354056874747073016705' + '2f762f7831' + '03' + '000131' + '0000')],
    ['CR in a value', hexes('0004504f5354056874747073016705' + '2f762f7831' + '04' + '0161010d' + '0000')],
    ['connection-specific field', encodeBhttpRequestUnchecked(ok, [['connection', 'close']])],
    ['pseudo-field', encodeBhttpRequestUnchecked(ok, [[':path', '/']])],
    ['content-length disagrees', encodeBhttpRequest({ ...ok, headers: { 'content-length': '3' }, content: 'four' })],
    ['too many field lines', encodeBhttpRequest({ ...ok, headers: [['a', '1'], ['b', '2'], ['c', '3']] })],
    ['content over its limit', encodeBhttpRequest({ ...ok, content: 'x'.repeat(11) })],
    ['indeterminate content over its limit', encodeBhttpRequest({ ...ok, content: 'x'.repeat(11) }, { framing: 'indeterminate-length' })],
    ['control data over its limit', encodeBhttpRequest({ ...ok, path: '/' + 'p'.repeat(40) })],
    ['non-zero padding', concat([valid, new Uint8Array([0, 0, 1])])],
    ['known-length section running past the end', hexes('0004504f5354056874747073016705' + '2f762f7831' + '10' + '01610131')],
    ['a relative path', hexes('0004504f5354056874747073016704' + '762f7831')],
    ['a content chunk cut short', concat([encodeBhttpRequest(ok, { framing: 'indeterminate-length' }).subarray(0, 21), new Uint8Array([5, 1, 2])])],
  ]
  for (const [name, bhttp] of cases) {
    const request = await encapsulateRequest(pair.keyConfig, bhttp)
    t.equal(await rejection(server.decapsulate(request.body, request.contentType)), 'ENCLAVE_BHTTP_MALFORMED', name)
  }
  const fine = await encapsulateRequest(pair.keyConfig, encodeBhttpRequest({ ...ok, headers: { 'content-length': '4' }, content: 'four' }))
  t.equal(text((await server.decapsulate(fine.body, fine.contentType)).request.content), 'four', 'a matching content-length is fine')
})

/** A known-length request with fields the encoder would refuse (to test the decoder). */
function encodeBhttpRequestUnchecked(control: { method: string; scheme: string; authority: string; path: string }, fields: [string, string][]): Uint8Array {
  const parts: number[] = [0]
  const push = (s: string) => parts.push(...encodeVarint(Buffer.byteLength(s, 'latin1')), ...Buffer.from(s, 'latin1'))
  for (const s of [control.method, control.scheme, control.authority, control.path]) push(s)
  const section: number[] = []
  for (const [n, v] of fields) section.push(...encodeVarint(n.length), ...Buffer.from(n, 'latin1'), ...encodeVarint(v.length), ...Buffer.from(v, 'latin1'))
  parts.push(...encodeVarint(section.length), ...section, 0, 0)
  return new Uint8Array(parts)
}

// ------------------------------------------------------------------ bad responses (client)

async function streamedExchange(pieces: readonly string[]) {
  const { server } = setup()
  const request = await encapsulateRequest(pair.keyConfig, chatRequest)
  const d = await server.decapsulate(request.body, request.contentType)
  const sealer = await d.respond.chunkedSealer()
  const wire = pieces.map((p, i) => sealer.seal(enc(p), i === pieces.length - 1))
  // Where each sealed chunk's length field and body lie in the joined stream.
  const layout: { lengthField: [number, number]; body: [number, number] }[] = []
  let at = 0
  for (const [i, w] of wire.entries()) {
    const skip = i === 0 ? 32 : 0
    const lengthFieldSize = varintLengthOf(w[skip]!)
    layout.push({ lengthField: [at + skip, at + skip + lengthFieldSize], body: [at + skip + lengthFieldSize, at + w.length] })
    at += w.length
  }
  return { request, wire, body: concat(wire), layout }
}

t.test('bad responses: every single bit flipped', async (t) => {
  const { request, body, layout } = await streamedExchange(['alpha', 'bravo', 'charlie', 'delta', 'echo-final'])
  t.same(await collect(request.openChunkedResponse([body])), ['alpha', 'bravo', 'charlie', 'delta', 'echo-final'].map(enc))
  const inLengthField = (i: number) => layout.some((l) => i >= l.lengthField[0] && i < l.lengthField[1])
  let checked = 0
  for (let byte = 0; byte < body.length; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      const b = body.slice()
      b[byte]! ^= 1 << bit
      const code = await rejection(collect(request.openChunkedResponse(fragment(b, [byte, byte + 1]))))
      const allowed = inLengthField(byte) ? ['OHTTP_RESPONSE_INVALID', 'OHTTP_RESPONSE_TRUNCATED'] : ['OHTTP_RESPONSE_INVALID']
      if (!allowed.includes(code!)) t.fail(`bit ${bit} of byte ${byte}: ${code}`)
      checked++
    }
  }
  t.equal(checked, body.length * 8, `${checked} flipped bits in nonce, length fields, ciphertexts and tags: all rejected`)
})

t.test('bad responses: dropped, reordered, re-marked, missing, extra', async (t) => {
  const pieces = ['one', 'two', 'three', 'four', 'five']
  const { request, wire, body, layout } = await streamedExchange(pieces)
  const nonce = wire[0]!.subarray(0, 32)
  const chunk = (i: number) => body.subarray(layout[i]!.lengthField[0], layout[i]!.body[1])
  const open = (parts: Uint8Array[]) => rejection(collect(request.openChunkedResponse(parts)))
  for (let i = 0; i < 4; i++) {
    const kept = [nonce, ...[0, 1, 2, 3, 4].filter((j) => j !== i).map(chunk)]
    t.equal(await open(kept), 'OHTTP_RESPONSE_INVALID', `chunk ${i} dropped`)
  }
  t.equal(await open([nonce, chunk(0), chunk(2), chunk(1), chunk(3), chunk(4)]), 'OHTTP_RESPONSE_INVALID', 'chunks 1 and 2 swapped')
  t.equal(await open([nonce, chunk(0), chunk(1), chunk(2), chunk(3)]), 'OHTTP_RESPONSE_TRUNCATED', 'final chunk missing')
  t.equal(await open([nonce, chunk(0), chunk(1), chunk(2), chunk(3), chunk(3), chunk(4)]), 'OHTTP_RESPONSE_INVALID', 'a chunk repeated')
  t.equal(await open([nonce, chunk(4)]), 'OHTTP_RESPONSE_INVALID', 'only the final chunk')
  t.equal(await open([body, new Uint8Array([0])]), 'OHTTP_RESPONSE_INVALID', 'one byte after the final chunk')
  t.equal(await open([body, chunk(4)]), 'OHTTP_RESPONSE_INVALID', 'the final chunk twice')
  // Re-mark non-final chunk 3 as final: length field 0, its sealed body to the end.
  const sealed3 = body.subarray(layout[3]!.body[0], layout[3]!.body[1])
  t.equal(await open([nonce, chunk(0), chunk(1), chunk(2), new Uint8Array([0]), sealed3]), 'OHTTP_RESPONSE_INVALID', 'a non-final chunk passed off as final')
  // And the final chunk passed off as non-final (a length field in front): the stream then has no final chunk.
  const sealedFinal = body.subarray(layout[4]!.body[0])
  t.equal(await open([nonce, chunk(0), chunk(1), chunk(2), chunk(3), encodeVarint(sealedFinal.length), sealedFinal]), 'OHTTP_RESPONSE_INVALID', 'the final chunk passed off as non-final')
  t.equal(await open([nonce.subarray(0, 20)]), 'OHTTP_RESPONSE_TRUNCATED', 'cut inside the nonce')
  t.equal(await open([]), 'OHTTP_RESPONSE_TRUNCATED', 'empty')

  // Truncation at every length: before the final chunk indicator the response is truncated; after it, the final chunk is.
  const finalIndicator = layout[4]!.lengthField[0]
  for (let n = 0; n < body.length; n++) {
    const code = await open([body.subarray(0, n)])
    const expected = n <= finalIndicator ? 'OHTTP_RESPONSE_TRUNCATED' : 'OHTTP_RESPONSE_INVALID'
    if (code !== expected) t.fail(`cut to ${n}: ${code}`)
  }
  t.pass(`${body.length} truncations rejected`)

  // What was verified before the cut is delivered; the generator then throws.
  const got: string[] = []
  const code = await rejection(
    (async () => {
      for await (const p of request.openChunkedResponse([nonce, chunk(0), chunk(1)])) got.push(text(p))
    })(),
  )
  t.equal(code, 'OHTTP_RESPONSE_TRUNCATED')
  t.same(got, ['one', 'two'], 'chunks before the cut were yielded, the error comes at the end')
})

t.test('bad responses: empty non-final chunk, oversized chunks, whole responses', async (t) => {
  const aead = AEADS.get(AEAD_AES_256_GCM)!
  const keys = { aead, key: new Uint8Array(32).fill(1), nonce: new Uint8Array(12).fill(2) }
  const derive = async () => ({ ...keys, key: keys.key.slice() })
  const nonce = new Uint8Array(32)
  const emptyChunk = aeadSeal(aead, keys.key, chunkNonce(keys.nonce, 0), new Uint8Array(0), new Uint8Array(0))
  const final = aeadSeal(aead, keys.key, chunkNonce(keys.nonce, 1), enc('final'), enc('x'))
  const stream = [nonce, encodeVarint(emptyChunk.length), emptyChunk, new Uint8Array([0]), final]
  t.equal(await rejection(collect(openChunkedResponse(stream, aead, derive))), 'OHTTP_RESPONSE_INVALID', 'a non-final chunk with no plaintext (draft §6)')
  const good = aeadSeal(aead, keys.key, chunkNonce(keys.nonce, 0), new Uint8Array(0), enc('abc'))
  const goodFinal = aeadSeal(aead, keys.key, chunkNonce(keys.nonce, 1), enc('final'), enc('de'))
  const ok = [nonce, encodeVarint(good.length), good, new Uint8Array([0]), goodFinal]
  t.same((await collect(openChunkedResponse(ok, aead, derive))).map(text), ['abc', 'de'], 'the hand-built stream is otherwise valid')
  t.equal(await rejection(collect(openChunkedResponse(ok, aead, derive, { maxSealedChunkLength: 18 }))), 'OHTTP_RESPONSE_INVALID', 'a chunk over the limit')
  t.equal(await rejection(collect(openChunkedResponse(ok, aead, derive, { maxSealedChunkLength: 19 }))), 'resolved', 'at the limit')
  const hugeLength = [nonce, encodeVarint(2 ** 40)]
  t.equal(await rejection(collect(openChunkedResponse(hugeLength, aead, derive))), 'OHTTP_RESPONSE_INVALID', 'a length field announcing 1 TiB is refused at once')
  const bigFinal = [nonce, new Uint8Array([0]), new Uint8Array(100)]
  t.equal(await rejection(collect(openChunkedResponse(bigFinal, aead, derive, { maxSealedChunkLength: 50 }))), 'OHTTP_RESPONSE_INVALID', 'a final chunk over the limit')

  const { server } = setup()
  const request = await encapsulateRequest(pair.keyConfig, chatRequest)
  const d = await server.decapsulate(request.body, request.contentType)
  const sealed = (await d.respond.seal(encodeBhttpResponse({ status: 204 }))).body
  for (let i = 0; i < sealed.length; i++) {
    const b = sealed.slice()
    b[i]! ^= 0x80
    if ((await rejection(request.openResponse(b))) !== 'OHTTP_RESPONSE_INVALID') t.fail(`whole response, byte ${i} flipped`)
    if ((await rejection(request.openResponse(sealed.subarray(0, i)))) !== 'OHTTP_RESPONSE_INVALID') t.fail(`whole response cut to ${i}`)
  }
  t.equal(await rejection(request.openResponse(concat([sealed, new Uint8Array([0])]))), 'OHTTP_RESPONSE_INVALID', 'a byte appended')
  t.pass('every flipped byte and every truncation of a whole response is OHTTP_RESPONSE_INVALID')
})

t.test('chunk nonces: counter XOR, never wrapping', async (t) => {
  const base = new Uint8Array(12)
  t.same([...chunkNonce(base, 1)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
  t.same([...chunkNonce(base, 2 ** 32)], [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])
  t.same([...chunkNonce(base, MAX_CHUNK_COUNTER)], [0, 0, 0, 0, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], '2^53 - 1, the last counter')
  t.throws(() => chunkNonce(base, MAX_CHUNK_COUNTER + 1), RangeError, 'past it the nonce is refused (draft §6.2: it must never repeat)')
  t.throws(() => chunkNonce(base, -1), RangeError)
  const ff = new Uint8Array(12).fill(0xff)
  t.same([...chunkNonce(ff, 0x0102)], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xfd])
})

// ------------------------------------------------------------------ Binary HTTP

t.test('Binary HTTP: streaming decode equals whole decode under any fragmentation', async (t) => {
  const response = concat([
    beginResponse(200, { 'content-type': 'text/event-stream', 'x-many': 'a'.repeat(300) }, [{ status: 103, headers: { link: '</a>' } }]),
    ...Array.from({ length: 20 }, (_, i) => contentChunk(`data: ${i}\n\n`.repeat(i + 1))),
    endResponse({ 'x-receipt': 'r' }),
    new Uint8Array(7), // padding
  ])
  const known = encodeBhttpResponse({ status: 201, headers: { a: 'b' }, content: 'k'.repeat(500), trailers: { t: 'v' } })
  const flatten = (events: BhttpResponseEvent[]) => {
    const out: unknown[] = []
    let content = ''
    for (const e of events) {
      if (e.type === 'content') content += text(e.data)
      else out.push(e)
    }
    return { out, content }
  }
  for (const message of [response, known]) {
    const whole = decodeBhttpResponse(message)
    const reference = flatten(await collect(decodeBhttpResponseStream([message])))
    t.equal(reference.content, text(whole.content))
    await t.resolves(
      fc.assert(
        fc.asyncProperty(fc.array(fc.nat({ max: message.length }), { maxLength: 30 }), async (cuts) => {
          const got = flatten(await collect(decodeBhttpResponseStream(fragment(message, cuts))))
          t.strictSame(got, reference)
        }),
        { seed: SEED, numRuns: 100 },
      ),
    )
  }
  const decoder = new BhttpResponseDecoder()
  const events = decoder.push(response.subarray(0, 40))
  t.equal(events[0]?.type, 'informational', 'events come out as soon as their bytes are in')
  t.notOk(decoder.complete)
})

t.test('Binary HTTP: any input is decoded or rejected with the parser code (property)', async (t) => {
  const { fig8KnownLengthRequest, fig9IndeterminateLengthRequest, fig11IndeterminateLengthResponse, fig13KnownLengthResponse } = JSON.parse(
    (await import('node:fs')).readFileSync(new URL('./fixtures/ohttp-rfc9292-examples.json', import.meta.url), 'utf8'),
  )
  const seeds = [fig8KnownLengthRequest, fig9IndeterminateLengthRequest, fig11IndeterminateLengthResponse, fig13KnownLengthResponse, Buffer.from(chatRequest).toString('hex')].map(
    (h: string) => new Uint8Array(Buffer.from(h, 'hex')),
  )
  const requestOk = (b: Uint8Array) => {
    const code = syncCode(() => decodeBhttpRequest(b))
    if (code !== 'returned' && code !== 'ENCLAVE_BHTTP_MALFORMED') throw new Error(`request decoder: ${code}`)
  }
  const responseOk = (b: Uint8Array) => {
    const code = syncCode(() => decodeBhttpResponse(b))
    if (code !== 'returned' && code !== 'OHTTP_BHTTP_MALFORMED') throw new Error(`response decoder: ${code}`)
  }
  const mutated = fc
    .record({ seed: fc.constantFrom(...seeds), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }), cut: fc.nat() })
    .map(({ seed, at, value, cut }) => {
      const b = seed.slice(0, Math.max(1, seed.length - (cut % 4 === 0 ? cut % seed.length : 0)))
      b[at % b.length] = value
      return b
    })
  const arb = fc.oneof(fc.uint8Array({ maxLength: 200 }), mutated)
  t.doesNotThrow(() => fc.assert(fc.property(arb, (b) => (requestOk(b), responseOk(b))), { seed: SEED, numRuns: 5000 }))
  for (const s of seeds) for (let n = 0; n <= s.length; n++) (requestOk(s.subarray(0, n)), responseOk(s.subarray(0, n)))
  t.pass('every truncation of every example decodes or is rejected with its code')
  // A varint announcing more than 2^53 bytes is a limit failure, not a crash.
  t.equal(syncCode(() => decodeBhttpRequest(new Uint8Array([0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))), 'ENCLAVE_BHTTP_MALFORMED')
})

t.test('Binary HTTP: response decoder strictness', async (t) => {
  const bad: [string, Uint8Array][] = [
    ['status 99', new Uint8Array([1, 0x40, 99, 0, 0, 0])],
    ['status 600', new Uint8Array([1, 0x42, 0x58, 0, 0, 0])],
    ['status 101 (not in HTTP/2)', new Uint8Array([1, 0x40, 101, 0, 0x40, 200, 0, 0, 0])],
    ['only informational', new Uint8Array([1, 0x40, 103, 0])],
    ['a request', encodeBhttpRequest({ method: 'GET', scheme: 'https', authority: 'a', path: '/' })],
    ['cut inside indeterminate content', concat([beginResponse(200), contentChunk('abc')])],
    ['cut inside an indeterminate header section', beginResponse(200, { a: 'b' }).subarray(0, 7)],
    ['content-length mismatch at the end of a stream', concat([beginResponse(200, { 'content-length': '2' }), contentChunk('abc'), endResponse()])],
  ]
  for (const [name, b] of bad) t.equal(syncCode(() => decodeBhttpResponse(b)), 'OHTTP_BHTTP_MALFORMED', name)
  t.equal(decodeBhttpResponse(beginResponse(200)).status, 200, 'truncated after the header section')
  t.equal(decodeBhttpResponse(new Uint8Array([3, 0x40, 200])).status, 200, 'truncated right after the final status')
  const limited = new BhttpResponseDecoder({ maxControlDataLength: 0, maxFieldLines: 1, maxFieldSectionLength: 10, maxContentLength: 5, maxInformationalResponses: 1 })
  t.equal(syncCode(() => limited.push(beginResponse(200, { a: 'b', c: 'd' }))), 'OHTTP_BHTTP_MALFORMED', 'field line limit')
  const limits = { maxControlDataLength: 0, maxFieldLines: 10, maxFieldSectionLength: 10, maxContentLength: 5, maxInformationalResponses: 1 }
  t.equal(syncCode(() => new BhttpResponseDecoder(limits).push(beginResponse(200, { a: 'b'.repeat(10) }))), 'OHTTP_BHTTP_MALFORMED', 'section length limit')
  t.equal(syncCode(() => new BhttpResponseDecoder(limits).push(concat([beginResponse(200), contentChunk('abcdef')]))), 'OHTTP_BHTTP_MALFORMED', 'content limit')
  t.equal(
    syncCode(() => new BhttpResponseDecoder(limits).push(beginResponse(200, {}, [{ status: 100 }, { status: 102 }]))),
    'OHTTP_BHTTP_MALFORMED',
    'informational response limit',
  )
  const d = new BhttpResponseDecoder()
  d.push(encodeBhttpResponse({ status: 200 }))
  d.end()
  t.equal(syncCode(() => d.push(new Uint8Array([0]))), 'OHTTP_BHTTP_MALFORMED', 'bytes after end()')
})

t.test('Binary HTTP encoders refuse what decoders would reject', async (t) => {
  const ok = { method: 'GET', scheme: 'https', authority: 'a', path: '/' }
  t.same(decodeBhttpRequest(encodeBhttpRequest({ ...ok, headers: { 'Content-Type': 'x' } })).headers, [['content-type', 'x']], 'names are lowercased')
  const bad: [string, () => unknown][] = [
    ['a space in a name', () => encodeBhttpRequest({ ...ok, headers: { 'a b': 'x' } })],
    ['CRLF in a value', () => encodeBhttpRequest({ ...ok, headers: { a: 'x\r\ny: z' } })],
    ['leading space in a value', () => encodeBhttpRequest({ ...ok, headers: { a: ' x' } })],
    ['a character above U+00FF', () => encodeBhttpRequest({ ...ok, headers: { a: 'caf\u0113' } })],
    ['connection-specific field', () => beginResponse(200, { 'transfer-encoding': 'chunked' })],
    ['te other than trailers', () => encodeBhttpRequest({ ...ok, headers: { te: 'gzip' } })],
    ['a relative path', () => encodeBhttpRequest({ ...ok, path: 'x' })],
    ['a method that is not a token', () => encodeBhttpRequest({ ...ok, method: 'GE T' })],
    ['final status 700', () => encodeBhttpResponse({ status: 700 })],
    ['final status 150', () => beginResponse(150)],
    ['informational 101', () => beginResponse(200, {}, [{ status: 101 }])],
    ['negative padding', () => encodeBhttpRequest(ok, { padding: -1 })],
  ]
  for (const [name, f] of bad) t.equal(syncCode(f), 'OHTTP_ARGUMENT_INVALID', name)
  t.equal(contentChunk('').length, 0, 'an empty content chunk encodes to nothing (chunk lengths are 1..)')
  t.same(decodeBhttpRequest(encodeBhttpRequest({ ...ok, headers: { a: 'caf\u00e9' } })).headers, [['a', 'caf\u00e9']], 'latin1 values round-trip byte for byte')
  t.same(
    decodeBhttpRequest(encodeBhttpRequest({ method: 'CONNECT', scheme: '', authority: 'h:443', path: '' })),
    { framing: 'known-length', method: 'CONNECT', scheme: '', authority: 'h:443', path: '', headers: [], content: new Uint8Array(0), trailers: [] },
    'CONNECT has no scheme or path',
  )
})

t.test('client key config handling', async (t) => {
  t.equal(await rejection(encapsulateRequest(new Uint8Array([1, 2, 3]), chatRequest)), 'OHTTP_KEY_CONFIG_INVALID')
  const chachaOnly = encodeKeyConfig({ ...parseKeyConfig(pair.keyConfig), symmetric: [{ kdfId: 1, aeadId: 3 }] })
  t.equal(await rejection(encapsulateRequest(chachaOnly, chatRequest)), 'OHTTP_KEY_CONFIG_INVALID', 'no suite the client implements')
  const preferring128 = encodeKeyConfig({
    ...parseKeyConfig(pair.keyConfig),
    symmetric: [
      { kdfId: 1, aeadId: 3 },
      { kdfId: 1, aeadId: AEAD_AES_128_GCM },
      { kdfId: 1, aeadId: AEAD_AES_256_GCM },
    ],
  })
  t.equal((await encapsulateRequest(preferring128, chatRequest)).aeadId, AEAD_AES_128_GCM, "the gateway's order of preference, skipping what is not implemented")
  t.equal(await rejection(encapsulateRequest(pair.keyConfig, 'text' as never)), 'OHTTP_ARGUMENT_INVALID')
  t.equal(await rejection(encapsulateRequest(pair.keyConfig, chatRequest, { chunked: true, chunkLength: 0 })), 'OHTTP_ARGUMENT_INVALID')
})
