/**
 * NVIDIA GPU attestation report bytes → structures. No crypto, no policy.
 *
 * The report NVIDIA's driver returns (NVML
 * `nvmlDeviceGetConfComputeGpuAttestationReport`, `nvattest
 * collect-evidence`) is the SPDM 1.1 transcript of one measurement exchange
 * (DMTF DSP0274 1.1.0, GET_MEASUREMENTS / MEASUREMENTS): the
 * GET_MEASUREMENTS request (with the requester's nonce) followed by the
 * signed MEASUREMENTS response. The signature covers SHA-384 of the request
 * and of the response up to, not including, the signature (the L1/L2
 * transcript of DSP0274 1.1; SPDM 1.2 would prefix a VCA transcript and a
 * signing context, which is why only version 1.1 is read here).
 *
 * Every byte field is a view into the input, not a copy: a verifier checks
 * exactly the bytes that were parsed. The caller must not modify the buffer
 * afterwards. Anything truncated, inconsistent or left over is a ParseError
 * ATTESTATION_GPU_REPORT_MALFORMED with `{ offset, what }` details; the
 * parser never guesses (nvtrust's response parser, for one, ignores bytes
 * after the signature and keeps the last of two TLVs of one type; here both
 * are errors).
 */
import { ParseError } from '../../errors.ts'
import { ByteReader } from '../../bytes/reader.ts'

// ---------------------------------------------------------------------------
// SPDM constants (DSP0274 1.1.0)

/** SPDMVersion byte of SPDM 1.1 (major 1 in the high nibble, minor 1 in the low). */
export const SPDM_VERSION_11 = 0x11
/** RequestResponseCode of GET_MEASUREMENTS (DSP0274 1.1, request codes table). */
export const SPDM_GET_MEASUREMENTS = 0xe0
/** RequestResponseCode of MEASUREMENTS (DSP0274 1.1, response codes table). */
export const SPDM_MEASUREMENTS = 0x60
/** GET_MEASUREMENTS Param1 bit 0: the responder must sign; only then do Nonce and SlotIDParam follow. */
export const GET_MEASUREMENTS_SIGNATURE_REQUESTED = 0x01
/** GET_MEASUREMENTS Param2 (MeasurementOperation): 0 = only count the indices, 0xFF = every block, else one index. */
export const MEASUREMENT_OPERATION_COUNT = 0x00
export const MEASUREMENT_OPERATION_ALL = 0xff
/** Nonce size in the request and the response (DSP0274 1.1: 32 bytes). */
export const SPDM_NONCE_SIZE = 32
/**
 * Signed GET_MEASUREMENTS request size: SPDMVersion, code, Param1, Param2,
 * Nonce (32) and SlotIDParam (added in 1.1; bits 3:0 slot, 7:4 reserved).
 */
export const GET_MEASUREMENTS_REQUEST_SIZE = 4 + SPDM_NONCE_SIZE + 1
/** MEASUREMENTS fixed header: SPDMVersion, code, Param1, Param2, NumberOfBlocks, MeasurementRecordLength (u24). */
export const MEASUREMENTS_HEADER_SIZE = 8
/** DSP0274 1.1: OpaqueLength shall not exceed 1024 (libspdm `SPDM_MAX_OPAQUE_DATA_SIZE`). */
export const SPDM_MAX_OPAQUE_DATA_SIZE = 1024
/**
 * Signature size: NVIDIA GPUs negotiate TPM_ALG_ECDSA_ECC_NIST_P384 with
 * SHA-384, so the signature is raw `r || s`, 48 bytes each (nvtrust
 * `HopperSettings.signature_length`, go-nvattest-tools
 * `GpuAttestationReportSignatureFieldSize`).
 */
export const GPU_REPORT_SIGNATURE_SIZE = 96
/** Measurement block header: Index, MeasurementSpecification, MeasurementSize (u16). */
export const MEASUREMENT_BLOCK_HEADER_SIZE = 4
/** MeasurementSpecification bit 0: the DMTF measurement format (the only one defined by DSP0274 1.1). */
export const MEASUREMENT_SPECIFICATION_DMTF = 0x01
/** DMTF measurement header: DMTFSpecMeasurementValueType, DMTFSpecMeasurementValueSize (u16). */
export const DMTF_MEASUREMENT_HEADER_SIZE = 3
/** DMTFSpecMeasurementValueType bit 7: 1 = raw bit stream, 0 = digest; bits 6:0 say what was measured. */
export const DMTF_VALUE_TYPE_RAW_BIT_STREAM = 0x80
/** DMTFSpecMeasurementValueType bits 6:0 (DSP0274 1.1). */
export const DMTF_MEASUREMENT_TYPE = {
  IMMUTABLE_ROM: 0,
  MUTABLE_FIRMWARE: 1,
  HARDWARE_CONFIGURATION: 2,
  FIRMWARE_CONFIGURATION: 3,
  MEASUREMENT_MANIFEST: 4,
} as const

