/**
 * The gateway's attestation log, assembled: a fresh log key for this
 * process, its directory `<dataDir>/<logId hex>` (a restarted process
 * starts a new log; earlier ones stay readable and servable), the writer,
 * the sink the enclave records evidence and epochs through, and the
 * receipt log. `<dataDir>/current` names the live log (written by rename)
 * so the gateway's routes can find it without reaching into the enclave.
 */
import { join } from 'node:path'
import type { LogKey } from './key.ts'
import { createLogKey } from './key.ts'
import { createAttestationLogSink, type AttestationLogSink, type RegistrationRecord } from './sink.ts'
import { writeFileAtomic } from './storage.ts'
import { createLogWriter, type LogWriter } from './writer.ts'

export const CURRENT_LOG_FILE = 'current'

export interface GatewayLog {
  readonly dir: string
  readonly logId: `0x${string}`
  /** Raw Ed25519 public key (bound into REPORTDATA). */
  readonly publicKey: Uint8Array
  readonly writer: LogWriter
  readonly sink: AttestationLogSink
  /** `ReceiptLog` for createEnclave (enclave/receipts.ts). */
  readonly receiptLog: LogWriter
  /** For gateway/registration-worker.ts `onRegistered`. */
  readonly onRegistered: (r: RegistrationRecord) => Promise<void>
  close(): Promise<void>
}

export interface OpenGatewayLogOptions {
  readonly dataDir: string
  /** Clock in ms. Default Date.now. */
  readonly now?: () => number
  readonly onError?: (e: unknown) => void
  /** Default: a fresh key (production). Tests may pass one. */
  readonly key?: LogKey
}

export async function openGatewayLog(o: OpenGatewayLogOptions): Promise<GatewayLog> {
  const key = o.key ?? createLogKey()
  const dir = join(o.dataDir, key.logId.slice(2))
  const writer = await createLogWriter({ dir, key, ...(o.now ? { now: o.now } : {}), ...(o.onError ? { onError: o.onError } : {}) })
  await writeFileAtomic(join(o.dataDir, CURRENT_LOG_FILE), `${key.logId.slice(2)}\n`, true)
  const sink = createAttestationLogSink(writer)
  return {
    dir,
    logId: key.logId,
    publicKey: key.publicKey,
    writer,
    sink,
    receiptLog: writer,
    // Rejects when the entry could not be made durable: the registration worker decides what to do with that.
    onRegistered: (r) => sink.registration(r),
    close: () => writer.close(),
  }
}

export { createLogKey, type LogKey } from './key.ts'
export { createLogWriter, type LogWriter, type LogWriterOptions } from './writer.ts'
export {
  createAttestationLogSink,
  loggedRegistrationEvidence,
  type AttestationLogSink,
  type EpochChangeRecord,
  type LoggedRegistrationEvidenceOptions,
  type RegistrationEvidenceRecord,
  type RegistrationRecord,
} from './sink.ts'
export { createAnchorWorker, type AnchorWorker, type AnchorWorkerOptions, type CheckpointAnchorer } from './anchor-worker.ts'
export { recordQuoteCollateral } from './collateral.ts'
export { recoverLogDirectory, type RecoveredLog, type StorageHooks, type WriteStep } from './storage.ts'
