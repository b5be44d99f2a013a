/**
 * Receipts: an EIP-712 typed-data signature by the epoch's signing key over
 * the hashes of one plaintext request and its response, the model, the key
 * epoch, the time and the receipt's index in the receipt log. No content,
 * only hashes: a receipt shows what was asked and answered only to someone
 * who already holds the plaintext.
 *
 * Checkable off-chain with viem's `verifyTypedData` and on-chain with
 * `ecrecover` over the same digest; `RECEIPT_TYPES` and `RECEIPT_TYPEHASH`
 * are exported `as const` for the contracts.
 *
 * What is hashed (`requestHash`, `responseHash`: keccak256 of the bytes):
 *   - request:  the content of the inner Binary HTTP request (RFC 9292 §3.6,
 *               "Content") as the enclave decapsulated it: the JSON body
 *               bytes, with neither the Binary HTTP framing nor any header
 *               field;
 *   - response: the content of the inner response exactly as the enclave
 *               sent it, concatenated in order over every streamed chunk
 *               (each SSE event's bytes, `data: ...\n\n`, as forwarded);
 *               the receipt's own carrier (trailer field or final chunk) is
 *               not part of it. `createBodyHasher` hashes chunk by chunk.
 * A client recomputes both from what it sent and what it decrypted.
 */
import { keccak_256 } from '@noble/hashes/sha3.js'
import {
  getAddress,
  isAddress,
  keccak256,
  recoverTypedDataAddress,
  toBytes,
  zeroAddress,
  type Address,
  type Hex,
} from 'viem'
import { ConfigError } from '../attestation/errors.ts'
import type { SigningKey } from './keys.ts'
import { encodeEntry } from '../attestation/log/entry.ts'
import { createKeccak256 } from './keccak.ts'

/** EIP-712 domain name (EIP-712 §"Definition of domainSeparator": `string name`). */
export const RECEIPT_DOMAIN_NAME = 'ConfidentialGateway'
/** EIP-712 domain version; bumped with any change of `RECEIPT_TYPES`. */
export const RECEIPT_DOMAIN_VERSION = '1'

/**
 * The Receipt struct (EIP-712 §"Definition of typed structured data"). The
 * order of members is part of the type hash: never reorder.
 *   - requestHash, responseHash: keccak256 of the plaintext bodies (module header);
 *   - model: the model id the request named, as served;
 *   - epoch: key epoch of the signing key (u64);
 *   - time: Unix time in seconds when the response ended (u64, the unit of `block.timestamp`);
 *   - logIndex: the receipt's index in the receipt log (u64).
 */
export const RECEIPT_TYPES = {
  Receipt: [
    { name: 'requestHash', type: 'bytes32' },
    { name: 'responseHash', type: 'bytes32' },
    { name: 'model', type: 'string' },
    { name: 'epoch', type: 'uint64' },
    { name: 'time', type: 'uint64' },
    { name: 'logIndex', type: 'uint64' },
  ],
} as const

export const RECEIPT_PRIMARY_TYPE = 'Receipt'

/** `encodeType(Receipt)` (EIP-712 §"Definition of encodeType"), for Solidity's `RECEIPT_TYPEHASH`. */
export const RECEIPT_TYPE_STRING = 'Receipt(bytes32 requestHash,bytes32 responseHash,string model,uint64 epoch,uint64 time,uint64 logIndex)'
/** keccak256(RECEIPT_TYPE_STRING). */
export const RECEIPT_TYPEHASH: Hex = keccak256(toBytes(RECEIPT_TYPE_STRING))

/** The receipt's fields (the EIP-712 message). */
export interface ReceiptFields {
  readonly requestHash: Hex
  readonly responseHash: Hex
  readonly model: string
  readonly epoch: bigint
  /** Unix seconds. */
  readonly time: bigint
  readonly logIndex: bigint
}

/** Domain when a chain is configured: the registry's chain and address. */
export interface ChainReceiptDomain {
  readonly name: typeof RECEIPT_DOMAIN_NAME
  readonly version: typeof RECEIPT_DOMAIN_VERSION
  readonly chainId: bigint
  readonly verifyingContract: Address
}

/**
 * Domain of a gateway without a chain: chain id 0 (no EIP-155 chain has it)
 * and the zero address, so these receipts can never be replayed as receipts
 * of a registered deployment, whose domain separator differs.
 */
export interface NoChainReceiptDomain {
  readonly name: typeof RECEIPT_DOMAIN_NAME
  readonly version: typeof RECEIPT_DOMAIN_VERSION
  readonly chainId: 0n
  readonly verifyingContract: typeof zeroAddress
}

export type ReceiptDomain = ChainReceiptDomain | NoChainReceiptDomain

