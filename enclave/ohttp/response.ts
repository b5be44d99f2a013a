/**
 * Response keys and the non-chunked Encapsulated Response (RFC 9458 §4.4):
 *
 *   secret         = context.Export(label, max(Nn, Nk))
 *   response_nonce = random(max(Nn, Nk))
 *   salt           = enc || response_nonce
 *   prk            = Extract(salt, secret)
 *   aead_key       = Expand(prk, "key", Nk)
 *   aead_nonce     = Expand(prk, "nonce", Nn)
 *   enc_response   = response_nonce || Seal(aead_key, aead_nonce, "", response)
 *
 * The chunked variant (draft-ietf-ohai-chunked-ohttp-08 §6.2) derives its
 * key and base nonce the same way, with the label "message/bhttp chunked
 * response"; see chunked-response.ts.
 */
import { aeadOpen, aeadSeal, hkdfExpand, hkdfExtract } from './symmetric.ts'
import type { AeadParams } from './hpke.ts'
import { OhttpError } from './errors.ts'

/** What `context.Export` needs: an HPKE sender or recipient context (RFC 9180 §5.3). */
export interface HpkeExporter {
  export(exporterContext: ArrayBufferLike | ArrayBufferView, length: number): Promise<ArrayBuffer>
}

/** The AEAD key and (base) nonce of one response. */
export interface ResponseKeys {
  readonly aead: AeadParams
  readonly key: Uint8Array
  readonly nonce: Uint8Array
}

const KEY_LABEL = new TextEncoder().encode('key')
const NONCE_LABEL = new TextEncoder().encode('nonce')

/** RFC 9458 §4.4: the length of the response nonce and of the exported secret, max(Nn, Nk). */
export function responseNonceLength(aead: AeadParams): number {
  return Math.max(aead.nn, aead.nk)
}

/** RFC 9458 §4.4 steps 1, 3-5: derive the response AEAD key and nonce. */
export async function deriveResponseKeys(
  context: HpkeExporter,
  label: string,
  enc: Uint8Array,
  responseNonce: Uint8Array,
  aead: AeadParams,
): Promise<ResponseKeys> {
  const length = responseNonceLength(aead)
  if (responseNonce.length !== length) throw new RangeError('response nonce must be max(Nn, Nk) bytes')
  const secret = new Uint8Array(await context.export(new TextEncoder().encode(label), length))
  const salt = new Uint8Array(enc.length + responseNonce.length)
  salt.set(enc, 0)
  salt.set(responseNonce, enc.length)
  const prk = hkdfExtract(salt, secret)
  secret.fill(0)
  const keys = { aead, key: hkdfExpand(prk, KEY_LABEL, aead.nk), nonce: hkdfExpand(prk, NONCE_LABEL, aead.nn) }
  prk.fill(0)
  return keys
}

/** RFC 9458 §4.4 steps 6-7: response_nonce || Seal(aead_key, aead_nonce, "", response). */
export function sealResponse(keys: ResponseKeys, responseNonce: Uint8Array, response: Uint8Array): Uint8Array {
  const ct = aeadSeal(keys.aead, keys.key, keys.nonce, new Uint8Array(0), response)
  const out = new Uint8Array(responseNonce.length + ct.length)
  out.set(responseNonce, 0)
  out.set(ct, responseNonce.length)
  return out
}

/** RFC 9458 §4.4, client side: open the ciphertext that follows the nonce. Throws `OHTTP_RESPONSE_INVALID`. */
export function openResponse(keys: ResponseKeys, ciphertext: Uint8Array): Uint8Array {
  const pt = aeadOpen(keys.aead, keys.key, keys.nonce, new Uint8Array(0), ciphertext)
  if (pt === undefined) throw new OhttpError('OHTTP_RESPONSE_INVALID', 'the encapsulated response does not decrypt', { details: { length: ciphertext.length } })
  return pt
}
