/**
 * Errors of the attestation transparency log: the writer, the static
 * reader, inclusion/consistency proofs and the auditor's findings. Codes are
 * stable strings (tests and `cgw audit --json` consumers branch on them);
 * messages are for people.
 *
 * Kinds answer different questions:
 * - `parse`:   bytes that are not a tile, note, checkpoint or entry;
 * - `proof`:   a signature, proof or root that does not verify;
 * - `finding`: what the auditor detected about a log's history (a
 *              rewritten entry, a fork, an anchor mismatch, an unregistered
 *              receipt signer, evidence that no longer verifies);
 * - `storage`: the writer's durable state (torn tails, corruption, closed);
 * - `fetch`:   a tile, blob or checkpoint could not be obtained (fail
 *              closed: a missing piece is a failure, never a skip);
 * - `config`:  the caller's options.
 * Messages and details never carry prompt or completion content: entries
 * hold only hashes and public evidence.
 */
import { BaseError, type BaseErrorOptions } from '../errors.ts'

export type LogErrorKind = 'parse' | 'proof' | 'finding' | 'storage' | 'fetch' | 'config'

export const LOG_ERROR_CODES = {
  // --- parse -------------------------------------------------------------
  LOG_NOTE_MALFORMED: { kind: 'parse', description: 'text is not a C2SP signed note (body, blank line, signature lines)' },
  LOG_CHECKPOINT_MALFORMED: { kind: 'parse', description: 'note body is not a C2SP tlog-checkpoint (origin, size, base64 root)' },
  LOG_TILE_MALFORMED: { kind: 'parse', description: 'a hash tile or entry bundle does not have the size or framing its path implies' },
  LOG_TILE_PATH_INVALID: { kind: 'parse', description: 'a path is not a C2SP tlog-tiles tile path' },
  LOG_ENTRY_MALFORMED: { kind: 'parse', description: 'an entry is not a known version/type of the entry encoding' },
  LOG_ENTRY_TOO_LARGE: { kind: 'parse', description: 'an entry exceeds the 65535 bytes an entry bundle can frame' },
  // --- proof ---------------------------------------------------------------
  LOG_CHECKPOINT_SIGNATURE_INVALID: { kind: 'proof', description: 'no valid signature by the log key on the checkpoint' },
  LOG_ROOT_MISMATCH: { kind: 'proof', description: 'the tree computed from the entries/tiles does not have the checkpoint root' },
  LOG_INCLUSION_PROOF_INVALID: { kind: 'proof', description: 'the inclusion proof does not lead to the checkpoint root (RFC 9162 §2.1.3.2)' },
  LOG_CONSISTENCY_PROOF_INVALID: { kind: 'proof', description: 'the consistency proof does not lead to both roots (RFC 9162 §2.1.4.2)' },
  LOG_HASH_TILE_MISMATCH: { kind: 'proof', description: 'a served hash tile differs from the hashes computed from the entries' },
  // --- findings of the auditor ----------------------------------------------
  LOG_ENTRY_REWRITTEN: { kind: 'finding', description: 'an entry differs from the one covered by an earlier checkpoint the auditor saw' },
  LOG_FORKED: { kind: 'finding', description: 'two validly signed checkpoints of the same size have different roots' },
  LOG_ROLLED_BACK: { kind: 'finding', description: 'the log is smaller than a checkpoint the auditor saw before' },
  LOG_CONSISTENCY_FAILED: { kind: 'finding', description: 'the tree at an earlier checkpoint size does not have that checkpoint root' },
  LOG_ANCHOR_INCONSISTENT: { kind: 'finding', description: 'an on-chain checkpoint anchor does not match the log (other root at its size, or larger than the log)' },
  LOG_RECEIPT_SIGNER_UNREGISTERED: { kind: 'finding', description: 'a receipt is signed by a key never registered for this enclave' },
  LOG_RECEIPT_SIGNER_EXPIRED: { kind: 'finding', description: 'a receipt signer was registered, but not at the time of the entry' },
  LOG_RECEIPT_SIGNATURE_INVALID: { kind: 'finding', description: 'a receipt signature does not recover to the signer the entry names' },
  LOG_EVIDENCE_INVALID: { kind: 'finding', description: 'a logged evidence bundle does not verify (quote, GPU evidence or binding; details.code says which)' },
  LOG_EVENTLOG_MISMATCH: { kind: 'finding', description: 'a logged event log does not replay to the RTMRs of its quote' },
  LOG_KEY_MISMATCH: { kind: 'finding', description: 'an evidence entry binds another log key than the one signing the checkpoints' },
  LOG_KEY_UNBOUND: {
    kind: 'finding',
    description: 'nothing vouches for the log key: not given by the auditor, not registered or anchored on the registry, and bound by no verified quote in the log',
  },
  LOG_EVENTLOG_MISSING: { kind: 'finding', description: 'an evidence entry carries no CCEL event log, so RTMR0..2 of its quote cannot be replayed (event logs are required)' },
  LOG_REGISTRATION_NOT_FOUND: { kind: 'finding', description: 'a logged registration transaction is not a registration of this enclave on the registry' },
  LOG_BLOB_MISMATCH: { kind: 'finding', description: 'a blob does not have the SHA-256 its entry names' },
  LOG_COLLATERAL_UNAVAILABLE: { kind: 'finding', description: 'the collateral an evidence entry needs is in no archive the auditor was given' },
  LOG_VOID_ENTRY: { kind: 'finding', description: 'informational, not a failure: an index was assigned to a receipt whose signing failed; the entry records only the failure code' },
  // --- storage ----------------------------------------------------------------
  LOG_TORN_TAIL: { kind: 'storage', description: 'the journal ends in an incomplete or corrupt record with nothing valid after it (never acknowledged); it is discarded on reopen' },
  LOG_STORAGE_CORRUPT: {
    kind: 'storage',
    description: 'acknowledged log data fails its integrity check (a damaged record with valid ones after it, or fewer entries than the published checkpoint); the log refuses to open',
  },
  LOG_WRITER_CLOSED: { kind: 'storage', description: 'the log writer is closed' },
  LOG_WRITE_FAILED: { kind: 'storage', description: 'a durable write or fsync failed; the batch is not acknowledged' },
  // --- fetch ----------------------------------------------------------------------
  LOG_FETCH_FAILED: { kind: 'fetch', description: 'a checkpoint, tile or blob could not be fetched or read' },
  LOG_REGISTRY_UNAVAILABLE: { kind: 'fetch', description: 'the registry could not be read' },
  // --- config ------------------------------------------------------------------------
  LOG_OPTIONS_INVALID: { kind: 'config', description: 'invalid options or arguments' },
  LOG_STATE_INVALID: { kind: 'config', description: 'the auditor state file is not a valid state document' },
  LOG_STATE_UNREADABLE: { kind: 'config', description: 'the auditor state file exists but cannot be read (fork and rewrite detection would be lost)' },
  LOG_INDEX_OUT_OF_RANGE: { kind: 'config', description: 'an index or size outside the tree' },
} as const satisfies Record<string, { readonly kind: LogErrorKind; readonly description: string }>

export type LogErrorCode = keyof typeof LOG_ERROR_CODES

export class LogError extends BaseError<LogErrorCode> {
  override name = 'LogError'
  constructor(code: LogErrorCode, shortMessage: string, options: BaseErrorOptions = {}) {
    super(code, shortMessage, options)
  }
  get kind(): LogErrorKind {
    return LOG_ERROR_CODES[this.code].kind
  }
}

export function isLogError(e: unknown): e is LogError {
  return e instanceof LogError && Object.hasOwn(LOG_ERROR_CODES, e.code)
}

/** Throw a LogError (for expressions). */
export function logError(code: LogErrorCode, message: string, details?: Record<string, unknown>, cause?: unknown): never {
  throw new LogError(code, message, { ...(details ? { details } : {}), ...(cause === undefined ? {} : { cause }) })
}
