/**
 * Incremental Server-Sent Events framing for OpenAI-compatible streams
 * (WHATWG HTML §9.2.6 "Interpreting an event stream"), fed TCP chunks as they
 * arrive and handing out one complete event at a time.
 *
 * Why a parser of our own rather than an EventSource library: the enclave
 * must forward each event the moment its blank line arrives (one chunked
 * OHTTP chunk per event), buffer at most one event, and pull events lazily
 * so the consumer's pace is the only pace. Work is linear in the bytes:
 * line breaks are found with `Buffer#indexOf` (memchr) and the next CR/LF
 * positions are cached per chunk, so a chunk holding many events is never
 * rescanned; no regular expression, and an event that lies inside one chunk
 * is handed out as a view of it, not a copy.
 *
 * Events come out in canonical form — field lines ended by LF, then one LF —
 * so the client can frame on `\n\n`: CRLF and lone CR line breaks are
 * rewritten and comment lines (`: keep-alive`) dropped. A block without a
 * `data` field dispatches nothing (§9.2.6) and is skipped.
 *
 * Stricter than the HTML spec on purpose, because OpenAI-compatible engines
 * promise JSON events: a field other than data/event/id/retry, or data that
 * is neither `[DONE]` nor shaped like a JSON object (first non-blank byte
 * `{`, last `}`), is ENGINE_BAD_RESPONSE. The full JSON parse is left to the
 * client, which parses every event anyway; doing it here too would cost a
 * UTF-8 decode and a parse per token inside the enclave.
 */
import { EngineError } from './errors.ts'

const LF = 0x0a
const CR = 0x0d
const COLON = 0x3a
const SPACE = 0x20
const TAB = 0x09
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d

const FIELD_DATA = Buffer.from('data')
const FIELD_EVENT = Buffer.from('event')
const FIELD_ID = Buffer.from('id')
const FIELD_RETRY = Buffer.from('retry')
/** OpenAI's end-of-stream sentinel (`data: [DONE]`). */
const DONE = Buffer.from('[DONE]')
const EMPTY = Buffer.alloc(0)

/** One dispatched event. */
export interface SseEvent {
  /** The event in canonical form: its field lines, each ended by LF, then one LF. */
  readonly bytes: Uint8Array
  /** True for OpenAI's terminator `data: [DONE]`. */
  readonly done: boolean
}

export interface SseParserOptions {
  /** Largest event (in bytes, as received) the parser will hold; a larger one is ENGINE_BAD_RESPONSE. */
  readonly maxEventBytes: number
}

/**
 * Pull parser: `feed(chunk)`, then call `next()` until it returns null, then
 * feed the next chunk. Holds the current chunk and the unfinished tail of one
 * event, nothing more.
 */
export class SseParser {
  readonly #maxEventBytes: number
  #chunk: Buffer = EMPTY
  /** Scan position in #chunk. */
  #pos = 0
  /** Start of the pending event in #chunk (earlier bytes of it are in #parts). */
  #start = 0
  /** Next LF / CR at or after #pos in #chunk; -1 when the chunk has no more. */
  #nextLf = -1
  #nextCr = -1
  /** Bytes of the pending event from earlier chunks (views, not copies). */
  #parts: Buffer[] = []
  #partsLength = 0
  /** No byte since the last line break: the next line break ends the event. */
  #lineEmpty = true
  /** The last byte consumed was CR, so an LF right after it is the same line break (CRLF). */
  #afterCr = false
  /** The pending event holds a CR and must be rewritten to LF line breaks. */
  #sawCr = false
  #events = 0

  constructor(options: SseParserOptions) {
    this.#maxEventBytes = options.maxEventBytes
  }

  /** Events dispatched so far (for error details). */
  get events(): number {
    return this.#events
  }

  /** Bytes of an event begun but not finished (a stream that ends here was cut). */
  get pendingBytes(): number {
    return this.#partsLength + (this.#chunk.length - this.#start)
  }

  /** Hand the parser the next chunk; call only once `next()` has returned null. */
  feed(chunk: Uint8Array): void {
    const c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    this.#chunk = c
    this.#pos = 0
    this.#start = 0
    this.#nextLf = c.indexOf(LF)
    this.#nextCr = c.indexOf(CR)
  }

