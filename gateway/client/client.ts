/**
 * The client SDK: verify a provider, keep the verification while it holds,
 * and send encrypted requests to it.
 *
 *     const client = await createClientFromPolicyFile('policy.json')
 *     const res = await client.send('https://gw.example', { path: '/v1/chat/completions', body: { model, messages, stream: true } })
 *     for await (const event of res.content) process.stdout.write(event)   // throws on anything wrong, receipt included
 *     res.receipt()                                                        // the checked receipt
 *
 * Verification cache: one verified provider per gateway URL, used until the
 * earliest of its epoch's end, the policy's maxEvidenceAgeSeconds, the
 * collateral's nextUpdate and the registration's expiry — then verified
 * again before the next request, never silently continued. When the gateway
 * says it no longer takes the verified key config (RFC 9458 §5.3), the entry
 * is dropped, the provider verified afresh and the request (which the
 * gateway could not decrypt) sent once more to the new key. Concurrent
 * callers share one verification. Optionally the entry is renewed in the
 * background shortly before it ends, so a busy caller never waits for it;
 * a renewal that fails (a revoked or expired registration, another key
 * config, a changed measurement — or evidence that could not be fetched)
 * ends the current verification at once: the next request verifies in the
 * foreground and fails with the renewal's code unless the provider has
 * recovered, and `onVerification` hears of the failed report so that a
 * pool can stop choosing the provider.
 *
 * HTTP goes through one undici Agent (keep-alive pools per origin).
 */
import { Agent, type Dispatcher } from 'undici'
import type { RegistryReader } from '../../contracts/registry-types.ts'
import { collateralFromPolicy, type CollateralProvider } from './collateral.ts'
import { ClientError } from './errors.ts'
import { loadClientPolicy, loadPolicyRoots, type ClientPolicy, type PolicyRoots } from './policy.ts'
import { createReceiptVerifiers, type ReceiptVerifier } from './receipt.ts'
import { createFallbackRegistryReader, registryFromRpcUrls, type RegistryReaderFactory } from './registry.ts'
import { createUndiciTransport, exchange, type DecryptedResponse, type OhttpTransport } from './request.ts'
import { createEvidenceFetcher, verifyProvider, type EvidenceFetcher, type VerificationReport, type VerifiedProvider } from './verify.ts'

export interface ClientOptions {
  readonly policy: ClientPolicy
  /** Dev roots the policy names (loadPolicyRoots); production roots are built in. */
  readonly roots?: PolicyRoots
  /** Default: what the policy's collateral section names. */
  readonly collateral?: CollateralProvider
  /** Readers to try in order; or RPC URLs from the policy and `registryFactory`. */
  readonly registry?: RegistryReader | readonly RegistryReader[]
  readonly registryFactory?: RegistryReaderFactory
  readonly now?: () => Date
  /** Default: a keep-alive Agent owned (and closed) by the client. */
  readonly dispatcher?: Dispatcher
  readonly fetchEvidence?: EvidenceFetcher
  readonly transport?: OhttpTransport
  /** An RFC 9458 relay resource for a gateway, or undefined to send to the gateway directly (SendOptions.relay wins). */
  readonly relay?: (providerUrl: string) => string | undefined
  /** Told about every verification, passed or failed (e.g. the proxy's audit file). */
  readonly onVerification?: (report: VerificationReport) => void
  /** Renew a verification in the background when less than this is left of it. Default 0 (off). */
  readonly refreshAheadMs?: number
}

export interface SendOptions {
  /** Inner path: /v1/chat/completions, /v1/completions or /v1/embeddings. */
  readonly path: string
  /** A JSON value (serialised here) or its bytes. It must name a `model`. */
  readonly body: unknown
  /** The model the body names, when the caller already parsed it (saves parsing the bytes again). */
  readonly model?: string
  /** The RFC 9458 relay resource for this request (a `{gateway}` template is expanded); overrides ClientOptions.relay. */
  readonly relay?: string
  readonly signal?: AbortSignal
}

/** A decrypted answer and the verified provider it came from. */
export interface ClientResponse extends DecryptedResponse {
  readonly provider: VerifiedProvider
}

