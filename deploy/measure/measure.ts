/**
 * What a deployment's TDX measurements will be, computed from what a
 * consumer can hold: the release (rebuilt from source), the gateway config,
 * the compose file, and a trusted reference boot of the same CVM image.
 *
 * Who sets which register (deploy/README.md "Measurements"):
 *   MRTD, RTMR0        firmware (TDVF image, its configuration)     → reference boot
 *   RTMR1, RTMR2       bootloader, kernel, command line, initrd     → reference boot (CCEL replayed, per event)
 *   MRCONFIGID/OWNER*  set by the host at TD creation (dstack: zero) → reference boot
 *   MRCONFIGID         Kata/CoCo (deploy/k8s): the initdata's digest  → computed (initdata.ts)
 *   RTMR3              userspace runtime events, in order:
 *                        dstack's own (app-id, compose-hash, ...)  → reference boot, compose-hash recomputed
 *                        cgw-release, cgw-config                   → computed here
 *
 * The result: the expected registers, the registry's workload id
 * (attestation/workload.ts), the quote policy document `parsePolicy`
 * accepts (every measurement pinned; the runtime events required) and,
 * given a collateral source, the client policy (gateway/client/policy.ts)
 * that `cgw verify`, `cgw proxy` and `cgw verify-quote` take as is — with
 * provenance. The required events are RTMR3 runtime events: a verifier
 * replays the bundle's `runtimeEvents` onto the CCEL's value to find them
 * (attestation/eventlog/runtime-events.ts `verifyEvidenceEvents`).
 *
 * A reference must fix every register it is used for: a bundle without a
 * CCEL cannot say what RTMR0-2 are (MEASURE_REFERENCE_INCOMPLETE rather
 * than zeros), and its runtime events must replay to its own RTMR3; a
 * compose deployment needs a reference whose runtime events hold dstack's
 * compose-hash (MEASURE_REFERENCE_INCOMPLETE otherwise).
 * Pure: bytes and parsed documents in, a document out.
 */
import { createHash } from 'node:crypto'
import { parse as parseYaml } from 'yaml'
import { BaseError, ConfigError, type BaseErrorOptions } from '../../attestation/errors.ts'
import { hex } from '../../attestation/bytes/hex.ts'
import { parseCcelTable } from '../../attestation/eventlog/ccel.ts'
import { createDevCcel } from '../../attestation/dev/ccel.ts'
import { eventTypeName, parseEventLog } from '../../attestation/eventlog/event-log.ts'
import { verifyRtmrsReplay } from '../../attestation/eventlog/replay.ts'
import { TPM_ALG_SHA384 } from '../../attestation/eventlog/event-log.ts'
import {
  createRuntimeEvent,
  GATEWAY_CONFIG_EVENT,
  GATEWAY_RELEASE_EVENT,
  gatewayConfigHash,
  gatewayStartEvents,
  GATEWAY_CONFIG_SECRET_PATHS,
  parseRuntimeEvents,
  replayRuntimeEvents,
  verifyRuntimeEvents,
  type RuntimeEvent,
  type RuntimeRtmr,
} from '../../attestation/eventlog/runtime-events.ts'
import { parsePolicy, type GpuPolicyDocument, type PolicyDocument } from '../../attestation/policy/policy.ts'
import { parseClientPolicy } from '../../gateway/client/policy.ts'
import { parseQuote } from '../../attestation/tdx/abi/quote.ts'
import { computeWorkloadId } from '../../attestation/workload.ts'
import type { InitdataMeasurement } from './initdata.ts'

/** dstack's runtime event carrying SHA-256 of app-compose.json (dstack guest agent, RTMR3). */
export const DSTACK_COMPOSE_HASH_EVENT = 'compose-hash'
/** Default for the policy's collateral age: 30 days, Intel PCS's TCB info refresh period. */
export const DEFAULT_MAX_COLLATERAL_AGE_SECONDS = 2_592_000

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const zero48 = (): Uint8Array => new Uint8Array(48)

function invalid(what: string, details: Record<string, unknown> = {}): never {
  throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `measure: ${what}`, { details })
}

