/**
 * PCS client, raw-response assembly and cache tests. Every real bundle in
 * test/vectors/tdx goes through a fake Intel PCS (test/helpers/fake-pcs.ts)
 * and the client, and must come back byte for byte; the cache is judged at
 * each case's `verify_at` and the edges of its `collateral_window`; each
 * failure mode must give its error code (codes are asserted, never messages).
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { readFileSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import fc from 'fast-check'
import { CollateralError, ConfigError } from '../attestation/errors.ts'
import { parseCrl } from '../attestation/pki/crl.ts'
import { commonName } from '../attestation/pki/x509.ts'
import { derToPem } from '../attestation/asn1/pem.ts'
import {
  collateralFromPcsResponses,
  collateralValidity,
  createCachingCollateralSource,
  createCollateralCache,
  createPcsClient,
  decodeCrl,
  parseTcbInfoResponse,
  pcsResponsesFromCollateral,
  rawJsonMember,
  type CollateralRequest,
  type FetchedCollateral,
  type PcsFetch,
  type PckCa,
  type QuoteCollateralV3,
  type TeeType,
} from '../attestation/pcs/index.ts'
import { startFakePcs, type FakePcs, type FakePcsOptions } from './helpers/fake-pcs.ts'
import { QUOTE_COLLATERAL_V3_FIELDS } from '../attestation/pcs/types.ts'

// --- vectors --------------------------------------------------------------

interface Case {
  id: string
  verify_at: string
  collateral_window: [string, string]
  quote_summary: { tee_type: string; fmspc: string }
}

interface Vector {
  name: string
  bundle: QuoteCollateralV3
  request: CollateralRequest
  verifyAt: Date
  window: [number, number]
}

const VECTORS_DIR = new URL('./vectors/tdx/', import.meta.url)

function pckCa(bundle: QuoteCollateralV3): PckCa {
  const cn = commonName(parseCrl(new Uint8Array(Buffer.from(bundle.pck_crl, 'hex'))).issuer)
  return cn.includes('Processor') ? 'processor' : 'platform'
}

const vectors: Vector[] = readdirSync(VECTORS_DIR)
  .sort()
  .map((name) => {
    const dir = new URL(`${name}/`, VECTORS_DIR)
    const bundle = JSON.parse(readFileSync(new URL('collateral.json', dir), 'utf8')) as QuoteCollateralV3
    const c = JSON.parse(readFileSync(new URL('case.json', dir), 'utf8')) as Case
    const teeType: TeeType = c.quote_summary.tee_type === '0x81' ? 'tdx' : 'sgx'
    return {
      name,
      bundle,
      request: { teeType, fmspc: c.quote_summary.fmspc, ca: pckCa(bundle) },
      verifyAt: new Date(c.verify_at),
      window: [Date.parse(c.collateral_window[0]), Date.parse(c.collateral_window[1])],
    }
  })

t.ok(vectors.length >= 6, 'all vector bundles are found')
const tdx = vectors.find((v) => v.name === 'tdx-v4-emerald-rapids-uptodate')!
const sgx = vectors.find((v) => v.name === 'sgx-v3-configuration-needed')!
t.equal(sgx.request.ca, 'processor', 'the SGX vector is a processor-CA platform')

// --- helpers --------------------------------------------------------------

const BUNDLE_FIELDS = QUOTE_COLLATERAL_V3_FIELDS

/** Field-by-field strict equality, so a failure names the field that differs. */
function sameBundle(t: Test, got: QuoteCollateralV3, want: QuoteCollateralV3): void {
  for (const f of BUNDLE_FIELDS) t.equal(got[f], want[f], `${f} is byte-identical`)
  t.equal(JSON.stringify(got), JSON.stringify(want), 'the whole bundle serialises identically')
}

/** Await `p` and return what it rejects with (fails the test if it resolves). */
async function rejection(t: Test, p: Promise<unknown>): Promise<unknown> {
  try {
    await p
  } catch (e) {
    return e
  }
  t.fail('expected a rejection')
  return undefined
}

async function expectCode(t: Test, p: Promise<unknown>, ctor: Function, code: string, what: string): Promise<unknown> {
  const e = await rejection(t, p)
  t.ok(e instanceof ctor, `${what}: ${ctor.name}`)
  t.equal((e as { code?: unknown }).code, code, `${what}: ${code}`)
  return e
}

