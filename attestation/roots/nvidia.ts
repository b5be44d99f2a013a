/**
 * Pinned NVIDIA trust roots: the Device Identity CA (root of every GPU's
 * device certificate chain, and so of the SPDM measurement signature) and
 * the CoRIM signing root (root of the RIM signing chains).
 *
 * Each is the certificate DER plus its SHA-256, checked when this module
 * loads (see `trustedRootFromDer`): changing one without the other fails at
 * import. The bytes are NVIDIA's published roots as shipped with the
 * nvtrust local GPU verifier (`verifier/certs/verifier_device_root.pem`,
 * `verifier_RIM_root.pem`) and byte-identical to
 * test/vectors/nvidia/hopper-sample/verifier_device_root.pem and
 * verifier_RIM_root.pem; google/go-nvattest-tools pins the same device root
 * (`server/cert/device_root.pem`).
 */
import { trustedRootFromDer, type TrustedRoot } from './trust-root.ts'

/**
 * "CN=NVIDIA Device Identity CA, O=NVIDIA": self-signed P-384, valid
 * 2021-11-05T00:00:00Z to 9999-12-31T23:59:59Z, CA without a path length,
 * keyUsage keyCertSign | cRLSign.
 */
export const NVIDIA_DEVICE_IDENTITY_CA_FINGERPRINT = '102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48'
const NVIDIA_DEVICE_IDENTITY_CA_DER =
  'MIICCzCCAZCgAwIBAgIQLTZwscoQBBHB/sDoKgZbVDAKBggqhkjOPQQDAzA1MSIwIAYDVQQDDBlOVklESUEgRGV2aWNlIElkZW50aXR5IENBMQ8wDQYDVQQKDAZOVklESUEwIBcNMjExMTA1MDAwMDAwWhgPOTk5OTEyMzEyMzU5NTlaMDUxIjAgBgNVBAMMGU5WSURJQSBEZXZpY2UgSWRlbnRpdHkgQ0ExDzANBgNVBAoMBk5WSURJQTB2MBAGByqGSM49AgEGBSuBBAAiA2IABA5MFKM7+KViZljbQSlgfky/RRnEQScW9NDZF8SXgAW96r6u/Ve8ZggtcYpPi2BS4VFu6KfEIrhN6FcHG7WP05W+oM+hxj7nyA1r1jkB2Ry70YfThX3Ba1zOryOP+MJ9vaNjMGEwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwHQYDVR0OBBYEFFeF/4PyY8xlfWi3Olv0jUrL+0lfMB8GA1UdIwQYMBaAFFeF/4PyY8xlfWi3Olv0jUrL+0lfMAoGCCqGSM49BAMDA2kAMGYCMQCPeFM3TASsKQVaT+8S0sO9u97PVGCpE9d/I42IT7k3UUOLSR/qvJynVOD1vQKVXf0CMQC+EY55WYoDBvs2wPAH1Gw4LbcwUN8QCff8bFmV4ZxjCRr4WXTLFHBKjbfneGSBWwA='

/**
 * "CN=NVIDIA CoRIM signing Root CA, O=NVIDIA, C=US": self-signed P-384,
 * valid 2023-03-16T15:37:34Z to 2053-03-08T15:37:34Z, CA without a path
 * length, keyUsage keyCertSign | cRLSign.
 */
export const NVIDIA_RIM_ROOT_CA_FINGERPRINT = '12977b5115acb0381179279fffeb5a8c4d264971ebb32298023a465fa41df5d1'
const NVIDIA_RIM_ROOT_CA_DER =
  'MIICKTCCAbCgAwIBAgIQRdrjoA5QN73fh1N17LXicDAKBggqhkjOPQQDAzBFMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGTlZJRElBMSUwIwYDVQQDDBxOVklESUEgQ29SSU0gc2lnbmluZyBSb290IENBMCAXDTIzMDMxNjE1MzczNFoYDzIwNTMwMzA4MTUzNzM0WjBFMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGTlZJRElBMSUwIwYDVQQDDBxOVklESUEgQ29SSU0gc2lnbmluZyBSb290IENBMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEuECyi9vNM+Iw2lfUzyBldHAwaC1HF7TCgp12QcEyUTm3Tagxwr48d55+K2VIlWYIDk7NlAIQdcV/Ff7euGLI+Qauj93HsSI4WX298PpW54RTgz9tC+Q684caR/BXWEeZo2MwYTAdBgNVHQ4EFgQUpaXrOPK4ZDAk08DBskn594zeZjAwHwYDVR0jBBgwFoAUpaXrOPK4ZDAk08DBskn594zeZjAwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwCgYIKoZIzj0EAwMDZwAwZAIwHGDyscDP6ihHqRvZlI3eqZ4YkvjE1duaN84tAHRVgxVMvNrp5Tnom3idHYGW/dskAjATvjIx6VzHm/4e2GiZAyZEIUBDOKPzp5ei/A0iUZpdvngenDwV8Qa/wGdiTmJ7Bp4='

/** The production root of every NVIDIA GPU device-identity chain (the default of `verifyGpuReport`). */
export const NVIDIA_DEVICE_IDENTITY_CA: TrustedRoot = trustedRootFromDer(
  'nvidia-device',
  new Uint8Array(Buffer.from(NVIDIA_DEVICE_IDENTITY_CA_DER, 'base64')),
  NVIDIA_DEVICE_IDENTITY_CA_FINGERPRINT,
)

/** The production root of NVIDIA's RIM (reference integrity manifest) signing chains. */
export const NVIDIA_RIM_ROOT_CA: TrustedRoot = trustedRootFromDer(
  'nvidia-rim',
  new Uint8Array(Buffer.from(NVIDIA_RIM_ROOT_CA_DER, 'base64')),
  NVIDIA_RIM_ROOT_CA_FINGERPRINT,
)
