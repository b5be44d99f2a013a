/**
 * Client-side proofs against a published log: fetch the checkpoint, verify
 * its signature by the log key, fetch only the tiles a proof needs, and
 * compute the RFC 6962 audit path (or consistency proof) — then verify it
 * with the independent RFC 9162 algorithm, so a consumer holding a receipt
 * can prove later that it was logged.
 */
import { LogError, logError } from './errors.ts'
import { hashEqual, leafHash } from './hash.ts'
import { consistencyProof, inclusionProof, treeRoot, verifyConsistency, verifyInclusion, type SubtreeHashes } from './merkle.ts'
import { verifyCheckpoint, type Checkpoint } from './checkpoint.ts'
import { readEntryBundle, readHashTile, type LogSource } from './reader.ts'
import { subtreeHashesFromTiles, tileFor, TILE_WIDTH } from './tile.ts'

/** The latest checkpoint of `source`, verified with the log public key. */
export async function fetchCheckpoint(source: LogSource, publicKey: Uint8Array): Promise<{ checkpoint: Checkpoint; note: string }> {
  const bytes = await source.read('checkpoint')
  if (bytes === null) throw new LogError('LOG_FETCH_FAILED', 'the log has no checkpoint', { details: { location: source.location } })
  const note = Buffer.from(bytes).toString('utf8')
  return { checkpoint: verifyCheckpoint(note, publicKey), note }
}

class NeedTile {
  constructor(readonly level: number, readonly index: number, readonly width: number) {}
}

/**
 * Run a pure computation over subtree hashes of a tree of `size`, loading
 * the hash tiles it asks for on demand (each tile once).
 */
export async function withTileHashes<T>(source: LogSource, size: number, compute: (nodes: SubtreeHashes) => T): Promise<T> {
  const tiles = new Map<string, Uint8Array[]>()
  const hashAt = (level: number, i: number): Uint8Array => {
    const c = tileFor(level, i, size)
    const t = tiles.get(`${level}/${c.index}`)
    if (!t) throw new NeedTile(level, c.index, c.width)
    return t[i - c.index * TILE_WIDTH]!
  }
  const nodes = subtreeHashesFromTiles(hashAt)
  for (let attempts = 0; attempts < 10_000; attempts++) {
    try {
      return compute(nodes)
    } catch (e) {
      if (!(e instanceof NeedTile)) throw e
      tiles.set(`${e.level}/${e.index}`, await readHashTile(source, e.level, e.index, e.width))
    }
  }
  return logError('LOG_FETCH_FAILED', 'too many tiles for one proof')
}

export interface InclusionProof {
  readonly index: number
  readonly size: number
  /** The checkpoint (signed note) the proof is against. */
  readonly checkpoint: string
  readonly root: Uint8Array
  readonly entry: Uint8Array
  readonly leafHash: Uint8Array
  /** RFC 6962 §2.1.1 audit path, leaf side first. */
  readonly proof: readonly Uint8Array[]
}

/**
 * Prove that entry `index` is in the log: verified checkpoint, the entry
 * from its bundle, the audit path from the hash tiles, checked against the
 * checkpoint root (throws LOG_INCLUSION_PROOF_INVALID / LOG_ROOT_MISMATCH).
 */
export async function proveInclusion(source: LogSource, publicKey: Uint8Array, index: number): Promise<InclusionProof> {
  const { checkpoint, note } = await fetchCheckpoint(source, publicKey)
  if (!Number.isSafeInteger(index) || index < 0 || index >= checkpoint.size) {
    logError('LOG_INDEX_OUT_OF_RANGE', 'the index is not in the latest checkpoint', { index, size: checkpoint.size })
  }
  const c = tileFor('entries', index, checkpoint.size)
  const entry = (await readEntryBundle(source, c.index, c.width))[index - c.index * TILE_WIDTH]!
  const leaf = leafHash(entry)
  const { proof, root } = await withTileHashes(source, checkpoint.size, (nodes) => ({
    proof: inclusionProof(nodes, index, checkpoint.size),
    root: treeRoot(nodes, checkpoint.size),
  }))
  if (!hashEqual(root, checkpoint.root)) throw new LogError('LOG_ROOT_MISMATCH', 'the hash tiles do not have the checkpoint root', { details: { size: checkpoint.size } })
  verifyInclusion(index, checkpoint.size, leaf, proof, checkpoint.root)
  return { index, size: checkpoint.size, checkpoint: note, root: checkpoint.root, entry, leafHash: leaf, proof }
}

/** JSON form of an inclusion proof (what `/log/proof/<index>` serves). */
export interface InclusionProofJson {
  readonly index: number
  readonly size: number
  readonly checkpoint: string
  /** Base64 entry bytes. */
  readonly entry: string
  /** Base64 hashes, leaf side first. */
  readonly proof: readonly string[]
}

export function inclusionProofToJson(p: InclusionProof): InclusionProofJson {
  return {
    index: p.index,
    size: p.size,
    checkpoint: p.checkpoint,
    entry: Buffer.from(p.entry).toString('base64'),
    proof: p.proof.map((h) => Buffer.from(h).toString('base64')),
  }
}

/**
 * Check a JSON inclusion proof offline: the checkpoint's signature by the
 * log key, then the audit path of the entry to its root. Returns the
 * verified checkpoint and entry bytes.
 */
export function verifyInclusionProofJson(p: InclusionProofJson, publicKey: Uint8Array): { checkpoint: Checkpoint; entry: Uint8Array } {
  const checkpoint = verifyCheckpoint(p.checkpoint, publicKey)
  if (p.size !== checkpoint.size) logError('LOG_INCLUSION_PROOF_INVALID', 'proof size is not the checkpoint size')
  const entry = new Uint8Array(Buffer.from(p.entry, 'base64'))
  const proof = p.proof.map((h) => new Uint8Array(Buffer.from(h, 'base64')))
  verifyInclusion(p.index, checkpoint.size, leafHash(entry), proof, checkpoint.root)
  return { checkpoint, entry }
}

/** A consistency proof between two sizes of the log, from its hash tiles, verified against both roots. */
export async function proveConsistency(
  source: LogSource,
  oldSize: number,
  oldRoot: Uint8Array,
  newSize: number,
  newRoot: Uint8Array,
): Promise<Uint8Array[]> {
  const proof = await withTileHashes(source, newSize, (nodes) => consistencyProof(nodes, oldSize, newSize))
  verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof)
  return proof
}

