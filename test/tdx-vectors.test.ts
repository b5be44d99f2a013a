/**
 * Every real quote in test/vectors/tdx verifies, at its `verify_at`, to
 * exactly the status and advisories its README and case.json state, and its
 * parsed fields agree with the case's independent summary.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { verifyQuote } from '../attestation/tdx/verify/verify-quote.ts'
import { parseCollateral } from '../attestation/tdx/abi/collateral.ts'
import { INTEL_SGX_ROOT_CA, INTEL_SGX_ROOT_CA_FINGERPRINT, trustedRootFromDer } from '../attestation/roots/trust-root.ts'
import { tdxCases, VECTORS_DIR } from './helpers/vectors.ts'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

t.test('the pinned Intel root is the vector root, byte for byte', async (t) => {
  const der = readFileSync(`${VECTORS_DIR}intel/intel-sgx-root-ca.der`)
  t.equal(hex(INTEL_SGX_ROOT_CA.certificate.der), hex(der))
  t.equal(INTEL_SGX_ROOT_CA.fingerprint, INTEL_SGX_ROOT_CA_FINGERPRINT)
  t.throws(() => trustedRootFromDer('intel', new Uint8Array(der), '00'.repeat(32)), { code: 'ATTESTATION_OPTIONS_INVALID' })
})

for (const c of tdxCases()) {
  t.test(c.id, async (t) => {
    t.equal(createHash('sha256').update(c.quote).digest('hex'), readCaseHash(c.dir), 'quote bytes are the recorded ones')
    const v = verifyQuote(c.quote, c.collateral, { now: c.verifyAt })
    t.equal(v.tcbStatus, c.expected.status, 'combined TCB status')
    t.same([...v.advisoryIds].sort(), [...c.expected.advisoryIds].sort(), 'advisory ids')
    t.equal(v.fmspc, c.summary.fmspc, 'FMSPC')
    t.equal(v.quote.header.version, c.summary.version)
    t.equal(v.quote.trailingBytes, c.summary.trailing_bytes)
    t.equal(v.quote.outerCertDataType, c.summary.outer_cert_data_type)
    t.equal(v.root.kind, 'intel')
    if (v.quote.body.kind !== 'sgx') {
      t.equal(hex(v.quote.body.report.mrTd), c.summary.mr_td, 'MRTD')
      t.equal(hex(v.quote.body.report.teeTcbSvn), c.summary.tee_tcb_svn, 'TEE_TCB_SVN')
    } else {
      t.equal(hex(v.quote.body.report.mrEnclave), c.summary.mrenclave, 'MRENCLAVE')
    }
    t.equal(v.quote.certification.qeReport.isvSvn, c.summary.qe_report_isvsvn, 'QE ISVSVN')
    t.ok(v.collateral.expiresAt.getTime() >= c.verifyAt.getTime())

    // Parsed once, verified many times: the same answer.
    const parsed = parseCollateral(c.collateral)
    const again = verifyQuote(c.quote, parsed, { now: c.verifyAt })
    t.equal(again.tcbStatus, v.tcbStatus)
    // And from the collateral JSON text as it sits on disk.
    t.equal(verifyQuote(c.quote, parseCollateral(c.collateralText), { now: c.verifyAt }).tcbStatus, v.tcbStatus)
  })
}

function readCaseHash(dir: string): string {
  return JSON.parse(readFileSync(`${dir}case.json`, 'utf8')).quote_sha256
}

t.test('prepared collateral: remembered signatures never skip a time check', async (t) => {
  const [c] = tdxCases().filter((x) => x.id === 'tdx-v4-emerald-rapids-uptodate')
  const parsed = parseCollateral(c!.collateral)
  t.equal(verifyQuote(c!.quote, parsed, { now: c!.verifyAt }).tcbStatus, 'UpToDate')
  const late = new Date(c!.verifyAt.getTime() + 2000)
  t.throws(() => verifyQuote(c!.quote, parsed, { now: late }), { code: 'ATTESTATION_COLLATERAL_EXPIRED' })
  const early = new Date(Date.UTC(2020, 0, 1))
  t.throws(() => verifyQuote(c!.quote, parsed, { now: early }), { name: 'VerificationError' })
  // A tampered signature on a fresh parse is checked, not taken from memory.
  const tampered = { ...c!.collateral, tcb_info_signature: c!.collateral.tcb_info_signature.replace(/^./, (d) => (d === '0' ? '1' : '0')) }
  t.throws(() => verifyQuote(c!.quote, parseCollateral(tampered), { now: c!.verifyAt }), { code: 'ATTESTATION_TCB_INFO_SIGNATURE_INVALID' })
  t.equal(verifyQuote(c!.quote, parsed, { now: c!.verifyAt }).tcbStatus, 'UpToDate')
  // Bytes changed in place after a successful check are verified afresh.
  const sig = parsed.tcbInfo.signature as Uint8Array
  sig[0] = sig[0]! ^ 1
  t.throws(() => verifyQuote(c!.quote, parsed, { now: c!.verifyAt }), { code: 'ATTESTATION_TCB_INFO_SIGNATURE_INVALID' })
  sig[0] = sig[0]! ^ 1
  const crlTbs = parsed.pckCrl.tbs as Uint8Array
  crlTbs[crlTbs.length - 1] = crlTbs[crlTbs.length - 1]! ^ 1
  t.throws(() => verifyQuote(c!.quote, parsed, { now: c!.verifyAt }), { code: 'ATTESTATION_CRL_SIGNATURE_INVALID' })
  crlTbs[crlTbs.length - 1] = crlTbs[crlTbs.length - 1]! ^ 1
  t.equal(verifyQuote(c!.quote, parsed, { now: c!.verifyAt }).tcbStatus, 'UpToDate')
  t.throws(() => verifyQuote(c!.quote, parsed, { now: new Date(NaN) }), { code: 'ATTESTATION_OPTIONS_INVALID' })
})

t.test('collateral dates are strict RFC 3339', async (t) => {
  const [c] = tdxCases().filter((x) => x.id === 'tdx-v4-emerald-rapids-uptodate')
  for (const bad of ['2025-02-30T00:00:00Z', '2025-07-19T24:00:00Z', '2025-13-01T00:00:00Z', 'July 19 2025']) {
    const text = c!.collateral.tcb_info.replace(/"issueDate":"[^"]*"/, `"issueDate":"${bad}"`)
    t.throws(() => parseCollateral({ ...c!.collateral, tcb_info: text }), { code: 'ATTESTATION_COLLATERAL_MALFORMED' }, bad)
  }
})

t.test('a critical extension the verifier does not understand is refused (RFC 5280 §4.2)', async (t) => {
  const { parseQuote } = await import('../attestation/tdx/abi/quote.ts')
  const { parseCertificate } = await import('../attestation/pki/x509.ts')
  const { verifyChain } = await import('../attestation/pki/chain.ts')
  const [c] = tdxCases().filter((x) => x.id === 'tdx-v4-emerald-rapids-uptodate')
  const chain = parseQuote(c!.quote).certification.pckChain.map(parseCertificate)
  const opts = { now: c!.verifyAt.getTime(), root: INTEL_SGX_ROOT_CA.certificate, crls: [], requireRevocation: false, label: 'pck' }
  t.equal(verifyChain(chain, opts).length, 2, 'the real chain passes')
  // Same signed bytes, one more critical extension in the parsed view: the check reads the view.
  const leaf = { ...chain[0]!, extensions: new Map([...chain[0]!.extensions, ['1.2.3.4.5', { critical: true, value: new Uint8Array(2) }]]) }
  t.throws(() => verifyChain([leaf, ...chain.slice(1)], opts), { code: 'ATTESTATION_CERT_CHAIN_INVALID', details: { extension: '1.2.3.4.5' } })
})
