/**
 * What keeps one client, or a slow engine, from taking the gateway down:
 *
 * - body size: fastify's per-route `bodyLimit` (413 GATEWAY_BODY_TOO_LARGE),
 *   applied by the routes from `gatewayLimits.bodyLimit`;
 * - concurrent streams: a counting semaphore of leases; a request over the
 *   limit is refused before its body is read (503 GATEWAY_TOO_MANY_STREAMS);
 * - per-client rate: token buckets (429 GATEWAY_RATE_LIMITED with
 *   Retry-After), one table per limit, bounded in size; IPv6 clients are
 *   keyed by their /64 (one host usually holds a whole /64);
 * - time: each stream lease carries an AbortSignal that the handle
 *   deadlines, the client's disconnect and shutdown all abort — the same
 *   signal the enclave uses to cancel the engine request.
 *
 * @fastify/rate-limit is not a dependency; a token bucket is a dozen lines.
 */
import type { FastifyRequest, onRequestAsyncHookHandler } from 'fastify'
import { GatewayError } from '../errors.ts'
import type { GatewayConfig, RateOptions } from '../config.ts'
import { sharedPlugin } from './shared.ts'

// ---------------------------------------------------------------- rate --

export interface TokenBucketOptions extends RateOptions {
  /** Milliseconds on any monotonic-enough scale. Default `Date.now`. */
  readonly now?: () => number
  /**
   * Clients tracked at once. The least recently seen client is forgotten
   * beyond this (it comes back with a full bucket), bounding memory under a
   * flood of distinct addresses. Default 100 000.
   */
  readonly maxClients?: number
}

export interface TokenBucketLimiter {
  /** Take one token for `key`: 0 when allowed, else whole seconds until a token is due (RFC 9110 §10.2.3 delay-seconds). */
  take(key: string): number
  /** Clients currently tracked. */
  readonly size: number
}

/** Token buckets keyed by client: refill `requestsPerSecond`, hold at most `burst`. */
export function createTokenBucketLimiter({ requestsPerSecond, burst, now = Date.now, maxClients = 100_000 }: TokenBucketOptions): TokenBucketLimiter {
  if (!(requestsPerSecond > 0) || !Number.isInteger(burst) || burst < 1) {
    throw new RangeError('token bucket needs requestsPerSecond > 0 and an integer burst >= 1')
  }
  // Map iteration order is insertion order: re-inserting on every touch keeps
  // the least recently seen client first, which is the one evicted.
  const buckets = new Map<string, { tokens: number; at: number }>()
  return {
    take(key) {
      const t = now()
      const b = buckets.get(key)
      let tokens = burst
      if (b) {
        buckets.delete(key)
        // A clock that steps back refills nothing rather than draining.
        tokens = Math.min(burst, b.tokens + (Math.max(0, t - b.at) / 1000) * requestsPerSecond)
      }
      let wait = 0
      if (tokens >= 1) tokens -= 1
      else wait = Math.max(1, Math.ceil((1 - tokens) / requestsPerSecond))
      buckets.set(key, { tokens, at: t })
      if (buckets.size > maxClients) buckets.delete(buckets.keys().next().value!)
      return wait
    },
    get size() {
      return buckets.size
    },
  }
}

/** Longest client identity kept from a relay header: a bound on memory per bucket. */
const MAX_CLIENT_HEADER_LENGTH = 128

function normalizeAddress(address: string | undefined): string {
  if (!address) return 'unknown'
  // A dual-stack listener reports IPv4 peers as IPv4-mapped IPv6 (RFC 4291 §2.5.5.2).
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address
}

/** The eight 16-bit groups of an IPv6 address (RFC 4291 §2.2 text forms, zone id dropped), or null. */
function ipv6Groups(address: string): number[] | null {
  let a = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address
  const zone = a.indexOf('%')
  if (zone >= 0) a = a.slice(0, zone)
  if (!a.includes(':') || a.length > 45) return null
  const halves = a.split('::')
  if (halves.length > 2) return null
  const parse = (part: string): number[] | null => {
    if (part === '') return []
    const out: number[] = []
    const pieces = part.split(':')
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i]!
      if (i === pieces.length - 1 && p.includes('.')) {
        // RFC 4291 §2.2 form 3: the low 32 bits as dotted IPv4.
        const v4 = p.split('.')
        if (v4.length !== 4 || !v4.every((o) => /^\d{1,3}$/.test(o) && Number(o) <= 255)) return null
        out.push((Number(v4[0]) << 8) | Number(v4[1]), (Number(v4[2]) << 8) | Number(v4[3]))
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) out.push(parseInt(p, 16))
      else return null
    }
    return out
  }
  const head = parse(halves[0]!)
  const tail = halves.length === 2 ? parse(halves[1]!) : []
  if (head === null || tail === null) return null
  const missing = 8 - head.length - tail.length
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null
  return [...head, ...new Array<number>(missing).fill(0), ...tail]
}

