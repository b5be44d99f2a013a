/**
 * The right edge of a growing tlog-tiles tree: the current partial tile at
 * every level and the current partial entry bundle, which is all a writer
 * needs in memory (at most 256 hashes per level) to emit every new tile and
 * compute every new root. Full tiles are handed out once, when they
 * complete, and forgotten. Pure (no I/O): the writer persists what it emits,
 * and the reader side uses it to regenerate tiles from entries.
 */
import { leafHash, nodeHash } from './hash.ts'
import { treeRoot, type SubtreeHashes } from './merkle.ts'
import { encodeEntryBundle, TILE_HEIGHT, TILE_WIDTH, type TileCoordinates } from './tile.ts'

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
  changed: Map<string, TileContent>
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
    const bytes = level === 'entries' ? encodeEntryBundle(items) : new Uint8Array(Buffer.concat(items))
    s.changed.set(key(coordinates), { coordinates, bytes })
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
  const nodes: SubtreeHashes = (height, index) => {
    const level = Math.floor(height / TILE_HEIGHT)
    const rest = height % TILE_HEIGHT
    const row = s.levelHashes[level]!
    const start = Math.floor(s.levelCounts[level]! / TILE_WIDTH) * TILE_WIDTH
    const span = 2 ** rest
    const from = index * span - start
    return mth(row.slice(from, from + span))
  }
  return {
    get size() {
      return s.size
    },
    append(entries) {
      const out: Uint8Array[] = []
      for (const e of entries) {
        const h = leafHash(e)
        out.push(h)
        s.entries.push(e)
        mark('entries', Math.floor(s.size / TILE_WIDTH), s.entries)
        if (s.entries.length === TILE_WIDTH) s.entries = []
        s.size++
        pushHash(0, h)
      }
      return out
    },
    root() {
      return treeRoot(nodes, s.size)
    },
    takeChangedTiles() {
      const out = [...s.changed.values()]
      s.changed.clear()
      return out
    },
    clone() {
      return make({
        size: s.size,
        levelHashes: s.levelHashes.map((r) => r.slice()),
        levelCounts: s.levelCounts.slice(),
        entries: s.entries.slice(),
        changed: new Map(s.changed),
      })
    },
  }
}

/** An empty tree. */
export function createTreeBuilder(): TreeBuilder {
  return make({ size: 0, levelHashes: [], levelCounts: [], entries: [], changed: new Map() })
}

