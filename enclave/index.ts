/**
 * The enclave's public surface: `createEnclave` (composition in code) and
 * `createEnclaveFromConfig` (the `enclave` section of `cgw gateway`'s
 * config file), plus the interfaces of types.ts.
 *
 * The config section, checked strictly (unknown keys are errors):
 *
 *     { "tee": "tdx" | "dstack" | "dev",
 *       "engine": { "url": "http://127.0.0.1:8000", "apiKey"?: "...",
 *                   "headersTimeoutMs"?: n, "bodyTimeoutMs"?: n }
 *               | { "kind": "llama", "modelPath": "model.gguf", "modelId"?, "gpu"?: "cpu"|"cuda"|"vulkan"|"auto",
 *                   "gpuLayers"?, "contextSize"?, "maxConcurrency"?, "maxQueue"?, "threads"?,
 *                   "embeddings"?: bool, "maxTokens"? },   // the embedded engine (engines/llama.ts)
 *       "gpu": "nvml" | "nvattest" | "dev" | "none",
 *       "epochSeconds"?: 3600, "graceSeconds"?: 300,
 *       "devRootsOut"?: "dir",           // dev only: where to write the dev roots' PEM and the dev collateral
 *       "log"?: { "dir": "dir" },         // the attestation log (enclave/log); required on a chain
 *       "collateral"?: { "pcsUrl": "https://pccs…", "rootCaCrlUrl"?: "…" },  // where the log's collateral comes from; required for a real TD with a log
 *       "release"?: "dir",               // the release directory (release.json); default: beside the running entry
 *       "gpuReadyState"?: { "policy": <gpu policy section>, "rimsDir"?: "dir", "command"?: "nvidia-smi", "allowAlreadyReady"?: false } }
 *
 * At start the enclave extends RTMR3 with its release hash and config hash
 * (quote-providers/runtime-measurement.ts): tsm-mr sysfs on "tdx" (refused
 * when the kernel lacks it), the guest agent's EmitEvent on "dstack" (which
 * also provides the quotes), in-memory registers on "dev". A real TD with
 * a GPU must configure `gpuReadyState`: the GPU's ready state is set only
 * after its evidence verified (gpu/ready-state.ts), and readiness waits for it.
 *
 * Readiness is evidence: the enclave attests itself at start and after each
 * key rotation (createEnclave), and with a log the collateral of that quote
 * is archived in the log before the epoch counts as ready. With a chain
 * (`EnclaveFromConfigOptions.chain`), receipts are signed in the registry's
 * EIP-712 domain, `Enclave.registration` feeds the gateway's registration
 * worker, and signed checkpoints are anchored on-chain periodically.
 *
 * "tdx" refuses to start when configfs-tsm is missing (a clear error naming
 * the path), rather than fall back to anything. "dev" makes a fresh dev root
 * per process; a verifier pins it by the fingerprint in the written PEM.
 */
