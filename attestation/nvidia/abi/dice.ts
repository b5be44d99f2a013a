/**
 * The DICE firmware identity (FWID) that an NVIDIA GPU's device leaf
 * certificate carries, parsed from its X.509 extension. No crypto, no
 * comparison: the verifier matches it against the report's FWID.
 *
 * What the real certificates carry (checked against the Hopper sample in
 * test/vectors/nvidia/hopper-sample and against NVIDIA's own verifiers):
 *
 * - The extension OID is 2.23.133.5.4.1, the TCG arc `tcg-dice-TcbInfo`
 *   (TCG DICE Attestation Architecture v1.1 §6.1.1). NVIDIA's local GPU
 *   verifier (nvtrust `cc_admin_utils.extract_fwid`) and
 *   google/go-nvattest-tools (`server/verify.extractGPUFWID`) also look for
 *   2.23.133.5.4.1.1, which no TCG specification assigns; it is accepted here
 *   with the same meaning so that certificates those tools accept are read,
 *   but a certificate carrying both is ambiguous and rejected.
 * - On Hopper (GH100 "GSP FMC LF" leaf) the content under that OID is NOT a
 *   DiceTcbInfo: it is the older Microsoft RIoT "composite device identity"
 *   `SEQUENCE { version INTEGER (1), deviceId SubjectPublicKeyInfo, fwid FWID }`
 *   (the RIoT reference code used this TCG OID before DiceTcbInfo took it),
 *   with deviceId the issuer's (GSP BROM) public key and fwid a SHA-384
 *   digest. NVIDIA's tools take "the last 48 bytes" of the extension for
 *   Hopper; this parser reads the structure instead, strictly.
 * - Blackwell leaves carry a real DiceTcbInfo under the same OID, and NVIDIA
 *   compares `fwids[0].digest`. Both layouts are told apart by their first
 *   element: RIoT begins with a universal INTEGER, DiceTcbInfo has only
 *   context-specific fields.
 *
 * Malformed content is a ParseError ATTESTATION_CERT_INVALID (the extension
 * is part of the certificate). Every byte field is a view into the
 * certificate's own (copied, immutable) DER.
 */
import { ParseError } from '../../errors.ts'
import { TAG, bitString, children, contentOf, decodeOid, encodingOf, expectTlv, integerValue, type Tlv } from '../../asn1/der.ts'
import type { Certificate } from '../../pki/x509.ts'

/** `tcg-dice-TcbInfo` (TCG DICE Attestation Architecture v1.1 §6.1.1); on Hopper it holds the RIoT layout. */
export const OID_TCG_DICE_TCB_INFO = '2.23.133.5.4.1'
/** Looked for by nvtrust and go-nvattest-tools as an alternative FWID extension; not a TCG-assigned arc. */
export const OID_NVIDIA_DICE_TCB_INFO_ALT = '2.23.133.5.4.1.1'
/** The OIDs read as an FWID-bearing extension, in the order NVIDIA's tools try them. */
export const DICE_FWID_EXTENSION_OIDS: readonly string[] = [OID_TCG_DICE_TCB_INFO, OID_NVIDIA_DICE_TCB_INFO_ALT]

/** id-sha384 (RFC 8017 Appendix A.2.4 / NIST CSOR): the hash of every NVIDIA FWID seen so far. */
export const OID_SHA384 = '2.16.840.1.101.3.4.2.2'

/** `FWID ::= SEQUENCE { hashAlg OBJECT IDENTIFIER, digest OCTET STRING }` (TCG DICE §6.1.1). */
export interface Fwid {
  /** Dotted OID of the hash algorithm. */
  readonly hashAlg: string
  readonly digest: Uint8Array
}

/** Microsoft RIoT composite device identity (the Hopper layout). */
export interface RiotCompositeIdentity {
  readonly kind: 'riot-composite'
  readonly oid: string
  readonly version: number
  /** DER SubjectPublicKeyInfo of the DeviceID key (on Hopper: the issuing GSP BROM key). */
  readonly deviceIdSpki: Uint8Array
  /** Exactly one FWID in this layout. */
  readonly fwids: readonly [Fwid]
}

/**
 * `DiceTcbInfo` (TCG DICE Attestation Architecture v1.1 §6.1.1), every field
 * IMPLICIT and OPTIONAL: vendor [0], model [1], version [2] UTF8String;
 * svn [3], layer [4], index [5] INTEGER; fwids [6] SEQUENCE OF FWID;
 * flags [7] BIT STRING; vendorInfo [8], type [9] OCTET STRING;
 * flagsMask [10] BIT STRING.
 */
export interface DiceTcbInfo {
  readonly kind: 'tcb-info'
  readonly oid: string
  readonly vendor?: string
  readonly model?: string
  readonly version?: string
  readonly svn?: number
  readonly layer?: number
  readonly index?: number
  readonly fwids: readonly Fwid[]
  readonly flags?: Uint8Array
  readonly vendorInfo?: Uint8Array
  readonly type?: Uint8Array
  readonly flagsMask?: Uint8Array
}

export type DiceIdentity = RiotCompositeIdentity | DiceTcbInfo

function invalid(what: string, cause?: unknown): never {
  throw new ParseError('ATTESTATION_CERT_INVALID', `DICE extension: ${what}`, { cause, details: { what } })
}

