/**
 * Dev GPU tests: evidence from the development GPU (attestation/dev/gpu-signer.ts,
 * enclave/gpu/dev.ts) goes through the production NVIDIA verifier unchanged —
 * SPDM parser, device chain, report signature, FWID, nonce, RIM XML
 * signature and chain, measurement comparison, OCSP — and only the trust
 * root differs: NVIDIA's roots reject it, and a GPU policy accepts it only
 * when it names the dev root's fingerprint. Its structure is compared with
 * NVIDIA's sample H100 evidence (test/vectors/nvidia/hopper-sample).
 *
 * Dev evidence is NOT a production trust root; these tests exist to show
 * that nothing but an explicitly named dev root lets it through.
 *
 * A fixed clock throughout; errors are asserted by code (and policy mismatch
 * codes), never by message.
 */
import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { BaseError, PolicyError } from '../attestation/errors.ts'
import { pemToDer } from '../attestation/asn1/pem.ts'
import { parseCertificate, commonName, type Certificate } from '../attestation/pki/x509.ts'
import { certificateKey, verifyRaw } from '../attestation/pki/ecdsa.ts'
import { parseOcspResponse } from '../attestation/pki/ocsp.ts'
import { trustedRootFromDer } from '../attestation/roots/trust-root.ts'
import { NVIDIA_DEVICE_IDENTITY_CA, NVIDIA_RIM_ROOT_CA } from '../attestation/roots/nvidia.ts'
import { diceIdentityOf, certificateFwid, OID_SHA384 } from '../attestation/nvidia/abi/dice.ts'
import { parseGpuReport, OPAQUE_FIELD, NVDEC_STATUS_DISABLED, NVDEC_STATUS_ENABLED, type GpuReport } from '../attestation/nvidia/abi/spdm.ts'
import { gpuEvidenceFromJson, gpuEvidenceToJson, type GpuEvidenceBundle } from '../attestation/nvidia/evidence.ts'
import { parseRim } from '../attestation/nvidia/rim/parse.ts'
import { verifyRim } from '../attestation/nvidia/rim/verify.ts'
import { verifyGpuEvidence, type VerifiedGpuEvidence } from '../attestation/nvidia/verify/verify-gpu-evidence.ts'
import { validateGpuEvidence } from '../attestation/nvidia/validate/validate-gpu.ts'
import { parseGpuPolicy } from '../attestation/policy/policy.ts'
import { checkReportDataBinding, computeReportData, hashGpuEvidence } from '../attestation/binding.ts'
import { parseQuote, type TdReport } from '../attestation/tdx/abi/quote.ts'
import { verifyQuote } from '../attestation/tdx/verify/verify-quote.ts'
import {
  createDevGpu,
  createDevGpuRootCa,
  createDevQuoteSigner,
  createDevRootCa,
  devGoldenRims,
  devGpuMeasurements,
  signDevCollateral,
  signDevOcsp,
  DEV_DRIVER_RIM_INDICES,
  DEV_FMSPC,
  DEV_GPU_BROM_NAME,
  DEV_GPU_FMC_LEAF_NAME,
  DEV_GPU_IDENTITY_CA_NAME,
  DEV_GPU_PROVISIONER_CA_NAME,
  DEV_GPU_ROOT_CA_NAME,
  DEV_RIM_SIGNER_NAME,
  DEV_VBIOS_RIM_INDICES,
  type DevGpu,
} from '../attestation/dev/index.ts'
import { createDevGpuProvider } from '../enclave/gpu/dev.ts'
import { sampleChain, sampleReport, sampleRims } from './helpers/nvidia-sample.ts'
import { codeOf, thrown } from './helpers/errors.ts'

const NOW = new Date('2025-06-01T12:00:00Z')
/** When the verifier runs: an hour after the dev CA was made (inside every certificate and OCSP window). */
const AT = new Date(NOW.getTime() + 3_600_000)
const DAY = 86_400_000
const seed = (label: string) => new Uint8Array(createHash('sha256').update(`dev-gpu test ${label}`).digest())
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const NONCE = new Uint8Array(createHash('sha256').update('dev-gpu test nonce').digest())
const OTHER_NONCE = new Uint8Array(createHash('sha256').update('dev-gpu test other nonce').digest())

