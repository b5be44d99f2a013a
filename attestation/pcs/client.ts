/**
 * Intel PCS / PCCS collateral client (PCS API v4). Fetches and assembles
 * collateral bytes faithfully; verifies nothing (signatures, chains and
 * freshness are `attestation/tdx/verify`'s job).
 *
 * Endpoints (Intel PCS API v4,
 * https://api.portal.trustedservices.intel.com/content/documentation.html):
 *
 * | piece       | request                                          | issuer chain header                  |
 * |-------------|--------------------------------------------------|--------------------------------------|
 * | TCB info    | GET {base}/{tdx,sgx}/certification/v4/tcb?fmspc= | `TCB-Info-Issuer-Chain`              |
 * | QE identity | GET {base}/{tdx,sgx}/certification/v4/qe/identity| `SGX-Enclave-Identity-Issuer-Chain`  |
 * | PCK CRL     | GET {base}/sgx/certification/v4/pckcrl?ca=&encoding=der | `SGX-PCK-CRL-Issuer-Chain`    |
 * | root CA CRL | PCCS: GET {base}/sgx/certification/v4/rootcacrl; Intel: a certificates URL | —          |
 *
 * The network is a parameter (`fetch`), and so is time (`now`): nothing here
 * reaches the internet unless the caller names a base URL that does, and
 * every failure is a `CollateralError` with a stable code.
 */
import { fetch as undiciFetch } from 'undici'
import { CollateralError, ConfigError } from '../errors.ts'
import { decodeCrl, decodeIssuerChain, parseQeIdentityResponse, parseTcbInfoResponse, type ErrorContext } from './raw.ts'
import type { CollateralRequest, FetchedCollateral, PckCa, QuoteCollateralV3, TeeType } from './types.ts'

/*
 * Intel's public PCS is `https://api.trustedservices.intel.com` and its root
 * CA CRL is `https://certificates.trustedservices.intel.com/IntelSGXRootCA.der`.
 * They are deliberately not defaults: a verifier that silently calls out to
 * the internet leaks which platforms it checks, and deployments usually run
 * a PCCS. Pass them explicitly (with `rootCaCrlUrl`) to use Intel directly.
 */

/** Per-request deadline; Intel PCS answers in well under a second when healthy. */
export const DEFAULT_TIMEOUT_MS = 10_000

/** Issuer chain header of TCB info (PCS v4; v3 and older PCCS used the `SGX-` name). */
export const HEADER_TCB_INFO_ISSUER_CHAIN = 'TCB-Info-Issuer-Chain'
const HEADER_TCB_INFO_ISSUER_CHAIN_V3 = 'SGX-TCB-Info-Issuer-Chain'
/** Issuer chain header of QE identity (PCS v4, SGX and TDX alike). */
export const HEADER_QE_IDENTITY_ISSUER_CHAIN = 'SGX-Enclave-Identity-Issuer-Chain'
/** Issuer chain header of the PCK CRL (PCS v4 "Get PCK Cert CRL"). */
export const HEADER_PCK_CRL_ISSUER_CHAIN = 'SGX-PCK-CRL-Issuer-Chain'
/** Headers Intel PCS adds to answers, kept in error details for support requests. */
const DIAGNOSTIC_HEADERS = ['Request-ID', 'Error-Code', 'Error-Message'] as const

/** FMSPC: 6 bytes (Intel SGX PCK Certificate and CRL Profile, SGX extension `FMSPC`). */
const FMSPC_HEX = /^[0-9a-fA-F]{12}$/
/** `id` of tcbInfo and enclaveIdentity per TEE (TCB Info v3 / Enclave Identity v2 schemas). */
const TCB_INFO_ID: Record<TeeType, string | undefined> = { tdx: 'TDX', sgx: 'SGX' }
const QE_IDENTITY_ID: Record<TeeType, string> = { tdx: 'TD_QE', sgx: 'QE' }

/** The part of a fetch `Response` this client reads. */
export interface PcsFetchResponse {
  readonly status: number
  readonly headers: { get(name: string): string | null }
  arrayBuffer(): Promise<ArrayBuffer>
}

/** A fetch-compatible function: undici's `fetch`, the global one, or a fake. */
export type PcsFetch = (url: string, init: { method: 'GET'; signal: AbortSignal }) => Promise<PcsFetchResponse>

