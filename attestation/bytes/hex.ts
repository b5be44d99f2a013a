/** Lower-case hex of a byte view (no copy), for details, reports and map keys. */
export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}
