/**
 * `cgw verify-quote` as a user runs it: every vector, collateral from a file
 * or from a (fake, loopback) PCS, hex input, JSON output, and one exit code
 * per failing stage.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { main } from '../bin/cgw.ts'
import { EXIT } from '../bin/exit-codes.ts'
import { BASELINE_POLICY_DOCUMENT } from '../attestation/policy/policy.ts'
import { startFakePcs } from './helpers/fake-pcs.ts'
import { tdxCase, tdxCases } from './helpers/vectors.ts'

async function run(args: string[]): Promise<{ code: number; out: string; json?: any }> {
  let out = ''
  const io = { out: (s: string) => void (out += s), err: (s: string) => void (out += s) }
  const code = await main(['verify-quote', ...args], io)
  return { code, out, ...(args.includes('--json') ? { json: JSON.parse(out) } : {}) }
}

const tmp = mkdtempSync(join(tmpdir(), 'cgw-cli-'))
t.teardown(() => rmSync(tmp, { recursive: true, force: true }))

const EXPECTED_EXIT: Record<string, number> = {
  'sgx-v3-configuration-needed': EXIT.POLICY, // genuine, but an SGX enclave is not a TD
  'tdx-v4-emerald-rapids-uptodate': EXIT.OK,
  'tdx-v4-gcp-outofdate': EXIT.POLICY, // OutOfDate is refused by the baseline
  'tdx-v4-granite-rapids-outofdate': EXIT.POLICY,
  'tdx-v4-phala-cloud-2026-06': EXIT.OK,
  'tdx-v5-uptodate': EXIT.OK,
}

for (const c of tdxCases()) {
  t.test(`vector ${c.id}`, async (t) => {
    const r = await run([`${c.dir}quote.bin`, '--collateral', `${c.dir}collateral.json`, '--at', c.verifyAt.toISOString(), '--json'])
    t.equal(r.code, EXPECTED_EXIT[c.id])
    t.equal(r.json.verification.tcbStatus, c.expected.status)
    t.same(r.json.verification.advisoryIds, c.expected.advisoryIds)
    t.equal(r.json.ok, r.code === EXIT.OK)
    const human = await run([`${c.dir}quote.bin`, '--collateral', `${c.dir}collateral.json`, '--at', c.verifyAt.toISOString()])
    t.equal(human.code, r.code)
    t.match(human.out, c.expected.status)
  })
}

t.test('hex input, pinning policy, dates and failures', async (t) => {
  const c = tdxCase('tdx-v4-emerald-rapids-uptodate')
  const at = c.verifyAt.toISOString()
  const col = `${c.dir}collateral.json`
  const hexQuote = join(tmp, 'quote.hex')
  writeFileSync(hexQuote, `0x${Buffer.from(c.quote).toString('hex')}\n`)
  t.equal((await run([hexQuote, '--collateral', col, '--at', at])).code, EXIT.OK, 'hex quote file')

  const policy = structuredClone(BASELINE_POLICY_DOCUMENT) as any
  policy.tdx.mrTd = [c.summary.mr_td]
  const policyFile = join(tmp, 'policy.json')
  writeFileSync(policyFile, JSON.stringify(policy))
  const pinned = await run([hexQuote, '--collateral', col, '--at', at, '--policy', policyFile, '--json'])
  t.equal(pinned.code, EXIT.OK)
  t.same(pinned.json.policy.pinned, ['mrTd'])
  policy.tdx.mrTd = ['00'.repeat(48)]
  writeFileSync(policyFile, JSON.stringify(policy))
  const refused = await run([hexQuote, '--collateral', col, '--at', at, '--policy', policyFile, '--json'])
  t.equal(refused.code, EXIT.POLICY)
  t.equal(refused.json.error.code, 'ATTESTATION_POLICY_REJECTED')
  t.same(refused.json.policy.mismatches.map((m: any) => m.code), ['POLICY_MRTD_NOT_ALLOWED'])

  const late = await run([hexQuote, '--collateral', col, '--at', '2030-01-01T00:00:00Z', '--json'])
  t.equal(late.code, EXIT.VERIFICATION)
  t.equal(late.json.stage, 'verify')

  const cut = join(tmp, 'cut.bin')
  writeFileSync(cut, c.quote.subarray(0, 700))
  const truncated = await run([cut, '--collateral', col, '--at', at, '--json'])
  t.equal(truncated.code, EXIT.PARSE)
  t.equal(truncated.json.error.code, 'ATTESTATION_QUOTE_TRUNCATED')

  writeFileSync(policyFile, '{"version":1}')
  t.equal((await run([hexQuote, '--collateral', col, '--policy', policyFile])).code, EXIT.USAGE, 'invalid policy')
  t.equal((await run([hexQuote])).code, EXIT.USAGE, 'no collateral source')
  t.equal((await run([hexQuote, '--collateral', col, '--pcs', 'http://127.0.0.1:1'])).code, EXIT.USAGE, 'two collateral sources')
  t.equal((await run([hexQuote, '--collateral', col, '--at', 'yesterday'])).code, EXIT.USAGE)
  t.equal((await run([hexQuote, '--collateral', col, '--nope'])).code, EXIT.USAGE)
  t.equal((await run([join(tmp, 'missing.bin'), '--collateral', col])).code, EXIT.USAGE)
  policy.trustRoot = { dev: 'ab'.repeat(32) }
  policy.tdx.mrTd = 'any'
  writeFileSync(policyFile, JSON.stringify(policy))
  t.equal((await run([hexQuote, '--collateral', col, '--at', at, '--policy', policyFile])).code, EXIT.USAGE, 'dev root named but not given')
})

t.test('collateral from a PCS', async (t) => {
  const c = tdxCase('tdx-v4-phala-cloud-2026-06')
  const pcs = await startFakePcs({ bundles: new Map([[String(c.summary.fmspc), c.collateral]]) })
  t.teardown(() => pcs.close())
  const ok = await run([`${c.dir}quote.bin`, '--pcs', pcs.url, '--at', c.verifyAt.toISOString(), '--json'])
  t.equal(ok.code, EXIT.OK)
  t.equal(ok.json.verification.tcbStatus, 'UpToDate')
  pcs.faults.tcb = { status: 503 }
  const down = await run([`${c.dir}quote.bin`, '--pcs', pcs.url, '--at', c.verifyAt.toISOString(), '--json'])
  t.equal(down.code, EXIT.COLLATERAL)
  t.equal(down.json.error.code, 'ATTESTATION_PCS_UNAVAILABLE')
})

t.test('the installed command runs', async (t) => {
  const c = tdxCase('tdx-v5-uptodate')
  const bin = fileURLToPath(new URL('../bin/cgw.js', import.meta.url))
  const { stdout } = await promisify(execFile)(process.execPath, [bin, 'verify-quote', `${c.dir}quote.bin`, '--collateral', `${c.dir}collateral.json`, '--at', c.verifyAt.toISOString()])
  t.match(stdout, /Result\s+ACCEPTED/)
  const failed = await promisify(execFile)(process.execPath, [bin, 'verify-quote', `${c.dir}quote.bin`, '--collateral', `${c.dir}collateral.json`, '--at', '2040-01-01T00:00:00Z']).catch((e) => e)
  t.equal(failed.code, EXIT.VERIFICATION)
})
