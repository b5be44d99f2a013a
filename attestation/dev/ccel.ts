/**
 * The development TEE's firmware event log: a structurally real CCEL (the
 * ACPI table and its TCG2 crypto-agile log area) describing a short,
 * plausible boot of a dev TD, so that everything downstream of the event
 * log — RTMR replay, `requiredEvents` for RTMR0-2, the transparency-log
 * auditor (which fails evidence without a CCEL: LOG_EVENTLOG_MISSING) —
 * runs its real code path on the dev TEE too.
 *
 * NOT FOR PRODUCTION, and nothing here was measured: the events describe a
 * boot no firmware performed, exactly as dev quotes come from no TDX
 * module. The log is as trustworthy as the quote it replays to, and a dev
 * quote is only accepted under a policy pinning the dev root.
 *
 * Encoding only: this module writes the bytes `attestation/eventlog` parses
 * (ccel.ts, event-log.ts) and takes the RTMR values from that module's own
 * parser and replay, so the generator cannot disagree with a verifier.
 *
 * Layouts:
 *   - table: ACPI 6.5 §5.2.6 (System Description Table Header) and §5.2.34
 *     (CC Event Log ACPI Table), CC type 2 (TDX);
 *   - log: TCG PC Client Platform Firmware Profile (PFP) §10.2: one
 *     SHA-1-format TCG_PCClientPCREvent carrying the `TCG_EfiSpecIDEvent`
 *     ("Spec ID Event03", §10.4.5.1) that declares SHA-384 alone, then
 *     TCG_PCR_EVENT2 records (§10.2.2), each with one SHA-384 digest;
 *   - the "PCR index" of each record is the CC MR index of UEFI 2.10
 *     §38.4.1 (RTMRn = MR n+1), with TDVF's PCR mapping: PCR 0/1/7 → MR 1
 *     (RTMR0), PCR 2..6 → MR 2 (RTMR1), PCR 8..15 → MR 3 (RTMR2).
 *
 * The boot it describes (TDVF booting a Linux EFI-stub kernel directly, the
 * events in the order firmware and stub log them; compare the GCE COS 113
 * vector, test/vectors/eventlog/gce-cos113):
 *
 *   RTMR0  EV_EFI_PLATFORM_FIRMWARE_BLOB2   the firmware configuration volume
 *          EV_EFI_VARIABLE_DRIVER_CONFIG ×5 SecureBoot (off), PK, KEK, db, dbx (empty)
 *          EV_SEPARATOR
 *   RTMR1  EV_EFI_ACTION                    "Calling EFI Application from Boot Option"
 *          EV_SEPARATOR
 *          EV_EFI_BOOT_SERVICES_APPLICATION the kernel
 *   RTMR2  EV_EVENT_TAG                     the kernel command line (LoadOptions)
 *          EV_EVENT_TAG                     the initrd
 *   RTMR1  EV_EFI_ACTION ×2                 ExitBootServices invoked / returned
 *
 * Deterministic: the same inputs give the same bytes (no clock, no
 * randomness), so a dev policy can pin RTMR0-2 and the events above.
 * RTMR3 is left to the guest OS (runtime events), as on a real TD.
 */
import { createHash } from 'node:crypto'
import { concatBytes } from '../bytes/concat.ts'
import { ConfigError } from '../errors.ts'
import { CC_TYPE_TDX, CCEL_SIGNATURE, CCEL_TABLE_LENGTH, parseCcelTable } from '../eventlog/ccel.ts'
import { CC_MR_INDEX_RTMR0, EV_NO_ACTION, parseEventLog, TPM_ALG_SHA384 } from '../eventlog/event-log.ts'
import { replayRtmrs } from '../eventlog/replay.ts'

