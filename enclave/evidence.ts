/**
 * The evidence bundle for a verifier's nonce: GPU evidence, a TDX quote
 * whose REPORTDATA binds this epoch's keys and that GPU evidence, and the
 * event log — all public, encoded for JSON (enclave/types.ts EvidenceBundle).
 *
 * Order matters: the GPU evidence is collected first, with the same nonce,
 * because its hash goes into REPORTDATA (attestation/binding.ts, mode
 * "nonce"); the quote comes second and so covers it. The event log is not
 * bound: its integrity comes from replaying it into the quote's RTMRs.
 *
 * Each bundle is cached per (epoch, nonce) while its epoch is current, so
 * the same nonce gets the same bundle and a flood of repeats costs one quote;
 * concurrent requests for one nonce share one collection. The cache is
 * bounded (least recently used goes first) and failures are not cached.
 */
import {
  checkReportDataBinding,
  computeReportData,
  hashGpuEvidence,
  NO_GPU_EVIDENCE_HASH,
} from '../attestation/binding.ts'
import { BaseError, ConfigError, ParseError, VerificationError } from '../attestation/errors.ts'
import { gpuEvidenceFromJson, gpuEvidenceToJson, type GpuEvidenceBundle } from '../attestation/nvidia/evidence.ts'
import { parseQuote } from '../attestation/tdx/abi/quote.ts'
import { EnclaveError } from './errors.ts'
import type { GpuEvidenceProvider } from './gpu/provider.ts'
import type { EvidenceBundle, EventLogProvider, QuoteProvider } from './types.ts'
import type { AttestationLogSink } from './log/sink.ts'
import { hex } from '../attestation/bytes/hex.ts'

/** The nonce is a 32-byte value (binding.ts `bytes32 freshness`; SPDM 1.1 GET_MEASUREMENTS nonce). */
export const NONCE_SIZE = 32
/** Default number of cached bundles. */
export const DEFAULT_EVIDENCE_CACHE_SIZE = 1024

/** What the evidence source reads from the epoch manager (enclave/epochs.ts `EpochManager` fits). */
export interface EvidenceEpochs {
  current(): {
    readonly number: bigint
    readonly ohttpKey: { readonly keyConfig: Uint8Array }
    readonly signingKey: { readonly address: `0x${string}` }
    readonly expiresAt: number
  }
}

export interface EvidenceSourceOptions {
  readonly quotes: QuoteProvider
  readonly eventLog: EventLogProvider
  /** Null for a TD without GPU: REPORTDATA then commits to NO_GPU_EVIDENCE_HASH. */
  readonly gpu: GpuEvidenceProvider | null
  readonly epochs: EvidenceEpochs
  /** The transparency log's public key, or null when the gateway keeps no log. */
  readonly logPublicKey: Uint8Array | null
  /** Default {@link DEFAULT_EVIDENCE_CACHE_SIZE}. */
  readonly cacheSize?: number
  /**
   * Collections (quote + GPU evidence) running at once; a new nonce beyond
   * that is refused with ENCLAVE_EVIDENCE_BUSY rather than queued, so a flood
   * of nonces cannot build an unbounded queue of quote generations. Default 8.
   */
  readonly maxInFlight?: number
  /** The attestation log (enclave/log/sink.ts): each collected bundle is recorded, durably, before it is returned. */
  readonly logSink?: Pick<AttestationLogSink, 'evidence'> | null
}

export interface EvidenceSource {
  /**
   * The bundle for `nonce` (32 bytes) under the current epoch. Rejects with
   * ENCLAVE_EVIDENCE_UNAVAILABLE (`details.step`, `details.provider`,
   * `details.code`) when a provider fails. Aborting `signal` stops this
   * caller's wait, not the collection others may share.
   */
  attest(nonce: Uint8Array, options?: { readonly signal?: AbortSignal }): Promise<EvidenceBundle>
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64')

function codeOf(e: unknown): string | undefined {
  if (e instanceof BaseError) return e.code
  const c = typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined
  return typeof c === 'string' ? c : undefined
}

type Step = 'gpu' | 'binding' | 'quote' | 'event-log' | 'log' | 'pck'

/** ENCLAVE_EVIDENCE_UNAVAILABLE naming the step and provider that failed (and their error's code, never its text). */
export function evidenceUnavailable(step: Step, provider: string, e: unknown, what = 'evidence'): EnclaveError {
  return new EnclaveError('ENCLAVE_EVIDENCE_UNAVAILABLE', `${what} unavailable: the ${step} step failed`, {
    details: { step, provider, code: codeOf(e) },
    cause: e,
  })
}

const unavailable = (step: Step, provider: string, e: unknown) => evidenceUnavailable(step, provider, e)

/**
 * GPU evidence for `nonce`, or null for a TD without GPU. The GPU's nonce
 * is the quote's freshness too (a verifier's nonce, a registration's block
 * hash), so a provider answering another nonce is a failure, not a detail.
 */
export async function collectGpuEvidence(gpu: GpuEvidenceProvider | null, nonce: Uint8Array, what = 'evidence'): Promise<GpuEvidenceBundle | null> {
  if (gpu === null) return null
  let bundle: GpuEvidenceBundle
  try {
    bundle = await gpu.collect(nonce)
  } catch (e) {
    throw evidenceUnavailable('gpu', gpu.name, e, what)
  }
  if (!(bundle.nonce instanceof Uint8Array) || hex(bundle.nonce) !== hex(nonce)) {
    throw evidenceUnavailable('gpu', gpu.name, new ParseError('ATTESTATION_GPU_EVIDENCE_MALFORMED', 'the GPU provider answered another nonce'), what)
  }
  return bundle
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null && !Object.isFrozen(o)) {
    Object.freeze(o)
    for (const v of Object.values(o)) deepFreeze(v)
  }
  return o
}

