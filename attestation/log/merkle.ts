/**
 * Merkle tree roots, inclusion and consistency proofs (RFC 6962 §2.1.1,
 * §2.1.2; RFC 9162 §2.1.3, §2.1.4), over any source of perfect-subtree
 * hashes. Computing is kept apart from comparing (the transparency-dev
 * split): `rootFromInclusionProof` and `rootsFromConsistencyProof` return
 * the roots a proof leads to, and `verifyInclusion` / `verifyConsistency`
 * compare them with the expected ones and throw a typed error.
 *
 * Indices and sizes are JavaScript numbers (safe integers, 2^53): a log of
 * that many entries is far beyond what one gateway process writes.
 */
import { EMPTY_ROOT, HASH_SIZE, hashEqual, nodeHash, splitPoint } from './hash.ts'
import { LogError, logError } from './errors.ts'
import { hex } from '../bytes/hex.ts'

/**
 * A perfect subtree's hash: the node at `height` (0 = leaves) whose leaves
 * are [index·2^height, (index+1)·2^height). Only nodes inside the tree of
 * the size in question are asked for.
 */
export type SubtreeHashes = (height: number, index: number) => Uint8Array

function checkSize(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) logError('LOG_INDEX_OUT_OF_RANGE', `${what} must be a non-negative safe integer`, { [what]: n })
}

const isPow2 = (n: number): boolean => n > 0 && Number.isInteger(Math.log2(n))

/** MTH(D[start:end]) (RFC 6962 §2.1) from perfect-subtree hashes: aligned powers of two are read, the rest folded. */
export function subtreeRoot(nodes: SubtreeHashes, start: number, end: number): Uint8Array {
  const n = end - start
  if (n === 0) return EMPTY_ROOT
  if (isPow2(n) && start % n === 0) return nodes(Math.log2(n), start / n)
  const k = splitPoint(n)
  return nodeHash(subtreeRoot(nodes, start, start + k), subtreeRoot(nodes, start + k, end))
}

/** MTH of a tree of `size` leaves (RFC 6962 §2.1). */
export function treeRoot(nodes: SubtreeHashes, size: number): Uint8Array {
  checkSize(size, 'size')
  return subtreeRoot(nodes, 0, size)
}

/** RFC 6962 §2.1.1 PATH(m, D[n]): the audit path of leaf `index` in the tree of `size`, leaf-side first. */
export function inclusionProof(nodes: SubtreeHashes, index: number, size: number): Uint8Array[] {
  checkSize(size, 'size')
  checkSize(index, 'index')
  if (index >= size) logError('LOG_INDEX_OUT_OF_RANGE', 'index is not in the tree', { index, size })
  const path: Uint8Array[] = []
  let start = 0
  let end = size
  const stack: Uint8Array[] = []
  while (end - start > 1) {
    const k = splitPoint(end - start)
    if (index < start + k) {
      stack.push(subtreeRoot(nodes, start + k, end))
      end = start + k
    } else {
      stack.push(subtreeRoot(nodes, start, start + k))
      start += k
    }
  }
  // Collected root-side first; the RFC lists the path from the leaf up.
  for (let i = stack.length - 1; i >= 0; i--) path.push(stack[i]!)
  return path
}

/** RFC 6962 §2.1.2 PROOF(m, D[n]): the consistency proof from size `m` to size `n`, 0 < m ≤ n. */
export function consistencyProof(nodes: SubtreeHashes, m: number, n: number): Uint8Array[] {
  checkSize(m, 'oldSize')
  checkSize(n, 'newSize')
  if (m > n) logError('LOG_INDEX_OUT_OF_RANGE', 'old size exceeds new size', { oldSize: m, newSize: n })
  if (m === 0 || m === n) return []
  const out: Uint8Array[] = []
  // SUBPROOF(m, D[start:end], b), iteratively: the RFC's recursion only ever descends one side.
  let start = 0
  let end = n
  let mm = m
  let b = true
  const tail: Uint8Array[] = []
  for (;;) {
    const size = end - start
    if (mm === size) {
      if (!b) out.push(subtreeRoot(nodes, start, end))
      break
    }
    const k = splitPoint(size)
    if (mm <= k) {
      tail.push(subtreeRoot(nodes, start + k, end))
      end = start + k
    } else {
      tail.push(subtreeRoot(nodes, start, start + k))
      start += k
      mm -= k
      b = false
    }
  }
  for (let i = tail.length - 1; i >= 0; i--) out.push(tail[i]!)
  return out
}

function checkHash(h: unknown, what: string): asserts h is Uint8Array {
  if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) logError('LOG_OPTIONS_INVALID', `${what} must be a ${HASH_SIZE}-byte hash`)
}

/**
 * RFC 9162 §2.1.3.2: the root that an inclusion proof for `leaf` at `index`
 * in a tree of `size` leads to. Throws LOG_INCLUSION_PROOF_INVALID when the
 * proof has the wrong length for (index, size).
 */
export function rootFromInclusionProof(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[]): Uint8Array {
  checkSize(size, 'size')
  checkSize(index, 'index')
  checkHash(leaf, 'leaf hash')
  if (index >= size) throw new LogError('LOG_INCLUSION_PROOF_INVALID', 'index is not in the tree', { details: { index, size } })
  let fn = index
  let sn = size - 1
  let r = leaf
  for (const p of proof) {
    checkHash(p, 'proof element')
    if (sn === 0) throw new LogError('LOG_INCLUSION_PROOF_INVALID', 'proof is too long', { details: { index, size } })
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r)
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2)
          sn = Math.floor(sn / 2)
        }
      }
    } else {
      r = nodeHash(r, p)
    }
    fn = Math.floor(fn / 2)
    sn = Math.floor(sn / 2)
  }
  if (sn !== 0) throw new LogError('LOG_INCLUSION_PROOF_INVALID', 'proof is too short', { details: { index, size } })
  return r
}