/**
 * The rate-limit identity of an address. IPv6 clients are keyed by their
 * /64 prefix: RFC 4291 §2.5.4 gives every subnet a 64-bit interface id, and
 * a single host commonly holds a whole /64 (SLAAC privacy addresses, RFC
 * 8981), so a per-address bucket would give one client 2^64 buckets. IPv4
 * (and anything that does not parse) is kept whole.
 */
export function rateLimitKeyOf(address: string): string {
  const groups = ipv6Groups(address)
  if (groups === null) return address
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`
}

/**
 * How a request's client is named for rate limiting: the socket's peer
 * address (an IPv6 peer by its /64, see `rateLimitKeyOf`); or, when the peer
 * is a configured trusted relay, the relay's header (first value, bounded;
 * an IPv6 address there is reduced to its /64 too). An untrusted peer's
 * header is ignored, so a client cannot pick its own bucket. Trust itself
 * is decided on the exact peer address, never on a prefix.
 */
export function clientKeyResolver(clientAddress: GatewayConfig['clientAddress']): (request: FastifyRequest) => string {
  if (clientAddress === null) return (request) => `a:${rateLimitKeyOf(normalizeAddress(request.socket.remoteAddress))}`
  const trusted = new Set(clientAddress.trustedPeers.map((p) => normalizeAddress(p)))
  const header = clientAddress.header
  return (request) => {
    const peer = normalizeAddress(request.socket.remoteAddress)
    if (trusted.has(peer)) {
      const raw = request.headers[header]
      const value = (Array.isArray(raw) ? raw[0] : raw)?.split(',')[0]?.trim()
      if (value) return `h:${rateLimitKeyOf(normalizeAddress(value.slice(0, MAX_CLIENT_HEADER_LENGTH)))}`
    }
    return `a:${rateLimitKeyOf(peer)}`
  }
}

/** An onRequest hook charging one token to the request's client. */
export function rateLimitHook(limiter: TokenBucketLimiter, keyOf: (request: FastifyRequest) => string): onRequestAsyncHookHandler {
  return async (request) => {
    const wait = limiter.take(keyOf(request))
    if (wait > 0) throw new GatewayError('GATEWAY_RATE_LIMITED', { headers: { 'retry-after': String(wait) } })
  }
}

// ------------------------------------------------------------- streams --

/** One held stream slot: its cancellation signal and the way to give it back. */
export interface StreamLease {
  /** Aborted by a deadline, the client's disconnect or shutdown; the reason is a GatewayError. */
  readonly signal: AbortSignal
  abort(reason: GatewayError): void
  /** Give the slot back (idempotent). */
  release(): void
}

export interface StreamSlots {
  readonly max: number
  readonly active: number
  /** A lease, or null when all `max` slots are held. */
  tryAcquire(): StreamLease | null
  /** Abort every held lease (shutdown past its grace period). */
  abortAll(reason: GatewayError): void
}

export function createStreamSlots(max: number): StreamSlots {
  const leases = new Set<StreamLease>()
  return {
    max,
    get active() {
      return leases.size
    },
    tryAcquire() {
      if (leases.size >= max) return null
      const controller = new AbortController()
      const lease: StreamLease = {
        signal: controller.signal,
        abort: (reason) => {
          if (!controller.signal.aborted) controller.abort(reason)
        },
        release: () => void leases.delete(lease),
      }
      leases.add(lease)
      return lease
    },
    abortAll(reason) {
      for (const lease of leases) lease.abort(reason)
    },
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The stream slot of a `POST /v1/ohttp` request (limits plugin). */
    cgwStreamLease: StreamLease | null
  }
}

/**
 * An onRequest hook holding one stream slot for the whole exchange: taken
 * before the body is read (a full gateway should not buffer bodies it will
 * refuse), given back when the response closes. A response that closes
 * unfinished means the client left: the lease is aborted so the enclave
 * stops the engine.
 */
export function streamSlotHook(slots: StreamSlots, requestMs: number): onRequestAsyncHookHandler {
  return async (request, reply) => {
    const lease = slots.tryAcquire()
    if (lease === null) throw new GatewayError('GATEWAY_TOO_MANY_STREAMS', { headers: { 'retry-after': '1' } })
    request.cgwStreamLease = lease
    // The slot is held from before the body is read: a body that has not
    // fully arrived in time drops the connection (node checks its own
    // requestTimeout only every 30 s), which gives the slot back.
    const upload = setTimeout(() => {
      if (!request.raw.complete) request.raw.destroy()
    }, requestMs)
    upload.unref()
    let finished = false
    reply.raw.once('finish', () => (finished = true))
    reply.raw.once('close', () => {
      clearTimeout(upload)
      if (!finished) lease.abort(new GatewayError('GATEWAY_CLIENT_CLOSED'))
      lease.release()
    })
  }
}

/**
 * A restartable timer that aborts `lease` with GATEWAY_UPSTREAM_TIMEOUT: the
 * first-byte deadline, then (re-armed at the first chunk) the stream's idle
 * deadline, refreshed per chunk. One timer per request: `refresh()` restarts
 * the same timer in place (O(1)), where re-arming per token would cost a
 * timer-list removal and insertion.
 */
export interface LeaseDeadline {
  /** (Re)start the countdown at `ms`. */
  arm(ms: number): void
  /** Restart the armed countdown from now, same length; nothing when none is armed (cleared or fired). */
  refresh(): void
  clear(): void
}

export function leaseDeadline(lease: StreamLease): LeaseDeadline {
  let timer: NodeJS.Timeout | undefined
  const clear = () => {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
  }
  return {
    arm(ms) {
      clear()
      const armed = setTimeout(() => {
        // Forgotten once fired: Timeout.refresh() would otherwise start a spent timer again.
        if (timer === armed) timer = undefined
        lease.abort(new GatewayError('GATEWAY_UPSTREAM_TIMEOUT'))
      }, ms)
      timer = armed
    },
    refresh() {
      timer?.refresh()
    },
    clear,
  }
}

// ---------------------------------------------------------------- time --

/**
 * `promise`, or a rejection with `signal.reason` as soon as `signal` aborts —
 * whether or not the callee honours the signal, the gateway stops waiting.
 * A late rejection of `promise` is absorbed (never an unhandled rejection).
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {})
    return Promise.reject(signal.reason)
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      },
    )
  })
}

/**
 * The upstream timeout: run `call` with a signal that aborts after `ms`
 * with GATEWAY_UPSTREAM_TIMEOUT, and stop waiting at that moment.
 */
export async function withinTimeout<T>(ms: number, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(new GatewayError('GATEWAY_UPSTREAM_TIMEOUT')), ms)
  try {
    return await untilAborted(Promise.resolve().then(() => call(controller.signal)), controller.signal)
  } finally {
    clearTimeout(timer)
  }
}

// -------------------------------------------------------------- plugin --

/** What the routes read from `app.gatewayLimits`. */
export interface GatewayLimits {
  readonly bodyLimit: number
  readonly timeouts: GatewayConfig['timeouts']
  readonly slots: StreamSlots
  /** The general per-client limit (every route but health, readiness, metrics). */
  readonly rateLimit: onRequestAsyncHookHandler
  /** The tighter per-client limit of `GET /v1/attestation`. */
  readonly attestationRateLimit: onRequestAsyncHookHandler
  readonly streamSlot: onRequestAsyncHookHandler
}

declare module 'fastify' {
  interface FastifyInstance {
    gatewayLimits: GatewayLimits
  }
}

export interface LimitsPluginOptions extends Record<string, unknown> {
  readonly config: GatewayConfig
  /** Clock for the token buckets, ms. Default `Date.now`. */
  readonly now?: () => number
}

/** Decorates the instance with `gatewayLimits`; feeds the active-streams gauge when metrics are registered. */
export const limitsPlugin = sharedPlugin<LimitsPluginOptions>('cgw-limits', async (app, { config, now = Date.now }) => {
  const keyOf = clientKeyResolver(config.clientAddress)
  const slots = createStreamSlots(config.limits.maxConcurrentStreams)
  app.decorateRequest('cgwStreamLease', null)
  app.decorate('gatewayLimits', {
    bodyLimit: config.limits.bodyLimitBytes,
    timeouts: config.timeouts,
    slots,
    rateLimit: rateLimitHook(createTokenBucketLimiter({ ...config.limits.rate, now }), keyOf),
    attestationRateLimit: rateLimitHook(createTokenBucketLimiter({ ...config.limits.attestationRate, now }), keyOf),
    streamSlot: streamSlotHook(slots, config.timeouts.requestMs),
  } satisfies GatewayLimits)
  if (app.hasDecorator('gatewayMetrics')) app.gatewayMetrics.setActiveStreamsSource(() => slots.active)
})