function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p
  signal.throwIfAborted()
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(e)
      },
    )
  })
}

export function createEvidenceSource(options: EvidenceSourceOptions): EvidenceSource {
  const { quotes, eventLog, gpu, epochs, logPublicKey } = options ?? ({} as EvidenceSourceOptions)
  const logSink = options?.logSink ?? null
  const invalid = (what: string): never => {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `createEvidenceSource: ${what}`)
  }
  if (typeof quotes?.getQuote !== 'function') invalid('quotes must be a QuoteProvider')
  if (typeof eventLog?.read !== 'function') invalid('eventLog must be an EventLogProvider')
  if (gpu !== null && typeof gpu?.collect !== 'function') invalid('gpu must be a GpuEvidenceProvider or null')
  if (typeof epochs?.current !== 'function') invalid('epochs must have current()')
  if (logPublicKey !== null && !(logPublicKey instanceof Uint8Array && logPublicKey.length > 0)) invalid('logPublicKey must be bytes or null')
  const cacheSize = options.cacheSize ?? DEFAULT_EVIDENCE_CACHE_SIZE
  if (!Number.isInteger(cacheSize) || cacheSize < 1) invalid('cacheSize must be a positive integer')
  const maxInFlight = options.maxInFlight ?? 8
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1) invalid('maxInFlight must be a positive integer')
  let inFlight = 0
  const logKey = logPublicKey === null ? null : logPublicKey.slice()

  /** Keyed by nonce hex; every entry belongs to `cacheEpoch`. Map order is recency order. */
  const cache = new Map<string, Promise<EvidenceBundle>>()
  let cacheEpoch: bigint | null = null

  async function collect(nonce: Uint8Array, epoch: ReturnType<EvidenceEpochs['current']>): Promise<EvidenceBundle> {
    const gpuBundle = await collectGpuEvidence(gpu, nonce)
    const keyConfig = epoch.ohttpKey.keyConfig
    let reportData: Uint8Array
    try {
      reportData = computeReportData({
        mode: 'nonce',
        nonce,
        keyConfig,
        signingAddress: epoch.signingKey.address,
        gpuEvidenceHash: gpuBundle === null ? NO_GPU_EVIDENCE_HASH : hashGpuEvidence(gpuBundle.gpus),
        logPublicKey: logKey,
        epoch: epoch.number,
      })
    } catch (e) {
      throw unavailable('binding', 'binding', e)
    }
    let quote: Uint8Array
    try {
      quote = await quotes.getQuote(reportData)
    } catch (e) {
      throw unavailable('quote', quotes.name, e)
    }
    let log: Awaited<ReturnType<EventLogProvider['read']>>
    try {
      log = await eventLog.read()
    } catch (e) {
      throw unavailable('event-log', 'event-log', e)
    }
    const runtime = eventLog.runtimeEvents?.().map((r) => ({ ...r }))
    const bundle: EvidenceBundle = deepFreeze({
      version: 1,
      nonce: hex(nonce),
      quote: b64(quote),
      eventLog: log === null ? null : { table: b64(log.table), data: b64(log.data) },
      gpu: gpuBundle === null ? null : gpuEvidenceToJson(gpuBundle),
      keyConfig: b64(keyConfig),
      signingAddress: epoch.signingKey.address,
      epoch: epoch.number.toString(),
      logPublicKey: logKey === null ? null : b64(logKey),
      epochExpiresAt: new Date(epoch.expiresAt).toISOString(),
      // Read after the quote, like the CCEL: a verifier replays it onto the quote's RTMR3.
      ...(runtime === undefined ? {} : { runtimeEvents: runtime }),
    } satisfies EvidenceBundle)
    // Logged before it is served: every bundle a verifier ever saw is in the attestation log (fail closed).
    if (logSink) {
      try {
        await logSink.evidence(bundle)
      } catch (e) {
        throw unavailable('log', 'attestation-log', e)
      }
    }
    return bundle
  }

  return {
    attest(nonce, o = {}) {
      if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_SIZE) {
        return Promise.reject(new ConfigError('ATTESTATION_OPTIONS_INVALID', `attest: nonce must be ${NONCE_SIZE} bytes`))
      }
      let epoch: ReturnType<EvidenceEpochs['current']>
      try {
        epoch = epochs.current()
      } catch (e) {
        return Promise.reject(e)
      }
      // A bundle binds its epoch's keys: once the epoch rotates, none of them is worth serving.
      if (cacheEpoch !== epoch.number) {
        cache.clear()
        cacheEpoch = epoch.number
      }
      const key = hex(nonce)
      let entry = cache.get(key)
      if (entry !== undefined) {
        cache.delete(key)
        cache.set(key, entry)
      } else {
        if (inFlight >= maxInFlight) {
          return Promise.reject(new EnclaveError('ENCLAVE_EVIDENCE_BUSY', 'too many evidence collections are running', { details: { maxInFlight } }))
        }
        inFlight++
        const pending = collect(nonce.slice(), epoch)
        void pending.then(
          () => inFlight--,
          () => inFlight--,
        )
        entry = pending
        cache.set(key, pending)
        pending.catch(() => {
          if (cache.get(key) === pending) cache.delete(key)
        })
        while (cache.size > cacheSize) cache.delete(cache.keys().next().value!)
      }
      return raceAbort(entry, o.signal)
    },
  }
}

