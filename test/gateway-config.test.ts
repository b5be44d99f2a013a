/**
 * Gateway configuration (gateway/config.ts) and the `cgw gateway` command:
 * defaults, the file, `CGW_*` overrides, every kind of invalid input
 * refused with GATEWAY_CONFIG_INVALID (and exit code 1), and the command
 * starting and stopping a gateway around an injected enclave.
 */
import t, { type Test } from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_GATEWAY_CONFIG, applyGatewayEnv, loadGatewayConfig, parseGatewayConfig } from '../gateway/config.ts'
import { GatewayConfigError } from '../gateway/errors.ts'
import { runGateway } from '../bin/commands/gateway.ts'
import { main } from '../bin/cgw.ts'
import { EXIT } from '../bin/exit-codes.ts'
import { FakeEnclave, until } from './helpers/fake-enclave.ts'

const tmp = mkdtempSync(join(tmpdir(), 'cgw-gateway-config-'))
t.teardown(() => rmSync(tmp, { recursive: true, force: true }))

function file(name: string, content: unknown): string {
  const path = join(tmp, name)
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content))
  return path
}

function configError(t: Test, f: () => unknown): GatewayConfigError {
  try {
    f()
  } catch (e) {
    t.ok(e instanceof GatewayConfigError, 'a GatewayConfigError')
    t.equal((e as GatewayConfigError).code, 'GATEWAY_CONFIG_INVALID')
    return e as GatewayConfigError
  }
  t.fail('expected GATEWAY_CONFIG_INVALID')
  throw new Error('unreachable')
}

t.test('defaults', async (t) => {
  const c = parseGatewayConfig({})
  t.same(c, DEFAULT_GATEWAY_CONFIG)
  t.equal(c.listen.host, '127.0.0.1', 'loopback unless told otherwise')
  t.ok(c.limits.attestationRate.requestsPerSecond < c.limits.rate.requestsPerSecond, 'attestation is limited more tightly')
})

t.test('a full document', async (t) => {
  const c = parseGatewayConfig({
    listen: { host: '0.0.0.0', port: 9000 },
    limits: { bodyLimitBytes: 1000, maxConcurrentStreams: 4, rate: { requestsPerSecond: 0.5, burst: 2 }, attestationRate: { burst: 1 } },
    clientAddress: { header: 'X-Relay-Client', trustedPeers: ['10.0.0.1', '::1'] },
    timeouts: { upstreamMs: 1, firstByteMs: 2, streamIdleMs: 3, shutdownGraceMs: 0 },
    logLevel: 'warn',
    metrics: false,
    enclave: { engine: { url: 'http://127.0.0.1:8000' } },
  })
  t.same(c.listen, { host: '0.0.0.0', port: 9000 })
  t.same(c.limits.rate, { requestsPerSecond: 0.5, burst: 2 })
  t.same(c.limits.attestationRate, { requestsPerSecond: DEFAULT_GATEWAY_CONFIG.limits.attestationRate.requestsPerSecond, burst: 1 }, 'partial sections keep defaults')
  t.same(c.clientAddress, { header: 'x-relay-client', trustedPeers: ['10.0.0.1', '::1'] }, 'header names are lower-cased as node reports them')
  t.same(c.timeouts, { requestMs: 30_000, upstreamMs: 1, firstByteMs: 2, streamIdleMs: 3, shutdownGraceMs: 0 })
  t.equal(c.logLevel, 'warn')
  t.equal(c.metrics, false)
  t.same(c.enclave, { engine: { url: 'http://127.0.0.1:8000' } }, 'the enclave section is passed through untouched')
})

