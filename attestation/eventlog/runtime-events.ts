/**
 * Runtime events: what userspace extends into an RTMR after boot, and how a
 * verifier replays them onto a verified quote.
 *
 * The firmware's CCEL stops at the kernel: the kernel does not log what
 * userspace writes into RTMR2/RTMR3, so whoever extends must keep its own
 * log and ship it with the evidence (EvidenceBundle.runtimeEvents). The
 * record is dstack's runtime event (dstack cc-eventlog `RuntimeEvent`), so
 * one replay covers a dstack CVM's own events (app-id, compose-hash, ...)
 * and ours:
 *
 *     { "imr": 3, "event": "cgw-release", "digest": "<96 hex>", "payload": "<hex>" }
 *
 *     digest = SHA-384( u32le(0x08000001) ‖ ":" ‖ event ‖ ":" ‖ payload )
 *     RTMR[imr] = SHA-384( RTMR[imr] ‖ digest )            (TDG.MR.RTMR.EXTEND)
 *
 * `digest` is redundant on purpose: it is what was written to the register,
 * and a record whose digest is not the hash of its own event and payload is
 * malformed (never silently recomputed).
 *
 * The gateway extends two events into RTMR3 at start (enclave/index.ts):
 * `cgw-release` (payload: SHA-384 of the release manifest, deploy/release)
 * and `cgw-config` (payload: {@link gatewayConfigHash}). `cgw measure`
 * computes the same two records from source and config.
 *
 * A verifier that holds both logs of a bundle (the CCEL and the runtime
 * events) calls {@link verifyEvidenceEvents}: the CCEL vouches for RTMR0..3
 * as boot left them, the runtime events are replayed on top, and the
 * events of every register that replays are returned for `requiredEvents`
 * (the client, `cgw verify-quote --runtime-events`, `cgw measure`'s policy).
 *
 * Verification only: parsing, hashing, replay, comparison. No I/O.
 */
import { createHash } from 'node:crypto'
import { ConfigError, ParseError, VerificationError } from '../errors.ts'
import { hex } from '../bytes/hex.ts'
import { TPM_ALG_SHA384, type CcEvent, type RtmrIndex } from './event-log.ts'
import { checkRtmrValues, extendedEvents, extendRtmr, replayRtmrs, RTMR_COUNT, RTMR_LENGTH, verifyRtmrs } from './replay.ts'

/**
 * Event type mixed into every runtime event digest: dstack's
 * DSTACK_RUNTIME_EVENT_TYPE (cc-eventlog/src/runtime_events.rs). Outside the
 * TCG PFP §10.4.1 ranges, so no firmware event can collide with it.
 */
export const RUNTIME_EVENT_TYPE = 0x08000001

/** The RTMRs userspace may extend: RTMR2 (OS) and RTMR3 (applications), as the TDX guest driver allows. */
export type RuntimeRtmr = 2 | 3

/** One runtime event record (JSON form). */
export interface RuntimeEvent {
  readonly imr: RuntimeRtmr
  /** The event name (UTF-8, no ":" so the digest input stays unambiguous). */
  readonly event: string
  /** SHA-384 digest that was extended, 96 lower-case hex digits. */
  readonly digest: string
  /** The payload, lower-case hex (may be empty). */
  readonly payload: string
}

/** Gateway start events (enclave/index.ts extends them in this order). */
export const GATEWAY_RELEASE_EVENT = 'cgw-release'
export const GATEWAY_CONFIG_EVENT = 'cgw-config'

/** Bounds that keep a hostile log from costing more than it is worth. */
const MAX_EVENTS = 4096
const MAX_NAME_LENGTH = 256
const MAX_PAYLOAD_BYTES = 64 * 1024

function malformed(what: string, index?: number): ParseError {
  return new ParseError('ATTESTATION_EVENTLOG_MALFORMED', `runtime event log: ${what}`, { details: { what, ...(index === undefined ? {} : { index }) } })
}

