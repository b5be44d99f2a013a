/**
 * `cgw verify <gateway URL> [--policy FILE] [--collateral FILE | --pcs URL] [--json]`
 *
 * The client SDK's full verification of one provider, printed as a table a
 * person can read (or the report as JSON): TDX status, every measurement
 * and whether the policy allow-lists it, TCB status and advisories, the GPU
 * status per GPU, the REPORTDATA binding, the on-chain record — and the
 * first failure with its code. Without --policy the baseline applies
 * (Intel root, UpToDate, no advisories, GPU evidence required under
 * NVIDIA's roots, no registry) and the table says which measurements are
 * pinned by nothing.
 *
 * Exit codes: 0 accepted; 1 bad arguments or policy; 2 malformed evidence;
 * 3 not genuine (quote, GPU, binding); 4 rejected by the policy; 5 collateral
 * unavailable; 7 the registry does not vouch for the keys; 8 the gateway or
 * the registry could not be reached; 9 the answer failed its checks (chat).
 */
import { parseArgs } from 'node:util'
import { BASELINE_GPU_POLICY_DOCUMENT, BASELINE_POLICY_DOCUMENT } from '../../attestation/policy/policy.ts'
import { createClient, type ConfidentialClient } from '../../gateway/client/client.ts'
import { CLIENT_ERROR_CODES, ClientError, isClientError, type ClientErrorCode } from '../../gateway/client/errors.ts'
import { loadClientPolicy, loadPolicyRoots, parseClientPolicy, parseCollateral, type ClientPolicy } from '../../gateway/client/policy.ts'
import type { RegistryReaderFactory } from '../../gateway/client/registry.ts'
import { reportOf, type VerificationReport } from '../../gateway/client/verify.ts'
import { registryFactoryFor } from '../../gateway/client/viem-registry.ts'
import { argumentFailure, EXIT, internalFailure, isArgumentError, type Failure } from '../exit-codes.ts'
import { Table } from '../report.ts'
import type { Io } from '../cgw.ts'

/** Exit codes of the client commands (verify, chat), beyond bin/exit-codes.ts. */
export const CLIENT_EXIT = { ...EXIT, REGISTRY: 7, UNREACHABLE: 8, RESPONSE: 9 } as const

/** The exit code for a client failure. */
function clientExitCode(e: unknown): number {
  if (!isClientError(e)) return EXIT.INTERNAL
  const code: ClientErrorCode = e.code
  if (code === 'CLIENT_EVIDENCE_MALFORMED') return EXIT.PARSE
  if (code === 'CLIENT_COLLATERAL_UNAVAILABLE') return EXIT.COLLATERAL
  switch (CLIENT_ERROR_CODES[code].family) {
    case 'config':
      return EXIT.USAGE
    case 'verification':
      return EXIT.VERIFICATION
    case 'policy':
      return EXIT.POLICY
    case 'registry':
      return CLIENT_EXIT.REGISTRY
    case 'unavailable':
    case 'upstream':
      return CLIENT_EXIT.UNREACHABLE
    case 'response':
      return CLIENT_EXIT.RESPONSE
  }
}

/**
 * Exit code and JSON-safe error for anything a client command throws:
 * bin/exit-codes.ts `failureOf` with the client's codes and families in
 * place of the attestation library's (bad arguments are CLIENT_CONFIG_INVALID).
 */
export function failureOfClient(e: unknown): Failure {
  if (isArgumentError(e)) return argumentFailure(e, 'CLIENT_CONFIG_INVALID')
  if (isClientError(e)) return { exitCode: clientExitCode(e), error: e.toJSON() }
  return internalFailure(e)
}

export interface ClientCommandDeps {
  /** Registry readers per RPC URL (default: viem through contracts/client). */
  readonly registryFactory?: RegistryReaderFactory
  readonly now?: () => Date
}

/** The options verify and chat share. */
export const CLIENT_OPTIONS = {
  policy: { type: 'string' },
  collateral: { type: 'string' },
  pcs: { type: 'string' },
  json: { type: 'boolean' },
} as const