export const NO_CHAIN_RECEIPT_DOMAIN: NoChainReceiptDomain = Object.freeze({
  name: RECEIPT_DOMAIN_NAME,
  version: RECEIPT_DOMAIN_VERSION,
  chainId: 0n,
  verifyingContract: zeroAddress,
})

function invalid(what: string): never {
  throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `receipt: ${what}`)
}

const U64_MAX = (1n << 64n) - 1n

/** The domain for a configured chain (the registry's chain id and address), or the no-chain domain for `null`. */
export function receiptDomain(chain: { readonly chainId: bigint; readonly registry: Address } | null): ReceiptDomain {
  if (chain === null) return NO_CHAIN_RECEIPT_DOMAIN
  if (typeof chain.chainId !== 'bigint' || chain.chainId <= 0n || chain.chainId > U64_MAX) invalid('chainId must be a positive bigint (EIP-155)')
  if (typeof chain.registry !== 'string' || !isAddress(chain.registry, { strict: false }) || chain.registry === zeroAddress) {
    invalid('registry must be a non-zero address')
  }
  return Object.freeze({ name: RECEIPT_DOMAIN_NAME, version: RECEIPT_DOMAIN_VERSION, chainId: chain.chainId, verifyingContract: getAddress(chain.registry) })
}

function checkDomain(d: ReceiptDomain): void {
  if (d?.name !== RECEIPT_DOMAIN_NAME || d.version !== RECEIPT_DOMAIN_VERSION) invalid('domain must come from receiptDomain()')
  if (typeof d.chainId !== 'bigint' || !isAddress(d.verifyingContract, { strict: false })) invalid('domain must come from receiptDomain()')
}

function bytes32(v: unknown, field: string): Hex {
  if (typeof v !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(v)) invalid(`${field} must be 0x and 32 bytes of hex`)
  return v.toLowerCase() as Hex
}

function u64(v: unknown, field: string): bigint {
  if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) invalid(`${field} must be a u64 bigint`)
  return v
}

function checkFields(f: ReceiptFields): ReceiptFields {
  if (typeof f !== 'object' || f === null) invalid('fields must be an object')
  if (typeof f.model !== 'string') invalid('model must be a string')
  return {
    requestHash: bytes32(f.requestHash, 'requestHash'),
    responseHash: bytes32(f.responseHash, 'responseHash'),
    model: f.model,
    epoch: u64(f.epoch, 'epoch'),
    time: u64(f.time, 'time'),
    logIndex: u64(f.logIndex, 'logIndex'),
  }
}

/** The full EIP-712 definition of one receipt: what is signed, and what viem verifies. */
export function receiptTypedData(fields: ReceiptFields, domain: ReceiptDomain = NO_CHAIN_RECEIPT_DOMAIN) {
  checkDomain(domain)
  return { domain, types: RECEIPT_TYPES, primaryType: RECEIPT_PRIMARY_TYPE, message: checkFields(fields) } as const
}

/*
 * The digests below are EIP-712 encoded by hand over fixed 32-byte words
 * (EIP-712 §"Definition of encodeData": atomic values as words, `string` as
 * keccak256 of its bytes). viem's generic hashTypedData costs ~0.25 ms per
 * receipt, a quarter of a request's added latency; this is ~0.02 ms. The
 * tests pin it to viem's hashTypedData.
 */
const EIP712_DOMAIN_TYPEHASH = keccak_256(
  new TextEncoder().encode('EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)'),
)
const RECEIPT_TYPEHASH_BYTES = Buffer.from(RECEIPT_TYPEHASH.slice(2), 'hex')

function word(v: bigint | Hex): Uint8Array {
  const hex = typeof v === 'bigint' ? v.toString(16) : v.slice(2)
  return Buffer.from(hex.padStart(64, '0'), 'hex')
}

const separators = new WeakMap<ReceiptDomain, Uint8Array>()

function domainSeparator(d: ReceiptDomain): Uint8Array {
  let sep = separators.get(d)
  if (!sep) {
    const te = new TextEncoder()
    sep = keccak_256(
      Buffer.concat([EIP712_DOMAIN_TYPEHASH, keccak_256(te.encode(d.name)), keccak_256(te.encode(d.version)), word(d.chainId), word(d.verifyingContract)]),
    )
    separators.set(d, sep)
  }
  return sep
}

/** keccak256 of one buffer on keccak.ts's permutation: every receipt is hashed on both sides, per request. */
function keccakOf(data: Uint8Array): Uint8Array {
  return createKeccak256().update(data).digest()
}

