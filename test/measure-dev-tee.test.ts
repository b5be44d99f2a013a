/**
 * `cgw measure` against the gateway itself: the measurements computed from
 * the config and release alone equal what a running dev-TEE gateway reports
 * in its quote (RTMR3, the workload id, the runtime events), the emitted
 * policy is one `parsePolicy` accepts and every pin in it matches the quote,
 * and the output is byte-stable. The dev TEE extends the same events into
 * its in-memory RTMR3 that a real TD extends through tsm-mr.
 */
import t from 'tap'
import { mkdtemp, mkdir, readFile, writeFile, copyFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { runMeasure } from '../bin/commands/measure.ts'
import { main } from '../bin/cgw.ts'
import { EXIT } from '../bin/exit-codes.ts'
import { loadGatewayConfig } from '../gateway/config.ts'
import { startGateway } from '../gateway/main.ts'
import { createEnclaveFromConfig } from '../enclave/index.ts'
import { parseQuote, type TdReport } from '../attestation/tdx/abi/quote.ts'
import { computeWorkloadId } from '../attestation/workload.ts'
import { parsePolicy, MEASUREMENT_FIELDS } from '../attestation/policy/policy.ts'
import { verifyEvidenceEvents, verifyRuntimeEvents, gatewayConfigHash } from '../attestation/eventlog/runtime-events.ts'
import { verifyQuote } from '../attestation/tdx/verify/verify-quote.ts'
import { validateQuote } from '../attestation/tdx/validate/validate-quote.ts'
import { trustedRootFromDer } from '../attestation/roots/trust-root.ts'
import { readCertificate } from '../bin/io.ts'
import { createReleaseManifest, encodeReleaseManifest, releaseHash } from '../deploy/release/manifest.ts'
import type { EvidenceBundle } from '../enclave/types.ts'
import { codeOf } from './helpers/errors.ts'

const dir = await mkdtemp(join(tmpdir(), 'cgw-measure-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))

async function measure(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const code = await runMeasure(args, { out: (s) => void (out += s), err: (s) => void (err += s) })
  return { code, out, err }
}

/** Start the dev-TEE gateway from `configFile` as `cgw gateway` does, fetch evidence for a fresh nonce, stop. */
async function evidenceOf(configFile: string): Promise<EvidenceBundle> {
  const config = await loadGatewayConfig({ file: configFile, env: {} })
  const enclave = await createEnclaveFromConfig(config.enclave ?? {}, config)
  const gw = await startGateway(config, { enclave, handleSignals: false })
  try {
    const nonce = randomBytes(32).toString('hex')
    const res = await fetch(`http://127.0.0.1:${gw.address.port}/v1/attestation?nonce=${nonce}`)
    t.equal(res.status, 200)
    return (await res.json()) as EvidenceBundle
  } finally {
    await gw.shutdown()
  }
}

const reportOf = (b: EvidenceBundle): TdReport => {
  const q = parseQuote(new Uint8Array(Buffer.from(b.quote, 'base64')))
  if (q.body.kind === 'sgx') throw new Error('not a TD quote')
  return q.body.report
}
const h = (b: Uint8Array) => Buffer.from(b).toString('hex')

/** A small release directory made the way build-release makes one. */
async function fixtureRelease(path: string): Promise<string> {
  await mkdir(path, { recursive: true })
  const files = [
    { path: 'cgw.mjs', mode: '0755' as const, bytes: new TextEncoder().encode('#!/usr/bin/env node\n// fixture\n') },
    { path: 'package.json', mode: '0644' as const, bytes: new TextEncoder().encode('{"name":"confidential-gateway"}\n') },
  ]
  for (const f of files) await writeFile(join(path, f.path), f.bytes, { mode: f.mode === '0755' ? 0o755 : 0o644 })
  const bytes = encodeReleaseManifest(createReleaseManifest({ name: 'confidential-gateway', packageVersion: '0.1.0', external: {}, files }))
  await writeFile(join(path, 'release.json'), bytes)
  return h(releaseHash(bytes))
}

const roots = join(dir, 'roots')
const baseConfig = {
  logLevel: 'silent',
  listen: { host: '127.0.0.1', port: 0 },
  enclave: { tee: 'dev', gpu: 'none', engine: { url: 'http://127.0.0.1:9', apiKey: 'engine-secret' }, devRootsOut: roots },
}

t.test('unreleased dev gateway: measure predicts RTMR3, workload id and events; the policy pins the quote', async (t) => {
  const configFile = join(dir, 'gateway.json')
  await writeFile(configFile, JSON.stringify(baseConfig))
  const bundle = await evidenceOf(configFile)
  const r = await measure(['--config', configFile, '--unreleased', '--reference', 'dev', '--dev-root', join(roots, 'dev-tdx-root.pem'), '--quote-policy-out', join(dir, 'policy.json')])
  t.equal(r.code, EXIT.OK, r.err)
  const m = JSON.parse(r.out)
  const report = reportOf(bundle)

  t.equal(m.expected.rtmr3, h(report.rtmrs[3]), 'RTMR3 as the quote says')
  t.same(m.workloadIds, [computeWorkloadId(report)], 'the registry workload id of the quote')
  t.same(bundle.runtimeEvents, m.runtimeEvents, 'the same two events, in order')
  t.same(m.runtimeEvents.map((e: { event: string }) => e.event), ['cgw-release', 'cgw-config'])

  const verified = verifyRuntimeEvents(bundle.runtimeEvents!, report.rtmrs)
  t.same(verified.map((e) => e.digest), m.runtimeEvents.map((e: { digest: string }) => e.digest), 'the measured events are the ones bound to the quote')

  const policyDoc = JSON.parse(await readFile(join(dir, 'policy.json'), 'utf8'))
  t.same(policyDoc, m.quotePolicy, '--quote-policy-out writes the quote policy alone')
  const policy = parsePolicy(policyDoc)
  // The quote, verified under the dev root, passes the emitted policy with its runtime events bound to it:
  // every pin and every required event (validateQuote's requiredEvents check) holds.
  const collateral = JSON.parse(await readFile(join(roots, 'dev-collateral.json'), 'utf8'))
  const rootDer = await readCertificate(join(roots, 'dev-tdx-root.pem'), 'dev root')
  const v = verifyQuote(new Uint8Array(Buffer.from(bundle.quote, 'base64')), collateral, { now: new Date(), trustedRoot: trustedRootFromDer('dev', rootDer) })
  const bound = verifyEvidenceEvents(null, bundle.runtimeEvents!, report.rtmrs, [3])!.events
  t.equal(validateQuote(v, policy, { events: bound }).accepted, true, 'the emitted policy accepts the quote and its events')
  const fields: Record<string, Uint8Array> = {
    mrTd: report.mrTd, rtmr0: report.rtmrs[0], rtmr1: report.rtmrs[1], rtmr2: report.rtmrs[2], rtmr3: report.rtmrs[3],
    mrConfigId: report.mrConfigId, mrOwner: report.mrOwner, mrOwnerConfig: report.mrOwnerConfig,
  }
  for (const f of MEASUREMENT_FIELDS) {
    const allowed = policy.measurements[f]
    t.ok(allowed !== 'any' && allowed.has(h(fields[f]!)), `${f} pinned to the quote's value`)
  }
  t.same(policy.requiredEvents.map((e) => e.digest), m.runtimeEvents.map((e: { digest: string }) => e.digest), 'required events are the runtime events')
  t.same(policy.gpu, parsePolicy({ ...policyDoc, gpu: { required: false } }).gpu, 'no GPU in this config: gpu.required false')
})

t.test('a release directory: the gateway extends its release hash, measure recomputes it from the files', async (t) => {
  const releaseDir = join(dir, 'release')
  const expectedRelease = await fixtureRelease(releaseDir)
  const configFile = join(dir, 'gateway-release.json')
  await writeFile(configFile, JSON.stringify({ ...baseConfig, enclave: { ...baseConfig.enclave, release: releaseDir } }))
  const bundle = await evidenceOf(configFile)
  const r = await measure(['--config', configFile, '--release', releaseDir, '--reference', 'dev', '--dev-root', join(roots, 'dev-tdx-root.pem')])
  t.equal(r.code, EXIT.OK, r.err)
  const m = JSON.parse(r.out)
  t.equal(bundle.runtimeEvents![0]!.payload, expectedRelease, 'cgw-release carries SHA-384 of release.json')
  t.equal(m.expected.rtmr3, h(reportOf(bundle).rtmrs[3]))
  t.same(m.workloadIds, [computeWorkloadId(reportOf(bundle))])
  t.equal(m.provenance.release.files.length, 2, 'provenance lists the release files')

  // --release-hash gives the same answer as the directory.
  const byHash = await measure(['--config', configFile, '--release-hash', expectedRelease, '--reference', 'dev', '--dev-root', join(roots, 'dev-tdx-root.pem')])
  t.equal(JSON.parse(byHash.out).expected.rtmr3, m.expected.rtmr3)

  // A tampered release file: the gateway refuses to start, measure refuses to measure.
  await writeFile(join(releaseDir, 'cgw.mjs'), '#!/usr/bin/env node\n// tampered\n', { mode: 0o755 })
  const config = await loadGatewayConfig({ file: configFile, env: {} })
  const e = await createEnclaveFromConfig(config.enclave ?? {}, config).then(() => undefined, (x: unknown) => x)
  t.equal(codeOf(e), 'ENCLAVE_EVIDENCE_UNAVAILABLE')
  t.same((e as { details: Record<string, unknown> }).details, { step: 'runtime-measurement', code: 'RELEASE_FILE_MISMATCH' })
  const refused = await measure(['--config', configFile, '--release', releaseDir, '--reference', 'dev', '--dev-root', join(roots, 'dev-tdx-root.pem')])
  t.equal(refused.code, EXIT.USAGE)
  t.match(refused.err, /RELEASE_FILE_MISMATCH|ATTESTATION_OPTIONS_INVALID/)
})

t.test('output is stable: same inputs (from another directory too) give the same bytes; config changes move RTMR3', async (t) => {
  const configFile = join(dir, 'gateway.json')
  const args = (c: string) => ['--config', c, '--unreleased', '--reference', 'dev', '--dev-root', join(roots, 'dev-tdx-root.pem')]
  const a = await measure(args(configFile))
  const b = await measure(args(configFile))
  t.equal(a.out, b.out, 'two runs, same bytes')
  const other = join(dir, 'elsewhere')
  await mkdir(other)
  await copyFile(configFile, join(other, 'gateway.json'))
  t.equal((await measure(args(join(other, 'gateway.json')))).out, a.out, 'no path of the caller in the output')
  t.notMatch(a.out, new RegExp(dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'no absolute path')

  // Secrets do not move the measurement; settings do.
  const secret = join(dir, 'secret.json')
  await writeFile(secret, JSON.stringify({ ...baseConfig, enclave: { ...baseConfig.enclave, engine: { url: 'http://127.0.0.1:9', apiKey: 'another-secret' } } }))
  t.equal(JSON.parse((await measure(args(secret))).out).expected.rtmr3, JSON.parse(a.out).expected.rtmr3, 'engine.apiKey is not measured')
  const changed = join(dir, 'changed.json')
  await writeFile(changed, JSON.stringify({ ...baseConfig, enclave: { ...baseConfig.enclave, epochSeconds: 600 } }))
  t.not(JSON.parse((await measure(args(changed))).out).expected.rtmr3, JSON.parse(a.out).expected.rtmr3, 'epochSeconds is measured')
  t.not(h(gatewayConfigHash({ a: 1 })), h(gatewayConfigHash({ a: 2 })))
})

t.test('arguments: fail closed, exit 1', async (t) => {
  const configFile = join(dir, 'gateway.json')
  t.equal((await measure([])).code, EXIT.USAGE, 'no config')
  t.equal((await measure(['--config', configFile])).code, EXIT.USAGE, 'no release choice')
  t.equal((await measure(['--config', configFile, '--unreleased', '--release-hash', 'ab'])).code, EXIT.USAGE, 'two release choices')
  t.equal((await measure(['--config', configFile, '--unreleased', '--reference', 'dev'])).code, EXIT.USAGE, 'dev reference without its root')
  const dev = ['--config', configFile, '--unreleased', '--reference', 'dev', '--dev-root', join(roots, 'dev-tdx-root.pem')]
  t.equal((await measure([...dev, '--policy-out', join(dir, 'p.json')])).code, EXIT.USAGE, 'a client policy names its collateral source: no default PCS')
  t.equal((await measure([...dev, '--pcs', 'https://pccs.example', '--collateral', 'c.json'])).code, EXIT.USAGE, 'one collateral source')
  t.equal((await measure([...dev, '--pcs', 'https://pccs.example', '--chain-id', '1'])).code, EXIT.USAGE, 'a registry needs chain, address and RPC')
  const bad = await measure([...dev, '--pcs', 'https://pccs.example', '--chain-id', '1', '--registry', '0xnot-an-address', '--rpc-url', 'https://rpc.example'])
  t.equal(bad.code, EXIT.USAGE)
  t.match(bad.err, /CLIENT_CONFIG_INVALID/, 'checked as the client will check it')
  const chain = await measure([...dev, '--pcs', 'https://pccs.example', '--chain-id', '1', '--registry', `0x${'12'.repeat(20)}`, '--rpc-url', 'https://rpc.example', '--max-evidence-age', '600'])
  t.equal(chain.code, EXIT.OK, chain.err)
  t.match(JSON.parse(chain.out).policy, { registry: { required: true, chainId: 1, matchWorkloadId: true }, collateral: { pcsUrl: 'https://pccs.example' }, maxEvidenceAgeSeconds: 600 })
  const tdx = join(dir, 'tdx.json')
  await writeFile(tdx, JSON.stringify({ enclave: { tee: 'tdx', engine: { url: 'http://127.0.0.1:9' } } }))
  t.equal((await measure(['--config', tdx, '--unreleased'])).code, EXIT.USAGE, 'a real TD needs a reference boot')
  t.equal((await measure(['--config', join(dir, 'absent.json'), '--unreleased'])).code, EXIT.USAGE)
  let err = ''
  t.equal(await main(['measure', '--nope'], { out: () => {}, err: (s) => void (err += s) }), EXIT.USAGE, 'registered in cgw')
})
