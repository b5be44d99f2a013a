/**
 * `cgw verify-quote <quote> [--collateral FILE | --pcs URL] [--policy FILE]
 *  [--dev-root FILE] [--event-log FILE] [--runtime-events FILE] [--at ISO-TIME] [--json]`
 *
 * Parse, verify, validate — in that order, reporting how far the quote got.
 * Without --policy the baseline policy applies (Intel root, UpToDate, no
 * advisories, debug off) and the report says plainly that no workload
 * measurement was pinned. The exit code says which stage failed.
 *
 * `--policy` takes a quote policy (attestation/policy) or a client policy
 * (gateway/client/policy.ts, what `cgw measure --policy-out` writes): of a
 * client policy its `quote` section applies, and its `devRoots.tdx`
 * (relative to the policy file) stands in for --dev-root.
 *
 * `--runtime-events FILE` (a JSON list of runtime events, or an evidence
 * bundle whose `runtimeEvents` are taken): what userspace extended into
 * RTMR2/3 after boot. They are replayed onto the CCEL's value (or zeros
 * without --event-log) and must reproduce the quote's registers; the CCEL
 * then has to reproduce only the registers nothing extended at run time
 * (attestation/eventlog/runtime-events.ts `verifyEvidenceEvents`). Both
 * logs' events feed the policy's requiredEvents.
 */
