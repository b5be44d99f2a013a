/**
 * NVIDIA GPU attestation: `abi/` (SPDM report and DICE certificate
 * extension bytes → structures), `verify/` (is the report genuine: chain to
 * the pinned device root, signature, FWID, nonce; RIMs; OCSP; the whole
 * multi-GPU bundle), `validate/` (policy) and the pinned roots.
 */
export {
  parseGpuReport,
  parseGpuReportHex,
  formatVbiosVersion,
  SPDM_VERSION_11,
  SPDM_GET_MEASUREMENTS,
  SPDM_MEASUREMENTS,
  SPDM_NONCE_SIZE,
  GPU_REPORT_SIGNATURE_SIZE,
  DMTF_MEASUREMENT_TYPE,
  OPAQUE_FIELD,
  NVDEC_STATUS_ENABLED,
  NVDEC_STATUS_DISABLED,
  FEATURE_FLAG,
} from './abi/spdm.ts'
export type {
  GpuReport,
  GpuOpaqueData,
  MeasurementBlock,
  MeasurementRepresentation,
  MeasurementsRequest,
  MeasurementsResponse,
  OpaqueField,
} from './abi/spdm.ts'
export {
  parseDiceExtension,
  diceIdentityOf,
  certificateFwid,
  OID_TCG_DICE_TCB_INFO,
  OID_NVIDIA_DICE_TCB_INFO_ALT,
  DICE_FWID_EXTENSION_OIDS,
} from './abi/dice.ts'
export type { DiceIdentity, DiceTcbInfo, Fwid, RiotCompositeIdentity } from './abi/dice.ts'
export { verifyGpuReport } from './verify/gpu-report.ts'
export type { VerifiedGpuReport, VerifyGpuReportOptions } from './verify/gpu-report.ts'
export {
  NVIDIA_DEVICE_IDENTITY_CA,
  NVIDIA_DEVICE_IDENTITY_CA_FINGERPRINT,
  NVIDIA_RIM_ROOT_CA,
  NVIDIA_RIM_ROOT_CA_FINGERPRINT,
} from '../roots/nvidia.ts'
export * from './rim/index.ts'
export { gpuEvidenceFromJson, gpuEvidenceToJson, parseGpuEvidence, SUPPORTED_GPU_ARCHES } from './evidence.ts'
export type { GpuArch, GpuEvidenceBundle, GpuEvidenceItem, ParsedGpuEvidence } from './evidence.ts'
export { verifyGpuEvidence } from './verify/verify-gpu-evidence.ts'
export type { CertificateStatus, OcspStatus, VerifiedGpu, VerifiedGpuEvidence, VerifyGpuEvidenceOptions } from './verify/verify-gpu-evidence.ts'
export { validateGpuEvidence } from './validate/validate-gpu.ts'
