/**
 * `cgw start` (`npm start`): the whole system on this machine — a local
 * chain with the registry, the gateway on the development TEE registered on
 * it, and the enterprise proxy in front (deploy/local/system.ts) — then one
 * `curl` and one `cgw chat` that work, copy-paste. Runs until SIGINT or
 * SIGTERM, then stops everything it started.
 *
 * Exit codes: 0 stopped cleanly, 1 bad arguments, 70 the system did not come up.
 */
import { dirname, join, relative } from 'node:path'
import { parseArgs } from 'node:util'
import { startLocalSystem } from '../../deploy/local/system.ts'
import { EXIT } from '../exit-codes.ts'
import { untilSignal } from '../io.ts'
import type { Io } from '../cgw.ts'

const USAGE = `usage: cgw start [--dir DIR] [--proxy-port N] [--gateway-port N] [--log-level info|warn|error]
  Engine: ENGINE_URL (an OpenAI-compatible server), else MODEL_PATH (a GGUF file for
  the embedded llama.cpp engine), else a tiny generated model. MODEL names the model.
`

function port(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${name} must be a port number`)
  return n
}

function shellQuote(s: string): string {
  return /^[\w./:@-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`
}

export async function runStart(args: string[], io: Io, signals: NodeJS.EventEmitter = process): Promise<number> {
  let options: Parameters<typeof startLocalSystem>[0]
  try {
    const { values } = parseArgs({
      args,
      options: {
        dir: { type: 'string' },
        'proxy-port': { type: 'string' },
        'gateway-port': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    })
    if (values.help) {
      io.out(USAGE)
      return EXIT.OK
    }
    const level = values['log-level'] ?? 'warn'
    if (level !== 'info' && level !== 'warn' && level !== 'error') throw new Error('--log-level must be info, warn or error')
    const proxyPort = port(values['proxy-port'], '--proxy-port')
    const gatewayPort = port(values['gateway-port'], '--gateway-port')
    options = {
      ...(values.dir !== undefined ? { dir: values.dir } : {}),
      ...(proxyPort !== undefined ? { proxyPort } : {}),
      ...(gatewayPort !== undefined ? { gatewayPort } : {}),
      logLevel: level,
      progress: (line) => io.out(`  ${line}\n`),
    }
  } catch (e) {
    io.err(`cgw start: ${(e as Error).message}\n${USAGE}`)
    return EXIT.USAGE
  }

  io.out('cgw start: bringing up the local system (chain, contracts, gateway on the development TEE, proxy)\n')
  let system: Awaited<ReturnType<typeof startLocalSystem>>
  try {
    system = await startLocalSystem(options)
  } catch (e) {
    const code = (e as { code?: unknown }).code
    io.err(`cgw start: the local system did not come up: ${typeof code === 'string' ? `${code}: ` : ''}${(e as Error).message}\n`)
    return EXIT.INTERNAL
  }
  const policy = relative(process.cwd(), system.policyFile) || system.policyFile
  const dir = dirname(policy)
  const body = JSON.stringify({ model: system.model, messages: [{ role: 'user', content: 'Say hello' }] })
  io.out(
    [
      '',
      'Ready. Internal apps speak the plain OpenAI API to the proxy, which verifies the gateway first:',
      '',
      `  curl -s ${system.proxyUrl}/v1/chat/completions -H 'content-type: application/json' -d ${shellQuote(body)}`,
      '',
      'Or verify and chat from the command line (end-to-end encrypted, receipt printed):',
      '',
      `  npx cgw chat ${system.gatewayUrl} --model ${shellQuote(system.model)} ${shellQuote("Say hello")} --policy ${shellQuote(policy)}`,
      `  npx cgw verify ${system.gatewayUrl} --policy ${shellQuote(policy)}`,
      `  npx cgw audit ${system.gatewayUrl}/log --registry ${system.registry} --rpc ${system.rpcUrl} --dev-root ${shellQuote(join(dir, 'dev-tdx-root.pem'))} --dev-gpu-root ${shellQuote(join(dir, 'dev-gpu-root.pem'))}`,
      '',
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  )

  await untilSignal(signals)
  io.out('cgw start: stopping\n')
  await system.stop()
  io.out('cgw start: stopped\n')
  return EXIT.OK
}
