/**
 * `cgw audit <log URL or directory> [--registry ADDRESS --rpc URL] [--from N] [--json]
 *  [--state FILE] [--log-key KEY] [--dev-root FILE] [--dev-gpu-root FILE]
 *  [--collateral DIR] [--collateral-url URL] [--pcs URL] [--threads N]`
 *
 * Replays a gateway's attestation log (attestation/log/audit): checkpoint
 * signature, the whole tree recomputed, consistency with every checkpoint
 * this auditor saw before (the state file, default
 * `$XDG_STATE_HOME/cgw/audit-state.json`) and with the on-chain anchors,
 * then every entry: quotes with the collateral of their time, event logs to
 * RTMRs, GPU evidence, receipt signatures and their signers' registration
 * at the entry's time. Per-entry results and a summary; `--json` for
 * machines; a progress bar on a terminal.
 *
 * Exit codes: 0 clean; 3 any finding (a rewritten entry, a fork, an anchor
 * mismatch, an unregistered signer, evidence that does not verify, a log
 * key nothing vouches for, ...); 5 the log could not be fetched; 1 bad
 * arguments; 2 malformed log files; 7 the state file exists but cannot be
 * read or is not a state document.
 *
 * The state is what makes fork and rewrite detection work across runs, so
 * only a missing file (ENOENT) means "first audit". Any other failure to
 * read it stops the audit with its own exit code: carrying on with an
 * empty state would silently turn those checks off, which is what an
 * attacker who can break the file would want. A missing leaves file is
 * tolerated (rewrites are still detected from the roots, only not located).
 *
 * Without --log-key, the log key is the log's own `key` file and must be
 * vouched for by the registry or a verified quote in the log, else the
 * audit reports LOG_KEY_UNBOUND (exit 3).
 */
import { mkdir, readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import { ConfigError } from '../../attestation/errors.ts'
import { auditLog } from '../../attestation/log/audit/audit.ts'
import { createDirectoryCollateralArchive, createHttpCollateralArchive, createPcsCollateralArchive } from '../../attestation/log/audit/archives.ts'
import { createPcsClient } from '../../attestation/pcs/client.ts'
import { createReceiptSignaturePool } from '../../attestation/log/audit/receipt-signatures.ts'
import { auditStateFromDocument, EMPTY_AUDIT_STATE, serializeAuditState, type AuditState } from '../../attestation/log/audit/state.ts'
import type { AuditRegistry, AuditReport, CollateralArchive } from '../../attestation/log/audit/types.ts'
import { isLogError, LOG_ERROR_CODES, LogError } from '../../attestation/log/errors.ts'
import { parseVerifierKey } from '../../attestation/log/note.ts'
import { createDirectoryLogSource, createHttpLogSource, type FetchLike, type LogSource } from '../../attestation/log/reader.ts'
import { trustedRootFromDer } from '../../attestation/roots/trust-root.ts'
import { writeFileAtomic } from '../../enclave/log/storage.ts'
import { EXIT, failureOf } from '../exit-codes.ts'
import { readCertificate } from '../io.ts'
import { Table } from '../report.ts'
import type { Io } from '../cgw.ts'

const EXIT_BY_KIND = { parse: EXIT.PARSE, proof: EXIT.VERIFICATION, finding: EXIT.VERIFICATION, storage: EXIT.VERIFICATION, fetch: EXIT.COLLATERAL, config: EXIT.USAGE } as const
/** The state file is unreadable or invalid (module header); not one of bin/exit-codes.ts's families, which are about evidence. */
export const EXIT_AUDIT_STATE = 7
const STATE_CODES: ReadonlySet<string> = new Set(['LOG_STATE_INVALID', 'LOG_STATE_UNREADABLE'])

export interface AuditCommandDeps {
  /** Default: undici's fetch. */
  readonly fetch?: FetchLike
  /** Default: a viem client for --rpc and the registry at --registry (contracts/client/registry.ts). */
  readonly registry?: (rpc: string, address: `0x${string}`, allowDevelopment: boolean) => Promise<AuditRegistry>
  readonly now?: () => Date
  /** Whether to draw a progress bar on stderr; default: stderr is a terminal and --json is absent. */
  readonly progress?: boolean
}

function defaultStatePath(): string {
  const base = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state')
  return join(base, 'cgw', 'audit-state.json')
}

const errnoOf = (e: unknown) => (e as NodeJS.ErrnoException | null)?.code

/** The state at `path`: empty only when the file does not exist (module header). */
export async function loadState(path: string): Promise<AuditState> {
  let json: string
  try {
    json = await readFile(path, 'utf8')
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return EMPTY_AUDIT_STATE
    throw new LogError('LOG_STATE_UNREADABLE', 'the state file cannot be read', { cause: e, details: { path, errno: errnoOf(e) } })
  }
  const leaves = new Map<string, Uint8Array>()
  let doc: { logs?: Record<string, unknown> }
  try {
    doc = JSON.parse(json) as typeof doc
  } catch (cause) {
    throw new LogError('LOG_STATE_INVALID', 'the state file is not JSON', { cause, details: { path } })
  }
  if (typeof doc !== 'object' || doc === null) throw new LogError('LOG_STATE_INVALID', 'the state file is not a state document', { details: { path } })
  for (const id of Object.keys(doc.logs ?? {})) {
    // Only the id's own hex names a file: a state document must not steer reads elsewhere.
    if (!/^0x[0-9a-f]{64}$/.test(id)) continue
    const leavesPath = `${path}.${id.slice(2)}.leaves`
    try {
      leaves.set(id, new Uint8Array(await readFile(leavesPath)))
    } catch (e) {
      // Missing leaves: rewrites are still detected (roots), just not located. Anything else is a broken state.
      if (errnoOf(e) !== 'ENOENT') throw new LogError('LOG_STATE_UNREADABLE', 'a state leaves file cannot be read', { cause: e, details: { path: leavesPath, errno: errnoOf(e) } })
    }
  }
  // The document parsed above, not the text again.
  return auditStateFromDocument(doc, (id) => leaves.get(id) ?? null)
}

async function saveState(path: string, s: AuditState): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  const { json, leaves } = serializeAuditState(s)
  for (const [id, bytes] of Object.entries(leaves)) await writeFileAtomic(`${path}.${id.slice(2)}.leaves`, bytes, true)
  await writeFileAtomic(path, json, true)
}

