/**
 * Binary HTTP (RFC 9292), the plaintext inside OHTTP: decoding of requests
 * (enclave) and responses (client, incrementally), encoding of both.
 *
 * All hand-written here (the parser is bhttp-parser.ts). bhttp-js 0.2.1 was
 * the candidate library; it is used only by the tests, as an independent
 * implementation to check interoperability against, because it does not fit
 * a trust boundary or a stream:
 *
 * - its decoder has no bounds checks or limits: a known-length content that
 *   claims more bytes than remain is silently cut short, and a truncated
 *   message fails only by accident (a `TypeError` from `new Request`);
 * - it goes through fetch `Request`/`Response`/`Headers`, which collapse
 *   repeated fields (`Headers.set`), accept uppercase names, reject a
 *   request content with GET, and throw `RangeError`/`TypeError` rather than
 *   a parse error;
 * - its encoder drops the query string (`url.pathname`) and counts UTF-16
 *   code units instead of bytes for names and values, corrupting the
 *   message for a non-ASCII value;
 * - it has no indeterminate-length encoder and no incremental decoder, the
 *   two pieces streaming needs.
 *
 * Field values are strings with one character per byte (latin1), like a
 * fetch ByteString; names are lowercase ASCII. Decoders throw
 * `ENCLAVE_BHTTP_MALFORMED` (request, enclave side) or
 * `OHTTP_BHTTP_MALFORMED` (response, client side); encoders throw
 * `OHTTP_ARGUMENT_INVALID` for values a decoder would reject. No error
 * carries message bytes.
 */
import { EnclaveError } from '../errors.ts'
import {
  BhttpParser,
  fieldNameProblem,
  fieldSemanticsProblem,
  fieldValueProblem,
  requestControlProblem,
  type BhttpField,
  type BhttpLimits,
  type ParserEvent,
} from './bhttp-parser.ts'
import { OhttpError, invalidArgument } from './errors.ts'
import { varintSize, writeVarint } from './varint.ts'
import { concatBytes } from '../../attestation/bytes/concat.ts'

export type { BhttpField, BhttpLimits }

/** Limits for requests the enclave decodes: generous for prompts, small for everything else. */
export const DEFAULT_BHTTP_REQUEST_LIMITS: BhttpLimits = Object.freeze({
  maxControlDataLength: 8 * 1024,
  maxFieldLines: 128,
  maxFieldSectionLength: 64 * 1024,
  maxContentLength: 16 * 1024 * 1024,
  maxInformationalResponses: 0,
})

/** Limits for responses a client decodes; content streams through, so its size is not limited by default. */
export const DEFAULT_BHTTP_RESPONSE_LIMITS: BhttpLimits = Object.freeze({
  maxControlDataLength: 0,
  maxFieldLines: 128,
  maxFieldSectionLength: 64 * 1024,
  maxContentLength: Number.MAX_SAFE_INTEGER,
  maxInformationalResponses: 16,
})

/** RFC 9292 §3.3: the two framings. */
export type BhttpFraming = 'known-length' | 'indeterminate-length'

/** A decoded request (RFC 9292 §3.4). */
export interface BhttpRequest {
  readonly framing: BhttpFraming
  readonly method: string
  readonly scheme: string
  readonly authority: string
  /** Path and query, as sent (RFC 9113 §8.3.1 `:path`). */
  readonly path: string
  /** Header fields in order, repeats kept. */
  readonly headers: readonly BhttpField[]
  readonly content: Uint8Array
  readonly trailers: readonly BhttpField[]
}

/** An informational (1xx) response (RFC 9292 §3.5.1). */
export interface BhttpInformational {
  readonly status: number
  readonly headers: readonly BhttpField[]
}

/** A decoded response. */
export interface BhttpResponse {
  readonly status: number
  readonly headers: readonly BhttpField[]
  readonly content: Uint8Array
  readonly trailers: readonly BhttpField[]
  readonly informational: readonly BhttpInformational[]
}

/** Fields to encode: pairs in order (repeats allowed) or a record. Names are lowercased. */
export type BhttpFieldsInit = Iterable<readonly [string, string]> | Readonly<Record<string, string>>

/** What `encodeBhttpRequest` takes. */
export interface BhttpRequestInit {
  readonly method: string
  readonly scheme: string
  readonly authority: string
  readonly path: string
  readonly headers?: BhttpFieldsInit
  readonly content?: Uint8Array | string
  readonly trailers?: BhttpFieldsInit
}

