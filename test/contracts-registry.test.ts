/**
 * AttestationRegistry end to end with the development TEE on a real anvil:
 * register a dev enclave (quote verified on-chain), and the rejections the
 * issue names — wrong binding, stale block hash, unlisted workload, debug
 * TD, expired collateral, revoked PCK — each by its typed code; epoch
 * replacement, invalidation, receipts (enclave/receipts.ts signReceipt) and
 * checkpoint anchors; the Solidity binding against the frozen vectors; dev
 * versus production roots; governance. Also the review findings: model and
 * URL bound against front-running, equal-epoch renewals identical or
 * refused, an expired record's signer free for another enclave, records of
 * a delisted workload invalidated, and the EnclaveEnded / CheckpointAnchored
 * watchers.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { keccak256, toHex, type Address, type Hex } from 'viem'
import { hashGpuEvidence, hashKeyConfig } from '../attestation/binding.ts'
import { signDevCollateral, DEV_FMSPC } from '../attestation/dev/index.ts'
import { receiptDomain, signReceipt, type ReceiptFields } from '../enclave/receipts.ts'
import { createSigningKey } from '../enclave/keys.ts'
import { createEpochManager } from '../enclave/epochs.ts'
import { checkpointAnchorDigest, logIdOf } from '../contracts/client/checkpoint-anchor.ts'
import { collateralSubmission } from '../contracts/client/collateral.ts'
import { attestationRegistryAbi } from '../contracts/artifacts/attestation-registry.ts'
import { pcsCollateralAbi, pcsCollateralBytecode } from '../contracts/artifacts/pcs-collateral.ts'
import { deployRegistry } from '../contracts/client/deploy.ts'
import { createRegistryWriter, type EnclaveEndedEvent } from '../contracts/client/registry.ts'
import type { CheckpointAnchor } from '../contracts/registry-types.ts'
import { devRegistry, EPOCH_LENGTH_MS, fakeOhttpKey, GATEWAY_URL, MEASUREMENTS, MODEL, workloadIdOf, type DevRegistry } from './helpers/dev-registry.ts'
import { INTEL_SGX_ROOT_CA, trustedRootFromDer } from '../attestation/roots/trust-root.ts'
import { parseCertificate } from '../attestation/pki/x509.ts'
import { verifyQuote as verifyTdxQuote } from '../attestation/tdx/index.ts'

const code = (c: string) => ({ code: c })

/** A writer sending from another anvil account: "anyone". */
const stranger = (f: DevRegistry, account: number) =>
  createRegistryWriter({ publicClient: f.anvil.publicClient, walletClient: f.anvil.walletClients[account]!, address: f.registry.address, allowDevelopment: true })

/** Resolve once `list` holds `n` items (watchers poll every 50 ms on the test client). */
function waitFor<T>(list: T[], n: number): Promise<void> {
  return new Promise((resolve) => {
    const check = () => (list.length >= n ? resolve() : setTimeout(check, 10))
    check()
  })
}

/** Mine one block `seconds` after the latest. */
async function advance(f: DevRegistry, seconds: bigint): Promise<void> {
  await f.anvil.testClient.setNextBlockTimestamp({ timestamp: (await f.registry.chainTime()) + seconds })
  await f.anvil.testClient.mine({ blocks: 1 })
}