/** The policy for a client command: the file, or the baseline; --collateral / --pcs override its collateral section. */
export async function policyFromArgs(values: { policy?: string; collateral?: string; pcs?: string }): Promise<{ policy: ClientPolicy; source: string }> {
  if (values.collateral !== undefined && values.pcs !== undefined) throw new ClientError('CLIENT_CONFIG_INVALID', 'give --collateral or --pcs, not both')
  const collateral = values.collateral !== undefined ? { file: values.collateral } : values.pcs !== undefined ? { pcsUrl: values.pcs } : undefined
  if (values.policy !== undefined) {
    const policy = await loadClientPolicy(values.policy)
    if (!collateral) return { policy, source: values.policy }
    return { policy: { ...policy, collateral: parseCollateral(collateral) }, source: values.policy }
  }
  if (!collateral) throw new ClientError('CLIENT_CONFIG_INVALID', 'without --policy, give --collateral FILE or --pcs URL')
  const policy = parseClientPolicy({
    version: 1,
    quote: BASELINE_POLICY_DOCUMENT,
    gpu: BASELINE_GPU_POLICY_DOCUMENT,
    registry: { required: false },
    collateral,
    maxEvidenceAgeSeconds: 3600,
  })
  return { policy, source: 'baseline (Intel root, UpToDate, no advisories, GPU required under NVIDIA roots, no measurement pinned, no registry)' }
}

/** A client for a command (closed by the caller). */
export async function clientFromPolicy(policy: ClientPolicy, deps: ClientCommandDeps): Promise<ConfidentialClient> {
  return createClient({
    policy,
    roots: await loadPolicyRoots(policy),
    ...(policy.registry.required ? { registryFactory: deps.registryFactory ?? registryFactoryFor(policy) } : {}),
    ...(deps.now ? { now: deps.now } : {}),
  })
}

const STAGE_VERDICT: Record<string, string> = {
  accepted: 'ACCEPTED',
  evidence: 'REJECTED: no usable evidence',
  quote: 'REJECTED: the TDX quote is not genuine',
  gpu: 'REJECTED: the GPU evidence is not genuine',
  binding: 'REJECTED: the quote does not bind the presented keys',
  policy: 'GENUINE, REJECTED BY POLICY',
  registry: 'GENUINE AND ACCEPTED, BUT NOT VOUCHED FOR ON-CHAIN',
}

/** Its keys ("Signing address", "Runtime events") are wider than the other commands' tables. */
const KEY_WIDTH = 18

