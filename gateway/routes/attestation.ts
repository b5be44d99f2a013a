/**
 * `GET /v1/attestation?nonce=HEX`: the enclave's evidence bundle for a
 * verifier's 32-byte nonce (quote, event log, GPU evidence, key config,
 * signing address, epoch — all public, bound through REPORTDATA).
 *
 * Evidence is expensive (a TDX quote and GPU evidence collection), so the
 * route has its own, tighter per-client rate limit, and answers for one
 * nonce are kept for the lifetime of the epoch they were made in: asking
 * twice (or twice at once) costs one `attest` call. A new epoch makes new
 * evidence, since the key config it binds changed.
 */
import type { FastifyPluginAsync } from 'fastify'
import type { Enclave, EvidenceBundle } from '../../enclave/types.ts'
import { isEnclaveError } from '../../enclave/errors.ts'
import { GatewayError, isGatewayError } from '../errors.ts'
import { withinTimeout } from '../plugins/limits.ts'
import { reportedCode } from '../plugins/request-outcome.ts'
import { PROBLEM_RESPONSES } from './schemas.ts'

/** The verifier's nonce: 32 bytes, hex (the size attestation/binding.ts commits to). */
export const NONCE_PATTERN = '^[0-9a-fA-F]{64}$'

const base64 = { type: 'string', pattern: '^[A-Za-z0-9+/]*={0,2}$' } as const

/** The JSON schema of `EvidenceBundle` (enclave/types.ts), used to serialize the answer. */
export const EVIDENCE_BUNDLE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['version', 'nonce', 'quote', 'eventLog', 'gpu', 'keyConfig', 'signingAddress', 'epoch', 'logPublicKey', 'epochExpiresAt'],
  properties: {
    version: { type: 'integer', enum: [1] },
    nonce: { type: 'string', pattern: '^[0-9a-f]{64}$' },
    quote: base64,
    eventLog: {
      anyOf: [{ type: 'null' }, { type: 'object', additionalProperties: false, required: ['table', 'data'], properties: { table: base64, data: base64 } }],
    },
    gpu: { anyOf: [{ type: 'null' }, { type: 'object', additionalProperties: true }] },
    keyConfig: base64,
    signingAddress: { type: 'string', pattern: '^0x[0-9a-fA-F]{40}$' },
    epoch: { type: 'string', pattern: '^[0-9]{1,20}$' },
    logPublicKey: { anyOf: [{ type: 'null' }, base64] },
    epochExpiresAt: { type: 'string' },
    // Optional: what the TD extended into RTMR2/3 after boot (attestation/eventlog/runtime-events.ts).
    runtimeEvents: {
      type: 'array',
      maxItems: 4096,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['imr', 'event', 'digest', 'payload'],
        properties: {
          imr: { type: 'integer', enum: [2, 3] },
          event: { type: 'string', minLength: 1, maxLength: 256 },
          digest: { type: 'string', pattern: '^[0-9a-f]{96}$' },
          payload: { type: 'string', pattern: '^([0-9a-f]{2})*$' },
        },
      },
    },
  },
} as const

/** Nonces remembered at once; beyond this the oldest answer is dropped (it can be made again). */
const MAX_CACHED_NONCES = 1024

interface CachedEvidence {
  readonly bundle: Promise<EvidenceBundle>
  /** Epoch-expiry instant in ms once known; until then the entry lives while pending. */
  expiresAt: number
}

export interface AttestationRouteOptions extends Record<string, unknown> {
  readonly enclave: Enclave
  /** Wall clock, ms (epoch expiry is wall time). Default `Date.now`. */
  readonly now?: () => number
}

export const attestationRoute: FastifyPluginAsync<AttestationRouteOptions> = async (app, { enclave, now = Date.now }) => {
  const { attestationRateLimit, timeouts } = app.gatewayLimits
  const cache = new Map<string, CachedEvidence>()

  function evidenceFor(nonceHex: string): Promise<EvidenceBundle> {
    const key = `${enclave.status().epoch}:${nonceHex}`
    const hit = cache.get(key)
    if (hit && hit.expiresAt > now()) return hit.bundle
    cache.delete(key)
    const nonce = new Uint8Array(Buffer.from(nonceHex, 'hex'))
    // Not tied to one client's connection: others may be waiting on the same answer.
    const bundle = withinTimeout(timeouts.upstreamMs, (signal) => enclave.attest(nonce, { signal }))
    const entry: CachedEvidence = { bundle, expiresAt: Number.POSITIVE_INFINITY }
    cache.set(key, entry)
    if (cache.size > MAX_CACHED_NONCES) cache.delete(cache.keys().next().value!)
    bundle.then(
      (b) => {
        app.gatewayMetrics.enclaveOutcome('attest', 'ok')
        const expiry = Date.parse(b.epochExpiresAt)
        entry.expiresAt = Number.isFinite(expiry) ? expiry : 0
      },
      // A failure is not remembered: the next request tries again.
      (e: unknown) => {
        app.gatewayMetrics.enclaveOutcome('attest', reportedCode(e))
        if (cache.get(key) === entry) cache.delete(key)
      },
    )
    return bundle
  }

  app.get<{ Querystring: { nonce?: string } }>(
    '/v1/attestation',
    {
      onRequest: attestationRateLimit,
      // Validation failures are kept for the handler, which answers with the
      // route's own code (GATEWAY_BAD_NONCE) instead of the generic one.
      attachValidation: true,
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['nonce'],
          properties: { nonce: { type: 'string', pattern: NONCE_PATTERN } },
        },
        response: { 200: EVIDENCE_BUNDLE_SCHEMA, ...PROBLEM_RESPONSES },
      },
    },
    async (request) => {
      const nonce = request.query.nonce
      if (request.validationError || typeof nonce !== 'string') throw new GatewayError('GATEWAY_BAD_NONCE')
      try {
        return await evidenceFor(nonce.toLowerCase())
      } catch (e) {
        // Enclave codes keep their statuses (503 for unavailable evidence); a timeout stays 504.
        if (isEnclaveError(e) || isGatewayError(e)) throw e
        throw new GatewayError('GATEWAY_UPSTREAM_UNAVAILABLE', { cause: e })
      }
    },
  )
}
