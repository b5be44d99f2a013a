/**
 * The GPU evidence bundle: what a gateway hands a verifier for all its GPUs.
 * Parsing only (no crypto).
 *
 * The wire form is NVIDIA's `nvattest collect-evidence` JSON, so evidence
 * from NVIDIA's own tools verifies here unchanged:
 *
 *     { "evidences": [ { "arch": "HOPPER", "nonce": "<hex>",
 *                        "evidence": "<base64 SPDM request||response>",
 *                        "certificate": "<base64 of the PEM chain, leaf first>" }, ... ],
 *       "ocsp": [ "<base64 DER OCSPResponse>", ... ],     // ours, optional
 *       "rims": [ "<RIM SWID XML>", ... ] }               // ours, optional
 *
 * `ocsp` and `rims` let a gateway ship revocation status and reference
 * manifests with its evidence, so a verifier needs no network at all; a
 * verifier may also bring RIMs from its own store. Every GPU answers the
 * same nonce; a list with mixed nonces is malformed.
 */
import { ParseError } from '../errors.ts'
import { pemToDer } from '../asn1/pem.ts'
import { parseCertificate, type Certificate } from '../pki/x509.ts'
import { parseOcspResponse, type OcspResponse } from '../pki/ocsp.ts'
import { parseGpuReport, type GpuReport } from './abi/spdm.ts'

/** GPU architectures this verifier knows (the SPDM layout and RIM naming are per architecture). */
export const SUPPORTED_GPU_ARCHES = ['HOPPER'] as const
export type GpuArch = (typeof SUPPORTED_GPU_ARCHES)[number]

/** One GPU's evidence, as collected. */
export interface GpuEvidenceItem {
  readonly arch: GpuArch
  /** The SPDM GET_MEASUREMENTS request || response, signature included. */
  readonly report: Uint8Array
  /** The certificate chain exactly as collected (PEM text bytes), for hashing into the binding. */
  readonly certificateChain: Uint8Array
}

/** The evidence of every GPU of a TD, answering one nonce. */
export interface GpuEvidenceBundle {
  readonly nonce: Uint8Array
  readonly gpus: readonly GpuEvidenceItem[]
  /** DER OCSP responses for the device and RIM chains. */
  readonly ocsp: readonly Uint8Array[]
  /** RIM XML documents shipped with the evidence. */
  readonly rims: readonly string[]
}

/** A bundle with every part parsed (still unverified). */
export interface ParsedGpuEvidence {
  readonly nonce: Uint8Array
  readonly gpus: readonly { readonly item: GpuEvidenceItem; readonly report: GpuReport; readonly chain: readonly Certificate[] }[]
  readonly ocsp: readonly OcspResponse[]
  readonly rims: readonly string[]
}

function bad(what: string, details: Record<string, unknown> = {}, cause?: unknown): never {
  throw new ParseError('ATTESTATION_GPU_EVIDENCE_MALFORMED', what, { details, cause })
}

function base64(v: unknown, field: string): Uint8Array {
  if (typeof v !== 'string' || v.length === 0) bad(`${field} is not base64 text`, { field })
  const text = v.replace(/\s+/g, '')
  const bytes = Buffer.from(text, 'base64')
  if (bytes.toString('base64') !== text) bad(`${field} is not canonical base64`, { field })
  return new Uint8Array(bytes)
}

function hexBytes(v: unknown, field: string, size: number): Uint8Array {
  if (typeof v !== 'string' || !new RegExp(`^(0x)?[0-9a-fA-F]{${size * 2}}$`).test(v)) bad(`${field} is not ${size} bytes of hex`, { field })
  return new Uint8Array(Buffer.from(v.replace(/^0x/, ''), 'hex'))
}

/** Read the JSON form (an object or its text) into a bundle. */
export function gpuEvidenceFromJson(input: unknown): GpuEvidenceBundle {
  let doc = input
  if (typeof input === 'string') {
    try {
      doc = JSON.parse(input)
    } catch (e) {
      bad('GPU evidence is not JSON', {}, e)
    }
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) bad('GPU evidence is not an object')
  const o = doc as Record<string, unknown>
  if (!Array.isArray(o.evidences)) bad('GPU evidence has no "evidences" list', { field: 'evidences' })
  let nonce: Uint8Array | undefined
  const gpus = o.evidences.map((e, i): GpuEvidenceItem => {
    const f = `evidences[${i}]`
    if (typeof e !== 'object' || e === null) bad(`${f} is not an object`, { field: f })
    const item = e as Record<string, unknown>
    if (!(SUPPORTED_GPU_ARCHES as readonly unknown[]).includes(item.arch)) bad(`${f}.arch is not a supported GPU architecture`, { field: `${f}.arch`, arch: item.arch })
    const n = hexBytes(item.nonce, `${f}.nonce`, 32)
    if (nonce && Buffer.compare(nonce, n) !== 0) bad('GPUs answer different nonces', { field: `${f}.nonce` })
    nonce = n
    return { arch: item.arch as GpuArch, report: base64(item.evidence, `${f}.evidence`), certificateChain: base64(item.certificate, `${f}.certificate`) }
  })
  if (!nonce) bad('GPU evidence lists no GPU', { field: 'evidences' })
  const list = (v: unknown, field: string): unknown[] => (v === undefined ? [] : Array.isArray(v) ? v : bad(`${field} is not a list`, { field }))
  return {
    nonce,
    gpus,
    ocsp: list(o.ocsp, 'ocsp').map((x, i) => base64(x, `ocsp[${i}]`)),
    rims: list(o.rims, 'rims').map((x, i) => (typeof x === 'string' && x.length > 0 ? x : bad(`rims[${i}] is not XML text`, { field: `rims[${i}]` }))),
  }
}

/** The JSON form of a bundle (nvattest-compatible `evidences`, plus `ocsp` and `rims`). */
export function gpuEvidenceToJson(b: GpuEvidenceBundle): Record<string, unknown> {
  const nonce = Buffer.from(b.nonce).toString('hex')
  return {
    evidences: b.gpus.map((g) => ({
      arch: g.arch,
      nonce,
      evidence: Buffer.from(g.report).toString('base64'),
      certificate: Buffer.from(g.certificateChain).toString('base64'),
    })),
    ocsp: b.ocsp.map((d) => Buffer.from(d).toString('base64')),
    rims: [...b.rims],
  }
}

/** Parse every part of a bundle: SPDM reports, certificate chains, OCSP responses. */
export function parseGpuEvidence(b: GpuEvidenceBundle): ParsedGpuEvidence {
  return {
    nonce: b.nonce,
    gpus: b.gpus.map((item) => {
      let chainText: string
      try {
        chainText = new TextDecoder('utf-8', { fatal: true }).decode(item.certificateChain)
      } catch (e) {
        return bad('certificate chain is not text', {}, e)
      }
      return { item, report: parseGpuReport(item.report), chain: pemToDer(chainText).map(parseCertificate) }
    }),
    ocsp: b.ocsp.map(parseOcspResponse),
    rims: b.rims,
  }
}
