/**
 * A minimal OHTTP client for tests and benchmarks: encapsulate one OpenAI
 * request to a key config, send it through some transport (the enclave
 * directly, or the gateway over HTTP), and decode the chunked answer event
 * by event, with its trailers (receipt or error code).
 */
import {
  decodeBhttpResponseStream,
  encapsulateRequest,
  encodeBhttpRequest,
  parseKeyConfigs,
} from '../../enclave/ohttp/index.ts'
import type { ReceiptJson } from '../../enclave/receipts.ts'

export type Transport = (body: Uint8Array, contentType: string, signal: AbortSignal) => Promise<{ contentType: string; chunks: AsyncIterable<Uint8Array> }>

export interface InnerResponse {
  status: number
  headers: readonly (readonly [string, string])[]
  /** Content chunks in arrival order (one SSE event each when streamed). */
  events: Uint8Array[]
  /** When each content chunk was decrypted (performance.now()). */
  arrivedAt: number[]
  trailers: Record<string, string>
  receipt?: ReceiptJson
}

export const text = (b: Uint8Array) => new TextDecoder().decode(b)

/** The request body bytes as sent (what the receipt's requestHash covers). */
export function requestBody(body: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(body))
}

export interface EncapsulateOptions {
  /**
   * The inner `date` field (RFC 9110 §6.6.1, IMF-fixdate): the gateway
   * refuses requests dated outside its window (RFC 9458 §6.5). Default now;
   * `null` leaves the field out.
   */
  readonly date?: Date | string | null
}

/** The inner `date` field value: IMF-fixdate (RFC 9110 §5.6.7), which `toUTCString()` writes. */
export function httpDate(d: Date = new Date()): string {
  return d.toUTCString()
}

/** Encapsulate `body` for `path` to the first key config of `keyConfigs`. */
export async function encapsulate(keyConfigs: Uint8Array, path: string, body: Uint8Array | unknown, method = 'POST', options: EncapsulateOptions = {}) {
  const [config] = parseKeyConfigs(keyConfigs)
  const content = body instanceof Uint8Array ? body : requestBody(body)
  const date = options.date === undefined ? httpDate() : options.date === null ? null : typeof options.date === 'string' ? options.date : httpDate(options.date)
  const bhttp = encodeBhttpRequest({
    method,
    scheme: 'https',
    authority: 'gateway.invalid',
    path,
    headers: { 'content-type': 'application/json', ...(date === null ? {} : { date }) },
    content,
  })
  return encapsulateRequest(config!, bhttp, { chunked: true })
}

/** An encapsulated request (what `encapsulate` resolves to). */
export type EncapsulatedTestRequest = Awaited<ReturnType<typeof encapsulate>>

/** One round trip; the answer is decoded as it streams. */
export async function ohttpRequest(
  keyConfigs: Uint8Array,
  transport: Transport,
  path: string,
  body: unknown,
  options: { signal?: AbortSignal; onEvent?: (e: Uint8Array) => void; date?: Date | string | null } = {},
): Promise<InnerResponse> {
  const req = await encapsulate(keyConfigs, path, body, 'POST', options.date === undefined ? {} : { date: options.date })
  return sendEncapsulated(req, transport, options)
}

/** Send a request encapsulated beforehand (benchmarks keep the client's encryption out of the timed path) and decode the answer. */
export async function sendEncapsulated(
  req: EncapsulatedTestRequest,
  transport: Transport,
  options: { signal?: AbortSignal; onEvent?: (e: Uint8Array) => void } = {},
): Promise<InnerResponse> {
  const res = await transport(req.body, req.contentType, options.signal ?? new AbortController().signal)
  const out: InnerResponse = { status: 0, headers: [], events: [], arrivedAt: [], trailers: {} }
  for await (const ev of decodeBhttpResponseStream(req.open(res.contentType, res.chunks))) {
    if (ev.type === 'head') {
      out.status = ev.status
      out.headers = ev.headers
    } else if (ev.type === 'content') {
      out.events.push(ev.data)
      out.arrivedAt.push(performance.now())
      options.onEvent?.(ev.data)
    } else if (ev.type === 'trailers') {
      out.trailers = Object.fromEntries(ev.trailers)
    }
  }
  const r = out.trailers['cgw-receipt']
  if (r) out.receipt = JSON.parse(Buffer.from(r, 'base64').toString('utf8'))
  return out
}
