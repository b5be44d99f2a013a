/**
 * The auditor's inputs and report. The registry is a structural subset of
 * contracts/registry-types.ts `RegistryReader` (the auditor only reads
 * registration events and checkpoint anchors), so attestation/ stays free
 * of chain code: pass the viem-backed reader, or an in-memory one in tests.
 */
import type { TrustedRoot } from '../../roots/trust-root.ts'
import type { LogSource } from '../reader.ts'
import type { AuditState } from './state.ts'

type Hex = `0x${string}`

/** One registration of a signing address (RegistryReader.registrationsOf). */
export interface AuditRegistration {
  readonly enclaveId: Hex
  readonly signingAddress: Hex
  readonly epoch: bigint
  /** Unix seconds. */
  readonly registeredAt: bigint
  readonly expiresAt: bigint
  readonly endedAt: bigint | null
  readonly blockNumber: bigint
  readonly transactionHash: Hex
}

/** One on-chain checkpoint anchor (RegistryReader.checkpointAnchors). */
export interface AuditAnchor {
  readonly logId: Hex
  readonly size: bigint
  readonly root: Hex
  readonly blockNumber: bigint
  readonly anchoredAt: bigint
  readonly transactionHash: Hex
}

export interface AuditRegistry {
  readonly chainId: bigint
  readonly address: Hex
  registrationsOf(signingAddress: Hex): Promise<readonly AuditRegistration[]>
  checkpointAnchors(logId: Hex): Promise<readonly AuditAnchor[]>
}

/** Archived collateral by fingerprint (SHA-256 hex of the QuoteCollateralV3 JSON bytes), or null when absent. */
export interface CollateralArchive {
  readonly location: string
  /** `quote` is the raw quote the collateral is wanted for (a PCS/PCCS source fetches by its FMSPC). */
  get(fingerprint: string, context: { readonly quote: Uint8Array }): Promise<Uint8Array | null>
}

/** Verifies many receipt signatures (bulk: the auditor's hot loop); true per item when it verifies. */
export type ReceiptSignatureVerifier = (items: readonly ReceiptSignatureItem[]) => Promise<boolean[]>

export interface ReceiptSignatureItem {
  /** 32-byte EIP-712 digest. */
  readonly digest: Uint8Array
  /** 65 bytes r ‖ s ‖ v (v = 27/28). */
  readonly signature: Uint8Array
  /** 33-byte compressed secp256k1 public key of the signer the entry names. */
  readonly publicKey: Uint8Array
}

export interface AuditOptions {
  readonly source: LogSource
  /**
   * The log's raw Ed25519 public key, trusted as given. Default: the log's
   * `key` file, which is then only a candidate: the audit reports
   * LOG_KEY_UNBOUND unless the registry knows this log id (a registration
   * or a checkpoint anchor) or a verified quote in the log binds the key.
   */
  readonly publicKey?: Uint8Array
  /** What this auditor saw before (checkpoints and leaf hashes per log); null for a first audit. */
  readonly state?: AuditState | null
  /**
   * Registration and anchor history; without it receipt signers are checked
   * against the log's own attested epochs (their first attesting entry,
   * expiry and end of grace).
   */
  readonly registry?: AuditRegistry | null
  /** Collateral archives tried after the log's own blobs, in order. */
  readonly collateral?: readonly CollateralArchive[]
  /** Root for TDX quotes; default the Intel SGX Root CA. */
  readonly tdxRoot?: TrustedRoot
  /** Roots for GPU evidence (device identity, RIMs); default NVIDIA's pinned roots. */
  readonly gpuDeviceRoot?: TrustedRoot
  readonly gpuRimRoot?: TrustedRoot
  /** First entry to replay (earlier ones are still hashed into the tree). Default 0. */
  readonly from?: number
  /** Progress: entries replayed so far, of the total. */
  readonly onProgress?: (done: number, total: number) => void
  /** Default: in this thread (attestation/log/audit/receipt-signatures.ts). */
  readonly verifyReceiptSignatures?: ReceiptSignatureVerifier
  /** Tiles fetched at once. Default 8. */
  readonly concurrency?: number
  /** Wall clock for `seenAt` in the state. Default `() => new Date()`. */
  readonly now?: () => Date
  /** Monotonic ms for the report's timings. Default `performance.now`. */
  readonly clock?: () => number
}

/** One thing the auditor found wrong; `code` is a LOG_* code. */
export interface AuditFinding {
  readonly code: string
  readonly index?: number
  readonly details: Record<string, unknown>
}

export interface EntryResult {
  readonly index: number
  readonly type: string
  readonly ok: boolean
  /** First failure code of this entry, when not ok. */
  readonly code?: string
}

export interface AuditReport {
  ok: boolean
  location: string
  logId: Hex | null
  origin: string | null
  verifierKey: string | null
  checkpoint: { size: number; root: string } | null
  /** Entries in the tree; those replayed start at `from`. */
  entries: { total: number; from: number; replayed: number; byType: Record<string, number> }
  checks: {
    checkpointSignature: boolean
    treeRecomputed: boolean
    hashTilesChecked: number
    earlierCheckpoints: number
    anchors: number | null
    receiptSigners: 'registry' | 'log' | null
    quotesVerified: number
    receiptsVerified: number
    /** What vouches for the log key: given by the auditor, the registry, a verified quote in the log; null: nothing (LOG_KEY_UNBOUND). */
    logKey: 'given' | 'registry' | 'evidence' | null
  }
  findings: AuditFinding[]
  results: EntryResult[]
  /** Wall-clock phases in ms, for benchmarks (from the injected clock). */
  timings: Record<string, number>
}

export interface AuditOutcome {
  readonly report: AuditReport
  /** The state to keep for the next audit (this checkpoint and its leaves added). */
  readonly state: AuditState
}
