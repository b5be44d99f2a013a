/**
 * Attestation policy: a JSON document, checked once into typed options.
 *
 * Fail closed by construction:
 * - every measurement allow-list must be present: a list of hex values, or
 *   the string "any" to say, explicitly, that it is not pinned;
 * - unknown keys are errors (a misspelt "mrtd" must not silently unpin MRTD);
 * - the trust root is named: "intel", or `{ "dev": "<sha256 of the dev root>" }`;
 *   there is no way to accept evidence without naming its root;
 * - defaults are the strict choice: UpToDate only, no advisories, debug off,
 *   SEPT_VE_DISABLE required, no service TD.
 *
 * No bytes are parsed and no signature is checked here.
 */
import { ConfigError } from '../errors.ts'
import { TCB_STATUSES, type TcbStatus } from '../tdx/abi/collateral.ts'

/** An allow-list: the accepted lower-case hex values, or explicitly any. */
export type AllowList = ReadonlySet<string> | 'any'

export type TrustRootChoice = { readonly kind: 'intel' } | { readonly kind: 'dev'; readonly fingerprint: string }

/** One event that must appear in the replayed event log of an RTMR. */
export interface RequiredEvent {
  readonly rtmr: 0 | 1 | 2 | 3
  /** SHA-384 digest, lower-case hex. */
  readonly digest: string
  readonly description?: string
}

export const MEASUREMENT_FIELDS = ['mrTd', 'rtmr0', 'rtmr1', 'rtmr2', 'rtmr3', 'mrConfigId', 'mrOwner', 'mrOwnerConfig'] as const
export type MeasurementField = (typeof MEASUREMENT_FIELDS)[number]

/** What the policy accepts of a TD's GPUs (NVIDIA H100 in CC mode). */
export interface GpuPolicy {
  /** False only when the policy says explicitly that no GPU evidence is needed. */
  readonly required: boolean
  /** Root of the device and RIM chains: NVIDIA's pinned roots, or a named dev root. */
  readonly trustRoot: TrustRootChoice | { readonly kind: 'nvidia' }
  /** Exact number of GPUs expected, or any number (at least one). */
  readonly count: number | 'any'
  readonly driverVersions: AllowList
  readonly vbiosVersions: AllowList
  /** Missing OCSP status for a certificate that has one is an error (default). */
  readonly requireOcsp: boolean
  /** Protected PCIe (multi-GPU CC) must be on, for platforms that need it. */
  readonly requireProtectedPcie: boolean
}

/** The checked form of a policy document. */
export interface QuotePolicy {
  readonly trustRoot: TrustRootChoice
  readonly acceptedTcbStatuses: ReadonlySet<TcbStatus>
  readonly allowedAdvisories: AllowList
  readonly allowDebug: boolean
  readonly requireSeptVeDisable: boolean
  readonly allowServiceTd: boolean
  readonly measurements: Readonly<Record<MeasurementField, AllowList>>
  /** Optional pin of the TDX module measurement; absent = any module Intel's identity accepts. */
  readonly mrSeam: AllowList
  /** Maximum age of the oldest collateral item, in ms; null = any age within validity. */
  readonly maxCollateralAgeMs: number | null
  readonly requiredEvents: readonly RequiredEvent[]
  /**
   * GPU policy; null when the document has no `gpu` section. A verifier of
   * combined TD + GPU evidence refuses a null GPU policy: saying "no GPU" takes
   * `"gpu": { "required": false }`.
   */
  readonly gpu: GpuPolicy | null
}

/** The policy document as written (JSON). */
export interface PolicyDocument {
  version: 1
  trustRoot: 'intel' | { dev: string }
  tdx: {
    acceptedTcbStatuses?: TcbStatus[]
    allowedAdvisories?: string[] | 'any'
    allowDebug?: boolean
    requireSeptVeDisable?: boolean
    allowServiceTd?: boolean
    mrSeam?: string[] | 'any'
    maxCollateralAgeSeconds?: number | 'any'
    requiredEvents?: { rtmr: number; digest: string; description?: string }[]
  } & Record<MeasurementField, string[] | 'any'>
  gpu?: GpuPolicyDocument
}

/** The `gpu` section as written. */
export type GpuPolicyDocument =
  | { required: false }
  | {
      required?: true
      trustRoot: 'nvidia' | { dev: string }
      count: number | 'any'
      driverVersions: string[] | 'any'
      vbiosVersions: string[] | 'any'
      requireOcsp?: boolean
      requireProtectedPcie?: boolean
    }

function invalid(path: string, what: string): never {
  throw new ConfigError('ATTESTATION_POLICY_INVALID', `${path}: ${what}`, { details: { path } })
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], path: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) invalid(`${path}.${k}`, 'unknown key')
}

