/**
 * Collateral archives for the auditor: QuoteCollateralV3 JSON files named
 * by fingerprint (SHA-256 hex of the bytes) in a local directory, or served
 * under a URL prefix (`<url>/<fingerprint>`, e.g. another copy of a log's
 * `/log/blob/`), or a PCS/PCCS: today's collateral for the quote's FMSPC,
 * usable for an entry when it is byte for byte what the gateway archived
 * then (same fingerprint: the collateral did not change since). The
 * auditor checks every byte string against the fingerprint it asked for,
 * so an archive is not trusted.
 */
import { readFile } from 'node:fs/promises'
import { collateralRequestForQuote } from '../../tdx/abi/collateral-request.ts'
import { parseQuote } from '../../tdx/abi/quote.ts'
import type { PcsClient } from '../../pcs/client.ts'
import { join } from 'node:path'
import { logError } from '../errors.ts'
import { fetchLimited, type FetchLike, type HttpReadLimits } from '../reader.ts'
import type { CollateralArchive } from './types.ts'

const FINGERPRINT = /^[0-9a-f]{64}$/

/** `<dir>/<fingerprint>` or `<dir>/<fingerprint>.json`. */
export function createDirectoryCollateralArchive(dir: string): CollateralArchive {
  return {
    location: dir,
    async get(fp) {
      if (!FINGERPRINT.test(fp)) return null
      for (const name of [fp, `${fp}.json`]) {
        try {
          return new Uint8Array(await readFile(join(dir, name)))
        } catch {
          // Try the next name.
        }
      }
      return null
    },
  }
}

/** `GET <baseUrl>/<fingerprint>` within `limits` (reader.ts); 404 or any failure is "not here". */
export function createHttpCollateralArchive(baseUrl: string, fetch: FetchLike, limits: HttpReadLimits = {}): CollateralArchive {
  let base: URL
  try {
    base = new URL(baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`)
  } catch (cause) {
    return logError('LOG_OPTIONS_INVALID', 'collateral archive is not a URL', { url: baseUrl }, cause)
  }
  return {
    location: base.href,
    async get(fp) {
      if (!FINGERPRINT.test(fp)) return null
      try {
        return await fetchLimited(fetch, new URL(fp, base).href, fp, limits)
      } catch {
        // Unreachable, too slow or too large: not here (the entry then reports LOG_COLLATERAL_UNAVAILABLE).
        return null
      }
    },
  }
}

/** The canonical bytes of a collateral bundle: the gateway archives these (enclave/log/sink.ts) and its fingerprint is their SHA-256. */
export function collateralBundleBytes(bundle: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(bundle))
}

/** A PCS or PCCS (attestation/pcs client): current collateral for the quote, fetched once per FMSPC/CA. */
export function createPcsCollateralArchive(client: Pick<PcsClient, 'baseUrl' | 'getCollateral'>): CollateralArchive {
  const fetched = new Map<string, Promise<Uint8Array | null>>()
  return {
    location: client.baseUrl,
    async get(_fp, { quote }) {
      let request
      try {
        request = collateralRequestForQuote(parseQuote(quote))
      } catch {
        return null
      }
      const key = JSON.stringify(request)
      let p = fetched.get(key)
      if (!p) {
        p = client.getCollateral(request).then(
          (r) => collateralBundleBytes(r.collateral),
          () => null,
        )
        fetched.set(key, p)
      }
      return p
    },
  }
}

