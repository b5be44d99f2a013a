/**
 * Interoperability of the log math: an independent RFC 6962 implementation
 * written here (the recursive MTH, PATH and PROOF of RFC 6962 §2.1, nothing
 * shared with attestation/log) and the RFC 6962 / transparency-dev test
 * vectors (roots of 1..8 of the standard leaf inputs, inclusion and
 * consistency proof shapes) against attestation/log's hashing, proofs,
 * tiles and tree builder; the Go `note` package's example signed note
 * against our signed-note parser; C2SP tlog-tiles path spelling.
 */
import { createHash } from 'node:crypto'
import fc from 'fast-check'
import t from 'tap'
import { EMPTY_ROOT, leafHash } from '../attestation/log/hash.ts'
import {
  buildMemoryTree,
  consistencyProof,
  inclusionProof,
  rootFromInclusionProof,
  rootsFromConsistencyProof,
  treeRoot,
  verifyConsistency,
  verifyInclusion,
} from '../attestation/log/merkle.ts'
import { encodeEntryBundle, encodeTileIndex, parseEntryBundle, parseTilePath, subtreeHashesFromTiles, tilePath, tilesForSize } from '../attestation/log/tile.ts'
import { createTreeBuilder } from '../attestation/log/tree-builder.ts'
import { formatVerifierKey, parseNote, parseVerifierKey, verifyNote } from '../attestation/log/note.ts'
import { codeOf, thrown } from './helpers/errors.ts'

// ---- an independent RFC 6962 §2.1 implementation (straight from the text) ----
const sha = (...parts: Uint8Array[]) => {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}
const k2 = (n: number) => {
  let k = 1
  while (k << 1 < n) k <<= 1
  return k
}
function MTH(d: Uint8Array[]): Uint8Array {
  if (d.length === 0) return sha()
  if (d.length === 1) return sha(Uint8Array.of(0), d[0]!)
  const k = k2(d.length)
  return sha(Uint8Array.of(1), MTH(d.slice(0, k)), MTH(d.slice(k)))
}
function PATH(m: number, d: Uint8Array[]): Uint8Array[] {
  if (d.length <= 1) return []
  const k = k2(d.length)
  return m < k ? [...PATH(m, d.slice(0, k)), MTH(d.slice(k))] : [...PATH(m - k, d.slice(k)), MTH(d.slice(0, k))]
}
function SUBPROOF(m: number, d: Uint8Array[], b: boolean): Uint8Array[] {
  if (m === d.length) return b ? [] : [MTH(d)]
  const k = k2(d.length)
  return m <= k ? [...SUBPROOF(m, d.slice(0, k), b), MTH(d.slice(k))] : [...SUBPROOF(m - k, d.slice(k), false), MTH(d.slice(0, k))]
}
const PROOF = (m: number, d: Uint8Array[]) => SUBPROOF(m, d, true)

