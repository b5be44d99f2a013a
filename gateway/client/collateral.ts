/**
 * Where the client's TDX collateral comes from: a file the policy names
 * (read again whenever its bundle is due), or a PCS/PCCS with an optional
 * on-disk cache — behind one getter, with an in-memory layer in front that keeps
 * each bundle parsed until its own nextUpdate, so re-verifying a provider
 * (a new epoch, a second provider on the same platform) costs no fetch and
 * no parse. The cache is an optimisation only: verifyQuote checks every
 * signature and date of whatever comes out of it.
 */
import { readFile } from 'node:fs/promises'
import { CollateralError } from '../../attestation/errors.ts'
import { createCollateralCache, createCachingCollateralSource, collateralValidity } from '../../attestation/pcs/cache.ts'
import { createPcsClient, type PcsFetch } from '../../attestation/pcs/client.ts'
import type { CollateralRequest, QuoteCollateralV3 } from '../../attestation/pcs/types.ts'
import { parseCollateral, type Collateral } from '../../attestation/tdx/abi/collateral.ts'
import { ClientError, reasonOf } from './errors.ts'
import type { CollateralPolicy } from './policy.ts'

/** Collateral for one quote's request (TEE, FMSPC, PCK CA). */
export type CollateralProvider = (request: CollateralRequest) => Promise<Collateral>

const keyOf = (r: CollateralRequest) => `${r.teeType}/${r.fmspc.toLowerCase()}/${r.ca}`

/**
 * Keep what `load` returns, parsed, per request until the bundle's earliest
 * nextUpdate by `now`; concurrent misses share one load. Failures are not kept.
 */
function memoizeCollateral(load: (request: CollateralRequest) => Promise<QuoteCollateralV3>, now: () => Date): CollateralProvider {
  const entries = new Map<string, { collateral: Promise<Collateral>; notAfter: number }>()
  return (request) => {
    const key = keyOf(request)
    const hit = entries.get(key)
    if (hit && hit.notAfter > now().getTime()) return hit.collateral
    const entry = { collateral: load(request).then((bundle) => {
      const parsed = parseCollateral(bundle)
      try {
        entry.notAfter = collateralValidity(bundle).notAfter
      } catch {
        entry.notAfter = 0
      }
      return parsed
    }), notAfter: Number.POSITIVE_INFINITY }
    entries.set(key, entry)
    entry.collateral.catch(() => {
      if (entries.get(key) === entry) entries.delete(key)
    })
    return entry.collateral
  }
}

export interface CollateralFromPolicyOptions {
  readonly now?: () => Date
  /** For the PCS client (default undici's fetch). */
  readonly fetch?: PcsFetch
}

/** The collateral source a policy names. */
export function collateralFromPolicy(policy: CollateralPolicy, options: CollateralFromPolicyOptions = {}): CollateralProvider {
  const now = options.now ?? (() => new Date())
  if (policy.kind === 'file') {
    // Read whenever the memo asks (a miss, or past the bundle's nextUpdate): a file replaced with newer collateral is taken up without a restart.
    return memoizeCollateral(
      () =>
        readFile(policy.path, 'utf8').then(
          (text) => JSON.parse(text) as QuoteCollateralV3,
          (e: unknown) => {
            throw new ClientError('CLIENT_COLLATERAL_UNAVAILABLE', 'cannot read the collateral file', { cause: e, details: { path: policy.path } })
          },
        ),
      now,
    )
  }
  const client = createPcsClient({
    baseUrl: policy.url,
    ...(policy.rootCaCrlUrl ? { rootCaCrlUrl: policy.rootCaCrlUrl } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
    now,
  })
  const source = policy.cacheDir ? createCachingCollateralSource({ client, cache: createCollateralCache({ dir: policy.cacheDir }), now }) : client
  return memoizeCollateral(async (request) => {
    try {
      return (await source.getCollateral(request)).collateral
    } catch (e) {
      if (e instanceof CollateralError) {
        throw new ClientError('CLIENT_COLLATERAL_UNAVAILABLE', 'the PCS could not supply collateral', { cause: e, details: { reason: reasonOf(e), request } })
      }
      throw e
    }
  }, now)
}
