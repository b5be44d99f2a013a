/**
 * Inside a dstack CVM the gateway runs in a container and reaches the TD
 * through dstack's guest agent, an HTTP API on the unix socket
 * `/var/run/dstack.sock` (dstack guest agent API; EmitEvent needs dstack
 * OS ≥ 0.5.0):
 *
 *   POST /GetQuote  { "report_data": "<hex, 64 bytes>" }
 *        → { "quote": "<hex>", "event_log": "<JSON list>", ... }
 *   POST /EmitEvent { "event": "<name>", "payload": "<hex>" }  → 200, empty
 *
 * EmitEvent extends RTMR3 with dstack's runtime event digest — the same rule
 * as attestation/eventlog/runtime-events.ts — and appends the record to the
 * agent's own event log, which GetQuote returns with every quote:
 *
 *   { "imr": 3, "event_type": 134217729, "digest": "<hex>", "event": "...", "event_payload": "<hex>" }
 *
 * So here the agent's log is the runtime event log: it holds dstack's boot
 * events (app-id, compose-hash, ...) and the gateway's, in order, and the
 * evidence bundle carries all of it. It also outlives a container restart
 * (the agent runs for the whole boot), so the extender reports it
 * (`log()`) and the gateway emits nothing this boot already holds
 * (runtime-measurement.ts emitGatewayStart). The agent is injectable;
 * tests drive a fake agent on a unix socket.
 */
import { request } from 'node:http'
import { BaseError, ConfigError } from '../../attestation/errors.ts'
import { hex } from '../../attestation/bytes/hex.ts'
import { parseRuntimeEvents, RUNTIME_EVENT_TYPE, runtimeEventDigest, type RuntimeEvent } from '../../attestation/eventlog/runtime-events.ts'
import { EnclaveError } from '../errors.ts'
import type { QuoteProvider } from '../types.ts'
import { RtmrError, type RtmrExtender } from './rtmr-extend.ts'
import { errnoOf } from './errno.ts'

/** Where dstack mounts its guest agent into containers (dstack docs, "Guest Agent RPC API"). */
export const DSTACK_SOCKET_PATH = '/var/run/dstack.sock'
/** A quote and its event log are a few tens of KiB; more is not an answer. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024
/** Default bound on one agent call: quote generation is a host round trip of well under a second. */
export const DEFAULT_DSTACK_TIMEOUT_MS = 30_000

/** One POST of JSON to the agent; resolves with the HTTP status and body text. */
export type DstackCall = (path: string, body: unknown) => Promise<{ readonly status: number; readonly body: string }>

/** The default call: node:http over the unix socket. */
export function dstackSocketCall(socketPath = DSTACK_SOCKET_PATH, timeoutMs = DEFAULT_DSTACK_TIMEOUT_MS): DstackCall {
  return (path, body) =>
    new Promise((resolve, reject) => {
      const data = Buffer.from(JSON.stringify(body))
      const req = request(
        { socketPath, path, method: 'POST', headers: { host: 'dstack', 'content-type': 'application/json', 'content-length': data.length }, timeout: timeoutMs },
        (res) => {
          const chunks: Buffer[] = []
          let size = 0
          res.on('data', (c: Buffer) => {
            size += c.length
            if (size > MAX_RESPONSE_BYTES) req.destroy(new Error('dstack agent answer too large'))
            else chunks.push(c)
          })
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
          res.on('error', reject)
        },
      )
      req.on('timeout', () => req.destroy(new Error(`dstack agent did not answer within ${timeoutMs} ms`)))
      req.on('error', reject)
      req.end(data)
    })
}

/** A dstack agent event log entry into our record; dstack's boot events and ours share the format. */
function toRuntimeEvents(eventLog: unknown): RuntimeEvent[] {
  let list: unknown = eventLog
  if (typeof eventLog === 'string') list = JSON.parse(eventLog)
  if (!Array.isArray(list)) throw new Error('event_log is not a list')
  const runtime = list
    .filter((e: Record<string, unknown>) => e?.event_type === RUNTIME_EVENT_TYPE && (e.imr === 2 || e.imr === 3))
    .map((e: Record<string, unknown>) => ({ imr: e.imr, event: e.event, digest: typeof e.digest === 'string' ? e.digest.toLowerCase() : e.digest, payload: typeof e.event_payload === 'string' ? e.event_payload.toLowerCase() : e.event_payload }))
  // Each record's digest must be the hash of its own event and payload.
  return parseRuntimeEvents(runtime)
}

export interface DstackProviders {
  readonly quotes: QuoteProvider
  readonly extender: RtmrExtender
  /** The runtime events of the agent's log as of the latest quote (dstack's and the gateway's, in order). */
  runtimeEvents(): readonly RuntimeEvent[]
  /** Fetch the log now (after extending, before serving): the first bundle then carries it even before a quote raced it. */
  refresh(): Promise<void>
}