function checkName(event: unknown, index?: number): string {
  if (typeof event !== 'string' || event.length === 0 || event.length > MAX_NAME_LENGTH || event.includes(':') || !/^[\x21-\x7e]+$/.test(event)) {
    throw malformed('event name must be 1-256 printable ASCII characters without ":"', index)
  }
  return event
}

/** SHA-384( u32le(type) ‖ ":" ‖ event ‖ ":" ‖ payload ): the value extended for one event. */
export function runtimeEventDigest(event: string, payload: Uint8Array): Uint8Array {
  checkName(event)
  const type = Buffer.alloc(4)
  type.writeUInt32LE(RUNTIME_EVENT_TYPE)
  return new Uint8Array(createHash('sha384').update(type).update(':').update(event, 'ascii').update(':').update(payload).digest())
}

/** A record for `event` with `payload` on `imr`. */
export function createRuntimeEvent(imr: RuntimeRtmr, event: string, payload: Uint8Array): RuntimeEvent {
  if (imr !== 2 && imr !== 3) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'runtime events extend RTMR2 or RTMR3 only')
  if (payload.length > MAX_PAYLOAD_BYTES) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `runtime event payload exceeds ${MAX_PAYLOAD_BYTES} bytes`)
  return { imr, event, digest: hex(runtimeEventDigest(event, payload)), payload: hex(payload) }
}

/**
 * A runtime event log as received (JSON value) into checked records. Strict:
 * unknown keys, non-hex fields, an imr other than 2 or 3, or a digest that
 * is not the hash of its own event and payload are ATTESTATION_EVENTLOG_MALFORMED.
 */
export function parseRuntimeEvents(value: unknown): RuntimeEvent[] {
  if (!Array.isArray(value)) throw malformed('expected a list of events')
  if (value.length > MAX_EVENTS) throw malformed(`more than ${MAX_EVENTS} events`)
  return value.map((v, i): RuntimeEvent => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw malformed('expected an object', i)
    const o = v as Record<string, unknown>
    for (const k of Object.keys(o)) if (!['imr', 'event', 'digest', 'payload'].includes(k)) throw malformed(`unknown key "${k}"`, i)
    if (o.imr !== 2 && o.imr !== 3) throw malformed('imr must be 2 or 3', i)
    const event = checkName(o.event, i)
    if (typeof o.payload !== 'string' || !/^([0-9a-f]{2})*$/.test(o.payload) || o.payload.length > MAX_PAYLOAD_BYTES * 2) throw malformed('payload must be lower-case hex', i)
    if (typeof o.digest !== 'string' || !/^[0-9a-f]{96}$/.test(o.digest)) throw malformed('digest must be 48 bytes of lower-case hex', i)
    const expected = hex(runtimeEventDigest(event, Buffer.from(o.payload, 'hex')))
    if (expected !== o.digest) throw malformed('digest is not the hash of its event and payload', i)
    return { imr: o.imr, event, digest: o.digest, payload: o.payload }
  })
}

/**
 * Extend `events` onto `base` (RTMR0..3 before userspace ran: the CCEL
 * replay, or zeros), in order. Hashes only; compares nothing.
 */
export function replayRuntimeEvents(events: readonly RuntimeEvent[], base?: readonly Uint8Array[]): Uint8Array[] {
  const start = base ?? Array.from({ length: RTMR_COUNT }, () => new Uint8Array(RTMR_LENGTH))
  checkRtmrValues(start, 'base')
  const rtmrs = start.map((r) => r.slice())
  for (const e of events) {
    rtmrs[e.imr] = extendRtmr(rtmrs[e.imr]!, Buffer.from(e.digest, 'hex'))
  }
  return rtmrs
}

/** A verified runtime event, shaped like a CCEL event for the policy's `requiredEvents` check. */
export interface VerifiedRuntimeEvent extends RuntimeEvent {
  readonly rtmr: RuntimeRtmr
  readonly digests: ReadonlyMap<number, Uint8Array>
}