const ca = createDevGpuRootCa({ seed: seed('ca'), now: NOW })
const devRoot = trustedRootFromDer('dev', ca.rootCertificateDer, ca.rootFingerprint)
/** An eight-GPU dev machine, and a one-GPU one. */
const gpus = Array.from({ length: 8 }, (_, index) => createDevGpu(ca, { index }))
const eight = createDevGpuProvider({ ca, gpus, now: () => AT })
const one = createDevGpuProvider({ ca, gpus: gpus.slice(0, 1), now: () => AT })
const opts = { now: AT, expectedNonce: NONCE, deviceRoot: devRoot, rimRoot: devRoot }

const devPolicy = (fingerprint: string, extra: Record<string, unknown> = {}) =>
  parseGpuPolicy({ trustRoot: { dev: fingerprint }, count: 8, driverVersions: ['550.90.07'], vbiosVersions: 'any', ...extra })

function chainOf(gpu: DevGpu): Certificate[] {
  return pemToDer(gpu.certificateChainPem).map(parseCertificate)
}

/** The policy mismatch codes of a PolicyError (fails the test for any other outcome). */
function mismatchCodes(f: () => unknown): string[] {
  const e = thrown(f)
  if (!(e instanceof PolicyError)) throw new Error(`expected a PolicyError, got ${String(e)}`)
  return e.mismatches.map((m) => m.code)
}

function detailsOf(e: unknown): Record<string, unknown> {
  return e instanceof BaseError ? e.details : {}
}

// ---------------------------------------------------------------------------
// (1) The report: every field where it was put, and the sample's layout.

t.test('a dev GPU report parses with parseGpuReport, every field where it was put', async (t) => {
  const measurements = new Map(Array.from({ length: 10 }, (_, i): [number, Uint8Array] => [i + 1, Uint8Array.from({ length: 48 }, (_, k) => (i * 16 + k) & 0xff)]))
  const gpu = createDevGpu(ca, {
    index: 3,
    driverVersion: '535.104.05',
    vbiosVersion: '96.00.74.00.1c',
    project: '1010',
    projectSku: '0210',
    chipSku: '885',
    measurements,
    nvdecStatus: NVDEC_STATUS_DISABLED,
    protectedPcieStatus: NVDEC_STATUS_ENABLED,
  })
  const raw = gpu.signReport(NONCE)
  const r = parseGpuReport(raw)

  t.equal(r.request.version, 0x11, 'SPDM 1.1')
  t.equal(r.request.code, 0xe0, 'GET_MEASUREMENTS')
  t.equal(r.request.param1, 1, 'signature requested')
  t.equal(r.request.param2, 0xff, 'all measurements')
  t.equal(hex(r.request.nonce), hex(NONCE), 'the requester nonce')
  t.equal(r.request.slotId, 0)
  t.equal(r.response.version, 0x11)
  t.equal(r.response.code, 0x60, 'MEASUREMENTS')
  t.equal(r.response.numberOfBlocks, 10)
  t.same(r.response.blocks.map((b) => b.index), [...measurements.keys()])
  for (const b of r.response.blocks) {
    t.equal(b.measurementSpecification, 1, `block ${b.index}: DMTF`)
    t.equal(b.representation, 'digest')
    t.equal(hex(b.value), hex(measurements.get(b.index)!), `block ${b.index}: value`)
  }
  t.equal(r.response.nonce.length, 32, 'responder nonce')

  const o = r.response.opaque
  t.equal(o.driverVersion, '535.104.05')
  t.equal(o.vbiosVersion, '96.00.74.00.1C', 'VBIOS version read back as NVIDIA prints it')
  t.equal(gpu.vbiosVersion, '96.00.74.00.1C')
  t.equal(o.project, '1010')
  t.equal(o.projectSku, '0210')
  t.equal(o.chipSku, '885')
  t.equal(hex(o.fwid!), hex(gpu.fwid))
  t.equal(o.nvdecStatus, NVDEC_STATUS_DISABLED)
  t.equal(o.protectedPcieStatus, NVDEC_STATUS_ENABLED)
  t.equal(o.measurementCounts?.length, 64)

  t.equal(r.signature.length, 96, 'raw r || s, P-384')
  t.equal(hex(r.signedBytes), hex(raw.subarray(0, raw.length - 96)), 'signed: request || response without signature')
  const chain = chainOf(gpu)
  t.ok(verifyRaw('ecdsa-sha384', r.signedBytes, certificateKey(chain[0]!), r.signature), 'the FMC leaf key signed it')
  t.equal(hex(certificateFwid(chain[0]!)!.digest), hex(gpu.fwid), 'the leaf certifies the same FWID')

  // A fresh responder nonce per answer: the same request never yields the same signed bytes twice.
  t.not(hex(gpu.signReport(NONCE)), hex(raw))
  t.equal(codeOf(thrown(() => gpu.signReport(new Uint8Array(31)))), 'ATTESTATION_OPTIONS_INVALID')
})

