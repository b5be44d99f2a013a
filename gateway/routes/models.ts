/**
 * `GET /v1/models`: the public model list, OpenAI-shaped
 * (`{ object: 'list', data: [{ id, object: 'model' }] }`), so a client can
 * choose a model before it encrypts anything. Ids only: the enclave does
 * not pass on anything else the engine says about itself.
 */
import type { FastifyPluginAsync } from 'fastify'
import type { Enclave } from '../../enclave/types.ts'
import { isEnclaveError } from '../../enclave/errors.ts'
import { GatewayError, isGatewayError } from '../errors.ts'
import { withinTimeout } from '../plugins/limits.ts'
import { reportedCode } from '../plugins/request-outcome.ts'
import { EMPTY_QUERY_SCHEMA, PROBLEM_RESPONSES } from './schemas.ts'

export const MODEL_LIST_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['object', 'data'],
  properties: {
    object: { type: 'string', enum: ['list'] },
    data: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'object'],
        properties: { id: { type: 'string' }, object: { type: 'string', enum: ['model'] } },
      },
    },
  },
} as const

export interface ModelsRouteOptions extends Record<string, unknown> {
  readonly enclave: Enclave
}

export const modelsRoute: FastifyPluginAsync<ModelsRouteOptions> = async (app, { enclave }) => {
  const { rateLimit, timeouts } = app.gatewayLimits
  app.get(
    '/v1/models',
    {
      onRequest: rateLimit,
      schema: { querystring: EMPTY_QUERY_SCHEMA, response: { 200: MODEL_LIST_SCHEMA, ...PROBLEM_RESPONSES } },
    },
    async () => {
      let ids: readonly string[]
      try {
        ids = await withinTimeout(timeouts.upstreamMs, (signal) => enclave.models({ signal }))
      } catch (e) {
        app.gatewayMetrics.enclaveOutcome('models', reportedCode(e))
        // An enclave code keeps its status (ENCLAVE_CLOSED: 503), a timeout
        // stays 504; anything else means the engine list is unavailable.
        if (isEnclaveError(e) || isGatewayError(e)) throw e
        throw new GatewayError('GATEWAY_UPSTREAM_UNAVAILABLE', { cause: e })
      }
      app.gatewayMetrics.enclaveOutcome('models', 'ok')
      return { object: 'list', data: ids.map((id) => ({ id, object: 'model' })) }
    },
  )
}
