/**
 * A fake Intel PCS (API v4) for tests: a real node:http server on
 * 127.0.0.1, port 0, serving collateral bundles the way Intel does — signed
 * JSON bodies built around the exact bundle text, URL-encoded PEM
 * `*-Issuer-Chain` headers, DER CRL bodies — plus the root CA CRL at the
 * PCCS route and at the path Intel's certificates host uses.
 * Faults (status codes, missing headers, garbled bodies, delays, hang-ups)
 * are per endpoint and may be changed while the server runs; every request
 * is recorded so tests can count what reached the network.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { derToPem } from '../../attestation/asn1/pem.ts'
import { parseCrl } from '../../attestation/pki/crl.ts'
import { commonName } from '../../attestation/pki/x509.ts'
import {
  HEADER_PCK_CRL_ISSUER_CHAIN,
  HEADER_QE_IDENTITY_ISSUER_CHAIN,
  HEADER_TCB_INFO_ISSUER_CHAIN,
} from '../../attestation/pcs/client.ts'
import { pcsResponsesFromCollateral } from '../../attestation/pcs/raw.ts'
import type { QuoteCollateralV3 } from '../../attestation/pcs/types.ts'

export type FakePcsEndpoint = 'tcb' | 'qe' | 'pckcrl' | 'rootcacrl'

/** How an endpoint misbehaves; fields combine (e.g. a delay and a 500). */
export interface FakePcsFault {
  /** Answer with this status instead of 200, as Intel does with an `Error-Code` header. */
  status?: number
  /** Leave out the endpoint's issuer chain header. */
  dropHeader?: boolean
  /** Send this issuer chain header value instead of the real one. */
  header?: string
  /** Send this body instead of the real one. */
  body?: string | Uint8Array
  /** Transform the real body (truncate it, flip a byte…). */
  mutateBody?: (body: Uint8Array) => Uint8Array
  /** Wait this long before sending the headers. */
  delayMs?: number
  /** Destroy the connection without an answer (a network error for the client). */
  hangUp?: boolean
}

export type CrlEncoding = 'der' | 'hex' | 'pem'

export interface FakePcsOptions {
  /**
   * Bundles by FMSPC (hex, any case). TCB info is served per FMSPC on the
   * path of its TEE (`tcbInfo.id`); QE identity, PCK CRL and root CA CRL are
   * not per platform on a real PCS, so the first bundle that fits is served.
   */
  bundles: Map<string, QuoteCollateralV3>
  /** Initial faults; `fakePcs.faults` may be changed later. */
  faults?: Partial<Record<FakePcsEndpoint, FakePcsFault>>
  /**
   * CRL body encoding when the request has no `encoding=der` (Intel's v4
   * default is PEM) and for the root CA CRL route. Default `'der'`.
   */
  crlEncoding?: CrlEncoding
}

export interface FakePcsRequest {
  readonly method: string
  /** Path and query as received. */
  readonly url: string
  readonly endpoint: FakePcsEndpoint | undefined
}

export interface FakePcs {
  /** Base URL, e.g. `http://127.0.0.1:40123`. */
  readonly url: string
  /** Every request, in arrival order (`requests.length` is the counter). */
  readonly requests: FakePcsRequest[]
  /** Live fault table. */
  faults: Partial<Record<FakePcsEndpoint, FakePcsFault>>
  /** Requests that reached `endpoint` (or all requests). */
  count(endpoint?: FakePcsEndpoint): number
  /** Stop listening, drop open connections and pending delayed answers. */
  close(): Promise<void>
}

interface Answer {
  status: number
  headers: Record<string, string>
  body: Uint8Array
}

const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'))

function tcbInfoId(bundle: QuoteCollateralV3): unknown {
  return (JSON.parse(bundle.tcb_info) as Record<string, unknown>)['id']
}

function qeIdentityId(bundle: QuoteCollateralV3): unknown {
  return (JSON.parse(bundle.qe_identity) as Record<string, unknown>)['id']
}

/** Which PCK CA signed a bundle's PCK CRL, from its issuer CN ("Intel SGX PCK Platform CA"). */
function pckCrlCa(bundle: QuoteCollateralV3): string {
  const cn = commonName(parseCrl(new Uint8Array(Buffer.from(bundle.pck_crl, 'hex'))).issuer).toLowerCase()
  return cn.includes('processor') ? 'processor' : cn.includes('platform') ? 'platform' : ''
}

function crlBody(der: Uint8Array, encoding: CrlEncoding): { body: Uint8Array; type: string } {
  if (encoding === 'hex') return { body: utf8(Buffer.from(der).toString('hex')), type: 'text/plain' }
  if (encoding === 'pem') return { body: utf8(derToPem(der, 'X509 CRL')), type: 'application/x-pem-file' }
  return { body: der, type: 'application/pkix-crl' }
}

const notFound = (): Answer => ({ status: 404, headers: {}, body: new Uint8Array() })

