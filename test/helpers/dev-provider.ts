/**
 * A provider on the development TEE for client, proxy and CLI tests: the
 * real test engine, the real enclave (dev quotes under one dev root CA per
 * test file) and the real gateway on 127.0.0.1:0 — plus the client policy
 * document, dev root file and collateral file that verify it, and its
 * on-chain record for a RegistryReader. Everything started is stopped by
 * t.teardown.
 *
 * A provider can be built crooked for negative tests: other measurements
 * (`measurements`), or an evidence bundle altered on its way out
 * (`alterBundle`, e.g. another key config than the quote binds).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import type { Address, Hex } from 'viem'
import { hashKeyConfig } from '../../attestation/binding.ts'
import { hex } from '../../attestation/bytes/hex.ts'
import { createDevGpu, createDevQuoteSigner, createDevRootCa, DEV_FMSPC, signDevCollateral, type DevGpuRootCa, type DevQuoteInput, type DevRootCa } from '../../attestation/dev/index.ts'
import { createDevGpuProvider } from '../../enclave/gpu/dev.ts'
import type { QuoteCollateralV3 } from '../../attestation/pcs/types.ts'
import { parseQuote, type TdReport } from '../../attestation/tdx/abi/quote.ts'
import { computeWorkloadId } from '../../attestation/workload.ts'
import { createEnclave } from '../../enclave/enclave.ts'
import { createHttpEngine } from '../../enclave/engines/http.ts'
import { createDevEventLogProvider, createDevQuoteProvider } from '../../enclave/quote-providers/dev.ts'
import type { Enclave, EvidenceBundle } from '../../enclave/types.ts'
import type { ReceiptDomain } from '../../enclave/receipts.ts'
import { createGatewayLogger } from '../../gateway/plugins/logging.ts'
import { buildServer } from '../../gateway/server.ts'
import type { EnclaveRecord } from '../../contracts/registry-types.ts'
import { startEngineServer, type EngineServer } from './engine-server.ts'
import { listenLocal, testConfig } from './fake-enclave.ts'
import type { MemoryRegistry } from './memory-registry.ts'

/** One dev root CA, its collateral and files, shared by a test file's providers. */
export interface DevWorld {
  readonly ca: DevRootCa
  readonly collateral: QuoteCollateralV3
  /** A temporary folder holding `dev-tdx-root.pem` and `collateral.json` (removed at teardown). */
  readonly dir: string
  readonly rootFile: string
  readonly collateralFile: string
}

