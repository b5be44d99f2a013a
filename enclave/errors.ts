/**
 * Errors of the enclave: stable codes, short messages, and never any
 * plaintext, key material or evidence bytes in a message or its details —
 * the gateway logs these.
 */
import { BaseError, type BaseErrorOptions } from '../attestation/errors.ts'

/** Registry of enclave codes; `status` is the outer HTTP status the gateway answers with (RFC 9458 §5.3, §6). */
export const ENCLAVE_ERROR_CODES = {
  ENCLAVE_OHTTP_MALFORMED: { status: 400, description: 'the encapsulated request is truncated or its header is malformed' },
  ENCLAVE_OHTTP_UNSUPPORTED_SUITE: { status: 400, description: 'the request names a KEM, KDF or AEAD this gateway does not offer' },
  ENCLAVE_OHTTP_KEY_UNKNOWN: { status: 422, description: 'the key id is not one of the live key configs (RFC 9458 §5.3: fetch the key config again)' },
  ENCLAVE_OHTTP_EPOCH_EXPIRED: { status: 422, description: 'the key id belongs to an epoch past its grace period; its key is destroyed' },
  ENCLAVE_OHTTP_DECRYPT_FAILED: { status: 400, description: 'the request does not decrypt (wrong key, tampered or truncated ciphertext)' },
  ENCLAVE_OHTTP_REPLAYED: { status: 400, description: 'this encapsulated request was seen before within its validity window' },
  ENCLAVE_OHTTP_REPLAY_CACHE_FULL: {
    status: 503,
    description: 'the replay cache holds its maximum of unexpired entries; new requests are refused rather than old ones forgotten',
  },
  ENCLAVE_BHTTP_MALFORMED: { status: 400, description: 'the decrypted request is not a valid Binary HTTP message (RFC 9292)' },
  ENCLAVE_OHTTP_DATE_INVALID: {
    status: 400,
    description:
      'the inner request has no `date` field, or not an HTTP-date (RFC 9110 §6.6.1); the enclave answers it inside the encryption: 400 with its own Date (RFC 9458 §6.5)',
  },
  ENCLAVE_OHTTP_DATE_OUT_OF_RANGE: {
    status: 400,
    description:
      'the inner request\'s `date` is outside the accepted window around the gateway clock; answered inside the encryption: 400 with the gateway\'s Date so the client can correct (RFC 9458 §6.5)',
  },
  ENCLAVE_RECEIPT_KEY_DESTROYED: {
    status: 500,
    description:
      'the signing key of the epoch that decrypted the request was destroyed (its grace ended) before the response finished; the stream ends with this code (error event, cgw-error trailer) instead of a receipt signed by another key',
  },
  ENCLAVE_EVIDENCE_UNAVAILABLE: { status: 503, description: 'evidence could not be produced (quote, event log or GPU provider failed)' },
  ENCLAVE_EVIDENCE_BUSY: { status: 503, description: 'too many evidence collections are running; try again shortly' },
  ENCLAVE_QUOTE_PROVIDER_UNAVAILABLE: { status: 503, description: 'no TDX quote provider: configfs-tsm is missing or unusable' },
  ENCLAVE_CLOSED: { status: 503, description: 'the enclave is shutting down' },
} as const satisfies Record<string, { readonly status: number; readonly description: string }>

export type EnclaveErrorCode = keyof typeof ENCLAVE_ERROR_CODES

export class EnclaveError extends BaseError<EnclaveErrorCode> {
  override name = 'EnclaveError'
  constructor(code: EnclaveErrorCode, shortMessage: string, options: BaseErrorOptions = {}) {
    super(code, shortMessage, options)
  }
  get status(): number {
    return ENCLAVE_ERROR_CODES[this.code].status
  }
}

export function isEnclaveError(e: unknown): e is EnclaveError {
  return e instanceof EnclaveError && Object.hasOwn(ENCLAVE_ERROR_CODES, e.code)
}
