/**
 * Extending RTMRs from userspace, and the runtime event log that makes the
 * extensions replayable (attestation/eventlog/runtime-events.ts).
 *
 * The kernel interface on a real TD is the TSM measurement-register sysfs
 * of the TDX guest driver (Linux ≥ 6.16, drivers/virt/coco/tdx-guest with
 * drivers/virt/coco/tsm-mr.c; Documentation/ABI/testing/
 * sysfs-devices-virtual-misc-tdx_guest):
 *
 *   /sys/devices/virtual/misc/tdx_guest/measurements/rtmr<N>:sha384
 *     read:  the register's current 48 bytes (a live value: the driver
 *            refreshes its TDREPORT on read)
 *     write: exactly 48 bytes, extended as RTMR = SHA-384(RTMR ‖ bytes)
 *            (TDG.MR.RTMR.EXTEND)
 *
 * The earlier configfs-tsm `rtmrs` proposal (tsm: Runtime measurement
 * register support, 2024) was never merged, and the `TDX_CMD_EXTEND_RTMR`
 * ioctl exists only in patched kernels, so neither is used. A kernel
 * without tsm-mr is ENCLAVE_RTMR_UNAVAILABLE: the gateway then refuses to
 * start rather than serve a quote that does not say which release runs.
 *
 * The kernel logs none of this (the CCEL ends at boot), so every extension
 * is appended to a runtime event log kept on tmpfs (`/run/cgw`), which, like
 * the registers, lives exactly as long as the boot. A gateway that restarts
 * without a reboot finds the register already extended: it replays the log
 * it finds, and only if that reproduces the live register does it go on;
 * otherwise something extended unlogged and the register can no longer be
 * explained (ENCLAVE_RTMR_LOG_MISMATCH, fail closed; reboot).
 *
 * Extension is idempotent per boot ({@link planRuntimeExtension}): events
 * this boot's log already holds, identical, are not extended again — a
 * restart must leave RTMR3 where `cgw measure` predicted it, or every later
 * quote would stop matching the consumer's policy while /readyz stays true.
 * A log holding the same events with other payloads (another release or
 * config started in this boot) is ENCLAVE_RTMR_BOOT_CONFLICT: the quote
 * would vouch for both, so the gateway refuses to start until a reboot.
 * An extender that keeps its own log (the dstack agent) applies the same
 * rule to the log it reports ({@link RtmrExtender.log}).
 *
 * The dev TEE's registers live in this process's memory
 * ({@link createMemoryRtmrs}) and are extended by the same rule; the dev
 * quote provider signs their current values.
 */
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { BaseError, type BaseErrorOptions } from '../../attestation/errors.ts'
import { hex } from '../../attestation/bytes/hex.ts'
import { extendRtmr, RTMR_COUNT, RTMR_LENGTH } from '../../attestation/eventlog/replay.ts'
import { parseRuntimeEvents, replayRuntimeEvents, type RuntimeEvent, type RuntimeRtmr } from '../../attestation/eventlog/runtime-events.ts'
import { errnoOf } from './errno.ts'

/** Where the TDX guest driver publishes its measurement registers (Linux ≥ 6.16, tsm-mr). */
export const TSM_MR_PATH = 'sys/devices/virtual/misc/tdx_guest/measurements'
/** The runtime event log on tmpfs (cleared at boot, as the RTMRs are). */
export const RUNTIME_EVENT_LOG_PATH = 'run/cgw/runtime-events.json'

/** Registry of runtime measurement error codes. */
export const RTMR_ERROR_CODES = {
  ENCLAVE_RTMR_UNAVAILABLE: { description: 'no kernel interface to extend RTMRs (tsm-mr sysfs needs Linux >= 6.16 in a TDX guest)' },
  ENCLAVE_RTMR_EXTEND_FAILED: { description: 'writing the digest failed, or the register afterwards is not the expected extension (another writer)' },
  ENCLAVE_RTMR_LOG_MISMATCH: { description: 'the runtime event log does not replay to the live register: something extended it unlogged' },
  ENCLAVE_RTMR_BOOT_CONFLICT: { description: 'this boot already extended the same events with other payloads (another release or config): reboot to start a different one' },
} as const satisfies Record<string, { readonly description: string }>

export type RtmrErrorCode = keyof typeof RTMR_ERROR_CODES

export class RtmrError extends BaseError<RtmrErrorCode> {
  override name = 'RtmrError'
  constructor(code: RtmrErrorCode, shortMessage: string, options: BaseErrorOptions = {}) {
    super(code, shortMessage, options)
  }
}

/** What an extension is about, for the runtime event log (the digest is computed from it by the caller). */
export interface RtmrEventInfo {
  readonly event: string
  /** Hex. */
  readonly payload: string
}

export interface RtmrExtender {
  readonly name: string
  /** Extend `rtmr` by `digest48`: RTMR = SHA-384(RTMR ‖ digest48). */
  extend(rtmr: RuntimeRtmr, digest48: Uint8Array, event: RtmrEventInfo): Promise<void>
  /** The register's live value (48 bytes). */
  read(rtmr: RuntimeRtmr): Promise<Uint8Array>
  /**
   * For an extender that keeps this boot's runtime event log itself (the
   * dstack agent): every event extended so far, oldest first.
   */
  log?(): Promise<readonly RuntimeEvent[]>
}

