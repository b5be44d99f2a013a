/**
 * The log writer: assigns indices, group-commits batches to the journal
 * (one write + one fdatasync per batch), signs a checkpoint per batch with
 * the in-memory log key, then publishes tiles and the checkpoint file.
 *
 * Acknowledgement. `append` resolves only after the journal record holding
 * the entry — and the signed checkpoint covering it — is durable. Appends
 * arriving while a batch is being written wait for the next batch: that is
 * the group commit, and the batch size adapts to the load with no timer.
 *
 * Index-assigning appends. `append(build)` assigns the index at call time
 * and runs `build(index)` then; a receipt is signed over its own index
 * inside `build`, so the signed receipt and the log agree by construction.
 * A `build` that returns a promise is awaited before its batch is written;
 * if it rejects, the index still gets an entry (a `void` entry carrying the
 * error code), because later indices are already handed out and the tree
 * has no holes. A failed journal write fails every pending append and the
 * writer (fail closed: indices were promised that can no longer be kept).
 */
import { join } from 'node:path'
import { stat } from 'node:fs/promises'
import { LogError } from '../../attestation/log/errors.ts'
import { signCheckpoint } from '../../attestation/log/checkpoint.ts'
import { encodeEntry } from '../../attestation/log/entry.ts'
import { formatVerifierKey } from '../../attestation/log/note.ts'
import { MAX_ENTRY_SIZE } from '../../attestation/log/tile.ts'
import { BaseError } from '../../attestation/errors.ts'
import { encodeJournalRecord } from './journal.ts'
import type { LogKey } from './key.ts'
import {
  CHECKPOINT_FILE,
  KEY_FILE,
  openJournal,
  recoverLogDirectory,
  writeBlob,
  writeFileAtomic,
  writeTiles,
  type JournalFile,
  type StorageHooks,
} from './storage.ts'
import type { TreeBuilder } from '../../attestation/log/tree-builder.ts'

export interface LogWriterOptions {
  /** The log's directory (`<dataDir>/<logId hex>`); created when missing. */
  readonly dir: string
  readonly key: LogKey
  /** Clock in ms (entry times). Default Date.now. */
  readonly now?: () => number
  /** Most entries per batch. Default 4096. */
  readonly maxBatch?: number
  /** Failures after an acknowledged batch (tile publication). Default: ignored. */
  readonly onError?: (e: unknown) => void
  readonly hooks?: StorageHooks
}

export interface LogWriter {
  readonly dir: string
  readonly logId: `0x${string}`
  readonly publicKey: Uint8Array
  readonly origin: string
  /** Entries acknowledged (durable) so far. */
  readonly size: number
  /** The latest durable signed checkpoint, or null before the first batch. */
  readonly checkpoint: string | null
  /** The writer's clock (ms), for callers that build time-stamped entries inside `build`. */
  now(): number
  /** Index-assigning append (module header); resolves to the index once durable. */
  append(build: (index: bigint) => Uint8Array | Promise<Uint8Array>): Promise<bigint>
  /** Append fixed bytes. */
  appendEntry(entry: Uint8Array): Promise<bigint>
  /** Store a blob durably (before the entry naming it); resolves to its SHA-256 hex. */
  putBlob(bytes: Uint8Array): Promise<string>
  /** Resolves when everything appended so far is durable. */
  flush(): Promise<void>
  /** Finish pending batches, then refuse new appends. */
  close(): Promise<void>
}

interface Pending {
  readonly index: number
  readonly entry: Uint8Array | Promise<Uint8Array>
  readonly resolve: (i: bigint) => void
  readonly reject: (e: unknown) => void
}

function codeOf(e: unknown): string {
  if (e instanceof BaseError && /^[A-Z0-9_]{1,64}$/.test(e.code)) return e.code
  return 'LOG_BUILD_FAILED'
}

/**
 * Open (or create) a log directory for writing with `key`. An existing
 * directory must be this key's (its key file), and is recovered first
 * (torn tail discarded, tiles repaired).
 */
