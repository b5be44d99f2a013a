/**
 * A bounds-checked little-endian cursor over a byte view, shared by the
 * binary parsers (DCAP quotes, SPDM reports). Reading past `end` calls the
 * parser's own `truncated` function, so each format keeps its error code.
 * Values are views into the input, never copies. No crypto.
 */
export type Truncated = (what: string, offset: number, needed: number, available: number) => never

export class ByteReader {
  constructor(
    readonly buf: Uint8Array,
    public pos: number,
    readonly end: number,
    private readonly truncated: Truncated,
  ) {}

  /** A reader over the next `n` bytes, failing the same way; advances this one past them. */
  sub(n: number, what: string): ByteReader {
    const start = this.pos
    this.take(n, what)
    return new ByteReader(this.buf, start, start + n, this.truncated)
  }

  take(n: number, what: string): Uint8Array {
    if (n < 0 || this.pos + n > this.end) this.truncated(what, this.pos, n, this.end - this.pos)
    const v = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return v
  }

  u8(what: string): number {
    return this.take(1, what)[0]!
  }

  u16(what: string): number {
    const b = this.take(2, what)
    return b[0]! | (b[1]! << 8)
  }

  u24(what: string): number {
    const b = this.take(3, what)
    return b[0]! | (b[1]! << 8) | (b[2]! << 16)
  }

  u32(what: string): number {
    const b = this.take(4, what)
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0
  }
}
