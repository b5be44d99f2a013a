/**
 * Published vectors, reproduced exactly:
 *
 * - RFC 9180 (HPKE) for the OHTTP suite — DHKEM(X25519, HKDF-SHA256),
 *   HKDF-SHA256, AES-256-GCM, base mode — through the @hpke/core wiring in
 *   enclave/ohttp/hpke.ts: key derivation, encapsulation, ten sealed
 *   messages in sequence, exports.
 * - RFC 9458 Appendix A: key config, decapsulation of the RFC's request with
 *   the RFC's key, the response sealed with the RFC's nonce, and the
 *   client side with the RFC's ephemeral key; intermediate values checked
 *   with the RFC 5869 Extract/Expand written in symmetric.ts.
 * - draft-ietf-ohai-chunked-ohttp-08 Appendix A: the same for a chunked
 *   request and a three-chunk response.
 * - RFC 9292 §5: the four Binary HTTP examples decode, and encode to the
 *   same bytes; bhttp-js (an independent implementation) reads what we
 *   write and we read what it writes.
 *
 * Provenance of each vector: the `_provenance` field of its fixture file.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { BHttpDecoder, BHttpEncoder } from 'bhttp-js'
import { AEADS, cipherSuite } from '../enclave/ohttp/hpke.ts'
import { AEAD_AES_128_GCM, AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305, KDF_HKDF_SHA256, parseKeyConfig } from '../enclave/ohttp/key-config.ts'
import { importOhttpKeyPairForTesting } from '../enclave/ohttp/keys.ts'
import { createOhttpServer } from '../enclave/ohttp/server.ts'
import { createReplayCache } from '../enclave/ohttp/replay-cache.ts'
import { encapsulateRequestForTesting } from '../enclave/ohttp/client.ts'
import { aeadSeal, hkdfExpand, hkdfExtract } from '../enclave/ohttp/symmetric.ts'
import { chunkNonce } from '../enclave/ohttp/chunked-response.ts'
import {
  beginResponse,
  contentChunk,
  decodeBhttpRequest,
  decodeBhttpResponse,
  encodeBhttpRequest,
  encodeBhttpResponse,
  endResponse,
} from '../enclave/ohttp/bhttp.ts'

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8'))
const H = fixture('ohttp-hpke-rfc9180-x25519-sha256-aes256gcm.json').vector
const E = fixture('ohttp-rfc9458-examples.json')
const B = fixture('ohttp-rfc9292-examples.json')
const b = (hex: string) => new Uint8Array(Buffer.from(hex, 'hex'))
const hex = (x: Uint8Array | ArrayBuffer) => Buffer.from(x instanceof ArrayBuffer ? new Uint8Array(x) : x).toString('hex')
const EXAMPLE_SUITES = [
  { kdfId: KDF_HKDF_SHA256, aeadId: AEAD_AES_128_GCM },
  { kdfId: KDF_HKDF_SHA256, aeadId: AEAD_CHACHA20_POLY1305 },
]
const replay = () => createReplayCache({ windowMs: 60_000, maxEntries: 1000, now: () => 0 })

/** The header fields of RFC 9292 Figure 11's response, in order. */
const FIG11_HEADERS: [string, string][] = [
  ['date', 'Mon, 27 Jul 2009 12:28:53 GMT'],
  ['server', 'Apache'],
  ['last-modified', 'Wed, 22 Jul 2009 19:15:56 GMT'],
  ['etag', '"34aa387-d-1568eb00"'],
  ['accept-ranges', 'bytes'],
  ['content-length', '51'],
  ['vary', 'Accept-Encoding'],
  ['content-type', 'text/plain'],
]

