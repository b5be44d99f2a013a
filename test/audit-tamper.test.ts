/**
 * The auditor against a real dev-TEE log (test/fixtures/log-dev-fixture.ts):
 * a clean log audits clean (quotes with the logged collateral, GPU
 * evidence, bindings, receipt signatures and signers), and every tamper the
 * issue names is detected with its code — a rewritten entry (unsigned, and
 * re-signed by the log key against the auditor's state), a forked log, a
 * rollback, a checkpoint not consistent with its on-chain anchor, a receipt
 * signed by a key never registered (registry mode and log mode), a bad
 * checkpoint signature, a changed blob, a collateral blob missing or
 * changed, evidence without an event log, a receipt outside its epoch's
 * validity (log mode), a log key that nothing vouches for. Also the
 * `cgw audit` command: exit codes, JSON report, state file (a missing one
 * is a first audit, an unreadable or invalid one stops the audit with its
 * own exit code), compact per-entry text output.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { auditLog } from '../attestation/log/audit/audit.ts'
import type { AuditState } from '../attestation/log/audit/state.ts'
import { decodeEntry, encodeEntry } from '../attestation/log/entry.ts'
import { createDirectoryLogSource } from '../attestation/log/reader.ts'
import { tilePath } from '../attestation/log/tile.ts'
import { createSigningKey } from '../enclave/keys.ts'
import { createLogKey } from '../enclave/log/key.ts'
import { formatVerifierKey } from '../attestation/log/note.ts'
import type { TrustedRoot } from '../attestation/roots/trust-root.ts'
import { hashReceipt, receiptDigest, receiptFromJson } from '../enclave/receipts.ts'
import { runAudit } from '../bin/commands/audit.ts'
import { createDirectoryCollateralArchive, createPcsCollateralArchive } from '../attestation/log/audit/archives.ts'
import { recordQuoteCollateral } from '../enclave/log/collateral.ts'
import { buildDevLog, entriesOf, tempDir, TX_HASH, writeVariant, withoutEventLog, type DevLog } from './fixtures/log-dev-fixture.ts'

const codes = (r: { findings: { code: string }[] }) => [...new Set(r.findings.map((f) => f.code))].sort()

async function audit(log: DevLog, dir: string, o: { state?: AuditState | null; registry?: boolean; publicKey?: Uint8Array; from?: number; tdxRoot?: TrustedRoot } = {}) {
  return auditLog({
    source: createDirectoryLogSource(dir),
    state: o.state ?? null,
    registry: o.registry === false ? null : log.registry,
    ...(o.publicKey ? { publicKey: o.publicKey } : {}),
    ...(o.from === undefined ? {} : { from: o.from }),
    tdxRoot: o.tdxRoot ?? log.tdxRoot,
    gpuDeviceRoot: log.gpuRoot,
    gpuRimRoot: log.gpuRoot,
    now: () => new Date(log.clock),
  })
}

t.test('a clean dev-TEE log audits clean, with and without a registry', async (t) => {
  const log = await buildDevLog(t)
  const { report, state } = await audit(log, log.dir)
  t.same(report.findings, [], 'no findings')
  t.ok(report.ok)
  t.same(report.entries.byType, { collateral: 1, epoch: 1, registration: 1, evidence: 2, receipt: 5 })
  t.equal(report.checks.quotesVerified, 2)
  t.equal(report.checks.receiptsVerified, 5)
  t.equal(report.checks.receiptSigners, 'registry')
  t.equal(report.checks.logKey, 'registry', 'the registry knows this log id')
  t.equal(report.results.length, 10)
  t.ok(report.results.every((r) => r.ok))
  t.equal(state.logs[log.key.logId]!.checkpoints.length, 1)
  const logMode = await audit(log, log.dir, { registry: false })
  t.ok(logMode.report.ok, 'log mode: signers attested by the log itself')
  t.equal(logMode.report.checks.receiptSigners, 'log')
  t.equal(logMode.report.checks.logKey, 'evidence', 'without a registry, the verified quotes bind the key')
  // The receipt a client holds is the entry at its index.
  const r = receiptFromJson(log.receipts[0]!)
  const entry = decodeEntry((await entriesOf(log.dir, 10))[Number(r.fields.logIndex)]!)
  t.equal(entry.type === 'receipt' && entry.receiptHash, hashReceipt(r.fields, r.domain))
})

t.test('every tamper is detected and named', async (t) => {
  const log = await buildDevLog(t)
  const size = log.writer.size
  const entries = await entriesOf(log.dir, size)
  const clean = await audit(log, log.dir)
  t.ok(clean.report.ok)
  const state = clean.state
  const registrationIndex = entries.findIndex((e) => decodeEntry(e).type === 'registration')
  const rewritten = (() => {
    const e = decodeEntry(entries[registrationIndex]!)
    if (e.type !== 'registration') throw new Error('fixture')
    return encodeEntry({ ...e, txHash: `0x${'cd'.repeat(32)}` })
  })()

  await t.test('rewritten entry in place (checkpoint not re-signed)', async (t) => {
    const dir = await writeVariant(t, log.dir, log.key, entries, log.clock)
    const bundle = join(dir, tilePath({ level: 'entries', index: 0, width: size }))
    const bytes = await readFile(bundle)
    const at = bytes.indexOf(Buffer.from(TX_HASH.slice(2), 'hex'))
    bytes[at] = bytes[at]! ^ 0xff
    await writeFile(bundle, bytes)
    const { report } = await audit(log, dir)
    t.ok(codes(report).includes('LOG_ENTRY_REWRITTEN'))
    t.ok(codes(report).includes('LOG_ROOT_MISMATCH'))
    t.equal(report.findings.find((f) => f.code === 'LOG_ENTRY_REWRITTEN')?.index, registrationIndex)
  })

  await t.test('rewritten entry, re-signed by the log key, grown: named from the auditor state', async (t) => {
    const forged = entries.slice()
    forged[registrationIndex] = rewritten
    forged.push(entries[0]!)
    const dir = await writeVariant(t, log.dir, log.key, forged, log.clock)
    const { report } = await audit(log, dir, { state })
    const f = report.findings.find((x) => x.code === 'LOG_ENTRY_REWRITTEN')
    t.ok(f, codes(report).join())
    t.equal(f?.index, registrationIndex)
    t.ok(codes(report).includes('LOG_REGISTRATION_NOT_FOUND'), 'and the rewritten registration is not on the registry')
    const fresh = await audit(log, dir)
    t.notOk(codes(fresh.report).includes('LOG_ENTRY_REWRITTEN'), 'without history a consistent rewrite is only what it is')
  })

  await t.test('forked log: same size, another root, both signed', async (t) => {
    const forged = entries.slice()
    forged[registrationIndex] = rewritten
    const dir = await writeVariant(t, log.dir, log.key, forged, log.clock)
    const { report } = await audit(log, dir, { state })
    t.ok(codes(report).includes('LOG_FORKED'), codes(report).join())
  })

  await t.test('rollback: a smaller log than one seen', async (t) => {
    const dir = await writeVariant(t, log.dir, log.key, entries.slice(0, size - 2), log.clock)
    const { report } = await audit(log, dir, { state })
    t.same(codes(report), ['LOG_ROLLED_BACK'])
  })

  await t.test('checkpoint not consistent with its on-chain anchor', async (t) => {
    const good = clean.report.checkpoint!
    log.registry.anchors.push({ logId: log.key.logId, size: BigInt(good.size), root: `0x${good.root}`, blockNumber: 9n, anchoredAt: 0n, transactionHash: TX_HASH })
    t.ok((await audit(log, log.dir)).report.ok, 'the right anchor is consistent')
    log.registry.anchors.push({ logId: log.key.logId, size: 3n, root: `0x${'00'.repeat(32)}`, blockNumber: 10n, anchoredAt: 0n, transactionHash: TX_HASH })
    const { report } = await audit(log, log.dir)
    t.same(codes(report), ['LOG_ANCHOR_INCONSISTENT'])
    log.registry.anchors.pop()
    log.registry.anchors.push({ logId: log.key.logId, size: BigInt(good.size + 5), root: `0x${good.root}`, blockNumber: 10n, anchoredAt: 0n, transactionHash: TX_HASH })
    t.same(codes((await audit(log, log.dir)).report), ['LOG_ANCHOR_INCONSISTENT'], 'an anchor beyond the log')
    log.registry.anchors.length = 0
  })

  await t.test('a receipt signed by a key never registered', async (t) => {
    const rogue = createSigningKey()
    const fields = { ...receiptFromJson(log.receipts[0]!).fields, logIndex: BigInt(size) }
    const digest = receiptDigest(fields, log.domain)
    const signature = await rogue.signDigest(digest)
    const entry = encodeEntry({ type: 'receipt', time: log.clock, epoch: fields.epoch, signer: rogue.address, receiptHash: `0x${Buffer.from(digest).toString('hex')}`, signature })
    const dir = await writeVariant(t, log.dir, log.key, [...entries, entry], log.clock)
    const { report } = await audit(log, dir)
    t.same(codes(report), ['LOG_RECEIPT_SIGNER_UNREGISTERED'])
    t.equal(report.findings[0]!.index, size)
    t.same(codes((await audit(log, dir, { registry: false })).report), ['LOG_RECEIPT_SIGNER_UNREGISTERED'], 'log mode too')
    // A signature that does not recover to the signer the entry names.
    const lying = encodeEntry({ type: 'receipt', time: log.clock, epoch: fields.epoch, signer: log.epochs.current().signingKey.address, receiptHash: `0x${Buffer.from(digest).toString('hex')}`, signature })
    const dir2 = await writeVariant(t, log.dir, log.key, [...entries, lying], log.clock)
    t.same(codes((await audit(log, dir2)).report), ['LOG_RECEIPT_SIGNATURE_INVALID'])
  })

  await t.test('registered, but not at the time of the entry', async (t) => {
    const saved = log.registry.registrations.slice()
    log.registry.registrations.splice(0, 1, { ...saved[0]!, endedAt: saved[0]!.registeredAt + 1n })
    const { report } = await audit(log, log.dir)
    t.same(codes(report), ['LOG_RECEIPT_SIGNER_EXPIRED'])
    log.registry.registrations.splice(0, 1, ...saved)
  })

  await t.test('checkpoint signature invalid', async (t) => {
    const dir = await writeVariant(t, log.dir, log.key, entries, log.clock)
    const note = await readFile(join(dir, 'checkpoint'), 'utf8')
    await writeFile(join(dir, 'checkpoint'), note.replace(/\n\d+\n/, `\n${size + 1}\n`))
    const { report } = await audit(log, dir)
    t.same(codes(report), ['LOG_CHECKPOINT_SIGNATURE_INVALID'])
    t.notOk(report.ok)
  })

  await t.test('a blob that does not match its entry', async (t) => {
    const dir = await writeVariant(t, log.dir, log.key, entries, log.clock)
    const ev = entries.map((e) => decodeEntry(e)).find((e) => e.type === 'evidence')!
    if (ev.type !== 'evidence') throw new Error('fixture')
    const path = join(dir, 'blob', ev.quoteSha256)
    const q = await readFile(path)
    q[100] = q[100]! ^ 1
    await writeFile(path, q)
    const { report } = await audit(log, dir)
    t.same(codes(report), ['LOG_BLOB_MISMATCH'])
  })

  await t.test('evidence whose collateral is nowhere', async (t) => {
    const dir = await writeVariant(t, log.dir, log.key, entries, log.clock)
    const c = entries.map((e) => decodeEntry(e)).find((e) => e.type === 'collateral')!
    if (c.type !== 'collateral') throw new Error('fixture')
    const fp = c.fingerprints[0]!
    const archived = await readFile(join(dir, 'blob', fp))
    await writeFile(join(dir, 'blob', fp), 'gone')
    const { report } = await audit(log, dir)
    t.same(codes(report), ['LOG_BLOB_MISMATCH', 'LOG_COLLATERAL_UNAVAILABLE'])
    const collateralIndex = entries.findIndex((e) => decodeEntry(e).type === 'collateral')
    t.equal(report.findings.find((f) => f.code === 'LOG_BLOB_MISMATCH')?.index, collateralIndex, 'the collateral entry names a blob the log does not have')
    t.same(report.results.find((r) => r.index === collateralIndex), { index: collateralIndex, type: 'collateral', ok: false, code: 'LOG_BLOB_MISMATCH' })
    // From an archive directory (named by fingerprint), or from a PCS serving the same collateral today.
    const archiveDir = await tempDir(t)
    await writeFile(join(archiveDir, `${fp}.json`), archived)
    const withArchive = await auditLog({
      source: createDirectoryLogSource(dir),
      collateral: [createDirectoryCollateralArchive(archiveDir)],
      tdxRoot: log.tdxRoot,
      gpuDeviceRoot: log.gpuRoot,
      gpuRimRoot: log.gpuRoot,
    })
    // The evidence verifies with the archived copy; the log still lost its own.
    t.same(withArchive.report.findings.map((f) => [f.code, f.index]), [['LOG_BLOB_MISMATCH', collateralIndex]])
    const pcs = { baseUrl: 'https://pccs.test', getCollateral: async () => ({ collateral: JSON.parse(archived.toString()) }) } as unknown as Parameters<typeof createPcsCollateralArchive>[0]
    const withPcs = await auditLog({ source: createDirectoryLogSource(dir), collateral: [createPcsCollateralArchive(pcs)], tdxRoot: log.tdxRoot, gpuDeviceRoot: log.gpuRoot, gpuRimRoot: log.gpuRoot })
    t.same(withPcs.report.findings.map((f) => [f.code, f.index]), [['LOG_BLOB_MISMATCH', collateralIndex]])
    // A collateral blob that is not there at all.
    await rm(join(dir, 'blob', fp))
    const gone = await audit(log, dir)
    t.same(gone.report.findings.filter((f) => f.index === collateralIndex).map((f) => f.code), ['LOG_FETCH_FAILED'])
    // The gateway side: recordQuoteCollateral archives what the PCS serves for a quote (unchanged set: not recorded twice).
    const ev = entries.map((e) => decodeEntry(e)).find((e) => e.type === 'evidence')!
    if (ev.type !== 'evidence') throw new Error('fixture')
    const quote = await readFile(join(log.dir, 'blob', ev.quoteSha256))
    const before = log.writer.size
    t.same(await recordQuoteCollateral(log.sink, pcs, quote), [fp])
    await log.writer.flush()
    t.equal(log.writer.size, before, 'the same collateral set is not recorded again')
  })
})

t.test('the log key needs a trust anchor: given, the registry, or a verified quote binding it', async (t) => {
  const log = await buildDevLog(t)
  const entries = await entriesOf(log.dir, log.writer.size)
  const decoded = entries.map((e) => decodeEntry(e))
  // A log with no evidence, signed by a key of its own: self-consistent, but nothing ties it to an enclave.
  const rogue = createLogKey()
  const noEvidence = entries.filter((_, i) => decoded[i]!.type !== 'evidence')
  const dir = await writeVariant(t, log.dir, rogue, noEvidence, log.clock)
  const logMode = await audit(log, dir, { registry: false })
  t.same(codes(logMode.report), ['LOG_KEY_UNBOUND'])
  t.notOk(logMode.report.ok)
  t.equal(logMode.report.checks.logKey, null)
  const given = await audit(log, dir, { registry: false, publicKey: rogue.publicKey })
  t.same(given.report.findings, [], 'the auditor vouches for a key it passes')
  t.equal(given.report.checks.logKey, 'given')
  t.ok(codes((await audit(log, dir)).report).includes('LOG_KEY_UNBOUND'), 'registry mode: this log id is registered nowhere')
  // The registry vouches for the real log's key even without evidence entries.
  const realNoEvidence = await writeVariant(t, log.dir, log.key, noEvidence, log.clock)
  const registered = await audit(log, realNoEvidence)
  t.same(registered.report.findings, [])
  t.equal(registered.report.checks.logKey, 'registry')
  // Evidence whose quote does not verify (another root) vouches for nothing.
  const otherRoot = await audit(log, log.dir, { registry: false, tdxRoot: log.gpuRoot })
  t.ok(codes(otherRoot.report).includes('LOG_EVIDENCE_INVALID'))
  t.ok(codes(otherRoot.report).includes('LOG_KEY_UNBOUND'))
  // Evidence before --from still vouches for the key (replayed for that alone).
  const lastEvidence = decoded.map((e) => e.type).lastIndexOf('evidence')
  const from = await audit(log, log.dir, { registry: false, from: lastEvidence + 1 })
  t.same(from.report.findings, [])
  t.equal(from.report.checks.logKey, 'evidence')
  // The command: exit 3 without a key, 0 with --log-key (a signed-note verifier key).
  const work = await tempDir(t)
  const devRoot = join(work, 'dev-root.pem')
  await writeFile(devRoot, log.tdxRootPem)
  const cli = async (extra: string[]) => {
    let out = ''
    const code = await runAudit([dir, '--json', '--state', join(work, `s-${extra.length}.json`), '--dev-root', devRoot, '--threads', '0', ...extra], { out: (x) => (out += x), err: () => {} })
    return { code, json: JSON.parse(out) as { findings: { code: string }[]; checks: { logKey: string | null } } }
  }
  const unbound = await cli([])
  t.equal(unbound.code, 3)
  t.same(codes(unbound.json), ['LOG_KEY_UNBOUND'])
  const withKey = await cli(['--log-key', formatVerifierKey(`cgw.log/${rogue.logId.slice(2)}`, rogue.publicKey)])
  t.equal(withKey.code, 0, JSON.stringify(withKey.json.findings))
  t.equal(withKey.json.checks.logKey, 'given')
})

t.test('log mode: a receipt must fall inside its epoch: after the epoch entry, before expiry or the end of grace', async (t) => {
  const log = await buildDevLog(t)
  const entries = await entriesOf(log.dir, log.writer.size)
  const decoded = entries.map((e) => decodeEntry(e))
  const epoch = decoded.find((e) => e.type === 'epoch')!
  const receipt = decoded.find((e) => e.type === 'receipt')!
  if (epoch.type !== 'epoch' || receipt.type !== 'receipt') throw new Error('fixture')
  const at = (time: number) => encodeEntry({ ...receipt, time })
  const late = await writeVariant(t, log.dir, log.key, [...entries, at(epoch.expiresAt), at(epoch.time - 1)], log.clock)
  const { report } = await audit(log, late, { registry: false })
  t.same(
    report.findings.map((f) => [f.code, f.index]),
    [
      ['LOG_RECEIPT_SIGNER_EXPIRED', entries.length],
      ['LOG_RECEIPT_SIGNER_EXPIRED', entries.length + 1],
    ],
  )
  // The next epoch's entry states the previous one's end of grace: a receipt in the grace is valid, one after it is not.
  const next = createSigningKey()
  const rotation = encodeEntry({
    type: 'epoch',
    time: epoch.expiresAt,
    epoch: epoch.epoch + 1n,
    signingAddress: next.address,
    expiresAt: epoch.expiresAt + 3_600_000,
    keyConfig: epoch.keyConfig,
    previous: { epoch: epoch.epoch, liveUntil: epoch.expiresAt + 60_000 },
  })
  const grace = await writeVariant(t, log.dir, log.key, [...entries, rotation, at(epoch.expiresAt + 59_999), at(epoch.expiresAt + 60_000)], log.clock)
  t.same(
    (await audit(log, grace, { registry: false })).report.findings.map((f) => [f.code, f.index]),
    [['LOG_RECEIPT_SIGNER_EXPIRED', entries.length + 2]],
  )
})

t.test('evidence without an event log is a finding (fail closed)', async (t) => {
  const log = await buildDevLog(t)
  const entries = await entriesOf(log.dir, log.writer.size)
  const { forged, index: i } = withoutEventLog(entries)
  const dir = await writeVariant(t, log.dir, log.key, forged, log.clock)
  const { report } = await audit(log, dir)
  t.same(report.findings.map((f) => [f.code, f.index]), [['LOG_EVENTLOG_MISSING', i]])
})

t.test('cgw audit: exit codes, JSON report, state file across runs', async (t) => {
  const log = await buildDevLog(t, { receipts: 3, nonces: 1 })
  const work = await tempDir(t)
  const devRoot = join(work, 'dev-root.pem')
  const gpuRoot = join(work, 'dev-gpu-root.pem')
  await writeFile(devRoot, log.tdxRootPem)
  await writeFile(gpuRoot, log.gpuRootPem)
  const statePath = join(work, 'state.json')
  const run = async (dir: string, extra: string[] = []) => {
    let out = ''
    const code = await runAudit([dir, '--json', '--state', statePath, '--dev-root', devRoot, '--dev-gpu-root', gpuRoot, '--threads', '1', ...extra], { out: (s) => (out += s), err: () => {} }, { registry: async () => log.registry })
    return { code, json: JSON.parse(out) as { ok: boolean; exitCode: number; findings: { code: string; index?: number }[]; error?: { code: string } } }
  }
  const first = await run(log.dir)
  t.equal(first.code, 0, JSON.stringify(first.json.findings))
  t.ok(first.json.ok)
  const state = JSON.parse(await readFile(statePath, 'utf8'))
  t.equal(state.logs[log.key.logId].checkpoints.length, 1)
  t.equal((await readFile(`${statePath}.${log.key.logId.slice(2)}.leaves`)).length, 32 * log.writer.size)
  const entries = await entriesOf(log.dir, log.writer.size)
  const forged = entries.slice()
  forged[1] = forged[0]!
  const fork = await writeVariant(t, log.dir, log.key, forged, log.clock)
  const second = await run(fork, ['--registry', `0x${'42'.repeat(20)}`, '--rpc', 'http://127.0.0.1:1'])
  t.equal(second.code, 3)
  t.ok(second.json.findings.some((f) => f.code === 'LOG_FORKED'))
  const missing = await run(join(work, 'nowhere'))
  t.equal(missing.code, 5)
  t.equal(missing.json.error?.code, 'LOG_FETCH_FAILED', JSON.stringify(missing.json))
  let text = ''
  t.equal(await runAudit([log.dir, '--state', join(work, 'fresh-state.json'), '--dev-root', devRoot, '--dev-gpu-root', gpuRoot, '--threads', '0'], { out: (s) => (text += s), err: () => {} }), 0)
  t.match(text, /CLEAN/)
  t.equal(await runAudit([], { out: () => {}, err: () => {} }), 1)
  // --from: the tree is still recomputed from every entry; only later entries are replayed. A progress bar on request.
  let out = ''
  let bar = ''
  const from = await runAudit([log.dir, '--json', '--from', '5', '--state', join(work, 'from-state.json'), '--dev-root', devRoot, '--dev-gpu-root', gpuRoot, '--threads', '0'], { out: (x) => (out += x), err: (x) => (bar += x) }, { progress: true })
  t.equal(from, 0)
  const j = JSON.parse(out) as { entries: { total: number; from: number; replayed: number }; checks: { treeRecomputed: boolean } }
  t.same(j.entries, { total: log.writer.size, from: 5, replayed: log.writer.size - 5, byType: (JSON.parse(out) as { entries: { byType: unknown } }).entries.byType })
  t.ok(j.checks.treeRecomputed)
  t.match(bar, /audit \[#+\] \d+\/\d+\n/)
  t.equal(await runAudit([log.dir, '--from', 'x'], { out: () => {}, err: () => {} }), 1)
})

t.test('cgw audit: only a missing state file is a first audit; an unreadable or invalid one stops with exit 7 and is left alone', async (t) => {
  const log = await buildDevLog(t, { receipts: 2, nonces: 1 })
  const work = await tempDir(t)
  const devRoot = join(work, 'dev-root.pem')
  const gpuRoot = join(work, 'dev-gpu-root.pem')
  await writeFile(devRoot, log.tdxRootPem)
  await writeFile(gpuRoot, log.gpuRootPem)
  const run = async (statePath: string) => {
    let out = ''
    const code = await runAudit([log.dir, '--json', '--state', statePath, '--dev-root', devRoot, '--dev-gpu-root', gpuRoot, '--threads', '0'], { out: (x) => (out += x), err: () => {} })
    return { code, json: JSON.parse(out) as { ok: boolean; error?: { code: string } } }
  }
  t.equal((await run(join(work, 'absent', 'state.json'))).code, 0, 'no state yet: a first audit')
  const unreadable = join(work, 'is-a-directory.json')
  await mkdir(unreadable)
  const a = await run(unreadable)
  t.equal(a.code, 7)
  t.equal(a.json.error?.code, 'LOG_STATE_UNREADABLE')
  const garbage = join(work, 'garbage.json')
  await writeFile(garbage, '{"version": 1, "logs": ')
  const b = await run(garbage)
  t.equal(b.code, 7)
  t.equal(b.json.error?.code, 'LOG_STATE_INVALID')
  t.equal(await readFile(garbage, 'utf8'), '{"version": 1, "logs": ', 'not overwritten with a fresh state')
  // A leaves file that exists but cannot be read.
  const good = join(work, 'good.json')
  t.equal((await run(good)).code, 0)
  const leaves = `${good}.${log.key.logId.slice(2)}.leaves`
  await rm(leaves)
  t.equal((await run(good)).code, 0, 'a missing leaves file is tolerated')
  await rm(leaves, { force: true })
  await mkdir(leaves)
  const c = await run(good)
  t.equal(c.code, 7)
  t.equal(c.json.error?.code, 'LOG_STATE_UNREADABLE')
})

t.test('cgw audit text output: one line per finding code, entries as compact ranges', async (t) => {
  const log = await buildDevLog(t, { receipts: 2, nonces: 1 })
  const entries = await entriesOf(log.dir, log.writer.size)
  const rogue = createSigningKey()
  const base = receiptFromJson(log.receipts[0]!).fields
  const forged: Uint8Array[] = []
  for (let k = 0; k < 4; k++) {
    const digest = receiptDigest({ ...base, logIndex: BigInt(entries.length + k) }, log.domain)
    forged.push(encodeEntry({ type: 'receipt', time: log.clock, epoch: base.epoch, signer: rogue.address, receiptHash: `0x${Buffer.from(digest).toString('hex')}`, signature: await rogue.signDigest(digest) }))
  }
  // Indices n..n+2 and n+4 unregistered (n+3 a valid filler between them).
  const dir = await writeVariant(t, log.dir, log.key, [...entries, ...forged.slice(0, 3), entries.at(-1)!, forged[3]!], log.clock)
  const work = await tempDir(t)
  const devRoot = join(work, 'dev-root.pem')
  const gpuRoot = join(work, 'dev-gpu-root.pem')
  await writeFile(devRoot, log.tdxRootPem)
  await writeFile(gpuRoot, log.gpuRootPem)
  let text = ''
  const code = await runAudit([dir, '--state', join(work, 's.json'), '--dev-root', devRoot, '--dev-gpu-root', gpuRoot, '--threads', '0'], { out: (x) => (text += x), err: () => {} })
  t.equal(code, 3)
  const n = entries.length
  const lines = text.split('\n').filter((l) => l.includes('LOG_RECEIPT_SIGNER_UNREGISTERED'))
  t.equal(lines.length, 1, 'one line for the code, not one per entry')
  t.match(lines[0]!, new RegExp(`x4: ${n}-${n + 2}, ${n + 4}$`))
})

t.test('a pluggable receipt verifier must answer every item: a short (or long) answer stops the audit', async (t) => {
  const log = await buildDevLog(t)
  const run = (verify: (items: readonly unknown[]) => Promise<boolean[]>) =>
    auditLog({
      source: createDirectoryLogSource(log.dir),
      state: null,
      registry: log.registry,
      tdxRoot: log.tdxRoot,
      gpuDeviceRoot: log.gpuRoot,
      gpuRimRoot: log.gpuRoot,
      now: () => new Date(log.clock),
      verifyReceiptSignatures: verify,
    })
  // The first receipt of a signer is checked by ecrecover; the rest go to the verifier.
  t.ok((await run(async (items) => items.map(() => true))).report.ok, 'one verdict per item: audited')
  for (const [label, verify] of [
    ['none', async () => []],
    ['one short', async (items: readonly unknown[]) => items.slice(1).map(() => true)],
    ['one long', async (items: readonly unknown[]) => [...items.map(() => true), true]],
  ] as const) {
    const e = await run(verify).catch((x: unknown) => x)
    t.equal((e as { code?: string }).code, 'LOG_OPTIONS_INVALID', label)
  }
})