// TCG PFP §10.4.1 (Event Types).
/** TCG PFP §10.4.1: EV_SEPARATOR, the end of pre-OS measurements into a PCR. */
export const EV_SEPARATOR = 0x00000004
/** TCG PFP §10.4.1: EV_EVENT_TAG, data is a TCG_PCClientTaggedEvent. */
export const EV_EVENT_TAG = 0x00000006
/** TCG PFP §10.4.1: EV_EFI_VARIABLE_DRIVER_CONFIG, data is a UEFI_VARIABLE_DATA. */
export const EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001
/** TCG PFP §10.4.1: EV_EFI_BOOT_SERVICES_APPLICATION, data is a UEFI_IMAGE_LOAD_EVENT. */
export const EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
/** TCG PFP §10.4.1: EV_EFI_ACTION, data is an ASCII string (no terminator), digest its hash. */
export const EV_EFI_ACTION = 0x80000007
/** TCG PFP §10.4.1: EV_EFI_PLATFORM_FIRMWARE_BLOB2, data is a UEFI_PLATFORM_FIRMWARE_BLOB2. */
export const EV_EFI_PLATFORM_FIRMWARE_BLOB2 = 0x8000000a

/** UEFI 2.10 §38.4.1 with TDVF's mapping of PCR 0/1/7: MR 1 is RTMR0. */
const MR_RTMR0 = CC_MR_INDEX_RTMR0
/** TDVF's mapping of PCR 2..6 (boot applications, EFI actions): MR 2, RTMR1. */
const MR_RTMR1 = CC_MR_INDEX_RTMR0 + 1
/** TDVF's mapping of PCR 8..15 (the OS loader's; Linux's stub uses PCR 9): MR 3, RTMR2. */
const MR_RTMR2 = CC_MR_INDEX_RTMR0 + 2

/** TCG Algorithm Registry: SHA-384 digests are 48 bytes (the RTMR width). */
const SHA384_SIZE = 48
/** TCG PFP §10.4.5.1: the Spec ID event's signature, NUL included. */
const SPEC_ID_SIGNATURE = 'Spec ID Event03\0'
/** TCG PFP §10.4.5.1: platformClass 0 is "client" (TDVF's value). */
const SPEC_ID_PLATFORM_CLASS_CLIENT = 0
/** TCG PFP §10.4.5.1: spec version 2.0, errata 0, as TDVF writes it. */
const SPEC_ID_VERSION = { major: 2, minor: 0, errata: 0 } as const
/** TCG PFP §10.4.5.1: uintnSize 2 means UINTN is UINT64. */
const SPEC_ID_UINTN_SIZE_64 = 2
/** TCG PFP §10.2.1: the first event's digest is a 20-byte SHA-1 field (zeros: EV_NO_ACTION). */
const SHA1_SIZE = 20

/** TCG PFP, EV_SEPARATOR: event data 0x00000000 for a normal (non-error) boot; the digest is its hash. */
const SEPARATOR_DATA = new Uint8Array(4)

/** UEFI 2.10 §3.3 (Globally Defined Variables): EFI_GLOBAL_VARIABLE, 8BE4DF61-93CA-11D2-AA0D-00E098032B8C. */
const EFI_GLOBAL_VARIABLE = '8be4df61-93ca-11d2-aa0d-00e098032b8c'
/** UEFI 2.10 §32.6.1: EFI_IMAGE_SECURITY_DATABASE_GUID (db, dbx), D719B2CB-3D3A-4596-A3BC-DAD00E67656F. */
const EFI_IMAGE_SECURITY_DATABASE_GUID = 'd719b2cb-3d3a-4596-a3bc-dad00e67656f'

/**
 * Linux drivers/firmware/efi/libstub (efi_measure_tagged_event): the stub
 * measures its LoadOptions (the command line) and the initrd into PCR 9 as
 * EV_EVENT_TAG, tagged with these ids and descriptions (NUL included).
 */
const LOAD_OPTIONS_EVENT_TAG_ID = 0x8f3b22ed
const LOAD_OPTIONS_EVENT_DESCRIPTION = 'LOADED_IMAGE::LoadOptions\0'
const INITRD_EVENT_TAG_ID = 0x8f3b22ec
const INITRD_EVENT_DESCRIPTION = 'Linux initrd\0'

