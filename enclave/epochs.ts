/**
 * Key epochs: each epoch has an OHTTP key pair (RFC 9458 §3: the key config
 * clients encrypt to) and a secp256k1 signing key (receipts), both made in
 * memory when the epoch starts and destroyed after it ends plus a grace
 * period, so a client that fetched the key config just before a rotation
 * still gets its request decrypted.
 *
 * Numbering. Epoch n covers wall-clock time [n·L, (n+1)·L) for the epoch
 * length L, counted from the Unix epoch: numbers grow across restarts and
 * every replica agrees what epoch it is, without storing anything. The first
 * epoch of a process is the one containing its start, so it may be short.
 * A restart inside one window makes the same number with new keys; the keys
 * (key config, signing address) tell the two apart, and both are bound in
 * the quote. Numbers are u64 bigints (the binding's `uint64 epoch`).
 *
 * Key ids. RFC 9458 §3 gives a key config a one-byte id; epoch n uses
 * n mod 256. At most two epochs are live at once (grace ≤ epoch length), so
 * ids only collide when the clock jumped 256·k epochs at once (a suspended
 * VM); then the old epoch is destroyed at once rather than keep an id the
 * new one uses — a client never sees one id mean two keys.
 *
 * Time comes from `now`; the manager's own timer (unref'd setTimeout) only
 * decides *when* to look, and `lookup` re-checks the clock itself, so an
 * epoch past its grace is refused even if the timer is late. Keys are never
 * written to disk or logged: epochs print and serialise as public data only.
 */
import { inspect } from 'node:util'
import { ConfigError } from '../attestation/errors.ts'
import { EnclaveError } from './errors.ts'
import { createSigningKey, type SigningKey } from './keys.ts'
import type { AttestationLogSink } from './log/sink.ts'

/**
 * The part of an OHTTP key pair the manager needs: its RFC 9458 §3.1 key
 * config bytes and key id, and a way to wipe the private key. The real one is
 * enclave/ohttp's `generateOhttpKeyPair(keyId)`.
 */
export interface OhttpKeyLike {
  /** RFC 9458 §3.1 Key Identifier (8 bits). */
  readonly keyId: number
  /** The encoded key config (RFC 9458 §3.1), as bound in REPORTDATA. */
  readonly keyConfig: Uint8Array
  destroy(): void
}

/** RFC 9458 §3.1: the key identifier is one byte. */
export const KEY_ID_SPACE = 256n
const U64_MAX = (1n << 64n) - 1n
/** Largest delay setTimeout takes (2^31 − 1 ms); longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1
/** Back-off before retrying a rotation that failed (the key factory threw). */
const RETRY_MS = 1000

export interface Epoch<K extends OhttpKeyLike = OhttpKeyLike> {
  readonly number: bigint
  /** `number mod 256`, equal to `ohttpKey.keyId`. */
  readonly keyId: number
  readonly ohttpKey: K
  readonly signingKey: SigningKey
  /** When this process made it (ms since the Unix epoch, from `now`). */
  readonly createdAt: number
  /** End of its window, (number + 1)·L: from then on it is not offered to new clients. */
  readonly expiresAt: number
  /** Public view only. */
  toJSON(): { number: string; keyId: number; signingAddress: string; createdAt: string; expiresAt: string }
}

export type EpochLookup<K extends OhttpKeyLike = OhttpKeyLike> =
  /** `current`: the epoch offered now; otherwise the previous one, decrypting until `liveUntil`. */
  | { readonly status: 'live'; readonly epoch: Epoch<K>; readonly current: boolean; readonly liveUntil: number | null }
  /** The id belonged to an epoch of this process whose keys are destroyed (ENCLAVE_OHTTP_EPOCH_EXPIRED). */
  | { readonly status: 'expired'; readonly keyId: number; readonly epoch: bigint }
  /** No epoch of this process used the id (ENCLAVE_OHTTP_KEY_UNKNOWN). */
  | { readonly status: 'unknown'; readonly keyId: number }

export interface EpochChange<K extends OhttpKeyLike = OhttpKeyLike> {
  readonly current: Epoch<K>
  /** The epoch just retired (live until `previousLiveUntil`), or null when it was destroyed at once. */
  readonly previous: Epoch<K> | null
  readonly previousLiveUntil: number | null
}

