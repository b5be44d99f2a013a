/**
 * Verify a provider before a single prompt byte is sent to it: fetch its
 * evidence for a fresh 32-byte nonce, then, stopping at the first failure,
 *
 *   1. quote      — parse; collateral; DCAP verification to the policy's root;
 *   2. gpu        — NVIDIA evidence verified for the same nonce, or explicitly not required;
 *   3. binding    — REPORTDATA = the one binding of key config, signing address,
 *                   GPU evidence hash, log key, epoch and this nonce;
 *   4. policy     — measurements, TCB status, advisories, collateral age, GPU policy;
 *   5. registry   — the signer's live on-chain record names the same key config
 *                   (and workload) — when the policy names a registry.
 *
 * The result is a structured report (every stage, what was checked and
 * against what) and, on success, what the request path needs: the attested
 * key config, the signing address to expect on receipts, the receipt domain
 * and how long this verification may be relied on. A failure throws a
 * ClientError whose `report` shows how far the provider got.
 *
 * Event logs: when the policy requires events, the bundle's CCEL and its
 * `runtimeEvents` (what the gateway, or dstack's agent, extended into
 * RTMR2/3 after boot) are bound to the quote together
 * (attestation/eventlog/runtime-events.ts `verifyEvidenceEvents`): the
 * CCEL never reproduces RTMR3 once userspace extended it, so replaying it
 * alone would refuse every measured gateway. A `runtimeEvents` field that
 * is present is always checked for form; other unknown optional fields are
 * ignored; the quote never is.
 */
import { request as undiciRequest, type Dispatcher } from 'undici'
import type { Address, Hex } from 'viem'
import { checkReportDataBinding, hashKeyConfig } from '../../attestation/binding.ts'
import { hex } from '../../attestation/bytes/hex.ts'
import { parseEventLog, type CcEvent } from '../../attestation/eventlog/index.ts'
import { parseRuntimeEvents, verifyEvidenceEvents, type BoundEvent, type RuntimeEvent } from '../../attestation/eventlog/runtime-events.ts'
import { BaseError, ParseError, PolicyError, type PolicyMismatch } from '../../attestation/errors.ts'
import { gpuEvidenceFromJson } from '../../attestation/nvidia/evidence.ts'
import { validateGpuEvidence } from '../../attestation/nvidia/validate/validate-gpu.ts'
import { verifyGpuEvidence, type VerifiedGpuEvidence } from '../../attestation/nvidia/verify/verify-gpu-evidence.ts'
import { MEASUREMENT_FIELDS } from '../../attestation/policy/policy.ts'
import { collateralRequestForQuote } from '../../attestation/tdx/abi/collateral-request.ts'
import { parseQuote, type Quote, type TdReport } from '../../attestation/tdx/abi/quote.ts'
import { validateQuote } from '../../attestation/tdx/validate/validate-quote.ts'
import { verifyQuote, type VerifiedQuote } from '../../attestation/tdx/verify/verify-quote.ts'
import { computeWorkloadId } from '../../attestation/workload.ts'
import { expectedReportData } from '../../enclave/evidence.ts'
import { parseKeyConfig, type KeyConfig } from '../../enclave/ohttp/index.ts'
import { receiptDomain, type ReceiptDomain } from '../../enclave/receipts.ts'
import type { EvidenceBundle } from '../../enclave/types.ts'
import type { RegistryReader } from '../../contracts/registry-types.ts'
import type { CollateralProvider } from './collateral.ts'
import { MAX_ERROR_BODY_BYTES, readLimited } from './body.ts'
import { ClientError, codeInBody, reasonOf, type ClientErrorCode } from './errors.ts'
import type { ClientPolicy, PolicyRoots } from './policy.ts'
import { checkRegistration, type RegistryCheck } from './registry.ts'

const NONCE_BYTES = 32
/** Evidence with RIMs and OCSP for eight GPUs stays well under this. */
const MAX_EVIDENCE_BYTES = 16 * 1024 * 1024

export type VerificationStage = 'evidence' | 'quote' | 'gpu' | 'binding' | 'policy' | 'registry' | 'accepted'

export interface MeasurementRow {
  readonly field: string
  readonly value: string
  /** true / false against the policy's list, or 'any' when the policy does not pin it. */
  readonly allowListed: boolean | 'any'
}