/** The viem registry client; a development registry is accepted only together with --dev-root (its root is then pinned by the auditor). */
async function viemRegistry(rpc: string, address: `0x${string}`, allowDevelopment: boolean): Promise<AuditRegistry> {
  const [{ createPublicClient, http }, { createRegistryClient }] = await Promise.all([import('viem'), import('../../contracts/client/registry.ts')])
  return createRegistryClient({ publicClient: createPublicClient({ transport: http(rpc) }) as never, address, allowDevelopment })
}

function sourceFor(location: string, fetch: FetchLike): LogSource {
  return /^https?:\/\//.test(location) ? createHttpLogSource(location, fetch) : createDirectoryLogSource(location)
}

function parseLogKey(v: string): Uint8Array {
  if (v.includes('+')) return parseVerifierKey(v).publicKey
  const b = Buffer.from(v, 'base64')
  if (b.length !== 32) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', '--log-key is a signed-note verifier key or 32 bytes of base64')
  return new Uint8Array(b)
}

function progressBar(io: Io): (done: number, total: number) => void {
  return (done, total) => {
    const width = 30
    const filled = total === 0 ? width : Math.round((done / total) * width)
    io.err(`\raudit [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}${done >= total ? '\n' : ''}`)
  }
}

/** Run the command; returns the exit code. */
export async function runAudit(args: string[], io: Io, deps: AuditCommandDeps = {}): Promise<number> {
  const json = args.includes('--json')
  let report: AuditReport | null = null
  let pool: { close(): Promise<void> } | null = null
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        registry: { type: 'string' },
        rpc: { type: 'string' },
        from: { type: 'string' },
        json: { type: 'boolean' },
        state: { type: 'string' },
        'log-key': { type: 'string' },
        'dev-root': { type: 'string' },
        'dev-gpu-root': { type: 'string' },
        collateral: { type: 'string', multiple: true },
        'collateral-url': { type: 'string', multiple: true },
        pcs: { type: 'string' },
        threads: { type: 'string' },
      },
    })
    if (positionals.length !== 1) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'expected exactly one log URL or directory')
    if (!values.registry !== !values.rpc) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', '--registry and --rpc go together')
    if (values.registry && !/^0x[0-9a-fA-F]{40}$/.test(values.registry)) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', '--registry is an address')
    const from = values.from === undefined ? 0 : Number(values.from)
    if (!Number.isSafeInteger(from) || from < 0) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', '--from is a non-negative integer')
    const threads = values.threads === undefined ? undefined : Number(values.threads)
    if (threads !== undefined && (!Number.isInteger(threads) || threads < 0)) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', '--threads is a non-negative integer (0: this thread only)')
    const fetch = deps.fetch ?? ((await import('undici')).fetch as unknown as FetchLike)
    const statePath = values.state ?? defaultStatePath()
    const state = await loadState(statePath)
    const archives: CollateralArchive[] = [
      ...(values.collateral ?? []).map((d) => createDirectoryCollateralArchive(d)),
      ...(values['collateral-url'] ?? []).map((u) => createHttpCollateralArchive(u, fetch)),
      ...(values.pcs ? [createPcsCollateralArchive(createPcsClient({ baseUrl: values.pcs }))] : []),
    ]
    const tdxRoot = values['dev-root'] ? trustedRootFromDer('dev', await readCertificate(values['dev-root'], 'dev root')) : undefined
    const gpuRoot = values['dev-gpu-root'] ? trustedRootFromDer('dev', await readCertificate(values['dev-gpu-root'], 'dev GPU root')) : undefined
    const registry = values.registry ? await (deps.registry ?? viemRegistry)(values.rpc!, values.registry as `0x${string}`, tdxRoot !== undefined) : null
    const signatures = threads === 0 ? null : createReceiptSignaturePool(threads)
    pool = signatures
    const showProgress = deps.progress ?? (!json && process.stderr.isTTY === true)
    const outcome = await auditLog({
      source: sourceFor(positionals[0]!, fetch),
      state,
      registry,
      collateral: archives,
      from,
      ...(values['log-key'] ? { publicKey: parseLogKey(values['log-key']) } : {}),
      ...(tdxRoot ? { tdxRoot } : {}),
      ...(gpuRoot ? { gpuDeviceRoot: gpuRoot, gpuRimRoot: gpuRoot } : {}),
      ...(signatures ? { verifyReceiptSignatures: signatures.verify } : {}),
      ...(showProgress ? { onProgress: progressBar(io) } : {}),
      ...(deps.now ? { now: deps.now } : {}),
    })
    report = outcome.report
    await saveState(statePath, outcome.state)
    const code = report.ok ? EXIT.OK : EXIT.VERIFICATION
    io.out(json ? `${JSON.stringify({ ...report, exitCode: code })}\n` : render(report))
    return code
  } catch (e) {
    const f = isLogError(e)
      ? { error: e.toJSON(), exitCode: STATE_CODES.has(e.code) ? EXIT_AUDIT_STATE : EXIT_BY_KIND[LOG_ERROR_CODES[e.code].kind] }
      : failureOf(e)
    io.out(json ? `${JSON.stringify({ ok: false, exitCode: f.exitCode, error: f.error, report })}\n` : `Result           NOT AUDITED\nError            ${f.error.code}: ${f.error.message}\n`)
    return f.exitCode
  } finally {
    await pool?.close()
  }
}

