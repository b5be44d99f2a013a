/**
 * The gateway's registration worker: keeps this enclave registered on-chain
 * (AttestationRegistry) — at start, again at every key epoch change, and
 * before a record would expire — retrying with capped exponential backoff
 * when the RPC or the chain says no. It writes only through a
 * RegistryWriter (contracts/registry-types.ts; contracts/client implements
 * it with viem) and makes evidence only through enclave/registration.ts, so
 * it handles nothing secret: quotes and enclave data are public.
 *
 * One registration runs at a time; an epoch change during one starts the
 * next round as soon as it settles. `status()` feeds /readyz: ready means the current
 * epoch's keys are registered and the record has not expired.
 * `onRegistered` hands each success to the transparency log.
 */
import type { Hex } from 'viem'
import { BaseError, ConfigError } from '../attestation/errors.ts'
import { stripCertificationData } from '../contracts/client/collateral.ts'
import type { RegistryWriter } from '../contracts/registry-types.ts'
import type { RegistrationEvidenceSource } from '../enclave/registration.ts'

export interface RegisteredEvent {
  readonly txHash: Hex
  readonly enclaveId: Hex
  readonly epoch: bigint
  readonly blockNumber: bigint
}

export interface RegistrationStatus {
  readonly state: 'idle' | 'registering' | 'registered' | 'retrying' | 'stopped'
  /** True when the current epoch is registered and its record is unexpired (by the local clock). */
  readonly ready: boolean
  readonly epoch: bigint | null
  readonly enclaveId: Hex | null
  readonly txHash: Hex | null
  readonly blockNumber: bigint | null
  /** Unix seconds. */
  readonly expiresAt: bigint | null
  /** Failed attempts since the last success. */
  readonly failures: number
  readonly lastError: { readonly code: string; readonly message: string } | null
}

export interface RegistrationWorkerOptions {
  readonly registry: RegistryWriter
  readonly evidence: RegistrationEvidenceSource
  readonly epochs: { current(): { readonly number: bigint } }
  readonly onRegistered?: (event: RegisteredEvent) => void
  readonly logger?: { info(o: object, msg?: string): void; warn(o: object, msg?: string): void }
  /** First retry delay and cap, ms; default 1 s and 5 min. */
  readonly retryInitialMs?: number
  readonly retryMaxMs?: number
  /** How often to look for an epoch change or a record nearing expiry, ms; default 10 s. */
  readonly pollMs?: number
  /** Renew this many seconds before the record expires; default 600. */
  readonly renewBeforeSeconds?: bigint
  /** Unix ms; default Date.now. */
  readonly now?: () => number
}

export interface RegistrationWorker {
  /** Register now and keep registered. Idempotent. */
  start(): void
  /** Tell the worker the epoch changed (EpochManager onChange); it re-registers at once. */
  epochChanged(): void
  status(): RegistrationStatus
  /** Stop; resolves when any registration in flight has settled. */
  stop(): Promise<void>
}

function errorInfo(e: unknown): { code: string; message: string } {
  if (e instanceof BaseError) return { code: e.code, message: e.shortMessage }
  return { code: 'UNKNOWN', message: e instanceof Error ? e.message : String(e) }
}

