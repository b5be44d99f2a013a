/**
 * The shape every verifying `cgw` command shares: a report filled stage by
 * stage, failures turned into its error and exit code, and output as JSON
 * (`--json`) or as a table a person reads.
 */
import { ConfigError } from '../attestation/errors.ts'
import { trustedRootFromDer, type TrustedRoot } from '../attestation/roots/trust-root.ts'
import type { TrustRootChoice } from '../attestation/policy/policy.ts'
import { EXIT, failureOf } from './exit-codes.ts'
import { readCertificate } from './io.ts'
import type { Io } from './cgw.ts'

export interface CommandReport {
  ok: boolean
  exitCode: number
  stage: string
  error?: { code: string; message: string; details: Record<string, unknown> }
  policy: { source: string; mismatches?: readonly unknown[] }
}

/** Run `body`, which advances `report.stage`; on success the stage is 'accepted'. */
export async function runReported<R extends CommandReport>(
  report: R,
  args: readonly string[],
  io: Io,
  body: () => Promise<void>,
  render: (r: R) => string,
): Promise<number> {
  report.exitCode = EXIT.USAGE
  try {
    await body()
    report.stage = 'accepted'
    report.ok = true
    report.exitCode = EXIT.OK
  } catch (e) {
    const f = failureOf(e)
    report.error = f.error
    report.exitCode = f.exitCode
    if (f.mismatches) report.policy.mismatches = f.mismatches
  }
  io.out(args.includes('--json') ? `${JSON.stringify(report, null, 2)}\n` : render(report))
  return report.exitCode
}

/** Verdict lines for the stages every verifying command shares. */
export const COMMON_VERDICTS = {
  arguments: 'NOT RUN (bad arguments)',
  verify: 'REJECTED: not genuine',
  policy: 'GENUINE, REJECTED BY POLICY',
  accepted: 'ACCEPTED',
} as const

/** What `Table.close` reads of a report (the client's VerificationReport has these too). */
export interface ClosingRows {
  readonly policy: { readonly source: string; readonly mismatches?: readonly unknown[] }
  readonly error?: { readonly code: string; readonly message: string }
}

/** A two-column text table; `width` is the key column's (cgw verify's keys are longer). */
export class Table {
  readonly lines: string[] = []
  constructor(readonly width = 16) {}
  row(key: string, value: unknown): void {
    this.lines.push(`${key.padEnd(this.width)} ${String(value)}`)
  }
  /** The table so far, one row a line. */
  text(): string {
    return `${this.lines.join('\n')}\n`
  }
  /** The policy, error and mismatch rows every report ends with. */
  close(r: ClosingRows): string {
    this.row('Policy', r.policy.source)
    if (r.error) this.row('Error', `${r.error.code}: ${r.error.message}`)
    for (const m of (r.policy.mismatches ?? []) as { code: string; field: string; actual: unknown }[]) {
      this.row('  mismatch', `${m.code} (${m.field}: ${JSON.stringify(m.actual)})`)
    }
    return this.text()
  }
}

/** The dev root a policy names, read from `--dev-root`; undefined for production roots. */
export async function devRootFor(choice: TrustRootChoice | { kind: 'nvidia' }, path: string | undefined): Promise<TrustedRoot | undefined> {
  if (choice.kind !== 'dev') return undefined
  if (!path) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'the policy names a dev root: pass its certificate with --dev-root FILE')
  return trustedRootFromDer('dev', await readCertificate(path, 'dev root'), choice.fingerprint)
}
