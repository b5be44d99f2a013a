/**
 * GGUF writing and the tiny generated model: the public surface of
 * enclave/engines/gguf.
 */
export { encodeGguf, GGUF_MAGIC, GGUF_VERSION, GGUF_DEFAULT_ALIGNMENT, GGUF_VALUE_TYPES, GGML_TYPES } from './writer.ts'
export type { GgufDocument, GgufTensor, GgufValue, GgufScalarType, GgufNumberType } from './writer.ts'
export { buildTinyModel, generateTinyModel, TINY_MODEL_DEFAULTS, CHATML_TEMPLATE, type TinyModelOptions } from './tiny-model.ts'
export { buildByteLevelVocab, byteToUnicode, CHATML_TOKENS, TOKEN_TYPE, type ByteLevelVocab } from './byte-level-bpe.ts'
export { GgufError, GGUF_ERROR_CODES, type GgufErrorCode } from './errors.ts'