// ---------------------------------------------------------------------------
// NVIDIA opaque-data field types (little-endian u16 type, u16 size, value),
// as numbered by nvtrust `spdm_msrt_resp_msg.OpaqueData.OPAQUE_DATA_TYPES`
// and go-nvattest-tools `abi.gpuOpaqueDataTypes`.

export const OPAQUE_FIELD = {
  CERT_ISSUER_NAME: 1,
  CERT_AUTHORITY_KEY_IDENTIFIER: 2,
  DRIVER_VERSION: 3,
  GPU_INFO: 4,
  SKU: 5,
  VBIOS_VERSION: 6,
  MANUFACTURER_ID: 7,
  TAMPER_DETECTION: 8,
  SMC: 9,
  VPR: 10,
  NVDEC0_STATUS: 11,
  MSRSCNT: 12,
  CPRINFO: 13,
  BOARD_ID: 14,
  CHIP_SKU: 15,
  CHIP_SKU_MOD: 16,
  PROJECT: 17,
  PROJECT_SKU: 18,
  PROJECT_SKU_MOD: 19,
  FWID: 20,
  PROTECTED_PCIE_STATUS: 21,
  SWITCH_PDI: 22,
  FLOORSWEPT_PORTS: 23,
  POSITION_ID: 24,
  LOCK_SWITCH_STATUS: 25,
  GPU_LINK_CONN: 32,
  SYS_ENABLE_STATUS: 33,
  OPAQUE_DATA_VERSION: 34,
  CHIP_INFO: 35,
  FEATURE_FLAG: 36,
  INVALID: 255,
} as const

/** Opaque-data TLV header: type (u16) and size (u16). */
export const OPAQUE_FIELD_HEADER_SIZE = 4
/** VBIOS version field: 8 bytes, read as described at `formatVbiosVersion`. */
export const VBIOS_VERSION_SIZE = 8
/** Each MSRSCNT entry is a u32 (nvtrust `OpaqueData.MSR_COUNT_SIZE`). */
export const MSR_COUNT_SIZE = 4
/** NVDEC0 status byte values (nvtrust `BaseSettings.NVDEC_STATUS`). */
export const NVDEC_STATUS_ENABLED = 0xaa
export const NVDEC_STATUS_DISABLED = 0x55
/**
 * FEATURE_FLAG values (nvtrust `OpaqueData.parse_feature_flag`): the
 * multi-GPU protection mode, not the CC mode. Reports with opaque data
 * version ≥ 1 (Blackwell-era firmware) carry it; Hopper reports such as the
 * sample do not.
 */
export const FEATURE_FLAG = { SPT: 0, MPT: 1, PPCIE: 2 } as const

// ---------------------------------------------------------------------------
// Structures

/** The GET_MEASUREMENTS request, as the requester sent it. */
export interface MeasurementsRequest {
  readonly raw: Uint8Array
  readonly version: number
  readonly code: number
  /** Attributes; bit 0 = signature requested (always set in a parsed report). */
  readonly param1: number
  /** MeasurementOperation: 0xFF for every block, otherwise one index. */
  readonly param2: number
  /** The requester's nonce: what binds the report to a verifier's challenge. */
  readonly nonce: Uint8Array
  /** SlotIDParam as sent (bits 3:0 = slot, bits 7:4 reserved). */
  readonly slotIdParam: number
  /** Certificate slot whose key signs (bits 3:0 of SlotIDParam). */
  readonly slotId: number
}

export type MeasurementRepresentation = 'digest' | 'raw'

