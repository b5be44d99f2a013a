/**
 * Collateral bundle → typed structures. No crypto, no freshness checks.
 *
 * The JSON documents are parsed for their values, but the exact bytes Intel
 * signed are kept beside them for the verifier. Every field the verifier
 * relies on is checked for type and length here, and unknown TCB status
 * strings are errors: a status this code does not know cannot be ranked, so
 * it cannot be accepted (fail closed).
 *
 * Sources: Intel PCS API v4 documentation, "TCB Info V3" and "Enclave
 * Identity V2" JSON schemas; Intel SGX PCK Certificate and CRL Profile.
 */
import { ParseError } from '../../errors.ts'
import { pemToDer } from '../../asn1/pem.ts'
import { parseCertificate, type Certificate } from '../../pki/x509.ts'
import { parseCrl, type Crl } from '../../pki/crl.ts'
import type { QuoteCollateralV3 } from '../../pcs/types.ts'

/** TCB statuses of TCB info v3 and enclave identity v2, best first. */
export const TCB_STATUSES = [
  'UpToDate',
  'SWHardeningNeeded',
  'ConfigurationNeeded',
  'ConfigurationAndSWHardeningNeeded',
  'OutOfDate',
  'OutOfDateConfigurationNeeded',
  'Revoked',
] as const
export type TcbStatus = (typeof TCB_STATUSES)[number]

export interface TcbLevel {
  readonly sgxComponents: readonly number[]
  readonly pceSvn: number
  /** Present in TDX TCB info: the 16 TEE_TCB_SVN component SVNs. */
  readonly tdxComponents?: readonly number[]
  readonly tcbDate: string
  readonly tcbStatus: TcbStatus
  readonly advisoryIds: readonly string[]
}

export interface IsvTcbLevel {
  readonly isvsvn: number
  readonly tcbDate: string
  readonly tcbStatus: TcbStatus
  readonly advisoryIds: readonly string[]
}

export interface TdxModuleIdentity {
  readonly id: string
  readonly mrsigner: Uint8Array
  readonly attributes: Uint8Array
  readonly attributesMask: Uint8Array
  readonly tcbLevels: readonly IsvTcbLevel[]
}

export interface TcbInfo {
  readonly id: 'TDX' | 'SGX'
  readonly version: number
  readonly issueDate: number
  readonly nextUpdate: number
  /** Lower-case hex. */
  readonly fmspc: string
  readonly pceId: string
  readonly tcbType: number
  readonly tcbEvaluationDataNumber: number
  readonly tdxModule?: { readonly mrsigner: Uint8Array; readonly attributes: Uint8Array; readonly attributesMask: Uint8Array }
  readonly tdxModuleIdentities: readonly TdxModuleIdentity[]
  /** In the order of the document (Intel publishes them best first). */
  readonly tcbLevels: readonly TcbLevel[]
}

export interface QeIdentity {
  readonly id: string
  readonly version: number
  readonly issueDate: number
  readonly nextUpdate: number
  readonly tcbEvaluationDataNumber: number
  readonly miscselect: Uint8Array
  readonly miscselectMask: Uint8Array
  readonly attributes: Uint8Array
  readonly attributesMask: Uint8Array
  readonly mrsigner: Uint8Array
  readonly isvprodid: number
  readonly tcbLevels: readonly IsvTcbLevel[]
}

/** A signed JSON document: the parsed value and the exact signed bytes. */
export interface Signed<T> {
  readonly value: T
  readonly bytes: Uint8Array
  /** Raw `r || s`. */
  readonly signature: Uint8Array
  /** Issuer chain, leaf (signing cert) first. */
  readonly chain: readonly Certificate[]
}

/** Parsed collateral for one quote. */
export interface Collateral {
  readonly tcbInfo: Signed<TcbInfo>
  readonly qeIdentity: Signed<QeIdentity>
  readonly pckCrl: Crl
  readonly pckCrlChain: readonly Certificate[]
  readonly rootCaCrl: Crl
  readonly pckChain?: readonly Certificate[]
}

type Json = Record<string, unknown>

function bad(field: string, what: string): never {
  throw new ParseError('ATTESTATION_COLLATERAL_MALFORMED', `${field}: ${what}`, { details: { field } })
}

function obj(v: unknown, field: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(field, 'expected an object')
  return v as Json
}

function arr(v: unknown, field: string): unknown[] {
  if (!Array.isArray(v)) bad(field, 'expected an array')
  return v
}

function int(v: unknown, field: string, max = 0xffffffff): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) bad(field, 'expected a non-negative integer')
  return v
}

function str(v: unknown, field: string): string {
  if (typeof v !== 'string') bad(field, 'expected a string')
  return v
}

function hex(v: unknown, field: string, bytes: number): Uint8Array {
  const s = str(v, field)
  if (s.length !== bytes * 2 || !/^[0-9a-fA-F]*$/.test(s)) bad(field, `expected ${bytes} bytes of hex`)
  return new Uint8Array(Buffer.from(s, 'hex'))
}

