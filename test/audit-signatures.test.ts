/**
 * Receipt signatures in bulk: the batch verifier (random-linear-combination
 * test per key, bisection on failure) gives exactly the per-signature
 * verdicts of Ethereum's ecrecover — valid ones pass (high s included, as
 * ecrecover accepts it), every invalid one is found by index (another
 * digest, a flipped recovery id, another key, r = 0) — in this thread and
 * in the worker pool.
 */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { recoverAddress, type Hex } from 'viem'
import { verifyBatch, verifyOne } from '../attestation/log/audit/receipt-batch-verify.mjs'
import { createReceiptSignaturePool, recoverSigner, verifyReceiptSignaturesInThread } from '../attestation/log/audit/receipt-signatures.ts'

const sk = secp256k1.utils.randomSecretKey()
const publicKey = secp256k1.getPublicKey(sk, true)
const N = secp256k1.Point.Fn.ORDER

function signed(digest: Uint8Array, key = sk): Uint8Array {
  const s = secp256k1.sign(digest, key, { prehash: false, format: 'recovered' })
  const sig = new Uint8Array(65)
  sig.set(s.subarray(1), 0)
  sig[64] = 27 + s[0]!
  return sig
}

/** The other recovery id (27 <-> 28). */
const flipV = (v: number) => (v === 27 ? 28 : 27)

function items(n: number) {
  return Array.from({ length: n }, () => {
    const digest = new Uint8Array(randomBytes(32))
    return { digest, signature: signed(digest), publicKey }
  })
}

t.test('valid batches verify; each kind of invalid member is found by index; agrees with ecrecover', async (t) => {
  const list = items(300)
  t.ok(verifyBatch(list).every(Boolean))
  const bad = list.slice()
  bad[3] = { ...bad[3]!, digest: new Uint8Array(randomBytes(32)) }
  const flipped = bad[40]!.signature.slice()
  flipped[64] = flipV(flipped[64]!)
  bad[40] = { ...bad[40]!, signature: flipped }
  const other = secp256k1.utils.randomSecretKey()
  bad[77] = { ...bad[77]!, signature: signed(bad[77]!.digest, other) }
  const zeroR = bad[200]!.signature.slice()
  zeroR.fill(0, 0, 32)
  bad[200] = { ...bad[200]!, signature: zeroR }
  // High s with the other recovery id: the same point, so ecrecover accepts it, and so must we.
  const high = bad[250]!.signature.slice()
  const s = BigInt(`0x${Buffer.from(high.subarray(32, 64)).toString('hex')}`)
  high.set(Buffer.from((N - s).toString(16).padStart(64, '0'), 'hex'), 32)
  high[64] = flipV(high[64]!)
  bad[250] = { ...bad[250]!, signature: high }
  const verdicts = verifyBatch(bad)
  t.same(verdicts.map((ok, i) => (ok ? -1 : i)).filter((i) => i >= 0), [3, 40, 77, 200])
  for (const i of [3, 40, 77, 250, 5]) {
    const it = bad[i]!
    t.equal(verifyOne(it.digest, it.signature, publicKey), verdicts[i], `verifyOne agrees at ${i}`)
    const rec = recoverSigner(it.digest, it.signature)
    const viem = await recoverAddress({ hash: `0x${Buffer.from(it.digest).toString('hex')}` as Hex, signature: `0x${Buffer.from(it.signature).toString('hex')}` as Hex }).catch(() => null)
    t.equal(rec?.address ?? null, viem?.toLowerCase() ?? null, `recoverSigner is ecrecover at ${i}`)
  }
  t.same(await verifyReceiptSignaturesInThread(bad), verdicts)
})

t.test('the worker pool gives the same verdicts', async (t) => {
  const pool = createReceiptSignaturePool(2)
  t.teardown(() => pool.close())
  const list = items(64)
  const flipped = list[10]!.signature.slice()
  flipped[64] = flipV(flipped[64]!)
  list[10] = { ...list[10]!, signature: flipped }
  const verdicts = await pool.verify(list)
  t.same(verdicts.map((ok, i) => (ok ? -1 : i)).filter((i) => i >= 0), [10])
  t.same(await pool.verify([]), [])
})
