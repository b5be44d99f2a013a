/**
 * Development collateral: TCB info and QE identity in Intel's JSON shapes,
 * signed by the dev TCB signing key, with the dev CRLs and issuer chains, as
 * one `QuoteCollateralV3` bundle. NOT FOR PRODUCTION.
 *
 * Shapes follow Intel PCS API v4 ("Get TDX TCB Information", TCB info
 * version 3; "Get TDX Quoting Enclave Identity", identity version 2) and the
 * member order of real responses (see test/vectors/tdx/(case)/collateral.json),
 * so parsers meet nothing they would not meet from Intel. `JSON.stringify` of
 * each object is the text that is signed and shipped, exactly as Intel signs
 * the exact text of the `tcbInfo` / `enclaveIdentity` member.
 */
import { sign } from 'node:crypto'
import { ConfigError } from '../errors.ts'
import type { QuoteCollateralV3 } from '../pcs/types.ts'
import type { DevRootCa } from './root-ca.ts'
import {
  DEV_PCE_ID,
  DEV_PCE_SVN,
  DEV_QE_ISV_PROD_ID,
  DEV_QE_ISV_SVN,
  DEV_QE_MISC_SELECT,
  DEV_QE_MRSIGNER,
  DEV_SGX_TCB_COMPONENTS,
  DEV_TEE_TCB_SVN,
} from './quote-signer.ts'

/** TCB statuses of Intel's TCB info and QE identity levels (PCS API v4). */
export type TcbStatus =
  | 'UpToDate'
  | 'SWHardeningNeeded'
  | 'ConfigurationNeeded'
  | 'ConfigurationAndSWHardeningNeeded'
  | 'OutOfDate'
  | 'OutOfDateConfigurationNeeded'
  | 'Revoked'

/** One TCB component: an SVN with Intel's optional labels. */
export interface TcbComponentJson {
  readonly svn: number
  readonly category?: string
  readonly type?: string
}

/** A platform TCB level of TDX TCB info v3 [PCS API v4, tcbLevels]. */
export interface TcbLevelJson {
  readonly tcb: {
    readonly sgxtcbcomponents: readonly TcbComponentJson[]
    readonly pcesvn: number
    readonly tdxtcbcomponents: readonly TcbComponentJson[]
  }
  readonly tcbDate: string
  readonly tcbStatus: TcbStatus
  readonly advisoryIDs?: readonly string[]
}

/** A QE identity or TDX module TCB level: one ISVSVN threshold. */
export interface IsvTcbLevelJson {
  readonly tcb: { readonly isvsvn: number }
  readonly tcbDate: string
  readonly tcbStatus: TcbStatus
  readonly advisoryIDs?: readonly string[]
}

/** `tdxModuleIdentities[]` of TCB info v3: one per TDX module major version ("TDX_01", ...). */
export interface TdxModuleIdentityJson {
  readonly id: string
  readonly mrsigner: string
  readonly attributes: string
  readonly attributesMask: string
  readonly tcbLevels: readonly IsvTcbLevelJson[]
}

/** `tdxModule` of TCB info v3: MRSIGNERSEAM and SEAM attributes the TD report must show. */
export interface TdxModuleJson {
  readonly mrsigner: string
  readonly attributes: string
  readonly attributesMask: string
}

/** The QE identity fields the QE report is compared with (upper-case hex as Intel writes them). */
export interface QeIdentityFields {
  readonly miscselect: string
  readonly miscselectMask: string
  readonly attributes: string
  readonly attributesMask: string
  readonly mrsigner: string
  readonly isvprodid: number
}

/** Platform values the default levels describe; `signer.platform` has this shape. */
export interface DevCollateralPlatform {
  readonly sgxTcbComponents?: readonly number[]
  readonly pceSvn?: number
  /** 16 bytes hex. */
  readonly teeTcbSvn?: string
  readonly qeSvn?: number
  readonly pceId?: string
}

export interface SignDevCollateralOptions {
  /** 6 bytes hex, the FMSPC of the PCK leaf. */
  readonly fmspc: string
  /** issueDate and CRL thisUpdate (whole seconds, rounded down). */
  readonly now: Date
  /** nextUpdate = now + this many days, for TCB info, QE identity and both CRLs; default 30 (Intel's). */
  readonly nextUpdateDays?: number
  /** Default 1 (dev collateral has no history of evaluation rounds). */
  readonly tcbEvaluationDataNumber?: number
  /** The platform the default UpToDate levels match; default the quote signer's defaults. */
  readonly platform?: DevCollateralPlatform
  /** Platform TCB levels, highest first; default one UpToDate level equal to `platform`. */
  readonly tcbLevels?: readonly TcbLevelJson[]
  /** QE identity levels, highest first; default one UpToDate level at `platform.qeSvn`. */
  readonly qeTcbLevels?: readonly IsvTcbLevelJson[]
  /** Default: MRSIGNERSEAM zero (Intel-signed module), attributes zero under a full mask. */
  readonly tdxModule?: TdxModuleJson
  /** Default: one identity for the module major version in `teeTcbSvn[1]`, UpToDate at its SVN. */
  readonly tdxModuleIdentities?: readonly TdxModuleIdentityJson[]
  /** Override QE identity fields (e.g. a wrong MRSIGNER for a negative test). */
  readonly qeIdentity?: Partial<QeIdentityFields>
  /** Serials (hex) the PCK CRL lists. */
  readonly revokedPckSerials?: readonly string[]
  /** Serials (hex) the root CA CRL lists (platform CA, TCB signing). */
  readonly revokedCaSerials?: readonly string[]
}

