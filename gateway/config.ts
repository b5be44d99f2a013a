/**
 * Gateway configuration: a JSON file, then `CGW_*` environment variables
 * on top, checked once against a JSON schema into `GatewayConfig` — the
 * only shape the rest of the gateway reads. Unknown keys are errors (a typo
 * must not silently fall back to a default), and every default is written
 * down here with the reason for it.
 *
 * The optional `enclave` section is opaque to the gateway: it is handed to
 * `createEnclaveFromConfig` (enclave/index.ts), which checks it itself, so
 * one file configures the whole `cgw gateway` process.
 */
import { readFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { GatewayConfigError } from './errors.ts'

/** A token bucket: `requestsPerSecond` refill, up to `burst` tokens held. */
export interface RateOptions {
  readonly requestsPerSecond: number
  readonly burst: number
}

/** Checked gateway options: every field present, every value in range. */
export interface GatewayConfig {
  readonly listen: { readonly host: string; readonly port: number }
  readonly limits: {
    /** Largest encapsulated request accepted, in bytes. */
    readonly bodyLimitBytes: number
    /** Concurrent `POST /v1/ohttp` requests (from body upload to last chunk). */
    readonly maxConcurrentStreams: number
    /** Per client, for every route except health, readiness and metrics. */
    readonly rate: RateOptions
    /** Per client, for `GET /v1/attestation` (each new nonce costs a quote and GPU evidence). */
    readonly attestationRate: RateOptions
  }
  /**
   * How a client is told apart for rate limiting: by socket address, or —
   * only for connections from `trustedPeers` (a relay) — by `header`.
   * `null`: the socket address always.
   */
  readonly clientAddress: { readonly header: string; readonly trustedPeers: readonly string[] } | null
  readonly timeouts: {
    /**
     * Longest time to receive a whole request, headers and body. A stream
     * slot is taken before the body is read, so without this a client that
     * uploads slowly holds slots forever (node's own default is no limit).
     */
    readonly requestMs: number
    /** Bound on enclave calls that reach the engine or the evidence providers: models, attest. */
    readonly upstreamMs: number
    /** From the request being handed to the enclave to the first encapsulated byte. */
    readonly firstByteMs: number
    /** Longest silence between two chunks of a stream before the gateway cancels it. */
    readonly streamIdleMs: number
    /** On SIGTERM/SIGINT: how long running streams may finish before they are cut. */
    readonly shutdownGraceMs: number
  }
  readonly logLevel: LogLevel
  /** Serve `GET /metrics` on the gateway's own port. */
  readonly metrics: boolean
  /** Opaque to the gateway: the enclave's own section, checked by enclave/index.ts. */
  readonly enclave: Readonly<Record<string, unknown>> | null
  /** Register on an AttestationRegistry and anchor the log there (gateway/chain.ts); null: no chain. */
  readonly chain: ChainConfig | null
}

/**
 * The chain section. The transaction key pays gas only: it is the
 * operator's, read from the environment variable named here (never from
 * the file), and it signs nothing an enclave vouches for — registrations
 * are proven by the quote, anchors by the enclave's own epoch key.
 */
export interface ChainConfig {
  /** JSON-RPC endpoints, tried in order. */
  readonly rpcUrls: readonly string[]
  readonly chainId: number
  /** The AttestationRegistry address. */
  readonly registry: `0x${string}`
  /**
   * Name of the environment variable holding the transaction key (0x-prefixed
   * 32-byte hex). Never a `CGW_*` name: those override the config, whose hash
   * is measured into RTMR3, so a key there would change the measurement.
   */
  readonly privateKeyEnv: string
  /** The model this gateway serves and its public base URL, recorded on-chain for discovery. */
  readonly model: string
  /** `{hostname}` becomes the machine's host name (replicas sharing one config: gateway/chain.ts announcedUrl). */
  readonly url: string
  /** At most one checkpoint anchor transaction per this many seconds; 0 disables anchoring. */
  readonly anchorPeriodSeconds: number
  /** Accept a registry deployed with the development root (only for the development TEE). */
  readonly allowDevelopment: boolean
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/**
 * Defaults, each with its reason.
 *
 * - listen 127.0.0.1:8080 — loopback, so a fresh gateway exposes nothing
 *   until the operator binds it outward on purpose (fail closed); and a
 *   plain-HTTP port number, because the gateway does not terminate TLS
 *   (content is end-to-end encrypted by OHTTP; TLS to the relay belongs to
 *   the front proxy), so 8443 would promise something it does not do.
 * - bodyLimitBytes 2 MiB — a 128k-token prompt is about 0.5–1 MB of
 *   JSON-escaped UTF-8 plus OHTTP/BHTTP framing; 2 MiB fits it with margin
 *   while 256 streams × 2 MiB still bounds buffered bodies to 512 MiB.
 * - maxConcurrentStreams 256 — vLLM's default `max_num_seqs`: more
 *   concurrent streams than the engine batches only queue inside it.
 * - rate 10/s, burst 20 — a chat client sends a request every few seconds;
 *   behind a relay every client shares the relay's address, so raise it or
 *   set `clientAddress` there.
 * - attestationRate 1/s, burst 5 — every nonce costs a TDX quote and GPU
 *   evidence collection; verifiers need one per session, not per request.
 * - requestMs 30 s — a 2 MiB body at 1 Mbit/s arrives in ~17 s; a client
 *   slower than that is holding a slot, not sending a prompt.
 * - upstreamMs 10 s — listing models and producing evidence are quick when
 *   healthy; a slow answer is a failure worth reporting.
 * - firstByteMs 120 s — prefill of a long prompt on a loaded GPU can take
 *   tens of seconds before the first token.
 * - streamIdleMs 120 s — a backstop larger than the enclave's own engine
 *   stall timeout, so the enclave's encrypted error chunk wins the race.
 * - shutdownGraceMs 25 s — below Kubernetes' default 30 s termination grace,
 *   leaving time to close the enclave before SIGKILL.
 */
export const DEFAULT_GATEWAY_CONFIG: GatewayConfig = {
  listen: { host: '127.0.0.1', port: 8080 },
  limits: {
    bodyLimitBytes: 2 * 1024 * 1024,
    maxConcurrentStreams: 256,
    rate: { requestsPerSecond: 10, burst: 20 },
    attestationRate: { requestsPerSecond: 1, burst: 5 },
  },
  clientAddress: null,
  timeouts: { requestMs: 30_000, upstreamMs: 10_000, firstByteMs: 120_000, streamIdleMs: 120_000, shutdownGraceMs: 25_000 },
  logLevel: 'info',
  metrics: true,
  enclave: null,
  chain: null,
}

/** One anchor per hour: an auditor's view of the log is at most that stale on-chain, for ~24 transactions a day. */
export const DEFAULT_ANCHOR_PERIOD_SECONDS = 3600

/** Hard bounds: beyond these a value is a mistake, not a tuning choice. */
const MAX_BODY_LIMIT_BYTES = 64 * 1024 * 1024
const MAX_TIMEOUT_MS = 24 * 60 * 60 * 1000

const rateSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    requestsPerSecond: { type: 'number', exclusiveMinimum: 0, maximum: 1_000_000 },
    burst: { type: 'integer', minimum: 1, maximum: 1_000_000 },
  },
} as const

