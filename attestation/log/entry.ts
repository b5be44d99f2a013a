/**
 * The log's entry encoding, version 1: binary, typed, canonical (one byte
 * string per value, so a leaf hash names exactly one entry).
 *
 *   u8 version (1) ‖ u8 type ‖ u64 time (ms since the Unix epoch, the
 *   writer's clock when it assigned the index) ‖ type-specific body
 *
 * All integers big-endian; addresses 20 bytes; hashes 32 bytes. Large
 * public artifacts (quote, CCEL table and data, GPU evidence JSON,
 * collateral JSON) are not in the entry: it holds their SHA-256, and the
 * bytes are content-addressed blobs (`blob/<sha256 hex>`) written durably
 * before the entry. An entry fits the uint16 frame of a tlog-tiles entry
 * bundle (≤ 65535 bytes).
 *
 * Receipt entries hold the receipt's EIP-712 digest and signature (plus
 * the epoch and signer address, both public) — never a request or response
 * hash on its own and never content.
 *
 * Evidence comes in the two binding modes of attestation/binding.ts:
 * `evidence` answers a client nonce; `registration-evidence` is the bundle
 * made for AttestationRegistry.register (enclave/registration.ts), fresh by
 * a block hash, so it carries the binding inputs of that mode (block hash
 * and number, chain id, registry) and, once mined, the transaction hash.
 * A separate type rather than a flag so that a reader that predates it
 * rejects it (LOG_ENTRY_MALFORMED) instead of checking it as nonce mode.
 */
import { logError } from './errors.ts'
import { MAX_ENTRY_SIZE } from './tile.ts'
import { hex as bytesHex } from '../bytes/hex.ts'

export const ENTRY_VERSION = 1

/** Entry types (the second byte). Never renumber. */
export const ENTRY_TYPES = {
  evidence: 1,
  epoch: 2,
  registration: 3,
  collateral: 4,
  receipt: 5,
  void: 6,
  'registration-evidence': 7,
} as const
export type EntryType = keyof typeof ENTRY_TYPES

type Hex = `0x${string}`

export interface EvidenceEntry {
  readonly type: 'evidence'
  readonly time: number
  readonly epoch: bigint
  /** 32 bytes hex (no 0x), as in the bundle. */
  readonly nonce: string
  readonly signingAddress: Hex
  /** ms since the Unix epoch. */
  readonly epochExpiresAt: number
  /** SHA-256 hex of the raw quote blob. */
  readonly quoteSha256: string
  readonly eventLog: { readonly tableSha256: string; readonly dataSha256: string } | null
  /** SHA-256 hex of the GPU evidence JSON blob (UTF-8 of JSON.stringify of the bundle's `gpu`). */
  readonly gpuSha256: string | null
  readonly keyConfig: Uint8Array
  readonly logPublicKey: Uint8Array | null
  /** SHA-256 hex of the runtime events JSON blob (RTMR2/3 extensions after boot), or null when none. */
  readonly runtimeEventsSha256: string | null
}

/** A registration-mode evidence bundle (module header). */
export interface RegistrationEvidenceEntry {
  readonly type: 'registration-evidence'
  readonly time: number
  readonly epoch: bigint
  /** The block hash the quote answers: REPORTDATA freshness and the GPU nonce. */
  readonly blockHash: Hex
  readonly blockNumber: bigint
  readonly chainId: bigint
  readonly registry: Hex
  /** The model and gateway URL registered on-chain (both bound in registration-mode REPORTDATA). */
  readonly model: string
  readonly url: string
  readonly signingAddress: Hex
  /** ms since the Unix epoch. */
  readonly epochExpiresAt: number
  readonly quoteSha256: string
  readonly eventLog: { readonly tableSha256: string; readonly dataSha256: string } | null
  readonly gpuSha256: string | null
  readonly keyConfig: Uint8Array
  /** Always present: the registry identifies the enclave by keccak256 of it. */
  readonly logPublicKey: Uint8Array
  readonly runtimeEventsSha256: string | null
  /** The registration transaction once mined; null when logged before submission. */
  readonly txHash: Hex | null
}

export interface EpochEntry {
  readonly type: 'epoch'
  readonly time: number
  readonly epoch: bigint
  readonly signingAddress: Hex
  readonly expiresAt: number
  readonly keyConfig: Uint8Array
  readonly previous: { readonly epoch: bigint; readonly liveUntil: number } | null
}