/** Start a fake PCS on 127.0.0.1 with an ephemeral port. Close it with `close()` (use `t.teardown`). */
export async function startFakePcs(options: FakePcsOptions): Promise<FakePcs> {
  const bundles = [...options.bundles].map(([fmspc, bundle]) => ({ fmspc: fmspc.toLowerCase(), bundle }))
  const defaultEncoding = options.crlEncoding ?? 'der'
  const requests: FakePcsRequest[] = []
  const timers = new Set<NodeJS.Timeout>()

  function route(path: string, query: URLSearchParams): { endpoint: FakePcsEndpoint | undefined; answer: Answer } {
    const m = /^\/(tdx|sgx)\/certification\/v4\/(tcb|qe\/identity)$/.exec(path)
    if (m) {
      const tee = m[1]!
      if (m[2] === 'tcb') {
        const fmspc = (query.get('fmspc') ?? '').toLowerCase()
        const want = tee === 'tdx' ? ['TDX'] : ['SGX', undefined]
        const hit = bundles.find((b) => b.fmspc === fmspc && want.includes(tcbInfoId(b.bundle) as string | undefined))
        if (!hit) return { endpoint: 'tcb', answer: notFound() }
        const raw = pcsResponsesFromCollateral(hit.bundle)
        return {
          endpoint: 'tcb',
          answer: {
            status: 200,
            headers: { 'content-type': 'application/json', [HEADER_TCB_INFO_ISSUER_CHAIN]: raw.tcbInfoIssuerChain },
            body: utf8(raw.tcbInfoBody),
          },
        }
      }
      const want = tee === 'tdx' ? 'TD_QE' : 'QE'
      const hit = bundles.find((b) => qeIdentityId(b.bundle) === want)
      if (!hit) return { endpoint: 'qe', answer: notFound() }
      const raw = pcsResponsesFromCollateral(hit.bundle)
      return {
        endpoint: 'qe',
        answer: {
          status: 200,
          headers: { 'content-type': 'application/json', [HEADER_QE_IDENTITY_ISSUER_CHAIN]: raw.qeIdentityIssuerChain },
          body: utf8(raw.qeIdentityBody),
        },
      }
    }
    if (path === '/sgx/certification/v4/pckcrl') {
      const ca = query.get('ca')
      if (ca !== 'platform' && ca !== 'processor') return { endpoint: 'pckcrl', answer: { status: 400, headers: {}, body: new Uint8Array() } }
      const hit = bundles.find((b) => pckCrlCa(b.bundle) === ca)
      if (!hit) return { endpoint: 'pckcrl', answer: notFound() }
      const raw = pcsResponsesFromCollateral(hit.bundle)
      const { body, type } = crlBody(raw.pckCrl, query.get('encoding') === 'der' ? 'der' : defaultEncoding)
      return {
        endpoint: 'pckcrl',
        answer: { status: 200, headers: { 'content-type': type, [HEADER_PCK_CRL_ISSUER_CHAIN]: raw.pckCrlIssuerChain }, body },
      }
    }
    // PCCS route, and the path Intel's certificates host serves the root CA CRL at.
    if (path === '/sgx/certification/v4/rootcacrl' || path === '/IntelSGXRootCA.der') {
      const first = bundles[0]
      if (!first) return { endpoint: 'rootcacrl', answer: notFound() }
      const { body, type } = crlBody(pcsResponsesFromCollateral(first.bundle).rootCaCrl, defaultEncoding)
      return { endpoint: 'rootcacrl', answer: { status: 200, headers: { 'content-type': type }, body } }
    }
    return { endpoint: undefined, answer: notFound() }
  }

  /** The issuer chain header each endpoint sends (the root CA CRL has none). */
  const chainHeader: Record<FakePcsEndpoint, string | undefined> = {
    tcb: HEADER_TCB_INFO_ISSUER_CHAIN,
    qe: HEADER_QE_IDENTITY_ISSUER_CHAIN,
    pckcrl: HEADER_PCK_CRL_ISSUER_CHAIN,
    rootcacrl: undefined,
  }

  function applyFault(endpoint: FakePcsEndpoint, answer: Answer, fault: FakePcsFault): Answer {
    const headers = { ...answer.headers }
    let { status, body } = answer
    const name = chainHeader[endpoint]
    if (name !== undefined && fault.dropHeader) delete headers[name]
    if (name !== undefined && fault.header !== undefined) headers[name] = fault.header
    if (fault.mutateBody) body = fault.mutateBody(body)
    if (fault.body !== undefined) body = typeof fault.body === 'string' ? utf8(fault.body) : fault.body
    if (fault.status !== undefined && fault.status !== 200) {
      status = fault.status
      // Intel PCS explains errors in headers, not bodies.
      headers['Error-Code'] = 'FakeFault'
      headers['Request-ID'] = `fake-${requests.length}`
      if (fault.body === undefined) body = new Uint8Array()
    }
    return { status, headers, body }
  }

  function send(res: ServerResponse, answer: Answer): void {
    if (res.destroyed) return
    res.writeHead(answer.status, { ...answer.headers, 'content-length': String(answer.body.length) })
    res.end(answer.body)
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const parsed = new URL(req.url ?? '/', 'http://fake-pcs')
    const { endpoint, answer } = route(parsed.pathname, parsed.searchParams)
    requests.push({ method: req.method ?? '', url: req.url ?? '', endpoint })
    if (req.method !== 'GET') {
      send(res, { status: 405, headers: {}, body: new Uint8Array() })
      return
    }
    const fault = endpoint === undefined ? undefined : fake.faults[endpoint]
    if (!fault || endpoint === undefined) {
      send(res, answer)
      return
    }
    const finish = (): void => {
      if (fault.hangUp) {
        req.socket.destroy()
        return
      }
      send(res, applyFault(endpoint, answer, fault))
    }
    if (fault.delayMs === undefined) {
      finish()
      return
    }
    const timer = setTimeout(() => {
      timers.delete(timer)
      finish()
    }, fault.delayMs)
    timers.add(timer)
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address() as AddressInfo

  let closed: Promise<void> | undefined
  const fake: FakePcs = {
    url: `http://127.0.0.1:${port}`,
    requests,
    faults: { ...options.faults },
    count: (endpoint) => (endpoint === undefined ? requests.length : requests.filter((r) => r.endpoint === endpoint).length),
    close: () => {
      closed ??= new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t)
        timers.clear()
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return closed
    },
  }
  return fake
}
