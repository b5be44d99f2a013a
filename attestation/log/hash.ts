/**
 * RFC 6962 §2.1 (= RFC 9162 §2.1.1) Merkle tree hashing with SHA-256:
 *   MTH({})       = SHA-256()
 *   leaf hash     = SHA-256(0x00 ‖ d)
 *   interior node = SHA-256(0x01 ‖ left ‖ right)
 * The 0x00/0x01 prefixes are the second-preimage domain separation the RFC
 * requires. node:crypto, not @noble/hashes: the auditor hashes every leaf
 * and node of a log, and the native hash is several times faster.
 */
import { createHash } from 'node:crypto'

/** SHA-256 output size; every hash in a tile is this long (C2SP tlog-tiles "Merkle Tree hashes"). */
export const HASH_SIZE = 32

const LEAF_PREFIX = Buffer.from([0x00])
const NODE_PREFIX = Buffer.from([0x01])

/** RFC 6962 §2.1: MTH of the empty list. */
export const EMPTY_ROOT: Uint8Array = new Uint8Array(createHash('sha256').digest())

/** RFC 6962 §2.1: the hash of one leaf, SHA-256(0x00 ‖ entry). */
export function leafHash(entry: Uint8Array): Uint8Array {
  return createHash('sha256').update(LEAF_PREFIX).update(entry).digest()
}

/** RFC 6962 §2.1: an interior node, SHA-256(0x01 ‖ left ‖ right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest()
}

/** Constant-content comparison of two hashes (public data: no timing concern, but one helper everywhere). */
export function hashEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0
}

/** The largest power of two strictly smaller than n (RFC 6962 §2.1 "k"), n ≥ 2. */
export function splitPoint(n: number): number {
  let k = 1
  while (k * 2 < n) k *= 2
  return k
}
