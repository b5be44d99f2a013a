/**
 * The registry as the rest of the system sees it: what the client SDK, the
 * proxy, the auditor and the gateway's registration worker read from and
 * write to the on-chain AttestationRegistry. Types only; the viem-backed
 * implementation lives beside the contracts (contracts/client/), and tests
 * of callers may use an in-memory one behind the same interfaces.
 *
 * Identity: an enclave is identified across key epochs by `enclaveId =
 * keccak256(log public key)`. The log key lives as long as the gateway
 * process and is bound in every quote (attestation/binding.ts), so only the
 * holder of that TD can replace its own record at the next epoch; a
 * re-registration replaces the record, and the previous epoch's signer stops
 * being "registered" at that moment.
 */
import type { Address, Hex } from 'viem'

/**
 * TCB status as the registry stores it (uint8), in the order of Intel's
 * TCB level statuses; a registry accepts at most its configured minimum.
 */
export const REGISTRY_TCB_STATUSES = [
  'UpToDate',
  'SWHardeningNeeded',
  'ConfigurationNeeded',
  'ConfigurationAndSWHardeningNeeded',
  'OutOfDate',
  'OutOfDateConfigurationNeeded',
] as const
export type RegistryTcbStatus = (typeof REGISTRY_TCB_STATUSES)[number]

/** One live enclave record. */
export interface EnclaveRecord {
  readonly enclaveId: Hex
  /** The current epoch's receipt-signing address. */
  readonly signingAddress: Address
  /** keccak256 of the RFC 9458 key config (attestation/binding.ts `hashKeyConfig`). */
  readonly keyConfigHash: Hex
  /** attestation/workload.ts `computeWorkloadId` of the registered quote. */
  readonly workloadId: Hex
  /** The GPU evidence hash bound in the registered quote (NO_GPU_EVIDENCE_HASH when none). */
  readonly gpuEvidenceHash: Hex
  readonly model: string
  /** Base URL of the gateway, for discovery by model. */
  readonly url: string
  readonly epoch: bigint
  readonly tcbStatus: RegistryTcbStatus
  /** 6-byte FMSPC, hex. */
  readonly fmspc: Hex
  /** Unix seconds (block time) of registration and of expiry. */
  readonly registeredAt: bigint
  readonly expiresAt: bigint
}

/** One registration event, for the auditor's "was this signer registered at time t". */
export interface RegistrationEvent {
  readonly enclaveId: Hex
  readonly signingAddress: Address
  readonly epoch: bigint
  readonly registeredAt: bigint
  readonly expiresAt: bigint
  /** When the record was replaced or invalidated (unix seconds), or null while live. */
  readonly endedAt: bigint | null
  readonly blockNumber: bigint
  readonly transactionHash: Hex
}

/** One checkpoint anchored on-chain by `anchorCheckpoint`. */
export interface CheckpointAnchor {
  readonly logId: Hex
  readonly size: bigint
  /** RFC 6962 root hash, 32 bytes hex. */
  readonly root: Hex
  readonly blockNumber: bigint
  readonly anchoredAt: bigint
  readonly transactionHash: Hex
}

/** Reads: cheap, any RPC; callers re-check what they read against the quote they verified themselves. */
export interface RegistryReader {
  readonly chainId: bigint
  readonly address: Address
  /** The live (registered, unexpired, not invalidated) record whose current signer is `signingAddress`, or null. */
  enclaveBySigner(signingAddress: Address): Promise<EnclaveRecord | null>
  /** The live record of an enclave id, or null. */
  enclave(enclaveId: Hex): Promise<EnclaveRecord | null>
  /** Live records serving `model`. */
  enclavesForModel(model: string): Promise<readonly EnclaveRecord[]>
  /** Every registration of `signingAddress` (from events), oldest first. */
  registrationsOf(signingAddress: Address): Promise<readonly RegistrationEvent[]>
  /** Every anchor of a log (from events), oldest first. */
  checkpointAnchors(logId: Hex): Promise<readonly CheckpointAnchor[]>
}

/**
 * What a registering enclave presents beside its quote (AttestationRegistry
 * `EnclaveData`); made by enclave/registration.ts, bound in REPORTDATA.
 */
export interface RegistrationEnclaveData {
  /** The Ed25519 transparency-log public key (32 bytes); enclaveId = keccak256 of it. */
  readonly logPublicKey: Hex
  readonly signingAddress: Address
  readonly keyConfigHash: Hex
  readonly gpuEvidenceHash: Hex
  readonly epoch: bigint
  /** The block whose hash is the freshness value. */
  readonly blockNumber: bigint
  readonly model: string
  readonly url: string
}

/** One registration to send. */
export interface RegistrationSubmission {
  /** The registration-mode quote (its PEM certification data may be cut off; see contracts/client/collateral.ts). */
  readonly quote: Uint8Array
  /** The PCK leaf DER for a platform the registry has not cached, else null. */
  readonly pckCertDer: Uint8Array | null
  /** keccak256 of the PCK leaf DER. */
  readonly pckCertId: Hex
  readonly data: RegistrationEnclaveData
}

export interface RegistrationResult {
  readonly txHash: Hex
  readonly enclaveId: Hex
  readonly epoch: bigint
  readonly blockNumber: bigint
  readonly expiresAt: bigint
  readonly gasUsed: bigint
}

/** Writes: what the gateway's registration worker needs (contracts/client/registry.ts implements it). */
export interface RegistryWriter {
  readonly chainId: bigint
  readonly address: Address
  /** A recent block to bind as freshness (the latest, normally). */
  freshnessBlock(): Promise<{ readonly number: bigint; readonly hash: Hex }>
  /** Whether the registry has the PCK leaf `certId` cached (then the DER need not be sent). */
  hasPckCert(certId: Hex): Promise<boolean>
  register(submission: RegistrationSubmission): Promise<RegistrationResult>
}