t.test('RFC 9180 vector: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, base mode', async (t) => {
  t.match(H, { mode: 0, kem_id: 0x20, kdf_id: KDF_HKDF_SHA256, aead_id: AEAD_AES_256_GCM })
  const suite = cipherSuite(AEAD_AES_256_GCM)
  const recipient = await suite.kem.deriveKeyPair(b(H.ikmR))
  t.equal(hex(await suite.kem.serializePrivateKey(recipient.privateKey)), H.skRm, 'DeriveKeyPair(ikmR) gives skRm')
  t.equal(hex(await suite.kem.serializePublicKey(recipient.publicKey)), H.pkRm, 'and pkRm')

  // ekm = ikmE: the sender derives the vector's ephemeral key pair, as RFC 9180 Appendix A does.
  const sender = await suite.createSenderContext({ recipientPublicKey: recipient.publicKey, info: b(H.info), ekm: b(H.ikmE) })
  t.equal(hex(sender.enc), H.enc, 'enc')
  const receiver = await suite.createRecipientContext({ recipientKey: recipient, enc: b(H.enc), info: b(H.info) })
  let sealedOk = 0
  let openedOk = 0
  for (const e of H.encryptions) {
    if (hex(await sender.seal(b(e.pt), b(e.aad))) === e.ct) sealedOk++
    if (hex(await receiver.open(b(e.ct), b(e.aad))) === e.pt) openedOk++
  }
  t.equal(sealedOk, H.encryptions.length, `all ${H.encryptions.length} sequential Seal outputs match`)
  t.equal(openedOk, H.encryptions.length, 'and all Open in sequence')
  // The same vector through node:crypto AES-256-GCM (symmetric.ts), which seals OHTTP responses.
  const aead = AEADS.get(AEAD_AES_256_GCM)!
  let nodeOk = 0
  for (const e of H.encryptions) if (hex(aeadSeal(aead, b(H.key), b(e.nonce), b(e.aad), b(e.pt))) === e.ct) nodeOk++
  t.equal(nodeOk, H.encryptions.length, 'node:crypto AES-256-GCM with the vector key and nonces gives the same ciphertexts')
  t.equal(hex(chunkNonce(b(H.base_nonce), 1)), H.encryptions[1].nonce, 'nonce XOR counter, as HPKE computes it (RFC 9180 §5.2)')
  t.equal(hex(chunkNonce(b(H.base_nonce), 255)), H.encryptions[255].nonce)
  t.equal(hex(chunkNonce(b(H.base_nonce), 256)), H.encryptions[256].nonce)
  for (const x of H.exports) {
    t.equal(hex(await sender.export(b(x.exporter_context), x.L)), x.exported_value, `sender Export("${x.exporter_context}")`)
    t.equal(hex(await receiver.export(b(x.exporter_context), x.L)), x.exported_value, `receiver Export("${x.exporter_context}")`)
  }
})

t.test('RFC 9458 Appendix A', async (t) => {
  const A = E.rfc9458AppendixA
  const pair = await importOhttpKeyPairForTesting(1, b(A.serverSecretKey), EXAMPLE_SUITES)
  t.equal(hex(pair.keyConfig), A.keyConfig, 'key config of the RFC key')
  t.same(parseKeyConfig(b(A.keyConfig)).symmetric, EXAMPLE_SUITES)

  const server = createOhttpServer({ keys: (id) => (id === 1 ? pair : undefined), replay: replay(), randomBytes: () => b(A.responseNonce) })
  const d = await server.decapsulate(b(A.encapsulatedRequest), 'message/ohttp-req')
  t.equal(hex(d.bhttp), A.request, 'decapsulates to the RFC request')
  t.match(d.request, { method: 'GET', scheme: 'https', authority: 'example.com', path: '/', headers: [], trailers: [] })
  t.equal(d.request.content.length, 0)
  const sealed = await d.respond.seal(b(A.response))
  t.equal(sealed.contentType, 'message/ohttp-res')
  t.equal(hex(sealed.body), A.encapsulatedResponse, 'response sealed with the RFC nonce is the RFC response')

  const client = await encapsulateRequestForTesting(b(A.keyConfig), b(A.request), b(A.clientSecretKey))
  t.equal(client.aeadId, AEAD_AES_128_GCM, 'the client picks the first suite it implements')
  t.equal(hex(client.body), A.encapsulatedRequest, 'client encapsulation with the RFC ephemeral key is the RFC request')
  t.equal(hex(await client.openResponse(b(A.encapsulatedResponse))), A.response, 'client opens the RFC response')

  // The response key schedule step by step (RFC 9458 §4.4), with our RFC 5869 functions.
  const prk = hkdfExtract(b(A.salt), b(A.exportedSecret))
  t.equal(hex(prk), A.prk, 'Extract(salt, secret)')
  t.equal(hex(hkdfExpand(prk, new TextEncoder().encode('key'), 16)), A.aeadKey, 'Expand(prk, "key", Nk)')
  t.equal(hex(hkdfExpand(prk, new TextEncoder().encode('nonce'), 12)), A.aeadNonce, 'Expand(prk, "nonce", Nn)')
  t.equal(A.salt, A.clientPublicKey + A.responseNonce, 'salt = enc || response_nonce')
})

