/**
 * Parsed certificates and OCSP responses, interned by their DER.
 *
 * Parsing is a pure function of the bytes, so identical DER may share one
 * parsed object. That matters because successful signature checks are
 * remembered on the parsed object with a copy of the exact bytes verified
 * (`verifiedOnce` in ecdsa.ts): a provider presents the same CA
 * certificates, PCK chain and daily OCSP responses with every request, and
 * interning lets the second sighting cost byte comparisons instead of ECDSA
 * verifications. Nothing about validity is cached: every time window,
 * revocation and chain rule is evaluated on every call, and a byte changed
 * in place in a shared object makes its next check verify afresh (and fail).
 * Bounded, least recently used out first.
 */

const CAPACITY = 4096
const cache = new Map<string, object>()

/** `parse(der)`, or the object an earlier parse of the same `kind` and bytes produced. */
export function interned<T extends object>(kind: string, der: Uint8Array, parse: (der: Uint8Array) => T): T {
  const id = `${kind}:${Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64')}`
  const hit = cache.get(id)
  if (hit !== undefined) {
    cache.delete(id)
    cache.set(id, hit)
    return hit as T
  }
  const value = parse(der)
  if (cache.size >= CAPACITY) cache.delete(cache.keys().next().value!)
  cache.set(id, value)
  return value
}

/** Forget every interned object (benchmarks measuring a first sighting; memory pressure). */
export function clearParseCache(): void {
  cache.clear()
}
