/**
 * The typed viem client of the AttestationRegistry: a RegistryReader
 * (contracts/registry-types.ts) over any RPC, and a RegistryWriter for the
 * gateway's registration worker, plus the calls tests, the auditor and the
 * deploy script need (verifyQuote with decoded statuses, receipts,
 * checkpoint anchors, governance, invalidation).
 *
 * Liveness is judged by the chain's clock (the latest block's timestamp),
 * the same clock the contract uses, never the local one. History (what was
 * registered when, anchors) comes from events; current state from storage.
 * Live events (registrations, endings, anchors) come from one eth_getLogs
 * poller of our own per watch, never viem's watchContractEvent (see
 * `watchEvents`).
 */
import { decodeFunctionData, getAddress, isAddressEqual, keccak256, parseEventLogs, toBytes, toHex, zeroAddress, type Address, type Hex, type Log } from 'viem'
import type {
  CheckpointAnchor,
  EnclaveRecord,
  RegistrationEvent,
  RegistrationResult,
  RegistrationSubmission,
  RegistryReader,
  RegistryTcbStatus,
  RegistryWriter,
} from '../registry-types.ts'
import { REGISTRY_TCB_STATUSES } from '../registry-types.ts'
import type { ReceiptFields } from '../../enclave/receipts.ts'
import { TCB_STATUSES } from '../../attestation/tdx/abi/collateral.ts'
import { attestationRegistryAbi } from '../artifacts/attestation-registry.ts'
import { pcsCollateralAbi } from '../artifacts/pcs-collateral.ts'
import { RegistryError, registryErrorFrom } from './errors.ts'
import { sendContractTx, type AnyPublicClient, type AnyWalletClient, type SentTransaction } from './tx.ts'

/** Status names by rank, Revoked included (verifyQuote may report it before policy): the contract ranks them as the TypeScript verifier's TCB_STATUSES. */
export type QuoteTcbStatus = (typeof TCB_STATUSES)[number]

/** AttestationRegistry.verifyQuote, decoded: comparable with attestation/tdx verifyQuote. */
export interface OnChainQuoteResult {
  readonly tcbStatus: QuoteTcbStatus
  readonly platformStatus: QuoteTcbStatus
  readonly tdxModuleStatus: QuoteTcbStatus | null
  readonly qeStatus: QuoteTcbStatus
  /** Union of platform, TDX module and QE advisories, first occurrence order (as the TypeScript verifier merges them). */
  readonly advisoryIds: readonly string[]
  readonly fmspc: Hex
  readonly workloadId: Hex
  readonly reportData: Hex
  readonly debug: boolean
  readonly validUntil: bigint
}

function statusName(rank: number): QuoteTcbStatus {
  const s = TCB_STATUSES[rank]
  if (s === undefined) throw new RegistryError('REGISTRY_REVERTED', { details: { status: rank } })
  return s
}

/** Why a record ended (AttestationRegistry ENDED_*), by the event's reason code. */
export const ENDED_REASONS = ['replaced', 'invalidated', 'expired', 'workload-removed'] as const
export type EndedReason = (typeof ENDED_REASONS)[number]

/** One EnclaveEnded event. */
export interface EnclaveEndedEvent {
  readonly enclaveId: Hex
  readonly signingAddress: Address
  readonly epoch: bigint
  /** Unix seconds (block time). */
  readonly endedAt: bigint
  readonly reason: EndedReason
  readonly blockNumber: bigint
  readonly transactionHash: Hex
}

/** Options of the event watchers. */
export interface WatchOptions {
  /**
   * First block to report; default the block after the head at the first
   * poll. Set it to miss nothing sent after a known block (a test, or a
   * follower resuming where it stopped).
   */
  readonly fromBlock?: bigint
}

/** Intel's advisoryIDs text as stored on-chain (`"A","B"`) → ids. */
export function advisoriesFromChain(raw: Hex): string[] {
  const text = Buffer.from(raw.slice(2), 'hex').toString('utf8')
  if (text.length === 0) return []
  const list = JSON.parse(`[${text}]`) as unknown
  if (!Array.isArray(list) || list.some((x) => typeof x !== 'string')) throw new RegistryError('REGISTRY_REVERTED', { details: { advisories: text } })
  return list as string[]
}

