/**
 * The gateway's own measurements at start: which release runs and with
 * which config, extended into RTMR3 as two runtime events (`cgw-release`,
 * `cgw-config`; attestation/eventlog/runtime-events.ts) before the first
 * quote, so every quote proves both.
 *
 * The release is found, in order: the configured release directory (on a
 * real TD it must hold the running entry file, listed in its manifest); the
 * directory of the running entry file when it holds a release.json (the
 * bundle, deploy/release); else, for the dev TEE only, the fixed
 * UNRELEASED_RELEASE_HASH. A real TD without a release refuses to start:
 * a consumer cannot allow-list a source tree nobody built.
 *
 * Failures are EnclaveError ENCLAVE_EVIDENCE_UNAVAILABLE with
 * `details.step` "runtime-measurement" and `details.code` the cause's code
 * (RELEASE_*, ENCLAVE_RTMR_*), so `cgw gateway` exits 6 naming it.
 */
import { access } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { BaseError } from '../../attestation/errors.ts'
import { parseCcelTable } from '../../attestation/eventlog/ccel.ts'
import { parseEventLog } from '../../attestation/eventlog/event-log.ts'
import { replayRtmrs } from '../../attestation/eventlog/replay.ts'
import { gatewayConfigHash, gatewayStartEvents, type RuntimeEvent } from '../../attestation/eventlog/runtime-events.ts'
import { RELEASE_MANIFEST_FILE, ReleaseError, type ReleaseManifest, UNRELEASED_RELEASE_HASH, verifyReleaseDirectory } from '../../deploy/release/manifest.ts'
import { EnclaveError } from '../errors.ts'
import type { EventLogProvider } from '../types.ts'
import { createRuntimeMeasurer, planRuntimeExtension, RtmrError, type RtmrExtender, type RuntimeEventStore, type RuntimeMeasurer } from './rtmr-extend.ts'

function failed(e: unknown): EnclaveError {
  return new EnclaveError('ENCLAVE_EVIDENCE_UNAVAILABLE', 'the gateway could not measure its release and config into RTMR3', {
    cause: e,
    details: { step: 'runtime-measurement', code: e instanceof BaseError ? e.code : undefined },
  })
}

/** Where the release hash came from, for the start-up log line. */
export interface ResolvedRelease {
  readonly releaseHash: Uint8Array
  readonly source: 'release' | 'unreleased'
  readonly dir?: string
}

/** The manifest must cover what is running, not only sit beside it (RELEASE_FILE_MISMATCH). */
function requireListed(manifest: ReleaseManifest, entry: string): void {
  if (!manifest.files.some((f) => f.path === basename(entry))) {
    throw new ReleaseError('RELEASE_FILE_MISMATCH', `the running entry ${basename(entry)} is not listed in ${RELEASE_MANIFEST_FILE}`, { details: { path: basename(entry) } })
  }
}

/** Find and verify the running release (see the module header). */
export async function resolveRelease(o: { readonly tee: 'tdx' | 'dev'; readonly dir?: string; readonly entry?: string | undefined }): Promise<ResolvedRelease> {
  try {
    if (o.dir !== undefined) {
      const v = await verifyReleaseDirectory(o.dir)
      // A configured release proves nothing unless it is what runs: on a real
      // TD the entry must be a file of that directory listed in its manifest,
      // or any release could be extended into RTMR3 while other code serves.
      // The dev TEE (tests, `cgw start`) may name a release it does not run.
      if (o.tee !== 'dev' && o.entry !== undefined) {
        if (dirname(resolve(o.entry)) !== resolve(o.dir)) {
          throw new ReleaseError('RELEASE_FILE_MISMATCH', `the running entry ${basename(o.entry)} is not in the configured release directory`, { details: { path: basename(o.entry) } })
        }
        requireListed(v.manifest, o.entry)
      }
      return { releaseHash: v.releaseHash, source: 'release', dir: resolve(o.dir) }
    }
    if (o.entry !== undefined) {
      const dir = dirname(resolve(o.entry))
      const found = await access(join(dir, RELEASE_MANIFEST_FILE)).then(() => true, () => false)
      if (found) {
        const v = await verifyReleaseDirectory(dir)
        requireListed(v.manifest, o.entry)
        return { releaseHash: v.releaseHash, source: 'release', dir }
      }
    }
    if (o.tee === 'dev') return { releaseHash: UNRELEASED_RELEASE_HASH.slice(), source: 'unreleased' }
    throw new ReleaseError('RELEASE_MANIFEST_MISSING', 'a real TD runs only a built release (npm run build:release; deploy/README.md)')
  } catch (e) {
    throw failed(e)
  }
}

/**
 * RTMR0..3 as the firmware and kernel left them, from the CCEL: the base a
 * runtime event log starts from. Zeros without a CCEL.
 */
export async function ccelBase(eventLog: EventLogProvider): Promise<Uint8Array[] | undefined> {
  try {
    const log = await eventLog.read()
    if (log === null) return undefined
    parseCcelTable(log.table)
    return replayRtmrs(parseEventLog(log.data).events)
  } catch (e) {
    throw failed(e)
  }
}

export interface MeasureGatewayStartOptions {
  readonly extender: RtmrExtender
  readonly store: RuntimeEventStore
  readonly base?: readonly Uint8Array[] | undefined
  readonly releaseHash: Uint8Array
  /** The checked gateway config (GatewayConfig); secrets are removed before hashing. */
  readonly config: unknown
}

/** Extend `cgw-release` and `cgw-config` into RTMR3 and return the measurer holding this boot's log. */
export async function measureGatewayStart(o: MeasureGatewayStartOptions): Promise<{ readonly measurer: RuntimeMeasurer; readonly events: readonly RuntimeEvent[] }> {
  try {
    const events = gatewayStartEvents({ releaseHash: o.releaseHash, configHash: gatewayConfigHash(o.config) })
    const measurer = createRuntimeMeasurer({ extender: o.extender, store: o.store, ...(o.base ? { base: o.base } : {}) })
    await measurer.extend(events)
    return { measurer, events }
  } catch (e) {
    throw failed(e)
  }
}

/**
 * The same two events through an extender that keeps its own log (the
 * dstack agent): the agent's log is the record the evidence bundle
 * carries, so it is also what decides, per boot, whether the events are
 * already there (a restarted container: extend nothing) or conflict with
 * another release or config started in this boot (ENCLAVE_RTMR_BOOT_CONFLICT).
 * An extender without a log cannot tell and is refused (ENCLAVE_RTMR_UNAVAILABLE).
 */
export async function emitGatewayStart(o: { readonly extender: RtmrExtender; readonly releaseHash: Uint8Array; readonly config: unknown }): Promise<readonly RuntimeEvent[]> {
  try {
    const events = gatewayStartEvents({ releaseHash: o.releaseHash, configHash: gatewayConfigHash(o.config) })
    if (!o.extender.log) throw new RtmrError('ENCLAVE_RTMR_UNAVAILABLE', `the ${o.extender.name} extender keeps no log: a restart could not tell whether this boot already extended RTMR3`)
    for (const e of planRuntimeExtension(await o.extender.log(), events)) {
      await o.extender.extend(e.imr, new Uint8Array(Buffer.from(e.digest, 'hex')), { event: e.event, payload: e.payload })
    }
    return events
  } catch (e) {
    throw failed(e)
  }
}
