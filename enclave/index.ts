/**
 * The enclave's public surface: `createEnclave` (composition in code) and
 * `createEnclaveFromConfig` (the `enclave` section of `cgw gateway`'s
 * config file), plus the interfaces of types.ts.
 *
 * The config section, checked strictly (unknown keys are errors):
 *
 *     { "tee": "tdx" | "dev",
 *       "engine": { "url": "http://127.0.0.1:8000", "apiKey"?: "...",
 *                   "headersTimeoutMs"?: n, "bodyTimeoutMs"?: n },
 *       "gpu": "nvml" | "nvattest" | "dev" | "none",
 *       "epochSeconds"?: 3600, "graceSeconds"?: 300,
 *       "devRootsOut"?: "dir" }          // dev only: where to write the dev roots' PEM
 *
 * "tdx" refuses to start when configfs-tsm is missing (a clear error naming
 * the path), rather than fall back to anything. "dev" makes a fresh dev root
 * per process; a verifier pins it by the fingerprint in the written PEM.
 */
import { access, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ConfigError } from '../attestation/errors.ts'
import { createDevGpu, createDevGpuRootCa, createDevQuoteSigner, createDevRootCa, DEV_FMSPC } from '../attestation/dev/index.ts'
import { createEnclave, type CreateEnclaveOptions } from './enclave.ts'
import { EnclaveError } from './errors.ts'
import { createHttpEngine } from './engines/http.ts'
import { createDevGpuProvider } from './gpu/dev.ts'
import { createNvattestProvider } from './gpu/nvattest-cli.ts'
import { createNvmlProvider } from './gpu/nvml.ts'
import type { GpuEvidenceProvider } from './gpu/provider.ts'
import { createCcelEventLogProvider } from './quote-providers/ccel.ts'
import { createConfigfsTsmQuoteProvider, TSM_REPORT_PATH } from './quote-providers/configfs-tsm.ts'
import { createDevEventLogProvider, createDevQuoteProvider } from './quote-providers/dev.ts'
import type { Enclave } from './types.ts'

export { createEnclave, FORWARDED_PATHS, RECEIPT_TRAILER, ERROR_TRAILER, type CreateEnclaveOptions } from './enclave.ts'
export type * from './types.ts'

function bad(path: string, what: string): never {
  throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `enclave config ${path}: ${what}`, { details: { path } })
}

function only(o: Record<string, unknown>, keys: readonly string[], path: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) bad(`${path}.${k}`, 'unknown key')
}

function positive(v: unknown, path: string, dflt: number): number {
  if (v === undefined) return dflt
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) bad(path, 'expected a positive integer')
  return v
}

/** Build the enclave described by a config section. */
export async function createEnclaveFromConfig(section: Readonly<Record<string, unknown>>, _config?: unknown, now: () => Date = () => new Date()): Promise<Enclave> {
  if (typeof section !== 'object' || section === null) bad('enclave', 'expected an object')
  only(section, ['tee', 'engine', 'gpu', 'epochSeconds', 'graceSeconds', 'devRootsOut'], 'enclave')
  const tee = section.tee
  if (tee !== 'tdx' && tee !== 'dev') bad('enclave.tee', 'expected "tdx" or "dev"')
  const e = section.engine as Record<string, unknown> | undefined
  if (typeof e !== 'object' || e === null) bad('enclave.engine', 'expected { "url": ... }')
  only(e, ['url', 'apiKey', 'headersTimeoutMs', 'bodyTimeoutMs'], 'enclave.engine')
  if (typeof e.url !== 'string') bad('enclave.engine.url', 'expected the engine URL (loopback inside the CVM)')
  const gpuKind = section.gpu ?? 'none'
  if (!['nvml', 'nvattest', 'dev', 'none'].includes(gpuKind as string)) bad('enclave.gpu', 'expected "nvml", "nvattest", "dev" or "none"')
  if (tee === 'tdx' && gpuKind === 'dev') bad('enclave.gpu', 'a real TD does not take the development GPU')
  const epochSeconds = positive(section.epochSeconds, 'enclave.epochSeconds', 3600)
  const graceSeconds = positive(section.graceSeconds, 'enclave.graceSeconds', 300)
  if (graceSeconds > epochSeconds) bad('enclave.graceSeconds', 'must not exceed epochSeconds')

  const at = now()
  let quotes: CreateEnclaveOptions['quotes']
  let eventLog: CreateEnclaveOptions['eventLog']
  const pems: Record<string, string> = {}
  if (tee === 'tdx') {
    try {
      await access(TSM_REPORT_PATH)
    } catch (cause) {
      throw new EnclaveError('ENCLAVE_QUOTE_PROVIDER_UNAVAILABLE', `configfs-tsm is not available at ${TSM_REPORT_PATH} (TDX guest with Linux >= 6.7 and configfs mounted required)`, {
        cause,
        details: { path: TSM_REPORT_PATH },
      })
    }
    quotes = createConfigfsTsmQuoteProvider()
    eventLog = createCcelEventLogProvider()
  } else {
    const ca = createDevRootCa({ now: at })
    quotes = createDevQuoteProvider({ signer: createDevQuoteSigner(ca, { fmspc: DEV_FMSPC, now: at }) })
    eventLog = createDevEventLogProvider()
    pems['dev-tdx-root.pem'] = ca.rootCertificatePem
  }

  let gpu: GpuEvidenceProvider | null = null
  if (gpuKind === 'nvml') gpu = createNvmlProvider()
  else if (gpuKind === 'nvattest') gpu = createNvattestProvider()
  else if (gpuKind === 'dev') {
    const gca = createDevGpuRootCa({ now: at })
    gpu = createDevGpuProvider({ ca: gca, gpus: [createDevGpu(gca, { now: at })], now })
    pems['dev-gpu-root.pem'] = gca.rootCertificatePem
  }

  if (section.devRootsOut !== undefined) {
    if (tee !== 'dev' || typeof section.devRootsOut !== 'string') bad('enclave.devRootsOut', 'a directory, and only with "tee": "dev"')
    await mkdir(section.devRootsOut, { recursive: true })
    for (const [name, pem] of Object.entries(pems)) await writeFile(join(section.devRootsOut, name), pem)
  }

  return createEnclave({
    engine: createHttpEngine({
      baseUrl: e.url,
      ...(typeof e.apiKey === 'string' ? { apiKey: e.apiKey } : {}),
      ...(e.headersTimeoutMs !== undefined ? { headersTimeoutMs: positive(e.headersTimeoutMs, 'enclave.engine.headersTimeoutMs', 0) } : {}),
      ...(e.bodyTimeoutMs !== undefined ? { bodyTimeoutMs: positive(e.bodyTimeoutMs, 'enclave.engine.bodyTimeoutMs', 0) } : {}),
    }),
    quotes,
    eventLog,
    gpu,
    epochLengthMs: epochSeconds * 1000,
    graceMs: graceSeconds * 1000,
  })
}
