/**
 * The log's journal: the one durable source of truth of a log directory.
 * Each group-commit batch is one record, appended with one write and made
 * durable with one fdatasync before any append of the batch is
 * acknowledged:
 *
 *   "CGWJ" ‖ u32 payload length ‖ payload ‖ SHA-256(magic ‖ length ‖ payload)
 *   payload = u64 first index ‖ u32 count ‖ count × (u32 length ‖ entry)
 *             ‖ u32 note length ‖ signed checkpoint note of size first+count
 *
 * A record cut short by a crash (process kill, power loss) fails its length
 * or checksum and is discarded on reopen (LOG_TORN_TAIL): it was never
 * acknowledged, since acknowledgement waits for the fdatasync. Only the
 * TAIL can be torn: records are written one at a time, each made durable
 * before the next is written, so an invalid record with any valid record
 * after it is damage to acknowledged data, never a crash artefact. The scan
 * then fails with LOG_STORAGE_CORRUPT instead of truncating — truncating
 * there would drop acknowledged entries and hand their indices out again,
 * rewriting published history. (storage.ts also refuses a tail that the
 * published checkpoint says was acknowledged.) Tiles, the `checkpoint`
 * file and entry bundles are derived from the journal and regenerated on
 * reopen, so a torn tile is repaired rather than served.
 */
import { createHash } from 'node:crypto'
import { LogError } from '../../attestation/log/errors.ts'

const MAGIC = Buffer.from('CGWJ', 'latin1')
const HEADER = 8
const CHECKSUM = 32

export interface JournalBatch {
  readonly firstIndex: number
  readonly entries: readonly Uint8Array[]
  /** The signed checkpoint note covering first+count entries. */
  readonly checkpoint: string
  /** Byte offset of the record's end in the journal. */
  readonly end: number
}

/** Encode one batch as a journal record. */
export function encodeJournalRecord(firstIndex: number, entries: readonly Uint8Array[], checkpoint: string): Buffer {
  const note = Buffer.from(checkpoint, 'utf8')
  let len = 8 + 4 + 4 + note.length
  for (const e of entries) len += 4 + e.length
  const out = Buffer.allocUnsafe(HEADER + len + CHECKSUM)
  MAGIC.copy(out, 0)
  out.writeUInt32BE(len, 4)
  let o = HEADER
  out.writeBigUInt64BE(BigInt(firstIndex), o)
  o += 8
  out.writeUInt32BE(entries.length, o)
  o += 4
  for (const e of entries) {
    out.writeUInt32BE(e.length, o)
    out.set(e, o + 4)
    o += 4 + e.length
  }
  out.writeUInt32BE(note.length, o)
  note.copy(out, o + 4)
  o += 4 + note.length
  createHash('sha256').update(out.subarray(0, o)).digest().copy(out, o)
  return out
}

export interface JournalScan {
  readonly batches: readonly JournalBatch[]
  /** Bytes of complete, valid records; a torn tail is truncated to this. */
  readonly validLength: number
  /** Bytes after the last valid record (a torn tail), 0 when none. */
  readonly tornBytes: number
}

/**
 * Read every complete record. Parsing stops at the first record that is
 * truncated, fails its checksum or does not continue the index sequence.
 * What follows is a torn tail only when no valid record (of any index) can
 * be found anywhere in it; otherwise throws LOG_STORAGE_CORRUPT (module
 * header), details `{ offset, size, validRecordAt }`.
 */
export function scanJournal(bytes: Uint8Array): JournalScan {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const batches: JournalBatch[] = []
  let o = 0
  let next = 0
  while (o < b.length) {
    const rec = readRecord(b, o, next)
    if (rec === null) break
    batches.push(rec)
    next = rec.firstIndex + rec.entries.length
    o = rec.end
  }
  if (o < b.length) {
    const later = findValidRecord(b, o)
    if (later !== null) {
      throw corrupt('a journal record is damaged and valid records follow it: acknowledged entries would be lost', { offset: o, size: next, validRecordAt: later })
    }
  }
  return { batches, validLength: o, tornBytes: b.length - o }
}

/**
 * The offset of the first checksummed, well-formed record at or after
 * `from`, whatever its index (an out-of-sequence record is damage too), or
 * null. Linear in the tail; runs only on reopen after an invalid record.
 */
function findValidRecord(b: Buffer, from: number): number | null {
  for (let p = b.indexOf(MAGIC, from); p >= 0; p = b.indexOf(MAGIC, p + 1)) {
    if (readRecord(b, p, null) !== null) return p
  }
  return null
}

/** The record at `at`, or null when it is incomplete, fails its checksum or framing, or (with `expectedFirst`) is out of sequence. */
function readRecord(b: Buffer, at: number, expectedFirst: number | null): JournalBatch | null {
  if (at + HEADER > b.length || !b.subarray(at, at + 4).equals(MAGIC)) return null
  const len = b.readUInt32BE(at + 4)
  const end = at + HEADER + len + CHECKSUM
  if (end > b.length || len < 16) return null
  const sum = createHash('sha256').update(b.subarray(at, at + HEADER + len)).digest()
  if (!sum.equals(b.subarray(at + HEADER + len, end))) return null
  let o = at + HEADER
  const limit = at + HEADER + len
  const first = b.readBigUInt64BE(o)
  o += 8
  if (expectedFirst !== null && first !== BigInt(expectedFirst)) return null
  const count = b.readUInt32BE(o)
  o += 4
  const entries: Uint8Array[] = []
  for (let i = 0; i < count; i++) {
    if (o + 4 > limit) return null
    const n = b.readUInt32BE(o)
    if (o + 4 + n > limit) return null
    entries.push(new Uint8Array(b.subarray(o + 4, o + 4 + n)))
    o += 4 + n
  }
  if (o + 4 > limit) return null
  const noteLen = b.readUInt32BE(o)
  if (o + 4 + noteLen !== limit) return null
  const checkpoint = b.subarray(o + 4, limit).toString('utf8')
  return { firstIndex: Number(first), entries, checkpoint, end }
}

/** The typed error for a journal whose acknowledged part is unusable. */
export function corrupt(message: string, details: Record<string, unknown>): LogError {
  return new LogError('LOG_STORAGE_CORRUPT', message, { details })
}
