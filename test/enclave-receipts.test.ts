/**
 * Receipts: signed by an epoch's key, verified with viem; any changed field,
 * another epoch's signer or another domain fails; the digest is viem's
 * hashTypedData and the type hash is the EIP-712 encodeType of the struct.
 */
import t from 'tap'
import { hashTypedData, keccak256, toBytes, verifyTypedData, zeroAddress, type Hex } from 'viem'
import { createSigningKey } from '../enclave/keys.ts'
import {
  createBodyHasher,
  createMemoryReceiptLog,
  hashBody,
  hashReceipt,
  issueReceipt,
  NO_CHAIN_RECEIPT_DOMAIN,
  RECEIPT_TYPEHASH,
  RECEIPT_TYPES,
  receiptDomain,
  receiptFromJson,
  receiptToJson,
  receiptTypedData,
  recoverReceiptSigner,
  signReceipt,
  verifyReceipt,
  type ReceiptFields,
} from '../enclave/receipts.ts'
import { codeOf, thrown } from './helpers/errors.ts'
import { decodeEntry } from '../attestation/log/entry.ts'

const enc = new TextEncoder()
const request = enc.encode('{"model":"tiny","messages":[{"role":"user","content":"hi"}]}')
const chunks = ['data: {"a":1}\n\n', 'data: {"a":2}\n\n', 'data: [DONE]\n\n'].map((c) => enc.encode(c))

const fields: ReceiptFields = {
  requestHash: hashBody(request),
  responseHash: chunks.reduce((h, c) => h.update(c), createBodyHasher()).digest(),
  model: 'tiny',
  epoch: 28_000_000n,
  time: 1_748_779_200n,
  logIndex: 0n,
}
const chain = receiptDomain({ chainId: 8453n, registry: '0x1111111111111111111111111111111111111111' })

t.test('body hashes are keccak256 of the plaintext bytes, streamed or whole', async (t) => {
  t.equal(fields.requestHash, keccak256(request))
  t.equal(fields.responseHash, keccak256(Buffer.concat(chunks)))
  const h = createBodyHasher()
  h.digest()
  t.equal(codeOf(thrown(() => h.update(request))), 'ATTESTATION_OPTIONS_INVALID', 'no update after digest')
})

t.test('sign and verify with viem, with and without a chain', async (t) => {
  const key = createSigningKey()
  for (const domain of [NO_CHAIN_RECEIPT_DOMAIN, chain]) {
    const sig = await signReceipt(key, fields, domain)
    t.ok(await verifyReceipt(fields, sig, key.address, domain), `verifyReceipt, chainId ${domain.chainId}`)
    t.ok(await verifyTypedData({ ...receiptTypedData(fields, domain), address: key.address, signature: sig }), 'viem verifyTypedData directly')
    t.equal(await recoverReceiptSigner(fields, sig, domain), key.address)
  }
  t.equal(NO_CHAIN_RECEIPT_DOMAIN.chainId, 0n)
  t.equal(NO_CHAIN_RECEIPT_DOMAIN.verifyingContract, zeroAddress)
  const sig = await signReceipt(key, fields, NO_CHAIN_RECEIPT_DOMAIN)
  t.notOk(await verifyReceipt(fields, sig, key.address, chain), 'a no-chain receipt is not a receipt of a registered deployment')
  t.ok(await verifyReceipt(fields, sig, key.address), 'the no-chain domain is the default')
})

t.test('a tampered field fails', async (t) => {
  const key = createSigningKey()
  const sig = await signReceipt(key, fields, chain)
  const flip = (h: Hex): Hex => `${h.slice(0, -1)}${h.endsWith('0') ? '1' : '0'}` as Hex
  const tampered: [string, ReceiptFields][] = [
    ['requestHash', { ...fields, requestHash: flip(fields.requestHash) }],
    ['responseHash', { ...fields, responseHash: flip(fields.responseHash) }],
    ['model', { ...fields, model: 'tiny2' }],
    ['epoch', { ...fields, epoch: fields.epoch + 1n }],
    ['time', { ...fields, time: fields.time - 1n }],
    ['logIndex', { ...fields, logIndex: 1n }],
  ]
  for (const [name, f] of tampered) t.notOk(await verifyReceipt(f, sig, key.address, chain), name)
  t.notOk(await verifyReceipt(fields, flip(sig.slice(0, -2) as Hex) + sig.slice(-2) as Hex, key.address, chain), 'tampered signature')
  t.notOk(await verifyReceipt(fields, '0x1234', key.address, chain), 'malformed signature is false, not a throw')
  t.equal(await recoverReceiptSigner(fields, '0x1234', chain), null)
})

