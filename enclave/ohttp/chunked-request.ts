/**
 * Chunks of a chunked Encapsulated Request (draft-ietf-ohai-chunked-ohttp-08 §4, §6.1):
 *
 *   Chunked Request Chunks {
 *     Non-Final Request Chunk (..) ...,       // Length (i) = 1.., HPKE-Protected Chunk
 *     Final Request Chunk Indicator (i) = 0,
 *     HPKE-Protected Final Chunk (..),        // runs to the end of the body
 *   }
 *
 * Each chunk is `sctxt.Seal(aad, chunk)` on the request's HPKE context, whose
 * sequence number orders them; the final chunk's AAD is "final". The server
 * here receives whole bodies (the gateway hands the enclave the request
 * bytes), so it opens all chunks at once and returns the joined plaintext.
 */
import type { RecipientContext, SenderContext } from '@hpke/core'
import { EnclaveError } from '../errors.ts'
import { FINAL_CHUNK_AAD } from './hpke.ts'
import { readVarint, varintSize, writeVarint } from './varint.ts'
import { concatBytes } from '../../attestation/bytes/concat.ts'

/** draft §3: senders SHOULD keep chunks to 2^14 bytes of plaintext unless they know the receiver takes more. */
export const REQUEST_CHUNK_PLAINTEXT_LENGTH = 1 << 14

/**
 * Client: seal `plaintext` as request chunks of at most `chunkLength` bytes,
 * the last one final. A request that fits one chunk is a single final chunk.
 */
export async function sealRequestChunks(context: SenderContext, plaintext: Uint8Array, chunkLength = REQUEST_CHUNK_PLAINTEXT_LENGTH): Promise<Uint8Array> {
  const pieces: Uint8Array[] = []
  const count = Math.max(1, Math.ceil(plaintext.length / chunkLength))
  for (let i = 0; i < count; i++) {
    const final = i === count - 1
    const chunk = plaintext.subarray(i * chunkLength, final ? plaintext.length : (i + 1) * chunkLength)
    const ct = new Uint8Array(await context.seal(chunk, final ? FINAL_CHUNK_AAD : new Uint8Array(0)))
    const lengthField = final ? 0 : ct.length
    const piece = new Uint8Array(varintSize(lengthField) + ct.length)
    piece.set(ct, writeVarint(piece, 0, lengthField))
    pieces.push(piece)
  }
  return concatBytes(pieces)
}

/**
 * Server: open the chunks in `body` (everything after hdr || enc), in order,
 * and join their plaintexts. Framing errors (a chunk running past the end, no
 * final chunk) are `ENCLAVE_OHTTP_MALFORMED`; a chunk that does not open, or
 * an empty non-final chunk (draft §6: "equivalent to a decryption error"),
 * is `ENCLAVE_OHTTP_DECRYPT_FAILED`.
 */
export async function openRequestChunks(context: RecipientContext, body: Uint8Array): Promise<Uint8Array> {
  const plaintexts: Uint8Array[] = []
  let p = 0
  for (let index = 0; ; index++) {
    const lengthField = readVarint(body, p)
    if (lengthField === undefined) {
      throw new EnclaveError('ENCLAVE_OHTTP_MALFORMED', 'the chunked request ends without its final chunk', { details: { offset: p, chunk: index } })
    }
    p = lengthField.next
    const final = lengthField.value === 0
    const end = final ? body.length : p + lengthField.value
    if (end > body.length) {
      throw new EnclaveError('ENCLAVE_OHTTP_MALFORMED', 'a request chunk runs past the end of the request', { details: { offset: p, chunk: index } })
    }
    let pt: Uint8Array
    try {
      pt = new Uint8Array(await context.open(body.subarray(p, end), final ? FINAL_CHUNK_AAD : new Uint8Array(0)))
    } catch (e) {
      throw new EnclaveError('ENCLAVE_OHTTP_DECRYPT_FAILED', 'a request chunk does not decrypt', { cause: e, details: { offset: p, chunk: index } })
    }
    if (!final && pt.length === 0) {
      throw new EnclaveError('ENCLAVE_OHTTP_DECRYPT_FAILED', 'a non-final request chunk is empty', { details: { offset: p, chunk: index } })
    }
    plaintexts.push(pt)
    p = end
    if (final) break
  }
  return concatBytes(plaintexts)
}