/** TCG PFP, EV_EFI_ACTION strings: what firmware logs around launching the boot option (as in the COS 113 vector). */
const ACTION_CALLING_BOOT_OPTION = 'Calling EFI Application from Boot Option'
const ACTION_EXIT_BOOT_SERVICES = 'Exit Boot Services Invocation'
const ACTION_EXIT_BOOT_SERVICES_OK = 'Exit Boot Services Returned with Success'

/**
 * The firmware volume's description in the BLOB2 event: TDVF writes
 * "Fv(<GUID>)"; this GUID ("de7", as DEV_FMSPC) names no real firmware volume.
 */
const DEV_FIRMWARE_DESCRIPTION = 'Fv(DE700000-0000-4000-8000-00000000CF01)'
/** Where the dev firmware volume "sits" (top of the 4 GiB space, as a TD's firmware does); informative only. */
const DEV_FIRMWARE_BASE = 0xffc00000n
/** Where the dev kernel image "was loaded"; informative only (the digest is what replays). */
const DEV_KERNEL_LOAD_ADDRESS = 0x7c000000n
/** UEFI 2.10 §10.3.5.4 (Media File Path) of the kernel, as a directly booted UKI/stub kernel sits on the ESP. */
const DEV_KERNEL_PATH = '\\EFI\\BOOT\\BOOTX64.EFI'

/**
 * ACPI 6.5 §5.2.6 header fields of the dev table. OEM "CGWDEV"/"DEVTDVF "
 * rather than TDVF's "INTEL "/"EDK2    ", so no reader mistakes it for real
 * firmware's.
 */
const DEV_OEM_ID = 'CGWDEV'
const DEV_OEM_TABLE_ID = 'DEVTDVF '
const DEV_CREATOR_ID = 'CGW '
/** ACPI 6.5 §5.2.34: table revision 1. */
const CCEL_REVISION = 1
/** ACPI 6.5 §5.2.34: CC subtype 0 for TDX. */
const CCEL_SUBTYPE_TDX = 0
/** Guest-physical address of the log area (LASA); informative only, any value a TD could use. */
const DEV_LOG_AREA_ADDRESS = 0x7f000000n
/**
 * The log area's length (LAML): 64 KiB, a size TDVF reserves (the COS 113
 * vector's is 256 KiB). The unused tail is 0xFF, as TDVF leaves it, which
 * the parser reads as the end of the log.
 */
export const DEV_CCEL_LOG_AREA_LENGTH = 0x10000
/** What firmware leaves in the log area past the last event (TDVF: 0xFF). */
const LOG_AREA_FILL = 0xff

const text = (s: string): Uint8Array => new TextEncoder().encode(s)

/** The dev firmware configuration volume (opaque bytes: only its SHA-384 enters RTMR0). */
export const DEV_FIRMWARE: Uint8Array = text('confidential-gateway development TD firmware configuration volume (not a real image)\n')
/** The dev kernel image (opaque bytes: only its SHA-384 enters RTMR1). */
export const DEV_KERNEL: Uint8Array = text('confidential-gateway development TD kernel (not a real image)\n')
/** The dev initrd (opaque bytes: only its SHA-384 enters RTMR2). */
export const DEV_INITRD: Uint8Array = text('confidential-gateway development TD initrd (not a real image)\n')
/** The dev kernel command line, measured into RTMR2 as the Linux EFI stub measures LoadOptions. */
export const DEV_KERNEL_CMDLINE = 'console=hvc0 root=/dev/vda1 ro'

export interface DevCcelOptions {
  /** The firmware configuration volume measured into RTMR0 (EV_EFI_PLATFORM_FIRMWARE_BLOB2); default {@link DEV_FIRMWARE}. */
  readonly firmware?: Uint8Array
  /** The kernel image measured into RTMR1 (EV_EFI_BOOT_SERVICES_APPLICATION); default {@link DEV_KERNEL}. */
  readonly kernel?: Uint8Array
  /**
   * The kernel command line measured into RTMR2 (EV_EVENT_TAG, LoadOptions).
   * A string is measured as firmware hands LoadOptions to the stub:
   * UTF-16LE with a terminating NUL; bytes are measured as given.
   * Default {@link DEV_KERNEL_CMDLINE}.
   */
  readonly cmdline?: string | Uint8Array
  /** The initrd measured into RTMR2 (EV_EVENT_TAG); default {@link DEV_INITRD}. */
  readonly initrd?: Uint8Array
}

