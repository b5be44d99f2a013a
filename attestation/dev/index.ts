/**
 * The development TEE: a dev root CA, TDX v4 quotes and matching collateral,
 * and a firmware event log (CCEL) for machines without TDX (CI, laptops).
 *
 * THIS IS NOT A TRUST ROOT FOR PRODUCTION. Everything here is signed by keys
 * that sit in the process that made them, so it proves nothing about any
 * hardware. It exists so that the real verifier runs its real code path
 * (quote signature, QE report, PCK chain, CRLs, TCB info, QE identity) on
 * evidence it can check: only the trust anchor differs. A verifier accepts
 * dev evidence only when the caller's policy pins the dev root by
 * `rootFingerprint` (lower-case hex SHA-256 of its DER); Intel's root never
 * verifies it, and there is no bypass flag anywhere.
 */
export {
  createDevRootCa,
  deriveDevKey,
  deriveDevBytes,
  encodeSgxExtension,
  DEFAULT_VALIDITY_DAYS,
  DEV_PCK_LEAF_NAME,
  DEV_PLATFORM_CA_NAME,
  DEV_ROOT_CA_NAME,
  DEV_TCB_SIGNING_NAME,
  OID_SGX_CONFIGURATION,
  OID_SGX_PLATFORM_INSTANCE_ID,
  SGX_TYPE_SCALABLE,
} from './root-ca.ts'
export type {
  DevKeyPair,
  DevPckLeaf,
  DevRootCa,
  DevRootCaOptions,
  IssueCrlOptions,
  IssuePckLeafOptions,
  PckConfiguration,
} from './root-ca.ts'
export {
  createDevQuoteSigner,
  DEV_FMSPC,
  DEV_PCE_ID,
  DEV_PCE_SVN,
  DEV_QE_ATTRIBUTES,
  DEV_QE_AUTH_DATA,
  DEV_QE_ISV_PROD_ID,
  DEV_QE_ISV_SVN,
  DEV_QE_MISC_SELECT,
  DEV_QE_MRENCLAVE,
  DEV_QE_MRSIGNER,
  DEV_SGX_TCB_COMPONENTS,
  DEV_TD_ATTRIBUTES,
  DEV_TEE_TCB_SVN,
  DEV_XFAM,
  TD_ATTRIBUTES_DEBUG,
  TD_ATTRIBUTES_SEPT_VE_DISABLE,
} from './quote-signer.ts'
export type { DevPlatform, DevQuoteInput, DevQuoteSigner, DevQuoteSignerOptions } from './quote-signer.ts'
export { devTcbLevel, signDevCollateral } from './collateral-signer.ts'
// The dev TD's firmware event log (ccel.ts): a CCEL table and TCG2 log of a
// plausible boot, whose replay is the RTMR0-2 of dev quotes.
export {
  createDevCcel,
  DEV_CCEL_LOG_AREA_LENGTH,
  DEV_FIRMWARE,
  DEV_INITRD,
  DEV_KERNEL,
  DEV_KERNEL_CMDLINE,
} from './ccel.ts'
export type { DevCcel, DevCcelOptions } from './ccel.ts'
export type {
  DevCollateralPlatform,
  IsvTcbLevelJson,
  QeIdentityFields,
  SignDevCollateralOptions,
  TcbComponentJson,
  TcbLevelJson,
  TcbStatus,
  TdxModuleIdentityJson,
  TdxModuleJson,
} from './collateral-signer.ts'
// The development GPU (gpu-signer.ts): an NVIDIA-shaped device PKI, SPDM
// reports, RIMs and OCSP under a dev GPU root. NOT FOR PRODUCTION either:
// the NVIDIA verifier accepts it only when given that root explicitly, and a
// GPU policy only when it names the root's fingerprint.
export {
  createDevGpu,
  createDevGpuRootCa,
  deriveDevGpuKey,
  devGoldenRims,
  devGpuMeasurements,
  signDevOcsp,
  signDevRim,
  DEFAULT_GPU_VALIDITY_DAYS,
  DEV_DRIVER_RIM_INDICES,
  DEV_GPU_BROM_NAME,
  DEV_GPU_CHIP_SKU,
  DEV_GPU_DRIVER_VERSION,
  DEV_GPU_FMC_LEAF_NAME,
  DEV_GPU_IDENTITY_CA_NAME,
  DEV_GPU_MEASUREMENT_COUNT,
  DEV_GPU_PRODUCT,
  DEV_GPU_PROJECT,
  DEV_GPU_PROJECT_SKU,
  DEV_GPU_PROVISIONER_CA_NAME,
  DEV_GPU_ROOT_CA_NAME,
  DEV_GPU_VBIOS_VERSION,
  DEV_RIM_CA_NAME,
  DEV_RIM_L3_CA_NAME,
  DEV_RIM_SIGNER_NAME,
  DEV_VBIOS_RIM_INDICES,
} from './gpu-signer.ts'
export type {
  DevGoldenRims,
  DevGpu,
  DevGpuKeyPair,
  DevGpuOptions,
  DevGpuRootCa,
  DevGpuRootCaOptions,
  DevRimMeasurement,
  SignDevOcspOptions,
  SignDevRimOptions,
} from './gpu-signer.ts'