export interface RegistrationEntry {
  readonly type: 'registration'
  readonly time: number
  readonly chainId: bigint
  readonly registry: Hex
  readonly enclaveId: Hex
  readonly epoch: bigint
  readonly blockNumber: bigint
  readonly txHash: Hex
}

export interface CollateralEntry {
  readonly type: 'collateral'
  readonly time: number
  /** SHA-256 hex of each collateral blob (QuoteCollateralV3 JSON) in use from now on. */
  readonly fingerprints: readonly string[]
}

export interface ReceiptEntry {
  readonly type: 'receipt'
  readonly time: number
  readonly epoch: bigint
  readonly signer: Hex
  /** The EIP-712 digest of the receipt (enclave/receipts.ts hashReceipt), which covers its log index. */
  readonly receiptHash: Hex
  /** 65-byte r ‖ s ‖ v. */
  readonly signature: Hex
}

export interface VoidEntry {
  readonly type: 'void'
  readonly time: number
  /** Stable error code of the failure that left the index without a receipt. */
  readonly reason: string
}

export type LogEntry = EvidenceEntry | RegistrationEvidenceEntry | EpochEntry | RegistrationEntry | CollateralEntry | ReceiptEntry | VoidEntry

class Writer {
  private parts: Uint8Array[] = []
  u8(n: number): this {
    this.parts.push(Uint8Array.of(n))
    return this
  }
  u16(n: number): this {
    this.parts.push(Uint8Array.of(n >>> 8, n & 0xff))
    return this
  }
  u64(n: bigint | number): this {
    const v = BigInt(n)
    if (v < 0n || v >= 1n << 64n) logError('LOG_ENTRY_MALFORMED', 'u64 out of range')
    const b = new Uint8Array(8)
    new DataView(b.buffer).setBigUint64(0, v)
    this.parts.push(b)
    return this
  }
  bytes(b: Uint8Array, size?: number): this {
    if (size !== undefined && b.length !== size) logError('LOG_ENTRY_MALFORMED', `expected ${size} bytes`, { size: b.length })
    this.parts.push(b)
    return this
  }
  hex(h: string, size: number): this {
    const s = h.startsWith('0x') ? h.slice(2) : h
    if (!new RegExp(`^[0-9a-fA-F]{${size * 2}}$`).test(s)) logError('LOG_ENTRY_MALFORMED', `expected ${size} bytes of hex`)
    return this.bytes(Buffer.from(s, 'hex'))
  }
  var16(b: Uint8Array): this {
    if (b.length > 0xffff) logError('LOG_ENTRY_TOO_LARGE', 'field exceeds 65535 bytes')
    return this.u16(b.length).bytes(b)
  }
  done(): Uint8Array {
    const out = Buffer.concat(this.parts)
    if (out.length > MAX_ENTRY_SIZE) logError('LOG_ENTRY_TOO_LARGE', 'entry exceeds 65535 bytes', { size: out.length })
    return new Uint8Array(out.buffer, out.byteOffset, out.length)
  }
}

class Reader {
  o = 0
  constructor(private readonly b: Uint8Array) {}
  take(n: number): Uint8Array {
    if (this.o + n > this.b.length) logError('LOG_ENTRY_MALFORMED', 'entry is truncated', { offset: this.o })
    const out = this.b.subarray(this.o, this.o + n)
    this.o += n
    return out
  }
  u8(): number {
    return this.take(1)[0]!
  }
  u16(): number {
    const b = this.take(2)
    return (b[0]! << 8) | b[1]!
  }
  u64(): bigint {
    const b = this.take(8)
    return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0)
  }
  num(): number {
    const v = this.u64()
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) logError('LOG_ENTRY_MALFORMED', 'time out of range')
    return Number(v)
  }
  hex(n: number): string {
    return bytesHex(this.take(n))
  }
  var16(): Uint8Array {
    return new Uint8Array(this.take(this.u16()))
  }
  end(): void {
    if (this.o !== this.b.length) logError('LOG_ENTRY_MALFORMED', 'trailing bytes after the entry', { offset: this.o })
  }
}

const FLAG_EVENT_LOG = 1
const FLAG_GPU = 2
const FLAG_LOG_KEY = 4
const FLAG_RUNTIME_EVENTS = 8
const FLAG_TX_HASH = 16

const utf8 = (s: string) => {
  if (typeof s !== 'string') logError('LOG_ENTRY_MALFORMED', 'expected a string')
  return new TextEncoder().encode(s)
}
/** Strict UTF-8: a string field has exactly one encoding, so the entry stays canonical. */
const fromUtf8 = (b: Uint8Array) => {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(b)
  } catch (cause) {
    return logError('LOG_ENTRY_MALFORMED', 'a string field is not UTF-8', undefined, cause)
  }
}

