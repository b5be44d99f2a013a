/**
 * Process exit codes of every `cgw` command, one per error family, so that
 * scripts can branch on what went wrong without reading text.
 */
import { isAttestationError, errorFamily, type ErrorFamily } from '../attestation/errors.ts'

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
