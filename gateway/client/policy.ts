/**
 * The client's policy: what a client or the proxy accepts of a provider,
 * composed from the attestation library's policy document rather than
 * extending it. One JSON document:
 *
 *     { "version": 1,
 *       "quote": { ...attestation/policy/policy.ts document, without "gpu" },
 *       "gpu": { "required": false } | { ...GPU policy section },
 *       "registry": { "required": false }
 *                 | { "required": true, "chainId": 1, "address": "0x…", "rpcUrls": ["https://…"],
 *                     "matchWorkloadId": true },
 *       "collateral": { "pcsUrl": "https://pccs…", "rootCaCrlUrl"?: "…", "cacheDir"?: "dir" }
 *                   | { "file": "collateral.json" },
 *       "maxEvidenceAgeSeconds": 3600,
 *       "devRoots"?: { "tdx"?: "dev-tdx-root.pem", "gpu"?: "dev-gpu-root.pem" } }
 *
 * Fail closed, like the document it composes: every section is required and
 * must say what it means — "no GPU" is `{"required": false}`, "no chain" is
 * `{"required": false}`; unknown keys are errors; the dev roots are only
 * certificates for roots the quote/GPU sections already name by fingerprint
 * (a file cannot widen trust, only let the verifier load what was named).
 * `maxEvidenceAgeSeconds` bounds how long a verified provider is trusted
 * without fresh evidence, whatever its epoch says.
 *
 * Parsing only; `loadClientPolicy` reads the file and the named root
 * certificates (relative paths resolve against the policy file's folder).
 * `parseCollateral` checks a collateral section on its own.
 */
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { isAddress, getAddress, type Address } from 'viem'
import { pemToDer } from '../../attestation/asn1/pem.ts'
import { BaseError } from '../../attestation/errors.ts'
import { parseGpuPolicy, parsePolicy, type GpuPolicy, type QuotePolicy } from '../../attestation/policy/policy.ts'
import { trustedRootFromDer, type TrustedRoot } from '../../attestation/roots/trust-root.ts'
import { ClientError } from './errors.ts'

export type RegistryPolicy =
  | { readonly required: false }
  | {
      readonly required: true
      readonly chainId: bigint
      readonly address: Address
      readonly rpcUrls: readonly string[]
      /** The record's workloadId must equal computeWorkloadId of the verified quote. */
      readonly matchWorkloadId: boolean
    }

export type CollateralPolicy =
  | { readonly kind: 'pcs'; readonly url: string; readonly rootCaCrlUrl?: string; readonly cacheDir?: string }
  | { readonly kind: 'file'; readonly path: string }

export interface ClientPolicy {
  /** The quote policy; its `gpu` is the top-level GPU section. */
  readonly quote: QuotePolicy
  readonly gpu: GpuPolicy
  readonly registry: RegistryPolicy
  readonly collateral: CollateralPolicy
  readonly maxEvidenceAgeMs: number
  /** Certificate files for dev roots the policy names (absolute paths). */
  readonly devRoots: { readonly tdx?: string; readonly gpu?: string }
}

/** The dev roots a policy names, loaded and checked against their pinned fingerprints. */
export interface PolicyRoots {
  readonly tdx?: TrustedRoot
  readonly gpuDevice?: TrustedRoot
  readonly gpuRim?: TrustedRoot
}

function invalid(path: string, what: string, cause?: unknown): never {
  throw new ClientError('CLIENT_CONFIG_INVALID', `${path}: ${what}`, { details: { path }, ...(cause === undefined ? {} : { cause }) })
}

function object(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) invalid(path, 'expected an object')
  return v as Record<string, unknown>
}

function onlyKeys(o: Record<string, unknown>, keys: readonly string[], path: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) invalid(`${path}.${k}`, 'unknown key')
}