export interface VerifyRuntimeEventsOptions {
  /**
   * RTMR0..3 as they stood before userspace extended anything: the CCEL
   * replay (`replayRtmrs` of a log `verifyRtmrs` accepted) or, without a
   * CCEL, zeros (the default).
   */
  readonly base?: readonly Uint8Array[]
  /** Registers to compare; default [3]. Every register an event extends must be among them. */
  readonly rtmrs?: readonly RuntimeRtmr[]
}

/**
 * Replay `events` onto `base` and compare with the RTMRs of a quote whose
 * signature was already verified. Throws ATTESTATION_RTMR_MISMATCH
 * (details `{ rtmr, expected, actual }`) for a register that differs, and
 * ATTESTATION_EVENTLOG_MALFORMED for an event on a register not compared
 * (it would be unvouched for). Returns the events, now bound to the quote.
 */
export function verifyRuntimeEvents(events: readonly RuntimeEvent[], quoteRtmrs: readonly Uint8Array[], options: VerifyRuntimeEventsOptions = {}): VerifiedRuntimeEvent[] {
  checkRtmrValues(quoteRtmrs, 'quoteRtmrs')
  const compared = options.rtmrs ?? [3]
  if (compared.length === 0 || compared.some((r) => r !== 2 && r !== 3)) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'options.rtmrs must name RTMR2 and/or RTMR3')
  }
  const checked = parseRuntimeEvents(events)
  checked.forEach((e, i) => {
    if (!compared.includes(e.imr)) throw malformed(`event extends RTMR${e.imr}, which is not compared`, i)
  })
  const replayed = replayRuntimeEvents(checked, options.base)
  for (const i of compared) {
    if (hex(replayed[i]!) !== hex(quoteRtmrs[i]!)) {
      throw new VerificationError('ATTESTATION_RTMR_MISMATCH', `replaying the runtime events does not reproduce RTMR${i}`, {
        details: { rtmr: i, expected: hex(quoteRtmrs[i]!), actual: hex(replayed[i]!) },
      })
    }
  }
  return checked.map((e) => ({ ...e, rtmr: e.imr, digests: new Map([[TPM_ALG_SHA384, new Uint8Array(Buffer.from(e.digest, 'hex'))]]) }))
}

/** An event bound to a verified quote, in the shape the policy's `requiredEvents` check reads. */
export interface BoundEvent {
  readonly rtmr: number | null
  readonly digests: ReadonlyMap<number, Uint8Array>
}

/** What {@link verifyEvidenceEvents} vouched for. */
export interface VerifiedEvidenceEvents {
  /** The registers whose replay equals the quote's. */
  readonly rtmrs: readonly RtmrIndex[]
  /** CCEL events of those registers, then the runtime events, in log order. */
  readonly events: readonly BoundEvent[]
  /** The runtime events (all of them: each extends a compared register). */
  readonly runtime: readonly VerifiedRuntimeEvent[]
}

/**
 * Bind the events of an evidence bundle to a verified quote: `ccel` (the
 * parsed CCEL's events, or null when the bundle has none) and `runtime`
 * (its runtime event log, checked by {@link parseRuntimeEvents}).
 *
 * Compared: every register in `needed` (e.g. the rtmrs of a policy's
 * requiredEvents) and every register a runtime event extends — except a
 * register nothing could vouch for: without a CCEL, RTMR0/1 (and RTMR2/3
 * without runtime events) are left out rather than compared with zeros,
 * so the policy then reports its required events missing. RTMR0/1 replay
 * from the CCEL alone; RTMR2/3 replay the runtime events onto the CCEL's
 * value (zeros without a CCEL): the CCEL never reproduces a register that
 * userspace extended, so comparing it alone would always fail there.
 *
 * Returns null when no register is compared. Throws as verifyRtmrs and
 * {@link verifyRuntimeEvents}: ATTESTATION_RTMR_MISMATCH, ATTESTATION_EVENTLOG_MALFORMED.
 */
