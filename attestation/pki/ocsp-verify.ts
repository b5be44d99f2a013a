/**
 * OCSP response verification (RFC 6960 §3.2 and §4.2.2.2), offline.
 *
 * Given a parsed response, the certificate it should speak about and that
 * certificate's issuer, decide whether it proves "good" at a given instant.
 * Nothing is fetched: responses arrive with the evidence. The caller verifies
 * the chain (`chain.ts`) and hands in the issuer that chain verification
 * established; this module trusts no other key.
 *
 * Checks run in a fixed order, and the first failure is the error:
 *   1. responseStatus is `successful`;
 *   2. exactly one SingleResponse has this certificate's CertID (serial,
 *      issuer name hash, issuer key hash, under the hash the CertID names);
 *   3. the responder is authorised (§4.2.2.2): the issuer itself, or a
 *      certificate in `certs` issued and signed by the issuer, valid at
 *      `now`, carrying id-kp-OCSPSigning; no other responder is trusted,
 *      whatever the response says about itself;
 *   4. the responder's signature over `tbsResponseData`;
 *   5. critical extensions are understood, and the nonce matches when the
 *      caller asked for one;
 *   6. the validity window (§4.2.2.1): producedAt and thisUpdate not after
 *      `now`, `now` not after nextUpdate, or, without nextUpdate, not after
 *      thisUpdate + `maxAgeMs` (no maxAgeMs: fail closed);
 *   7. certStatus: revoked is ATTESTATION_CERT_REVOKED, unknown is
 *      ATTESTATION_OCSP_INVALID; only good passes.
 *
 * Every failure but revocation is ATTESTATION_OCSP_INVALID with a stable
 * `details.reason` (see {@link OcspInvalidReason}).
 */
import { createHash } from 'node:crypto'
import { ConfigError, ParseError, VerificationError } from '../errors.ts'
import { TAG, children, decodeOid, readTlv } from '../asn1/der.ts'
import { certificateKey, verifiedOnce, verifyDer } from './ecdsa.ts'
import { OID_OCSP_NONCE, subjectPublicKeyBits, type CertIdHashAlgorithm, type OcspResponse, type SingleResponse } from './ocsp.ts'
import { commonName, sameBytes, type Certificate } from './x509.ts'

/** extKeyUsage (RFC 5280 §4.2.1.12). */
export const OID_EXT_KEY_USAGE = '2.5.29.37'
/** id-kp-OCSPSigning (RFC 5280 §4.2.1.12): required of a delegated responder (RFC 6960 §4.2.2.2). anyExtendedKeyUsage does not stand in for it. */
export const OID_KP_OCSP_SIGNING = '1.3.6.1.5.5.7.3.9'
/** keyUsage digitalSignature (RFC 5280 §4.2.1.3, bit 0): needed to sign responses when keyUsage is present. */
const KEY_USAGE_DIGITAL_SIGNATURE = 1 << 0

/** The stable `details.reason` of an ATTESTATION_OCSP_INVALID error. */
export type OcspInvalidReason =
  /** responseStatus is not `successful` (details.responseStatus says which). */
  | 'not-successful'
  /** No SingleResponse has this certificate's CertID (other serial, other issuer, or a hash we cannot recompute). */
  | 'certid-mismatch'
  /** More than one SingleResponse has this certificate's CertID: which one counts is not ours to guess. */
  | 'certid-ambiguous'
  /**
   * The responder is neither the issuer nor a delegated responder the issuer
   * authorised. `details.responderProblem` says why: 'unknown-responder' (the
   * ResponderID names neither the issuer nor a certificate in `certs`) or a
   * {@link DelegatedResponderProblem}.
   */
  | 'responder-unauthorised'
  /** The delegated responder's certificate is outside its validity period at `now`. */
  | 'responder-expired'
  /** The signature over tbsResponseData does not verify under the responder's key. */
  | 'signature'
  /** A critical response or single extension that this verifier does not understand. */
  | 'critical-extension'
  /** The caller expected a nonce and the response carries another one, or none. */
  | 'nonce-mismatch'
  /** producedAt or thisUpdate lies after `now`. */
  | 'not-yet-valid'
  /** `now` lies after nextUpdate (or thisUpdate + maxAgeMs). */
  | 'stale'
  /** The response has no nextUpdate and the caller gave no maxAgeMs: freshness cannot be decided. */
  | 'no-next-update'
  /** certStatus is unknown: the responder does not know the certificate. */
  | 'status-unknown'

