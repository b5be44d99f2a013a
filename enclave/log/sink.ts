/**
 * What the enclave records in its attestation log, and how: every evidence
 * bundle it produced (nonce mode, and registration mode: the bundle made
 * for AttestationRegistry.register), every key-epoch change, every on-chain
 * registration and every collateral set in use. Large artifacts go in as blobs first
 * (durable), then the entry naming their SHA-256 (attestation/log/entry.ts).
 * Everything here is public: quotes, event logs, GPU evidence, key
 * configs, addresses, transaction hashes.
 */
import type { Address, Hex } from 'viem'
import { hashKeyConfig } from '../../attestation/binding.ts'
import { hex } from '../../attestation/bytes/hex.ts'
import type { RuntimeEvent } from '../../attestation/eventlog/runtime-events.ts'
import { encodeEntry } from '../../attestation/log/entry.ts'
import { LogError } from '../../attestation/log/errors.ts'
import { collateralBundleBytes } from '../../attestation/log/audit/archives.ts'
import { BaseError } from '../../attestation/errors.ts'
import { gpuEvidenceToJson } from '../../attestation/nvidia/evidence.ts'
import { EnclaveError } from '../errors.ts'
import type { EvidenceEpochs } from '../evidence.ts'
import type { RegistrationEvidence, RegistrationEvidenceSource, RegistrationTarget } from '../registration.ts'
import type { EventLogProvider, EvidenceBundle } from '../types.ts'
import type { LogWriter } from './writer.ts'

/** A key epoch as the log records it. */
export interface EpochChangeRecord {
  readonly epoch: bigint
  readonly signingAddress: Address
  readonly keyConfig: Uint8Array
  /** ms since the Unix epoch. */
  readonly expiresAt: number
  readonly previous: { readonly epoch: bigint; readonly liveUntil: number } | null
}

/** What gateway/registration-worker.ts reports after a registration transaction is mined. */
export interface RegistrationRecord {
  readonly txHash: Hex
  readonly enclaveId: Hex
  readonly epoch: bigint
  readonly blockNumber: bigint
  readonly chainId: bigint
  readonly registry: Address
}

/**
 * A registration-mode evidence bundle as the log records it: the evidence
 * enclave/registration.ts made for `target`, plus what the auditor needs to
 * recompute its binding that the evidence holds only as hashes.
 */
export interface RegistrationEvidenceRecord {
  readonly target: RegistrationTarget
  readonly evidence: RegistrationEvidence
  /** The epoch's RFC 9458 key config; its keccak256 must be `evidence.data.keyConfigHash`. */
  readonly keyConfig: Uint8Array
  /** The epoch's expiry, ms since the Unix epoch. */
  readonly epochExpiresAt: number
  /** This boot's CCEL (the auditor reports LOG_EVENTLOG_MISSING without it). */
  readonly eventLog: { readonly table: Uint8Array; readonly data: Uint8Array } | null
  readonly runtimeEvents?: readonly RuntimeEvent[]
  /** The registration transaction once mined; null when logged before submission. */
  readonly txHash: Hex | null
}

/** The enclave's side of the attestation log (evidence.ts and epochs.ts call it). */
export interface AttestationLogSink {
  /** Record a bundle before it is served; resolves once durable. */
  evidence(bundle: EvidenceBundle): Promise<void>
  /**
   * Record a registration bundle; resolves once durable. Throws
   * LOG_OPTIONS_INVALID when the record does not hold together (key config
   * not the one hashed, block hash not the quote's freshness, another log
   * key): a bundle the auditor could not recompute is not logged as if it were.
   */
  registrationEvidence(record: RegistrationEvidenceRecord): Promise<void>
  /** Record a new key epoch before it is offered; resolves once durable. */
  epochChange(change: EpochChangeRecord): Promise<void>
  /** Record a mined registration. */
  registration(r: RegistrationRecord): Promise<void>
  /**
   * Archive collateral bundles (QuoteCollateralV3 JSON) and record their
   * fingerprints as the set in use from now on; a set equal to the last one
   * recorded is not recorded again. Resolves to the fingerprints.
   */
  collateral(bundles: readonly unknown[]): Promise<string[]>
}

