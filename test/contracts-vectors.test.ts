/**
 * The on-chain verifier against the real quotes of test/vectors/tdx: for
 * each vector, a production registry (Intel's root) on a real anvil gets
 * that vector's real collateral at its `verify_at`, and AttestationRegistry
 * .verifyQuote must report the same status and advisories as the
 * TypeScript verifier (attestation/tdx verifyQuote) — and fail the same way
 * on every mutation tried here (expired collateral, flipped signed bytes).
 */
import t from 'tap'
import fc from 'fast-check'
import { toHex } from 'viem'
import { verifyQuote } from '../attestation/tdx/index.ts'
import { BaseError } from '../attestation/errors.ts'
import { parseCollateral } from '../attestation/tdx/abi/collateral.ts'
import { parseQuote } from '../attestation/tdx/abi/quote.ts'
import { createPcsClient, collateralSubmission, pckLeafOf, quotePckChain, stripCertificationData } from '../contracts/client/collateral.ts'
import { createRegistryClient } from '../contracts/client/registry.ts'
import { deployRegistry } from '../contracts/client/deploy.ts'
import { RegistryError } from '../contracts/client/errors.ts'
import { startAnvil } from './helpers/anvil.ts'
import { tdxCases, type TdxCase } from './helpers/vectors.ts'

/** The TypeScript verifier's failure codes and the contract's that mean the same thing. */
const SAME_FAILURE: Record<string, readonly string[]> = {
  ATTESTATION_COLLATERAL_EXPIRED: ['REGISTRY_COLLATERAL_EXPIRED'],
  ATTESTATION_CERT_EXPIRED: ['REGISTRY_CERT_EXPIRED', 'REGISTRY_COLLATERAL_EXPIRED'],
  ATTESTATION_QUOTE_SIGNATURE_INVALID: ['REGISTRY_QUOTE_SIGNATURE_INVALID'],
  ATTESTATION_QE_REPORT_SIGNATURE_INVALID: ['REGISTRY_QE_REPORT_SIGNATURE_INVALID'],
  ATTESTATION_QE_REPORT_DATA_MISMATCH: ['REGISTRY_QE_REPORT_DATA_MISMATCH'],
  ATTESTATION_QE_VENDOR_UNKNOWN: ['REGISTRY_QUOTE_UNSUPPORTED'],
}

function tsOutcome(c: TdxCase, quote: Uint8Array, at: Date): { ok: true; status: string; advisories: string[] } | { ok: false; code: string } {
  try {
    const v = verifyQuote(quote, c.collateral, { now: at })
    return { ok: true, status: v.tcbStatus, advisories: [...v.advisoryIds] }
  } catch (e) {
    if (e instanceof BaseError) return { ok: false, code: e.code }
    throw e
  }
}

const earliestNextUpdate = (c: TdxCase): number => {
  const p = parseCollateral(c.collateral)
  return Math.min(p.tcbInfo.value.nextUpdate, p.qeIdentity.value.nextUpdate, p.rootCaCrl.nextUpdate, p.pckCrl.nextUpdate)
}

