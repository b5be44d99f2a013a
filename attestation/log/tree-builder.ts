/**
 * The right edge of a growing tlog-tiles tree: the current partial tile at
 * every level and the current partial entry bundle, which is all a writer
 * needs in memory (at most 256 hashes per level) to emit every new tile and
 * compute every new root. Full tiles are handed out once, when they
 * complete, and forgotten. Pure (no I/O): the writer persists what it emits,
 * and the reader side uses it to regenerate tiles from entries.
 *
 * The root comes from a compact range (the perfect subtrees the tree
 * decomposes into, largest first), kept up to date on every append with
 * amortised one node hash per leaf: the writer asks for a root per batch
 * and recovery per journal batch, and recomputing it from the partial
 * tiles re-hashed up to 255 nodes per level each time. Changed tiles are
 * remembered as (items, width) and encoded once, when taken: a batch
 * touches the same partial tile up to 256 times.
 */
import { EMPTY_ROOT, leafHash, nodeHash } from './hash.ts'
import { encodeEntryBundle, MAX_ENTRY_SIZE, TILE_WIDTH, type TileCoordinates } from './tile.ts'
import { logError } from './errors.ts'

export interface TileContent {
  readonly coordinates: TileCoordinates
  readonly bytes: Uint8Array
}

export interface TreeBuilder {
  readonly size: number
  /** Append entries; returns their leaf hashes. */
  append(entries: readonly Uint8Array[]): Uint8Array[]
  /** The root of the tree as it stands (RFC 6962 §2.1). */
  root(): Uint8Array
  /**
   * Tiles changed since the last call: every tile that completed (full) and
   * the current partial tile of every level that grew; oldest first.
   */
  takeChangedTiles(): TileContent[]
  /** Independent copy (for a tentative batch that may fail before it is durable). */
  clone(): TreeBuilder
}

interface State {
  size: number
  /** levelHashes[L]: hashes of height 8·L in the current partial tile of level L. */
  levelHashes: Uint8Array[][]
  /** Node counts at each level (so the partial tile index is floor(count/256)). */
  levelCounts: number[]
  entries: Uint8Array[]
  /**
   * The compact range of the tree: perfect subtrees (hash h, n leaves)
   * covering [0, size) left to right, n strictly decreasing (RFC 6962
   * §2.1: MTH splits at the largest power of two below the size, so the
   * root is these subtrees folded from the right).
   */
  edge: Edge[]
  changed: Map<string, Pending>
}

interface Edge {
  readonly h: Uint8Array
  readonly n: number
}

/**
 * A changed tile not yet encoded: the first `width` of `items`. The arrays
 * only grow until full and are then replaced, never edited, so the prefix
 * read at take time is the one marked (in a clone too).
 */
interface Pending {
  readonly coordinates: TileCoordinates
  readonly items: readonly Uint8Array[]
}

function mth(hashes: readonly Uint8Array[]): Uint8Array {
  let row = hashes.slice()
  while (row.length > 1) {
    const next: Uint8Array[] = []
    for (let i = 0; i + 1 < row.length; i += 2) next.push(nodeHash(row[i]!, row[i + 1]!))
    row = next
  }
  return row[0]!
}

function key(c: TileCoordinates): string {
  return `${c.level}/${c.index}`
}

function make(s: State): TreeBuilder {
  const mark = (level: number | 'entries', index: number, items: readonly Uint8Array[]) => {
    const coordinates: TileCoordinates = { level, index, width: items.length }
    s.changed.set(key(coordinates), { coordinates, items })
  }
  const pushHash = (level: number, h: Uint8Array) => {
    if (s.levelHashes[level] === undefined) {
      s.levelHashes[level] = []
      s.levelCounts[level] = 0
    }
    const row = s.levelHashes[level]!
    row.push(h)
    s.levelCounts[level]!++
    const index = Math.floor((s.levelCounts[level]! - 1) / TILE_WIDTH)
    mark(level, index, row)
    if (row.length === TILE_WIDTH) {
      s.levelHashes[level] = []
      pushHash(level + 1, mth(row))
    }
  }
  return {
    get size() {
      return s.size
    },
    append(entries) {
      // Checked before any state changes (tiles are encoded later, in takeChangedTiles): a too-large entry leaves the tree as it was.
      for (const e of entries) {
        if (e.length > MAX_ENTRY_SIZE) logError('LOG_ENTRY_TOO_LARGE', 'entry exceeds 65535 bytes', { size: e.length })
      }
      const out: Uint8Array[] = []
      for (const e of entries) {
        const h = leafHash(e)
        out.push(h)
        s.edge.push({ h, n: 1 })
        while (s.edge.length >= 2 && s.edge[s.edge.length - 2]!.n === s.edge[s.edge.length - 1]!.n) {
          const right = s.edge.pop()!
          const left = s.edge.pop()!
          s.edge.push({ h: nodeHash(left.h, right.h), n: left.n + right.n })
        }
        s.entries.push(e)
        mark('entries', Math.floor(s.size / TILE_WIDTH), s.entries)
        if (s.entries.length === TILE_WIDTH) s.entries = []
        s.size++
        pushHash(0, h)
      }
      return out
    },
    root() {
      if (s.edge.length === 0) return EMPTY_ROOT
      let r = s.edge[s.edge.length - 1]!.h
      for (let i = s.edge.length - 2; i >= 0; i--) r = nodeHash(s.edge[i]!.h, r)
      return r
    },
    takeChangedTiles() {
      const out: TileContent[] = []
      for (const { coordinates, items } of s.changed.values()) {
        const slice = items.slice(0, coordinates.width)
        out.push({ coordinates, bytes: coordinates.level === 'entries' ? encodeEntryBundle(slice) : new Uint8Array(Buffer.concat(slice)) })
      }
      s.changed.clear()
      return out
    },
    clone() {
      return make({
        size: s.size,
        levelHashes: s.levelHashes.map((r) => r.slice()),
        levelCounts: s.levelCounts.slice(),
        entries: s.entries.slice(),
        edge: s.edge.slice(),
        changed: new Map(s.changed),
      })
    },
  }
}

/** An empty tree. */
export function createTreeBuilder(): TreeBuilder {
  return make({ size: 0, levelHashes: [], levelCounts: [], entries: [], edge: [], changed: new Map() })
}

