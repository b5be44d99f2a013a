/**
 * A FIFO of byte fragments as they arrive from the network, for the two
 * incremental parsers here (chunked OHTTP responses and Binary HTTP
 * messages). Fragments are kept as given and only copied when a read spans
 * two of them, so content bytes pass through without being buffered twice.
 */
import { varintLengthOf } from './varint.ts'

export class ByteQueue {
  #parts: Uint8Array[] = []
  #head = 0 // index of the first unread part
  #offset = 0 // read offset inside parts[head]
  #length = 0

  /** Unread bytes. */
  get length(): number {
    return this.#length
  }

  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return
    this.#parts.push(bytes)
    this.#length += bytes.length
  }

  /** The unread byte at `index` (0 = next), or undefined past the end. */
  byteAt(index: number): number | undefined {
    if (index >= this.#length) return undefined
    let i = this.#head
    let at = this.#offset + index
    while (at >= this.#parts[i]!.length) {
      at -= this.#parts[i]!.length
      i++
    }
    return this.#parts[i]![at]
  }

  /** The varint `at` bytes from the front (RFC 9000 §16) without consuming it, or undefined if not all of it has arrived. */
  peekVarint(at = 0): { value: number; size: number } | undefined {
    const first = this.byteAt(at)
    if (first === undefined) return undefined
    const size = varintLengthOf(first)
    if (at + size > this.#length) return undefined
    let value = first & 0x3f
    for (let k = 1; k < size; k++) value = value * 256 + this.byteAt(at + k)!
    return { value, size }
  }

  /** Consume exactly `n` bytes (n <= length): a view when they lie in one fragment, a copy otherwise. */
  take(n: number): Uint8Array {
    if (n > this.#length) throw new RangeError('ByteQueue.take past the end')
    if (n === 0) return new Uint8Array(0)
    const part = this.#parts[this.#head]!
    if (part.length - this.#offset >= n) {
      const out = part.subarray(this.#offset, this.#offset + n)
      this.#advance(n)
      return out
    }
    const out = new Uint8Array(n)
    let filled = 0
    while (filled < n) {
      const chunk = this.takeUpTo(n - filled)
      out.set(chunk, filled)
      filled += chunk.length
    }
    return out
  }

  /** Consume up to `n` bytes from the first fragment only (never copies); empty when the queue is. */
  takeUpTo(n: number): Uint8Array {
    if (this.#length === 0 || n <= 0) return new Uint8Array(0)
    const part = this.#parts[this.#head]!
    const k = Math.min(n, part.length - this.#offset)
    const out = part.subarray(this.#offset, this.#offset + k)
    this.#advance(k)
    return out
  }

  /** Consume everything. */
  takeAll(): Uint8Array {
    return this.take(this.#length)
  }

  /** Drop `n` bytes. */
  skip(n: number): void {
    if (n > this.#length) throw new RangeError('ByteQueue.skip past the end')
    this.#advance(n)
  }

  #advance(n: number): void {
    this.#length -= n
    while (n > 0) {
      const part = this.#parts[this.#head]!
      const left = part.length - this.#offset
      if (n < left) {
        this.#offset += n
        return
      }
      n -= left
      this.#head++
      this.#offset = 0
    }
    if (this.#head > 64 || this.#head === this.#parts.length) {
      this.#parts = this.#parts.slice(this.#head)
      this.#head = 0
    }
  }
}
