/**
 * The whole GPU evidence path on NVIDIA's real H100 sample: report, device
 * chain, RIMs, measurement comparison, OCSP and policy — and the JSON form
 * that NVIDIA's own `nvattest collect-evidence` emits.
 */
import t from 'tap'
import { PolicyError } from '../attestation/errors.ts'
import { gpuEvidenceFromJson, gpuEvidenceToJson, parseGpuEvidence } from '../attestation/nvidia/evidence.ts'
import { verifyGpuEvidence } from '../attestation/nvidia/verify/verify-gpu-evidence.ts'
import { validateGpuEvidence } from '../attestation/nvidia/validate/validate-gpu.ts'
import { verifyRim } from '../attestation/nvidia/rim/verify.ts'
import { NVIDIA_RIM_ROOT_CA } from '../attestation/roots/nvidia.ts'
import { parseGpuPolicy, BASELINE_GPU_POLICY_DOCUMENT, type GpuPolicyDocument } from '../attestation/policy/policy.ts'
import { codeOf, thrown } from './helpers/errors.ts'
import { GPU_OCSP_TIME, RIM_OCSP_TIME, SAMPLE_NONCE, sampleBundle, sampleRims } from './helpers/nvidia-sample.ts'

const baseline = parseGpuPolicy(BASELINE_GPU_POLICY_DOCUMENT)

function mismatchCodes(f: () => unknown): string[] {
  const e = thrown(f)
  if (e === undefined) return []
  if (!(e instanceof PolicyError)) throw e
  return e.mismatches.map((m) => m.code).sort()
}

t.test('the sample verifies: report, chain, 33 golden measurements, device OCSP', async (t) => {
  const v = verifyGpuEvidence(sampleBundle({ ocsp: 'gpu' }), { now: GPU_OCSP_TIME, expectedNonce: SAMPLE_NONCE })
  t.equal(v.gpus.length, 1)
  const g = v.gpus[0]!
  t.equal(g.driverVersion, '550.90.07')
  t.equal(g.vbiosVersion, '96.00.9F.00.01')
  t.equal(g.measurements.matched, 33)
  t.equal(g.fwid.length, 96)
  const device = g.certificates.filter((c) => c.chain === 'device').map((c) => c.ocsp)
  t.same(device, ['exempt', 'good', 'good', 'good'], 'leaf exempt, three CAs good')
  t.ok(g.certificates.filter((c) => c.chain !== 'device').every((c) => c.ocsp === 'missing'), 'RIM chains have no current OCSP at this instant')
  // Missing OCSP is refused by default, accepted only when the policy says so.
  t.same(mismatchCodes(() => validateGpuEvidence(v, baseline)), ['POLICY_GPU_OCSP_MISSING'])
  t.same(mismatchCodes(() => validateGpuEvidence(v, parseGpuPolicy({ ...BASELINE_GPU_POLICY_DOCUMENT, requireOcsp: false }))), [])
})

t.test('RIM chains with their OCSP responses, two months later', async (t) => {
  const v = verifyGpuEvidence(sampleBundle({ ocsp: 'rim' }), { now: RIM_OCSP_TIME, expectedNonce: SAMPLE_NONCE })
  const g = v.gpus[0]!
  t.ok(g.certificates.filter((c) => c.chain !== 'device').every((c) => c.ocsp === 'good'), 'driver and VBIOS RIM chains: good')
  t.same(g.certificates.filter((c) => c.chain === 'device').map((c) => c.ocsp), ['exempt', 'missing', 'missing', 'missing'])
})

t.test('OCSP present but out of its window is a failure, not "missing"', async (t) => {
  const e = thrown(() => verifyGpuEvidence(sampleBundle({ ocsp: 'gpu' }), { now: RIM_OCSP_TIME, expectedNonce: SAMPLE_NONCE }))
  t.ok(['ATTESTATION_OCSP_INVALID'].includes(codeOf(e)!), 'stale device OCSP')
  t.equal((e as PolicyError).details.gpu, 0)
})