t.test('draft-ietf-ohai-chunked-ohttp-08 Appendix A', async (t) => {
  const C = E.chunkedAppendixA
  const pair = await importOhttpKeyPairForTesting(1, b(C.serverSecretKey), EXAMPLE_SUITES)
  t.equal(hex(pair.keyConfig), C.keyConfig, 'key config of the draft key')

  const server = createOhttpServer({ keys: (id) => (id === 1 ? pair : undefined), replay: replay(), randomBytes: () => b(C.responseNonce) })
  const d = await server.decapsulate(b(C.encapsulatedRequest), 'message/ohttp-chunked-req')
  t.equal(d.chunked, true)
  t.equal(hex(d.bhttp), C.request, 'three request chunks (12, 13, 0 bytes) join to the draft request')
  const sealer = await d.respond.chunkedSealer()
  t.equal(sealer.contentType, 'message/ohttp-chunked-res')
  const out = C.responseChunkPlaintexts.map((p: string, i: number) => hex(sealer.seal(b(p), i === C.responseChunkPlaintexts.length - 1))).join('')
  t.equal(out, C.encapsulatedResponse, 'chunks 01, 40c8 and an empty final chunk seal to the draft response')
  t.ok(sealer.finished)

  for (const [i, n] of C.chunkNonces.entries()) t.equal(hex(chunkNonce(b(C.aeadNonce), i)), n, `chunk nonce ${i} = aead_nonce XOR ${i}`)
  const prk = hkdfExtract(b(C.salt), b(C.exportedSecret))
  t.equal(hex(prk), C.prk)
  t.equal(hex(hkdfExpand(prk, new TextEncoder().encode('key'), 16)), C.aeadKey)
  t.equal(hex(hkdfExpand(prk, new TextEncoder().encode('nonce'), 12)), C.aeadNonce)

  // Client: the draft's ephemeral key gives the draft's header, enc and first chunk
  // (our client chunks 12 + 13 bytes with the second final; the draft adds an empty final chunk).
  const client = await encapsulateRequestForTesting(b(C.keyConfig), b(C.request), b(C.clientSecretKey), { chunked: true, chunkLength: 12 })
  t.equal(client.contentType, 'message/ohttp-chunked-req')
  const firstChunkEnd = 7 + 32 + 1 + 28
  t.equal(hex(client.body.subarray(0, firstChunkEnd)), C.encapsulatedRequest.slice(0, firstChunkEnd * 2), 'hdr || enc || first chunk as in the draft')
  const response = b(C.encapsulatedResponse)
  const fragments = [response.subarray(0, 5), response.subarray(5, 17), response.subarray(17, 40), response.subarray(40)]
  const got: string[] = []
  for await (const chunk of client.openChunkedResponse(fragments)) got.push(hex(chunk))
  t.same(got, ['01', '40c8'], 'client opens the draft response chunk by chunk')
})

t.test('RFC 9292 §5 examples decode', async (t) => {
  const fig8 = decodeBhttpRequest(b(B.fig8KnownLengthRequest))
  const helloHeaders = [
    ['user-agent', 'curl/7.16.3 libcurl/7.16.3 OpenSSL/0.9.7l zlib/1.2.3'],
    ['host', 'www.example.com'],
    ['accept-language', 'en, mi'],
  ]
  t.match(fig8, { framing: 'known-length', method: 'GET', scheme: 'https', authority: '', path: '/hello.txt' })
  t.same(fig8.headers, helloHeaders)
  t.equal(fig8.content.length, 0)
  t.same(fig8.trailers, [])
  // RFC 9292 §5.1: "the last two bytes ... can each be removed without altering the semantics".
  for (const cut of [1, 2]) {
    const truncated = decodeBhttpRequest(b(B.fig8KnownLengthRequest).subarray(0, b(B.fig8KnownLengthRequest).length - cut))
    t.same(truncated.headers, helloHeaders, `Figure 8 without its last ${cut} byte(s)`)
  }
  const fig9 = decodeBhttpRequest(b(B.fig9IndeterminateLengthRequest))
  t.match(fig9, { framing: 'indeterminate-length', method: 'GET', scheme: 'https', authority: '', path: '/hello.txt' })
  t.same(fig9.headers, helloHeaders)
  // "anything up to 12 bytes can be removed from this message without affecting its meaning"
  for (let cut = 1; cut <= 12; cut++) {
    const bytes = b(B.fig9IndeterminateLengthRequest)
    t.same(decodeBhttpRequest(bytes.subarray(0, bytes.length - cut)).headers, helloHeaders, `Figure 9 without its last ${cut} bytes`)
  }

  const fig11 = decodeBhttpResponse(b(B.fig11IndeterminateLengthResponse))
  t.same(fig11.informational, [
    { status: 102, headers: [['running', '"sleep 15"']] },
    {
      status: 103,
      headers: [
        ['link', '</style.css>; rel=preload; as=style'],
        ['link', '</script.js>; rel=preload; as=script'],
      ],
    },
  ])
  t.equal(fig11.status, 200)
  t.same(fig11.headers, FIG11_HEADERS)
  t.equal(Buffer.from(fig11.content).toString(), 'Hello World! My content includes a trailing CRLF.\r\n')

  const fig13 = decodeBhttpResponse(b(B.fig13KnownLengthResponse))
  t.equal(fig13.status, 200)
  t.same(fig13.headers, [])
  t.equal(Buffer.from(fig13.content).toString(), 'This content contains CRLF.\r\n')
  t.same(fig13.trailers, [['trailer', 'text']])

  const rfc9458 = decodeBhttpRequest(b(E.rfc9458AppendixA.request))
  t.match(rfc9458, { method: 'GET', scheme: 'https', authority: 'example.com', path: '/' }, 'RFC 9458 request, truncated after control data')
})