/** One measurement block in DMTF format. */
export interface MeasurementBlock {
  /** The whole block: header and measurement. */
  readonly raw: Uint8Array
  readonly index: number
  readonly measurementSpecification: number
  /** DMTFSpecMeasurementValueType as sent (bit 7 representation, bits 6:0 type). */
  readonly dmtfValueType: number
  /** Bits 6:0 of the value type (see `DMTF_MEASUREMENT_TYPE`). */
  readonly dmtfType: number
  readonly representation: MeasurementRepresentation
  /** DMTFSpecMeasurementValue: on NVIDIA GPUs a SHA-384 digest (48 bytes). */
  readonly value: Uint8Array
}

/** One opaque-data TLV. */
export interface OpaqueField {
  readonly type: number
  /** Offset of the TLV header within the whole report. */
  readonly offset: number
  readonly value: Uint8Array
}

/**
 * The NVIDIA opaque data: every TLV by type, plus the fields verifiers and
 * policies use, decoded. A named field is undefined when its TLV is absent.
 */
export interface GpuOpaqueData {
  readonly raw: Uint8Array
  /** Every TLV by type, in report order; a type occurs at most once. */
  readonly fields: ReadonlyMap<number, OpaqueField>
  /** e.g. "550.90.07" (type 3, NUL-padded ASCII). */
  readonly driverVersion?: string
  /** e.g. "96.00.9F.00.01", the RIM `colloquialVersion` form (type 6, see `formatVbiosVersion`). */
  readonly vbiosVersion?: string
  /** Type 17, e.g. "1010". */
  readonly project?: string
  /** Type 18, e.g. "0200". */
  readonly projectSku?: string
  /** Type 19. */
  readonly projectSkuMod?: string
  /** Type 15, e.g. "882". */
  readonly chipSku?: string
  /** Type 16. */
  readonly chipSkuMod?: string
  /** Type 35 (Blackwell and later), e.g. "GB100". */
  readonly chipInfo?: string
  /** Type 20: the firmware identity, matched against the device leaf certificate's DICE FWID. */
  readonly fwid?: Uint8Array
  /** Type 21, one byte. */
  readonly protectedPcieStatus?: number
  /** Type 11, one byte: `NVDEC_STATUS_ENABLED` or `NVDEC_STATUS_DISABLED`. */
  readonly nvdecStatus?: number
  /** Type 36: see `FEATURE_FLAG`. */
  readonly featureFlag?: number
  /** Type 34. */
  readonly opaqueDataVersion?: number
  /** Type 12: how many times each measurement index was extended (u32 each). */
  readonly measurementCounts?: readonly number[]
}

/** The MEASUREMENTS response. */
export interface MeasurementsResponse {
  /** The whole response including the signature. */
  readonly raw: Uint8Array
  readonly version: number
  readonly code: number
  readonly param1: number
  readonly param2: number
  readonly numberOfBlocks: number
  /** MeasurementRecord: the concatenated blocks. */
  readonly measurementRecord: Uint8Array
  /** Blocks in report order. */
  readonly blocks: readonly MeasurementBlock[]
  /** Blocks by index (indices are unique). */
  readonly blocksByIndex: ReadonlyMap<number, MeasurementBlock>
  /** The responder's nonce (freshness is given by the request nonce; this one is only signed). */
  readonly nonce: Uint8Array
  readonly opaque: GpuOpaqueData
  readonly signature: Uint8Array
}

/** A parsed GPU attestation report. */
export interface GpuReport {
  readonly raw: Uint8Array
  readonly request: MeasurementsRequest
  readonly response: MeasurementsResponse
  /** request || response without the signature: what the device key signed. */
  readonly signedBytes: Uint8Array
  /** The 96-byte `r || s` ECDSA P-384 signature. */
  readonly signature: Uint8Array
}

// ---------------------------------------------------------------------------
// Reading

function malformed(what: string, offset: number, extra: Record<string, unknown> = {}): never {
  throw new ParseError('ATTESTATION_GPU_REPORT_MALFORMED', `GPU report: ${what}`, { details: { offset, what, ...extra } })
}

/** `pos` and `end` are offsets into the whole report. */
class Reader extends ByteReader {
  constructor(buf: Uint8Array, pos: number, end: number) {
    super(buf, pos, end, (what, offset, needed, available) => malformed(`ends inside ${what}`, offset, { needed, available }))
  }
}