export interface ConfidentialClient {
  readonly policy: ClientPolicy
  /**
   * A verified provider for `url`: from the cache while it holds, else verified now (`fresh`:
   * always now). Concurrent callers share one verification, so it takes no caller's abort signal.
   */
  verify(url: string, options?: { readonly fresh?: boolean }): Promise<VerifiedProvider>
  /** The cached verification of `url`, if still valid. */
  cached(url: string): VerifiedProvider | undefined
  /** Forget `url`'s verification. */
  invalidate(url: string): void
  /** Gateway URLs of live registry records serving `model`. */
  discover(model: string): Promise<string[]>
  /** Verify (cached), encrypt, send, and open the answer. */
  send(url: string, options: SendOptions): Promise<ClientResponse>
  close(): Promise<void>
}

/** A gateway URL as a cache key: origin and path, no trailing slash. */
export function normalizeProviderUrl(url: string): string {
  let u: URL
  try {
    u = new URL(url)
  } catch (e) {
    throw new ClientError('CLIENT_CONFIG_INVALID', 'the gateway URL is not a URL', { cause: e })
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ClientError('CLIENT_CONFIG_INVALID', 'the gateway URL must be http(s)')
  return `${u.origin}${u.pathname.replace(/\/+$/, '')}`
}

/**
 * A relay resource for `providerUrl`: `{gateway}` in the template becomes the
 * provider's URL, percent-encoded (for a relay that forwards to several
 * gateways); a template without it is used as it is.
 */
export function relayTarget(template: string, providerUrl: string): string {
  return template.replaceAll('{gateway}', encodeURIComponent(providerUrl))
}

function modelOf(bytes: Uint8Array): string {
  let v: unknown
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'))
  } catch {
    // No cause: a JSON.parse error's message quotes the start of its input, here the prompt.
    throw new ClientError('CLIENT_CONFIG_INVALID', 'the request body is not JSON')
  }
  const model = (v as { model?: unknown } | null)?.model
  if (typeof model !== 'string' || model.length === 0) throw new ClientError('CLIENT_CONFIG_INVALID', 'the request body names no model')
  return model
}

interface Entry {
  pending: Promise<VerifiedProvider>
  value?: VerifiedProvider
  receipts?: ReceiptVerifier
  refreshing?: boolean
}