/**
 * RFC 3339 instant (§5.6) with a Z or offset, as Intel writes them. Every
 * field is range-checked: `Date.parse` alone rolls 2025-02-30 over to March.
 */
function instant(v: unknown, field: string): number {
  const s = str(v, field)
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(s)
  if (m) {
    const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number]
    const day = new Date(Date.UTC(y, mo - 1, d))
    if (mo >= 1 && mo <= 12 && day.getUTCDate() === d && day.getUTCMonth() === mo - 1 && h <= 23 && mi <= 59 && se <= 59) {
      return Date.parse(s)
    }
  }
  return bad(field, 'expected an RFC 3339 date-time')
}

function status(v: unknown, field: string): TcbStatus {
  const s = str(v, field)
  if (!(TCB_STATUSES as readonly string[]).includes(s)) bad(field, `unknown TCB status ${JSON.stringify(s)}`)
  return s as TcbStatus
}

function advisories(v: unknown, field: string): string[] {
  if (v === undefined) return []
  return arr(v, field).map((a, i) => str(a, `${field}[${i}]`))
}

function components(v: unknown, field: string): number[] {
  const list = arr(v, field)
  if (list.length !== 16) bad(field, 'expected 16 components')
  return list.map((c, i) => int(obj(c, `${field}[${i}]`).svn, `${field}[${i}].svn`, 255))
}

function isvLevels(v: unknown, field: string): IsvTcbLevel[] {
  const list = arr(v, field)
  if (list.length === 0) bad(field, 'no TCB levels')
  return list.map((l, i) => {
    const f = `${field}[${i}]`
    const o = obj(l, f)
    return {
      isvsvn: int(obj(o.tcb, `${f}.tcb`).isvsvn, `${f}.tcb.isvsvn`, 0xffff),
      tcbDate: str(o.tcbDate, `${f}.tcbDate`),
      tcbStatus: status(o.tcbStatus, `${f}.tcbStatus`),
      advisoryIds: advisories(o.advisoryIDs, `${f}.advisoryIDs`),
    }
  })
}

function parseJsonText(text: string, field: string): Json {
  try {
    return obj(JSON.parse(text), field)
  } catch (e) {
    if (e instanceof ParseError) throw e
    return bad(field, 'not JSON')
  }
}

/** Parse TCB info v2/v3 JSON (the `tcbInfo` member, exact text). */
export function parseTcbInfo(text: string): TcbInfo {
  const o = parseJsonText(text, 'tcbInfo')
  const id = o.id === undefined ? 'SGX' : str(o.id, 'tcbInfo.id')
  if (id !== 'TDX' && id !== 'SGX') bad('tcbInfo.id', `unknown id ${JSON.stringify(id)}`)
  const levels = arr(o.tcbLevels, 'tcbInfo.tcbLevels')
  if (levels.length === 0) bad('tcbInfo.tcbLevels', 'no TCB levels')
  const tm = o.tdxModule === undefined ? undefined : obj(o.tdxModule, 'tcbInfo.tdxModule')
  return {
    id,
    version: int(o.version, 'tcbInfo.version'),
    issueDate: instant(o.issueDate, 'tcbInfo.issueDate'),
    nextUpdate: instant(o.nextUpdate, 'tcbInfo.nextUpdate'),
    fmspc: Buffer.from(hex(o.fmspc, 'tcbInfo.fmspc', 6)).toString('hex'),
    pceId: Buffer.from(hex(o.pceId, 'tcbInfo.pceId', 2)).toString('hex'),
    tcbType: int(o.tcbType ?? 0, 'tcbInfo.tcbType'),
    tcbEvaluationDataNumber: int(o.tcbEvaluationDataNumber, 'tcbInfo.tcbEvaluationDataNumber'),
    ...(tm
      ? {
          tdxModule: {
            mrsigner: hex(tm.mrsigner, 'tcbInfo.tdxModule.mrsigner', 48),
            attributes: hex(tm.attributes, 'tcbInfo.tdxModule.attributes', 8),
            attributesMask: hex(tm.attributesMask, 'tcbInfo.tdxModule.attributesMask', 8),
          },
        }
      : {}),
    tdxModuleIdentities: (o.tdxModuleIdentities === undefined ? [] : arr(o.tdxModuleIdentities, 'tcbInfo.tdxModuleIdentities')).map(
      (m, i) => {
        const f = `tcbInfo.tdxModuleIdentities[${i}]`
        const mo = obj(m, f)
        return {
          id: str(mo.id, `${f}.id`),
          mrsigner: hex(mo.mrsigner, `${f}.mrsigner`, 48),
          attributes: hex(mo.attributes, `${f}.attributes`, 8),
          attributesMask: hex(mo.attributesMask, `${f}.attributesMask`, 8),
          tcbLevels: isvLevels(mo.tcbLevels, `${f}.tcbLevels`),
        }
      },
    ),
    tcbLevels: levels.map((l, i) => {
      const f = `tcbInfo.tcbLevels[${i}]`
      const lo = obj(l, f)
      const tcb = obj(lo.tcb, `${f}.tcb`)
      // TCB info v2 lists sgxtcbcompNNsvn fields; v3 lists sgxtcbcomponents.
      const sgx =
        tcb.sgxtcbcomponents !== undefined
          ? components(tcb.sgxtcbcomponents, `${f}.tcb.sgxtcbcomponents`)
          : Array.from({ length: 16 }, (_, k) => {
              const name = `sgxtcbcomp${String(k + 1).padStart(2, '0')}svn`
              return int(tcb[name], `${f}.tcb.${name}`, 255)
            })
      return {
        sgxComponents: sgx,
        pceSvn: int(tcb.pcesvn, `${f}.tcb.pcesvn`, 0xffff),
        ...(tcb.tdxtcbcomponents !== undefined ? { tdxComponents: components(tcb.tdxtcbcomponents, `${f}.tcb.tdxtcbcomponents`) } : {}),
        tcbDate: str(lo.tcbDate, `${f}.tcbDate`),
        tcbStatus: status(lo.tcbStatus, `${f}.tcbStatus`),
        advisoryIds: advisories(lo.advisoryIDs, `${f}.advisoryIDs`),
      }
    }),
  }
}

