/**
 * Registration-mode evidence in the log: the bundle enclave/registration.ts
 * makes for AttestationRegistry.register is logged (loggedRegistrationEvidence
 * before submission, or the sink with the mined transaction hash) as a
 * `registration-evidence` entry, and the auditor replays it in its own
 * binding mode (block hash as freshness and GPU nonce, chain id, registry,
 * model, URL): clean as logged, and every change to a binding input — or
 * presenting it as a nonce-mode entry — is a binding failure. In registry
 * mode the logged transaction must be this enclave's registration. A
 * record that does not hold together is refused by the sink, and a log
 * whose only evidence is a registration bundle has its key vouched for by it.
 */
import t from 'tap'
import { auditLog } from '../attestation/log/audit/audit.ts'
import { decodeEntry, encodeEntry, type RegistrationEvidenceEntry } from '../attestation/log/entry.ts'
import { createDirectoryLogSource } from '../attestation/log/reader.ts'
import { createRegistrationEvidence, type RegistrationTarget } from '../enclave/registration.ts'
import { loggedRegistrationEvidence } from '../enclave/log/sink.ts'
import { buildDevLog, CHAIN_ID, entriesOf, REGISTRY, TX_HASH, writeVariant, type DevLog } from './fixtures/log-dev-fixture.ts'
import { codeOf } from './helpers/errors.ts'

const codes = (r: { findings: { code: string }[] }) => [...new Set(r.findings.map((f) => f.code))].sort()
const TARGET: RegistrationTarget = { blockHash: `0x${'5e'.repeat(32)}`, blockNumber: 6n, chainId: CHAIN_ID, registry: REGISTRY }

function audit(log: DevLog, dir: string, registry = false) {
  return auditLog({
    source: createDirectoryLogSource(dir),
    registry: registry ? log.registry : null,
    tdxRoot: log.tdxRoot,
    gpuDeviceRoot: log.gpuRoot,
    gpuRimRoot: log.gpuRoot,
  })
}

function source(log: DevLog) {
  return createRegistrationEvidence({ quotes: log.quotes, gpu: log.gpu, epochs: log.epochs, logPublicKey: log.key.publicKey, model: 'dev-model', url: 'https://gateway.example' })
}

