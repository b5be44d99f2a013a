/**
 * The registry's error registry: every custom error of the contracts
 * (contracts/src/lib/Errors.sol) mapped to a stable REGISTRY_* code, plus
 * the client's own failures (RPC, configuration). Tests and callers branch
 * on codes, never on messages; `registryErrorFrom` turns whatever viem threw
 * (a revert carrying a custom error selector, a transport error) into one
 * RegistryError.
 */
import { BaseError as ViemBaseError, ContractFunctionRevertedError, decodeErrorResult, type Hex } from 'viem'
import { BaseError, type BaseErrorOptions } from '../../attestation/errors.ts'
import { attestationRegistryAbi } from '../artifacts/attestation-registry.ts'
import { certificateParserAbi } from '../artifacts/certificate-parser.ts'
import { collateralJsonParserAbi } from '../artifacts/collateral-json-parser.ts'
import { pcsCollateralAbi } from '../artifacts/pcs-collateral.ts'

/** Solidity custom error name → REGISTRY_* code. */
export const REGISTRY_CONTRACT_ERRORS = {
  DerMalformed: 'REGISTRY_DER_MALFORMED',
  UnsupportedAlgorithm: 'REGISTRY_UNSUPPORTED_ALGORITHM',
  SgxExtensionInvalid: 'REGISTRY_SGX_EXTENSION_INVALID',
  CriticalExtensionUnknown: 'REGISTRY_CRITICAL_EXTENSION_UNKNOWN',
  JsonMalformed: 'REGISTRY_COLLATERAL_MALFORMED',
  DateMalformed: 'REGISTRY_DATE_MALFORMED',
  QuoteMalformed: 'REGISTRY_QUOTE_MALFORMED',
  QuoteUnsupported: 'REGISTRY_QUOTE_UNSUPPORTED',
  CollateralUnsupported: 'REGISTRY_COLLATERAL_UNSUPPORTED',
  IssuerUnknown: 'REGISTRY_ISSUER_UNKNOWN',
  CertChainInvalid: 'REGISTRY_CERT_CHAIN_INVALID',
  CertExpired: 'REGISTRY_CERT_EXPIRED',
  CertRevoked: 'REGISTRY_CERT_REVOKED',
  CrlSignatureInvalid: 'REGISTRY_CRL_SIGNATURE_INVALID',
  CrlMissing: 'REGISTRY_CRL_MISSING',
  CollateralExpired: 'REGISTRY_COLLATERAL_EXPIRED',
  CollateralRollback: 'REGISTRY_COLLATERAL_ROLLBACK',
  CollateralSignatureInvalid: 'REGISTRY_COLLATERAL_SIGNATURE_INVALID',
  TcbInfoMissing: 'REGISTRY_TCB_INFO_MISSING',
  QeIdentityMissing: 'REGISTRY_QE_IDENTITY_MISSING',
  TcbLevelNotFound: 'REGISTRY_TCB_LEVEL_NOT_FOUND',
  TdxModuleMismatch: 'REGISTRY_TDX_MODULE_MISMATCH',
  QeIdentityMismatch: 'REGISTRY_QE_IDENTITY_MISMATCH',
  TcbRevoked: 'REGISTRY_TCB_REVOKED',
  PckCertUnknown: 'REGISTRY_PCK_CERT_UNKNOWN',
  QeReportSignatureInvalid: 'REGISTRY_QE_REPORT_SIGNATURE_INVALID',
  QeReportDataMismatch: 'REGISTRY_QE_REPORT_DATA_MISMATCH',
  QuoteSignatureInvalid: 'REGISTRY_QUOTE_SIGNATURE_INVALID',
  BindingMismatch: 'REGISTRY_BINDING_MISMATCH',
  StaleBlockHash: 'REGISTRY_STALE_BLOCK_HASH',
  WorkloadNotAllowed: 'REGISTRY_WORKLOAD_NOT_ALLOWED',
  DebugTd: 'REGISTRY_DEBUG_TD',
  TcbStatusNotAccepted: 'REGISTRY_TCB_STATUS_NOT_ACCEPTED',
  EpochRegression: 'REGISTRY_EPOCH_REGRESSION',
  EpochConflict: 'REGISTRY_EPOCH_CONFLICT',
  SignerInUse: 'REGISTRY_SIGNER_IN_USE',
  EnclaveNotRegistered: 'REGISTRY_ENCLAVE_NOT_REGISTERED',
  EnclaveExpired: 'REGISTRY_ENCLAVE_EXPIRED',
  SignerNotRegistered: 'REGISTRY_SIGNER_NOT_REGISTERED',
  SignatureMalformed: 'REGISTRY_SIGNATURE_MALFORMED',
  StillValid: 'REGISTRY_STILL_VALID',
  CheckpointNotNewer: 'REGISTRY_CHECKPOINT_NOT_NEWER',
  NotOwner: 'REGISTRY_NOT_OWNER',
  NotPendingOwner: 'REGISTRY_NOT_PENDING_OWNER',
  InvalidParameter: 'REGISTRY_INVALID_PARAMETER',
  RootNotIntel: 'REGISTRY_ROOT_NOT_INTEL',
} as const