/** Registry of measure error codes (beyond the attestation library's, which pass through). */
export const MEASURE_ERROR_CODES = {
  MEASURE_REFERENCE_INCOMPLETE: { description: 'the reference evidence cannot fix a register it is used for (no eventLog: RTMR0-2 unknown; --compose without a dstack compose-hash event)' },
  MEASURE_INITDATA_INVALID: { description: 'the initdata is not a Kata/CoCo initdata document read exactly here (strict TOML subset, version 0.1.0, algorithm sha256/sha384/sha512)' },
  MEASURE_INITDATA_POLICY: { description: 'the initdata carries no agent policy, or its policy does not refuse exec, container stdio, policy replacement and fail-open outright (initdata.ts checkAgentPolicy)' },
  MEASURE_INITDATA_PLACEHOLDER: { description: 'the initdata still holds a placeholder: an all-zero image digest, an unpinned image or the CGW-FILL-IN marker' },
} as const satisfies Record<string, { readonly description: string }>

export type MeasureErrorCode = keyof typeof MEASURE_ERROR_CODES

export class MeasureError extends BaseError<MeasureErrorCode> {
  override name = 'MeasureError'
  constructor(code: MeasureErrorCode, shortMessage: string, options: BaseErrorOptions = {}) {
    super(code, shortMessage, options)
  }
}

/** The registers a reference boot fixes, and the RTMR3 events that precede the gateway's. */
export interface Reference {
  readonly kind: 'dev' | 'evidence'
  readonly mrTd: Uint8Array
  readonly mrConfigId: Uint8Array
  readonly mrOwner: Uint8Array
  readonly mrOwnerConfig: Uint8Array
  /** RTMR0..3 before userspace: the CCEL replay (checked against the reference quote) or zeros. */
  readonly base: readonly Uint8Array[]
  /** Runtime events before the gateway's own (a dstack CVM's boot events), in order. */
  readonly priorEvents: readonly RuntimeEvent[]
  readonly provenance: Record<string, unknown>
}

/**
 * The dev TEE's reference: MRTD and the config registers are zero, RTMR0..2
 * the replay of the dev TD's generated CCEL (attestation/dev/ccel.ts, what
 * enclave/quote-providers/dev.ts serves and starts its registers from), and
 * nothing precedes the gateway in RTMR3.
 */
export function devReference(): Reference {
  return {
    kind: 'dev',
    mrTd: zero48(),
    mrConfigId: zero48(),
    mrOwner: zero48(),
    mrOwnerConfig: zero48(),
    base: createDevCcel().rtmrs,
    priorEvents: [],
    provenance: { kind: 'dev', note: 'development TEE: zero MRTD, RTMR0-2 from the generated dev CCEL' },
  }
}

/**
 * A reference from the evidence bundle of a trusted reference boot (what
 * `GET /v1/attestation` returns). The quote's signature is not checked here
 * (verify it with `cgw verify-quote` when capturing it); the CCEL is
 * required and must replay to the quote's RTMR0..2 (each of its events is
 * listed in the provenance so a reviewer can pin them one by one), and the
 * bundle's runtime events must replay onto it to the quote's RTMR3 (a list
 * that does not is no account of the reference's RTMR3).
 */
export function referenceFromEvidence(bundle: unknown): Reference {
  const b = bundle as { quote?: unknown; eventLog?: { table?: unknown; data?: unknown } | null; runtimeEvents?: unknown }
  if (typeof b !== 'object' || b === null || typeof b.quote !== 'string') invalid('the reference is not an evidence bundle (no "quote")')
  const quoteBytes = new Uint8Array(Buffer.from(b.quote, 'base64'))
  const quote = parseQuote(quoteBytes)
  if (quote.body.kind === 'sgx') invalid('the reference quote is an SGX quote')
  const r = quote.body.report
  // Zeros would be a guess, and a policy pinning RTMR0-2 to a guess accepts no real TD (or the wrong one).
  if (b.eventLog === undefined || b.eventLog === null) {
    throw new MeasureError('MEASURE_REFERENCE_INCOMPLETE', 'the reference bundle has no eventLog (CCEL): RTMR0-2 cannot be fixed from it (capture the reference from a gateway that serves its CCEL; for the dev TEE use --reference dev)', {
      details: { missing: 'eventLog' },
    })
  }
  if (typeof b.eventLog.table !== 'string' || typeof b.eventLog.data !== 'string') invalid('reference eventLog must hold base64 table and data')
  parseCcelTable(new Uint8Array(Buffer.from(b.eventLog.table, 'base64')))
  const events = parseEventLog(new Uint8Array(Buffer.from(b.eventLog.data, 'base64'))).events
  const { events: pinned, rtmrs: base } = verifyRtmrsReplay(events, r.rtmrs, { rtmrs: [0, 1, 2] })
  const ccelEvents = pinned.map((e) => ({ rtmr: e.rtmr, index: e.index, type: eventTypeName(e.eventType) ?? `0x${e.eventType.toString(16)}`, digest: hex(e.digests.get(TPM_ALG_SHA384)!) }))
  const runtime = b.runtimeEvents === undefined ? [] : parseRuntimeEvents(b.runtimeEvents)
  verifyRuntimeEvents(runtime, r.rtmrs, { base, rtmrs: [...new Set<RuntimeRtmr>([3, ...runtime.map((e) => e.imr)])] })
  const firstOwn = runtime.findIndex((e) => e.event === GATEWAY_RELEASE_EVENT || e.event === GATEWAY_CONFIG_EVENT)
  const priorEvents = firstOwn < 0 ? runtime : runtime.slice(0, firstOwn)
  return {
    kind: 'evidence',
    mrTd: r.mrTd,
    mrConfigId: r.mrConfigId,
    mrOwner: r.mrOwner,
    mrOwnerConfig: r.mrOwnerConfig,
    base,
    priorEvents,
    provenance: { kind: 'evidence', quoteSha256: sha256(quoteBytes), ccelEvents, priorRuntimeEvents: priorEvents.map((e) => e.event) },
  }
}