export async function devWorld(t: Test, now = new Date()): Promise<DevWorld> {
  const ca = createDevRootCa({ now: new Date(now.getTime() - 86_400_000) })
  const platformSigner = createDevQuoteSigner(ca, { fmspc: DEV_FMSPC })
  const collateral = signDevCollateral(ca, { fmspc: DEV_FMSPC, now: new Date(now.getTime() - 3_600_000), nextUpdateDays: 30, platform: platformSigner.platform })
  const dir = await mkdtemp(join(tmpdir(), 'cgw-client-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const rootFile = join(dir, 'dev-tdx-root.pem')
  const collateralFile = join(dir, 'collateral.json')
  await writeFile(rootFile, ca.rootCertificatePem)
  await writeFile(collateralFile, JSON.stringify(collateral))
  return { ca, collateral, dir, rootFile, collateralFile }
}

/** A client policy document that accepts `world`'s dev providers (override any section). */
export function devPolicyDocument(world: DevWorld, overrides: Record<string, unknown> = {}, tdx: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 1,
    quote: {
      version: 1,
      trustRoot: { dev: world.ca.rootFingerprint },
      tdx: {
        acceptedTcbStatuses: ['UpToDate'],
        maxCollateralAgeSeconds: 86_400,
        mrTd: 'any',
        rtmr0: 'any',
        rtmr1: 'any',
        rtmr2: 'any',
        rtmr3: 'any',
        mrConfigId: 'any',
        mrOwner: 'any',
        mrOwnerConfig: 'any',
        ...tdx,
      },
    },
    gpu: { required: false },
    registry: { required: false },
    collateral: { file: world.collateralFile },
    maxEvidenceAgeSeconds: 3600,
    devRoots: { tdx: world.rootFile },
    ...overrides,
  }
}

/** Write a policy document into the world's folder; returns its path. */
export async function writePolicy(world: DevWorld, doc: Record<string, unknown>, name = `policy-${Math.random().toString(36).slice(2)}.json`): Promise<string> {
  const path = join(world.dir, name)
  await writeFile(path, JSON.stringify(doc))
  return path
}

export interface DevProvider {
  readonly url: string
  readonly port: number
  readonly engine: EngineServer
  readonly enclave: Enclave
  /** The attested facts of the current epoch (from a fresh bundle). */
  facts(): Promise<{ signingAddress: Address; keyConfigHash: Hex; workloadId: Hex; epoch: bigint; bundle: EvidenceBundle }>
  /** Register the current epoch in `registry` (fields may be overridden). */
  register(registry: MemoryRegistry, overrides?: Partial<EnclaveRecord>): Promise<EnclaveRecord>
  /** Requests that reached POST /v1/ohttp (counted at the gateway). */
  readonly ohttpRequests: () => number
  /** Stop the gateway (its port then refuses connections). */
  stop(): Promise<void>
}

export interface DevProviderOptions {
  /** TD report fields (MRTD, RTMRs…); zeros when absent, but RTMR0-2: the replay of the dev CCEL the provider serves. */
  readonly measurements?: Omit<DevQuoteInput, 'reportData'>
  /** Change the evidence bundle the gateway serves (the quote stays as signed). */
  readonly alterBundle?: (bundle: EvidenceBundle) => EvidenceBundle
  /** Use this engine instead of a fresh one. */
  readonly engine?: EngineServer
  readonly epochLengthMs?: number
  /** Gateway config document over the test defaults. */
  readonly config?: Record<string, unknown>
  /** EIP-712 domain of receipts (the registry's, when registered). Default: no chain. */
  readonly receiptDomain?: ReceiptDomain
  /** A development GPU under this dev GPU root (evidence with OCSP and RIMs). Default: no GPU. */
  readonly gpu?: DevGpuRootCa
}

export async function startDevProvider(t: Test, world: DevWorld, o: DevProviderOptions = {}): Promise<DevProvider> {
  let engine = o.engine
  if (!engine) {
    const started = await startEngineServer()
    t.teardown(() => started.close())
    engine = started
  }
  const signer = createDevQuoteSigner(world.ca, { fmspc: DEV_FMSPC })
  const real = await createEnclave({
    engine: createHttpEngine({ baseUrl: engine.url, bodyTimeoutMs: 5000 }),
    quotes: createDevQuoteProvider({ signer, ...(o.measurements ? { measurements: o.measurements } : {}) }),
    eventLog: createDevEventLogProvider(),
    gpu: o.gpu ? createDevGpuProvider({ ca: o.gpu, gpus: [createDevGpu(o.gpu, { now: new Date(Date.now() - 3_600_000) })], now: () => new Date() }) : null,
    epochLengthMs: o.epochLengthMs ?? 3_600_000,
    graceMs: 60_000,
    ...(o.receiptDomain ? { receiptDomain: o.receiptDomain } : {}),
  })
  t.teardown(() => real.close())
  const alter = o.alterBundle
  const enclave: Enclave = alter
    ? {
        keyConfigs: () => real.keyConfigs(),
        attest: async (nonce, opts) => alter(await real.attest(nonce, opts)),
        handle: (b, ct, opts) => real.handle(b, ct, opts),
        models: (opts) => real.models(opts),
        status: () => real.status(),
        close: () => real.close(),
      }
    : real
  let ohttp = 0
  const counting: Enclave = { ...enclave, keyConfigs: () => enclave.keyConfigs(), attest: (n, x) => enclave.attest(n, x), models: (x) => enclave.models(x), status: () => enclave.status(), close: () => enclave.close(), handle: (b, ct, x) => (ohttp++, enclave.handle(b, ct, x)) }
  const app = buildServer({ enclave: counting, config: testConfig({ limits: { rate: { requestsPerSecond: 100000, burst: 100000 }, attestationRate: { requestsPerSecond: 100000, burst: 100000 } }, ...o.config }), logger: createGatewayLogger('silent') })
  t.teardown(() => app.close())
  const port = await listenLocal(app)

  async function facts() {
    const bundle = await real.attest(crypto.getRandomValues(new Uint8Array(32)))
    const q = parseQuote(new Uint8Array(Buffer.from(bundle.quote, 'base64')))
    const r = q.body.report as TdReport
    return {
      signingAddress: bundle.signingAddress,
      keyConfigHash: `0x${hex(hashKeyConfig(new Uint8Array(Buffer.from(bundle.keyConfig, 'base64'))))}` as Hex,
      workloadId: computeWorkloadId({ mrTd: r.mrTd, mrConfigId: r.mrConfigId, mrOwner: r.mrOwner, mrOwnerConfig: r.mrOwnerConfig, rtmrs: r.rtmrs }),
      epoch: BigInt(bundle.epoch),
      bundle,
    }
  }
  const url = `http://127.0.0.1:${port}`
  return {
    url,
    port,
    engine,
    enclave: real,
    facts,
    async register(registry, overrides = {}) {
      const f = await facts()
      return registry.register({ signingAddress: f.signingAddress, keyConfigHash: f.keyConfigHash, workloadId: f.workloadId, epoch: f.epoch, url, ...overrides })
    },
    ohttpRequests: () => ohttp,
    stop: () => app.close(),
  }
}
