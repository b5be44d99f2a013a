/**
 * Certificate-chain and CRL verification against a pinned root (RFC 5280 §6,
 * reduced to what DCAP and NVIDIA chains need: fixed, short paths; no name
 * constraints or policy mapping).
 *
 * Verification only, no policy: the caller names the root; the instant is an
 * argument; a certificate that no verified CRL covers is a failure when
 * revocation is required (unknown status is never "good").
 */
import { VerificationError } from '../errors.ts'
import type { Crl } from './crl.ts'
import { certificateKey, verifiedOnce, verifyDer } from './ecdsa.ts'
import { KEY_USAGE_CRL_SIGN, KEY_USAGE_KEY_CERT_SIGN, commonName, sameBytes, type Certificate } from './x509.ts'

/** A CRL whose signature and freshness were checked, with the key that signed it. */
export interface VerifiedCrl {
  readonly crl: Crl
  /** SubjectPublicKeyInfo of the certificate that signed the CRL. */
  readonly issuerSpki: Uint8Array
}

export interface VerifyChainOptions {
  /** The instant of verification, in milliseconds since the epoch. */
  readonly now: number
  /** The pinned trust anchor. A root carried in the chain counts only if byte-identical. */
  readonly root: Certificate
  /** Verified CRLs; each non-root certificate must be covered by one from its issuer when `requireRevocation`. */
  readonly crls: readonly VerifiedCrl[]
  readonly requireRevocation: boolean
  /** Which chain this is, for error details ("pck", "tcb-info", ...). */
  readonly label: string
}

/**
 * Critical extensions this verifier understands (RFC 5280 §4.2: a
 * certificate with any other critical extension must be rejected):
 * basicConstraints, keyUsage, extKeyUsage (OCSP responders), the Intel SGX
 * extension, and the TCG DICE FWID extensions of NVIDIA device leaves.
 */
export const UNDERSTOOD_CRITICAL_EXTENSIONS: ReadonlySet<string> = new Set([
  '2.5.29.19',
  '2.5.29.15',
  '2.5.29.37',
  '1.2.840.113741.1.13.1',
  '2.23.133.5.4.1',
  '2.23.133.5.4.1.1',
])

function checkCriticalExtensions(cert: Certificate, chain: string): void {
  for (const [oid, ext] of cert.extensions) {
    if (ext.critical && !UNDERSTOOD_CRITICAL_EXTENSIONS.has(oid)) {
      throw new VerificationError('ATTESTATION_CERT_CHAIN_INVALID', `certificate "${label(cert)}" has a critical extension this verifier does not understand`, {
        details: { chain, serial: cert.serial, extension: oid },
      })
    }
  }
}

function label(cert: Certificate): string {
  return commonName(cert.subject) || cert.serial
}

/** Check `cert` is inside its validity period at `now` (RFC 5280 §4.1.2.5). */
export function checkValidity(cert: Certificate, now: number, chain: string): void {
  if (now < cert.notBefore || now > cert.notAfter) {
    throw new VerificationError('ATTESTATION_CERT_EXPIRED', `certificate "${label(cert)}" is not valid at the given instant`, {
      details: {
        chain,
        serial: cert.serial,
        notBefore: new Date(cert.notBefore).toISOString(),
        notAfter: new Date(cert.notAfter).toISOString(),
        now: new Date(now).toISOString(),
      },
    })
  }
}

function checkIssuerIsCa(issuer: Certificate, below: number, chain: string, usage: number): void {
  const bc = issuer.basicConstraints
  const ok =
    bc?.ca === true &&
    (bc.pathLen === undefined || below <= bc.pathLen) &&
    (issuer.keyUsage === undefined || (issuer.keyUsage & usage) !== 0)
  if (!ok) {
    throw new VerificationError('ATTESTATION_CERT_CHAIN_INVALID', `"${label(issuer)}" may not issue here`, {
      details: { chain, serial: issuer.serial, basicConstraints: bc, keyUsage: issuer.keyUsage, pathBelow: below },
    })
  }
}

/**
 * Verify a CRL: issued (name and signature) by `issuer`, and current at `now`.
 * A stale CRL is expired collateral, not a parse problem.
 */
