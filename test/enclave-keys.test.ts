/**
 * Enclave signing keys: they sign EIP-712 typed data that viem verifies, and
 * the key bytes are reachable by no property, serialisation or inspection.
 * After destroy() the key signs nothing.
 */
import { randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import t from 'tap'
import { hashTypedData, isAddress, recoverAddress, verifyTypedData, zeroAddress, type Hex } from 'viem'
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
  const again = await key.signTypedData(typedData)
  t.not(again, sig, 'a random nonce per signature (secp256k1.ts)')
  t.ok(await verifyTypedData({ ...typedData, address: key.address, signature: again }))
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

t.test('presignatures: SEC 1 signatures that noble verifies and ecrecover recovers, low s, either parity', async (t) => {
  const { createPresignature, signWithPresignature, secp256k1 } = await import('../enclave/secp256k1.ts')
  const n = secp256k1.Point.Fn.ORDER
  const rs = new Set<bigint>()
  const parities = new Set<number>()
  for (let i = 0; i < 64; i++) {
    const secret = secp256k1.utils.randomSecretKey()
    const digest = randomBytes(32)
    const sig = signWithPresignature(digest, secret, createPresignature())!
    t.equal(sig.length, 65)
    const r = BigInt(`0x${Buffer.from(sig.subarray(0, 32)).toString('hex')}`)
    const s = BigInt(`0x${Buffer.from(sig.subarray(32, 64)).toString('hex')}`)
    t.ok(r > 0n && r < n && s > 0n && s <= n >> 1n, `r in range, s low (${i})`)
    t.ok(secp256k1.verify(sig.subarray(0, 64), digest, secp256k1.getPublicKey(secret), { prehash: false }), `noble verifies ${i}`)
    const address = await recoverAddress({ hash: `0x${Buffer.from(digest).toString('hex')}`, signature: `0x${Buffer.from(sig).toString('hex')}` })
    t.equal(address, (await import('viem/accounts')).privateKeyToAddress(`0x${Buffer.from(secret).toString('hex')}`), `recovers the signer ${i}`)
    rs.add(r)
    parities.add(sig[64]!)
  }
  t.equal(rs.size, 64, 'every nonce is new')
  t.same([...parities].sort(), [27, 28], 'both recovery ids occur (and recover)')
  t.throws(() => signWithPresignature(new Uint8Array(31), secp256k1.utils.randomSecretKey(), createPresignature()), TypeError)
})

t.test('the pool: no nonce is used twice, through bursts, refills, an empty pool and none at all', async (t) => {
  for (const maxPresignatures of [0, 4, undefined]) {
    const key = createSigningKey(maxPresignatures === undefined ? {} : { maxPresignatures })
    const digests = Array.from({ length: 40 }, () => randomBytes(32))
    const sigs: Hex[] = []
    // A burst (the pool empties and grows), an idle pause (it refills), another burst.
    for (const d of digests.slice(0, 20)) sigs.push(await key.signDigest(d))
    await new Promise((r) => setTimeout(r, 100))
    for (const d of digests.slice(20)) sigs.push(await key.signDigest(d))
    const rs = new Set(sigs.map((s) => s.slice(2, 66)))
    t.equal(rs.size, sigs.length, `distinct r for every signature (max ${maxPresignatures})`)
    for (let i = 0; i < sigs.length; i++) {
      t.equal(await recoverAddress({ hash: `0x${digests[i]!.toString('hex')}`, signature: sigs[i]! }), key.address, `signature ${i} recovers the key`)
    }
    key.destroy()
    await t.rejects(key.signDigest(digests[0]!), { code: 'ENCLAVE_CLOSED' })
  }
  t.throws(() => createSigningKey({ maxPresignatures: -1 }), TypeError)
})
