/**
 * Byte layout of Intel DCAP quotes: named offsets and sizes only.
 *
 * Sources:
 * - [TDX-QL] Intel TDX DCAP Quoting Library API, Appendix A "Quote Format"
 *   (version 4: A.3; version 5 / TDX 1.5: A.3.1-A.3.5).
 * - [SGX-QL] Intel SGX ECDSA Quote Library API, Appendix A.4 "Quote Format" (version 3).
 * All integers in a quote are little-endian.
 */

/** Quote header (48 bytes) [TDX-QL A.3.1 Table 2]. */
export const HEADER = {
  SIZE: 48,
  VERSION: 0, // u16
  ATTESTATION_KEY_TYPE: 2, // u16
  TEE_TYPE: 4, // u32
  QE_SVN: 8, // u16 (v3; reserved in v4/v5)
  PCE_SVN: 10, // u16 (v3; reserved in v4/v5)
  QE_VENDOR_ID: 12, // 16 bytes
  USER_DATA: 28, // 20 bytes
} as const

/** Attestation key type 2: ECDSA-256-with-P-256 [TDX-QL A.3.1]. */
export const ATTESTATION_KEY_TYPE_ECDSA_P256 = 2
/** TEE types [TDX-QL A.3.1]: 0x00 SGX, 0x81 TDX. */
export const TEE_TYPE_SGX = 0x00
export const TEE_TYPE_TDX = 0x81
/** Intel's QE vendor id, 939A7233-F79C-4CA9-940A-0DB3957F0607 [TDX-QL A.3.1]. */
export const INTEL_QE_VENDOR_ID = '939a7233f79c4ca9940a0db3957f0607'

/** TD report body, TDX 1.0 (584 bytes) [TDX-QL A.3.2 Table 3]. */
export const TD_REPORT10 = {
  SIZE: 584,
  TEE_TCB_SVN: 0, // 16
  MR_SEAM: 16, // 48
  MR_SIGNER_SEAM: 64, // 48
  SEAM_ATTRIBUTES: 112, // 8
  TD_ATTRIBUTES: 120, // 8
  XFAM: 128, // 8
  MR_TD: 136, // 48
  MR_CONFIG_ID: 184, // 48
  MR_OWNER: 232, // 48
  MR_OWNER_CONFIG: 280, // 48
  RTMR0: 328, // 48 each, RTMR1..3 follow
  REPORT_DATA: 520, // 64
} as const

/** TD report body, TDX 1.5 (648 bytes): TDX 1.0 plus two fields [TDX-QL A.3.5]. */
export const TD_REPORT15 = {
  SIZE: 648,
  TEE_TCB_SVN2: 584, // 16
  MR_SERVICE_TD: 600, // 48
} as const

/** SGX enclave report body (384 bytes) [SGX-QL A.4 Table 5]; also the QE report. */
export const ENCLAVE_REPORT = {
  SIZE: 384,
  CPU_SVN: 0, // 16
  MISC_SELECT: 16, // u32
  ATTRIBUTES: 48, // 16
  MR_ENCLAVE: 64, // 32
  MR_SIGNER: 128, // 32
  ISV_PROD_ID: 256, // u16
  ISV_SVN: 258, // u16
  REPORT_DATA: 320, // 64
} as const

/** v5 body descriptor [TDX-QL A.3.1.1]: u16 type, u32 size, then the body. */
export const V5_BODY_DESCRIPTOR_SIZE = 6
/** v5 body types: 1 SGX enclave report, 2 TD report 1.0, 3 TD report 1.5. */
export const V5_BODY_TYPE_SGX = 1
export const V5_BODY_TYPE_TD10 = 2
export const V5_BODY_TYPE_TD15 = 3

/** ECDSA-256 quote signature data [TDX-QL A.3.7]: signature, key, certification data. */
export const ECDSA_SIGNATURE_SIZE = 64
export const ECDSA_KEY_SIZE = 64
/** Certification data header: u16 type, u32 size [TDX-QL A.3.9]. */
export const CERT_DATA_HEADER_SIZE = 6
/** Certification data type 5: concatenated PCK cert chain (PEM) [TDX-QL A.3.9]. */
export const CERT_DATA_TYPE_PCK_CHAIN = 5
/** Certification data type 6: QE report certification data [TDX-QL A.3.10]. */
export const CERT_DATA_TYPE_QE_REPORT = 6
/** QE authentication data: u16 size then data [TDX-QL A.3.11]; Intel's QE emits 32 bytes. */
export const QE_AUTH_DATA_SIZE_FIELD = 2