import { dirname, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { ConfigError } from '../../attestation/errors.ts'
import { parseQuote, type Quote, type TdReport } from '../../attestation/tdx/abi/quote.ts'
import { collateralRequestForQuote } from '../../attestation/tdx/abi/collateral-request.ts'
import { verifyQuote, type VerifiedQuote } from '../../attestation/tdx/verify/verify-quote.ts'
import { validateQuote } from '../../attestation/tdx/validate/validate-quote.ts'
import { BASELINE_POLICY_DOCUMENT, MEASUREMENT_FIELDS, parsePolicy } from '../../attestation/policy/policy.ts'
import { INTEL_SGX_ROOT_CA } from '../../attestation/roots/trust-root.ts'
import { createPcsClient } from '../../attestation/pcs/client.ts'
import type { QuoteCollateralV3 } from '../../attestation/pcs/types.ts'
import { parseEventLog, type CcEvent } from '../../attestation/eventlog/index.ts'
import { parseRuntimeEvents, verifyEvidenceEvents, type BoundEvent, type RuntimeEvent } from '../../attestation/eventlog/runtime-events.ts'
import { EXIT } from '../exit-codes.ts'
import { COMMON_VERDICTS, devRootFor, runReported, Table, type CommandReport } from '../report.ts'
import { instantOption, readInput, readJson } from '../io.ts'
import type { Io } from '../cgw.ts'
import { hex } from '../../attestation/bytes/hex.ts'

type Stage = 'arguments' | 'parse' | 'collateral' | 'verify' | 'event-log' | 'policy' | 'accepted'

interface Report extends CommandReport {
  stage: Stage
  quote?: Record<string, unknown>
  verification?: ReturnType<typeof describeVerification>
  eventLog?: { events: number; runtimeEvents: number; rtmrsReplayed: readonly number[] }
  policy: { source: string; pinned: string[]; mismatches?: readonly unknown[] }
  checks: string[]
}

/** Read a quote file: raw bytes, or hex text (optionally 0x-prefixed, whitespace ignored). */
export function decodeQuoteFile(bytes: Uint8Array): Uint8Array {
  const text = Buffer.from(bytes).toString('latin1').trim().replace(/^0x/i, '').replace(/\s+/g, '')
  if (text.length > 0 && text.length % 2 === 0 && /^[0-9a-fA-F]+$/.test(text)) return new Uint8Array(Buffer.from(text, 'hex'))
  return bytes
}

function describeQuote(q: Quote): Record<string, unknown> {
  const body = q.body.kind === 'sgx' ? 'SGX enclave report' : q.body.kind === 'td10' ? 'TD report 1.0' : 'TD report 1.5'
  return { version: q.header.version, tee: q.body.kind === 'sgx' ? 'sgx' : 'tdx', body, bytes: q.raw.length, trailingBytes: q.trailingBytes }
}

function measurementsOf(q: Quote): Record<string, string> {
  if (q.body.kind === 'sgx') {
    const r = q.body.report
    return { mrEnclave: hex(r.mrEnclave), mrSigner: hex(r.mrSigner), reportData: hex(r.reportData) }
  }
  const r = q.body.report as TdReport
  return {
    mrTd: hex(r.mrTd),
    rtmr0: hex(r.rtmrs[0]),
    rtmr1: hex(r.rtmrs[1]),
    rtmr2: hex(r.rtmrs[2]),
    rtmr3: hex(r.rtmrs[3]),
    mrConfigId: hex(r.mrConfigId),
    mrOwner: hex(r.mrOwner),
    mrOwnerConfig: hex(r.mrOwnerConfig),
    mrSeam: hex(r.mrSeam),
    tdAttributes: hex(r.tdAttributes),
    xfam: hex(r.xfam),
    reportData: hex(r.reportData),
  }
}

function describeVerification(v: VerifiedQuote) {
  return {
    tcbStatus: v.tcbStatus,
    advisoryIds: v.advisoryIds,
    platform: v.platform,
    tdxModule: v.tdxModule,
    qe: v.qe,
    fmspc: v.fmspc,
    pceId: v.pceId,
    pckSerial: v.pck.serial,
    root: v.root,
    collateral: {
      issuedAt: v.collateral.issuedAt.toISOString(),
      expiresAt: v.collateral.expiresAt.toISOString(),
      tcbEvaluationDataNumber: v.collateral.tcbEvaluationDataNumber,
    },
    verifiedAt: v.verifiedAt.toISOString(),
  }
}

async function loadCollateral(quote: Quote, values: { collateral?: string; pcs?: string; 'root-ca-crl-url'?: string }): Promise<QuoteCollateralV3> {
  if (values.collateral) return (await readJson(values.collateral, 'collateral')) as QuoteCollateralV3
  const client = createPcsClient({
    baseUrl: values.pcs!,
    ...(values['root-ca-crl-url'] ? { rootCaCrlUrl: values['root-ca-crl-url'] } : {}),
  })
  return (await client.getCollateral(collateralRequestForQuote(quote))).collateral
}

/**
 * A policy file: a quote policy as is, or the `quote` section of a client
 * policy with its dev root file (resolved against the policy's folder).
 */
async function loadPolicy(path: string): Promise<{ document: unknown; devRoot?: string }> {
  const doc = (await readJson(path, 'policy')) as Record<string, unknown> | null
  if (typeof doc === 'object' && doc !== null && 'quote' in doc && !('tdx' in doc)) {
    const tdx = (doc.devRoots as { tdx?: unknown } | undefined)?.tdx
    return { document: doc.quote, ...(typeof tdx === 'string' ? { devRoot: resolve(dirname(path), tdx) } : {}) }
  }
  return { document: doc }
}

/** `--runtime-events`: a list of records, or an evidence bundle carrying them. */
async function loadRuntimeEvents(path: string): Promise<RuntimeEvent[]> {
  const doc = (await readJson(path, 'runtime events')) as unknown
  const list = typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? (doc as { runtimeEvents?: unknown }).runtimeEvents ?? [] : doc
  return parseRuntimeEvents(list)
}

/** Run the command; returns the exit code. */
export async function runVerifyQuote(args: string[], io: Io): Promise<number> {
  const report: Report = { ok: false, exitCode: EXIT.USAGE, stage: 'arguments', policy: { source: 'baseline', pinned: [] }, checks: [] }
  return runReported(report, args, io, async () => {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        collateral: { type: 'string' },
        pcs: { type: 'string' },
        'root-ca-crl-url': { type: 'string' },
        policy: { type: 'string' },
        'dev-root': { type: 'string' },
        'event-log': { type: 'string' },
        'runtime-events': { type: 'string' },
        at: { type: 'string' },
        json: { type: 'boolean' },
      },
    })
    if (positionals.length !== 1) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'expected exactly one quote file')
    if (!values.collateral === !values.pcs) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'give one of --collateral FILE or --pcs URL')
    const now = instantOption(values.at)
    const loaded = values.policy ? await loadPolicy(values.policy) : { document: BASELINE_POLICY_DOCUMENT }
    const policy = parsePolicy(loaded.document)
    report.policy.source = values.policy ?? 'baseline (no workload measurement pinned; pass --policy FILE to pin them)'
    const root = (await devRootFor(policy.trustRoot, values['dev-root'] ?? loaded.devRoot)) ?? INTEL_SGX_ROOT_CA
    const runtime = values['runtime-events'] ? await loadRuntimeEvents(values['runtime-events']) : []

    report.stage = 'parse'
    const quote = parseQuote(decodeQuoteFile(await readInput(positionals[0]!, 'quote')))
    report.quote = { ...describeQuote(quote), measurements: measurementsOf(quote) }
    report.checks.push('quote structure')

    report.stage = 'collateral'
    const collateral = await loadCollateral(quote, values)

    report.stage = 'verify'
    const verified = verifyQuote(quote, collateral, { now, trustedRoot: root })
    report.verification = describeVerification(verified)
    report.checks.push('collateral chains, CRLs and signatures', 'PCK chain to the pinned root', 'QE report signature and binding', 'quote signature', 'TCB level, TDX module and QE identity')

    let events: readonly BoundEvent[] | undefined
    if (values['event-log'] || values['runtime-events']) {
      report.stage = 'event-log'
      if (quote.body.kind === 'sgx') throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'event logs belong to a TD quote, not an SGX quote')
      let ccel: readonly CcEvent[] | null = null
      if (values['event-log']) ccel = parseEventLog(await readInput(values['event-log'], 'event log')).events
      // With a CCEL every register is compared (as before); with runtime events alone, the registers they extend.
      const bound = verifyEvidenceEvents(ccel, runtime, (quote.body.report as TdReport).rtmrs, ccel !== null ? [0, 1, 2, 3] : [])
      events = bound?.events
      report.eventLog = { events: ccel?.length ?? 0, runtimeEvents: runtime.length, rtmrsReplayed: bound?.rtmrs ?? [] }
      report.checks.push(`event logs replay to ${(bound?.rtmrs ?? []).map((r) => `RTMR${r}`).join(', ')}`)
    }

    report.stage = 'policy'
    const accepted = validateQuote(verified, policy, events ? { events } : {})
    report.policy.pinned = [...accepted.pinned]
    report.checks.push('policy')
  }, render)
}

