/**
 * Receipt signatures in bulk. A receipt entry names its signer address;
 * the auditor recovers the signer's public key once (ecrecover of one
 * receipt, checked against the address) and then verifies every other
 * receipt of that signer against the known key, recovery id included,
 * which is exactly Ethereum's `ecrecover(digest, v, r, s) == signer`.
 * secp256k1 is not in node:crypto's prehashed API, so this is the
 * auditor's hot loop: signatures by one key are batch-verified
 * (receipt-batch-verify.mjs, ~4-5x faster than one by one), and
 * `createReceiptSignaturePool` spreads batches over worker threads.
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import type { ReceiptSignatureItem, ReceiptSignatureVerifier } from './types.ts'
import { toNobleRecovered, verifyBatch } from './receipt-batch-verify.mjs'
import { hex } from '../../bytes/hex.ts'

/** ecrecover: the compressed public key and address that signed `digest`, or null. */
export function recoverSigner(digest: Uint8Array, signature: Uint8Array): { publicKey: Uint8Array; address: `0x${string}` } | null {
  const sig = toNobleRecovered(signature)
  if (sig === null) return null
  try {
    const pk = secp256k1.recoverPublicKey(sig, digest, { prehash: false })
    const point = secp256k1.Point.fromBytes(pk)
    const uncompressed = point.toBytes(false)
    const address = `0x${hex(keccak_256(uncompressed.subarray(1)).subarray(12))}` as const
    return { publicKey: point.toBytes(true), address }
  } catch {
    return null
  }
}

/** The in-thread verifier (batched per key). */
export const verifyReceiptSignaturesInThread: ReceiptSignatureVerifier = async (items) => verifyBatch(items)

const ITEM = 32 + 65 + 33

export interface ReceiptSignaturePool {
  readonly verify: ReceiptSignatureVerifier
  readonly threads: number
  close(): Promise<void>
}

/**
 * A pool of worker threads (default: available parallelism) running
 * receipt-signature-worker.mjs (plain JS, so workers need no TypeScript
 * loader). Items travel packed in one transferable buffer per chunk.
 */
export function createReceiptSignaturePool(threads: number = availableParallelism()): ReceiptSignaturePool {
  const n = Math.max(1, Math.floor(threads))
  const workers = Array.from({ length: n }, () => new Worker(new URL('./receipt-signature-worker.mjs', import.meta.url)))
  for (const w of workers) w.unref()
  let seq = 0
  const waiting = new Map<number, { resolve: (r: Uint8Array) => void; reject: (e: unknown) => void }>()
  for (const w of workers) {
    w.on('message', (m: { id: number; results: Uint8Array }) => {
      const p = waiting.get(m.id)
      waiting.delete(m.id)
      p?.resolve(m.results)
    })
    w.on('error', (e) => {
      for (const p of waiting.values()) p.reject(e)
      waiting.clear()
    })
  }
  const run = (w: Worker, chunk: readonly ReceiptSignatureItem[]): Promise<Uint8Array> => {
    const buf = new Uint8Array(chunk.length * ITEM)
    chunk.forEach((it, i) => {
      buf.set(it.digest, i * ITEM)
      buf.set(it.signature, i * ITEM + 32)
      buf.set(it.publicKey, i * ITEM + 97)
    })
    const id = seq++
    return new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject })
      w.postMessage({ id, items: buf }, [buf.buffer])
    })
  }
  return {
    threads: n,
    async verify(items) {
      if (items.length === 0) return []
      const per = Math.ceil(items.length / n)
      const parts = await Promise.all(workers.map((w, i) => (i * per < items.length ? run(w, items.slice(i * per, (i + 1) * per)) : Promise.resolve(new Uint8Array(0)))))
      const out: boolean[] = []
      for (const p of parts) for (const b of p) out.push(b === 1)
      return out
    },
    async close() {
      await Promise.all(workers.map((w) => w.terminate()))
    },
  }
}