function expectSyncCode(t: Test, f: () => unknown, ctor: Function, code: string, what: string): void {
  let e: unknown
  try {
    f()
  } catch (err) {
    e = err
  }
  t.ok(e instanceof ctor, `${what}: ${ctor.name}`)
  t.equal((e as { code?: unknown } | undefined)?.code, code, `${what}: ${code}`)
}

async function fakeFor(t: Test, v: Vector, extra: Partial<FakePcsOptions> = {}): Promise<FakePcs> {
  const fake = await startFakePcs({ bundles: new Map([[v.request.fmspc, v.bundle]]), ...extra })
  t.teardown(() => fake.close())
  return fake
}

/** A fresh empty directory per call, removed when `t` ends (`t.testdir()` wipes and reuses one per test). */
async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cgw-pcs-test-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

const fixedClock = (d: Date | number) => (): Date => new Date(d)

const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'))

// --- round trips ----------------------------------------------------------

t.test('every vector bundle survives fake PCS → client byte for byte', async (t) => {
  for (const v of vectors) {
    await t.test(v.name, async (t) => {
      const fake = await fakeFor(t, v)
      const client = createPcsClient({ baseUrl: fake.url, now: fixedClock(v.verifyAt) })
      const got = await client.getCollateral(v.request)
      sameBundle(t, got.collateral, v.bundle)
      t.equal(got.fetchedAt, v.verifyAt.toISOString(), 'fetchedAt comes from the injected clock')
      t.same(got.sources, {
        tcbInfo: `${fake.url}/${v.request.teeType}/certification/v4/tcb?fmspc=${v.request.fmspc}`,
        qeIdentity: `${fake.url}/${v.request.teeType}/certification/v4/qe/identity`,
        pckCrl: `${fake.url}/sgx/certification/v4/pckcrl?ca=${v.request.ca}&encoding=der`,
        rootCaCrl: `${fake.url}/sgx/certification/v4/rootcacrl`,
      })
      t.equal(fake.count(), 4, 'one request per piece')
    })
  }
})

t.test('every vector bundle survives pcsResponsesFromCollateral → collateralFromPcsResponses', async (t) => {
  for (const v of vectors) {
    const raw = pcsResponsesFromCollateral(v.bundle)
    sameBundle(t, collateralFromPcsResponses(raw), v.bundle)
    // The forms users save by hand: decoded PEM chains, byte bodies, PCCS hex and PEM CRLs.
    sameBundle(
      t,
      collateralFromPcsResponses({
        ...raw,
        tcbInfoBody: utf8(raw.tcbInfoBody),
        tcbInfoIssuerChain: v.bundle.tcb_info_issuer_chain,
        qeIdentityIssuerChain: v.bundle.qe_identity_issuer_chain,
        pckCrlIssuerChain: v.bundle.pck_crl_issuer_chain,
        pckCrl: v.bundle.pck_crl.toUpperCase(),
        rootCaCrl: derToPem(raw.rootCaCrl, 'X509 CRL'),
      }),
      v.bundle,
    )
  }
})

t.test('PCCS-style CRL bodies (hex text, PEM text) and a custom root CA CRL URL', async (t) => {
  const v = tdx
  const hexFake = await fakeFor(t, v, { crlEncoding: 'hex' })
  hexFake.faults.pckcrl = { body: `${v.bundle.pck_crl}\n` }
  const viaHex = await createPcsClient({ baseUrl: hexFake.url }).getCollateral(v.request)
  sameBundle(t, viaHex.collateral, v.bundle)

  const pemFake = await fakeFor(t, v, { crlEncoding: 'pem' })
  pemFake.faults.pckcrl = { body: derToPem(new Uint8Array(Buffer.from(v.bundle.pck_crl, 'hex')), 'X509 CRL') }
  const viaPem = await createPcsClient({ baseUrl: pemFake.url }).getCollateral(v.request)
  sameBundle(t, viaPem.collateral, v.bundle)

  // Intel serves the root CA CRL from its certificates host, not the PCS API.
  const fake = await fakeFor(t, v)
  const rootCaCrlUrl = `${fake.url}/IntelSGXRootCA.der`
  const client = createPcsClient({ baseUrl: `${fake.url}/`, rootCaCrlUrl })
  t.equal(client.baseUrl, fake.url, 'trailing slash dropped from baseUrl')
  t.equal(client.rootCaCrlUrl, rootCaCrlUrl)
  const got = await client.getCollateral(v.request)
  sameBundle(t, got.collateral, v.bundle)
  t.equal(got.sources.rootCaCrl, rootCaCrlUrl)
  t.ok(fake.requests.some((r) => r.url === '/IntelSGXRootCA.der'), 'the custom URL was used')
})