t.test('registration bundles are logged and replay in registration mode; tampering with any binding input is found', async (t) => {
  const log = await buildDevLog(t, { receipts: 1, nonces: 1 })
  const make = source(log)
  // Logged before it is returned (before the worker could submit it): no transaction hash yet.
  const logged = loggedRegistrationEvidence(make, { sink: log.sink, epochs: log.epochs, eventLog: log.eventLog })
  const before = log.writer.size
  const ev = await logged(TARGET)
  t.equal(log.writer.size, before + 1, 'one entry, durable before the evidence was returned')
  // Logged again once mined, with the transaction the registry knows.
  const epoch = log.epochs.current()
  const ccel = await log.eventLog.read()
  await log.sink.registrationEvidence({ target: TARGET, evidence: ev, keyConfig: epoch.ohttpKey.keyConfig, epochExpiresAt: epoch.expiresAt, eventLog: ccel, txHash: TX_HASH })
  const size = log.writer.size
  const entries = await entriesOf(log.dir, size)
  const [pre, mined] = entries.slice(before).map((e) => decodeEntry(e) as RegistrationEvidenceEntry)
  t.equal(pre!.type, 'registration-evidence')
  t.equal(pre!.txHash, null)
  t.equal(mined!.txHash, TX_HASH)
  t.same(
    { blockHash: pre!.blockHash, blockNumber: pre!.blockNumber, chainId: pre!.chainId, registry: pre!.registry, model: pre!.model, url: pre!.url },
    { blockHash: TARGET.blockHash, blockNumber: 6n, chainId: CHAIN_ID, registry: REGISTRY, model: 'dev-model', url: 'https://gateway.example' },
  )
  t.same(decodeEntry(encodeEntry(mined!)), mined, 'the encoding round-trips')

  const logMode = await audit(log, log.dir)
  t.same(logMode.report.findings, [])
  t.equal(logMode.report.entries.byType['registration-evidence'], 2)
  t.equal(logMode.report.checks.quotesVerified, 3)
  t.same((await audit(log, log.dir, true)).report.findings, [], 'registry mode: the logged transaction is this enclave registering')

  const variant = async (i: number, e: RegistrationEvidenceEntry | Uint8Array) => {
    const forged = entries.slice()
    forged[i] = e instanceof Uint8Array ? e : encodeEntry(e)
    return writeVariant(t, log.dir, log.key, forged, log.clock)
  }
  const bindingFailure = async (dir: string, i: number) => {
    const { report } = await audit(log, dir)
    const f = report.findings.filter((x) => x.index === i)
    t.same(f.map((x) => [x.code, x.details.step]), [['LOG_EVIDENCE_INVALID', 'binding']], JSON.stringify(report.findings))
  }
  const i = before
  await bindingFailure(await variant(i, { ...pre!, chainId: 1n }), i)
  await bindingFailure(await variant(i, { ...pre!, registry: `0x${'43'.repeat(20)}` }), i)
  await bindingFailure(await variant(i, { ...pre!, url: 'https://attacker.example' }), i)
  await bindingFailure(await variant(i, { ...pre!, model: 'other-model' }), i)
  // Another block hash: the binding and the GPU evidence (answering the block hash) both fail.
  const otherBlock = await audit(log, await variant(i, { ...pre!, blockHash: `0x${'00'.repeat(32)}` }))
  t.same(otherBlock.report.findings.filter((x) => x.index === i).map((x) => x.details.step).sort(), ['binding', 'gpu'])
  // The same quote presented as nonce-mode evidence: the modes never pass for each other.
  const { type: _t, blockHash, blockNumber: _n, chainId: _c, registry: _r, model: _m, url: _u, txHash: _x, ...common } = pre!
  const asNonce = encodeEntry({ ...common, type: 'evidence', nonce: blockHash.slice(2) })
  const nonceMode = await audit(log, await variant(i, asNonce))
  t.ok(nonceMode.report.findings.some((x) => x.index === i && x.code === 'LOG_EVIDENCE_INVALID' && x.details.step === 'binding' && x.details.mode === 'nonce'))
  // Registry mode: a transaction that is not this enclave's registration.
  const unknownTx = await audit(log, await variant(i + 1, { ...mined!, txHash: `0x${'cd'.repeat(32)}` }), true)
  t.same(codes(unknownTx.report), ['LOG_REGISTRATION_NOT_FOUND'])
})

t.test('a registration bundle alone vouches for the log key; the sink refuses records that do not hold together', async (t) => {
  const log = await buildDevLog(t, { receipts: 1, nonces: 1 })
  const ev = await source(log)(TARGET)
  const epoch = log.epochs.current()
  const ccel = await log.eventLog.read()
  const record = { target: TARGET, evidence: ev, keyConfig: epoch.ohttpKey.keyConfig, epochExpiresAt: epoch.expiresAt, eventLog: ccel, txHash: null }
  const size = log.writer.size
  await t.rejects(log.sink.registrationEvidence({ ...record, keyConfig: new Uint8Array([1, 2, 3]) }), { code: 'LOG_OPTIONS_INVALID' })
  await t.rejects(log.sink.registrationEvidence({ ...record, target: { ...TARGET, blockHash: `0x${'00'.repeat(32)}` } }), { code: 'LOG_OPTIONS_INVALID' })
  t.equal(log.writer.size, size, 'nothing logged')
  await log.sink.registrationEvidence(record)
  // Only collateral, the epoch and the registration bundle: the bundle's verified quote binds the key.
  const entries = (await entriesOf(log.dir, log.writer.size)).filter((e) => ['collateral', 'epoch', 'registration-evidence'].includes(decodeEntry(e).type))
  const dir = await writeVariant(t, log.dir, log.key, entries, log.clock)
  const { report } = await audit(log, dir)
  t.same(report.findings, [])
  t.equal(report.checks.logKey, 'evidence')
  // The wrapper fails closed when logging fails: the evidence is not returned to be submitted.
  const failing = loggedRegistrationEvidence(source(log), {
    sink: { registrationEvidence: async () => Promise.reject(new Error('disk full')) },
    epochs: log.epochs,
    eventLog: log.eventLog,
  })
  const err = await failing(TARGET).then(
    () => null,
    (e: unknown) => e,
  )
  t.equal(codeOf(err), 'ENCLAVE_EVIDENCE_UNAVAILABLE')
})
