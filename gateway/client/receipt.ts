/**
 * Receipt checks on the client side: a receipt must cover exactly what was
 * sent and what was decrypted (requestHash, responseHash recomputed here),
 * name the request's model and the verified epoch, be in the expected
 * EIP-712 domain, and be signed by the verified signing address.
 *
 * The signature check is `ecrecover`'s, on the EIP-712 digest (receiptDigest,
 * pinned to viem's hashTypedData by the receipt tests): the public key
 * recovered from (r, s, v) must be the signer's, with v = 27 or 28 and s
 * low (EIP-2), as the enclave's signer always makes it. Every receipt
 * accepted here is accepted by the registry's on-chain `verifyReceipt`;
 * the registry is laxer (it also takes v = 0 or 1). Recovery runs on libsecp256k1
 * (enclave/secp256k1.ts, ~0.27 ms); viem's typed-data recovery cost ~3 ms
 * per receipt here. The first receipt of a signer is matched by address
 * (keccak of the recovered key); its key is kept, and later receipts are
 * matched by key bytes.
 */
import { keccak_256 } from '@noble/hashes/sha3.js'
import type { Address, Hex } from 'viem'
import { hex } from '../../attestation/bytes/hex.ts'
import { receiptDigest, receiptFromJson, type ReceiptDomain, type ReceiptFields, type ReceiptJson } from '../../enclave/receipts.ts'
import { recoverPublicKey } from '../../enclave/secp256k1.ts'
import { ClientError } from './errors.ts'

/** A receipt that passed every check. */
export interface VerifiedReceipt {
  readonly json: ReceiptJson
  readonly fields: ReceiptFields
  readonly signature: Hex
  readonly signer: Address
  readonly domain: ReceiptDomain
  /** The EIP-712 digest, 0x hex (what an on-chain `ecrecover` checks). */
  readonly digest: Hex
}

export interface ReceiptExpectation {
  readonly requestHash: Hex
  readonly responseHash: Hex
  readonly model: string
  readonly epoch: bigint
  /** Null: accept the receipt's own domain (no registry configured). */
  readonly domain: ReceiptDomain | null
}

/** EIP-2: the largest s a signature may have, n/2 of secp256k1 (SEC 2 §2.4.1). */
const HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n

function invalid(field: string, details: Record<string, unknown> = {}): never {
  throw new ClientError('CLIENT_RECEIPT_INVALID', `the receipt does not check out (${field})`, { details: { field, ...details } })
}

/** Checks receipts of one signing address; keeps that key after the first recovery. */
export interface ReceiptVerifier {
  readonly signingAddress: Address
  verify(json: unknown, expected: ReceiptExpectation): Promise<VerifiedReceipt>
}

export function createReceiptVerifier(signingAddress: Address): ReceiptVerifier {
  const want = signingAddress.toLowerCase().replace(/^0x/, '')
  /** The signer's public key (hex), once a receipt has been matched to the address. */
  let key: string | undefined

  /** Whether `signature` is the signer's over `digest`, as ecrecover decides, with low s. */
  function signedBySigner(digest: Uint8Array, signature: Hex): boolean {
    const sig = Buffer.from(signature.slice(2), 'hex')
    if (BigInt(`0x${hex(sig.subarray(32, 64))}`) > HALF_N) return false
    const q = recoverPublicKey(digest, sig)
    if (q === null) return false
    if (key !== undefined) return hex(q) === key
    if (hex(keccak_256(q.subarray(1)).subarray(12)) !== want) return false
    key = hex(q)
    return true
  }

  return {
    signingAddress,
    async verify(json, expected) {
      let parsed: ReturnType<typeof receiptFromJson>
      try {
        parsed = receiptFromJson(json as ReceiptJson)
      } catch (e) {
        throw new ClientError('CLIENT_RECEIPT_INVALID', 'the receipt is malformed', { cause: e, details: { field: 'receipt' } })
      }
      const { fields, signature, signer, domain } = parsed
      if (fields.requestHash !== expected.requestHash.toLowerCase()) invalid('requestHash', { expected: expected.requestHash, actual: fields.requestHash })
      if (fields.responseHash !== expected.responseHash.toLowerCase()) invalid('responseHash', { expected: expected.responseHash, actual: fields.responseHash })
      if (fields.model !== expected.model) invalid('model')
      if (fields.epoch !== expected.epoch) invalid('epoch', { expected: expected.epoch.toString(), actual: fields.epoch.toString() })
      if (signer.toLowerCase().replace(/^0x/, '') !== want) invalid('signer', { expected: signingAddress, actual: signer })
      if (expected.domain !== null && (domain.chainId !== expected.domain.chainId || domain.verifyingContract.toLowerCase() !== expected.domain.verifyingContract.toLowerCase())) {
        invalid('domain', { expected: { chainId: expected.domain.chainId.toString(), verifyingContract: expected.domain.verifyingContract }, actual: json && (json as ReceiptJson).domain })
      }
      const digest = receiptDigest(fields, domain)
      if (!signedBySigner(digest, signature)) invalid('signature')
      return { json: json as ReceiptJson, fields, signature, signer, domain, digest: `0x${hex(digest)}` }
    },
  }
}

/** One receipt verifier per signing address, kept while the signer is live. */
export interface ReceiptVerifiers {
  /** The verifier of `signingAddress` (any case): the kept one, or a new one kept from now on. */
  get(signingAddress: Address): ReceiptVerifier
  readonly size: number
}

/**
 * At most `limit` verifiers, the oldest dropped first: a long-running
 * client meets a new signer every epoch — old epochs' keys are not worth
 * keeping.
 */
export function createReceiptVerifiers(limit = 256): ReceiptVerifiers {
  const kept = new Map<string, ReceiptVerifier>()
  return {
    get(signingAddress) {
      const key = signingAddress.toLowerCase()
      let rv = kept.get(key)
      if (rv === undefined) {
        rv = createReceiptVerifier(signingAddress)
        kept.set(key, rv)
        if (kept.size > limit) kept.delete(kept.keys().next().value!)
      }
      return rv
    },
    get size() {
      return kept.size
    },
  }
}