/** What `encodeBhttpResponse` takes. */
export interface BhttpResponseInit {
  readonly status: number
  readonly headers?: BhttpFieldsInit
  readonly content?: Uint8Array | string
  readonly trailers?: BhttpFieldsInit
  readonly informational?: readonly { readonly status: number; readonly headers?: BhttpFieldsInit }[]
}

/** Events of the streaming response decoder, in message order. */
export type BhttpResponseEvent =
  | { readonly type: 'informational'; readonly status: number; readonly headers: readonly BhttpField[] }
  | { readonly type: 'head'; readonly status: number; readonly headers: readonly BhttpField[] }
  | { readonly type: 'content'; readonly data: Uint8Array }
  /** The last event: the message is complete once it is seen. */
  | { readonly type: 'trailers'; readonly trailers: readonly BhttpField[] }

// ---------------------------------------------------------------- decoding

function requestFail(reason: string, offset: number): never {
  throw new EnclaveError('ENCLAVE_BHTTP_MALFORMED', reason, { details: { offset } })
}
function responseFail(reason: string, offset: number): never {
  throw new OhttpError('OHTTP_BHTTP_MALFORMED', reason, { details: { offset } })
}


/**
 * Decode a whole Binary HTTP request, either framing (RFC 9292 §3.1, §3.2),
 * padding and truncation allowed (§3.8). Throws `ENCLAVE_BHTTP_MALFORMED`
 * for anything invalid, for a response, or for a limit exceeded. The content
 * may be a view into `bytes`.
 */
export function decodeBhttpRequest(bytes: Uint8Array, limits: BhttpLimits = DEFAULT_BHTTP_REQUEST_LIMITS): BhttpRequest {
  const parser = new BhttpParser('request', limits, requestFail)
  const events = [...parser.push(bytes), ...parser.end()]
  let control: Extract<ParserEvent, { kind: 'request-control' }> | undefined
  let headers: readonly BhttpField[] = []
  let trailers: readonly BhttpField[] = []
  const content: Uint8Array[] = []
  let contentLength = 0
  for (const e of events) {
    if (e.kind === 'request-control') control = e
    else if (e.kind === 'fields') {
      if (e.section === 'header') headers = e.fields
      else trailers = e.fields
    } else if (e.kind === 'content') {
      content.push(e.data)
      contentLength += e.data.length
    }
  }
  const framing: BhttpFraming = parser.knownLength ? 'known-length' : 'indeterminate-length'
  const { method, scheme, authority, path } = control!
  return { framing, method, scheme, authority, path, headers, content: concatBytes(content), trailers }
}

/**
 * Streaming decoder of a Binary HTTP response (RFC 9292), either framing.
 * `push` returns the events the new bytes complete — content as soon as it
 * arrives — and `end` checks that the message may stop where it did. Throws
 * `OHTTP_BHTTP_MALFORMED`; events already returned stay returned (RFC 9292
 * §4: an error can be found after incremental processing).
 */
export class BhttpResponseDecoder {
  readonly #parser: BhttpParser
  #status = 0

  constructor(limits: BhttpLimits = DEFAULT_BHTTP_RESPONSE_LIMITS) {
    this.#parser = new BhttpParser('response', limits, responseFail)
  }

  push(bytes: Uint8Array): BhttpResponseEvent[] {
    return this.#map(this.#parser.push(bytes))
  }

  end(): BhttpResponseEvent[] {
    return this.#map(this.#parser.end())
  }

  /** True once the trailers event was returned. */
  get complete(): boolean {
    return this.#parser.complete
  }

