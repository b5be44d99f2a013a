/**
 * Oblivious HTTP for the enclave and its clients: RFC 9458 (OHTTP) with
 * RFC 9292 (Binary HTTP) inside and draft-ietf-ohai-chunked-ohttp-08 for
 * streamed responses, over HPKE (RFC 9180) DHKEM(X25519, HKDF-SHA256),
 * HKDF-SHA256, AES-256-GCM.
 *
 *   enclave:  generateOhttpKeyPair → createOhttpServer({ keys, replay }).decapsulate(body, type)
 *             → request.respond.seal(bhttp) | request.respond.chunkedSealer().seal(chunk, final)
 *   client:   parseKeyConfigs → encapsulateRequest(config, encodeBhttpRequest(...))
 *             → openResponse(body) | openChunkedResponse(stream) → decodeBhttpResponseStream
 *
 * Known-answer-test hooks (fixed keys and nonces) live in keys.ts and
 * client.ts and are deliberately not exported here.
 */
export {
  AEAD_AES_128_GCM,
  AEAD_AES_256_GCM,
  AEAD_CHACHA20_POLY1305,
  ENCLAVE_SYMMETRIC_ALGORITHMS,
  KDF_HKDF_SHA256,
  KEM_X25519_HKDF_SHA256,
  encodeKeyConfig,
  encodeKeyConfigs,
  parseKeyConfig,
  parseKeyConfigs,
  type KeyConfig,
  type SymmetricAlgorithm,
} from './key-config.ts'
export { generateOhttpKeyPair, type GenerateOhttpKeyPairOptions, type OhttpKeyPair } from './keys.ts'
export {
  MEDIA_TYPE_BHTTP,
  MEDIA_TYPE_OHTTP_CHUNKED_REQUEST,
  MEDIA_TYPE_OHTTP_CHUNKED_RESPONSE,
  MEDIA_TYPE_OHTTP_KEYS,
  MEDIA_TYPE_OHTTP_REQUEST,
  MEDIA_TYPE_OHTTP_RESPONSE,
} from './media-types.ts'
export { formatHttpDate, parseHttpDate } from './http-date.ts'
export {
  createOhttpServer,
  requestOfDateError,
  type DecapsulatedRequest,
  type OhttpServer,
  type OhttpServerOptions,
  type SealedResponse,
} from './server.ts'
export { encapsulateRequest, type ChunkedResponseReader, type EncapsulateRequestOptions, type EncapsulatedRequest } from './client.ts'
export { createReplayCache, type ReplayCache, type ReplayCacheOptions } from './replay-cache.ts'
export {
  DEFAULT_MAX_SEALED_CHUNK_LENGTH,
  type ChunkedResponseSealer,
  type OpenChunkedResponseOptions,
} from './chunked-response.ts'
export {
  BhttpResponseDecoder,
  DEFAULT_BHTTP_REQUEST_LIMITS,
  DEFAULT_BHTTP_RESPONSE_LIMITS,
  beginResponse,
  contentChunk,
  decodeBhttpRequest,
  decodeBhttpResponse,
  decodeBhttpResponseStream,
  encodeBhttpRequest,
  encodeBhttpResponse,
  endResponse,
  type BhttpField,
  type BhttpFieldsInit,
  type BhttpFraming,
  type BhttpInformational,
  type BhttpLimits,
  type BhttpRequest,
  type BhttpRequestInit,
  type BhttpResponse,
  type BhttpResponseEvent,
  type BhttpResponseInit,
  type EncodeBhttpRequestOptions,
} from './bhttp.ts'
export { OHTTP_ERROR_CODES, OhttpError, isOhttpError, type OhttpErrorCode } from './errors.ts'
