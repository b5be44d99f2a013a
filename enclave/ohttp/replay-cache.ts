/**
 * Replay protection for encapsulated requests (RFC 9458 §6.5).
 *
 * The HPKE encapsulated key `enc` is "a high-entropy value that is freshly
 * generated for every request" (§6.5), so it names a request. The cache
 * remembers SHA-256(hdr || enc), truncated to 128 bits (collision chance
 * negligible at any size that fits in memory), for `windowMs` after first
 * sight; a second sighting inside the window is `ENCLAVE_OHTTP_REPLAYED`.
 * The server records a request only after it decrypts, so forged junk
 * cannot fill the cache.
 *
 * Window: set it to at least the lifetime of a key (epoch + grace period).
 * A replay after the window then meets a destroyed key and fails as
 * `ENCLAVE_OHTTP_EPOCH_EXPIRED` / `ENCLAVE_OHTTP_KEY_UNKNOWN`, so no
 * request can ever be served twice. A shorter window lets a relay replay a
 * request once the window has passed but its key still lives.
 *
 * Full cache — fail closed: when `maxEntries` unexpired entries are held, a
 * new request is refused with `ENCLAVE_OHTTP_REPLAY_CACHE_FULL` (HTTP 503) rather
 * than an old entry forgotten. Forgetting would silently shrink the window
 * to however long it took to fill the cache — exactly the moment an attacker
 * flooding requests would choose to replay. Refusing keeps the guarantee and
 * turns the flood into visible unavailability, which rate limits address.
 * Size `maxEntries` to the peak request rate times the window (each entry
 * costs on the order of 100 bytes).
 *
 * Time is the `now` parameter (milliseconds, monotonic preferred); entries
 * expire in insertion order, and a clock that steps back only delays expiry
 * (never forgets early).
 */
import { createHash } from 'node:crypto'
import { EnclaveError } from '../errors.ts'
import { invalidArgument } from './errors.ts'

export interface ReplayCacheOptions {
  /** How long a request is remembered after first sight, in ms (> 0). */
  readonly windowMs: number
  /** Most requests remembered at once (a positive integer); beyond it, new requests are refused. */
  readonly maxEntries: number
  /** The clock, in ms. */
  readonly now: () => number
}

export interface ReplayCache {
  /**
   * Record the request named by `id` (hdr || enc). Throws
   * `ENCLAVE_OHTTP_REPLAYED` if it was recorded less than `windowMs` ago,
   * and `ENCLAVE_OHTTP_REPLAY_CACHE_FULL` (recording nothing) when the cache is full
   * of unexpired entries.
   */
  check(id: Uint8Array): void
  /** Entries held (expired ones may linger until the next `check`). */
  readonly size: number
}

export function createReplayCache(options: ReplayCacheOptions): ReplayCache {
  const { windowMs, maxEntries, now } = options
  if (!(Number.isFinite(windowMs) && windowMs > 0)) invalidArgument('windowMs must be a positive number of milliseconds')
  if (!(Number.isSafeInteger(maxEntries) && maxEntries > 0)) invalidArgument('maxEntries must be a positive integer')
  if (typeof now !== 'function') invalidArgument('now must be a clock function returning milliseconds')

  /** key → expiry time; Map iteration order is insertion order, i.e. oldest first. */
  const seen = new Map<string, number>()

  function evictExpired(t: number): void {
    for (const [key, expiry] of seen) {
      if (expiry > t) break
      seen.delete(key)
    }
  }

  return {
    check(id: Uint8Array): void {
      const t = now()
      if (!Number.isFinite(t)) invalidArgument('the replay cache clock returned a non-finite time')
      const key = createHash('sha256').update(id).digest().subarray(0, 16).toString('latin1')
      evictExpired(t)
      const expiry = seen.get(key)
      if (expiry !== undefined) {
        if (expiry > t) throw new EnclaveError('ENCLAVE_OHTTP_REPLAYED', 'this encapsulated request was seen before')
        seen.delete(key) // expired but not yet evicted (clock stepped back earlier): treat as unseen
      }
      if (seen.size >= maxEntries) {
        throw new EnclaveError('ENCLAVE_OHTTP_REPLAY_CACHE_FULL', 'the replay cache is full of unexpired entries; refusing new requests', {
          details: { maxEntries },
        })
      }
      seen.set(key, t + windowMs)
    },
    get size() {
      return seen.size
    },
  }
}
