/**
 * The development TEE is a separate trust root: its quotes verify through
 * the same code path as real ones, and are accepted only by a policy that
 * names the dev root's fingerprint — never by the baseline, never by a policy
 * naming another dev root. Also: a dev quote carrying the REPORTDATA binding.
 */
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createDevQuoteSigner, createDevRootCa, DEV_FMSPC, signDevCollateral } from '../attestation/dev/index.ts'
import { trustedRootFromDer } from '../attestation/roots/trust-root.ts'
import { verifyQuote } from '../attestation/tdx/verify/verify-quote.ts'
import { validateQuote } from '../attestation/tdx/validate/validate-quote.ts'
import { BASELINE_POLICY_DOCUMENT, parsePolicy, type PolicyDocument } from '../attestation/policy/policy.ts'
import { checkReportDataBinding, computeReportData, NO_GPU_EVIDENCE_HASH, type BindingInput } from '../attestation/binding.ts'
import { PolicyError } from '../attestation/errors.ts'
import { main } from '../bin/cgw.ts'
import { EXIT } from '../bin/exit-codes.ts'

const NOW = new Date('2026-11-01T00:00:00Z')
const AT = new Date('2026-11-02T00:00:00Z')
const ca = createDevRootCa({ now: NOW, seed: new Uint8Array(32).fill(9) })
const other = createDevRootCa({ now: NOW, seed: new Uint8Array(32).fill(10) })
const signer = createDevQuoteSigner(ca, { fmspc: DEV_FMSPC, now: NOW })
const collateral = signDevCollateral(ca, { fmspc: DEV_FMSPC, now: NOW, platform: signer.platform })
const devRoot = trustedRootFromDer('dev', ca.rootCertificateDer, ca.rootFingerprint)

const binding: BindingInput = {
  mode: 'nonce',
  keyConfig: new Uint8Array([0, 1, 0, 32, 7, 7, 7]),
  signingAddress: '0x00000000000000000000000000000000000000aa',
  gpuEvidenceHash: NO_GPU_EVIDENCE_HASH,
  logPublicKey: null,
  epoch: 1n,
  nonce: new Uint8Array(32).fill(3),
}
const reportData = computeReportData(binding)
const quote = signer.signQuote({ reportData })

function devPolicy(fingerprint: string): PolicyDocument {
  const d = structuredClone(BASELINE_POLICY_DOCUMENT)
  d.trustRoot = { dev: fingerprint }
  return d
}

t.test('library: accepted only under a policy naming this dev root', async (t) => {
  const v = verifyQuote(quote, collateral, { now: AT, trustedRoot: devRoot })
  t.same(validateQuote(v, parsePolicy(devPolicy(ca.rootFingerprint)), { expectedReportData: reportData }).accepted, true)
  const codes = (doc: PolicyDocument) => {
    try {
      validateQuote(v, parsePolicy(doc))
      return []
    } catch (e) {
      return (e as PolicyError).mismatches.map((m) => m.code)
    }
  }
  t.same(codes(BASELINE_POLICY_DOCUMENT), ['POLICY_TRUST_ROOT_NOT_ALLOWED'], 'the Intel baseline refuses it')
  t.same(codes(devPolicy(other.rootFingerprint)), ['POLICY_TRUST_ROOT_NOT_ALLOWED'], 'another dev root refuses it')
  t.throws(() => verifyQuote(quote, collateral, { now: AT }), { code: 'ATTESTATION_ROOT_CA_UNTRUSTED' }, 'default root is Intel')
  const otherRoot = trustedRootFromDer('dev', other.rootCertificateDer)
  // Both dev roots carry the same subject name, so the first object signed
  // by the pinned root key — the root CA CRL — is where the other key shows.
  t.throws(() => verifyQuote(quote, collateral, { now: AT, trustedRoot: otherRoot }), { code: 'ATTESTATION_CRL_SIGNATURE_INVALID' })
  t.throws(() => trustedRootFromDer('dev', other.rootCertificateDer, ca.rootFingerprint), { code: 'ATTESTATION_OPTIONS_INVALID' })
})

t.test('the binding in a dev quote', async (t) => {
  const v = verifyQuote(quote, collateral, { now: AT, trustedRoot: devRoot })
  const rd = v.quote.body.report.reportData
  checkReportDataBinding(rd, computeReportData(binding))
  t.throws(() => checkReportDataBinding(rd, computeReportData({ ...binding, keyConfig: new Uint8Array([9]) })), {
    code: 'ATTESTATION_BINDING_MISMATCH',
  })
  t.throws(() => checkReportDataBinding(rd, computeReportData({ ...binding, nonce: new Uint8Array(32) })), {
    code: 'ATTESTATION_BINDING_MISMATCH',
  })
})

t.test('cli: --dev-root with a policy naming it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cgw-dev-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'quote.bin'), quote)
  writeFileSync(join(dir, 'collateral.json'), JSON.stringify(collateral))
  writeFileSync(join(dir, 'root.pem'), ca.rootCertificatePem)
  writeFileSync(join(dir, 'other.pem'), other.rootCertificatePem)
  writeFileSync(join(dir, 'policy.json'), JSON.stringify(devPolicy(ca.rootFingerprint)))
  const run = (...extra: string[]) =>
    main(['verify-quote', join(dir, 'quote.bin'), '--collateral', join(dir, 'collateral.json'), '--at', AT.toISOString(), ...extra], {
      out: () => {},
      err: () => {},
    })
  t.equal(await run('--policy', join(dir, 'policy.json'), '--dev-root', join(dir, 'root.pem')), EXIT.OK)
  t.equal(await run(), EXIT.VERIFICATION, 'baseline: the Intel root does not verify it')
  t.equal(await run('--policy', join(dir, 'policy.json'), '--dev-root', join(dir, 'other.pem')), EXIT.USAGE, 'root file must match the policy')
})