export function verifyCrl(crl: Crl, issuer: Certificate, now: number, which: string): VerifiedCrl {
  const signed =
    sameBytes(crl.issuer, issuer.subject) &&
    verifiedOnce(crl, issuer.spki, crl.tbs, crl.signature, () =>
      verifyDer(crl.signatureAlgorithm, crl.tbs, certificateKey(issuer), crl.signature),
    )
  if (!signed) {
    throw new VerificationError('ATTESTATION_CRL_SIGNATURE_INVALID', `${which} CRL is not signed by "${label(issuer)}"`, {
      details: { crl: which },
    })
  }
  checkIssuerIsCa(issuer, 0, which, KEY_USAGE_CRL_SIGN)
  if (now < crl.thisUpdate || now > crl.nextUpdate) {
    throw new VerificationError('ATTESTATION_COLLATERAL_EXPIRED', `${which} CRL is not current at the given instant`, {
      details: {
        item: `${which}-crl`,
        thisUpdate: new Date(crl.thisUpdate).toISOString(),
        nextUpdate: new Date(crl.nextUpdate).toISOString(),
        now: new Date(now).toISOString(),
      },
    })
  }
  return { crl, issuerSpki: issuer.spki }
}

function checkRevocation(cert: Certificate, issuer: Certificate, opts: VerifyChainOptions): void {
  let covered = false
  for (const { crl, issuerSpki } of opts.crls) {
    if (!sameBytes(crl.issuer, cert.issuer) || !sameBytes(issuerSpki, issuer.spki)) continue
    covered = true
    if (crl.revoked.has(cert.serial)) {
      throw new VerificationError('ATTESTATION_CERT_REVOKED', `certificate "${label(cert)}" is revoked`, {
        details: { chain: opts.label, serial: cert.serial },
      })
    }
  }
  if (!covered && opts.requireRevocation) {
    throw new VerificationError('ATTESTATION_CRL_MISSING', `no CRL from the issuer of "${label(cert)}"`, {
      details: { chain: opts.label, serial: cert.serial },
    })
  }
}

/**
 * Verify `chain` (leaf first) up to the pinned root, in three passes so the
 * error names the most basic problem: first that every certificate is
 * signed by the next and the top by the pinned root (a foreign chain is
 * ATTESTATION_ROOT_CA_UNTRUSTED, whatever else is wrong with it), with
 * issuers that are CAs within their path length; then that every
 * certificate, root included, is valid at `now`; then that none is revoked.
 * Returns the chain without the root.
 */
export function verifyChain(chain: readonly Certificate[], opts: VerifyChainOptions): Certificate[] {
  const certs = [...chain]
  const last = certs[certs.length - 1]
  if (last && sameBytes(last.der, opts.root.der)) certs.pop()
  if (certs.length === 0) {
    throw new VerificationError('ATTESTATION_CERT_CHAIN_INVALID', `${opts.label} chain has no certificate below the root`, {
      details: { chain: opts.label },
    })
  }
  const issuerOf = (i: number) => (i === certs.length - 1 ? opts.root : certs[i + 1]!)
  for (let i = certs.length - 1; i >= 0; i--) {
    const cert = certs[i]!
    const issuer = issuerOf(i)
    const isTop = i === certs.length - 1
    const signed =
      sameBytes(cert.issuer, issuer.subject) &&
      verifiedOnce(cert, issuer.spki, cert.tbs, cert.signature, () =>
        verifyDer(cert.signatureAlgorithm, cert.tbs, certificateKey(issuer), cert.signature),
      )
    if (!signed) {
      throw new VerificationError(
        isTop ? 'ATTESTATION_ROOT_CA_UNTRUSTED' : 'ATTESTATION_CERT_CHAIN_INVALID',
        isTop ? `${opts.label} chain does not end at the pinned root` : `"${label(cert)}" is not signed by "${label(issuer)}"`,
        { details: { chain: opts.label, serial: cert.serial } },
      )
    }
    checkIssuerIsCa(issuer, i, opts.label, KEY_USAGE_KEY_CERT_SIGN)
  }
  for (const cert of [...certs, opts.root]) checkCriticalExtensions(cert, opts.label)
  checkValidity(opts.root, opts.now, opts.label)
  for (const cert of certs) checkValidity(cert, opts.now, opts.label)
  certs.forEach((cert, i) => checkRevocation(cert, issuerOf(i), opts))
  return certs
}