/** A dev CCEL: what `/sys/firmware/acpi/tables/CCEL` and `.../data/CCEL` would hold, and its replay. */
export interface DevCcel {
  /** The ACPI CCEL table (56 bytes). */
  readonly table: Uint8Array
  /** The log area (LAML bytes: events, then 0xFF). */
  readonly data: Uint8Array
  /** RTMR0..3 as `attestation/eventlog` replays `data` (RTMR3 zero: no firmware event targets it). */
  readonly rtmrs: Uint8Array[]
}

function invalid(what: string): never {
  throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `createDevCcel: ${what}`, { details: { what } })
}

const sha384 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha384').update(b).digest())

function u8(v: number): Uint8Array {
  return Uint8Array.of(v)
}
function u16(v: number): Uint8Array {
  const b = new Uint8Array(2)
  new DataView(b.buffer).setUint16(0, v, true)
  return b
}
function u32(v: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, v, true)
  return b
}
function u64(v: bigint): Uint8Array {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setBigUint64(0, v, true)
  return b
}
/** CHAR16 string as UEFI stores it (UTF-16LE), with the terminating NUL. */
function char16z(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(`${s}\0`, 'utf16le'))
}
/** EFI_GUID in its mixed-endian wire form (UEFI 2.10 Appendix A: Data1-3 little-endian, Data4 as bytes). */
function guid(s: string): Uint8Array {
  const h = s.replaceAll('-', '')
  const be = Buffer.from(h, 'hex')
  return Uint8Array.from([be[3]!, be[2]!, be[1]!, be[0]!, be[5]!, be[4]!, be[7]!, be[6]!, ...be.subarray(8)])
}

/**
 * TCG PFP §10.2.1: the log's first record, a SHA-1-format TCG_PCClientPCREvent
 * (pcrIndex, eventType EV_NO_ACTION, 20 zero bytes, eventSize) carrying the
 * TCG_EfiSpecIDEvent (§10.4.5.1) that declares SHA-384 as the only bank.
 * TDVF logs it on MR 1 (PCR 0's register), as the COS 113 vector shows.
 */
function specIdEvent(): Uint8Array {
  const spec = concatBytes([
    text(SPEC_ID_SIGNATURE),
    u32(SPEC_ID_PLATFORM_CLASS_CLIENT),
    u8(SPEC_ID_VERSION.minor),
    u8(SPEC_ID_VERSION.major),
    u8(SPEC_ID_VERSION.errata),
    u8(SPEC_ID_UINTN_SIZE_64),
    u32(1), // numberOfAlgorithms
    u16(TPM_ALG_SHA384),
    u16(SHA384_SIZE),
    u8(0), // vendorInfoSize
  ])
  return concatBytes([u32(MR_RTMR0), u32(EV_NO_ACTION), new Uint8Array(SHA1_SIZE), u32(spec.length), spec])
}

/** TCG PFP §10.2.2: a TCG_PCR_EVENT2 with one TPMT_HA (SHA-384) in its TPML_DIGEST_VALUES. */
function event2(mrIndex: number, eventType: number, digest: Uint8Array, data: Uint8Array): Uint8Array {
  return concatBytes([u32(mrIndex), u32(eventType), u32(1), u16(TPM_ALG_SHA384), digest, u32(data.length), data])
}

/** An event whose digest is the SHA-384 of its own data (separators, EFI actions, variables). */
function selfDigested(mrIndex: number, eventType: number, data: Uint8Array): Uint8Array {
  return event2(mrIndex, eventType, sha384(data), data)
}

