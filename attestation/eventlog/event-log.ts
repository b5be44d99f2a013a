/**
 * The TCG2 crypto-agile event log of a TDX guest (the CCEL log area): bytes →
 * events, no crypto.
 *
 * Format: TCG PC Client Platform Firmware Profile (PFP) spec §10.2. The log
 * opens with one SHA-1-format `TCG_PCClientPCREvent` whose event data is the
 * `TCG_EfiSpecIDEvent` ("Spec ID Event03", §10.4.5.1) declaring each digest
 * algorithm and its size; every later record is a `TCG_PCR_EVENT2` (§10.2.2)
 * carrying one digest per algorithm, sized by that table.
 *
 * In a CCEL log the "PCR index" field holds the CC measurement register (MR)
 * index of UEFI 2.10 §38.4.1 (EFI_CC_MEASUREMENT_PROTOCOL), which for TDX is
 * MR 0 = MRTD, 1..4 = RTMR0..RTMR3. TDVF maps TPM PCR 0,1,7 → MR 1 (RTMR0),
 * PCR 2..6 → MR 2 (RTMR1), PCR 8..15 → MR 3 (RTMR2); RTMR3 (MR 4) is left to
 * the guest OS. The Google COS 113 vector (test/vectors/eventlog/gce-cos113)
 * uses exactly this: its events carry MR 1, 2 and 3 and replay to RTMR0..2.
 *
 * Nothing parsed here is trusted until `replay.ts` has reproduced the quote's
 * RTMRs from it. Digests and event data are views into the input (no copies):
 * callers that keep them must not mutate the input buffer.
 */

import { ParseError } from '../errors.ts'

/** TCG Algorithm Registry: TPM_ALG_SHA1. */
export const TPM_ALG_SHA1 = 0x0004
/** TCG Algorithm Registry: TPM_ALG_SHA256. */
export const TPM_ALG_SHA256 = 0x000b
/** TCG Algorithm Registry: TPM_ALG_SHA384, the only bank TDX RTMRs use. */
export const TPM_ALG_SHA384 = 0x000c
/** TCG Algorithm Registry: TPM_ALG_SHA512. */
export const TPM_ALG_SHA512 = 0x000d
/** TCG Algorithm Registry: TPM_ALG_SM3_256. */
export const TPM_ALG_SM3_256 = 0x0012
/** TCG Algorithm Registry: TPM_ALG_SHA3_256. */
export const TPM_ALG_SHA3_256 = 0x0027
/** TCG Algorithm Registry: TPM_ALG_SHA3_384. */
export const TPM_ALG_SHA3_384 = 0x0028
/** TCG Algorithm Registry: TPM_ALG_SHA3_512. */
export const TPM_ALG_SHA3_512 = 0x0029

/**
 * Digest sizes fixed by the TCG Algorithm Registry. A Spec ID event that
 * declares another size for one of these is lying about the layout of every
 * record after it, so it is rejected rather than believed.
 */
const KNOWN_DIGEST_SIZES: ReadonlyMap<number, number> = new Map([
  [TPM_ALG_SHA1, 20],
  [TPM_ALG_SHA256, 32],
  [TPM_ALG_SHA384, 48],
  [TPM_ALG_SHA512, 64],
  [TPM_ALG_SM3_256, 32],
  [TPM_ALG_SHA3_256, 32],
  [TPM_ALG_SHA3_384, 48],
  [TPM_ALG_SHA3_512, 64],
])

/** TCG PFP §10.4.1 (Event Types): events that are logged but never extended. */
export const EV_NO_ACTION = 0x00000003

