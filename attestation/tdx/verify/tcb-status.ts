/**
 * TCB evaluation: which level of Intel's published TCB the platform, the TDX
 * module and the QE are at, and the combined status.
 *
 * Follows Intel's Quote Verification Library (QVL) semantics:
 * - platform level: the first level (best first) whose 16 SGX component
 *   SVNs, PCESVN and, for TDX, 16 TEE_TCB_SVN components are all <= the
 *   platform's values;
 * - TDX module: MRSIGNERSEAM and masked SEAM attributes must match the module
 *   identity; when TEE_TCB_SVN[1] (module major version) > 0, the identity
 *   `TDX_<version>` supplies the module's own TCB levels over TEE_TCB_SVN[0];
 * - QE: MRSIGNER, ISVPRODID, masked MISCSELECT and attributes must match the
 *   QE identity; its level is the first with isvsvn <= the QE's ISVSVN;
 * - convergence (QVL `convergeTcbStatusWithQeTcbStatus` and the TDX module
 *   equivalent): an OutOfDate QE or module turns a platform that is
 *   UpToDate/SWHardeningNeeded into OutOfDate, and one that needs
 *   configuration into OutOfDateConfigurationNeeded; Revoked anywhere is
 *   Revoked; otherwise the platform status stands. Advisories are the union.
 * No level met is a verification failure, never a silent "unknown".
 */
import { VerificationError } from '../../errors.ts'
import type { EnclaveReport, Quote, TdReport } from '../abi/quote.ts'
import type { IsvTcbLevel, QeIdentity, TcbInfo, TcbLevel, TcbStatus } from '../abi/collateral.ts'
import type { PckExtension } from '../abi/pck-extension.ts'
import { hex } from '../../bytes/hex.ts'

export interface StatusWithAdvisories {
  readonly status: TcbStatus
  readonly advisoryIds: readonly string[]
  readonly tcbDate: string
}

function maskedEqual(actual: Uint8Array, expected: Uint8Array, mask: Uint8Array): boolean {
  for (let i = 0; i < mask.length; i++) if ((actual[i]! & mask[i]!) !== (expected[i]! & mask[i]!)) return false
  return true
}

function compareDesc(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return b[i]! - a[i]!
  return 0
}

const sortedLevels = new WeakMap<TcbInfo, readonly TcbLevel[]>()

/**
 * Levels in QVL's canonical order (SGX components, then PCESVN, then TDX
 * components, each descending), so the first match is the best one whatever
 * order the document lists them in. Computed once per TCB info.
 */
function levelsOf(info: TcbInfo): readonly TcbLevel[] {
  let levels = sortedLevels.get(info)
  if (!levels) {
    levels = [...info.tcbLevels].sort(
      (a, b) =>
        compareDesc(a.sgxComponents, b.sgxComponents) ||
        b.pceSvn - a.pceSvn ||
        compareDesc(a.tdxComponents ?? [], b.tdxComponents ?? []),
    )
    sortedLevels.set(info, levels)
  }
  return levels
}

/** Platform TCB level for a quote, after checking the TCB info is the right one. */
export function matchPlatformTcb(info: TcbInfo, pck: PckExtension, quote: Quote): StatusWithAdvisories {
  const tdx = quote.body.kind !== 'sgx'
  const fmspc = hex(pck.fmspc)
  const pceId = hex(pck.pceId)
  const rightKind = tdx ? info.id === 'TDX' && info.version >= 3 : info.id === 'SGX' && info.version >= 2
  if (!rightKind || info.fmspc !== fmspc || info.pceId !== pceId) {
    throw new VerificationError('ATTESTATION_TCB_INFO_MISMATCH', 'TCB info does not describe this platform', {
      details: { tcbInfo: { id: info.id, version: info.version, fmspc: info.fmspc, pceId: info.pceId }, quote: { tdx, fmspc, pceId } },
    })
  }
  const teeTcbSvn = tdx ? (quote.body.report as TdReport).teeTcbSvn : undefined
  for (const level of levelsOf(info)) {
    if (pck.pceSvn < level.pceSvn) continue
    if (level.sgxComponents.some((svn, i) => pck.sgxTcbComponents[i]! < svn)) continue
    if (teeTcbSvn) {
      const comps = level.tdxComponents
      if (!comps) {
        throw new VerificationError('ATTESTATION_TCB_INFO_MISMATCH', 'TDX TCB level without TDX components', { details: { tcbDate: level.tcbDate } })
      }
      if (comps.some((svn, i) => teeTcbSvn[i]! < svn)) continue
    }
    return { status: level.tcbStatus, advisoryIds: level.advisoryIds, tcbDate: level.tcbDate }
  }
  throw new VerificationError('ATTESTATION_TCB_LEVEL_NOT_FOUND', 'the platform meets no published TCB level', {
    details: { fmspc, pceSvn: pck.pceSvn, sgxTcbComponents: pck.sgxTcbComponents, teeTcbSvn: teeTcbSvn && hex(teeTcbSvn) },
  })
}

