/**
 * On-disk collateral cache, and a collateral source that serves fresh cache
 * hits and refetches otherwise.
 *
 * One JSON file per (teeType, fmspc, ca), holding the bundle exactly as
 * fetched plus its provenance. A cache is an optimisation, never a trust
 * decision: the verifier checks every signature and date of whatever comes
 * out of it. So the cache fails towards refetching — an unreadable, corrupt,
 * mislabelled or stale entry is a miss, never an error — and towards
 * integrity on disk: entries are written to a temporary file in the same
 * directory, fsynced and renamed over the old one (rename(2) is atomic within
 * a file system), so a crash leaves the old entry or the new one, never half
 * of either.
 *
 * Freshness is the collateral's own validity window, read with the caller's
 * clock: from the latest `issueDate` / CRL `thisUpdate` to the earliest
 * `nextUpdate` of TCB info, QE identity, PCK CRL and root CA CRL. Only dates
 * are read here; no signature is checked.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { ConfigError } from '../errors.ts'
import { parseCrl } from '../pki/crl.ts'
import { checkCa, checkFmspc, checkTeeType, type PcsClient } from './client.ts'
import type { CollateralRequest, CollateralSources, FetchedCollateral, QuoteCollateralV3 } from './types.ts'
import { QUOTE_COLLATERAL_V3_FIELDS } from './types.ts'

/** Tag of the entry file layout; bump it when the layout changes so old entries read as misses. */
export const CACHE_ENTRY_FORMAT = 'cgw-pcs-collateral/1'

const REQUIRED_BUNDLE_FIELDS = QUOTE_COLLATERAL_V3_FIELDS

const SOURCE_FIELDS = ['tcbInfo', 'qeIdentity', 'pckCrl', 'rootCaCrl'] as const satisfies readonly (keyof CollateralSources)[]

export interface CollateralCacheOptions {
  /** Directory of the entries; created (mode 0700) on the first write. */
  dir: string
  /**
   * Optional upper bound on an entry's age, counted from its `fetchedAt`, for
   * deployments that want revocations sooner than `nextUpdate` promises.
   * Default: none (the collateral's own `nextUpdate` decides).
   */
  maxAgeMs?: number
}

export interface CollateralCache {
  readonly dir: string
  /** The entry for `key` if it is readable and fresh at `now`; otherwise `undefined`. */
  get(key: CollateralRequest, now: Date): Promise<FetchedCollateral | undefined>
  /** Store `entry` under `key` atomically. Rejects with the file system's error. */
  put(key: CollateralRequest, entry: FetchedCollateral): Promise<void>
}

/** The instants between which every item of a bundle is current (ms since the epoch). */
export interface CollateralValidity {
  /** The latest `issueDate` / `thisUpdate`: before it, some item did not exist yet. */
  readonly notBefore: number
  /** The earliest `nextUpdate`: from it on, some item may have been replaced. */
  readonly notAfter: number
}

function jsonDates(text: string): { issued: number; next: number } {
  const v = JSON.parse(text) as Record<string, unknown>
  // ISO 8601 UTC as Intel writes it (TCB Info v3 / Enclave Identity v2: `issueDate`, `nextUpdate`).
  const issued = typeof v['issueDate'] === 'string' ? Date.parse(v['issueDate']) : NaN
  const next = typeof v['nextUpdate'] === 'string' ? Date.parse(v['nextUpdate']) : NaN
  if (Number.isNaN(issued) || Number.isNaN(next)) throw new TypeError('issueDate or nextUpdate missing or not a date')
  return { issued, next }
}

/**
 * The validity window of a bundle: tcb_info and qe_identity `issueDate` /
 * `nextUpdate`, and the CRLs' `thisUpdate` / `nextUpdate` (RFC 5280
 * §5.1.2.4-5). Throws if any date is missing or malformed.
 */
