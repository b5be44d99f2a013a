/**
 * Comparison of a GPU's SPDM measurement blocks with the golden values of
 * its driver and VBIOS RIMs, as NVIDIA's verifiers define it (nvtrust
 * `local_gpu_verifier/src/verifier/verifier.py`, and the C++ SDK that
 * succeeds it, NVIDIA/attestation-sdk `nv-attestation-sdk-cpp/src/gpu/verify.cpp`,
 * `generate_set_measurement_claims`):
 *
 *  - only active golden measurements count; any listed alternative matches;
 *  - the driver and the VBIOS RIM may not both claim one active index;
 *  - each RIM's colloquial version must be the version the report states;
 *  - a golden index with no block in the report is a mismatch;
 *  - RIM index i is the SPDM block with Index i + 1 (NVIDIA numbers golden
 *    measurements from 0, DSP0274 measurement blocks from 1);
 *  - the NVDEC exception (below).
 *
 * This module takes `VerifiedRim`s only, and a plain map of blocks, so it does
 * not depend on the SPDM parser. It reports every mismatch, not the first.
 */
import { ConfigError, ParseError, VerificationError } from '../../errors.ts'
import type { RimMeasurement } from './parse.ts'
import { isVerifiedRim, type VerifiedRim } from './verify.ts'
import { hex } from '../../bytes/hex.ts'

/**
 * The NVDEC exception. NVIDIA's GPU opaque data field 11
 * (OPAQUE_FIELD_ID_NVDEC0_STATUS) says whether the NVDEC0 video decoder is
 * enabled (0xAA) or disabled (0x55); when it is disabled, golden measurement
 * index 35 (SPDM block 36) is not validated. Source: NVIDIA/attestation-sdk
 * `nv-attestation-sdk-cpp/src/gpu/verify.cpp` (NVDEC_STATUS_ENABLED = 0xAA
 * "validate MSR 35", NVDEC_STATUS_DISABLED = 0x55 "skip MSR 35 validation";
 * any other status value is an error there), and nvtrust
 * `local_gpu_verifier/src/verifier/verifier.py` (`is_msr_35_valid`) with
 * `config.py` (`NVDEC_STATUS`). The Python check compares the field's raw
 * bytes with an `Enum` member, which is never equal, so that verifier in
 * effect always validates index 35; this module follows the C++ SDK, NVIDIA's
 * maintained successor. The exception applies to index 35 only, whichever
 * RIM claims it, and only when the status is exactly 0x55; a value at index
 * 35 is still compared and reported (as `exempted` when it does not match).
 */
export const NVDEC0_STATUS_ENABLED = 0xaa
export const NVDEC0_STATUS_DISABLED = 0x55
export const NVDEC_EXEMPT_RIM_INDEX = 35

export type RimRole = 'driver' | 'vbios'

export interface CompareMeasurementsParameters {
  readonly driver: VerifiedRim
  readonly vbios: VerifiedRim
  /**
   * The report's measurement blocks: the DMTF measurement value
   * (DMTFSpecMeasurementValue of a block, DSP0274 1.1 §10.11 MEASUREMENTS)
   * keyed by the block's SPDM Index as the report carries it (1-based).
   * Not RIM indices.
   */
  readonly measurements: ReadonlyMap<number, Uint8Array>
  /** The report's driver version (opaque field 3, NULs stripped), e.g. "550.90.07". */
  readonly reportDriverVersion: string
  /** The report's VBIOS version (opaque field 6) as NVIDIA formats it, e.g. "96.00.9F.00.01". */
  readonly reportVbiosVersion: string
  /** The report's NVDEC0 status byte (opaque field 11): 0xAA enabled, 0x55 disabled. */
  readonly nvdec0Status: number
}

/** One golden measurement the report does not meet. */
export interface MeasurementMismatch {
  /** RIM index (the SPDM block is `index + 1`). */
  readonly index: number
  readonly blockIndex: number
  readonly rim: RimRole
  readonly name: string
  /** Every acceptable value, lower-case hex. */
  readonly expected: readonly string[]
  /** The report's value, lower-case hex; null when the report has no such block. */
  readonly actual: string | null
}

