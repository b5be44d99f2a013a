/**
 * Evidence bundles end to end on the development TEE: a dev TDX quote and
 * two dev GPUs. The bundle's quote verifies with verifyQuote under the dev
 * root, its GPU evidence with verifyGpuEvidence under the dev GPU root, and
 * the binding recomputed from the bundle's parts equals the quote's
 * REPORTDATA; a changed key config, signing address, GPU evidence, epoch or
 * nonce breaks it. Then the cache, failures and aborts. A fixed clock.
 */
import { createHash } from 'node:crypto'
import t, { type Test } from 'tap'
import { createDevCcel, createDevGpu, createDevGpuRootCa, createDevQuoteSigner, createDevRootCa, signDevCollateral, DEV_FMSPC } from '../attestation/dev/index.ts'
import { parseEventLog, verifyRtmrs } from '../attestation/eventlog/index.ts'
import { trustedRootFromDer } from '../attestation/roots/trust-root.ts'
import { verifyQuote } from '../attestation/tdx/verify/verify-quote.ts'
import { parseQuote, type TdReport } from '../attestation/tdx/abi/quote.ts'
import { gpuEvidenceFromJson, gpuEvidenceToJson } from '../attestation/nvidia/evidence.ts'
import { verifyGpuEvidence } from '../attestation/nvidia/verify/verify-gpu-evidence.ts'
import { createDevGpuProvider } from '../enclave/gpu/dev.ts'
import type { GpuEvidenceProvider } from '../enclave/gpu/provider.ts'
import { createEpochManager, type OhttpKeyLike } from '../enclave/epochs.ts'
import { createEvidenceSource, expectedReportData, verifyEvidenceBinding } from '../enclave/evidence.ts'
import { createDevEventLogProvider, createDevQuoteProvider } from '../enclave/quote-providers/dev.ts'
import { EnclaveError } from '../enclave/errors.ts'
import type { EvidenceBundle, QuoteProvider } from '../enclave/types.ts'
import { codeOf, thrown } from './helpers/errors.ts'

const NOW = new Date('2025-06-01T12:00:00Z')
const AT = new Date(NOW.getTime() + 3_600_000)
const L = 3_600_000
const seed = (label: string) => new Uint8Array(createHash('sha256').update(`enclave-evidence test ${label}`).digest())
const nonceOf = (label: string) => seed(`nonce ${label}`)
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64')
const CANARY = 'OHTTP-PRIVATE-KEY-CANARY'

const tdxCa = createDevRootCa({ seed: seed('tdx ca'), now: NOW })
const signer = createDevQuoteSigner(tdxCa, { fmspc: DEV_FMSPC, seed: seed('qe') })
const collateral = signDevCollateral(tdxCa, { fmspc: DEV_FMSPC, now: NOW, nextUpdateDays: 30, platform: signer.platform })
const tdxRoot = trustedRootFromDer('dev', tdxCa.rootCertificateDer, tdxCa.rootFingerprint)
const gpuCa = createDevGpuRootCa({ seed: seed('gpu ca'), now: NOW })
const gpuRoot = trustedRootFromDer('dev', gpuCa.rootCertificateDer, gpuCa.rootFingerprint)
const gpus = [0, 1].map((index) => createDevGpu(gpuCa, { index }))
const gpuProvider = createDevGpuProvider({ ca: gpuCa, gpus, now: () => AT })
const logPublicKey = new TextEncoder().encode('test transparency log key')

/** An RFC 9458 §3.1 key config shape: key id, KEM 0x0020, a 32-byte public key, one suite. */
function fakeOhttpKey(keyId: number): OhttpKeyLike & { privateKey: string } {
  const pk = seed(`ohttp ${keyId} ${Math.random()}`)
  const keyConfig = Uint8Array.from([keyId, 0x00, 0x20, ...pk, 0x00, 0x04, 0x00, 0x01, 0x00, 0x02])
  return { keyId, keyConfig, privateKey: CANARY, destroy() {} }
}

function counting(p: QuoteProvider): QuoteProvider & { calls: number } {
  const c = {
    name: p.name,
    calls: 0,
    getQuote(rd: Uint8Array, o?: { signal?: AbortSignal }) {
      c.calls++
      return p.getQuote(rd, o)
    },
  }
  return c
}

