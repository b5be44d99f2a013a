/**
 * Validate a verified quote against a policy. This module checks no
 * signature: its input is the output of `verify/verify-quote.ts`, and its
 * only question is whether genuine evidence is acceptable to this caller.
 *
 * Every check runs and every mismatch is reported at once (a `PolicyError`
 * carrying the list), so an operator fixes a policy in one round.
 */
import { PolicyError, type PolicyMismatch } from '../../errors.ts'
import { INTEL_SGX_ROOT_CA_FINGERPRINT } from '../../roots/trust-root.ts'
import type { AllowList, MeasurementField, QuotePolicy } from '../../policy/policy.ts'
import type { TdReport } from '../abi/quote.ts'
import type { VerifiedQuote } from '../verify/verify-quote.ts'
import { hex } from '../../bytes/hex.ts'

/** TD attribute bits [Intel TDX Module ABI spec, TDATTRIBUTES]: byte 0 bit 0 is DEBUG (TUD). */
export const TD_ATTRIBUTE_DEBUG_BIT = 0
/** SEPT_VE_DISABLE is bit 28: without it a host can inject #VE on EPT faults. */
export const TD_ATTRIBUTE_SEPT_VE_DISABLE_BIT = 28

/** Evidence beside the quote that some checks need. */
export interface ValidateContext {
  /** The REPORTDATA the caller computed (binding.ts); when given, it must match exactly. */
  readonly expectedReportData?: Uint8Array
  /** Events whose replay was already checked against the quote's RTMRs (eventlog `verifyRtmrs`). */
  readonly events?: readonly { readonly rtmr: number | null; readonly digests: ReadonlyMap<number, Uint8Array> }[]
}

export interface ValidationReport {
  readonly accepted: true
  /** Which measurement fields were pinned by the policy (the rest were "any"). */
  readonly pinned: readonly string[]
}

/** Stable mismatch code per measurement field. */
export const MISMATCH_CODES: Readonly<Record<MeasurementField, string>> = {
  mrTd: 'POLICY_MRTD_NOT_ALLOWED',
  rtmr0: 'POLICY_RTMR0_NOT_ALLOWED',
  rtmr1: 'POLICY_RTMR1_NOT_ALLOWED',
  rtmr2: 'POLICY_RTMR2_NOT_ALLOWED',
  rtmr3: 'POLICY_RTMR3_NOT_ALLOWED',
  mrConfigId: 'POLICY_MRCONFIGID_NOT_ALLOWED',
  mrOwner: 'POLICY_MROWNER_NOT_ALLOWED',
  mrOwnerConfig: 'POLICY_MROWNERCONFIG_NOT_ALLOWED',
}

/** TPM_ALG_SHA384 (TCG Algorithm Registry). */
const TPM_ALG_SHA384 = 0x000c

function bit(bytes: Uint8Array, n: number): boolean {
  return ((bytes[n >> 3]! >> (n & 7)) & 1) === 1
}

function listed(list: AllowList, value: string): boolean {
  return list === 'any' || list.has(value)
}