function httpUrl(v: unknown, path: string): string {
  if (typeof v !== 'string') invalid(path, 'expected an http(s) URL')
  let u: URL
  try {
    u = new URL(v)
  } catch (e) {
    return invalid(path, 'expected an http(s) URL', e)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') invalid(path, 'expected an http(s) URL')
  return v.replace(/\/+$/, '')
}

function pathString(v: unknown, path: string, baseDir: string): string {
  if (typeof v !== 'string' || v.length === 0) invalid(path, 'expected a file path')
  return resolve(baseDir, v)
}

/** Rewrap the attestation library's policy errors so every policy problem has one code and a path. */
function composed<T>(path: string, f: () => T): T {
  try {
    return f()
  } catch (e) {
    if (e instanceof BaseError) {
      const inner = typeof e.details.path === 'string' ? e.details.path.replace(/^policy/, path) : path
      invalid(inner, e.shortMessage, e)
    }
    throw e
  }
}

function parseRegistry(v: unknown): RegistryPolicy {
  const r = object(v, 'registry')
  if (r.required === false) {
    onlyKeys(r, ['required'], 'registry')
    return { required: false }
  }
  if (r.required !== true) invalid('registry.required', 'required: true or false')
  onlyKeys(r, ['required', 'chainId', 'address', 'rpcUrls', 'matchWorkloadId'], 'registry')
  if (typeof r.chainId !== 'number' || !Number.isSafeInteger(r.chainId) || r.chainId <= 0) invalid('registry.chainId', 'expected a positive integer')
  if (typeof r.address !== 'string' || !isAddress(r.address, { strict: false })) invalid('registry.address', 'expected a 0x address')
  if (!Array.isArray(r.rpcUrls) || r.rpcUrls.length === 0) invalid('registry.rpcUrls', 'expected a non-empty list of RPC URLs')
  if (typeof r.matchWorkloadId !== 'boolean') invalid('registry.matchWorkloadId', 'required: true or false')
  return {
    required: true,
    chainId: BigInt(r.chainId),
    address: getAddress(r.address),
    rpcUrls: r.rpcUrls.map((u, i) => httpUrl(u, `registry.rpcUrls[${i}]`)),
    matchWorkloadId: r.matchWorkloadId,
  }
}

/**
 * The collateral section alone, as parseClientPolicy checks it (a command's
 * --collateral / --pcs replace a policy's). Relative paths resolve against
 * `baseDir` (default: the working directory).
 */
export function parseCollateral(v: unknown, baseDir: string = process.cwd()): CollateralPolicy {
  const c = object(v, 'collateral')
  if ('file' in c) {
    onlyKeys(c, ['file'], 'collateral')
    return { kind: 'file', path: pathString(c.file, 'collateral.file', baseDir) }
  }
  onlyKeys(c, ['pcsUrl', 'rootCaCrlUrl', 'cacheDir'], 'collateral')
  if (c.pcsUrl === undefined) invalid('collateral', 'expected { "pcsUrl": URL } or { "file": PATH }')
  return {
    kind: 'pcs',
    url: httpUrl(c.pcsUrl, 'collateral.pcsUrl'),
    ...(c.rootCaCrlUrl !== undefined ? { rootCaCrlUrl: httpUrl(c.rootCaCrlUrl, 'collateral.rootCaCrlUrl') } : {}),
    ...(c.cacheDir !== undefined ? { cacheDir: pathString(c.cacheDir, 'collateral.cacheDir', baseDir) } : {}),
  }
}

/** Check a client policy document once. `baseDir` resolves relative file paths (default: the working directory). */
export function parseClientPolicy(doc: unknown, options: { readonly baseDir?: string } = {}): ClientPolicy {
  const baseDir = options.baseDir ?? process.cwd()
  const o = object(doc, 'policy')
  // A quote policy document (attestation/policy) is not a client policy: say so rather than "unknown key".
  if ('tdx' in o && 'trustRoot' in o && !('quote' in o)) {
    invalid('policy', 'this is a quote policy document (trustRoot, tdx): a client policy wraps it as "quote" beside gpu, registry, collateral and maxEvidenceAgeSeconds (cgw measure --policy-out writes one)')
  }
  onlyKeys(o, ['version', 'description', 'quote', 'gpu', 'registry', 'collateral', 'maxEvidenceAgeSeconds', 'devRoots'], 'policy')
  if (o.version !== 1) invalid('policy.version', 'expected 1')
  const q = object(o.quote, 'policy.quote')
  if ('gpu' in q) invalid('policy.quote.gpu', 'the GPU section lives at the top level of a client policy ("gpu")')
  if (o.gpu === undefined) invalid('policy.gpu', 'required: a GPU policy, or { "required": false } to say explicitly that no GPU evidence is needed')
  if (o.registry === undefined) invalid('policy.registry', 'required: a registry, or { "required": false } to say explicitly that no on-chain check is made')
  if (o.collateral === undefined) invalid('policy.collateral', 'required: { "pcsUrl": URL } or { "file": PATH }')
  const gpu = composed('policy.gpu', () => parseGpuPolicy(o.gpu))
  const quote = { ...composed('policy.quote', () => parsePolicy(q)), gpu }
  const age = o.maxEvidenceAgeSeconds
  if (typeof age !== 'number' || !Number.isFinite(age) || age <= 0) invalid('policy.maxEvidenceAgeSeconds', 'required: a positive number of seconds')
  const devRoots: { tdx?: string; gpu?: string } = {}
  if (o.devRoots !== undefined) {
    const d = object(o.devRoots, 'policy.devRoots')
    onlyKeys(d, ['tdx', 'gpu'], 'policy.devRoots')
    if (d.tdx !== undefined) {
      if (quote.trustRoot.kind !== 'dev') invalid('policy.devRoots.tdx', 'the quote policy names no dev root')
      devRoots.tdx = pathString(d.tdx, 'policy.devRoots.tdx', baseDir)
    }
    if (d.gpu !== undefined) {
      if (!gpu.required || gpu.trustRoot.kind !== 'dev') invalid('policy.devRoots.gpu', 'the GPU policy names no dev root')
      devRoots.gpu = pathString(d.gpu, 'policy.devRoots.gpu', baseDir)
    }
  }
  return {
    quote,
    gpu,
    registry: parseRegistry(o.registry),
    collateral: parseCollateral(o.collateral, baseDir),
    maxEvidenceAgeMs: age * 1000,
    devRoots,
  }
}

async function readCertificate(path: string, what: string): Promise<Uint8Array> {
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (e) {
    return invalid(what, `cannot read ${path}`, e)
  }
  const text = bytes.toString('latin1')
  return text.includes('-----BEGIN') ? pemToDer(text)[0]! : new Uint8Array(bytes)
}

/**
 * The trusted roots a policy names: Intel's and NVIDIA's are built in (left
 * undefined here); a dev root needs its certificate, which must have the
 * fingerprint the policy pins.
 */
export async function loadPolicyRoots(policy: ClientPolicy): Promise<PolicyRoots> {
  const out: { tdx?: TrustedRoot; gpuDevice?: TrustedRoot; gpuRim?: TrustedRoot } = {}
  if (policy.quote.trustRoot.kind === 'dev') {
    if (!policy.devRoots.tdx) invalid('policy.devRoots.tdx', 'the quote policy names a dev root: give its certificate file')
    const der = await readCertificate(policy.devRoots.tdx, 'policy.devRoots.tdx')
    out.tdx = composed('policy.devRoots.tdx', () => trustedRootFromDer('dev', der, (policy.quote.trustRoot as { fingerprint: string }).fingerprint))
  }
  if (policy.gpu.required && policy.gpu.trustRoot.kind === 'dev') {
    if (!policy.devRoots.gpu) invalid('policy.devRoots.gpu', 'the GPU policy names a dev root: give its certificate file')
    const der = await readCertificate(policy.devRoots.gpu, 'policy.devRoots.gpu')
    const fingerprint = policy.gpu.trustRoot.fingerprint
    out.gpuDevice = composed('policy.devRoots.gpu', () => trustedRootFromDer('dev', der, fingerprint))
    out.gpuRim = out.gpuDevice
  }
  return out
}

/** Read and check a policy file; relative paths in it resolve against its folder. */
export async function loadClientPolicy(path: string): Promise<ClientPolicy> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (e) {
    return invalid('policy', `cannot read ${path}`, e)
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (e) {
    return invalid('policy', `${path} is not JSON`, e)
  }
  return parseClientPolicy(doc, { baseDir: dirname(resolve(path)) })
}
