/**
 * The logging/metrics canary harness: run a scenario against a gateway
 * whose every output is captured, then look for canary strings everywhere
 * the process could have written them.
 *
 * Captured: every pino line (level `trace`, so nothing is filtered out by
 * level) written to a file in a fresh temporary directory; everything the
 * process writes to stdout and stderr meanwhile; the metrics exposition at
 * the end; and every file under that directory (a scenario points anything
 * else that writes files — a real enclave's state, a log — there too).
 *
 * Each canary is searched in the encodings a careless log line would use:
 * as is, hex, base64, base64url, URL-encoded, and as the decimal byte list
 * of a JSON-serialised Buffer.
 *
 * The integrator runs the same harness with the real enclave (encrypting
 * real prompts containing canaries); this file knows nothing of the fake.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import type { FastifyInstance } from 'fastify'
import type { Enclave } from '../../enclave/types.ts'
import { parseGatewayConfig } from '../../gateway/config.ts'
import { gatewayLoggerOptions } from '../../gateway/plugins/logging.ts'
import { buildServer, type BuildServerParameters } from '../../gateway/server.ts'

export interface CanaryScenarioContext {
  /** The server under test, listening on 127.0.0.1 (inject() works too). */
  readonly app: FastifyInstance
  readonly port: number
  /** Scanned after the scenario: put every file the system under test writes here. */
  readonly dir: string
}

export interface CanaryHarnessParameters {
  readonly canaries: readonly string[]
  readonly enclave: Enclave
  /** Config document over the defaults (`logLevel` is forced to `trace`, `listen` to 127.0.0.1:0). */
  readonly config?: Record<string, unknown>
  readonly registrationReady?: BuildServerParameters['registrationReady']
  readonly scenario: (context: CanaryScenarioContext) => Promise<void>
}

export interface CanaryLeak {
  readonly canary: string
  /** 'log line N', 'stdout', 'stderr', 'metrics' or 'file PATH'. */
  readonly where: string
  /** Which encoding of the canary was found. */
  readonly encoding: string
}

export interface CanaryReport {
  readonly leaks: readonly CanaryLeak[]
  /** The log lines read (already checked): a scenario that logged nothing proves nothing. */
  readonly logLines: readonly string[]
  readonly metricsBytes: number
  readonly filesScanned: readonly string[]
}

/** The forms a canary could take in output. */
export function canaryEncodings(canary: string): Record<string, string> {
  const bytes = Buffer.from(canary, 'utf8')
  return {
    raw: canary,
    lowercase: canary.toLowerCase(),
    hex: bytes.toString('hex'),
    base64: bytes.toString('base64').replace(/=+$/, ''),
    base64url: bytes.toString('base64url'),
    urlencoded: encodeURIComponent(canary),
    'json-buffer': [...bytes].join(','),
  }
}

function findLeaks(text: string, where: string, canaries: readonly string[]): CanaryLeak[] {
  const found: CanaryLeak[] = []
  const lower = text.toLowerCase()
  for (const canary of canaries) {
    for (const [encoding, form] of Object.entries(canaryEncodings(canary))) {
      // Encodings that are case-free by nature are compared case-insensitively.
      const haystack = encoding === 'hex' || encoding === 'lowercase' ? lower : text
      if (form.length > 0 && haystack.includes(encoding === 'hex' ? form.toLowerCase() : form)) {
        found.push({ canary, where, encoding })
        break
      }
    }
  }
  return found
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...(await filesUnder(path)))
    else if (entry.isFile()) out.push(path)
  }
  return out
}

/** Intercept writes to a stream while still passing them on. */
function capture(stream: NodeJS.WriteStream): { text(): string; restore(): void } {
  const original = stream.write.bind(stream)
  const parts: string[] = []
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    parts.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'))
    return (original as (...a: unknown[]) => boolean)(chunk, ...rest)
  }) as typeof stream.write
  return { text: () => parts.join(''), restore: () => void (stream.write = original) }
}

/** Build, listen, run `scenario`, close, and report every place a canary showed up. */
export async function runCanaryHarness({ canaries, enclave, config = {}, registrationReady, scenario }: CanaryHarnessParameters): Promise<CanaryReport> {
  if (canaries.length === 0 || canaries.some((c) => c.length < 8)) throw new RangeError('canaries must be at least 8 characters (short ones match by chance)')
  const dir = await mkdtemp(join(tmpdir(), 'cgw-canary-'))
  const logFile = join(dir, 'gateway.log')
  const stdout = capture(process.stdout)
  const stderr = capture(process.stderr)
  const destination = pino.destination({ dest: logFile, sync: true })
  const logger = pino(gatewayLoggerOptions('trace'), destination)
  let app: FastifyInstance | undefined
  let metrics = ''
  try {
    app = buildServer({
      enclave,
      config: parseGatewayConfig({ ...config, logLevel: 'trace', listen: { host: '127.0.0.1', port: 0 } }),
      logger,
      ...(registrationReady ? { registrationReady } : {}),
    })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const port = (app.server.address() as AddressInfo).port
    await scenario({ app, port, dir })
    metrics = await app.gatewayMetrics.registry.metrics()
  } finally {
    await app?.close()
    destination.flushSync()
    destination.end()
    stdout.restore()
    stderr.restore()
  }

  const leaks: CanaryLeak[] = []
  const logText = await readFile(logFile, 'utf8')
  const lines = logText.split('\n').filter((l) => l.length > 0)
  lines.forEach((line, i) => leaks.push(...findLeaks(line, `log line ${i + 1}`, canaries)))
  leaks.push(...findLeaks(stdout.text(), 'stdout', canaries))
  leaks.push(...findLeaks(stderr.text(), 'stderr', canaries))
  leaks.push(...findLeaks(metrics, 'metrics', canaries))
  const files = await filesUnder(dir)
  for (const file of files) leaks.push(...findLeaks((await readFile(file)).toString('utf8'), `file ${file.slice(dir.length + 1)}`, canaries))
  await rm(dir, { recursive: true, force: true })
  return { leaks, logLines: lines, metricsBytes: metrics.length, filesScanned: files.map((f) => f.slice(dir.length + 1)) }
}
