/**
 * The log's edges: the gateway's static routes (C2SP tlog-tiles paths,
 * cache headers — immutable blobs, and full tiles and key under /logs/<logId>/;
 * no-cache checkpoint, and key and tiles under the live /log/ —,
 * strict path parsing, earlier logs under /logs/<logId>/, inclusion proofs
 * at /log/proof/<index>); the enclave hooks failing closed (a bundle whose
 * log write fails is not served; an epoch whose record fails is not
 * offered); and the anchor worker's "at most one transaction per period,
 * only when the log grew", failures included.
 */
import t from 'tap'
import { request } from 'undici'
import type { Hex } from 'viem'
import { verifyInclusionProofJson, type InclusionProofJson } from '../attestation/log/client.ts'
import { encodeEntry } from '../attestation/log/entry.ts'
import { openGatewayLog } from '../enclave/log/index.ts'
import { createAnchorWorker, type CheckpointAnchorer } from '../enclave/log/anchor-worker.ts'
import { createEpochManager } from '../enclave/epochs.ts'
import { createEvidenceSource } from '../enclave/evidence.ts'
import { createDevEventLogProvider, createDevQuoteProvider } from '../enclave/quote-providers/dev.ts'
import { createDevQuoteSigner, createDevRootCa, DEV_FMSPC } from '../attestation/dev/index.ts'
import { createSigningKey } from '../enclave/keys.ts'
import { NO_CHAIN_RECEIPT_DOMAIN } from '../enclave/receipts.ts'
import type { AttestationLogSink } from '../enclave/log/sink.ts'
import { listenLocal, testGateway } from './helpers/fake-enclave.ts'
import { fakeOhttpKey, tempDir } from './fixtures/log-dev-fixture.ts'
import { codeOf } from './helpers/errors.ts'

const entry = (i: number) => encodeEntry({ type: 'void', time: 1_700_000_000_000 + i, reason: 'BENCH' })

t.test('static routes: paths, cache headers, earlier logs, proofs', async (t) => {
  const dataDir = await tempDir(t)
  const old = await openGatewayLog({ dataDir })
  await old.writer.appendEntry(entry(0))
  await old.close()
  const log = await openGatewayLog({ dataDir })
  t.teardown(() => log.close())
  await Promise.all(Array.from({ length: 300 }, (_, i) => log.writer.appendEntry(entry(i))))
  const blob = await log.writer.putBlob(new TextEncoder().encode('public artifact'))
  const { app } = testGateway(t, { log: { dataDir } })
  const port = await listenLocal(app)
  const get = async (path: string) => {
    const r = await request(`http://127.0.0.1:${port}${path}`)
    const body = Buffer.from(await r.body.arrayBuffer())
    return { status: r.statusCode, cache: r.headers['cache-control'], type: r.headers['content-type'], body }
  }
  const cp = await get('/log/checkpoint')
  t.equal(cp.status, 200)
  t.equal(cp.cache, 'no-cache')
  t.match(cp.body.toString(), new RegExp(`^cgw.log/${log.logId.slice(2)}\\n300\\n`))
  const full = await get('/log/tile/0/000')
  t.equal(full.status, 200)
  t.equal(full.body.length, 256 * 32)
  // /log/ follows `current`, which a restart points at a new log: nothing there but blobs may be cached.
  t.equal(full.cache, 'no-cache')
  t.equal((await get('/log/tile/entries/000')).cache, 'no-cache')
  const partial = await get('/log/tile/entries/001.p/44')
  t.equal(partial.status, 200)
  t.equal(partial.cache, 'no-cache')
  const blobRes = await get(`/log/blob/${blob}`)
  t.equal(blobRes.body.toString(), 'public artifact')
  t.equal(blobRes.cache, 'public, max-age=31536000, immutable', 'a blob is named by its hash: immutable under /log/ too')
  const key = await get('/log/key')
  t.equal(key.status, 200)
  t.equal(key.cache, 'no-cache')
  // Under /logs/<logId>/ the paths name one log for good.
  const pinned = `/logs/${log.logId.slice(2)}`
  t.equal((await get(`${pinned}/tile/0/000`)).cache, 'public, max-age=31536000, immutable')
  t.equal((await get(`${pinned}/tile/entries/001.p/44`)).cache, 'public, max-age=60')
  t.equal((await get(`${pinned}/key`)).cache, 'public, max-age=31536000, immutable')
  for (const bad of ['/log/tile/0/x000/000', '/log/tile/0/00', '/log/tile/../../key', '/log/tile/entries/001.p/256', '/log/tile/0/999', `/log/blob/${'0'.repeat(64)}`]) {
    t.equal((await get(bad)).status, 404, bad)
  }
  t.equal((await get('/log/blob/zz')).status, 400, 'a blob name that is not a SHA-256 fails the route schema')
  const proof = await get('/log/proof/257')
  t.equal(proof.status, 200)
  t.equal(verifyInclusionProofJson(JSON.parse(proof.body.toString()) as InclusionProofJson, log.publicKey).checkpoint.size, 300)
  t.equal((await get('/log/proof/300')).status, 404)
  // The restarted process's predecessor stays servable.
  const oldCp = await get(`/logs/${old.logId.slice(2)}/checkpoint`)
  t.equal(oldCp.status, 200)
  t.match(oldCp.body.toString(), /\n1\n/)
  t.equal((await get(`/logs/${old.logId.slice(2)}/tile/entries/000.p/1`)).status, 200)
  t.equal((await get(`/logs/${'0'.repeat(64)}/checkpoint`)).status, 404)
})