t.test('a default dev GPU report has the sample report layout', async (t) => {
  const sample = parseGpuReport(sampleReport())
  const dev = parseGpuReport(gpus[0]!.signReport(NONCE))
  t.equal(dev.raw.length, sample.raw.length, 'same total size (4117 bytes)')
  t.same([...dev.response.opaque.fields.keys()], [...sample.response.opaque.fields.keys()], 'same opaque TLVs in the same order')
  t.same(
    [...dev.response.opaque.fields.values()].map((f) => f.value.length),
    [...sample.response.opaque.fields.values()].map((f) => f.value.length),
    'same opaque field sizes',
  )
  t.same(dev.response.blocks.map((b) => [b.index, b.dmtfValueType, b.value.length]), sample.response.blocks.map((b) => [b.index, b.dmtfValueType, b.value.length]))
  for (const k of ['driverVersion', 'vbiosVersion', 'project', 'projectSku', 'chipSku'] as const) {
    t.equal(dev.response.opaque[k], sample.response.opaque[k], `default ${k} is the sample's`)
  }
  t.equal(dev.response.opaque.nvdecStatus, NVDEC_STATUS_ENABLED, 'NVDEC enabled by default: index 35 is compared too')
  t.ok(dev.response.opaque.fields.has(OPAQUE_FIELD.FWID))
})

t.test('the dev device chain has the sample chain shape', async (t) => {
  const dev = chainOf(gpus[0]!)
  const sample = pemToDer(new TextDecoder().decode(sampleChain())).map(parseCertificate)
  t.equal(dev.length, 5, 'leaf, BROM, provisioner ICA, identity CA, root')
  t.same(dev.map((c) => commonName(c.subject)), [DEV_GPU_FMC_LEAF_NAME, DEV_GPU_BROM_NAME, DEV_GPU_PROVISIONER_CA_NAME, DEV_GPU_IDENTITY_CA_NAME, DEV_GPU_ROOT_CA_NAME])
  t.same(
    dev.map((c) => [c.basicConstraints ?? null, c.keyUsage ?? null, c.curve, c.signatureAlgorithm]),
    sample.map((c) => [c.basicConstraints ?? null, c.keyUsage ?? null, c.curve, c.signatureAlgorithm]),
    'CA flags, key usage, curve and signature algorithm per position are NVIDIA\'s',
  )
  t.equal(hex(dev[4]!.der), hex(ca.rootCertificateDer), 'the chain carries the root, as the GPU does')
  for (const [name, chain] of [['dev', dev], ['sample', sample]] as const) {
    const id = diceIdentityOf(chain[0]!)
    t.equal(id?.kind, 'riot-composite', `${name}: RIoT composite FWID extension`)
    t.equal(id?.fwids[0].hashAlg, OID_SHA384, `${name}: SHA-384 FWID`)
    if (id?.kind === 'riot-composite') t.equal(hex(id.deviceIdSpki), hex(chain[1]!.spki), `${name}: deviceId is the issuing BROM key`)
  }
  t.not(hex(chainOf(gpus[1]!)[1]!.der), hex(dev[1]!.der), 'each GPU has its own BROM certificate')
  t.equal(hex(chainOf(gpus[1]!)[2]!.der), hex(dev[2]!.der), 'and shares the device CAs')
})