t.test('invalid documents are refused, every problem listed', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['not an object', [], /must be object/],
    ['unknown top-level key', { listn: {} }, /unknown key "listn"/],
    ['unknown nested key', { limits: { rate: { rps: 1 } } }, /\/limits\/rate: unknown key "rps"/],
    ['port out of range', { listen: { port: 70000 } }, /\/listen\/port/],
    ['zero rate', { limits: { rate: { requestsPerSecond: 0 } } }, /requestsPerSecond/],
    ['fractional burst', { limits: { rate: { burst: 1.5 } } }, /burst: must be integer/],
    ['huge body limit', { limits: { bodyLimitBytes: 2 ** 40 } }, /bodyLimitBytes/],
    ['zero timeout', { timeouts: { firstByteMs: 0 } }, /firstByteMs/],
    ['unknown log level', { logLevel: 'verbose' }, /logLevel/],
    ['relay header without peers', { clientAddress: { header: 'x-client' } }, /trustedPeers/],
    ['relay header with a bad name', { clientAddress: { header: 'x client', trustedPeers: ['10.0.0.1'] } }, /header/],
    ['trusted peer that is not an address', { clientAddress: { header: 'x-client', trustedPeers: ['relay.example'] } }, /trustedPeers must be IP addresses/],
  ]
  for (const [name, doc, pattern] of cases) {
    const e = configError(t, () => parseGatewayConfig(doc))
    t.match(e.shortMessage, pattern, name)
  }
  const many = configError(t, () => parseGatewayConfig({ listen: { port: -1 }, logLevel: 'x', extra: 1 }))
  t.equal((many.details.problems as string[]).length, 3, 'all problems at once')
})

t.test('CGW_* environment overrides the file', async (t) => {
  const path = file('gw.json', { listen: { host: '127.0.0.1', port: 1 }, logLevel: 'info' })
  const c = await loadGatewayConfig({
    file: path,
    env: {
      CGW_LISTEN_PORT: '2',
      CGW_RATE_RPS: '2.5',
      CGW_RATE_BURST: '7',
      CGW_CLIENT_ADDRESS_HEADER: 'x-relay',
      CGW_TRUSTED_PEERS: '10.0.0.1, 10.0.0.2',
      CGW_METRICS: 'false',
      CGW_LOG_LEVEL: 'error',
      CGW_ENGINE_URL: 'http://ignored', // not the gateway's: left alone
    },
  })
  t.equal(c.listen.port, 2)
  t.equal(c.listen.host, '127.0.0.1')
  t.same(c.limits.rate, { requestsPerSecond: 2.5, burst: 7 })
  t.same(c.clientAddress, { header: 'x-relay', trustedPeers: ['10.0.0.1', '10.0.0.2'] })
  t.equal(c.metrics, false)
  t.equal(c.logLevel, 'error')

  t.match(configError(t, () => applyGatewayEnv({}, { CGW_LISTEN_PORT: '80a' })).shortMessage, /CGW_LISTEN_PORT/)
  t.match(configError(t, () => applyGatewayEnv({}, { CGW_METRICS: 'yes' })).shortMessage, /CGW_METRICS/)
  t.match(configError(t, () => parseGatewayConfig(applyGatewayEnv({}, { CGW_LOG_LEVEL: 'loud' }))).shortMessage, /logLevel/)
  t.same(applyGatewayEnv({ a: 1 }, {}), { a: 1 })
})

t.test('file errors', async (t) => {
  await t.rejects(loadGatewayConfig({ file: join(tmp, 'missing.json'), env: {} }), { code: 'GATEWAY_CONFIG_INVALID' })
  await t.rejects(loadGatewayConfig({ file: file('bad.json', '{ nope'), env: {} }), { code: 'GATEWAY_CONFIG_INVALID' })
  t.same(await loadGatewayConfig({ env: {} }), DEFAULT_GATEWAY_CONFIG, 'no file: defaults')
})

