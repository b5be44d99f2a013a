/**
 * The client's view of the on-chain registry: several RPC endpoints behind
 * one RegistryReader (contracts/registry-types.ts), tried in order, and the
 * one check that the registry vouches for a verified provider.
 *
 * What is trusted here is not the RPC node (DESIGN.md): the record is only
 * used to confirm what the client verified itself — the signing address
 * from the quote-bound bundle must have a live record whose key config hash
 * (and, when the policy says so, workload id) equals what the quote binds.
 * A node that lies can at most make a good provider look unregistered.
 *
 * viem stays behind the RegistryReader interface: callers give readers, or
 * RPC URLs and a factory that makes one per URL (contracts/client/).
 */
import type { Address, Hex } from 'viem'
import type { CheckpointAnchor, EnclaveRecord, RegistrationEvent, RegistryReader } from '../../contracts/registry-types.ts'
import { ClientError, isClientError, reasonOf } from './errors.ts'

/** Makes a reader for one RPC URL (the viem-backed one lives in contracts/client/). */
export type RegistryReaderFactory = (rpcUrl: string, chain: { readonly chainId: bigint; readonly address: Address }) => RegistryReader

/**
 * One reader over several: each call goes to the first reader, and on any
 * failure to the next; when all fail, CLIENT_REGISTRY_UNAVAILABLE with the
 * reasons — unless one of them is an endpoint that serves another chain or
 * registry than the policy names (CLIENT_REGISTRY_MISMATCH, e.g. from
 * viem-registry.ts): that is a misconfiguration, not an outage, and keeps
 * its own code so that nobody waits for it to come back. The readers must
 * all name the same chain and registry.
 */
export function createFallbackRegistryReader(readers: readonly RegistryReader[]): RegistryReader {
  const [first] = readers
  if (first === undefined) throw new ClientError('CLIENT_CONFIG_INVALID', 'at least one registry reader is required')
  for (const r of readers) {
    if (r.chainId !== first.chainId || r.address.toLowerCase() !== first.address.toLowerCase()) {
      throw new ClientError('CLIENT_CONFIG_INVALID', 'registry readers name different chains or registries', {
        details: { chainIds: readers.map((x) => x.chainId.toString()), addresses: readers.map((x) => x.address) },
      })
    }
  }
  async function call<T>(method: string, f: (r: RegistryReader) => Promise<T>): Promise<T> {
    const reasons: string[] = []
    let mismatch: ClientError | undefined
    for (const r of readers) {
      try {
        return await f(r)
      } catch (e) {
        if (isClientError(e) && e.code === 'CLIENT_REGISTRY_MISMATCH') mismatch ??= e
        reasons.push(reasonOf(e))
      }
    }
    if (mismatch) {
      throw new ClientError('CLIENT_REGISTRY_MISMATCH', 'a registry endpoint serves another chain or registry than the policy names', {
        cause: mismatch,
        details: { ...mismatch.details, method, reasons },
      })
    }
    throw new ClientError('CLIENT_REGISTRY_UNAVAILABLE', 'no registry endpoint answered', { details: { method, reasons } })
  }
  return {
    chainId: first.chainId,
    address: first.address,
    enclaveBySigner: (a: Address) => call('enclaveBySigner', (r) => r.enclaveBySigner(a)),
    enclave: (id: Hex) => call('enclave', (r) => r.enclave(id)),
    enclavesForModel: (m: string) => call('enclavesForModel', (r) => r.enclavesForModel(m)),
    registrationsOf: (a: Address) => call('registrationsOf', (r) => r.registrationsOf(a)),
    checkpointAnchors: (id: Hex) => call('checkpointAnchors', (r) => r.checkpointAnchors(id)),
  }
}

/** A fallback reader over one reader per RPC URL. */
export function registryFromRpcUrls(rpcUrls: readonly string[], chain: { readonly chainId: bigint; readonly address: Address }, factory: RegistryReaderFactory): RegistryReader {
  return createFallbackRegistryReader(rpcUrls.map((u) => factory(u, chain)))
}