/**
 * TCG PFP UEFI_VARIABLE_DATA: VariableName GUID, UnicodeNameLength
 * (in CHAR16s, no NUL), VariableDataLength, UnicodeName, VariableData. For
 * EV_EFI_VARIABLE_DRIVER_CONFIG the digest is the hash of this whole
 * structure (EDK2 Tcg2Dxe, and TDVF after it, do so).
 */
function variableData(vendor: string, name: string, value: Uint8Array): Uint8Array {
  const unicodeName = new Uint8Array(Buffer.from(name, 'utf16le'))
  return concatBytes([guid(vendor), u64(BigInt(name.length)), u64(BigInt(value.length)), unicodeName, value])
}

/** UEFI_PLATFORM_FIRMWARE_BLOB2: BlobDescriptionSize (u8), BlobDescription, BlobBase (u64), BlobLength (u64). */
function firmwareBlob2(description: string, base: bigint, length: number): Uint8Array {
  const d = text(description)
  return concatBytes([u8(d.length), d, u64(base), u64(BigInt(length))])
}

/**
 * UEFI_IMAGE_LOAD_EVENT: ImageLocationInMemory, ImageLengthInMemory,
 * ImageLinkTimeAddress, LengthOfDevicePath (u64 each), then the device path:
 * one Media File Path node (UEFI 2.10 §10.3.5.4: type 4, subtype 4, u16
 * length, CHAR16 path with NUL) and the End of Hardware Device Path node
 * (§10.3.1: type 0x7F, subtype 0xFF, length 4).
 */
function imageLoadEvent(location: bigint, length: number, path: string): Uint8Array {
  const p = char16z(path)
  const devicePath = concatBytes([u8(0x04), u8(0x04), u16(4 + p.length), p, Uint8Array.of(0x7f, 0xff, 0x04, 0x00)])
  return concatBytes([u64(location), u64(BigInt(length)), u64(0n), u64(BigInt(devicePath.length)), devicePath])
}

/** TCG_PCClientTaggedEvent: taggedEventID (u32), taggedEventDataSize (u32), taggedEventData. */
function taggedEvent(id: number, description: string): Uint8Array {
  const d = text(description)
  return concatBytes([u32(id), u32(d.length), d])
}

/** ACPI 6.5 §5.2.6 + §5.2.34: the 56-byte CCEL table pointing at a log area of `laml` bytes; checksum last. */
function ccelTable(laml: number): Uint8Array {
  const t = concatBytes([
    text(CCEL_SIGNATURE),
    u32(CCEL_TABLE_LENGTH),
    u8(CCEL_REVISION),
    u8(0), // checksum, set below
    text(DEV_OEM_ID),
    text(DEV_OEM_TABLE_ID),
    u32(1), // OEM revision
    text(DEV_CREATOR_ID),
    u32(1), // creator revision
    u8(CC_TYPE_TDX),
    u8(CCEL_SUBTYPE_TDX),
    u16(0), // reserved
    u64(BigInt(laml)),
    u64(DEV_LOG_AREA_ADDRESS),
  ])
  // §5.2.6: "the entire table, including the checksum field, must add to zero".
  let sum = 0
  for (const b of t) sum = (sum + b) & 0xff
  t[9] = (0x100 - sum) & 0xff
  return t
}

/**
 * Generate the dev TD's CCEL (module header) from `options`, and RTMR0..3 as
 * `attestation/eventlog` replays it. Same inputs, same bytes. Throws
 * ConfigError ATTESTATION_OPTIONS_INVALID for an input of the wrong type.
 */
