/**
 * The proxy's providers per model: the configured gateways (or those the
 * registry lists for the model), in the order a request should try them.
 *
 * A provider whose verification or answer failed is cooled down: it goes to
 * the end of the list until `cooldownMs` has passed, so requests go to
 * verified, healthy providers first while a failed one still gets another
 * chance (its verification then runs again — it is never trusted on an old
 * result). Healthy providers are taken in rotation. `warm()` verifies every
 * static provider ahead of the first request, so its verification cost is
 * not in anybody's latency. main.ts also calls `failed()` for every failed
 * verification report — a background re-verification included — so a
 * provider that stops verifying is passed over at once.
 *
 * Discovered models: the registry's live providers, each reached through
 * the model's relay when the config names one. "None registered" is an
 * empty list (PROXY_NO_PROVIDER); a registry that cannot be read is
 * PROXY_REGISTRY_UNAVAILABLE with the client's code as reason, so an outage
 * is never mistaken for an empty registry.
 */
import type { ConfidentialClient } from '../client/client.ts'
import { normalizeProviderUrl } from '../client/client.ts'
import { isClientError } from '../client/errors.ts'
import type { ModelRoute, ProviderEntry } from './config.ts'
import { ProxyError } from './errors.ts'

export interface ProviderPool {
  /** The models this proxy serves. */
  readonly models: readonly string[]
  /** Providers for `model`, best first; empty when none is configured or registered. Throws PROXY_REGISTRY_UNAVAILABLE. */
  candidates(model: string): Promise<readonly ProviderEntry[]>
  failed(url: string): void
  succeeded(url: string): void
  /** Verify every static provider now (failures only cool them down). */
  warm(): Promise<void>
}

export interface ProviderPoolOptions {
  readonly client: ConfidentialClient
  readonly models: ReadonlyMap<string, ModelRoute>
  readonly cooldownMs: number
  readonly now?: () => number
}

export function createProviderPool({ client, models, cooldownMs, now = Date.now }: ProviderPoolOptions): ProviderPool {
  const cooledUntil = new Map<string, number>()
  const turn = new Map<string, number>()
  const normalized = new Map<string, ProviderEntry[]>()
  for (const [model, route] of models) {
    if (route.kind === 'static') normalized.set(model, route.providers.map((p) => ({ ...p, url: normalizeProviderUrl(p.url) })))
  }

  function order(model: string, list: readonly ProviderEntry[]): ProviderEntry[] {
    const t = now()
    const start = turn.get(model) ?? 0
    turn.set(model, (start + 1) % Math.max(1, list.length))
    const rotated = [...list.slice(start % Math.max(1, list.length)), ...list.slice(0, start % Math.max(1, list.length))]
    const healthy = rotated.filter((p) => (cooledUntil.get(p.url) ?? 0) <= t)
    const cooled = rotated.filter((p) => (cooledUntil.get(p.url) ?? 0) > t).sort((a, b) => cooledUntil.get(a.url)! - cooledUntil.get(b.url)!)
    return [...healthy, ...cooled]
  }

  return {
    models: [...models.keys()],
    async candidates(model) {
      const route = models.get(model)
      if (route === undefined) return []
      if (route.kind === 'static') return order(model, normalized.get(model)!)
      let urls: string[]
      try {
        urls = await client.discover(model)
      } catch (e) {
        if (isClientError(e) && e.code === 'CLIENT_NO_PROVIDER') return []
        throw new ProxyError('PROXY_REGISTRY_UNAVAILABLE', { reason: isClientError(e) ? e.code : 'UNKNOWN', cause: e })
      }
      const relay = route.relay
      return order(model, urls.map((url) => (relay === undefined ? { url } : { url, relay })))
    },
    failed(url) {
      cooledUntil.set(url, now() + cooldownMs)
    },
    succeeded(url) {
      cooledUntil.delete(url)
    },
    async warm() {
      const all = [...new Set([...normalized.values()].flat().map((p) => p.url))]
      await Promise.all(
        all.map((url) =>
          client.verify(url).then(
            () => cooledUntil.delete(url),
            () => cooledUntil.set(url, now() + cooldownMs),
          ),
        ),
      )
    },
  }
}