const VERDICT: Record<Stage, string> = {
  ...COMMON_VERDICTS,
  parse: 'REJECTED: malformed quote',
  collateral: 'NOT VERIFIED: collateral unavailable',
  'event-log': 'REJECTED: event log does not match the quote',
}

function render(r: Report): string {
  const t = new Table()
  const row = t.row.bind(t)
  row('Result', VERDICT[r.stage])
  if (r.quote) row('Quote', `${String(r.quote.tee).toUpperCase()} v${r.quote.version} (${r.quote.body}), ${r.quote.bytes} bytes, ${r.quote.trailingBytes} trailing`)
  const v = r.verification
  if (v) {
    const parts = [`platform ${v.platform.status}`]
    if (v.tdxModule) parts.push(`TDX module ${v.tdxModule.id} ${v.tdxModule.status}`)
    parts.push(`QE ${v.qe.status}`)
    row('TCB status', `${v.tcbStatus} (${parts.join(', ')})`)
    row('Advisories', v.advisoryIds.length ? v.advisoryIds.join(', ') : 'none')
    row('FMSPC / PCE-ID', `${v.fmspc} / ${v.pceId}`)
    row('Trust root', `${v.root.kind} ${v.root.fingerprint}`)
    row('Collateral', `issued ${v.collateral.issuedAt}, valid until ${v.collateral.expiresAt}, TCB evaluation #${v.collateral.tcbEvaluationDataNumber}`)
    row('Verified at', v.verifiedAt)
  }
  const m = r.quote?.measurements as Record<string, string> | undefined
  if (m) {
    const pinned = new Set(r.policy.pinned)
    for (const [k, val] of Object.entries(m)) {
      const tag = (MEASUREMENT_FIELDS as readonly string[]).includes(k) ? (pinned.has(k) ? '[pinned]' : r.ok ? '[any]' : '') : ''
      row(`  ${k}`, `${val} ${tag}`.trimEnd())
    }
  }
  if (r.eventLog) row('Event log', `${r.eventLog.events} CCEL and ${r.eventLog.runtimeEvents} runtime events; replayed: ${r.eventLog.rtmrsReplayed.map((i) => `RTMR${i}`).join(', ')}`)
  row('Checks passed', r.checks.length ? r.checks.join('; ') : 'none')
  return t.close(r)
}