t.test('dev RIMs have the sample RIMs shape and verify under the dev root only', async (t) => {
  const rims = devGoldenRims(ca, gpus[0]!, NOW)
  const [sampleDriver, sampleVbios] = sampleRims().map(parseRim) // sorted: NV_GPU_DRIVER..., NV_GPU_VBIOS...
  for (const [kind, text, sample] of [['driver', rims.driver, sampleDriver!], ['vbios', rims.vbios, sampleVbios!]] as const) {
    const dev = parseRim(text)
    t.equal(dev.measurements.length, sample.measurements.length, `${kind}: 64 resources`)
    t.same(dev.measurements.filter((m) => m.active).map((m) => m.index), sample.measurements.filter((m) => m.active).map((m) => m.index), `${kind}: NVIDIA's active indices`)
    t.same({ ...dev.signature, signatureValue: null, references: dev.signature.references.map((r) => ({ ...r, digestValue: null })) },
      { ...sample.signature, signatureValue: null, references: sample.signature.references.map((r) => ({ ...r, digestValue: null })) }, `${kind}: NVIDIA's signature profile`)
    t.equal(dev.certificateChainDer.length, sample.certificateChainDer.length, `${kind}: signer, two CAs, root`)
    t.equal(dev.name, 'GH100')
    t.equal(dev.product, 'GH100')
    const v = verifyRim(text, { now: AT, root: devRoot })
    t.equal(v.signer.commonName, DEV_RIM_SIGNER_NAME)
    t.equal(v.colloquialVersion, kind === 'driver' ? '550.90.07' : '96.00.9F.00.01')
    t.equal(codeOf(thrown(() => verifyRim(text, { now: AT, root: NVIDIA_RIM_ROOT_CA }))), 'ATTESTATION_ROOT_CA_UNTRUSTED', `${kind}: NVIDIA's RIM root rejects it`)
  }
  t.same([...DEV_DRIVER_RIM_INDICES, ...DEV_VBIOS_RIM_INDICES].sort((a, b) => a - b).length, 33, 'driver and VBIOS never share an index')
  t.equal(codeOf(thrown(() => devGoldenRims(ca, gpus[0]!, new Date(NOW.getTime() - DAY)))), 'ATTESTATION_OPTIONS_INVALID', 'no signing before the signer exists')
})

// ---------------------------------------------------------------------------
// (2) The real verifier accepts dev evidence under the dev root; the policy accepts it when it names that root.

function assertAllGood(t: Test, v: VerifiedGpuEvidence, count: number): void {
  t.equal(v.gpus.length, count)
  t.same(v.roots, { device: { fingerprint: ca.rootFingerprint, kind: 'dev' }, rim: { fingerprint: ca.rootFingerprint, kind: 'dev' } })
  for (const g of v.gpus) {
    t.equal(g.measurements.matched, DEV_DRIVER_RIM_INDICES.length + DEV_VBIOS_RIM_INDICES.length, `gpu ${g.index}: every golden measurement matched`)
    t.same(g.measurements.exempted, [])
    t.equal(g.certificates.length, 4 + 3 + 3, 'device chain below the root, and both RIM chains')
    t.same(
      g.certificates.map((c) => c.ocsp),
      ['exempt', ...Array(9).fill('good')],
      `gpu ${g.index}: OCSP good for every certificate but the exempt FMC leaf`,
    )
    t.equal(g.fwid, hex(gpus[g.index]!.fwid))
  }
}

