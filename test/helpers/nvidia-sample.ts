/**
 * NVIDIA's sample H100 evidence (test/vectors/nvidia/hopper-sample) as a
 * GPU evidence bundle, with the instants at which its parts are valid.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { VECTORS_DIR } from './vectors.ts'
import type { GpuEvidenceBundle } from '../../attestation/nvidia/evidence.ts'

export const SAMPLE_DIR = `${VECTORS_DIR}nvidia/hopper-sample/`
/** Inside every device certificate and the GPU chain's OCSP responses (thisUpdate 2025-08-21T06:47Z, one day). */
export const GPU_OCSP_TIME = new Date('2025-08-21T12:00:00Z')
/** Inside the RIM chains and the RIM OCSP responses (thisUpdate 2025-10-24T11:32Z, one day). */
export const RIM_OCSP_TIME = new Date('2025-10-24T12:00:00Z')
/** The sample report's request nonce. */
export const SAMPLE_NONCE = new Uint8Array(Buffer.from('931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb', 'hex'))

export const sampleReport = (): Uint8Array => new Uint8Array(Buffer.from(readFileSync(`${SAMPLE_DIR}hopperAttestationReport.txt`, 'utf8').trim(), 'hex'))
export const sampleChain = (): Uint8Array => new Uint8Array(readFileSync(`${SAMPLE_DIR}hopperCertChain.txt`))
export const sampleRims = (dir = 'rims-matching'): string[] =>
  readdirSync(`${SAMPLE_DIR}${dir}`)
    .sort()
    .map((f) => readFileSync(`${SAMPLE_DIR}${dir}/${f}`, 'utf8'))

/** OCSP responses: 'gpu' covers the device chain, 'rim' the RIM chains. */
export function sampleOcsp(which: 'gpu' | 'rim'): Uint8Array[] {
  return readdirSync(`${SAMPLE_DIR}ocsp`)
    .filter((f) => (which === 'gpu' ? f.startsWith('test_gpu_certificate') : !f.startsWith('test_gpu_certificate')))
    .sort()
    .map((f) => new Uint8Array(Buffer.from(readFileSync(`${SAMPLE_DIR}ocsp/${f}`, 'utf8').trim(), 'base64')))
}

/** The sample as a bundle of `count` GPUs (the same GPU repeated). */
export function sampleBundle(options: { ocsp?: 'gpu' | 'rim' | 'none'; rims?: boolean; count?: number } = {}): GpuEvidenceBundle {
  const gpu = { arch: 'HOPPER' as const, report: sampleReport(), certificateChain: sampleChain() }
  return {
    nonce: SAMPLE_NONCE,
    gpus: Array.from({ length: options.count ?? 1 }, () => gpu),
    ocsp: options.ocsp === 'none' || options.ocsp === undefined ? [] : sampleOcsp(options.ocsp),
    rims: options.rims === false ? [] : sampleRims(),
  }
}
