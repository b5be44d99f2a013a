/**
 * The client SDK's public surface: verify a provider before sending it
 * anything (verify.ts), send encrypted requests and check their receipts
 * (request.ts, receipt.ts), with a verification cache and registry
 * discovery (client.ts), under a client policy (policy.ts).
 */
export { createClient, createClientFromPolicyFile, normalizeProviderUrl } from './client.ts'
export type { ClientOptions, ClientResponse, ConfidentialClient, SendOptions, ClientFromFileOptions } from './client.ts'
export { CLIENT_ERROR_CODES, ClientError, isClientError, type ClientErrorCode, type ClientErrorFamily } from './errors.ts'
export { loadClientPolicy, loadPolicyRoots, parseClientPolicy } from './policy.ts'
export type { ClientPolicy, CollateralPolicy, PolicyRoots, RegistryPolicy } from './policy.ts'
export { collateralFromPolicy, memoizeCollateral, staticCollateral, type CollateralProvider } from './collateral.ts'
export { checkRegistration, createFallbackRegistryReader, registryFromRpcUrls, type RegistryReaderFactory, type RegistryCheck } from './registry.ts'
export { createEvidenceFetcher, reportOf, verifyProvider, NONCE_BYTES } from './verify.ts'
export type { EvidenceFetcher, MeasurementRow, VerificationReport, VerificationStage, VerifiedProvider, VerifyProviderParameters } from './verify.ts'
export { createUndiciTransport, encodeInnerRequest, exchange, ERROR_TRAILER, RECEIPT_TRAILER } from './request.ts'
export type { DecryptedResponse, ExchangeParameters, OhttpTransport } from './request.ts'
export { createReceiptVerifier, type ReceiptVerifier, type VerifiedReceipt } from './receipt.ts'
export { verifyReceiptLogged, type ReceiptLogged, type ReceiptLoggedParameters } from './receipt-proof.ts'
export { viemRegistryFactory } from './viem-registry.ts'