function parseRequest(r: Reader): MeasurementsRequest {
  const start = r.pos
  const version = r.u8('request.SPDMVersion')
  if (version !== SPDM_VERSION_11) malformed(`request SPDM version 0x${version.toString(16)} is not 1.1`, start, { version })
  const code = r.u8('request.RequestResponseCode')
  if (code !== SPDM_GET_MEASUREMENTS) malformed(`request code 0x${code.toString(16)} is not GET_MEASUREMENTS`, start + 1, { code })
  const param1 = r.u8('request.Param1')
  // Without the signature bit there is no nonce, no slot and no signature: nothing to attest.
  // The other bits are reserved in 1.1; set, they mean a request this layout does not describe.
  if (param1 !== GET_MEASUREMENTS_SIGNATURE_REQUESTED) malformed('request does not ask for a signed response (Param1)', start + 2, { param1 })
  const param2 = r.u8('request.Param2')
  const nonce = r.take(SPDM_NONCE_SIZE, 'request.Nonce')
  const slotIdParam = r.u8('request.SlotIDParam')
  if (slotIdParam & 0xf0) malformed('reserved SlotIDParam bits are set', start + 36, { slotIdParam })
  return {
    raw: r.buf.subarray(start, r.pos),
    version,
    code,
    param1,
    param2,
    nonce,
    slotIdParam,
    slotId: slotIdParam & 0x0f,
  }
}

function parseBlocks(r: Reader, count: number): { blocks: MeasurementBlock[]; byIndex: Map<number, MeasurementBlock> } {
  const blocks: MeasurementBlock[] = []
  const byIndex = new Map<number, MeasurementBlock>()
  for (let i = 0; i < count; i++) {
    const start = r.pos
    const index = r.u8('measurement block Index')
    // Index 0 is not a measurement and 0xFF means "all" (DSP0274 1.1 MeasurementOperation); neither names a block.
    if (index === 0 || index === 0xff) malformed(`measurement block index ${index} is reserved`, start, { index })
    if (byIndex.has(index)) malformed(`duplicate measurement block index ${index}`, start, { index })
    const measurementSpecification = r.u8('measurement block MeasurementSpecification')
    if (measurementSpecification !== MEASUREMENT_SPECIFICATION_DMTF) {
      malformed(`measurement block ${index} is not in DMTF format`, start + 1, { index, measurementSpecification })
    }
    const measurementSize = r.u16('measurement block MeasurementSize')
    const m = new Reader(r.buf, r.pos, r.pos + measurementSize)
    r.take(measurementSize, `measurement block ${index}`)
    const dmtfValueType = m.u8('DMTFSpecMeasurementValueType')
    const valueSize = m.u16('DMTFSpecMeasurementValueSize')
    if (DMTF_MEASUREMENT_HEADER_SIZE + valueSize !== measurementSize) {
      malformed(`measurement block ${index}: MeasurementSize ${measurementSize} disagrees with value size ${valueSize}`, start + 2, {
        index,
        measurementSize,
        valueSize,
      })
    }
    const value = m.take(valueSize, `measurement block ${index} value`)
    if (valueSize === 0) malformed(`measurement block ${index} has an empty value`, start, { index })
    const block: MeasurementBlock = {
      raw: r.buf.subarray(start, r.pos),
      index,
      measurementSpecification,
      dmtfValueType,
      dmtfType: dmtfValueType & ~DMTF_VALUE_TYPE_RAW_BIT_STREAM,
      representation: dmtfValueType & DMTF_VALUE_TYPE_RAW_BIT_STREAM ? 'raw' : 'digest',
      value,
    }
    blocks.push(block)
    byIndex.set(index, block)
  }
  return { blocks, byIndex }
}

/** Printable ASCII, then only NUL padding: how NVIDIA encodes version and SKU strings. */
function asciiField(f: OpaqueField, name: string): string {
  let n = f.value.indexOf(0)
  if (n === -1) n = f.value.length
  for (let i = 0; i < f.value.length; i++) {
    const c = f.value[i]!
    const ok = i < n ? c >= 0x20 && c <= 0x7e : c === 0
    if (!ok) malformed(`opaque field ${name} is not NUL-padded ASCII`, f.offset, { type: f.type })
  }
  return String.fromCharCode(...f.value.subarray(0, n))
}