/** One service image of a compose file and the digest that pins it. */
export interface PinnedImage {
  readonly service: string
  readonly image: string
  readonly digest: string
}

/**
 * The images of a docker compose document, each pinned by digest
 * (`name@sha256:...`): a tag can point at other code tomorrow and the
 * compose hash would not notice, so a tag is refused, and so is an
 * all-zero placeholder digest (deploy/ ships those until the provider
 * fills in the images it built). `expectedDigests` (image name → digest,
 * e.g. from rebuilding the gateway image) must agree where it names an image.
 */
export function pinComposeImages(composeYaml: string, expectedDigests: Readonly<Record<string, string>> = {}): PinnedImage[] {
  const doc = parseYaml(composeYaml) as { services?: Record<string, { image?: unknown }> } | null
  if (typeof doc !== 'object' || doc === null || typeof doc.services !== 'object' || doc.services === null) invalid('the compose file has no services')
  return Object.entries(doc.services)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([service, s]) => {
      if (typeof s?.image !== 'string') invalid(`service ${service} has no image`, { service })
      const at = s.image.match(/^(.+)@(sha256:[0-9a-f]{64})$/)
      if (!at) invalid(`service ${service}: image ${s.image} is not pinned by digest (write name@sha256:...)`, { service, image: s.image })
      const [, image, digest] = at as [string, string, string]
      if (/^sha256:0{64}$/.test(digest)) invalid(`service ${service}: image ${image} still has the placeholder digest`, { service, image })
      const expected = expectedDigests[image]
      if (expected !== undefined && expected !== digest) invalid(`service ${service}: image ${image} is pinned to ${digest}, not the expected ${expected}`, { service, image, expected, actual: digest })
      return { service, image, digest }
    })
}

/** A compose deployment: dstack's app-compose.json (its SHA-256 is the compose-hash event payload). */
export interface ComposeInput {
  readonly fileName: string
  readonly bytes: Uint8Array
  /** Image name → the digest it must be pinned to (`--image-digests`). */
  readonly imageDigests?: Readonly<Record<string, string>>
}

function composeSection(c: ComposeInput): { readonly event: RuntimeEvent; readonly provenance: Record<string, unknown> } {
  let app: { docker_compose_file?: unknown }
  try {
    app = JSON.parse(Buffer.from(c.bytes).toString('utf8'))
  } catch {
    return invalid(`${c.fileName} is not JSON (expected a dstack app-compose.json)`)
  }
  if (typeof app?.docker_compose_file !== 'string') invalid(`${c.fileName} has no docker_compose_file`)
  const images = pinComposeImages(app.docker_compose_file, c.imageDigests)
  const digest = createHash('sha256').update(c.bytes).digest()
  return {
    event: createRuntimeEvent(3, DSTACK_COMPOSE_HASH_EVENT, new Uint8Array(digest)),
    provenance: { file: c.fileName, composeHash: digest.toString('hex'), images },
  }
}

/** The client policy sections `cgw measure` cannot derive from the deployment: where collateral comes from, the chain, trust duration. */
export interface ClientPolicyInput {
  readonly collateral: { readonly pcsUrl: string } | { readonly file: string }
  /** Default `{ required: false }`: the policy then says explicitly that no on-chain check is made. */
  readonly registry?: { readonly required: true; readonly chainId: number; readonly address: string; readonly rpcUrls: readonly string[]; readonly matchWorkloadId: boolean }
  /** Default {@link DEFAULT_MAX_EVIDENCE_AGE_SECONDS}. */
  readonly maxEvidenceAgeSeconds?: number
  /** Certificate files of the dev roots the policy names, relative to where the policy file is written. */
  readonly devRoots?: { readonly tdx?: string; readonly gpu?: string }
}

