/**
 * Workload identity: one 32-byte id for "which code runs in this TD", shared
 * by the on-chain registry's allow-list, `cgw measure` and the verifiers.
 *
 * The id is keccak256 over the contiguous TD report span from MRTD through
 * RTMR3 (Intel TDX DCAP Quote Generation Library and Quote Verification
 * Library, "TD Report Body" table, offsets 136..520 of the TD report 1.0
 * body): MRTD ‖ MRCONFIGID ‖ MROWNER ‖ MROWNERCONFIG ‖ RTMR0 ‖ RTMR1 ‖ RTMR2
 * ‖ RTMR3, 8 × 48 = 384 bytes. Taking the span as laid out in the quote lets
 * the contract hash it with one KECCAK256 over calldata, without copying six
 * fields; including MROWNER and MROWNERCONFIG (zero on most platforms) means
 * a host cannot vary them under an allow-listed id.
 */
import { keccak_256 } from '@noble/hashes/sha3.js'
import type { Hex } from './binding.ts'
import { ConfigError } from './errors.ts'

/** The measurement registers a workload id covers, each 48 bytes. */
export interface WorkloadMeasurements {
  readonly mrTd: Uint8Array
  readonly mrConfigId: Uint8Array
  readonly mrOwner: Uint8Array
  readonly mrOwnerConfig: Uint8Array
  readonly rtmrs: readonly [Uint8Array, Uint8Array, Uint8Array, Uint8Array]
}

/** Bytes the id hashes (8 registers × 48 bytes). */
export const WORKLOAD_SPAN_LENGTH = 384

/** The 384-byte span in TD report order (see the module header). */
export function workloadSpan(m: WorkloadMeasurements): Uint8Array {
  const fields = [m.mrTd, m.mrConfigId, m.mrOwner, m.mrOwnerConfig, ...m.rtmrs]
  const out = new Uint8Array(WORKLOAD_SPAN_LENGTH)
  fields.forEach((f, i) => {
    if (!(f instanceof Uint8Array) || f.length !== 48) {
      throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'workload measurement: expected 48 bytes', { details: { index: i } })
    }
    out.set(f, i * 48)
  })
  return out
}

/** keccak256 of the workload span, 0x-prefixed: the registry's workload id. */
export function computeWorkloadId(m: WorkloadMeasurements): Hex {
  return `0x${Buffer.from(keccak_256(workloadSpan(m))).toString('hex')}`
}