t.test('tampered collateral is refused at submission', async (t) => {
  const c = tdxCases().find((x) => x.id === 'tdx-v4-gcp-outofdate')!
  const anvil = await startAnvil(t, { timestamp: BigInt(c.verifyAt.getTime() / 1000) - 3600n })
  const deployed = await deployRegistry({ publicClient: anvil.publicClient, walletClient: anvil.walletClient, target: { kind: 'production' }, owner: anvil.accounts[0]!.address })
  const pcs = createPcsClient({ publicClient: anvil.publicClient, walletClient: anvil.walletClient, address: deployed.pcs })
  const sub = collateralSubmission(c.collateral, [quotePckChain(c.quote)])
  const flip = (b: Uint8Array, at: number) => {
    const x = b.slice()
    x[at]! ^= 1
    return x
  }
  const tcbText = c.collateral.tcb_info.replace('"tcbEvaluationDataNumber":17', '"tcbEvaluationDataNumber":18')
  t.not(tcbText, c.collateral.tcb_info)
  const ts = tsOutcome({ ...c, collateral: { ...c.collateral, tcb_info: tcbText } }, c.quote, c.verifyAt)
  t.same(ts, { ok: false, code: 'ATTESTATION_TCB_INFO_SIGNATURE_INVALID' })
  for (const der of sub.caCerts) await pcs.submitCaCert(der)
  await t.rejects(pcs.submitTcbInfo(sub.tcbInfo), { code: 'REGISTRY_CRL_MISSING' }, 'the signer cannot be checked before the Root CA CRL is known')
  const rootCrl = sub.crls[0]!
  await t.rejects(pcs.submitCrl(flip(rootCrl, rootCrl.length - 10)), { code: 'REGISTRY_CRL_SIGNATURE_INVALID' })
  await pcs.submitCrl(rootCrl)
  await t.rejects(pcs.submitTcbInfo({ ...sub.tcbInfo, json: tcbText }), { code: 'REGISTRY_COLLATERAL_SIGNATURE_INVALID' })
  await t.rejects(pcs.submitQeIdentity({ ...sub.qeIdentity, json: c.collateral.qe_identity.replace('"isvprodid":2', '"isvprodid":3') }), { code: 'REGISTRY_COLLATERAL_SIGNATURE_INVALID' })
  await t.rejects(pcs.submitTcbInfo({ ...sub.tcbInfo, signerName: sub.qeIdentity.signerName.replace(/.$/, '0') as `0x${string}` }), { code: 'REGISTRY_ISSUER_UNKNOWN' })
  const leaf = pckLeafOf(c.quote).der
  await t.rejects(pcs.submitPckCert(flip(leaf, leaf.length - 20)), { code: 'REGISTRY_CERT_CHAIN_INVALID' })
  await t.rejects(pcs.submitPckCert(leaf.slice(0, leaf.length - 1)), { code: 'REGISTRY_DER_MALFORMED' })
  await t.rejects(pcs.submitCaCert(leaf), { code: 'REGISTRY_ISSUER_UNKNOWN' }, 'a leaf is not a CA issued by the root')
})