interface RawRecord {
  signer: Address
  expiresAt: bigint
  tcbStatus: number
  epoch: bigint
  registeredAt: bigint
  fmspc: Hex
  keyConfigHash: Hex
  workloadId: Hex
  gpuEvidenceHash: Hex
  pckCertId: Hex
  quoteHash: Hex
  model: string
  url: string
}

function toRecord(enclaveId: Hex, r: RawRecord): EnclaveRecord {
  return {
    enclaveId,
    signingAddress: getAddress(r.signer),
    keyConfigHash: r.keyConfigHash,
    workloadId: r.workloadId,
    gpuEvidenceHash: r.gpuEvidenceHash,
    model: r.model,
    url: r.url,
    epoch: r.epoch,
    tcbStatus: statusName(r.tcbStatus) as RegistryTcbStatus,
    fmspc: r.fmspc,
    registeredAt: r.registeredAt,
    expiresAt: r.expiresAt,
  }
}

export interface RegistryClientOptions {
  readonly publicClient: AnyPublicClient
  readonly address: Address
  /** First block to scan for events (the deployment block); default 0. */
  readonly fromBlock?: bigint
  /**
   * Accept a registry whose collateral store trusts a development root.
   * Default false: a client pointed at a dev registry by mistake refuses it
   * (REGISTRY_PRODUCTION_DEV_ROOT) instead of trusting dev evidence.
   */
  readonly allowDevelopment?: boolean
}

export interface RegistryClient extends RegistryReader {
  /** The collateral store the registry reads. */
  pcsAddress(): Promise<Address>
  isDevelopment(): Promise<boolean>
  /** The chain's clock: the latest block's timestamp (unix seconds). */
  chainTime(): Promise<bigint>
  /** AttestationRegistry.verifyQuote: verification without binding, workload or status policy. */
  verifyQuote(quote: Uint8Array, pckCertId: Hex): Promise<OnChainQuoteResult>
  /** AttestationRegistry.verifyReceipt (a view): the enclave whose live signer signed it; throws a RegistryError otherwise. */
  verifyReceipt(fields: ReceiptFields, signature: Hex): Promise<{ enclaveId: Hex; signer: Address }>
  /** The record as stored, live or not (null when none). */
  storedRecord(enclaveId: Hex): Promise<(EnclaveRecord & { readonly pckCertId: Hex; readonly quoteHash: Hex }) | null>
  /** The latest anchor as stored: its size and the first 24 bytes of its root (full roots are in `checkpointAnchors`). */
  latestAnchor(logId: Hex): Promise<{ size: bigint; rootPrefix: Hex } | null>
  /** Follow registrations as they happen; returns the unwatch function. */
  watchRegistrations(
    onEvent: (e: RegistrationEvent & { model: string; url: string }) => void,
    onError?: (e: RegistryError) => void,
    options?: WatchOptions,
  ): () => void
  /** Follow records ending (replaced, invalidated, expired, workload removed); returns the unwatch function. */
  watchEndings(onEvent: (e: EnclaveEndedEvent) => void, onError?: (e: RegistryError) => void, options?: WatchOptions): () => void
  /** Follow checkpoint anchors, of one log when `logId` is given; returns the unwatch function. */
  watchCheckpointAnchors(
    onEvent: (e: CheckpointAnchor) => void,
    onError?: (e: RegistryError) => void,
    options?: WatchOptions & { readonly logId?: Hex },
  ): () => void
}

async function read<T>(p: Promise<unknown>): Promise<T> {
  try {
    return (await p) as T
  } catch (e) {
    throw registryErrorFrom(e)
  }
}

