/**
 * The CC event log of this boot, read from where Linux exposes the ACPI CCEL
 * table (ACPI 6.5 §5.2.34) and the log area it points at:
 *
 *   /sys/firmware/acpi/tables/CCEL        the table (56 bytes)
 *   /sys/firmware/acpi/tables/data/CCEL   the TCG2 crypto-agile event log
 *
 * Bytes only: nothing here parses or trusts the log. A verifier replays it
 * against the quote's RTMRs (attestation/eventlog). Both files are readable
 * by root only on stock kernels, so a permission error says so.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { EnclaveError } from '../errors.ts'
import type { EventLogProvider } from '../types.ts'
import { errnoOf } from './errno.ts'

/** Where the kernel's ACPI driver publishes the CCEL table (drivers/acpi/sysfs.c: tables/<signature>). */
export const CCEL_TABLE_PATH = 'sys/firmware/acpi/tables/CCEL'
/** Where it publishes the log area the table points at (drivers/acpi/sysfs.c: tables/data/<signature>). */
export const CCEL_DATA_PATH = 'sys/firmware/acpi/tables/data/CCEL'

export interface CcelEventLogOptions {
  /** Prefix of `/sys/...`; default `/`. */
  readonly root?: string
  /** Default node:fs/promises `readFile`. */
  readonly readFile?: (path: string) => Promise<Uint8Array>
}

/**
 * Read the CCEL table and log. Resolves null when the platform has no CCEL
 * table (not a TDX guest, or firmware without one); a table without its
 * data region, or an unreadable file, is an error (ENCLAVE_EVIDENCE_UNAVAILABLE).
 */
export function createCcelEventLogProvider(options: CcelEventLogOptions = {}): EventLogProvider {
  const root = options.root ?? '/'
  const read = options.readFile ?? (async (p: string) => new Uint8Array(await readFile(p)))
  const tablePath = join(root, CCEL_TABLE_PATH)
  const dataPath = join(root, CCEL_DATA_PATH)

  const load = async (path: string, missingIsNull: boolean): Promise<Uint8Array | null> => {
    try {
      return await read(path)
    } catch (e) {
      const errno = errnoOf(e)
      if (missingIsNull && errno === 'ENOENT') return null
      const why = errno === 'EACCES' || errno === 'EPERM' ? ' (the ACPI tables are readable by root only)' : ''
      throw new EnclaveError('ENCLAVE_EVIDENCE_UNAVAILABLE', `cannot read the CCEL event log at ${path}${why}`, {
        details: { path, errno, step: 'event-log' },
        cause: e,
      })
    }
  }

  return {
    async read() {
      const table = await load(tablePath, true)
      if (table === null) return null
      const data = await load(dataPath, false)
      return { table, data: data! }
    },
  }
}
