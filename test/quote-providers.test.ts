/**
 * Quote and event log providers against fake trees in a temp directory.
 *
 * The configfs-tsm provider runs over its injected `fs` wrapping node:fs on
 * a temp tree, with a fake "kernel" on top: making a report instance creates
 * its `provider` and `generation` attributes, writing `inblob` bumps the
 * generation and puts a dev TDX quote with that REPORTDATA in `outblob`
 * (the configfs-tsm-report ABI's behaviour). A meddler bumps the generation
 * behind the provider's back to test the retry. The CCEL reader gets the
 * real COS 113 table and log placed under a fake /sys.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import t, { type Test } from 'tap'
import { createDevCcel, createDevQuoteSigner, createDevRootCa, DEV_FMSPC } from '../attestation/dev/index.ts'
import { parseQuote } from '../attestation/tdx/abi/quote.ts'
import { parseCcelTable, parseEventLog, verifyRtmrs } from '../attestation/eventlog/index.ts'
import { createConfigfsTsmQuoteProvider, nodeConfigfsFs, TSM_REPORT_PATH, type ConfigfsFs } from '../enclave/quote-providers/configfs-tsm.ts'
import { CCEL_DATA_PATH, CCEL_TABLE_PATH, createCcelEventLogProvider } from '../enclave/quote-providers/ccel.ts'
import { createDevEventLogProvider, createDevQuoteProvider } from '../enclave/quote-providers/dev.ts'
import { EnclaveError } from '../enclave/errors.ts'
import { codeOf } from './helpers/errors.ts'

const NOW = new Date('2025-06-01T12:00:00Z')
const seed = (label: string) => new Uint8Array(createHash('sha256').update(`quote-providers test ${label}`).digest())
const ca = createDevRootCa({ seed: seed('ca'), now: NOW })
const signer = createDevQuoteSigner(ca, { fmspc: DEV_FMSPC, seed: seed('qe') })
const reportData = (tag: number) => Uint8Array.from({ length: 64 }, (_, i) => (tag + i) & 0xff)
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const tdReportData = (quote: Uint8Array) => hex(parseQuote(quote).body.report.reportData)

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  )
}

interface FakeKernel {
  readonly root: string
  readonly fs: ConfigfsFs
  /** Bump the generation once more after each of the next `n` inblob writes (a concurrent writer). */
  meddle(n: number): void
  readonly stats: { instances: number; maxLive: number; inblobWrites: number }
}

