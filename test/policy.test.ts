/**
 * Policy documents are checked once and fail closed; validation reports
 * every mismatch of genuine evidence at once, and checks no signature.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { PolicyError } from '../attestation/errors.ts'
import { BASELINE_POLICY_DOCUMENT, parsePolicy, type PolicyDocument } from '../attestation/policy/policy.ts'
import { verifyQuote, type VerifiedQuote } from '../attestation/tdx/verify/verify-quote.ts'
import { validateQuote } from '../attestation/tdx/validate/validate-quote.ts'
import { parseQuote, type TdReport } from '../attestation/tdx/abi/quote.ts'
import { parseEventLog, verifyRtmrs } from '../attestation/eventlog/index.ts'
import { tdxCase, VECTORS_DIR } from './helpers/vectors.ts'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x))

function policyWith(patch: (d: PolicyDocument) => void): PolicyDocument {
  const d = clone(BASELINE_POLICY_DOCUMENT)
  patch(d)
  return d
}

function codes(e: unknown): string[] {
  if (!(e instanceof PolicyError)) throw e
  return e.mismatches.map((m) => m.code).sort()
}

function rejectCodes(v: VerifiedQuote, doc: PolicyDocument, ctx = {}): string[] {
  try {
    validateQuote(v, parsePolicy(doc), ctx)
  } catch (e) {
    return codes(e)
  }
  return []
}

/** A copy of a verified quote whose TD report fields are replaced (validation is pure data). */
function withReport(v: VerifiedQuote, patch: (raw: Uint8Array) => void): VerifiedQuote {
  const raw = new Uint8Array(v.quote.raw)
  patch(raw)
  return { ...v, quote: parseQuote(raw) }
}

const uptodate = tdxCase('tdx-v4-emerald-rapids-uptodate')
const vUp = verifyQuote(uptodate.quote, uptodate.collateral, { now: uptodate.verifyAt })
const rUp = vUp.quote.body.report as TdReport
const outofdate = tdxCase('tdx-v4-gcp-outofdate')
const vOut = verifyQuote(outofdate.quote, outofdate.collateral, { now: outofdate.verifyAt })

t.test('policy documents fail closed', async (t) => {
  const bad: [string, (d: any) => void, string][] = [
    ['missing measurement list', (d) => delete d.tdx.rtmr2, 'policy.tdx.rtmr2'],
    ['empty measurement list', (d) => (d.tdx.mrTd = []), 'policy.tdx.mrTd'],
    ['misspelt key', (d) => (d.tdx.mrtd = 'any'), 'policy.tdx.mrtd'],
    ['unknown top-level key', (d) => (d.skipVerification = true), 'policy.skipVerification'],
    ['no trust root', (d) => delete d.trustRoot, 'policy.trustRoot'],
    ['dev root without fingerprint', (d) => (d.trustRoot = { dev: 'yes' }), 'policy.trustRoot.dev'],
    ['Revoked accepted', (d) => (d.tdx.acceptedTcbStatuses = ['UpToDate', 'Revoked']), 'policy.tdx.acceptedTcbStatuses[1]'],
    ['unknown status', (d) => (d.tdx.acceptedTcbStatuses = ['Fine']), 'policy.tdx.acceptedTcbStatuses[0]'],
    ['short MRTD', (d) => (d.tdx.mrTd = ['00']), 'policy.tdx.mrTd[0]'],
    ['age not given', (d) => delete d.tdx.maxCollateralAgeSeconds, 'policy.tdx.maxCollateralAgeSeconds'],
    ['bad advisory', (d) => (d.tdx.allowedAdvisories = ['SA-1']), 'policy.tdx.allowedAdvisories[0]'],
    ['wrong version', (d) => (d.version = 2), 'policy.version'],
    ['bad event', (d) => (d.tdx.requiredEvents = [{ rtmr: 4, digest: '00'.repeat(48) }]), 'policy.tdx.requiredEvents[0].rtmr'],
  ]
  for (const [name, patch, path] of bad) {
    t.throws(() => parsePolicy(policyWith(patch)), { code: 'ATTESTATION_POLICY_INVALID', details: { path } }, name)
  }
  t.throws(() => parsePolicy(null), { code: 'ATTESTATION_POLICY_INVALID' })
  const p = parsePolicy(BASELINE_POLICY_DOCUMENT)
  t.same([...p.acceptedTcbStatuses], ['UpToDate'], 'default accepts UpToDate only')
  t.equal(p.allowDebug, false)
  t.equal(p.requireSeptVeDisable, true)
  t.same([...(p.allowedAdvisories as Set<string>)], [], 'no advisory accepted by default')
})

t.test('baseline accepts a genuine UpToDate quote, pinning nothing', async (t) => {
  t.same(validateQuote(vUp, parsePolicy(BASELINE_POLICY_DOCUMENT)), { accepted: true, pinned: [] })
})

