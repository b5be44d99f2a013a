/**
 * C2SP tlog-tiles: tile coordinates, paths and contents.
 *
 * - Tiles have height 8 (`TILE_HEIGHT`): a full tile holds 256 hashes
 *   (tlog-tiles "Merkle Tree hashes": the tile at level L, index N holds the
 *   tree nodes at height 8·L with indices N·256 … N·256+255).
 * - A partial tile of width W (1..255) is served at `<path>.p/<W>`.
 * - The index N is written as 3-digit groups, every group but the last
 *   prefixed with `x` (tlog-tiles "x001/x234/067").
 * - Hash tiles: `tile/<L>/<N>[.p/<W>]`; entry bundles:
 *   `tile/entries/<N>[.p/<W>]`, each entry prefixed with its big-endian
 *   uint16 length (tlog-tiles "Log entries").
 * Pure functions: no I/O.
 */
import { HASH_SIZE, nodeHash } from './hash.ts'
import { logError } from './errors.ts'
import type { SubtreeHashes } from './merkle.ts'

/** tlog-tiles: tile height 8, so 256 hashes (or entries) per full tile. */
export const TILE_HEIGHT = 8
export const TILE_WIDTH = 1 << TILE_HEIGHT
/** tlog-tiles "Log entries": uint16 length prefix, so an entry is at most 65535 bytes. */
export const MAX_ENTRY_SIZE = 0xffff

export interface TileCoordinates {
  /** Hash tile level (height 8·level), or 'entries' for an entry bundle. */
  readonly level: number | 'entries'
  readonly index: number
  /** 1..256; 256 is a full tile (no `.p/` suffix). */
  readonly width: number
}

/** tlog-tiles: N as 3-digit groups, all but the last prefixed with `x`. */
export function encodeTileIndex(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) logError('LOG_OPTIONS_INVALID', 'tile index must be a non-negative integer', { index: n })
  const s = String(n)
  const padded = s.padStart(Math.ceil(s.length / 3) * 3, '0')
  const groups: string[] = []
  for (let i = 0; i < padded.length; i += 3) groups.push(padded.slice(i, i + 3))
  return groups.map((g, i) => (i < groups.length - 1 ? `x${g}` : g)).join('/')
}

/** The path of a tile, relative to the log's prefix. */
export function tilePath(c: TileCoordinates): string {
  if (!Number.isInteger(c.width) || c.width < 1 || c.width > TILE_WIDTH) logError('LOG_OPTIONS_INVALID', 'tile width must be 1..256', { width: c.width })
  const base = `tile/${c.level === 'entries' ? 'entries' : String(c.level)}/${encodeTileIndex(c.index)}`
  return c.width === TILE_WIDTH ? base : `${base}.p/${c.width}`
}

/** Parse a tile path (as served under the log prefix); strict: only the canonical spelling. */
export function parseTilePath(path: string): TileCoordinates {
  const bad = (): never => logError('LOG_TILE_PATH_INVALID', 'not a tlog-tiles tile path')
  const m = /^tile\/(entries|0|[1-9][0-9]{0,1})\/((?:x[0-9]{3}\/)*)([0-9]{3})(?:\.p\/([1-9][0-9]{0,2}))?$/.exec(path)
  if (!m) return bad()
  const level = m[1] === 'entries' ? 'entries' : Number(m[1])
  const groups = [...(m[2] ?? '').split('/').filter(Boolean).map((g) => g.slice(1)), m[3]!]
  // Canonical: no leading zero group (x000/…) — that would give one tile two names.
  if (groups.length > 1 && groups[0] === '000') return bad()
  const index = Number(groups.join(''))
  if (!Number.isSafeInteger(index)) return bad()
  const width = m[4] === undefined ? TILE_WIDTH : Number(m[4])
  if (width < 1 || width >= TILE_WIDTH + (m[4] === undefined ? 1 : 0)) return bad()
  return { level, index, width }
}

/** How many nodes of height 8·level a tree of `size` leaves has. */
export function nodesAtLevel(size: number, level: number): number {
  return Math.floor(size / 2 ** (TILE_HEIGHT * level))
}

/**
 * Every tile a tree of `size` leaves has (full and the one partial per
 * level), entry bundles included: what a reader fetches to rebuild it.
 */
