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
 * mismatch, an unregistered signer, evidence that does not verify, ...);
 * 5 the log could not be fetched; 1 bad arguments; 2 malformed log files.
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
import { EMPTY_AUDIT_STATE, parseAuditState, serializeAuditState, type AuditState } from '../../attestation/log/audit/state.ts'
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

async function loadState(path: string): Promise<AuditState> {
  let json: string
  try {
    json = await readFile(path, 'utf8')
  } catch {
    return EMPTY_AUDIT_STATE
  }
  const leaves = new Map<string, Uint8Array>()
  let doc: { logs?: Record<string, unknown> }
  try {
    doc = JSON.parse(json) as typeof doc
  } catch (cause) {
    throw new LogError('LOG_STATE_INVALID', 'the state file is not JSON', { cause, details: { path } })
  }
  for (const id of Object.keys(doc.logs ?? {})) {
    try {
      leaves.set(id, new Uint8Array(await readFile(`${path}.${id.slice(2)}.leaves`)))
    } catch {
      // Missing leaves: rewrites are still detected (roots), just not located.
    }
  }
  return parseAuditState(json, (id) => leaves.get(id) ?? null)
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
      ? { error: e.toJSON(), exitCode: EXIT_BY_KIND[LOG_ERROR_CODES[e.code].kind] }
      : failureOf(e)
    io.out(json ? `${JSON.stringify({ ok: false, exitCode: f.exitCode, error: f.error, report })}\n` : `Result           NOT AUDITED\nError            ${f.error.code}: ${f.error.message}\n`)
    return f.exitCode
  } finally {
    await pool?.close()
  }
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
    `tree recomputed ${c.treeRecomputed ? 'yes' : 'no'}`,
    `${c.hashTilesChecked} hash tiles compared`,
    `${c.earlierCheckpoints} earlier checkpoints`,
    c.anchors === null ? 'no registry: anchors not read' : `${c.anchors} on-chain anchors`,
    `receipt signers checked against the ${c.receiptSigners ?? '-'}`,
    `${c.quotesVerified} evidence entries, ${c.receiptsVerified} receipt signatures verified`,
  ].join('; '))
  const counts = new Map<string, number>()
  for (const f of r.findings) counts.set(f.code, (counts.get(f.code) ?? 0) + 1)
  for (const [code, n] of counts) t.row('  finding', `${code} x${n}`)
  for (const f of r.findings.slice(0, 20)) t.row('    at', `${f.index ?? '-'} ${f.code} ${JSON.stringify(f.details)}`)
  if (r.findings.length > 20) t.row('    ...', `${r.findings.length - 20} more (--json lists all)`)
  t.row('Time', `${Math.round(r.timings.total ?? 0)} ms`)
  return `${t.lines.join('\n')}\n`
}

export { LogError }