async function fakeKernel(t: Test, provider = 'tdx_guest'): Promise<FakeKernel> {
  const root = await mkdtemp(join(tmpdir(), 'cgw-tsm-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const reportDir = join(root, TSM_REPORT_PATH)
  await mkdir(reportDir, { recursive: true })
  let meddles = 0
  let live = 0
  const stats = { instances: 0, maxLive: 0, inblobWrites: 0 }
  const bump = async (dir: string) => {
    const g = Number((await readFile(join(dir, 'generation'), 'latin1')).trim())
    await writeFile(join(dir, 'generation'), `${g + 1}\n`)
  }
  const fs: ConfigfsFs = {
    ...nodeConfigfsFs,
    async mkdir(p) {
      await nodeConfigfsFs.mkdir(p)
      if (dirname(p) === reportDir) {
        stats.instances++
        stats.maxLive = Math.max(stats.maxLive, ++live)
        await writeFile(join(p, 'provider'), `${provider}\n`)
        await writeFile(join(p, 'generation'), '0\n')
      }
    },
    async rmdir(p) {
      // configfs removes an instance's attributes with it; a plain directory needs rm -r.
      await rm(p, { recursive: true })
      live--
    },
    async writeFile(p, data) {
      await nodeConfigfsFs.writeFile(p, data)
      if (basename(p) !== 'inblob') return
      stats.inblobWrites++
      const dir = dirname(p)
      await bump(dir)
      await writeFile(join(dir, 'outblob'), signer.signQuote({ reportData: data }))
      if (meddles > 0) {
        meddles--
        await bump(dir)
      }
    },
  }
  return { root, fs, meddle: (n) => void (meddles = n), stats }
}

t.test('configfs-tsm: a quote with exactly the given REPORTDATA; the instance is removed', async (t) => {
  const k = await fakeKernel(t)
  const p = createConfigfsTsmQuoteProvider({ root: k.root, fs: k.fs })
  t.equal(p.name, 'configfs-tsm')
  const rd = reportData(1)
  const quote = await p.getQuote(rd)
  t.equal(tdReportData(quote), hex(rd))
  t.same(await readdir(join(k.root, TSM_REPORT_PATH)), [], 'no report instance left behind')
  t.equal(k.stats.inblobWrites, 1)
})

t.test('configfs-tsm: concurrent requests are serialised, each gets its own quote', async (t) => {
  const k = await fakeKernel(t)
  const p = createConfigfsTsmQuoteProvider({ root: k.root, fs: k.fs })
  const quotes = await Promise.all([1, 2, 3, 4, 5].map((i) => p.getQuote(reportData(i))))
  quotes.forEach((q, i) => t.equal(tdReportData(q), hex(reportData(i + 1)), `request ${i + 1}`))
  t.equal(k.stats.maxLive, 1, 'one report instance at a time')
  t.equal(k.stats.instances, 5, 'a fresh instance per request')
})

t.test('configfs-tsm: a generation mismatch is retried', async (t) => {
  const k = await fakeKernel(t)
  const p = createConfigfsTsmQuoteProvider({ root: k.root, fs: k.fs, retries: 3 })
  k.meddle(2)
  const quote = await p.getQuote(reportData(9))
  t.equal(tdReportData(quote), hex(reportData(9)))
  t.equal(k.stats.inblobWrites, 3, 'two conflicts, third attempt clean')

  k.meddle(100)
  const e = await rejection(p.getQuote(reportData(10)))
  t.ok(e instanceof EnclaveError)
  t.equal(codeOf(e), 'ENCLAVE_QUOTE_PROVIDER_UNAVAILABLE')
  t.equal((e as EnclaveError).details.attempts, 4)
  t.same(await readdir(join(k.root, TSM_REPORT_PATH)), [], 'removed after failure too')
})

t.test('configfs-tsm: missing configfs names the path', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'cgw-no-tsm-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const p = createConfigfsTsmQuoteProvider({ root })
  const e = await rejection(p.getQuote(reportData(1)))
  t.ok(e instanceof EnclaveError)
  t.equal(codeOf(e), 'ENCLAVE_QUOTE_PROVIDER_UNAVAILABLE')
  const path = join(root, TSM_REPORT_PATH)
  t.match((e as Error).message, path)
  t.equal((e as EnclaveError).details.path, path)
  t.equal((e as EnclaveError).details.errno, 'ENOENT')
})

t.test('configfs-tsm: a provider other than tdx_guest is refused', async (t) => {
  const k = await fakeKernel(t, 'sev_guest')
  const p = createConfigfsTsmQuoteProvider({ root: k.root, fs: k.fs })
  const e = await rejection(p.getQuote(reportData(1)))
  t.equal(codeOf(e), 'ENCLAVE_QUOTE_PROVIDER_UNAVAILABLE')
  t.equal((e as EnclaveError).details.provider, 'sev_guest')
  t.equal(k.stats.inblobWrites, 0, 'nothing written to a foreign provider')
  t.same(await readdir(join(k.root, TSM_REPORT_PATH)), [])
})

t.test('configfs-tsm: a tree without the attributes (plain node:fs) fails cleanly', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'cgw-bare-tsm-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  await mkdir(join(root, TSM_REPORT_PATH), { recursive: true })
  const p = createConfigfsTsmQuoteProvider({ root })
  const e = await rejection(p.getQuote(reportData(1)))
  t.equal(codeOf(e), 'ENCLAVE_QUOTE_PROVIDER_UNAVAILABLE')
  t.equal((e as EnclaveError).details.errno, 'ENOENT')
  t.same(await readdir(join(root, TSM_REPORT_PATH)), [], 'the empty instance was removed')
})

t.test('configfs-tsm: misuse and abort', async (t) => {
  const k = await fakeKernel(t)
  const p = createConfigfsTsmQuoteProvider({ root: k.root, fs: k.fs })
  t.equal(codeOf(await rejection(p.getQuote(new Uint8Array(32)))), 'ATTESTATION_OPTIONS_INVALID')
  const ac = new AbortController()
  ac.abort()
  const e = await rejection(p.getQuote(reportData(1), { signal: ac.signal }))
  t.equal((e as Error).name, 'AbortError')
  t.equal(k.stats.inblobWrites, 0)
  t.equal(tdReportData(await p.getQuote(reportData(2))), hex(reportData(2)), 'the queue survives a failed request')
})