export interface EpochManagerOptions<K extends OhttpKeyLike = OhttpKeyLike> {
  /** Epoch length L in ms (a positive integer). */
  readonly epochLengthMs: number
  /** How long a retired epoch keeps decrypting, in ms (0 ≤ grace ≤ L). */
  readonly graceMs: number
  /** The clock, ms since the Unix epoch. */
  readonly now: () => number
  /** Make the OHTTP key pair of a new epoch with this key id (enclave/ohttp's generateOhttpKeyPair). */
  readonly newOhttpKey: (keyId: number) => K | Promise<K>
  /** Make an epoch's signing key; default `createSigningKey`. */
  readonly newSigningKey?: () => SigningKey
  /** Called after every rotation (not for the first epoch: read `current()`). Exceptions go to `onError`. */
  readonly onChange?: (change: EpochChange<K>) => void
  /** Failures of timer-driven work (a rotation whose key factory threw; a throwing `onChange`). Default: ignored, the timer retries. */
  readonly onError?: (error: unknown) => void
  /** Rotate and destroy on the manager's own timer; default true. Tests with a fake clock call `rotateIfDue()`. */
  readonly autoRotate?: boolean
  /**
   * The attestation log (enclave/log/sink.ts): every epoch, the first one
   * included, is recorded durably before it is offered; a rotation whose
   * record fails does not happen (the timer retries).
   */
  readonly logSink?: Pick<AttestationLogSink, 'epochChange'> | null
}

export interface EpochManager<K extends OhttpKeyLike = OhttpKeyLike> {
  /** The epoch offered to new clients. Throws ENCLAVE_CLOSED after `close()`. */
  current(): Epoch<K>
  /** Live epochs, newest first: the current one, then the previous one while in grace. */
  live(): readonly Epoch<K>[]
  /** Which epoch a request's key id (RFC 9458 §4.1 header) belongs to, checked against the clock now. */
  lookup(keyId: number): EpochLookup<K>
  /**
   * Destroy epochs past their grace and, if the current epoch's window has
   * ended, start the next one. Resolves true when it rotated. Concurrent calls
   * share one rotation.
   */
  rotateIfDue(): Promise<boolean>
  /** Stop the timer and destroy every key. Idempotent. */
  close(): void
}

function invalid(what: string): never {
  throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `createEpochManager: ${what}`)
}

function closed(): never {
  throw new EnclaveError('ENCLAVE_CLOSED', 'the epoch manager is closed')
}

interface Retired<K extends OhttpKeyLike> {
  readonly epoch: Epoch<K>
  readonly liveUntil: number
}

function destroyEpoch(e: Epoch): void {
  e.signingKey.destroy()
  e.ohttpKey.destroy()
}

