/**
 * `cgw gateway [--config FILE]`: run the provider's gateway inside the CVM.
 *
 * Loads the config (file, then `CGW_*` environment), builds the enclave from
 * the config's `enclave` section, listens, and returns once a signal has
 * stopped it gracefully. Exit codes: 0 stopped cleanly, 1 bad arguments or
 * config (or no enclave available), 70 anything else.
 */
import { parseArgs } from 'node:util'
import type { Enclave } from '../../enclave/types.ts'
import { GatewayConfigError } from '../../gateway/errors.ts'
import { loadGatewayConfig, type GatewayConfig } from '../../gateway/config.ts'
import { startGateway } from '../../gateway/main.ts'
import { EXIT, failureOf } from '../exit-codes.ts'
import type { Io } from '../cgw.ts'

const USAGE = 'usage: cgw gateway [--config FILE]   (CGW_* environment variables override the file)\n'

/** The factory enclave/index.ts is expected to export. */
export type CreateEnclaveFromConfig = (section: Readonly<Record<string, unknown>>, config: GatewayConfig) => Promise<Enclave> | Enclave

/**
 * `createEnclaveFromConfig` from enclave/index.ts, or null while that module
 * (written separately) does not exist or does not export it yet.
 * TODO(enclave/index.ts): import it statically once enclave/index.ts exports
 * `createEnclaveFromConfig`, and drop this probe.
 */
export async function loadEnclaveFactory(): Promise<CreateEnclaveFromConfig | null> {
  // A computed specifier keeps the type checker from requiring the module today.
  const specifier = new URL('../../enclave/index.ts', import.meta.url).href
  try {
    const mod = (await import(specifier)) as { createEnclaveFromConfig?: unknown }
    return typeof mod.createEnclaveFromConfig === 'function' ? (mod.createEnclaveFromConfig as CreateEnclaveFromConfig) : null
  } catch (e) {
    if ((e as { code?: unknown } | null)?.code === 'ERR_MODULE_NOT_FOUND' && String((e as Error).message).includes('enclave/index.ts')) return null
    throw e
  }
}

export async function runGateway(args: string[], io: Io, factory?: CreateEnclaveFromConfig | null): Promise<number> {
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

  const create = factory === undefined ? await loadEnclaveFactory() : factory
  if (create === null) {
    io.err('cgw gateway: not available yet: the enclave factory (createEnclaveFromConfig in enclave/index.ts) does not exist yet\n')
    return EXIT.USAGE
  }

  let enclave: Enclave | undefined
  try {
    enclave = await create(config.enclave ?? {}, config)
    const gateway = await startGateway(config, { enclave })
    const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host
    io.out(`cgw gateway: listening on http://${host}:${gateway.address.port}\n`)
    enclave = undefined // from here on the gateway closes it
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