const timeoutSchema = { type: 'integer', minimum: 1, maximum: MAX_TIMEOUT_MS } as const

/** JSON Schema (draft-07, as ajv 8 defaults) of the config file; every property optional. */
export const GATEWAY_CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    listen: {
      type: 'object',
      additionalProperties: false,
      properties: {
        host: { type: 'string', minLength: 1, maxLength: 255 },
        port: { type: 'integer', minimum: 0, maximum: 65535 },
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        bodyLimitBytes: { type: 'integer', minimum: 1, maximum: MAX_BODY_LIMIT_BYTES },
        maxConcurrentStreams: { type: 'integer', minimum: 1, maximum: 1_000_000 },
        rate: rateSchema,
        attestationRate: rateSchema,
      },
    },
    clientAddress: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['header', 'trustedPeers'],
      properties: {
        // An HTTP field name (RFC 9110 §5.1 token), lower-cased by node.
        header: { type: 'string', pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$" },
        trustedPeers: { type: 'array', minItems: 1, maxItems: 256, uniqueItems: true, items: { type: 'string', minLength: 2, maxLength: 45 } },
      },
    },
    timeouts: {
      type: 'object',
      additionalProperties: false,
      properties: {
        requestMs: timeoutSchema,
        upstreamMs: timeoutSchema,
        firstByteMs: timeoutSchema,
        streamIdleMs: timeoutSchema,
        shutdownGraceMs: { type: 'integer', minimum: 0, maximum: MAX_TIMEOUT_MS },
      },
    },
    logLevel: { enum: LOG_LEVELS },
    metrics: { type: 'boolean' },
    enclave: { type: ['object', 'null'] },
    chain: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['rpcUrls', 'chainId', 'registry', 'privateKeyEnv', 'model', 'url'],
      properties: {
        rpcUrls: { type: 'array', minItems: 1, maxItems: 16, items: { type: 'string', pattern: '^https?://', maxLength: 2048 } },
        chainId: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
        registry: { type: 'string', pattern: '^0x[0-9a-fA-F]{40}$' },
        // Not CGW_*: those are config overrides, hashed into the measured config.
        privateKeyEnv: { type: 'string', pattern: '^(?!CGW_)[A-Z_][A-Z0-9_]{0,63}$' },
        model: { type: 'string', minLength: 1, maxLength: 256 },
        url: { type: 'string', pattern: '^https?://', maxLength: 2048 },
        anchorPeriodSeconds: { type: 'integer', minimum: 0, maximum: 30 * 86_400 },
        allowDevelopment: { type: 'boolean' },
      },
    },
  },
} as const

