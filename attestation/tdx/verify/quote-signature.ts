/**
 * The two quote signatures and the QE binding [TDX-QL A.3.7, A.3.10]:
 *
 * 1. the QE report is signed by the PCK leaf key (the platform vouches for the QE);
 * 2. QE REPORTDATA = SHA-256(attestation key || QE auth data) || 32 zero bytes
 *    (the QE vouches for the attestation key);
 * 3. the attestation key signed header || body (the key vouches for the TD).
 *
 * Each link is checked; skipping any one lets an attacker substitute a key.
 */
import { VerificationError } from '../../errors.ts'
import { certificateKey, p256KeyFromRaw, sha256, verifyRaw } from '../../pki/ecdsa.ts'
import type { Certificate } from '../../pki/x509.ts'
import type { Quote } from '../abi/quote.ts'

/** Check the QE report signature under the PCK leaf and the QE REPORTDATA binding. */
export function verifyQeReport(quote: Quote, pckLeaf: Certificate): void {
  const { qeReport, qeReportSignature, qeAuthData } = quote.certification
  if (!verifyRaw('ecdsa-sha256', qeReport.raw, certificateKey(pckLeaf), qeReportSignature)) {
    throw new VerificationError('ATTESTATION_QE_REPORT_SIGNATURE_INVALID', 'QE report is not signed by the PCK key')
  }
  const expected = sha256(quote.attestationKey, qeAuthData)
  const rd = qeReport.reportData
  let diff = 0
  for (let i = 0; i < 32; i++) diff |= rd[i]! ^ expected[i]!
  for (let i = 32; i < 64; i++) diff |= rd[i]!
  if (diff !== 0) {
    throw new VerificationError('ATTESTATION_QE_REPORT_DATA_MISMATCH', 'QE report does not vouch for this attestation key')
  }
}

/** Check the attestation key's signature over header || body. */
export function verifyQuoteSignature(quote: Quote): void {
  if (!verifyRaw('ecdsa-sha256', quote.signedRegion, p256KeyFromRaw(quote.attestationKey), quote.signature)) {
    throw new VerificationError('ATTESTATION_QUOTE_SIGNATURE_INVALID', 'quote signature does not verify under its attestation key')
  }
}