/** TCG PFP §10.4.1 (Event Types): the names of every type the spec defines. */
export const EVENT_TYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [0x00000000, 'EV_PREBOOT_CERT'],
  [0x00000001, 'EV_POST_CODE'],
  [0x00000002, 'EV_UNUSED'],
  [0x00000003, 'EV_NO_ACTION'],
  [0x00000004, 'EV_SEPARATOR'],
  [0x00000005, 'EV_ACTION'],
  [0x00000006, 'EV_EVENT_TAG'],
  [0x00000007, 'EV_S_CRTM_CONTENTS'],
  [0x00000008, 'EV_S_CRTM_VERSION'],
  [0x00000009, 'EV_CPU_MICROCODE'],
  [0x0000000a, 'EV_PLATFORM_CONFIG_FLAGS'],
  [0x0000000b, 'EV_TABLE_OF_DEVICES'],
  [0x0000000c, 'EV_COMPACT_HASH'],
  [0x0000000d, 'EV_IPL'],
  [0x0000000e, 'EV_IPL_PARTITION_DATA'],
  [0x0000000f, 'EV_NONHOST_CODE'],
  [0x00000010, 'EV_NONHOST_CONFIG'],
  [0x00000011, 'EV_NONHOST_INFO'],
  [0x00000012, 'EV_OMIT_BOOT_DEVICE_EVENTS'],
  [0x00000013, 'EV_POST_CODE2'],
  [0x80000000, 'EV_EFI_EVENT_BASE'],
  [0x80000001, 'EV_EFI_VARIABLE_DRIVER_CONFIG'],
  [0x80000002, 'EV_EFI_VARIABLE_BOOT'],
  [0x80000003, 'EV_EFI_BOOT_SERVICES_APPLICATION'],
  [0x80000004, 'EV_EFI_BOOT_SERVICES_DRIVER'],
  [0x80000005, 'EV_EFI_RUNTIME_SERVICES_DRIVER'],
  [0x80000006, 'EV_EFI_GPT_EVENT'],
  [0x80000007, 'EV_EFI_ACTION'],
  [0x80000008, 'EV_EFI_PLATFORM_FIRMWARE_BLOB'],
  [0x80000009, 'EV_EFI_HANDOFF_TABLES'],
  [0x8000000a, 'EV_EFI_PLATFORM_FIRMWARE_BLOB2'],
  [0x8000000b, 'EV_EFI_HANDOFF_TABLES2'],
  [0x8000000c, 'EV_EFI_VARIABLE_BOOT2'],
  [0x8000000d, 'EV_EFI_GPT_EVENT2'],
  [0x80000010, 'EV_EFI_HCRTM_EVENT'],
  [0x800000e0, 'EV_EFI_VARIABLE_AUTHORITY'],
  [0x800000e1, 'EV_EFI_SPDM_FIRMWARE_BLOB'],
  [0x800000e2, 'EV_EFI_SPDM_FIRMWARE_CONFIG'],
  [0x800000e3, 'EV_EFI_SPDM_DEVICE_POLICY'],
  [0x800000e4, 'EV_EFI_SPDM_DEVICE_AUTHORITY'],
])

/** UEFI 2.10 §38.4.1: CC MR index 0 is MRTD (built by the TDX module, never extended by events). */
export const CC_MR_INDEX_MRTD = 0
/** UEFI 2.10 §38.4.1: CC MR index 1 is RTMR0; MR index i (1..4) is RTMR(i-1). */
export const CC_MR_INDEX_RTMR0 = 1
/** The highest CC MR index TDX defines (RTMR3). Larger indices name no register. */
export const CC_MR_INDEX_MAX = 4

/** TCG PFP §10.4.5.1: the 16-byte signature of the crypto-agile Spec ID event. */
const SPEC_ID_SIGNATURE = 'Spec ID Event03\0'

/**
 * TCG PFP §10.2.1: the first event is SHA-1 format: pcrIndex u32, eventType
 * u32, a 20-byte SHA-1 digest, eventSize u32.
 */
const SHA1_EVENT_HEADER_LENGTH = 32

/** TCG PFP §10.4.5.1: signature (16), platformClass u32, version (3 × u8), uintnSize u8, numberOfAlgorithms u32. */
const SPEC_ID_FIXED_LENGTH = 28

/** A register index as the quote numbers its RTMRs. */
export type RtmrIndex = 0 | 1 | 2 | 3

/** One (algorithm, digest size) row of the Spec ID event's table. */
export interface DigestSize {
  /** TPM_ALG_ID from the TCG Algorithm Registry, e.g. {@link TPM_ALG_SHA384}. */
  readonly algId: number
  readonly digestSize: number
}

/** The `TCG_EfiSpecIDEvent` header event (TCG PFP §10.4.5.1). */
export interface SpecIdEvent {
  /** Position in the log: always 0. */
  readonly index: 0
  /** TCG puts this event on PCR 0; TDVF logs it on MR 1 (PCR 0 mapped to RTMR0). Never extended. */
  readonly mrIndex: number
  readonly platformClass: number
  readonly specVersionMajor: number
  readonly specVersionMinor: number
  readonly specErrata: number
  /** 1 = UINT32, 2 = UINT64 (TCG PFP §10.4.5.1). */
  readonly uintnSize: number
  /** The digest algorithms every later record may carry, in declared order. */
  readonly algorithms: readonly DigestSize[]
  readonly vendorInfo: Uint8Array
}

