/**
 * PcsCollateral's rules beyond plain submission, on a real anvil with the
 * dev PKI: TCB info and QE identity are ordered by tcbEvaluationDataNumber,
 * then issueDate, then a digest tie-break, so no rollback and no dependence
 * on submission order; a cached PCK leaf is checked against the CA
 * certificate that issued it, not a later one of the same name; an unknown
 * critical extension, a repeated extension or an issuer whose keyUsage
 * forbids issuing is refused — where the TypeScript verifier
 * (attestation/pki/chain.ts) refuses the same certificate.
 *
 * Odd certificates are made by re-signing dev ones with the dev CA keys
 * (derived from the fixture's seed, attestation/dev deriveDevKey).
 */
import t from 'tap'
import { createHash, sign } from 'node:crypto'
import { AsnConvert, OctetString } from '@peculiar/asn1-schema'
import { BasicConstraints, Certificate, Extension, KeyUsage, KeyUsageFlags, TBSCertificate, id_ce_basicConstraints, id_ce_keyUsage } from '@peculiar/asn1-x509'
import { keccak256, type Hex } from 'viem'
import { deriveDevKey, devTcbLevel, DEV_FMSPC, signDevCollateral, type DevKeyPair, type SignDevCollateralOptions } from '../attestation/dev/index.ts'
import { bitString, sequence } from '../attestation/dev/der-encode.ts'
import { BaseError } from '../attestation/errors.ts'
import { verifyChain } from '../attestation/pki/chain.ts'
import { parseCertificate } from '../attestation/pki/x509.ts'
import { pcsCollateralAbi } from '../contracts/artifacts/pcs-collateral.ts'
import { collateralSubmission, pckLeafOf } from '../contracts/client/collateral.ts'
import { RegistryError } from '../contracts/client/errors.ts'
import { devRegistry, DEV_SEED, type DevRegistry } from './helpers/dev-registry.ts'

const code = (c: string) => ({ code: c })
const ECDSA_SHA256 = Uint8Array.from(Buffer.from('300a06082a8648ce3d040302', 'hex'))
const rootKey = deriveDevKey(DEV_SEED, 'root-ca')
const platformKey = deriveDevKey(DEV_SEED, 'platform-ca')

const toArrayBuffer = (b: Uint8Array): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer

/** `der` with its TBS edited and re-signed by `issuer` (RFC 5280 §4.1: tbs, algorithm, signature). */
function reissue(der: Uint8Array, issuer: DevKeyPair, edit: (tbs: TBSCertificate) => void): Uint8Array {
  const cert = AsnConvert.parse(toArrayBuffer(der), Certificate)
  edit(cert.tbsCertificate)
  const tbs = new Uint8Array(AsnConvert.serialize(cert.tbsCertificate))
  return sequence(tbs, ECDSA_SHA256, bitString(new Uint8Array(sign('sha256', tbs, issuer.privateKey))))
}

const withSerial = (serialHex: string) => (tbs: TBSCertificate) => {
  tbs.serialNumber = toArrayBuffer(Buffer.from(serialHex, 'hex'))
}

function addExtension(extnID: string, critical: boolean, value: Uint8Array) {
  return (tbs: TBSCertificate) => {
    tbs.extensions!.push(new Extension({ extnID, critical, extnValue: new OctetString(toArrayBuffer(value)) }))
  }
}

/** The TypeScript verifier's verdict on [cert, issuer] under the dev root: 'ok' or its code. */
function tsChain(f: DevRegistry, cert: Uint8Array, issuer: Uint8Array, nowSeconds: bigint): string {
  try {
    verifyChain([parseCertificate(cert), parseCertificate(issuer)], {
      now: Number(nowSeconds) * 1000,
      root: parseCertificate(f.ca.rootCertificateDer),
      crls: [],
      requireRevocation: false,
      label: 'pck',
    })
    return 'ok'
  } catch (e) {
    if (e instanceof BaseError) return e.code
    throw e
  }
}

/** The contract's verdict on submitting a PCK leaf: 'ok' or its code. */
async function chainPck(f: DevRegistry, der: Uint8Array): Promise<string> {
  return f.pcs.submitPckCert(der).then(
    () => 'ok',
    (e: unknown) => {
      if (e instanceof RegistryError) return e.code
      throw e
    },
  )
}

async function advance(f: DevRegistry, seconds: bigint): Promise<Date> {
  const at = (await f.registry.chainTime()) + seconds
  await f.anvil.testClient.setNextBlockTimestamp({ timestamp: at })
  await f.anvil.testClient.mine({ blocks: 1 })
  return new Date(Number(at) * 1000)
}