export type RegistryContractErrorName = keyof typeof REGISTRY_CONTRACT_ERRORS

/** Every REGISTRY_* code with what it means. */
export const REGISTRY_ERROR_CODES = {
  REGISTRY_DER_MALFORMED: 'a certificate or CRL is not well-formed DER',
  REGISTRY_UNSUPPORTED_ALGORITHM: 'a certificate or CRL is not ECDSA P-256 with SHA-256',
  REGISTRY_SGX_EXTENSION_INVALID: 'the PCK certificate SGX extension is missing or malformed',
  REGISTRY_CRITICAL_EXTENSION_UNKNOWN: 'a certificate has a critical extension the registry does not process',
  REGISTRY_COLLATERAL_MALFORMED: 'TCB info or QE identity JSON is malformed or lacks a field',
  REGISTRY_DATE_MALFORMED: 'a date is not in the accepted form',
  REGISTRY_QUOTE_MALFORMED: 'the quote is truncated',
  REGISTRY_QUOTE_UNSUPPORTED: 'not a TDX v4/v5 ECDSA P-256 quote from an Intel QE',
  REGISTRY_COLLATERAL_UNSUPPORTED: 'collateral of a kind the registry does not handle (SGX, unsorted levels, not TD_QE)',
  REGISTRY_ISSUER_UNKNOWN: 'the issuer of a certificate or CRL is not a stored CA (or the root where required)',
  REGISTRY_CERT_CHAIN_INVALID: 'a certificate is not signed by its issuer',
  REGISTRY_CERT_EXPIRED: 'a certificate is outside its validity now',
  REGISTRY_CERT_REVOKED: 'the PCK certificate or its CA is revoked',
  REGISTRY_CRL_SIGNATURE_INVALID: 'a CRL is not signed by its issuer',
  REGISTRY_CRL_MISSING: 'the CRL a certificate needs was never submitted',
  REGISTRY_COLLATERAL_EXPIRED: 'a CRL, TCB info or QE identity is not valid now',
  REGISTRY_COLLATERAL_ROLLBACK: 'collateral older than what is stored',
  REGISTRY_COLLATERAL_SIGNATURE_INVALID: 'TCB info or QE identity signature does not verify',
  REGISTRY_TCB_INFO_MISSING: 'no TCB info for this FMSPC / PCE-ID',
  REGISTRY_QE_IDENTITY_MISSING: 'no QE identity stored',
  REGISTRY_TCB_LEVEL_NOT_FOUND: 'the platform, TDX module or QE meets no published TCB level',
  REGISTRY_TDX_MODULE_MISMATCH: 'the TDX module does not match its identity',
  REGISTRY_QE_IDENTITY_MISMATCH: 'the QE does not match its identity',
  REGISTRY_TCB_REVOKED: 'the TCB is Revoked',
  REGISTRY_PCK_CERT_UNKNOWN: 'the PCK certificate id was never submitted',
  REGISTRY_QE_REPORT_SIGNATURE_INVALID: 'the QE report is not signed by the PCK key',
  REGISTRY_QE_REPORT_DATA_MISMATCH: 'the QE report does not vouch for the attestation key',
  REGISTRY_QUOTE_SIGNATURE_INVALID: 'the quote signature does not verify',
  REGISTRY_BINDING_MISMATCH: 'REPORTDATA does not bind the enclave data, chain and registry',
  REGISTRY_STALE_BLOCK_HASH: 'the freshness block hash is not a recent block',
  REGISTRY_WORKLOAD_NOT_ALLOWED: 'the workload is not allow-listed for the model',
  REGISTRY_DEBUG_TD: 'the TD is a debug TD',
  REGISTRY_TCB_STATUS_NOT_ACCEPTED: 'the TCB status is worse than the registry minimum',
  REGISTRY_EPOCH_REGRESSION: 'the epoch is older than the live record',
  REGISTRY_EPOCH_CONFLICT: "a registration at the record's epoch differs from it (keys, workload, model or URL)",
  REGISTRY_SIGNER_IN_USE: 'the signing address belongs to another live enclave',
  REGISTRY_ENCLAVE_NOT_REGISTERED: 'no record for this enclave',
  REGISTRY_ENCLAVE_EXPIRED: 'the record has expired',
  REGISTRY_SIGNER_NOT_REGISTERED: 'the signature is not by a live enclave signer',
  REGISTRY_SIGNATURE_MALFORMED: 'the signature is malformed',
  REGISTRY_STILL_VALID: 'the record still verifies; nothing to invalidate',
  REGISTRY_CHECKPOINT_NOT_NEWER: 'the checkpoint does not grow the anchored log',
  REGISTRY_NOT_OWNER: 'only the owner may do this',
  REGISTRY_NOT_PENDING_OWNER: 'only the pending owner may accept ownership',
  REGISTRY_INVALID_PARAMETER: 'a parameter is out of range',
  REGISTRY_ROOT_NOT_INTEL: 'a production deployment was given a root other than Intel',
  // client side
  REGISTRY_REVERTED: 'the transaction reverted without a known custom error',
  REGISTRY_RPC_FAILED: 'the RPC endpoint failed or could not be reached',
  REGISTRY_EVENT_UNKNOWN: 'an event carries a value this client does not know (a newer contract)',
  REGISTRY_CONFIG_INVALID: 'the client or deployment configuration is invalid',
  REGISTRY_PRODUCTION_DEV_ROOT: 'a production deployment or client was pointed at a development root',
} as const