/** Why a certificate in `certs` may not answer for `issuer` (the `details.responderProblem` of 'responder-unauthorised'). */
export type DelegatedResponderProblem =
  /** Its issuer Name is not the issuer's subject, or the issuer's key did not sign it. */
  | 'not-issued-by-issuer'
  /** No extKeyUsage, or one without id-kp-OCSPSigning. */
  | 'no-ocsp-signing-eku'
  /** extKeyUsage does not parse. */
  | 'bad-eku'
  /** keyUsage is present without digitalSignature. */
  | 'key-usage'
  /** Outside its validity period at `now` (reported as reason 'responder-expired'). */
  | 'expired'

export interface VerifyOcspResponseOptions {
  /** The certificate whose status is asked. */
  readonly cert: Certificate
  /** Its issuer, as chain verification established it: the only key trusted to sign or delegate. */
  readonly issuer: Certificate
  /** The instant of verification. */
  readonly now: Date
  /**
   * Maximum age of a response without nextUpdate, from its thisUpdate. Used
   * only when nextUpdate is absent; then it is required (no default: a
   * response that never expires would be accepted forever).
   */
  readonly maxAgeMs?: number
  /**
   * Tolerated clock difference on both ends of the response's window; default
   * 0 (none). It does not widen the responder certificate's validity.
   */
  readonly clockSkewMs?: number
  /** When given, the response must carry exactly this nonce (RFC 8954). Stapled responses usually have none. */
  readonly nonce?: Uint8Array
}

export interface VerifiedOcspResponse {
  readonly status: 'good'
  readonly thisUpdate: Date
  /** As the response states it; absent when it has none. */
  readonly nextUpdate?: Date
  /** The end of the window that was applied: nextUpdate, or thisUpdate + maxAgeMs. */
  readonly validUntil: Date
  readonly producedAt: Date
  /** Who signed: the issuer itself or a delegated responder certificate from `certs`. */
  readonly responder: { readonly kind: 'issuer' } | { readonly kind: 'delegated'; readonly certificate: Certificate }
}

function invalid(reason: OcspInvalidReason, what: string, details: Record<string, unknown> = {}): never {
  throw new VerificationError('ATTESTATION_OCSP_INVALID', what, { details: { reason, ...details } })
}

function nameOf(cert: Certificate): string {
  return commonName(cert.subject) || cert.serial
}

function iso(ms: number): string {
  return new Date(ms).toISOString()
}

function hash(alg: CertIdHashAlgorithm, data: Uint8Array): Uint8Array {
  return createHash(alg).update(data).digest()
}

/** Hash of a certificate's key bits; null when they do not read (such a key matches no CertID or ResponderID). */
function keyHash(alg: CertIdHashAlgorithm, cert: Certificate): Uint8Array | null {
  try {
    return hash(alg, subjectPublicKeyBits(cert))
  } catch {
    return null
  }
}

/** Whether a SingleResponse's CertID names `cert` as issued by `issuer` (RFC 6960 §4.1.1). */
export function certIdMatches(single: SingleResponse, cert: Certificate, issuer: Certificate): boolean {
  const id = single.certId
  if (id.hashAlgorithm === null || id.serialNumber !== cert.serial) return false
  return (
    sameBytes(id.issuerNameHash, hash(id.hashAlgorithm, issuer.subject)) &&
    sameBytes(id.issuerKeyHash, keyHash(id.hashAlgorithm, issuer) ?? new Uint8Array(0))
  )
}

/** The extKeyUsage OIDs of `cert`; null when it has none; throws ParseError when the extension is malformed. */
function extendedKeyUsage(cert: Certificate): string[] | null {
  const ext = cert.extensions.get(OID_EXT_KEY_USAGE)
  if (!ext) return null
  const seq = readTlv(ext.value, 0)
  if (seq.tag !== TAG.SEQUENCE || seq.end !== ext.value.length) {
    throw new ParseError('ATTESTATION_CERT_INVALID', 'extKeyUsage is not a SEQUENCE')
  }
  const oids = children(ext.value, seq).map((o) => decodeOid(ext.value, o))
  // RFC 5280 §4.2.1.12: SEQUENCE SIZE (1..MAX).
  if (oids.length === 0) throw new ParseError('ATTESTATION_CERT_INVALID', 'empty extKeyUsage')
  return oids
}