function fieldWords(f: ReceiptFields): Uint8Array[] {
  return [word(f.requestHash), word(f.responseHash), keccakOf(new TextEncoder().encode(f.model)), word(f.epoch), word(f.time)]
}

/** The EIP-712 digest `keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(receipt))` that the key signs. */
export function receiptDigest(fields: ReceiptFields, domain: ReceiptDomain = NO_CHAIN_RECEIPT_DOMAIN): Uint8Array {
  checkDomain(domain)
  const f = checkFields(fields)
  const structHash = keccakOf(Buffer.concat([RECEIPT_TYPEHASH_BYTES, ...fieldWords(f), word(f.logIndex)]))
  return keccakOf(Buffer.concat([Buffer.from([0x19, 0x01]), domainSeparator(domain), structHash]))
}

/** `receiptDigest` as hex. */
export function hashReceipt(fields: ReceiptFields, domain: ReceiptDomain = NO_CHAIN_RECEIPT_DOMAIN): Hex {
  return `0x${Buffer.from(receiptDigest(fields, domain)).toString('hex')}`
}

/** Sign a receipt with an epoch's key; resolves to the 65-byte `r ‖ s ‖ v` signature. */
export async function signReceipt(signingKey: SigningKey, fields: ReceiptFields, domain: ReceiptDomain = NO_CHAIN_RECEIPT_DOMAIN): Promise<Hex> {
  return signingKey.signDigest(receiptDigest(fields, domain))
}

/**
 * The address that signed `fields`, or null when the signature is malformed
 * or recovers nothing. Malformed fields or domain throw (caller's error).
 */
export async function recoverReceiptSigner(fields: ReceiptFields, signature: Hex, domain: ReceiptDomain = NO_CHAIN_RECEIPT_DOMAIN): Promise<Address | null> {
  const typedData = receiptTypedData(fields, domain)
  if (typeof signature !== 'string' || !/^0x[0-9a-fA-F]{130}$/.test(signature)) return null
  try {
    return await recoverTypedDataAddress({ ...typedData, signature })
  } catch {
    return null
  }
}

/**
 * True when `signature` over `fields` in `domain` recovers to
 * `expectedSigner` (viem's `verifyTypedData` semantics: EOA signatures only).
 * A bad or malformed signature is `false`; malformed fields, domain or
 * address throw.
 */
export async function verifyReceipt(
  fields: ReceiptFields,
  signature: Hex,
  expectedSigner: Address,
  domain: ReceiptDomain = NO_CHAIN_RECEIPT_DOMAIN,
): Promise<boolean> {
  if (typeof expectedSigner !== 'string' || !isAddress(expectedSigner, { strict: false })) invalid('expectedSigner must be an address')
  const signer = await recoverReceiptSigner(fields, signature, domain)
  return signer !== null && signer.toLowerCase() === expectedSigner.toLowerCase()
}

/** Incremental keccak256 over a body that arrives in chunks (module header says which bytes). */
export interface BodyHasher {
  update(chunk: Uint8Array): BodyHasher
  /** The hash; the hasher cannot be updated afterwards. */
  digest(): Hex
}

export function createBodyHasher(): BodyHasher {
  // keccak.ts's unrolled permutation: clients update this once per streamed event.
  const h = createKeccak256()
  let done = false
  const hasher: BodyHasher = {
    update(chunk) {
      if (done) invalid('body hasher already digested')
      h.update(chunk)
      return hasher
    },
    digest() {
      if (done) invalid('body hasher already digested')
      done = true
      return `0x${Buffer.from(h.digest()).toString('hex')}`
    },
  }
  return hasher
}

/** keccak256 of a whole body. */
export function hashBody(body: Uint8Array): Hex {
  return createBodyHasher().update(body).digest()
}

/**
 * Where receipts are recorded: the transparency log (enclave/log/writer.ts)
 * or, in tests, `createMemoryReceiptLog`. The append assigns the index and
 * then runs `build(index)` at once, so the receipt can be signed over its
 * own index and the signed entry (attestation/log/entry.ts, type receipt)
 * is what the log holds; the promise resolves once the entry is durable.
 */
export interface ReceiptLog {
  append(build: (index: bigint) => Uint8Array | Promise<Uint8Array>): Promise<bigint>
}

/**
 * An in-memory receipt log for tests: not persistent (indices restart with
 * the process) and bounded — it keeps the last `maxEntries` entries
 * (default 10,000) and counts the rest.
 */