/** A little-endian unsigned value of 1 to 4 bytes. */
function uintField(f: OpaqueField, name: string, sizes: readonly number[]): number {
  if (!sizes.includes(f.value.length)) malformed(`opaque field ${name} has size ${f.value.length}`, f.offset, { type: f.type })
  let v = 0
  for (let i = f.value.length - 1; i >= 0; i--) v = v * 256 + f.value[i]!
  return v
}

/**
 * The VBIOS version as NVIDIA prints it (nvtrust `format_vbios_version`) and
 * as the VBIOS RIM's `colloquialVersion` states it: the 8-byte field is a
 * little-endian u64 whose low 32 bits give the first four components (most
 * significant byte first) and whose byte 4 gives the fifth. Upper-case hex,
 * dot-separated: 00 9f 00 96 01 00 00 00 → "96.00.9F.00.01". Bytes 5 to 7
 * are not part of the printed version.
 */
export function formatVbiosVersion(field: Uint8Array): string {
  if (field.length !== VBIOS_VERSION_SIZE) throw new RangeError('a VBIOS version field is 8 bytes')
  return [field[3]!, field[2]!, field[1]!, field[0]!, field[4]!].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join('.')
}

function parseOpaque(buf: Uint8Array, start: number, end: number): GpuOpaqueData {
  const r = new Reader(buf, start, end)
  const fields = new Map<number, OpaqueField>()
  while (r.pos < end) {
    const offset = r.pos
    const type = r.u16('opaque field DataType')
    const size = r.u16('opaque field DataSize')
    const value = r.take(size, `opaque field ${type}`)
    // A second TLV of one type would give two readings of one claim (two FWIDs, two driver versions).
    if (fields.has(type)) malformed(`duplicate opaque field type ${type}`, offset, { type })
    fields.set(type, { type, offset, value })
  }
  const F = OPAQUE_FIELD
  const get = (t: number) => fields.get(t)
  const text = (t: number, name: string) => {
    const f = get(t)
    return f === undefined ? {} : { [name]: asciiField(f, name) }
  }
  const out: { -readonly [K in keyof GpuOpaqueData]: GpuOpaqueData[K] } = {
    raw: buf.subarray(start, end),
    fields,
    ...text(F.DRIVER_VERSION, 'driverVersion'),
    ...text(F.PROJECT, 'project'),
    ...text(F.PROJECT_SKU, 'projectSku'),
    ...text(F.PROJECT_SKU_MOD, 'projectSkuMod'),
    ...text(F.CHIP_SKU, 'chipSku'),
    ...text(F.CHIP_SKU_MOD, 'chipSkuMod'),
    ...text(F.CHIP_INFO, 'chipInfo'),
  }
  const vbios = get(F.VBIOS_VERSION)
  if (vbios) {
    if (vbios.value.length !== VBIOS_VERSION_SIZE) malformed(`opaque field vbiosVersion has size ${vbios.value.length}`, vbios.offset)
    out.vbiosVersion = formatVbiosVersion(vbios.value)
  }
  const fwid = get(F.FWID)
  if (fwid) {
    if (fwid.value.length === 0) malformed('opaque field fwid is empty', fwid.offset)
    out.fwid = fwid.value
  }
  const pcie = get(F.PROTECTED_PCIE_STATUS)
  if (pcie) out.protectedPcieStatus = uintField(pcie, 'protectedPcieStatus', [1])
  const nvdec = get(F.NVDEC0_STATUS)
  if (nvdec) out.nvdecStatus = uintField(nvdec, 'nvdecStatus', [1])
  const feature = get(F.FEATURE_FLAG)
  if (feature) out.featureFlag = uintField(feature, 'featureFlag', [1, 2, 4])
  const version = get(F.OPAQUE_DATA_VERSION)
  if (version) out.opaqueDataVersion = uintField(version, 'opaqueDataVersion', [1, 2, 4])
  const counts = get(F.MSRSCNT)
  if (counts) {
    const v = counts.value
    if (v.length % MSR_COUNT_SIZE !== 0) malformed('opaque field measurementCounts is not a list of u32', counts.offset)
    const list: number[] = []
    for (let i = 0; i < v.length; i += MSR_COUNT_SIZE) list.push((v[i]! | (v[i + 1]! << 8) | (v[i + 2]! << 16) | (v[i + 3]! << 24)) >>> 0)
    out.measurementCounts = list
  }
  return out
}

