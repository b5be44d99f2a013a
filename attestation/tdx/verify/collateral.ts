/**
 * Verify a collateral bundle against a pinned root at an instant: every
 * chain, CRL and signature, and the validity window of every item.
 * Verification only: whether the collateral is recent enough for a caller is
 * policy (`maxCollateralAgeSeconds`).
 *
 * Order (stop at the first failure): root CA CRL, TCB info, QE identity,
 * PCK CRL. The Root CA CRL comes first because every other chain's
 * intermediate is checked against it.
 */
import { VerificationError, type VerificationErrorCode } from '../../errors.ts'
import { verifyChain, verifyCrl, type VerifiedCrl } from '../../pki/chain.ts'
import { sameBytes } from '../../pki/x509.ts'
import { certificateKey, verifiedOnce, verifyRaw } from '../../pki/ecdsa.ts'
import type { TrustedRoot } from '../../roots/trust-root.ts'
import type { Collateral, QeIdentity, Signed, TcbInfo } from '../abi/collateral.ts'

export interface VerifiedCollateral {
  readonly tcbInfo: TcbInfo
  readonly qeIdentity: QeIdentity
  /** Root CA CRL and PCK CRL, both verified and current. */
  readonly crls: readonly VerifiedCrl[]
  /** The earliest instant at which some item stops being valid. */
  readonly expiresAt: number
  /** The oldest issue instant among the items (for the policy's age limit). */
  readonly issuedAt: number
}

function checkWindow(item: string, issueDate: number, nextUpdate: number, now: number): void {
  if (now < issueDate || now > nextUpdate) {
    throw new VerificationError('ATTESTATION_COLLATERAL_EXPIRED', `${item} is not valid at the given instant`, {
      details: {
        item,
        issueDate: new Date(issueDate).toISOString(),
        nextUpdate: new Date(nextUpdate).toISOString(),
        now: new Date(now).toISOString(),
      },
    })
  }
}

function verifySigned<T extends { issueDate: number; nextUpdate: number }>(
  doc: Signed<T>,
  item: string,
  code: VerificationErrorCode,
  root: TrustedRoot,
  rootCrl: VerifiedCrl,
  now: number,
): void {
  const [signer] = verifyChain(doc.chain, { now, root: root.certificate, crls: [rootCrl], requireRevocation: true, label: item })
  const ok = verifiedOnce(doc, signer!.spki, doc.bytes, doc.signature, () =>
    verifyRaw('ecdsa-sha256', doc.bytes, certificateKey(signer!), doc.signature),
  )
  if (!ok) {
    throw new VerificationError(code, `${item} signature does not verify`, { details: { item } })
  }
  checkWindow(item, doc.value.issueDate, doc.value.nextUpdate, now)
}

/** Verify `c` under `root` at `now` (ms since the epoch). */
export function verifyCollateral(c: Collateral, root: TrustedRoot, now: number): VerifiedCollateral {
  // Collateral published under another root (the dev CA's, say) is foreign
  // before it is anything else; say so rather than "bad CRL signature".
  if (!sameBytes(c.rootCaCrl.issuer, root.certificate.subject)) {
    throw new VerificationError('ATTESTATION_ROOT_CA_UNTRUSTED', 'collateral was issued under another root', {
      details: { chain: 'root-ca-crl', root: root.kind },
    })
  }
  const rootCrl = verifyCrl(c.rootCaCrl, root.certificate, now, 'root-ca')
  if (c.rootCaCrl.revoked.has(root.certificate.serial)) {
    throw new VerificationError('ATTESTATION_CERT_REVOKED', 'the root CA is listed on its own CRL', {
      details: { chain: 'root', serial: root.certificate.serial },
    })
  }
  verifySigned(c.tcbInfo, 'tcb-info', 'ATTESTATION_TCB_INFO_SIGNATURE_INVALID', root, rootCrl, now)
  verifySigned(c.qeIdentity, 'qe-identity', 'ATTESTATION_QE_IDENTITY_SIGNATURE_INVALID', root, rootCrl, now)
  const [pckCa] = verifyChain(c.pckCrlChain, { now, root: root.certificate, crls: [rootCrl], requireRevocation: true, label: 'pck-crl' })
  const pckCrl = verifyCrl(c.pckCrl, pckCa!, now, 'pck')
  const t = c.tcbInfo.value
  const q = c.qeIdentity.value
  return {
    tcbInfo: t,
    qeIdentity: q,
    crls: [rootCrl, pckCrl],
    expiresAt: Math.min(t.nextUpdate, q.nextUpdate, c.rootCaCrl.nextUpdate, c.pckCrl.nextUpdate),
    issuedAt: Math.min(t.issueDate, q.issueDate, c.rootCaCrl.thisUpdate, c.pckCrl.thisUpdate),
  }
}
