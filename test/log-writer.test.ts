/**
 * The log writer on disk: group commit (concurrent appends share one
 * journal record and one fsync), index-assigning appends (a receipt signed
 * over its own index; a failing build leaves a void entry, never a hole),
 * tiles and checkpoint published in C2SP tlog-tiles layout, recovery of a
 * directory (torn tail discarded, deleted tiles regenerated), inclusion
 * proofs, and crash safety: a child writer is SIGKILLed before every single
 * write step (and in the middle of a journal record) and the reopened log
 * holds every acknowledged entry, no torn one, and verifies; a kill before
 * recovery's own truncation is recovered from too. Damage that is not a
 * torn tail — a bad record with valid records after it, or a last record
 * the published checkpoint says was acknowledged — refuses to open
 * (LOG_STORAGE_CORRUPT) and leaves the journal untouched, so no index is
 * ever handed out twice.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile, appendFile, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { hashReceipt, issueReceipt, receiptFromJson, receiptDomain, verifyReceipt } from '../enclave/receipts.ts'
import { createSigningKey } from '../enclave/keys.ts'
import { createLogKey } from '../enclave/log/key.ts'
import { createLogWriter } from '../enclave/log/writer.ts'
import { recoverLogDirectory } from '../enclave/log/storage.ts'
import { encodeJournalRecord, scanJournal } from '../enclave/log/journal.ts'
import { decodeEntry, encodeEntry } from '../attestation/log/entry.ts'
import { verifyCheckpoint } from '../attestation/log/checkpoint.ts'
import { createDirectoryLogSource, readEntryBundle } from '../attestation/log/reader.ts'
import { fetchCheckpoint, inclusionProofToJson, proveConsistency, proveInclusion, verifyInclusionProofJson } from '../attestation/log/client.ts'
import { tilesForSize, tilePath } from '../attestation/log/tile.ts'
import { auditLog } from '../attestation/log/audit/audit.ts'
import { EnclaveError } from '../enclave/errors.ts'
import { codeOf, thrown } from './helpers/errors.ts'

const T0 = 1_700_000_000_000

async function tmp(t: Test): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'cgw-log-'))
  t.teardown(() => rm(d, { recursive: true, force: true }))
  return d
}

/** A distinct entry per n that names no blob (the audits below check every blob an entry names). */
const filler = (n: number) => encodeEntry({ type: 'void', time: T0 + n, reason: 'TEST_FILLER' })

t.test('group commit: concurrent appends share records; indices dense; tiles and checkpoint verify', async (t) => {
  const dir = await tmp(t)
  const key = createLogKey()
  const writer = await createLogWriter({ dir, key, now: () => T0 })
  const indices = await Promise.all(Array.from({ length: 700 }, (_, i) => writer.appendEntry(filler(i))))
  t.same(indices, Array.from({ length: 700 }, (_, i) => BigInt(i)))
  t.equal(writer.size, 700)
  const journal = await readFile(join(dir, 'journal'))
  const records = journal.toString('latin1').split('CGWJ').length - 1
  t.ok(records < 700 / 10, `700 appends in ${records} journal records`)
  const source = createDirectoryLogSource(dir)
  const { checkpoint } = await fetchCheckpoint(source, key.publicKey)
  t.equal(checkpoint.size, 700)
  t.equal(checkpoint.origin, `cgw.log/${key.logId.slice(2)}`)
  for (const c of tilesForSize(700)) t.ok(await source.read(tilePath(c)), tilePath(c))
  t.equal((await readEntryBundle(source, 2, 700 - 512)).length, 188)
  const p = await proveInclusion(source, key.publicKey, 513)
  t.same(decodeEntry(p.entry), decodeEntry(filler(513)))
  const json = JSON.parse(JSON.stringify(inclusionProofToJson(p)))
  t.equal(verifyInclusionProofJson(json, key.publicKey).checkpoint.size, 700)
  t.equal(codeOf((() => { try { verifyInclusionProofJson({ ...json, index: 512 }, key.publicKey) } catch (e) { return e } })()), 'LOG_INCLUSION_PROOF_INVALID')
  // More entries, then a consistency proof from the old checkpoint.
  await Promise.all(Array.from({ length: 100 }, (_, i) => writer.appendEntry(filler(700 + i))))
  const after = await fetchCheckpoint(source, key.publicKey)
  t.ok((await proveConsistency(source, 700, checkpoint.root, 800, after.checkpoint.root)).length > 0)
  await writer.close()
  await t.rejects(writer.appendEntry(filler(1)), { code: 'LOG_WRITER_CLOSED' })
})

