/**
 * `cgw verify-gpu` on NVIDIA's sample evidence, as a user runs it: the RIM
 * store directory, --nonce, a policy, JSON output and one exit code per stage.
 */
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { main } from '../bin/cgw.ts'
import { EXIT } from '../bin/exit-codes.ts'
import { gpuEvidenceToJson } from '../attestation/nvidia/evidence.ts'
import { GPU_OCSP_TIME, SAMPLE_DIR, SAMPLE_NONCE, sampleBundle } from './helpers/nvidia-sample.ts'

const dir = mkdtempSync(join(tmpdir(), 'cgw-gpu-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const evidence = join(dir, 'evidence.json')
writeFileSync(evidence, JSON.stringify(gpuEvidenceToJson(sampleBundle({ ocsp: 'gpu', rims: false }))))
const nonce = Buffer.from(SAMPLE_NONCE).toString('hex')
const at = GPU_OCSP_TIME.toISOString()
const rims = `${SAMPLE_DIR}rims-matching`

async function run(...args: string[]): Promise<{ code: number; out: string }> {
  let out = ''
  const code = await main(['verify-gpu', ...args], { out: (s) => void (out += s), err: (s) => void (out += s) })
  return { code, out }
}

t.test('exit codes per stage', async (t) => {
  t.equal((await run(evidence, '--rims', rims, '--at', at, '--nonce', nonce)).code, EXIT.POLICY, 'baseline: RIM OCSP missing')
  const policy = join(dir, 'gpu-policy.json')
  writeFileSync(policy, JSON.stringify({ trustRoot: 'nvidia', count: 1, driverVersions: ['550.90.07'], vbiosVersions: 'any', requireOcsp: false }))
  const ok = await run(evidence, '--rims', rims, '--at', at, '--nonce', nonce, '--policy', policy, '--json')
  t.equal(ok.code, EXIT.OK)
  const report = JSON.parse(ok.out)
  t.equal(report.verification.gpus[0].measurements.matched, 33)
  t.equal(report.nonce.checked, true)
  const unchecked = JSON.parse((await run(evidence, '--rims', rims, '--at', at, '--policy', policy, '--json')).out)
  t.equal(unchecked.nonce.checked, false, 'the report says when freshness was not checked')
  t.equal((await run(evidence, '--rims', rims, '--at', at, '--nonce', '00'.repeat(32), '--policy', policy)).code, EXIT.VERIFICATION)
  t.equal((await run(evidence, '--at', at, '--nonce', nonce, '--policy', policy)).code, EXIT.VERIFICATION, 'no RIMs anywhere')
  const bad = join(dir, 'bad.json')
  writeFileSync(bad, '{"evidences": 3}')
  t.equal((await run(bad, '--rims', rims)).code, EXIT.PARSE)
  t.equal((await run(evidence, '--nonce', 'abc')).code, EXIT.USAGE)
  t.equal((await run(evidence, '--rims', join(dir, 'nope'))).code, EXIT.USAGE)
  writeFileSync(policy, JSON.stringify({ version: 1, trustRoot: 'intel', tdx: {} }))
  t.equal((await run(evidence, '--policy', policy)).code, EXIT.USAGE, 'invalid policy document')
})