t.test('TCB info and QE identity: evaluation number never decreases; ties resolved the same in any order', async (t) => {
  const f = await devRegistry(t)
  const collateral = (now: Date, o: Partial<SignDevCollateralOptions> = {}) =>
    collateralSubmission(signDevCollateral(f.ca, { fmspc: DEV_FMSPC, now, platform: f.signer.platform, ...o }))
  const stored = async () => {
    const m = (await f.anvil.publicClient.readContract({ address: f.pcs.address, abi: pcsCollateralAbi, functionName: 'tcbInfo', args: [`0x${DEV_FMSPC}`] })) as readonly unknown[]
    // (issueDate, nextUpdate, validFrom, validUntil, evaluationDataNumber, seq, pceId, moduleIdentityCount, digestPrefix)
    return { issueDate: m[0] as bigint, evaluationDataNumber: m[4] as number, digestPrefix: m[8] as Hex }
  }

  const t1 = await advance(f, 60n)
  const round2 = collateral(t1, { tcbEvaluationDataNumber: 2 })
  await f.pcs.submitTcbInfo(round2.tcbInfo)
  await f.pcs.submitQeIdentity(round2.qeIdentity)
  t.equal((await stored()).evaluationDataNumber, 2)

  // Issued later, but of an earlier evaluation round: a rollback.
  const t2 = await advance(f, 60n)
  const round1Later = collateral(t2, { tcbEvaluationDataNumber: 1 })
  await t.rejects(f.pcs.submitTcbInfo(round1Later.tcbInfo), code('REGISTRY_COLLATERAL_ROLLBACK'))
  await t.rejects(f.pcs.submitQeIdentity(round1Later.qeIdentity), code('REGISTRY_COLLATERAL_ROLLBACK'))
  // Same round, issued later: newer. The same document again: nothing to do, no error.
  const round2Later = collateral(t2, { tcbEvaluationDataNumber: 2 })
  await f.pcs.submitTcbInfo(round2Later.tcbInfo)
  await f.pcs.submitTcbInfo(round2Later.tcbInfo)
  await f.pcs.submitQeIdentity(round2Later.qeIdentity)
  t.equal((await stored()).issueDate, BigInt(t2.getTime() / 1000))
  // Same round, issued earlier: a rollback.
  await t.rejects(f.pcs.submitTcbInfo(round2.tcbInfo), code('REGISTRY_COLLATERAL_ROLLBACK'))
  // A later round issued earlier than what is stored (Intel's early feed behind its standard one): newer.
  const round3Earlier = collateral(t1, { tcbEvaluationDataNumber: 3 })
  await f.pcs.submitTcbInfo(round3Earlier.tcbInfo)
  await f.pcs.submitQeIdentity(round3Earlier.qeIdentity)
  t.same(await stored(), { ...(await stored()), evaluationDataNumber: 3, issueDate: BigInt(t1.getTime() / 1000) })

  // Equal issueDate: the higher round wins, and two documents equal in both end the same whichever comes first.
  const t3 = await advance(f, 60n)
  const a = collateral(t3, { tcbEvaluationDataNumber: 4 }).tcbInfo
  const b = collateral(t3, { tcbEvaluationDataNumber: 5 }).tcbInfo
  const p = f.signer.platform
  const level = (advisory: string) =>
    devTcbLevel({ sgxTcbComponents: p.sgxTcbComponents, pceSvn: p.pceSvn, teeTcbSvn: p.teeTcbSvn, tcbStatus: 'SWHardeningNeeded', tcbDate: '2026-01-01T00:00:00Z', advisoryIDs: [advisory] })
  const c = collateral(t3, { tcbEvaluationDataNumber: 5, tcbLevels: [level('INTEL-SA-00001')] }).tcbInfo
  const d = collateral(t3, { tcbEvaluationDataNumber: 5, tcbLevels: [level('INTEL-SA-00002')] }).tcbInfo
  t.not(c.json, d.json)
  const outcomes: { rejected: string[]; final: Awaited<ReturnType<typeof stored>> }[] = []
  for (const order of [
    [a, b, c, d],
    [d, c, b, a],
    [c, a, d, b],
  ]) {
    const snapshot = await f.anvil.testClient.snapshot()
    const rejected: string[] = []
    for (const doc of order) await f.pcs.submitTcbInfo(doc).catch((e: unknown) => rejected.push((e as RegistryError).code))
    outcomes.push({ rejected, final: await stored() })
    await f.anvil.testClient.revert({ id: snapshot })
  }
  t.equal(outcomes[0]!.final.evaluationDataNumber, 5)
  t.same(outcomes[1]!.final, outcomes[0]!.final, 'reverse order, same document stored')
  t.same(outcomes[2]!.final, outcomes[0]!.final, 'another order, same document stored')
  t.ok(outcomes.every((o) => o.rejected.every((x) => x === 'REGISTRY_COLLATERAL_ROLLBACK')), 'every loser is a typed rollback')
  // b, c and d tie on (round 5, t3): the tie-break keeps the largest SHA-256 prefix.
  const prefix = (json: string) => `0x${createHash('sha256').update(json).digest('hex').slice(0, 16)}`
  t.equal(outcomes[0]!.final.digestPrefix, [b, c, d].map((x) => prefix(x.json)).sort().pop(), 'the tie went to the largest digest prefix')
})

