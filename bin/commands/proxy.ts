/**
 * `cgw proxy --config FILE`: run the enterprise proxy (gateway/proxy) until
 * SIGINT or SIGTERM, then stop promptly: answers in flight get the config's
 * limits.shutdownGraceMs, and connections that are left are closed rather
 * than waited for. Prints the URL it listens on (127.0.0.1 unless the
 * config says otherwise). Exit codes: 0 stopped cleanly, 1 bad arguments or
 * config (an audit file that cannot be opened included: the proxy does not
 * run without its audit trail), 8 the listen address could not be bound,
 * 70 anything else.
 */
import { parseArgs } from 'node:util'
import { loadProxyConfig } from '../../gateway/proxy/config.ts'
import { startProxy, type RunningProxy } from '../../gateway/proxy/main.ts'
import { isProxyError } from '../../gateway/proxy/errors.ts'
import { registryFactoryFor } from '../../gateway/client/viem-registry.ts'
import { loadClientPolicy } from '../../gateway/client/policy.ts'
import type { RegistryReaderFactory } from '../../gateway/client/registry.ts'
import { EXIT } from '../exit-codes.ts'
import { untilSignal } from '../io.ts'
import type { Io } from '../cgw.ts'
import { CLIENT_EXIT, failureOfClient } from './verify.ts'

const USAGE = 'usage: cgw proxy --config FILE\n'

export interface ProxyCommandDeps {
  readonly registryFactory?: RegistryReaderFactory
  /** Resolves when the proxy should stop (default: SIGINT or SIGTERM). */
  readonly until?: (proxy: RunningProxy) => Promise<void>
}

export async function runProxy(args: string[], io: Io, deps: ProxyCommandDeps = {}): Promise<number> {
  let file: string | undefined
  try {
    const { values } = parseArgs({ args, options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false })
    if (values.help) {
      io.out(USAGE)
      return EXIT.OK
    }
    file = values.config
  } catch (e) {
    io.err(`cgw proxy: ${(e as Error).message}\n${USAGE}`)
    return EXIT.USAGE
  }
  if (!file) {
    io.err(`cgw proxy: --config FILE is required\n${USAGE}`)
    return EXIT.USAGE
  }
  let proxy: RunningProxy | undefined
  try {
    const config = await loadProxyConfig(file)
    // Read here for the registry factory it allows (registryFactoryFor), and passed on rather than read again.
    const policy = await loadClientPolicy(config.policy)
    const registryFactory = deps.registryFactory ?? registryFactoryFor(policy)
    proxy = await startProxy(config, { policy, client: { registryFactory } })
    io.out(`cgw proxy: listening on ${proxy.url} (audit: ${config.audit.file})\n`)
    await (deps.until ?? (() => untilSignal()))(proxy)
    return EXIT.OK
  } catch (e) {
    if (isProxyError(e)) {
      io.err(`cgw proxy: ${e.code}${e.reason ? ` (${e.reason})` : ''}: ${e.shortMessage}\n`)
      return EXIT.USAGE
    }
    const code = (e as { code?: unknown } | null)?.code
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      io.err(`cgw proxy: cannot listen: ${String(code)}\n`)
      return CLIENT_EXIT.UNREACHABLE
    }
    const { exitCode, error } = failureOfClient(e)
    io.err(`cgw proxy: ${error.code}: ${error.message}\n`)
    return exitCode
  } finally {
    await proxy?.close()
  }
}
