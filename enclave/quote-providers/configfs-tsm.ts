/**
 * The real TDX quote provider: Linux configfs-tsm (kernel ≥ 6.7), plain file
 * I/O, as documented in the kernel's Documentation/ABI/testing/configfs-tsm-report
 * (named configfs-tsm in the kernels that introduced it):
 *
 *   mkdir  /sys/kernel/config/tsm/report/<name>      a report instance
 *   read   <name>/provider     "tdx_guest" on a TDX guest (the outblob format)
 *   read   <name>/generation   a counter bumped by every write to the instance
 *   write  <name>/inblob       up to 64 bytes: the TD's REPORTDATA
 *   read   <name>/outblob      the quote for what inblob holds
 *   rmdir  <name>
 *
 * The ABI warns that two writers of one instance get each other's data and
 * offers two defences; we use both: a fresh instance per request (named
 * after this process and a counter), and the generation check — read
 * before writing inblob, read after reading outblob, and the difference must
 * be exactly our one write, else someone else wrote and we retry.
 * Requests are also serialised in-process by a mutex, because quote
 * generation is a slow host round trip and a flood would only queue in the
 * kernel anyway.
 *
 * All I/O is async and goes through `fs` (default node:fs/promises), so
 * tests drive it against a fake tree; `root` prefixes every path.
 */
import { mkdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ConfigError } from '../../attestation/errors.ts'
import { EnclaveError } from '../errors.ts'
import type { QuoteProvider } from '../types.ts'
import { errnoOf } from './errno.ts'

/** configfs-tsm-report ABI: where report instances are made. */
export const TSM_REPORT_PATH = 'sys/kernel/config/tsm/report'
/** configfs-tsm-report ABI `provider`: the TDX guest driver's name (drivers/virt/coco/tdx-guest). */
export const TSM_PROVIDER_TDX = 'tdx_guest'
/** configfs-tsm-report ABI `inblob`: "Up to 64 bytes of user specified binary data"; TDX REPORTDATA is exactly 64. */
export const TSM_INBLOB_SIZE = 64
/** Retries after a generation mismatch before giving up. */
export const DEFAULT_GENERATION_RETRIES = 3

/** The file operations the provider uses; node:fs/promises by default. */
export interface ConfigfsFs {
  mkdir(path: string): Promise<void>
  rmdir(path: string): Promise<void>
  readFile(path: string): Promise<Uint8Array>
  writeFile(path: string, data: Uint8Array): Promise<void>
  /** Whether `path` is a directory; rejects (ENOENT, ...) when it does not exist. */
  isDirectory(path: string): Promise<boolean>
}

export const nodeConfigfsFs: ConfigfsFs = {
  mkdir: async (p) => {
    await mkdir(p)
  },
  rmdir: (p) => rmdir(p),
  readFile: async (p) => new Uint8Array(await readFile(p)),
  writeFile: (p, d) => writeFile(p, d),
  isDirectory: async (p) => (await stat(p)).isDirectory(),
}

export interface ConfigfsTsmOptions {
  /** Prefix of `/sys/...`; default `/`. */
  readonly root?: string
  /** File operations; default {@link nodeConfigfsFs}. */
  readonly fs?: ConfigfsFs
  /** Default {@link DEFAULT_GENERATION_RETRIES}. */
  readonly retries?: number
}

function unavailable(message: string, details: Record<string, unknown>, cause?: unknown): EnclaveError {
  return new EnclaveError('ENCLAVE_QUOTE_PROVIDER_UNAVAILABLE', message, { details, cause })
}

function parseGeneration(bytes: Uint8Array, path: string): bigint {
  const text = Buffer.from(bytes).toString('latin1').trim()
  if (!/^[0-9]{1,20}$/.test(text)) throw unavailable(`configfs-tsm: ${path} is not a decimal counter`, { path })
  return BigInt(text)
}

