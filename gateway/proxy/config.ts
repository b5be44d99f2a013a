/**
 * `cgw proxy --config FILE`: the proxy's configuration, checked strictly
 * (unknown keys are errors, every section says what it means):
 *
 *     { "listen": { "host": "127.0.0.1", "port": 8787 },          // default: loopback only
 *       "policy": "policy.json",                                   // client policy (gateway/client/policy.ts)
 *       "models": {
 *         "llama-3-70b": { "providers": ["https://gw-a.example", { "url": "https://gw-b.example", "relay": "https://relay.example/gw-b" }] },
 *         "qwen-72b":    { "discover": true },                     // providers from the on-chain registry
 *         "mixtral":     { "discover": true, "relay": "https://relay.example/ohttp/{gateway}" }
 *       },
 *       "apiKeys": ["sha256:<hex>", "<plain key>"],                // optional: Authorization: Bearer <key>
 *       "limits": { "bodyLimitBytes": 1048576, "maxResponseBytes": 16777216, "maxAttempts": 3, "cooldownMs": 30000,
 *                   "shutdownGraceMs": 10000 },                    // how long a stop waits for answers in flight
 *       "audit": { "file": "cgw-audit.jsonl" },                    // required: hashes only, append-only
 *       "logLevel": "info" }
 *
 * Relative paths resolve against the config file's folder. API keys may be
 * given as their SHA-256 so that the file holds no secret.
 *
 * Relays (RFC 9458): a static provider names its own relay resource; a
 * discovered model names one relay for every provider the registry lists,
 * since their URLs are not known in advance. `{gateway}` in a relay URL is
 * replaced by the provider's URL (percent-encoded) for relays that forward
 * to several gateways; without it every provider goes through the same
 * resource. A relay that forwards to the wrong gateway costs availability
 * only: the request is encrypted to the verified provider's key, and the
 * answer must decrypt and carry that provider's receipt.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { ClientError } from '../client/errors.ts'

export type ProxyLogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export interface ProviderEntry {
  readonly url: string
  /** An RFC 9458 relay resource in front of this gateway. */
  readonly relay?: string
}

export type ModelRoute =
  | { readonly kind: 'static'; readonly providers: readonly ProviderEntry[] }
  | { readonly kind: 'discover'; /** Relay resource (may hold `{gateway}`) for every discovered provider. */ readonly relay?: string }

export interface ProxyConfig {
  readonly listen: { readonly host: string; readonly port: number }
  /** Absolute path of the client policy file. */
  readonly policy: string
  readonly models: ReadonlyMap<string, ModelRoute>
  /** SHA-256 of each accepted key (hex); empty = no API key required. */
  readonly apiKeyHashes: readonly string[]
  readonly limits: {
    readonly bodyLimitBytes: number
    readonly maxResponseBytes: number
    readonly maxAttempts: number
    readonly cooldownMs: number
    /** On close: how long answers in flight may finish before their connections are cut. */
    readonly shutdownGraceMs: number
  }
  readonly audit: { readonly file: string }
  readonly logLevel: ProxyLogLevel
}

export const DEFAULT_PROXY_LIMITS = { bodyLimitBytes: 1 << 20, maxResponseBytes: 16 << 20, maxAttempts: 3, cooldownMs: 30_000, shutdownGraceMs: 10_000 } as const

function invalid(path: string, what: string): never {
  throw new ClientError('CLIENT_CONFIG_INVALID', `proxy config ${path}: ${what}`, { details: { path } })
}

function object(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) invalid(path, 'expected an object')
  return v as Record<string, unknown>
}

function only(o: Record<string, unknown>, keys: readonly string[], path: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) invalid(`${path}.${k}`, 'unknown key')
}

function positive(v: unknown, path: string, dflt: number): number {
  if (v === undefined) return dflt
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) invalid(path, 'expected a positive integer')
  return v
}