function object(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) invalid(path, 'expected an object')
  return v as Record<string, unknown>
}

function bool(v: unknown, path: string, dflt: boolean): boolean {
  if (v === undefined) return dflt
  if (typeof v !== 'boolean') invalid(path, 'expected true or false')
  return v
}

function hexValue(v: unknown, path: string, bytes: number): string {
  if (typeof v !== 'string' || !new RegExp(`^(0x)?[0-9a-fA-F]{${bytes * 2}}$`).test(v)) invalid(path, `expected ${bytes} bytes of hex`)
  return v.replace(/^0x/, '').toLowerCase()
}

function allowList(v: unknown, path: string, check: (x: unknown, p: string) => string, required: boolean, allowEmpty = false): AllowList {
  if (v === undefined) {
    if (required) invalid(path, 'required: list the accepted values, or write "any" to accept any value')
    return 'any'
  }
  if (v === 'any') return 'any'
  // An empty measurement list would accept nothing and is surely a mistake; an
  // empty advisory list is the strict default ("no advisory is acceptable").
  if (!Array.isArray(v) || (v.length === 0 && !allowEmpty)) invalid(path, 'expected a non-empty list or "any"')
  return new Set(v.map((x, i) => check(x, `${path}[${i}]`)))
}

/** Check a policy document once; the result is what validators take. */
export function parsePolicy(doc: unknown): QuotePolicy {
  const o = object(doc, 'policy')
  onlyKeys(o, ['version', 'trustRoot', 'tdx', 'gpu', 'description'], 'policy')
  if (o.version !== 1) invalid('policy.version', 'expected 1')
  const trustRoot = rootChoice(o.trustRoot, 'policy.trustRoot', 'intel') as TrustRootChoice

  const t = object(o.tdx, 'policy.tdx')
  onlyKeys(
    t,
    [...MEASUREMENT_FIELDS, 'acceptedTcbStatuses', 'allowedAdvisories', 'allowDebug', 'requireSeptVeDisable', 'allowServiceTd', 'mrSeam', 'maxCollateralAgeSeconds', 'requiredEvents'],
    'policy.tdx',
  )
  const h48 = (x: unknown, p: string) => hexValue(x, p, 48)
  const measurements = Object.fromEntries(
    MEASUREMENT_FIELDS.map((f) => [f, allowList(t[f], `policy.tdx.${f}`, h48, true)]),
  ) as Record<MeasurementField, AllowList>

  const statuses = t.acceptedTcbStatuses ?? ['UpToDate']
  if (!Array.isArray(statuses) || statuses.length === 0) invalid('policy.tdx.acceptedTcbStatuses', 'expected a non-empty list')
  const accepted = new Set<TcbStatus>()
  statuses.forEach((s, i) => {
    if (s === 'Revoked' || !(TCB_STATUSES as readonly unknown[]).includes(s)) {
      invalid(`policy.tdx.acceptedTcbStatuses[${i}]`, `expected one of ${TCB_STATUSES.filter((x) => x !== 'Revoked').join(', ')}`)
    }
    accepted.add(s as TcbStatus)
  })

  const advisory = (x: unknown, p: string) => {
    if (typeof x !== 'string' || !/^INTEL-SA-\d{5}$/.test(x)) invalid(p, 'expected an advisory id like INTEL-SA-00960')
    return x
  }
  const age = t.maxCollateralAgeSeconds
  if (age === undefined) invalid('policy.tdx.maxCollateralAgeSeconds', 'required: a number of seconds, or "any"')
  if (age !== 'any' && (typeof age !== 'number' || !Number.isFinite(age) || age <= 0)) {
    invalid('policy.tdx.maxCollateralAgeSeconds', 'expected a positive number of seconds or "any"')
  }

  const events = t.requiredEvents ?? []
  if (!Array.isArray(events)) invalid('policy.tdx.requiredEvents', 'expected a list')
  const requiredEvents = events.map((e, i): RequiredEvent => {
    const p = `policy.tdx.requiredEvents[${i}]`
    const eo = object(e, p)
    onlyKeys(eo, ['rtmr', 'digest', 'description'], p)
    if (eo.rtmr !== 0 && eo.rtmr !== 1 && eo.rtmr !== 2 && eo.rtmr !== 3) invalid(`${p}.rtmr`, 'expected 0, 1, 2 or 3')
    if (eo.description !== undefined && typeof eo.description !== 'string') invalid(`${p}.description`, 'expected a string')
    return { rtmr: eo.rtmr, digest: hexValue(eo.digest, `${p}.digest`, 48), ...(eo.description ? { description: eo.description as string } : {}) }
  })

  return {
    trustRoot,
    acceptedTcbStatuses: accepted,
    allowedAdvisories: allowList(t.allowedAdvisories ?? [], 'policy.tdx.allowedAdvisories', advisory, false, true),
    allowDebug: bool(t.allowDebug, 'policy.tdx.allowDebug', false),
    requireSeptVeDisable: bool(t.requireSeptVeDisable, 'policy.tdx.requireSeptVeDisable', true),
    allowServiceTd: bool(t.allowServiceTd, 'policy.tdx.allowServiceTd', false),
    measurements,
    mrSeam: allowList(t.mrSeam, 'policy.tdx.mrSeam', h48, false),
    maxCollateralAgeMs: age === 'any' ? null : (age as number) * 1000,
    requiredEvents,
    gpu: o.gpu === undefined ? null : parseGpuPolicy(o.gpu),
  }
}