function parseResponse(r: Reader): MeasurementsResponse & { signedEnd: number } {
  const start = r.pos
  const version = r.u8('response.SPDMVersion')
  if (version !== SPDM_VERSION_11) malformed(`response SPDM version 0x${version.toString(16)} is not 1.1`, start, { version })
  const code = r.u8('response.RequestResponseCode')
  if (code !== SPDM_MEASUREMENTS) malformed(`response code 0x${code.toString(16)} is not MEASUREMENTS`, start + 1, { code })
  const param1 = r.u8('response.Param1')
  const param2 = r.u8('response.Param2')
  const numberOfBlocks = r.u8('response.NumberOfBlocks')
  const recordLength = r.u24('response.MeasurementRecordLength')
  const recordStart = r.pos
  const measurementRecord = r.take(recordLength, 'response.MeasurementRecord')
  const rec = new Reader(r.buf, recordStart, recordStart + recordLength)
  const { blocks, byIndex } = parseBlocks(rec, numberOfBlocks)
  if (rec.pos !== rec.end) malformed('MeasurementRecord holds bytes after its last block', rec.pos, { numberOfBlocks, recordLength })
  const nonce = r.take(SPDM_NONCE_SIZE, 'response.Nonce')
  const opaqueOffset = r.pos
  const opaqueLength = r.u16('response.OpaqueLength')
  if (opaqueLength > SPDM_MAX_OPAQUE_DATA_SIZE) malformed(`OpaqueLength ${opaqueLength} exceeds 1024`, opaqueOffset, { opaqueLength })
  const opaqueStart = r.pos
  r.take(opaqueLength, 'response.OpaqueData')
  const opaque = parseOpaque(r.buf, opaqueStart, opaqueStart + opaqueLength)
  const signedEnd = r.pos
  const signature = r.take(GPU_REPORT_SIGNATURE_SIZE, 'response.Signature')
  return {
    raw: r.buf.subarray(start, r.pos),
    version,
    code,
    param1,
    param2,
    numberOfBlocks,
    measurementRecord,
    blocks,
    blocksByIndex: byIndex,
    nonce,
    opaque,
    signature,
    signedEnd,
  }
}

/**
 * Parse a GPU attestation report: the SPDM 1.1 GET_MEASUREMENTS request
 * immediately followed by the signed MEASUREMENTS response, and nothing else.
 * Throws ParseError ATTESTATION_GPU_REPORT_MALFORMED (details: offset, what).
 */
export function parseGpuReport(bytes: Uint8Array): GpuReport {
  const r = new Reader(bytes, 0, bytes.length)
  const request = parseRequest(r)
  const { signedEnd, ...response } = parseResponse(r)
  if (r.pos !== bytes.length) malformed('trailing bytes after the signature', r.pos, { trailing: bytes.length - r.pos })
  // The request decides what the response may contain (DSP0274 1.1 MeasurementOperation).
  const op = request.param2
  if (op === MEASUREMENT_OPERATION_COUNT) {
    if (response.numberOfBlocks !== 0) malformed('a count-only request was answered with blocks', GET_MEASUREMENTS_REQUEST_SIZE + 4)
  } else if (op === MEASUREMENT_OPERATION_ALL) {
    if (response.numberOfBlocks === 0) malformed('an all-measurements request was answered without blocks', GET_MEASUREMENTS_REQUEST_SIZE + 4)
  } else if (response.numberOfBlocks !== 1 || response.blocks[0]!.index !== op) {
    malformed(`a request for index ${op} was answered with other blocks`, GET_MEASUREMENTS_REQUEST_SIZE + 4, { requested: op })
  }
  return {
    raw: bytes,
    request,
    response,
    signedBytes: bytes.subarray(0, signedEnd),
    signature: response.signature,
  }
}

/**
 * Parse the hex text form of a report (`hopperAttestationReport.txt`, the
 * `evidence` of nvattest's JSON is base64 instead). Surrounding whitespace is
 * ignored; anything else that is not an even number of hex digits is a
 * ParseError ATTESTATION_GPU_EVIDENCE_MALFORMED (the encoding, not the report).
 */
export function parseGpuReportHex(text: string): GpuReport {
  const hex = text.trim()
  if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) {
    throw new ParseError('ATTESTATION_GPU_EVIDENCE_MALFORMED', 'GPU report text is not hex', { details: { length: hex.length } })
  }
  return parseGpuReport(new Uint8Array(Buffer.from(hex, 'hex')))
}
