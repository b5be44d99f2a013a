/**
 * Reading a published log: the same static files (C2SP tlog-tiles paths,
 * `checkpoint`, `key`, `blob/<sha256>`) over HTTP(S) with an injected
 * fetch, or from a log directory. A missing file is `null`; anything else
 * that stops a read is LOG_FETCH_FAILED (fail closed: the caller decides
 * that a missing tile is a failure).
 *
 * Over HTTP every read is bounded in time (headers and body together) and
 * in size (Content-Length checked first, then the bytes as they stream):
 * an auditor pointed at a hostile or stuck server fails with
 * LOG_FETCH_FAILED (details.reason 'timeout' / 'too-large') instead of
 * hanging or filling memory.
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

export type FetchLike = (url: string, init?: { signal?: AbortSignal; headers?: Record<string, string> }) => Promise<FetchResponseLike>

/** The part of a fetch Response used here; `headers` and `body` (streamed, so a size limit stops early) when the fetch has them. */
export interface FetchResponseLike {
  readonly status: number
  readonly ok: boolean
  readonly headers?: { get(name: string): string | null }
  readonly body?: AsyncIterable<Uint8Array> | null
  arrayBuffer(): Promise<ArrayBuffer>
}

export interface HttpReadLimits {
  /** Per file, request and body together. Default {@link DEFAULT_HTTP_TIMEOUT_MS}. */
  readonly timeoutMs?: number
  /** Largest file accepted. Default {@link DEFAULT_HTTP_MAX_BYTES}. */
  readonly maxBytes?: number
}

export const DEFAULT_HTTP_TIMEOUT_MS = 30_000
/** An entry bundle is at most 256 × (2 + 65535) bytes (~16 MiB); blobs (quotes, event logs, GPU evidence, collateral) are smaller. */
export const DEFAULT_HTTP_MAX_BYTES = 32 * 1024 * 1024

function checkLimits(l: HttpReadLimits): { timeoutMs: number; maxBytes: number } {
  const timeoutMs = l.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS
  const maxBytes = l.maxBytes ?? DEFAULT_HTTP_MAX_BYTES
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) logError('LOG_OPTIONS_INVALID', 'timeoutMs is a positive integer')
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) logError('LOG_OPTIONS_INVALID', 'maxBytes is a positive integer')
  return { timeoutMs, maxBytes }
}

/**
 * GET `url` within the limits: null on 404, the bytes on 2xx, else
 * LOG_FETCH_FAILED (details: path, and status / reason 'timeout' |
 * 'too-large' | 'network').
 */
export async function fetchLimited(fetch: FetchLike, url: string, path: string, limits: HttpReadLimits = {}): Promise<Uint8Array | null> {
  const { timeoutMs, maxBytes } = checkLimits(limits)
  const controller = new AbortController()
  let timedOut = false
  // A plain timer (not AbortSignal.timeout): it keeps the process alive while the read is pending, so a stuck read always ends.
  const timer = setTimeout(() => {
    timedOut = true
    controller.abort()
  }, timeoutMs)
  const failed = (cause: unknown, details: Record<string, unknown>) => new LogError('LOG_FETCH_FAILED', 'log fetch failed', { cause, details: { path, ...details } })
  const tooLarge = (size: number | null) => failed(undefined, { reason: 'too-large', maxBytes, ...(size === null ? {} : { size }) })
  try {
    let res: FetchResponseLike
    try {
      res = await fetch(url, { signal: controller.signal })
    } catch (cause) {
      throw failed(cause, { reason: timedOut ? 'timeout' : 'network' })
    }
    if (res.status === 404) return null
    if (!res.ok) throw new LogError('LOG_FETCH_FAILED', 'log fetch answered an error status', { details: { path, status: res.status } })
    const declared = Number(res.headers?.get('content-length') ?? Number.NaN)
    if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(declared)
    try {
      const body = res.body
      if (body && typeof (body as Partial<AsyncIterable<Uint8Array>>)[Symbol.asyncIterator] === 'function') {
        const chunks: Uint8Array[] = []
        let n = 0
        for await (const c of body) {
          n += c.byteLength
          // Leaving the loop cancels the stream: the rest is never read.
          if (n > maxBytes) throw tooLarge(null)
          chunks.push(c)
        }
        return new Uint8Array(Buffer.concat(chunks))
      }
      const bytes = new Uint8Array(await res.arrayBuffer())
      if (bytes.length > maxBytes) throw tooLarge(bytes.length)
      return bytes
    } catch (cause) {
      if (cause instanceof LogError) throw cause
      throw failed(cause, { reason: timedOut ? 'timeout' : 'network' })
    }
  } finally {
    clearTimeout(timer)
  }
}

/** A log served over HTTP(S) at `baseUrl` (e.g. `https://gw.example/log`), each read within `limits`. */
export function createHttpLogSource(baseUrl: string, fetch: FetchLike, limits: HttpReadLimits = {}): LogSource {
  let base: URL
  try {
    base = new URL(baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`)
  } catch (cause) {
    return logError('LOG_OPTIONS_INVALID', 'not a URL', { url: baseUrl }, cause)
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') logError('LOG_OPTIONS_INVALID', 'log URL must be http(s)', { url: baseUrl })
  checkLimits(limits)
  return {
    location: base.href,
    read: (path) => fetchLimited(fetch, new URL(path, base).href, path, limits),
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
