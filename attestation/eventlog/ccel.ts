/**
 * The CC Event Log ACPI table (CCEL): bytes → struct, no crypto.
 *
 * A TDX guest's firmware (TDVF) publishes where it left its measurement event
 * log in this table; Linux exposes the table at
 * `/sys/firmware/acpi/tables/CCEL` and the log area it points at at
 * `/sys/firmware/acpi/tables/data/CCEL`. The table itself is not measured, so
 * nothing here is trusted: it only tells a reader how long the log area is
 * (LAML) and that the log is a TDX one (CC type 2). The log's integrity comes
 * from replaying it against the quote's RTMRs (see `replay.ts`).
 *
 * Layout: ACPI 6.5 §5.2.34 "CC Event Log ACPI Table", after the
 * common header of §5.2.6 "System Description Table Header".
 */

import { ParseError } from '../errors.ts'

/** ACPI 6.5 §5.2.34: the table signature, "CCEL". */
export const CCEL_SIGNATURE = 'CCEL'

/** ACPI 6.5 §5.2.6: the System Description Table Header is 36 bytes. */
export const ACPI_HEADER_LENGTH = 36

/**
 * ACPI 6.5 §5.2.34: header (36) + CC Type (1) + CC Subtype (1)
 * + Reserved (2) + LAML (8) + LASA (8) = 56 bytes.
 */
export const CCEL_TABLE_LENGTH = 56

/** ACPI 6.5 §5.2.34: CC Type 1 is AMD SEV. */
export const CC_TYPE_SEV = 1

/**
 * ACPI 6.5 §5.2.34: CC Type 2 is Intel TDX. Intel's TDX Guest-Hypervisor
 * Communication Interface (GHCI) spec and the TD Virtual Firmware (TDVF)
 * design guide ("TD Event Log") have TDVF publish its event log this way.
 */
export const CC_TYPE_TDX = 2

// Field offsets: §5.2.6 (header) then §5.2.34 (CCEL body).
const OFF_LENGTH = 4 // u32, whole table including the header
const OFF_REVISION = 8 // u8
const OFF_CHECKSUM = 9 // u8, makes the byte sum of the table 0 mod 256
const OFF_OEM_ID = 10 // 6 ASCII bytes
const OFF_OEM_TABLE_ID = 16 // 8 ASCII bytes
const OFF_OEM_REVISION = 24 // u32
const OFF_CREATOR_ID = 28 // 4 ASCII bytes
const OFF_CREATOR_REVISION = 32 // u32
const OFF_CC_TYPE = 36 // u8
const OFF_CC_SUBTYPE = 37 // u8
const OFF_LAML = 40 // u64: Log Area Minimum Length
const OFF_LASA = 48 // u64: Log Area Start Address (guest-physical)

/** A parsed CCEL table. Integers wider than 32 bits are bigints. */
export interface CcelTable {
  /** §5.2.6 Length: the table's own length in bytes (≥ 56). */
  readonly length: number
  /** §5.2.6 Revision; 1 for ACPI 6.5. Reported, not checked: later revisions may only append. */
  readonly revision: number
  readonly checksum: number
  readonly oemId: string
  readonly oemTableId: string
  readonly oemRevision: number
  readonly creatorId: string
  readonly creatorRevision: number
  /** §5.2.34 CC Type: always {@link CC_TYPE_TDX} here (others are rejected). */
  readonly ccType: number
  /** §5.2.34 CC Subtype: 0 for TDX. */
  readonly ccSubtype: number
  /** §5.2.34 LAML: size of the log area; the log data file has this length. */
  readonly logAreaMinimumLength: bigint
  /** §5.2.34 LASA: guest-physical address of the log area (informative only). */
  readonly logAreaStartAddress: bigint
}

function malformed(offset: number, what: string): ParseError {
  return new ParseError('ATTESTATION_EVENTLOG_MALFORMED', `CCEL table: ${what}`, { details: { offset, what } })
}

function ascii(bytes: Uint8Array, start: number, length: number): string {
  return String.fromCharCode(...bytes.subarray(start, start + length))
}

/**
 * Parse a CCEL ACPI table (ACPI 6.5 §5.2.34).
 *
 * Throws `ParseError` (`ATTESTATION_EVENTLOG_MALFORMED`) when the signature is
 * not "CCEL", the declared length is shorter than 56 bytes or longer than the
 * data, the §5.2.6 checksum does not make the table sum to zero, or the CC
 * type is not TDX (this module's MR-index mapping is TDX's). Bytes beyond the
 * declared length are ignored, as ACPI readers do.
 */
export function parseCcelTable(bytes: Uint8Array): CcelTable {
  if (bytes.length < CCEL_TABLE_LENGTH) throw malformed(bytes.length, `table is ${bytes.length} bytes, needs ${CCEL_TABLE_LENGTH}`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (ascii(bytes, 0, 4) !== CCEL_SIGNATURE) throw malformed(0, 'signature is not CCEL')
  const length = view.getUint32(OFF_LENGTH, true)
  if (length < CCEL_TABLE_LENGTH || length > bytes.length) throw malformed(OFF_LENGTH, `declared length ${length} does not fit`)
  // §5.2.6: "the entire table, including the checksum field, must add to zero".
  let sum = 0
  for (let i = 0; i < length; i++) sum = (sum + bytes[i]!) & 0xff
  if (sum !== 0) throw malformed(OFF_CHECKSUM, 'checksum does not make the table sum to zero')
  const ccType = bytes[OFF_CC_TYPE]!
  if (ccType !== CC_TYPE_TDX) throw malformed(OFF_CC_TYPE, `CC type ${ccType} is not TDX (${CC_TYPE_TDX})`)
  return {
    length,
    revision: bytes[OFF_REVISION]!,
    checksum: bytes[OFF_CHECKSUM]!,
    oemId: ascii(bytes, OFF_OEM_ID, 6),
    oemTableId: ascii(bytes, OFF_OEM_TABLE_ID, 8),
    oemRevision: view.getUint32(OFF_OEM_REVISION, true),
    creatorId: ascii(bytes, OFF_CREATOR_ID, 4),
    creatorRevision: view.getUint32(OFF_CREATOR_REVISION, true),
    ccType,
    ccSubtype: bytes[OFF_CC_SUBTYPE]!,
    logAreaMinimumLength: view.getBigUint64(OFF_LAML, true),
    logAreaStartAddress: view.getBigUint64(OFF_LASA, true),
  }
}