export function createMemoryReceiptLog(options: { readonly maxEntries?: number } = {}): ReceiptLog & {
  entries(): readonly Uint8Array[]
  readonly size: bigint
} {
  const maxEntries = options.maxEntries ?? 10_000
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) invalid('maxEntries must be a positive integer')
  let kept: Uint8Array[] = []
  let size = 0n
  return {
    async append(build) {
      const index = size++
      const entry = await build(index)
      kept.push(entry)
      if (kept.length > maxEntries * 2) kept = kept.slice(-maxEntries)
      return index
    },
    entries: () => kept.slice(-maxEntries),
    get size() {
      return size
    },
  }
}

/** Everything a client needs to check a receipt, JSON-safe (u64 values as decimal strings). */
export interface ReceiptJson {
  readonly domain: { readonly name: string; readonly version: string; readonly chainId: string; readonly verifyingContract: Address }
  readonly message: {
    readonly requestHash: Hex
    readonly responseHash: Hex
    readonly model: string
    readonly epoch: string
    readonly time: string
    readonly logIndex: string
  }
  readonly signer: Address
  readonly signature: Hex
}

export interface IssueReceiptParameters {
  readonly signingKey: SigningKey
  readonly log: ReceiptLog
  readonly domain?: ReceiptDomain
  readonly requestHash: Hex
  readonly responseHash: Hex
  readonly model: string
  readonly epoch: bigint
  /** Unix seconds. */
  readonly time: bigint
}

/**
 * Append the receipt to the log: the log assigns the index, the receipt is
 * signed over it inside the append, and the log entry holds the receipt's
 * EIP-712 digest and signature (no request or response hash on its own).
 * Resolves once the entry is durable.
 */
export async function issueReceipt(p: IssueReceiptParameters): Promise<ReceiptJson> {
  const domain = p.domain ?? NO_CHAIN_RECEIPT_DOMAIN
  const base = checkFields({ requestHash: p.requestHash, responseHash: p.responseHash, model: p.model, epoch: p.epoch, time: p.time, logIndex: 0n })
  let issued: ReceiptJson | undefined
  await p.log.append(async (index) => {
    const fields = checkFields({ ...base, logIndex: u64(index, 'logIndex') })
    const digest = receiptDigest(fields, domain)
    const signature = await p.signingKey.signDigest(digest)
    issued = receiptToJson(fields, signature, p.signingKey.address, domain)
    return encodeEntry({
      type: 'receipt',
      time: Number(fields.time) * 1000,
      epoch: fields.epoch,
      signer: p.signingKey.address,
      receiptHash: `0x${Buffer.from(digest).toString('hex')}`,
      signature,
    })
  })
  return issued!
}

export function receiptToJson(fields: ReceiptFields, signature: Hex, signer: Address, domain: ReceiptDomain = NO_CHAIN_RECEIPT_DOMAIN): ReceiptJson {
  const f = checkFields(fields)
  checkDomain(domain)
  return {
    domain: { name: domain.name, version: domain.version, chainId: domain.chainId.toString(), verifyingContract: domain.verifyingContract },
    message: { ...f, epoch: f.epoch.toString(), time: f.time.toString(), logIndex: f.logIndex.toString() },
    signer,
    signature,
  }
}

function decimal(v: unknown, field: string): bigint {
  if (typeof v !== 'string' || !/^(0|[1-9][0-9]{0,19})$/.test(v)) invalid(`${field} must be a decimal string`)
  return u64(BigInt(v), field)
}

/** Read the JSON form back (throws on anything malformed; verifies nothing). */
export function receiptFromJson(json: ReceiptJson): { fields: ReceiptFields; signature: Hex; signer: Address; domain: ReceiptDomain } {
  if (typeof json !== 'object' || json === null || typeof json.domain !== 'object' || typeof json.message !== 'object') invalid('not a receipt')
  const m = json.message
  const chainId = decimal(json.domain.chainId, 'chainId')
  const domain =
    chainId === 0n
      ? json.domain.verifyingContract === zeroAddress
        ? NO_CHAIN_RECEIPT_DOMAIN
        : invalid('chain id 0 goes with the zero address only')
      : receiptDomain({ chainId, registry: json.domain.verifyingContract })
  if (json.domain.name !== domain.name || json.domain.version !== domain.version) invalid('domain name or version is not this receipt format')
  const fields = checkFields({
    requestHash: m.requestHash,
    responseHash: m.responseHash,
    model: m.model,
    epoch: decimal(m.epoch, 'epoch'),
    time: decimal(m.time, 'time'),
    logIndex: decimal(m.logIndex, 'logIndex'),
  })
  if (typeof json.signer !== 'string' || !isAddress(json.signer, { strict: false })) invalid('signer must be an address')
  if (typeof json.signature !== 'string' || !/^0x[0-9a-fA-F]{130}$/.test(json.signature)) invalid('signature must be 65 bytes of hex')
  return { fields, signature: json.signature, signer: getAddress(json.signer), domain }
}
