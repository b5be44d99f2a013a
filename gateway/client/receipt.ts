/**
 * Receipt checks on the client side: a receipt must cover exactly what was
 * sent and what was decrypted (requestHash, responseHash recomputed here),
 * name the request's model and the verified epoch, be in the expected
 * EIP-712 domain, and be signed by the verified signing address.
 *
 * Why not just `verifyReceipt` (enclave/receipts.ts) per request: viem's
 * typed-data recovery costs about 3 ms here and noble's public-key recovery
 * 1.7 ms, most of the proxy's latency budget. The first receipts of a
 * signer are checked by recovery over the EIP-712 digest (receiptDigest,
 * pinned to viem's hashTypedData by the receipt tests); the recovered key
 * is then kept with a precomputed multiplication table, and later receipts
 * are checked by recomputing
 * R = u1·G + u2·Q and comparing both R.x (= r) and the parity of R.y (= v),
 * which is exactly when `ecrecover` would return Q's address. Low-s only,
 * as OpenZeppelin's ECDSA and the enclave's signer require.
 */
import { keccak_256 } from '@noble/hashes/sha3.js'
import type { Address, Hex } from 'viem'
import { hex } from '../../attestation/bytes/hex.ts'
import { receiptDigest, receiptFromJson, type ReceiptDomain, type ReceiptFields, type ReceiptJson } from '../../enclave/receipts.ts'
import { ClientError } from './errors.ts'
// The enclave's tuned curve module: the base point's wider table speeds up u1·G below.
import { secp256k1 } from '../../enclave/secp256k1.ts'

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

type Point = InstanceType<typeof secp256k1.Point>
const N = secp256k1.Point.Fn.ORDER
const HALF_N = N >> 1n
const Fn = secp256k1.Point.Fn

/** wNAF window of the kept key's table: 6 is the measured sweet spot of table cost and check speed. */
const PRECOMPUTE_WINDOW = 6

const big = (b: Uint8Array): bigint => BigInt(`0x${hex(b) || '0'}`)

function invalid(field: string, details: Record<string, unknown> = {}): never {
  throw new ClientError('CLIENT_RECEIPT_INVALID', `the receipt does not check out (${field})`, { details: { field, ...details } })
}

function addressOf(p: Point): string {
  return hex(keccak_256(p.toBytes(false).subarray(1)).subarray(12))
}

/** Checks receipts of one signing address; keeps that key's table after the first recovery. */
export interface ReceiptVerifier {
  readonly signingAddress: Address
  verify(json: unknown, expected: ReceiptExpectation): Promise<VerifiedReceipt>
}

export function createReceiptVerifier(signingAddress: Address): ReceiptVerifier {
  const want = signingAddress.toLowerCase().replace(/^0x/, '')
  let key: Point | undefined
  let recovered = 0

  function fastCheck(q: Point, digest: Uint8Array, signature: Hex): boolean {
    const sig = Buffer.from(signature.slice(2), 'hex')
    const r = big(sig.subarray(0, 32))
    const s = big(sig.subarray(32, 64))
    const v = sig[64]!
    if (v !== 27 && v !== 28) return false
    if (r <= 0n || r >= N || s <= 0n || s > HALF_N) return false
    const z = big(digest) % N
    const si = Fn.inv(s)
    const R = secp256k1.Point.BASE.multiplyUnsafe(Fn.mul(z, si)).add(q.multiplyUnsafe(Fn.mul(r, si)))
    if (R.is0()) return false
    const a = R.toAffine()
    return a.x % N === r && Number(a.y & 1n) === v - 27
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
      if (key !== undefined) {
        if (!fastCheck(key, digest, signature)) invalid('signature')
      } else {
        // First receipt of this signer: public-key recovery, as ecrecover does.
        const sig = Buffer.from(signature.slice(2), 'hex')
        const v = sig[64]!
        if ((v !== 27 && v !== 28) || big(sig.subarray(32, 64)) > HALF_N) invalid('signature')
        let candidate: Point
        try {
          candidate = secp256k1.Signature.fromBytes(new Uint8Array([v - 27, ...sig.subarray(0, 64)]), 'recovered').recoverPublicKey(digest)
        } catch {
          return invalid('signature')
        }
        if (addressOf(candidate) !== want) invalid('signature')
        // From the second receipt on, the key's multiplication table pays for itself
        // (tens of ms once, then ~3x faster checks); the first request does not wait for it.
        if (++recovered >= 2) {
          candidate.precompute(PRECOMPUTE_WINDOW, false)
          key = candidate
        }
      }
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
 * At most `limit` verifiers, the oldest dropped first: each holds its key's
 * precomputed table, and a long-running client meets a new signer every
 * epoch — old epochs' keys are not worth keeping.
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
