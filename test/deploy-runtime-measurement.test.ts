/**
 * Runtime measurement: the event record and its digest (dstack's runtime
 * event rule), replay onto a quote's RTMR3 from the CCEL value or zero, the
 * tsm-mr sysfs extender against a fake kernel tree (a write extends, a read
 * returns the live value), the tmpfs runtime event log across a gateway
 * restart (idempotent per boot: the same release and config are not
 * extended twice, another one is refused), the CCEL and runtime log bound
 * to a quote together, and the dev TEE's in-memory registers signed into
 * dev quotes. Errors are asserted by code.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  canonicalJson,
  createRuntimeEvent,
  gatewayConfigHash,
  gatewayStartEvents,
  parseRuntimeEvents,
  replayRuntimeEvents,
  runtimeEventDigest,
  RUNTIME_EVENT_TYPE,
  verifyEvidenceEvents,
  verifyRuntimeEvents,
  type RuntimeEvent,
} from '../attestation/eventlog/runtime-events.ts'
import { PolicyError } from '../attestation/errors.ts'
import { parseEventLog } from '../attestation/eventlog/event-log.ts'
import { replayRtmrs } from '../attestation/eventlog/replay.ts'
import {
  createFileEventStore,
  createMemoryEventStore,
  createMemoryRtmrs,
  createRuntimeMeasurer,
  createTsmMrExtender,
  planRuntimeExtension,
  TSM_MR_PATH,
  type TsmMrFs,
} from '../enclave/quote-providers/rtmr-extend.ts'
import { createDevQuoteProvider } from '../enclave/quote-providers/dev.ts'
import { createDevQuoteSigner, createDevRootCa, DEV_FMSPC } from '../attestation/dev/index.ts'
import { parseQuote } from '../attestation/tdx/abi/quote.ts'
import { codeOf, thrown } from './helpers/errors.ts'

const h = (b: Uint8Array) => Buffer.from(b).toString('hex')
const sha384 = (...parts: Uint8Array[]) => new Uint8Array(createHash('sha384').update(Buffer.concat(parts)).digest())
const zeros = () => [0, 1, 2, 3].map(() => new Uint8Array(48))
const RELEASE = sha384(Buffer.from('release'))
const CONFIG = sha384(Buffer.from('config'))

t.test('event digest: SHA-384(u32le(0x08000001) ‖ ":" ‖ name ‖ ":" ‖ payload)', async (t) => {
  const payload = Uint8Array.of(0xde, 0xad)
  const expected = sha384(Uint8Array.of(0x01, 0x00, 0x00, 0x08), Buffer.from(':compose-hash:'), payload)
  t.equal(RUNTIME_EVENT_TYPE, 0x08000001)
  t.equal(h(runtimeEventDigest('compose-hash', payload)), h(expected))
  const e = createRuntimeEvent(3, 'compose-hash', payload)
  t.same(e, { imr: 3, event: 'compose-hash', digest: h(expected), payload: 'dead' })
  t.equal(codeOf(thrown(() => runtimeEventDigest('a:b', payload))), 'ATTESTATION_EVENTLOG_MALFORMED', 'no ":" in a name: the digest input stays unambiguous')
  t.equal(codeOf(thrown(() => createRuntimeEvent(1 as 3, 'x', payload))), 'ATTESTATION_OPTIONS_INVALID')
})

t.test('parseRuntimeEvents is strict', async (t) => {
  const good = gatewayStartEvents({ releaseHash: RELEASE, configHash: CONFIG })
  t.same(parseRuntimeEvents(JSON.parse(JSON.stringify(good))), good)
  const bad = (v: unknown) => codeOf(thrown(() => parseRuntimeEvents(v)))
  t.equal(bad({}), 'ATTESTATION_EVENTLOG_MALFORMED', 'not a list')
  t.equal(bad([{ ...good[0], digest: good[1].digest }]), 'ATTESTATION_EVENTLOG_MALFORMED', 'a digest that is not of its own event')
  t.equal(bad([{ ...good[0], extra: 1 }]), 'ATTESTATION_EVENTLOG_MALFORMED', 'unknown key')
  t.equal(bad([{ ...good[0], imr: 1 }]), 'ATTESTATION_EVENTLOG_MALFORMED', 'RTMR1 is the kernel\'s')
  t.equal(bad([{ ...good[0], payload: 'ABC' }]), 'ATTESTATION_EVENTLOG_MALFORMED', 'payload not lower-case hex bytes')
  t.equal(codeOf(thrown(() => gatewayStartEvents({ releaseHash: new Uint8Array(32), configHash: CONFIG }))), 'ATTESTATION_OPTIONS_INVALID')
})

t.test('replay and verify onto a quote RTMR3, from zero or from the CCEL value', async (t) => {
  const events = gatewayStartEvents({ releaseHash: RELEASE, configHash: CONFIG })
  const d0 = Buffer.from(events[0].digest, 'hex')
  const d1 = Buffer.from(events[1].digest, 'hex')
  const rtmr3 = sha384(sha384(new Uint8Array(48), d0), d1)
  const quote = [...zeros().slice(0, 3), rtmr3]
  t.equal(h(replayRuntimeEvents(events)[3]!), h(rtmr3), 'RTMR = SHA-384(RTMR ‖ digest), in order')
  const verified = verifyRuntimeEvents(events, quote)
  t.equal(verified.length, 2)
  t.equal(verified[0]!.rtmr, 3)
  t.equal(h(verified[0]!.digests.get(0x000c)!), events[0].digest, 'shaped like a CCEL event for requiredEvents')

  const swapped = thrown(() => verifyRuntimeEvents([events[1], events[0]], quote))
  t.equal(codeOf(swapped), 'ATTESTATION_RTMR_MISMATCH', 'order matters')
  t.equal(codeOf(thrown(() => verifyRuntimeEvents(events.slice(0, 1), quote))), 'ATTESTATION_RTMR_MISMATCH', 'a missing event')
  t.equal(codeOf(thrown(() => verifyRuntimeEvents([createRuntimeEvent(2, 'x', new Uint8Array(0))], quote))), 'ATTESTATION_EVENTLOG_MALFORMED', 'an event on a register not compared')

  // A real CCEL (GCE COS TD) as the base: firmware's RTMR values, then ours on top.
  const ccel = parseEventLog(new Uint8Array(await readFile('test/vectors/eventlog/gce-cos113/ccel_data.dat')))
  const base = replayRtmrs(ccel.events)
  const onBase = [base[0]!, base[1]!, base[2]!, sha384(sha384(base[3]!, d0), d1)]
  t.doesNotThrow(() => verifyRuntimeEvents(events, onBase, { base }))
  // Where firmware (or IMA) extended RTMR3 before userspace, replay starts from that value.
  const base3 = [base[0]!, base[1]!, base[2]!, sha384(Buffer.from('firmware rtmr3'))]
  const onBase3 = [base[0]!, base[1]!, base[2]!, sha384(sha384(base3[3]!, d0), d1)]
  t.doesNotThrow(() => verifyRuntimeEvents(events, onBase3, { base: base3 }))
  t.equal(codeOf(thrown(() => verifyRuntimeEvents(events, onBase3))), 'ATTESTATION_RTMR_MISMATCH', 'the base matters when RTMR3 did not start at zero')
})

t.test('verifyEvidenceEvents: the CCEL for boot, runtime events on top; RTMR3 is never asked of the CCEL alone', async (t) => {
  const ccel = parseEventLog(new Uint8Array(await readFile('test/vectors/eventlog/gce-cos113/ccel_data.dat'))).events
  const base = replayRtmrs(ccel)
  const events = gatewayStartEvents({ releaseHash: RELEASE, configHash: CONFIG })
  const quote = replayRuntimeEvents(events, base)
  const bound = verifyEvidenceEvents(ccel, events, quote, [1, 3])!
  t.same(bound.rtmrs, [1, 3], 'the needed registers and those the runtime events extend')
  t.same(bound.runtime.map((e) => e.event), ['cgw-release', 'cgw-config'])
  t.ok(bound.events.some((e) => e.rtmr === 1), 'CCEL events of RTMR1')
  t.ok(bound.events.some((e) => e.rtmr === 3 && h(e.digests.get(0x000c)!) === events[1].digest), 'runtime events of RTMR3')
  t.equal(codeOf(thrown(() => verifyRuntimeEvents([], quote, { base }))), 'ATTESTATION_RTMR_MISMATCH', 'the CCEL alone does not reproduce RTMR3')
  t.equal(codeOf(thrown(() => verifyEvidenceEvents(ccel, events.slice(0, 1), quote, [3]))), 'ATTESTATION_RTMR_MISMATCH', 'a runtime event missing')
  const wrongBase = [...quote]
  wrongBase[1] = sha384(Buffer.from('another kernel'))
  t.equal(codeOf(thrown(() => verifyEvidenceEvents(ccel, events, wrongBase, [1]))), 'ATTESTATION_RTMR_MISMATCH', 'the CCEL must still reproduce the boot registers')
  // Without a CCEL nothing vouches for RTMR0-2: left out (the policy then misses its events) rather than compared with zeros.
  const noCcel = verifyEvidenceEvents(null, events, replayRuntimeEvents(events), [0, 3])!
  t.same(noCcel.rtmrs, [3])
  t.equal(verifyEvidenceEvents(null, [], quote, [0, 3]), null, 'nothing to compare')
})

t.test('a policy\'s requiredEvents report every missing runtime event as a policy mismatch (validateQuote)', async (t) => {
  const { signDevCollateral } = await import('../attestation/dev/index.ts')
  const { trustedRootFromDer } = await import('../attestation/roots/trust-root.ts')
  const { verifyQuote } = await import('../attestation/tdx/verify/verify-quote.ts')
  const { validateQuote } = await import('../attestation/tdx/validate/validate-quote.ts')
  const { BASELINE_POLICY_DOCUMENT, parsePolicy } = await import('../attestation/policy/policy.ts')
  const NOW = new Date('2026-11-01T00:00:00Z')
  const ca = createDevRootCa({ now: NOW, seed: new Uint8Array(32).fill(5) })
  const signer = createDevQuoteSigner(ca, { fmspc: DEV_FMSPC, now: NOW })
  const collateral = signDevCollateral(ca, { fmspc: DEV_FMSPC, now: NOW, platform: signer.platform })
  const events = gatewayStartEvents({ releaseHash: RELEASE, configHash: CONFIG })
  const rtmrs = replayRuntimeEvents(events)
  const quote = signer.signQuote({ rtmrs, reportData: new Uint8Array(64) })
  const v = verifyQuote(quote, collateral, { now: new Date('2026-11-02T00:00:00Z'), trustedRoot: trustedRootFromDer('dev', ca.rootCertificateDer, ca.rootFingerprint) })
  const bound = verifyEvidenceEvents(null, events, rtmrs, [3])!.events
  const policy = (required: readonly RuntimeEvent[]) => {
    const d = structuredClone(BASELINE_POLICY_DOCUMENT)
    d.trustRoot = { dev: ca.rootFingerprint }
    d.tdx.requiredEvents = required.map((e) => ({ rtmr: e.imr, digest: e.digest, description: e.event }))
    return parsePolicy(d)
  }
  const missing = (required: readonly RuntimeEvent[]) => {
    const e = thrown(() => validateQuote(v, policy(required), { events: bound }))
    t.ok(e instanceof PolicyError)
    return (e as PolicyError).mismatches.map((m) => [m.code, (m.expected as { description: string }).description])
  }
  t.equal(validateQuote(v, policy(events), { events: bound }).accepted, true, 'the events the quote was extended with')
  const otherRelease = gatewayStartEvents({ releaseHash: sha384(Buffer.from('other release')), configHash: CONFIG })
  t.same(missing(otherRelease), [['POLICY_REQUIRED_EVENT_MISSING', 'cgw-release']], 'another release')
  const otherBoth = gatewayStartEvents({ releaseHash: sha384(Buffer.from('other release')), configHash: sha384(Buffer.from('other config')) })
  t.same(missing(otherBoth), [['POLICY_REQUIRED_EVENT_MISSING', 'cgw-release'], ['POLICY_REQUIRED_EVENT_MISSING', 'cgw-config']], 'every missing event at once')
  t.same((thrown(() => validateQuote(v, policy(events))) as PolicyError).mismatches.map((m) => m.code), ['POLICY_EVENT_LOG_MISSING'], 'no bound events: nothing to find them in')
})

t.test('config hash: canonical JSON, secrets removed', async (t) => {
  t.equal(canonicalJson({ b: 1, a: [true, null, 'x'], c: { z: 0.5, y: -1 } }), '{"a":[true,null,"x"],"b":1,"c":{"y":-1,"z":0.5}}')
  t.equal(codeOf(thrown(() => canonicalJson({ a: Number.NaN }))), 'ATTESTATION_OPTIONS_INVALID')
  const a = { listen: { port: 1 }, enclave: { engine: { url: 'u', apiKey: 'one' } } }
  const b = { enclave: { engine: { apiKey: 'two', url: 'u' } }, listen: { port: 1 } }
  t.equal(h(gatewayConfigHash(a)), h(gatewayConfigHash(b)), 'key order and the engine key do not matter')
  t.not(h(gatewayConfigHash(a)), h(gatewayConfigHash({ ...a, listen: { port: 2 } })))
})

/** A fake tsm-mr sysfs: rtmr files whose write extends and whose read is the live value. */
function fakeSysfs(root: string, o: { absent?: boolean; ignoreWrites?: boolean } = {}): { fs: TsmMrFs; regs: Uint8Array[]; writes: Uint8Array[] } {
  const regs = zeros()
  const writes: Uint8Array[] = []
  const index = (p: string): number | undefined => {
    const m = p.match(/^(.*)\/rtmr([0-3]):sha384$/)
    return m && m[1] === join(root, TSM_MR_PATH) ? Number(m[2]) : undefined
  }
  const enoent = () => Object.assign(new Error('ENOENT'), { code: 'ENOENT' })
  return {
    regs,
    writes,
    fs: {
      exists: async (p) => !o.absent && index(p) !== undefined,
      readFile: async (p) => {
        const i = index(p)
        if (o.absent || i === undefined) throw enoent()
        return regs[i]!.slice()
      },
      writeFile: async (p, d) => {
        const i = index(p)
        if (o.absent || i === undefined) throw enoent()
        // The driver takes exactly one digest per write (tsm-mr: EINVAL otherwise).
        if (d.length !== 48) throw Object.assign(new Error('EINVAL'), { code: 'EINVAL' })
        writes.push(d)
        if (!o.ignoreWrites) regs[i] = sha384(regs[i]!, d)
      },
    },
  }
}