t.test('the contract and the TypeScript verifier agree on every real TDX vector', async (t) => {
  const cases = tdxCases()
  const start = Math.min(...cases.map((c) => c.verifyAt.getTime() / 1000)) - 86_400
  const anvil = await startAnvil(t, { timestamp: BigInt(Math.floor(start)) })
  const deployed = await deployRegistry({
    publicClient: anvil.publicClient,
    walletClient: anvil.walletClient,
    target: { kind: 'production' },
    owner: anvil.accounts[0]!.address,
  })
  t.equal(deployed.development, false)
  const registry = await createRegistryClient({ publicClient: anvil.publicClient, address: deployed.registry })
  t.equal(await registry.isDevelopment(), false, 'a production registry says so')
  const pcs = createPcsClient({ publicClient: anvil.publicClient, walletClient: anvil.walletClient, address: deployed.pcs })
  let snapshot = await anvil.testClient.snapshot()

  for (const c of cases) {
    await t.test(c.id, async (t) => {
      await anvil.testClient.revert({ id: snapshot })
      snapshot = await anvil.testClient.snapshot()
      const at = BigInt(c.verifyAt.getTime() / 1000)
      await anvil.testClient.setNextBlockTimestamp({ timestamp: at - 40n })
      await anvil.testClient.mine({ blocks: 1 })

      const expected = tsOutcome(c, c.quote, c.verifyAt)
      t.equal(expected.ok, true, 'the TypeScript verifier accepts the vector at verify_at')

      if (parseQuote(c.quote).body.kind === 'sgx') {
        // SGX quotes are out of the registry's scope (TDX v4/v5 only): refused, never misread.
        await t.rejects(registry.verifyQuote(c.quote, toHex(new Uint8Array(32))), { code: 'REGISTRY_QUOTE_UNSUPPORTED' })
        return
      }
      const gas = await pcs.submitCollateral(collateralSubmission(c.collateral, [quotePckChain(c.quote)]))
      t.ok(gas.totalGas > 0n)
      const leaf = pckLeafOf(c.quote)
      await pcs.submitPckCert(leaf.der)
      await anvil.testClient.setNextBlockTimestamp({ timestamp: at })
      await anvil.testClient.mine({ blocks: 1 })

      const onChain = await registry.verifyQuote(c.quote, leaf.certId)
      if (expected.ok) {
        t.equal(onChain.tcbStatus, expected.status, 'same status')
        t.same(onChain.advisoryIds, expected.advisories, 'same advisories')
        t.equal(onChain.tcbStatus, c.expected.status, 'the status the vector README states')
        t.same([...onChain.advisoryIds].sort(), [...c.expected.advisoryIds].sort())
      }
      const stripped = await registry.verifyQuote(stripCertificationData(c.quote), leaf.certId)
      t.equal(stripped.tcbStatus, onChain.tcbStatus, 'the quote without its unsigned PEM chain verifies the same')

      const mutations: [string, (q: Uint8Array) => void][] = [
        ['TD report byte (MRTD)', (q) => (q[bodyOffset(c.quote) + 136]! ^= 1)],
        ['QE report byte (CPUSVN)', (q) => (q[qeReportOffset(c.quote)]! ^= 1)],
        ['QE authentication data', (q) => (q[qeReportOffset(c.quote) + 384 + 64 + 2]! ^= 1)],
        ['attestation key', (q) => (q[qeReportOffset(c.quote) - 6 - 64]! ^= 1)],
        ['QE vendor id', (q) => (q[12]! ^= 1)],
      ]
      for (const [what, mutate] of mutations) {
        const q = c.quote.slice()
        mutate(q)
        const ts = tsOutcome(c, q, c.verifyAt)
        t.equal(ts.ok, false, `${what}: the TypeScript verifier rejects it`)
        const err = await registry.verifyQuote(q, leaf.certId).then(
          () => null,
          (e: unknown) => e,
        )
        t.ok(err instanceof RegistryError, `${what}: the contract rejects it`)
        if (!ts.ok && err instanceof RegistryError) {
          t.ok(SAME_FAILURE[ts.code]?.includes(err.code), `${what}: ${ts.code} ~ ${err.code}`)
        }
      }

      // Random single-byte flips anywhere in the signed parts (header, body, QE report and its
      // signature, attestation key, QE auth data): both verifiers reject every one.
      const signedEnd = qeReportOffset(c.quote) + 384 + 64 + 2 + parseQuote(c.quote).certification.qeAuthData.length
      const flips = fc.sample(fc.tuple(fc.integer({ min: 0, max: signedEnd - 1 }), fc.integer({ min: 1, max: 255 })), { numRuns: 12, seed: 0x5eed })
      for (const [offset, mask] of flips) {
        const q = c.quote.slice()
        q[offset]! ^= mask
        const ts = tsOutcome(c, q, c.verifyAt)
        const chain = await registry.verifyQuote(q, leaf.certId).then(
          () => 'accepted',
          (e: unknown) => (e instanceof RegistryError ? 'rejected' : String(e)),
        )
        t.same([ts.ok ? 'accepted' : 'rejected', chain], ['rejected', 'rejected'], `flip 0x${mask.toString(16)} at ${offset}`)
      }

      // One second after the earliest nextUpdate of its collateral, both call it expired.
      const expiry = earliestNextUpdate(c)
      await anvil.testClient.setNextBlockTimestamp({ timestamp: BigInt(Math.floor(expiry / 1000) + 1) })
      await anvil.testClient.mine({ blocks: 1 })
      const tsExpired = tsOutcome(c, c.quote, new Date(expiry + 1000))
      t.same(tsExpired, { ok: false, code: 'ATTESTATION_COLLATERAL_EXPIRED' })
      await t.rejects(registry.verifyQuote(c.quote, leaf.certId), { code: 'REGISTRY_COLLATERAL_EXPIRED' })
    })
  }
})

function qeReportOffset(quote: Uint8Array): number {
  const q = parseQuote(quote)
  return q.certification.qeReport.raw.byteOffset - quote.byteOffset
}

function bodyOffset(quote: Uint8Array): number {
  return parseQuote(quote).body.report.raw.byteOffset - quote.byteOffset
}
