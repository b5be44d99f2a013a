/**
 * Process exit codes of every `cgw` command, one per error family, so that
 * scripts can branch on what went wrong without reading text.
 */
import { isEnclaveError } from '../enclave/errors.ts'
import { PolicyError, isAttestationError, errorFamily, type ErrorFamily, type PolicyMismatch } from '../attestation/errors.ts'

export const EXIT = {
  /** Genuine and accepted by the policy. */
  OK: 0,
  /** Bad arguments, unreadable files, invalid policy or options. */
  USAGE: 1,
  /** The evidence bytes are malformed. */
  PARSE: 2,
  /** The evidence is not genuine (or a verification step could not run). */
  VERIFICATION: 3,
  /** Genuine, but rejected by the policy. */
  POLICY: 4,
  /** Collateral could not be obtained. */
  COLLATERAL: 5,
  /** The enclave could not start or serve (e.g. no TDX quote provider here). */
  ENCLAVE: 6,
  /** A bug: an error that is not one of ours. */
  INTERNAL: 70,
} as const

const BY_FAMILY: Record<ErrorFamily, number> = {
  parse: EXIT.PARSE,
  verification: EXIT.VERIFICATION,
  policy: EXIT.POLICY,
  config: EXIT.USAGE,
  collateral: EXIT.COLLATERAL,
}

/** The exit code for a thrown value. */
export function exitCodeFor(e: unknown): number {
  return isAttestationError(e) ? BY_FAMILY[errorFamily(e.code)] : EXIT.INTERNAL
}

export interface Failure {
  readonly error: { readonly code: string; readonly message: string; readonly details: Record<string, unknown> }
  readonly exitCode: number
  readonly mismatches?: readonly PolicyMismatch[]
}

/** node:util parseArgs' errors (unknown option, missing value): bad arguments, not a failure of the command. */
export function isArgumentError(e: unknown): e is Error {
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')
}

/** A bad-arguments failure under the command family's own config code. */
export function argumentFailure(e: Error, code: string): Failure {
  return { error: { code, message: e.message, details: {} }, exitCode: EXIT.USAGE }
}

/** A thrown value that is none of ours: a bug, never a verdict on the evidence. */
export function internalFailure(e: unknown): Failure {
  return { error: { code: 'INTERNAL', message: e instanceof Error ? e.message : String(e), details: {} }, exitCode: EXIT.INTERNAL }
}

/**
 * What a command reports for a thrown value: our typed errors by code and
 * family; node's argument-parser errors as usage; anything else as a bug —
 * never as a verdict on the evidence.
 */
export function failureOf(e: unknown): Failure {
  if (isAttestationError(e)) {
    return { error: e.toJSON(), exitCode: exitCodeFor(e), ...(e instanceof PolicyError ? { mismatches: e.mismatches } : {}) }
  }
  if (isEnclaveError(e)) return { error: e.toJSON(), exitCode: EXIT.ENCLAVE }
  if (isArgumentError(e)) return argumentFailure(e, 'ATTESTATION_OPTIONS_INVALID')
  return internalFailure(e)
}