const b64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'))

/**
 * `0x` hex of keccak256(key config), the form evidence carries as
 * keyConfigHash. An empty key config (which hashKeyConfig refuses, and no
 * evidence can hash) gives '', matching no hash: the caller's own mismatch
 * path reports it with its own code.
 */
const keyConfigHashHex = (keyConfig: Uint8Array): string => (keyConfig.length === 0 ? '' : `0x${hex(hashKeyConfig(keyConfig))}`)

export function createAttestationLogSink(writer: LogWriter): AttestationLogSink {
  let lastCollateral = ''
  return {
    async evidence(bundle) {
      const quoteSha256 = await writer.putBlob(b64(bundle.quote))
      const eventLog = bundle.eventLog
        ? { tableSha256: await writer.putBlob(b64(bundle.eventLog.table)), dataSha256: await writer.putBlob(b64(bundle.eventLog.data)) }
        : null
      const gpuSha256 = bundle.gpu === null ? null : await writer.putBlob(new TextEncoder().encode(JSON.stringify(bundle.gpu)))
      const entry = encodeEntry({
        type: 'evidence',
        time: writer.now(),
        epoch: BigInt(bundle.epoch),
        nonce: bundle.nonce,
        signingAddress: bundle.signingAddress,
        epochExpiresAt: Date.parse(bundle.epochExpiresAt),
        quoteSha256,
        eventLog,
        gpuSha256,
        keyConfig: b64(bundle.keyConfig),
        logPublicKey: bundle.logPublicKey === null ? null : b64(bundle.logPublicKey),
        runtimeEventsSha256:
          bundle.runtimeEvents === undefined ? null : await writer.putBlob(new TextEncoder().encode(JSON.stringify(bundle.runtimeEvents))),
      })
      await writer.appendEntry(entry)
    },
    async registrationEvidence(r) {
      const { evidence: ev, target } = r
      const bad = (what: string): never => {
        throw new LogError('LOG_OPTIONS_INVALID', `registration evidence record: ${what}`, { details: { field: what } })
      }
      if (!(r.keyConfig instanceof Uint8Array) || keyConfigHashHex(r.keyConfig) !== ev.data.keyConfigHash.toLowerCase()) bad('keyConfig')
      if (ev.reportData.length !== 64 || `0x${hex(ev.reportData.subarray(32))}` !== target.blockHash.toLowerCase()) bad('blockHash')
      if (ev.data.logPublicKey.toLowerCase() !== `0x${hex(writer.publicKey)}`) bad('logPublicKey')
      if (!Number.isSafeInteger(r.epochExpiresAt) || r.epochExpiresAt < 0) bad('epochExpiresAt')
      const quoteSha256 = await writer.putBlob(ev.quote)
      const eventLog = r.eventLog ? { tableSha256: await writer.putBlob(r.eventLog.table), dataSha256: await writer.putBlob(r.eventLog.data) } : null
      const gpuSha256 = ev.gpu === null ? null : await writer.putBlob(new TextEncoder().encode(JSON.stringify(gpuEvidenceToJson(ev.gpu))))
      const runtimeEventsSha256 = r.runtimeEvents === undefined ? null : await writer.putBlob(new TextEncoder().encode(JSON.stringify(r.runtimeEvents)))
      await writer.appendEntry(
        encodeEntry({
          type: 'registration-evidence',
          time: writer.now(),
          epoch: ev.data.epoch,
          blockHash: target.blockHash,
          blockNumber: target.blockNumber,
          chainId: target.chainId,
          registry: target.registry,
          model: ev.data.model,
          url: ev.data.url,
          signingAddress: ev.data.signingAddress,
          epochExpiresAt: r.epochExpiresAt,
          quoteSha256,
          eventLog,
          gpuSha256,
          keyConfig: r.keyConfig,
          logPublicKey: new Uint8Array(Buffer.from(ev.data.logPublicKey.slice(2), 'hex')),
          runtimeEventsSha256,
          txHash: r.txHash,
        }),
      )
    },
    async epochChange(c) {
      await writer.appendEntry(
        encodeEntry({ type: 'epoch', time: writer.now(), epoch: c.epoch, signingAddress: c.signingAddress, expiresAt: c.expiresAt, keyConfig: c.keyConfig, previous: c.previous }),
      )
    },
    async registration(r) {
      await writer.appendEntry(
        encodeEntry({
          type: 'registration',
          time: writer.now(),
          chainId: r.chainId,
          registry: r.registry,
          enclaveId: r.enclaveId,
          epoch: r.epoch,
          blockNumber: r.blockNumber,
          txHash: r.txHash,
        }),
      )
    },
    async collateral(bundles) {
      const fingerprints: string[] = []
      for (const b of bundles) fingerprints.push(await writer.putBlob(collateralBundleBytes(b)))
      const key = fingerprints.join(',')
      if (key !== lastCollateral) {
        await writer.appendEntry(encodeEntry({ type: 'collateral', time: writer.now(), fingerprints }))
        lastCollateral = key
      }
      return fingerprints
    },
  }
}

