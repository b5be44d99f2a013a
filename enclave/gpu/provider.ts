/**
 * GPU evidence collection inside the CVM: one interface, three providers —
 * NVIDIA's `nvattest` CLI, NVML through an FFI, and the development GPU.
 *
 * A provider collects; it never verifies and never decides. The gateway
 * collects GPU evidence with the same fresh nonce as the TDX quote and binds
 * `hashGpuEvidence(bundle.gpus)` into REPORTDATA (attestation/binding.ts), so
 * a GPU report relayed from another machine cannot pass as this TD's.
 * Network access (OCSP, RIM service) is never implicit: a provider attaches
 * OCSP responses or RIMs only through getters the caller injects.
 */
import type { GpuEvidenceBundle } from '../../attestation/nvidia/evidence.ts'

export interface CollectOptions {
  readonly signal?: AbortSignal
}

export interface GpuEvidenceProvider {
  /** For logs and reports: 'nvattest', 'nvml' or 'dev'. */
  readonly name: string
  /** Evidence of every GPU, each answering `nonce` (32 bytes). */
  collect(nonce: Uint8Array, options?: CollectOptions): Promise<GpuEvidenceBundle>
}
