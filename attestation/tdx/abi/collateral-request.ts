/**
 * Which collateral a quote needs: TEE type, FMSPC and the PCK CA that issued
 * its PCK certificate (platform or processor), read from the quote's own
 * certification data. Parsing only: these values say what to fetch, and the
 * verifier later checks the fetched collateral against the verified chain.
 */
import { ParseError } from '../../errors.ts'
import { commonName, parseCertificate } from '../../pki/x509.ts'
import type { CollateralRequest } from '../../pcs/types.ts'
import { parsePckExtension } from './pck-extension.ts'
import type { Quote } from './quote.ts'

/** Issuer common names of PCK certificates (PCK Certificate and CRL Profile §1.3). */
const PCK_CA_BY_ISSUER: Record<string, CollateralRequest['ca']> = {
  'Intel SGX PCK Platform CA': 'platform',
  'Intel SGX PCK Processor CA': 'processor',
}

export function collateralRequestForQuote(quote: Quote): CollateralRequest {
  const der = quote.certification.pckChain[0]
  if (!der) throw new ParseError('ATTESTATION_CERT_DATA_UNSUPPORTED', 'quote carries no PCK certificate')
  const leaf = parseCertificate(der)
  const issuer = commonName(leaf.issuer)
  const ca = PCK_CA_BY_ISSUER[issuer] ?? (/processor/i.test(issuer) ? 'processor' : 'platform')
  return {
    teeType: quote.body.kind === 'sgx' ? 'sgx' : 'tdx',
    fmspc: Buffer.from(parsePckExtension(leaf).fmspc).toString('hex'),
    ca,
  }
}