/** Quotes, RTMR3 extension and the runtime log, all through one dstack guest agent. */
export function createDstackProviders(options: { readonly call?: DstackCall } = {}): DstackProviders {
  const call = options.call ?? dstackSocketCall()
  let latest: readonly RuntimeEvent[] = []

  const unavailable = (what: string, e?: unknown) =>
    new EnclaveError('ENCLAVE_QUOTE_PROVIDER_UNAVAILABLE', `dstack guest agent: ${what}`, { ...(e === undefined ? {} : { cause: e }), details: { path: DSTACK_SOCKET_PATH, errno: errnoOf(e) } })

  async function getQuote(reportData: Uint8Array): Promise<{ quote: Uint8Array; events: RuntimeEvent[] }> {
    let res
    try {
      res = await call('/GetQuote', { report_data: hex(reportData) })
    } catch (e) {
      throw unavailable(`cannot reach ${DSTACK_SOCKET_PATH} (mount it into the gateway container)`, e)
    }
    if (res.status !== 200) throw unavailable(`GetQuote answered HTTP ${res.status}`)
    let doc: { quote?: unknown; event_log?: unknown }
    try {
      doc = JSON.parse(res.body)
    } catch (e) {
      throw unavailable('GetQuote did not answer JSON', e)
    }
    if (typeof doc.quote !== 'string' || !/^(0x)?([0-9a-fA-F]{2})+$/.test(doc.quote)) throw unavailable('GetQuote answered no hex quote')
    let events: RuntimeEvent[]
    try {
      events = toRuntimeEvents(doc.event_log ?? '[]')
    } catch (e) {
      throw new EnclaveError('ENCLAVE_EVIDENCE_UNAVAILABLE', 'dstack guest agent: its event log is malformed', { cause: e, details: { step: 'event-log', provider: 'dstack' } })
    }
    return { quote: new Uint8Array(Buffer.from(doc.quote.replace(/^0x/, ''), 'hex')), events }
  }

  /** The agent's log as of now (a quote over zero report data carries it), kept as the latest. */
  async function readLog(): Promise<readonly RuntimeEvent[]> {
    latest = (await getQuote(new Uint8Array(64))).events
    return latest
  }

  return {
    quotes: {
      name: 'dstack',
      async getQuote(reportData, o = {}) {
        o.signal?.throwIfAborted()
        if (!(reportData instanceof Uint8Array) || reportData.length !== 64) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'dstack: reportData must be 64 bytes')
        const { quote, events } = await getQuote(reportData)
        latest = events
        return quote
      },
    },
    extender: {
      name: 'dstack-emit-event',
      async extend(rtmr, digest, event) {
        if (rtmr !== 3) throw new RtmrError('ENCLAVE_RTMR_EXTEND_FAILED', 'the dstack agent extends RTMR3 only')
        // The agent computes the digest itself: refuse to send an event whose digest would differ from the one logged.
        if (hex(runtimeEventDigest(event.event, Buffer.from(event.payload, 'hex'))) !== hex(digest)) {
          throw new RtmrError('ENCLAVE_RTMR_EXTEND_FAILED', 'the digest is not the runtime event digest of its event and payload')
        }
        let res
        try {
          res = await call('/EmitEvent', { event: event.event, payload: event.payload })
        } catch (e) {
          throw new RtmrError('ENCLAVE_RTMR_UNAVAILABLE', `cannot reach the dstack agent at ${DSTACK_SOCKET_PATH}`, { cause: e, details: { path: DSTACK_SOCKET_PATH, errno: errnoOf(e) } })
        }
        if (res.status !== 200) throw new RtmrError('ENCLAVE_RTMR_EXTEND_FAILED', `EmitEvent answered HTTP ${res.status} (needs dstack OS >= 0.5.0)`, { details: { status: res.status } })
      },
      read: async () => {
        throw new RtmrError('ENCLAVE_RTMR_UNAVAILABLE', 'the dstack agent does not read RTMRs; its event log is the record')
      },
      // The agent's log as of now (a quote over zero report data carries it): what this boot already extended.
      async log() {
        try {
          return await readLog()
        } catch (e) {
          throw new RtmrError('ENCLAVE_RTMR_UNAVAILABLE', `cannot read the dstack agent's event log at ${DSTACK_SOCKET_PATH}`, { cause: e, details: { path: DSTACK_SOCKET_PATH, code: e instanceof BaseError ? e.code : undefined } })
        }
      },
    },
    runtimeEvents: () => latest,
    // The same read as log(), with the agent's own error (the caller wraps it).
    async refresh() {
      await readLog()
    },
  }
}