t.test('register a dev-TEE enclave end to end, and replace it at the next epoch', async (t) => {
  const f = await devRegistry(t)
  t.equal(await f.registry.isDevelopment(), true, 'a dev registry says so')
  const { evidence, submission } = await f.freshSubmission()
  t.ok(submission.pckCertDer, 'first registration on the platform carries the PCK leaf')
  const result = await f.registry.register(submission)
  t.equal(result.enclaveId, keccak256(f.logPublicKey), 'enclaveId = keccak256(log public key)')
  const epoch = f.epochs.current()

  const record = await f.registry.enclave(result.enclaveId)
  t.ok(record)
  t.equal(record!.signingAddress, epoch.signingKey.address)
  t.equal(record!.keyConfigHash, toHex(hashKeyConfig(epoch.ohttpKey.keyConfig)))
  t.equal(record!.workloadId, workloadIdOf(MEASUREMENTS))
  t.equal(record!.gpuEvidenceHash, evidence.data.gpuEvidenceHash)
  t.equal(record!.model, MODEL)
  t.equal(record!.url, GATEWAY_URL)
  t.equal(record!.epoch, epoch.number)
  t.equal(record!.tcbStatus, 'UpToDate')
  t.equal(record!.fmspc, `0x${DEV_FMSPC}`)
  t.ok(record!.expiresAt > record!.registeredAt)
  t.same(await f.registry.enclaveBySigner(epoch.signingKey.address), record)
  t.same(await f.registry.enclavesForModel(MODEL), [record])
  t.same(await f.registry.enclavesForModel('other-model'), [])

  // Next epoch: new keys, same TD; the PCK leaf is cached now.
  f.clock += EPOCH_LENGTH_MS
  await f.epochs.rotateIfDue()
  const next = f.epochs.current()
  t.not(next.signingKey.address, epoch.signingKey.address)
  const second = await f.freshSubmission()
  t.equal(second.submission.pckCertDer, null, 're-registration sends the cached PCK id only')
  const r2 = await f.registry.register(second.submission)
  t.equal(r2.enclaveId, result.enclaveId)
  const replaced = await f.registry.enclave(result.enclaveId)
  t.equal(replaced!.signingAddress, next.signingKey.address)
  t.equal(replaced!.epoch, next.number)
  t.equal(await f.registry.enclaveBySigner(epoch.signingKey.address), null, 'the old signer is no longer registered')
  const history = await f.registry.registrationsOf(epoch.signingKey.address)
  t.equal(history.length, 1)
  t.equal(history[0]!.epoch, epoch.number)
  t.not(history[0]!.endedAt, null, 'the old registration ended when it was replaced')
  t.equal((await f.registry.registrationsOf(next.signingKey.address))[0]!.endedAt, null)

  // An older epoch's evidence cannot replace a newer record.
  const stale = await f.freshSubmission()
  await t.rejects(f.registry.register({ ...stale.submission, data: { ...stale.submission.data, epoch: epoch.number } }), code('REGISTRY_BINDING_MISMATCH'))
})

t.test('rejections, each by its code', async (t) => {
  const f = await devRegistry(t)

  await t.test('wrong binding', async (t) => {
    const { submission } = await f.freshSubmission()
    const other = createSigningKey().address
    await t.rejects(f.registry.register({ ...submission, data: { ...submission.data, signingAddress: other } }), code('REGISTRY_BINDING_MISMATCH'))
    await t.rejects(f.registry.register({ ...submission, data: { ...submission.data, keyConfigHash: keccak256('0x01') } }), code('REGISTRY_BINDING_MISMATCH'))
    await t.rejects(f.registry.register({ ...submission, data: { ...submission.data, url: submission.data.url, logPublicKey: keccak256('0x02') } }), code('REGISTRY_BINDING_MISMATCH'))
  })

  await t.test('stale block hash', async (t) => {
    const { submission } = await f.freshSubmission()
    const maxAge = (await f.anvil.publicClient.readContract({ address: f.registry.address, abi: attestationRegistryAbi, functionName: 'maxBlockAge' })) as bigint
    await f.anvil.testClient.mine({ blocks: Number(maxAge) + 1 })
    await t.rejects(f.registry.register(submission), code('REGISTRY_STALE_BLOCK_HASH'))
    const fresh = await f.freshSubmission()
    await t.rejects(
      f.registry.register({ ...fresh.submission, data: { ...fresh.submission.data, blockNumber: fresh.submission.data.blockNumber - 1n } }),
      code('REGISTRY_STALE_BLOCK_HASH'),
      'a block number whose hash is not the bound one',
    )
  })

  await t.test('unlisted workload', async (t) => {
    const { submission } = await f.freshSubmission({ measurements: { ...MEASUREMENTS, mrTd: new Uint8Array(48).fill(0x99) } })
    await t.rejects(f.registry.register(submission), code('REGISTRY_WORKLOAD_NOT_ALLOWED'))
  })

  await t.test('debug TD', async (t) => {
    const debug = { ...MEASUREMENTS, tdAttributes: Uint8Array.from(Buffer.from('0100001000000000', 'hex')) }
    const { submission } = await f.freshSubmission({ measurements: debug })
    await t.rejects(f.registry.register(submission), code('REGISTRY_DEBUG_TD'))
  })

  await t.test('tampered quote', async (t) => {
    const { submission } = await f.freshSubmission()
    const q = submission.quote.slice()
    q[48 + 300]! ^= 1
    await t.rejects(f.registry.register({ ...submission, quote: q }), code('REGISTRY_QUOTE_SIGNATURE_INVALID'))
  })

  await t.test('registration works after all that', async (t) => {
    const { submission } = await f.freshSubmission()
    const r = await f.registry.register(submission)
    t.ok(r.gasUsed > 0n)
  })
})

