/**
 * Errors of the GGUF writer and the tiny-model generator: stable codes, short
 * messages naming the offending key, tensor or option, never tensor data.
 */
import { BaseError, type BaseErrorOptions } from '../../../attestation/errors.ts'

/** Every code the writer and generator throw. */
export const GGUF_ERROR_CODES = {
  GGUF_VALUE_INVALID: 'a metadata value does not fit its declared GGUF type (range, integer, string, array item type)',
  GGUF_TENSOR_INVALID: 'a tensor name, shape, type or data length is inconsistent',
  GGUF_OPTIONS_INVALID: 'an option of the writer or the tiny-model generator is invalid',
} as const

export type GgufErrorCode = keyof typeof GGUF_ERROR_CODES

/** A GGUF document that cannot be written as asked. */
export class GgufError extends BaseError<GgufErrorCode> {
  override name = 'GgufError'
  constructor(code: GgufErrorCode, shortMessage: string, options: BaseErrorOptions = {}) {
    super(code, shortMessage, options)
  }
}
