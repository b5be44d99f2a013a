/**
 * The Binary HTTP parser (RFC 9292): one incremental state machine for
 * requests and responses, in both framings, fed bytes in any fragmentation.
 * Internal to this folder; bhttp.ts wraps it into the request decoder (whole
 * message, enclave) and the streaming response decoder (client).
 *
 * Strict: everything RFC 9292 makes invalid is rejected, plus the HTTP/2
 * rules it imports (RFC 9292 §3.6 → RFC 9113 §8.2.1, §8.2.2, §8.3.1):
 * lowercase token field names, no NUL/CR/LF or edge whitespace in values,
 * no pseudo-fields, no connection-specific fields, a `content-length` that
 * matches the content, status codes in range (no 101). What RFC 9292 lets
 * an encoder vary is accepted: non-minimal varints, truncation at the end of
 * a section (§3.1, §3.2), zero padding (§3.8). Every length is checked
 * against a limit before anything is buffered.
 *
 * Content is passed on as it arrives, without buffering; field sections are
 * buffered up to their limit.
 */
import { ByteQueue } from './byte-queue.ts'

/** Limits on what a decoder accepts; each exceeded limit makes the message invalid. */
export interface BhttpLimits {
  /** Bytes in each of method, scheme, authority, path. */
  readonly maxControlDataLength: number
  /** Field lines in one field section. */
  readonly maxFieldLines: number
  /** Bytes of one field section (known-length: its Length; indeterminate: names + values). */
  readonly maxFieldSectionLength: number
  /** Bytes of content. */
  readonly maxContentLength: number
  /** Informational (1xx) responses before the final one. */
  readonly maxInformationalResponses: number
}

export type BhttpField = readonly [name: string, value: string]

export type ParserEvent =
  | { readonly kind: 'request-control'; readonly method: string; readonly scheme: string; readonly authority: string; readonly path: string }
  | { readonly kind: 'status'; readonly status: number }
  | { readonly kind: 'fields'; readonly section: 'informational' | 'header' | 'trailer'; readonly fields: readonly BhttpField[] }
  | { readonly kind: 'content'; readonly data: Uint8Array }
  | { readonly kind: 'complete' }

/** Reports an invalid message; must throw. `offset` is where in the message the problem was found. */
export type FailFn = (reason: string, offset: number) => never

const enum S {
  Framing,
  Control,
  Status,
  FieldsKnownLength,
  FieldsKnownBody,
  FieldsIndeterminate,
  ContentKnownLength,
  ContentKnownBody,
  ContentIndeterminateLength,
  ContentIndeterminateBody,
  Padding,
}

/** RFC 9110 §5.6.2 tchar, lowercase only for field names (RFC 9113 §8.2.1). */
const TCHAR = new Uint8Array(256)
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1
const METHOD_CHAR = TCHAR.slice()
for (let c = 0x41; c <= 0x5a; c++) METHOD_CHAR[c] = 1

/** RFC 9113 §8.2.2: connection-specific fields make an HTTP/2 message malformed, hence a Binary HTTP one invalid. */
const CONNECTION_SPECIFIC = new Set(['connection', 'proxy-connection', 'keep-alive', 'transfer-encoding', 'upgrade'])

const latin1 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1')

/** Why a field name is invalid (RFC 9113 §8.2.1; RFC 9292 §3.6), or undefined when it is valid. */
export function fieldNameProblem(name: Uint8Array): string | undefined {
  if (name.length === 0) return 'a field name is empty'
  for (const b of name) if (TCHAR[b] !== 1) return 'a field name has a character that is not a lowercase token character'
  return undefined
}

/** Why a field value is invalid (RFC 9113 §8.2.1), or undefined when it is valid. */
export function fieldValueProblem(value: Uint8Array): string | undefined {
  for (const b of value) if (b === 0x00 || b === 0x0a || b === 0x0d) return 'a field value contains NUL, CR or LF'
  if (value.length > 0) {
    const first = value[0]!
    const last = value[value.length - 1]!
    if (first === 0x20 || first === 0x09 || last === 0x20 || last === 0x09) return 'a field value starts or ends with whitespace'
  }
  return undefined
}

/** Why a field (already valid bytes) may not appear in a Binary HTTP message (RFC 9113 §8.2.2), or undefined. */
export function fieldSemanticsProblem(name: string, value: string): string | undefined {
  if (CONNECTION_SPECIFIC.has(name)) return 'a connection-specific field is present'
  if (name === 'te' && value !== 'trailers') return 'a te field other than "trailers" is present'
  return undefined
}