t.test('tsm-mr extender against a fake kernel tree', async (t) => {
  const root = '/fake-root'
  const sys = fakeSysfs(root)
  const x = createTsmMrExtender({ root, fs: sys.fs })
  await x.probe()
  const d = sha384(Buffer.from('d'))
  await x.extend(3, d, { event: 'e', payload: '' })
  t.equal(h(await x.read(3)), h(sha384(new Uint8Array(48), d)))
  t.equal(h(sys.writes[0]!), h(d), 'writes the 48-byte digest as is')
  await t.rejects(x.extend(3, new Uint8Array(47), { event: 'e', payload: '' }), { code: 'ENCLAVE_RTMR_EXTEND_FAILED' })

  const absent = createTsmMrExtender({ root, fs: fakeSysfs(root, { absent: true }).fs })
  const e = await absent.probe().then(() => undefined, (err: unknown) => err)
  t.equal(codeOf(e), 'ENCLAVE_RTMR_UNAVAILABLE', 'a kernel before 6.16: a clear error naming the path')
  t.match((e as { details: { path: string } }).details.path, /tdx_guest\/measurements\/rtmr2:sha384$/)
  await t.rejects(absent.extend(3, d, { event: 'e', payload: '' }), { code: 'ENCLAVE_RTMR_UNAVAILABLE' })

  const deaf = createTsmMrExtender({ root, fs: fakeSysfs(root, { ignoreWrites: true }).fs })
  await t.rejects(deaf.extend(3, d, { event: 'e', payload: '' }), { code: 'ENCLAVE_RTMR_EXTEND_FAILED' }, 'the read-back must be the extension')
})