/** Intel's default lifetime of TCB info, QE identity and CRLs. */
const DEFAULT_NEXT_UPDATE_DAYS = 30
const DAY_MS = 86_400_000

/**
 * QE identity ATTRIBUTES and mask of Intel's TD_QE identity: the mask drops
 * MODE64BIT (bit 2) and XFRM, and keeps DEBUG (bit 1) so a debug QE never matches.
 */
const QE_IDENTITY_ATTRIBUTES = '11000000000000000000000000000000'
const QE_IDENTITY_ATTRIBUTES_MASK = 'FBFFFFFFFFFFFFFF0000000000000000'

/** Labels Intel gives the leading SGX and TDX components; later components carry none. */
const SGX_COMPONENT_LABELS: readonly (Omit<TcbComponentJson, 'svn'> | undefined)[] = [
  { category: 'BIOS', type: 'Early Microcode Update' },
  { category: 'OS/VMM', type: 'SGX Late Microcode Update' },
  { category: 'OS/VMM', type: 'TXT SINIT' },
  { category: 'BIOS' },
  { category: 'BIOS' },
  { category: 'BIOS' },
  undefined,
  { category: 'OS/VMM', type: 'SEAMLDR ACM' },
]
const TDX_COMPONENT_LABELS: readonly (Omit<TcbComponentJson, 'svn'> | undefined)[] = [
  { category: 'OS/VMM', type: 'TDX Module' },
  { category: 'OS/VMM', type: 'TDX Module' },
  { category: 'OS/VMM', type: 'TDX Late Microcode Update' },
]

function invalid(what: string): never {
  throw new ConfigError('ATTESTATION_OPTIONS_INVALID', what)
}

/** Intel's timestamp form: ISO 8601 UTC without milliseconds. */
function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

function hexUpper(value: string, size: number, name: string): string {
  if (!new RegExp(`^[0-9a-fA-F]{${size * 2}}$`).test(value)) invalid(`${name} must be ${size} bytes of hex`)
  return value.toUpperCase()
}

function components(svns: readonly number[], labels: readonly (Omit<TcbComponentJson, 'svn'> | undefined)[]): TcbComponentJson[] {
  if (svns.length !== 16) invalid('a TCB level has 16 components')
  return svns.map((svn, i) => ({ svn, ...labels[i] }))
}

/**
 * One platform TCB level from plain SVNs: for tests that add e.g. an
 * OutOfDate level below the UpToDate one.
 */
export function devTcbLevel(o: {
  readonly sgxTcbComponents: readonly number[]
  readonly pceSvn: number
  /** 16 bytes hex or the 16 SVNs. */
  readonly teeTcbSvn: string | readonly number[]
  readonly tcbStatus: TcbStatus
  readonly tcbDate: string
  readonly advisoryIDs?: readonly string[]
}): TcbLevelJson {
  const tdx = typeof o.teeTcbSvn === 'string' ? [...Buffer.from(hexUpper(o.teeTcbSvn, 16, 'teeTcbSvn'), 'hex')] : o.teeTcbSvn
  return {
    tcb: {
      sgxtcbcomponents: components(o.sgxTcbComponents, SGX_COMPONENT_LABELS),
      pcesvn: o.pceSvn,
      tdxtcbcomponents: components(tdx, TDX_COMPONENT_LABELS),
    },
    tcbDate: o.tcbDate,
    tcbStatus: o.tcbStatus,
    ...(o.advisoryIDs && o.advisoryIDs.length > 0 ? { advisoryIDs: [...o.advisoryIDs] } : {}),
  }
}

/** Raw `r || s` hex over the UTF-8 bytes of `text`: Intel's collateral signature form. */
function signText(ca: DevRootCa, text: string): string {
  return sign('sha256', Buffer.from(text, 'utf8'), { key: ca.tcbSigningKey.privateKey, dsaEncoding: 'ieee-p1363' }).toString('hex')
}

/**
 * Sign a full collateral bundle for one FMSPC under the dev CA. Defaults make
 * a quote from `createDevQuoteSigner(ca, { fmspc })` verify as UpToDate.
 */