t.test('expired collateral: refused at submission and at registration', async (t) => {
  const f = await devRegistry(t, { nextUpdateDays: 2 })
  const old = signDevCollateral(f.ca, { fmspc: DEV_FMSPC, now: new Date((Number(await f.registry.chainTime()) - 10 * 86_400) * 1000), platform: f.signer.platform, nextUpdateDays: 1 })
  const sub = collateralSubmission(old)
  await t.rejects(f.pcs.submitTcbInfo(sub.tcbInfo), code('REGISTRY_COLLATERAL_EXPIRED'))
  await t.rejects(f.pcs.submitQeIdentity(sub.qeIdentity), code('REGISTRY_COLLATERAL_EXPIRED'))
  await t.rejects(f.pcs.submitCrl(sub.crls[1]!), code('REGISTRY_COLLATERAL_EXPIRED'))

  const { submission } = await f.freshSubmission()
  await f.registry.register(submission)
  const now = await f.registry.chainTime()
  await f.anvil.testClient.setNextBlockTimestamp({ timestamp: now + 3n * 86_400n })
  await f.anvil.testClient.mine({ blocks: 1 })
  t.equal(await f.registry.enclave(keccak256(f.logPublicKey)), null, 'the record ended with its collateral')
  await f.syncClock()
  await f.epochs.rotateIfDue()
  const again = await f.freshSubmission()
  await t.rejects(f.registry.register(again.submission), code('REGISTRY_COLLATERAL_EXPIRED'))
})

t.test('revoked PCK: registration refused, live record invalidated by anyone', async (t) => {
  const f = await devRegistry(t)
  const { submission } = await f.freshSubmission()
  const reg = await f.registry.register(submission)
  await t.rejects(f.registry.invalidate(reg.enclaveId), code('REGISTRY_STILL_VALID'), 'a valid record cannot be invalidated')

  await f.anvil.testClient.mine({ blocks: 1, interval: 60 })
  const revoking = signDevCollateral(f.ca, {
    fmspc: DEV_FMSPC,
    now: new Date(Number(await f.registry.chainTime()) * 1000),
    platform: f.signer.platform,
    revokedPckSerials: [f.signer.pckLeaf.serial],
  })
  const sub = collateralSubmission(revoking)
  await f.pcs.submitCrl(sub.crls[1]!)
  await t.rejects(f.registry.verifyQuote(submission.quote, submission.pckCertId), code('REGISTRY_CERT_REVOKED'))

  const anyone = await (await import('../contracts/client/registry.ts')).createRegistryWriter({
    publicClient: f.anvil.publicClient,
    walletClient: f.anvil.walletClients[2]!,
    address: f.registry.address,
    allowDevelopment: true,
  })
  await anyone.invalidate(reg.enclaveId)
  t.equal(await f.registry.enclave(reg.enclaveId), null, 'invalidated')
  const history = await f.registry.registrationsOf(submission.data.signingAddress)
  t.not(history[0]!.endedAt, null)
  const again = await f.freshSubmission()
  await t.rejects(f.registry.register(again.submission), code('REGISTRY_CERT_REVOKED'))
})