export type RegistryErrorCode = keyof typeof REGISTRY_ERROR_CODES

export class RegistryError extends BaseError<RegistryErrorCode> {
  override name = 'RegistryError'
  constructor(code: RegistryErrorCode, options: BaseErrorOptions = {}) {
    super(code, REGISTRY_ERROR_CODES[code], options)
  }
}

/** Every custom error the contracts can revert with (errors bubble up from the collateral store and its parsers). */
export const REGISTRY_ERRORS_ABI = [
  ...new Map(
    [...attestationRegistryAbi, ...pcsCollateralAbi, ...collateralJsonParserAbi, ...certificateParserAbi]
      .filter((x) => x.type === 'error')
      .map((x) => [(x as { name: string }).name, x] as const),
  ).values(),
] as const

/** The code of a custom error name, or REGISTRY_REVERTED for an unknown one. */
export function registryCodeOf(errorName: string): RegistryErrorCode {
  return (REGISTRY_CONTRACT_ERRORS as Record<string, RegistryErrorCode>)[errorName] ?? 'REGISTRY_REVERTED'
}

function revertData(e: unknown): Hex | undefined {
  if (!(e instanceof ViemBaseError)) return undefined
  const found = e.walk((x) => x instanceof ContractFunctionRevertedError || typeof (x as { data?: unknown }).data === 'string')
  if (found instanceof ContractFunctionRevertedError) return found.raw
  const data = (found as { data?: unknown } | null)?.data
  return typeof data === 'string' && data.startsWith('0x') ? (data as Hex) : undefined
}

/**
 * Turn anything thrown by a registry call into a RegistryError: a custom
 * error becomes its code (with the decoded arguments in `details`), other
 * reverts REGISTRY_REVERTED, anything else REGISTRY_RPC_FAILED.
 */
export function registryErrorFrom(e: unknown): RegistryError {
  if (e instanceof RegistryError) return e
  const data = revertData(e)
  if (data && data.length >= 10) {
    try {
      const decoded = decodeErrorResult({ abi: REGISTRY_ERRORS_ABI, data })
      return new RegistryError(registryCodeOf(decoded.errorName), {
        cause: e,
        details: { error: decoded.errorName, args: (decoded.args ?? []).map((a) => (typeof a === 'bigint' ? a.toString() : a)) },
      })
    } catch {
      return new RegistryError('REGISTRY_REVERTED', { cause: e, details: { data } })
    }
  }
  if (e instanceof ViemBaseError && e.walk((x) => x instanceof ContractFunctionRevertedError)) {
    return new RegistryError('REGISTRY_REVERTED', { cause: e })
  }
  return new RegistryError('REGISTRY_RPC_FAILED', { cause: e })
}