export function collateralValidity(bundle: QuoteCollateralV3): CollateralValidity {
  const tcb = jsonDates(bundle.tcb_info)
  const qe = jsonDates(bundle.qe_identity)
  const pck = parseCrl(new Uint8Array(Buffer.from(bundle.pck_crl, 'hex')))
  const root = parseCrl(new Uint8Array(Buffer.from(bundle.root_ca_crl, 'hex')))
  return {
    notBefore: Math.max(tcb.issued, qe.issued, pck.thisUpdate, root.thisUpdate),
    notAfter: Math.min(tcb.next, qe.next, pck.nextUpdate, root.nextUpdate),
  }
}

/** True if every item of `bundle` is current at `now` (a malformed bundle is never fresh). */
export function isCollateralFresh(bundle: QuoteCollateralV3, now: Date): boolean {
  let validity: CollateralValidity
  try {
    validity = collateralValidity(bundle)
  } catch {
    return false
  }
  const t = now.getTime()
  return validity.notBefore <= t && t < validity.notAfter
}

/** Validate a key and name its file; FMSPC is lower-cased so `B0C0…` and `b0c0…` share an entry. */
function entryName(key: CollateralRequest): { teeType: string; fmspc: string; ca: string; file: string } {
  if (typeof key !== 'object' || key === null) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'a cache key is required')
  }
  const teeType = checkTeeType(key.teeType)
  // checkFmspc admits hex digits only, so the name cannot escape the directory.
  const fmspc = checkFmspc(key.fmspc).toLowerCase()
  const ca = checkCa(key.ca)
  return { teeType, fmspc, ca, file: `${teeType}-${fmspc}-${ca}.json` }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Rebuild an entry from parsed JSON, keeping only known fields; `undefined` if anything is off. */
function entryFromJson(v: unknown, name: ReturnType<typeof entryName>): FetchedCollateral | undefined {
  if (!isRecord(v) || v['format'] !== CACHE_ENTRY_FORMAT) return undefined
  const key = v['key']
  if (!isRecord(key) || key['teeType'] !== name.teeType || key['fmspc'] !== name.fmspc || key['ca'] !== name.ca) return undefined
  const fetchedAt = v['fetchedAt']
  if (typeof fetchedAt !== 'string' || Number.isNaN(Date.parse(fetchedAt))) return undefined
  const sources = v['sources']
  const collateral = v['collateral']
  if (!isRecord(sources) || !isRecord(collateral)) return undefined
  const s: Record<string, string> = {}
  for (const f of SOURCE_FIELDS) {
    const x = sources[f]
    if (typeof x !== 'string') return undefined
    s[f] = x
  }
  const c: Record<string, string> = {}
  for (const f of REQUIRED_BUNDLE_FIELDS) {
    const x = collateral[f]
    if (typeof x !== 'string') return undefined
    c[f] = x
  }
  const chain = collateral['pck_certificate_chain']
  if (chain !== undefined) {
    if (typeof chain !== 'string') return undefined
    c['pck_certificate_chain'] = chain
  }
  return {
    collateral: c as unknown as QuoteCollateralV3,
    fetchedAt,
    sources: s as unknown as CollateralSources,
  }
}

/** fsync a directory so the rename itself is durable; not every platform allows it, so best effort. */
async function syncDir(dir: string): Promise<void> {
  let fh
  try {
    fh = await open(dir, 'r')
    await fh.sync()
  } catch {
    // EISDIR/EPERM on platforms without directory fsync: the rename is still atomic.
  } finally {
    await fh?.close().catch(() => undefined)
  }
}

/**
 * Create an on-disk cache in `options.dir`. Throws `ConfigError`
 * (ATTESTATION_OPTIONS_INVALID) for bad options; `get` never throws for a
 * bad entry (it is a miss) but does for a bad key.
 */
