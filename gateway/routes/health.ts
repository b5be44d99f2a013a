/**
 * `GET /healthz`: the process is up and serving HTTP (a liveness probe).
 * `GET /readyz`: the gateway should receive traffic — the enclave can
 * produce evidence and, when the deployment registers on-chain, the
 * registration check passes. Not rate-limited: probes come from the
 * orchestrator, often, by design.
 */
import type { FastifyPluginAsync } from 'fastify'
import type { Enclave } from '../../enclave/types.ts'
import { GatewayError } from '../errors.ts'
import { withinTimeout } from '../plugins/limits.ts'
import { EMPTY_QUERY_SCHEMA, PROBLEM_RESPONSES } from './schemas.ts'

/** Whether the enclave's current epoch is registered on-chain (injected; absent = not required). */
export type RegistrationCheck = () => boolean | Promise<boolean>

export interface HealthRoutesOptions extends Record<string, unknown> {
  readonly enclave: Enclave
  readonly registrationReady?: RegistrationCheck | undefined
}

const READY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['status', 'epoch', 'registration'],
  properties: {
    status: { type: 'string', enum: ['ready'] },
    epoch: { type: 'string' },
    registration: { type: 'string', enum: ['registered', 'not-required'] },
  },
} as const

export const healthRoutes: FastifyPluginAsync<HealthRoutesOptions> = async (app, { enclave, registrationReady }) => {
  const { timeouts } = app.gatewayLimits

  app.get(
    '/healthz',
    {
      schema: {
        querystring: EMPTY_QUERY_SCHEMA,
        response: { 200: { type: 'object', additionalProperties: false, required: ['status'], properties: { status: { type: 'string', enum: ['ok'] } } } },
      },
    },
    async () => ({ status: 'ok' }),
  )

  app.get(
    '/readyz',
    { schema: { querystring: EMPTY_QUERY_SCHEMA, response: { 200: READY_SCHEMA, ...PROBLEM_RESPONSES } } },
    async () => {
      let evidence = false
      let epoch = ''
      try {
        const status = enclave.status()
        evidence = status.ready
        epoch = status.epoch
      } catch {
        evidence = false
      }
      let registration: boolean | 'not-required' = 'not-required'
      if (registrationReady) {
        // A check that throws or hangs is a "no": readiness fails closed.
        registration = await withinTimeout(timeouts.upstreamMs, async () => registrationReady()).then(
          (ok) => ok === true,
          () => false,
        )
      }
      if (!evidence || registration === false) {
        throw new GatewayError('GATEWAY_NOT_READY', { extensions: { checks: { evidence, registration } } })
      }
      return { status: 'ready', epoch, registration: registration === true ? 'registered' : 'not-required' }
    },
  )
}