export async function createLogWriter(o: LogWriterOptions): Promise<LogWriter> {
  const now = o.now ?? Date.now
  const maxBatch = o.maxBatch ?? 4096
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new LogError('LOG_OPTIONS_INVALID', 'maxBatch must be a positive integer')
  const vkey = formatVerifierKey(o.key.origin, o.key.publicKey)
  try {
    await stat(join(o.dir, KEY_FILE))
  } catch {
    await writeFileAtomic(join(o.dir, KEY_FILE), `${vkey}\n`, true)
  }
  const recovered = await recoverLogDirectory(o.dir, o.hooks)
  // Compared whether the key file was there or just written: a fresh one holds this key, so only another log's fails.
  if (Buffer.compare(recovered.publicKey, o.key.publicKey) !== 0) {
    throw new LogError('LOG_OPTIONS_INVALID', 'the log directory belongs to another log key', { details: { dir: o.dir } })
  }
  // A torn tail was never acknowledged; the operator still hears of it.
  if (recovered.tornTail) o.onError?.(recovered.tornTail)
  // Recovery has written (and drained) every tile of the recovered tree: later batches emit only what they change.
  let tree: TreeBuilder = recovered.tree
  let checkpoint = recovered.checkpoint
  const journal: JournalFile = await openJournal(o.dir, o.hooks)
  let nextIndex = tree.size
  let queue: Pending[] = []
  let running: Promise<void> | null = null
  let failed: LogError | null = null
  let closed = false

  async function writeBatch(batch: Pending[]): Promise<void> {
    const entries: Uint8Array[] = []
    const outcomes: (unknown | null)[] = []
    for (const p of batch) {
      try {
        const e = await p.entry
        if (!(e instanceof Uint8Array) || e.length > MAX_ENTRY_SIZE) throw new LogError('LOG_ENTRY_TOO_LARGE', 'an entry is 0..65535 bytes')
        entries.push(e)
        outcomes.push(null)
      } catch (err) {
        entries.push(encodeEntry({ type: 'void', time: now(), reason: codeOf(err) }))
        outcomes.push(err ?? new LogError('LOG_WRITE_FAILED', 'build failed'))
      }
    }
    const next = tree.clone()
    const first = next.size
    next.append(entries)
    const note = signCheckpoint({ origin: o.key.origin, size: next.size, root: next.root(), extensions: [] }, o.key.publicKey, o.key.privateKey)
    await journal.append(encodeJournalRecord(first, entries, note))
    // Durable: from here the batch is acknowledged whatever happens to the derived files.
    tree = next
    checkpoint = note
    try {
      await writeTiles(o.dir, tree.takeChangedTiles(), o.hooks)
      o.hooks?.beforeWrite?.('checkpoint')
      await writeFileAtomic(join(o.dir, CHECKPOINT_FILE), note, false)
    } catch (e) {
      o.onError?.(e)
    }
    batch.forEach((p, i) => (outcomes[i] === null ? p.resolve(BigInt(p.index)) : p.reject(outcomes[i])))
  }

  function pump(): Promise<void> {
    running ??= (async () => {
      // Let appends issued in the same tick join the first batch.
      await new Promise<void>((r) => setImmediate(r))
      while (queue.length > 0) {
        const batch = queue.slice(0, maxBatch)
        queue = queue.slice(batch.length)
        if (failed) {
          for (const p of batch) p.reject(failed)
          continue
        }
        try {
          await writeBatch(batch)
        } catch (e) {
          failed = e instanceof LogError ? e : new LogError('LOG_WRITE_FAILED', 'a log batch could not be made durable', { cause: e })
          for (const p of batch) p.reject(failed)
        }
      }
    })().finally(() => {
      running = null
      if (queue.length > 0) void pump()
    })
    return running
  }

  function enqueue(build: (index: bigint) => Uint8Array | Promise<Uint8Array>): Promise<bigint> {
    if (closed) return Promise.reject(new LogError('LOG_WRITER_CLOSED', 'the log writer is closed'))
    if (failed) return Promise.reject(failed)
    const index = nextIndex++
    return new Promise<bigint>((resolve, reject) => {
      let entry: Uint8Array | Promise<Uint8Array>
      try {
        entry = build(BigInt(index))
      } catch (e) {
        entry = Promise.reject(e)
      }
      if (entry instanceof Promise) entry.catch(() => {})
      queue.push({ index, entry, resolve, reject })
      void pump()
    })
  }

  return {
    dir: o.dir,
    logId: o.key.logId,
    publicKey: o.key.publicKey,
    origin: o.key.origin,
    get size() {
      return tree.size
    },
    get checkpoint() {
      return checkpoint
    },
    now,
    append: enqueue,
    appendEntry: (entry) => enqueue(() => entry),
    async putBlob(bytes) {
      if (closed) throw new LogError('LOG_WRITER_CLOSED', 'the log writer is closed')
      return writeBlob(o.dir, bytes, o.hooks)
    },
    async flush() {
      while (running || queue.length > 0) await (running ?? pump())
    },
    async close() {
      if (closed) return
      closed = true
      while (running || queue.length > 0) await (running ?? pump())
      await journal.close()
    },
  }
}
