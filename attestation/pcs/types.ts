/**
 * Collateral shapes, as they travel (no crypto, no parsing here).
 *
 * `QuoteCollateralV3` is the bundle Intel's QVL and Phala's dcap-qvl call
 * "QuoteCollateralV3", serialised the way `../shared/vectors/tdx/<case>/collateral.json`
 * stores it: JSON strings are the exact bytes Intel signed, CRLs are hex DER,
 * signatures are hex `r || s` (64 bytes for P-256), chains are PEM text
 * (leaf first). Intel PCS API v4 (https://api.portal.trustedservices.intel.com/content/documentation.html)
 * returns the same pieces spread over bodies and `*-Issuer-Chain` headers;
 * `attestation/pcs/client.ts` assembles them into this shape.
 */

/** The collateral bundle for one quote: the common interchange format. */
export interface QuoteCollateralV3 {
  /** PEM chain (signing CA, root) of the PCK CRL (`SGX-PCK-CRL-Issuer-Chain`). */
  pck_crl_issuer_chain: string
  /** Intel SGX Root CA CRL, hex of the DER bytes. */
  root_ca_crl: string
  /** PCK CRL of the platform or processor CA, hex of the DER bytes. */
  pck_crl: string
  /** PEM chain (TCB signing cert, root) of TCB info (`TCB-Info-Issuer-Chain`). */
  tcb_info_issuer_chain: string
  /** The exact JSON text of the `tcbInfo` member Intel signed. */
  tcb_info: string
  /** Hex `r || s` ECDSA P-256 signature over the bytes of `tcb_info`. */
  tcb_info_signature: string
  /** PEM chain of QE identity (`SGX-Enclave-Identity-Issuer-Chain`). */
  qe_identity_issuer_chain: string
  /** The exact JSON text of the `enclaveIdentity` member Intel signed. */
  qe_identity: string
  /** Hex `r || s` ECDSA P-256 signature over the bytes of `qe_identity`. */
  qe_identity_signature: string
  /** Optional PCK certificate chain, for quotes whose certification data lacks one. */
  pck_certificate_chain?: string
}

/** Which TEE's collateral: the PCS path segment (`/tdx/...` or `/sgx/...`). */
export type TeeType = 'tdx' | 'sgx'

/**
 * Which PCK CA issued the PCK certificate, so which CRL applies
 * (PCS API v4 `pckcrl?ca=platform|processor`).
 */
export type PckCa = 'platform' | 'processor'

/** What one collateral request names; also the cache key. */
export interface CollateralRequest {
  readonly teeType: TeeType
  /** FMSPC from the PCK certificate's SGX extension: 12 hex digits (6 bytes). */
  readonly fmspc: string
  readonly ca: PckCa
}

/** Where each piece of a bundle came from (full URLs, for reports and audits). */
export interface CollateralSources {
  readonly tcbInfo: string
  readonly qeIdentity: string
  readonly pckCrl: string
  readonly rootCaCrl: string
}

/**
 * A bundle with its provenance. The bundle itself stays exactly the
 * interchange shape (no extra members), so it can be compared, stored and
 * handed to any QVL-compatible verifier unchanged.
 */
export interface FetchedCollateral {
  readonly collateral: QuoteCollateralV3
  /** When the last response of the set arrived, by the caller's clock (ISO 8601). */
  readonly fetchedAt: string
  readonly sources: CollateralSources
}

/** Every required member of a `QuoteCollateralV3` bundle, in Intel's order. */
export const QUOTE_COLLATERAL_V3_FIELDS = [
  'pck_crl_issuer_chain',
  'root_ca_crl',
  'pck_crl',
  'tcb_info_issuer_chain',
  'tcb_info',
  'tcb_info_signature',
  'qe_identity_issuer_chain',
  'qe_identity',
  'qe_identity_signature',
] as const satisfies readonly (keyof QuoteCollateralV3)[]