t.test('receipts: the log assigns the index, the receipt is signed over it, the entry holds digest and signature', async (t) => {
  const dir = await tmp(t)
  const writer = await createLogWriter({ dir, key: createLogKey(), now: () => T0 })
  const signingKey = createSigningKey()
  const domain = receiptDomain({ chainId: 31337n, registry: '0x4242424242424242424242424242424242424242' })
  const base = { signingKey, log: writer, domain, requestHash: `0x${'11'.repeat(32)}`, responseHash: `0x${'22'.repeat(32)}`, model: 'm', epoch: 7n } as const
  const receipts = await Promise.all([0, 1, 2].map((i) => issueReceipt({ ...base, time: 1_700_000_000n + BigInt(i) })))
  t.same(receipts.map((r) => r.message.logIndex).sort(), ['0', '1', '2'])
  const source = createDirectoryLogSource(dir)
  for (const r of receipts) {
    const b = receiptFromJson(r)
    t.ok(await verifyReceipt(b.fields, b.signature, signingKey.address, b.domain))
    const proof = await proveInclusion(source, writer.publicKey, Number(b.fields.logIndex))
    const e = decodeEntry(proof.entry)
    t.equal(e.type, 'receipt')
    if (e.type === 'receipt') {
      t.equal(e.receiptHash, hashReceipt(b.fields, b.domain))
      t.equal(e.signature, r.signature)
    }
  }
  // A build that fails (a destroyed key) still gets its index: a void entry, and the append rejects.
  signingKey.destroy()
  await t.rejects(issueReceipt({ ...base, time: 1_700_000_010n }), EnclaveError)
  const ok = await writer.appendEntry(filler(9))
  t.equal(ok, 4n)
  const voidEntry = decodeEntry((await proveInclusion(source, writer.publicKey, 3)).entry)
  t.same(voidEntry, { type: 'void', time: T0, reason: 'ENCLAVE_CLOSED' })
  await writer.close()
})

t.test('recovery: a torn journal tail is discarded, deleted or corrupted tiles are regenerated', async (t) => {
  const dir = await tmp(t)
  const key = createLogKey()
  const writer = await createLogWriter({ dir, key, now: () => T0 })
  for (let i = 0; i < 300; i++) await writer.appendEntry(filler(i))
  const note = writer.checkpoint!
  await writer.close()
  await appendFile(join(dir, 'journal'), Buffer.from('CGWJ\x00\x00\x01\x00partial record'))
  await rm(join(dir, 'tile', '0', '000'))
  await writeFile(join(dir, 'tile', 'entries', '001.p', '44'), 'garbage')
  const r = await recoverLogDirectory(dir)
  t.equal(r.size, 300)
  t.ok(r.tornBytes > 0, 'torn tail reported')
  t.equal(r.tornTail?.code, 'LOG_TORN_TAIL')
  t.equal(r.repairedTiles, 2)
  t.equal(r.checkpoint, note)
  verifyCheckpoint(await readFile(join(dir, 'checkpoint'), 'utf8'), key.publicKey)
  // The test made this key, so it is the trust anchor (an auditor without it gets LOG_KEY_UNBOUND: audit-tamper.test.ts).
  const { report } = await auditLog({ source: createDirectoryLogSource(dir), publicKey: key.publicKey })
  t.same(report.findings, [], 'the recovered log audits clean')
  // The same key continues the log; another key is refused.
  const again = await createLogWriter({ dir, key, now: () => T0 })
  t.equal(await again.appendEntry(filler(300)), 300n)
  await again.close()
  await t.rejects(createLogWriter({ dir, key: createLogKey() }), { code: 'LOG_OPTIONS_INVALID' })
  // A complete, checksummed record whose checkpoint is not the tree's: acknowledged data that lies is corruption, not a torn tail.
  await appendFile(join(dir, 'journal'), encodeJournalRecord(301, [filler(301)], note))
  await t.rejects(recoverLogDirectory(dir), { code: 'LOG_STORAGE_CORRUPT' })
})

const FIXTURE = fileURLToPath(new URL('./fixtures/log-crash-writer.ts', import.meta.url))

function runChild(dir: string, killAt: number, split: boolean, killBefore = ''): Promise<{ acked: number[]; steps: number | null; signal: string | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
      env: { ...process.env, CGW_LOG_DIR: dir, CGW_LOG_KILL_AT: String(killAt), CGW_LOG_SPLIT: split ? '1' : '0', CGW_LOG_KILL_BEFORE: killBefore },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.on('error', reject)
    child.on('close', (_code, signal) => {
      const acked = [...out.matchAll(/^ack (\d+)$/gm)].map((m) => Number(m[1]))
      const steps = /^steps (\d+)$/m.exec(out)
      resolve({ acked, steps: steps ? Number(steps[1]) : null, signal })
    })
  })
}

t.test('crash safety: SIGKILL before every write step; reopen keeps every acknowledged entry, no torn one', async (t) => {
  const root = await tmp(t)
  const full = await runChild(join(root, 'full'), 0, true)
  t.ok(full.steps !== null && full.steps > 10, `a full run takes ${full.steps} write steps`)
  t.equal(full.acked.length, 9)
  for (let k = 1; k <= full.steps!; k++) {
    const dir = join(root, `kill-${k}`)
    const run = await runChild(dir, k, true)
    t.equal(run.signal, 'SIGKILL', `killed before step ${k}`)
    const r = await recoverLogDirectory(dir)
    const maxAck = Math.max(-1, ...run.acked)
    t.ok(r.size >= maxAck + 1 && r.size <= 9, `step ${k}: reopened at ${r.size}, acknowledged ${maxAck + 1}`)
    const { report } = await auditLog({ source: createDirectoryLogSource(dir), publicKey: r.publicKey }).catch((e: unknown) => {
      // An empty log (killed before the first batch) has no checkpoint to audit.
      if (r.size === 0 && codeOf(e) === 'LOG_FETCH_FAILED') return { report: { ok: true, findings: [] } }
      throw e
    })
    // Every entry names a blob written durably before it: the audit finds none missing; the tree verifies.
    t.ok(report.ok, `step ${k}: the reopened log audits clean ${JSON.stringify(report.findings.slice(0, 2))}`)
    if (r.size > 0) {
      const entries = await readdir(join(dir, 'blob'))
      t.ok(entries.length >= 1)
    }
  }
})