/** Default for the client policy's evidence age: one hour, as `cgw verify`'s baseline. */
export const DEFAULT_MAX_EVIDENCE_AGE_SECONDS = 3600

export interface MeasureInput {
  /** The gateway config as checked (gateway/config.ts parseGatewayConfig, no environment applied). */
  readonly config: unknown
  readonly configProvenance: Record<string, unknown>
  readonly releaseHash: Uint8Array
  readonly releaseProvenance: Record<string, unknown>
  readonly reference: Reference
  readonly compose?: ComposeInput
  readonly trustRoot: 'intel' | { readonly dev: string }
  /** The policy's `gpu` section; default the config's gpuReadyState policy, or `{ required: false }` without a GPU. */
  readonly gpu?: GpuPolicyDocument
  /** With it, the measurement carries the client policy too. */
  readonly client?: ClientPolicyInput
  /**
   * A Kata/CoCo pod's initdata (deploy/k8s): MRCONFIGID is its digest, not
   * the reference boot's (initdata.ts measureInitdata).
   */
  readonly initdata?: InitdataMeasurement
}

/** The client policy document (gateway/client/policy.ts) as `cgw measure` writes it. */
export interface ClientPolicyDocument {
  readonly version: 1
  readonly description: string
  readonly quote: Omit<PolicyDocument, 'gpu'>
  readonly gpu: GpuPolicyDocument
  readonly registry: ClientPolicyInput['registry'] | { readonly required: false }
  readonly collateral: ClientPolicyInput['collateral']
  readonly maxEvidenceAgeSeconds: number
  readonly devRoots?: { readonly tdx?: string; readonly gpu?: string }
}

export interface Measurement {
  readonly version: 1
  readonly expected: Record<'mrTd' | 'mrConfigId' | 'mrOwner' | 'mrOwnerConfig' | 'rtmr0' | 'rtmr1' | 'rtmr2' | 'rtmr3', string>
  /** The gateway's start events (and compose-hash for dstack), as the evidence bundle carries them. */
  readonly runtimeEvents: readonly RuntimeEvent[]
  /** The registry's workload allow-list entries (attestation/workload.ts). */
  readonly workloadIds: readonly `0x${string}`[]
  readonly provenance: Record<string, unknown>
  /** The quote policy document (`parsePolicy` accepts it) with a description naming workload, release and config. */
  readonly quotePolicy: PolicyDocument & { readonly description: string }
  /** The client policy (`parseClientPolicy` accepts it): the quote policy, its GPU section, collateral, registry. Given `client` only. */
  readonly policy?: ClientPolicyDocument
}

function gpuSection(input: MeasureInput): GpuPolicyDocument {
  if (input.gpu) return input.gpu
  const enclave = (input.config as { enclave?: { gpu?: unknown; gpuReadyState?: { policy?: unknown } } | null }).enclave
  const kind = enclave?.gpu ?? 'none'
  if (kind === 'none') return { required: false }
  if (enclave?.gpuReadyState?.policy) return enclave.gpuReadyState.policy as GpuPolicyDocument
  return invalid('the config uses a GPU: give --gpu-policy (or enclave.gpuReadyState.policy) so the policy pins it')
}