/** Why request control data is invalid (RFC 9292 §3.4 → RFC 9113 §8.3.1), or undefined. */
export function requestControlProblem(method: string, scheme: string, authority: string, path: string): string | undefined {
  if (method.length === 0) return 'the method is empty'
  for (let i = 0; i < method.length; i++) if (METHOD_CHAR[method.charCodeAt(i)] !== 1) return 'the method is not a token'
  const visible = (s: string) => {
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i)
      if (c < 0x21 || c > 0x7e) return false
    }
    return true
  }
  if (!visible(authority) || authority.includes('@')) return 'the authority has characters outside visible ASCII or userinfo'
  if (method === 'CONNECT') {
    if (scheme.length !== 0 || path.length !== 0) return 'a CONNECT request has a scheme or path'
    if (authority.length === 0) return 'a CONNECT request has no authority'
    return undefined
  }
  if (!/^[A-Za-z][A-Za-z0-9+.-]*$/.test(scheme)) return 'the scheme is not a URI scheme'
  if (path.length === 0) return 'the path is empty'
  if (!visible(path)) return 'the path has characters outside visible ASCII'
  if (path === '*' ? method !== 'OPTIONS' : path[0] !== '/') return 'the path is neither absolute nor "*" with OPTIONS'
  return undefined
}

/** Incremental RFC 9292 parser for one message of the expected kind. */
export class BhttpParser {
  readonly #kind: 'request' | 'response'
  readonly #limits: BhttpLimits
  readonly #fail: FailFn
  readonly #queue = new ByteQueue()
  #state = S.Framing
  #known = false // known-length framing
  #consumed = 0 // bytes of the message consumed so far
  #control: string[] = []
  #section: 'informational' | 'header' | 'trailer' = 'header'
  #sectionLength = 0 // known-length: declared length
  #fields: BhttpField[] = []
  #fieldBytes = 0 // indeterminate: names + values so far
  #informational = 0
  #remaining = 0 // bytes left in the current content (chunk)
  #contentLength = 0 // content bytes so far
  #contentChunks = 0 // indeterminate content chunks so far
  #expectedContentLength: number | undefined
  #completed = false // the `complete` event was emitted
  #done = false // end() was called

  constructor(kind: 'request' | 'response', limits: BhttpLimits, fail: FailFn) {
    this.#kind = kind
    this.#limits = limits
    this.#fail = fail
  }

