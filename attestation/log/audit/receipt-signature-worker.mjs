/**
 * Worker thread of createReceiptSignaturePool (receipt-signatures.ts):
 * unpacks items (digest 32 ‖ signature r‖s‖v 65 ‖ compressed key 33),
 * batch-verifies them (receipt-batch-verify.mjs) and answers one byte per
 * item. Plain JS so a worker needs no TypeScript loader.
 */
import { parentPort } from 'node:worker_threads'
import { verifyBatch } from './receipt-batch-verify.mjs'

const ITEM = 32 + 65 + 33

parentPort.on('message', ({ id, items }) => {
  const count = items.length / ITEM
  const list = []
  for (let i = 0; i < count; i++) {
    const o = i * ITEM
    list.push({ digest: items.subarray(o, o + 32), signature: items.subarray(o + 32, o + 97), publicKey: items.subarray(o + 97, o + ITEM) })
  }
  const verdicts = verifyBatch(list)
  const results = new Uint8Array(count)
  verdicts.forEach((ok, i) => (results[i] = ok ? 1 : 0))
  parentPort.postMessage({ id, results }, [results.buffer])
})