/** One `TCG_PCR_EVENT2` record (TCG PFP §10.2.2) of a TDX CCEL log. */
export interface CcEvent {
  /** Position in the log, counting the Spec ID event as 0 (as tpm2_eventlog numbers them). */
  readonly index: number
  /** Byte offset of the record within the log data. */
  readonly offset: number
  /** CC measurement register index (UEFI 2.10 §38.4.1): 0 = MRTD, 1..4 = RTMR0..3. */
  readonly mrIndex: number
  /** The RTMR this event targets (`mrIndex - 1`), or null for MRTD. */
  readonly rtmr: RtmrIndex | null
  readonly eventType: number
  /** The TCG PFP §10.4.1 name of `eventType`, or null for a type the spec does not define. */
  readonly eventTypeName: string | null
  /** Digest per TPM_ALG_ID, in log order. SHA-384 is {@link TPM_ALG_SHA384}. */
  readonly digests: ReadonlyMap<number, Uint8Array>
  /** The raw event data (`event[eventSize]`). */
  readonly data: Uint8Array
}

/** A parsed CCEL event log. */
export interface CcEventLog {
  readonly specId: SpecIdEvent
  /** Every `TCG_PCR_EVENT2` record before the padding, in log order. */
  readonly events: readonly CcEvent[]
  /** Bytes used by the log (header event and records); the rest is padding. */
  readonly byteLength: number
}

/** The TCG PFP §10.4.1 name of an event type, or null. */
export function eventTypeName(eventType: number): string | null {
  return EVENT_TYPE_NAMES.get(eventType) ?? null
}

function malformed(offset: number, what: string): ParseError {
  return new ParseError('ATTESTATION_EVENTLOG_MALFORMED', `event log: ${what}`, { details: { offset, what } })
}

/** Throws unless `length` bytes are available at `offset`. */
function need(bytes: Uint8Array, offset: number, length: number, what: string): void {
  if (length > bytes.length - offset) throw malformed(offset, `truncated ${what}`)
}

function parseSpecIdEvent(bytes: Uint8Array, view: DataView): { specId: SpecIdEvent; end: number } {
  need(bytes, 0, SHA1_EVENT_HEADER_LENGTH, 'Spec ID event header')
  const mrIndex = view.getUint32(0, true)
  const eventType = view.getUint32(4, true)
  if (eventType !== EV_NO_ACTION) throw malformed(4, 'first event is not EV_NO_ACTION')
  const eventSize = view.getUint32(28, true)
  const start = SHA1_EVENT_HEADER_LENGTH
  need(bytes, start, eventSize, 'Spec ID event data')
  const end = start + eventSize
  if (eventSize < SPEC_ID_FIXED_LENGTH) throw malformed(28, 'Spec ID event is too short')
  for (let i = 0; i < SPEC_ID_SIGNATURE.length; i++) {
    if (bytes[start + i] !== SPEC_ID_SIGNATURE.charCodeAt(i)) throw malformed(start, 'first event is not a "Spec ID Event03" (crypto-agile) event')
  }
  const count = view.getUint32(start + 24, true)
  let p = start + SPEC_ID_FIXED_LENGTH
  // Bound the count by the bytes actually present before trusting it.
  if (count === 0 || count > (end - p) / 4) throw malformed(start + 24, `numberOfAlgorithms ${count} does not fit the event`)
  const algorithms: DigestSize[] = []
  const seen = new Set<number>()
  for (let i = 0; i < count; i++, p += 4) {
    const algId = view.getUint16(p, true)
    const digestSize = view.getUint16(p + 2, true)
    if (seen.has(algId)) throw malformed(p, `algorithm 0x${algId.toString(16)} declared twice`)
    const known = KNOWN_DIGEST_SIZES.get(algId)
    if (digestSize === 0 || (known !== undefined && known !== digestSize)) {
      throw malformed(p + 2, `algorithm 0x${algId.toString(16)} declared with digest size ${digestSize}`)
    }
    seen.add(algId)
    algorithms.push({ algId, digestSize })
  }
  if (p >= end) throw malformed(p, 'truncated Spec ID vendorInfoSize')
  const vendorInfoSize = bytes[p]!
  p += 1
  // The event size must account for exactly the fields it declares.
  if (p + vendorInfoSize !== end) throw malformed(28, 'Spec ID eventSize does not match its fields')
  return {
    specId: {
      index: 0,
      mrIndex,
      platformClass: view.getUint32(start + 16, true),
      specVersionMinor: bytes[start + 20]!,
      specVersionMajor: bytes[start + 21]!,
      specErrata: bytes[start + 22]!,
      uintnSize: bytes[start + 23]!,
      algorithms,
      vendorInfo: bytes.subarray(p, end),
    },
    end,
  }
}