/** Compute the measurement document (see the module header). */
export function computeMeasurement(input: MeasureInput): Measurement {
  const ref = input.reference
  const configHash = gatewayConfigHash(input.config)
  const own = gatewayStartEvents({ releaseHash: input.releaseHash, configHash })
  const compose = input.compose ? composeSection(input.compose) : undefined
  // The compose hash is measured by dstack's agent at its place among the
  // reference's events: without one there, RTMR3 would be computed without it
  // while the policy still required it, a document no deployment can match.
  if (compose && !ref.priorEvents.some((e) => e.event === DSTACK_COMPOSE_HASH_EVENT)) {
    throw new MeasureError('MEASURE_REFERENCE_INCOMPLETE', `a compose deployment needs a dstack reference boot: the reference's runtime events hold no ${DSTACK_COMPOSE_HASH_EVENT} event to replace`, {
      details: { missing: DSTACK_COMPOSE_HASH_EVENT },
    })
  }
  // A dstack reference boot logged its own compose-hash: this deployment's replaces it.
  const prior = ref.priorEvents.map((e) => (compose && e.event === DSTACK_COMPOSE_HASH_EVENT ? compose.event : e))
  const rtmrs = replayRuntimeEvents([...prior, ...own], ref.base)
  // Kata binds the initdata digest into MRCONFIGID: the pod's value, whatever initdata the reference booted with.
  const mrConfigId = input.initdata?.mrConfigId ?? ref.mrConfigId
  const expected = {
    mrTd: hex(ref.mrTd),
    mrConfigId: hex(mrConfigId),
    mrOwner: hex(ref.mrOwner),
    mrOwnerConfig: hex(ref.mrOwnerConfig),
    rtmr0: hex(rtmrs[0]!),
    rtmr1: hex(rtmrs[1]!),
    rtmr2: hex(rtmrs[2]!),
    rtmr3: hex(rtmrs[3]!),
  }
  const workloadId = computeWorkloadId({ mrTd: ref.mrTd, mrConfigId, mrOwner: ref.mrOwner, mrOwnerConfig: ref.mrOwnerConfig, rtmrs: [rtmrs[0]!, rtmrs[1]!, rtmrs[2]!, rtmrs[3]!] })
  const required = [...(compose ? [compose.event] : []), ...own]
  const description = `cgw measure: workload ${workloadId}; release ${hex(input.releaseHash)}; config ${hex(configHash)}${input.initdata ? `; initdata ${expected.mrConfigId}` : ''}`
  const quotePolicy: PolicyDocument & { description: string } = {
    version: 1,
    description,
    trustRoot: input.trustRoot === 'intel' ? 'intel' : { dev: input.trustRoot.dev },
    tdx: {
      acceptedTcbStatuses: ['UpToDate'],
      allowedAdvisories: [],
      maxCollateralAgeSeconds: DEFAULT_MAX_COLLATERAL_AGE_SECONDS,
      mrTd: [expected.mrTd],
      rtmr0: [expected.rtmr0],
      rtmr1: [expected.rtmr1],
      rtmr2: [expected.rtmr2],
      rtmr3: [expected.rtmr3],
      mrConfigId: [expected.mrConfigId],
      mrOwner: [expected.mrOwner],
      mrOwnerConfig: [expected.mrOwnerConfig],
      requiredEvents: required.map((e) => ({ rtmr: 3, digest: e.digest, description: `${e.event} ${e.payload}` })),
    },
    gpu: gpuSection(input),
  }
  parsePolicy(quotePolicy) // what we emit must be what `cgw verify-quote` accepts
  let policy: ClientPolicyDocument | undefined
  if (input.client) {
    const { gpu, description: _d, ...quote } = quotePolicy
    const c = input.client
    policy = {
      version: 1,
      description,
      quote,
      gpu: gpu!,
      registry: c.registry ?? { required: false },
      collateral: c.collateral,
      maxEvidenceAgeSeconds: c.maxEvidenceAgeSeconds ?? DEFAULT_MAX_EVIDENCE_AGE_SECONDS,
      ...(c.devRoots && (c.devRoots.tdx !== undefined || c.devRoots.gpu !== undefined) ? { devRoots: c.devRoots } : {}),
    }
    // What we emit must be what `cgw verify` and `cgw proxy` accept (files are named, not read, here).
    parseClientPolicy(JSON.parse(JSON.stringify(policy)), { baseDir: '/' })
  }
  return {
    version: 1,
    expected,
    runtimeEvents: [...(compose ? [compose.event] : []), ...own],
    workloadIds: [workloadId],
    provenance: {
      tool: 'cgw measure',
      release: { ...input.releaseProvenance, releaseHash: hex(input.releaseHash) },
      config: { ...input.configProvenance, configHash: hex(configHash), secretsRemoved: GATEWAY_CONFIG_SECRET_PATHS.map((p) => p.join('.')) },
      ...(compose ? { compose: compose.provenance } : {}),
      ...(input.initdata
        ? { initdata: { ...input.initdata.provenance, ...(hex(ref.mrConfigId) !== expected.mrConfigId ? { referenceMrConfigId: hex(ref.mrConfigId) } : {}) } }
        : {}),
      reference: ref.provenance,
      registers: {
        firmware: ['mrTd', 'rtmr0'],
        kernel: ['rtmr1', 'rtmr2'],
        host: input.initdata ? ['mrOwner', 'mrOwnerConfig'] : ['mrConfigId', 'mrOwner', 'mrOwnerConfig'],
        ...(input.initdata ? { initdata: ['mrConfigId'] } : {}),
        application: { rtmr3: [...prior.map((e) => e.event), ...own.map((e) => e.event)] },
      },
    },
    quotePolicy,
    ...(policy ? { policy } : {}),
  }
}