/**
 * Environment variables and the config path each sets. They override the
 * file, so a container can change one value without editing the file.
 * Other `CGW_*` variables are left alone: they may belong to the enclave.
 */
export const GATEWAY_ENV = {
  CGW_LISTEN_HOST: { path: ['listen', 'host'], kind: 'string' },
  CGW_LISTEN_PORT: { path: ['listen', 'port'], kind: 'integer' },
  CGW_BODY_LIMIT_BYTES: { path: ['limits', 'bodyLimitBytes'], kind: 'integer' },
  CGW_MAX_CONCURRENT_STREAMS: { path: ['limits', 'maxConcurrentStreams'], kind: 'integer' },
  CGW_RATE_RPS: { path: ['limits', 'rate', 'requestsPerSecond'], kind: 'number' },
  CGW_RATE_BURST: { path: ['limits', 'rate', 'burst'], kind: 'integer' },
  CGW_ATTESTATION_RATE_RPS: { path: ['limits', 'attestationRate', 'requestsPerSecond'], kind: 'number' },
  CGW_ATTESTATION_RATE_BURST: { path: ['limits', 'attestationRate', 'burst'], kind: 'integer' },
  CGW_CLIENT_ADDRESS_HEADER: { path: ['clientAddress', 'header'], kind: 'string' },
  CGW_TRUSTED_PEERS: { path: ['clientAddress', 'trustedPeers'], kind: 'list' },
  CGW_REQUEST_TIMEOUT_MS: { path: ['timeouts', 'requestMs'], kind: 'integer' },
  CGW_UPSTREAM_TIMEOUT_MS: { path: ['timeouts', 'upstreamMs'], kind: 'integer' },
  CGW_FIRST_BYTE_TIMEOUT_MS: { path: ['timeouts', 'firstByteMs'], kind: 'integer' },
  CGW_STREAM_IDLE_TIMEOUT_MS: { path: ['timeouts', 'streamIdleMs'], kind: 'integer' },
  CGW_SHUTDOWN_GRACE_MS: { path: ['timeouts', 'shutdownGraceMs'], kind: 'integer' },
  CGW_LOG_LEVEL: { path: ['logLevel'], kind: 'string' },
  CGW_METRICS: { path: ['metrics'], kind: 'boolean' },
} as const satisfies Record<string, { path: readonly string[]; kind: 'string' | 'integer' | 'number' | 'boolean' | 'list' }>

type Env = Readonly<Record<string, string | undefined>>

let validator: ValidateFunction | undefined
function validate(document: unknown): readonly ErrorObject[] {
  // strict: a misspelt schema keyword is a bug in this file, caught on first use.
  validator ??= new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(GATEWAY_CONFIG_SCHEMA)
  return validator(document) ? [] : (validator.errors ?? [])
}

function describe(e: ErrorObject): string {
  const where = e.instancePath === '' ? '(top level)' : e.instancePath
  if (e.keyword === 'additionalProperties') return `${where}: unknown key "${String(e.params.additionalProperty)}"`
  return `${where}: ${e.message ?? e.keyword}`
}

function parseEnvValue(name: string, raw: string, kind: 'string' | 'integer' | 'number' | 'boolean' | 'list'): unknown {
  switch (kind) {
    case 'string':
      return raw
    case 'integer':
      if (!/^\d{1,15}$/.test(raw)) throw new GatewayConfigError(`${name} must be a non-negative integer`, { details: { variable: name } })
      return Number(raw)
    case 'number':
      if (!/^\d{1,15}(\.\d{1,15})?$/.test(raw)) throw new GatewayConfigError(`${name} must be a non-negative number`, { details: { variable: name } })
      return Number(raw)
    case 'boolean':
      if (raw !== 'true' && raw !== 'false') throw new GatewayConfigError(`${name} must be "true" or "false"`, { details: { variable: name } })
      return raw === 'true'
    case 'list':
      return raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
  }
}