import { access, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ConfigError } from '../attestation/errors.ts'
import { createDevCcel, createDevGpu, createDevGpuRootCa, createDevQuoteSigner, createDevRootCa, DEV_FMSPC } from '../attestation/dev/index.ts'
import { createEnclave, type CreateEnclaveOptions } from './enclave.ts'
import { EnclaveError } from './errors.ts'
import { createHttpEngine, HTTP_ENGINE_DEFAULTS } from './engines/http.ts'
import { createLlamaEngine, llamaEngineOptionsFromConfig } from './engines/llama.ts'
import { createDevGpuProvider } from './gpu/dev.ts'
import { createNvattestProvider } from './gpu/nvattest-cli.ts'
import { createNvmlProvider } from './gpu/nvml.ts'
import type { GpuEvidenceProvider } from './gpu/provider.ts'
import { createCcelEventLogProvider } from './quote-providers/ccel.ts'
import { createConfigfsTsmQuoteProvider, TSM_REPORT_PATH } from './quote-providers/configfs-tsm.ts'
import { createDevEventLogProvider, createDevQuoteProvider } from './quote-providers/dev.ts'
import type { Enclave } from './types.ts'
import { openGatewayLog, type GatewayLog } from './log/index.ts'
import { readdir, readFile } from 'node:fs/promises'
import { parseGpuPolicy, type GpuPolicy } from '../attestation/policy/policy.ts'
import { createFileEventStore, createMemoryEventStore, createMemoryRtmrs, createTsmMrExtender, type RtmrExtender, type RuntimeEventStore } from './quote-providers/rtmr-extend.ts'
import { ccelBase, emitGatewayStart, measureGatewayStart, resolveRelease } from './quote-providers/runtime-measurement.ts'
import { createDstackProviders } from './quote-providers/dstack.ts'
import { createGpuReadyGate, withGpuReadyGate, type GpuReadyGate } from './gpu/ready-state.ts'
import { BaseError } from '../attestation/errors.ts'
import { createPcsClient, type PcsClient } from '../attestation/pcs/client.ts'
import { signDevCollateral, type DevGpuRootCa, type DevRootCa } from '../attestation/dev/index.ts'
import { receiptDomain } from './receipts.ts'
import { recordQuoteCollateral } from './log/collateral.ts'
import type { CheckpointAnchorer } from './log/anchor-worker.ts'

export { createEnclave, FORWARDED_PATHS, RECEIPT_TRAILER, ERROR_TRAILER, type CreateEnclaveOptions } from './enclave.ts'
export type * from './types.ts'

/** Written after this gateway set the GPU ready state (gpu/ready-state.ts); /run is tmpfs, so it marks this boot only. */
export const GPU_READY_MARKER = '/run/cgw/gpu-ready'

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

/**
 * The HTTP engine's timeouts under the gateway's (gateway/config.ts): each
 * must end before the gateway's own, or the gateway cuts the stream first
 * and the client gets a silent cut instead of the enclave's encrypted
 * timeout error. Defaults are the engine's, lowered to fit; explicit values
 * that do not fit are refused.
 */
function httpEngineTimeouts(e: Record<string, unknown>, config: unknown): { headersTimeoutMs?: number; bodyTimeoutMs?: number } {
  const t = (config as { timeouts?: { firstByteMs?: unknown; streamIdleMs?: unknown } } | undefined)?.timeouts
  const out: { headersTimeoutMs?: number; bodyTimeoutMs?: number } = {}
  const fit = (key: 'headersTimeoutMs' | 'bodyTimeoutMs', gatewayMs: unknown, gatewayKey: string) => {
    const explicit = e[key] === undefined ? undefined : positive(e[key], `enclave.engine.${key}`, 0)
    if (typeof gatewayMs !== 'number') {
      if (explicit !== undefined) out[key] = explicit
      return
    }
    if (explicit !== undefined && explicit >= gatewayMs) bad(`enclave.engine.${key}`, `must be below the gateway's timeouts.${gatewayKey} (${gatewayMs} ms), so the enclave's encrypted error arrives before the gateway cuts the stream`)
    out[key] = explicit ?? Math.max(1, Math.min(HTTP_ENGINE_DEFAULTS[key], gatewayMs - 1000))
  }
  fit('headersTimeoutMs', t?.firstByteMs, 'firstByteMs')
  fit('bodyTimeoutMs', t?.streamIdleMs, 'streamIdleMs')
  return out
}

/** The chain an enclave registers on, as `cgw gateway` builds it from its `chain` section (gateway/chain.ts). */
export interface EnclaveChainOptions {
  readonly chainId: bigint
  readonly registry: `0x${string}`
  /** The model served and the gateway's public base URL, recorded on-chain for discovery. */
  readonly model: string
  readonly url: string
  /** Submits signed checkpoint anchors; absent: the log is not anchored. */
  readonly anchorer?: CheckpointAnchorer
  /** At most one anchor transaction per period; default one hour. */
  readonly anchorPeriodMs?: number
}

