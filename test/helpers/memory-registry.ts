/**
 * An in-memory RegistryReader (contracts/registry-types.ts) for tests of the
 * client and the proxy: records and registration history kept in maps, with
 * knobs for what an RPC endpoint does wrong. Unlike the contract, which
 * stops returning a record once its block time passes `expiresAt`, the fake
 * returns expired records too unless `liveOnly` is set — an RPC node whose
 * view lags — so the client's own expiry check is what a test exercises.
 */
import type { Address, Hex } from 'viem'
import type { CheckpointAnchor, EnclaveRecord, RegistrationEvent, RegistryReader } from '../../contracts/registry-types.ts'

export const MEMORY_REGISTRY_CHAIN_ID = 31337n
export const MEMORY_REGISTRY_ADDRESS: Address = '0x4242424242424242424242424242424242424242'

export interface MemoryRegistry extends RegistryReader {
  /** Add or replace the record of `record.enclaveId` (the previous signer's registration ends). */
  register(record: Partial<EnclaveRecord> & Pick<EnclaveRecord, 'signingAddress' | 'keyConfigHash' | 'workloadId'>): EnclaveRecord
  /** Drop a signer's record, ending its registration (an invalidation). */
  remove(signingAddress: Address): void
  /** Knobs: throw on every call (an endpoint down); hide records expired at `clock()`. */
  knobs: { fail: boolean; liveOnly: boolean }
  /** Calls answered or refused, by method. */
  readonly calls: Record<string, number>
}

export function createMemoryRegistry(options: { chainId?: bigint; address?: Address; clock?: () => Date } = {}): MemoryRegistry {
  const clock = options.clock ?? (() => new Date())
  const records = new Map<string, EnclaveRecord>() // by enclaveId
  const history: RegistrationEvent[] = []
  const calls: Record<string, number> = {}
  const knobs = { fail: false, liveOnly: false }
  let block = 1n

  const seconds = () => BigInt(Math.floor(clock().getTime() / 1000))
  function enter(method: string): void {
    calls[method] = (calls[method] ?? 0) + 1
    if (knobs.fail) throw Object.assign(new Error('memory registry: endpoint down'), { code: 'MEMORY_REGISTRY_DOWN' })
  }
  const visible = (r: EnclaveRecord) => !knobs.liveOnly || r.expiresAt > seconds()
  function endRegistration(signer: string): void {
    for (const e of history) if (e.signingAddress.toLowerCase() === signer.toLowerCase() && e.endedAt === null) (e as { endedAt: bigint | null }).endedAt = seconds()
  }

  return {
    chainId: options.chainId ?? MEMORY_REGISTRY_CHAIN_ID,
    address: options.address ?? MEMORY_REGISTRY_ADDRESS,
    knobs,
    calls,
    register(partial) {
      const now = seconds()
      const record: EnclaveRecord = {
        enclaveId: (partial.enclaveId ?? (`0x${partial.signingAddress.slice(2).toLowerCase().padStart(64, '0')}` as Hex)),
        gpuEvidenceHash: `0x${'00'.repeat(32)}`,
        model: 'test-model',
        url: 'http://127.0.0.1:1',
        epoch: 1n,
        tcbStatus: 'UpToDate',
        fmspc: '0xde7000000000',
        registeredAt: now,
        expiresAt: now + 3600n,
        ...partial,
      }
      const previous = records.get(record.enclaveId)
      if (previous) endRegistration(previous.signingAddress)
      records.set(record.enclaveId, record)
      history.push({
        enclaveId: record.enclaveId,
        signingAddress: record.signingAddress,
        epoch: record.epoch,
        registeredAt: record.registeredAt,
        expiresAt: record.expiresAt,
        endedAt: null,
        blockNumber: block++,
        transactionHash: `0x${block.toString(16).padStart(64, '0')}`,
      })
      return record
    },
    remove(signingAddress) {
      for (const [id, r] of records) if (r.signingAddress.toLowerCase() === signingAddress.toLowerCase()) records.delete(id)
      endRegistration(signingAddress)
    },
    async enclaveBySigner(signingAddress) {
      enter('enclaveBySigner')
      for (const r of records.values()) if (r.signingAddress.toLowerCase() === signingAddress.toLowerCase() && visible(r)) return r
      return null
    },
    async enclave(enclaveId) {
      enter('enclave')
      const r = records.get(enclaveId)
      return r && visible(r) ? r : null
    },
    async enclavesForModel(model) {
      enter('enclavesForModel')
      return [...records.values()].filter((r) => r.model === model && visible(r))
    },
    async registrationsOf(signingAddress) {
      enter('registrationsOf')
      return history.filter((e) => e.signingAddress.toLowerCase() === signingAddress.toLowerCase())
    },
    async checkpointAnchors(_logId): Promise<readonly CheckpointAnchor[]> {
      enter('checkpointAnchors')
      return []
    },
  }
}