t.test('cgw gateway', async (t) => {
  const refuse: Parameters<typeof runGateway>[2] = () => {
    throw new Error('these cases never reach the enclave')
  }
  const run = async (args: string[], factory?: Parameters<typeof runGateway>[2]) => {
    let out = ''
    let err = ''
    const code = await runGateway(args, { out: (s) => void (out += s), err: (s) => void (err += s) }, factory)
    return { code, out, err }
  }

  t.test('an invalid enclave section exits 1; a real-TDX config without configfs-tsm refuses to start', async (t) => {
    const r = await run(['--config', file('bad-enclave.json', { logLevel: 'silent', enclave: { tee: 'sgx' } })])
    t.equal(r.code, EXIT.USAGE)
    t.match(r.err, /ATTESTATION_OPTIONS_INVALID/)
    const tdx = await run(['--config', file('tdx.json', { logLevel: 'silent', enclave: { tee: 'tdx', engine: { url: 'http://127.0.0.1:9' } } })])
    t.equal(tdx.code, EXIT.ENCLAVE)
    t.match(tdx.err, /ENCLAVE_QUOTE_PROVIDER_UNAVAILABLE/, 'a clear error naming the missing provider')
  })

  t.test('bad arguments and bad config exit 1', async (t) => {
    t.equal((await run(['--nope'], refuse)).code, EXIT.USAGE)
    t.equal((await run(['extra'], refuse)).code, EXIT.USAGE)
    const bad = await run(['--config', file('bad-key.json', { listen: { hots: 'x' } })], refuse)
    t.equal(bad.code, EXIT.USAGE)
    t.match(bad.err, /unknown key "hots"/)
    t.equal((await run(['--config', join(tmp, 'absent.json')], refuse)).code, EXIT.USAGE)
    const help = await run(['--help'], refuse)
    t.equal(help.code, EXIT.OK)
    t.match(help.out, /usage: cgw gateway/)
  })

  t.test('is registered in cgw', async (t) => {
    let err = ''
    const code = await main(['gateway', '--definitely-not-an-option'], { out: () => {}, err: (s) => void (err += s) })
    t.equal(code, EXIT.USAGE)
    t.match(err, /cgw gateway/)
  })

  t.test('runs a gateway around the enclave and stops on SIGTERM', async (t) => {
    const enclave = new FakeEnclave()
    let section: unknown
    const before = process.listenerCount('SIGTERM')
    const running = run(['--config', file('run.json', { listen: { port: 0 }, logLevel: 'silent', enclave: { fake: true } })], (s) => {
      section = s
      return enclave
    })
    await until(() => process.listenerCount('SIGTERM') > before)
    t.same(section, { fake: true }, 'the factory got the enclave section')
    const handler = process.listeners('SIGTERM').at(-1) as (s: NodeJS.Signals) => void
    handler('SIGTERM')
    const r = await running
    t.equal(r.code, EXIT.OK)
    t.match(r.out, /listening on http:\/\/127\.0\.0\.1:\d+/)
    t.ok(enclave.closed, 'the enclave was closed on the way out')
  })

  t.test('an enclave that fails to start is reported, not thrown', async (t) => {
    const r = await run(['--config', file('ok2.json', { logLevel: 'silent' })], () => {
      throw new Error('no TDX here')
    })
    t.equal(r.code, EXIT.INTERNAL)
    t.match(r.err, /INTERNAL/)
  })
})

t.test('the engine times out before the gateway does, or the config is refused', async (t) => {
  const { createEnclaveFromConfig } = await import('../enclave/index.ts')
  const config = parseGatewayConfig({ timeouts: { firstByteMs: 30_000, streamIdleMs: 20_000 } })
  const codeOf = (p: Promise<unknown>) => p.then(() => 'accepted', (e: { code?: string }) => e.code)
  const engine = (o: Record<string, unknown>) => ({ tee: 'dev', gpu: 'none', engine: { url: 'http://127.0.0.1:9', ...o } })
  t.equal(await codeOf(createEnclaveFromConfig(engine({ headersTimeoutMs: 30_000 }), config)), 'ATTESTATION_OPTIONS_INVALID', 'headers timeout not below firstByteMs')
  t.equal(await codeOf(createEnclaveFromConfig(engine({ bodyTimeoutMs: 25_000 }), config)), 'ATTESTATION_OPTIONS_INVALID', 'body timeout not below streamIdleMs')
  for (const o of [{ headersTimeoutMs: 29_000, bodyTimeoutMs: 19_000 }, {}]) {
    const enclave = await createEnclaveFromConfig(engine(o), config)
    t.equal(typeof enclave.status().epoch, 'string', `${JSON.stringify(o)}: built (defaults are lowered to fit)`)
    await enclave.close()
  }
})

t.test('chain.url: {hostname} gives each replica of one config its own announced URL', async (t) => {
  const { announcedUrl } = await import('../gateway/chain.ts')
  t.equal(announcedUrl('http://{hostname}.cgw-replicas.confidential-gateway.svc:8080', 'cgw-0'), 'http://cgw-0.cgw-replicas.confidential-gateway.svc:8080')
  t.equal(announcedUrl('https://gateway.example', 'cgw-1'), 'https://gateway.example', 'no placeholder: as written')
  t.throws(() => announcedUrl('https://{hostname}', 'bad host'), { code: 'GATEWAY_CONFIG_INVALID' })
})