export function signDevCollateral(ca: DevRootCa, options: SignDevCollateralOptions): QuoteCollateralV3 {
  if (!(options.now instanceof Date) || Number.isNaN(options.now.getTime())) invalid('now must be a valid Date')
  const days = options.nextUpdateDays ?? DEFAULT_NEXT_UPDATE_DAYS
  if (!Number.isFinite(days) || days <= 0) invalid('nextUpdateDays must be positive')
  // Whole seconds, so that issueDate never lies after `now` and the JSON and CRL agree.
  const issued = new Date(Math.floor(options.now.getTime() / 1000) * 1000)
  const next = new Date(issued.getTime() + days * DAY_MS)
  const issueDate = isoSeconds(issued)
  const nextUpdate = isoSeconds(next)
  // Intel's tcbDate is a midnight at or before the issue date.
  const tcbDate = `${issueDate.slice(0, 10)}T00:00:00Z`

  const p = options.platform ?? {}
  const teeTcbSvn = hexUpper(p.teeTcbSvn ?? DEV_TEE_TCB_SVN, 16, 'platform.teeTcbSvn')
  const teeBytes = Buffer.from(teeTcbSvn, 'hex')
  const qeSvn = p.qeSvn ?? DEV_QE_ISV_SVN
  const tcbEvaluationDataNumber = options.tcbEvaluationDataNumber ?? 1

  const tcbLevels = options.tcbLevels ?? [
    devTcbLevel({
      sgxTcbComponents: p.sgxTcbComponents ?? DEV_SGX_TCB_COMPONENTS,
      pceSvn: p.pceSvn ?? DEV_PCE_SVN,
      teeTcbSvn,
      tcbStatus: 'UpToDate',
      tcbDate,
    }),
  ]
  const zeroSigner = '00'.repeat(48)
  const tdxModule = options.tdxModule ?? { mrsigner: zeroSigner, attributes: '0000000000000000', attributesMask: 'FFFFFFFFFFFFFFFF' }
  // Module identity ids are "TDX_" and the major version (TEE_TCB_SVN byte 1) in two hex digits.
  const tdxModuleIdentities = options.tdxModuleIdentities ?? [
    {
      id: `TDX_${teeBytes[1]!.toString(16).toUpperCase().padStart(2, '0')}`,
      mrsigner: tdxModule.mrsigner,
      attributes: tdxModule.attributes,
      attributesMask: tdxModule.attributesMask,
      tcbLevels: [{ tcb: { isvsvn: teeBytes[0]! }, tcbDate, tcbStatus: 'UpToDate' as const }],
    },
  ]

  const tcbInfo = {
    id: 'TDX',
    version: 3,
    issueDate,
    nextUpdate,
    fmspc: hexUpper(options.fmspc, 6, 'fmspc'),
    pceId: hexUpper(p.pceId ?? DEV_PCE_ID, 2, 'pceId'),
    tcbType: 0,
    tcbEvaluationDataNumber,
    tdxModule,
    tdxModuleIdentities,
    tcbLevels,
  }

  const q = options.qeIdentity ?? {}
  const qeIdentity = {
    id: 'TD_QE',
    version: 2,
    issueDate,
    nextUpdate,
    tcbEvaluationDataNumber,
    miscselect: q.miscselect ?? DEV_QE_MISC_SELECT.toString(16).padStart(8, '0'),
    miscselectMask: q.miscselectMask ?? 'FFFFFFFF',
    attributes: q.attributes ?? QE_IDENTITY_ATTRIBUTES,
    attributesMask: q.attributesMask ?? QE_IDENTITY_ATTRIBUTES_MASK,
    mrsigner: q.mrsigner ?? DEV_QE_MRSIGNER.toUpperCase(),
    isvprodid: q.isvprodid ?? DEV_QE_ISV_PROD_ID,
    tcbLevels: options.qeTcbLevels ?? [{ tcb: { isvsvn: qeSvn }, tcbDate, tcbStatus: 'UpToDate' as const }],
  }

  const tcbInfoText = JSON.stringify(tcbInfo)
  const qeIdentityText = JSON.stringify(qeIdentity)
  const rootCrl = ca.issueCrl({ issuer: 'root', revokedSerials: options.revokedCaSerials ?? [], thisUpdate: issued, nextUpdate: next })
  const pckCrl = ca.issueCrl({ issuer: 'platform', revokedSerials: options.revokedPckSerials ?? [], thisUpdate: issued, nextUpdate: next })
  return {
    pck_crl_issuer_chain: ca.pckCrlIssuerChainPem,
    root_ca_crl: Buffer.from(rootCrl).toString('hex'),
    pck_crl: Buffer.from(pckCrl).toString('hex'),
    tcb_info_issuer_chain: ca.tcbSigningChainPem,
    tcb_info: tcbInfoText,
    tcb_info_signature: signText(ca, tcbInfoText),
    qe_identity_issuer_chain: ca.tcbSigningChainPem,
    qe_identity: qeIdentityText,
    qe_identity_signature: signText(ca, qeIdentityText),
  }
}