t.test('revoked TCB signing certificate: stored TCB info and QE identity refused from then on, as the TypeScript verifier refuses them', async (t) => {
  const f = await devRegistry(t)
  const root = trustedRootFromDer('dev', f.ca.rootCertificateDer, f.ca.rootFingerprint)
  const { submission, evidence } = await f.freshSubmission()
  const reg = await f.registry.register(submission)

  // The Root CA CRL now lists the TCB signing certificate; the TCB info and QE identity it signed stay stored.
  await f.anvil.testClient.mine({ blocks: 1, interval: 60 })
  const revoking = signDevCollateral(f.ca, {
    fmspc: DEV_FMSPC,
    now: new Date(Number(await f.registry.chainTime()) * 1000),
    platform: f.signer.platform,
    revokedCaSerials: [parseCertificate(f.ca.tcbSigningDer).serial],
  })
  await f.pcs.submitCrl(collateralSubmission(revoking).crls[0]!)
  const at = new Date(Number(await f.registry.chainTime()) * 1000)
  t.throws(() => verifyTdxQuote(evidence.quote, revoking, { now: at, trustedRoot: root }), code('ATTESTATION_CERT_REVOKED'), 'TypeScript: revoked')
  await t.rejects(f.registry.verifyQuote(submission.quote, submission.pckCertId), code('REGISTRY_CERT_REVOKED'), 'contract: revoked')
  // A registration of the same platform and TCB hits the evaluation cache; the revocation is checked before it.
  const again = await f.freshSubmission()
  await t.rejects(f.registry.register(again.submission), code('REGISTRY_CERT_REVOKED'))
  await f.registry.invalidate(reg.enclaveId)
  t.equal(await f.registry.enclave(reg.enclaveId), null, 'invalidated')
})

t.test('TCB recovery: a record whose platform fell below the minimum is invalidated', async (t) => {
  const f = await devRegistry(t)
  const { submission } = await f.freshSubmission()
  const reg = await f.registry.register(submission)
  await f.anvil.testClient.mine({ blocks: 1, interval: 60 })
  const p = f.signer.platform
  const { devTcbLevel } = await import('../attestation/dev/index.ts')
  const level = (sgx: readonly number[], tcbStatus: 'UpToDate' | 'OutOfDate') =>
    devTcbLevel({ sgxTcbComponents: sgx, pceSvn: p.pceSvn, teeTcbSvn: p.teeTcbSvn, tcbStatus, tcbDate: '2026-01-01T00:00:00Z', advisoryIDs: ['INTEL-SA-01000'] })
  const recovery = signDevCollateral(f.ca, {
    fmspc: DEV_FMSPC,
    now: new Date(Number(await f.registry.chainTime()) * 1000),
    platform: p,
    tcbLevels: [level([p.sgxTcbComponents[0]! + 1, ...p.sgxTcbComponents.slice(1)], 'UpToDate'), level(p.sgxTcbComponents, 'OutOfDate')],
  })
  await f.pcs.submitTcbInfo(collateralSubmission(recovery).tcbInfo)
  t.equal((await f.registry.verifyQuote(submission.quote, submission.pckCertId)).tcbStatus, 'OutOfDate')
  await f.registry.invalidate(reg.enclaveId)
  t.equal(await f.registry.enclave(reg.enclaveId), null)
  const again = await f.freshSubmission()
  await t.rejects(f.registry.register(again.submission), code('REGISTRY_TCB_STATUS_NOT_ACCEPTED'))
})

