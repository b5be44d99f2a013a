/**
 * A development registry on a real anvil, with one dev-TEE enclave ready to
 * register: dev root CA, quote signer, dev collateral submitted on-chain,
 * the workload allow-listed, an epoch manager and the enclave's
 * registration evidence source (enclave/registration.ts). Shared by the
 * contract tests, the registration worker test and the gas benchmark.
 */
import { randomBytes } from 'node:crypto'
import { type Address, type Hex } from 'viem'
import { computeWorkloadId } from '../../attestation/workload.ts'
import { createDevQuoteSigner, createDevRootCa, DEV_FMSPC, signDevCollateral, type DevQuoteSigner, type DevRootCa } from '../../attestation/dev/index.ts'
import type { DevQuoteInput } from '../../attestation/dev/quote-signer.ts'
import type { QuoteCollateralV3 } from '../../attestation/pcs/types.ts'
import { createEpochManager, type EpochManager, type OhttpKeyLike } from '../../enclave/epochs.ts'
import { createDevQuoteProvider } from '../../enclave/quote-providers/dev.ts'
import { createRegistrationEvidence, type RegistrationEvidenceSource } from '../../enclave/registration.ts'
import { collateralSubmission, createPcsClient, type PcsClient } from '../../contracts/client/collateral.ts'
import { deployRegistry, type DeployedRegistry } from '../../contracts/client/deploy.ts'
import { createRegistryWriter, type RegistryWriterClient } from '../../contracts/client/registry.ts'
import type { RegistrationSubmission } from '../../contracts/registry-types.ts'
import type { RegistrationEvidence } from '../../enclave/registration.ts'
import { startAnvil, type Anvil, type Teardownable } from './anvil.ts'

/** Chain genesis: a fixed instant, so collateral windows are deterministic. */
export const GENESIS = 1_767_225_600n // 2026-01-01T00:00:00Z
export const MODEL = 'dev-model'
export const GATEWAY_URL = 'https://gateway.example'
export const EPOCH_LENGTH_MS = 3_600_000
/** The dev CA seed: tests derive the CA keys from it (attestation/dev deriveDevKey) to issue odd certificates. */
export const DEV_SEED = new Uint8Array(32).fill(7)

/** The dev TD's measurements (everything of the TD report but REPORTDATA). */
export const MEASUREMENTS: Omit<DevQuoteInput, 'reportData'> = {
  mrTd: new Uint8Array(48).fill(0x11),
  rtmrs: [new Uint8Array(48).fill(0x21), new Uint8Array(48).fill(0x22), new Uint8Array(48).fill(0x23), new Uint8Array(48).fill(0x24)],
}

export const workloadIdOf = (m: Omit<DevQuoteInput, 'reportData'>): Hex =>
  computeWorkloadId({
    mrTd: m.mrTd ?? new Uint8Array(48),
    mrConfigId: m.mrConfigId ?? new Uint8Array(48),
    mrOwner: m.mrOwner ?? new Uint8Array(48),
    mrOwnerConfig: m.mrOwnerConfig ?? new Uint8Array(48),
    rtmrs: (m.rtmrs ?? [0, 1, 2, 3].map(() => new Uint8Array(48))) as [Uint8Array, Uint8Array, Uint8Array, Uint8Array],
  })

export function fakeOhttpKey(keyId: number): OhttpKeyLike {
  // A structurally plausible RFC 9458 key config (the registry only hashes it).
  const keyConfig = new Uint8Array([keyId, 0x00, 0x20, ...randomBytes(32), 0x00, 0x04, 0x00, 0x01, 0x00, 0x02])
  return { keyId, keyConfig, destroy() {} }
}

export interface DevRegistry {
  readonly anvil: Anvil
  readonly ca: DevRootCa
  readonly signer: DevQuoteSigner
  readonly collateral: QuoteCollateralV3
  readonly deployed: DeployedRegistry
  readonly pcs: PcsClient
  readonly registry: RegistryWriterClient
  readonly epochs: EpochManager
  readonly logPublicKey: Uint8Array
  readonly evidence: RegistrationEvidenceSource
  /** The test clock epochs run on (ms); follows the chain when `syncClock` is called. */
  clock: number
  /** Set the epoch clock to the latest block's time. */
  syncClock(): Promise<void>
  /**
   * Registration evidence for the latest block, as the worker would make it
   * (PCK DER sent only when not cached); from `source` when given (see `evidenceWith`).
   */
  freshSubmission(o?: {
    measurements?: Omit<DevQuoteInput, 'reportData'>
    source?: RegistrationEvidenceSource
  }): Promise<{ evidence: RegistrationEvidence; submission: RegistrationSubmission }>
  /**
   * An evidence source for other measurements (default the same keys, log
   * key, model and URL; each may be replaced, e.g. a second enclave's log
   * key or another epoch manager).
   */
  evidenceWith(measurements: Omit<DevQuoteInput, 'reportData'>, o?: EvidenceOverrides): RegistrationEvidenceSource
}

