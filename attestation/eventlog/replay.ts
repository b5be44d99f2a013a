/**
 * Replay a TDX event log into RTMR values, then compare them with a quote's.
 *
 * Computing and comparing are separate steps (transparency-dev/merkle
 * computes a root, then compares it): `replayRtmrs` only hashes, and
 * `verifyRtmrs` reports the first register whose replay differs from the
 * quote. The quote's RTMRs must come from a quote whose signature was already
 * verified; this module checks no signature. Only after `verifyRtmrs` returns
 * may a policy look at individual events (a kernel or application digest).
 */

import { createHash } from 'node:crypto'
import { ConfigError, ParseError, VerificationError } from '../errors.ts'
import { EV_NO_ACTION, TPM_ALG_SHA384 } from './event-log.ts'
import type { CcEvent, RtmrIndex } from './event-log.ts'
import { hex } from '../bytes/hex.ts'

/** TDX module spec (TDG.MR.RTMR.EXTEND): a TD has four RTMRs. */
export const RTMR_COUNT = 4

/** TDX module spec: RTMRs are SHA-384 registers, 48 bytes, zero at TD start. */
export const RTMR_LENGTH = 48

const ALL_RTMRS: readonly RtmrIndex[] = [0, 1, 2, 3]

/**
 * True for an event that was extended into a register. TCG PFP §10.4.1:
 * EV_NO_ACTION events are informational and never extended.
 */
function isExtended(event: CcEvent): boolean {
  return event.eventType !== EV_NO_ACTION
}

/**
 * One extension, TDG.MR.RTMR.EXTEND: SHA-384(register ‖ digest), a new
 * 48-byte value. The one place the rule is written: the CCEL replay, the
 * runtime event replay and the enclave's extenders all use it. Callers
 * check the lengths (each reports a wrong one with its own error).
 */
export function extendRtmr(register: Uint8Array, digest: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(createHash('sha384').update(register).update(digest).digest())
}

/**
 * The extended events (EV_NO_ACTION left out) of the registers in `rtmrs`,
 * in log order: what a matching replay of those registers vouches for.
 */
export function extendedEvents(events: readonly CcEvent[], rtmrs: readonly number[]): CcEvent[] {
  return events.filter((e) => isExtended(e) && e.rtmr !== null && rtmrs.includes(e.rtmr))
}

/**
 * Refuse anything but RTMR0..3 as four 48-byte values (ConfigError
 * ATTESTATION_OPTIONS_INVALID naming `what`).
 */
export function checkRtmrValues(rtmrs: readonly Uint8Array[], what: string): void {
  if (rtmrs.length !== RTMR_COUNT || rtmrs.some((r) => !(r instanceof Uint8Array) || r.length !== RTMR_LENGTH)) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `${what} must be ${RTMR_COUNT} values of ${RTMR_LENGTH} bytes`)
  }
}

/**
 * Replay the SHA-384 digests of `events`, in order, into the four RTMRs:
 * each starts as 48 zero bytes and `RTMR[i] = SHA-384(RTMR[i] || digest)`
 * (TDG.MR.RTMR.EXTEND). EV_NO_ACTION events are skipped, as firmware never
 * extends them.
 *
 * Throws `ParseError` (`ATTESTATION_EVENTLOG_MALFORMED`) for an extended event
 * with no 48-byte SHA-384 digest (never skipped: skipping would let a log
 * omit what it claims to measure) or one on MR index 0 (MRTD is built by the
 * TDX module when the TD is created; no event can extend it).
 */
export function replayRtmrs(events: readonly CcEvent[]): Uint8Array[] {
  const rtmrs: Uint8Array[] = ALL_RTMRS.map(() => new Uint8Array(RTMR_LENGTH))
  for (const event of events) {
    if (!isExtended(event)) continue
    const fail = (what: string): ParseError =>
      new ParseError('ATTESTATION_EVENTLOG_MALFORMED', `event log: ${what}`, {
        details: { offset: event.offset, what, index: event.index },
      })
    if (event.rtmr === null) throw fail(`event ${event.index} extends MR index ${event.mrIndex}, which is not an RTMR`)
    const digest = event.digests.get(TPM_ALG_SHA384)
    if (digest === undefined) throw fail(`event ${event.index} extends RTMR${event.rtmr} but has no SHA-384 digest`)
    if (digest.length !== RTMR_LENGTH) throw fail(`event ${event.index} has a ${digest.length}-byte SHA-384 digest`)
    rtmrs[event.rtmr] = extendRtmr(rtmrs[event.rtmr]!, digest)
  }
  return rtmrs
}

/** Options of {@link verifyRtmrs}. */
export interface VerifyRtmrsOptions {
  /**
   * Which RTMRs the log must reproduce. Default: all four. Narrow it only when
   * a register is extended by something this log does not record (e.g. RTMR3
   * by a runtime agent with its own log); events of the registers left out are
   * then not returned, since nothing vouches for them.
   */
  readonly rtmrs?: readonly RtmrIndex[]
}

/**
 * Replay `events` and compare the result with `quoteRtmrs` (RTMR0..RTMR3 of a
 * verified quote, 48 bytes each), register by register in index order.
 *
 * Returns the extended events of the compared registers: those are now bound
 * to the quote and safe to pin in a policy. EV_NO_ACTION events are never
 * returned (their digests are not extended, so nothing vouches for them).
 *
 * Throws `VerificationError` (`ATTESTATION_RTMR_MISMATCH`, details
 * `{ rtmr, expected, actual }`: expected is the quote's value, actual the
 * replay's, both hex) for the first register that differs; `ParseError` as
 * {@link replayRtmrs}; `ConfigError` (`ATTESTATION_OPTIONS_INVALID`) unless
 * four 48-byte RTMRs and a non-empty set of register indices are given.
 */
export function verifyRtmrs(
  events: readonly CcEvent[],
  quoteRtmrs: readonly Uint8Array[],
  options: VerifyRtmrsOptions = {},
): readonly CcEvent[] {
  return verifyRtmrsReplay(events, quoteRtmrs, options).events
}

/**
 * {@link verifyRtmrs}, also returning the replay it compared (all four
 * registers, as {@link replayRtmrs}), for a caller that needs both without
 * replaying the log twice.
 */
export function verifyRtmrsReplay(
  events: readonly CcEvent[],
  quoteRtmrs: readonly Uint8Array[],
  options: VerifyRtmrsOptions = {},
): { readonly events: readonly CcEvent[]; readonly rtmrs: Uint8Array[] } {
  checkRtmrValues(quoteRtmrs, 'quoteRtmrs')
  const compared = options.rtmrs ?? ALL_RTMRS
  if (compared.length === 0 || compared.some((i) => !ALL_RTMRS.includes(i))) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'options.rtmrs must name at least one RTMR index in 0..3')
  }
  const replayed = replayRtmrs(events)
  for (const i of ALL_RTMRS) {
    if (!compared.includes(i)) continue
    const expected = quoteRtmrs[i]!
    const actual = replayed[i]!
    if (!Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).equals(expected)) {
      throw new VerificationError('ATTESTATION_RTMR_MISMATCH', `replaying the event log does not reproduce RTMR${i}`, {
        details: { rtmr: i, expected: hex(expected), actual: hex(actual) },
      })
    }
  }
  return { events: extendedEvents(events, compared), rtmrs: replayed }
}