const sameEvent = (a: RuntimeEvent, b: RuntimeEvent): boolean => a.imr === b.imr && a.event === b.event && a.digest === b.digest

/**
 * Which of `wanted` (in order) still have to be extended, given this boot's
 * log: none when the log already holds exactly these events; the rest when
 * the log ends with a prefix of them (a start interrupted between two
 * extensions); all when it holds none of their names. Anything else — the
 * same event names with other payloads, or a different order — is
 * ENCLAVE_RTMR_BOOT_CONFLICT.
 */
export function planRuntimeExtension(logged: readonly RuntimeEvent[], wanted: readonly RuntimeEvent[]): RuntimeEvent[] {
  const named = logged.filter((e) => wanted.some((w) => w.imr === e.imr && w.event === e.event))
  if (named.length === 0) return [...wanted]
  if (named.length === wanted.length && named.every((e, i) => sameEvent(e, wanted[i]!))) return []
  const k = named.length
  const tail = logged.slice(logged.length - k)
  if (k < wanted.length && named.every((e, i) => sameEvent(e, wanted[i]!)) && tail.every((e, i) => sameEvent(e, wanted[i]!))) return wanted.slice(k)
  throw new RtmrError('ENCLAVE_RTMR_BOOT_CONFLICT', 'this boot already extended these events with other values (another release or config): reboot the CVM to start a different one', {
    details: {
      logged: named.map((e) => ({ imr: e.imr, event: e.event, payload: e.payload })),
      wanted: wanted.map((e) => ({ imr: e.imr, event: e.event, payload: e.payload })),
    },
  })
}

function checkDigest(digest: Uint8Array): void {
  if (!(digest instanceof Uint8Array) || digest.length !== RTMR_LENGTH) throw new RtmrError('ENCLAVE_RTMR_EXTEND_FAILED', `an RTMR extension is exactly ${RTMR_LENGTH} bytes`)
}

/** The file operations the tsm-mr extender uses; node:fs/promises by default. */
export interface TsmMrFs {
  readFile(path: string): Promise<Uint8Array>
  writeFile(path: string, data: Uint8Array): Promise<void>
  exists(path: string): Promise<boolean>
}

export const nodeTsmMrFs: TsmMrFs = {
  readFile: async (p) => new Uint8Array(await readFile(p)),
  writeFile: (p, d) => writeFile(p, d),
  exists: (p) => stat(p).then(
    () => true,
    () => false,
  ),
}

export interface TsmMrOptions {
  /** Prefix of `/sys/...`; default `/`. */
  readonly root?: string
  readonly fs?: TsmMrFs
}

/**
 * The real extender (tsm-mr sysfs). `probe()` says at start, with a clear
 * error, whether this kernel has the interface; every extension is checked
 * by reading the register back.
 */
export function createTsmMrExtender(options: TsmMrOptions = {}): RtmrExtender & { probe(): Promise<void> } {
  const root = options.root ?? '/'
  const fs = options.fs ?? nodeTsmMrFs
  const dir = join(root, TSM_MR_PATH)
  const file = (rtmr: RuntimeRtmr) => join(dir, `rtmr${rtmr}:sha384`)
  const unavailable = (path: string, e?: unknown) =>
    new RtmrError('ENCLAVE_RTMR_UNAVAILABLE', `cannot extend RTMRs: ${path} is missing (needs Linux >= 6.16 with the TDX guest driver's tsm-mr measurements)`, {
      details: { path, errno: errnoOf(e) },
      ...(e === undefined ? {} : { cause: e }),
    })

  async function read(rtmr: RuntimeRtmr): Promise<Uint8Array> {
    let v: Uint8Array
    try {
      v = await fs.readFile(file(rtmr))
    } catch (e) {
      throw unavailable(file(rtmr), e)
    }
    if (v.length !== RTMR_LENGTH) throw new RtmrError('ENCLAVE_RTMR_EXTEND_FAILED', `${file(rtmr)} did not read as ${RTMR_LENGTH} bytes`, { details: { path: file(rtmr), length: v.length } })
    return v
  }

  let queue: Promise<unknown> = Promise.resolve()
  return {
    name: 'tsm-mr',
    async probe() {
      for (const r of [2, 3] as const) if (!(await fs.exists(file(r)))) throw unavailable(file(r))
    },
    read,
    extend(rtmr, digest, _event) {
      const run = queue.then(async () => {
        checkDigest(digest)
        const before = await read(rtmr)
        try {
          await fs.writeFile(file(rtmr), digest.slice())
        } catch (e) {
          throw new RtmrError('ENCLAVE_RTMR_EXTEND_FAILED', `writing ${file(rtmr)} failed`, { cause: e, details: { path: file(rtmr), errno: errnoOf(e) } })
        }
        const after = await read(rtmr)
        if (hex(after) !== hex(extendRtmr(before, digest))) {
          throw new RtmrError('ENCLAVE_RTMR_EXTEND_FAILED', `RTMR${rtmr} is not the expected extension after the write`, { details: { rtmr, actual: hex(after) } })
        }
      })
      queue = run.catch(() => undefined)
      return run
    },
  }
}

