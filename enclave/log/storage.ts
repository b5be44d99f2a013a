/**
 * A log directory on disk (`<dataDir>/<logId hex>/`):
 *
 *   journal              the durable truth (enclave/log/journal.ts)
 *   key                  the signed-note verifier key of the log (public)
 *   checkpoint           the latest signed checkpoint (atomic rename)
 *   tile/<L>/<N>[.p/<W>] hash tiles, tile/entries/<N>[.p/<W>] entry bundles (C2SP tlog-tiles)
 *   blob/<sha256 hex>    public artifacts entries refer to (durable before the entry)
 *
 * `recoverLogDirectory` brings a directory to the state of its journal:
 * checks every batch's checkpoint against the recomputed tree, checks that
 * the published `checkpoint` is one the journal still holds, then
 * truncates a torn tail (never acknowledged) and rewrites any tile or
 * checkpoint file that is missing or differs. Every check runs before the
 * truncation, so a journal found corrupt is left exactly as it was for the
 * operator. Every file but the journal and blobs is written by rename, so
 * a reader never sees half a tile.
 *
 * The published checkpoint is the acknowledged size as far as the disk can
 * tell: it is written only after the journal record it names is durable.
 * A valid, signed `checkpoint` naming a tree the journal no longer holds
 * means acknowledged records were lost (e.g. the last record damaged,
 * which alone would look like a torn tail): LOG_STORAGE_CORRUPT. One that
 * does not parse or verify is a derived file lost in a crash (it is not
 * fsynced) and is regenerated.
 */
import { randomBytes, createHash } from 'node:crypto'
import { mkdir, open, readFile, rename, rm, type FileHandle } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { LogError } from '../../attestation/log/errors.ts'
import { hashEqual } from '../../attestation/log/hash.ts'
import { parseSignedCheckpoint, verifyCheckpoint } from '../../attestation/log/checkpoint.ts'
import { parseVerifierKey } from '../../attestation/log/note.ts'
import { tilePath, TILE_WIDTH } from '../../attestation/log/tile.ts'
import { createTreeBuilder, type TileContent, type TreeBuilder } from '../../attestation/log/tree-builder.ts'
import { scanJournal } from './journal.ts'

export const JOURNAL_FILE = 'journal'
export const KEY_FILE = 'key'
export const CHECKPOINT_FILE = 'checkpoint'
export const BLOB_DIR = 'blob'

/** Which write is about to happen (crash tests kill the writer at any of these). */
export type WriteStep = 'blob' | 'blob-rename' | 'journal' | 'journal-half' | 'journal-sync' | 'tile' | 'checkpoint' | 'truncate'

export interface StorageHooks {
  /** Called before every write, rename and sync, in order. */
  readonly beforeWrite?: (step: WriteStep) => void
  /** Write each journal record in two halves (with a 'journal-half' step between): crash tests use it to leave a torn record. */
  readonly splitJournalWrites?: boolean
}

const step = (hooks: StorageHooks | undefined, s: WriteStep) => hooks?.beforeWrite?.(s)

function writeFailed(what: string, cause: unknown): LogError {
  return new LogError('LOG_WRITE_FAILED', `log ${what} write failed`, { cause, details: { what } })
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r')
  try {
    await h.sync()
  } finally {
    await h.close()
  }
}

/**
 * Write `bytes` to `path` by rename; with `durable`, fsync the file and its
 * directory. `beforeRename` runs once the temporary file is complete, just
 * before the rename (writeBlob's crash-test step).
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array | string, durable: boolean, beforeRename?: () => void): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`
  const h = await open(tmp, 'w')
  try {
    await h.writeFile(bytes)
    if (durable) await h.sync()
  } finally {
    await h.close()
  }
  beforeRename?.()
  await rename(tmp, path)
  if (durable) await fsyncDir(dirname(path))
}

/** Store a blob durably under its SHA-256 (idempotent); returns the hex digest. */
export async function writeBlob(dir: string, bytes: Uint8Array, hooks?: StorageHooks): Promise<string> {
  const sha = createHash('sha256').update(bytes).digest('hex')
  const path = join(dir, BLOB_DIR, sha)
  try {
    const existing = await readFile(path)
    if (createHash('sha256').update(existing).digest('hex') === sha) return sha
  } catch {
    // Not there yet (or unreadable): write it.
  }
  try {
    step(hooks, 'blob')
    await writeFileAtomic(path, bytes, true, () => step(hooks, 'blob-rename'))
  } catch (e) {
    throw e instanceof LogError ? e : writeFailed('blob', e)
  }
  return sha
}

/** Write derived tiles (no fsync: regenerated from the journal on reopen); a full tile retires its partials. */
export async function writeTiles(dir: string, tiles: readonly TileContent[], hooks?: StorageHooks): Promise<void> {
  for (const t of tiles) {
    step(hooks, 'tile')
    const path = join(dir, tilePath(t.coordinates))
    await writeFileAtomic(path, t.bytes, false)
    if (t.coordinates.width === TILE_WIDTH) await rm(`${path}.p`, { recursive: true, force: true })
  }
}

/** The open journal, appending records with one write and one fdatasync each. */
export interface JournalFile {
  append(record: Uint8Array): Promise<void>
  close(): Promise<void>
}