/** Start the manager with the epoch containing `now()`. */
export async function createEpochManager<K extends OhttpKeyLike>(options: EpochManagerOptions<K>): Promise<EpochManager<K>> {
  const { epochLengthMs, graceMs, now, newOhttpKey } = options ?? ({} as EpochManagerOptions<K>)
  if (!Number.isSafeInteger(epochLengthMs) || epochLengthMs <= 0) invalid('epochLengthMs must be a positive integer')
  if (!Number.isSafeInteger(graceMs) || graceMs < 0 || graceMs > epochLengthMs) {
    invalid('graceMs must be an integer between 0 and epochLengthMs (at most two epochs live at once)')
  }
  if (typeof now !== 'function') invalid('now must be a clock function returning ms since the Unix epoch')
  if (typeof newOhttpKey !== 'function') invalid('newOhttpKey must be a function of the key id')
  const newSigningKey = options.newSigningKey ?? createSigningKey
  const autoRotate = options.autoRotate ?? true
  const L = BigInt(epochLengthMs)

  const clock = (): number => {
    const t = now()
    if (!Number.isFinite(t) || t < 0) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'createEpochManager: now() returned an invalid time')
    return t
  }
  const windowOf = (t: number): bigint => BigInt(Math.floor(t)) / L

  async function makeEpoch(number: bigint, at: number): Promise<Epoch<K>> {
    if (number > U64_MAX) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'createEpochManager: epoch number exceeds u64')
    const keyId = Number(number % KEY_ID_SPACE)
    const signingKey = newSigningKey()
    let ohttpKey: K
    try {
      ohttpKey = await newOhttpKey(keyId)
    } catch (e) {
      signingKey.destroy()
      throw e
    }
    if (ohttpKey?.keyId !== keyId || !(ohttpKey.keyConfig instanceof Uint8Array)) {
      signingKey.destroy()
      ohttpKey?.destroy?.()
      throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'createEpochManager: newOhttpKey returned a key with another key id or no key config', {
        details: { expectedKeyId: keyId },
      })
    }
    const expiresAt = Number((number + 1n) * L)
    const view = () => ({
      number: number.toString(),
      keyId,
      signingAddress: signingKey.address,
      createdAt: new Date(at).toISOString(),
      expiresAt: new Date(expiresAt).toISOString(),
    })
    const epoch: Epoch<K> = { number, keyId, ohttpKey, signingKey, createdAt: at, expiresAt, toJSON: view }
    Object.defineProperty(epoch, inspect.custom, { value: () => `Epoch ${JSON.stringify(view())}`, enumerable: false })
    return Object.freeze(epoch)
  }

  const logSink = options.logSink ?? null
  const logEpoch = async (e: Epoch<K>, previous: { epoch: bigint; liveUntil: number } | null): Promise<void> => {
    if (logSink === null) return
    try {
      await logSink.epochChange({ epoch: e.number, signingAddress: e.signingKey.address, keyConfig: e.ohttpKey.keyConfig, expiresAt: e.expiresAt, previous })
    } catch (err) {
      destroyEpoch(e)
      throw err
    }
  }

  const startedAt = clock()
  let current: Epoch<K> = await makeEpoch(windowOf(startedAt), startedAt)
  await logEpoch(current, null)
  let previous: Retired<K> | null = null
  /** Last destroyed epoch per key id, to tell "expired" from "unknown". */
  const expired = new Map<number, bigint>()
  let isClosed = false
  let rotating: Promise<boolean> | null = null
  let timer: NodeJS.Timeout | null = null

  function retire(r: Retired<K>): void {
    destroyEpoch(r.epoch)
    expired.set(r.epoch.keyId, r.epoch.number)
  }

  /** Destroy the previous epoch once its grace is over. */
  function sweep(t: number): void {
    if (previous !== null && t >= previous.liveUntil) {
      retire(previous)
      previous = null
    }
  }

  function report(e: unknown): void {
    try {
      options.onError?.(e)
    } catch {
      // A failing error handler must not stop the timer.
    }
  }

  async function rotate(): Promise<boolean> {
    const t = clock()
    sweep(t)
    if (t < current.expiresAt) return false
    const w = windowOf(t)
    const nextNumber = w > current.number ? w : current.number + 1n
    const next = await makeEpoch(nextNumber, t)
    if (isClosed) {
      destroyEpoch(next)
      return false
    }
    // Recorded before it is offered; the previous epoch's end of grace is as of now (± the log write).
    await logEpoch(next, { epoch: current.number, liveUntil: clock() + graceMs })
    if (isClosed) {
      destroyEpoch(next)
      return false
    }
    const at = clock()
    sweep(at)
    const old = current
    // A live epoch holding the new key id (only after a jump of 256·k epochs) goes at once.
    if (previous !== null && previous.epoch.keyId === next.keyId) {
      retire(previous)
      previous = null
    }
    // Grace ≤ L, so the previous epoch's grace is over unless this rotation
    // runs early relative to the last one's lateness; at most two stay live.
    if (previous !== null) retire(previous)
    const oldEntry: Retired<K> = { epoch: old, liveUntil: at + graceMs }
    current = next
    expired.delete(next.keyId)
    if (old.keyId === next.keyId || graceMs === 0) {
      retire(oldEntry)
      previous = null
    } else {
      previous = oldEntry
    }
    try {
      options.onChange?.({ current, previous: previous?.epoch ?? null, previousLiveUntil: previous?.liveUntil ?? null })
    } catch (e) {
      report(e)
    }
    return true
  }

  function rotateIfDue(): Promise<boolean> {
    if (isClosed) return Promise.resolve(false)
    rotating ??= rotate().finally(() => {
      rotating = null
    })
    return rotating
  }

  function arm(delay: number): void {
    if (!autoRotate || isClosed) return
    if (timer !== null) clearTimeout(timer)
    timer = setTimeout(tick, Math.min(Math.max(0, Math.ceil(delay)), MAX_TIMER_MS))
    timer.unref()
  }

  function schedule(): void {
    const t = clock()
    const deadline = Math.min(current.expiresAt, previous?.liveUntil ?? Infinity)
    arm(deadline - t)
  }

  function tick(): void {
    timer = null
    rotateIfDue()
      .then(() => {
        if (!isClosed) schedule()
      })
      .catch((e: unknown) => {
        // Keep serving the current epoch past its window rather than stop: retry soon.
        report(e)
        arm(Math.min(RETRY_MS, epochLengthMs))
      })
  }

  schedule()

  return {
    current() {
      if (isClosed) closed()
      return current
    },
    live() {
      if (isClosed) closed()
      sweep(clock())
      return previous === null ? [current] : [current, previous.epoch]
    },
    lookup(keyId) {
      if (isClosed) closed()
      if (!Number.isInteger(keyId) || keyId < 0 || keyId > 255) {
        throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'lookup: keyId must be an integer 0..255 (RFC 9458 §3.1)')
      }
      sweep(clock())
      if (current.keyId === keyId) return { status: 'live', epoch: current, current: true, liveUntil: null }
      if (previous !== null && previous.epoch.keyId === keyId) {
        return { status: 'live', epoch: previous.epoch, current: false, liveUntil: previous.liveUntil }
      }
      const number = expired.get(keyId)
      return number === undefined ? { status: 'unknown', keyId } : { status: 'expired', keyId, epoch: number }
    },
    rotateIfDue,
    close() {
      if (isClosed) return
      isClosed = true
      if (timer !== null) clearTimeout(timer)
      timer = null
      if (previous !== null) retire(previous)
      previous = null
      destroyEpoch(current)
    },
  }
}