t.test('FMSPC case does not matter to the client', async (t) => {
  const fake = await fakeFor(t, tdx)
  const client = createPcsClient({ baseUrl: fake.url })
  const got = await client.getTcbInfo('tdx', tdx.request.fmspc.toUpperCase())
  t.equal(got.tcbInfo, tdx.bundle.tcb_info)
})

t.test('individual methods', async (t) => {
  const fake = await fakeFor(t, sgx)
  const client = createPcsClient({ baseUrl: fake.url })
  const tcb = await client.getTcbInfo('sgx', sgx.request.fmspc)
  t.equal(tcb.tcbInfo, sgx.bundle.tcb_info)
  t.equal(tcb.signature, sgx.bundle.tcb_info_signature)
  t.equal(tcb.issuerChain, sgx.bundle.tcb_info_issuer_chain)
  const qe = await client.getQeIdentity('sgx')
  t.equal(qe.qeIdentity, sgx.bundle.qe_identity)
  const crl = await client.getPckCrl('processor')
  t.equal(crl.crl, sgx.bundle.pck_crl)
  t.equal(crl.issuerChain, sgx.bundle.pck_crl_issuer_chain)
  const root = await client.getRootCaCrl()
  t.equal(root.crl, sgx.bundle.root_ca_crl)
  await expectCode(t, client.getPckCrl('platform'), CollateralError, 'ATTESTATION_PCS_UNAVAILABLE', 'no platform CRL here: 404')
  await expectCode(t, client.getTcbInfo('tdx', sgx.request.fmspc), CollateralError, 'ATTESTATION_PCS_UNAVAILABLE', 'SGX FMSPC on the TDX path: 404')
})

// --- the exact-member scanner ---------------------------------------------

t.test('rawJsonMember returns the exact source text', async (t) => {
  const body = ' {\n "x" : "}\\"{" ,\t"tcb\\u0049nfo" :  { "a" : [1, 2.50, "\\u00e9\\/"], "b": {"c": "]}"} }\r\n, "signature":"00"} '
  t.equal(rawJsonMember(body, 'tcbInfo'), '{ "a" : [1, 2.50, "\\u00e9\\/"], "b": {"c": "]}"} }')
  t.equal(rawJsonMember(body, 'x'), '"}\\"{"')
  t.equal(rawJsonMember(body, 'signature'), '"00"')
  t.equal(rawJsonMember(body, 'missing'), undefined)
  t.equal(rawJsonMember('{"n":-1.5e3,"t":true}', 'n'), '-1.5e3')
  t.equal(rawJsonMember('{"n":-1.5e3,"t":true}', 't'), 'true')
  t.equal(rawJsonMember('{}', 'n'), undefined)
  expectSyncCode(t, () => rawJsonMember('{"a":1,"a":2}', 'a'), CollateralError, 'ATTESTATION_PCS_RESPONSE_INVALID', 'duplicate member')
  expectSyncCode(t, () => rawJsonMember('[1]', 'a'), CollateralError, 'ATTESTATION_PCS_RESPONSE_INVALID', 'not an object')
  // JSON.parse + JSON.stringify would have changed these bytes:
  const member = '{"v":1.0,"s":"\\u0041\\/"}'
  const text = `{"tcbInfo":${member},"signature":"${'ab'.repeat(64)}"}`
  t.not(JSON.stringify(JSON.parse(text).tcbInfo), member, 'a re-serialisation differs')
  t.equal(parseTcbInfoResponse(text).json, member, 'the scanner does not')
})

t.test('rawJsonMember agrees with JSON.parse on arbitrary JSON (property)', async (t) => {
  fc.assert(
    fc.property(
      fc.jsonValue(),
      fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 4 }),
      fc.constantFrom(0, 1, 2, '\t'),
      (value, others, indent) => {
        const memberText = JSON.stringify(value, null, indent) ?? 'null'
        const rest = Object.entries(others).filter(([k]) => k !== 'tcbInfo')
        const parts = rest.map(([k, v]) => `${JSON.stringify(k)} : ${JSON.stringify(v, null, indent)}`)
        parts.splice(rest.length >> 1, 0, `"tcbInfo":\n ${memberText}`)
        const text = `{ ${parts.join(' ,\n')} }`
        JSON.parse(text)
        return rawJsonMember(text, 'tcbInfo') === memberText
      },
    ),
    { numRuns: 500 },
  )
  t.pass('500 random documents')
})