  /** Feed bytes; returns the events they complete. */
  push(bytes: Uint8Array): ParserEvent[] {
    if (this.#done) this.#fail('bytes after the end of the message', this.#consumed)
    this.#queue.push(bytes)
    const events: ParserEvent[] = []
    this.#run(events)
    return events
  }

  /** The input ended: returns the remaining events (ending with `complete`) or fails for a message cut at a place RFC 9292 does not allow. */
  end(): ParserEvent[] {
    const events: ParserEvent[] = []
    if (this.#done) return events
    this.#run(events)
    if (this.#queue.length > 0) this.#fail('the message ends inside an item', this.#consumed)
    switch (this.#state) {
      case S.Padding:
        break
      case S.FieldsKnownLength:
      case S.FieldsIndeterminate:
        // RFC 9292 §3.1, §3.2: truncation only at the start of a section, and never before the final status.
        if (this.#section === 'informational' || (this.#state === S.FieldsIndeterminate && this.#fields.length > 0)) {
          this.#fail('the message is truncated inside a field section', this.#consumed)
        }
        if (this.#section === 'header') {
          events.push({ kind: 'fields', section: 'header', fields: [] })
          this.#checkContentLength()
        }
        events.push({ kind: 'fields', section: 'trailer', fields: [] })
        break
      case S.ContentKnownLength:
      case S.ContentIndeterminateLength:
        if (this.#state === S.ContentIndeterminateLength && this.#contentChunks > 0) this.#fail('the message is truncated inside its content', this.#consumed)
        this.#checkContentLength()
        events.push({ kind: 'fields', section: 'trailer', fields: [] })
        break
      default:
        this.#fail('the message is truncated', this.#consumed)
    }
    this.#done = true
    if (!this.#completed) {
      this.#completed = true
      events.push({ kind: 'complete' })
    }
    return events
  }

  #take(n: number): Uint8Array {
    this.#consumed += n
    return this.#queue.take(n)
  }

  /** Consume a varint if all of it is here. */
  #varint(): number | undefined {
    const v = this.#queue.peekVarint()
    if (v === undefined) return undefined
    this.#queue.skip(v.size)
    this.#consumed += v.size
    return v.value
  }

  #run(events: ParserEvent[]): void {
    const q = this.#queue
    const L = this.#limits
    for (;;) {
      switch (this.#state) {
        case S.Framing: {
          const f = this.#varint()
          if (f === undefined) return
          // RFC 9292 §3.3: 0 known-length request, 1 known-length response, 2 and 3 indeterminate.
          if (f > 3 || (f % 2 === 0) !== (this.#kind === 'request')) this.#fail(`framing indicator is not a ${this.#kind}`, 0)
          this.#known = f < 2
          this.#state = this.#kind === 'request' ? S.Control : S.Status
          break
        }
        case S.Control: {
          const len = q.peekVarint()
          if (len === undefined) return
          if (len.value > L.maxControlDataLength) this.#fail('a control data field exceeds its limit', this.#consumed)
          if (q.length < len.size + len.value) return
          this.#varint()
          this.#control.push(latin1(this.#take(len.value)))
          if (this.#control.length === 4) {
            const [method, scheme, authority, path] = this.#control as [string, string, string, string]
            const problem = requestControlProblem(method, scheme, authority, path)
            if (problem !== undefined) this.#fail(problem, this.#consumed)
            events.push({ kind: 'request-control', method, scheme, authority, path })
            this.#startFields('header')
          }
          break
        }
        case S.Status: {
          const status = this.#varint()
          if (status === undefined) return
          // RFC 9292 §3.5: informational 100..199, final 200..599; RFC 9113 §8.1.1: no 101 in HTTP/2.
          if (status >= 100 && status <= 199 && status !== 101) {
            if (++this.#informational > L.maxInformationalResponses) this.#fail('too many informational responses', this.#consumed)
            events.push({ kind: 'status', status })
            this.#startFields('informational')
          } else if (status >= 200 && status <= 599) {
            events.push({ kind: 'status', status })
            this.#startFields('header')
          } else {
            this.#fail('the status code is out of range', this.#consumed)
          }
          break
        }
        case S.FieldsKnownLength: {
          const len = this.#varint()
          if (len === undefined) return
          if (len > L.maxFieldSectionLength) this.#fail('a field section exceeds its length limit', this.#consumed)
          this.#sectionLength = len
          this.#state = S.FieldsKnownBody
          break
        }
        case S.FieldsKnownBody: {
          if (q.length < this.#sectionLength) return
          const start = this.#consumed
          const body = this.#take(this.#sectionLength)
          let p = 0
          while (p < body.length) p = this.#fieldLineIn(body, p, start)
          this.#endFields(events)
          break
        }
        case S.FieldsIndeterminate: {
          const nameLen = q.peekVarint()
          if (nameLen === undefined) return
          if (nameLen.value === 0) {
            this.#varint()
            this.#endFields(events)
            break
          }
          if (this.#fieldBytes + nameLen.value > L.maxFieldSectionLength) this.#fail('a field section exceeds its length limit', this.#consumed)
          const valueLen = q.peekVarint(nameLen.size + nameLen.value)
          if (valueLen === undefined) return
          if (this.#fieldBytes + nameLen.value + valueLen.value > L.maxFieldSectionLength) this.#fail('a field section exceeds its length limit', this.#consumed)
          const size = nameLen.size + nameLen.value + valueLen.size + valueLen.value
          if (q.length < size) return
          const start = this.#consumed
          const line = this.#take(size)
          this.#fieldLineIn(line, 0, start)
          this.#fieldBytes += nameLen.value + valueLen.value
          break
        }
        case S.ContentKnownLength: {
          const len = this.#varint()
          if (len === undefined) return
          if (len > L.maxContentLength) this.#fail('the content exceeds its limit', this.#consumed)
          this.#remaining = len
          this.#state = S.ContentKnownBody
          break
        }
        case S.ContentKnownBody: {
          if (this.#remaining > 0) {
            const data = q.takeUpTo(this.#remaining)
            if (data.length === 0) return
            this.#consumed += data.length
            this.#remaining -= data.length
            this.#contentLength += data.length
            events.push({ kind: 'content', data })
            if (this.#remaining > 0) return
          }
          this.#endContent()
          break
        }
        case S.ContentIndeterminateLength: {
          const len = this.#varint()
          if (len === undefined) return
          if (len === 0) {
            this.#endContent()
            break
          }
          if (this.#contentLength + len > L.maxContentLength) this.#fail('the content exceeds its limit', this.#consumed)
          this.#contentChunks++
          this.#remaining = len
          this.#state = S.ContentIndeterminateBody
          break
        }
        case S.ContentIndeterminateBody: {
          const data = q.takeUpTo(this.#remaining)
          if (data.length === 0) return
          this.#consumed += data.length
          this.#remaining -= data.length
          this.#contentLength += data.length
          events.push({ kind: 'content', data })
          if (this.#remaining === 0) this.#state = S.ContentIndeterminateLength
          break
        }
        case S.Padding: {
          // RFC 9292 §3.8: padding is zero bytes; non-zero padding makes the message invalid.
          const data = q.takeUpTo(q.length)
          if (data.length === 0) return
          for (let i = 0; i < data.length; i++) if (data[i] !== 0) this.#fail('non-zero padding', this.#consumed + i)
          this.#consumed += data.length
          break
        }
      }
    }
  }

  #startFields(section: 'informational' | 'header' | 'trailer'): void {
    this.#section = section
    this.#fields = []
    this.#fieldBytes = 0
    this.#state = this.#known ? S.FieldsKnownLength : S.FieldsIndeterminate
  }

  /** Parse one field line of `buf` at `p` (the whole line is in `buf`); returns the offset after it. */
  #fieldLineIn(buf: Uint8Array, p: number, base: number): number {
    const fail = (reason: string): never => this.#fail(reason, base + p)
    const nameLen = readVarintIn(buf, p) ?? fail('a field line runs past its section')
    // RFC 9292 §3.6: Name Length (i) = 1..
    if (nameLen.value === 0) fail('a field name is empty')
    if (nameLen.next + nameLen.value > buf.length) fail('a field line runs past its section')
    const name = buf.subarray(nameLen.next, nameLen.next + nameLen.value)
    const valueLen = readVarintIn(buf, nameLen.next + nameLen.value) ?? fail('a field line runs past its section')
    if (valueLen.next + valueLen.value > buf.length) fail('a field line runs past its section')
    const value = buf.subarray(valueLen.next, valueLen.next + valueLen.value)
    if (this.#fields.length >= this.#limits.maxFieldLines) fail('a field section has too many lines')
    const problem = fieldNameProblem(name) ?? fieldValueProblem(value)
    if (problem !== undefined) fail(problem)
    const n = latin1(name)
    const v = latin1(value)
    const semantic = fieldSemanticsProblem(n, v)
    if (semantic !== undefined) fail(semantic)
    if (n === 'content-length' && this.#section === 'header') {
      // RFC 9113 §8.1.1: a content-length that does not match the content makes the message malformed.
      if (!/^[0-9]{1,15}$/.test(v)) fail('content-length is not a decimal length')
      const cl = Number(v)
      if (this.#expectedContentLength !== undefined && this.#expectedContentLength !== cl) fail('content-length fields disagree')
      this.#expectedContentLength = cl
    }
    this.#fields.push([n, v])
    return valueLen.next + valueLen.value
  }

  #endFields(events: ParserEvent[]): void {
    events.push({ kind: 'fields', section: this.#section, fields: this.#fields })
    const section = this.#section
    this.#fields = []
    if (section === 'informational') this.#state = S.Status
    else if (section === 'header') this.#state = this.#known ? S.ContentKnownLength : S.ContentIndeterminateLength
    else {
      this.#state = S.Padding
      this.#completed = true
      events.push({ kind: 'complete' })
    }
  }

  #endContent(): void {
    this.#checkContentLength()
    this.#startFields('trailer')
  }

  #checkContentLength(): void {
    if (this.#expectedContentLength !== undefined && this.#expectedContentLength !== this.#contentLength) {
      this.#fail('content-length does not match the content', this.#consumed)
    }
  }

  /** Known-length framing (RFC 9292 §3.3 indicator 0 or 1); meaningful once the indicator is read. */
  get knownLength(): boolean {
    return this.#known
  }

  /** True once the whole message is read (only padding may follow). */
  get complete(): boolean {
    return this.#completed
  }
}

function readVarintIn(buf: Uint8Array, p: number): { value: number; next: number } | undefined {
  if (p >= buf.length) return undefined
  const size = 1 << (buf[p]! >>> 6)
  if (p + size > buf.length) return undefined
  let value = buf[p]! & 0x3f
  for (let i = 1; i < size; i++) value = value * 256 + buf[p + i]!
  return { value, next: p + size }
}
