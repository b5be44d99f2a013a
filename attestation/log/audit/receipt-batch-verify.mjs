/**
 * Batch verification of secp256k1 recoverable signatures by one key — the
 * auditor's hot loop (100,000 receipts), plain JS so worker threads can run
 * it without a TypeScript loader (types: receipt-batch-verify.d.mts).
 *
 * Each signature (r, s, v) on digest h by key Q is valid in Ethereum's
 * sense — ecrecover(h, v, r, s) = Q — exactly when R = u1·G + u2·Q, where
 * R is the point with x = r and y-parity v − 27 (v ∈ {27, 28}, so x = r, no
 * overflow), u1 = h/s and u2 = r/s (SEC 1 §4.1.4 and §4.1.6). For a batch
 * with random 128-bit a_i the single equation
 *     Σ a_i·R_i = (Σ a_i·u1_i)·G + (Σ a_i·u2_i)·Q
 * holds for an invalid member only with probability about 2^-128 (the
 * small-exponents batch test, Bellare–Garay–Rabin, EUROCRYPT 1998). The
 * left side is one multi-scalar multiplication with 128-bit scalars
 * (Pippenger's bucket method), which is where the speed comes from; the
 * right side is two scalar multiplications for the whole batch. A batch
 * that fails is split in halves until the invalid signatures are found one
 * by one, so the result is per signature and exact.
 */
import { ECDH, randomBytes } from 'node:crypto'
import { secp256k1 } from '@noble/curves/secp256k1.js'

const Point = secp256k1.Point
const Fn = Point.Fn
const N = Fn.ORDER
const SCALAR_BITS = 128

function big(bytes) {
  return BigInt(`0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex') || '0'}`)
}

/** Pippenger over scalars < 2^128 (noble's own walks all 256 bits). */
function msm128(points, scalars) {
  const n = points.length
  const c = n < 32 ? 3 : n < 256 ? 5 : n < 4096 ? 8 : 11
  const mask = (1n << BigInt(c)) - 1n
  const top = Math.ceil(SCALAR_BITS / c) * c - c
  let acc = Point.ZERO
  for (let shift = top; shift >= 0; shift -= c) {
    if (shift !== top) for (let k = 0; k < c; k++) acc = acc.double()
    const buckets = new Array(1 << c).fill(null)
    const b = BigInt(shift)
    for (let j = 0; j < n; j++) {
      const d = Number((scalars[j] >> b) & mask)
      if (d !== 0) buckets[d] = buckets[d] === null ? points[j] : buckets[d].add(points[j])
    }
    let running = Point.ZERO
    let sum = Point.ZERO
    for (let d = buckets.length - 1; d > 0; d--) {
      if (buckets[d] !== null) running = running.add(buckets[d])
      sum = sum.add(running)
    }
    acc = acc.add(sum)
  }
  return acc
}

/**
 * The recovery id of Ethereum's r ‖ s ‖ v (v 27/28, or 0/1); null for any
 * other v or a signature that is not 65 bytes. The one parser of v, shared
 * by the batch, the single check and ecrecover (receipt-signatures.ts).
 */
export function recoveryId(signature) {
  if (signature.length !== 65) return null
  const v = signature[64]
  const rec = v >= 27 ? v - 27 : v
  return rec === 0 || rec === 1 ? rec : null
}

/** Noble's recovered-signature layout (recovery ‖ r ‖ s) from Ethereum's r ‖ s ‖ v; null when `recoveryId` refuses it. */
export function toNobleRecovered(signature) {
  const rec = recoveryId(signature)
  if (rec === null) return null
  const out = new Uint8Array(65)
  out[0] = rec
  out.set(signature.subarray(0, 64), 1)
  return out
}

/** One signature, exactly (noble's verify with the recovery id checked). */
export function verifyOne(digest, signature, publicKey) {
  const sig = toNobleRecovered(signature)
  if (sig === null) return false
  try {
    return secp256k1.verify(sig, digest, publicKey, { prehash: false, lowS: false, format: 'recovered' })
  } catch {
    return false
  }
}

/** Parse one member: R, u1, u2 (null when malformed, which is invalid). */
function prepare(digest, signature) {
  const rec = recoveryId(signature)
  if (rec === null) return null
  const r = big(signature.subarray(0, 32))
  const s = big(signature.subarray(32, 64))
  if (r === 0n || r >= N || s === 0n || s >= N) return null
  let R
  try {
    // Decompressing R (a square root mod p) is the costliest step; OpenSSL does it natively,
    // about twice as fast as in JS, and refuses an x that is not on the curve.
    const enc = Buffer.alloc(33)
    enc[0] = 2 + rec
    enc.set(signature.subarray(0, 32), 1)
    const u = ECDH.convertKey(enc, 'secp256k1', undefined, undefined, 'uncompressed')
    R = Point.fromAffine({ x: big(u.subarray(1, 33)), y: big(u.subarray(33, 65)) })
  } catch {
    return null
  }
  return { R, r, s, h: big(digest) % N }
}

function batchHolds(members, Q) {
  const inv = Fn.invertBatch(members.map((m) => m.s))
  const rnd = randomBytes(16 * members.length)
  const a = members.map((_, i) => big(rnd.subarray(16 * i, 16 * i + 16)) | 1n)
  let A = 0n
  let B = 0n
  for (let i = 0; i < members.length; i++) {
    const w = inv[i]
    A = (A + a[i] * ((members[i].h * w) % N)) % N
    B = (B + a[i] * ((members[i].r * w) % N)) % N
  }
  const lhs = msm128(
    members.map((m) => m.R),
    a,
  )
  const rhs = Point.BASE.multiplyUnsafe(A).add(Q.multiplyUnsafe(B))
  return lhs.equals(rhs)
}

/**
 * Verify `items` ({ digest, signature, publicKey }: 32, 65 (r‖s‖v) and 33
 * bytes); returns one boolean per item.
 */
export function verifyBatch(items) {
  const out = new Array(items.length).fill(false)
  const groups = new Map()
  items.forEach((it, i) => {
    const k = Buffer.from(it.publicKey).toString('hex')
    let g = groups.get(k)
    if (!g) groups.set(k, (g = { key: it.publicKey, idx: [] }))
    g.idx.push(i)
  })
  for (const g of groups.values()) {
    let Q
    try {
      Q = Point.fromBytes(g.key)
    } catch {
      continue
    }
    const members = []
    for (const i of g.idx) {
      const m = prepare(items[i].digest, items[i].signature)
      if (m !== null) members.push({ ...m, i })
    }
    const settle = (ms) => {
      if (ms.length === 0) return
      if (ms.length <= 4) {
        for (const m of ms) out[m.i] = verifyOne(items[m.i].digest, items[m.i].signature, g.key)
        return
      }
      if (batchHolds(ms, Q)) {
        for (const m of ms) out[m.i] = true
        return
      }
      const half = ms.length >> 1
      settle(ms.slice(0, half))
      settle(ms.slice(half))
    }
    settle(members)
  }
  return out
}