t.test('eight GPUs, nvattest JSON round trip, policy on count and versions', async (t) => {
  const json = gpuEvidenceToJson(sampleBundle({ ocsp: 'gpu', count: 8 }))
  const bundle = gpuEvidenceFromJson(JSON.stringify(json))
  const v = verifyGpuEvidence(parseGpuEvidence(bundle), { now: GPU_OCSP_TIME, expectedNonce: SAMPLE_NONCE })
  t.equal(v.gpus.length, 8)
  const policy = (p: Partial<GpuPolicyDocument>) => parseGpuPolicy({ ...BASELINE_GPU_POLICY_DOCUMENT, requireOcsp: false, ...p })
  t.same(mismatchCodes(() => validateGpuEvidence(v, policy({ count: 8, driverVersions: ['550.90.07'], vbiosVersions: ['96.00.9f.00.01'] }))), [])
  t.same(mismatchCodes(() => validateGpuEvidence(v, policy({ count: 4 }))), ['POLICY_GPU_COUNT_MISMATCH'])
  const wrong = mismatchCodes(() => validateGpuEvidence(v, policy({ driverVersions: ['555.42.02'], requireProtectedPcie: true })))
  t.equal(wrong.filter((c) => c === 'POLICY_GPU_DRIVER_NOT_ALLOWED').length, 8, 'every GPU reported')
  t.equal(wrong.filter((c) => c === 'POLICY_GPU_PROTECTED_PCIE_OFF').length, 8)
  t.same(mismatchCodes(() => validateGpuEvidence(v, parseGpuPolicy({ required: false }))), ['POLICY_GPU_NOT_EXPECTED'])
  t.same(mismatchCodes(() => validateGpuEvidence(v, policy({ trustRoot: { dev: 'ab'.repeat(32) } }))), [
    'POLICY_GPU_TRUST_ROOT_NOT_ALLOWED',
    'POLICY_GPU_TRUST_ROOT_NOT_ALLOWED',
  ], 'device and RIM anchors both named')
})

t.test('failures name the GPU and the step', async (t) => {
  const now = { now: GPU_OCSP_TIME, expectedNonce: SAMPLE_NONCE }
  t.equal(codeOf(thrown(() => verifyGpuEvidence(sampleBundle({ ocsp: 'gpu' }), { ...now, expectedNonce: new Uint8Array(32) }))), 'ATTESTATION_GPU_NONCE_MISMATCH')
  t.equal(codeOf(thrown(() => verifyGpuEvidence(sampleBundle({ rims: false }), now))), 'ATTESTATION_RIM_MISMATCH', 'no RIM for this driver')
  const other = { ...sampleBundle(), rims: sampleRims('rims-not-matching') }
  t.equal(codeOf(thrown(() => verifyGpuEvidence(other, now))), 'ATTESTATION_RIM_MISMATCH', 'RIMs for other versions')
  const two = sampleBundle({ count: 2 })
  const flipped = { ...two, gpus: [two.gpus[0]!, { ...two.gpus[1]!, report: two.gpus[1]!.report.map((b, i) => (i === 200 ? b ^ 1 : b)) }] }
  const e = thrown(() => verifyGpuEvidence(flipped, now))
  t.equal(codeOf(e), 'ATTESTATION_GPU_SIGNATURE_INVALID')
  t.equal((e as PolicyError).details.gpu, 1, 'the second GPU failed')
})

t.test('a verifier-side RIM store takes precedence; two different RIMs for one version are refused', async (t) => {
  const store = sampleRims().map((x) => verifyRim(x, { now: GPU_OCSP_TIME, root: NVIDIA_RIM_ROOT_CA }))
  const v = verifyGpuEvidence(sampleBundle({ rims: false }), { now: GPU_OCSP_TIME, expectedNonce: SAMPLE_NONCE, rims: store })
  t.equal(v.gpus[0]!.measurements.matched, 33)
  const prodAndTest = sampleRims('rims-not-matching').filter((x) => x.includes('96.00.5E.00.01'))
  t.equal(prodAndTest.length, 2)
  const ambiguous = prodAndTest.map((x) => verifyRim(x, { now: new Date('2025-01-01T00:00:00Z'), root: NVIDIA_RIM_ROOT_CA }))
  t.not(Buffer.from(ambiguous[0]!.contentDigest).toString('hex'), Buffer.from(ambiguous[1]!.contentDigest).toString('hex'))
})

t.test('malformed bundles are parse errors', async (t) => {
  const good = gpuEvidenceToJson(sampleBundle())
  const cases: [string, unknown][] = [
    ['not JSON', '{'],
    ['no evidences', { ocsp: [] }],
    ['unknown arch', { evidences: [{ ...(good.evidences as any[])[0], arch: 'AMPERE' }] }],
    ['bad nonce', { evidences: [{ ...(good.evidences as any[])[0], nonce: 'xyz' }] }],
    ['mixed nonces', { evidences: [(good.evidences as any[])[0], { ...(good.evidences as any[])[0], nonce: '00'.repeat(32) }] }],
    ['bad base64', { evidences: [{ ...(good.evidences as any[])[0], evidence: '***' }] }],
    ['empty list', { evidences: [] }],
  ]
  for (const [name, doc] of cases) t.equal(codeOf(thrown(() => gpuEvidenceFromJson(doc))), 'ATTESTATION_GPU_EVIDENCE_MALFORMED', name)
})