t.test('RFC 9292 §5 examples encode to the same bytes', async (t) => {
  const helloHeaders: [string, string][] = [
    ['user-agent', 'curl/7.16.3 libcurl/7.16.3 OpenSSL/0.9.7l zlib/1.2.3'],
    ['host', 'www.example.com'],
    ['accept-language', 'en, mi'],
  ]
  const hello = { method: 'GET', scheme: 'https', authority: '', path: '/hello.txt', headers: helloHeaders }
  t.equal(hex(encodeBhttpRequest(hello)), B.fig8KnownLengthRequest, 'Figure 8')
  t.equal(hex(encodeBhttpRequest(hello, { framing: 'indeterminate-length', padding: 10 })), B.fig9IndeterminateLengthRequest, 'Figure 9')

  const fig11 =
    hex(
      beginResponse(
        200,
        FIG11_HEADERS,
        [
          { status: 102, headers: [['running', '"sleep 15"']] },
          {
            status: 103,
            headers: [
              ['link', '</style.css>; rel=preload; as=style'],
              ['link', '</script.js>; rel=preload; as=script'],
            ],
          },
        ],
      ),
    ) +
    hex(contentChunk('Hello World! My content includes a trailing CRLF.\r\n')) +
    hex(endResponse())
  t.equal(fig11, B.fig11IndeterminateLengthResponse, 'Figure 11, built incrementally')

  t.equal(
    hex(encodeBhttpResponse({ status: 200, content: 'This content contains CRLF.\r\n', trailers: [['trailer', 'text']] })),
    B.fig13KnownLengthResponse,
    'Figure 13',
  )
})

t.test('interoperability with bhttp-js (an independent RFC 9292 implementation)', async (t) => {
  const decoder = new BHttpDecoder()
  const ours = encodeBhttpRequest({
    method: 'POST',
    scheme: 'https',
    authority: 'gateway.example',
    path: '/v1/chat/completions',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    content: '{"model":"m","stream":true}',
  })
  const theirs = decoder.decodeRequest(ours)
  t.equal(theirs.method, 'POST')
  t.equal(theirs.url, 'https://gateway.example/v1/chat/completions')
  t.equal(theirs.headers.get('content-type'), 'application/json')
  t.equal(await theirs.text(), '{"model":"m","stream":true}')

  const fromThem = await new BHttpEncoder().encodeRequest(
    new Request('https://gateway.example/v1/embeddings', { method: 'POST', headers: { 'x-a': '1' }, body: 'abc' }),
  )
  const decoded = decodeBhttpRequest(fromThem)
  t.match(decoded, { method: 'POST', scheme: 'https', authority: 'gateway.example', path: '/v1/embeddings' })
  t.same(decoded.headers.find(([n]) => n === 'x-a'), ['x-a', '1'])
  t.equal(Buffer.from(decoded.content).toString(), 'abc')

  const response = encodeBhttpResponse({ status: 201, headers: { 'content-type': 'text/plain' }, content: 'done' })
  const r = decoder.decodeResponse(response)
  t.equal(r.status, 201)
  t.equal(await r.text(), 'done')
  const theirResponse = await new BHttpEncoder().encodeResponse(new Response('ok', { status: 202, headers: { 'x-b': '2' } }))
  const ourRead = decodeBhttpResponse(theirResponse)
  t.equal(ourRead.status, 202)
  t.equal(Buffer.from(ourRead.content).toString(), 'ok')

  const streamed = new Uint8Array([...beginResponse(200, { 'content-type': 'text/event-stream' }), ...contentChunk('data: 1\n\n'), ...contentChunk('data: 2\n\n'), ...endResponse()])
  const s = decoder.decodeResponse(streamed)
  t.equal(await s.text(), 'data: 1\n\ndata: 2\n\n', 'bhttp-js reads our indeterminate-length response')
})