t.test('dev quote provider: REPORTDATA as given, measurements configurable, RTMR0-2 the dev CCEL replay by default', async (t) => {
  const mrTd = new Uint8Array(48).fill(7)
  const p = createDevQuoteProvider({ signer, measurements: { mrTd } })
  t.equal(p.name, 'dev')
  const q = parseQuote(await p.getQuote(reportData(3)))
  t.equal(hex(q.body.report.reportData), hex(reportData(3)))
  t.equal(codeOf(await rejection(p.getQuote(new Uint8Array(63)))), 'ATTESTATION_OPTIONS_INVALID')
  if (q.body.kind === 'sgx') return t.fail('not a TD quote')
  t.equal(hex(q.body.report.mrTd), hex(mrTd))
  const log = await createDevEventLogProvider().read()
  if (log === null) return t.fail('the dev TD serves an event log')
  t.equal(parseCcelTable(log.table).logAreaMinimumLength, BigInt(log.data.length), 'the table describes the log')
  const rtmrs = q.body.report.rtmrs
  t.doesNotThrow(() => verifyRtmrs(parseEventLog(log.data).events, rtmrs), 'the default dev quote is the replay of the default dev event log')
  t.equal(hex(q.body.report.rtmrs[3]!), '00'.repeat(48), 'RTMR3 is left to runtime events')
  log.data.fill(0)
  t.not(hex((await createDevEventLogProvider().read())!.data), hex(log.data), 'reads are copies')

  // Explicit RTMRs win over the CCEL, and live registers over both; a given `ccel` moves the default.
  const rtmrsOf = (x: ReturnType<typeof parseQuote>) => (x.body.kind === 'sgx' ? [] : x.body.report.rtmrs)
  const given = [1, 2, 3, 4].map((n) => new Uint8Array(48).fill(n))
  const explicit = parseQuote(await createDevQuoteProvider({ signer, measurements: { rtmrs: given } }).getQuote(reportData(4)))
  t.same(rtmrsOf(explicit).map(hex), given.map(hex))
  const live = [5, 6, 7, 8].map((n) => new Uint8Array(48).fill(n))
  const fromLive = parseQuote(await createDevQuoteProvider({ signer, measurements: { rtmrs: given }, rtmrs: () => live }).getQuote(reportData(5)))
  t.same(rtmrsOf(fromLive).map(hex), live.map(hex))
  const other = createDevCcel({ cmdline: 'console=hvc0 other' })
  const moved = parseQuote(await createDevQuoteProvider({ signer, ccel: other }).getQuote(reportData(6)))
  t.same(rtmrsOf(moved).map(hex), other.rtmrs.map(hex))
  t.same(hex((await createDevEventLogProvider({ ccel: other }).read())!.data), hex(other.data))
})

const VECTOR = new URL('./vectors/eventlog/gce-cos113/', import.meta.url)
const ccelTable = new Uint8Array(readFileSync(new URL('ccel_table.dat', VECTOR)))
const ccelData = new Uint8Array(readFileSync(new URL('ccel_data.dat', VECTOR)))

t.test('CCEL: the table and log bytes as the kernel exposes them', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'cgw-ccel-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const p = createCcelEventLogProvider({ root })
  t.equal(await p.read(), null, 'no CCEL table: null')

  await mkdir(dirname(join(root, CCEL_DATA_PATH)), { recursive: true })
  await writeFile(join(root, CCEL_TABLE_PATH), ccelTable)
  const e = await rejection(p.read())
  t.equal(codeOf(e), 'ENCLAVE_EVIDENCE_UNAVAILABLE', 'a table without its log is an error')
  t.equal((e as EnclaveError).details.path, join(root, CCEL_DATA_PATH))

  await writeFile(join(root, CCEL_DATA_PATH), ccelData)
  const log = await p.read()
  t.equal(hex(log!.table), hex(ccelTable))
  t.equal(hex(log!.data), hex(ccelData))
  t.equal(parseCcelTable(log!.table).logAreaMinimumLength, BigInt(ccelData.length), 'the table parses and describes the log')
})

t.test('CCEL: permission errors say the tables are root-only', async (t) => {
  const p = createCcelEventLogProvider({
    readFile: async (path) => {
      throw Object.assign(new Error(`EACCES: permission denied, open '${path}'`), { code: 'EACCES' })
    },
  })
  const e = await rejection(p.read())
  t.equal(codeOf(e), 'ENCLAVE_EVIDENCE_UNAVAILABLE')
  t.match((e as Error).message, /\/sys\/firmware\/acpi\/tables\/CCEL.*root/)
})