  #map(events: ParserEvent[]): BhttpResponseEvent[] {
    const out: BhttpResponseEvent[] = []
    for (const e of events) {
      switch (e.kind) {
        case 'status':
          this.#status = e.status
          break
        case 'fields':
          if (e.section === 'informational') out.push({ type: 'informational', status: this.#status, headers: e.fields })
          else if (e.section === 'header') out.push({ type: 'head', status: this.#status, headers: e.fields })
          else out.push({ type: 'trailers', trailers: e.fields })
          break
        case 'content':
          out.push({ type: 'content', data: e.data })
          break
        default:
          break
      }
    }
    return out
  }
}

/** Decode a response read from `source` (any fragmentation), yielding events as they complete. */
export async function* decodeBhttpResponseStream(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  limits: BhttpLimits = DEFAULT_BHTTP_RESPONSE_LIMITS,
): AsyncGenerator<BhttpResponseEvent, void, undefined> {
  const decoder = new BhttpResponseDecoder(limits)
  for await (const bytes of source) yield* decoder.push(bytes)
  yield* decoder.end()
}

/** Decode a whole Binary HTTP response. Throws `OHTTP_BHTTP_MALFORMED`. */
export function decodeBhttpResponse(bytes: Uint8Array, limits: BhttpLimits = DEFAULT_BHTTP_RESPONSE_LIMITS): BhttpResponse {
  const decoder = new BhttpResponseDecoder(limits)
  const events = [...decoder.push(bytes), ...decoder.end()]
  const informational: BhttpInformational[] = []
  let status = 0
  let headers: readonly BhttpField[] = []
  let trailers: readonly BhttpField[] = []
  const content: Uint8Array[] = []
  let contentLength = 0
  for (const e of events) {
    if (e.type === 'informational') informational.push({ status: e.status, headers: e.headers })
    else if (e.type === 'head') ({ status, headers } = e)
    else if (e.type === 'content') {
      content.push(e.data)
      contentLength += e.data.length
    } else trailers = e.trailers
  }
  return { status, headers, content: concatBytes(content), trailers, informational }
}

// ---------------------------------------------------------------- encoding

/** A string as latin1 bytes; a character above U+00FF cannot be a byte of an HTTP message. */
function latin1Bytes(s: string, what: string): Uint8Array {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) invalidArgument(`${what} has a character above U+00FF`)
  return new Uint8Array(Buffer.from(s, 'latin1'))
}

function contentBytes(content: Uint8Array | string | undefined): Uint8Array {
  if (content === undefined) return new Uint8Array(0)
  return typeof content === 'string' ? new TextEncoder().encode(content) : content
}

/** Validated field lines as [name, value] byte pairs, names lowercased. */
function fieldLines(init: BhttpFieldsInit | undefined): [Uint8Array, Uint8Array][] {
  if (init === undefined) return []
  const pairs: Iterable<readonly [string, string]> =
    Symbol.iterator in init ? (init as Iterable<readonly [string, string]>) : Object.entries(init as Record<string, string>)
  const out: [Uint8Array, Uint8Array][] = []
  for (const [rawName, value] of pairs) {
    const name = String(rawName).toLowerCase()
    const n = latin1Bytes(name, 'a field name')
    const v = latin1Bytes(String(value), 'a field value')
    const problem = fieldNameProblem(n) ?? fieldValueProblem(v) ?? fieldSemanticsProblem(name, String(value))
    if (problem !== undefined) invalidArgument(problem)
    out.push([n, v])
  }
  return out
}

function fieldLinesLength(lines: readonly [Uint8Array, Uint8Array][]): number {
  let n = 0
  for (const [name, value] of lines) n += varintSize(name.length) + name.length + varintSize(value.length) + value.length
  return n
}

/** A growable writer for the encoders. */
class Writer {
  #buf: Uint8Array
  #p = 0
  constructor(size: number) {
    this.#buf = new Uint8Array(size)
  }
  varint(v: number): this {
    this.#p = writeVarint(this.#buf, this.#p, v)
    return this
  }
  bytes(b: Uint8Array): this {
    this.#buf.set(b, this.#p)
    this.#p += b.length
    return this
  }
  /** Length-prefixed bytes. */
  prefixed(b: Uint8Array): this {
    return this.varint(b.length).bytes(b)
  }
  lines(lines: readonly [Uint8Array, Uint8Array][]): this {
    for (const [name, value] of lines) this.prefixed(name).prefixed(value)
    return this
  }
  done(): Uint8Array {
    if (this.#p !== this.#buf.length) throw new Error('BHTTP writer size mismatch')
    return this.#buf
  }
}

/** Size of a field section in the given framing (RFC 9292 §3.1: length prefix; §3.2: zero terminator). */
function sectionSize(lines: readonly [Uint8Array, Uint8Array][], known: boolean): number {
  const body = fieldLinesLength(lines)
  return known ? varintSize(body) + body : body + 1
}

function writeSection(w: Writer, lines: readonly [Uint8Array, Uint8Array][], known: boolean): void {
  if (known) w.varint(fieldLinesLength(lines)).lines(lines)
  else w.lines(lines).varint(0)
}

function checkFinalStatus(status: number): void {
  if (!Number.isInteger(status) || status < 200 || status > 599) invalidArgument('a final status code is in 200..599')
}
function checkInformationalStatus(status: number): void {
  if (!Number.isInteger(status) || status < 100 || status > 199 || status === 101) invalidArgument('an informational status code is in 100..199, not 101')
}

export interface EncodeBhttpRequestOptions {
  /** Default known-length (RFC 9292 §3.1). */
  readonly framing?: BhttpFraming
  /** Zero bytes to append (RFC 9292 §3.8), e.g. to hide the length. Default 0. */
  readonly padding?: number
}

/** Encode a request (RFC 9292 §3.1 or §3.2), never truncated. Throws `OHTTP_ARGUMENT_INVALID` for what a decoder would reject. */
export function encodeBhttpRequest(request: BhttpRequestInit, options: EncodeBhttpRequestOptions = {}): Uint8Array {
  const known = (options.framing ?? 'known-length') === 'known-length'
  const padding = options.padding ?? 0
  if (!Number.isSafeInteger(padding) || padding < 0) invalidArgument('padding is a non-negative integer')
  const { method, scheme, authority, path } = request
  const problem = requestControlProblem(method, scheme, authority, path)
  if (problem !== undefined) invalidArgument(problem)
  const control = [method, scheme, authority, path].map((s) => latin1Bytes(s, 'control data'))
  const headers = fieldLines(request.headers)
  const trailers = fieldLines(request.trailers)
  const content = contentBytes(request.content)
  const contentSize = known ? varintSize(content.length) + content.length : content.length > 0 ? varintSize(content.length) + content.length + 1 : 1
  let size = 1 + padding + sectionSize(headers, known) + contentSize + sectionSize(trailers, known)
  for (const c of control) size += varintSize(c.length) + c.length
  const w = new Writer(size).varint(known ? 0 : 2)
  for (const c of control) w.prefixed(c)
  writeSection(w, headers, known)
  if (known) w.prefixed(content)
  else {
    if (content.length > 0) w.prefixed(content)
    w.varint(0)
  }
  writeSection(w, trailers, known)
  return w.bytes(new Uint8Array(padding)).done()
}

/** Encode a response in known-length framing (RFC 9292 §3.1): the form for an answer that is complete before it is sent. */
export function encodeBhttpResponse(response: BhttpResponseInit): Uint8Array {
  checkFinalStatus(response.status)
  const informational = (response.informational ?? []).map((i) => {
    checkInformationalStatus(i.status)
    return { status: i.status, lines: fieldLines(i.headers) }
  })
  const headers = fieldLines(response.headers)
  const trailers = fieldLines(response.trailers)
  const content = contentBytes(response.content)
  let size = 1 + varintSize(response.status) + sectionSize(headers, true) + varintSize(content.length) + content.length + sectionSize(trailers, true)
  for (const i of informational) size += varintSize(i.status) + sectionSize(i.lines, true)
  const w = new Writer(size).varint(1)
  for (const i of informational) {
    w.varint(i.status)
    writeSection(w, i.lines, true)
  }
  w.varint(response.status)
  writeSection(w, headers, true)
  w.prefixed(content)
  writeSection(w, trailers, true)
  return w.done()
}

/**
 * Start an indeterminate-length response (RFC 9292 §3.2): framing indicator
 * 3, any informational responses, the final status and the header section.
 * Follow with `contentChunk` for each piece of content (each can be sealed
 * as its own OHTTP chunk) and finish with `endResponse`. For a streamed
 * answer, leave out `content-length` unless it is known to be exact: the
 * decoder checks it.
 */
export function beginResponse(
  status: number,
  headers?: BhttpFieldsInit,
  informational: readonly { readonly status: number; readonly headers?: BhttpFieldsInit }[] = [],
): Uint8Array {
  checkFinalStatus(status)
  const infos = informational.map((i) => {
    checkInformationalStatus(i.status)
    return { status: i.status, lines: fieldLines(i.headers) }
  })
  const lines = fieldLines(headers)
  let size = 1 + varintSize(status) + sectionSize(lines, false)
  for (const i of infos) size += varintSize(i.status) + sectionSize(i.lines, false)
  const w = new Writer(size).varint(3)
  for (const i of infos) {
    w.varint(i.status)
    writeSection(w, i.lines, false)
  }
  w.varint(status)
  writeSection(w, lines, false)
  return w.done()
}

/** One indeterminate-length content chunk (RFC 9292 §3.2): varint length || data. Empty data gives empty output (a chunk length is 1..). */
export function contentChunk(data: Uint8Array | string): Uint8Array {
  const bytes = contentBytes(data)
  if (bytes.length === 0) return new Uint8Array(0)
  return new Writer(varintSize(bytes.length) + bytes.length).prefixed(bytes).done()
}

/** End an indeterminate-length response: the content terminator (0), the trailer section and its terminator (RFC 9292 §3.2). */
export function endResponse(trailers?: BhttpFieldsInit): Uint8Array {
  const lines = fieldLines(trailers)
  const w = new Writer(1 + sectionSize(lines, false)).varint(0)
  writeSection(w, lines, false)
  return w.done()
}
