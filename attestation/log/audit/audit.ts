/**
 * `auditLog`: replay a published attestation log.
 *
 *  1. The checkpoint: signed by the log key (given by the auditor, or the
 *     log's `key` file as a candidate), whose logId the origin names.
 *  2. The tree: every entry bundle fetched, every leaf hashed, the whole
 *     tree recomputed (compute) and its root compared with the checkpoint
 *     (compare); every published hash tile compared with the recomputed
 *     hashes, so an entry that differs from its published leaf hash is
 *     named by index.
 *  3. History: every checkpoint seen before (the state) must be the root of
 *     the tree at its size — else the entry that changed is named from the
 *     stored leaves (LOG_ENTRY_REWRITTEN); two checkpoints of one size with
 *     different roots are a fork; a smaller tree is a rollback. Every
 *     on-chain anchor must be the root at its size.
 *  4. Entries from `from` on: evidence (nonce and registration mode)
 *     re-verified with the collateral of its time; collateral blobs checked
 *     against their fingerprints; receipts' signatures verified and their
 *     signers checked against the registry (registered for this enclave and
 *     unexpired at the entry's time) or, without a registry, against the
 *     epochs the log itself attested (attested before the receipt, and the
 *     receipt's time between that entry and the epoch's expiry or end of
 *     grace); registrations found on the registry.
 *  5. The log key's trust anchor. A log that signs its own checkpoints with
 *     the key it serves proves only that it is self-consistent; what makes
 *     its history the enclave's is a key the auditor trusts: given
 *     (`publicKey`), registered or anchored on the registry under
 *     logId = keccak256(key) (the registry checked a quote binding it; an
 *     anchor requires a registration), or bound by at least one evidence
 *     entry whose quote verifies. Otherwise LOG_KEY_UNBOUND.
 * A finding never stops the audit (except when there is no verifiable
 * checkpoint or tree to audit); the report lists them all.
 */
import { BaseError } from '../../errors.ts'
import { logIdOf, originOf, verifyCheckpoint, type Checkpoint } from '../checkpoint.ts'
import { decodeEntry, type EvidenceEntry, type LogEntry, type RegistrationEvidenceEntry } from '../entry.ts'
import { LogError } from '../errors.ts'
import { HASH_SIZE, hashEqual, leafHash } from '../hash.ts'
import { buildMemoryTree, type MemoryTree } from '../merkle.ts'
import { formatVerifierKey, parseVerifierKey } from '../note.ts'
import { hex } from '../../bytes/hex.ts'
import { readEntryBundle, readHashTile } from '../reader.ts'
import { tilesForSize, TILE_HEIGHT, TILE_WIDTH, type TileCoordinates } from '../tile.ts'
import { replayCollateralEntry, replayEvidenceEntry, type EvidenceContext } from './evidence.ts'
import { recoverSigner, verifyReceiptSignaturesInThread } from './receipt-signatures.ts'
import { EMPTY_AUDIT_STATE, type AuditState, type LogState, type SeenCheckpoint } from './state.ts'
import type { AuditFinding, AuditOptions, AuditOutcome, AuditRegistration, AuditReport, EntryResult, ReceiptSignatureItem } from './types.ts'

type Hex = `0x${string}`
const codeOf = (e: unknown) => (e instanceof BaseError ? e.code : 'INTERNAL')

async function mapLimit<T, R>(items: readonly T[], limit: number, f: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length)
  let next = 0
  const run = async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await f(items[i]!, i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run))
  return out
}

/**
 * The log's public key: given, or from its `key` file (a signed-note
 * verifier key). A key read from the log is only a candidate: the log
 * vouching for itself proves nothing, so it must be anchored later.
 */
async function publicKeyOf(o: AuditOptions): Promise<{ publicKey: Uint8Array; given: boolean }> {
  if (o.publicKey) return { publicKey: o.publicKey, given: true }
  const k = await o.source.read('key')
  if (k === null) throw new LogError('LOG_FETCH_FAILED', 'the log serves no key; pass the log public key', { details: { location: o.source.location } })
  return { publicKey: parseVerifierKey(Buffer.from(k).toString('utf8').trim()).publicKey, given: false }
}

