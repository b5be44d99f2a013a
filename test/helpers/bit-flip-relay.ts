/**
 * A hostile RFC 9458 relay for tests: a real node:http server on
 * 127.0.0.1:0 that forwards `POST /` (an encapsulated request) to a
 * gateway's `/v1/ohttp` and streams the answer back — or misbehaves as
 * `knobs` say: flip one bit of the response at a byte offset, or answer a
 * later request with an earlier response recorded byte for byte (a replay).
 * It can only touch ciphertext; the tests show the client notices.
 */
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { request } from 'undici'

export interface RelayKnobs {
  /** Flip bit 0 of the response byte at this offset (counted over the whole body). */
  flipAt: number | null
  /** Record the first response; answer every later request with it (without forwarding). */
  replay: boolean
}

export interface BitFlipRelay {
  /** The relay resource to POST encapsulated requests to. */
  readonly url: string
  readonly knobs: RelayKnobs
  /** Requests received, and forwarded to the gateway. */
  readonly stats: { received: number; forwarded: number; flipped: number; replayed: number }
  close(): Promise<void>
}

async function readAll(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const p of req) parts.push(p as Buffer)
  return Buffer.concat(parts)
}

export async function startBitFlipRelay(gatewayUrl: string, initial: Partial<RelayKnobs> = {}): Promise<BitFlipRelay> {
  const knobs: RelayKnobs = { flipAt: null, replay: false, ...initial }
  const stats = { received: 0, forwarded: 0, flipped: 0, replayed: 0 }
  const sockets = new Set<Socket>()
  let recorded: { status: number; contentType: string; body: Buffer } | undefined

  const server = createServer((req, res) => {
    void (async () => {
      stats.received++
      const body = await readAll(req)
      if (knobs.replay && recorded) {
        stats.replayed++
        res.writeHead(recorded.status, { 'content-type': recorded.contentType })
        res.end(recorded.body)
        return
      }
      const upstream = await request(`${gatewayUrl}/v1/ohttp`, { method: 'POST', body, headers: { 'content-type': String(req.headers['content-type'] ?? '') } })
      stats.forwarded++
      const contentType = String(upstream.headers['content-type'] ?? '')
      res.writeHead(upstream.statusCode, { 'content-type': contentType })
      const copy: Buffer[] = []
      let offset = 0
      for await (const part of upstream.body) {
        const chunk = Buffer.from(part as Buffer)
        if (knobs.flipAt !== null && knobs.flipAt >= offset && knobs.flipAt < offset + chunk.length) {
          chunk[knobs.flipAt - offset]! ^= 1
          stats.flipped++
        }
        offset += chunk.length
        copy.push(chunk)
        res.write(chunk)
      }
      res.end()
      if (knobs.replay && !recorded) recorded = { status: upstream.statusCode, contentType, body: Buffer.concat(copy) }
    })().catch(() => res.destroy())
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/`,
    knobs,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}