/** A reader over any RPC. */
export async function createRegistryClient(o: RegistryClientOptions): Promise<RegistryClient> {
  const { publicClient: pc } = o
  const address = getAddress(o.address)
  const fromBlock = o.fromBlock ?? 0n
  const chainId = BigInt(await read<number>(pc.getChainId()))
  const call = <T>(functionName: string, args: readonly unknown[] = []) =>
    read<T>(pc.readContract({ address, abi: attestationRegistryAbi, functionName, args } as never))
  if ((await call<boolean>('isDevelopment')) && o.allowDevelopment !== true) {
    throw new RegistryError('REGISTRY_PRODUCTION_DEV_ROOT', { details: { registry: address } })
  }
  const chainTime = async () => (await read<{ timestamp: bigint }>(pc.getBlock({ blockTag: 'latest' }))).timestamp

  const storedRecord = async (enclaveId: Hex) => {
    const r = await call<RawRecord>('enclave', [enclaveId])
    if (r.signer === zeroAddress) return null
    return { ...toRecord(enclaveId, r), pckCertId: r.pckCertId, quoteHash: r.quoteHash }
  }
  /** The record if live at chain time `now` (default: read now); callers judging many records read the clock once. */
  const liveRecord = async (enclaveId: Hex, now?: bigint): Promise<EnclaveRecord | null> => {
    const [r, at] = await Promise.all([storedRecord(enclaveId), now ?? chainTime()])
    if (r === null || r.expiresAt <= at) return null
    const { pckCertId: _p, quoteHash: _q, ...record } = r
    return record
  }
  // Public one-argument form: `ids.map(client.enclave)` must not pass an index as the clock.
  const enclave = (enclaveId: Hex) => liveRecord(enclaveId)
  const logs = (eventName: string, args: Record<string, unknown>) =>
    read<(Log & { args: Record<string, unknown>; eventName: string })[]>(
      pc.getContractEvents({ address, abi: attestationRegistryAbi, eventName, args, fromBlock, toBlock: 'latest' } as never),
    )

  /**
   * Our own eth_getLogs poller rather than viem's watchContractEvent: viem
   * uninstalls its filter before it stops polling, so an unwatch racing an
   * RPC failure leaves its timer polling forever. Here stop is immediate:
   * the flag is checked after every await, the timer is cleared, and no
   * callback runs after unwatch returns. Blocks are read in order and each
   * range once; a failed poll is reported and retried from the same block;
   * an event that does not decode is reported and skipped, not delivered
   * half-read.
   */
  const watchEvents = <E>(
    eventName: string,
    args: Record<string, unknown> | undefined,
    decode: (e: Log & { args: Record<string, unknown> }) => E,
    onEvent: (e: E) => void,
    onError: ((e: RegistryError) => void) | undefined,
    options: WatchOptions | undefined,
  ): (() => void) => {
    let active = true
    let timer: NodeJS.Timeout | undefined
    let next: bigint | undefined = options?.fromBlock
    const interval = pc.pollingInterval ?? 4_000
    const tick = async () => {
      try {
        const head = await read<bigint>(pc.getBlockNumber({ cacheTime: 0 }))
        if (!active) return
        next ??= head + 1n // from the next block on, as a watcher does
        if (head >= next) {
          const batch = await read<(Log & { args: Record<string, unknown> })[]>(
            pc.getContractEvents({ address, abi: attestationRegistryAbi, eventName, ...(args ? { args } : {}), fromBlock: next, toBlock: head } as never),
          )
          next = head + 1n
          for (const e of batch) {
            if (!active) return
            let decoded: E
            try {
              decoded = decode(e)
            } catch (x) {
              onError?.(x instanceof RegistryError ? x : registryErrorFrom(x))
              continue
            }
            onEvent(decoded)
          }
        }
      } catch (e) {
        if (active) onError?.(e instanceof RegistryError ? e : registryErrorFrom(e))
      }
      if (active) timer = setTimeout(tick, interval)
    }
    void tick()
    return () => {
      active = false
      clearTimeout(timer)
    }
  }
  const anchorOf = (e: Log & { args: Record<string, unknown> }): CheckpointAnchor => ({
    logId: e.args.logId as Hex,
    size: e.args.size as bigint,
    root: e.args.root as Hex,
    anchoredAt: e.args.anchoredAt as bigint,
    blockNumber: e.blockNumber!,
    transactionHash: e.transactionHash!,
  })

  const client: RegistryClient = {
    chainId,
    address,
    enclave,
    async enclaveBySigner(signingAddress) {
      const id = await call<Hex>('enclaveIdOf', [getAddress(signingAddress)])
      if (/^0x0+$/.test(id)) return null
      const r = await enclave(id)
      return r !== null && r.signingAddress === getAddress(signingAddress) ? r : null
    },
    async enclavesForModel(model) {
      const events = await logs('EnclaveRegistered', { modelHash: keccak256(toBytes(model)) })
      const ids = [...new Set(events.map((e) => e.args.enclaveId as Hex))]
      const now = await chainTime()
      const records = await Promise.all(ids.map((id) => liveRecord(id, now)))
      return records.filter((r): r is EnclaveRecord => r !== null && r.model === model)
    },
    async registrationsOf(signingAddress) {
      const signer = getAddress(signingAddress)
      const [registered, ended] = await Promise.all([
        logs('EnclaveRegistered', { signingAddress: signer }),
        logs('EnclaveEnded', { signingAddress: signer }),
      ])
      return registered.map((e) => {
        const a = e.args
        const end = ended.find(
          (x) =>
            x.args.enclaveId === a.enclaveId &&
            x.args.epoch === a.epoch &&
            (x.blockNumber! > e.blockNumber! || (x.blockNumber === e.blockNumber && x.logIndex! > e.logIndex!)),
        )
        return {
          enclaveId: a.enclaveId as Hex,
          signingAddress: signer,
          epoch: a.epoch as bigint,
          registeredAt: a.registeredAt as bigint,
          expiresAt: a.expiresAt as bigint,
          endedAt: end ? (end.args.endedAt as bigint) : null,
          blockNumber: e.blockNumber!,
          transactionHash: e.transactionHash!,
        }
      })
    },
    async checkpointAnchors(logId) {
      const events = await logs('CheckpointAnchored', { logId })
      return events.map(anchorOf)
    },
    pcsAddress: () => call<Address>('pcs'),
    isDevelopment: () => call<boolean>('isDevelopment'),
    chainTime,
    async verifyQuote(quote, pckCertId) {
      const r = await call<{
        status: number
        platformStatus: number
        moduleStatus: number
        qeStatus: number
        platformAdvisories: Hex
        moduleAdvisories: Hex
        qeAdvisories: Hex
        fmspc: Hex
        workloadId: Hex
        reportDataBinding: Hex
        reportDataFreshness: Hex
        debug: boolean
        validUntil: bigint
      }>('verifyQuote', [toHex(quote), pckCertId])
      return {
        tcbStatus: statusName(r.status),
        platformStatus: statusName(r.platformStatus),
        tdxModuleStatus: r.moduleStatus === 255 ? null : statusName(r.moduleStatus),
        qeStatus: statusName(r.qeStatus),
        advisoryIds: [...new Set([...advisoriesFromChain(r.platformAdvisories), ...advisoriesFromChain(r.moduleAdvisories), ...advisoriesFromChain(r.qeAdvisories)])],
        fmspc: r.fmspc,
        workloadId: r.workloadId,
        reportData: `0x${r.reportDataBinding.slice(2)}${r.reportDataFreshness.slice(2)}`,
        debug: r.debug,
        validUntil: r.validUntil,
      }
    },
    async verifyReceipt(fields, signature) {
      const [enclaveId, signer] = await call<[Hex, Address]>('verifyReceipt', [fields, signature])
      return { enclaveId, signer }
    },
    storedRecord,
    async latestAnchor(logId) {
      const [size, rootPrefix] = await call<[bigint, Hex]>('anchors', [logId])
      return /^0x0+$/.test(rootPrefix) ? null : { size, rootPrefix }
    },
    watchRegistrations(onEvent, onError, options) {
      return watchEvents(
        'EnclaveRegistered',
        undefined,
        (e) => {
          const a = e.args
          return {
            enclaveId: a.enclaveId as Hex,
            signingAddress: getAddress(a.signingAddress as Address),
            epoch: a.epoch as bigint,
            registeredAt: a.registeredAt as bigint,
            expiresAt: a.expiresAt as bigint,
            endedAt: null,
            blockNumber: e.blockNumber!,
            transactionHash: e.transactionHash!,
            model: a.model as string,
            url: a.url as string,
          }
        },
        onEvent,
        onError,
        options,
      )
    },
    watchEndings(onEvent, onError, options) {
      return watchEvents(
        'EnclaveEnded',
        undefined,
        (e) => {
          const a = e.args
          const reason = ENDED_REASONS[Number(a.reason)]
          // A reason this client does not know means a newer contract: report it rather than guess.
          if (reason === undefined) throw new RegistryError('REGISTRY_EVENT_UNKNOWN', { details: { event: 'EnclaveEnded', reason: Number(a.reason) } })
          return {
            enclaveId: a.enclaveId as Hex,
            signingAddress: getAddress(a.signingAddress as Address),
            epoch: a.epoch as bigint,
            endedAt: a.endedAt as bigint,
            reason,
            blockNumber: e.blockNumber!,
            transactionHash: e.transactionHash!,
          }
        },
        onEvent,
        onError,
        options,
      )
    },
    watchCheckpointAnchors(onEvent, onError, options) {
      return watchEvents('CheckpointAnchored', options?.logId !== undefined ? { logId: options.logId } : undefined, anchorOf, onEvent, onError, options)
    },
  }
  return client
}

