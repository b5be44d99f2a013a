/**
 * Errors of GPU evidence collection inside the CVM, and the one check every
 * real provider applies before it hands evidence back.
 *
 * Collection errors are not attestation errors: nothing here says whether
 * evidence is genuine (that is attestation/nvidia, on the verifier's side).
 * They answer the operator's question "why did this TD not produce GPU
 * evidence?", in three stable codes that callers branch on and tests assert:
 *
 * - ENCLAVE_GPU_UNAVAILABLE: there is nothing to collect from here (no
 *   NVIDIA library or CLI, no GPU, confidential computing off);
 * - ENCLAVE_GPU_COLLECTION_FAILED: the library or CLI was there and returned
 *   an error (its NVML return code or nvattest result code is in `details`);
 * - ENCLAVE_GPU_EVIDENCE_INVALID: it returned something, but not evidence
 *   answering the nonce asked for (malformed output, a report that does not
 *   parse, another nonce).
 *
 * Messages and details carry return codes, GPU positions and nonces, never
 * evidence bytes or tool output, so they are safe to log.
 */
import { BaseError, type BaseErrorOptions } from '../../attestation/errors.ts'

/** The registry of collection error codes (the fastify `lib/errors.js` idea): one place to read what can go wrong. */
export const GPU_COLLECTION_ERROR_CODES = {
  ENCLAVE_GPU_UNAVAILABLE: {
    description: 'no GPU evidence can be collected here: the NVIDIA library or CLI is missing, no GPU is visible, or confidential computing is off',
  },
  ENCLAVE_GPU_COLLECTION_FAILED: {
    description: 'the NVIDIA library or CLI returned an error (details: the NVML return code or nvattest result code), timed out or was killed',
  },
  ENCLAVE_GPU_EVIDENCE_INVALID: {
    description: 'the collected output is malformed, or a GPU report does not parse or does not answer the nonce asked for',
  },
} as const satisfies Record<string, { readonly description: string }>

export type GpuCollectionErrorCode = keyof typeof GPU_COLLECTION_ERROR_CODES

/** GPU evidence could not be collected; `code` says why (see `GPU_COLLECTION_ERROR_CODES`). */
export class GpuCollectionError extends BaseError<GpuCollectionErrorCode> {
  override name = 'GpuCollectionError'

  constructor(code: GpuCollectionErrorCode, shortMessage: string, options: BaseErrorOptions = {}) {
    super(code, shortMessage, options)
  }
}

/** True for errors thrown by the GPU providers (as opposed to bugs or a caller's abort). */
export function isGpuCollectionError(e: unknown): e is GpuCollectionError {
  return e instanceof GpuCollectionError && Object.hasOwn(GPU_COLLECTION_ERROR_CODES, e.code)
}
