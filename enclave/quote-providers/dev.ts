/**
 * Development TEE providers: a QuoteProvider whose quotes come from a dev
 * quote signer (attestation/dev) and an EventLogProvider with no event log.
 *
 * ============================================================================
 *  NOT FOR PRODUCTION. Dev quotes are signed by keys in this process and
 *  prove nothing about any hardware; verifiers accept them only under a
 *  policy pinning the dev root's fingerprint.
 * ============================================================================
 *
 * Dev quotes carry the measurements given here and zeros elsewhere: MRTD and
 * all four RTMRs are zero unless given, and there is no event log to replay,
 * so a policy requiring RTMR replay or particular events rejects them — as it
 * should, since nothing was measured. The one exception is `rtmrs`: the dev
 * TEE's in-memory registers (rtmr-extend.ts createMemoryRtmrs), which the
 * gateway extends with its release and config hashes exactly as a real TD
 * extends RTMR3, so `cgw measure` can be checked against a dev quote.
 */
import { ConfigError } from '../../attestation/errors.ts'
import type { DevQuoteInput, DevQuoteSigner } from '../../attestation/dev/quote-signer.ts'
import type { EventLogProvider, QuoteProvider } from '../types.ts'

/** TDX REPORTDATA size (TDX module ABI, TDREPORT_STRUCT.REPORTMACSTRUCT.REPORTDATA). */
const REPORT_DATA_SIZE = 64

export interface DevQuoteProviderOptions {
  readonly signer: DevQuoteSigner
  /** Everything of the TD report but REPORTDATA (MRTD, RTMRs, ...); zeros when absent. */
  readonly measurements?: Omit<DevQuoteInput, 'reportData'>
  /**
   * Live RTMR0..3 read at every quote (createMemoryRtmrs in
   * rtmr-extend.ts: the dev TEE's registers that runtime events extend);
   * overrides `measurements.rtmrs`.
   */
  readonly rtmrs?: () => readonly Uint8Array[]
}

export function createDevQuoteProvider(options: DevQuoteProviderOptions): QuoteProvider {
  const { signer, measurements = {}, rtmrs } = options ?? ({} as DevQuoteProviderOptions)
  if (typeof signer?.signQuote !== 'function') throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'createDevQuoteProvider: signer must be a createDevQuoteSigner result')
  return {
    name: 'dev',
    async getQuote(reportData, o = {}) {
      o.signal?.throwIfAborted()
      if (!(reportData instanceof Uint8Array) || reportData.length !== REPORT_DATA_SIZE) {
        throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `dev quote provider: reportData must be ${REPORT_DATA_SIZE} bytes`)
      }
      return signer.signQuote({ ...measurements, ...(rtmrs ? { rtmrs: rtmrs() } : {}), reportData })
    },
  }
}

/** The dev TD has no firmware event log. */
export function createDevEventLogProvider(): EventLogProvider {
  return { read: async () => null }
}