export interface EvidenceOverrides {
  readonly logPublicKey?: Uint8Array
  readonly epochs?: EpochManager
  readonly model?: string
  readonly url?: string
}

export async function devRegistry(t: Teardownable, o: { collateralNow?: Date; nextUpdateDays?: number } = {}): Promise<DevRegistry> {
  const anvil = await startAnvil(t, { timestamp: GENESIS })
  const start = new Date(Number(GENESIS) * 1000)
  const seed = DEV_SEED
  const ca = createDevRootCa({ seed, now: new Date(start.getTime() - 86_400_000) })
  const signer = createDevQuoteSigner(ca, { fmspc: DEV_FMSPC, seed, now: new Date(start.getTime() - 86_400_000) })
  const collateral = signDevCollateral(ca, {
    fmspc: DEV_FMSPC,
    now: o.collateralNow ?? new Date(start.getTime() - 3_600_000),
    platform: signer.platform,
    ...(o.nextUpdateDays ? { nextUpdateDays: o.nextUpdateDays } : {}),
  })
  const deployed = await deployRegistry({
    publicClient: anvil.publicClient,
    walletClient: anvil.walletClient,
    target: { kind: 'development', rootCertDer: ca.rootCertificateDer },
    owner: anvil.accounts[0]!.address as Address,
  })
  const pcs = createPcsClient({ publicClient: anvil.publicClient, walletClient: anvil.walletClient, address: deployed.pcs })
  await pcs.submitCollateral(collateralSubmission(collateral, [pemChainDer(signer.pckLeaf.chainPem)]))
  const registry = await createRegistryWriter({ publicClient: anvil.publicClient, walletClient: anvil.walletClient, address: deployed.registry, allowDevelopment: true })
  await registry.setWorkload(MODEL, workloadIdOf(MEASUREMENTS), true)

  const state = { clock: Number(GENESIS) * 1000 }
  const epochs = await createEpochManager({ epochLengthMs: EPOCH_LENGTH_MS, graceMs: 60_000, now: () => state.clock, newOhttpKey: fakeOhttpKey, autoRotate: false })
  t.teardown(() => epochs.close())
  const logPublicKey = new Uint8Array(randomBytes(32))
  const evidenceWith = (measurements: Omit<DevQuoteInput, 'reportData'>, x: EvidenceOverrides = {}) =>
    createRegistrationEvidence({
      quotes: createDevQuoteProvider({ signer, measurements }),
      gpu: null,
      epochs: x.epochs ?? epochs,
      logPublicKey: x.logPublicKey ?? logPublicKey,
      model: x.model ?? MODEL,
      url: x.url ?? GATEWAY_URL,
    })
  const evidence = evidenceWith(MEASUREMENTS)
  const fixture: DevRegistry = {
    anvil,
    ca,
    signer,
    collateral,
    deployed,
    pcs,
    registry,
    epochs,
    logPublicKey,
    evidence,
    get clock() {
      return state.clock
    },
    set clock(v: number) {
      state.clock = v
    },
    async syncClock() {
      state.clock = Number(await registry.chainTime()) * 1000
    },
    async freshSubmission(x = {}) {
      const b = await registry.freshnessBlock()
      const source = x.source ?? (x.measurements ? evidenceWith(x.measurements) : evidence)
      const ev = await source({ blockHash: b.hash, blockNumber: b.number, chainId: registry.chainId, registry: registry.address })
      const cached = await registry.hasPckCert(ev.pckCertId)
      return {
        evidence: ev,
        submission: { quote: ev.quote, pckCertDer: cached ? null : ev.pckCertDer, pckCertId: ev.pckCertId, data: ev.data },
      }
    },
    evidenceWith,
  }
  return fixture
}

function pemChainDer(pem: string): Uint8Array[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) => new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64')))
}