function rootChoice(v: unknown, path: string, production: 'intel' | 'nvidia'): TrustRootChoice | { kind: 'nvidia' } {
  if (v === production) return { kind: production } as TrustRootChoice | { kind: 'nvidia' }
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const r = v as Record<string, unknown>
    onlyKeys(r, ['dev'], path)
    return { kind: 'dev', fingerprint: hexValue(r.dev, `${path}.dev`, 32) }
  }
  return invalid(path, `expected "${production}" or { "dev": "<sha256 fingerprint of the dev root>" }`)
}

/** Check the `gpu` section of a policy document. */
export function parseGpuPolicy(doc: unknown): GpuPolicy {
  const g = object(doc, 'policy.gpu')
  if (g.required === false) {
    onlyKeys(g, ['required'], 'policy.gpu')
    return {
      required: false,
      trustRoot: { kind: 'nvidia' },
      count: 'any',
      driverVersions: 'any',
      vbiosVersions: 'any',
      requireOcsp: true,
      requireProtectedPcie: false,
    }
  }
  onlyKeys(g, ['required', 'trustRoot', 'count', 'driverVersions', 'vbiosVersions', 'requireOcsp', 'requireProtectedPcie'], 'policy.gpu')
  if (g.required !== undefined && g.required !== true) invalid('policy.gpu.required', 'expected true or false')
  if (g.count !== 'any' && (typeof g.count !== 'number' || !Number.isInteger(g.count) || g.count < 1 || g.count > 64)) {
    invalid('policy.gpu.count', 'required: the number of GPUs (1-64), or "any"')
  }
  const version = (x: unknown, p: string) => {
    if (typeof x !== 'string' || !/^[0-9A-Fa-f]+(\.[0-9A-Fa-f]+)+$/.test(x)) invalid(p, 'expected a dotted version like 550.90.07')
    return x.toUpperCase()
  }
  return {
    required: true,
    trustRoot: rootChoice(g.trustRoot, 'policy.gpu.trustRoot', 'nvidia'),
    count: g.count as number | 'any',
    driverVersions: allowList(g.driverVersions, 'policy.gpu.driverVersions', version, true),
    vbiosVersions: allowList(g.vbiosVersions, 'policy.gpu.vbiosVersions', version, true),
    requireOcsp: bool(g.requireOcsp, 'policy.gpu.requireOcsp', true),
    requireProtectedPcie: bool(g.requireProtectedPcie, 'policy.gpu.requireProtectedPcie', false),
  }
}

/**
 * The GPU baseline `cgw verify-gpu` applies without a policy file: NVIDIA's
 * roots, OCSP required, any driver/VBIOS version (the report says so).
 */
export const BASELINE_GPU_POLICY_DOCUMENT: GpuPolicyDocument = {
  trustRoot: 'nvidia',
  count: 'any',
  driverVersions: 'any',
  vbiosVersions: 'any',
}

/**
 * The baseline the CLI applies when no policy file is given: the evidence
 * must be genuine under Intel's root and current (UpToDate, no advisories,
 * debug off), but no workload is pinned — every measurement says "any" in
 * plain sight, and the report says so.
 */
export const BASELINE_POLICY_DOCUMENT: PolicyDocument = {
  version: 1,
  trustRoot: 'intel',
  tdx: {
    acceptedTcbStatuses: ['UpToDate'],
    allowedAdvisories: [],
    maxCollateralAgeSeconds: 'any',
    mrTd: 'any',
    rtmr0: 'any',
    rtmr1: 'any',
    rtmr2: 'any',
    rtmr3: 'any',
    mrConfigId: 'any',
    mrOwner: 'any',
    mrOwnerConfig: 'any',
  },
}
