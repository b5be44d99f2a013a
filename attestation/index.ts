/**
 * The attestation library: verification only — no servers, no chain, no
 * logging library. Parse, verify, validate are separate steps; time, trust
 * roots and network getters are parameters.
 */
export * from './errors.ts'
export * from './binding.ts'
export * from './tdx/index.ts'
export { parsePolicy, parseGpuPolicy, BASELINE_POLICY_DOCUMENT, BASELINE_GPU_POLICY_DOCUMENT, MEASUREMENT_FIELDS } from './policy/policy.ts'
export type { AllowList, GpuPolicy, GpuPolicyDocument, MeasurementField, PolicyDocument, QuotePolicy, RequiredEvent, TrustRootChoice } from './policy/policy.ts'
export { INTEL_SGX_ROOT_CA, INTEL_SGX_ROOT_CA_FINGERPRINT, certificateFingerprint, trustedRootFromDer } from './roots/trust-root.ts'
export type { TrustedRoot } from './roots/trust-root.ts'
export * as eventlog from './eventlog/index.ts'
export * as pcs from './pcs/index.ts'
export * as nvidia from './nvidia/index.ts'
