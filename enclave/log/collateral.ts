/**
 * Archiving the collateral a quote is verified with: fetch it from a PCS or
 * PCCS for the quote's FMSPC and CA (attestation/pcs), store it as a blob
 * and record its fingerprint (AttestationLogSink.collateral), so an auditor
 * can re-verify every later quote with the collateral of its time. Public
 * data only. The gateway calls this at start and whenever the collateral
 * may have changed (e.g. each collateral period); an unchanged set is not
 * recorded twice.
 */
import type { PcsClient } from '../../attestation/pcs/client.ts'
import { collateralRequestForQuote } from '../../attestation/tdx/abi/collateral-request.ts'
import { parseQuote } from '../../attestation/tdx/abi/quote.ts'
import type { AttestationLogSink } from './sink.ts'

/** Fetch and record the collateral for `quote`; resolves to the recorded fingerprints. */
export async function recordQuoteCollateral(sink: Pick<AttestationLogSink, 'collateral'>, client: Pick<PcsClient, 'getCollateral'>, quote: Uint8Array): Promise<string[]> {
  const { collateral } = await client.getCollateral(collateralRequestForQuote(parseQuote(quote)))
  return sink.collateral([collateral])
}