/** The document with every set `CGW_*` variable written into it (a copy; the input is not changed). */
export function applyGatewayEnv(document: unknown, env: Env): unknown {
  if (typeof document !== 'object' || document === null || Array.isArray(document)) return document
  const out = structuredClone(document) as Record<string, unknown>
  for (const [name, { path, kind }] of Object.entries(GATEWAY_ENV)) {
    const raw = env[name]
    if (raw === undefined || raw === '') continue
    let node = out
    for (const key of path.slice(0, -1)) {
      const next = node[key]
      node[key] = typeof next === 'object' && next !== null && !Array.isArray(next) ? next : {}
      node = node[key] as Record<string, unknown>
    }
    node[path.at(-1)!] = parseEnvValue(name, raw, kind)
  }
  return out
}

/**
 * A config document (already parsed JSON, environment applied) into checked
 * options. Throws `GatewayConfigError` listing every problem at once.
 */
export function parseGatewayConfig(document: unknown): GatewayConfig {
  const errors = validate(document)
  if (errors.length > 0) {
    const problems = errors.map(describe)
    throw new GatewayConfigError(`invalid gateway config: ${problems.join('; ')}`, { details: { problems } })
  }
  const d = document as {
    listen?: Partial<GatewayConfig['listen']>
    limits?: { bodyLimitBytes?: number; maxConcurrentStreams?: number; rate?: Partial<RateOptions>; attestationRate?: Partial<RateOptions> }
    clientAddress?: { header: string; trustedPeers: string[] } | null
    timeouts?: Partial<GatewayConfig['timeouts']>
    logLevel?: LogLevel
    metrics?: boolean
    enclave?: Record<string, unknown> | null
    chain?: (Omit<ChainConfig, 'anchorPeriodSeconds' | 'allowDevelopment'> & { anchorPeriodSeconds?: number; allowDevelopment?: boolean }) | null
  }
  const D = DEFAULT_GATEWAY_CONFIG
  const clientAddress = d.clientAddress ?? null
  if (clientAddress) {
    // Exact addresses only: a peer is trusted to name clients, so no ranges
    // that could quietly include more than the operator meant.
    const bad = clientAddress.trustedPeers.filter((p) => isIP(p) === 0)
    if (bad.length > 0) {
      throw new GatewayConfigError('invalid gateway config: /clientAddress/trustedPeers must be IP addresses', { details: { problems: bad.map((p) => `not an IP address: ${p}`) } })
    }
  }
  return {
    listen: { host: d.listen?.host ?? D.listen.host, port: d.listen?.port ?? D.listen.port },
    limits: {
      bodyLimitBytes: d.limits?.bodyLimitBytes ?? D.limits.bodyLimitBytes,
      maxConcurrentStreams: d.limits?.maxConcurrentStreams ?? D.limits.maxConcurrentStreams,
      rate: { ...D.limits.rate, ...d.limits?.rate },
      attestationRate: { ...D.limits.attestationRate, ...d.limits?.attestationRate },
    },
    clientAddress: clientAddress ? { header: clientAddress.header.toLowerCase(), trustedPeers: [...clientAddress.trustedPeers] } : null,
    timeouts: { ...D.timeouts, ...d.timeouts },
    logLevel: d.logLevel ?? D.logLevel,
    metrics: d.metrics ?? D.metrics,
    enclave: d.enclave ?? null,
    chain: d.chain
      ? {
          ...d.chain,
          rpcUrls: [...d.chain.rpcUrls],
          anchorPeriodSeconds: d.chain.anchorPeriodSeconds ?? DEFAULT_ANCHOR_PERIOD_SECONDS,
          allowDevelopment: d.chain.allowDevelopment ?? false,
        }
      : null,
  }
}

export interface LoadGatewayConfigParameters {
  /** A JSON config file; without one, defaults and environment only. */
  readonly file?: string
  /** Default `process.env`. */
  readonly env?: Env
}

/** Read the file (if any), apply the environment, check the result. */
export async function loadGatewayConfig({ file, env = process.env }: LoadGatewayConfigParameters = {}): Promise<GatewayConfig> {
  let document: unknown = {}
  if (file !== undefined) {
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (e) {
      throw new GatewayConfigError(`cannot read gateway config ${file}`, { cause: e, details: { file } })
    }
    try {
      document = JSON.parse(text)
    } catch (e) {
      throw new GatewayConfigError(`gateway config ${file} is not JSON`, { cause: e, details: { file } })
    }
  }
  return parseGatewayConfig(applyGatewayEnv(document, env))
}