export function createDevCcel(options: DevCcelOptions = {}): DevCcel {
  const { firmware = DEV_FIRMWARE, kernel = DEV_KERNEL, cmdline = DEV_KERNEL_CMDLINE, initrd = DEV_INITRD } = options ?? {}
  if (!(firmware instanceof Uint8Array)) invalid('firmware must be bytes')
  if (!(kernel instanceof Uint8Array)) invalid('kernel must be bytes')
  if (!(initrd instanceof Uint8Array)) invalid('initrd must be bytes')
  if (typeof cmdline !== 'string' && !(cmdline instanceof Uint8Array)) invalid('cmdline must be a string or bytes')
  const loadOptions = typeof cmdline === 'string' ? char16z(cmdline) : cmdline

  const records: Uint8Array[] = [
    specIdEvent(),
    // RTMR0: the firmware and its Secure Boot configuration (PCR 0 and 7).
    event2(MR_RTMR0, EV_EFI_PLATFORM_FIRMWARE_BLOB2, sha384(firmware), firmwareBlob2(DEV_FIRMWARE_DESCRIPTION, DEV_FIRMWARE_BASE, firmware.length)),
    // SecureBoot = 0 (off) and empty PK/KEK/db/dbx: the dev TD boots an unsigned kernel, and says so.
    selfDigested(MR_RTMR0, EV_EFI_VARIABLE_DRIVER_CONFIG, variableData(EFI_GLOBAL_VARIABLE, 'SecureBoot', Uint8Array.of(0))),
    selfDigested(MR_RTMR0, EV_EFI_VARIABLE_DRIVER_CONFIG, variableData(EFI_GLOBAL_VARIABLE, 'PK', new Uint8Array(0))),
    selfDigested(MR_RTMR0, EV_EFI_VARIABLE_DRIVER_CONFIG, variableData(EFI_GLOBAL_VARIABLE, 'KEK', new Uint8Array(0))),
    selfDigested(MR_RTMR0, EV_EFI_VARIABLE_DRIVER_CONFIG, variableData(EFI_IMAGE_SECURITY_DATABASE_GUID, 'db', new Uint8Array(0))),
    selfDigested(MR_RTMR0, EV_EFI_VARIABLE_DRIVER_CONFIG, variableData(EFI_IMAGE_SECURITY_DATABASE_GUID, 'dbx', new Uint8Array(0))),
    selfDigested(MR_RTMR0, EV_SEPARATOR, SEPARATOR_DATA),
    // RTMR1: the boot option and the kernel it launches (PCR 4 and 5).
    selfDigested(MR_RTMR1, EV_EFI_ACTION, text(ACTION_CALLING_BOOT_OPTION)),
    selfDigested(MR_RTMR1, EV_SEPARATOR, SEPARATOR_DATA),
    // Real firmware hashes a PE image the Authenticode way; the dev kernel is opaque bytes, so its plain SHA-384.
    event2(MR_RTMR1, EV_EFI_BOOT_SERVICES_APPLICATION, sha384(kernel), imageLoadEvent(DEV_KERNEL_LOAD_ADDRESS, kernel.length, DEV_KERNEL_PATH)),
    // RTMR2: what the Linux EFI stub measures into PCR 9 before it exits boot services.
    event2(MR_RTMR2, EV_EVENT_TAG, sha384(loadOptions), taggedEvent(LOAD_OPTIONS_EVENT_TAG_ID, LOAD_OPTIONS_EVENT_DESCRIPTION)),
    event2(MR_RTMR2, EV_EVENT_TAG, sha384(initrd), taggedEvent(INITRD_EVENT_TAG_ID, INITRD_EVENT_DESCRIPTION)),
    // RTMR1 again: ExitBootServices (PCR 5), the last firmware events.
    selfDigested(MR_RTMR1, EV_EFI_ACTION, text(ACTION_EXIT_BOOT_SERVICES)),
    selfDigested(MR_RTMR1, EV_EFI_ACTION, text(ACTION_EXIT_BOOT_SERVICES_OK)),
  ]
  const log = concatBytes(records)
  // The records are a few KiB whatever the inputs (only digests of them are logged), so they always fit.
  const data = new Uint8Array(Math.max(DEV_CCEL_LOG_AREA_LENGTH, log.length)).fill(LOG_AREA_FILL)
  data.set(log)
  const table = ccelTable(data.length)

  // Read back through the verifier's own parsers: a generator bug fails here, not in an auditor.
  parseCcelTable(table)
  const parsed = parseEventLog(data)
  if (parsed.byteLength !== log.length || parsed.events.length !== records.length - 1) invalid('generated log does not parse back whole (a generator bug)')
  return { table, data, rtmrs: replayRtmrs(parsed.events) }
}
