/**
 * Verify the evidence of every GPU of a TD: each GPU's report and device
 * chain (gpu-report.ts), its driver and VBIOS RIMs (rim/), the comparison of
 * every active golden measurement, and OCSP status for every certificate
 * that has one. Offline: RIMs and OCSP responses come with the evidence or
 * from the caller's store. Verification only — which versions, how many GPUs
 * and whether missing OCSP is acceptable is `validate-gpu.ts` (policy).
 *
 * All GPUs must pass; the first failure is thrown with the GPU's position in
 * `details.gpu`.
 *
 * OCSP: every certificate below the root of the device chain and of both RIM
 * chains is looked up among the given responses. A response that is present
 * must verify (signature, responder, window) and say "good"; a revoked one
 * fails here. A certificate without a response is reported as `missing`, for
 * the policy to judge (default: refused). The device leaf is `exempt`: on
 * Hopper it is the FMC alias certificate the GPU's own boot ROM issues at
 * every boot, which no NVIDIA responder knows; its key is bound by the
 * report signature and the FWID check instead.
 */
import { BaseError, VerificationError } from '../../errors.ts'
import { certIdMatches, verifyOcspResponse } from '../../pki/ocsp-verify.ts'
import type { OcspResponse } from '../../pki/ocsp.ts'
import { commonName, type Certificate } from '../../pki/x509.ts'
import { NVIDIA_DEVICE_IDENTITY_CA, NVIDIA_RIM_ROOT_CA } from '../../roots/nvidia.ts'
import type { TrustedRoot } from '../../roots/trust-root.ts'
import { parseGpuEvidence, type GpuEvidenceBundle, type ParsedGpuEvidence } from '../evidence.ts'
import { assertMeasurementsMatch } from '../rim/compare.ts'
import { parseRim } from '../rim/parse.ts'
import { verifyRim, type VerifiedRim } from '../rim/verify.ts'
import { verifyGpuReport } from './gpu-report.ts'

export interface VerifyGpuEvidenceOptions {
  readonly now: Date
  /** The nonce the verifier sent; every GPU must answer it. */
  readonly expectedNonce: Uint8Array
  /** Default: the pinned NVIDIA Device Identity CA. */
  readonly deviceRoot?: TrustedRoot
  /** Default: the pinned NVIDIA RIM root. */
  readonly rimRoot?: TrustedRoot
  /**
   * RIMs the verifier holds (a local store): already verified with
   * `verifyRim`, or XML text verified when first chosen. They take precedence
   * over RIMs shipped in the evidence.
   */
  readonly rims?: readonly (VerifiedRim | string)[]
}

export type OcspStatus = 'good' | 'missing' | 'exempt'

export interface CertificateStatus {
  readonly chain: 'device' | 'driver-rim' | 'vbios-rim'
  readonly subject: string
  readonly serial: string
  readonly ocsp: OcspStatus
}

export interface VerifiedGpu {
  readonly index: number
  readonly arch: string
  readonly driverVersion: string
  readonly vbiosVersion: string
  /** Hex. */
  readonly fwid: string
  readonly measurements: { readonly matched: number; readonly exempted: readonly number[] }
  readonly rims: { readonly driver: string; readonly vbios: string }
  /** Opaque-data status bytes (0xAA enabled, 0x55 disabled) when the GPU reports them. */
  readonly protectedPcie: number | null
  readonly nvdec: number | null
  readonly certificates: readonly CertificateStatus[]
}

export interface VerifiedGpuEvidence {
  readonly gpus: readonly VerifiedGpu[]
  /** Fingerprints and kinds of the two anchors used: the policy must name both. */
  readonly roots: {
    readonly device: { readonly fingerprint: string; readonly kind: TrustedRoot['kind'] }
    readonly rim: { readonly fingerprint: string; readonly kind: TrustedRoot['kind'] }
  }
  readonly verifiedAt: Date
}

function atGpu(e: unknown, index: number): unknown {
  if (!(e instanceof BaseError)) return e
  const Cls = e.constructor as new (code: string, msg: string, o: object) => BaseError
  return new Cls(e.code, `GPU ${index}: ${e.shortMessage}`, { cause: e.cause, details: { ...e.details, gpu: index } })
}

/** A RIM, verified only if it is ever a candidate (an irrelevant shipped RIM cannot fail the evidence). */
type RimCandidate = { readonly colloquialVersion: string; readonly product: string; verified(): VerifiedRim }

function storeCandidate(r: VerifiedRim): RimCandidate {
  return { colloquialVersion: r.colloquialVersion, product: r.product, verified: () => r }
}

function lazyCandidate(xml: string, now: Date, root: TrustedRoot): RimCandidate {
  const p = parseRim(xml)
  let v: VerifiedRim | undefined
  return { colloquialVersion: p.colloquialVersion, product: p.product, verified: () => (v ??= verifyRim(xml, { now, root })) }
}