export interface RegistryWriterClient extends RegistryClient, RegistryWriter {
  anchorCheckpoint(logId: Hex, size: bigint, root: Hex, signature: Hex): Promise<SentTransaction & { anchored: boolean }>
  /** Re-check a live record against current collateral (the quote is read back from its registration transaction). */
  invalidate(enclaveId: Hex): Promise<SentTransaction>
  setWorkload(model: string, workloadId: Hex, allowed: boolean): Promise<SentTransaction>
  setMinTcbStatus(status: RegistryTcbStatus): Promise<SentTransaction>
  setMaxBlockAge(blocks: bigint): Promise<SentTransaction>
  setRegistrationTtl(seconds: bigint): Promise<SentTransaction>
  transferOwnership(newOwner: Address): Promise<SentTransaction>
  acceptOwnership(): Promise<SentTransaction>
}

/**
 * A writer from an RPC URL and a private key (the gateway's configuration):
 * the chain id is read from the endpoint.
 */
export async function createRegistryWriterFromUrl(o: {
  readonly rpcUrl: string
  readonly privateKey: Hex
  readonly address: Address
  readonly fromBlock?: bigint
  readonly allowDevelopment?: boolean
}): Promise<RegistryWriterClient> {
  const { createPublicClient, createWalletClient, defineChain, http } = await import('viem')
  const { privateKeyToAccount } = await import('viem/accounts')
  const probe = createPublicClient({ transport: http(o.rpcUrl) })
  const id = await read<number>(probe.getChainId())
  const chain = defineChain({ id, name: `chain-${id}`, nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [o.rpcUrl] } } })
  const transport = http(o.rpcUrl)
  return createRegistryWriter({
    publicClient: createPublicClient({ chain, transport }) as AnyPublicClient,
    walletClient: createWalletClient({ account: privateKeyToAccount(o.privateKey), chain, transport }) as AnyWalletClient,
    address: o.address,
    ...(o.fromBlock !== undefined ? { fromBlock: o.fromBlock } : {}),
    ...(o.allowDevelopment !== undefined ? { allowDevelopment: o.allowDevelopment } : {}),
  })
}

