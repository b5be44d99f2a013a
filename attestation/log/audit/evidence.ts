/**
 * Replaying one evidence entry, of either binding mode (nonce-mode
 * `evidence`, `registration-evidence`): the blobs it names (hash-checked),
 * the quote verified with the collateral in use at the entry's time and at
 * that instant, the REPORTDATA binding recomputed from the entry's fields
 * in the entry's mode (attestation/binding.ts), the bound log key compared
 * with the key signing the checkpoints, the CCEL event log (and runtime
 * events) replayed to the quote's RTMRs, the GPU evidence verified for the
 * entry's freshness value (the nonce, or the block hash). Every step that
 * cannot run is a finding (fail closed).
 *
 * Event logs are required: an entry without the CCEL is LOG_EVENTLOG_MISSING,
 * even with runtime events (those cover RTMR2/3 at most). Without a replay the
 * RTMRs of the quote vouch for nothing an auditor can read, and this
 * project has no policy under which that is acceptable; a platform without
 * CCEL fails the audit rather than passing it unreplayed.
 *
 * Also the collateral entries: each fingerprint must name a blob the log
 * serves and that hashes to it (the archive the auditor relies on later).
 */
import { createHash } from 'node:crypto'
import { computeReportData, hashGpuEvidence, NO_GPU_EVIDENCE_HASH } from '../../binding.ts'
import { BaseError } from '../../errors.ts'
import { parseCcelTable } from '../../eventlog/ccel.ts'
import { parseEventLog } from '../../eventlog/event-log.ts'
import { parseRuntimeEvents, verifyEvidenceEvents, verifyRuntimeEvents } from '../../eventlog/runtime-events.ts'
import { gpuEvidenceFromJson } from '../../nvidia/evidence.ts'
import { verifyGpuEvidence } from '../../nvidia/verify/verify-gpu-evidence.ts'
import { verifyRim, type VerifiedRim } from '../../nvidia/rim/verify.ts'
import { NVIDIA_RIM_ROOT_CA } from '../../roots/nvidia.ts'
import { parseQuote } from '../../tdx/abi/quote.ts'
import { verifyQuote } from '../../tdx/verify/verify-quote.ts'
import type { QuoteCollateralV3 } from '../../pcs/types.ts'
import type { TrustedRoot } from '../../roots/trust-root.ts'
import type { CollateralEntry, EvidenceEntry, RegistrationEvidenceEntry } from '../entry.ts'
import type { LogSource } from '../reader.ts'
import type { AuditFinding, CollateralArchive } from './types.ts'

export interface EvidenceContext {
  readonly source: LogSource
  readonly archives: readonly CollateralArchive[]
  /** The log key signing the checkpoints. */
  readonly logPublicKey: Uint8Array
  /** Fingerprints of the collateral in use (the latest collateral entry before this one). */
  readonly collateral: readonly string[]
  readonly tdxRoot?: TrustedRoot
  readonly gpuDeviceRoot?: TrustedRoot
  readonly gpuRimRoot?: TrustedRoot
  /** Parsed collateral by fingerprint, shared across entries. */
  readonly collateralCache: Map<string, QuoteCollateralV3>
  /**
   * RIMs verified for an earlier entry, by XML text: a RIM (XML signature,
   * C14N, chain) is verified once and reused for later entries whose time
   * is inside its signer's validity window; otherwise verified again.
   */
  readonly rimCache: Map<string, VerifiedRim>
}

