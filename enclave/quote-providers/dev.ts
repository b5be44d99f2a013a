/**
 * Development TEE providers: a QuoteProvider whose quotes come from a dev
 * quote signer (attestation/dev) and an EventLogProvider serving the dev
 * TD's firmware event log (attestation/dev/ccel.ts createDevCcel).
 *
 * ============================================================================
 *  NOT FOR PRODUCTION. Dev quotes are signed by keys in this process and
 *  prove nothing about any hardware; verifiers accept them only under a
 *  policy pinning the dev root's fingerprint. The dev event log likewise
 *  describes a boot no firmware performed.
 * ============================================================================
 *
 * Dev quotes carry the measurements given here and zeros elsewhere, except
 * the RTMRs: unless given, RTMR0..2 are the replay of the dev CCEL (as a
 * real TD's are the replay of its firmware's log) and RTMR3 is zero, so the
 * pair `createDevQuoteProvider` + `createDevEventLogProvider` (same `ccel`,
 * both defaulting to `createDevCcel()`) yields evidence whose event log
 * replays to its quote: RTMR replay, `requiredEvents` for RTMR0-2 and the
 * log auditor (LOG_EVENTLOG_MISSING otherwise) all run their real path.
 *
 * `rtmrs` is the dev TEE's live registers (rtmr-extend.ts
 * createMemoryRtmrs), which the gateway extends with its release and config
 * hashes exactly as a real TD extends RTMR3, so `cgw measure` can be checked
 * against a dev quote. They are whole register values: to keep the quote
 * consistent with the event log they must start from the CCEL's replay
 * (`createMemoryRtmrs(ccel.rtmrs)`, and the same values as the runtime
 * measurer's `base`).
 */
import { ConfigError } from '../../attestation/errors.ts'
import { createDevCcel, type DevCcel } from '../../attestation/dev/ccel.ts'
import type { DevQuoteInput, DevQuoteSigner } from '../../attestation/dev/quote-signer.ts'
import type { EventLogProvider, QuoteProvider } from '../types.ts'

/** TDX REPORTDATA size (TDX module ABI, TDREPORT_STRUCT.REPORTMACSTRUCT.REPORTDATA). */
const REPORT_DATA_SIZE = 64

export interface DevQuoteProviderOptions {
  readonly signer: DevQuoteSigner
  /**
   * Everything of the TD report but REPORTDATA (MRTD, RTMRs, ...); zeros
   * when absent, but for RTMRs (see `ccel`).
   */
  readonly measurements?: Omit<DevQuoteInput, 'reportData'>
  /**
   * Live RTMR0..3 read at every quote (createMemoryRtmrs in
   * rtmr-extend.ts: the dev TEE's registers that runtime events extend);
   * overrides `measurements.rtmrs`.
   */
  readonly rtmrs?: () => readonly Uint8Array[]
  /**
   * The dev TD's firmware event log: without `rtmrs` or `measurements.rtmrs`
   * the quote's RTMRs are its replay. Default `createDevCcel()`; give
   * createDevEventLogProvider the same one.
   */
  readonly ccel?: DevCcel
}

export function createDevQuoteProvider(options: DevQuoteProviderOptions): QuoteProvider {
  const { signer, measurements = {}, rtmrs, ccel } = options ?? ({} as DevQuoteProviderOptions)
  if (typeof signer?.signQuote !== 'function') throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'createDevQuoteProvider: signer must be a createDevQuoteSigner result')
  // The registers as the dev firmware left them (what the dev event log replays to), unless given.
  const booted = measurements.rtmrs ?? (rtmrs ? undefined : (ccel ?? createDevCcel()).rtmrs)
  return {
    name: 'dev',
    async getQuote(reportData, o = {}) {
      o.signal?.throwIfAborted()
      if (!(reportData instanceof Uint8Array) || reportData.length !== REPORT_DATA_SIZE) {
        throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `dev quote provider: reportData must be ${REPORT_DATA_SIZE} bytes`)
      }
      const now = rtmrs ? rtmrs() : booted
      return signer.signQuote({ ...measurements, ...(now ? { rtmrs: now } : {}), reportData })
    },
  }
}

/**
 * The dev TD's firmware event log, as `createCcelEventLogProvider` reads a
 * real TD's from sysfs: `ccel` (default `createDevCcel()`), the same bytes
 * at every read (copies, so a caller cannot alter the next read).
 */
export function createDevEventLogProvider(options: { readonly ccel?: DevCcel } = {}): EventLogProvider {
  const { table, data } = options?.ccel ?? createDevCcel()
  return { read: async () => ({ table: table.slice(), data: data.slice() }) }
}