async function setup(t: Test, o: { gpu?: GpuEvidenceProvider | null; quotes?: QuoteProvider; cacheSize?: number; log?: Uint8Array | null } = {}) {
  let clock = AT.getTime()
  const epochs = await createEpochManager({ epochLengthMs: L, graceMs: 60_000, now: () => clock, newOhttpKey: fakeOhttpKey, autoRotate: false })
  t.teardown(() => epochs.close())
  const quotes = counting(o.quotes ?? createDevQuoteProvider({ signer, measurements: { mrTd: new Uint8Array(48).fill(0x5a) } }))
  const source = createEvidenceSource({
    quotes,
    eventLog: createDevEventLogProvider(),
    gpu: o.gpu === undefined ? gpuProvider : o.gpu,
    epochs,
    logPublicKey: o.log === undefined ? logPublicKey : o.log,
    cacheSize: o.cacheSize,
  })
  return { epochs, quotes, source, advance: (ms: number) => void (clock += ms) }
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  )
}

const quoteOf = (b: EvidenceBundle) => new Uint8Array(Buffer.from(b.quote, 'base64'))

t.test('the bundle verifies: dev quote, dev GPU evidence, binding', async (t) => {
  const { source, epochs } = await setup(t)
  const nonce = nonceOf('a')
  const bundle = await source.attest(nonce)
  const epoch = epochs.current()

  t.equal(bundle.version, 1)
  t.equal(bundle.nonce, hex(nonce))
  t.equal(bundle.signingAddress, epoch.signingKey.address)
  t.equal(bundle.epoch, epoch.number.toString())
  t.equal(bundle.keyConfig, Buffer.from(epoch.ohttpKey.keyConfig).toString('base64'))
  t.equal(bundle.epochExpiresAt, new Date(epoch.expiresAt).toISOString())
  t.equal(bundle.logPublicKey, Buffer.from(logPublicKey).toString('base64'), 'the log key travels in the bundle')
  const dev = createDevCcel()
  t.same(bundle.eventLog, { table: b64(dev.table), data: b64(dev.data) }, 'the dev TD serves its generated CCEL')
  const td = parseQuote(quoteOf(bundle)).body.report as TdReport
  t.doesNotThrow(() => verifyRtmrs(parseEventLog(dev.data).events, td.rtmrs), 'and it replays to the quote RTMRs')
  t.ok(Object.isFrozen(bundle) && Object.isFrozen(bundle.gpu), 'frozen: a cached bundle cannot be changed by a caller')

  const vq = verifyQuote(quoteOf(bundle), collateral, { now: AT, trustedRoot: tdxRoot })
  t.equal(vq.tcbStatus, 'UpToDate')
  t.equal(vq.root.fingerprint, tdxCa.rootFingerprint)

  const vg = verifyGpuEvidence(gpuEvidenceFromJson(bundle.gpu), { now: AT, expectedNonce: nonce, deviceRoot: gpuRoot, rimRoot: gpuRoot })
  t.equal(vg.gpus.length, 2)

  const q = parseQuote(quoteOf(bundle))
  t.equal(hex(q.body.report.reportData), hex(expectedReportData(bundle, { expectedNonce: nonce, logPublicKey })))
  t.equal(hex(q.body.report.reportData.subarray(32)), hex(nonce), 'the nonce in clear in the upper half')
  t.doesNotThrow(() => verifyEvidenceBinding(bundle, { expectedNonce: nonce, logPublicKey }))

  const json = JSON.stringify(bundle)
  t.notMatch(json, CANARY, 'no private key in the bundle')
  t.same(JSON.parse(json), bundle, 'JSON-safe')
})