t.test('receipts: verifyReceipt accepts exactly what signReceipt makes with the chain domain', async (t) => {
  const f = await devRegistry(t)
  const { submission } = await f.freshSubmission()
  const reg = await f.registry.register(submission)
  const key = f.epochs.current().signingKey
  const domain = receiptDomain({ chainId: f.registry.chainId, registry: f.registry.address })
  const fields: ReceiptFields = {
    requestHash: keccak256('0xaa'),
    responseHash: keccak256('0xbb'),
    model: MODEL,
    epoch: f.epochs.current().number,
    time: 1_767_225_700n,
    logIndex: 7n,
  }
  const sig = await signReceipt(key, fields, domain)
  t.same(await f.registry.verifyReceipt(fields, sig), { enclaveId: reg.enclaveId, signer: key.address })
  await t.rejects(f.registry.verifyReceipt({ ...fields, logIndex: 8n }, sig), code('REGISTRY_SIGNER_NOT_REGISTERED'), 'another receipt')
  const otherDomain = receiptDomain({ chainId: f.registry.chainId, registry: '0x000000000000000000000000000000000000dEaD' })
  await t.rejects(f.registry.verifyReceipt(fields, await signReceipt(key, fields, otherDomain)), code('REGISTRY_SIGNER_NOT_REGISTERED'), 'another domain')
  await t.rejects(f.registry.verifyReceipt(fields, await signReceipt(createSigningKey(), fields, domain)), code('REGISTRY_SIGNER_NOT_REGISTERED'))
  await t.rejects(f.registry.verifyReceipt(fields, `${sig.slice(0, -2)}1f` as Hex), code('REGISTRY_SIGNATURE_MALFORMED'))
  const rec = await f.registry.enclave(reg.enclaveId)
  await f.anvil.testClient.setNextBlockTimestamp({ timestamp: rec!.expiresAt })
  await f.anvil.testClient.mine({ blocks: 1 })
  await t.rejects(f.registry.verifyReceipt(fields, sig), code('REGISTRY_ENCLAVE_EXPIRED'))
})

t.test('checkpoint anchors: signed by the live signer, monotonic, forks detected', async (t) => {
  const f = await devRegistry(t)
  const { submission } = await f.freshSubmission()
  await f.registry.register(submission)
  const key = f.epochs.current().signingKey
  const domain = receiptDomain({ chainId: f.registry.chainId, registry: f.registry.address })
  const logId = logIdOf(f.logPublicKey)
  const sign = async (size: bigint, root: Hex, k = key) => k.signDigest(Buffer.from(checkpointAnchorDigest({ logId, size, root }, domain).slice(2), 'hex'))
  const rootA = keccak256('0x0a')
  const rootB = keccak256('0x0b')
  const fromBlock = (await f.anvil.publicClient.getBlockNumber()) + 1n
  const watched: CheckpointAnchor[] = []
  const watchErrors: unknown[] = []
  t.teardown(f.registry.watchCheckpointAnchors((a) => watched.push(a), (e) => watchErrors.push(e), { fromBlock, logId }))
  const otherLog: CheckpointAnchor[] = []
  t.teardown(f.registry.watchCheckpointAnchors((a) => otherLog.push(a), undefined, { fromBlock, logId: keccak256('0x01') }))

  const a1 = await f.registry.anchorCheckpoint(logId, 10n, rootA, await sign(10n, rootA))
  t.equal(a1.anchored, true)
  const a2 = await f.registry.anchorCheckpoint(logId, 20n, rootB, await sign(20n, rootB))
  t.equal(a2.anchored, true)
  const fork = await f.registry.anchorCheckpoint(logId, 20n, rootA, await sign(20n, rootA))
  t.equal(fork.anchored, false, 'same size, another root: a fork, not stored')
  t.same(await f.registry.latestAnchor(logId), { size: 20n, rootPrefix: rootB.slice(0, 50) })
  await t.rejects(f.registry.anchorCheckpoint(logId, 20n, rootB, await sign(20n, rootB)), code('REGISTRY_CHECKPOINT_NOT_NEWER'))
  await t.rejects(f.registry.anchorCheckpoint(logId, 5n, rootB, await sign(5n, rootB)), code('REGISTRY_CHECKPOINT_NOT_NEWER'))
  await t.rejects(f.registry.anchorCheckpoint(logId, 30n, rootB, await sign(30n, rootB, createSigningKey())), code('REGISTRY_SIGNER_NOT_REGISTERED'))
  await t.rejects(f.registry.anchorCheckpoint(keccak256('0x01'), 30n, rootB, await sign(30n, rootB)), code('REGISTRY_ENCLAVE_NOT_REGISTERED'))
  const anchors = await f.registry.checkpointAnchors(logId)
  t.same(
    anchors.map((a) => [a.size, a.root]),
    [
      [10n, rootA],
      [20n, rootB],
    ],
  )
  await waitFor(watched, 2)
  t.same(watched, anchors, 'watchCheckpointAnchors saw the same anchors as the history, the fork not among them')
  t.same(otherLog, [], 'a watch of another log sees nothing')
  t.same(watchErrors, [])
})