// --- failure modes --------------------------------------------------------

t.test('failure modes give typed codes', async (t) => {
  const v = tdx
  const UNAVAILABLE = 'ATTESTATION_PCS_UNAVAILABLE'
  const INVALID = 'ATTESTATION_PCS_RESPONSE_INVALID'
  const fake = await fakeFor(t, v)
  const client = createPcsClient({ baseUrl: fake.url, timeoutMs: 200 })
  /** Apply `fault`, expect `code`, and for a bad response also which piece was blamed (`details.field`). */
  const run = async (what: string, fault: FakePcs['faults'], code: string, field?: string): Promise<unknown> => {
    fake.faults = fault
    const e = await expectCode(t, client.getCollateral(v.request), CollateralError, code, what)
    if (field !== undefined) t.equal((e as CollateralError).details['field'], field, `${what}: blames ${field}`)
    fake.faults = {}
    return e
  }
  const raw = pcsResponsesFromCollateral(v.bundle)
  const truncate = (b: Uint8Array): Uint8Array => b.subarray(0, b.length >> 1)

  const e500 = (await run('tcb 500', { tcb: { status: 500 } }, UNAVAILABLE)) as CollateralError
  t.equal(e500.details['status'], 500, 'status is in details')
  t.equal(e500.details['Error-Code'], 'FakeFault', 'Intel diagnostic headers are kept')
  await run('qe 404', { qe: { status: 404 } }, UNAVAILABLE)
  await run('pckcrl 503', { pckcrl: { status: 503 } }, UNAVAILABLE)
  await run('rootcacrl 500', { rootcacrl: { status: 500 } }, UNAVAILABLE)
  await run('200-range but not 200', { tcb: { status: 204 } }, UNAVAILABLE)
  await run('hang-up', { qe: { hangUp: true } }, UNAVAILABLE)
  await run('slower than timeoutMs', { pckcrl: { delayMs: 2_000 } }, UNAVAILABLE)

  await run('tcb header dropped', { tcb: { dropHeader: true } }, INVALID, 'tcbInfoIssuerChain')
  await run('qe header dropped', { qe: { dropHeader: true } }, INVALID, 'qeIdentityIssuerChain')
  await run('pckcrl header dropped', { pckcrl: { dropHeader: true } }, INVALID, 'pckCrlIssuerChain')
  await run('header bad percent-encoding', { tcb: { header: '%E0%A4%A' } }, INVALID, 'tcbInfoIssuerChain')
  await run('header not PEM', { qe: { header: encodeURIComponent('-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n') } }, INVALID, 'qeIdentityIssuerChain')

  await run('tcb body truncated', { tcb: { mutateBody: truncate } }, INVALID, 'tcbInfoBody')
  await run('tcb body not JSON', { tcb: { body: 'tcbInfo' } }, INVALID, 'tcbInfoBody')
  await run('tcb body not UTF-8', { tcb: { body: new Uint8Array([0x7b, 0xff, 0x7d]) } }, INVALID, 'tcbInfoBody')
  await run('tcb body is an array', { tcb: { body: `[${raw.tcbInfoBody}]` } }, INVALID, 'tcbInfoBody')
  await run('tcbInfo missing', { tcb: { body: raw.qeIdentityBody } }, INVALID, 'tcbInfoBody')
  await run('tcbInfo not an object', { tcb: { body: `{"tcbInfo":"x","signature":"${v.bundle.tcb_info_signature}"}` } }, INVALID, 'tcbInfoBody')
  await run('tcbInfo duplicated', { tcb: { body: raw.tcbInfoBody.replace('{"tcbInfo":', '{"tcbInfo":{},"tcbInfo":') } }, INVALID, 'tcbInfoBody')
  await run('signature too short', { tcb: { body: raw.tcbInfoBody.replace(/"signature":"[0-9a-f]{2}/, '"signature":"') } }, INVALID, 'tcbInfoBody')
  await run('signature not hex', { qe: { body: raw.qeIdentityBody.replace(/"signature":"[0-9a-f]/, '"signature":"z') } }, INVALID, 'qeIdentityBody')
  await run('signature missing', { qe: { body: raw.qeIdentityBody.replace(/,"signature":"[0-9a-f]+"/, '') } }, INVALID, 'qeIdentityBody')
  await run('TCB info for another FMSPC', { tcb: { body: pcsResponsesFromCollateral(sgx.bundle).tcbInfoBody } }, INVALID, 'tcbInfoBody')
  await run('QE identity of another TEE', { qe: { body: pcsResponsesFromCollateral(sgx.bundle).qeIdentityBody } }, INVALID, 'qeIdentityBody')
  await run('pck CRL truncated', { pckcrl: { mutateBody: truncate } }, INVALID, 'pckCrl')
  await run('pck CRL with a trailing byte', { pckcrl: { mutateBody: (b) => new Uint8Array([...b, 0]) } }, INVALID, 'pckCrl')
  await run('root CRL not a CRL', { rootcacrl: { body: 'not a crl' } }, INVALID, 'rootCaCrl')
  await run('root CRL hex of garbage', { rootcacrl: { body: '3003020101' } }, INVALID, 'rootCaCrl')
  await run('root CRL PEM of garbage', { rootcacrl: { body: derToPem(new Uint8Array([0x30, 0]), 'X509 CRL') } }, INVALID, 'rootCaCrl')

  t.ok(fake.count('tcb') > 0 && fake.count('rootcacrl') > 0, 'the request counter counts per endpoint')
  const after = await client.getCollateral(v.request)
  sameBundle(t, after.collateral, v.bundle)
})

t.test('network-level failures', async (t) => {
  // A port that was just free: nothing listens there any more.
  const gone = await startFakePcs({ bundles: new Map() })
  const url = gone.url
  await gone.close()
  await expectCode(t, createPcsClient({ baseUrl: url }).getRootCaCrl(), CollateralError, 'ATTESTATION_PCS_UNAVAILABLE', 'connection refused')

  const throwing: PcsFetch = async () => {
    throw new TypeError('fetch failed')
  }
  await expectCode(t, createPcsClient({ baseUrl: 'http://127.0.0.1:9', fetch: throwing }).getQeIdentity('tdx'), CollateralError, 'ATTESTATION_PCS_UNAVAILABLE', 'fetch rejects')

  // A fetch that ignores its abort signal still cannot outlive timeoutMs.
  const stuck: PcsFetch = () => new Promise(() => undefined)
  const started = process.hrtime.bigint()
  const e = (await expectCode(
    t,
    createPcsClient({ baseUrl: 'http://127.0.0.1:9', fetch: stuck, timeoutMs: 50 }).getQeIdentity('tdx'),
    CollateralError,
    'ATTESTATION_PCS_UNAVAILABLE',
    'fetch never settles',
  )) as CollateralError
  t.equal(e.details['timeoutMs'], 50)
  t.ok(process.hrtime.bigint() - started < 5_000_000_000n, 'gave up promptly')

  const badBody: PcsFetch = async () => ({
    status: 200,
    headers: { get: () => null },
    arrayBuffer: async () => {
      throw new Error('socket reset mid-body')
    },
  })
  await expectCode(t, createPcsClient({ baseUrl: 'http://127.0.0.1:9', fetch: badBody }).getRootCaCrl(), CollateralError, 'ATTESTATION_PCS_UNAVAILABLE', 'body read fails')
})

t.test('bad options and arguments are ConfigErrors', async (t) => {
  const CODE = 'ATTESTATION_OPTIONS_INVALID'
  const bad: unknown[] = [
    {},
    { baseUrl: '' },
    { baseUrl: 'not a url' },
    { baseUrl: 'ftp://pcs.example' },
    { baseUrl: 'https://pcs.example/?x=1' },
    { baseUrl: 'https://pcs.example', timeoutMs: 0 },
    { baseUrl: 'https://pcs.example', timeoutMs: 1.5 },
    { baseUrl: 'https://pcs.example', apiVersion: 'v3' },
    { baseUrl: 'https://pcs.example', rootCaCrlUrl: 'file:///etc/passwd' },
    { baseUrl: 'https://pcs.example', fetch: 'no' },
  ]
  for (const o of bad) {
    expectSyncCode(t, () => createPcsClient(o as never), ConfigError, CODE, JSON.stringify(o))
  }
  const client = createPcsClient({ baseUrl: 'http://127.0.0.1:9', fetch: async () => t.fail('no request expected') as never })
  await expectCode(t, client.getTcbInfo('tdx', 'b0c06f'), ConfigError, CODE, 'short fmspc')
  await expectCode(t, client.getTcbInfo('tdx', '../../../x/'), ConfigError, CODE, 'path in fmspc')
  await expectCode(t, client.getTcbInfo('snp' as TeeType, 'b0c06f000000'), ConfigError, CODE, 'unknown TEE')
  await expectCode(t, client.getPckCrl('root' as PckCa), ConfigError, CODE, 'unknown CA')
  await expectCode(t, client.getCollateral({ teeType: 'tdx', fmspc: 'b0c06f000000', ca: undefined as never }), ConfigError, CODE, 'missing CA')
  expectSyncCode(t, () => createCollateralCache({ dir: '' }), ConfigError, CODE, 'empty cache dir')
  expectSyncCode(t, () => createCollateralCache({ dir: '/tmp/x', maxAgeMs: -1 }), ConfigError, CODE, 'negative maxAge')
})

// --- cache ----------------------------------------------------------------

function entryOf(v: Vector, fetchedAt = new Date(v.window[0])): FetchedCollateral {
  return {
    collateral: v.bundle,
    fetchedAt: fetchedAt.toISOString(),
    sources: { tcbInfo: 'http://pcs/tcb', qeIdentity: 'http://pcs/qe', pckCrl: 'http://pcs/pckcrl', rootCaCrl: 'http://pcs/root' },
  }
}

t.test('freshness is the collateral window of each case', async (t) => {
  for (const v of vectors) {
    await t.test(v.name, async (t) => {
      const validity = collateralValidity(v.bundle)
      t.equal(validity.notBefore, v.window[0], 'latest issueDate/thisUpdate = window start')
      t.equal(validity.notAfter, v.window[1], 'earliest nextUpdate = window end')
      const cache = createCollateralCache({ dir: await tempDir(t) })
      t.equal(await cache.get(v.request, v.verifyAt), undefined, 'empty cache: miss')
      await cache.put(v.request, entryOf(v))
      const hit = await cache.get(v.request, v.verifyAt)
      t.ok(hit, 'hit at verify_at')
      sameBundle(t, hit!.collateral, v.bundle)
      t.same(hit, entryOf(v), 'provenance survives too')
      t.ok(await cache.get(v.request, new Date(v.window[0])), 'hit at the window start')
      t.ok(await cache.get(v.request, new Date(v.window[1] - 1)), 'hit 1 ms before the earliest nextUpdate')
      t.equal(await cache.get(v.request, new Date(v.window[1])), undefined, 'miss at the earliest nextUpdate')
      t.equal(await cache.get(v.request, new Date(v.window[0] - 1)), undefined, 'miss before the newest item was issued')
      t.ok(await cache.get({ ...v.request, fmspc: v.request.fmspc.toUpperCase() }, v.verifyAt), 'FMSPC case does not split entries')
      const otherCa: PckCa = v.request.ca === 'platform' ? 'processor' : 'platform'
      t.equal(await cache.get({ ...v.request, ca: otherCa }, v.verifyAt), undefined, 'the CA is part of the key')
    })
  }
})

t.test('maxAgeMs bounds an entry by its fetch time', async (t) => {
  const v = tdx
  const cache = createCollateralCache({ dir: await tempDir(t), maxAgeMs: 60_000 })
  await cache.put(v.request, entryOf(v, new Date(v.verifyAt.getTime() - 59_999)))
  t.ok(await cache.get(v.request, v.verifyAt), 'younger than maxAge: hit')
  await cache.put(v.request, entryOf(v, new Date(v.verifyAt.getTime() - 60_000)))
  t.equal(await cache.get(v.request, v.verifyAt), undefined, 'as old as maxAge: miss')
})

t.test('caching source: hit, miss, expiry and shared in-flight fetches', async (t) => {
  for (const v of vectors) {
    await t.test(v.name, async (t) => {
      const fake = await fakeFor(t, v)
      let clock = v.verifyAt.getTime()
      const now = (): Date => new Date(clock)
      const source = createCachingCollateralSource({
        client: createPcsClient({ baseUrl: fake.url, now }),
        cache: createCollateralCache({ dir: await tempDir(t) }),
        now,
      })
      const first = await source.getCollateral(v.request)
      sameBundle(t, first.collateral, v.bundle)
      t.equal(fake.count(), 4, 'miss: fetched')
      const second = await source.getCollateral(v.request)
      sameBundle(t, second.collateral, v.bundle)
      t.equal(second.fetchedAt, first.fetchedAt, 'served from disk')
      t.equal(fake.count(), 4, 'hit: no request')
      clock = v.window[1]
      const third = await source.getCollateral(v.request)
      t.equal(fake.count(), 8, 'expired: refetched')
      t.equal(third.fetchedAt, new Date(v.window[1]).toISOString())
    })
  }

  const v = tdx
  const fake = await fakeFor(t, v)
  const now = fixedClock(v.verifyAt)
  const source = createCachingCollateralSource({
    client: createPcsClient({ baseUrl: fake.url, now }),
    cache: createCollateralCache({ dir: await tempDir(t) }),
    now,
  })
  const all = await Promise.all([source.getCollateral(v.request), source.getCollateral(v.request), source.getCollateral(v.request)])
  for (const r of all) sameBundle(t, r.collateral, v.bundle)
  t.equal(fake.count(), 4, 'three concurrent callers, one fetch')

  fake.faults.tcb = { status: 500 }
  const cold = createCachingCollateralSource({
    client: createPcsClient({ baseUrl: fake.url, now }),
    cache: createCollateralCache({ dir: await tempDir(t) }),
    now,
  })
  await expectCode(t, cold.getCollateral(v.request), CollateralError, 'ATTESTATION_PCS_UNAVAILABLE', 'client errors pass through')
  await expectCode(t, cold.getCollateral({ ...v.request, fmspc: 'zz' }), ConfigError, 'ATTESTATION_OPTIONS_INVALID', 'bad key')
})

t.test('cache writes are atomic and corrupt entries are misses', async (t) => {
  const v = tdx
  const entryFile = `tdx-${v.request.fmspc}-platform.json`

  await t.test('a write leaves exactly one private entry file', async (t) => {
    const dir = join(await tempDir(t), 'nested', 'cache')
    const cache = createCollateralCache({ dir })
    await cache.put(v.request, entryOf(v))
    await cache.put(v.request, entryOf(v))
    t.same(await readdir(dir), [entryFile], 'no temporary files left behind')
    t.equal((await stat(join(dir, entryFile))).mode & 0o777, 0o600, 'entry is 0600')
    t.equal((await stat(dir)).mode & 0o777, 0o700, 'directory is 0700')
  })

  await t.test('a crashed writer\'s half-written temp file does not disturb reads or writes', async (t) => {
    const dir = await tempDir(t)
    const cache = createCollateralCache({ dir })
    await cache.put(v.request, entryOf(v))
    const full = await readFile(join(dir, entryFile), 'utf8')
    await writeFile(join(dir, `.${entryFile}.99999.deadbeef0000.tmp`), full.slice(0, full.length >> 1))
    sameBundle(t, (await cache.get(v.request, v.verifyAt))!.collateral, v.bundle)
    await cache.put(v.request, entryOf(v))
    sameBundle(t, (await cache.get(v.request, v.verifyAt))!.collateral, v.bundle)
  })

  await t.test('a failed write throws, keeps no temp file, and the source still answers', async (t) => {
    const dir = await tempDir(t)
    // The entry's name is taken by a non-empty directory, so rename(2) fails.
    await mkdir(join(dir, entryFile, 'blocker'), { recursive: true })
    const cache = createCollateralCache({ dir })
    const e = await rejection(t, cache.put(v.request, entryOf(v)))
    t.ok(e instanceof Error, 'put rejects with the file system error')
    t.same((await readdir(dir)).filter((n) => n.endsWith('.tmp')), [], 'temp file removed')
    t.equal(await cache.get(v.request, v.verifyAt), undefined, 'unreadable entry: miss, not a crash')

    const fake = await fakeFor(t, v)
    const errors: unknown[] = []
    const now = fixedClock(v.verifyAt)
    const source = createCachingCollateralSource({
      client: createPcsClient({ baseUrl: fake.url, now }),
      cache,
      now,
      onCacheError: (err) => errors.push(err),
    })
    sameBundle(t, (await source.getCollateral(v.request)).collateral, v.bundle)
    t.equal(errors.length, 1, 'the cache error is reported, not thrown')
  })

  await t.test('corrupt entries are misses and get repaired by the next fetch', async (t) => {
    const good = JSON.parse(JSON.stringify({ format: 'cgw-pcs-collateral/1', key: { teeType: 'tdx', fmspc: v.request.fmspc, ca: 'platform' }, ...entryOf(v) })) as Record<string, any>
    const corruptions: Record<string, string | Uint8Array> = {
      empty: '',
      truncated: JSON.stringify(good).slice(0, 1000),
      'not JSON': 'garbage',
      'not UTF-8': new Uint8Array([0xff, 0xfe, 0x00]),
      'JSON null': 'null',
      'wrong format tag': JSON.stringify({ ...good, format: 'other/9' }),
      'wrong key (copied from another FMSPC)': JSON.stringify({ ...good, key: { ...good.key, fmspc: '00a067110000' } }),
      'bundle field missing': JSON.stringify({ ...good, collateral: { ...good.collateral, tcb_info: undefined } }),
      'bundle field not a string': JSON.stringify({ ...good, collateral: { ...good.collateral, pck_crl: 5 } }),
      'CRL not DER': JSON.stringify({ ...good, collateral: { ...good.collateral, root_ca_crl: 'zz' } }),
      'tcb_info not JSON': JSON.stringify({ ...good, collateral: { ...good.collateral, tcb_info: '{' } }),
      'nextUpdate missing': JSON.stringify({ ...good, collateral: { ...good.collateral, qe_identity: '{"id":"TD_QE"}' } }),
      'fetchedAt not a date': JSON.stringify({ ...good, fetchedAt: 'yesterday' }),
      'sources missing': JSON.stringify({ ...good, sources: undefined }),
    }
    for (const [what, bytes] of Object.entries(corruptions)) {
      const dir = await tempDir(t)
      await writeFile(join(dir, entryFile), bytes)
      const cache = createCollateralCache({ dir })
      t.equal(await cache.get(v.request, v.verifyAt), undefined, `${what}: miss`)
      const fake = await fakeFor(t, v)
      const now = fixedClock(v.verifyAt)
      const source = createCachingCollateralSource({ client: createPcsClient({ baseUrl: fake.url, now }), cache, now })
      sameBundle(t, (await source.getCollateral(v.request)).collateral, v.bundle)
      t.equal(fake.count(), 4, `${what}: refetched`)
      t.ok(await cache.get(v.request, v.verifyAt), `${what}: repaired`)
    }
    // The reference entry itself reads fine, so the corruptions above are what made the misses.
    const dir = await tempDir(t)
    await writeFile(join(dir, entryFile), JSON.stringify(good))
    t.ok(await createCollateralCache({ dir }).get(v.request, v.verifyAt), 'uncorrupted reference entry: hit')
  })

  await t.test('keys cannot name files outside the directory', async (t) => {
    const cache = createCollateralCache({ dir: await tempDir(t) })
    for (const fmspc of ['../../etc/passwd', 'b0c06f00000/', 'b0c06f00000g']) {
      await expectCode(t, cache.get({ ...v.request, fmspc }, v.verifyAt), ConfigError, 'ATTESTATION_OPTIONS_INVALID', `get ${fmspc}`)
      await expectCode(t, cache.put({ ...v.request, fmspc }, entryOf(v)), ConfigError, 'ATTESTATION_OPTIONS_INVALID', `put ${fmspc}`)
    }
    await expectCode(t, cache.get(v.request, new Date(NaN)), ConfigError, 'ATTESTATION_OPTIONS_INVALID', 'invalid now')
  })
})

t.test('decodeCrl accepts DER, hex and PEM and rejects the rest', async (t) => {
  const der = new Uint8Array(Buffer.from(tdx.bundle.root_ca_crl, 'hex'))
  t.equal(decodeCrl(der, 'x'), tdx.bundle.root_ca_crl)
  t.equal(decodeCrl(tdx.bundle.root_ca_crl, 'x'), tdx.bundle.root_ca_crl)
  t.equal(decodeCrl(utf8(` ${tdx.bundle.root_ca_crl.toUpperCase()}\r\n`), 'x'), tdx.bundle.root_ca_crl)
  t.equal(decodeCrl(derToPem(der, 'X509 CRL'), 'x'), tdx.bundle.root_ca_crl)
  for (const [what, body] of [
    ['odd hex', tdx.bundle.root_ca_crl.slice(1)],
    ['two PEM CRLs', derToPem(der, 'X509 CRL') + derToPem(der, 'X509 CRL')],
    ['PEM certificate instead of CRL', derToPem(der, 'CERTIFICATE')],
    ['empty', new Uint8Array()],
  ] as const) {
    expectSyncCode(t, () => decodeCrl(body, 'x'), CollateralError, 'ATTESTATION_PCS_RESPONSE_INVALID', what)
  }
})