/** Every instance name this process makes is new: pid and a counter. */
let instanceCounter = 0

/** The configfs-tsm provider. Construction touches nothing; the first `getQuote` finds out whether configfs-tsm exists. */
export function createConfigfsTsmQuoteProvider(options: ConfigfsTsmOptions = {}): QuoteProvider {
  const root = options.root ?? '/'
  const fs = options.fs ?? nodeConfigfsFs
  const retries = options.retries ?? DEFAULT_GENERATION_RETRIES
  if (!Number.isInteger(retries) || retries < 0) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'configfs-tsm: retries must be a non-negative integer')
  const reportDir = join(root, TSM_REPORT_PATH)
  let queue: Promise<unknown> = Promise.resolve()

  async function once(reportData: Uint8Array, signal: AbortSignal | undefined): Promise<Uint8Array> {
    try {
      if (!(await fs.isDirectory(reportDir))) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' })
    } catch (e) {
      throw unavailable(
        `configfs-tsm is not available: ${reportDir} does not exist (needs Linux ≥ 6.7 in a TDX guest with configfs mounted at /sys/kernel/config)`,
        { path: reportDir, errno: errnoOf(e) },
        e,
      )
    }
    const dir = join(reportDir, `cgw-${process.pid}-${++instanceCounter}`)
    try {
      await fs.mkdir(dir)
    } catch (e) {
      throw unavailable(`configfs-tsm: cannot create the report instance ${dir}`, { path: dir, errno: errnoOf(e) }, e)
    }
    try {
      const step = async <T>(what: string, path: string, f: () => Promise<T>): Promise<T> => {
        signal?.throwIfAborted()
        try {
          return await f()
        } catch (e) {
          throw unavailable(`configfs-tsm: cannot ${what} ${path}`, { path, step: what, errno: errnoOf(e) }, e)
        }
      }
      const providerPath = join(dir, 'provider')
      const provider = Buffer.from(await step('read', providerPath, () => fs.readFile(providerPath))).toString('latin1').trim()
      if (provider !== TSM_PROVIDER_TDX) {
        throw unavailable(`configfs-tsm provider is "${provider}", not "${TSM_PROVIDER_TDX}": this is not a TDX guest`, { path: providerPath, provider })
      }
      const generationPath = join(dir, 'generation')
      for (let attempt = 0; ; attempt++) {
        const before = parseGeneration(await step('read', generationPath, () => fs.readFile(generationPath)), generationPath)
        await step('write', join(dir, 'inblob'), () => fs.writeFile(join(dir, 'inblob'), reportData))
        const quote = await step('read', join(dir, 'outblob'), () => fs.readFile(join(dir, 'outblob')))
        const after = parseGeneration(await step('read', generationPath, () => fs.readFile(generationPath)), generationPath)
        if (after === before + 1n) {
          if (quote.length === 0) throw unavailable('configfs-tsm returned an empty outblob', { path: join(dir, 'outblob') })
          return quote
        }
        if (attempt >= retries) {
          throw unavailable('configfs-tsm: another writer kept changing the report instance', {
            path: dir,
            attempts: attempt + 1,
            generationBefore: before.toString(),
            generationAfter: after.toString(),
          })
        }
      }
    } finally {
      await fs.rmdir(dir).catch(() => {
        // Leaving an instance behind costs a directory entry, not a wrong quote.
      })
    }
  }

  return {
    name: 'configfs-tsm',
    getQuote(reportData, o = {}) {
      if (!(reportData instanceof Uint8Array) || reportData.length !== TSM_INBLOB_SIZE) {
        return Promise.reject(new ConfigError('ATTESTATION_OPTIONS_INVALID', `configfs-tsm: reportData must be ${TSM_INBLOB_SIZE} bytes`))
      }
      const data = reportData.slice()
      const run = queue.then(() => once(data, o.signal))
      queue = run.catch(() => undefined)
      return run
    },
  }
}