/** The dev TEE's registers: in memory, extended by the TDX rule, read by the dev quote provider. */
export interface MemoryRtmrs {
  readonly extender: RtmrExtender
  /** RTMR0..3 now (copies). */
  values(): Uint8Array[]
}

export function createMemoryRtmrs(initial?: readonly Uint8Array[]): MemoryRtmrs {
  const regs: Uint8Array[] = (initial ?? [0, 1, 2, 3].map(() => new Uint8Array(RTMR_LENGTH))).map((r) => r.slice())
  if (regs.length !== RTMR_COUNT || regs.some((r) => r.length !== RTMR_LENGTH)) throw new RtmrError('ENCLAVE_RTMR_EXTEND_FAILED', 'four 48-byte initial RTMRs expected')
  return {
    extender: {
      name: 'dev-memory',
      async extend(rtmr, digest) {
        checkDigest(digest)
        if (rtmr !== 2 && rtmr !== 3) throw new RtmrError('ENCLAVE_RTMR_EXTEND_FAILED', 'userspace extends RTMR2 or RTMR3 only')
        regs[rtmr] = extendRtmr(regs[rtmr]!, digest)
      },
      read: async (rtmr) => regs[rtmr]!.slice(),
    },
    values: () => regs.map((r) => r.slice()),
  }
}

/** Where the runtime events of this boot are kept. */
export interface RuntimeEventStore {
  load(): Promise<RuntimeEvent[]>
  save(events: readonly RuntimeEvent[]): Promise<void>
}

/** A store in memory (the dev TEE: its registers die with the process, so does the log). */
export function createMemoryEventStore(): RuntimeEventStore {
  let saved: RuntimeEvent[] = []
  return { load: async () => [...saved], save: async (e) => void (saved = [...e]) }
}

/** The tmpfs file store: absent file = no events yet this boot; written whole via rename, so never half a log. */
export function createFileEventStore(options: { readonly root?: string; readonly path?: string } = {}): RuntimeEventStore {
  const path = options.path ?? join(options.root ?? '/', RUNTIME_EVENT_LOG_PATH)
  return {
    async load() {
      let text: string
      try {
        text = await readFile(path, 'utf8')
      } catch (e) {
        if (errnoOf(e) === 'ENOENT') return []
        throw new RtmrError('ENCLAVE_RTMR_LOG_MISMATCH', `cannot read the runtime event log ${path}`, { cause: e, details: { path } })
      }
      try {
        return parseRuntimeEvents(JSON.parse(text))
      } catch (e) {
        throw new RtmrError('ENCLAVE_RTMR_LOG_MISMATCH', `the runtime event log ${path} is malformed`, { cause: e, details: { path } })
      }
    },
    async save(events) {
      await mkdir(dirname(path), { recursive: true, mode: 0o755 })
      const tmp = `${path}.${process.pid}.tmp`
      await writeFile(tmp, `${JSON.stringify(events)}\n`, { mode: 0o644 })
      await rename(tmp, path)
    },
  }
}

export interface RuntimeMeasurer {
  /**
   * Check the stored log against the live registers (from `base`: RTMR0..3
   * before userspace, the CCEL replay or zeros), then extend and log each
   * event in order that this boot has not extended yet
   * ({@link planRuntimeExtension}; ENCLAVE_RTMR_BOOT_CONFLICT for other
   * values of events already extended).
   */
  extend(events: readonly RuntimeEvent[]): Promise<void>
  /** Every event of this boot, oldest first: what EvidenceBundle.runtimeEvents carries. */
  events(): readonly RuntimeEvent[]
}

export function createRuntimeMeasurer(o: { readonly extender: RtmrExtender; readonly store: RuntimeEventStore; readonly base?: readonly Uint8Array[] }): RuntimeMeasurer {
  let log: RuntimeEvent[] = []
  let queue: Promise<unknown> = Promise.resolve()
  return {
    extend(events) {
      const run = queue.then(async () => {
        const checked = parseRuntimeEvents(events)
        const stored = await o.store.load()
        const replayed = replayRuntimeEvents(stored, o.base)
        for (const r of [2, 3] as const) {
          const live = await o.extender.read(r)
          if (hex(live) !== hex(replayed[r]!)) {
            throw new RtmrError('ENCLAVE_RTMR_LOG_MISMATCH', `the runtime event log does not reproduce the live RTMR${r}`, {
              details: { rtmr: r, live: hex(live), replayed: hex(replayed[r]!), events: stored.length },
            })
          }
        }
        log = stored
        for (const e of planRuntimeExtension(stored, checked)) {
          await o.extender.extend(e.imr, new Uint8Array(Buffer.from(e.digest, 'hex')), { event: e.event, payload: e.payload })
          log = [...log, e]
          await o.store.save(log)
        }
      })
      queue = run.catch(() => undefined)
      return run
    },
    events: () => [...log],
  }
}
