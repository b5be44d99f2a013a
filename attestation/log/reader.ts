/**
 * Reading a published log: the same static files (C2SP tlog-tiles paths,
 * `checkpoint`, `key`, `blob/<sha256>`) over HTTP(S) with an injected
 * fetch, or from a log directory. A missing file is `null`; anything else
 * that stops a read is LOG_FETCH_FAILED (fail closed: the caller decides
 * that a missing tile is a failure).
 *
 * `readTile` implements the tlog-tiles fallback: a partial tile that is
 * gone (the writer retires partials once the full tile exists) is read as
 * the prefix of the full tile.
 */
import { readFile } from 'node:fs/promises'
import { join, resolve, sep } from 'node:path'
import { LogError, logError } from './errors.ts'
import { HASH_SIZE } from './hash.ts'
import { parseEntryBundle, parseHashTile, tilePath, TILE_WIDTH, type TileCoordinates } from './tile.ts'

export interface LogSource {
  /** A description for reports (URL or directory). */
  readonly location: string
  /** The file at `path` (relative to the log prefix), or null when it does not exist. */
  read(path: string): Promise<Uint8Array | null>
}

export type FetchLike = (url: string, init?: { signal?: AbortSignal; headers?: Record<string, string> }) => Promise<{
  readonly status: number
  readonly ok: boolean
  arrayBuffer(): Promise<ArrayBuffer>
}>

/** A log served over HTTP(S) at `baseUrl` (e.g. `https://gw.example/log`). */
export function createHttpLogSource(baseUrl: string, fetch: FetchLike): LogSource {
  let base: URL
  try {
    base = new URL(baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`)
  } catch (cause) {
    return logError('LOG_OPTIONS_INVALID', 'not a URL', { url: baseUrl }, cause)
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') logError('LOG_OPTIONS_INVALID', 'log URL must be http(s)', { url: baseUrl })
  return {
    location: base.href,
    async read(path) {
      const url = new URL(path, base).href
      let res
      try {
        res = await fetch(url)
      } catch (cause) {
        throw new LogError('LOG_FETCH_FAILED', 'log fetch failed', { cause, details: { path } })
      }
      if (res.status === 404) return null
      if (!res.ok) throw new LogError('LOG_FETCH_FAILED', 'log fetch answered an error status', { details: { path, status: res.status } })
      return new Uint8Array(await res.arrayBuffer())
    },
  }
}

/** A log directory on disk. Paths cannot leave it. */
export function createDirectoryLogSource(dir: string): LogSource {
  const root = resolve(dir)
  return {
    location: root,
    async read(path) {
      const full = resolve(join(root, path))
      if (!full.startsWith(root + sep)) logError('LOG_OPTIONS_INVALID', 'path escapes the log directory', { path })
      try {
        return new Uint8Array(await readFile(full))
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code
        if (code === 'ENOENT' || code === 'ENOTDIR') return null
        throw new LogError('LOG_FETCH_FAILED', 'cannot read a log file', { cause: e, details: { path } })
      }
    },
  }
}

/** Read a tile of the given coordinates, falling back from a partial to the full tile's prefix. */
export async function readTile(source: LogSource, c: TileCoordinates): Promise<Uint8Array> {
  const exact = await source.read(tilePath(c))
  if (exact !== null) return exact
  if (c.width < TILE_WIDTH) {
    const full = await source.read(tilePath({ ...c, width: TILE_WIDTH }))
    if (full !== null) {
      if (c.level === 'entries') {
        const entries = parseEntryBundle(full, TILE_WIDTH).slice(0, c.width)
        let n = 0
        for (const e of entries) n += 2 + e.length
        return full.subarray(0, n)
      }
      return full.subarray(0, c.width * HASH_SIZE)
    }
  }
  throw new LogError('LOG_FETCH_FAILED', 'a tile is missing', { details: { path: tilePath(c) } })
}

/** The hashes of a hash tile, checked against its width. */
export async function readHashTile(source: LogSource, level: number, index: number, width: number): Promise<Uint8Array[]> {
  return parseHashTile(await readTile(source, { level, index, width }), width)
}

/** The entries of an entry bundle, checked against its width. */
export async function readEntryBundle(source: LogSource, index: number, width: number): Promise<Uint8Array[]> {
  return parseEntryBundle(await readTile(source, { level: 'entries', index, width }), width)
}