/** What the registry check needs of a verified bundle. */
export interface RegistryExpectation {
  readonly signingAddress: Address
  /** keccak256 of the attested key config, 0x hex. */
  readonly keyConfigHash: Hex
  /** computeWorkloadId of the verified quote; checked when `matchWorkloadId`. */
  readonly workloadId: Hex
  readonly matchWorkloadId: boolean
  readonly now: Date
}

/** What the report shows of the registry step. */
export interface RegistryCheck {
  readonly chainId: string
  readonly address: Address
  readonly record: {
    readonly enclaveId: Hex
    readonly signingAddress: Address
    readonly keyConfigHash: Hex
    readonly workloadId: Hex
    readonly model: string
    readonly url: string
    readonly epoch: string
    readonly tcbStatus: string
    readonly registeredAt: string
    readonly expiresAt: string
  }
}

const seconds = (d: Date) => BigInt(Math.floor(d.getTime() / 1000))

/**
 * The registry vouches for `expected`: a live record for the signer,
 * unexpired at the client's `now`, with the same key config hash (and
 * workload id when asked). A missing live record is told apart from an
 * expired or replaced one by the signer's registration history.
 */
export async function checkRegistration(reader: RegistryReader, expected: RegistryExpectation): Promise<{ check: RegistryCheck; record: EnclaveRecord }> {
  const base = { chainId: reader.chainId.toString(), registry: reader.address, signingAddress: expected.signingAddress }
  const record = await reader.enclaveBySigner(expected.signingAddress)
  const now = seconds(expected.now)
  if (record === null) {
    const history = await reader.registrationsOf(expected.signingAddress)
    if (history.length > 0) {
      const last = history.at(-1) as RegistrationEvent
      throw new ClientError('CLIENT_REGISTRATION_EXPIRED', 'the signing address has no live registration', {
        details: { ...base, expiresAt: last.expiresAt.toString(), endedAt: last.endedAt?.toString() ?? null },
      })
    }
    throw new ClientError('CLIENT_NOT_REGISTERED', 'the signing address is not registered', { details: base })
  }
  if (record.signingAddress.toLowerCase() !== expected.signingAddress.toLowerCase()) {
    throw new ClientError('CLIENT_REGISTRY_MISMATCH', 'the registry answered with another signer’s record', {
      details: { ...base, field: 'signingAddress', registered: record.signingAddress },
    })
  }
  // The node may lag or lie about liveness; the client's own clock decides.
  if (record.expiresAt <= now) {
    throw new ClientError('CLIENT_REGISTRATION_EXPIRED', 'the registration expired', { details: { ...base, expiresAt: record.expiresAt.toString() } })
  }
  if (record.keyConfigHash.toLowerCase() !== expected.keyConfigHash.toLowerCase()) {
    throw new ClientError('CLIENT_REGISTRY_MISMATCH', 'the registered key config is not the attested one', {
      details: { ...base, field: 'keyConfigHash', registered: record.keyConfigHash, attested: expected.keyConfigHash },
    })
  }
  if (expected.matchWorkloadId && record.workloadId.toLowerCase() !== expected.workloadId.toLowerCase()) {
    throw new ClientError('CLIENT_REGISTRY_MISMATCH', 'the registered workload is not the attested one', {
      details: { ...base, field: 'workloadId', registered: record.workloadId, attested: expected.workloadId },
    })
  }
  return {
    record,
    check: {
      chainId: reader.chainId.toString(),
      address: reader.address,
      record: {
        enclaveId: record.enclaveId,
        signingAddress: record.signingAddress,
        keyConfigHash: record.keyConfigHash,
        workloadId: record.workloadId,
        model: record.model,
        url: record.url,
        epoch: record.epoch.toString(),
        tcbStatus: record.tcbStatus,
        registeredAt: record.registeredAt.toString(),
        expiresAt: record.expiresAt.toString(),
      },
    },
  }
}

export type { CheckpointAnchor, EnclaveRecord, RegistrationEvent, RegistryReader }