/** Encode an entry (version 1). */
export function encodeEntry(e: LogEntry): Uint8Array {
  const w = new Writer().u8(ENTRY_VERSION).u8(ENTRY_TYPES[e.type]).u64(e.time)
  switch (e.type) {
    case 'evidence': {
      const flags = (e.eventLog ? FLAG_EVENT_LOG : 0) | (e.gpuSha256 ? FLAG_GPU : 0) | (e.logPublicKey ? FLAG_LOG_KEY : 0) | (e.runtimeEventsSha256 ? FLAG_RUNTIME_EVENTS : 0)
      w.u64(e.epoch).hex(e.nonce, 32).hex(e.signingAddress, 20).u64(e.epochExpiresAt).u8(flags).hex(e.quoteSha256, 32)
      if (e.eventLog) w.hex(e.eventLog.tableSha256, 32).hex(e.eventLog.dataSha256, 32)
      if (e.gpuSha256) w.hex(e.gpuSha256, 32)
      w.var16(e.keyConfig)
      if (e.logPublicKey) w.var16(e.logPublicKey)
      if (e.runtimeEventsSha256) w.hex(e.runtimeEventsSha256, 32)
      break
    }
    case 'registration-evidence': {
      const flags = (e.eventLog ? FLAG_EVENT_LOG : 0) | (e.gpuSha256 ? FLAG_GPU : 0) | (e.runtimeEventsSha256 ? FLAG_RUNTIME_EVENTS : 0) | (e.txHash ? FLAG_TX_HASH : 0)
      w.u64(e.epoch).hex(e.blockHash, 32).u64(e.blockNumber).u64(e.chainId).hex(e.registry, 20)
      w.hex(e.signingAddress, 20).u64(e.epochExpiresAt).u8(flags).hex(e.quoteSha256, 32)
      if (e.eventLog) w.hex(e.eventLog.tableSha256, 32).hex(e.eventLog.dataSha256, 32)
      if (e.gpuSha256) w.hex(e.gpuSha256, 32)
      w.var16(e.keyConfig).var16(e.logPublicKey).var16(utf8(e.model)).var16(utf8(e.url))
      if (e.runtimeEventsSha256) w.hex(e.runtimeEventsSha256, 32)
      if (e.txHash) w.hex(e.txHash, 32)
      break
    }
    case 'epoch':
      w.u64(e.epoch).hex(e.signingAddress, 20).u64(e.expiresAt).var16(e.keyConfig).u8(e.previous ? 1 : 0)
      if (e.previous) w.u64(e.previous.epoch).u64(e.previous.liveUntil)
      break
    case 'registration':
      w.u64(e.chainId).hex(e.registry, 20).hex(e.enclaveId, 32).u64(e.epoch).u64(e.blockNumber).hex(e.txHash, 32)
      break
    case 'collateral':
      if (e.fingerprints.length === 0 || e.fingerprints.length > 255) logError('LOG_ENTRY_MALFORMED', 'a collateral entry names 1..255 fingerprints')
      w.u8(e.fingerprints.length)
      for (const f of e.fingerprints) w.hex(f, 32)
      break
    case 'receipt':
      w.u64(e.epoch).hex(e.signer, 20).hex(e.receiptHash, 32).hex(e.signature, 65)
      break
    case 'void':
      if (!/^[A-Z0-9_]{1,64}$/.test(e.reason)) logError('LOG_ENTRY_MALFORMED', 'a void reason is an error code')
      w.var16(new TextEncoder().encode(e.reason))
      break
    default:
      logError('LOG_ENTRY_MALFORMED', 'unknown entry type')
  }
  return w.done()
}

const addr = (h: string) => `0x${h}` as Hex