/** Sorted indices as compact ranges: `3, 7-12, 40`; at most `max` ranges, then a count of the rest. */
export function indexRanges(indices: readonly number[], max = 12): string {
  const sorted = [...new Set(indices)].sort((a, b) => a - b)
  const ranges: string[] = []
  let covered = 0
  for (let k = 0; k < sorted.length && ranges.length < max; ) {
    let j = k
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++
    ranges.push(j === k ? `${sorted[k]}` : `${sorted[k]}-${sorted[j]}`)
    covered += j - k + 1
    k = j + 1
  }
  const rest = sorted.length - covered
  return rest > 0 ? `${ranges.join(', ')} (+${rest} more)` : ranges.join(', ')
}

function render(r: AuditReport): string {
  const t = new Table()
  t.row('Result', r.ok ? 'CLEAN: every check passed' : `FINDINGS: ${r.findings.length}`)
  t.row('Log', r.location)
  t.row('Log id', r.logId ?? '-')
  t.row('Checkpoint', r.checkpoint ? `size ${r.checkpoint.size}, root ${r.checkpoint.root}` : 'none verified')
  t.row('Entries', `${r.entries.total} (${Object.entries(r.entries.byType).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}); replayed from ${r.entries.from}: ${r.entries.replayed}`)
  const c = r.checks
  t.row('Checks', [
    `checkpoint signature ${c.checkpointSignature ? 'ok' : 'FAILED'}`,
    `log key ${c.logKey === null ? 'NOT VOUCHED FOR' : `vouched for by ${c.logKey === 'given' ? '--log-key' : c.logKey}`}`,
    `tree recomputed ${c.treeRecomputed ? 'yes' : 'no'}`,
    `${c.hashTilesChecked} hash tiles compared`,
    `${c.earlierCheckpoints} earlier checkpoints`,
    c.anchors === null ? 'no registry: anchors not read' : `${c.anchors} on-chain anchors`,
    `receipt signers checked against the ${c.receiptSigners ?? '-'}`,
    `${c.quotesVerified} evidence entries, ${c.receiptsVerified} receipt signatures verified`,
  ].join('; '))
  // Findings about the log as a whole, with their details (few by nature).
  const global = r.findings.filter((f) => f.index === undefined)
  for (const f of global.slice(0, 10)) t.row('Log finding', `${f.code} ${JSON.stringify(f.details)}`)
  if (global.length > 10) t.row('', `${global.length - 10} more (--json lists all)`)
  // Per-entry findings: one line per code, with the entries as ranges (--json has the details).
  const byCode = new Map<string, number[]>()
  for (const f of r.findings) {
    if (f.index === undefined) continue
    const list = byCode.get(f.code)
    if (list) list.push(f.index)
    else byCode.set(f.code, [f.index])
  }
  for (const [code, indices] of [...byCode].sort((a, b) => b[1].length - a[1].length)) {
    t.row('Entries failed', `${code} x${new Set(indices).size}: ${indexRanges(indices)}`)
  }
  t.row('Time', `${Math.round(r.timings.total ?? 0)} ms`)
  return `${t.lines.join('\n')}\n`
}

export { LogError }
