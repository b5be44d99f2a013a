/**
 * One copy of several byte arrays, end to end. (Buffer.concat would do, but
 * returns a Buffer over Node's shared pool; these are plain, owned bytes.)
 */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}
