/**
 * Reading a log over HTTP is bounded: every read has a timeout (request and
 * body together) and a size limit (Content-Length refused up front, a
 * streamed body cut off as soon as it passes the limit), so an auditor
 * pointed at a stuck or hostile server fails with LOG_FETCH_FAILED instead
 * of hanging or exhausting memory. With injected fetches (each failure
 * mode exactly) and with undici against a local server (the real body
 * stream). The timeouts here are what is under test, not bounds on the
 * test: each stuck read ends only by its own timeout firing.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { fetch as undiciFetch } from 'undici'
import { createHttpLogSource, type FetchLike, type FetchResponseLike } from '../attestation/log/reader.ts'
import { createHttpCollateralArchive } from '../attestation/log/audit/archives.ts'
import { LogError } from '../attestation/log/errors.ts'
import { codeOf } from './helpers/errors.ts'

const reasonOf = (e: unknown) => (e instanceof LogError ? e.details.reason : undefined)

async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p
  } catch (e) {
    return e
  }
  throw new Error('expected a rejection')
}

/** A fetch that never answers until its signal aborts. */
const stuck: FetchLike = (_url, init) =>
  new Promise((_resolve, reject) => {
    init?.signal?.addEventListener('abort', () => reject(init.signal!.reason))
  })

function response(o: Partial<FetchResponseLike> & { bytes?: Uint8Array }): FetchResponseLike {
  return { status: 200, ok: true, arrayBuffer: async () => (o.bytes ?? new Uint8Array(0)).slice().buffer, ...o }
}

t.test('injected fetch: timeout, size limits, status handling', async (t) => {
  const e1 = await failure(createHttpLogSource('http://log.test/log', stuck, { timeoutMs: 1 }).read('checkpoint'))
  t.equal(codeOf(e1), 'LOG_FETCH_FAILED')
  t.equal(reasonOf(e1), 'timeout')

  // Headers arrive, then the body stalls: the same timeout covers it.
  const stalled: FetchLike = async (_url, init) =>
    response({
      body: (async function* () {
        yield new Uint8Array(10)
        await new Promise((_r, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason)))
      })(),
    })
  const e2 = await failure(createHttpLogSource('http://log.test/log', stalled, { timeoutMs: 1 }).read('tile/0/000'))
  t.equal(codeOf(e2), 'LOG_FETCH_FAILED')
  t.equal(reasonOf(e2), 'timeout')

  // A declared length over the limit: refused before any byte is read.
  let bodyRead = false
  const declared: FetchLike = async () =>
    response({
      headers: { get: (n) => (n.toLowerCase() === 'content-length' ? '2000' : null) },
      body: (async function* () {
        bodyRead = true
        yield new Uint8Array(2000)
      })(),
    })
  const e3 = await failure(createHttpLogSource('http://log.test/log', declared, { maxBytes: 1000 }).read('blob/aa'))
  t.equal(reasonOf(e3), 'too-large')
  t.notOk(bodyRead, 'the body was never read')

  // No length declared: the stream is cut off once past the limit.
  let chunks = 0
  let stopped = false
  const endless: FetchLike = async () =>
    response({
      body: (async function* () {
        try {
          for (;;) {
            chunks++
            yield new Uint8Array(400)
          }
        } finally {
          stopped = true
        }
      })(),
    })
  const e4 = await failure(createHttpLogSource('http://log.test/log', endless, { maxBytes: 1000 }).read('blob/bb'))
  t.equal(codeOf(e4), 'LOG_FETCH_FAILED')
  t.equal(reasonOf(e4), 'too-large')
  t.equal(chunks, 3, 'stopped at the chunk that passed the limit')
  t.ok(stopped, 'the stream was cancelled')

  // A fetch without a body stream: checked after arrayBuffer.
  const plain: FetchLike = async () => response({ bytes: new Uint8Array(1001) })
  t.equal(reasonOf(await failure(createHttpLogSource('http://log.test/log', plain, { maxBytes: 1000 }).read('x'))), 'too-large')
  t.equal((await createHttpLogSource('http://log.test/log', plain, { maxBytes: 1001 }).read('x'))?.length, 1001)

  t.equal(await createHttpLogSource('http://log.test/log', async () => response({ status: 404, ok: false })).read('x'), null)
  const e5 = await failure(createHttpLogSource('http://log.test/log', async () => response({ status: 500, ok: false })).read('x'))
  t.equal(codeOf(e5), 'LOG_FETCH_FAILED')
  t.equal(e5 instanceof LogError && e5.details.status, 500)

  // Collateral archives over HTTP: the same limits; too large is "not here".
  t.equal(await createHttpCollateralArchive('http://pccs.test/c', endless, { maxBytes: 1000 }).get('ab'.repeat(32), { quote: new Uint8Array(0) }), null)
  t.equal(await createHttpCollateralArchive('http://pccs.test/c', stuck, { timeoutMs: 1 }).get('ab'.repeat(32), { quote: new Uint8Array(0) }), null)

  t.equal(codeOf((() => { try { createHttpLogSource('http://log.test/log', plain, { timeoutMs: 0 }) } catch (e) { return e } })()), 'LOG_OPTIONS_INVALID')
  t.equal(codeOf((() => { try { createHttpLogSource('http://log.test/log', plain, { maxBytes: -1 }) } catch (e) { return e } })()), 'LOG_OPTIONS_INVALID')
})

async function listen(t: Test, server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  )
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/log`
}

t.test('undici against a local server: a large streamed body and a server that never answers', async (t) => {
  const fetch = undiciFetch as unknown as FetchLike
  const base = await listen(
    t,
    createServer((req, res) => {
      if (req.url === '/log/stuck') return // never answers
      if (req.url === '/log/big') {
        // Chunked, no Content-Length: only the streamed count can stop it.
        res.writeHead(200, { 'content-type': 'application/octet-stream' })
        const chunk = Buffer.alloc(64 * 1024)
        let sent = 0
        const pump = () => {
          while (sent < 64 && res.write(chunk)) sent++
          if (sent >= 64) res.end()
          else res.once('drain', pump)
        }
        res.on('error', () => {})
        pump()
        return
      }
      res.writeHead(200, { 'content-length': '5' })
      res.end('hello')
    }),
  )
  const source = createHttpLogSource(base, fetch, { maxBytes: 1024 * 1024, timeoutMs: 50 })
  t.equal(Buffer.from((await source.read('checkpoint'))!).toString(), 'hello')
  const big = await failure(source.read('big'))
  t.equal(codeOf(big), 'LOG_FETCH_FAILED')
  t.equal(reasonOf(big), 'too-large')
  const slow = await failure(source.read('stuck'))
  t.equal(codeOf(slow), 'LOG_FETCH_FAILED')
  t.equal(reasonOf(slow), 'timeout')
})