export function createCollateralCache(options: CollateralCacheOptions): CollateralCache {
  if (typeof options !== 'object' || options === null || typeof options.dir !== 'string' || options.dir.length === 0) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'cache dir is required')
  }
  const { dir, maxAgeMs } = options
  if (maxAgeMs !== undefined && (!Number.isSafeInteger(maxAgeMs) || maxAgeMs <= 0)) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'maxAgeMs must be a positive integer', { details: { maxAgeMs } })
  }

  async function get(key: CollateralRequest, now: Date): Promise<FetchedCollateral | undefined> {
    const name = entryName(key)
    if (!(now instanceof Date) || Number.isNaN(now.getTime())) {
      throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'now must be a valid Date')
    }
    let entry: FetchedCollateral | undefined
    try {
      entry = entryFromJson(JSON.parse(await readFile(join(dir, name.file), 'utf8')), name)
    } catch {
      // Missing, unreadable or not JSON: all the same to a cache.
      return undefined
    }
    if (entry === undefined || !isCollateralFresh(entry.collateral, now)) return undefined
    if (maxAgeMs !== undefined && now.getTime() - Date.parse(entry.fetchedAt) >= maxAgeMs) return undefined
    return entry
  }

  async function put(key: CollateralRequest, entry: FetchedCollateral): Promise<void> {
    const name = entryName(key)
    const data = JSON.stringify(
      {
        format: CACHE_ENTRY_FORMAT,
        key: { teeType: name.teeType, fmspc: name.fmspc, ca: name.ca },
        fetchedAt: entry.fetchedAt,
        sources: entry.sources,
        collateral: entry.collateral,
      },
      null,
      1,
    )
    await mkdir(dir, { recursive: true, mode: 0o700 })
    // Same directory as the target, so rename never crosses a file system;
    // a leading dot and `.tmp` keep it out of any entry lookup.
    const tmp = join(dir, `.${name.file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
    try {
      const fh = await open(tmp, 'wx', 0o600)
      try {
        await fh.writeFile(data, 'utf8')
        await fh.sync()
      } finally {
        await fh.close()
      }
      await rename(tmp, join(dir, name.file))
    } catch (e) {
      await unlink(tmp).catch(() => undefined)
      throw e
    }
    await syncDir(dir)
  }

  return { dir, get, put }
}

export interface CachingCollateralSourceOptions {
  /** Where misses are fetched from. */
  client: Pick<PcsClient, 'getCollateral'>
  cache: CollateralCache
  /** The clock freshness is judged by. Default: the system clock. */
  now?: () => Date
  /**
   * Told about a failed cache write. The fetched collateral is still
   * returned: losing a cache entry costs a refetch, not correctness.
   * Default: ignore.
   */
  onCacheError?: (error: unknown) => void
}

/** Anything that hands out collateral for a request (the verifier's getter). */
export interface CollateralSource {
  getCollateral(request: CollateralRequest): Promise<FetchedCollateral>
}

/**
 * A collateral source over a client and a cache: a fresh entry is served
 * from disk; otherwise the client fetches, the result is stored and returned.
 * Concurrent requests for the same key share one fetch. Errors of the client
 * (`CollateralError`) pass through unchanged; a stale entry is never served
 * in their place, since the verifier would reject it anyway.
 */
export function createCachingCollateralSource(options: CachingCollateralSourceOptions): CollateralSource {
  if (typeof options !== 'object' || options === null || typeof options.client?.getCollateral !== 'function' || typeof options.cache?.get !== 'function') {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'client and cache are required')
  }
  const { client, cache } = options
  const now = options.now ?? ((): Date => new Date())
  const onCacheError = options.onCacheError ?? ((): void => undefined)
  const inFlight = new Map<string, Promise<FetchedCollateral>>()

  async function load(request: CollateralRequest): Promise<FetchedCollateral> {
    const hit = await cache.get(request, now())
    if (hit !== undefined) return hit
    const fetched = await client.getCollateral(request)
    try {
      await cache.put(request, fetched)
    } catch (e) {
      onCacheError(e)
    }
    return fetched
  }

  function getCollateral(request: CollateralRequest): Promise<FetchedCollateral> {
    let name: string
    try {
      name = entryName(request).file
    } catch (e) {
      return Promise.reject(e)
    }
    const pending = inFlight.get(name)
    if (pending !== undefined) return pending
    const p = load(request).finally(() => inFlight.delete(name))
    inFlight.set(name, p)
    return p
  }

  return { getCollateral }
}