/** Flip one bit inside the payload of journal record `k` (0-based). */
async function damageRecord(dir: string, k: number): Promise<Buffer> {
  const path = join(dir, 'journal')
  const bytes = await readFile(path)
  const { batches } = scanJournal(bytes)
  const start = k === 0 ? 0 : batches[k - 1]!.end
  const at = start + 8 + 12 + 4 + 3 // a byte of the record's first entry: inside the checksummed payload
  bytes[at] = bytes[at]! ^ 0x01
  await writeFile(path, bytes)
  return bytes
}

async function threeRecords(t: Test): Promise<{ dir: string; key: ReturnType<typeof createLogKey> }> {
  const dir = await tmp(t)
  const key = createLogKey()
  const writer = await createLogWriter({ dir, key, now: () => T0 })
  // Awaited one by one: one journal record (and one acknowledgement) each.
  for (let i = 0; i < 3; i++) t.equal(await writer.appendEntry(filler(i)), BigInt(i))
  await writer.close()
  t.equal(scanJournal(await readFile(join(dir, 'journal'))).batches.length, 3)
  return { dir, key }
}

t.test('a damaged acknowledged record followed by valid ones is corruption, not a torn tail: refuses to open, journal untouched', async (t) => {
  const { dir, key } = await threeRecords(t)
  const damaged = await damageRecord(dir, 1)
  t.equal(codeOf(thrown(() => scanJournal(damaged))), 'LOG_STORAGE_CORRUPT')
  await t.rejects(recoverLogDirectory(dir), { code: 'LOG_STORAGE_CORRUPT' })
  await t.rejects(createLogWriter({ dir, key, now: () => T0 }), { code: 'LOG_STORAGE_CORRUPT' }, 'not opened for writing: index 1 is not handed out again')
  t.same(await readFile(join(dir, 'journal')), damaged, 'nothing truncated')
  // The first record damaged: the same.
  const other = await threeRecords(t)
  await damageRecord(other.dir, 0)
  await t.rejects(recoverLogDirectory(other.dir), { code: 'LOG_STORAGE_CORRUPT' })
})

t.test('a damaged last record the published checkpoint covers is corruption; without that checkpoint it is indistinguishable from a torn tail', async (t) => {
  const { dir, key } = await threeRecords(t)
  const damaged = await damageRecord(dir, 2)
  await t.rejects(recoverLogDirectory(dir), { code: 'LOG_STORAGE_CORRUPT' })
  await t.rejects(createLogWriter({ dir, key, now: () => T0 }), { code: 'LOG_STORAGE_CORRUPT' })
  t.same(await readFile(join(dir, 'journal')), damaged, 'nothing truncated')
  // A published checkpoint that does not verify is a derived file lost in a crash: it does not count.
  await writeFile(join(dir, 'checkpoint'), 'garbage')
  const r = await recoverLogDirectory(dir)
  t.equal(r.size, 2)
  t.equal(r.tornTail?.code, 'LOG_TORN_TAIL')
})

t.test('crash safety: SIGKILL before recovery truncates a torn tail; the next recovery completes it', async (t) => {
  const dir = join(await tmp(t), 'log')
  const torn = await runChild(dir, 0, true, 'journal-half:2')
  t.equal(torn.signal, 'SIGKILL', 'killed in the middle of the second journal record')
  const before = await readFile(join(dir, 'journal'))
  const scan = scanJournal(before)
  t.ok(scan.tornBytes > 0, 'a torn tail is on disk')
  const again = await runChild(dir, 0, true, 'truncate')
  t.equal(again.signal, 'SIGKILL', 'killed right before the truncation')
  t.same(await readFile(join(dir, 'journal')), before, 'the journal is as the first crash left it')
  const r = await recoverLogDirectory(dir)
  t.equal(r.tornTail?.code, 'LOG_TORN_TAIL')
  t.ok(r.size >= Math.max(-1, ...torn.acked) + 1, `reopened at ${r.size}, acknowledged ${torn.acked.length}`)
  t.equal((await readFile(join(dir, 'journal'))).length, scan.validLength, 'truncated to the last valid record')
  t.equal((await recoverLogDirectory(dir)).tornBytes, 0, 'recovery is idempotent')
  const { report } = await auditLog({ source: createDirectoryLogSource(dir), publicKey: r.publicKey })
  t.same(report.findings, [])
})