export interface LoggedRegistrationEvidenceOptions {
  readonly sink: Pick<AttestationLogSink, 'registrationEvidence'>
  /** The epochs the evidence source reads (its key config is logged with the bundle). */
  readonly epochs: EvidenceEpochs
  /** The boot's event log, logged with each bundle like nonce-mode evidence; null where the platform has none. */
  readonly eventLog: EventLogProvider | null
}

/**
 * Wrap a registration evidence source (enclave/registration.ts) so that
 * every bundle it makes is in the log, durably, before the caller can
 * submit it: the same "logged before served" rule as nonce-mode evidence,
 * a transaction being how a registration bundle is served. The entry has
 * no transaction hash (not sent yet); the mined transaction is recorded by
 * the registration entry (the `onRegistered` of enclave/log/index.ts). Rejects with
 * ENCLAVE_EVIDENCE_UNAVAILABLE (details.step 'log') when logging fails or
 * the epoch rotated under the call so its key config cannot be matched;
 * the registration worker retries then.
 */
export function loggedRegistrationEvidence(source: RegistrationEvidenceSource, o: LoggedRegistrationEvidenceOptions): RegistrationEvidenceSource {
  return async (target) => {
    const before = o.epochs.current()
    const evidence = await source(target)
    // The epoch may rotate during the call: the one whose key config the evidence hashed is before or after it.
    const epoch = [before, o.epochs.current()].find(
      (e) => e.number === evidence.data.epoch && keyConfigHashHex(e.ohttpKey.keyConfig) === evidence.data.keyConfigHash.toLowerCase(),
    )
    try {
      if (!epoch) throw new LogError('LOG_OPTIONS_INVALID', 'the epoch of the registration evidence is no longer current', { details: { epoch: evidence.data.epoch.toString() } })
      const log = o.eventLog === null ? null : await o.eventLog.read()
      const runtime = o.eventLog?.runtimeEvents?.()
      await o.sink.registrationEvidence({
        target,
        evidence,
        keyConfig: epoch.ohttpKey.keyConfig,
        epochExpiresAt: epoch.expiresAt,
        eventLog: log,
        ...(runtime === undefined ? {} : { runtimeEvents: runtime }),
        txHash: null,
      })
    } catch (e) {
      throw new EnclaveError('ENCLAVE_EVIDENCE_UNAVAILABLE', 'registration evidence could not be logged', {
        details: { step: 'log', provider: 'attestation-log', code: e instanceof BaseError ? e.code : undefined },
        cause: e,
      })
    }
    return evidence
  }
}
