/**
 * Validate verified GPU evidence against the `gpu` section of a policy. This
 * module checks no signature: its input is `verifyGpuEvidence`'s output.
 * Every mismatch is reported at once.
 */
import { PolicyError, type PolicyMismatch } from '../../errors.ts'
import type { GpuPolicy } from '../../policy/policy.ts'
import { NVIDIA_DEVICE_IDENTITY_CA_FINGERPRINT, NVIDIA_RIM_ROOT_CA_FINGERPRINT } from '../../roots/nvidia.ts'
import { NVDEC_STATUS_ENABLED } from '../abi/spdm.ts'
import type { VerifiedGpuEvidence } from '../verify/verify-gpu-evidence.ts'

/** Protected PCIe status byte meaning "on" (same encoding as NVDEC: 0xAA enabled). */
const PROTECTED_PCIE_ENABLED = NVDEC_STATUS_ENABLED

export function validateGpuEvidence(v: VerifiedGpuEvidence, policy: GpuPolicy): { accepted: true } {
  const m: PolicyMismatch[] = []
  const add = (code: string, field: string, expected: unknown, actual: unknown) => m.push({ code, field, expected, actual })
  if (!policy.required) {
    // "No GPU" means no GPU: evidence of one is not silently ignored.
    if (v.gpus.length > 0) add('POLICY_GPU_NOT_EXPECTED', 'gpu.required', 0, v.gpus.length)
    if (m.length > 0) throw new PolicyError(m)
    return { accepted: true }
  }
  // Both anchors: the device chain's and the RIM chains' (golden values signed
  // under another root would otherwise pass with a genuine device).
  const dev = policy.trustRoot.kind === 'dev' ? policy.trustRoot.fingerprint : undefined
  const want = {
    device: dev ? { fingerprint: dev, kind: 'dev' } : { fingerprint: NVIDIA_DEVICE_IDENTITY_CA_FINGERPRINT, kind: 'nvidia-device' },
    rim: dev ? { fingerprint: dev, kind: 'dev' } : { fingerprint: NVIDIA_RIM_ROOT_CA_FINGERPRINT, kind: 'nvidia-rim' },
  }
  for (const which of ['device', 'rim'] as const) {
    const got = v.roots[which]
    if (got.fingerprint !== want[which].fingerprint || got.kind !== want[which].kind) {
      add('POLICY_GPU_TRUST_ROOT_NOT_ALLOWED', `gpu.trustRoot.${which}`, want[which].fingerprint, got.fingerprint)
    }
  }
  if (v.gpus.length === 0 || (policy.count !== 'any' && v.gpus.length !== policy.count)) {
    add('POLICY_GPU_COUNT_MISMATCH', 'gpu.count', policy.count === 'any' ? 'at least 1' : policy.count, v.gpus.length)
  }
  for (const g of v.gpus) {
    const at = (f: string) => `gpu[${g.index}].${f}`
    if (policy.driverVersions !== 'any' && !policy.driverVersions.has(g.driverVersion.toUpperCase())) {
      add('POLICY_GPU_DRIVER_NOT_ALLOWED', at('driverVersion'), [...policy.driverVersions], g.driverVersion)
    }
    if (policy.vbiosVersions !== 'any' && !policy.vbiosVersions.has(g.vbiosVersion.toUpperCase())) {
      add('POLICY_GPU_VBIOS_NOT_ALLOWED', at('vbiosVersion'), [...policy.vbiosVersions], g.vbiosVersion)
    }
    if (policy.requireProtectedPcie && g.protectedPcie !== PROTECTED_PCIE_ENABLED) {
      add('POLICY_GPU_PROTECTED_PCIE_OFF', at('protectedPcie'), PROTECTED_PCIE_ENABLED, g.protectedPcie)
    }
    const missing = g.certificates.filter((c) => c.ocsp === 'missing')
    if (policy.requireOcsp && missing.length > 0) {
      add('POLICY_GPU_OCSP_MISSING', at('certificates'), 'an OCSP response for every certificate', missing.map((c) => `${c.chain}:${c.subject}`))
    }
  }
  if (m.length > 0) throw new PolicyError(m)
  return { accepted: true }
}
