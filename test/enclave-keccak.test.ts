/**
 * The enclave's keccak256 (enclave/keccak.ts) against @noble/hashes'
 * keccak_256: every length across three blocks, random splits into
 * updates, the empty input, and use after digest. The receipt format
 * depends on it being exactly keccak256.
 */
import t from 'tap'
import fc from 'fast-check'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { createKeccak256 } from '../enclave/keccak.ts'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

t.test('known answers', async (t) => {
  t.equal(hex(createKeccak256().digest()), 'c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470', 'keccak256("")')
  t.equal(hex(createKeccak256().update(new TextEncoder().encode('abc')).digest()), '4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45', 'keccak256("abc")')
})

t.test('every length up to three blocks equals @noble/hashes, whole and byte by byte', async (t) => {
  let mismatches = 0
  for (let len = 0; len <= 3 * 136 + 1; len++) {
    const data = Uint8Array.from({ length: len }, (_, i) => (i * 151 + len) & 0xff)
    const want = hex(keccak_256(data))
    if (hex(createKeccak256().update(data).digest()) !== want) mismatches++
    const h = createKeccak256()
    for (let i = 0; i < len; i++) h.update(data.subarray(i, i + 1))
    if (hex(h.digest()) !== want) mismatches++
  }
  t.equal(mismatches, 0)
})

t.test('any split into updates gives the same hash (fixed seed)', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat({ max: 2000 }), { maxLength: 12 }), (data, cuts) => {
      const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b)
      const h = createKeccak256()
      let from = 0
      for (const p of [...points, data.length]) {
        h.update(data.subarray(from, p))
        from = p
      }
      return hex(h.digest()) === hex(keccak_256(data))
    }),
    { seed: 4242, numRuns: 300 },
  )
  t.pass()
})

t.test('a digested hasher refuses more input', async (t) => {
  const h = createKeccak256()
  h.digest()
  t.throws(() => h.update(new Uint8Array(1)))
  t.throws(() => h.digest())
})
