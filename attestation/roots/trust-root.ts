/**
 * Pinned trust roots. A root is a parsed certificate plus the SHA-256 of its
 * DER, checked when the module loads: editing the bytes without editing the
 * fingerprint (or the other way round) fails at import, so no test or
 * configuration can swap a root silently.
 */
import { createHash } from 'node:crypto'
import { ConfigError } from '../errors.ts'
import { parseCertificate, type Certificate } from '../pki/x509.ts'

/** A root of trust that a verifier is told to use; `kind` says which world it is. */
export interface TrustedRoot {
  readonly kind: 'intel' | 'dev' | 'nvidia-device' | 'nvidia-rim'
  readonly certificate: Certificate
  /** Lower-case hex SHA-256 of the root certificate DER. */
  readonly fingerprint: string
}

/** SHA-256 of a DER certificate, lower-case hex: how policies name roots. */
export function certificateFingerprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex')
}

/** Build a trusted root from DER, optionally checking an expected fingerprint. */
export function trustedRootFromDer(kind: TrustedRoot['kind'], der: Uint8Array, expectedFingerprint?: string): TrustedRoot {
  const fingerprint = certificateFingerprint(der)
  if (expectedFingerprint !== undefined && fingerprint !== expectedFingerprint.toLowerCase().replace(/:/g, '')) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `${kind} root does not match its pinned fingerprint`, {
      details: { expected: expectedFingerprint, actual: fingerprint },
    })
  }
  return { kind, certificate: parseCertificate(der), fingerprint }
}

/**
 * Intel SGX Provisioning Certification Root CA, from
 * https://certificates.trustedservices.intel.com/Intel_SGX_Provisioning_Certification_RootCA.cer
 * (byte-identical to test/vectors/intel/intel-sgx-root-ca.der).
 */
export const INTEL_SGX_ROOT_CA_FINGERPRINT = '44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3'
const INTEL_SGX_ROOT_CA_DER = 'MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIwaDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIzNTk1OVowaDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYTAlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi71OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOBuzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJMEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SVUr9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYIKoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwgAiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI='

/** The production root for every DCAP quote. */
export const INTEL_SGX_ROOT_CA: TrustedRoot = trustedRootFromDer(
  'intel',
  new Uint8Array(Buffer.from(INTEL_SGX_ROOT_CA_DER, 'base64')),
  INTEL_SGX_ROOT_CA_FINGERPRINT,
)
