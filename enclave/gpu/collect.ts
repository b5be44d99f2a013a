/**
 * What both real GPU providers do around the device call: check the nonce
 * asked for, check that what came back answers it, and attach OCSP
 * responses and RIMs only through getters the caller injected (never a
 * network call of the provider's own).
 */
import type { GpuEvidenceBundle, GpuEvidenceItem } from '../../attestation/nvidia/evidence.ts'
import { SPDM_NONCE_SIZE, parseGpuReport } from '../../attestation/nvidia/abi/spdm.ts'
import { GpuCollectionError } from './errors.ts'
import { hex } from '../../attestation/bytes/hex.ts'

/**
 * Argument misuse is a bug in the caller, not a collection failure: a plain
 * RangeError, as noble does, so it is never mistaken for a missing GPU.
 */
export function assertNonce(nonce: Uint8Array): void {
  if (!(nonce instanceof Uint8Array) || nonce.length !== SPDM_NONCE_SIZE) {
    throw new RangeError(`a GPU nonce is ${SPDM_NONCE_SIZE} bytes (SPDM 1.1 GET_MEASUREMENTS Nonce)`)
  }
}

/**
 * The check both real providers make before returning: at least one GPU,
 * every GPU's report parses as an SPDM GET_MEASUREMENTS transcript, and its
 * request nonce is the one asked for. No signature is checked — that is the
 * verifier's — but a report that answers another nonce is refused here,
 * where the operator can still see which GPU and which tool produced it.
 * Throws GpuCollectionError ENCLAVE_GPU_EVIDENCE_INVALID (details: provider,
 * gpu, and for a mismatch both nonces).
 */
export function assertAnswersNonce(gpus: readonly GpuEvidenceItem[], nonce: Uint8Array, provider: string): void {
  if (gpus.length === 0) {
    throw new GpuCollectionError('ENCLAVE_GPU_EVIDENCE_INVALID', `${provider} returned no GPU evidence`, { details: { provider, gpus: 0 } })
  }
  gpus.forEach((g, gpu) => {
    if (g.certificateChain.length === 0) {
      throw new GpuCollectionError('ENCLAVE_GPU_EVIDENCE_INVALID', `${provider}: GPU ${gpu} has an empty certificate chain`, { details: { provider, gpu } })
    }
    let requestNonce: Uint8Array
    try {
      requestNonce = parseGpuReport(g.report).request.nonce
    } catch (cause) {
      // The ParseError (offset, what) stays as the cause: it names no evidence bytes.
      throw new GpuCollectionError('ENCLAVE_GPU_EVIDENCE_INVALID', `${provider}: the report of GPU ${gpu} is not an SPDM measurement transcript`, {
        details: { provider, gpu },
        cause,
      })
    }
    if (Buffer.compare(requestNonce, nonce) !== 0) {
      throw new GpuCollectionError('ENCLAVE_GPU_EVIDENCE_INVALID', `${provider}: the report of GPU ${gpu} answers another nonce`, {
        details: { provider, gpu, expected: hex(nonce), actual: hex(requestNonce) },
      })
    }
  })
}

/**
 * Getters for the revocation status and reference manifests a gateway ships
 * with its evidence. A provider never reaches the network itself: OCSP
 * responses and RIMs come only through these, if the caller gives them.
 */
export interface GpuCollateralGetters {
  /** DER OCSP responses for the device chains (and the RIM chains, if wanted). */
  readonly ocsp?: (bundle: GpuEvidenceBundle, options: { readonly signal?: AbortSignal }) => Promise<readonly Uint8Array[]>
  /** RIM SWID XML documents for the GPUs' driver and VBIOS. */
  readonly rims?: (bundle: GpuEvidenceBundle, options: { readonly signal?: AbortSignal }) => Promise<readonly string[]>
}

/**
 * Attach OCSP responses and RIMs through the caller's getters (none: the
 * bundle is returned as collected, with empty lists). A getter that throws
 * or returns something else than the documented lists is a collection
 * failure (details.stage: 'ocsp' or 'rims'); the caller's abort propagates.
 */
export async function attachCollateral(
  bundle: GpuEvidenceBundle,
  attach: GpuCollateralGetters | undefined,
  provider: string,
  signal?: AbortSignal,
): Promise<GpuEvidenceBundle> {
  type Getter<T> = (b: GpuEvidenceBundle, o: { readonly signal?: AbortSignal }) => Promise<readonly T[]>
  const get = async <T>(stage: 'ocsp' | 'rims', getter: Getter<T> | undefined, ok: (x: unknown) => boolean): Promise<T[]> => {
    if (getter === undefined) return []
    let list: readonly T[]
    try {
      list = await getter(bundle, signal === undefined ? {} : { signal })
    } catch (cause) {
      if (signal?.aborted) throw signal.reason
      throw new GpuCollectionError('ENCLAVE_GPU_COLLECTION_FAILED', `${provider}: the ${stage} getter failed`, { details: { provider, stage }, cause })
    }
    if (!Array.isArray(list) || !list.every(ok)) {
      throw new GpuCollectionError('ENCLAVE_GPU_COLLECTION_FAILED', `${provider}: the ${stage} getter returned something else than a list`, { details: { provider, stage } })
    }
    return [...list]
  }
  const ocsp = await get('ocsp', attach?.ocsp, (x) => x instanceof Uint8Array && x.length > 0)
  const rims = await get('rims', attach?.rims, (x) => typeof x === 'string' && x.length > 0)
  return { ...bundle, ocsp, rims }
}