t.test('runtime event log on tmpfs survives a gateway restart; an unlogged extension fails closed', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cgw-rtmr-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const root = '/fake-root'
  const sys = fakeSysfs(root)
  const extender = createTsmMrExtender({ root, fs: sys.fs })
  const store = createFileEventStore({ root: dir })
  const events = gatewayStartEvents({ releaseHash: RELEASE, configHash: CONFIG })

  const first = createRuntimeMeasurer({ extender, store })
  await first.extend(events)
  t.same(first.events(), events)
  t.same(JSON.parse(await readFile(join(dir, 'run/cgw/runtime-events.json'), 'utf8')), events, 'the log is on disk, JSON')

  // Restart without reboot, same release and config: nothing is extended again, RTMR3 stays where cgw measure put it.
  const measured = h(sys.regs[3]!)
  const writes = sys.writes.length
  const second = createRuntimeMeasurer({ extender, store: createFileEventStore({ root: dir }) })
  await second.extend(events)
  t.same(second.events(), events, 'the log still holds one run')
  t.equal(sys.writes.length, writes, 'no write to the register')
  t.equal(h(sys.regs[3]!), measured, 'RTMR3 unchanged: quotes still match the policy')
  t.doesNotThrow(() => verifyRuntimeEvents(second.events(), sys.regs), 'and the log replays to the live RTMR3')

  // Another release started in the same boot: refused, nothing extended.
  const other = gatewayStartEvents({ releaseHash: sha384(Buffer.from('another release')), configHash: CONFIG })
  await t.rejects(createRuntimeMeasurer({ extender, store: createFileEventStore({ root: dir }) }).extend(other), { code: 'ENCLAVE_RTMR_BOOT_CONFLICT' })
  const otherConfig = gatewayStartEvents({ releaseHash: RELEASE, configHash: sha384(Buffer.from('another config')) })
  await t.rejects(createRuntimeMeasurer({ extender, store: createFileEventStore({ root: dir }) }).extend(otherConfig), { code: 'ENCLAVE_RTMR_BOOT_CONFLICT' }, 'another config too')
  t.equal(h(sys.regs[3]!), measured, 'RTMR3 still unchanged')

  // Something extended RTMR3 without logging it.
  sys.regs[3] = sha384(sys.regs[3]!, sha384(Buffer.from('unlogged')))
  const third = createRuntimeMeasurer({ extender, store: createFileEventStore({ root: dir }) })
  await t.rejects(third.extend(events), { code: 'ENCLAVE_RTMR_LOG_MISMATCH' })

  await t.rejects(createRuntimeMeasurer({ extender, store: createMemoryEventStore() }).extend([{ ...events[0], digest: events[1].digest } as RuntimeEvent]), {
    code: 'ATTESTATION_EVENTLOG_MALFORMED',
  })
})

