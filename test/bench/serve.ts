/**
 * Child processes of `bench:gateway`: `engine` runs the test engine server,
 * `gateway` runs the real gateway (dev TEE enclave) in front of an engine
 * URL, `forwarder` a bare HTTP pass-through in front of it (node:http in,
 * an undici pool out, bodies piped: no crypto, no parsing), the floor any
 * process in the path costs on this machine. Each prints one JSON line with
 * its URL, then serves until killed.
 */
import { createServer } from 'node:http'
import { pipeline } from 'node:stream/promises'
import { Pool } from 'undici'
import { startEngineServer } from '../helpers/engine-server.ts'
import { createEnclaveFromConfig } from '../../enclave/index.ts'
import { buildServer } from '../../gateway/server.ts'
import { parseGatewayConfig } from '../../gateway/config.ts'

const [mode, arg1, arg2] = process.argv.slice(2)
if (mode === 'engine') {
  const server = await startEngineServer({ tokens: Number(arg1), tokenDelayMs: Number(arg2) })
  process.stdout.write(`${JSON.stringify({ url: server.url })}\n`)
} else if (mode === 'gateway') {
  const config = parseGatewayConfig({
    listen: { host: '127.0.0.1', port: 0 },
    logLevel: 'warn',
    limits: { maxConcurrentStreams: 1024, rate: { requestsPerSecond: 100000, burst: 100000 } },
  })
  const enclave = await createEnclaveFromConfig({ tee: 'dev', gpu: 'none', engine: { url: arg1 } })
  const app = buildServer({ enclave, config })
  const address = await app.listen({ host: '127.0.0.1', port: 0 })
  process.stdout.write(`${JSON.stringify({ url: address })}\n`)
} else if (mode === 'forwarder') {
  const pool = new Pool(arg1!, { connections: 256 })
  const server = createServer((req, res) => {
    pool
      .request({ method: 'POST', path: req.url!, body: req, headers: { 'content-type': req.headers['content-type'] ?? 'application/json' } })
      .then(async (up) => {
        res.writeHead(up.statusCode, { 'content-type': String(up.headers['content-type']) })
        await pipeline(up.body, res)
      })
      .catch(() => res.destroy())
  })
  server.keepAliveTimeout = 60_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}` })}\n`)
} else {
  throw new Error('usage: serve.ts engine TOKENS DELAY_MS | gateway ENGINE_URL | forwarder ENGINE_URL')
}

process.on('SIGINT', () => process.exit(0))