/** A reader plus the writes, sending from `walletClient`'s account. */
export async function createRegistryWriter(o: RegistryClientOptions & { readonly walletClient: AnyWalletClient }): Promise<RegistryWriterClient> {
  const reader = await createRegistryClient(o)
  const send = (functionName: string, args: readonly unknown[], gas?: bigint) =>
    sendContractTx(o.publicClient, o.walletClient, { address: reader.address, abi: attestationRegistryAbi, functionName, args, ...(gas ? { gas } : {}) })
  /** The registry's events of one kind in a transaction's receipt (logs of other contracts ignored). */
  const ownEvents = <N extends 'EnclaveRegistered' | 'CheckpointForkDetected'>(t: SentTransaction, eventName: N) =>
    parseEventLogs({ abi: attestationRegistryAbi, eventName, logs: t.receipt.logs.filter((l) => isAddressEqual(l.address, reader.address)) })
  let pcs: Address | undefined
  const pcsAddress = async () => (pcs ??= await reader.pcsAddress())
  return {
    ...reader,
    async freshnessBlock() {
      const b = await read<{ number: bigint; hash: Hex }>(o.publicClient.getBlock({ blockTag: 'latest' }))
      return { number: b.number, hash: b.hash }
    },
    async hasPckCert(certId) {
      return read<boolean>(o.publicClient.readContract({ address: await pcsAddress(), abi: pcsCollateralAbi, functionName: 'hasPckCert', args: [certId] }))
    },
    async register(sub: RegistrationSubmission): Promise<RegistrationResult> {
      const d = sub.data
      const t = await send('register', [
        toHex(sub.quote),
        sub.pckCertDer === null ? '0x' : toHex(sub.pckCertDer),
        sub.pckCertId,
        {
          logPublicKey: d.logPublicKey,
          signingAddress: d.signingAddress,
          keyConfigHash: d.keyConfigHash,
          gpuEvidenceHash: d.gpuEvidenceHash,
          epoch: d.epoch,
          blockNumber: d.blockNumber,
          model: d.model,
          url: d.url,
        },
      ])
      const enclaveId = keccak256(d.logPublicKey)
      // The expiry from this transaction's own EnclaveRegistered event, not a read of the record
      // afterwards: behind a fallback transport that read may reach a node that lags the receipt.
      const registered = ownEvents(t, 'EnclaveRegistered').find((e) => e.args.enclaveId === enclaveId)
      return { txHash: t.txHash, enclaveId, epoch: d.epoch, blockNumber: t.blockNumber, expiresAt: registered?.args.expiresAt ?? 0n, gasUsed: t.gasUsed }
    },
    async anchorCheckpoint(logId, size, root, signature) {
      const t = await send('anchorCheckpoint', [logId, size, root, signature])
      const forked = ownEvents(t, 'CheckpointForkDetected').length > 0
      return { ...t, anchored: !forked }
    },
    async invalidate(enclaveId) {
      const r = await reader.storedRecord(enclaveId)
      if (r === null) throw new RegistryError('REGISTRY_ENCLAVE_NOT_REGISTERED', { details: { enclaveId } })
      const events = await read<(Log & { args: Record<string, unknown> })[]>(
        o.publicClient.getContractEvents({ address: reader.address, abi: attestationRegistryAbi, eventName: 'EnclaveRegistered', args: { enclaveId }, fromBlock: o.fromBlock ?? 0n } as never),
      )
      let quote: Hex = '0x'
      for (const e of events.reverse()) {
        const tx = await read<{ input: Hex }>(o.publicClient.getTransaction({ hash: e.transactionHash! }))
        try {
          const decoded = decodeFunctionData({ abi: attestationRegistryAbi, data: tx.input })
          const q = (decoded.args as readonly unknown[])[0] as Hex
          if (decoded.functionName === 'register' && keccak256(q) === r.quoteHash) {
            quote = q
            break
          }
        } catch {
          // A registration sent through another contract: its input is not ours to decode.
        }
      }
      return send('invalidate', [enclaveId, quote])
    },
    setWorkload: (model, workloadId, allowed) => send('setWorkload', [model, workloadId, allowed]),
    setMinTcbStatus: (status) => send('setMinTcbStatus', [REGISTRY_TCB_STATUSES.indexOf(status)]),
    setMaxBlockAge: (blocks) => send('setMaxBlockAge', [blocks]),
    setRegistrationTtl: (seconds) => send('setRegistrationTtl', [seconds]),
    transferOwnership: (newOwner) => send('transferOwnership', [newOwner]),
    acceptOwnership: () => send('acceptOwnership', []),
  }
}
