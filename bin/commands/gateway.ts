/**
 * `cgw gateway [--config FILE]`: run the provider's gateway inside the CVM.
 *
 * Loads the config (file, then `CGW_*` environment), connects to the chain
 * of its `chain` section (if any), builds the enclave from the `enclave`
 * section for that chain, listens — serving the attestation log when the
 * enclave keeps one, keeping the enclave registered when there is a chain —
 * and returns once a signal has stopped it gracefully. Exit codes: 0 stopped cleanly, 1 bad arguments or
 * config (or no enclave available), 70 anything else.
 */
import { parseArgs } from 'node:util'
import type { Enclave } from '../../enclave/types.ts'
import { GatewayConfigError } from '../../gateway/errors.ts'
import { loadGatewayConfig, type GatewayConfig } from '../../gateway/config.ts'
import { startGateway } from '../../gateway/main.ts'
import { EXIT, failureOf } from '../exit-codes.ts'
import type { Io } from '../cgw.ts'
import { createEnclaveFromConfig, type EnclaveFromConfigOptions } from '../../enclave/index.ts'
import { connectChain, type GatewayChain } from '../../gateway/chain.ts'

const USAGE = 'usage: cgw gateway [--config FILE]   (CGW_* environment variables override the file)\n'

/** How the enclave is built from the config's `enclave` section (injectable for tests). */
export type CreateEnclaveFromConfig = (section: Readonly<Record<string, unknown>>, config: GatewayConfig, options?: EnclaveFromConfigOptions) => Promise<Enclave> | Enclave

/** The attestation log's data directory, when the enclave section configures one. */
function logDataDir(section: Readonly<Record<string, unknown>> | null): string | undefined {
  const log = section?.log as { dir?: unknown } | undefined
  return typeof log?.dir === 'string' ? log.dir : undefined
}

/** `stop`: shut the gateway down gracefully when it aborts (as SIGTERM does); for callers that run it in-process. */
export async function runGateway(args: string[], io: Io, create: CreateEnclaveFromConfig = createEnclaveFromConfig, stop?: AbortSignal): Promise<number> {
  let file: string | undefined
  try {
    const { values } = parseArgs({ args, options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false })
    if (values.help) {
      io.out(USAGE)
      return EXIT.OK
    }
    file = values.config
  } catch (e) {
    io.err(`cgw gateway: ${(e as Error).message}\n${USAGE}`)
    return EXIT.USAGE
  }

  let config: GatewayConfig
  try {
    config = await loadGatewayConfig(file === undefined ? {} : { file })
  } catch (e) {
    if (e instanceof GatewayConfigError) {
      io.err(`cgw gateway: ${e.shortMessage}\n`)
      return EXIT.USAGE
    }
    throw e
  }

  let enclave: Enclave | undefined
  try {
    const chain: GatewayChain | undefined = config.chain === null ? undefined : await connectChain(config.chain)
    enclave = await create(config.enclave ?? {}, config, chain === undefined ? {} : { chain: chain.enclave })
    const dataDir = logDataDir(config.enclave)
    const gateway = await startGateway(config, {
      enclave,
      ...(chain === undefined ? {} : { registry: chain.registry }),
      ...(dataDir === undefined ? {} : { log: { dataDir } }),
    })
    const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host
    io.out(`cgw gateway: listening on http://${host}:${gateway.address.port}\n`)
    enclave = undefined // from here on the gateway closes it
    if (stop?.aborted) void gateway.shutdown('stopped')
    else stop?.addEventListener('abort', () => void gateway.shutdown('stopped'), { once: true })
    await gateway.closed
    return EXIT.OK
  } catch (e) {
    await enclave?.close().catch(() => {})
    if (e instanceof GatewayConfigError) {
      io.err(`cgw gateway: ${e.shortMessage}\n`)
      return EXIT.USAGE
    }
    const f = failureOf(e)
    io.err(`cgw gateway: ${f.error.code}: ${f.error.message}\n`)
    return f.exitCode
  }
}