/** Whether `cert` carries id-kp-OCSPSigning in its extKeyUsage. */
export function hasOcspSigningEku(cert: Certificate): boolean {
  try {
    return extendedKeyUsage(cert)?.includes(OID_KP_OCSP_SIGNING) ?? false
  } catch {
    return false
  }
}

/**
 * Why `candidate` may not sign OCSP responses about certificates of `issuer`
 * at `nowMs` (RFC 6960 §4.2.2.2), or undefined when it may. The signature
 * check of the candidate by the issuer is remembered (`verifiedOnce`).
 * Its own revocation is not checked: NVIDIA's responder certificates carry
 * id-pkix-ocsp-nocheck (§4.2.2.2.1), and a check would need yet another
 * response.
 */
export function delegatedResponderProblem(candidate: Certificate, issuer: Certificate, nowMs: number): DelegatedResponderProblem | undefined {
  const issued =
    sameBytes(candidate.issuer, issuer.subject) &&
    verifiedOnce(candidate, issuer.spki, candidate.tbs, candidate.signature, () =>
      verifyDer(candidate.signatureAlgorithm, candidate.tbs, certificateKey(issuer), candidate.signature),
    )
  if (!issued) return 'not-issued-by-issuer'
  let eku: string[] | null
  try {
    eku = extendedKeyUsage(candidate)
  } catch {
    return 'bad-eku'
  }
  if (!eku?.includes(OID_KP_OCSP_SIGNING)) return 'no-ocsp-signing-eku'
  if (candidate.keyUsage !== undefined && (candidate.keyUsage & KEY_USAGE_DIGITAL_SIGNATURE) === 0) return 'key-usage'
  if (nowMs < candidate.notBefore || nowMs > candidate.notAfter) return 'expired'
  return undefined
}

/** Whether the response's ResponderID designates `cert` (RFC 6960 §4.2.2.3: byKey is SHA-1 of the key bits). */
function designates(resp: Extract<OcspResponse, { responseStatus: 'successful' }>, cert: Certificate): boolean {
  const rid = resp.basic.responderId
  if (rid.kind === 'byName') return sameBytes(rid.name, cert.subject)
  const h = keyHash('sha1', cert)
  return h !== null && sameBytes(rid.keyHash, h)
}

function checkOptions(opts: VerifyOcspResponseOptions): { now: number; skew: number } {
  const now = opts.now instanceof Date ? opts.now.getTime() : Number.NaN
  if (!Number.isFinite(now)) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'now must be a valid Date')
  const skew = opts.clockSkewMs ?? 0
  if (!Number.isFinite(skew) || skew < 0) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'clockSkewMs must be a non-negative number', { details: { clockSkewMs: skew } })
  }
  if (opts.maxAgeMs !== undefined && !(Number.isFinite(opts.maxAgeMs) && opts.maxAgeMs > 0)) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'maxAgeMs must be a positive number', { details: { maxAgeMs: opts.maxAgeMs } })
  }
  return { now, skew }
}

/**
 * Verify that `resp` proves `opts.cert` (issued by `opts.issuer`) good at
 * `opts.now`. Throws `VerificationError`: ATTESTATION_CERT_REVOKED when the
 * responder says revoked (details: serial, revocationTime, revocationReason),
 * ATTESTATION_OCSP_INVALID with `details.reason` for everything else; and
 * `ConfigError` (ATTESTATION_OPTIONS_INVALID) for bad options.
 */