export function createRegistrationWorker(options: RegistrationWorkerOptions): RegistrationWorker {
  const o = options ?? ({} as RegistrationWorkerOptions)
  const invalid = (what: string): never => {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `createRegistrationWorker: ${what}`)
  }
  // hasPckCert included: attempt() calls it unconditionally, so a writer without it is refused here, not at the first try.
  if (typeof o.registry?.register !== 'function' || typeof o.registry.freshnessBlock !== 'function' || typeof o.registry.hasPckCert !== 'function') {
    invalid('registry must be a RegistryWriter')
  }
  if (typeof o.evidence !== 'function') invalid('evidence must be a registration evidence source')
  if (typeof o.epochs?.current !== 'function') invalid('epochs must have current()')
  const initial = o.retryInitialMs ?? 1_000
  const max = o.retryMaxMs ?? 300_000
  const pollMs = o.pollMs ?? 10_000
  const renewBefore = o.renewBeforeSeconds ?? 600n
  const now = o.now ?? Date.now
  if (!(initial > 0 && max >= initial && pollMs > 0)) invalid('retry and poll intervals must be positive, max ≥ initial')

  let state: RegistrationStatus['state'] = 'idle'
  let last: { epoch: bigint; enclaveId: Hex; txHash: Hex; blockNumber: bigint; expiresAt: bigint } | null = null
  let failures = 0
  let lastError: RegistrationStatus['lastError'] = null
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> | null = null
  let started = false
  let stopped = false
  /** An epoch change arrived while a registration was running: go again right after it. */
  let again = false

  const due = (): boolean => {
    if (last === null) return true
    if (last.epoch !== o.epochs.current().number) return true
    return BigInt(Math.floor(now() / 1000)) + renewBefore >= last.expiresAt
  }

  function schedule(ms: number): void {
    if (stopped) return
    clearTimeout(timer)
    timer = setTimeout(tick, ms)
    timer.unref?.()
  }

  async function attempt(): Promise<void> {
    const block = await o.registry.freshnessBlock()
    const ev = await o.evidence({ blockHash: block.hash, blockNumber: block.number, chainId: o.registry.chainId, registry: o.registry.address })
    const cached = await o.registry.hasPckCert(ev.pckCertId)
    const result = await o.registry.register({
      // Only signed bytes go on-chain; the PEM chain is replaced by the cached certificate id.
      quote: stripCertificationData(ev.quote),
      pckCertDer: cached ? null : ev.pckCertDer,
      pckCertId: ev.pckCertId,
      data: ev.data,
    })
    last = { epoch: ev.data.epoch, enclaveId: result.enclaveId, txHash: result.txHash, blockNumber: result.blockNumber, expiresAt: result.expiresAt }
    failures = 0
    lastError = null
    state = 'registered'
    o.logger?.info({ enclaveId: result.enclaveId, epoch: String(ev.data.epoch), txHash: result.txHash, gasUsed: String(result.gasUsed) }, 'registered on-chain')
    try {
      o.onRegistered?.({ txHash: result.txHash, enclaveId: result.enclaveId, epoch: ev.data.epoch, blockNumber: result.blockNumber })
    } catch (e) {
      o.logger?.warn({ err: errorInfo(e) }, 'onRegistered callback failed')
    }
  }

  function tick(): void {
    if (stopped || running) return
    if (!due()) return schedule(pollMs)
    state = last === null || failures === 0 ? 'registering' : 'retrying'
    again = false
    running = attempt()
      .then(
        () => schedule(again ? 0 : pollMs),
        (e: unknown) => {
          failures++
          lastError = errorInfo(e)
          state = 'retrying'
          const delay = Math.min(max, initial * 2 ** Math.min(failures - 1, 30))
          o.logger?.warn({ err: lastError, failures, retryInMs: delay }, 'on-chain registration failed; retrying')
          schedule(delay)
        },
      )
      .finally(() => {
        running = null
        if (stopped) state = 'stopped'
      })
  }

  return {
    start() {
      if (started || stopped) return
      started = true
      schedule(0)
    },
    epochChanged() {
      if (!started || stopped) return
      if (running) again = true
      else schedule(0)
    },
    status() {
      const ready =
        last !== null && !stopped && last.epoch === o.epochs.current().number && BigInt(Math.floor(now() / 1000)) < last.expiresAt
      return {
        state,
        ready,
        epoch: last?.epoch ?? null,
        enclaveId: last?.enclaveId ?? null,
        txHash: last?.txHash ?? null,
        blockNumber: last?.blockNumber ?? null,
        expiresAt: last?.expiresAt ?? null,
        failures,
        lastError,
      }
    },
    async stop() {
      stopped = true
      clearTimeout(timer)
      if (running) await running
      state = 'stopped'
    },
  }
}