/** Parse enclave identity v2 JSON (the `enclaveIdentity` member, exact text). */
export function parseQeIdentity(text: string): QeIdentity {
  const o = parseJsonText(text, 'qeIdentity')
  return {
    id: str(o.id, 'qeIdentity.id'),
    version: int(o.version, 'qeIdentity.version'),
    issueDate: instant(o.issueDate, 'qeIdentity.issueDate'),
    nextUpdate: instant(o.nextUpdate, 'qeIdentity.nextUpdate'),
    tcbEvaluationDataNumber: int(o.tcbEvaluationDataNumber, 'qeIdentity.tcbEvaluationDataNumber'),
    miscselect: hex(o.miscselect, 'qeIdentity.miscselect', 4),
    miscselectMask: hex(o.miscselectMask, 'qeIdentity.miscselectMask', 4),
    attributes: hex(o.attributes, 'qeIdentity.attributes', 16),
    attributesMask: hex(o.attributesMask, 'qeIdentity.attributesMask', 16),
    mrsigner: hex(o.mrsigner, 'qeIdentity.mrsigner', 32),
    isvprodid: int(o.isvprodid, 'qeIdentity.isvprodid', 0xffff),
    tcbLevels: isvLevels(o.tcbLevels, 'qeIdentity.tcbLevels'),
  }
}

function chain(pem: unknown, field: string): Certificate[] {
  return pemToDer(str(pem, field)).map(parseCertificate)
}

function derHex(v: unknown, field: string): Uint8Array {
  const s = str(v, field).trim()
  if (s.length === 0 || s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) bad(field, 'expected hex DER')
  return new Uint8Array(Buffer.from(s, 'hex'))
}

/**
 * Parse a QuoteCollateralV3 bundle (an object, or its JSON text). Done once;
 * the result is reused for every quote it covers.
 */
export function parseCollateral(input: QuoteCollateralV3 | string): Collateral {
  const b = typeof input === 'string' ? (parseJsonText(input, 'collateral') as unknown as QuoteCollateralV3) : input
  obj(b, 'collateral')
  const tcbText = str(b.tcb_info, 'tcb_info')
  const qeText = str(b.qe_identity, 'qe_identity')
  return {
    tcbInfo: {
      value: parseTcbInfo(tcbText),
      bytes: new Uint8Array(Buffer.from(tcbText, 'utf8')),
      signature: hex(b.tcb_info_signature, 'tcb_info_signature', 64),
      chain: chain(b.tcb_info_issuer_chain, 'tcb_info_issuer_chain'),
    },
    qeIdentity: {
      value: parseQeIdentity(qeText),
      bytes: new Uint8Array(Buffer.from(qeText, 'utf8')),
      signature: hex(b.qe_identity_signature, 'qe_identity_signature', 64),
      chain: chain(b.qe_identity_issuer_chain, 'qe_identity_issuer_chain'),
    },
    pckCrl: parseCrl(derHex(b.pck_crl, 'pck_crl')),
    pckCrlChain: chain(b.pck_crl_issuer_chain, 'pck_crl_issuer_chain'),
    rootCaCrl: parseCrl(derHex(b.root_ca_crl, 'root_ca_crl')),
    ...(b.pck_certificate_chain ? { pckChain: chain(b.pck_certificate_chain, 'pck_certificate_chain') } : {}),
  }
}
