/**
 * A local anvil (the `@foundry-rs/anvil` npm package) as a child process on
 * a free 127.0.0.1 port: used by `cgw start` (the local system) and by the
 * contract tests.
 *
 * The package's `bin` is a Node wrapper that spawns the platform binary and
 * forwards signals by killing itself at once; a SIGTERM to the wrapper can
 * leave the real anvil holding our stdout/stderr pipes open after the wrapper
 * exits, so a caller waiting for them never finishes. We resolve the
 * platform package's binary exactly as the wrapper does and run it directly:
 * one process, whose exit is the end of its pipes.
 *
 * Readiness is anvil's own "Listening on" line, never a timer.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'

/** `${process.platform}-${process.arch}` → the @foundry-rs/anvil-* package suffix (the wrapper's own table). */
const PLATFORM_PACKAGES: Readonly<Record<string, string>> = {
  'linux-x64': 'linux-amd64',
  'linux-arm64': 'linux-arm64',
  'darwin-x64': 'darwin-amd64',
  'darwin-arm64': 'darwin-arm64',
  'win32-x64': 'win32-amd64',
}

/** Anvil's default mnemonic: its well-known, funded development accounts. */
export const ANVIL_MNEMONIC = 'test test test test test test test test test test test junk'

/** Path of the anvil binary installed by `npm ci` for this platform. */
export function anvilBinary(): string {
  const suffix = PLATFORM_PACKAGES[`${process.platform}-${process.arch}`]
  if (suffix === undefined) throw new Error(`anvil: no @foundry-rs/anvil build for ${process.platform}-${process.arch}`)
  const exe = process.platform === 'win32' ? 'anvil.exe' : 'anvil'
  try {
    return createRequire(import.meta.url).resolve(`@foundry-rs/anvil-${suffix}/bin/${exe}`)
  } catch (cause) {
    throw new Error(`anvil: the @foundry-rs/anvil-${suffix} package is not installed (a development dependency: run npm ci in a checkout)`, { cause })
  }
}

export interface AnvilProcessOptions {
  /** Genesis block timestamp (unix seconds); default anvil's (wall clock). */
  readonly timestamp?: bigint
  /** Default 31337. */
  readonly chainId?: number
  /** Number of funded accounts; default 4. */
  readonly accounts?: number
  /** Block gas limit; default 100M (collateral submission parses JSON on-chain). */
  readonly gasLimit?: bigint
  /** Lift EIP-170's 24 KiB code size limit; default false. */
  readonly disableCodeSizeLimit?: boolean
  /** Port; default a free one (retried if taken before anvil binds it). */
  readonly port?: number
  /** Extra command-line arguments. */
  readonly args?: readonly string[]
}

export interface AnvilProcess {
  readonly rpcUrl: string
  readonly chainId: number
  readonly accounts: number
  readonly child: ChildProcess
  /** SIGTERM, then resolve when the process has exited. Idempotent. */
  stop(): Promise<void>
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      srv.close(() => resolve(port))
    })
  })
}

function waitListening(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = ''
    const onData = (b: Buffer) => {
      seen += b.toString('utf8')
      if (seen.includes('Listening on')) {
        child.stdout?.off('data', onData)
        child.stdout?.resume()
        child.stderr?.resume()
        resolve()
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', (b: Buffer) => (seen += b.toString('utf8')))
    child.once('exit', (code) => reject(new Error(`anvil exited (${code}) before listening: ${seen.slice(-2000)}`)))
    child.once('error', reject)
  })
}

/** Start anvil on 127.0.0.1 and resolve once it listens. */
export async function spawnAnvil(options: AnvilProcessOptions = {}): Promise<AnvilProcess> {
  const bin = anvilBinary()
  const chainId = options.chainId ?? 31337
  const accounts = options.accounts ?? 4
  const attempts = options.port === undefined ? 5 : 1
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort())
    const args = [
      '--host', '127.0.0.1',
      '--port', String(port),
      '--chain-id', String(chainId),
      '--accounts', String(accounts),
      '--gas-limit', String(options.gasLimit ?? 100_000_000n),
      ...(options.timestamp !== undefined ? ['--timestamp', options.timestamp.toString()] : []),
      ...(options.disableCodeSizeLimit ? ['--disable-code-size-limit'] : []),
      ...(options.args ?? []),
    ]
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    try {
      await waitListening(child)
    } catch (e) {
      child.kill('SIGKILL')
      if (attempt >= attempts) throw e
      continue
    }
    let stopped: Promise<void> | undefined
    const stop = () =>
      (stopped ??= new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve()
        child.once('exit', () => resolve())
        child.kill('SIGTERM')
      }))
    return { rpcUrl: `http://127.0.0.1:${port}`, chainId, accounts, child, stop }
  }
}
