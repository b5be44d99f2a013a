/**
 * Full offline DCAP verification of a quote (TDX v4/v5, SGX v3) with its
 * collateral. Verification only: it establishes that the evidence is genuine
 * and reports the TCB status; whether that status, the measurements or the
 * collateral age are acceptable is `validate/` (policy).
 *
 * Fixed order, stopping at the first failure:
 *  1. quote structure (parse) and QE vendor;
 *  2. collateral: root CA CRL, TCB info, QE identity, PCK CRL (verify/collateral.ts);
 *  3. PCK chain to the pinned root, with revocation;
 *  4. QE report signature and QE REPORTDATA binding; attestation key signature;
 *  5. QE identity, platform TCB level, TDX module identity; convergence;
 *  6. Revoked is always a failure.
 */
import { ConfigError, VerificationError } from '../../errors.ts'
import { verifyChain } from '../../pki/chain.ts'
import { parseCertificate, type Certificate } from '../../pki/x509.ts'
import { INTEL_SGX_ROOT_CA, type TrustedRoot } from '../../roots/trust-root.ts'
import type { QuoteCollateralV3 } from '../../pcs/types.ts'
import { parseCollateral, type Collateral, type TcbStatus } from '../abi/collateral.ts'
import { INTEL_QE_VENDOR_ID } from '../abi/constants.ts'
import { parsePckExtension, type PckExtension } from '../abi/pck-extension.ts'
import { parseQuote, type Quote, type TdReport } from '../abi/quote.ts'
import { verifyCollateral } from './collateral.ts'
import { verifyQeReport, verifyQuoteSignature } from './quote-signature.ts'
import {
  convergeStatus,
  matchPlatformTcb,
  matchQeIdentity,
  matchTdxModule,
  mergeAdvisories,
  type StatusWithAdvisories,
} from './tcb-status.ts'
import { hex } from '../../bytes/hex.ts'

export interface VerifyQuoteOptions {
  /** The instant of verification. Required: no hidden clock. */
  readonly now: Date
  /** The pinned root. Default: Intel SGX Root CA. The dev root must be passed explicitly. */
  readonly trustedRoot?: TrustedRoot
}

/** What a genuine quote is, as established by verification. */
export interface VerifiedQuote {
  readonly quote: Quote
  readonly tee: 'tdx' | 'sgx'
  /** Combined status: platform converged with the TDX module and the QE. */
  readonly tcbStatus: TcbStatus
  readonly advisoryIds: readonly string[]
  readonly platform: StatusWithAdvisories
  readonly tdxModule: (StatusWithAdvisories & { readonly id: string }) | null
  readonly qe: StatusWithAdvisories
  /** Lower-case hex. */
  readonly fmspc: string
  readonly pceId: string
  readonly pck: PckExtension & { readonly serial: string }
  readonly root: { readonly kind: TrustedRoot['kind']; readonly fingerprint: string }
  readonly collateral: {
    readonly issuedAt: Date
    readonly expiresAt: Date
    readonly tcbEvaluationDataNumber: number
  }
  readonly verifiedAt: Date
}

/**
 * Verify `quote` (bytes or parsed) with `collateral` (bundle or parsed) at
 * `options.now`. Throws `ParseError` for malformed input and
 * `VerificationError` for evidence that is not genuine.
 */
export function verifyQuote(
  quote: Uint8Array | Quote,
  collateral: QuoteCollateralV3 | Collateral,
  options: VerifyQuoteOptions,
): VerifiedQuote {
  const now = options.now.getTime()
  if (!Number.isFinite(now)) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'options.now must be a valid Date')
  const root = options.trustedRoot ?? INTEL_SGX_ROOT_CA
  const q = quote instanceof Uint8Array ? parseQuote(quote) : quote
  const c = 'tcbInfo' in collateral ? collateral : parseCollateral(collateral)

  if (hex(q.header.qeVendorId) !== INTEL_QE_VENDOR_ID) {
    throw new VerificationError('ATTESTATION_QE_VENDOR_UNKNOWN', 'quote was not produced by an Intel QE', {
      details: { qeVendorId: hex(q.header.qeVendorId) },
    })
  }

  const vc = verifyCollateral(c, root, now)

  const pckChain: readonly Certificate[] = c.pckChain ?? q.certification.pckChain.map(parseCertificate)
  const [pckLeaf] = verifyChain(pckChain, { now, root: root.certificate, crls: vc.crls, requireRevocation: true, label: 'pck' })
  const pck = parsePckExtension(pckLeaf!)

  verifyQeReport(q, pckLeaf!)
  verifyQuoteSignature(q)

  const tdx = q.body.kind !== 'sgx'
  const qe = matchQeIdentity(vc.qeIdentity, q.certification.qeReport, tdx)
  const platform = matchPlatformTcb(vc.tcbInfo, pck, q)
  const tdxModule = tdx ? matchTdxModule(vc.tcbInfo, q.body.report as TdReport) : null

  let status = platform.status
  if (tdxModule) status = convergeStatus(status, tdxModule.status)
  status = convergeStatus(status, qe.status)
  if (status === 'Revoked') {
    throw new VerificationError('ATTESTATION_TCB_REVOKED', 'the TCB of this platform is revoked', {
      details: { platform: platform.status, tdxModule: tdxModule?.status, qe: qe.status },
    })
  }

  return {
    quote: q,
    tee: tdx ? 'tdx' : 'sgx',
    tcbStatus: status,
    advisoryIds: mergeAdvisories(platform.advisoryIds, tdxModule?.advisoryIds, qe.advisoryIds),
    platform,
    tdxModule,
    qe,
    fmspc: hex(pck.fmspc),
    pceId: hex(pck.pceId),
    pck: { ...pck, serial: pckLeaf!.serial },
    root: { kind: root.kind, fingerprint: root.fingerprint },
    collateral: {
      issuedAt: new Date(vc.issuedAt),
      expiresAt: new Date(vc.expiresAt),
      tcbEvaluationDataNumber: Math.min(vc.tcbInfo.tcbEvaluationDataNumber, vc.qeIdentity.tcbEvaluationDataNumber),
    },
    verifiedAt: options.now,
  }
}