export interface EvidenceBindingOptions {
  /**
   * The nonce the verifier sent. Required: the bundle's own `nonce` field is
   * the provider's word, and trusting it would let an old, internally
   * consistent bundle pass as fresh.
   */
  readonly expectedNonce: Uint8Array
  /**
   * The log key the caller expects (e.g. from an earlier checkpoint); when
   * given, the bundle must carry exactly this key.
   */
  readonly logPublicKey?: Uint8Array
}

function expectedNonceOf(bundle: EvidenceBundle, options: EvidenceBindingOptions): Uint8Array {
  const n = options?.expectedNonce
  if (!(n instanceof Uint8Array) || n.length !== NONCE_SIZE) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `expectedNonce (the ${NONCE_SIZE}-byte nonce the verifier sent) is required`)
  }
  if (hex(fromHex(bundle.nonce, 'nonce', NONCE_SIZE)) !== hex(n)) {
    throw new VerificationError('ATTESTATION_BINDING_MISMATCH', 'the evidence answers another nonce', {
      details: { expected: hex(n), actual: bundle.nonce },
    })
  }
  return n
}

function fromHex(v: unknown, field: string, size?: number): Uint8Array {
  if (typeof v !== 'string' || !/^(0x)?([0-9a-fA-F]{2})*$/.test(v)) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `bundle ${field} is not hex`)
  const b = new Uint8Array(Buffer.from(v.replace(/^0x/, ''), 'hex'))
  if (size !== undefined && b.length !== size) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `bundle ${field} must be ${size} bytes`)
  return b
}

/**
 * The REPORTDATA a bundle's parts call for, recomputed with the one binding
 * function. Parses, checks no signature: for tests and for the client SDK's
 * binding step, after it verified quote and GPU evidence.
 */
export function expectedReportData(bundle: EvidenceBundle, options: EvidenceBindingOptions): Uint8Array {
  const logPublicKey = bundle.logPublicKey === null ? null : new Uint8Array(Buffer.from(bundle.logPublicKey, 'base64'))
  if (options.logPublicKey !== undefined && (logPublicKey === null || hex(logPublicKey) !== hex(options.logPublicKey))) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'the bundle carries another log key than the one expected')
  }
  if (typeof bundle.epoch !== 'string' || !/^(0|[1-9][0-9]*)$/.test(bundle.epoch)) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'bundle epoch is not a decimal integer')
  return computeReportData({
    mode: 'nonce',
    nonce: expectedNonceOf(bundle, options),
    keyConfig: new Uint8Array(Buffer.from(bundle.keyConfig, 'base64')),
    signingAddress: bundle.signingAddress,
    gpuEvidenceHash: bundle.gpu === null ? NO_GPU_EVIDENCE_HASH : hashGpuEvidence(gpuEvidenceFromJson(bundle.gpu).gpus),
    logPublicKey,
    epoch: BigInt(bundle.epoch),
  })
}

/**
 * Recompute the binding from the bundle's parts and compare it with the
 * quote's REPORTDATA; throws ATTESTATION_BINDING_MISMATCH (with both values)
 * when they differ. Checks no signature (verifyQuote does).
 */
export function verifyEvidenceBinding(bundle: EvidenceBundle, options: EvidenceBindingOptions): void {
  const quote = parseQuote(new Uint8Array(Buffer.from(bundle.quote, 'base64')))
  if (quote.body.kind === 'sgx') throw new ParseError('ATTESTATION_QUOTE_UNSUPPORTED_TEE', 'the evidence quote is an SGX quote, not a TD quote')
  checkReportDataBinding(quote.body.report.reportData, expectedReportData(bundle, options))
}