/** Offset just past the last byte that is not 0x00 (0 if there is none). */
function endOfNonZero(bytes: Uint8Array): number {
  let i = bytes.length
  while (i > 0 && bytes[i - 1] === 0) i--
  return i
}

/**
 * True where the log has ended and only padding follows. The log area is
 * LAML bytes long and firmware leaves the unused tail 0xFF (TDVF) or 0x00,
 * so the end is: a header whose pcrIndex or eventType is 0xFFFFFFFF (never a
 * valid MR index or event type), or nothing but zero bytes from here on.
 */
function atPadding(bytes: Uint8Array, view: DataView, offset: number, zeroFrom: number): boolean {
  if (offset >= zeroFrom) return true
  const left = bytes.length - offset
  if (left >= 8) return view.getUint32(offset, true) === 0xffffffff || view.getUint32(offset + 4, true) === 0xffffffff
  for (let i = offset; i < bytes.length; i++) if (bytes[i] !== 0xff) return false
  return true
}

/**
 * Parse a TDX CCEL event log (TCG PFP §10.2 crypto-agile format), as read
 * from `/sys/firmware/acpi/tables/data/CCEL` (LAML bytes, padded).
 *
 * Parsing stops cleanly at the end of data or at padding (see above), so a
 * log cut exactly between two records parses as the shorter log. Throws
 * `ParseError` (`ATTESTATION_EVENTLOG_MALFORMED`, details `{offset, what}`)
 * for a missing or malformed Spec ID event, a record cut short, a digest of an
 * algorithm the Spec ID event did not declare (its size would be unknown), a
 * digest algorithm repeated within a record, or an MR index above 4.
 *
 * Does no hashing: a parsed event means nothing until `verifyRtmrs` has
 * matched the replay to a verified quote.
 */
export function parseEventLog(bytes: Uint8Array): CcEventLog {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const { specId, end } = parseSpecIdEvent(bytes, view)
  const sizes = new Map(specId.algorithms.map((a) => [a.algId, a.digestSize]))
  const zeroFrom = endOfNonZero(bytes)
  const events: CcEvent[] = []
  let o = end
  while (o < bytes.length && !atPadding(bytes, view, o, zeroFrom)) {
    const offset = o
    need(bytes, o, 12, 'event header')
    const mrIndex = view.getUint32(o, true)
    if (mrIndex > CC_MR_INDEX_MAX) throw malformed(o, `MR index ${mrIndex} names no TDX register`)
    const eventType = view.getUint32(o + 4, true)
    const count = view.getUint32(o + 8, true)
    // Each algorithm may appear once, so more digests than declared algorithms is malformed.
    if (count > sizes.size) throw malformed(o + 8, `digest count ${count} exceeds the ${sizes.size} declared algorithms`)
    o += 12
    const digests = new Map<number, Uint8Array>()
    for (let i = 0; i < count; i++) {
      need(bytes, o, 2, 'digest algorithm')
      const algId = view.getUint16(o, true)
      const size = sizes.get(algId)
      if (size === undefined) throw malformed(o, `digest algorithm 0x${algId.toString(16)} not declared by the Spec ID event`)
      // Two digests of one bank would let a policy read one while the replay uses the other.
      if (digests.has(algId)) throw malformed(o, `digest algorithm 0x${algId.toString(16)} repeated`)
      o += 2
      need(bytes, o, size, 'digest')
      digests.set(algId, bytes.subarray(o, o + size))
      o += size
    }
    need(bytes, o, 4, 'eventSize')
    const eventSize = view.getUint32(o, true)
    o += 4
    need(bytes, o, eventSize, 'event data')
    events.push({
      index: events.length + 1,
      offset,
      mrIndex,
      rtmr: mrIndex === CC_MR_INDEX_MRTD ? null : ((mrIndex - CC_MR_INDEX_RTMR0) as RtmrIndex),
      eventType,
      eventTypeName: eventTypeName(eventType),
      digests,
      data: bytes.subarray(o, o + eventSize),
    })
    o += eventSize
  }
  return { specId, events, byteLength: o }
}