t.test('verifyGpuEvidence verifies 1 and 8 dev GPUs; a policy naming the dev root accepts them', async (t) => {
  for (const [count, provider] of [[1, one], [8, eight]] as const) {
    const bundle = await provider.collect(NONCE)
    t.equal(bundle.gpus.length, count)
    t.equal(bundle.rims.length, 2, 'one driver and one VBIOS RIM cover every GPU')
    t.equal(bundle.ocsp.length, count + 2 + 3, 'one BROM per GPU, two device CAs, three RIM chain certificates')
    const v = verifyGpuEvidence(bundle, opts)
    assertAllGood(t, v, count)
    t.same(validateGpuEvidence(v, devPolicy(ca.rootFingerprint, { count })), { accepted: true })
    // The nvattest-compatible JSON form carries the same evidence.
    const again = gpuEvidenceFromJson(JSON.stringify(gpuEvidenceToJson(bundle)))
    assertAllGood(t, verifyGpuEvidence(again, opts), count)
  }
  const v8 = verifyGpuEvidence(await eight.collect(NONCE), opts)
  t.same(validateGpuEvidence(v8, devPolicy(ca.rootFingerprint)), { accepted: true }, 'the policy of the brief: count 8, driver 550.90.07, any VBIOS')
  t.same(mismatchCodes(() => validateGpuEvidence(v8, devPolicy(ca.rootFingerprint, { driverVersions: ['560.35.03'] }))), Array(8).fill('POLICY_GPU_DRIVER_NOT_ALLOWED'))
  t.same(mismatchCodes(() => validateGpuEvidence(v8, devPolicy(ca.rootFingerprint, { count: 4 }))), ['POLICY_GPU_COUNT_MISMATCH'])
})

t.test('the same instants that bound real evidence bound dev evidence', async (t) => {
  const bundle = await one.collect(NONCE)
  const late = new Date(NOW.getTime() + (ca.validityDays + 1) * DAY)
  t.equal(codeOf(thrown(() => verifyGpuEvidence(bundle, { ...opts, now: late }))), 'ATTESTATION_CERT_EXPIRED')
  const e = thrown(() => verifyGpuEvidence(bundle, { ...opts, now: new Date(AT.getTime() + 2 * DAY) }))
  t.equal(codeOf(e), 'ATTESTATION_OCSP_INVALID', 'OCSP responses are good for a day')
  t.equal(detailsOf(e).reason, 'stale')
})

// ---------------------------------------------------------------------------
// (3) Only the named dev root.

t.test("NVIDIA's roots reject dev evidence; a policy naming another root rejects it", async (t) => {
  const bundle = await eight.collect(NONCE)
  t.equal(codeOf(thrown(() => verifyGpuEvidence(bundle, { now: AT, expectedNonce: NONCE }))), 'ATTESTATION_ROOT_CA_UNTRUSTED', "NVIDIA's default roots")
  t.equal(
    codeOf(thrown(() => verifyGpuEvidence(bundle, { now: AT, expectedNonce: NONCE, deviceRoot: NVIDIA_DEVICE_IDENTITY_CA, rimRoot: NVIDIA_RIM_ROOT_CA }))),
    'ATTESTATION_ROOT_CA_UNTRUSTED',
    "NVIDIA's roots named",
  )
  t.equal(codeOf(thrown(() => verifyGpuEvidence(bundle, { now: AT, expectedNonce: NONCE, deviceRoot: devRoot }))), 'ATTESTATION_ROOT_CA_UNTRUSTED', "dev device root, NVIDIA's RIM root")

  const other = createDevGpuRootCa({ seed: seed('other ca'), now: NOW })
  const otherRoot = trustedRootFromDer('dev', other.rootCertificateDer, other.rootFingerprint)
  t.equal(codeOf(thrown(() => verifyGpuEvidence(bundle, { ...opts, deviceRoot: otherRoot, rimRoot: otherRoot }))), 'ATTESTATION_ROOT_CA_UNTRUSTED', 'another dev root')

  const v = verifyGpuEvidence(bundle, opts)
  const bothRoots = ['POLICY_GPU_TRUST_ROOT_NOT_ALLOWED', 'POLICY_GPU_TRUST_ROOT_NOT_ALLOWED']
  t.same(mismatchCodes(() => validateGpuEvidence(v, devPolicy(other.rootFingerprint))), bothRoots, 'a policy naming another dev root')
  t.same(
    mismatchCodes(() => validateGpuEvidence(v, parseGpuPolicy({ trustRoot: 'nvidia', count: 8, driverVersions: 'any', vbiosVersions: 'any' }))),
    bothRoots,
    "a policy naming NVIDIA's roots",
  )

  // Golden values signed under a root the policy does not name: a genuine
  // device with someone else's RIMs is refused (the RIM anchor is checked too).
  const foreignRims = devGoldenRims(other, gpus[0]!, NOW)
  const mixed = { ...(await one.collect(NONCE)), rims: [foreignRims.driver, foreignRims.vbios], ocsp: [] }
  const vMixed = verifyGpuEvidence(mixed, { now: AT, expectedNonce: NONCE, deviceRoot: devRoot, rimRoot: otherRoot })
  const policy = parseGpuPolicy({ trustRoot: { dev: ca.rootFingerprint }, count: 1, driverVersions: 'any', vbiosVersions: 'any', requireOcsp: false })
  const e = thrown(() => validateGpuEvidence(vMixed, policy)) as PolicyError
  t.same(e.mismatches.map((m) => [m.code, m.field]), [['POLICY_GPU_TRUST_ROOT_NOT_ALLOWED', 'gpu.trustRoot.rim']])
})