t.test('the Solidity binding reproduces the frozen binding vectors', async (t) => {
  const f = await devRegistry(t)
  const V = JSON.parse(readFileSync(new URL('./fixtures/binding-vectors.json', import.meta.url), 'utf8'))
  const b = (h: string) => new Uint8Array(Buffer.from(h.replace(/^0x/, ''), 'hex'))
  // The vectors name registry 0xcdcd…cd on chain 31337: run the registry's code at that address.
  const at = V.registration.registry as Address
  await f.anvil.testClient.setCode({ address: at, bytecode: (await f.anvil.publicClient.getCode({ address: f.registry.address }))! })
  t.equal(BigInt(V.registration.chainId), BigInt(f.anvil.chainId))
  const gpuEvidenceHash = hashGpuEvidence(V.common.gpuEvidence.map((g: { report: string; certificateChain: string }) => ({ report: b(g.report), certificateChain: b(g.certificateChain) })))
  const data = {
    logPublicKey: toHex(b(V.common.logPublicKey)),
    signingAddress: V.common.signingAddress as Address,
    keyConfigHash: toHex(hashKeyConfig(b(V.common.keyConfig))),
    gpuEvidenceHash: toHex(gpuEvidenceHash),
    epoch: BigInt(V.common.epoch),
    blockNumber: 0n,
    model: V.registration.model as string,
    url: V.registration.url as string,
  }
  const h = await f.anvil.publicClient.readContract({
    address: at,
    abi: attestationRegistryAbi,
    functionName: 'bindingHash',
    args: [data, toHex(b(V.registration.blockHash)), keccak256(b(V.common.logPublicKey))],
  })
  t.equal(h, `0x${V.registration.reportData.slice(0, 64)}`)
  // Model and URL are bound: either changed, another hash.
  for (const changed of [{ ...data, model: 'other-model' }, { ...data, url: 'https://attacker.example' }]) {
    const other = await f.anvil.publicClient.readContract({
      address: at,
      abi: attestationRegistryAbi,
      functionName: 'bindingHash',
      args: [changed, toHex(b(V.registration.blockHash)), keccak256(b(V.common.logPublicKey))],
    })
    t.not(other, h)
  }
})

