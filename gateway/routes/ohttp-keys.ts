/**
 * `GET /.well-known/ohttp-gateway`: the key configurations clients may
 * encrypt to now, as `application/ohttp-keys` (RFC 9458 §3.2), straight
 * from the enclave. Public data; the same bytes are bound into the quote,
 * which is how a careful client knows they are the enclave's.
 */
import type { FastifyPluginAsync } from 'fastify'
import type { Enclave } from '../../enclave/types.ts'
import { EMPTY_QUERY_SCHEMA, PROBLEM_RESPONSES } from './schemas.ts'

/** RFC 9458 §3.2: the key configuration media type. */
export const OHTTP_KEYS_CONTENT_TYPE = 'application/ohttp-keys'

/**
 * Short, because keys rotate every epoch: a client holding a stale config
 * for long gets RFC 9458 §5.3 key problems until it refetches. The old
 * epoch's key keeps decrypting for its grace period, which is longer.
 */
export const OHTTP_KEYS_CACHE_CONTROL = 'public, max-age=60'

export interface OhttpKeysRouteOptions extends Record<string, unknown> {
  readonly enclave: Enclave
}

export const ohttpKeysRoute: FastifyPluginAsync<OhttpKeysRouteOptions> = async (app, { enclave }) => {
  app.get(
    '/.well-known/ohttp-gateway',
    {
      onRequest: app.gatewayLimits.rateLimit,
      // The 200 body is binary (no JSON schema applies); errors are problem documents.
      schema: { querystring: EMPTY_QUERY_SCHEMA, response: PROBLEM_RESPONSES },
    },
    async (_request, reply) => {
      const keys = enclave.keyConfigs()
      return reply
        .header('content-type', OHTTP_KEYS_CONTENT_TYPE)
        .header('cache-control', OHTTP_KEYS_CACHE_CONTROL)
        .send(Buffer.from(keys.buffer, keys.byteOffset, keys.byteLength))
    },
  )
}