/** Everything a person (or an audit file) needs to see what was verified. Hashes and identifiers only. */
export interface VerificationReport {
  ok: boolean
  provider: string
  stage: VerificationStage
  /** The client's `now` when verification ran (ISO 8601). */
  at: string
  nonce: string
  evidence?: { signingAddress: Address; epoch: string; epochExpiresAt: string; keyConfigHash: Hex; keyId: number }
  tdx?: {
    status: 'verified'
    tcbStatus: string
    advisoryIds: readonly string[]
    fmspc: string
    root: { kind: string; fingerprint: string }
    collateral: { issuedAt: string; expiresAt: string; tcbEvaluationDataNumber: number }
    measurements: MeasurementRow[]
    workloadId: Hex
    eventLog: 'replayed' | 'present, not needed' | 'none'
    /** The bundle's runtime events (RTMR2/3 after boot): replayed onto the CCEL's value when the policy needs events. */
    runtimeEvents: { status: 'replayed' | 'present, not needed' | 'none'; events: { imr: number; event: string; payload: string }[] }
  }
  gpu: {
    required: boolean
    status: 'not run' | 'not required' | 'verified' | 'missing'
    gpus?: { index: number; arch: string; driverVersion: string; vbiosVersion: string; measurementsMatched: number; ocsp: Record<string, number> }[]
  }
  binding: { status: 'not run' | 'bound' }
  policy: { status: 'not run' | 'accepted'; pinned?: readonly string[]; mismatches?: readonly PolicyMismatch[] }
  registry: { required: boolean; status: 'not run' | 'not required' | 'registered'; check?: RegistryCheck }
  /** Until when this verification is relied on (min of epoch end, evidence age, collateral and registration expiry). */
  validUntil?: string
  error?: { code: string; message: string; details: Record<string, unknown> }
}

/** A provider that passed every check: what the request path uses. */
export interface VerifiedProvider {
  readonly url: string
  readonly keyConfig: KeyConfig
  /** The attested key config bytes (RFC 9458 §3.1). */
  readonly keyConfigBytes: Uint8Array
  readonly keyConfigHash: Hex
  readonly signingAddress: Address
  readonly epoch: bigint
  readonly workloadId: Hex
  /** The EIP-712 domain receipts must use; null when no registry is configured (the receipt's own is reported). */
  readonly receiptDomain: ReceiptDomain | null
  /** ms since the epoch. */
  readonly validUntil: number
  /** The transparency log's Ed25519 key, bound in REPORTDATA (receipt inclusion proofs verify against it); null: no log. */
  readonly logPublicKey: Uint8Array | null
  readonly report: VerificationReport
}

/** GET the evidence bundle for a nonce (hex). Returns the parsed JSON. */
export type EvidenceFetcher = (url: string, nonceHex: string, options: { readonly signal?: AbortSignal }) => Promise<unknown>

export interface VerifyProviderParameters {
  /** Gateway base URL (no trailing /v1). */
  readonly url: string
  readonly policy: ClientPolicy
  readonly roots: PolicyRoots
  readonly collateral: CollateralProvider
  /** Required when the policy requires a registry. */
  readonly registry: RegistryReader | null
  readonly now: () => Date
  /** Default: GET {url}/v1/attestation over undici. */
  readonly fetchEvidence?: EvidenceFetcher
  /** Default: 32 bytes from the CSPRNG. */
  readonly nonce?: () => Uint8Array
  readonly signal?: AbortSignal
}