t.test('a front-runner cannot re-point a registration; equal-epoch renewals must be identical', async (t) => {
  const f = await devRegistry(t)
  // The same workload is allowed for a second model: the binding, not the allow-list, must stop a model swap.
  await f.registry.setWorkload('other-model', workloadIdOf(MEASUREMENTS), true)
  const { submission } = await f.freshSubmission()
  const thief = await stranger(f, 3)
  await t.rejects(thief.register({ ...submission, data: { ...submission.data, url: 'https://attacker.example' } }), code('REGISTRY_BINDING_MISMATCH'), 'another URL')
  await t.rejects(thief.register({ ...submission, data: { ...submission.data, model: 'other-model' } }), code('REGISTRY_BINDING_MISMATCH'), 'another model')
  // Resent unchanged, the quote registers exactly what the enclave asked for.
  const reg = await thief.register(submission)
  const record = await f.registry.enclave(reg.enclaveId)
  t.equal(record!.url, GATEWAY_URL)
  t.equal(record!.model, MODEL)
  t.same(await f.registry.enclavesForModel('other-model'), [])

  // Renewal at the same epoch (the worker does it before expiry): identical, so accepted.
  const renewal = await f.freshSubmission()
  t.equal(renewal.submission.data.epoch, submission.data.epoch)
  await f.registry.register(renewal.submission)
  t.equal((await f.registry.enclave(reg.enclaveId))!.signingAddress, submission.data.signingAddress)

  // Same log key and epoch, properly bound, but another URL: not a renewal.
  const moved = await f.freshSubmission({ source: f.evidenceWith(MEASUREMENTS, { url: 'https://moved.example' }) })
  await t.rejects(f.registry.register(moved.submission), code('REGISTRY_EPOCH_CONFLICT'), 'another URL at the same epoch')
  // Same log key and epoch number with other keys (what a second process holding the log key would make).
  const twinEpochs = await createEpochManager({ epochLengthMs: EPOCH_LENGTH_MS, graceMs: 60_000, now: () => f.clock, newOhttpKey: fakeOhttpKey, autoRotate: false })
  t.teardown(() => twinEpochs.close())
  t.equal(twinEpochs.current().number, f.epochs.current().number)
  const twin = await f.freshSubmission({ source: f.evidenceWith(MEASUREMENTS, { epochs: twinEpochs }) })
  await t.rejects(f.registry.register(twin.submission), code('REGISTRY_EPOCH_CONFLICT'), 'other keys at the same epoch')
  const after = await f.registry.enclave(reg.enclaveId)
  t.equal(after!.url, GATEWAY_URL)
  t.equal(after!.signingAddress, submission.data.signingAddress)
})

t.test("an expired record's signer is free for another enclave", async (t) => {
  const f = await devRegistry(t)
  await f.registry.setRegistrationTtl(600n)
  const first = await f.registry.register((await f.freshSubmission()).submission)
  const signer = f.epochs.current().signingKey.address
  // A second enclave (its own log key) presenting the same signing address.
  const second = f.evidenceWith(MEASUREMENTS, { logPublicKey: new Uint8Array(randomBytes(32)) })
  await t.rejects(f.registry.register((await f.freshSubmission({ source: second })).submission), code('REGISTRY_SIGNER_IN_USE'), 'not while the holder is live')

  const fromBlock = (await f.anvil.publicClient.getBlockNumber()) + 1n
  const ended: EnclaveEndedEvent[] = []
  t.teardown(f.registry.watchEndings((e) => ended.push(e), undefined, { fromBlock }))
  await advance(f, 601n)
  const taken = await f.registry.register((await f.freshSubmission({ source: second })).submission)
  t.not(taken.enclaveId, first.enclaveId)
  t.equal(await f.registry.storedRecord(first.enclaveId), null, 'the expired holder was ended, not left half-owning the signer')
  t.equal((await f.registry.enclaveBySigner(signer))!.enclaveId, taken.enclaveId)
  await waitFor(ended, 1)
  t.same(
    ended.map((e) => [e.enclaveId, e.signingAddress, e.reason]),
    [[first.enclaveId, signer, 'expired']],
  )
  const history = await f.registry.registrationsOf(signer)
  t.same(
    history.map((h) => [h.enclaveId, h.endedAt !== null]),
    [
      [first.enclaveId, true],
      [taken.enclaveId, false],
    ],
  )
})