t.test('changing any bound part breaks the binding', async (t) => {
  const { source } = await setup(t)
  const nonce = nonceOf('b')
  const bundle = await source.attest(nonce)
  const otherGpuBundle = await gpuProvider.collect(nonceOf('other'))
  const oneGpu = await createDevGpuProvider({ ca: gpuCa, gpus: gpus.slice(0, 1), now: () => AT }).collect(nonce)
  const mutations: [string, EvidenceBundle][] = [
    ['key config', { ...bundle, keyConfig: Buffer.from(fakeOhttpKey(Number(BigInt(bundle.epoch) % 256n)).keyConfig).toString('base64') }],
    ['signing address', { ...bundle, signingAddress: '0x1111111111111111111111111111111111111111' }],
    ['GPU evidence answering another nonce', { ...bundle, gpu: gpuEvidenceToJson(otherGpuBundle) }],
    ['GPU evidence of fewer GPUs', { ...bundle, gpu: gpuEvidenceToJson(oneGpu) }],
    ['no GPU evidence', { ...bundle, gpu: null }],
    ['epoch', { ...bundle, epoch: (BigInt(bundle.epoch) + 1n).toString() }],
    ['nonce', { ...bundle, nonce: hex(nonceOf('c')) }],
  ]
  for (const [name, b] of mutations) {
    t.equal(codeOf(thrown(() => verifyEvidenceBinding(b, { expectedNonce: nonce, logPublicKey }))), 'ATTESTATION_BINDING_MISMATCH', name)
  }
  // A swapped log key breaks the binding; a caller expecting a key sees the swap before that.
  for (const [name, b] of [
    ['log key', { ...bundle, logPublicKey: Buffer.from('another log key').toString('base64') }],
    ['log key removed', { ...bundle, logPublicKey: null }],
  ] as [string, EvidenceBundle][]) {
    t.equal(codeOf(thrown(() => verifyEvidenceBinding(b, { expectedNonce: nonce }))), 'ATTESTATION_BINDING_MISMATCH', name)
    t.equal(codeOf(thrown(() => verifyEvidenceBinding(b, { expectedNonce: nonce, logPublicKey }))), 'ATTESTATION_OPTIONS_INVALID', `${name}, key expected`)
  }
  t.doesNotThrow(() => verifyEvidenceBinding(bundle, { expectedNonce: nonce }), 'the bundle carries its log key')
  t.equal(codeOf(thrown(() => verifyEvidenceBinding(bundle, { expectedNonce: nonce, logPublicKey: new Uint8Array(3) }))), 'ATTESTATION_OPTIONS_INVALID', 'another log key')
  t.equal(codeOf(thrown(() => verifyEvidenceBinding(bundle, { expectedNonce: nonceOf('c') }))), 'ATTESTATION_BINDING_MISMATCH', 'an old bundle answering another nonce')
  t.equal(codeOf(thrown(() => verifyEvidenceBinding(bundle, {} as never))), 'ATTESTATION_OPTIONS_INVALID', 'the verifier nonce is required')
})

t.test('a TD without GPU binds NO_GPU_EVIDENCE_HASH; no log key', async (t) => {
  const { source } = await setup(t, { gpu: null, log: null })
  const bundle = await source.attest(nonceOf('d'))
  t.equal(bundle.gpu, null)
  t.equal(bundle.logPublicKey, null)
  t.doesNotThrow(() => verifyEvidenceBinding(bundle, { expectedNonce: nonceOf('d') }))
  const withGpu = { ...bundle, gpu: gpuEvidenceToJson(await gpuProvider.collect(nonceOf('d'))) }
  t.equal(codeOf(thrown(() => verifyEvidenceBinding(withGpu, { expectedNonce: nonceOf('d') }))), 'ATTESTATION_BINDING_MISMATCH', 'GPU evidence added afterwards')
})

t.test('cache: one bundle per nonce and epoch, shared while in flight, bounded', async (t) => {
  const { source, quotes, epochs, advance } = await setup(t, { cacheSize: 2 })
  const [a1, a2] = await Promise.all([source.attest(nonceOf('1')), source.attest(nonceOf('1'))])
  t.equal(a1, a2, 'concurrent requests share one collection')
  t.equal(quotes.calls, 1)
  t.equal(await source.attest(nonceOf('1')), a1, 'the same nonce returns the same bundle')
  t.equal(quotes.calls, 1)
  const b = await source.attest(nonceOf('2'))
  t.not(b, a1)
  await source.attest(nonceOf('1')) // most recent now: '1', then '2'
  await source.attest(nonceOf('3')) // evicts '2'
  t.equal(quotes.calls, 3)
  t.equal(await source.attest(nonceOf('1')), a1, 'recently used kept')
  t.not(await source.attest(nonceOf('2')), b, 'least recently used evicted')
  t.equal(quotes.calls, 4)

  advance(L)
  await epochs.rotateIfDue()
  const after = await source.attest(nonceOf('1'))
  t.not(after, a1, 'a new epoch gives a new bundle for the same nonce')
  t.equal(after.epoch, epochs.current().number.toString())
  t.doesNotThrow(() => verifyEvidenceBinding(after, { expectedNonce: nonceOf('1'), logPublicKey }))
})