export function tilesForSize(size: number): TileCoordinates[] {
  const out: TileCoordinates[] = []
  const add = (level: number | 'entries', count: number) => {
    for (let i = 0; i < Math.floor(count / TILE_WIDTH); i++) out.push({ level, index: i, width: TILE_WIDTH })
    if (count % TILE_WIDTH !== 0) out.push({ level, index: Math.floor(count / TILE_WIDTH), width: count % TILE_WIDTH })
  }
  add('entries', size)
  for (let level = 0; ; level++) {
    const count = nodesAtLevel(size, level)
    if (count === 0) break
    add(level, count)
  }
  return out
}

/** The tile (coordinates at `size`) holding the node of height 8·level, index `i`. */
export function tileFor(level: number | 'entries', i: number, size: number): TileCoordinates {
  const count = level === 'entries' ? size : nodesAtLevel(size, level)
  if (i >= count) logError('LOG_INDEX_OUT_OF_RANGE', 'node outside the tree', { level, index: i, size })
  const index = Math.floor(i / TILE_WIDTH)
  const width = Math.min(TILE_WIDTH, count - index * TILE_WIDTH)
  return { level, index, width }
}

/** Split a hash tile into its hashes, checking the size its width implies. */
export function parseHashTile(bytes: Uint8Array, width: number): Uint8Array[] {
  if (bytes.length !== width * HASH_SIZE) logError('LOG_TILE_MALFORMED', 'hash tile size does not match its width', { width, bytes: bytes.length })
  const out: Uint8Array[] = []
  for (let i = 0; i < width; i++) out.push(bytes.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE))
  return out
}

/** tlog-tiles entry bundle: each entry as big-endian uint16 length ‖ bytes. */
export function encodeEntryBundle(entries: readonly Uint8Array[]): Uint8Array {
  let total = 0
  for (const e of entries) {
    if (e.length > MAX_ENTRY_SIZE) logError('LOG_ENTRY_TOO_LARGE', 'entry exceeds 65535 bytes', { size: e.length })
    total += 2 + e.length
  }
  const out = new Uint8Array(total)
  let o = 0
  for (const e of entries) {
    out[o] = e.length >>> 8
    out[o + 1] = e.length & 0xff
    out.set(e, o + 2)
    o += 2 + e.length
  }
  return out
}

/** Parse an entry bundle; `width` (when given) must be its entry count exactly. */
export function parseEntryBundle(bytes: Uint8Array, width?: number): Uint8Array[] {
  const out: Uint8Array[] = []
  let o = 0
  while (o < bytes.length) {
    if (o + 2 > bytes.length) logError('LOG_TILE_MALFORMED', 'entry bundle ends inside a length prefix', { offset: o })
    const n = (bytes[o]! << 8) | bytes[o + 1]!
    if (o + 2 + n > bytes.length) logError('LOG_TILE_MALFORMED', 'entry bundle ends inside an entry', { offset: o })
    out.push(bytes.subarray(o + 2, o + 2 + n))
    o += 2 + n
  }
  if (width !== undefined && out.length !== width) logError('LOG_TILE_MALFORMED', 'entry bundle count does not match its width', { width, count: out.length })
  return out
}

/**
 * Perfect-subtree hashes read from hash tiles: heights that are multiples of
 * 8 are read directly, the others folded from the 2^(h mod 8) hashes below
 * them in one tile. `hashAt(level, index)` returns the tile hash.
 */
export function subtreeHashesFromTiles(hashAt: (level: number, index: number) => Uint8Array): SubtreeHashes {
  return (height, index) => {
    const level = Math.floor(height / TILE_HEIGHT)
    const rest = height % TILE_HEIGHT
    if (rest === 0) return hashAt(level, index)
    // The 2^rest hashes of height 8·level under this node, folded pairwise.
    const span = 2 ** rest
    let row: Uint8Array[] = []
    for (let i = 0; i < span; i++) row.push(hashAt(level, index * span + i))
    while (row.length > 1) {
      const next: Uint8Array[] = []
      for (let i = 0; i < row.length; i += 2) next.push(nodeHash(row[i]!, row[i + 1]!))
      row = next
    }
    return row[0]!
  }
}
