/**
 * GGUF writing and the tiny generated model: the public surface of
 * enclave/engines/gguf.
 */
export { encodeGguf } from './writer.ts'
export type { GgufDocument, GgufTensor, GgufValue } from './writer.ts'
export { buildTinyModel, generateTinyModel, TINY_MODEL_DEFAULTS, type TinyModelOptions } from './tiny-model.ts'
export { GgufError, GGUF_ERROR_CODES, type GgufErrorCode } from './errors.ts'
