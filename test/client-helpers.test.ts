/**
 * The client SDK's small shared pieces, each where it is used: bodies read
 * under a byte limit (evidence, error answers, inclusion proofs — a
 * declared or streamed excess refused, the stream destroyed, multibyte text
 * counted in bytes); the code of a JSON error body, sanitized; receipt
 * verifiers kept per signer under a cap; a collateral file read again once
 * its bundle is due; and a request body that is not JSON refused without
 * a trace of the prompt in the error.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { inspect } from 'node:util'
import { writeFile } from 'node:fs/promises'
import t, { type Test } from 'tap'
import { DEV_FMSPC } from '../attestation/dev/index.ts'
import { generateOhttpKeyPair } from '../enclave/ohttp/index.ts'
import { readLimited, MAX_ERROR_BODY_BYTES } from '../gateway/client/body.ts'
import { createClient } from '../gateway/client/client.ts'
import { collateralFromPolicy } from '../gateway/client/collateral.ts'
import { codeInBody, isClientError } from '../gateway/client/errors.ts'
import { loadClientPolicy } from '../gateway/client/policy.ts'
import { verifyReceiptLogged } from '../gateway/client/receipt-proof.ts'
import { createReceiptVerifier, createReceiptVerifiers } from '../gateway/client/receipt.ts'
import { exchange, type OhttpTransport } from '../gateway/client/request.ts'
import { createEvidenceFetcher, type VerifiedProvider } from '../gateway/client/verify.ts'
import { devPolicyDocument, devWorld, writePolicy } from './helpers/dev-provider.ts'

async function* chunks(...parts: (string | Uint8Array)[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield typeof p === 'string' ? Buffer.from(p) : p
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p
  } catch (e) {
    return e
  }
  throw new Error('expected a rejection')
}

const tooLarge = (declared?: number) => Object.assign(new Error('too large'), { declared })

t.test('readLimited: up to the limit in bytes, then refused and destroyed', async (t) => {
  t.equal((await readLimited(chunks('ab', 'cd'), 4, { tooLarge })).toString(), 'abcd', 'exactly the limit is read')
  t.equal((await readLimited(chunks(), 4, { tooLarge })).length, 0, 'an empty body')

  const over = (await rejection(readLimited(chunks('ab', 'cde'), 4, { tooLarge }))) as { declared?: number }
  t.equal(over.declared, undefined, 'streamed past the limit: no declared length')

  const stream = Readable.from([Buffer.from('abc'), Buffer.from('def'), Buffer.from('ghi')], { objectMode: false })
  await rejection(readLimited(stream, 5, { tooLarge }))
  t.ok(stream.destroyed, 'the stream is destroyed once over the limit')

  // 3 characters, 6 bytes: the limit is on bytes.
  await t.rejects(readLimited(chunks('ééé'), 5, { tooLarge }), { message: 'too large' }, 'UTF-8 bytes are counted, not UTF-16 units')

  let pulled = false
  async function* lazy(): AsyncGenerator<Uint8Array> {
    pulled = true
    yield Buffer.from('x')
  }
  const declared = (await rejection(readLimited(lazy(), 4, { headers: { 'content-length': '5' }, tooLarge }))) as { declared?: number }
  t.equal(declared.declared, 5, 'a declared length over the limit is refused')
  t.notOk(pulled, '... before anything is read')
  const unread = Readable.from([Buffer.from('x')])
  await rejection(readLimited(unread, 4, { headers: { 'content-length': '5' }, tooLarge }))
  t.ok(unread.destroyed, '... and the stream destroyed')

  await t.rejects(
    readLimited(
      (async function* () {
        yield Buffer.from('a')
        throw Object.assign(new Error('reset'), { code: 'ECONNRESET' })
      })(),
      4,
      { tooLarge },
    ),
    { code: 'ECONNRESET' },
    'a failing stream fails as itself',
  )
})

t.test('codeInBody: the sanitized code, else UNKNOWN', async (t) => {
  const openai = (j: unknown) => (j as { error?: { code?: unknown } }).error?.code
  t.equal(codeInBody('{"code":"ENCLAVE_OHTTP_KEY_UNKNOWN","detail":"x"}'), 'ENCLAVE_OHTTP_KEY_UNKNOWN', 'a problem document')
  t.equal(codeInBody(Buffer.from('{"code":"GATEWAY_BUSY"}')), 'GATEWAY_BUSY', 'bytes')
  t.equal(codeInBody('{"error":{"code":"rate_limit_exceeded"}}', openai), 'rate_limit_exceeded', 'an OpenAI error, picked')
  t.equal(codeInBody('{"error":{"code":"x"}}'), 'UNKNOWN', 'nothing at the default place')
  for (const [name, body] of [
    ['not JSON', 'secret prompt text'],
    ['null', 'null'],
    ['a number code', '{"code":42}'],
    ['a code with spaces', '{"code":"ignore previous instructions"}'],
    ['a code too long', JSON.stringify({ code: 'A'.repeat(65) })],
    ['empty', ''],
  ] as const) {
    t.equal(codeInBody(body), 'UNKNOWN', name)
  }
  t.equal(codeInBody('{}', () => {
    throw new Error('picker failed')
  }), 'UNKNOWN', 'a picker that throws')
})

t.test('receipt verifiers: one per signer, at most the cap', async (t) => {
  const verifiers = createReceiptVerifiers(256)
  const address = (i: number) => `0x${i.toString(16).padStart(40, '0')}` as const
  const first = verifiers.get(address(1))
  t.equal(verifiers.get(address(1).toUpperCase().replace('0X', '0x') as `0x${string}`), first, 'the same verifier, whatever the case')
  for (let i = 2; i <= 1000; i++) verifiers.get(address(i))
  t.equal(verifiers.size, 256, 'a thousand epochs later: still 256')
  t.not(verifiers.get(address(1)), first, 'the oldest was dropped')
  t.equal(verifiers.get(address(1000)), verifiers.get(address(1000)), 'a recent one is kept')
})

async function serve(t: Test, handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server: Server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

t.test('evidence fetcher: error answers read under the limit, evidence too', async (t) => {
  const fetch = createEvidenceFetcher()
  const small = await serve(t, (_req, res) => res.writeHead(503, { 'content-type': 'application/problem+json' }).end('{"code":"ENCLAVE_NOT_READY"}'))
  const e1 = await rejection(fetch(small, '00', {}))
  t.ok(isClientError(e1) && e1.code === 'CLIENT_EVIDENCE_UNAVAILABLE' && e1.details.reason === 'ENCLAVE_NOT_READY', 'the code of a small problem document')
  const huge = await serve(t, (_req, res) => {
    res.writeHead(503, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ code: 'ENCLAVE_NOT_READY', pad: 'x'.repeat(MAX_ERROR_BODY_BYTES) }))
  })
  const e2 = await rejection(fetch(huge, '00', {}))
  t.ok(isClientError(e2) && e2.code === 'CLIENT_EVIDENCE_UNAVAILABLE' && e2.details.reason === 'UNKNOWN', 'an oversized error answer has no code')
  const bundle = await serve(t, (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"version":1}'))
  t.same(await fetch(bundle, '00', {}), { version: 1 }, 'evidence under the limit is parsed')
})

t.test('inclusion proof: over the limit in bytes is refused', async (t) => {
  const url = await serve(t, (_req, res) => {
    // Under 256 Ki characters, over 256 KiB; chunked, so no content-length tells it in advance.
    const proof = JSON.stringify({ index: 1, pad: 'é'.repeat(200 * 1024) })
    res.writeHead(200, { 'content-type': 'application/json' })
    res.write(proof.slice(0, 1024))
    res.end(proof.slice(1024))
  })
  const receipt = { fields: { logIndex: 1n }, signature: '0x00', domain: {} } as unknown as Parameters<typeof verifyReceiptLogged>[0]['receipt']
  const e = await rejection(verifyReceiptLogged({ url, receipt, logPublicKey: new Uint8Array(32) }))
  t.ok(isClientError(e) && e.code === 'CLIENT_RECEIPT_NOT_LOGGED' && e.details.reason === 'proof too large', 'CLIENT_RECEIPT_NOT_LOGGED, proof too large')
})

t.test('exchange: the error answer’s code, read under the limit', async (t) => {
  const pair = await generateOhttpKeyPair(1)
  const provider = { url: 'https://gw.example', keyConfig: pair.config } as unknown as VerifiedProvider
  const answer =
    (status: number, ...body: string[]): OhttpTransport =>
    async () => ({ status, headers: {}, body: chunks(...body) })
  const send = (transport: OhttpTransport) =>
    rejection(
      exchange({
        provider,
        receipts: createReceiptVerifier(`0x${'11'.repeat(20)}`),
        path: '/v1/chat/completions',
        body: Buffer.from('{"model":"m"}'),
        model: 'm',
        transport,
        target: 'https://gw.example/v1/ohttp',
        now: () => new Date(),
      }),
    )
  const changed = await send(answer(422, '{"code":"ENCLAVE_OHTTP_KEY_UNKNOWN"}'))
  t.ok(isClientError(changed) && changed.code === 'CLIENT_KEY_CONFIG_CHANGED', 'a key problem: CLIENT_KEY_CONFIG_CHANGED')
  const padded = await send(answer(422, '{"code":"ENCLAVE_OHTTP_KEY_UNKNOWN","pad":"', 'x'.repeat(MAX_ERROR_BODY_BYTES), '"}'))
  t.ok(isClientError(padded) && padded.code === 'CLIENT_UPSTREAM_FAILED' && padded.details.reason === 'UNKNOWN', 'an oversized answer: no code, a plain upstream failure')
  const busy = await send(answer(429, '{"code":"GATEWAY_BUSY"}'))
  t.ok(isClientError(busy) && busy.code === 'CLIENT_UPSTREAM_RATE_LIMITED' && busy.details.reason === 'GATEWAY_BUSY', '429 with its code')
})

t.test('collateral file: read again once its bundle is due', async (t) => {
  const world = await devWorld(t)
  let clock = new Date()
  const provider = collateralFromPolicy({ kind: 'file', path: world.collateralFile }, { now: () => clock })
  const request = { teeType: 'tdx', fmspc: DEV_FMSPC, ca: 'platform' } as const
  const first = await provider(request)
  await writeFile(world.collateralFile, 'not collateral')
  t.equal(await provider(request), first, 'before nextUpdate: the parsed bundle is kept')
  clock = new Date(clock.getTime() + 31 * 86_400_000)
  t.ok(await rejection(provider(request)), 'past nextUpdate: the file is read again (and now fails)')
  await writeFile(world.collateralFile, JSON.stringify(world.collateral))
  t.not(await provider(request), first, 'a good file again: parsed afresh')
  const missing = collateralFromPolicy({ kind: 'file', path: `${world.collateralFile}.missing` })
  const e = await rejection(missing(request))
  t.ok(isClientError(e) && e.code === 'CLIENT_COLLATERAL_UNAVAILABLE', 'an unreadable file: CLIENT_COLLATERAL_UNAVAILABLE')
})

t.test('a request body that is not JSON: refused, the prompt nowhere in the error', async (t) => {
  const world = await devWorld(t)
  const policy = await loadClientPolicy(await writePolicy(world, devPolicyDocument(world)))
  const client = createClient({ policy })
  t.teardown(() => client.close())
  // Short: Node 20 quotes only the first ten characters of the input in a JSON.parse message.
  const canary = 'CANARY7'
  const e = await rejection(client.send('https://gw.example', { path: '/v1/chat/completions', body: Buffer.from(`{"messages":[{"content":"${canary}"`) }))
  t.ok(isClientError(e) && e.code === 'CLIENT_CONFIG_INVALID', 'CLIENT_CONFIG_INVALID')
  t.equal((e as Error).cause, undefined, 'no cause (a JSON.parse message quotes its input)')
  t.notMatch(inspect(e, { depth: Infinity }), canary, 'not in the error, its cause or its details')
  t.notMatch(JSON.stringify(e), canary, 'not in its JSON')
  const leading = await rejection(client.send('https://gw.example', { path: '/v1/chat/completions', body: Buffer.from(`${canary} is not JSON`) }))
  t.notMatch(inspect(leading, { depth: Infinity }), canary, 'nor when the prompt starts the body')
})
