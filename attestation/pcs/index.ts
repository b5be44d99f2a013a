/**
 * Intel PCS/PCCS collateral: the v4 client, raw-response assembly and the
 * on-disk cache. Fetching only; verification lives in `attestation/tdx/verify`.
 */
export type {
  CollateralRequest,
  CollateralSources,
  FetchedCollateral,
  PckCa,
  QuoteCollateralV3,
  TeeType,
} from './types.ts'
export {
  DEFAULT_TIMEOUT_MS,
  HEADER_PCK_CRL_ISSUER_CHAIN,
  HEADER_QE_IDENTITY_ISSUER_CHAIN,
  HEADER_TCB_INFO_ISSUER_CHAIN,
  createPcsClient,
  type CrlResponse,
  type PcsClient,
  type PcsClientOptions,
  type PcsFetch,
  type PcsFetchResponse,
  type QeIdentityResponse,
  type TcbInfoResponse,
} from './client.ts'
export {
  QE_IDENTITY_MEMBER,
  TCB_INFO_MEMBER,
  collateralFromPcsResponses,
  decodeCrl,
  decodeIssuerChain,
  parseQeIdentityResponse,
  parseTcbInfoResponse,
  pcsResponsesFromCollateral,
  rawJsonMember,
  type PcsResponses,
  type SignedJsonResponse,
} from './raw.ts'
export {
  CACHE_ENTRY_FORMAT,
  collateralValidity,
  createCachingCollateralSource,
  createCollateralCache,
  isCollateralFresh,
  type CachingCollateralSourceOptions,
  type CollateralCache,
  type CollateralCacheOptions,
  type CollateralSource,
  type CollateralValidity,
} from './cache.ts'