t.test('planRuntimeExtension: once per boot; an interrupted start is resumed; anything else conflicts', async (t) => {
  const [release, config] = gatewayStartEvents({ releaseHash: RELEASE, configHash: CONFIG })
  const dstack = [createRuntimeEvent(3, 'app-id', new Uint8Array(20)), createRuntimeEvent(3, 'compose-hash', new Uint8Array(32))]
  t.same(planRuntimeExtension(dstack, [release, config]), [release, config], 'a fresh boot: both')
  t.same(planRuntimeExtension([...dstack, release, config], [release, config]), [], 'already there: none')
  t.same(planRuntimeExtension([...dstack, release], [release, config]), [config], 'interrupted after the first: the rest')
  const otherRelease = gatewayStartEvents({ releaseHash: sha384(Buffer.from('x')), configHash: CONFIG })[0]
  const code = (logged: RuntimeEvent[]) => codeOf(thrown(() => planRuntimeExtension(logged, [release, config])))
  t.equal(code([...dstack, otherRelease, config]), 'ENCLAVE_RTMR_BOOT_CONFLICT', 'another release this boot')
  t.equal(code([...dstack, config, release]), 'ENCLAVE_RTMR_BOOT_CONFLICT', 'another order')
  t.equal(code([release, ...dstack]), 'ENCLAVE_RTMR_BOOT_CONFLICT', 'a prefix that is not at the end: something ran in between')
  t.equal(code([release, config, release, config]), 'ENCLAVE_RTMR_BOOT_CONFLICT', 'a log that already holds two runs')
})