export interface PcsClientOptions {
  /**
   * PCS or PCCS root, e.g. `https://pccs.internal:8081` or Intel's
   * `https://api.trustedservices.intel.com`. Required: there is no default.
   */
  baseUrl: string
  /** Default: undici's `fetch`. */
  fetch?: PcsFetch
  /**
   * Where the Intel SGX Root CA CRL lives. Default: the PCCS route
   * `{baseUrl}/sgx/certification/v4/rootcacrl`. Intel PCS does not serve it;
   * use `https://certificates.trustedservices.intel.com/IntelSGXRootCA.der` there.
   */
  rootCaCrlUrl?: string
  /** Per request, headers and body included. Default `DEFAULT_TIMEOUT_MS`. */
  timeoutMs?: number
  /** Only PCS API v4 is spoken (TDX collateral exists only from v4). Default `'v4'`. */
  apiVersion?: 'v4'
  /** The clock stamped on `fetchedAt`. Default: the system clock. */
  now?: () => Date
}

/** A TCB info response, split: `tcbInfo` is the exact signed text. */
export interface TcbInfoResponse {
  readonly tcbInfo: string
  readonly signature: string
  readonly issuerChain: string
  readonly url: string
}

/** A QE identity response, split: `qeIdentity` is the exact signed text. */
export interface QeIdentityResponse {
  readonly qeIdentity: string
  readonly signature: string
  readonly issuerChain: string
  readonly url: string
}

/** A CRL as lower-case hex of its DER. */
export interface CrlResponse {
  readonly crl: string
  /** Present for the PCK CRL (from its header); the root CA CRL has none. */
  readonly issuerChain?: string
  readonly url: string
}

export interface PcsClient {
  readonly baseUrl: string
  readonly rootCaCrlUrl: string
  getTcbInfo(teeType: TeeType, fmspcHex: string): Promise<TcbInfoResponse>
  getQeIdentity(teeType: TeeType): Promise<QeIdentityResponse>
  getPckCrl(ca: PckCa): Promise<CrlResponse & { readonly issuerChain: string }>
  getRootCaCrl(): Promise<CrlResponse>
  /** All four pieces, fetched concurrently and assembled into one bundle. */
  getCollateral(request: CollateralRequest): Promise<FetchedCollateral>
}

function badOption(what: string, details: Record<string, unknown> = {}): never {
  throw new ConfigError('ATTESTATION_OPTIONS_INVALID', what, { details })
}

/** An http(s) URL without query or fragment, trailing slashes removed. */
function checkedBaseUrl(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0) badOption(`${name} is required (a PCS or PCCS URL)`)
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return badOption(`${name} is not a URL`, { [name]: value })
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') badOption(`${name} must be http(s)`, { [name]: value })
  if (url.search !== '' || url.hash !== '') badOption(`${name} must not carry a query or fragment`, { [name]: value })
  return value.replace(/\/+$/, '')
}

function checkedUrl(value: unknown, name: string): string {
  if (typeof value !== 'string') return badOption(`${name} must be a URL string`)
  try {
    const url = new URL(value)
    if (url.protocol !== 'https:' && url.protocol !== 'http:') badOption(`${name} must be http(s)`, { [name]: value })
  } catch (e) {
    if (e instanceof ConfigError) throw e
    return badOption(`${name} is not a URL`, { [name]: value })
  }
  return value
}

/** Validate a request's TEE type; exported for the cache, which shares the key. */
export function checkTeeType(teeType: unknown): TeeType {
  if (teeType !== 'tdx' && teeType !== 'sgx') badOption('teeType must be "tdx" or "sgx"', { teeType })
  return teeType
}

/** Validate an FMSPC (12 hex digits, any case); it ends up in URLs and file names. */
export function checkFmspc(fmspc: unknown): string {
  if (typeof fmspc !== 'string' || !FMSPC_HEX.test(fmspc)) badOption('fmspc must be 12 hex digits', { fmspc })
  return fmspc
}

/** Validate a PCK CA name (`platform` or `processor`). */
export function checkCa(ca: unknown): PckCa {
  if (ca !== 'platform' && ca !== 'processor') badOption('ca must be "platform" or "processor"', { ca })
  return ca
}

