/**
 * Errors of the OHTTP layer that are not the enclave's to report:
 *
 * - what a client sees while opening a response (tampered, reordered,
 *   dropped or missing chunks; a malformed Binary HTTP response) or reading
 *   a key configuration;
 * - a caller's misuse of the API (sealing after the final chunk, an invalid
 *   field name handed to an encoder) — a bug, reported with a code rather
 *   than a TypeError so it can be told apart from a crash;
 * - the replay cache refusing work when it is full (fail closed; see
 *   replay-cache.ts). The enclave would rather report this with its own
 *   `EnclaveError` code; until enclave/errors.ts has one, it is this class.
 *
 * The decapsulation failures of a gateway (wrong key id, bad suite, does not
 * decrypt, replayed, malformed Binary HTTP request) are `EnclaveError`s
 * (enclave/errors.ts). Messages and details never carry plaintext, key or
 * ciphertext bytes: only codes, offsets, lengths and identifiers.
 */
import { BaseError, type BaseErrorOptions } from '../../attestation/errors.ts'

/** Registry of OHTTP codes; `status` is the outer HTTP status a server would answer with, where one applies. */
export const OHTTP_ERROR_CODES = {
  OHTTP_RESPONSE_INVALID: {
    status: 502,
    description: 'the encapsulated response does not open: a chunk was altered, reordered or dropped, the framing is wrong, or bytes follow the final chunk',
  },
  OHTTP_RESPONSE_TRUNCATED: {
    status: 502,
    description: 'the chunked response ended before its final chunk (draft-ietf-ohai-chunked-ohttp §6.1: never treat it as complete)',
  },
  OHTTP_BHTTP_MALFORMED: { status: 502, description: 'the decrypted response is not a valid Binary HTTP response (RFC 9292 §4)' },
  OHTTP_KEY_CONFIG_INVALID: {
    status: 500,
    description: 'a key configuration or application/ohttp-keys object is malformed (RFC 9458 §3.2: discard it), or offers no suite this client implements',
  },
  OHTTP_ARGUMENT_INVALID: { status: 500, description: 'an argument or call order is invalid (a bug in the caller)' },
} as const satisfies Record<string, { readonly status: number; readonly description: string }>

export type OhttpErrorCode = keyof typeof OHTTP_ERROR_CODES

export class OhttpError extends BaseError<OhttpErrorCode> {
  override name = 'OhttpError'
  constructor(code: OhttpErrorCode, shortMessage: string, options: BaseErrorOptions = {}) {
    super(code, shortMessage, options)
  }
  get status(): number {
    return OHTTP_ERROR_CODES[this.code].status
  }
}

export function isOhttpError(e: unknown): e is OhttpError {
  return e instanceof OhttpError && Object.hasOwn(OHTTP_ERROR_CODES, e.code)
}

/** Throw `OHTTP_ARGUMENT_INVALID` (caller misuse). */
export function invalidArgument(message: string, details: Record<string, unknown> = {}): never {
  throw new OhttpError('OHTTP_ARGUMENT_INVALID', message, { details })
}