function parseFwid(buf: Uint8Array, seq: Tlv): Fwid {
  if (seq.tag !== TAG.SEQUENCE) invalid('FWID is not a SEQUENCE')
  const [alg, digest, extra] = children(buf, seq)
  if (!alg || !digest || extra || digest.tag !== TAG.OCTET_STRING) invalid('FWID is not (OID, OCTET STRING)')
  const d = contentOf(buf, digest)
  if (d.length === 0) invalid('empty FWID digest')
  return { hashAlg: decodeOid(buf, alg), digest: d }
}

function parseRiot(buf: Uint8Array, parts: Tlv[], oid: string): RiotCompositeIdentity {
  const [ver, spki, fwid, extra] = parts
  if (!ver || !spki || !fwid || extra) invalid('RIoT composite identity is not (version, deviceId, fwid)')
  if (spki.tag !== TAG.SEQUENCE) invalid('RIoT deviceId is not a SubjectPublicKeyInfo')
  const version = integerValue(buf, ver)
  // RIoT only ever defined version 1; another value is a layout we cannot read safely.
  if (version !== 1) invalid(`RIoT composite identity version ${version}`)
  return { kind: 'riot-composite', oid, version, deviceIdSpki: encodingOf(buf, spki), fwids: [parseFwid(buf, fwid)] }
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

function parseTcbInfo(buf: Uint8Array, parts: Tlv[], oid: string): DiceTcbInfo {
  const out: {
    -readonly [K in keyof DiceTcbInfo]?: DiceTcbInfo[K]
  } = { kind: 'tcb-info', oid }
  let fwids: Fwid[] = []
  let last = -1
  for (const p of parts) {
    // Context-specific tags only, each at most once and in schema order: a SEQUENCE has one encoding, so a repeat is an attempt at two readings.
    if ((p.tag & 0xc0) !== 0x80) invalid('DiceTcbInfo field is not context-specific')
    const n = p.tag & 0x1f
    if (n <= last) invalid('DiceTcbInfo fields out of order or repeated')
    last = n
    const constructed = (p.tag & 0x20) !== 0
    if (constructed !== (n === 6)) invalid(`DiceTcbInfo field [${n}] has the wrong form`)
    const c = contentOf(buf, p)
    const asInteger = () => integerValue(buf, { ...p, tag: TAG.INTEGER })
    const asBits = () => bitString(buf, { ...p, tag: TAG.BIT_STRING }).bytes
    const asText = () => {
      try {
        return utf8.decode(c)
      } catch (e) {
        return invalid(`DiceTcbInfo field [${n}] is not UTF-8`, e)
      }
    }
    switch (n) {
      case 0:
        out.vendor = asText()
        break
      case 1:
        out.model = asText()
        break
      case 2:
        out.version = asText()
        break
      case 3:
        out.svn = asInteger()
        break
      case 4:
        out.layer = asInteger()
        break
      case 5:
        out.index = asInteger()
        break
      case 6: {
        const list = children(buf, p).map((f) => parseFwid(buf, f))
        if (list.length === 0) invalid('empty FWID list')
        fwids = list
        break
      }
      case 7:
        out.flags = asBits()
        break
      case 8:
        out.vendorInfo = c
        break
      case 9:
        out.type = c
        break
      case 10:
        out.flagsMask = asBits()
        break
      default:
        invalid(`unknown DiceTcbInfo field [${n}]`)
    }
  }
  return { ...(out as Omit<DiceTcbInfo, 'fwids'>), fwids }
}

/**
 * Parse the content (extnValue) of an FWID-bearing DICE extension, in either
 * layout. `oid` is recorded in the result; it does not change the reading.
 */
export function parseDiceExtension(value: Uint8Array, oid: string = OID_TCG_DICE_TCB_INFO): DiceIdentity {
  try {
    const top = expectTlv(value, 0, TAG.SEQUENCE)
    if (top.end !== value.length) invalid('trailing bytes after the extension value')
    const parts = children(value, top)
    if (parts[0]?.tag === TAG.INTEGER) return parseRiot(value, parts, oid)
    return parseTcbInfo(value, parts, oid)
  } catch (e) {
    if (e instanceof ParseError && e.code === 'ATTESTATION_CERT_INVALID') throw e
    return invalid('malformed DER', e)
  }
}

/**
 * The DICE identity extension of `cert`, or undefined when it has none.
 * Two FWID-bearing extensions (both OIDs) are ambiguous and rejected.
 */
export function diceIdentityOf(cert: Certificate): DiceIdentity | undefined {
  const found = DICE_FWID_EXTENSION_OIDS.filter((oid) => cert.extensions.has(oid))
  if (found.length > 1) invalid(`certificate carries more than one FWID extension (${found.join(', ')})`)
  const oid = found[0]
  if (oid === undefined) return undefined
  return parseDiceExtension(cert.extensions.get(oid)!.value, oid)
}

/**
 * The FWID digest that NVIDIA's verifiers compare with the report's FWID:
 * the first (on Hopper, the only) FWID of the certificate's DICE extension.
 * Undefined when the certificate has no DICE extension or an empty FWID list.
 */
export function certificateFwid(cert: Certificate): Fwid | undefined {
  return diceIdentityOf(cert)?.fwids[0]
}