t.test('pinned measurements: accepted when listed, every mismatch reported at once', async (t) => {
  const pinned = policyWith((d) => {
    d.tdx.mrTd = [hex(rUp.mrTd)]
    d.tdx.rtmr0 = [hex(rUp.rtmrs[0]), 'ab'.repeat(48)]
    d.tdx.rtmr1 = [hex(rUp.rtmrs[1])]
    d.tdx.mrConfigId = ['0x' + hex(rUp.mrConfigId).toUpperCase()]
  })
  t.same(validateQuote(vUp, parsePolicy(pinned)).pinned, ['mrTd', 'rtmr0', 'rtmr1', 'mrConfigId'])
  const wrong = policyWith((d) => {
    d.tdx.mrTd = ['11'.repeat(48)]
    d.tdx.rtmr1 = ['22'.repeat(48)]
    d.tdx.mrOwner = ['33'.repeat(48)]
    d.tdx.mrSeam = ['44'.repeat(48)]
  })
  t.same(rejectCodes(vUp, wrong), ['POLICY_MROWNER_NOT_ALLOWED', 'POLICY_MRTD_NOT_ALLOWED', 'POLICY_MR_SEAM_NOT_ALLOWED', 'POLICY_RTMR1_NOT_ALLOWED'])
})

t.test('TCB status and advisories', async (t) => {
  t.same(rejectCodes(vOut, BASELINE_POLICY_DOCUMENT), ['POLICY_ADVISORY_NOT_ALLOWED', 'POLICY_TCB_STATUS_NOT_ALLOWED'])
  const lenient = policyWith((d) => {
    d.tdx.acceptedTcbStatuses = ['UpToDate', 'OutOfDate']
    d.tdx.allowedAdvisories = ['INTEL-SA-00960', 'INTEL-SA-00982']
  })
  t.same(rejectCodes(vOut, lenient), ['POLICY_ADVISORY_NOT_ALLOWED'], 'an advisory not listed is still refused')
  lenient.tdx.allowedAdvisories = [...vOut.advisoryIds]
  t.same(rejectCodes(vOut, lenient), [])
  lenient.tdx.allowedAdvisories = 'any'
  t.same(rejectCodes(vOut, lenient), [])
})

t.test('TD attributes: debug, SEPT_VE_DISABLE', async (t) => {
  // TD_ATTRIBUTES is body offset 120 in a v4 quote (header 48 bytes).
  const at = 48 + 120
  const debug = withReport(vUp, (raw) => (raw[at] = raw[at]! | 0x01))
  t.same(rejectCodes(debug, BASELINE_POLICY_DOCUMENT), ['POLICY_DEBUG_ENABLED'])
  t.same(rejectCodes(debug, policyWith((d) => (d.tdx.allowDebug = true))), [])
  const noSept = withReport(vUp, (raw) => (raw[at + 3] = raw[at + 3]! & ~0x10))
  t.same(rejectCodes(noSept, BASELINE_POLICY_DOCUMENT), ['POLICY_SEPT_VE_DISABLE_NOT_SET'])
  t.same(rejectCodes(noSept, policyWith((d) => (d.tdx.requireSeptVeDisable = false))), [])
})

t.test('REPORTDATA, collateral age, trust root, TEE', async (t) => {
  t.same(rejectCodes(vUp, BASELINE_POLICY_DOCUMENT, { expectedReportData: rUp.reportData }), [])
  t.same(rejectCodes(vUp, BASELINE_POLICY_DOCUMENT, { expectedReportData: new Uint8Array(64) }), ['POLICY_REPORT_DATA_MISMATCH'])
  t.same(rejectCodes(vUp, policyWith((d) => (d.tdx.maxCollateralAgeSeconds = 3600))), ['POLICY_COLLATERAL_TOO_OLD'])
  t.same(rejectCodes(vUp, policyWith((d) => (d.tdx.maxCollateralAgeSeconds = 365 * 86400))), [])
  t.same(rejectCodes(vUp, policyWith((d) => (d.trustRoot = { dev: 'ab'.repeat(32) }))), ['POLICY_TRUST_ROOT_NOT_ALLOWED'])
  const sgx = tdxCase('sgx-v3-configuration-needed')
  const vSgx = verifyQuote(sgx.quote, sgx.collateral, { now: sgx.verifyAt })
  t.same(rejectCodes(vSgx, BASELINE_POLICY_DOCUMENT), ['POLICY_TEE_NOT_ALLOWED'])
})

t.test('required events from a replayed event log', async (t) => {
  // The GCE quote has no collateral among the vectors; validation needs none.
  const dir = `${VECTORS_DIR}eventlog/gce-cos113/`
  const quote = parseQuote(new Uint8Array(readFileSync(`${dir}cos-113-tdx-quote.dat`)))
  const r = quote.body.report as TdReport
  const v = { ...vUp, quote } as VerifiedQuote
  const events = verifyRtmrs(parseEventLog(new Uint8Array(readFileSync(`${dir}ccel_data.dat`))).events, r.rtmrs)
  const kernelCmdline = events.filter((e) => e.rtmr === 2).at(-1)!
  const digest = hex(kernelCmdline.digests.get(0x000c)!)
  const doc = policyWith((d) => (d.tdx.requiredEvents = [{ rtmr: 2, digest, description: 'last RTMR2 event' }]))
  t.same(rejectCodes(v, doc, { events }), [])
  t.same(rejectCodes(v, doc), ['POLICY_EVENT_LOG_MISSING'], 'pinned events need a verified event log')
  const elsewhere = policyWith((d) => (d.tdx.requiredEvents = [{ rtmr: 1, digest }]))
  t.same(rejectCodes(v, elsewhere, { events }), ['POLICY_REQUIRED_EVENT_MISSING'], 'an event counts only in its own RTMR')
})