/** The default evidence fetcher over an undici dispatcher (keep-alive pool). */
export function createEvidenceFetcher(dispatcher?: Dispatcher): EvidenceFetcher {
  return async (url, nonceHex, { signal }) => {
    let res: Dispatcher.ResponseData
    try {
      res = await undiciRequest(`${url}/v1/attestation?nonce=${nonceHex}`, { method: 'GET', ...(dispatcher ? { dispatcher } : {}), ...(signal ? { signal } : {}) })
    } catch (e) {
      throw new ClientError('CLIENT_EVIDENCE_UNAVAILABLE', 'the evidence request failed', { cause: e, details: { provider: url, reason: reasonOf(e) } })
    }
    if (res.statusCode !== 200) {
      // Only the code of the error answer is used; an unreadable or oversized one has none.
      const reason = await readLimited(res.body, MAX_ERROR_BODY_BYTES, { headers: res.headers, tooLarge: () => new Error('too large') }).then(
        (bytes) => codeInBody(bytes),
        () => 'UNKNOWN',
      )
      throw new ClientError('CLIENT_EVIDENCE_UNAVAILABLE', 'the gateway did not answer with evidence', {
        details: { provider: url, status: res.statusCode, reason },
      })
    }
    const bytes = await readLimited(res.body, MAX_EVIDENCE_BYTES, {
      headers: res.headers,
      tooLarge: (length) =>
        new ClientError('CLIENT_EVIDENCE_MALFORMED', 'the evidence bundle is too large', { details: { provider: url, ...(length !== undefined ? { length } : {}) } }),
    })
    try {
      return JSON.parse(bytes.toString('utf8'))
    } catch (e) {
      throw new ClientError('CLIENT_EVIDENCE_MALFORMED', 'the evidence bundle is not JSON', { cause: e, details: { provider: url } })
    }
  }
}

const defaultFetcher = createEvidenceFetcher()

function malformed(field: string, cause?: unknown): never {
  throw new ClientError('CLIENT_EVIDENCE_MALFORMED', `evidence bundle: ${field} is missing or malformed`, {
    details: { field, ...(cause !== undefined ? { reason: reasonOf(cause) } : {}) },
    ...(cause !== undefined ? { cause } : {}),
  })
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

/** The fields this client relies on, checked; unknown optional fields are left alone. */
function checkBundle(v: unknown, nonceHex: string): EvidenceBundle {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) malformed('bundle')
  const b = v as Record<string, unknown>
  if (b.version !== 1) malformed('version')
  if (typeof b.nonce !== 'string' || b.nonce.toLowerCase() !== nonceHex) malformed('nonce')
  for (const f of ['quote', 'keyConfig'] as const) if (typeof b[f] !== 'string' || !BASE64.test(b[f] as string) || (b[f] as string).length === 0) malformed(f)
  if (typeof b.signingAddress !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(b.signingAddress)) malformed('signingAddress')
  if (typeof b.epoch !== 'string' || !/^(0|[1-9][0-9]{0,19})$/.test(b.epoch)) malformed('epoch')
  if (typeof b.epochExpiresAt !== 'string' || !Number.isFinite(Date.parse(b.epochExpiresAt))) malformed('epochExpiresAt')
  if (b.gpu !== null && (typeof b.gpu !== 'object' || Array.isArray(b.gpu))) malformed('gpu')
  if (b.logPublicKey !== null && typeof b.logPublicKey !== 'string') malformed('logPublicKey')
  if (b.eventLog !== null) {
    const l = b.eventLog as Record<string, unknown> | undefined
    if (typeof l !== 'object' || l === null || typeof l.table !== 'string' || typeof l.data !== 'string') malformed('eventLog')
  }
  if (b.runtimeEvents !== undefined && !Array.isArray(b.runtimeEvents)) malformed('runtimeEvents')
  return v as EvidenceBundle
}

function measurementRows(r: TdReport, policy: ClientPolicy): MeasurementRow[] {
  const values: Record<string, Uint8Array> = {
    mrTd: r.mrTd,
    rtmr0: r.rtmrs[0],
    rtmr1: r.rtmrs[1],
    rtmr2: r.rtmrs[2],
    rtmr3: r.rtmrs[3],
    mrConfigId: r.mrConfigId,
    mrOwner: r.mrOwner,
    mrOwnerConfig: r.mrOwnerConfig,
  }
  return MEASUREMENT_FIELDS.map((field) => {
    const list = policy.quote.measurements[field]
    const value = hex(values[field]!)
    return { field, value, allowListed: list === 'any' ? 'any' : list.has(value) }
  })
}

/** Rewrap a library error as the client code for its stage. */
function asClientError(e: unknown, code: ClientErrorCode, message: string, details: Record<string, unknown> = {}): ClientError {
  if (e instanceof ClientError) return e
  return new ClientError(code, message, { cause: e, details: { ...details, reason: reasonOf(e), ...(e instanceof BaseError ? { cause: e.toJSON() } : {}) } })
}

/** Throw `e` with the report attached (the report is complete up to the failed stage). */
function fail(report: VerificationReport, e: ClientError): never {
  report.ok = false
  report.error = e.toJSON()
  ;(e as ClientError & { report?: VerificationReport }).report = report
  throw e
}

