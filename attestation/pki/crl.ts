/**
 * Certificate revocation list parsing (RFC 5280 §5.1). No crypto: the CRL
 * signature is checked in `chain.ts` over `tbs`.
 */
import { ParseError } from '../errors.ts'
import { TAG, bitString, children, encodingOf, expectTlv, integerBytes, integerValue, timeValue } from '../asn1/der.ts'
import { signatureAlgorithmOf, sameBytes, type SignatureAlgorithm } from './x509.ts'

export interface Crl {
  readonly der: Uint8Array
  /** The exact `tbsCertList` encoding: what the issuer signed. */
  readonly tbs: Uint8Array
  readonly signatureAlgorithm: SignatureAlgorithm
  readonly signature: Uint8Array
  /** Raw DER of the issuer Name. */
  readonly issuer: Uint8Array
  readonly thisUpdate: number
  /** RFC 5280 §5.1.2.5 makes nextUpdate mandatory for conforming issuers; we require it. */
  readonly nextUpdate: number
  /** Revoked serial numbers, lower-case hex without sign octet. */
  readonly revoked: ReadonlySet<string>
}

function malformed(what: string, cause?: unknown): never {
  throw new ParseError('ATTESTATION_CRL_MALFORMED', what, { cause })
}

/** Parse one DER CRL (copied, like certificates). Throws `ParseError` (ATTESTATION_CRL_MALFORMED). */
export function parseCrl(der: Uint8Array): Crl {
  try {
    return parseCrlUnchecked(der.slice())
  } catch (e) {
    if (e instanceof ParseError && e.code === 'ATTESTATION_CRL_MALFORMED') throw e
    return malformed('malformed CRL', e)
  }
}

function parseCrlUnchecked(der: Uint8Array): Crl {
  const outer = expectTlv(der, 0, TAG.SEQUENCE)
  if (outer.end !== der.length) malformed('trailing bytes after CRL')
  const [tbsTlv, algTlv, sigTlv, extra] = children(der, outer)
  if (!tbsTlv || !algTlv || !sigTlv || extra || tbsTlv.tag !== TAG.SEQUENCE) malformed('CRL is not three elements')
  const signatureAlgorithm = signatureAlgorithmOf(der, algTlv)
  const sig = bitString(der, sigTlv)
  if (sig.unused !== 0) malformed('signature has unused bits')

  const f = children(der, tbsTlv)
  let i = 0
  if (f[i]?.tag === TAG.INTEGER) {
    if (integerValue(der, f[i]!) !== 1) malformed('unsupported CRL version')
    i++
  }
  const innerAlg = f[i++]
  const issuer = f[i++]
  const thisUpdate = f[i++]
  if (!innerAlg || !issuer || !thisUpdate) malformed('truncated tbsCertList')
  if (!sameBytes(encodingOf(der, innerAlg), encodingOf(der, algTlv))) malformed('signature algorithm mismatch')
  const next = f[i]
  if (!next || (next.tag !== TAG.UTC_TIME && next.tag !== TAG.GENERALIZED_TIME)) malformed('CRL without nextUpdate')
  i++
  const revoked = new Set<string>()
  const list = f[i]
  if (list?.tag === TAG.SEQUENCE) {
    for (const entry of children(der, list)) {
      const [serial] = children(der, entry)
      if (!serial) malformed('empty revoked entry')
      revoked.add(Buffer.from(integerBytes(der, serial)).toString('hex'))
    }
    i++
  }
  if (f[i] && f[i]!.tag !== 0xa0) malformed('unexpected field in tbsCertList')
  return {
    der,
    tbs: encodingOf(der, tbsTlv),
    signatureAlgorithm,
    signature: sig.bytes,
    issuer: encodingOf(der, issuer),
    thisUpdate: timeValue(der, thisUpdate),
    nextUpdate: timeValue(der, next),
    revoked,
  }
}