// ---------------------------------------------------------------------------
// (4) Measurements, nonce, OCSP.

t.test('one GPU measuring otherwise fails with its index', async (t) => {
  const changed = new Map(gpus[5]!.measurements)
  changed.set(22, createHash('sha384').update('not the golden driver measurement').digest()) // RIM index 21, a driver index
  const machine = [...gpus.slice(0, 5), createDevGpu(ca, { index: 5, measurements: changed }), ...gpus.slice(6)]
  const bundle = await createDevGpuProvider({ ca, gpus: machine, now: () => AT }).collect(NONCE)
  const e = thrown(() => verifyGpuEvidence(bundle, opts))
  t.equal(codeOf(e), 'ATTESTATION_GPU_MEASUREMENT_MISMATCH')
  t.equal(detailsOf(e).gpu, 5)
  t.same(detailsOf(e).indices, [21])
})

t.test('with NVDEC disabled, a different index 35 is exempted, as on NVIDIA hardware', async (t) => {
  const changed = devGpuMeasurements()
  changed.set(36, createHash('sha384').update('another NVDEC firmware').digest())
  const golden = createDevGpu(ca, { nvdecStatus: NVDEC_STATUS_DISABLED })
  const gpu = createDevGpu(ca, { index: 1, nvdecStatus: NVDEC_STATUS_DISABLED, measurements: changed })
  const rims = devGoldenRims(ca, golden, AT)
  const bundle = await createDevGpuProvider({ ca, gpus: [gpu], now: () => AT, includeRims: false }).collect(NONCE)
  const v = verifyGpuEvidence({ ...bundle, rims: [rims.driver, rims.vbios] }, opts)
  t.same(v.gpus[0]!.measurements.exempted, [35])
  const enabled = createDevGpu(ca, { index: 1, measurements: changed })
  const b2 = await createDevGpuProvider({ ca, gpus: [enabled], now: () => AT, includeRims: false }).collect(NONCE)
  t.equal(codeOf(thrown(() => verifyGpuEvidence({ ...b2, rims: [rims.driver, rims.vbios] }, opts))), 'ATTESTATION_GPU_MEASUREMENT_MISMATCH', 'NVDEC enabled: compared')
})

t.test('a report for another nonce is rejected', async (t) => {
  const bundle = await eight.collect(OTHER_NONCE)
  const e = thrown(() => verifyGpuEvidence(bundle, opts))
  t.equal(codeOf(e), 'ATTESTATION_GPU_NONCE_MISMATCH')
  t.equal(detailsOf(e).gpu, 0)
})

