/**
 * Round trip on the development TEE and a real anvil: a gateway's log
 * (writer, sink, epochs, evidence source) records collateral, the first
 * epoch, an on-chain registration (the real AttestationRegistry, dev root),
 * evidence bundles and receipts; the anchor worker anchors signed
 * checkpoints on-chain (at most once per period, only when the log grew);
 * the registration bundle itself is logged before it is submitted
 * (loggedRegistrationEvidence) and replayed in registration mode;
 * the gateway serves the log statically; a consumer proves a receipt's
 * inclusion over HTTP; the auditor replays everything over HTTP against the
 * viem registry client — quotes with the logged collateral, receipts'
 * signers registered at the time, checkpoints consistent with the anchors —
 * and `cgw audit` agrees. Then the real enclave with a log: every bundle it
 * serves at /v1/attestation is logged first. The dev quotes' RTMR0-2 are
 * the replay of the dev TEE's generated CCEL (attestation/dev/ccel.ts),
 * which the evidence carries, since the auditor requires an event log.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { fetch as undiciFetch, request } from 'undici'
import type { Address } from 'viem'
import { createDevCcel, createDevQuoteSigner, createDevRootCa, DEV_FMSPC, signDevCollateral } from '../attestation/dev/index.ts'
import { trustedRootFromDer } from '../attestation/roots/trust-root.ts'
import { auditLog } from '../attestation/log/audit/audit.ts'
import { createDirectoryLogSource, createHttpLogSource, type FetchLike } from '../attestation/log/reader.ts'
import { proveInclusion, verifyInclusionProofJson, type InclusionProofJson } from '../attestation/log/client.ts'
import { decodeEntry } from '../attestation/log/entry.ts'
import { computeWorkloadId } from '../attestation/workload.ts'
import { collateralSubmission, createPcsClient } from '../contracts/client/collateral.ts'
import { deployRegistry } from '../contracts/client/deploy.ts'
import { createRegistryWriter } from '../contracts/client/registry.ts'
import { createEpochManager } from '../enclave/epochs.ts'
import { createEvidenceSource } from '../enclave/evidence.ts'
import { createEnclave } from '../enclave/enclave.ts'
import { createDevEventLogProvider, createDevQuoteProvider } from '../enclave/quote-providers/dev.ts'
import { createRegistrationEvidence } from '../enclave/registration.ts'
import { hashReceipt, issueReceipt, receiptDomain, receiptFromJson } from '../enclave/receipts.ts'
import { openGatewayLog } from '../enclave/log/index.ts'
import { createAnchorWorker } from '../enclave/log/anchor-worker.ts'
import { loggedRegistrationEvidence } from '../enclave/log/sink.ts'
import { runAudit } from '../bin/commands/audit.ts'
import { startAnvil } from './helpers/anvil.ts'
import { listenLocal, testGateway } from './helpers/fake-enclave.ts'
import { entriesOf, fakeOhttpKey } from './fixtures/log-dev-fixture.ts'

const GENESIS = 1_767_225_600n // 2026-01-01T00:00:00Z
const MODEL = 'dev-model'
const CCEL = createDevCcel()
const CCEL_LOG = createDevEventLogProvider({ ccel: CCEL })
const MEASUREMENTS = { mrTd: new Uint8Array(48).fill(0x11), rtmrs: CCEL.rtmrs }
const fetch = undiciFetch as unknown as FetchLike

async function tmp(t: Test): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'cgw-roundtrip-'))
  t.teardown(() => rm(d, { recursive: true, force: true }))
  return d
}

function pemChainDer(pem: string): Uint8Array[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) => new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64')))
}

t.test('dev TEE + anvil: log, register, anchor, serve, prove, audit', async (t) => {
  const anvil = await startAnvil(t, { timestamp: GENESIS })
  const start = new Date(Number(GENESIS) * 1000)
  const seed = new Uint8Array(32).fill(9)
  const ca = createDevRootCa({ seed, now: new Date(start.getTime() - 86_400_000) })
  const signer = createDevQuoteSigner(ca, { fmspc: DEV_FMSPC, seed, now: new Date(start.getTime() - 86_400_000) })
  const collateral = signDevCollateral(ca, { fmspc: DEV_FMSPC, now: new Date(start.getTime() - 3_600_000), platform: signer.platform })
  const deployed = await deployRegistry({
    publicClient: anvil.publicClient,
    walletClient: anvil.walletClient,
    target: { kind: 'development', rootCertDer: ca.rootCertificateDer },
    owner: anvil.accounts[0]!.address as Address,
  })
  const pcs = createPcsClient({ publicClient: anvil.publicClient, walletClient: anvil.walletClient, address: deployed.pcs })
  await pcs.submitCollateral(collateralSubmission(collateral, [pemChainDer(signer.pckLeaf.chainPem)]))
  const registry = await createRegistryWriter({ publicClient: anvil.publicClient, walletClient: anvil.walletClient, address: deployed.registry, allowDevelopment: true })
  const zero = new Uint8Array(48)
  await registry.setWorkload(MODEL, computeWorkloadId({ mrTd: MEASUREMENTS.mrTd, mrConfigId: zero, mrOwner: zero, mrOwnerConfig: zero, rtmrs: [CCEL.rtmrs[0]!, CCEL.rtmrs[1]!, CCEL.rtmrs[2]!, CCEL.rtmrs[3]!] }), true)

  // The gateway's log and the enclave parts that record into it.
  const clock = { ms: Number(await registry.chainTime()) * 1000 }
  const dataDir = await tmp(t)
  const log = await openGatewayLog({ dataDir, now: () => clock.ms })
  t.teardown(() => log.close())
  await log.sink.collateral([collateral])
  const epochs = await createEpochManager({ epochLengthMs: 3_600_000, graceMs: 60_000, now: () => clock.ms, newOhttpKey: fakeOhttpKey, autoRotate: false, logSink: log.sink })
  t.teardown(() => epochs.close())
  const quotes = createDevQuoteProvider({ signer, measurements: MEASUREMENTS })
  const registration = loggedRegistrationEvidence(createRegistrationEvidence({ quotes, gpu: null, epochs, logPublicKey: log.publicKey, model: MODEL, url: 'https://gateway.example' }), {
    sink: log.sink,
    epochs,
    eventLog: CCEL_LOG,
  })
  const block = await registry.freshnessBlock()
  const ev = await registration({ blockHash: block.hash, blockNumber: block.number, chainId: registry.chainId, registry: registry.address })
  const registered = await registry.register({ quote: ev.quote, pckCertDer: ev.pckCertDer, pckCertId: ev.pckCertId, data: ev.data })
  t.equal(registered.enclaveId, log.logId, 'the registry identifies the enclave by its log id')
  // As enclave/index.ts records a mined registration: the worker's event plus the chain it knows, not awaited.
  log
    .onRegistered({
      txHash: registered.txHash,
      enclaveId: registered.enclaveId,
      epoch: ev.data.epoch,
      blockNumber: registered.blockNumber,
      chainId: registry.chainId,
      registry: registry.address,
    })
    .catch((e: unknown) => t.fail(String(e)))
  clock.ms = Number(await registry.chainTime()) * 1000
  const evidence = createEvidenceSource({ quotes, eventLog: CCEL_LOG, gpu: null, epochs, logPublicKey: log.publicKey, logSink: log.sink })
  for (const n of [1, 2]) await evidence.attest(new Uint8Array(32).fill(n))
  const domain = receiptDomain({ chainId: registry.chainId, registry: registry.address })
  const issue = (i: number) =>
    issueReceipt({
      signingKey: epochs.current().signingKey,
      log: log.receiptLog,
      domain,
      requestHash: `0x${i.toString(16).padStart(64, '0')}`,
      responseHash: `0x${(i + 1000).toString(16).padStart(64, '0')}`,
      model: MODEL,
      epoch: epochs.current().number,
      time: BigInt(Math.floor(clock.ms / 1000)),
    })
  const receipts = await Promise.all(Array.from({ length: 20 }, (_, i) => issue(i)))

  // Anchoring: once per period, only when the log grew.
  const anchors: bigint[] = []
  const worker = createAnchorWorker({
    logId: log.logId,
    checkpoint: () => log.writer.checkpoint,
    signDigest: (d) => epochs.current().signingKey.signDigest(d),
    domain,
    anchorer: {
      anchor: async (logId, size, root, signature) => ({ txHash: (await registry.anchorCheckpoint(logId, size, root, signature)).txHash }),
      latest: async (logId) => (await registry.checkpointAnchors(logId)).at(-1) ?? null,
    },
    periodMs: 60_000,
    now: () => clock.ms,
    autoStart: false,
    onAnchored: (a) => anchors.push(a.size),
  })
  t.teardown(() => worker.stop())
  t.ok(await worker.tick(), 'first anchor sent')
  t.equal(await worker.tick(), null, 'not twice in one period')
  clock.ms += 60_000
  t.equal(await worker.tick(), null, 'not when the log did not grow')
  await Promise.all(Array.from({ length: 5 }, (_, i) => issue(100 + i)))
  clock.ms += 60_000
  t.ok(await worker.tick(), 'second anchor after the log grew and a period passed')
  const onChain = await registry.checkpointAnchors(log.logId)
  t.same(onChain.map((a) => a.size), anchors)
  t.equal(onChain.length, 2)

  // Served statically by the gateway.
  const { app } = testGateway(t, { log: { dataDir } })
  const port = await listenLocal(app)
  const base = `http://127.0.0.1:${port}/log`
  const cp = await request(`${base}/checkpoint`)
  t.equal(cp.statusCode, 200)
  t.equal(cp.headers['cache-control'], 'no-cache')
  await cp.body.text()
  const tile = await request(`${base}/tile/entries/000.p/${log.writer.size}`)
  t.equal(tile.statusCode, 200)
  await tile.body.arrayBuffer()
  const bad = await request(`${base}/tile/0/x000/000`)
  t.equal(bad.statusCode, 404)
  await bad.body.text()

  // A consumer proves its receipt was logged, from the tiles or from /log/proof.
  const r = receiptFromJson(receipts[7]!)
  const source = createHttpLogSource(base, fetch)
  const proof = await proveInclusion(source, log.publicKey, Number(r.fields.logIndex))
  const entry = decodeEntry(proof.entry)
  t.equal(entry.type === 'receipt' && entry.receiptHash, hashReceipt(r.fields, r.domain))
  const served = await request(`${base}/proof/${r.fields.logIndex}`)
  const pj = (await served.body.json()) as InclusionProofJson
  t.equal(verifyInclusionProofJson(pj, log.publicKey).checkpoint.size, log.writer.size)

  // The auditor, over HTTP, against the real registry.
  const tdxRoot = trustedRootFromDer('dev', ca.rootCertificateDer, ca.rootFingerprint)
  const { report } = await auditLog({ source, registry, tdxRoot })
  t.same(report.findings, [], 'clean audit')
  t.equal(report.checks.anchors, 2)
  t.equal(report.checks.receiptsVerified, 25)
  t.equal(report.checks.quotesVerified, 3)
  t.equal(report.checks.logKey, 'registry')
  t.same(report.entries.byType, { collateral: 1, epoch: 1, 'registration-evidence': 1, registration: 1, evidence: 2, receipt: 25 })

  // And the command, with the viem registry from --registry/--rpc.
  const rootFile = join(dataDir, 'dev-root.pem')
  await writeFile(rootFile, ca.rootCertificatePem)
  let out = ''
  const code = await runAudit(
    [base, '--registry', registry.address, '--rpc', anvil.rpcUrl, '--dev-root', rootFile, '--state', join(dataDir, 'state.json'), '--json', '--threads', '1'],
    { out: (s) => (out += s), err: () => {} },
  )
  t.equal(code, 0, out.slice(0, 400))
})

t.test('the real enclave with a log: every served bundle is logged first; epochs too', async (t) => {
  const dataDir = await tmp(t)
  const log = await openGatewayLog({ dataDir })
  t.teardown(() => log.close())
  const ca = createDevRootCa({ now: new Date(), seed: new Uint8Array(32).fill(3) })
  const enclave = await createEnclave({
    engine: { name: 'none', models: async () => [], request: async () => Promise.reject(new Error('no engine')), close: async () => {} },
    quotes: createDevQuoteProvider({ signer: createDevQuoteSigner(ca, { fmspc: DEV_FMSPC, now: new Date() }), measurements: { rtmrs: CCEL.rtmrs } }),
    eventLog: CCEL_LOG,
    gpu: null,
    epochLengthMs: 3_600_000,
    graceMs: 60_000,
    logPublicKey: log.publicKey,
    logSink: log.sink,
    receiptLog: log.receiptLog,
  })
  t.teardown(() => enclave.close())
  const bundle = await enclave.attest(new Uint8Array(32).fill(4))
  t.equal(bundle.logPublicKey, Buffer.from(log.publicKey).toString('base64'))
  await log.writer.flush()
  const { report } = await auditLog({ source: createDirectoryLogSource(log.dir), tdxRoot: trustedRootFromDer('dev', ca.rootCertificateDer) })
  t.equal(report.entries.byType.epoch, 1)
  // The served bundle is in the log (the enclave may log others too, e.g. a self-attestation at start).
  const logged = (await entriesOf(log.dir, report.entries.total)).map((e) => decodeEntry(e))
  t.ok(logged.some((e) => e.type === 'evidence' && e.nonce === bundle.nonce), 'the served bundle was logged')
  t.same(
    [...new Set(report.findings.map((f) => f.code))].sort(),
    ['LOG_COLLATERAL_UNAVAILABLE', 'LOG_KEY_UNBOUND'],
    'no collateral was logged for this enclave: the auditor says so, and so no verified quote vouches for the log key',
  )
})