/** Decode an entry; throws LOG_ENTRY_MALFORMED for unknown versions/types, truncation or trailing bytes. */
export function decodeEntry(bytes: Uint8Array): LogEntry {
  const r = new Reader(bytes)
  const version = r.u8()
  if (version !== ENTRY_VERSION) logError('LOG_ENTRY_MALFORMED', 'unknown entry version', { version })
  const type = r.u8()
  const time = r.num()
  let e: LogEntry
  switch (type) {
    case ENTRY_TYPES.evidence: {
      const epoch = r.u64()
      const nonce = r.hex(32)
      const signingAddress = addr(r.hex(20))
      const epochExpiresAt = r.num()
      const flags = r.u8()
      if (flags & ~(FLAG_EVENT_LOG | FLAG_GPU | FLAG_LOG_KEY | FLAG_RUNTIME_EVENTS)) logError('LOG_ENTRY_MALFORMED', 'unknown evidence flags')
      const quoteSha256 = r.hex(32)
      const eventLog = flags & FLAG_EVENT_LOG ? { tableSha256: r.hex(32), dataSha256: r.hex(32) } : null
      const gpuSha256 = flags & FLAG_GPU ? r.hex(32) : null
      const keyConfig = r.var16()
      const logPublicKey = flags & FLAG_LOG_KEY ? r.var16() : null
      const runtimeEventsSha256 = flags & FLAG_RUNTIME_EVENTS ? r.hex(32) : null
      e = { type: 'evidence', time, epoch, nonce, signingAddress, epochExpiresAt, quoteSha256, eventLog, gpuSha256, keyConfig, logPublicKey, runtimeEventsSha256 }
      break
    }
    case ENTRY_TYPES['registration-evidence']: {
      const epoch = r.u64()
      const blockHash = addr(r.hex(32))
      const blockNumber = r.u64()
      const chainId = r.u64()
      const registry = addr(r.hex(20))
      const signingAddress = addr(r.hex(20))
      const epochExpiresAt = r.num()
      const flags = r.u8()
      if (flags & ~(FLAG_EVENT_LOG | FLAG_GPU | FLAG_RUNTIME_EVENTS | FLAG_TX_HASH)) logError('LOG_ENTRY_MALFORMED', 'unknown registration evidence flags')
      const quoteSha256 = r.hex(32)
      const eventLog = flags & FLAG_EVENT_LOG ? { tableSha256: r.hex(32), dataSha256: r.hex(32) } : null
      const gpuSha256 = flags & FLAG_GPU ? r.hex(32) : null
      const keyConfig = r.var16()
      const logPublicKey = r.var16()
      const model = fromUtf8(r.var16())
      const url = fromUtf8(r.var16())
      const runtimeEventsSha256 = flags & FLAG_RUNTIME_EVENTS ? r.hex(32) : null
      const txHash = flags & FLAG_TX_HASH ? addr(r.hex(32)) : null
      e = {
        type: 'registration-evidence',
        time,
        epoch,
        blockHash,
        blockNumber,
        chainId,
        registry,
        model,
        url,
        signingAddress,
        epochExpiresAt,
        quoteSha256,
        eventLog,
        gpuSha256,
        keyConfig,
        logPublicKey,
        runtimeEventsSha256,
        txHash,
      }
      break
    }
    case ENTRY_TYPES.epoch: {
      const epoch = r.u64()
      const signingAddress = addr(r.hex(20))
      const expiresAt = r.num()
      const keyConfig = r.var16()
      const hasPrev = r.u8()
      if (hasPrev > 1) logError('LOG_ENTRY_MALFORMED', 'bad previous flag')
      const previous = hasPrev ? { epoch: r.u64(), liveUntil: r.num() } : null
      e = { type: 'epoch', time, epoch, signingAddress, expiresAt, keyConfig, previous }
      break
    }
    case ENTRY_TYPES.registration:
      e = {
        type: 'registration',
        time,
        chainId: r.u64(),
        registry: addr(r.hex(20)),
        enclaveId: addr(r.hex(32)),
        epoch: r.u64(),
        blockNumber: r.u64(),
        txHash: addr(r.hex(32)),
      }
      break
    case ENTRY_TYPES.collateral: {
      const n = r.u8()
      if (n === 0) logError('LOG_ENTRY_MALFORMED', 'empty collateral entry')
      const fingerprints: string[] = []
      for (let i = 0; i < n; i++) fingerprints.push(r.hex(32))
      e = { type: 'collateral', time, fingerprints }
      break
    }
    case ENTRY_TYPES.receipt:
      e = { type: 'receipt', time, epoch: r.u64(), signer: addr(r.hex(20)), receiptHash: addr(r.hex(32)), signature: addr(r.hex(65)) }
      break
    case ENTRY_TYPES.void: {
      const reason = new TextDecoder().decode(r.var16())
      if (!/^[A-Z0-9_]{1,64}$/.test(reason)) logError('LOG_ENTRY_MALFORMED', 'a void reason is an error code')
      e = { type: 'void', time, reason }
      break
    }
    default:
      return logError('LOG_ENTRY_MALFORMED', 'unknown entry type', { type })
  }
  r.end()
  return e
}