t.test('hooks fail closed: no bundle served unlogged, no epoch offered unrecorded', async (t) => {
  const ca = createDevRootCa({ now: new Date(), seed: new Uint8Array(32).fill(1) })
  let clock = Date.UTC(2026, 0, 1)
  let failEpochs = false
  const calls: string[] = []
  const sink: AttestationLogSink = {
    evidence: async () => {
      calls.push('evidence')
      throw Object.assign(new Error('disk full'), { code: 'LOG_WRITE_FAILED' })
    },
    epochChange: async (c) => {
      calls.push(`epoch ${c.epoch}`)
      if (failEpochs) throw new Error('disk full')
    },
    registration: async () => {},
    registrationEvidence: async () => {},
    collateral: async () => [],
  }
  const epochs = await createEpochManager({ epochLengthMs: 3_600_000, graceMs: 60_000, now: () => clock, newOhttpKey: fakeOhttpKey, autoRotate: false, logSink: sink })
  t.teardown(() => epochs.close())
  const first = epochs.current().number
  t.same(calls, [`epoch ${first}`], 'the first epoch is recorded')
  const source = createEvidenceSource({
    quotes: createDevQuoteProvider({ signer: createDevQuoteSigner(ca, { fmspc: DEV_FMSPC }) }),
    eventLog: createDevEventLogProvider(),
    gpu: null,
    epochs,
    logPublicKey: new Uint8Array(32),
    logSink: sink,
  })
  const e = await source.attest(new Uint8Array(32)).catch((x: unknown) => x)
  t.equal(codeOf(e), 'ENCLAVE_EVIDENCE_UNAVAILABLE')
  t.equal((e as { details: { step: string } }).details.step, 'log')
  failEpochs = true
  clock += 3_600_000
  await t.rejects(epochs.rotateIfDue())
  t.equal(epochs.current().number, first, 'the unrecorded epoch is not offered')
  failEpochs = false
  t.equal(await epochs.rotateIfDue(), true)
  t.equal(epochs.current().number, first + 1n)
})

t.test('anchor worker: one transaction per period at most, only when the log grew', async (t) => {
  const dataDir = await tempDir(t)
  const log = await openGatewayLog({ dataDir })
  t.teardown(() => log.close())
  let clock = 0
  const sent: { size: bigint; root: Hex; signature: Hex }[] = []
  let fail = false
  const anchorer: CheckpointAnchorer = {
    async anchor(_logId, size, root, signature) {
      if (fail) throw new Error('rpc down')
      sent.push({ size, root, signature })
      return { txHash: `0x${'11'.repeat(32)}` }
    },
    async latest() {
      return sent.at(-1) ?? null
    },
  }
  const key = createSigningKey()
  const worker = createAnchorWorker({
    logId: log.logId,
    checkpoint: () => log.writer.checkpoint,
    signDigest: (d) => key.signDigest(d),
    domain: NO_CHAIN_RECEIPT_DOMAIN,
    anchorer,
    periodMs: 1000,
    now: () => clock,
    autoStart: false,
  })
  t.equal(await worker.tick(), null, 'nothing to anchor before the first checkpoint')
  await log.writer.appendEntry(entry(0))
  t.equal((await worker.tick())?.size, 1n)
  await log.writer.appendEntry(entry(1))
  t.equal(await worker.tick(), null, 'same period')
  clock += 1000
  fail = true
  await t.rejects(worker.tick())
  t.equal(await worker.tick(), null, 'a failed attempt still used the period')
  clock += 1000
  fail = false
  t.equal((await worker.tick())?.size, 2n)
  clock += 1000
  t.equal(await worker.tick(), null, 'the log did not grow')
  t.equal(sent.length, 2)
  t.throws(() => createAnchorWorker({ logId: log.logId, checkpoint: () => null, signDigest: (d) => key.signDigest(d), domain: NO_CHAIN_RECEIPT_DOMAIN, anchorer, periodMs: 0, now: () => 0 }))
})
