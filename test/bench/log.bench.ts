/**
 * `npm run bench:log`: the attestation log's append rate and the auditor's
 * replay rate.
 *
 *  1. Appends: 100,000 receipt entries (real EIP-712 digests and secp256k1
 *     signatures, made beforehand on worker threads) appended to a log
 *     directory with 4,096 appends outstanding (concurrent requests), each
 *     acknowledged only once durable (group commit: one journal write and
 *     one fdatasync per batch). Also the latency of one lone append.
 *  2. Replay, Merkle + signatures: `auditLog` over that log (100,000
 *     receipts plus the first epoch and a registration): every tile read,
 *     the tree recomputed, the checkpoint signature, every receipt signature
 *     (batch-verified on worker threads) and signer registration.
 *  3. Replay, full evidence: a log of 1,000 evidence entries from the dev
 *     TEE with one dev GPU, each re-verified (quote with the logged
 *     collateral at the entry's time, GPU evidence with its RIMs and OCSP,
 *     the REPORTDATA binding, the dev CCEL replayed to the quote's RTMRs:
 *     the auditor requires an event log); `--no-gpu` leaves the GPU out.
 * Targets (issue 7): replay of 100,000 receipts < 30 s; ≥ 2,000 durable
 * appends/s. The last line is one JSON object. Options: --receipts N,
 * --evidence N, --threads N.
 */
import { availableParallelism, tmpdir } from 'node:os'
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { getAddress } from 'viem'
import { auditLog } from '../../attestation/log/audit/audit.ts'
import { createReceiptSignaturePool } from '../../attestation/log/audit/receipt-signatures.ts'
import { encodeEntry } from '../../attestation/log/entry.ts'
import { createDirectoryLogSource } from '../../attestation/log/reader.ts'
import { createDevCcel, createDevGpu, createDevGpuRootCa, createDevQuoteSigner, createDevRootCa, DEV_FMSPC, signDevCollateral } from '../../attestation/dev/index.ts'
import { createDevGpuProvider } from '../../enclave/gpu/dev.ts'
import { trustedRootFromDer } from '../../attestation/roots/trust-root.ts'
import { createEpochManager } from '../../enclave/epochs.ts'
import { createEvidenceSource } from '../../enclave/evidence.ts'
import { createDevEventLogProvider, createDevQuoteProvider } from '../../enclave/quote-providers/dev.ts'
import { receiptDigest, receiptDomain } from '../../enclave/receipts.ts'
import { createLogKey } from '../../enclave/log/key.ts'
import { createAttestationLogSink } from '../../enclave/log/sink.ts'
import { createLogWriter } from '../../enclave/log/writer.ts'
import { fakeOhttpKey, memoryAuditRegistry, CHAIN_ID, REGISTRY } from '../fixtures/log-dev-fixture.ts'
import { argValue, round } from './harness.ts'

const TARGET_REPLAY_100K_S = 30
const TARGET_APPENDS_PER_S = 2000
const T0 = Date.parse('2026-01-01T00:00:00Z')

const args = process.argv.slice(2)
const RECEIPTS = Number(argValue(args, '--receipts') ?? 100_000)
const EVIDENCE = Number(argValue(args, '--evidence') ?? 1_000)
const THREADS = Number(argValue(args, '--threads') ?? availableParallelism())
const WITH_GPU = !args.includes('--no-gpu')

