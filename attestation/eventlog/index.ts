/**
 * TDX event log: parse the CCEL ACPI table and its TCG2 crypto-agile log
 * (bytes only), replay the log into RTMRs and compare them with a verified
 * quote's. Policies pin individual events only from what `verifyRtmrs` returns.
 */

export { parseCcelTable, CCEL_SIGNATURE, CCEL_TABLE_LENGTH, ACPI_HEADER_LENGTH, CC_TYPE_SEV, CC_TYPE_TDX } from './ccel.ts'
export type { CcelTable } from './ccel.ts'
export {
  parseEventLog,
  eventTypeName,
  EVENT_TYPE_NAMES,
  EV_NO_ACTION,
  CC_MR_INDEX_MRTD,
  CC_MR_INDEX_RTMR0,
  CC_MR_INDEX_MAX,
  TPM_ALG_SHA1,
  TPM_ALG_SHA256,
  TPM_ALG_SHA384,
  TPM_ALG_SHA512,
  TPM_ALG_SM3_256,
  TPM_ALG_SHA3_256,
  TPM_ALG_SHA3_384,
  TPM_ALG_SHA3_512,
} from './event-log.ts'
export type { CcEvent, CcEventLog, DigestSize, RtmrIndex, SpecIdEvent } from './event-log.ts'
export { replayRtmrs, verifyRtmrs, RTMR_COUNT, RTMR_LENGTH } from './replay.ts'
export type { VerifyRtmrsOptions } from './replay.ts'