// ---- RFC 6962 / transparency-dev test vectors ----
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'))
const LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(unhex)
const ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
]
// transparency-dev/merkle testonly: (leaf index 0-based, tree size, path)
const INCLUSION: [number, number, string[]][] = [
  [0, 1, []],
  [0, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [5, 8, ['bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [2, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [1, 5, ['6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
]
const CONSISTENCY: [number, number, string[]][] = [
  [1, 1, []],
  [1, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [6, 8, ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [2, 5, ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
]

const treeOf = (leaves: Uint8Array[]) => buildMemoryTree(new Uint8Array(Buffer.concat(leaves.map((l) => leafHash(l)))))

t.test('RFC 6962 roots of 0..8 standard leaves: independent MTH, memory tree, tree builder, tiles', async (t) => {
  t.equal(hex(EMPTY_ROOT), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
  t.equal(hex(MTH([])), hex(EMPTY_ROOT))
  for (let n = 1; n <= 8; n++) {
    const d = LEAVES.slice(0, n)
    t.equal(hex(MTH(d)), ROOTS[n - 1], `independent MTH of ${n}`)
    t.equal(hex(treeOf(d).rootAt(n)), ROOTS[n - 1], `memory tree root of ${n}`)
    t.equal(hex(treeOf(LEAVES).rootAt(n)), ROOTS[n - 1], `root at size ${n} of the 8-leaf tree`)
    const b = createTreeBuilder()
    b.append(d)
    t.equal(hex(b.root()), ROOTS[n - 1], `tree builder root of ${n}`)
  }
})

t.test('inclusion and consistency vectors (transparency-dev shapes)', async (t) => {
  const tree = treeOf(LEAVES)
  for (const [index, size, path] of INCLUSION) {
    const d = LEAVES.slice(0, size)
    t.same(PATH(index, d).map(hex), path, `independent PATH(${index}, ${size})`)
    t.same(inclusionProof(tree.nodes, index, size).map(hex), path, `inclusionProof(${index}, ${size})`)
    const root = unhex(ROOTS[size - 1]!)
    t.equal(hex(rootFromInclusionProof(index, size, leafHash(LEAVES[index]!), path.map(unhex))), ROOTS[size - 1])
    verifyInclusion(index, size, leafHash(LEAVES[index]!), path.map(unhex), root)
    if (path.length > 0) {
      const bad = path.map(unhex)
      bad[0] = new Uint8Array(32)
      t.equal(codeOf(thrown(() => verifyInclusion(index, size, leafHash(LEAVES[index]!), bad, root))), 'LOG_INCLUSION_PROOF_INVALID')
      t.equal(codeOf(thrown(() => verifyInclusion(index, size, leafHash(LEAVES[index]!), path.slice(1).map(unhex), root))), 'LOG_INCLUSION_PROOF_INVALID', 'short proof')
    }
    t.equal(codeOf(thrown(() => verifyInclusion(index, size, leafHash(LEAVES[index]!), [...path.map(unhex), root], root))), 'LOG_INCLUSION_PROOF_INVALID', 'long proof')
  }
  for (const [m, n, proof] of CONSISTENCY) {
    const d = LEAVES.slice(0, n)
    t.same(PROOF(m, d).length === 0 && m === n ? [] : PROOF(m, d).map(hex), proof, `independent PROOF(${m}, ${n})`)
    t.same(consistencyProof(tree.nodes, m, n).map(hex), proof, `consistencyProof(${m}, ${n})`)
    verifyConsistency(m, n, unhex(ROOTS[m - 1]!), unhex(ROOTS[n - 1]!), proof.map(unhex))
    if (m < n) {
      t.equal(codeOf(thrown(() => verifyConsistency(m, n, unhex(ROOTS[m - 1]!), unhex(ROOTS[m - 1]!), proof.map(unhex)))), 'LOG_CONSISTENCY_PROOF_INVALID')
      const r = rootsFromConsistencyProof(m, n, unhex(ROOTS[m - 1]!), proof.map(unhex))
      t.equal(hex(r.newRoot), ROOTS[n - 1], 'computed new root')
    }
  }
})

t.test('property: proofs from our tree equal the independent RFC 6962 ones and verify', async () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 600 }), fc.nat(), fc.nat(), (n, a, b) => {
      const d = Array.from({ length: n }, (_, i) => new TextEncoder().encode(`leaf ${i}`))
      const tree = treeOf(d)
      const root = MTH(d)
      if (hex(tree.rootAt(n)) !== hex(root)) return false
      const i = a % n
      const p = inclusionProof(tree.nodes, i, n)
      if (p.map(hex).join() !== PATH(i, d).map(hex).join()) return false
      verifyInclusion(i, n, leafHash(d[i]!), p, root)
      const m = 1 + (b % n)
      const c = consistencyProof(tree.nodes, m, n)
      if (m < n && c.map(hex).join() !== PROOF(m, d).map(hex).join()) return false
      verifyConsistency(m, n, MTH(d.slice(0, m)), root, c)
      return true
    }),
    { numRuns: 60 },
  )
})

t.test('tiles: the tree builder emits tlog-tiles whose hashes rebuild every root', async (t) => {
  for (const n of [1, 255, 256, 257, 512, 70_000]) {
    const d = Array.from({ length: n }, (_, i) => new TextEncoder().encode(`e${i}`))
    const b = createTreeBuilder()
    // In uneven batches, as a writer would.
    for (let i = 0; i < n; i += 97) b.append(d.slice(i, i + 97))
    const tiles = new Map<string, Uint8Array>()
    for (const x of b.takeChangedTiles()) tiles.set(tilePath(x.coordinates), x.bytes)
    t.same([...tiles.keys()].sort(), tilesForSize(n).map(tilePath).sort(), `tile set of ${n}`)
    const hashAt = (level: number, i: number) => {
      const c = tilesForSize(n).find((x) => x.level === level && x.index === Math.floor(i / 256))!
      return tiles.get(tilePath(c))!.subarray((i % 256) * 32, (i % 256) * 32 + 32)
    }
    const expected = n <= 600 ? hex(MTH(d)) : hex(treeOf(d).rootAt(n))
    t.equal(hex(treeRoot(subtreeHashesFromTiles(hashAt), n)), expected, `root from tiles, size ${n}`)
    t.equal(hex(b.root()), expected)
    const entries = [...tiles.entries()].filter(([p]) => p.startsWith('tile/entries/')).flatMap(([p, bytes]) => parseEntryBundle(bytes, parseTilePath(p).width))
    t.equal(entries.length, n)
  }
})

t.test('C2SP tlog-tiles paths', async (t) => {
  t.equal(encodeTileIndex(0), '000')
  t.equal(encodeTileIndex(1234067), 'x001/x234/067')
  t.equal(tilePath({ level: 0, index: 1234067, width: 256 }), 'tile/0/x001/x234/067')
  t.equal(tilePath({ level: 'entries', index: 1234067, width: 8 }), 'tile/entries/x001/x234/067.p/8')
  t.same(parseTilePath('tile/1/x001/x234/067.p/8'), { level: 1, index: 1234067, width: 8 })
  t.same(parseTilePath('tile/entries/000'), { level: 'entries', index: 0, width: 256 })
  for (const bad of ['tile/0/x000/001', 'tile/0/1', 'tile/0/001.p/256', 'tile/0/001.p/0', 'tile/00/001', '../tile/0/000', 'tile/0/000/']) {
    t.equal(codeOf(thrown(() => parseTilePath(bad))), 'LOG_TILE_PATH_INVALID', bad)
  }
  t.same(parseEntryBundle(encodeEntryBundle([unhex(''), unhex('0102')])).map(hex), ['', '0102'])
  t.equal(codeOf(thrown(() => parseEntryBundle(unhex('0005aa')))), 'LOG_TILE_MALFORMED')
  t.equal(codeOf(thrown(() => encodeEntryBundle([new Uint8Array(65_536)]))), 'LOG_ENTRY_TOO_LARGE')
})

t.test('C2SP signed-note: the Go note package example verifies; tampering does not', async (t) => {
  const vkey = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'
  const text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
  const note = `${text}\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`
  const key = parseVerifierKey(vkey)
  t.equal(formatVerifierKey(key.name, key.publicKey), vkey)
  t.equal(verifyNote(parseNote(note), key).name, 'PeterNeumann')
  t.equal(codeOf(thrown(() => verifyNote(parseNote(note.replace('answer', 'answr')), key))), 'LOG_CHECKPOINT_SIGNATURE_INVALID')
  t.equal(codeOf(thrown(() => parseNote(text))), 'LOG_NOTE_MALFORMED')
  t.equal(codeOf(thrown(() => parseVerifierKey('PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'))), 'LOG_NOTE_MALFORMED')
})