export interface CompareMeasurementsReturnType {
  /** RIM indices whose value matched, ascending. */
  readonly matched: readonly number[]
  /** Every active golden measurement the report does not meet, by index. */
  readonly mismatches: readonly MeasurementMismatch[]
  /** Mismatches at index 35 forgiven by the NVDEC exception (NVDEC0 disabled); never counted as failures. */
  readonly exempted: readonly MeasurementMismatch[]
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

function checkParameters(p: CompareMeasurementsParameters): void {
  if (!isVerifiedRim(p?.driver) || !isVerifiedRim(p.vbios)) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'driver and vbios must be results of verifyRim')
  }
  if (!(p.measurements instanceof Map)) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'measurements must be a Map of SPDM block index to value')
  }
  for (const [k, v] of p.measurements) {
    if (!Number.isInteger(k) || !(v instanceof Uint8Array)) {
      throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'measurements must map integer block indices to bytes')
    }
  }
  if (typeof p.reportDriverVersion !== 'string' || typeof p.reportVbiosVersion !== 'string') {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', "the report's driver and VBIOS versions are required")
  }
  if (!Number.isInteger(p.nvdec0Status) || p.nvdec0Status < 0 || p.nvdec0Status > 0xff) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', "nvdec0Status must be the report's NVDEC0 status byte")
  }
  // NVIDIA's SDK refuses to compare with any other status; so do we.
  if (p.nvdec0Status !== NVDEC0_STATUS_ENABLED && p.nvdec0Status !== NVDEC0_STATUS_DISABLED) {
    throw new ParseError('ATTESTATION_GPU_REPORT_MALFORMED', 'the NVDEC0 status of the report is neither enabled nor disabled', {
      details: { nvdec0Status: p.nvdec0Status },
    })
  }
}

/**
 * Versions as NVIDIA compares them: its Python verifier lower-cases both
 * sides, its C++ SDK formats the VBIOS version in upper case to match the RIM
 * as written; comparing ASCII case-insensitively agrees with both.
 */
function checkVersion(rim: VerifiedRim, role: RimRole, reported: string): void {
  if (rim.colloquialVersion.toLowerCase() !== reported.toLowerCase()) {
    throw new VerificationError('ATTESTATION_RIM_MISMATCH', `the ${role} RIM is for another ${role} version than the report's`, {
      details: { rim: role, rimVersion: rim.colloquialVersion, reportVersion: reported, tagId: rim.tagId },
    })
  }
}

/**
 * Compare every active golden measurement of `driver` and `vbios` with the
 * report's blocks. Throws (VerificationError ATTESTATION_RIM_MISMATCH) when
 * a RIM's version is not the report's or both RIMs claim an active index;
 * otherwise returns all matches and mismatches without judging them (use
 * `assertMeasurementsMatch` to fail on any mismatch).
 */
export function compareMeasurements(p: CompareMeasurementsParameters): CompareMeasurementsReturnType {
  checkParameters(p)
  checkVersion(p.driver, 'driver', p.reportDriverVersion)
  checkVersion(p.vbios, 'vbios', p.reportVbiosVersion)

  const golden = new Map<number, { m: RimMeasurement; rim: RimRole }>()
  for (const m of p.driver.measurements) if (m.active) golden.set(m.index, { m, rim: 'driver' })
  const conflicts: number[] = []
  for (const m of p.vbios.measurements) {
    if (!m.active) continue
    if (golden.has(m.index)) conflicts.push(m.index)
    else golden.set(m.index, { m, rim: 'vbios' })
  }
  if (conflicts.length > 0) {
    throw new VerificationError('ATTESTATION_RIM_MISMATCH', 'the driver and VBIOS RIMs both claim active measurement indices', {
      details: { indices: conflicts.sort((a, b) => a - b) },
    })
  }

  const nvdecDisabled = p.nvdec0Status === NVDEC0_STATUS_DISABLED
  const matched: number[] = []
  const mismatches: MeasurementMismatch[] = []
  const exempted: MeasurementMismatch[] = []
  for (const index of [...golden.keys()].sort((a, b) => a - b)) {
    const { m, rim } = golden.get(index)!
    const blockIndex = index + 1
    const actual = p.measurements.get(blockIndex)
    // Size as declared and bytes as listed: NVIDIA's Python verifier checks
    // the first, its C++ SDK the second; a value must pass both.
    if (actual !== undefined && actual.length === m.size && m.alternatives.some((alt) => equalBytes(alt, actual))) {
      matched.push(index)
      continue
    }
    const mismatch: MeasurementMismatch = {
      index,
      blockIndex,
      rim,
      name: m.name,
      expected: m.alternatives.map(hex),
      actual: actual === undefined ? null : hex(actual),
    }
    if (nvdecDisabled && index === NVDEC_EXEMPT_RIM_INDEX) exempted.push(mismatch)
    else mismatches.push(mismatch)
  }
  return { matched, mismatches, exempted }
}

/**
 * `compareMeasurements`, failing on any mismatch: throws VerificationError
 * ATTESTATION_GPU_MEASUREMENT_MISMATCH with every mismatching index in
 * `details.indices` and the mismatches themselves in `details.mismatches`.
 */
export function assertMeasurementsMatch(p: CompareMeasurementsParameters): CompareMeasurementsReturnType {
  const result = compareMeasurements(p)
  if (result.mismatches.length > 0) {
    throw new VerificationError(
      'ATTESTATION_GPU_MEASUREMENT_MISMATCH',
      `${result.mismatches.length} GPU measurement(s) do not match the RIMs`,
      { details: { indices: result.mismatches.map((x) => x.index), mismatches: result.mismatches } },
    )
  }
  return result
}
