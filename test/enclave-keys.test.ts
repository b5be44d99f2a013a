/**
 * Enclave signing keys: they sign EIP-712 typed data that viem verifies, and
 * the key bytes are reachable by no property, serialisation or inspection.
 * After destroy() the key signs nothing.
 */
import { randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import t from 'tap'
import { hashTypedData, isAddress, recoverAddress, verifyTypedData, zeroAddress, type Hex } from 'viem'
import { privateKeyToAddress } from 'viem/accounts'
import { createSigningKey } from '../enclave/keys.ts'
import { EnclaveError } from '../enclave/errors.ts'

const typedData = {
  domain: { name: 'Test', version: '1', chainId: 1n, verifyingContract: zeroAddress },
  types: { Note: [{ name: 'text', type: 'string' }, { name: 'n', type: 'uint64' }] },
  primaryType: 'Note',
  message: { text: 'hello', n: 7n },
} as const

t.test('signs typed data that viem verifies under the key address', async (t) => {
  const key = createSigningKey()
  t.ok(isAddress(key.address, { strict: true }), 'address is EIP-55 checksummed')
  const sig = await key.signTypedData(typedData)
  t.match(sig, /^0x[0-9a-f]{130}$/)
  t.ok([27, 28].includes(parseInt(sig.slice(-2), 16)), 'v is 27 or 28')
  t.ok(await verifyTypedData({ ...typedData, address: key.address, signature: sig }))
  t.equal(await recoverAddress({ hash: hashTypedData(typedData), signature: sig }), key.address)
  t.notOk(await verifyTypedData({ ...typedData, message: { text: 'hellO', n: 7n }, address: key.address, signature: sig }), 'other message')
  t.equal(await key.signTypedData(typedData), sig, 'RFC 6979: deterministic')
  // EIP-2: s in the lower half of the order.
  const s = BigInt(`0x${sig.slice(66, 130)}`)
  t.ok(s <= 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n, 'low s')
})

t.test('every key is new', async (t) => {
  const addresses = new Set(Array.from({ length: 20 }, () => createSigningKey().address))
  t.equal(addresses.size, 20)
})

t.test('key bytes are not reachable from the object', async (t) => {
  const key = createSigningKey()
  t.same(Object.keys(key).sort(), ['address', 'destroy', 'destroyed', 'signDigest', 'signTypedData', 'toJSON'].sort())
  t.same(JSON.parse(JSON.stringify(key)), { address: key.address, destroyed: false })
  t.equal(inspect(key, { showHidden: true, depth: 10 }), `SigningKey ${JSON.stringify({ address: key.address, destroyed: false })}`)
  t.ok(Object.isFrozen(key))
  const props = Reflect.ownKeys(key)
  for (const p of props) {
    const d = Object.getOwnPropertyDescriptor(key, p)!
    t.notOk(d.value instanceof Uint8Array, `${String(p)} is no byte array`)
    if (typeof d.value === 'string') t.ok(d.value === key.address, `${String(p)} holds only the address`)
  }
  t.throws(() => structuredClone(key), 'functions do not clone, so neither does the key')
})

t.test('destroy: signs nothing afterwards, idempotent', async (t) => {
  const key = createSigningKey()
  key.destroy()
  key.destroy()
  t.equal(key.destroyed, true)
  t.same(key.toJSON(), { address: key.address, destroyed: true })
  const e = await key.signTypedData(typedData).then(
    () => undefined,
    (x: unknown) => x,
  )
  t.ok(e instanceof EnclaveError)
  t.equal((e as EnclaveError).code, 'ENCLAVE_CLOSED')
  t.notMatch(String((e as Error).message), /[0-9a-f]{64}/, 'no key material in the message')
})

t.test('a malformed definition is rejected without signing', async (t) => {
  const key = createSigningKey()
  const bad = { ...typedData, message: { text: 'x', n: -1n } } as unknown as typeof typedData
  await t.rejects(key.signTypedData(bad))
  const sig: Hex = await key.signTypedData(typedData)
  t.ok(await verifyTypedData({ ...typedData, address: key.address, signature: sig }), 'and the key still works')
})

t.test('libsecp256k1 (secp256k1.ts) signs byte for byte as @noble/curves does (RFC 6979, low s), and recovers as ecrecover', async (t) => {
  const { publicKeyOf, recoverPublicKey, signDigest } = await import('../enclave/secp256k1.ts')
  const { secp256k1: noble } = await import('@noble/curves/secp256k1.js')
  for (let i = 0; i < 32; i++) {
    const secret = noble.utils.randomSecretKey()
    const digest = randomBytes(32)
    const ours = signDigest(digest, secret)
    const theirs = noble.sign(digest, secret, { prehash: false, format: 'recovered' }) // recovery ‖ r ‖ s
    t.same(Buffer.from(ours), Buffer.concat([theirs.subarray(1), Uint8Array.of(27 + theirs[0]!)]), `signature ${i}`)
    t.same(Buffer.from(publicKeyOf(secret)), Buffer.from(noble.getPublicKey(secret, false)), `public key ${i}`)
    t.same(Buffer.from(recoverPublicKey(digest, ours)!), Buffer.from(noble.getPublicKey(secret, false)), `recovers the key ${i}`)
    const address = await recoverAddress({ hash: `0x${digest.toString('hex')}`, signature: `0x${Buffer.from(ours).toString('hex')}` })
    t.equal(address, privateKeyToAddress(`0x${Buffer.from(secret).toString('hex')}`), `viem recovers the address ${i}`)
  }
  const digest = randomBytes(32)
  const sig = signDigest(digest, noble.utils.randomSecretKey())
  const flipped = Uint8Array.from(sig)
  flipped[64] = sig[64] === 27 ? 28 : 27
  t.notSame(recoverPublicKey(digest, flipped), recoverPublicKey(digest, sig), 'the other v recovers another key')
  // High s: ecrecover accepts it and recovers the same key with v flipped (callers that require low s check it).
  const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
  const highS = Uint8Array.from(flipped)
  highS.set(Buffer.from((n - BigInt(`0x${Buffer.from(sig.subarray(32, 64)).toString('hex')}`)).toString(16).padStart(64, '0'), 'hex'), 32)
  t.same(recoverPublicKey(digest, highS), recoverPublicKey(digest, sig), 'the high-s twin recovers the same key')
  for (const [bad, why] of [
    [Uint8Array.from(sig).fill(0, 0, 32), 'r = 0'],
    [Uint8Array.from(sig).fill(0xff, 32, 64), 's >= n'],
    [Uint8Array.from([...sig.subarray(0, 64), 29]), 'v = 29'],
    [Uint8Array.from([...sig.subarray(0, 64), sig[64]! - 27]), 'v = 0 or 1 (the precompile takes only 27 and 28)'],
    [sig.subarray(0, 64), 'no v'],
  ] as const) {
    t.equal(recoverPublicKey(digest, bad), null, `nothing recovered: ${why}`)
  }
  t.throws(() => signDigest(new Uint8Array(31), noble.utils.randomSecretKey()), TypeError)
})
