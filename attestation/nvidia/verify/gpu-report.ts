/**
 * Is a GPU attestation report genuine? Verification only, no policy: driver
 * and VBIOS versions, protected-PCIe mode and the RIM comparison are the
 * caller's (see attestation/nvidia/rim and the policy); revocation (OCSP) is
 * checked by the caller with the chain this returns.
 *
 * Fixed order, stopping at the first failure (so the error names the most
 * basic broken link, and nothing is read from a report whose signer is
 * unknown):
 *
 * 1. the device certificate chain, leaf first as the GPU carries it, to the
 *    pinned NVIDIA Device Identity CA: signatures, issuer names, CA flags,
 *    path lengths and key usage, then validity of every certificate at
 *    `now`. A root the evidence carries counts only if byte-identical to the
 *    pinned one; any other top certificate must itself be signed by the
 *    pinned root (ATTESTATION_ROOT_CA_UNTRUSTED otherwise);
 * 2. the report signature (ECDSA P-384, SHA-384 over request ‖ response
 *    without signature) with the leaf key (ATTESTATION_GPU_SIGNATURE_INVALID);
 * 3. the leaf's DICE FWID equals the report's FWID opaque field
 *    (ATTESTATION_GPU_FWID_MISMATCH; missing on either side is a mismatch,
 *    where NVIDIA's own verifiers skip the check);
 * 4. the request nonce equals the verifier's nonce
 *    (ATTESTATION_GPU_NONCE_MISMATCH).
 */
import { ConfigError, VerificationError } from '../../errors.ts'
import { verifyChain } from '../../pki/chain.ts'
import { certificateKey, verifyRaw } from '../../pki/ecdsa.ts'
import { commonName, sameBytes, type Certificate } from '../../pki/x509.ts'
import { NVIDIA_DEVICE_IDENTITY_CA } from '../../roots/nvidia.ts'
import type { TrustedRoot } from '../../roots/trust-root.ts'
import { certificateFwid } from '../abi/dice.ts'
import { SPDM_NONCE_SIZE, type GpuReport } from '../abi/spdm.ts'

/** keyUsage digitalSignature (RFC 5280 §4.2.1.3, bit 0): what signing SPDM responses needs. */
const KEY_USAGE_DIGITAL_SIGNATURE = 1 << 0

export interface VerifyGpuReportOptions {
  /** The instant at which every certificate must be valid. */
  readonly now: Date
  /** The nonce this verifier sent (32 bytes); the report's request nonce must equal it. */
  readonly expectedNonce: Uint8Array
  /** Trust anchor; default the pinned NVIDIA Device Identity CA. A dev root is passed here explicitly. */
  readonly root?: TrustedRoot
}

export interface VerifiedGpuReport {
  /** The device leaf certificate whose key signed the report. */
  readonly leaf: Certificate
  /** The verified chain, leaf first, without the root: what OCSP must cover. */
  readonly chain: Certificate[]
  /** The FWID that the leaf certificate and the report agree on. */
  readonly fwid: Uint8Array
}

const hex = (b: Uint8Array | undefined): string | null => (b === undefined ? null : Buffer.from(b).toString('hex'))

function checkOptions(options: VerifyGpuReportOptions): number {
  const now = options.now instanceof Date ? options.now.getTime() : Number.NaN
  if (!Number.isFinite(now)) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'verifyGpuReport: `now` must be a valid Date', { details: { option: 'now' } })
  }
  const nonce = options.expectedNonce
  if (!(nonce instanceof Uint8Array) || nonce.length !== SPDM_NONCE_SIZE) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `verifyGpuReport: \`expectedNonce\` must be ${SPDM_NONCE_SIZE} bytes`, {
      details: { option: 'expectedNonce' },
    })
  }
  return now
}

/**
 * Verify a parsed GPU report and its device certificate chain (leaf first,
 * as carried; a carried root is allowed and ignored unless it is the pinned
 * one). Returns the leaf, the verified chain without the root and the FWID.
 * Throws VerificationError (codes above), ConfigError for bad options, or
 * ParseError ATTESTATION_CERT_INVALID for a malformed DICE extension in a
 * leaf that the chain vouches for.
 */
export function verifyGpuReport(
  report: GpuReport,
  chain: readonly Certificate[],
  options: VerifyGpuReportOptions,
): VerifiedGpuReport {
  const now = checkOptions(options)
  const root = options.root ?? NVIDIA_DEVICE_IDENTITY_CA

  // 1. The chain. Revocation is OCSP's job (the caller's), so no CRLs here.
  const verified = verifyChain(chain, {
    now,
    root: root.certificate,
    crls: [],
    requireRevocation: false,
    label: 'nvidia-device',
  })
  const leaf = verified[0]!
  if (leaf.keyUsage !== undefined && (leaf.keyUsage & KEY_USAGE_DIGITAL_SIGNATURE) === 0) {
    throw new VerificationError('ATTESTATION_CERT_CHAIN_INVALID', `device leaf "${commonName(leaf.subject)}" may not sign`, {
      details: { chain: 'nvidia-device', serial: leaf.serial, keyUsage: leaf.keyUsage },
    })
  }

  // 2. The report signature under the leaf key.
  if (!verifyRaw('ecdsa-sha384', report.signedBytes, certificateKey(leaf), report.signature)) {
    throw new VerificationError('ATTESTATION_GPU_SIGNATURE_INVALID', 'the GPU report is not signed by the device leaf key', {
      details: { serial: leaf.serial, curve: leaf.curve },
    })
  }

  // 3. FWID: the firmware the certificate was issued to is the firmware that answered.
  const certFwid = certificateFwid(leaf)?.digest
  const reportFwid = report.response.opaque.fwid
  if (certFwid === undefined || reportFwid === undefined || !sameBytes(certFwid, reportFwid)) {
    throw new VerificationError('ATTESTATION_GPU_FWID_MISMATCH', 'the device certificate FWID does not match the report FWID', {
      details: { certificate: hex(certFwid), report: hex(reportFwid) },
    })
  }

  // 4. Freshness: the report answers this verifier's challenge.
  if (!sameBytes(report.request.nonce, options.expectedNonce)) {
    throw new VerificationError('ATTESTATION_GPU_NONCE_MISMATCH', 'the GPU report answers another nonce', {
      details: { expected: hex(options.expectedNonce), actual: hex(report.request.nonce) },
    })
  }

  return { leaf, chain: verified, fwid: reportFwid }
}