/** The one RIM for `version`: store first, then the evidence; two different ones is ambiguous. */
function pickRim(kind: 'driver' | 'vbios', version: string, product: string, sources: readonly (readonly RimCandidate[])[]): VerifiedRim {
  for (const candidates of sources) {
    const found = candidates
      .filter((r) => r.colloquialVersion.toUpperCase() === version.toUpperCase() && r.product === product)
      .map((r) => r.verified())
    const distinct = new Set(found.map((r) => Buffer.from(r.contentDigest).toString('hex')))
    if (distinct.size > 1) {
      throw new VerificationError('ATTESTATION_RIM_MISMATCH', `more than one ${kind} RIM claims version ${version}`, {
        details: { kind, version, candidates: found.map((r) => r.tagId) },
      })
    }
    if (found[0]) return found[0]
  }
  throw new VerificationError('ATTESTATION_RIM_MISMATCH', `no ${kind} RIM for version ${version}`, { details: { kind, version, product } })
}

function ocspStatuses(
  chainName: CertificateStatus['chain'],
  chain: readonly Certificate[],
  root: Certificate,
  responses: readonly OcspResponse[],
  now: Date,
  exemptLeaf: boolean,
): CertificateStatus[] {
  return chain.map((cert, i) => {
    const issuer = chain[i + 1] ?? root
    const base = { chain: chainName, subject: commonName(cert.subject), serial: cert.serial }
    if (i === 0 && exemptLeaf) return { ...base, ocsp: 'exempt' }
    const resp = responses.find((r) => r.responseStatus === 'successful' && r.basic.responses.some((s) => certIdMatches(s, cert, issuer)))
    if (!resp) return { ...base, ocsp: 'missing' }
    verifyOcspResponse(resp, { cert, issuer, now })
    return { ...base, ocsp: 'good' }
  })
}

const PRODUCT_BY_ARCH: Record<string, string> = { HOPPER: 'GH100' }

/** Verify every GPU of `evidence`. Throws ParseError / VerificationError (with `details.gpu`). */
export function verifyGpuEvidence(evidence: GpuEvidenceBundle | ParsedGpuEvidence, options: VerifyGpuEvidenceOptions): VerifiedGpuEvidence {
  const parsed = 'gpus' in evidence && evidence.gpus.every((g) => 'item' in g) ? (evidence as ParsedGpuEvidence) : parseGpuEvidence(evidence as GpuEvidenceBundle)
  const deviceRoot = options.deviceRoot ?? NVIDIA_DEVICE_IDENTITY_CA
  const rimRoot = options.rimRoot ?? NVIDIA_RIM_ROOT_CA
  // Shipped RIMs are parsed once and verified when first chosen, for all GPUs.
  const store = (options.rims ?? []).map((r) => (typeof r === 'string' ? lazyCandidate(r, options.now, rimRoot) : storeCandidate(r)))
  let shipped: RimCandidate[] | undefined
  const shippedRims = () => (shipped ??= parsed.rims.map((x) => lazyCandidate(x, options.now, rimRoot)))

  const gpus = parsed.gpus.map(({ item, report, chain }, index): VerifiedGpu => {
    try {
      const verified = verifyGpuReport(report, chain, { now: options.now, expectedNonce: options.expectedNonce, root: deviceRoot })
      const o = report.response.opaque
      if (!o.driverVersion || !o.vbiosVersion || o.nvdecStatus === undefined) {
        throw new VerificationError('ATTESTATION_RIM_MISMATCH', 'the report does not say its driver version, VBIOS version and NVDEC status', {
          details: { driverVersion: o.driverVersion, vbiosVersion: o.vbiosVersion, nvdecStatus: o.nvdecStatus },
        })
      }
      const product = PRODUCT_BY_ARCH[item.arch]!
      const sources = [store, shippedRims()]
      const driver = pickRim('driver', o.driverVersion, product, sources)
      const vbios = pickRim('vbios', o.vbiosVersion, product, sources)
      const measurements = new Map([...report.response.blocks].map((b) => [b.index, b.value]))
      const cmp = assertMeasurementsMatch({
        driver,
        vbios,
        measurements,
        reportDriverVersion: o.driverVersion,
        reportVbiosVersion: o.vbiosVersion,
        nvdec0Status: o.nvdecStatus,
      })
      const certificates = [
        ...ocspStatuses('device', verified.chain, deviceRoot.certificate, parsed.ocsp, options.now, true),
        ...ocspStatuses('driver-rim', driver.chain, rimRoot.certificate, parsed.ocsp, options.now, false),
        ...ocspStatuses('vbios-rim', vbios.chain, rimRoot.certificate, parsed.ocsp, options.now, false),
      ]
      return {
        index,
        arch: item.arch,
        driverVersion: o.driverVersion,
        vbiosVersion: o.vbiosVersion,
        fwid: Buffer.from(verified.fwid).toString('hex'),
        measurements: { matched: cmp.matched.length, exempted: cmp.exempted.map((m) => m.index) },
        rims: { driver: driver.tagId, vbios: vbios.tagId },
        protectedPcie: o.protectedPcieStatus ?? null,
        nvdec: o.nvdecStatus,
        certificates,
      }
    } catch (e) {
      throw atGpu(e, index)
    }
  })
  return {
    gpus,
    roots: {
      device: { fingerprint: deviceRoot.fingerprint, kind: deviceRoot.kind },
      rim: { fingerprint: rimRoot.fingerprint, kind: rimRoot.kind },
    },
    verifiedAt: options.now,
  }
}