t.test('provider failures: ENCLAVE_EVIDENCE_UNAVAILABLE with the provider code; not cached', async (t) => {
  let fail = true
  const dev = createDevQuoteProvider({ signer })
  const flaky: QuoteProvider = {
    name: 'configfs-tsm',
    async getQuote(rd, o) {
      if (fail) throw new EnclaveError('ENCLAVE_QUOTE_PROVIDER_UNAVAILABLE', 'configfs-tsm is not available')
      return dev.getQuote(rd, o)
    },
  }
  const { source } = await setup(t, { quotes: flaky })
  const e = await rejection(source.attest(nonceOf('f')))
  t.ok(e instanceof EnclaveError)
  t.equal(codeOf(e), 'ENCLAVE_EVIDENCE_UNAVAILABLE')
  t.same((e as EnclaveError).details, { step: 'quote', provider: 'configfs-tsm', code: 'ENCLAVE_QUOTE_PROVIDER_UNAVAILABLE' })
  fail = false
  const bundle = await source.attest(nonceOf('f'))
  t.doesNotThrow(() => verifyEvidenceBinding(bundle, { expectedNonce: nonceOf('f'), logPublicKey }), 'the retry succeeds')

  const brokenGpu: GpuEvidenceProvider = {
    name: 'nvattest',
    collect: async () => {
      throw Object.assign(new Error('nvattest exited 1'), { code: 'GPU_COLLECT_FAILED' })
    },
  }
  const g = await setup(t, { gpu: brokenGpu })
  const ge = await rejection(g.source.attest(nonceOf('g')))
  t.same((ge as EnclaveError).details, { step: 'gpu', provider: 'nvattest', code: 'GPU_COLLECT_FAILED' })
  t.equal(g.quotes.calls, 0, 'no quote without GPU evidence')

  const wrongNonce: GpuEvidenceProvider = { name: 'dev', collect: () => gpuProvider.collect(nonceOf('not asked')) }
  const w = await setup(t, { gpu: wrongNonce })
  const we = await rejection(w.source.attest(nonceOf('h')))
  t.same((we as EnclaveError).details, { step: 'gpu', provider: 'dev', code: 'ATTESTATION_GPU_EVIDENCE_MALFORMED' })

  t.equal(codeOf(await rejection(source.attest(new Uint8Array(31)))), 'ATTESTATION_OPTIONS_INVALID', 'a nonce of 31 bytes')
})

t.test('aborting one caller does not fail another sharing the collection', async (t) => {
  const { source } = await setup(t)
  const ac = new AbortController()
  const a = source.attest(nonceOf('x'), { signal: ac.signal })
  const b = source.attest(nonceOf('x'))
  ac.abort()
  t.equal(((await rejection(a)) as Error).name, 'AbortError')
  const bundle = await b
  t.doesNotThrow(() => verifyEvidenceBinding(bundle, { expectedNonce: nonceOf('x'), logPublicKey }))
})

t.test('a closed epoch manager: attest rejects with ENCLAVE_CLOSED', async (t) => {
  const { source, epochs } = await setup(t)
  epochs.close()
  t.equal(codeOf(await rejection(source.attest(nonceOf('z')))), 'ENCLAVE_CLOSED')
})

t.test('a flood of nonces is refused, not queued', async (t) => {
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  const slow = { name: 'slow', getQuote: async (rd: Uint8Array) => (await gate, new Uint8Array(rd)) }
  const { source } = await setup(t, { quotes: slow as never })
  const first = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => source.attest(nonceOf(`flood ${i}`)))
  t.equal(codeOf(await rejection(source.attest(nonceOf('one too many')))), 'ENCLAVE_EVIDENCE_BUSY')
  release()
  await Promise.allSettled(first)
  const after = await rejection(source.attest(nonceOf('later')))
  t.not(codeOf(after), 'ENCLAVE_EVIDENCE_BUSY', 'room again once collections finish')
})