t.test('invalidate ends a record whose workload the owner took off the allow-list', async (t) => {
  const f = await devRegistry(t)
  const reg = await f.registry.register((await f.freshSubmission()).submission)
  const fromBlock = (await f.anvil.publicClient.getBlockNumber()) + 1n
  const ended: EnclaveEndedEvent[] = []
  const errors: unknown[] = []
  t.teardown(f.registry.watchEndings((e) => ended.push(e), (e) => errors.push(e), { fromBlock }))
  const anyone = await stranger(f, 2)
  await t.rejects(anyone.invalidate(reg.enclaveId), code('REGISTRY_STILL_VALID'))
  await f.registry.setWorkload(MODEL, workloadIdOf(MEASUREMENTS), false)
  await anyone.invalidate(reg.enclaveId)
  t.equal(await f.registry.enclave(reg.enclaveId), null, 'invalidated')
  const fields: ReceiptFields = { requestHash: keccak256('0x01'), responseHash: keccak256('0x02'), model: MODEL, epoch: 1n, time: 1n, logIndex: 1n }
  const sig = await signReceipt(f.epochs.current().signingKey, fields, receiptDomain({ chainId: f.registry.chainId, registry: f.registry.address }))
  await t.rejects(f.registry.verifyReceipt(fields, sig), code('REGISTRY_SIGNER_NOT_REGISTERED'), 'its receipts no longer verify')
  await waitFor(ended, 1)
  t.same(
    ended.map((e) => [e.enclaveId, e.epoch, e.reason]),
    [[reg.enclaveId, f.epochs.current().number, 'workload-removed']],
  )
  t.same(errors, [])
  await t.rejects(f.registry.register((await f.freshSubmission()).submission), code('REGISTRY_WORKLOAD_NOT_ALLOWED'))
})

t.test('dev and production roots never mix', async (t) => {
  const f = await devRegistry(t)
  const w = f.anvil.walletClient
  const deployPcs = async (root: Uint8Array, development: boolean) => {
    const { registryErrorFrom } = await import('../contracts/client/errors.ts')
    try {
      const hash = await w.deployContract({ abi: pcsCollateralAbi, bytecode: pcsCollateralBytecode, args: [toHex(root), development] })
      return await f.anvil.publicClient.waitForTransactionReceipt({ hash })
    } catch (e) {
      throw registryErrorFrom(e)
    }
  }
  await t.rejects(deployPcs(f.ca.rootCertificateDer, false), code('REGISTRY_ROOT_NOT_INTEL'), 'a production store refuses the dev root')
  await t.rejects(deployPcs(INTEL_SGX_ROOT_CA.certificate.der, true), code('REGISTRY_INVALID_PARAMETER'), 'a dev store refuses Intel root')
  const prod = await deployRegistry({ publicClient: f.anvil.publicClient, walletClient: w, target: { kind: 'production' }, owner: f.anvil.accounts[0]!.address })
  t.equal(prod.development, false)
  // Dev collateral cannot enter a production store: its CA certificates are not issued by Intel's root.
  const { createPcsClient } = await import('../contracts/client/collateral.ts')
  const prodPcs = createPcsClient({ publicClient: f.anvil.publicClient, walletClient: w, address: prod.pcs })
  await t.rejects(prodPcs.submitCaCert(f.ca.platformCaDer), code('REGISTRY_ISSUER_UNKNOWN'))
})

t.test('governance: owner only, two-step transfer', async (t) => {
  const f = await devRegistry(t)
  const { createRegistryWriter } = await import('../contracts/client/registry.ts')
  const stranger = await createRegistryWriter({ publicClient: f.anvil.publicClient, walletClient: f.anvil.walletClients[1]!, address: f.registry.address, allowDevelopment: true })
  await t.rejects(stranger.setWorkload(MODEL, keccak256('0x01'), true), code('REGISTRY_NOT_OWNER'))
  await t.rejects(stranger.setMinTcbStatus('OutOfDate'), code('REGISTRY_NOT_OWNER'))
  await t.rejects(f.registry.setMaxBlockAge(257n), code('REGISTRY_INVALID_PARAMETER'))
  await f.registry.transferOwnership(f.anvil.accounts[1]!.address)
  await t.rejects(f.registry.setMinTcbStatus('OutOfDate').then(() => stranger.acceptOwnership()).then(() => f.registry.setMinTcbStatus('UpToDate')), code('REGISTRY_NOT_OWNER'))
  await stranger.setMinTcbStatus('OutOfDate')
  t.equal(await f.anvil.publicClient.readContract({ address: f.registry.address, abi: attestationRegistryAbi, functionName: 'minTcbStatus' }), 4)
})
