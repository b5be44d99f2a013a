/**
 * The auditor's memory between runs, per log: every signed checkpoint it
 * verified (so a later, larger tree must contain each of them, and two of
 * one size with different roots are a fork), and the leaf hashes of the
 * largest verified tree (so a rewritten entry is named by index, not only
 * detected). Pure: the CLI reads and writes it (a JSON file and a binary
 * leaves file beside it).
 */
import { logError } from '../errors.ts'
import { HASH_SIZE } from '../hash.ts'

export interface SeenCheckpoint {
  readonly size: number
  /** Hex root. */
  readonly root: string
  /** The signed note as seen. */
  readonly note: string
  /** ISO time first seen (the injected clock). */
  readonly seenAt: string
}

export interface LogState {
  readonly origin: string
  readonly verifierKey: string
  readonly checkpoints: readonly SeenCheckpoint[]
  /** Leaf hashes (size·32 bytes) of the largest verified tree. */
  readonly leaves: Uint8Array
}

export interface AuditState {
  readonly version: 1
  /** Keyed by logId (0x hex). */
  readonly logs: Readonly<Record<string, LogState>>
}

export const EMPTY_AUDIT_STATE: AuditState = Object.freeze({ version: 1, logs: {} })

/** The JSON document (leaves are kept out of it: `leaves` maps logId → leaves bytes). */
export function serializeAuditState(s: AuditState): { json: string; leaves: Record<string, Uint8Array> } {
  const logs: Record<string, unknown> = {}
  const leaves: Record<string, Uint8Array> = {}
  for (const [id, l] of Object.entries(s.logs)) {
    logs[id] = { origin: l.origin, verifierKey: l.verifierKey, checkpoints: l.checkpoints, leafCount: l.leaves.length / HASH_SIZE }
    leaves[id] = l.leaves
  }
  return { json: `${JSON.stringify({ version: 1, logs }, null, 2)}\n`, leaves }
}

/** Parse the JSON document; `leavesOf(logId)` supplies each log's leaves bytes (null when the file is missing). */
export function parseAuditState(json: string, leavesOf: (logId: string) => Uint8Array | null): AuditState {
  let doc: unknown
  try {
    doc = JSON.parse(json)
  } catch (cause) {
    return logError('LOG_STATE_INVALID', 'state is not JSON', undefined, cause)
  }
  return auditStateFromDocument(doc, leavesOf)
}

/**
 * `parseAuditState` after JSON.parse: for a caller that has parsed the
 * document already (the CLI reads the log ids in it to find the leaves
 * files), so the text is parsed once. Every check is the same.
 */
export function auditStateFromDocument(doc: unknown, leavesOf: (logId: string) => Uint8Array | null): AuditState {
  const d = doc as { version?: unknown; logs?: unknown }
  if (typeof d !== 'object' || d === null || d.version !== 1 || typeof d.logs !== 'object' || d.logs === null) logError('LOG_STATE_INVALID', 'not an auditor state document')
  const logs: Record<string, LogState> = {}
  for (const [id, v] of Object.entries(d.logs as Record<string, unknown>)) {
    const l = v as { origin?: unknown; verifierKey?: unknown; checkpoints?: unknown; leafCount?: unknown }
    if (!/^0x[0-9a-f]{64}$/.test(id) || typeof l?.origin !== 'string' || typeof l.verifierKey !== 'string' || !Array.isArray(l.checkpoints)) {
      logError('LOG_STATE_INVALID', 'malformed log state', { logId: id })
    }
    const checkpoints = (l.checkpoints as SeenCheckpoint[]).map((c) => {
      if (!Number.isSafeInteger(c?.size) || typeof c.root !== 'string' || !/^[0-9a-f]{64}$/.test(c.root) || typeof c.note !== 'string') {
        logError('LOG_STATE_INVALID', 'malformed checkpoint in state', { logId: id })
      }
      return { size: c.size, root: c.root, note: c.note, seenAt: String(c.seenAt) }
    })
    let leaves = leavesOf(id) ?? new Uint8Array(0)
    if (leaves.length % HASH_SIZE !== 0) logError('LOG_STATE_INVALID', 'leaves file is not a whole number of hashes', { logId: id })
    if (typeof l.leafCount === 'number' && leaves.length / HASH_SIZE !== l.leafCount) leaves = new Uint8Array(0)
    logs[id] = { origin: l.origin as string, verifierKey: l.verifierKey as string, checkpoints, leaves }
  }
  return { version: 1, logs }
}
