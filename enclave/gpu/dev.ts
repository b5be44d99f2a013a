/**
 * The development GPU evidence provider: dev GPUs (attestation/dev) answer
 * the nonce with SPDM reports signed under the dev GPU root, shipped with
 * their chains, OCSP responses and golden RIMs in the same bundle a real
 * provider returns.
 *
 * ============================================================================
 *  NOT FOR PRODUCTION. This evidence is signed by keys in this process and
 *  proves nothing about any GPU. Verifiers accept it only when given the dev
 *  root explicitly and a GPU policy naming its fingerprint; NVIDIA's roots
 *  reject it (ATTESTATION_ROOT_CA_UNTRUSTED).
 * ============================================================================
 *
 * Like the real providers it collects and never verifies. Nothing here
 * touches the network: the OCSP responses and RIMs a real gateway would fetch
 * from NVIDIA are made locally by the dev CA.
 */
import { ConfigError } from '../../attestation/errors.ts'
import { createDevGpu, devGoldenRims, signDevOcsp, type DevGpu, type DevGpuRootCa } from '../../attestation/dev/gpu-signer.ts'
import type { GpuEvidenceBundle } from '../../attestation/nvidia/evidence.ts'
import type { CollectOptions, GpuEvidenceProvider } from './provider.ts'

/** SPDM 1.1 nonce size (DSP0274 1.1 GET_MEASUREMENTS). */
const NONCE_SIZE = 32
/** OCSP window: NVIDIA's responders answer for 24 hours (nextUpdate = thisUpdate + 1 day in the sample responses). */
const OCSP_VALIDITY_MS = 86_400_000

export interface DevGpuProviderOptions {
  readonly ca: DevGpuRootCa
  /** The dev machine's GPUs, in order; default one `createDevGpu(ca)`. */
  readonly gpus?: readonly DevGpu[]
  /** The clock: OCSP responses run from `now()` for 24 hours, RIMs are signed at `now()`. */
  readonly now: () => Date
  /** Attach an OCSP response (good) for every certificate below the root except the device leaf; default true. */
  readonly includeOcsp?: boolean
  /** Attach the golden driver and VBIOS RIMs of the GPUs; default true. */
  readonly includeRims?: boolean
}

export interface DevGpuProvider extends GpuEvidenceProvider {
  readonly name: 'dev'
  readonly gpus: readonly DevGpu[]
}

function invalid(what: string): never {
  throw new ConfigError('ATTESTATION_OPTIONS_INVALID', what)
}

/**
 * Pairs (certificate, issuer) that need a stapled OCSP response: every
 * certificate below the root of each device chain except its leaf (the FMC
 * alias certificate, which the verifier exempts as no responder knows it),
 * and every certificate below the root of the RIM chain. Deduplicated: the
 * device CAs and the RIM chain are shared by all GPUs.
 */
function ocspSubjects(ca: DevGpuRootCa, gpus: readonly DevGpu[]): [Uint8Array, Uint8Array][] {
  const out = new Map<string, [Uint8Array, Uint8Array]>()
  const add = (chain: readonly Uint8Array[], from: number) => {
    for (let i = from; i < chain.length - 1; i++) out.set(Buffer.from(chain[i]!).toString('hex'), [chain[i]!, chain[i + 1]!])
  }
  for (const g of gpus) add(g.certificateChainDer, 1)
  add(ca.rimCertificateChainDer, 0)
  return [...out.values()]
}

/** Create the dev provider. `collect` is synchronous work behind a promise (node:crypto signs). */
export function createDevGpuProvider(options: DevGpuProviderOptions): DevGpuProvider {
  const { ca, now } = options ?? {}
  if (typeof now !== 'function') invalid('createDevGpuProvider: `now` must be a clock function returning a Date')
  if (!ca || !Array.isArray(ca.rimCertificateChainDer)) invalid('createDevGpuProvider: `ca` must be a result of createDevGpuRootCa')
  const gpus = Object.freeze([...(options.gpus ?? [createDevGpu(ca)])])
  if (gpus.length === 0) invalid('createDevGpuProvider: `gpus` lists no GPU')
  const includeOcsp = options.includeOcsp ?? true
  const includeRims = options.includeRims ?? true
  const subjects = ocspSubjects(ca, gpus)

  // One RIM pair per (driver, VBIOS) version pair, from the first GPU with it:
  // two RIMs for one version would be ambiguous to the verifier, and a GPU
  // measuring otherwise than its siblings should fail against them.
  // Signed once: RIMs do not depend on the nonce.
  let rims: string[] | undefined
  const goldenRims = (at: Date): string[] => {
    if (rims) return rims
    const seen = new Set<string>()
    const out: string[] = []
    for (const g of gpus) {
      const pair = `${g.driverVersion}\u0000${g.vbiosVersion}`
      if (seen.has(pair)) continue
      seen.add(pair)
      const r = devGoldenRims(ca, g, at)
      out.push(r.driver, r.vbios)
    }
    return (rims = out)
  }

  async function collect(nonce: Uint8Array, o: CollectOptions = {}): Promise<GpuEvidenceBundle> {
    o.signal?.throwIfAborted()
    if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_SIZE) invalid(`collect: nonce must be ${NONCE_SIZE} bytes`)
    const at = now()
    if (!(at instanceof Date) || Number.isNaN(at.getTime())) invalid('createDevGpuProvider: `now()` returned an invalid Date')
    const thisUpdate = new Date(Math.floor(at.getTime() / 1000) * 1000)
    const nextUpdate = new Date(thisUpdate.getTime() + OCSP_VALIDITY_MS)
    const encoder = new TextEncoder()
    return {
      nonce: nonce.slice(),
      gpus: gpus.map((g) => ({ arch: 'HOPPER' as const, report: g.signReport(nonce), certificateChain: encoder.encode(g.certificateChainPem) })),
      ocsp: includeOcsp ? subjects.map(([cert, issuer]) => signDevOcsp(ca, { cert, issuer, status: 'good', thisUpdate, nextUpdate })) : [],
      rims: includeRims ? [...goldenRims(at)] : [],
    }
  }

  return { name: 'dev', gpus, collect }
}
