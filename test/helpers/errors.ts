/**
 * Small helpers for asserting on thrown errors by code, never by message.
 */
import { BaseError } from '../../attestation/errors.ts'

/** Run `f`; return the error it throws, or undefined. */
export function thrown(f: () => unknown): unknown {
  try {
    f()
  } catch (e) {
    return e
  }
  return undefined
}

/** The code of one of our typed errors; undefined for anything else (a bug). */
export function codeOf(e: unknown): string | undefined {
  return e instanceof BaseError ? (e.code as string) : undefined
}