t.test('without OCSP: statuses "missing", refused by the default policy, accepted with requireOcsp false', async (t) => {
  const bundle = await createDevGpuProvider({ ca, gpus, now: () => AT, includeOcsp: false }).collect(NONCE)
  t.equal(bundle.ocsp.length, 0)
  const v = verifyGpuEvidence(bundle, opts)
  for (const g of v.gpus) t.same(g.certificates.map((c) => c.ocsp), ['exempt', ...Array(9).fill('missing')])
  t.same(mismatchCodes(() => validateGpuEvidence(v, devPolicy(ca.rootFingerprint))), Array(8).fill('POLICY_GPU_OCSP_MISSING'))
  t.same(validateGpuEvidence(v, devPolicy(ca.rootFingerprint, { requireOcsp: false })), { accepted: true })
})

t.test('a revoked certificate is rejected', async (t) => {
  const bundle = await eight.collect(NONCE)
  const revoke = (cert: Uint8Array, issuer: Uint8Array) =>
    signDevOcsp(ca, { cert, issuer, status: 'revoked', thisUpdate: NOW, nextUpdate: new Date(NOW.getTime() + DAY), reason: 'keyCompromise' })
  const brom = gpus[2]!.certificateChainDer
  const r = parseOcspResponse(revoke(brom[1]!, brom[2]!))
  t.equal(r.responseStatus === 'successful' && r.basic.responses[0]!.certStatus.kind, 'revoked')
  // Listed first, so it is the response the verifier finds for that certificate.
  const e = thrown(() => verifyGpuEvidence({ ...bundle, ocsp: [revoke(brom[1]!, brom[2]!), ...bundle.ocsp] }, opts))
  t.equal(codeOf(e), 'ATTESTATION_CERT_REVOKED', "GPU 2's BROM certificate")
  t.equal(detailsOf(e).gpu, 2)
  const rim = ca.rimCertificateChainDer
  t.equal(codeOf(thrown(() => verifyGpuEvidence({ ...bundle, ocsp: [revoke(rim[0]!, rim[1]!), ...bundle.ocsp] }, opts))), 'ATTESTATION_CERT_REVOKED', 'the RIM signer')
  t.equal(codeOf(thrown(() => signDevOcsp(ca, { cert: brom[1]!, issuer: rim[1]!, status: 'good', thisUpdate: NOW, nextUpdate: AT }))), 'ATTESTATION_OPTIONS_INVALID', 'only the issuer answers')
})

// ---------------------------------------------------------------------------
// (5) End to end with the dev TDX TEE: the GPU evidence is bound into REPORTDATA.