t.test('dev TEE: in-memory RTMRs extended by the same rule, signed into dev quotes', async (t) => {
  const regs = createMemoryRtmrs()
  const signer = createDevQuoteSigner(createDevRootCa({ now: new Date('2025-06-01T00:00:00Z') }), { fmspc: DEV_FMSPC })
  const quotes = createDevQuoteProvider({ signer, rtmrs: regs.values })
  const rtmr3 = async () => {
    const q = parseQuote(await quotes.getQuote(new Uint8Array(64)))
    if (q.body.kind === 'sgx') throw new Error('sgx')
    return q.body.report.rtmrs[3]
  }
  t.equal(h(await rtmr3()), h(new Uint8Array(48)), 'zero before any event')
  const measurer = createRuntimeMeasurer({ extender: regs.extender, store: createMemoryEventStore() })
  const events = gatewayStartEvents({ releaseHash: RELEASE, configHash: CONFIG })
  await measurer.extend(events)
  t.equal(h(await rtmr3()), h(replayRuntimeEvents(events)[3]!), 'the quote carries the extended value')
  await t.rejects(regs.extender.extend(1 as 3, new Uint8Array(48), { event: 'x', payload: '' }), { code: 'ENCLAVE_RTMR_EXTEND_FAILED' })
})

t.test('enclave config: fail closed before touching the system', async (t) => {
  const { createEnclaveFromConfig } = await import('../enclave/index.ts')
  const { runGateway } = await import('../bin/commands/gateway.ts')
  const engine = { url: 'http://127.0.0.1:9' }
  const codeFrom = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e)
  const gpuPolicy = { trustRoot: 'nvidia', count: 1, driverVersions: ['550.90.07'], vbiosVersions: 'any' }

  t.equal(codeOf(await codeFrom(createEnclaveFromConfig({ tee: 'tdx', engine, gpu: 'nvml' }))), 'ATTESTATION_OPTIONS_INVALID', 'a real TD with a GPU must configure the ready-state gate')
  t.equal(codeOf(await codeFrom(createEnclaveFromConfig({ tee: 'dev', engine, gpu: 'dev', gpuReadyState: { policy: gpuPolicy } }))), 'ATTESTATION_OPTIONS_INVALID', 'the gate is for real GPUs')
  t.equal(codeOf(await codeFrom(createEnclaveFromConfig({ tee: 'tdx', engine, gpu: 'nvml', gpuReadyState: { policy: { count: 1 } } }))), 'ATTESTATION_POLICY_INVALID', 'its GPU policy is checked')
  t.equal(codeOf(await codeFrom(createEnclaveFromConfig({ tee: 'tdx', engine, gpu: 'nvml', gpuReadyState: { policy: gpuPolicy, extra: 1 } }))), 'ATTESTATION_OPTIONS_INVALID')
  t.equal(codeOf(await codeFrom(createEnclaveFromConfig({ tee: 'dev', engine, release: 7 }))), 'ATTESTATION_OPTIONS_INVALID')

  // The log section is checked before anything is measured: on this machine (no configfs-tsm) a real-TDX
  // config with a malformed log fails on the log, not later on the missing quote provider.
  const collateral = { pcsUrl: 'https://pccs.invalid' }
  for (const log of [{ dir: '/tmp/x', typo: 1 }, { dir: 7 }, 'dir']) {
    const e = await codeFrom(createEnclaveFromConfig({ tee: 'tdx', engine, collateral, log }))
    t.equal(codeOf(e), 'ATTESTATION_OPTIONS_INVALID', `log ${JSON.stringify(log)} refused before touching the system`)
    t.match((e as { details?: { path?: string } }).details?.path, /^enclave\.log/)
  }
  const missing = await codeFrom(createEnclaveFromConfig({ tee: 'dev', engine, release: '/nonexistent/release' }))
  t.equal(codeOf(missing), 'ENCLAVE_EVIDENCE_UNAVAILABLE')
  t.same((missing as { details: unknown }).details, { step: 'runtime-measurement', code: 'RELEASE_MANIFEST_MISSING' }, 'a configured release that is not there')

  // This machine has no configfs-tsm: a real-TDX config (with a valid gate) refuses to start, exit 6, naming it.
  const dir = await mkdtemp(join(tmpdir(), 'cgw-tdx-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'gateway.json')
  await (await import('node:fs/promises')).writeFile(file, JSON.stringify({ logLevel: 'silent', enclave: { tee: 'tdx', engine, gpu: 'nvattest', gpuReadyState: { policy: gpuPolicy } } }))
  let err = ''
  const code = await runGateway(['--config', file], { out: () => {}, err: (s) => void (err += s) })
  t.equal(code, 6)
  t.match(err, /ENCLAVE_QUOTE_PROVIDER_UNAVAILABLE/, 'the code names the missing provider')
})

t.test('a configured release directory must hold the running entry on a real TD', async (t) => {
  const { resolveRelease } = await import('../enclave/quote-providers/runtime-measurement.ts')
  const { createReleaseManifest, encodeReleaseManifest, releaseHash } = await import('../deploy/release/manifest.ts')
  const { mkdir, writeFile } = await import('node:fs/promises')
  const dir = await mkdtemp(join(tmpdir(), 'cgw-release-entry-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const release = join(dir, 'release')
  await mkdir(release)
  const files = [{ path: 'cgw.mjs', mode: '0755' as const, bytes: new TextEncoder().encode('#!/usr/bin/env node\n// fixture\n') }]
  for (const f of files) await writeFile(join(release, f.path), f.bytes, { mode: 0o755 })
  const manifest = encodeReleaseManifest(createReleaseManifest({ name: 'confidential-gateway', packageVersion: '0.1.0', external: {}, files }))
  await writeFile(join(release, 'release.json'), manifest)
  // An unlisted file inside the release directory, and an entry elsewhere.
  await writeFile(join(release, 'other.mjs'), '// not released\n')
  await writeFile(join(dir, 'cgw.mjs'), '// outside\n')

  const ok = await resolveRelease({ tee: 'tdx', dir: release, entry: join(release, 'cgw.mjs') })
  t.equal(h(ok.releaseHash), h(releaseHash(manifest)), 'the entry is a released file of the directory')
  const mismatch = async (entry: string) => {
    const e = await resolveRelease({ tee: 'tdx', dir: release, entry }).then(() => undefined, (x: unknown) => x)
    t.equal(codeOf(e), 'ENCLAVE_EVIDENCE_UNAVAILABLE')
    t.same((e as { details: unknown }).details, { step: 'runtime-measurement', code: 'RELEASE_FILE_MISMATCH' }, entry)
  }
  await mismatch(join(dir, 'cgw.mjs'))
  await mismatch(join(release, 'other.mjs'))
  await mismatch(join(tmpdir(), 'somewhere', 'cgw.mjs'))
  // The dev TEE may name a release it does not run (tests, `cgw start` from a checkout).
  t.equal(h((await resolveRelease({ tee: 'dev', dir: release, entry: join(dir, 'cgw.mjs') })).releaseHash), h(releaseHash(manifest)))
})

t.test('every code the deploy error classes throw is in its registry', async (t) => {
  const { RTMR_ERROR_CODES } = await import('../enclave/quote-providers/rtmr-extend.ts')
  const { RELEASE_ERROR_CODES } = await import('../deploy/release/manifest.ts')
  const { GPU_READY_ERROR_CODES } = await import('../enclave/gpu/ready-state.ts')
  const { MEASURE_ERROR_CODES } = await import('../deploy/measure/measure.ts')
  const registries: [string, Record<string, unknown>, string[]][] = [
    ['RtmrError', RTMR_ERROR_CODES, ['enclave/quote-providers/rtmr-extend.ts', 'enclave/quote-providers/dstack.ts', 'enclave/quote-providers/runtime-measurement.ts']],
    ['ReleaseError', RELEASE_ERROR_CODES, ['deploy/release/manifest.ts', 'enclave/quote-providers/runtime-measurement.ts', 'scripts/build-release.ts']],
    ['MeasureError', MEASURE_ERROR_CODES, ['deploy/measure/measure.ts', 'deploy/measure/initdata.ts', 'deploy/k8s/initdata.ts']],
  ]
  for (const [cls, registry, files] of registries) {
    let seen = 0
    for (const f of files) {
      const src = await readFile(f, 'utf8')
      for (const m of src.matchAll(new RegExp(`new ${cls}\\('([A-Z_]+)'`, 'g'))) {
        seen++
        t.ok(Object.hasOwn(registry, m[1]!), `${f}: ${m[1]} is registered`)
      }
    }
    t.ok(seen > 0, `${cls} is thrown somewhere`)
  }
  // fail() in ready-state.ts takes the code as its first argument.
  const ready = await readFile('enclave/gpu/ready-state.ts', 'utf8')
  for (const m of ready.matchAll(/fail\('([A-Z_]+)'/g)) t.ok(Object.hasOwn(GPU_READY_ERROR_CODES, m[1]!), `ready-state: ${m[1]} is registered`)
})
