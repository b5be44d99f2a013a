/**
 * From source to a verified provider, end to end: `cgw measure` computes the
 * client policy of a release + config, and `cgw verify` (the client SDK, the
 * same policy loader `cgw proxy` uses) accepts a running dev-TEE gateway of
 * exactly that release and config with it — the required events found in
 * the bundle's runtime events, replayed onto the quote's RTMR3. Another
 * release hash in the policy: rejected by the policy, by code. Runtime
 * events missing or reordered: refused. `cgw verify-quote --policy` takes
 * the same file with `--runtime-events`.
 *
 * The gateway is the dev TEE as `createEnclaveFromConfig` builds it
 * (its generated CCEL, in-memory RTMRs starting from that log's replay and
 * extended by measureGatewayStart, dev quotes over them),
 * under the test's dev root CA so that collateral for it can be signed.
 */
import t from 'tap'
import { mkdir, writeFile, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { runMeasure } from '../bin/commands/measure.ts'
import { runVerify } from '../bin/commands/verify.ts'
import { main } from '../bin/cgw.ts'
import { EXIT } from '../bin/exit-codes.ts'
import { loadGatewayConfig } from '../gateway/config.ts'
import { startGateway } from '../gateway/main.ts'
import { loadClientPolicy } from '../gateway/client/policy.ts'
import { createDevQuoteSigner, DEV_FMSPC } from '../attestation/dev/index.ts'
import { createEnclave } from '../enclave/enclave.ts'
import { createHttpEngine } from '../enclave/engines/http.ts'
import { createDevEventLogProvider, createDevQuoteProvider } from '../enclave/quote-providers/dev.ts'
import { createMemoryEventStore, createMemoryRtmrs } from '../enclave/quote-providers/rtmr-extend.ts'
import { ccelBase, measureGatewayStart, resolveRelease } from '../enclave/quote-providers/runtime-measurement.ts'
import { createReleaseManifest, encodeReleaseManifest } from '../deploy/release/manifest.ts'
import type { Enclave, EvidenceBundle } from '../enclave/types.ts'
import { devWorld } from './helpers/dev-provider.ts'

const world = await devWorld(t)
const dir = world.dir

function io() {
  let out = ''
  let err = ''
  return { io: { out: (s: string) => void (out += s), err: (s: string) => void (err += s) }, out: () => out, err: () => err }
}

/** A release directory made the way build-release makes one. */
async function fixtureRelease(path: string): Promise<void> {
  await mkdir(path, { recursive: true })
  const files = [
    { path: 'cgw.mjs', mode: '0755' as const, bytes: new TextEncoder().encode('#!/usr/bin/env node\n// e2e fixture\n') },
    { path: 'package.json', mode: '0644' as const, bytes: new TextEncoder().encode('{"name":"confidential-gateway"}\n') },
  ]
  for (const f of files) await writeFile(join(path, f.path), f.bytes, { mode: f.mode === '0755' ? 0o755 : 0o644 })
  await writeFile(join(path, 'release.json'), encodeReleaseManifest(createReleaseManifest({ name: 'confidential-gateway', packageVersion: '0.1.0', external: {}, files })))
}

const release = join(dir, 'release')
await fixtureRelease(release)
const configFile = join(dir, 'gateway.json')
await writeFile(configFile, JSON.stringify({ logLevel: 'silent', listen: { host: '127.0.0.1', port: 0 }, enclave: { tee: 'dev', gpu: 'none', engine: { url: 'http://127.0.0.1:9' }, release } }))

/** Start the dev-TEE gateway of `configFile`; `alter` changes the bundles it serves (the quote stays as signed). */
async function startDevTee(alter?: (b: EvidenceBundle) => EvidenceBundle): Promise<{ url: string; bundle: () => Promise<EvidenceBundle> }> {
  const config = await loadGatewayConfig({ file: configFile, env: {} })
  // As createEnclaveFromConfig's dev branch: the registers start from the dev CCEL's replay, which is also the measurer's base.
  const firmware = createDevEventLogProvider()
  const base = await ccelBase(firmware)
  const regs = createMemoryRtmrs(base)
  const { releaseHash } = await resolveRelease({ tee: 'dev', dir: release })
  const { measurer } = await measureGatewayStart({ extender: regs.extender, store: createMemoryEventStore(), base, releaseHash, config })
  const real = await createEnclave({
    engine: createHttpEngine({ baseUrl: 'http://127.0.0.1:9' }),
    quotes: createDevQuoteProvider({ signer: createDevQuoteSigner(world.ca, { fmspc: DEV_FMSPC }), rtmrs: regs.values }),
    eventLog: { read: () => firmware.read(), runtimeEvents: () => measurer.events() },
    gpu: null,
    epochLengthMs: 3_600_000,
    graceMs: 60_000,
  })
  let enclave: Enclave = real
  if (alter) {
    enclave = Object.create(real) as Enclave
    Object.defineProperty(enclave, 'attest', { value: async (...a: Parameters<Enclave['attest']>) => alter(await real.attest(...a)) })
  }
  const gw = await startGateway(config, { enclave, handleSignals: false })
  t.teardown(() => gw.shutdown())
  const url = `http://127.0.0.1:${gw.address.port}`
  return { url, bundle: async () => (await (await fetch(`${url}/v1/attestation?nonce=${randomBytes(32).toString('hex')}`)).json()) as EvidenceBundle }
}

async function measure(policyOut: string, extra: string[]): Promise<void> {
  const m = io()
  const code = await runMeasure(['--config', configFile, '--reference', 'dev', '--dev-root', world.rootFile, '--collateral', world.collateralFile, '--policy-out', policyOut, ...extra], m.io)
  t.equal(code, EXIT.OK, m.err())
}

const gateway = await startDevTee()

t.test('measure → policy file → cgw verify accepts the gateway of that release and config', async (t) => {
  const policy = join(dir, 'policy.json')
  await measure(policy, ['--release', release])
  const doc = JSON.parse(await readFile(policy, 'utf8'))
  t.same(Object.keys(doc).sort(), ['collateral', 'description', 'devRoots', 'gpu', 'maxEvidenceAgeSeconds', 'quote', 'registry', 'version'], 'a client policy')
  t.same(doc.devRoots, { tdx: 'dev-tdx-root.pem' }, 'files named relative to the policy file')
  t.ok(await loadClientPolicy(policy), 'the loader cgw verify and cgw proxy use takes it as is')

  const v = io()
  t.equal(await runVerify([gateway.url, '--policy', policy, '--json'], v.io), EXIT.OK, v.out())
  const report = JSON.parse(v.out()).report
  t.equal(report.stage, 'accepted')
  t.ok(report.tdx.measurements.every((m: { allowListed: unknown }) => m.allowListed === true), 'every register pinned, and each matches')
  t.equal(report.tdx.runtimeEvents.status, 'replayed', 'the required events came from the runtime events, replayed to RTMR3')
  t.same(report.tdx.runtimeEvents.events.map((e: { event: string }) => e.event), ['cgw-release', 'cgw-config'])
})

t.test('another release hash in the policy: rejected by the policy, with codes', async (t) => {
  const policy = join(dir, 'policy-other.json')
  await measure(policy, ['--release-hash', 'ab'.repeat(48)])
  const v = io()
  t.equal(await runVerify([gateway.url, '--policy', policy, '--json'], v.io), EXIT.POLICY)
  const out = JSON.parse(v.out())
  t.equal(out.error.code, 'CLIENT_POLICY_REJECTED')
  const codes = out.report.policy.mismatches.map((m: { code: string }) => m.code)
  t.ok(codes.includes('POLICY_RTMR3_NOT_ALLOWED'), 'RTMR3 is not the measured one')
  t.ok(codes.includes('POLICY_REQUIRED_EVENT_MISSING'), 'and the cgw-release event of that hash is missing')
})

t.test('runtime events withheld or reordered: refused', async (t) => {
  const policy = join(dir, 'policy.json')
  // Both logs withheld: nothing to find the required events in.
  const dropped = await startDevTee((b) => {
    const { runtimeEvents: _drop, ...rest } = b
    return { ...rest, eventLog: null } as EvidenceBundle
  })
  const a = io()
  t.equal(await runVerify([dropped.url, '--policy', policy, '--json'], a.io), EXIT.POLICY)
  t.same(JSON.parse(a.out()).report.policy.mismatches.map((m: { code: string }) => m.code), ['POLICY_EVENT_LOG_MISSING'], 'no log to find the required events in')

  // Runtime events withheld, the CCEL kept: the CCEL alone does not reproduce the extended RTMR3.
  const bare = await startDevTee((b) => {
    const { runtimeEvents: _drop, ...rest } = b
    return rest as EvidenceBundle
  })
  const c = io()
  t.equal(await runVerify([bare.url, '--policy', policy, '--json'], c.io), EXIT.VERIFICATION)
  t.equal(JSON.parse(c.out()).error.code, 'CLIENT_QUOTE_INVALID', 'the firmware log alone does not replay to RTMR3')

  const swapped = await startDevTee((b) => ({ ...b, runtimeEvents: [...(b.runtimeEvents ?? [])].reverse() }))
  const s = io()
  t.equal(await runVerify([swapped.url, '--policy', policy, '--json'], s.io), EXIT.VERIFICATION)
  t.equal(JSON.parse(s.out()).error.code, 'CLIENT_QUOTE_INVALID', 'a log that does not replay to the quote')

  const forged = await startDevTee((b) => ({ ...b, runtimeEvents: [{ ...b.runtimeEvents![0]!, payload: 'ab'.repeat(48) }, b.runtimeEvents![1]!] }))
  const f = io()
  t.equal(await runVerify([forged.url, '--policy', policy, '--json'], f.io), EXIT.PARSE)
  t.equal(JSON.parse(f.out()).error.code, 'CLIENT_EVIDENCE_MALFORMED', 'a record whose digest is not of its payload')
})

t.test('cgw verify-quote --policy takes the measured policy, with --runtime-events', async (t) => {
  const bundle = await gateway.bundle()
  const quoteFile = join(dir, 'quote.bin')
  const bundleFile = join(dir, 'bundle.json')
  await writeFile(quoteFile, Buffer.from(bundle.quote, 'base64'))
  await writeFile(bundleFile, JSON.stringify(bundle))
  const run = async (extra: string[]) => {
    const c = io()
    const code = await main(['verify-quote', quoteFile, '--collateral', world.collateralFile, '--policy', join(dir, 'policy.json'), '--json', ...extra], c.io)
    return { code, json: JSON.parse(c.out()) }
  }
  const ok = await run(['--runtime-events', bundleFile])
  t.equal(ok.code, EXIT.OK, JSON.stringify(ok.json.error ?? null))
  t.same(ok.json.eventLog.rtmrsReplayed, [3])
  const listFile = join(dir, 'events.json')
  await writeFile(listFile, JSON.stringify(bundle.runtimeEvents))
  t.equal((await run(['--runtime-events', listFile])).code, EXIT.OK, 'a bare list of events works too')
  const none = await run([])
  t.equal(none.code, EXIT.POLICY, 'without them the required events cannot be found')
  const other = await run(['--runtime-events', bundleFile, '--policy', join(dir, 'policy-other.json')])
  t.equal(other.code, EXIT.POLICY, 'the policy of another release')
})