t.test('a cached PCK leaf is checked against the CA certificate that issued it', async (t) => {
  const f = await devRegistry(t)
  const { submission } = await f.freshSubmission()
  const reg = await f.registry.register(submission)
  const platformCa = parseCertificate(f.ca.platformCaDer)
  // The platform CA re-issued under the same name and key, with another serial.
  const secondSerial = '7e'.repeat(20)
  const secondCa = reissue(f.ca.platformCaDer, rootKey, withSerial(secondSerial))
  await f.pcs.submitCaCert(secondCa)
  // A leaf cached now is verified by (and recorded with) the second CA.
  const laterLeaf = reissue(f.signer.pckLeaf.der, platformKey, withSerial('5a'.repeat(20)))
  await f.pcs.submitPckCert(laterLeaf)

  const now = await advance(f, 60n)
  const rootCrl = (revokedSerials: string[], at: Date) =>
    f.ca.issueCrl({ issuer: 'root', revokedSerials, thisUpdate: at, nextUpdate: new Date(at.getTime() + 30 * 86_400_000) })
  // The second CA revoked: the first registration's leaf (issued under the first CA) stays valid ...
  await f.pcs.submitCrl(rootCrl([secondSerial], now))
  t.equal((await f.registry.verifyQuote(submission.quote, submission.pckCertId)).tcbStatus, 'UpToDate', 'a revoked successor does not end the older CA\u2019s leaves')
  await t.rejects(f.registry.invalidate(reg.enclaveId), code('REGISTRY_STILL_VALID'))
  // ... while the leaf cached under the second CA is revoked with it.
  await t.rejects(f.registry.verifyQuote(submission.quote, keccak256(laterLeaf)), code('REGISTRY_CERT_REVOKED'))

  // The first CA revoked too: its leaf is ended, although the newest CA stored under the name differs.
  const later = await advance(f, 60n)
  await f.pcs.submitCrl(rootCrl([secondSerial, platformCa.serial], later))
  await t.rejects(f.registry.verifyQuote(submission.quote, submission.pckCertId), code('REGISTRY_CERT_REVOKED'))
  await f.registry.invalidate(reg.enclaveId)
  t.equal(await f.registry.enclave(reg.enclaveId), null)
})

t.test('unknown critical extensions, repeated extensions and issuers without keyCertSign are refused, as the TypeScript verifier does', async (t) => {
  const f = await devRegistry(t)
  const now = await f.registry.chainTime()
  const leaf = f.signer.pckLeaf.der
  const platformCa = f.ca.platformCaDer
  const unknownOid = '1.3.6.1.4.1.55555.1'
  const nullValue = Uint8Array.of(0x05, 0x00)

  const cases: [string, Uint8Array, string, string][] = [
    ['unknown extension, not critical', reissue(leaf, platformKey, addExtension(unknownOid, false, nullValue)), 'ok', 'ok'],
    [
      'unknown extension, critical',
      reissue(leaf, platformKey, addExtension(unknownOid, true, nullValue)),
      'ATTESTATION_CERT_CHAIN_INVALID',
      'REGISTRY_CRITICAL_EXTENSION_UNKNOWN',
    ],
    [
      'basicConstraints twice',
      reissue(leaf, platformKey, addExtension(id_ce_basicConstraints, true, new Uint8Array(AsnConvert.serialize(new BasicConstraints({}))))),
      'ATTESTATION_CERT_INVALID',
      'REGISTRY_DER_MALFORMED',
    ],
  ]
  for (const [what, der, ts, chain] of cases) {
    t.equal(tsChain(f, der, platformCa, now), ts, `${what}: TypeScript ${ts}`)
    t.equal(await chainPck(f, der), chain, `${what}: contract ${chain}`)
  }
  // A critical unknown extension in a CA certificate: refused at submission.
  await t.rejects(f.pcs.submitCaCert(reissue(platformCa, rootKey, addExtension(unknownOid, true, nullValue))), code('REGISTRY_CRITICAL_EXTENSION_UNKNOWN'))

  // A platform CA whose keyUsage allows digitalSignature only may not issue PCK leaves or CRLs.
  const signOnly = reissue(platformCa, rootKey, (tbs) => {
    withSerial('6b'.repeat(20))(tbs)
    const i = tbs.extensions!.findIndex((e) => e.extnID === id_ce_keyUsage)
    tbs.extensions![i] = new Extension({
      extnID: id_ce_keyUsage,
      critical: true,
      extnValue: new OctetString(AsnConvert.serialize(new KeyUsage(KeyUsageFlags.digitalSignature))),
    })
  })
  const freshLeaf = reissue(leaf, platformKey, withSerial('4c'.repeat(20)))
  t.equal(tsChain(f, freshLeaf, signOnly, now), 'ATTESTATION_CERT_CHAIN_INVALID')
  await f.pcs.submitCaCert(signOnly)
  t.equal(await chainPck(f, freshLeaf), 'REGISTRY_ISSUER_UNKNOWN')
  const crl = f.ca.issueCrl({ issuer: 'platform', revokedSerials: [], thisUpdate: new Date(Number(now) * 1000), nextUpdate: new Date(Number(now) * 1000 + 86_400_000) })
  await t.rejects(f.pcs.submitCrl(crl), code('REGISTRY_ISSUER_UNKNOWN'))
  t.equal(pckLeafOf(f.signer.signQuote()).certId, keccak256(leaf), 'the quote still carries the original leaf')
})