export function verifyOcspResponse(resp: OcspResponse, opts: VerifyOcspResponseOptions): VerifiedOcspResponse {
  const { now, skew } = checkOptions(opts)
  const { cert, issuer } = opts
  const subject = { serial: cert.serial, certificate: nameOf(cert) }

  // 1. RFC 6960 §2.3: an error status carries no answer at all.
  if (resp.responseStatus !== 'successful') {
    invalid('not-successful', `OCSP responder answered ${resp.responseStatus}`, { ...subject, responseStatus: resp.responseStatus })
  }
  const basic = resp.basic

  // 2. Which SingleResponse is about this certificate (§4.1.1, §3.2 item 1).
  const matching = basic.responses.filter((s) => certIdMatches(s, cert, issuer))
  if (matching.length === 0) {
    invalid('certid-mismatch', `OCSP response is not about "${nameOf(cert)}" issued by "${nameOf(issuer)}"`, {
      ...subject,
      responseSerials: basic.responses.map((s) => s.certId.serialNumber),
    })
  }
  if (matching.length > 1) invalid('certid-ambiguous', `OCSP response answers twice for "${nameOf(cert)}"`, subject)
  const single = matching[0]!

  // 3. The authorised responder (§4.2.2.2): the issuer, or a certificate it delegated to.
  let signer: Certificate
  let responder: VerifiedOcspResponse['responder']
  if (designates(resp, issuer)) {
    signer = issuer
    responder = { kind: 'issuer' }
  } else {
    const candidates = basic.certs.filter((c) => designates(resp, c))
    if (candidates.length === 0) {
      invalid('responder-unauthorised', 'OCSP responder is neither the issuer nor a certificate in the response', {
        ...subject,
        responderProblem: 'unknown-responder',
      })
    }
    let found: Certificate | undefined
    let problem: DelegatedResponderProblem | undefined
    for (const c of candidates) {
      const p = delegatedResponderProblem(c, issuer, now)
      if (p === undefined) {
        found = c
        break
      }
      problem ??= p
    }
    if (!found) {
      const c = candidates[0]!
      if (problem === 'expired') {
        invalid('responder-expired', `OCSP responder "${nameOf(c)}" is not valid at the given instant`, {
          ...subject,
          responder: nameOf(c),
          notBefore: iso(c.notBefore),
          notAfter: iso(c.notAfter),
          now: iso(now),
        })
      }
      invalid('responder-unauthorised', `OCSP responder "${nameOf(c)}" is not authorised by "${nameOf(issuer)}"`, {
        ...subject,
        responder: nameOf(c),
        responderProblem: problem,
      })
    }
    signer = found
    responder = { kind: 'delegated', certificate: found }
  }

  // 4. The signature over the exact signed bytes.
  const signed = verifiedOnce(basic, signer.spki, basic.tbsResponseData, basic.signature, () =>
    verifyDer(basic.signatureAlgorithm, basic.tbsResponseData, certificateKey(signer), basic.signature),
  )
  if (!signed) invalid('signature', `OCSP response signature does not verify under "${nameOf(signer)}"`, { ...subject, responder: nameOf(signer) })

  // 5. Extensions: a critical one we do not understand changes the meaning of what was signed.
  for (const [oid, ext] of [...basic.responseExtensions, ...single.singleExtensions]) {
    if (ext.critical && oid !== OID_OCSP_NONCE) {
      invalid('critical-extension', `OCSP response has an unknown critical extension ${oid}`, { ...subject, oid })
    }
  }
  if (opts.nonce !== undefined && !(basic.nonce && sameBytes(basic.nonce, opts.nonce))) {
    invalid('nonce-mismatch', 'OCSP response does not carry the expected nonce', subject)
  }

  // 6. The validity window (§4.2.2.1; §2.4 for a missing nextUpdate).
  const window = {
    ...subject,
    producedAt: iso(basic.producedAt),
    thisUpdate: iso(single.thisUpdate),
    ...(single.nextUpdate === undefined ? {} : { nextUpdate: iso(single.nextUpdate) }),
    now: iso(now),
  }
  if (basic.producedAt > now + skew || single.thisUpdate > now + skew) invalid('not-yet-valid', 'OCSP response is from the future', window)
  let validUntil: number
  if (single.nextUpdate !== undefined) validUntil = single.nextUpdate
  else if (opts.maxAgeMs !== undefined) validUntil = single.thisUpdate + opts.maxAgeMs
  else invalid('no-next-update', 'OCSP response has no nextUpdate and no maximum age was given', window)
  if (now - skew > validUntil) invalid('stale', 'OCSP response is stale', { ...window, validUntil: iso(validUntil) })

  // 7. The answer itself.
  const st = single.certStatus
  if (st.kind === 'revoked') {
    throw new VerificationError('ATTESTATION_CERT_REVOKED', `certificate "${nameOf(cert)}" is revoked (OCSP)`, {
      details: { ...subject, revocationTime: iso(st.revocationTime), ...(st.reason ? { revocationReason: st.reason } : {}) },
    })
  }
  if (st.kind === 'unknown') invalid('status-unknown', `OCSP responder does not know "${nameOf(cert)}"`, subject)

  return {
    status: 'good',
    thisUpdate: new Date(single.thisUpdate),
    ...(single.nextUpdate === undefined ? {} : { nextUpdate: new Date(single.nextUpdate) }),
    validUntil: new Date(validUntil),
    producedAt: new Date(basic.producedAt),
    responder,
  }
}