t.test("another epoch's signer fails", async (t) => {
  const epochA = createSigningKey()
  const epochB = createSigningKey()
  const sig = await signReceipt(epochA, fields, chain)
  t.notOk(await verifyReceipt(fields, sig, epochB.address, chain))
  const sigB = await signReceipt(epochB, { ...fields, epoch: fields.epoch + 1n }, chain)
  t.notOk(await verifyReceipt({ ...fields, epoch: fields.epoch + 1n }, sigB, epochA.address, chain))
})

t.test('the digest is viem hashTypedData; the type hash is EIP-712 encodeType', async (t) => {
  t.equal(hashReceipt(fields, chain), hashTypedData({ domain: chain, types: RECEIPT_TYPES, primaryType: 'Receipt', message: fields }))
  t.equal(hashReceipt(fields), hashTypedData({ domain: NO_CHAIN_RECEIPT_DOMAIN, types: RECEIPT_TYPES, primaryType: 'Receipt', message: fields }))
  t.equal(
    RECEIPT_TYPEHASH,
    keccak256(toBytes('Receipt(bytes32 requestHash,bytes32 responseHash,string model,uint64 epoch,uint64 time,uint64 logIndex)')),
  )
  t.not(hashReceipt(fields, chain), hashReceipt(fields, NO_CHAIN_RECEIPT_DOMAIN))
})

t.test('misuse throws (fields, domain, address)', async (t) => {
  const key = createSigningKey()
  const bad: [string, unknown][] = [
    ['short hash', { ...fields, requestHash: '0x1234' }],
    ['epoch beyond u64', { ...fields, epoch: 1n << 64n }],
    ['negative time', { ...fields, time: -1n }],
    ['number epoch', { ...fields, epoch: 1 }],
    ['model not a string', { ...fields, model: 5 }],
  ]
  for (const [name, f] of bad) {
    t.equal(codeOf(thrown(() => hashReceipt(f as ReceiptFields))), 'ATTESTATION_OPTIONS_INVALID', name)
    await t.rejects(signReceipt(key, f as ReceiptFields), name)
  }
  t.equal(codeOf(thrown(() => receiptDomain({ chainId: 0n, registry: '0x1111111111111111111111111111111111111111' }))), 'ATTESTATION_OPTIONS_INVALID')
  t.equal(codeOf(thrown(() => receiptDomain({ chainId: 1n, registry: zeroAddress }))), 'ATTESTATION_OPTIONS_INVALID')
  await t.rejects(verifyReceipt(fields, '0x00', 'nope' as Hex))
})

t.test('issueReceipt: appends the entry, signs with the index; JSON round trip', async (t) => {
  const key = createSigningKey()
  const log = createMemoryReceiptLog()
  const base = { signingKey: key, log, domain: chain, requestHash: fields.requestHash, responseHash: fields.responseHash, model: 'tiny', epoch: 5n, time: 1_700_000_000n }
  const r0 = await issueReceipt(base)
  const r1 = await issueReceipt({ ...base, time: 1_700_000_001n })
  t.equal(r0.message.logIndex, '0')
  t.equal(r1.message.logIndex, '1')
  // The log holds each receipt's EIP-712 digest and signature (attestation/log/entry.ts), never the body hashes alone.
  t.same(
    log.entries().map((e) => decodeEntry(e)),
    [r0, r1].map((r) => {
      const b = receiptFromJson(r)
      return { type: 'receipt', time: Number(b.fields.time) * 1000, epoch: 5n, signer: key.address.toLowerCase(), receiptHash: hashReceipt(b.fields, b.domain), signature: r.signature }
    }),
  )
  const wire = JSON.parse(JSON.stringify(r1))
  const back = receiptFromJson(wire)
  t.equal(back.signer, key.address)
  t.equal(back.fields.logIndex, 1n)
  t.ok(await verifyReceipt(back.fields, back.signature, key.address, back.domain))
  t.same(receiptToJson(back.fields, back.signature, back.signer, back.domain), r1)
  t.equal(codeOf(thrown(() => receiptFromJson({ ...wire, message: { ...wire.message, epoch: '01' } }))), 'ATTESTATION_OPTIONS_INVALID')
  t.equal(
    codeOf(thrown(() => receiptFromJson({ ...wire, domain: { ...wire.domain, chainId: '0' } }))),
    'ATTESTATION_OPTIONS_INVALID',
    'chain id 0 with a registry address',
  )
  const noChain = receiptFromJson(JSON.parse(JSON.stringify(await issueReceipt({ ...base, domain: NO_CHAIN_RECEIPT_DOMAIN }))))
  t.equal(noChain.domain, NO_CHAIN_RECEIPT_DOMAIN)
})