/** Compare: throws LOG_INCLUSION_PROOF_INVALID unless the proof leads to `root`. */
export function verifyInclusion(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[], root: Uint8Array): void {
  checkHash(root, 'root')
  const computed = rootFromInclusionProof(index, size, leaf, proof)
  if (!hashEqual(computed, root)) {
    throw new LogError('LOG_INCLUSION_PROOF_INVALID', 'the inclusion proof leads to another root', {
      details: { index, size, expected: hex(root), computed: hex(computed) },
    })
  }
}

/**
 * RFC 9162 §2.1.4.2: the (old, new) roots a consistency proof from `m` to
 * `n` leads to, given the old root (the algorithm starts from it when m is
 * a power of two). Throws LOG_CONSISTENCY_PROOF_INVALID for a proof of the
 * wrong shape.
 */
export function rootsFromConsistencyProof(m: number, n: number, oldRoot: Uint8Array, proof: readonly Uint8Array[]): { oldRoot: Uint8Array; newRoot: Uint8Array } {
  checkSize(m, 'oldSize')
  checkSize(n, 'newSize')
  checkHash(oldRoot, 'old root')
  const bad = (why: string): never => {
    throw new LogError('LOG_CONSISTENCY_PROOF_INVALID', why, { details: { oldSize: m, newSize: n } })
  }
  if (m > n) bad('old size exceeds new size')
  if (m === n) {
    if (proof.length !== 0) bad('a proof between equal sizes is empty')
    return { oldRoot, newRoot: oldRoot }
  }
  if (m === 0) bad('no consistency proof from the empty tree')
  if (proof.length === 0) bad('proof is empty')
  for (const p of proof) checkHash(p, 'proof element')
  const path = isPow2(m) ? [oldRoot, ...proof] : [...proof]
  let fn = m - 1
  let sn = n - 1
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2)
    sn = Math.floor(sn / 2)
  }
  let fr = path[0]!
  let sr = path[0]!
  for (const c of path.slice(1)) {
    if (sn === 0) bad('proof is too long')
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr)
      sr = nodeHash(c, sr)
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2)
          sn = Math.floor(sn / 2)
        }
      }
    } else {
      sr = nodeHash(sr, c)
    }
    fn = Math.floor(fn / 2)
    sn = Math.floor(sn / 2)
  }
  if (sn !== 0) bad('proof is too short')
  return { oldRoot: fr, newRoot: sr }
}

/** Compare: throws LOG_CONSISTENCY_PROOF_INVALID unless the proof leads to both roots. */
export function verifyConsistency(m: number, n: number, oldRoot: Uint8Array, newRoot: Uint8Array, proof: readonly Uint8Array[]): void {
  checkHash(newRoot, 'new root')
  if (m === 0) {
    if (proof.length !== 0) throw new LogError('LOG_CONSISTENCY_PROOF_INVALID', 'the empty tree is consistent with every tree, with an empty proof')
    return
  }
  const r = rootsFromConsistencyProof(m, n, oldRoot, proof)
  if (!hashEqual(r.oldRoot, oldRoot) || !hashEqual(r.newRoot, newRoot)) {
    throw new LogError('LOG_CONSISTENCY_PROOF_INVALID', 'the consistency proof leads to other roots', { details: { oldSize: m, newSize: n } })
  }
}

/**
 * A whole tree in memory, level by level (each level one flat buffer of
 * 32-byte hashes): what the auditor builds from every leaf hash, so that
 * the root at any earlier size (checkpoints, anchors) is a few reads.
 */
export interface MemoryTree {
  readonly size: number
  /** levels[h] holds the floor(size / 2^h) perfect-subtree hashes of height h. */
  readonly levels: readonly Uint8Array[]
  readonly nodes: SubtreeHashes
  rootAt(size: number): Uint8Array
}

/** Build every perfect-subtree hash above `leafHashes` (size·32 bytes, leaf hashes in order). */
export function buildMemoryTree(leafHashes: Uint8Array): MemoryTree {
  if (leafHashes.length % HASH_SIZE !== 0) logError('LOG_OPTIONS_INVALID', 'leaf hashes must be a multiple of 32 bytes')
  const size = leafHashes.length / HASH_SIZE
  const levels: Uint8Array[] = [leafHashes]
  let cur = leafHashes
  while (cur.length >= 2 * HASH_SIZE) {
    const count = Math.floor(cur.length / HASH_SIZE / 2)
    const next = new Uint8Array(count * HASH_SIZE)
    for (let i = 0; i < count; i++) {
      next.set(nodeHash(cur.subarray(2 * i * HASH_SIZE, (2 * i + 1) * HASH_SIZE), cur.subarray((2 * i + 1) * HASH_SIZE, (2 * i + 2) * HASH_SIZE)), i * HASH_SIZE)
    }
    levels.push(next)
    cur = next
  }
  const nodes: SubtreeHashes = (height, index) => {
    const level = levels[height]
    if (level === undefined || (index + 1) * HASH_SIZE > level.length) logError('LOG_INDEX_OUT_OF_RANGE', 'no such node', { height, index, size })
    return level.subarray(index * HASH_SIZE, (index + 1) * HASH_SIZE)
  }
  return {
    size,
    levels,
    nodes,
    rootAt(m) {
      if (m > size) logError('LOG_INDEX_OUT_OF_RANGE', 'size beyond the tree', { size: m, treeSize: size })
      return treeRoot(nodes, m)
    },
  }
}