  /** The next complete event of the fed chunks, or null when more input is needed. */
  next(): SseEvent | null {
    const c = this.#chunk
    const n = c.length
    while (this.#pos < n) {
      if (this.#nextLf !== -1 && this.#nextLf < this.#pos) this.#nextLf = c.indexOf(LF, this.#pos)
      if (this.#nextCr !== -1 && this.#nextCr < this.#pos) this.#nextCr = c.indexOf(CR, this.#pos)
      let i: number
      let isCr: boolean
      if (this.#nextCr === -1) {
        if (this.#nextLf === -1) break
        i = this.#nextLf
        isCr = false
      } else if (this.#nextLf === -1 || this.#nextCr < this.#nextLf) {
        i = this.#nextCr
        isCr = true
      } else {
        i = this.#nextLf
        isCr = false
      }
      if (i > this.#pos) {
        this.#lineEmpty = false
        this.#afterCr = false
      }
      this.#pos = i + 1
      if (!isCr && this.#afterCr) {
        // The LF of a CRLF. When that CR ended an event, the LF is the first
        // byte of the next one: leave it out so events start with a field.
        this.#afterCr = false
        if (this.#start === i && this.#parts.length === 0) this.#start = i + 1
        continue
      }
      this.#afterCr = isCr
      if (isCr) this.#sawCr = true
      if (!this.#lineEmpty) {
        this.#lineEmpty = true
        continue
      }
      const event = parseEvent(this.#take(this.#pos), this.#sawCr)
      this.#sawCr = false
      if (event !== null) {
        this.#events++
        return event
      }
    }
    // Chunk exhausted. Bytes after the last line break start (or continue) a line.
    if (this.#pos < n) {
      this.#lineEmpty = false
      this.#afterCr = false
    }
    // Keep the unfinished event's tail (a view) for the next chunk.
    if (this.#start < n) {
      this.#parts.push(c.subarray(this.#start))
      this.#partsLength += n - this.#start
      if (this.#partsLength > this.#maxEventBytes) throw tooLarge(this.#partsLength, this.#maxEventBytes)
    }
    this.#chunk = EMPTY
    this.#pos = 0
    this.#start = 0
    return null
  }

  /** The pending event's bytes up to `end` in the current chunk, as one buffer (copied only when split). */
  #take(end: number): Buffer {
    const tail = this.#chunk.subarray(this.#start, end)
    this.#start = end
    if (this.#parts.length === 0) {
      if (tail.length > this.#maxEventBytes) throw tooLarge(tail.length, this.#maxEventBytes)
      return tail
    }
    const length = this.#partsLength + tail.length
    if (length > this.#maxEventBytes) throw tooLarge(length, this.#maxEventBytes)
    this.#parts.push(tail)
    const whole = Buffer.concat(this.#parts, length)
    this.#parts = []
    this.#partsLength = 0
    return whole
  }
}

function tooLarge(bytes: number, max: number): EngineError {
  return new EngineError('ENGINE_BAD_RESPONSE', `an SSE event exceeds ${max} bytes`, {
    details: { reason: 'sse_event_too_large', bytes, maxEventBytes: max },
  })
}

function malformed(reason: string, events: Record<string, unknown> = {}): EngineError {
  return new EngineError('ENGINE_BAD_RESPONSE', `the engine sent a malformed SSE event (${reason})`, {
    details: { reason, ...events },
  })
}

/**
 * Read one complete event (its bytes end with the blank line's break): check
 * its fields, find [DONE], and give its canonical form. Null when it carries
 * no data (comments only, or only event/id/retry).
 */
function parseEvent(raw: Buffer, sawCr: boolean): SseEvent | null {
  const src = sawCr ? toLf(raw) : raw
  const n = src.length
  let dataLines = 0
  let comments = false
  let firstByte = -1
  let lastByte = -1
  let doneCandidate = false
  let i = 0
  while (i < n) {
    // Always found: canonicalised events end with LF.
    let e = src.indexOf(LF, i)
    if (e === -1) e = n
    if (e === i) break // the blank line
    if (src[i] === COLON) {
      comments = true
    } else {
      let k = i
      while (k < e && src[k] !== COLON) k++
      let v = k < e ? k + 1 : e
      if (v < e && src[v] === SPACE) v++
      const nameLength = k - i
      if (nameIs(src, i, nameLength, FIELD_DATA)) {
        dataLines++
        let s = v
        let t = e
        while (s < t && isBlank(src[s]!)) s++
        while (t > s && isBlank(src[t - 1]!)) t--
        if (s < t) {
          if (firstByte === -1) firstByte = src[s]!
          lastByte = src[t - 1]!
          doneCandidate = dataLines === 1 && t - s === DONE.length && src.compare(DONE, 0, DONE.length, s, t) === 0
        }
      } else if (!nameIs(src, i, nameLength, FIELD_EVENT) && !nameIs(src, i, nameLength, FIELD_ID) && !nameIs(src, i, nameLength, FIELD_RETRY)) {
        throw malformed('sse_unknown_field', { lineBytes: e - i })
      }
    }
    i = e + 1
  }
  if (dataLines === 0) return null
  const bytes = comments ? withoutComments(src) : src
  if (dataLines === 1 && doneCandidate) return { bytes, done: true }
  if (firstByte !== OPEN_BRACE || lastByte !== CLOSE_BRACE) throw malformed('sse_data_not_json', { dataLines })
  return { bytes, done: false }
}

function isBlank(b: number): boolean {
  return b === SPACE || b === TAB
}

function nameIs(src: Buffer, at: number, length: number, name: Buffer): boolean {
  if (length !== name.length) return false
  for (let j = 0; j < length; j++) if (src[at + j] !== name[j]) return false
  return true
}

/** CRLF and lone CR → LF (a copy; only events that use CR pay for it). */
function toLf(raw: Buffer): Buffer {
  const out = Buffer.allocUnsafe(raw.length)
  let o = 0
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i]!
    if (b === CR) {
      out[o++] = LF
      if (raw[i + 1] === LF) i++
    } else {
      out[o++] = b
    }
  }
  return out.subarray(0, o)
}

/** The event without its comment lines (LF-only input that ends with the blank line). */
function withoutComments(src: Buffer): Buffer {
  const keep: Buffer[] = []
  let length = 0
  let i = 0
  while (i < src.length) {
    let e = src.indexOf(LF, i)
    if (e === -1) e = src.length - 1
    if (e === i) break
    if (src[i] !== COLON) {
      const line = src.subarray(i, e + 1)
      keep.push(line)
      length += line.length
    }
    i = e + 1
  }
  keep.push(Buffer.from([LF]))
  return Buffer.concat(keep, length + 1)
}