function firstIsvLevel(levels: readonly IsvTcbLevel[], isvsvn: number, what: string): StatusWithAdvisories {
  const level = levels.find((l) => isvsvn >= l.isvsvn)
  if (!level) {
    throw new VerificationError('ATTESTATION_TCB_LEVEL_NOT_FOUND', `${what} meets no published TCB level`, { details: { what, isvsvn } })
  }
  return { status: level.tcbStatus, advisoryIds: level.advisoryIds, tcbDate: level.tcbDate }
}

/**
 * TDX module identity. Returns the module's own TCB level when the TCB info
 * publishes levels for its version, else null (identity checked, no levels).
 */
export function matchTdxModule(info: TcbInfo, report: TdReport): (StatusWithAdvisories & { id: string }) | null {
  const base = info.tdxModule
  if (!base) {
    throw new VerificationError('ATTESTATION_TCB_INFO_MISMATCH', 'TDX TCB info has no tdxModule', { details: { fmspc: info.fmspc } })
  }
  const isvsvn = report.teeTcbSvn[0]!
  const version = report.teeTcbSvn[1]!
  let expected: { mrsigner: Uint8Array; attributes: Uint8Array; attributesMask: Uint8Array; tcbLevels?: readonly IsvTcbLevel[] } = base
  let id = 'tdxModule'
  if (version > 0 && info.tdxModuleIdentities.length > 0) {
    id = `TDX_${version.toString(16).toUpperCase().padStart(2, '0')}`
    const identity = info.tdxModuleIdentities.find((m) => m.id.toUpperCase() === id)
    if (!identity) {
      throw new VerificationError('ATTESTATION_TDX_MODULE_MISMATCH', `TCB info has no identity for TDX module ${id}`, { details: { id } })
    }
    expected = identity
  }
  const attrsOk = maskedEqual(report.seamAttributes, expected.attributes, expected.attributesMask)
  const outsideMask = report.seamAttributes.some((b, i) => (b & ~expected.attributesMask[i]!) !== 0)
  if (hex(report.mrSignerSeam) !== hex(expected.mrsigner) || !attrsOk || outsideMask) {
    throw new VerificationError('ATTESTATION_TDX_MODULE_MISMATCH', 'TDX module signer or attributes do not match its identity', {
      details: { id, mrSignerSeam: hex(report.mrSignerSeam), seamAttributes: hex(report.seamAttributes) },
    })
  }
  if (!expected.tcbLevels) return null
  return { ...firstIsvLevel(expected.tcbLevels, isvsvn, `TDX module ${id}`), id }
}

/** QE identity match and the QE's TCB level. */
export function matchQeIdentity(identity: QeIdentity, qe: EnclaveReport, tdx: boolean): StatusWithAdvisories {
  const expectedId = tdx ? 'TD_QE' : 'QE'
  const misc = new Uint8Array([qe.miscSelect & 0xff, (qe.miscSelect >>> 8) & 0xff, (qe.miscSelect >>> 16) & 0xff, qe.miscSelect >>> 24])
  const problems: string[] = []
  if (identity.id !== expectedId || identity.version !== 2) problems.push('id')
  if (hex(qe.mrSigner) !== hex(identity.mrsigner)) problems.push('mrsigner')
  if (qe.isvProdId !== identity.isvprodid) problems.push('isvprodid')
  if (!maskedEqual(misc, identity.miscselect, identity.miscselectMask)) problems.push('miscselect')
  if (!maskedEqual(qe.attributes, identity.attributes, identity.attributesMask)) problems.push('attributes')
  if (problems.length > 0) {
    throw new VerificationError('ATTESTATION_QE_IDENTITY_MISMATCH', 'the QE does not match its published identity', {
      details: { fields: problems, identity: { id: identity.id, version: identity.version }, expectedId },
    })
  }
  return firstIsvLevel(identity.tcbLevels, qe.isvSvn, 'QE')
}

const CONFIG_NEEDED: ReadonlySet<TcbStatus> = new Set(['ConfigurationNeeded', 'ConfigurationAndSWHardeningNeeded'])
const CURRENT: ReadonlySet<TcbStatus> = new Set(['UpToDate', 'SWHardeningNeeded'])

/** QVL convergence of the platform status with a component's (QE or TDX module). */
export function convergeStatus(platform: TcbStatus, component: TcbStatus): TcbStatus {
  if (component === 'Revoked' || platform === 'Revoked') return 'Revoked'
  if (component === 'OutOfDate') {
    if (CURRENT.has(platform)) return 'OutOfDate'
    if (CONFIG_NEEDED.has(platform)) return 'OutOfDateConfigurationNeeded'
  }
  return platform
}

/** Union of advisory ids, first occurrence order. */
export function mergeAdvisories(...lists: (readonly string[] | undefined)[]): string[] {
  return [...new Set(lists.flatMap((l) => l ?? []))]
}