export interface EnclaveFromConfigOptions {
  /** Build for this chain: receipts in the registry's EIP-712 domain, `Enclave.registration`, anchoring. */
  readonly chain?: EnclaveChainOptions
  /** Default: the system clock. */
  readonly now?: () => Date
  /** Failures of background work (self-attestation, collateral archiving, anchoring, log writes). */
  readonly onError?: (error: unknown) => void
  /**
   * "dev" only: the development roots to issue under, when the caller must
   * know them first (`cgw start` deploys a registry for them before the
   * enclave exists). Default: fresh roots per process.
   */
  readonly devRoots?: { readonly tdx?: DevRootCa; readonly gpu?: DevGpuRootCa }
}

/** Build the enclave described by a config section. */
export async function createEnclaveFromConfig(
  section: Readonly<Record<string, unknown>>,
  _config?: unknown,
  { chain, now = () => new Date(), onError, devRoots }: EnclaveFromConfigOptions = {},
): Promise<Enclave> {
  if (typeof section !== 'object' || section === null) bad('enclave', 'expected an object')
  only(section, ['tee', 'engine', 'gpu', 'epochSeconds', 'graceSeconds', 'devRootsOut', 'release', 'gpuReadyState', 'log', 'collateral'], 'enclave')
  if (section.release !== undefined && typeof section.release !== 'string') bad('enclave.release', 'the release directory (holding release.json)')
  const tee = section.tee
  if (tee !== 'tdx' && tee !== 'dev' && tee !== 'dstack') bad('enclave.tee', 'expected "tdx", "dstack" or "dev"')
  const e = section.engine as Record<string, unknown> | undefined
  if (typeof e !== 'object' || e === null) bad('enclave.engine', 'expected { "url": ... } or { "kind": "llama", "modelPath": ... }')
  // "kind": "llama" is the embedded engine (engines/llama.ts); otherwise the HTTP engine, as before.
  const llamaOptions = e.kind === 'llama' ? llamaEngineOptionsFromConfig(e) : null
  if (llamaOptions === null) {
    only(e, ['kind', 'url', 'apiKey', 'headersTimeoutMs', 'bodyTimeoutMs'], 'enclave.engine')
    if (e.kind !== undefined && e.kind !== 'http') bad('enclave.engine.kind', 'expected "http" or "llama"')
    if (typeof e.url !== 'string') bad('enclave.engine.url', 'expected the engine URL (loopback inside the CVM)')
  }
  const engineTimeouts = llamaOptions === null ? httpEngineTimeouts(e, _config) : {}
  const gpuKind = section.gpu ?? 'none'
  if (!['nvml', 'nvattest', 'dev', 'none'].includes(gpuKind as string)) bad('enclave.gpu', 'expected "nvml", "nvattest", "dev" or "none"')
  if (tee !== 'dev' && gpuKind === 'dev') bad('enclave.gpu', 'a real TD does not take the development GPU')
  const epochSeconds = positive(section.epochSeconds, 'enclave.epochSeconds', 3600)
  const graceSeconds = positive(section.graceSeconds, 'enclave.graceSeconds', 300)
  if (graceSeconds > epochSeconds) bad('enclave.graceSeconds', 'must not exceed epochSeconds')
  // The attestation log archives the collateral of every quote it records
  // (log/collateral.ts), or an auditor could not re-verify them later: a
  // real TD with a log must say where collateral comes from.
  const collateralSection = section.collateral as Record<string, unknown> | undefined
  if (collateralSection !== undefined) {
    if (typeof collateralSection !== 'object' || collateralSection === null || typeof collateralSection.pcsUrl !== 'string') {
      bad('enclave.collateral', 'expected { "pcsUrl": "<PCS or PCCS URL>", "rootCaCrlUrl"?: "<URL>" }')
    }
    only(collateralSection, ['pcsUrl', 'rootCaCrlUrl'], 'enclave.collateral')
    if (collateralSection.rootCaCrlUrl !== undefined && typeof collateralSection.rootCaCrlUrl !== 'string') bad('enclave.collateral.rootCaCrlUrl', 'expected a URL')
    if (tee === 'dev') bad('enclave.collateral', 'the development TEE signs its own collateral')
  }
  // The log's shape is checked here, before RTMR3 is extended with the config
  // hash: a typo found after measuring would leave this boot's RTMR3 bound to
  // a config that never ran, and the fixed config would then conflict with it.
  const logSection = section.log as Record<string, unknown> | undefined
  if (logSection !== undefined) {
    if (typeof logSection !== 'object' || logSection === null || typeof logSection.dir !== 'string') bad('enclave.log', 'expected { "dir": "<data directory of the attestation log>" }')
    only(logSection, ['dir'], 'enclave.log')
  }
  if (section.log !== undefined && tee !== 'dev' && collateralSection === undefined) {
    bad('enclave.collateral', 'a real TD with an attestation log needs { "pcsUrl": ... } to archive the collateral of its quotes')
  }
  if (devRoots !== undefined && tee !== 'dev') bad('enclave.tee', 'development roots are for the development TEE only')
  if (chain !== undefined && section.log === undefined) bad('enclave.log', 'a gateway on a chain needs the attestation log: its key is the enclave id on-chain')
  // Checked before anything touches the system: a real TD with a GPU must say how the GPU is verified.
  const readyState = section.gpuReadyState as Record<string, unknown> | undefined
  let gpuPolicy: GpuPolicy | undefined
  if (readyState !== undefined || (tee !== 'dev' && gpuKind !== 'none')) {
    if (typeof readyState !== 'object' || readyState === null) bad('enclave.gpuReadyState', 'a real TD with a GPU needs { "policy": <gpu policy>, "rimsDir"?: dir } to verify the GPU before setting its ready state')
    if (gpuKind !== 'nvml' && gpuKind !== 'nvattest') bad('enclave.gpuReadyState', 'only with a real GPU provider ("nvml" or "nvattest")')
    only(readyState, ['policy', 'rimsDir', 'command', 'allowAlreadyReady'], 'enclave.gpuReadyState')
    if (readyState.allowAlreadyReady !== undefined && typeof readyState.allowAlreadyReady !== 'boolean') bad('enclave.gpuReadyState.allowAlreadyReady', 'expected true or false')
    if (readyState.command !== undefined && typeof readyState.command !== 'string') bad('enclave.gpuReadyState.command', 'expected a program path')
    if (readyState.rimsDir !== undefined && typeof readyState.rimsDir !== 'string') bad('enclave.gpuReadyState.rimsDir', 'expected a directory of RIM XML files')
    gpuPolicy = parseGpuPolicy(readyState.policy)
  }

  const at = now()
  let quotes: CreateEnclaveOptions['quotes']
  let eventLog: CreateEnclaveOptions['eventLog']
  const devFiles: Record<string, string> = {}
  let collateralSource: Pick<PcsClient, 'getCollateral'> | undefined
  // Runtime measurement (deploy/README.md "Measurements"): where RTMR3 is extended and its log kept.
  let extender: RtmrExtender
  // Not for "dstack": the agent keeps the runtime log (emitGatewayStart), so no store is made there.
  let store: RuntimeEventStore | undefined
  let base: Uint8Array[] | undefined
  // "dstack": quotes, RTMR3 and the runtime log through dstack's guest agent (quote-providers/dstack.ts).
  const dstack = tee === 'dstack' ? createDstackProviders() : undefined
  if (dstack) {
    quotes = dstack.quotes
    eventLog = createCcelEventLogProvider()
    extender = dstack.extender
  } else if (tee === 'tdx') {
    try {
      // TSM_REPORT_PATH is relative to a root prefix: check it under "/", not under the working directory.
      await access(join('/', TSM_REPORT_PATH))
    } catch (cause) {
      throw new EnclaveError('ENCLAVE_QUOTE_PROVIDER_UNAVAILABLE', `configfs-tsm is not available at ${TSM_REPORT_PATH} (TDX guest with Linux >= 6.7 and configfs mounted required)`, {
        cause,
        details: { path: TSM_REPORT_PATH },
      })
    }
    quotes = createConfigfsTsmQuoteProvider()
    eventLog = createCcelEventLogProvider()
    const tsmMr = createTsmMrExtender()
    try {
      await tsmMr.probe()
    } catch (cause) {
      throw new EnclaveError('ENCLAVE_EVIDENCE_UNAVAILABLE', 'the kernel cannot extend RTMR3 (tsm-mr sysfs, Linux >= 6.16), so no quote could say which release runs', {
        cause,
        details: { step: 'runtime-measurement', code: cause instanceof BaseError ? cause.code : undefined },
      })
    }
    extender = tsmMr
    store = createFileEventStore()
    base = await ccelBase(eventLog)
  } else {
    const ca = devRoots?.tdx ?? createDevRootCa({ now: at })
    // The dev TD's firmware log (attestation/dev/ccel.ts): its registers start where that log replays to, as a
    // real TD's do. The generator already replayed the log it wrote (with the verifier's parser): no second parse.
    const ccel = createDevCcel()
    eventLog = createDevEventLogProvider({ ccel })
    base = ccel.rtmrs
    const rtmrs = createMemoryRtmrs(base)
    extender = rtmrs.extender
    store = createMemoryEventStore()
    const signer = createDevQuoteSigner(ca, { fmspc: DEV_FMSPC, now: at })
    quotes = createDevQuoteProvider({ signer, rtmrs: rtmrs.values })
    devFiles['dev-tdx-root.pem'] = ca.rootCertificatePem
    // Signed once per process: one collateral set for every dev quote, as a
    // PCS would serve for a collateral period.
    // Issued a minute back, as a PCS's collateral always predates its use (clocks drift a little).
    const devCollateral = signDevCollateral(ca, { fmspc: DEV_FMSPC, now: new Date(at.getTime() - 60_000), platform: signer.platform })
    devFiles['dev-collateral.json'] = `${JSON.stringify(devCollateral, null, 2)}\n`
    collateralSource = { getCollateral: async () => ({ collateral: devCollateral }) as unknown as Awaited<ReturnType<PcsClient['getCollateral']>> }
  }
  if (collateralSection !== undefined) {
    collateralSource = createPcsClient({
      baseUrl: collateralSection.pcsUrl as string,
      ...(typeof collateralSection.rootCaCrlUrl === 'string' ? { rootCaCrlUrl: collateralSection.rootCaCrlUrl } : {}),
      now,
    })
  }

  let gpu: GpuEvidenceProvider | null = null
  if (gpuKind === 'nvml') gpu = createNvmlProvider()
  else if (gpuKind === 'nvattest') gpu = createNvattestProvider()
  else if (gpuKind === 'dev') {
    const gca = devRoots?.gpu ?? createDevGpuRootCa({ now: at })
    gpu = createDevGpuProvider({ ca: gca, gpus: [createDevGpu(gca, { now: at })], now })
    devFiles['dev-gpu-root.pem'] = gca.rootCertificatePem
  }

  if (section.devRootsOut !== undefined) {
    if (tee !== 'dev' || typeof section.devRootsOut !== 'string') bad('enclave.devRootsOut', 'a directory, and only with "tee": "dev"')
    await mkdir(section.devRootsOut, { recursive: true })
    for (const [name, pem] of Object.entries(devFiles)) await writeFile(join(section.devRootsOut, name), pem)
  }

  let gate: GpuReadyGate | undefined
  // With gpuReadyState, gpuPolicy was parsed and gpuKind is "nvml" or "nvattest" (both checked above): gpu is set.
  if (readyState !== undefined) {
    const rims: string[] = []
    if (typeof readyState.rimsDir === 'string') {
      for (const f of (await readdir(readyState.rimsDir)).filter((n) => n.endsWith('.xml')).sort()) rims.push(await readFile(join(readyState.rimsDir, f), 'utf8'))
    }
    gate = createGpuReadyGate({
      provider: gpu!,
      policy: gpuPolicy!,
      rims,
      ...(typeof readyState.command === 'string' ? { command: readyState.command } : {}),
      ...(readyState.allowAlreadyReady === true ? { allowAlreadyReady: true } : {}),
      // tmpfs: gone at reboot, so only this boot's own earlier start counts as "set by us".
      markerPath: GPU_READY_MARKER,
      now,
    })
  }

  const release = await resolveRelease({ tee: tee === 'dev' ? 'dev' : 'tdx', ...(typeof section.release === 'string' ? { dir: section.release } : {}), entry: process.argv[1] })
  const firmwareLog = eventLog
  if (dstack) {
    await emitGatewayStart({ extender, releaseHash: release.releaseHash, config: _config ?? { enclave: section } })
    await dstack.refresh().catch((e: unknown) => {
      throw new EnclaveError('ENCLAVE_EVIDENCE_UNAVAILABLE', 'the dstack agent log could not be read after extending RTMR3', { cause: e, details: { step: 'runtime-measurement', code: e instanceof BaseError ? e.code : undefined } })
    })
    eventLog = { read: () => firmwareLog.read(), runtimeEvents: () => dstack.runtimeEvents() }
  } else {
    // store is set on "tdx" and "dev" (above); only "dstack" has none.
    const { measurer } = await measureGatewayStart({ extender, store: store!, base, releaseHash: release.releaseHash, config: _config ?? { enclave: section } })
    eventLog = { read: () => firmwareLog.read(), runtimeEvents: () => measurer.events() }
  }

  // The attestation log (enclave/log): `"log": { "dir": "<dataDir>" }`; a fresh log key and log per process.
  let attestationLog: GatewayLog | null = null
  if (logSection !== undefined) {
    attestationLog = await openGatewayLog({ dataDir: logSection.dir as string, now: () => now().getTime(), ...(onError ? { onError } : {}) })
  }
  const log = attestationLog
  const archive = collateralSource
  let platformQuote: Uint8Array | undefined
  const enclave = await createEnclave({
    ...(log === null ? {} : { receiptLog: log.receiptLog, logPublicKey: log.publicKey, logSink: log.sink }),
    // Before each self-attestation the platform's collateral is archived in the log (an unchanged set is
    // recorded once): which collateral a quote needs is read from a quote, so the first time one is made
    // with an all-zero REPORTDATA, binding nothing, and not served.
    ...(log !== null && archive !== undefined
      ? { beforeSelfAttest: async () => void (await recordQuoteCollateral(log.sink, archive, (platformQuote ??= await quotes.getQuote(new Uint8Array(64))))) }
      : {}),
    ...(chain === undefined
      ? {}
      : {
          receiptDomain: receiptDomain({ chainId: chain.chainId, registry: chain.registry }),
          registration: { model: chain.model, url: chain.url, ...(log !== null ? { record: (e) => log.onRegistered({ ...e, chainId: chain.chainId, registry: chain.registry }) } : {}) },
          ...(log !== null && chain.anchorer !== undefined
            ? { anchoring: { anchorer: chain.anchorer, periodMs: chain.anchorPeriodMs ?? 3_600_000, checkpoint: () => log.writer.checkpoint, logId: log.logId } }
            : {}),
        }),
    ...(onError ? { onError } : {}),
    now: () => now().getTime(),
    engine: llamaOptions !== null ? await createLlamaEngine(llamaOptions) : createHttpEngine({
      baseUrl: e.url as string,
      ...(typeof e.apiKey === 'string' ? { apiKey: e.apiKey } : {}),
      ...engineTimeouts,
    }),
    quotes,
    eventLog,
    gpu,
    epochLengthMs: epochSeconds * 1000,
    graceMs: graceSeconds * 1000,
  })
  if (gate === undefined) return enclave
  // In the background: /healthz answers meanwhile, /readyz stays false until the GPU is verified and ready.
  gate.run().catch((e: unknown) => process.emitWarning(`GPU ready state not set: ${e instanceof BaseError ? e.code : 'INTERNAL'}`, { code: 'CGW_GPU_NOT_READY' }))
  return withGpuReadyGate(enclave, gate)
}