/** Sign digests on worker threads (generation only; not timed). */
async function signAll(secret: Uint8Array, digests: Uint8Array[]): Promise<Uint8Array[]> {
  const workers = Array.from({ length: THREADS }, () => new Worker(new URL('../fixtures/log-bench-sign-worker.mjs', import.meta.url)))
  try {
    const per = Math.ceil(digests.length / workers.length)
    const parts = await Promise.all(
      workers.map(
        (w, k) =>
          new Promise<Uint8Array>((resolve, reject) => {
            const chunk = digests.slice(k * per, (k + 1) * per)
            const packed = new Uint8Array(chunk.length * 32)
            chunk.forEach((d, i) => packed.set(d, i * 32))
            w.once('message', (m: { out: Uint8Array }) => resolve(m.out))
            w.once('error', reject)
            w.postMessage({ id: k, secret, digests: packed }, [packed.buffer])
          }),
      ),
    )
    const out: Uint8Array[] = []
    for (const p of parts) for (let i = 0; i < p.length / 65; i++) out.push(p.subarray(i * 65, i * 65 + 65))
    return out
  } finally {
    await Promise.all(workers.map((w) => w.terminate()))
  }
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'cgw-bench-log-'))
  try {
    console.log(`log bench: ${RECEIPTS} receipts, ${EVIDENCE} evidence entries, ${THREADS} threads, node ${process.version}`)
    // ---- generation (not timed) ----
    const secret = secp256k1.utils.randomSecretKey()
    const signer = getAddress(`0x${Buffer.from(keccak_256(secp256k1.getPublicKey(secret, false).subarray(1)).subarray(12)).toString('hex')}`)
    const domain = receiptDomain({ chainId: CHAIN_ID, registry: REGISTRY })
    const epoch = 500_000n
    const FIRST = 2 // epoch and registration entries come first
    const digests = Array.from({ length: RECEIPTS }, (_, i) =>
      receiptDigest(
        {
          requestHash: `0x${(i + 1).toString(16).padStart(64, '0')}`,
          responseHash: `0x${(i + 7).toString(16).padStart(64, '0')}`,
          model: 'bench-model',
          epoch,
          time: BigInt(T0 / 1000),
          logIndex: BigInt(FIRST + i),
        },
        domain,
      ),
    )
    let g = Date.now()
    const signatures = await signAll(secret, digests)
    console.log(`  generated ${RECEIPTS} signed receipts in ${((Date.now() - g) / 1000).toFixed(1)} s`)
    const entries = digests.map((d, i) =>
      encodeEntry({ type: 'receipt', time: T0, epoch, signer, receiptHash: `0x${Buffer.from(d).toString('hex')}`, signature: `0x${Buffer.from(signatures[i]!).toString('hex')}` }),
    )

    // ---- 1. appends ----
    const key = createLogKey()
    const dir = join(root, 'receipts')
    const writer = await createLogWriter({ dir, key, now: () => T0 })
    await writer.appendEntry(encodeEntry({ type: 'epoch', time: T0, epoch, signingAddress: signer, expiresAt: T0 + 3_600_000, keyConfig: new Uint8Array(41), previous: null }))
    await writer.appendEntry(
      encodeEntry({ type: 'registration', time: T0, chainId: CHAIN_ID, registry: REGISTRY, enclaveId: key.logId, epoch, blockNumber: 1n, txHash: `0x${'aa'.repeat(32)}` }),
    )
    const lone: number[] = []
    const WINDOW = 4096
    let next = 0
    const t1 = process.hrtime.bigint()
    const lane = async () => {
      while (next < entries.length) {
        const e = entries[next++]!
        await writer.appendEntry(e)
      }
    }
    await Promise.all(Array.from({ length: WINDOW }, lane))
    const appendS = Number(process.hrtime.bigint() - t1) / 1e9
    const appendRate = RECEIPTS / appendS
    // Lone appends: the latency a single request sees on an idle log (one batch, one fsync each).
    const extra = join(root, 'lone')
    const w2 = await createLogWriter({ dir: extra, key: createLogKey(), now: () => T0 })
    for (let i = 0; i < 200; i++) {
      const t = process.hrtime.bigint()
      await w2.appendEntry(entries[i]!)
      lone.push(Number(process.hrtime.bigint() - t) / 1e6)
    }
    await w2.close()
    await writer.close()
    lone.sort((a, b) => a - b)
    console.log(`  appends: ${RECEIPTS} durable in ${appendS.toFixed(2)} s = ${Math.round(appendRate)} entries/s (target ${TARGET_APPENDS_PER_S}); lone append median ${lone[100]!.toFixed(2)} ms`)

    // ---- 2. replay: Merkle + signatures ----
    const registry = memoryAuditRegistry()
    registry.registrations.push({
      enclaveId: key.logId,
      signingAddress: signer,
      epoch,
      registeredAt: BigInt(T0 / 1000 - 60),
      expiresAt: BigInt(T0 / 1000 + 86_400),
      endedAt: null,
      blockNumber: 1n,
      transactionHash: `0x${'aa'.repeat(32)}`,
    })
    const pool = createReceiptSignaturePool(THREADS)
    const t2 = process.hrtime.bigint()
    const { report } = await auditLog({ source: createDirectoryLogSource(dir), registry, verifyReceiptSignatures: pool.verify })
    const replayS = Number(process.hrtime.bigint() - t2) / 1e9
    await pool.close()
    if (!report.ok || report.checks.receiptsVerified !== RECEIPTS) throw new Error(`replay did not verify: ${JSON.stringify(report.findings.slice(0, 3))}`)
    const phases = Object.fromEntries(Object.entries(report.timings).map(([k, v]) => [k, round(v / 1000, 2)]))
    console.log(`  replay: ${RECEIPTS} receipts in ${replayS.toFixed(2)} s = ${Math.round(RECEIPTS / replayS)} entries/s (target < ${TARGET_REPLAY_100K_S} s); phases s ${JSON.stringify(phases)}`)

    // ---- 3. replay: full evidence ----
    const at = new Date(T0)
    const ca = createDevRootCa({ now: new Date(T0 - 86_400_000), seed: new Uint8Array(32).fill(5) })
    const qs = createDevQuoteSigner(ca, { fmspc: DEV_FMSPC, now: new Date(T0 - 86_400_000), seed: new Uint8Array(32).fill(6) })
    const collateral = signDevCollateral(ca, { fmspc: DEV_FMSPC, now: new Date(T0 - 3_600_000), platform: qs.platform })
    const gpuCa = createDevGpuRootCa({ now: new Date(T0 - 86_400_000), seed: new Uint8Array(32).fill(8) })
    const gpuRoot = trustedRootFromDer('dev', gpuCa.rootCertificateDer, gpuCa.rootFingerprint)
    const gpu = WITH_GPU ? createDevGpuProvider({ ca: gpuCa, gpus: [createDevGpu(gpuCa, { index: 0 })], now: () => at }) : null
    const ccel = createDevCcel()
    const ekey = createLogKey()
    const edir = join(root, 'evidence')
    const ew = await createLogWriter({ dir: edir, key: ekey, now: () => at.getTime() })
    const sink = createAttestationLogSink(ew)
    await sink.collateral([collateral])
    const epochs = await createEpochManager({ epochLengthMs: 3_600_000, graceMs: 60_000, now: () => at.getTime(), newOhttpKey: fakeOhttpKey, autoRotate: false, logSink: sink })
    const source = createEvidenceSource({
      // One dev CCEL for both: the quotes' RTMR0-2 are its replay, so the auditor's replay matches.
      quotes: createDevQuoteProvider({ signer: qs, ccel }),
      eventLog: createDevEventLogProvider({ ccel }),
      gpu,
      epochs,
      logPublicKey: ekey.publicKey,
      logSink: sink,
      maxInFlight: 64,
    })
    g = Date.now()
    for (let i = 0; i < EVIDENCE; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, EVIDENCE - i) }, (_, k) => source.attest(new Uint8Array(32).fill(0).map((_, j) => (j < 4 ? ((i + k) >> (8 * j)) & 0xff : 1)))))
    }
    epochs.close()
    await ew.close()
    console.log(`  generated ${EVIDENCE} evidence entries in ${((Date.now() - g) / 1000).toFixed(1)} s`)
    const t3 = process.hrtime.bigint()
    const ev = await auditLog({
      source: createDirectoryLogSource(edir),
      tdxRoot: trustedRootFromDer('dev', ca.rootCertificateDer, ca.rootFingerprint),
      gpuDeviceRoot: gpuRoot,
      gpuRimRoot: gpuRoot,
    })
    const evidenceS = Number(process.hrtime.bigint() - t3) / 1e9
    if (!ev.report.ok || ev.report.checks.quotesVerified !== EVIDENCE) throw new Error(`evidence replay did not verify: ${JSON.stringify(ev.report.findings.slice(0, 3))}`)
    console.log(`  replay: ${EVIDENCE} evidence entries (quote + collateral + binding${WITH_GPU ? ' + 1 GPU' : ''}) in ${evidenceS.toFixed(2)} s = ${(EVIDENCE / evidenceS).toFixed(1)} entries/s`)

    const replay100k = (replayS * 100_000) / RECEIPTS
    console.log(
      JSON.stringify({
        bench: 'log',
        node: process.version,
        threads: THREADS,
        receipts: RECEIPTS,
        append_entries_per_s: Math.round(appendRate),
        append_lone_median_ms: round(lone[100]!, 3),
        append_target_per_s: TARGET_APPENDS_PER_S,
        append_over_target: round(appendRate / TARGET_APPENDS_PER_S, 2),
        replay_receipts_s: round(replayS, 2),
        replay_receipts_per_s: Math.round(RECEIPTS / replayS),
        replay_100k_s_scaled: round(replay100k, 2),
        replay_target_100k_s: TARGET_REPLAY_100K_S,
        replay_target_over_measured: round(TARGET_REPLAY_100K_S / replay100k, 2),
        replay_phases_s: phases,
        evidence_entries: EVIDENCE,
        evidence_gpus: WITH_GPU ? 1 : 0,
        replay_evidence_s: round(evidenceS, 2),
        replay_evidence_per_s: round(EVIDENCE / evidenceS, 1),
        meets_targets: replay100k < TARGET_REPLAY_100K_S && appendRate >= TARGET_APPENDS_PER_S,
      }),
    )
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

main().catch((e: unknown) => {
  console.error(`log bench FAILED: ${e instanceof Error ? e.message : String(e)}`)
  process.exitCode = 1
})
