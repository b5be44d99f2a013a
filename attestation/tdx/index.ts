/**
 * Intel DCAP quotes: `abi/` (bytes → structures), `verify/` (is it genuine,
 * and at which TCB level), `validate/` (is it acceptable to this policy).
 */
export { parseQuote, parseEnclaveReport, parseTdReport } from './abi/quote.ts'
export type { EnclaveReport, QeCertification, Quote, QuoteBody, QuoteHeader, TdReport } from './abi/quote.ts'
export { parseCollateral, parseQeIdentity, parseTcbInfo, TCB_STATUSES } from './abi/collateral.ts'
export type { Collateral, IsvTcbLevel, QeIdentity, Signed, TcbInfo, TcbLevel, TcbStatus, TdxModuleIdentity } from './abi/collateral.ts'
export { parsePckExtension, OID_SGX_EXTENSION } from './abi/pck-extension.ts'
export type { PckExtension } from './abi/pck-extension.ts'
export { collateralRequestForQuote } from './abi/collateral-request.ts'
export { verifyQuote } from './verify/verify-quote.ts'
export type { VerifiedQuote, VerifyQuoteOptions } from './verify/verify-quote.ts'
export { verifyCollateral } from './verify/collateral.ts'
export type { VerifiedCollateral } from './verify/collateral.ts'
export { convergeStatus } from './verify/tcb-status.ts'
export type { StatusWithAdvisories } from './verify/tcb-status.ts'
export { validateQuote, MISMATCH_CODES, TD_ATTRIBUTE_DEBUG_BIT, TD_ATTRIBUTE_SEPT_VE_DISABLE_BIT } from './validate/validate-quote.ts'
export type { ValidateContext, ValidationReport } from './validate/validate-quote.ts'