/** The report as a table. */
export function renderVerificationReport(r: VerificationReport | undefined, source: string, error?: { code: string; message: string }): string {
  const table = new Table(KEY_WIDTH)
  if (!r) {
    table.row('Result', 'NOT RUN')
    if (error) table.row('Error', `${error.code}: ${error.message}`)
    table.row('Policy', source)
    return table.text()
  }
  table.row('Provider', r.provider)
  table.row('Result', r.ok ? 'ACCEPTED' : (STAGE_VERDICT[r.stage] ?? `REJECTED at ${r.stage}`))
  table.row('Verified at', r.at)
  table.row('Nonce', r.nonce)
  if (r.tdx) {
    const t = r.tdx
    table.row('TDX', `genuine (DCAP), root ${t.root.kind} ${t.root.fingerprint.slice(0, 16)}…, FMSPC ${t.fmspc}`)
    table.row('TCB status', `${t.tcbStatus}; advisories: ${t.advisoryIds.length ? t.advisoryIds.join(', ') : 'none'}`)
    table.row('Collateral', `issued ${t.collateral.issuedAt}, next update ${t.collateral.expiresAt}, TCB eval #${t.collateral.tcbEvaluationDataNumber}`)
    table.row('Measurements', '')
    for (const m of t.measurements) {
      const mark = m.allowListed === 'any' ? '[any: not pinned]' : m.allowListed ? '[allow-listed]' : '[NOT ALLOWED]'
      table.row(`  ${m.field}`, `${m.value.slice(0, 24)}…${m.value.slice(-8)} ${mark}`)
    }
    table.row('Workload id', t.workloadId)
    table.row('Event log', t.eventLog)
    const rt = t.runtimeEvents
    table.row('Runtime events', rt.events.length === 0 ? rt.status : `${rt.status}: ${rt.events.map((e) => `${e.event} (RTMR${e.imr})`).join(', ')}`)
  } else {
    table.row('TDX', 'not verified')
  }
  const g = r.gpu
  if (g.status === 'verified') {
    for (const gpu of g.gpus ?? []) {
      table.row(`GPU ${gpu.index}`, `${gpu.arch} driver ${gpu.driverVersion}, VBIOS ${gpu.vbiosVersion}, ${gpu.measurementsMatched} golden values matched, OCSP ${Object.entries(gpu.ocsp).map(([k, v]) => `${v} ${k}`).join(', ')}`)
    }
  } else {
    table.row('GPU', g.status === 'not required' ? 'no GPU evidence (the policy says none is required)' : g.status === 'missing' ? 'MISSING (the policy requires GPU evidence)' : 'not verified')
  }
  table.row('Binding', r.binding.status === 'bound' ? 'REPORTDATA binds key config, signing address, GPU evidence, epoch and this nonce' : 'not verified')
  if (r.evidence) {
    table.row('Key config', `${r.evidence.keyConfigHash} (key id ${r.evidence.keyId})`)
    table.row('Signing address', r.evidence.signingAddress)
    table.row('Epoch', `${r.evidence.epoch}, offered until ${r.evidence.epochExpiresAt}`)
  }
  const reg = r.registry
  if (reg.status === 'registered' && reg.check) {
    const c = reg.check
    table.row('On-chain', `registered on chain ${c.chainId}, registry ${c.address}`)
    table.row('  enclave', c.record.enclaveId)
    table.row('  record', `epoch ${c.record.epoch}, TCB ${c.record.tcbStatus}, model ${c.record.model}, expires ${new Date(Number(c.record.expiresAt) * 1000).toISOString()}`)
  } else {
    table.row('On-chain', reg.status === 'not required' ? 'not checked (the policy names no registry)' : 'not verified')
  }
  if (r.validUntil) table.row('Valid until', r.validUntil)
  return table.close({ policy: { source, mismatches: r.policy.mismatches }, error: r.error })
}

const USAGE = 'usage: cgw verify <gateway URL> [--policy FILE] [--collateral FILE | --pcs URL] [--json]\n'

export async function runVerify(args: string[], io: Io, deps: ClientCommandDeps = {}): Promise<number> {
  let source = 'none'
  let json = args.includes('--json')
  let client: ConfidentialClient | undefined
  try {
    const { values, positionals } = parseArgs({ args, options: { ...CLIENT_OPTIONS, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true })
    if (values.help) {
      io.out(USAGE)
      return EXIT.OK
    }
    json = values.json === true
    if (positionals.length !== 1) throw new ClientError('CLIENT_CONFIG_INVALID', 'expected exactly one gateway URL')
    const loaded = await policyFromArgs(values)
    source = loaded.source
    client = await clientFromPolicy(loaded.policy, deps)
    const v = await client.verify(positionals[0]!)
    io.out(json ? `${JSON.stringify({ ok: true, exitCode: 0, report: v.report }, null, 2)}\n` : renderVerificationReport(v.report, source))
    return EXIT.OK
  } catch (e) {
    const { exitCode, error } = failureOfClient(e)
    if (exitCode === EXIT.USAGE && !reportOf(e)) io.err(`cgw verify: ${error.code}: ${error.message}\n${USAGE}`)
    const report = reportOf(e)
    io.out(json ? `${JSON.stringify({ ok: false, exitCode, error, ...(report ? { report } : {}) }, null, 2)}\n` : renderVerificationReport(report, source, error))
    return exitCode
  } finally {
    await client?.close()
  }
}
