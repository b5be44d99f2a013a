/**
 * TCB evaluation on-chain versus the TypeScript verifier, beyond what the
 * real vectors exercise: dev collateral (attestation/dev signDevCollateral)
 * describing the same dev quote as OutOfDate, SWHardeningNeeded,
 * ConfigurationNeeded + an OutOfDate QE, an OutOfDate TDX module, Revoked,
 * no level met, a foreign QE identity or a missing module identity.
 * Each variant is submitted as newer collateral and verified by
 * AttestationRegistry.verifyQuote; status and advisories, or the failure,
 * must match attestation/tdx verifyQuote under the dev root.
 */
import t from 'tap'
import { verifyQuote } from '../attestation/tdx/index.ts'
import { BaseError } from '../attestation/errors.ts'
import { trustedRootFromDer } from '../attestation/roots/trust-root.ts'
import { devTcbLevel, DEV_FMSPC, signDevCollateral, type SignDevCollateralOptions } from '../attestation/dev/index.ts'
import { collateralSubmission, pckLeafOf } from '../contracts/client/collateral.ts'
import { RegistryError } from '../contracts/client/errors.ts'
import { devRegistry } from './helpers/dev-registry.ts'

const FAILURES: Record<string, string> = {
  ATTESTATION_TCB_REVOKED: 'REGISTRY_TCB_REVOKED',
  ATTESTATION_TCB_LEVEL_NOT_FOUND: 'REGISTRY_TCB_LEVEL_NOT_FOUND',
  ATTESTATION_QE_IDENTITY_MISMATCH: 'REGISTRY_QE_IDENTITY_MISMATCH',
  ATTESTATION_TDX_MODULE_MISMATCH: 'REGISTRY_TDX_MODULE_MISMATCH',
}

t.test('the contract and the TypeScript verifier agree on dev collateral variants', async (t) => {
  const f = await devRegistry(t)
  const root = trustedRootFromDer('dev', f.ca.rootCertificateDer, f.ca.rootFingerprint)
  const p = f.signer.platform
  const sgx = p.sgxTcbComponents
  const higher = [sgx[0]! + 1, ...sgx.slice(1)]
  const tee = p.teeTcbSvn
  const date = '2025-01-01T00:00:00Z'
  const level = (o: { sgx?: readonly number[]; status: Parameters<typeof devTcbLevel>[0]['tcbStatus']; advisories?: string[] }) =>
    devTcbLevel({ sgxTcbComponents: o.sgx ?? sgx, pceSvn: p.pceSvn, teeTcbSvn: tee, tcbStatus: o.status, tcbDate: date, ...(o.advisories ? { advisoryIDs: o.advisories } : {}) })
  const moduleId = (levels: SignDevCollateralOptions['qeTcbLevels'], id = `TDX_${tee.slice(2, 4).toUpperCase()}`) => [
    { id, mrsigner: '00'.repeat(48), attributes: '0000000000000000', attributesMask: 'FFFFFFFFFFFFFFFF', tcbLevels: levels! },
  ]
  const qeSvn = p.qeSvn
  const moduleSvn = parseInt(tee.slice(0, 2), 16)

  const variants: [string, Partial<SignDevCollateralOptions>][] = [
    ['default (UpToDate)', {}],
    ['platform OutOfDate with advisories', { tcbLevels: [level({ sgx: higher, status: 'UpToDate' }), level({ status: 'OutOfDate', advisories: ['INTEL-SA-00001', 'INTEL-SA-00002'] })] }],
    ['platform SWHardeningNeeded', { tcbLevels: [level({ status: 'SWHardeningNeeded', advisories: ['INTEL-SA-00615'] })] }],
    [
      'ConfigurationNeeded platform, OutOfDate QE',
      {
        tcbLevels: [level({ status: 'ConfigurationNeeded', advisories: ['INTEL-SA-00100'] })],
        qeTcbLevels: [
          { tcb: { isvsvn: qeSvn + 1 }, tcbDate: date, tcbStatus: 'UpToDate' },
          { tcb: { isvsvn: qeSvn }, tcbDate: date, tcbStatus: 'OutOfDate', advisoryIDs: ['INTEL-SA-00100', 'INTEL-SA-00200'] },
        ],
      },
    ],
    [
      'TDX module OutOfDate',
      {
        tdxModuleIdentities: moduleId([
          { tcb: { isvsvn: moduleSvn + 1 }, tcbDate: date, tcbStatus: 'UpToDate' },
          { tcb: { isvsvn: moduleSvn }, tcbDate: date, tcbStatus: 'OutOfDate', advisoryIDs: ['INTEL-SA-00300'] },
        ]),
      },
    ],
    ['platform Revoked', { tcbLevels: [level({ status: 'Revoked' })] }],
    ['no level met', { tcbLevels: [level({ sgx: higher, status: 'UpToDate' })] }],
    ['QE identity of another signer', { qeIdentity: { mrsigner: 'AB'.repeat(32) } }],
    ['no identity for the module version', { tdxModuleIdentities: moduleId([{ tcb: { isvsvn: 0 }, tcbDate: date, tcbStatus: 'UpToDate' }], 'TDX_7F') }],
  ]

  const quote = (await f.freshSubmission()).evidence.quote
  const certId = pckLeafOf(quote).certId
  await f.pcs.submitPckCert(pckLeafOf(quote).der)
  for (const [name, options] of variants) {
    await f.anvil.testClient.mine({ blocks: 1, interval: 10 })
    const now = new Date(Number(await f.registry.chainTime()) * 1000)
    const collateral = signDevCollateral(f.ca, { fmspc: DEV_FMSPC, now, platform: p, ...options })
    const sub = collateralSubmission(collateral)
    await f.pcs.submitCrl(sub.crls[0]!)
    await f.pcs.submitCrl(sub.crls[1]!)
    await f.pcs.submitTcbInfo(sub.tcbInfo)
    await f.pcs.submitQeIdentity(sub.qeIdentity)
    const at = new Date(Number(await f.registry.chainTime()) * 1000)

    let ts: { ok: true; status: string; advisories: string[] } | { ok: false; code: string }
    try {
      const v = verifyQuote(quote, collateral, { now: at, trustedRoot: root })
      ts = { ok: true, status: v.tcbStatus, advisories: [...v.advisoryIds] }
    } catch (e) {
      if (!(e instanceof BaseError)) throw e
      ts = { ok: false, code: e.code }
    }
    const chain = await f.registry.verifyQuote(quote, certId).then(
      (r) => ({ ok: true as const, status: r.tcbStatus as string, advisories: [...r.advisoryIds] }),
      (e: unknown) => {
        if (!(e instanceof RegistryError)) throw e
        return { ok: false as const, code: e.code as string }
      },
    )
    if (ts.ok) t.same(chain, ts, `${name}: ${ts.status} [${ts.advisories.join(', ')}]`)
    else t.same(chain, { ok: false, code: FAILURES[ts.code] ?? `unmapped ${ts.code}` }, `${name}: ${ts.code}`)
  }
})
