/**
 * The REPORTDATA binding: frozen vectors (shared with the Solidity registry),
 * an independent re-encoding of the abi.encode layout (ten words in nonce
 * mode, twelve with the model and URL hashes in registration mode), and the
 * properties that make it a binding — every input changes the output, modes
 * never collide, malformed inputs are refused.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { keccak_256 } from '@noble/hashes/sha3.js'
import {
  checkReportDataBinding,
  computeReportData,
  hashGpuEvidence,
  NO_GPU_EVIDENCE_HASH,
  type BindingInput,
  type Hex,
} from '../attestation/binding.ts'

const V = JSON.parse(readFileSync(new URL('./fixtures/binding-vectors.json', import.meta.url), 'utf8'))
const b = (h: string) => new Uint8Array(Buffer.from(h.replace(/^0x/, ''), 'hex'))
const hex = (x: Uint8Array) => Buffer.from(x).toString('hex')

const common = {
  keyConfig: b(V.common.keyConfig),
  signingAddress: V.common.signingAddress as Hex,
  gpuEvidenceHash: hashGpuEvidence(V.common.gpuEvidence.map((g: any) => ({ report: b(g.report), certificateChain: b(g.certificateChain) }))),
  logPublicKey: b(V.common.logPublicKey),
  epoch: BigInt(V.common.epoch),
}
const nonceInput: BindingInput = { ...common, mode: 'nonce', nonce: b(V.nonce.nonce) }
const regInput: BindingInput = {
  ...common,
  mode: 'registration',
  blockHash: b(V.registration.blockHash),
  chainId: BigInt(V.registration.chainId),
  registry: V.registration.registry as Hex,
  model: V.registration.model,
  url: V.registration.url,
}

t.test('frozen vectors', async (t) => {
  t.equal(hex(common.gpuEvidenceHash), V.common.gpuEvidenceHash)
  t.equal(hex(NO_GPU_EVIDENCE_HASH), V.noGpuEvidenceHash)
  t.equal(hex(computeReportData(nonceInput)), V.nonce.reportData)
  t.equal(hex(computeReportData(regInput)), V.registration.reportData)
})

t.test('the layout is abi.encode of ten static words (nonce) or twelve (registration)', async (t) => {
  // Re-encode by hand, the way Solidity's abi.encode lays words out.
  const word = (h: string) => Buffer.from(h.replace(/^0x/, '').padStart(64, '0'), 'hex')
  const utf8 = (s: string) => Buffer.from(keccak_256(Buffer.from(s, 'utf8')))
  const enc = Buffer.concat([
    Buffer.from(keccak_256(new TextEncoder().encode('confidential-gateway/report-data/v1'))),
    word('3'),
    Buffer.from(keccak_256(common.keyConfig)),
    word(V.common.signingAddress),
    Buffer.from(common.gpuEvidenceHash),
    Buffer.from(keccak_256(common.logPublicKey)),
    word((42).toString(16)),
    word(V.registration.blockHash),
    word((31337).toString(16)),
    word(V.registration.registry),
    utf8(V.registration.model),
    utf8(V.registration.url),
  ])
  t.equal(hex(keccak_256(enc)), V.registration.reportData.slice(0, 64))
  t.equal(V.registration.reportData.slice(64), V.registration.blockHash, 'freshness in clear in the upper half')
  t.ok(/[^\x00-\x7f]/.test(V.registration.model), 'the vector model is not ASCII: both sides hash UTF-8')
  // Nonce mode: the first ten words only, mode 1, zero chain and registry.
  const nonceEnc = Buffer.concat([
    Buffer.from(keccak_256(new TextEncoder().encode('confidential-gateway/report-data/v1'))),
    word('1'),
    Buffer.from(keccak_256(common.keyConfig)),
    word(V.common.signingAddress),
    Buffer.from(common.gpuEvidenceHash),
    Buffer.from(keccak_256(common.logPublicKey)),
    word((42).toString(16)),
    word(V.nonce.nonce),
    word('0'),
    word('0'),
  ])
  t.equal(hex(keccak_256(nonceEnc)), V.nonce.reportData.slice(0, 64))
})

t.test('every input is bound', async (t) => {
  const base = hex(computeReportData(nonceInput))
  const variants: [string, BindingInput][] = [
    ['keyConfig', { ...nonceInput, keyConfig: b(V.common.keyConfig + '00') }],
    ['signingAddress', { ...nonceInput, signingAddress: '0xabababababababababababababababababababac' }],
    ['gpuEvidenceHash', { ...nonceInput, gpuEvidenceHash: NO_GPU_EVIDENCE_HASH }],
    ['logPublicKey', { ...nonceInput, logPublicKey: null }],
    ['epoch', { ...nonceInput, epoch: 43n }],
    ['nonce', { ...nonceInput, nonce: new Uint8Array(32) }],
  ]
  for (const [name, input] of variants) t.not(hex(computeReportData(input)), base, name)
  // Registration mode binds the registered model and URL too: a copied quote cannot be re-pointed.
  const reg = hex(computeReportData(regInput))
  const regVariants: [string, BindingInput][] = [
    ['url', { ...regInput, url: 'https://attacker.example/v1' }],
    ['model', { ...regInput, model: 'other-model' }],
    ['empty url', { ...regInput, url: '' }],
    ['model and url swapped', { ...regInput, model: regInput.url, url: regInput.model }],
    ['chainId', { ...regInput, chainId: 1n }],
    ['registry', { ...regInput, registry: '0xcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdce' }],
    ['blockHash', { ...regInput, blockHash: new Uint8Array(32) }],
  ]
  for (const [name, input] of regVariants) t.not(hex(computeReportData(input)), reg, `registration ${name}`)
  // Same freshness bytes in both modes: the mode tag keeps them apart.
  const crossed: BindingInput = { ...regInput, blockHash: b(V.nonce.nonce), chainId: 0n, registry: '0x0000000000000000000000000000000000000000' }
  t.not(hex(computeReportData(crossed)).slice(0, 64), base.slice(0, 64), 'a registration never equals a nonce binding')
  // GPU evidence: order and boundaries matter.
  const g = (r: string, c: string) => ({ report: b(r), certificateChain: b(c) })
  t.not(hex(hashGpuEvidence([g('01', '02'), g('03', '04')])), hex(hashGpuEvidence([g('03', '04'), g('01', '02')])))
  t.not(hex(hashGpuEvidence([g('0102', '')])), hex(hashGpuEvidence([g('01', '02')])))
})

t.test('malformed inputs are refused; comparison is typed', async (t) => {
  const bad: [string, BindingInput][] = [
    ['short nonce', { ...nonceInput, nonce: new Uint8Array(31) }],
    ['bad address', { ...nonceInput, signingAddress: '0x1234' as Hex }],
    ['empty key config', { ...nonceInput, keyConfig: new Uint8Array(0) }],
    ['epoch too large', { ...nonceInput, epoch: 1n << 64n }],
    ['negative chain id', { ...regInput, chainId: -1n }],
    ['short GPU hash', { ...nonceInput, gpuEvidenceHash: new Uint8Array(20) }],
    ['model not a string', { ...regInput, model: undefined as unknown as string }],
    ['url not a string', { ...regInput, url: 42 as unknown as string }],
  ]
  for (const [name, input] of bad) t.throws(() => computeReportData(input), { code: 'ATTESTATION_OPTIONS_INVALID' }, name)
  const rd = computeReportData(nonceInput)
  checkReportDataBinding(rd, rd)
  const other = computeReportData({ ...nonceInput, epoch: 1n })
  t.throws(() => checkReportDataBinding(rd, other), { code: 'ATTESTATION_BINDING_MISMATCH' })
})
