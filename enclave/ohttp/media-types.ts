/**
 * Media types of Oblivious HTTP messages and key configurations.
 */

/** RFC 9458 §3.2, §9.1: a list of key configurations. */
export const MEDIA_TYPE_OHTTP_KEYS = 'application/ohttp-keys'
/** RFC 9458 §4.1, §9.2: an encapsulated request. */
export const MEDIA_TYPE_OHTTP_REQUEST = 'message/ohttp-req'
/** RFC 9458 §4.2, §9.3: an encapsulated response. */
export const MEDIA_TYPE_OHTTP_RESPONSE = 'message/ohttp-res'
/** draft-ietf-ohai-chunked-ohttp-08 §3, §8.1: a chunked encapsulated request. */
export const MEDIA_TYPE_OHTTP_CHUNKED_REQUEST = 'message/ohttp-chunked-req'
/** draft-ietf-ohai-chunked-ohttp-08 §3, §8.2: a chunked encapsulated response. */
export const MEDIA_TYPE_OHTTP_CHUNKED_RESPONSE = 'message/ohttp-chunked-res'
/** RFC 9292 §6: a Binary HTTP message. */
export const MEDIA_TYPE_BHTTP = 'message/bhttp'

/**
 * The essence of a Content-Type value: the type/subtype, lowercased, without
 * parameters or surrounding whitespace (RFC 9110 §8.3.1: type and subtype
 * are case-insensitive). None of the OHTTP media types defines parameters.
 */
export function mediaTypeEssence(contentType: string): string {
  const semi = contentType.indexOf(';')
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase()
}