/** When an epoch's signing key may sign, as the log attested it (log mode). */
interface EpochValidity {
  /** Index of the first entry attesting it: receipts before it are unattested. */
  readonly firstIndex: number
  /** Time (ms) of that entry. */
  readonly start: number
  /** ms; the earliest expiry declared. */
  expiresAt: number
  /** End of grace (ms) stated by the next epoch's entry, or null. */
  liveUntil: number | null
}

/** Audit the log at `o.source` (module header). Throws only when there is nothing verifiable to audit. */
export async function auditLog(o: AuditOptions): Promise<AuditOutcome> {
  const clock = o.clock ?? (() => performance.now())
  const now = o.now ?? (() => new Date())
  const from = o.from ?? 0
  if (!Number.isSafeInteger(from) || from < 0) throw new LogError('LOG_OPTIONS_INVALID', '--from must be a non-negative integer')
  const concurrency = o.concurrency ?? 8
  const t0 = clock()
  const findings: AuditFinding[] = []
  const report: AuditReport = {
    ok: false,
    location: o.source.location,
    logId: null,
    origin: null,
    verifierKey: null,
    checkpoint: null,
    entries: { total: 0, from, replayed: 0, byType: {} },
    checks: {
      checkpointSignature: false,
      treeRecomputed: false,
      hashTilesChecked: 0,
      earlierCheckpoints: 0,
      anchors: null,
      receiptSigners: null,
      quotesVerified: 0,
      receiptsVerified: 0,
      logKey: null,
    },
    findings,
    results: [],
    timings: {},
  }
  const state = o.state ?? EMPTY_AUDIT_STATE

  // 1. Checkpoint.
  const { publicKey, given } = await publicKeyOf(o)
  const logId = logIdOf(publicKey)
  report.logId = logId
  report.origin = originOf(publicKey)
  report.verifierKey = formatVerifierKey(report.origin, publicKey)
  const noteBytes = await o.source.read('checkpoint')
  if (noteBytes === null) throw new LogError('LOG_FETCH_FAILED', 'the log serves no checkpoint', { details: { location: o.source.location } })
  const note = Buffer.from(noteBytes).toString('utf8')
  let checkpoint: Checkpoint
  try {
    checkpoint = verifyCheckpoint(note, publicKey)
  } catch (e) {
    findings.push({ code: codeOf(e) === 'INTERNAL' ? 'LOG_CHECKPOINT_SIGNATURE_INVALID' : codeOf(e), details: { location: o.source.location } })
    return { report, state }
  }
  report.checks.checkpointSignature = true
  report.checkpoint = { size: checkpoint.size, root: hex(checkpoint.root) }
  const size = checkpoint.size
  report.entries.total = size
  if (from > size) throw new LogError('LOG_INDEX_OUT_OF_RANGE', '--from is beyond the checkpoint', { details: { from, size } })
  const prior: LogState | undefined = state.logs[logId]
  const seen = prior?.checkpoints ?? []

  // Forks and rollbacks are visible from the checkpoints alone.
  for (const s of seen) {
    if (s.size === size && s.root !== hex(checkpoint.root)) findings.push({ code: 'LOG_FORKED', details: { size, seenRoot: s.root, servedRoot: hex(checkpoint.root), seenNote: s.note, servedNote: note } })
  }
  const largestSeen = seen.reduce((m, s) => Math.max(m, s.size), 0)
  if (largestSeen > size) findings.push({ code: 'LOG_ROLLED_BACK', details: { size, largestSeen } })
  report.timings.checkpoint = clock() - t0

  // 2. Entries and the tree.
  const t1 = clock()
  const entryTiles = tilesForSize(size).filter((c) => c.level === 'entries')
  const bundles = await mapLimit(entryTiles, concurrency, (c) => readEntryBundle(o.source, c.index, c.width))
  const entries: Uint8Array[] = bundles.flat()
  const leaves = new Uint8Array(size * HASH_SIZE)
  entries.forEach((e, i) => leaves.set(leafHash(e), i * HASH_SIZE))
  const tree: MemoryTree = buildMemoryTree(leaves)
  report.checks.treeRecomputed = true
  report.timings.tree = clock() - t1
  const t2 = clock()
  if (!hashEqual(tree.rootAt(size), checkpoint.root)) findings.push({ code: 'LOG_ROOT_MISMATCH', details: { size, computed: hex(tree.rootAt(size)), checkpoint: hex(checkpoint.root) } })
  const hashTiles = tilesForSize(size).filter((c): c is TileCoordinates & { level: number } => c.level !== 'entries')
  await mapLimit(hashTiles, concurrency, async (c) => {
    let hashes: Uint8Array[]
    try {
      hashes = await readHashTile(o.source, c.level, c.index, c.width)
    } catch (e) {
      findings.push({ code: codeOf(e), details: { tile: { level: c.level, index: c.index, width: c.width } } })
      return
    }
    report.checks.hashTilesChecked++
    const level = tree.levels[c.level * TILE_HEIGHT]!
    hashes.forEach((h, k) => {
      const i = c.index * TILE_WIDTH + k
      if (!hashEqual(h, level.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE))) {
        findings.push(
          c.level === 0
            ? { code: 'LOG_ENTRY_REWRITTEN', index: i, details: { reason: 'the entry does not hash to its published leaf hash' } }
            : { code: 'LOG_HASH_TILE_MISMATCH', details: { level: c.level, index: i } },
        )
      }
    })
  })

  // 3. History: earlier checkpoints and on-chain anchors.
  for (const s of seen) {
    if (s.size > size || s.size === size) continue
    report.checks.earlierCheckpoints++
    if (hex(tree.rootAt(s.size)) === s.root) continue
    const stored = prior?.leaves ?? new Uint8Array(0)
    let changed = -1
    for (let i = 0; i < Math.min(s.size, stored.length / HASH_SIZE); i++) {
      if (!hashEqual(stored.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE), leaves.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE))) {
        changed = i
        break
      }
    }
    findings.push(
      changed >= 0
        ? { code: 'LOG_ENTRY_REWRITTEN', index: changed, details: { checkpointSize: s.size, seenRoot: s.root, reason: 'the entry differs from the one an earlier checkpoint covered' } }
        : { code: 'LOG_CONSISTENCY_FAILED', details: { checkpointSize: s.size, seenRoot: s.root, computed: hex(tree.rootAt(s.size)) } },
    )
  }
  if (o.registry) {
    let anchors
    try {
      anchors = await o.registry.checkpointAnchors(logId)
    } catch (e) {
      findings.push({ code: 'LOG_REGISTRY_UNAVAILABLE', details: { step: 'anchors', cause: codeOf(e) } })
      anchors = []
    }
    report.checks.anchors = anchors.length
    for (const a of anchors) {
      const n = Number(a.size)
      if (n > size) {
        findings.push({ code: 'LOG_ANCHOR_INCONSISTENT', details: { anchorSize: n, logSize: size, tx: a.transactionHash, reason: 'the anchor is beyond the served log' } })
      } else if (hex(tree.rootAt(n)) !== a.root.slice(2).toLowerCase()) {
        findings.push({ code: 'LOG_ANCHOR_INCONSISTENT', details: { anchorSize: n, anchorRoot: a.root, computed: hex(tree.rootAt(n)), tx: a.transactionHash } })
      }
    }
  }
  report.timings.history = clock() - t2

  // 4. Replay.
  const t3 = clock()
  const results: EntryResult[] = report.results
  const fail = (index: number, type: string, f: AuditFinding[]) => {
    findings.push(...f)
    results.push(f.length === 0 ? { index, type, ok: true } : { index, type, ok: false, code: f[0]!.code })
  }
  const ctx: EvidenceContext & { collateral: string[] } = {
    source: o.source,
    archives: o.collateral ?? [],
    logPublicKey: publicKey,
    collateral: [],
    collateralCache: new Map(),
    rimCache: new Map(),
    ...(o.tdxRoot ? { tdxRoot: o.tdxRoot } : {}),
    ...(o.gpuDeviceRoot ? { gpuDeviceRoot: o.gpuDeviceRoot } : {}),
    ...(o.gpuRimRoot ? { gpuRimRoot: o.gpuRimRoot } : {}),
  }
  const registry = o.registry ?? null
  report.checks.receiptSigners = registry ? 'registry' : 'log'
  // Epochs the log itself attested (epoch and evidence entries), by `${epoch}:${address}`: where and when they start and end.
  const epochs = new Map<string, EpochValidity>()
  const signerOfEpoch = new Map<bigint, Hex>()
  const signers = new Set<Hex>()
  const registrations = new Map<string, Promise<readonly AuditRegistration[] | null>>()
  const registrationsOf = (addr: Hex) => {
    let p = registrations.get(addr)
    if (!p) {
      p = registry!.registrationsOf(addr).catch(() => null)
      registrations.set(addr, p)
    }
    return p
  }
  /** A mined registration of this log's enclave id by `signer` in transaction `txHash` on the auditor's registry. */
  const registeredOnChain = async (chainId: bigint, address: Hex, enclaveId: Hex, signer: Hex | undefined, txHash: Hex): Promise<boolean> => {
    if (!registry || chainId !== registry.chainId || address.toLowerCase() !== registry.address.toLowerCase() || enclaveId.toLowerCase() !== logId) return false
    const regs = signer ? await registrationsOf(signer) : []
    return (regs ?? []).some((r) => r.transactionHash.toLowerCase() === txHash.toLowerCase() && r.enclaveId.toLowerCase() === logId)
  }
  let keyTrust: AuditReport['checks']['logKey'] = given ? 'given' : null
  let boundByEvidence = false
  // Evidence before --from is not replayed, but may be needed to vouch for the key (with the collateral of its time).
  const earlier: { index: number; entry: EvidenceEntry | RegistrationEvidenceEntry; collateral: readonly string[] }[] = []
  interface PendingReceipt {
    index: number
    entry: Extract<LogEntry, { type: 'receipt' }>
    findings: AuditFinding[]
  }
  const receipts: PendingReceipt[] = []
  const byType = report.entries.byType
  let done = 0
  for (let i = 0; i < size; i++) {
    let e: LogEntry
    try {
      e = decodeEntry(entries[i]!)
    } catch (err) {
      byType.malformed = (byType.malformed ?? 0) + 1
      if (i >= from) fail(i, 'malformed', [{ code: codeOf(err), index: i, details: {} }])
      continue
    }
    byType[e.type] = (byType[e.type] ?? 0) + 1
    // Context builds from every entry, whether replayed or not.
    if (e.type === 'collateral') ctx.collateral = [...e.fingerprints]
    if (e.type === 'epoch' || e.type === 'evidence' || e.type === 'registration-evidence') {
      const address = e.signingAddress.toLowerCase() as Hex
      const k = `${e.epoch}:${address}`
      const expiresAt = e.type === 'epoch' ? e.expiresAt : e.epochExpiresAt
      const known = epochs.get(k)
      // Declarations that disagree on the expiry: the earliest one holds (fail closed).
      if (known) known.expiresAt = Math.min(known.expiresAt, expiresAt)
      else epochs.set(k, { firstIndex: i, start: e.time, expiresAt, liveUntil: null })
      signerOfEpoch.set(e.epoch, address)
      signers.add(address)
      if (e.type === 'epoch' && e.previous) {
        // The previous epoch keeps signing until the end of its grace, which only its successor's entry states.
        const prevSigner = signerOfEpoch.get(e.previous.epoch)
        const prev = prevSigner ? epochs.get(`${e.previous.epoch}:${prevSigner}`) : undefined
        if (prev) prev.liveUntil = Math.max(prev.liveUntil ?? 0, e.previous.liveUntil)
      }
    }
    if (e.type === 'receipt') signers.add(e.signer.toLowerCase() as Hex)
    if (i < from) {
      if ((e.type === 'evidence' || e.type === 'registration-evidence') && !given) earlier.push({ index: i, entry: e, collateral: ctx.collateral })
      continue
    }
    switch (e.type) {
      case 'evidence':
      case 'registration-evidence': {
        const r = await replayEvidenceEntry(e, i, ctx)
        if (r.bindsLogKey) boundByEvidence = true
        if (e.type === 'registration-evidence' && e.txHash !== null && registry) {
          if (!(await registeredOnChain(e.chainId, e.registry, logIdOf(e.logPublicKey), e.signingAddress.toLowerCase() as Hex, e.txHash))) {
            r.findings.push({ code: 'LOG_REGISTRATION_NOT_FOUND', index: i, details: { txHash: e.txHash, epoch: e.epoch.toString(), entry: e.type } })
          }
        }
        fail(i, e.type, r.findings)
        report.checks.quotesVerified++
        break
      }
      case 'collateral':
        fail(i, e.type, await replayCollateralEntry(e, i, ctx))
        break
      case 'receipt': {
        const f: AuditFinding[] = []
        const signer = e.signer.toLowerCase() as Hex
        const t = BigInt(Math.floor(e.time / 1000))
        if (registry) {
          const regs = await registrationsOf(signer)
          if (regs === null) f.push({ code: 'LOG_REGISTRY_UNAVAILABLE', index: i, details: { signer } })
          else {
            const mine = regs.filter((r) => r.enclaveId.toLowerCase() === logId)
            if (mine.length === 0) f.push({ code: 'LOG_RECEIPT_SIGNER_UNREGISTERED', index: i, details: { signer, mode: 'registry' } })
            else if (!mine.some((r) => r.registeredAt <= t && t < r.expiresAt && (r.endedAt === null || t < r.endedAt))) {
              f.push({ code: 'LOG_RECEIPT_SIGNER_EXPIRED', index: i, details: { signer, time: t.toString(), mode: 'registry' } })
            }
          }
        }
        // Log mode is checked after the loop: an epoch's end of grace is stated by a later entry.
        // Results come after the bulk signature check below.
        receipts.push({ index: i, entry: e, findings: f })
        break
      }
      case 'registration': {
        const f: AuditFinding[] = []
        if (registry && !(await registeredOnChain(e.chainId, e.registry, e.enclaveId, signerOfEpoch.get(e.epoch), e.txHash))) {
          f.push({ code: 'LOG_REGISTRATION_NOT_FOUND', index: i, details: { txHash: e.txHash, epoch: e.epoch.toString() } })
        }
        fail(i, e.type, f)
        break
      }
      case 'void':
        results.push({ index: i, type: e.type, ok: true, code: 'LOG_VOID_ENTRY' })
        break
      default:
        fail(i, e.type, [])
    }
    done++
    if (done % 1024 === 0) o.onProgress?.(done, size - from)
  }
  if (!registry) {
    // Log mode: the signer must be an epoch the log attested before the receipt, and the receipt inside that epoch's validity.
    for (const r of receipts) {
      const signer = r.entry.signer.toLowerCase()
      const ep = epochs.get(`${r.entry.epoch}:${signer}`)
      if (!ep || ep.firstIndex > r.index) {
        r.findings.push({ code: 'LOG_RECEIPT_SIGNER_UNREGISTERED', index: r.index, details: { signer, epoch: r.entry.epoch.toString(), mode: 'log' } })
        continue
      }
      const until = Math.max(ep.expiresAt, ep.liveUntil ?? ep.expiresAt)
      if (r.entry.time < ep.start || r.entry.time >= until) {
        r.findings.push({
          code: 'LOG_RECEIPT_SIGNER_EXPIRED',
          index: r.index,
          details: { signer, epoch: r.entry.epoch.toString(), time: r.entry.time, validFrom: ep.start, validUntil: until, mode: 'log' },
        })
      }
    }
  }

  // The log key needs a trust anchor other than the log itself (module header).
  if (keyTrust === null && registry) {
    if ((report.checks.anchors ?? 0) > 0) keyTrust = 'registry'
    for (const s of signers) {
      if (keyTrust !== null) break
      if ((await registrationsOf(s))?.some((r) => r.enclaveId.toLowerCase() === logId)) keyTrust = 'registry'
    }
  }
  if (keyTrust === null && boundByEvidence) keyTrust = 'evidence'
  for (const x of earlier) {
    if (keyTrust !== null) break
    // Findings of entries before --from are not reported; only whether the entry vouches for the key counts.
    if ((await replayEvidenceEntry(x.entry, x.index, { ...ctx, collateral: x.collateral })).bindsLogKey) keyTrust = 'evidence'
  }
  report.checks.logKey = keyTrust
  if (keyTrust === null) {
    findings.push({
      code: 'LOG_KEY_UNBOUND',
      details: { logId, mode: registry ? 'registry' : 'log', reason: 'no --log-key, no registration or anchor of this log id, no verified quote binding the key' },
    })
  }
  report.timings.evidence = clock() - t3

  // Receipt signatures, in bulk: one recovery per signer, then verification against the known key.
  const t4 = clock()
  const keys = new Map<string, Uint8Array>()
  const items: ReceiptSignatureItem[] = []
  const itemOf: PendingReceipt[] = []
  for (const r of receipts) {
    const digest = Buffer.from(r.entry.receiptHash.slice(2), 'hex')
    const signature = Buffer.from(r.entry.signature.slice(2), 'hex')
    const signer = r.entry.signer.toLowerCase()
    const key = keys.get(signer)
    if (key === undefined) {
      // No key for this signer yet: ecrecover this receipt; if it names its signer, that key verifies the rest.
      const rec = recoverSigner(digest, signature)
      if (rec !== null && rec.address === signer) {
        keys.set(signer, rec.publicKey)
        report.checks.receiptsVerified++
      } else {
        r.findings.push({ code: 'LOG_RECEIPT_SIGNATURE_INVALID', index: r.index, details: { signer } })
      }
      continue
    }
    items.push({ digest, signature, publicKey: key })
    itemOf.push(r)
  }
  const verdicts = await (o.verifyReceiptSignatures ?? verifyReceiptSignaturesInThread)(items)
  // One verdict per item or the audit stops: a short answer would leave receipts unjudged (and so passing), a long one names receipts never asked about.
  if (!Array.isArray(verdicts) || verdicts.length !== items.length) {
    throw new LogError('LOG_OPTIONS_INVALID', 'the receipt signature verifier must return one verdict per item', {
      details: { items: items.length, verdicts: Array.isArray(verdicts) ? verdicts.length : null },
    })
  }
  verdicts.forEach((ok, k) => {
    if (ok) report.checks.receiptsVerified++
    else itemOf[k]!.findings.push({ code: 'LOG_RECEIPT_SIGNATURE_INVALID', index: itemOf[k]!.index, details: { signer: itemOf[k]!.entry.signer } })
  })
  for (const r of receipts) {
    findings.push(...r.findings)
    results.push(r.findings.length === 0 ? { index: r.index, type: 'receipt', ok: true } : { index: r.index, type: 'receipt', ok: false, code: r.findings[0]!.code })
  }
  results.sort((a, b) => a.index - b.index)
  report.entries.replayed = results.length
  o.onProgress?.(size - from, size - from)
  report.timings.receipts = clock() - t4
  report.timings.total = clock() - t0
  findings.sort((a, b) => (a.index ?? -1) - (b.index ?? -1))
  report.ok = findings.length === 0

  // The new state: this checkpoint remembered; leaves of the largest tree that verified.
  const rootOk = !findings.some((f) => f.code === 'LOG_ROOT_MISMATCH')
  const checkpoints: SeenCheckpoint[] = [...seen]
  if (rootOk && !seen.some((s) => s.size === size && s.root === hex(checkpoint.root))) {
    checkpoints.push({ size, root: hex(checkpoint.root), note, seenAt: now().toISOString() })
    checkpoints.sort((a, b) => a.size - b.size)
  }
  const keepLeaves = rootOk && size >= (prior?.leaves.length ?? 0) / HASH_SIZE ? leaves : (prior?.leaves ?? new Uint8Array(0))
  const next: AuditState = {
    version: 1,
    logs: { ...state.logs, [logId]: { origin: report.origin, verifierKey: report.verifierKey, checkpoints, leaves: keepLeaves } },
  }
  return { report, state: next }
}