/** The report attached to a verification failure, when there is one. */
export function reportOf(e: unknown): VerificationReport | undefined {
  return (e as { report?: VerificationReport } | null)?.report
}

function quoteFromBundle(bundle: EvidenceBundle): Quote {
  try {
    const q = parseQuote(new Uint8Array(Buffer.from(bundle.quote, 'base64')))
    if (q.body.kind === 'sgx') throw new ParseError('ATTESTATION_QUOTE_UNSUPPORTED_TEE', 'an SGX quote is not a TD quote')
    return q
  } catch (e) {
    throw asClientError(e, 'CLIENT_EVIDENCE_MALFORMED', 'the quote is malformed', { field: 'quote' })
  }
}

/** Run every check on one provider; resolves to the verified provider or throws a ClientError carrying the report. */
export async function verifyProvider(p: VerifyProviderParameters): Promise<VerifiedProvider> {
  const now = p.now()
  const nonce = p.nonce ? p.nonce() : crypto.getRandomValues(new Uint8Array(NONCE_BYTES))
  if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_BYTES) throw new ClientError('CLIENT_CONFIG_INVALID', 'the nonce source must give 32 bytes')
  const nonceHex = hex(nonce)
  const report: VerificationReport = {
    ok: false,
    provider: p.url,
    stage: 'evidence',
    at: now.toISOString(),
    nonce: nonceHex,
    gpu: { required: p.policy.gpu.required, status: 'not run' },
    binding: { status: 'not run' },
    policy: { status: 'not run' },
    registry: { required: p.policy.registry.required, status: 'not run' },
  }
  try {
    if (p.policy.registry.required && p.registry === null) throw new ClientError('CLIENT_CONFIG_INVALID', 'the policy requires a registry and none was given')

    // --- evidence -------------------------------------------------------
    const bundle = checkBundle(await (p.fetchEvidence ?? defaultFetcher)(p.url, nonceHex, p.signal ? { signal: p.signal } : {}), nonceHex)
    const keyConfigBytes = new Uint8Array(Buffer.from(bundle.keyConfig, 'base64'))
    let keyConfig: KeyConfig
    try {
      keyConfig = parseKeyConfig(keyConfigBytes)
    } catch (e) {
      return malformed('keyConfig', e)
    }
    const keyConfigHash = `0x${hex(hashKeyConfig(keyConfigBytes))}` as Hex
    const epochEnd = Date.parse(bundle.epochExpiresAt)
    report.evidence = { signingAddress: bundle.signingAddress, epoch: bundle.epoch, epochExpiresAt: bundle.epochExpiresAt, keyConfigHash, keyId: keyConfig.keyId }

    // --- quote ----------------------------------------------------------
    report.stage = 'quote'
    const quote = quoteFromBundle(bundle)
    let collateral: Awaited<ReturnType<CollateralProvider>>
    try {
      collateral = await p.collateral(collateralRequestForQuote(quote))
    } catch (e) {
      if (e instanceof ClientError) throw e
      // A PCS error, or a collateral file that does not parse: either way no collateral to verify with.
      throw asClientError(e, 'CLIENT_COLLATERAL_UNAVAILABLE', 'collateral unavailable')
    }
    let verified: VerifiedQuote
    try {
      verified = verifyQuote(quote, collateral, { now, ...(p.roots.tdx ? { trustedRoot: p.roots.tdx } : {}) })
    } catch (e) {
      throw asClientError(e, e instanceof ParseError ? 'CLIENT_EVIDENCE_MALFORMED' : 'CLIENT_QUOTE_INVALID', 'the quote does not verify')
    }
    const td = quote.body.report as TdReport
    const workloadId = computeWorkloadId({ mrTd: td.mrTd, mrConfigId: td.mrConfigId, mrOwner: td.mrOwner, mrOwnerConfig: td.mrOwnerConfig, rtmrs: td.rtmrs })
    const required = p.policy.quote.requiredEvents
    let runtime: RuntimeEvent[] = []
    if (bundle.runtimeEvents !== undefined) {
      try {
        runtime = parseRuntimeEvents(bundle.runtimeEvents)
      } catch (e) {
        return malformed('runtimeEvents', e)
      }
    }
    let events: readonly BoundEvent[] | undefined
    let runtimeReplayed = false
    if (required.length > 0) {
      let ccel: readonly CcEvent[] | null = null
      if (bundle.eventLog !== null) {
        try {
          ccel = parseEventLog(new Uint8Array(Buffer.from(bundle.eventLog.data, 'base64'))).events
        } catch (e) {
          return malformed('eventLog', e)
        }
      }
      try {
        const bound = verifyEvidenceEvents(ccel, runtime, td.rtmrs, required.map((r) => r.rtmr))
        events = bound?.events
        runtimeReplayed = bound !== null && runtime.length > 0
      } catch (e) {
        // A CCEL record error names its byte offset; a runtime record error does not.
        if (e instanceof ParseError) return malformed('offset' in e.details ? 'eventLog' : 'runtimeEvents', e)
        throw asClientError(e, 'CLIENT_QUOTE_INVALID', 'the event logs do not replay to the quote RTMRs')
      }
    }
    report.tdx = {
      status: 'verified',
      tcbStatus: verified.tcbStatus,
      advisoryIds: verified.advisoryIds,
      fmspc: verified.fmspc,
      root: verified.root,
      collateral: {
        issuedAt: verified.collateral.issuedAt.toISOString(),
        expiresAt: verified.collateral.expiresAt.toISOString(),
        tcbEvaluationDataNumber: verified.collateral.tcbEvaluationDataNumber,
      },
      measurements: measurementRows(td, p.policy),
      workloadId,
      eventLog: events && bundle.eventLog !== null ? 'replayed' : bundle.eventLog !== null ? 'present, not needed' : 'none',
      runtimeEvents: {
        status: runtimeReplayed ? 'replayed' : runtime.length > 0 ? 'present, not needed' : 'none',
        events: runtime.map((e) => ({ imr: e.imr, event: e.event, payload: e.payload })),
      },
    }

    // --- gpu ------------------------------------------------------------
    report.stage = 'gpu'
    let gpuVerified: VerifiedGpuEvidence | null = null
    if (bundle.gpu === null) {
      if (p.policy.gpu.required) {
        report.gpu.status = 'missing'
        throw new ClientError('CLIENT_GPU_EVIDENCE_MISSING', 'the policy requires GPU evidence and the bundle has none')
      }
      report.gpu.status = 'not required'
    } else if (!p.policy.gpu.required) {
      // "No GPU" means no GPU: evidence of one is not silently ignored (validate-gpu.ts).
      throw new ClientError('CLIENT_GPU_POLICY_REJECTED', 'the policy says no GPU and the bundle carries GPU evidence', {
        details: { mismatches: [{ code: 'POLICY_GPU_NOT_EXPECTED', field: 'gpu.required', expected: 0, actual: 'present' }] },
      })
    } else {
      try {
        gpuVerified = verifyGpuEvidence(gpuEvidenceFromJson(bundle.gpu), {
          now,
          expectedNonce: nonce,
          ...(p.roots.gpuDevice ? { deviceRoot: p.roots.gpuDevice } : {}),
          ...(p.roots.gpuRim ? { rimRoot: p.roots.gpuRim } : {}),
        })
      } catch (e) {
        throw asClientError(e, e instanceof ParseError ? 'CLIENT_EVIDENCE_MALFORMED' : 'CLIENT_GPU_INVALID', 'the GPU evidence does not verify')
      }
      report.gpu.status = 'verified'
      report.gpu.gpus = gpuVerified.gpus.map((g) => ({
        index: g.index,
        arch: g.arch,
        driverVersion: g.driverVersion,
        vbiosVersion: g.vbiosVersion,
        measurementsMatched: g.measurements.matched,
        ocsp: Object.fromEntries(['good', 'missing', 'exempt'].map((s) => [s, g.certificates.filter((c) => c.ocsp === s).length])),
      }))
    }

    // --- binding --------------------------------------------------------
    report.stage = 'binding'
    let expected: Uint8Array
    try {
      expected = expectedReportData(bundle, { expectedNonce: nonce })
    } catch (e) {
      if (e instanceof BaseError && e.code === 'ATTESTATION_BINDING_MISMATCH') throw asClientError(e, 'CLIENT_BINDING_MISMATCH', 'the evidence answers another nonce')
      return malformed('binding inputs', e)
    }
    try {
      checkReportDataBinding(td.reportData, expected)
    } catch (e) {
      // The library's own message and details (both values, hex): only the code is the client's.
      if (e instanceof BaseError && e.code === 'ATTESTATION_BINDING_MISMATCH') throw new ClientError('CLIENT_BINDING_MISMATCH', e.shortMessage, { cause: e, details: e.details })
      throw asClientError(e, 'CLIENT_BINDING_MISMATCH', 'REPORTDATA does not bind the presented keys and evidence')
    }
    report.binding.status = 'bound'

    // --- policy ---------------------------------------------------------
    report.stage = 'policy'
    try {
      const accepted = validateQuote(verified, p.policy.quote, { expectedReportData: expected, ...(events ? { events } : {}) })
      report.policy.pinned = accepted.pinned
    } catch (e) {
      if (e instanceof PolicyError) {
        report.policy.mismatches = e.mismatches
        throw new ClientError('CLIENT_POLICY_REJECTED', 'the policy rejects the quote', { cause: e, details: { mismatches: e.mismatches } })
      }
      throw asClientError(e, 'CLIENT_POLICY_REJECTED', 'the policy rejects the quote')
    }
    if (gpuVerified !== null) {
      try {
        validateGpuEvidence(gpuVerified, p.policy.gpu)
      } catch (e) {
        if (e instanceof PolicyError) {
          report.policy.mismatches = e.mismatches
          throw new ClientError('CLIENT_GPU_POLICY_REJECTED', 'the policy rejects the GPU evidence', { cause: e, details: { mismatches: e.mismatches } })
        }
        throw asClientError(e, 'CLIENT_GPU_POLICY_REJECTED', 'the policy rejects the GPU evidence')
      }
    }
    report.policy.status = 'accepted'

    // --- registry -------------------------------------------------------
    report.stage = 'registry'
    let domain: ReceiptDomain | null = null
    let registeredUntil = Number.POSITIVE_INFINITY
    const reg = p.policy.registry
    if (reg.required) {
      const reader = p.registry!
      if (reader.chainId !== reg.chainId || reader.address.toLowerCase() !== reg.address.toLowerCase()) {
        throw new ClientError('CLIENT_REGISTRY_MISMATCH', 'the registry reader is for another chain or registry than the policy names', {
          details: { field: 'chain', policy: { chainId: reg.chainId.toString(), address: reg.address }, reader: { chainId: reader.chainId.toString(), address: reader.address } },
        })
      }
      const { check, record } = await checkRegistration(reader, {
        signingAddress: bundle.signingAddress,
        keyConfigHash,
        workloadId,
        matchWorkloadId: reg.matchWorkloadId,
        now,
      }).catch((e: unknown) => {
        throw asClientError(e, 'CLIENT_REGISTRY_UNAVAILABLE', 'the registry could not be read')
      })
      report.registry.status = 'registered'
      report.registry.check = check
      registeredUntil = Number(record.expiresAt) * 1000
      domain = receiptDomain({ chainId: reg.chainId, registry: reg.address })
    } else {
      report.registry.status = 'not required'
    }

    const validUntil = Math.min(epochEnd, now.getTime() + p.policy.maxEvidenceAgeMs, verified.collateral.expiresAt.getTime(), registeredUntil)
    if (!(validUntil > now.getTime())) {
      throw new ClientError('CLIENT_EVIDENCE_MALFORMED', 'the evidence is for an epoch (or collateral) that has already ended', {
        details: { field: 'epochExpiresAt', epochExpiresAt: bundle.epochExpiresAt },
      })
    }
    report.validUntil = new Date(validUntil).toISOString()
    report.stage = 'accepted'
    report.ok = true
    return {
      url: p.url,
      keyConfig,
      keyConfigBytes,
      keyConfigHash,
      signingAddress: bundle.signingAddress,
      epoch: BigInt(bundle.epoch),
      workloadId,
      receiptDomain: domain,
      validUntil,
      logPublicKey: bundle.logPublicKey === null ? null : new Uint8Array(Buffer.from(bundle.logPublicKey, 'base64')),
      report,
    }
  } catch (e) {
    return fail(report, e instanceof ClientError ? e : asClientError(e, 'CLIENT_EVIDENCE_MALFORMED', 'verification failed'))
  }
}