function unavailable(what: string, details: Record<string, unknown>, cause?: unknown): CollateralError {
  return new CollateralError('ATTESTATION_PCS_UNAVAILABLE', what, { cause, details })
}

function responseInvalid(what: string, details: Record<string, unknown>): CollateralError {
  return new CollateralError('ATTESTATION_PCS_RESPONSE_INVALID', what, { details })
}

/** A fetched 200 answer: body bytes and a header reader. */
interface RawAnswer {
  readonly body: Uint8Array
  header(name: string): string | null
}

/**
 * Create a PCS v4 client. Throws `ConfigError` (ATTESTATION_OPTIONS_INVALID)
 * for bad options; every method throws `CollateralError`:
 * ATTESTATION_PCS_UNAVAILABLE for network errors, timeouts and non-200
 * answers; ATTESTATION_PCS_RESPONSE_INVALID for missing headers and bodies
 * that are not collateral (or not the collateral that was asked for).
 */
export function createPcsClient(options: PcsClientOptions): PcsClient {
  if (typeof options !== 'object' || options === null) badOption('options are required')
  const baseUrl = checkedBaseUrl(options.baseUrl, 'baseUrl')
  const apiVersion = options.apiVersion ?? 'v4'
  if (apiVersion !== 'v4') badOption('apiVersion must be "v4"', { apiVersion })
  const rootCaCrlUrl =
    options.rootCaCrlUrl === undefined
      ? `${baseUrl}/sgx/certification/${apiVersion}/rootcacrl`
      : checkedUrl(options.rootCaCrlUrl, 'rootCaCrlUrl')
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) badOption('timeoutMs must be a positive integer', { timeoutMs })
  if (options.fetch !== undefined && typeof options.fetch !== 'function') badOption('fetch must be a function')
  if (options.now !== undefined && typeof options.now !== 'function') badOption('now must be a function returning a Date')
  const fetchImpl: PcsFetch = options.fetch ?? undiciFetch
  const now = options.now ?? ((): Date => new Date())

  /**
   * GET `url` and return its 200 answer. The deadline covers headers and
   * body, and is enforced by a race as well as the abort signal, so a fetch
   * that ignores `signal` still cannot hang the caller.
   */
  async function get(url: string): Promise<RawAnswer> {
    const controller = new AbortController()
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort()
        reject(unavailable('PCS request timed out', { url, timeoutMs }))
      }, timeoutMs)
    })
    const attempt = async (): Promise<RawAnswer> => {
      let res: PcsFetchResponse
      try {
        res = await fetchImpl(url, { method: 'GET', signal: controller.signal })
      } catch (e) {
        throw unavailable('PCS request failed', { url }, e)
      }
      if (res.status !== 200) {
        const details: Record<string, unknown> = { url, status: res.status }
        for (const h of DIAGNOSTIC_HEADERS) {
          const v = res.headers.get(h)
          if (v !== null) details[h] = v
        }
        // Drain so the connection can be reused; the error body is not needed.
        await res.arrayBuffer().catch(() => undefined)
        throw unavailable(`PCS answered HTTP ${res.status}`, details)
      }
      let body: Uint8Array
      try {
        body = new Uint8Array(await res.arrayBuffer())
      } catch (e) {
        throw unavailable('PCS response body could not be read', { url }, e)
      }
      return { body, header: (name) => res.headers.get(name) }
    }
    const pending = attempt()
    // The loser of the race must not surface as an unhandled rejection.
    pending.catch(() => undefined)
    try {
      return await Promise.race([pending, deadline])
    } finally {
      clearTimeout(timer)
    }
  }

  function teeBase(teeType: TeeType): string {
    return `${baseUrl}/${teeType}/certification/${apiVersion}`
  }

  async function getTcbInfo(teeType: TeeType, fmspcHex: string): Promise<TcbInfoResponse> {
    checkTeeType(teeType)
    checkFmspc(fmspcHex)
    const url = `${teeBase(teeType)}/tcb?fmspc=${fmspcHex}`
    const answer = await get(url)
    const context: ErrorContext = { url }
    const issuerChain = decodeIssuerChain(
      answer.header(HEADER_TCB_INFO_ISSUER_CHAIN) ?? answer.header(HEADER_TCB_INFO_ISSUER_CHAIN_V3),
      'tcbInfoIssuerChain',
      context,
    )
    const { json, signature } = parseTcbInfoResponse(answer.body, context)
    // Not a verification step: a PCS that answers for another platform or
    // TEE is a broken response, and caching it would repeat the failure.
    const info = JSON.parse(json) as Record<string, unknown>
    if (typeof info['fmspc'] !== 'string' || info['fmspc'].toLowerCase() !== fmspcHex.toLowerCase()) {
      throw responseInvalid('TCB info is for another FMSPC', { url, field: 'tcbInfoBody', fmspc: fmspcHex, got: info['fmspc'] })
    }
    if (info['id'] !== undefined && info['id'] !== TCB_INFO_ID[teeType]) {
      throw responseInvalid('TCB info is for another TEE', { url, field: 'tcbInfoBody', teeType, got: info['id'] })
    }
    return { tcbInfo: json, signature, issuerChain, url }
  }

  async function getQeIdentity(teeType: TeeType): Promise<QeIdentityResponse> {
    checkTeeType(teeType)
    const url = `${teeBase(teeType)}/qe/identity`
    const answer = await get(url)
    const context: ErrorContext = { url }
    const issuerChain = decodeIssuerChain(answer.header(HEADER_QE_IDENTITY_ISSUER_CHAIN), 'qeIdentityIssuerChain', context)
    const { json, signature } = parseQeIdentityResponse(answer.body, context)
    const identity = JSON.parse(json) as Record<string, unknown>
    if (identity['id'] !== QE_IDENTITY_ID[teeType]) {
      throw responseInvalid('QE identity is for another enclave', { url, field: 'qeIdentityBody', teeType, got: identity['id'] })
    }
    return { qeIdentity: json, signature, issuerChain, url }
  }

  async function getPckCrl(ca: PckCa): Promise<CrlResponse & { readonly issuerChain: string }> {
    checkCa(ca)
    // The PCK CRL lives under /sgx for TDX too: the PCK CAs are shared.
    const url = `${baseUrl}/sgx/certification/${apiVersion}/pckcrl?ca=${ca}&encoding=der`
    const answer = await get(url)
    const context: ErrorContext = { url }
    const issuerChain = decodeIssuerChain(answer.header(HEADER_PCK_CRL_ISSUER_CHAIN), 'pckCrlIssuerChain', context)
    return { crl: decodeCrl(answer.body, 'pckCrl', context), issuerChain, url }
  }

  async function getRootCaCrl(): Promise<CrlResponse> {
    const url = rootCaCrlUrl
    const answer = await get(url)
    return { crl: decodeCrl(answer.body, 'rootCaCrl', { url }), url }
  }

  async function getCollateral(request: CollateralRequest): Promise<FetchedCollateral> {
    if (typeof request !== 'object' || request === null) badOption('a collateral request is required')
    const teeType = checkTeeType(request.teeType)
    const fmspc = checkFmspc(request.fmspc)
    const ca = checkCa(request.ca)
    const [tcb, qe, pckCrl, rootCaCrl] = await Promise.all([
      getTcbInfo(teeType, fmspc),
      getQeIdentity(teeType),
      getPckCrl(ca),
      getRootCaCrl(),
    ])
    // Member order follows the vectors' collateral.json (dcap-qvl's field order).
    const collateral: QuoteCollateralV3 = {
      pck_crl_issuer_chain: pckCrl.issuerChain,
      root_ca_crl: rootCaCrl.crl,
      pck_crl: pckCrl.crl,
      tcb_info_issuer_chain: tcb.issuerChain,
      tcb_info: tcb.tcbInfo,
      tcb_info_signature: tcb.signature,
      qe_identity_issuer_chain: qe.issuerChain,
      qe_identity: qe.qeIdentity,
      qe_identity_signature: qe.signature,
    }
    return {
      collateral,
      fetchedAt: now().toISOString(),
      sources: { tcbInfo: tcb.url, qeIdentity: qe.url, pckCrl: pckCrl.url, rootCaCrl: rootCaCrl.url },
    }
  }

  return { baseUrl, rootCaCrlUrl, getTcbInfo, getQeIdentity, getPckCrl, getRootCaCrl, getCollateral }
}