/** Throws `PolicyError` with every mismatch; returns a short report when accepted. */
export function validateQuote(v: VerifiedQuote, policy: QuotePolicy, ctx: ValidateContext = {}): ValidationReport {
  const m: PolicyMismatch[] = []
  const add = (code: string, field: string, expected: unknown, actual: unknown) => m.push({ code, field, expected, actual })

  const wantRoot = policy.trustRoot.kind === 'intel' ? INTEL_SGX_ROOT_CA_FINGERPRINT : policy.trustRoot.fingerprint
  if (v.root.fingerprint !== wantRoot || v.root.kind !== policy.trustRoot.kind) {
    add('POLICY_TRUST_ROOT_NOT_ALLOWED', 'trustRoot', wantRoot, v.root.fingerprint)
  }
  if (v.tee !== 'tdx') {
    add('POLICY_TEE_NOT_ALLOWED', 'tee', 'tdx', v.tee)
    throw new PolicyError(m)
  }
  if (!policy.acceptedTcbStatuses.has(v.tcbStatus)) {
    add('POLICY_TCB_STATUS_NOT_ALLOWED', 'tdx.acceptedTcbStatuses', [...policy.acceptedTcbStatuses], v.tcbStatus)
  }
  const adv = policy.allowedAdvisories
  const unexpected = adv === 'any' ? [] : v.advisoryIds.filter((a) => !adv.has(a))
  if (unexpected.length > 0) add('POLICY_ADVISORY_NOT_ALLOWED', 'tdx.allowedAdvisories', adv === 'any' ? 'any' : [...adv], unexpected)

  const r = v.quote.body.report as TdReport
  if (!policy.allowDebug && bit(r.tdAttributes, TD_ATTRIBUTE_DEBUG_BIT)) add('POLICY_DEBUG_ENABLED', 'tdx.allowDebug', false, true)
  if (policy.requireSeptVeDisable && !bit(r.tdAttributes, TD_ATTRIBUTE_SEPT_VE_DISABLE_BIT)) {
    add('POLICY_SEPT_VE_DISABLE_NOT_SET', 'tdx.requireSeptVeDisable', true, false)
  }
  if (!policy.allowServiceTd && r.mrServiceTd && r.mrServiceTd.some((b) => b !== 0)) {
    add('POLICY_SERVICE_TD_NOT_ALLOWED', 'tdx.allowServiceTd', false, hex(r.mrServiceTd))
  }

  const values: Record<MeasurementField, Uint8Array> = {
    mrTd: r.mrTd,
    rtmr0: r.rtmrs[0],
    rtmr1: r.rtmrs[1],
    rtmr2: r.rtmrs[2],
    rtmr3: r.rtmrs[3],
    mrConfigId: r.mrConfigId,
    mrOwner: r.mrOwner,
    mrOwnerConfig: r.mrOwnerConfig,
  }
  const pinned: string[] = []
  for (const [field, value] of Object.entries(values) as [MeasurementField, Uint8Array][]) {
    const list = policy.measurements[field]
    if (list !== 'any') pinned.push(field)
    if (!listed(list, hex(value))) add(MISMATCH_CODES[field], `tdx.${field}`, [...(list as Set<string>)], hex(value))
  }
  if (!listed(policy.mrSeam, hex(r.mrSeam))) add('POLICY_MR_SEAM_NOT_ALLOWED', 'tdx.mrSeam', [...(policy.mrSeam as Set<string>)], hex(r.mrSeam))

  if (policy.maxCollateralAgeMs !== null) {
    const age = v.verifiedAt.getTime() - v.collateral.issuedAt.getTime()
    if (age > policy.maxCollateralAgeMs) {
      add('POLICY_COLLATERAL_TOO_OLD', 'tdx.maxCollateralAgeSeconds', policy.maxCollateralAgeMs / 1000, Math.floor(age / 1000))
    }
  }

  if (ctx.expectedReportData && hex(ctx.expectedReportData) !== hex(r.reportData)) {
    add('POLICY_REPORT_DATA_MISMATCH', 'reportData', hex(ctx.expectedReportData), hex(r.reportData))
  }

  if (policy.requiredEvents.length > 0) {
    if (!ctx.events) add('POLICY_EVENT_LOG_MISSING', 'tdx.requiredEvents', 'a verified event log', null)
    else {
      for (const want of policy.requiredEvents) {
        const found = ctx.events.some((e) => e.rtmr === want.rtmr && e.digests.get(TPM_ALG_SHA384) && hex(e.digests.get(TPM_ALG_SHA384)!) === want.digest)
        if (!found) add('POLICY_REQUIRED_EVENT_MISSING', 'tdx.requiredEvents', want, null)
      }
    }
  }

  if (m.length > 0) throw new PolicyError(m)
  return { accepted: true, pinned }
}