export function createClient(options: ClientOptions): ConfidentialClient {
  const { policy } = options
  const now = options.now ?? (() => new Date())
  const ownDispatcher = options.dispatcher === undefined
  const dispatcher = options.dispatcher ?? new Agent({ keepAliveTimeout: 30_000, connections: 128 })
  const fetchEvidence = options.fetchEvidence ?? createEvidenceFetcher(dispatcher)
  const transport = options.transport ?? createUndiciTransport(dispatcher)
  const collateral = options.collateral ?? collateralFromPolicy(policy.collateral, { now })
  const roots = options.roots ?? {}
  const refreshAheadMs = options.refreshAheadMs ?? 0
  let registry: RegistryReader | null = null
  if (options.registry !== undefined) {
    // Even one reader goes through the fallback wrapper: an outage becomes CLIENT_REGISTRY_UNAVAILABLE (another chain: CLIENT_REGISTRY_MISMATCH).
    registry = createFallbackRegistryReader(Array.isArray(options.registry) ? options.registry : [options.registry as RegistryReader])
  } else if (policy.registry.required) {
    if (!options.registryFactory) throw new ClientError('CLIENT_CONFIG_INVALID', 'the policy requires a registry: give readers or a reader factory')
    registry = registryFromRpcUrls(policy.registry.rpcUrls, { chainId: policy.registry.chainId, address: policy.registry.address }, options.registryFactory)
  }
  const entries = new Map<string, Entry>()
  const receiptVerifiers = createReceiptVerifiers()

  /**
   * A passed verification made usable: reported, and paired with its signer's receipt verifier
   * (bounded). The one path for the first verification and for background renewals alike.
   */
  function adopt(v: VerifiedProvider): { value: VerifiedProvider; receipts: ReceiptVerifier } {
    options.onVerification?.(v.report)
    return { value: v, receipts: receiptVerifiers.get(v.signingAddress) }
  }

  // Not tied to one caller's signal: concurrent callers share this verification.
  function start(url: string): Entry {
    const entry: Entry = {
      pending: verifyProvider({ url, policy, roots, collateral, registry, now, fetchEvidence }).then(
        (v) => {
          Object.assign(entry, adopt(v))
          return v
        },
        (e: unknown) => {
          const report = (e as { report?: VerificationReport }).report
          if (report) options.onVerification?.(report)
          if (entries.get(url) === entry) entries.delete(url)
          throw e
        },
      ),
    }
    entries.set(url, entry)
    return entry
  }

  function live(entry: Entry | undefined): entry is Entry & { value: VerifiedProvider } {
    return entry?.value !== undefined && entry.value.validUntil > now().getTime()
  }

  async function entryFor(url: string, fresh = false): Promise<Entry & { value: VerifiedProvider; receipts: ReceiptVerifier }> {
    let entry = entries.get(url)
    if (fresh || (entry?.value !== undefined && !live(entry))) entry = undefined
    if (entry === undefined) entry = start(url)
    else if (live(entry) && refreshAheadMs > 0 && !entry.refreshing && entry.value.validUntil - now().getTime() < refreshAheadMs) {
      // Renew in the background; this request still uses the current verification.
      const current = entry
      current.refreshing = true
      const next = verifyProvider({ url, policy, roots, collateral, registry, now, fetchEvidence })
      next.then(
        (v) => {
          const adopted = adopt(v)
          if (entries.get(url) === current) entries.set(url, { pending: Promise.resolve(v), ...adopted })
        },
        (e: unknown) => {
          // Fail closed: what failed to verify now is not used again on the strength of an older result.
          // Dropped before the report goes out, so whoever hears of it finds the provider unverified.
          if (entries.get(url) === current) entries.delete(url)
          current.refreshing = false
          const report = (e as { report?: VerificationReport }).report
          if (report) options.onVerification?.(report)
        },
      )
    }
    if (live(entry)) return entry as Entry & { value: VerifiedProvider; receipts: ReceiptVerifier }
    await entry.pending
    return entry as Entry & { value: VerifiedProvider; receipts: ReceiptVerifier }
  }

  async function send(urlIn: string, o: SendOptions): Promise<ClientResponse> {
    const url = normalizeProviderUrl(urlIn)
    const body = o.body instanceof Uint8Array ? o.body : new TextEncoder().encode(JSON.stringify(o.body))
    const model = o.model ?? modelOf(body)
    for (let attempt = 0; ; attempt++) {
      const entry = await entryFor(url)
      const target = o.relay !== undefined ? relayTarget(o.relay, url) : (options.relay?.(url) ?? `${url}/v1/ohttp`)
      try {
        const res = await exchange({
          provider: entry.value,
          receipts: entry.receipts,
          path: o.path,
          body,
          model,
          transport,
          target,
          now,
          ...(o.signal ? { signal: o.signal } : {}),
        })
        return Object.assign(res, { provider: entry.value })
      } catch (e) {
        // The gateway could not decrypt: nothing was read. Verify again and resend once.
        if (e instanceof ClientError && e.code === 'CLIENT_KEY_CONFIG_CHANGED' && attempt === 0) {
          if (entries.get(url) === entry) entries.delete(url)
          continue
        }
        throw e
      }
    }
  }

  return {
    policy,
    async verify(url, o = {}) {
      return (await entryFor(normalizeProviderUrl(url), o.fresh === true)).value
    },
    cached(url) {
      const e = entries.get(normalizeProviderUrl(url))
      return live(e) ? e.value : undefined
    },
    invalidate(url) {
      entries.delete(normalizeProviderUrl(url))
    },
    async discover(model) {
      if (registry === null) throw new ClientError('CLIENT_CONFIG_INVALID', 'discovery by model needs a registry')
      const at = BigInt(Math.floor(now().getTime() / 1000))
      const records = await registry.enclavesForModel(model)
      const urls = [...new Set(records.filter((r) => r.model === model && r.expiresAt > at).map((r) => r.url))]
      const valid = urls.filter((u) => {
        try {
          normalizeProviderUrl(u)
          return true
        } catch {
          return false
        }
      })
      if (valid.length === 0) throw new ClientError('CLIENT_NO_PROVIDER', 'the registry lists no live provider for the model', { details: { model } })
      return valid.map(normalizeProviderUrl)
    },
    send,
    async close() {
      entries.clear()
      if (ownDispatcher) await dispatcher.close()
    },
  }
}

export interface ClientFromFileOptions extends Omit<ClientOptions, 'policy'> {}

/** Read a policy file, load the dev roots it names, and build a client. */
export async function createClientFromPolicyFile(path: string, options: ClientFromFileOptions = {}): Promise<ConfidentialClient> {
  const policy = await loadClientPolicy(path)
  const roots = options.roots ?? (await loadPolicyRoots(policy))
  return createClient({ ...options, policy, roots })
}
