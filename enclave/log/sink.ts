/**
 * What the enclave records in its attestation log, and how: every evidence
 * bundle it produced, every key-epoch change, every on-chain registration
 * and every collateral set in use. Large artifacts go in as blobs first
 * (durable), then the entry naming their SHA-256 (attestation/log/entry.ts).
 * Everything here is public: quotes, event logs, GPU evidence, key
 * configs, addresses, transaction hashes.
 */
import { createHash } from 'node:crypto'
import type { Address, Hex } from 'viem'
import { encodeEntry } from '../../attestation/log/entry.ts'
import { collateralBundleBytes } from '../../attestation/log/audit/archives.ts'
import type { EvidenceBundle } from '../types.ts'
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

/** The enclave's side of the attestation log (evidence.ts and epochs.ts call it). */
export interface AttestationLogSink {
  /** Record a bundle before it is served; resolves once durable. */
  evidence(bundle: EvidenceBundle): Promise<void>
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

/** The canonical bytes of a collateral bundle (its fingerprint is their SHA-256); the auditor's PCS archive makes the same. */
export function collateralBytes(bundle: unknown): Uint8Array {
  return collateralBundleBytes(bundle)
}

/** The fingerprint of a collateral bundle: SHA-256 hex of `collateralBytes`. */
export function collateralFingerprint(bundle: unknown): string {
  return createHash('sha256').update(collateralBytes(bundle)).digest('hex')
}

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
      for (const b of bundles) fingerprints.push(await writer.putBlob(collateralBytes(b)))
      const key = fingerprints.join(',')
      if (key !== lastCollateral) {
        await writer.appendEntry(encodeEntry({ type: 'collateral', time: writer.now(), fingerprints }))
        lastCollateral = key
      }
      return fingerprints
    },
  }
}

/**
 * The callback for gateway/registration-worker.ts's `onRegistered`: records
 * the registration in the log. Its promise rejects if the entry could not
 * be made durable (the worker decides what to do with that).
 */
export function registrationRecorder(sink: AttestationLogSink): (r: RegistrationRecord) => Promise<void> {
  return (r) => sink.registration(r)
}

/**
 * Adapter for gateway/registration-worker.ts `onRegistered`, whose events
 * carry no chain id or registry address (the worker's registry knows them):
 * records each one in the log; a failure goes to `onError` (the worker's
 * callback is synchronous and must not throw).
 */
export function registeredEventRecorder(
  sink: AttestationLogSink,
  chain: { readonly chainId: bigint; readonly registry: Address },
  onError: (e: unknown) => void = () => {},
): (event: { readonly txHash: Hex; readonly enclaveId: Hex; readonly epoch: bigint; readonly blockNumber: bigint }) => void {
  return (event) => {
    sink.registration({ ...event, chainId: chain.chainId, registry: chain.registry }).catch(onError)
  }
}
