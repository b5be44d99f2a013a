/**
 * The code of a caught error, for error details: `errnoOf` reads Node's
 * system-error code (ENOENT, EACCES, ...), `codeOf` a library error's code
 * (BaseError) or else the same errno. One copy, so every provider reports
 * causes the same way. (enclave/evidence.ts keeps its own copy of codeOf.)
 */
import { BaseError } from '../../attestation/errors.ts'

/** `e.code` when `e` carries a string code (Node system errors: 'ENOENT', ...); else undefined. */
export function errnoOf(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string' ? (e as { code: string }).code : undefined
}

/** A typed error's code (BaseError), else its errno (see {@link errnoOf}); undefined when it has none. */
export function codeOf(e: unknown): string | undefined {
  if (e instanceof BaseError) return e.code
  return errnoOf(e)
}