/** The RIM store for one entry: cached verified RIMs where valid at `at`, newly verified ones, raw text for any that fail (verifyGpuEvidence then reports them). */
function rimStore(ctx: EvidenceContext, texts: readonly string[], at: Date): (VerifiedRim | string)[] {
  return texts.map((text) => {
    const cached = ctx.rimCache.get(text)
    if (cached && cached.signer.notBefore <= at && at <= cached.signer.notAfter) return cached
    try {
      const v = verifyRim(text, { now: at, root: ctx.gpuRimRoot ?? NVIDIA_RIM_ROOT_CA })
      ctx.rimCache.set(text, v)
      return v
    } catch {
      return text
    }
  })
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')
const codeOf = (e: unknown) => (e instanceof BaseError ? e.code : 'INTERNAL')

/** A blob from the log, checked against its name; null (and a finding) when missing or different. */
export async function blob(source: LogSource, sha: string, what: string, index: number, findings: AuditFinding[]): Promise<Uint8Array | null> {
  let b: Uint8Array | null
  try {
    b = await source.read(`blob/${sha}`)
  } catch (e) {
    findings.push({ code: 'LOG_FETCH_FAILED', index, details: { blob: sha, what, cause: codeOf(e) } })
    return null
  }
  if (b === null) {
    findings.push({ code: 'LOG_FETCH_FAILED', index, details: { blob: sha, what, reason: 'missing' } })
    return null
  }
  if (sha256(b) !== sha) {
    findings.push({ code: 'LOG_BLOB_MISMATCH', index, details: { blob: sha, what } })
    return null
  }
  return b
}

/** The collateral of a fingerprint: the log's blob, else the archives; hash-checked; null when nowhere. */
export async function collateralOf(ctx: EvidenceContext, fingerprint: string, quote: Uint8Array): Promise<QuoteCollateralV3 | null> {
  const cached = ctx.collateralCache.get(fingerprint)
  if (cached) return cached
  const candidates: (() => Promise<Uint8Array | null>)[] = [() => ctx.source.read(`blob/${fingerprint}`), ...ctx.archives.map((a) => () => a.get(fingerprint, { quote }))]
  for (const get of candidates) {
    let b: Uint8Array | null = null
    try {
      b = await get()
    } catch {
      b = null
    }
    if (b !== null && sha256(b) === fingerprint) {
      try {
        const c = JSON.parse(Buffer.from(b).toString('utf8')) as QuoteCollateralV3
        ctx.collateralCache.set(fingerprint, c)
        return c
      } catch {
        // Not JSON: try the next archive.
      }
    }
  }
  return null
}

/** The outcome of one evidence entry. */
export interface EvidenceReplay {
  readonly findings: AuditFinding[]
  /**
   * The quote verified (genuine, with collateral of its time, under the
   * auditor's root), its REPORTDATA is the binding of the entry's fields,
   * and the key it binds is the key signing the checkpoints: this entry
   * vouches for the log key (audit.ts, LOG_KEY_UNBOUND).
   */
  readonly bindsLogKey: boolean
}

/** Replay one evidence entry, either mode (module header). */
export async function replayEvidenceEntry(e: EvidenceEntry | RegistrationEvidenceEntry, index: number, ctx: EvidenceContext): Promise<EvidenceReplay> {
  const findings: AuditFinding[] = []
  const done = (bindsLogKey = false): EvidenceReplay => ({ findings, bindsLogKey })
  const at = new Date(e.time)
  const keyMatches = e.logPublicKey !== null && Buffer.compare(e.logPublicKey, ctx.logPublicKey) === 0
  if (!keyMatches) {
    findings.push({ code: 'LOG_KEY_MISMATCH', index, details: { bound: e.logPublicKey ? Buffer.from(e.logPublicKey).toString('base64') : null } })
  }
  if (e.eventLog === null) {
    findings.push({ code: 'LOG_EVENTLOG_MISSING', index, details: { runtimeEvents: e.runtimeEventsSha256 !== null } })
  }
  const quoteBytes = await blob(ctx.source, e.quoteSha256, 'quote', index, findings)
  const gpuBytes = e.gpuSha256 === null ? null : await blob(ctx.source, e.gpuSha256, 'gpu', index, findings)
  const table = e.eventLog ? await blob(ctx.source, e.eventLog.tableSha256, 'ccel-table', index, findings) : null
  const data = e.eventLog ? await blob(ctx.source, e.eventLog.dataSha256, 'ccel-data', index, findings) : null
  const runtimeBytes = e.runtimeEventsSha256 === null ? null : await blob(ctx.source, e.runtimeEventsSha256, 'runtime-events', index, findings)
  if (quoteBytes === null || (e.gpuSha256 !== null && gpuBytes === null) || (e.eventLog && (table === null || data === null)) || (e.runtimeEventsSha256 !== null && runtimeBytes === null)) {
    return done()
  }
  // The freshness value of the entry's mode: the GPU evidence answers it too.
  const freshness = new Uint8Array(Buffer.from(e.type === 'evidence' ? e.nonce : e.blockHash.slice(2), 'hex'))

  // Quote: genuine at the entry's time with the collateral of that time.
  let quote
  try {
    quote = parseQuote(quoteBytes)
  } catch (err) {
    findings.push({ code: 'LOG_EVIDENCE_INVALID', index, details: { step: 'quote', code: codeOf(err) } })
    return done()
  }
  if (quote.body.kind === 'sgx') {
    findings.push({ code: 'LOG_EVIDENCE_INVALID', index, details: { step: 'quote', code: 'ATTESTATION_QUOTE_UNSUPPORTED_TEE' } })
    return done()
  }
  const report = quote.body.report
  let quoteVerified = false
  if (ctx.collateral.length === 0) {
    findings.push({ code: 'LOG_COLLATERAL_UNAVAILABLE', index, details: { reason: 'no collateral entry precedes this evidence' } })
  } else {
    const failures: string[] = []
    let verified = false
    for (const fp of ctx.collateral) {
      const c = await collateralOf(ctx, fp, quoteBytes)
      if (c === null) {
        failures.push('LOG_COLLATERAL_UNAVAILABLE')
        continue
      }
      try {
        verifyQuote(quote, c, { now: at, ...(ctx.tdxRoot ? { trustedRoot: ctx.tdxRoot } : {}) })
        verified = true
        quoteVerified = true
        break
      } catch (err) {
        failures.push(codeOf(err))
      }
    }
    if (!verified) {
      const unavailable = failures.every((f) => f === 'LOG_COLLATERAL_UNAVAILABLE')
      findings.push(
        unavailable
          ? { code: 'LOG_COLLATERAL_UNAVAILABLE', index, details: { fingerprints: ctx.collateral } }
          : { code: 'LOG_EVIDENCE_INVALID', index, details: { step: 'quote', code: failures.find((f) => f !== 'LOG_COLLATERAL_UNAVAILABLE'), codes: failures } },
      )
    }
  }

  // GPU evidence for the same nonce, and the binding over everything.
  let gpuHash = NO_GPU_EVIDENCE_HASH
  if (gpuBytes !== null) {
    try {
      const g = gpuEvidenceFromJson(JSON.parse(Buffer.from(gpuBytes).toString('utf8')))
      gpuHash = hashGpuEvidence(g.gpus)
      verifyGpuEvidence(g, {
        now: at,
        expectedNonce: freshness,
        rims: rimStore(ctx, g.rims, at),
        ...(ctx.gpuDeviceRoot ? { deviceRoot: ctx.gpuDeviceRoot } : {}),
        ...(ctx.gpuRimRoot ? { rimRoot: ctx.gpuRimRoot } : {}),
      })
    } catch (err) {
      findings.push({ code: 'LOG_EVIDENCE_INVALID', index, details: { step: 'gpu', code: codeOf(err) } })
    }
  }
  let bindingMatches = false
  try {
    const common = { keyConfig: e.keyConfig, signingAddress: e.signingAddress, gpuEvidenceHash: gpuHash, logPublicKey: e.logPublicKey, epoch: e.epoch }
    const expected = computeReportData(
      e.type === 'evidence'
        ? { mode: 'nonce', nonce: freshness, ...common }
        : { mode: 'registration', blockHash: freshness, chainId: e.chainId, registry: e.registry, model: e.model, url: e.url, ...common },
    )
    if (Buffer.compare(expected, report.reportData) !== 0) {
      findings.push({ code: 'LOG_EVIDENCE_INVALID', index, details: { step: 'binding', mode: e.type === 'evidence' ? 'nonce' : 'registration', code: 'ATTESTATION_BINDING_MISMATCH' } })
    } else {
      bindingMatches = true
    }
  } catch (err) {
    findings.push({ code: 'LOG_EVIDENCE_INVALID', index, details: { step: 'binding', code: codeOf(err) } })
  }

  // Event logs to RTMRs, bound as clients bind them (verifyEvidenceEvents, as bin/commands/verify-quote.ts): with
  // the CCEL every register is compared, RTMR0/1 from the CCEL, RTMR2/3 with the runtime events (on either, as
  // dstack extends RTMR2 too) replayed onto the CCEL's value. One replay: comparing RTMR2 by the CCEL alone
  // reported a runtime event there as a mismatch that clients accept.
  try {
    let ccel = null
    if (table !== null && data !== null) {
      parseCcelTable(table)
      ccel = parseEventLog(data).events
    }
    const runtime = runtimeBytes === null ? null : parseRuntimeEvents(JSON.parse(Buffer.from(runtimeBytes).toString('utf8')))
    if (ccel !== null) {
      verifyEvidenceEvents(ccel, runtime ?? [], report.rtmrs, [0, 1, 2, 3])
    } else if (runtime !== null) {
      // No CCEL: already LOG_EVENTLOG_MISSING (never a pass). RTMR3 is still compared as before, from zeros, so a
      // runtime log the quote does not hold is reported too.
      verifyRuntimeEvents(runtime, report.rtmrs)
    }
  } catch (err) {
    findings.push({ code: 'LOG_EVENTLOG_MISMATCH', index, details: { code: codeOf(err) } })
  }
  // The log key is vouched for by the quote alone (genuine, binding it); event logs and GPU speak to other things.
  return done(quoteVerified && bindingMatches && keyMatches)
}

/**
 * A collateral entry: every fingerprint names a blob the log serves, with
 * that SHA-256 (LOG_FETCH_FAILED when missing, LOG_BLOB_MISMATCH when
 * different), that parses as collateral JSON (LOG_COLLATERAL_UNAVAILABLE
 * otherwise). Parsed bundles go to the cache the evidence entries use.
 */
export async function replayCollateralEntry(e: CollateralEntry, index: number, ctx: EvidenceContext): Promise<AuditFinding[]> {
  const findings: AuditFinding[] = []
  for (const fp of e.fingerprints) {
    const b = await blob(ctx.source, fp, 'collateral', index, findings)
    if (b === null) continue
    try {
      const parsed = JSON.parse(Buffer.from(b).toString('utf8')) as unknown
      if (typeof parsed !== 'object' || parsed === null) throw new TypeError('not an object')
      if (!ctx.collateralCache.has(fp)) ctx.collateralCache.set(fp, parsed as QuoteCollateralV3)
    } catch {
      findings.push({ code: 'LOG_COLLATERAL_UNAVAILABLE', index, details: { blob: fp, reason: 'the blob is not collateral JSON' } })
    }
  }
  return findings
}