export async function openJournal(dir: string, hooks?: StorageHooks): Promise<JournalFile> {
  await mkdir(dir, { recursive: true })
  let h: FileHandle | null = await open(join(dir, JOURNAL_FILE), 'a')
  await fsyncDir(dir)
  return {
    async append(record) {
      if (h === null) throw new LogError('LOG_WRITER_CLOSED', 'the journal is closed')
      try {
        if (hooks?.splitJournalWrites) {
          const half = Math.floor(record.length / 2)
          step(hooks, 'journal')
          await h.write(record.subarray(0, half))
          step(hooks, 'journal-half')
          await h.write(record.subarray(half))
        } else {
          step(hooks, 'journal')
          await h.write(record)
        }
        step(hooks, 'journal-sync')
        await h.datasync()
      } catch (e) {
        throw writeFailed('journal', e)
      }
    },
    async close() {
      const x = h
      h = null
      await x?.close()
    },
  }
}

export interface RecoveredLog {
  readonly dir: string
  readonly size: number
  /** The latest signed checkpoint (null for an empty log). */
  readonly checkpoint: string | null
  readonly publicKey: Uint8Array
  /** Bytes of torn journal tail discarded, 0 when none. */
  readonly tornBytes: number
  /** LOG_TORN_TAIL (details: bytes, offset) when a torn tail was discarded, else null: for the operator's log. */
  readonly tornTail: LogError | null
  /** Tiles rewritten because they were missing or differed. */
  readonly repairedTiles: number
  readonly tree: TreeBuilder
}

async function readOptional(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw new LogError('LOG_FETCH_FAILED', 'cannot read a log file', { cause: e, details: { path } })
  }
}

/**
 * Bring `dir` to the state of its journal (module header). Throws
 * LOG_STORAGE_CORRUPT when a damaged record has valid records after it,
 * when an acknowledged batch's checkpoint does not match the tree or its
 * signature, or when the published checkpoint names a tree the journal
 * does not hold; LOG_FETCH_FAILED when the key file is missing. Nothing is
 * written before those checks pass.
 */
export async function recoverLogDirectory(dir: string, hooks?: StorageHooks): Promise<RecoveredLog> {
  const keyText = await readOptional(join(dir, KEY_FILE))
  if (keyText === null) throw new LogError('LOG_FETCH_FAILED', 'the log directory has no key file', { details: { dir } })
  const { publicKey } = parseVerifierKey(keyText.toString('utf8').trim())
  const journal = (await readOptional(join(dir, JOURNAL_FILE))) ?? Buffer.alloc(0)
  const scan = scanJournal(journal)
  const publishedText = (await readOptional(join(dir, CHECKPOINT_FILE)))?.toString('utf8') ?? null
  let published: { size: number; matched: boolean } | null = null
  if (publishedText !== null) {
    try {
      published = { size: verifyCheckpoint(publishedText, publicKey).size, matched: false }
    } catch {
      // Not a valid signed checkpoint: a derived file lost in a crash, regenerated below.
    }
  }
  const tree = createTreeBuilder()
  let checkpoint: string | null = null
  scan.batches.forEach((b, k) => {
    tree.append(b.entries)
    let c
    try {
      // Records are checksummed; the signature is checked on the last one (the one served), the roots on all.
      c = k === scan.batches.length - 1 ? verifyCheckpoint(b.checkpoint, publicKey) : parseSignedCheckpoint(b.checkpoint).checkpoint
    } catch (cause) {
      throw new LogError('LOG_STORAGE_CORRUPT', 'a journal checkpoint does not verify', { cause, details: { size: tree.size } })
    }
    if (c.size !== tree.size || !hashEqual(c.root, tree.root())) {
      throw new LogError('LOG_STORAGE_CORRUPT', 'a journal checkpoint does not match its entries', { details: { size: tree.size } })
    }
    if (published !== null && published.size === tree.size && b.checkpoint === publishedText) published.matched = true
    checkpoint = b.checkpoint
  })
  if (published !== null && !published.matched) {
    throw new LogError('LOG_STORAGE_CORRUPT', 'the published checkpoint names a tree the journal does not hold: acknowledged entries are missing', {
      details: { publishedSize: published.size, journalSize: tree.size, tornBytes: scan.tornBytes },
    })
  }
  if (scan.tornBytes > 0) {
    step(hooks, 'truncate')
    const h = await open(join(dir, JOURNAL_FILE), 'r+')
    try {
      await h.truncate(scan.validLength)
      await h.sync()
    } finally {
      await h.close()
    }
  }
  let repaired = 0
  for (const t of tree.takeChangedTiles()) {
    const path = join(dir, tilePath(t.coordinates))
    const existing = await readOptional(path)
    if (existing === null || !existing.equals(t.bytes)) {
      repaired++
      await writeTiles(dir, [t], hooks)
    }
  }
  // publishedText is still the file's content: nothing above writes the checkpoint file.
  if (checkpoint !== null && publishedText !== checkpoint) {
    step(hooks, 'checkpoint')
    await writeFileAtomic(join(dir, CHECKPOINT_FILE), checkpoint, false)
  }
  const tornTail =
    scan.tornBytes > 0
      ? new LogError('LOG_TORN_TAIL', 'an unacknowledged, incomplete journal record was discarded', { details: { bytes: scan.tornBytes, offset: scan.validLength } })
      : null
  return { dir, size: tree.size, checkpoint, publicKey, tornBytes: scan.tornBytes, tornTail, repairedTiles: repaired, tree }
}