t.test('dev GPU evidence bound into a dev TDX quote; a relayed GPU report breaks the binding', async (t) => {
  const tdxCa = createDevRootCa({ seed: seed('tdx ca'), now: NOW })
  const signer = createDevQuoteSigner(tdxCa, { fmspc: DEV_FMSPC, seed: seed('tdx qe') })
  const collateral = signDevCollateral(tdxCa, { fmspc: DEV_FMSPC, now: NOW, platform: signer.platform })
  const tdxRoot = trustedRootFromDer('dev', tdxCa.rootCertificateDer, tdxCa.rootFingerprint)
  const keyConfig = Uint8Array.from([0x01, 0x00, 0x20, ...seed('ohttp key'), 0x00, 0x04, 0x00, 0x01, 0x00, 0x02])
  const signingAddress = `0x${hex(seed('signing address').subarray(0, 20))}` as const
  const binding = (items: GpuEvidenceBundle['gpus']) =>
    computeReportData({ mode: 'nonce', nonce: NONCE, keyConfig, signingAddress, gpuEvidenceHash: hashGpuEvidence(items), logPublicKey: null, epoch: 1n })

  // The gateway: GPU evidence and quote answer the same nonce; REPORTDATA binds the GPU evidence.
  const bundle = await eight.collect(NONCE)
  const quote = signer.signQuote({ reportData: binding(bundle.gpus) })

  // The client: verify the quote, the GPU evidence, then recompute the binding.
  const vq = verifyQuote(quote, collateral, { now: AT, trustedRoot: tdxRoot })
  t.equal(vq.root.kind, 'dev')
  const reportData = (parseQuote(quote).body.report as TdReport).reportData
  t.equal(hex(reportData.subarray(32)), hex(NONCE), 'the freshness half is the nonce')
  const vg = verifyGpuEvidence(bundle, opts)
  t.same(validateGpuEvidence(vg, devPolicy(ca.rootFingerprint)), { accepted: true })
  t.doesNotThrow(() => checkReportDataBinding(reportData, binding(bundle.gpus)), 'the recomputed binding matches')

  // Another dev machine (same dev root: its evidence is just as genuine) answers the same nonce.
  const elsewhere = Array.from({ length: 8 }, (_, index) => createDevGpu(ca, { index, seed: seed(`other machine gpu ${index}`) }))
  const relayed = await createDevGpuProvider({ ca, gpus: elsewhere, now: () => AT }).collect(NONCE)
  verifyGpuEvidence(relayed, opts) // genuine on its own
  for (const k of [0, 3, 7]) {
    const swap = (f: (mine: GpuEvidenceBundle['gpus'][number], theirs: GpuEvidenceBundle['gpus'][number]) => GpuEvidenceBundle['gpus'][number]) =>
      bundle.gpus.map((g, i) => (i === k ? f(g, relayed.gpus[k]!) : g))
    const whole = { ...bundle, gpus: swap((_, theirs) => theirs), ocsp: [...bundle.ocsp, ...relayed.ocsp] }
    const v = verifyGpuEvidence(whole, opts)
    t.equal(v.gpus.length, 8, `GPU ${k} relayed whole: the GPU evidence alone still verifies`)
    t.equal(codeOf(thrown(() => checkReportDataBinding(reportData, binding(whole.gpus)))), 'ATTESTATION_BINDING_MISMATCH', `GPU ${k} relayed whole: binding broken`)
    const report = swap((mine, theirs) => ({ ...mine, report: theirs.report }))
    t.equal(codeOf(thrown(() => checkReportDataBinding(reportData, binding(report)))), 'ATTESTATION_BINDING_MISMATCH', `GPU ${k} report swapped: binding broken`)
    t.equal(codeOf(thrown(() => verifyGpuEvidence({ ...bundle, gpus: report }, opts))), 'ATTESTATION_GPU_SIGNATURE_INVALID', `GPU ${k} report swapped: not signed by this leaf`)
    const chain = swap((mine, theirs) => ({ ...mine, certificateChain: theirs.certificateChain }))
    t.equal(codeOf(thrown(() => checkReportDataBinding(reportData, binding(chain)))), 'ATTESTATION_BINDING_MISMATCH', `GPU ${k} chain swapped: binding broken`)
  }
  // Re-collecting on the same machine gives fresh reports (new responder nonces): an old quote does not cover them.
  const fresh = await eight.collect(NONCE)
  t.equal(codeOf(thrown(() => checkReportDataBinding(reportData, binding(fresh.gpus)))), 'ATTESTATION_BINDING_MISMATCH')
})

t.test('provider and signer options are checked', async (t) => {
  t.equal(codeOf(thrown(() => createDevGpu({} as never))), 'ATTESTATION_OPTIONS_INVALID', 'a CA not made by createDevGpuRootCa')
  t.equal(codeOf(thrown(() => createDevGpu(ca, { vbiosVersion: '96.00.9F' }))), 'ATTESTATION_OPTIONS_INVALID')
  t.equal(codeOf(thrown(() => createDevGpu(ca, { nvdecStatus: 0x12 }))), 'ATTESTATION_OPTIONS_INVALID')
  t.equal(codeOf(thrown(() => createDevGpu(ca, { measurements: new Map([[1, new Uint8Array(32)]]) }))), 'ATTESTATION_OPTIONS_INVALID')
  t.equal(codeOf(await one.collect(new Uint8Array(16)).catch((e: unknown) => e)), 'ATTESTATION_OPTIONS_INVALID')
  const aborted = new AbortController()
  aborted.abort()
  t.ok((await one.collect(NONCE, { signal: aborted.signal }).catch((e: unknown) => e)) instanceof Error, 'an aborted collect rejects')
  const p = createDevGpuProvider({ ca, now: () => AT })
  t.equal(p.name, 'dev')
  t.equal(p.gpus.length, 1, 'one GPU by default')
})