export function verifyEvidenceEvents(
  ccel: readonly CcEvent[] | null,
  runtime: readonly RuntimeEvent[],
  quoteRtmrs: readonly Uint8Array[],
  needed: readonly number[],
): VerifiedEvidenceEvents | null {
  checkRtmrValues(quoteRtmrs, 'quoteRtmrs')
  const checked = parseRuntimeEvents(runtime)
  const extendedAtRuntime = new Set<number>(checked.map((e) => e.imr))
  const compared = ([0, 1, 2, 3] as const).filter((r) => (needed.includes(r) || extendedAtRuntime.has(r)) && (ccel !== null || extendedAtRuntime.has(r)))
  if (compared.length === 0) return null
  const events: BoundEvent[] = []
  const boot = compared.filter((r) => r < 2)
  if (ccel !== null && boot.length > 0) events.push(...verifyRtmrs(ccel, quoteRtmrs, { rtmrs: boot }))
  const late = compared.filter((r): r is RuntimeRtmr => r >= 2)
  let verified: VerifiedRuntimeEvent[] = []
  if (late.length > 0) {
    verified = verifyRuntimeEvents(checked, quoteRtmrs, { ...(ccel !== null ? { base: replayRtmrs(ccel) } : {}), rtmrs: late })
    // The CCEL's events of these registers are the base the matching replay started from: vouched for too.
    if (ccel !== null) events.push(...extendedEvents(ccel, late))
    events.push(...verified)
  }
  return { rtmrs: compared, events, runtime: verified }
}

/**
 * Canonical JSON (RFC 8785 JCS for the values a config holds: objects with
 * keys sorted by UTF-16 code units, arrays, strings, booleans, null, and
 * numbers in ECMAScript shortest form). Non-finite numbers and other types
 * are refused: they have no canonical form.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'canonical JSON: non-finite number')
    return JSON.stringify(value)
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (typeof value === 'object') {
    const o = value as Record<string, unknown>
    const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort()
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`
  }
  throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `canonical JSON: cannot encode a ${typeof value}`)
}

/**
 * Config paths that hold secrets: removed before hashing, because the hash
 * is public (it is extended into RTMR3 and printed by `cgw measure`) and a
 * hash of a low-entropy secret is a guessable secret.
 */
export const GATEWAY_CONFIG_SECRET_PATHS: readonly (readonly string[])[] = [['enclave', 'engine', 'apiKey']]

/** The config with every secret path removed (a copy). */
export function redactGatewayConfig(config: unknown): unknown {
  const copy = structuredClone(config) as Record<string, unknown>
  for (const path of GATEWAY_CONFIG_SECRET_PATHS) {
    let node: unknown = copy
    for (const key of path.slice(0, -1)) node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined
    if (typeof node === 'object' && node !== null) delete (node as Record<string, unknown>)[path.at(-1)!]
  }
  return copy
}

/**
 * SHA-384 of the canonical JSON of the checked gateway config (defaults
 * filled in, environment applied: gateway/config.ts `GatewayConfig`), with
 * secrets removed. Hashing the checked form means a file that spells out a
 * default and one that leaves it out measure the same.
 */
export function gatewayConfigHash(config: unknown): Uint8Array {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'gatewayConfigHash: expected a config object')
  return new Uint8Array(createHash('sha384').update(canonicalJson(redactGatewayConfig(config)), 'utf8').digest())
}

/** The two records the gateway extends into RTMR3 at start, in order. */
export function gatewayStartEvents(measurements: { readonly releaseHash: Uint8Array; readonly configHash: Uint8Array }): [RuntimeEvent, RuntimeEvent] {
  for (const [k, v] of Object.entries(measurements)) {
    if (!(v instanceof Uint8Array) || v.length !== 48) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `${k} must be a 48-byte SHA-384 digest`)
  }
  return [createRuntimeEvent(3, GATEWAY_RELEASE_EVENT, measurements.releaseHash), createRuntimeEvent(3, GATEWAY_CONFIG_EVENT, measurements.configHash)]
}
