/**
 * The Intel SGX extension of a PCK certificate → platform TCB identifiers.
 * No crypto.
 *
 * Source: Intel SGX PCK Certificate and Certificate Revocation List Profile
 * Specification, §1.3.5 "Intel SGX Extensions": an extension with OID
 * 1.2.840.113741.1.13.1 whose value is a SEQUENCE of (OID, value) pairs.
 */
import { ParseError } from '../../errors.ts'
import { TAG, children, contentOf, decodeOid, expectTlv, integerValue, type Tlv } from '../../asn1/der.ts'
import type { Certificate } from '../../pki/x509.ts'

/** SGX extension and its members [PCK profile §1.3.5, Table "SGX Extensions"]. */
export const OID_SGX_EXTENSION = '1.2.840.113741.1.13.1'
export const OID_SGX_PPID = `${OID_SGX_EXTENSION}.1`
export const OID_SGX_TCB = `${OID_SGX_EXTENSION}.2`
/** TCB members: .2.1 - .2.16 component SVNs, .2.17 PCESVN, .2.18 CPUSVN. */
export const OID_SGX_TCB_PCESVN = `${OID_SGX_TCB}.17`
export const OID_SGX_TCB_CPUSVN = `${OID_SGX_TCB}.18`
export const OID_SGX_PCEID = `${OID_SGX_EXTENSION}.3`
export const OID_SGX_FMSPC = `${OID_SGX_EXTENSION}.4`
export const OID_SGX_TYPE = `${OID_SGX_EXTENSION}.5`

export interface PckExtension {
  readonly ppid: Uint8Array
  /** The 16 SGX TCB component SVNs, in order 1..16. */
  readonly sgxTcbComponents: readonly number[]
  readonly pceSvn: number
  readonly cpuSvn: Uint8Array
  /** PCE-ID, 2 bytes. */
  readonly pceId: Uint8Array
  /** FMSPC, 6 bytes. */
  readonly fmspc: Uint8Array
  /** 0 = Standard, 1 = Scalable, 2 = Scalable with integrity. */
  readonly sgxType: number
}

function bad(what: string): never {
  throw new ParseError('ATTESTATION_SGX_EXTENSION_INVALID', what)
}

function octets(buf: Uint8Array, t: Tlv, size: number, what: string): Uint8Array {
  if (t.tag !== TAG.OCTET_STRING || t.end - t.contentStart !== size) bad(`${what} is not ${size} octets`)
  return contentOf(buf, t)
}

/** Extract the SGX extension of a (PCK leaf) certificate. */
export function parsePckExtension(cert: Certificate): PckExtension {
  const ext = cert.extensions.get(OID_SGX_EXTENSION)
  if (!ext) bad('certificate has no SGX extension')
  const v = ext.value
  try {
    const fields = new Map<string, Tlv>()
    for (const pair of children(v, expectTlv(v, 0, TAG.SEQUENCE, v.length))) {
      const [oid, value, extra] = children(v, pair)
      if (!oid || !value || extra) bad('SGX extension member is not an (OID, value) pair')
      const key = decodeOid(v, oid)
      if (fields.has(key)) bad(`duplicate SGX extension member ${key}`)
      fields.set(key, value)
    }
    const need = (oid: string) => fields.get(oid) ?? bad(`SGX extension lacks ${oid}`)

    const tcb = need(OID_SGX_TCB)
    const components: number[] = new Array(16).fill(-1)
    let pceSvn = -1
    let cpuSvn: Uint8Array | undefined
    for (const pair of children(v, tcb)) {
      const [oid, value] = children(v, pair)
      if (!oid || !value) bad('TCB member is not an (OID, value) pair')
      const key = decodeOid(v, oid)
      if (key === OID_SGX_TCB_CPUSVN) cpuSvn = octets(v, value, 16, 'CPUSVN')
      else if (key === OID_SGX_TCB_PCESVN) pceSvn = integerValue(v, value)
      else {
        const n = Number(key.slice(OID_SGX_TCB.length + 1))
        if (!key.startsWith(`${OID_SGX_TCB}.`) || !(n >= 1 && n <= 16) || components[n - 1] !== -1) bad(`unexpected TCB member ${key}`)
        const svn = integerValue(v, value)
        if (svn > 255) bad('TCB component SVN exceeds a byte')
        components[n - 1] = svn
      }
    }
    if (components.includes(-1) || pceSvn < 0 || pceSvn > 0xffff || !cpuSvn) bad('TCB is incomplete')
    const typeTlv = need(OID_SGX_TYPE)
    if (typeTlv.tag !== TAG.ENUMERATED) bad('SGX type is not ENUMERATED')
    return {
      ppid: octets(v, need(OID_SGX_PPID), 16, 'PPID'),
      sgxTcbComponents: components,
      pceSvn,
      cpuSvn,
      pceId: octets(v, need(OID_SGX_PCEID), 2, 'PCE-ID'),
      fmspc: octets(v, need(OID_SGX_FMSPC), 6, 'FMSPC'),
      sgxType: integerValue(v, { ...typeTlv, tag: TAG.INTEGER }),
    }
  } catch (e) {
    if (e instanceof ParseError && e.code === 'ATTESTATION_SGX_EXTENSION_INVALID') throw e
    return bad('malformed SGX extension')
  }
}
