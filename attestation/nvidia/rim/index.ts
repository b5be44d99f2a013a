/**
 * NVIDIA Reference Integrity Manifests: parse (`parse.ts`, structure only),
 * verify (`verify.ts`, XML signature and chain to the pinned RIM root) and
 * compare (`compare.ts`, golden values against a GPU's SPDM blocks).
 */
export {
  MAX_RIM_INDEX,
  MAX_RIM_TEXT_LENGTH,
  RIM_DIGEST_SIZE,
  SHA384_HASH_NAMESPACE,
  SWID_NAMESPACE,
  TCG_RIM_NAMESPACE,
  XMLDSIG_NAMESPACE,
  parseRim,
  type ParsedRim,
  type RimContent,
  type RimMeasurement,
  type RimReference,
  type RimSignature,
} from './parse.ts'
export {
  C14N11_ALGORITHM,
  ECDSA_P384_SIGNATURE_LENGTH,
  ECDSA_SHA384_ALGORITHM,
  ENVELOPED_SIGNATURE_TRANSFORM,
  SHA384_DIGEST_ALGORITHM,
  isVerifiedRim,
  verifyRim,
  type VerifiedRim,
  type VerifyRimOptions,
} from './verify.ts'
export {
  NVDEC0_STATUS_DISABLED,
  NVDEC0_STATUS_ENABLED,
  NVDEC_EXEMPT_RIM_INDEX,
  assertMeasurementsMatch,
  compareMeasurements,
  type CompareMeasurementsParameters,
  type CompareMeasurementsReturnType,
  type MeasurementMismatch,
  type RimRole,
} from './compare.ts'