function url(v: unknown, path: string): string {
  if (typeof v !== 'string') invalid(path, 'expected an http(s) URL')
  let u: URL
  try {
    u = new URL(v)
  } catch {
    return invalid(path, 'expected an http(s) URL')
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') invalid(path, 'expected an http(s) URL')
  return v
}

/** SHA-256 hex of an API key, as the config stores it. */
export function apiKeyHash(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex')
}

export function parseProxyConfig(doc: unknown, options: { readonly baseDir?: string } = {}): ProxyConfig {
  const baseDir = options.baseDir ?? process.cwd()
  const o = object(doc, 'config')
  only(o, ['listen', 'policy', 'models', 'apiKeys', 'limits', 'audit', 'logLevel', 'description'], 'config')
  const l = o.listen === undefined ? {} : object(o.listen, 'listen')
  only(l, ['host', 'port'], 'listen')
  if (l.host !== undefined && (typeof l.host !== 'string' || l.host.length === 0)) invalid('listen.host', 'expected a host name or address')
  if (l.port !== undefined && (typeof l.port !== 'number' || !Number.isInteger(l.port) || l.port < 0 || l.port > 65535)) invalid('listen.port', 'expected 0..65535')
  if (typeof o.policy !== 'string' || o.policy.length === 0) invalid('policy', 'required: the client policy file')
  const m = object(o.models, 'models')
  if (Object.keys(m).length === 0) invalid('models', 'name at least one model')
  const models = new Map<string, ModelRoute>()
  for (const [name, v] of Object.entries(m)) {
    const path = `models.${name}`
    const r = object(v, path)
    if (r.discover === true) {
      only(r, ['discover', 'relay'], path)
      models.set(name, { kind: 'discover', ...(r.relay !== undefined ? { relay: url(r.relay, `${path}.relay`) } : {}) })
      continue
    }
    only(r, ['providers'], path)
    if (!Array.isArray(r.providers) || r.providers.length === 0) invalid(`${path}.providers`, 'expected a non-empty list, or { "discover": true }')
    models.set(name, {
      kind: 'static',
      providers: r.providers.map((p, i): ProviderEntry => {
        if (typeof p === 'string') return { url: url(p, `${path}.providers[${i}]`) }
        const e = object(p, `${path}.providers[${i}]`)
        only(e, ['url', 'relay'], `${path}.providers[${i}]`)
        return { url: url(e.url, `${path}.providers[${i}].url`), ...(e.relay !== undefined ? { relay: url(e.relay, `${path}.providers[${i}].relay`) } : {}) }
      }),
    })
  }
  const keys = o.apiKeys ?? []
  if (!Array.isArray(keys)) invalid('apiKeys', 'expected a list of keys (or "sha256:<hex>" of keys)')
  const apiKeyHashes = keys.map((k, i) => {
    if (typeof k !== 'string' || k.length < 8) invalid(`apiKeys[${i}]`, 'expected a key of at least 8 characters, or "sha256:<hex>"')
    const m = /^sha256:([0-9a-fA-F]{64})$/.exec(k)
    return m ? m[1]!.toLowerCase() : apiKeyHash(k)
  })
  const lim = o.limits === undefined ? {} : object(o.limits, 'limits')
  only(lim, ['bodyLimitBytes', 'maxResponseBytes', 'maxAttempts', 'cooldownMs', 'shutdownGraceMs'], 'limits')
  const a = object(o.audit, 'audit')
  only(a, ['file'], 'audit')
  if (typeof a.file !== 'string' || a.file.length === 0) invalid('audit.file', 'required: the JSONL audit file')
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
  if (o.logLevel !== undefined && !levels.includes(o.logLevel as string)) invalid('logLevel', `expected one of ${levels.join(', ')}`)
  return {
    listen: { host: (l.host as string | undefined) ?? '127.0.0.1', port: (l.port as number | undefined) ?? 8787 },
    policy: resolve(baseDir, o.policy),
    models,
    apiKeyHashes,
    limits: {
      bodyLimitBytes: positive(lim.bodyLimitBytes, 'limits.bodyLimitBytes', DEFAULT_PROXY_LIMITS.bodyLimitBytes),
      maxResponseBytes: positive(lim.maxResponseBytes, 'limits.maxResponseBytes', DEFAULT_PROXY_LIMITS.maxResponseBytes),
      maxAttempts: positive(lim.maxAttempts, 'limits.maxAttempts', DEFAULT_PROXY_LIMITS.maxAttempts),
      cooldownMs: positive(lim.cooldownMs, 'limits.cooldownMs', DEFAULT_PROXY_LIMITS.cooldownMs),
      shutdownGraceMs: positive(lim.shutdownGraceMs, 'limits.shutdownGraceMs', DEFAULT_PROXY_LIMITS.shutdownGraceMs),
    },
    audit: { file: resolve(baseDir, a.file) },
    logLevel: (o.logLevel as ProxyLogLevel | undefined) ?? 'info',
  }
}

export async function loadProxyConfig(path: string): Promise<ProxyConfig> {
  let doc: unknown
  try {
    doc = JSON.parse(await readFile(path, 'utf8'))
  } catch (e) {
    throw new ClientError('CLIENT_CONFIG_INVALID', `cannot read the proxy config ${path}`, { cause: e, details: { path } })
  }
  return parseProxyConfig(doc, { baseDir: dirname(resolve(path)) })
}
