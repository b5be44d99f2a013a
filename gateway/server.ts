/**
 * `buildServer()`: the provider's gateway as a fastify instance that never
 * listens — tests drive it with `inject()` or `listen()` on port 0, and
 * gateway/main.ts listens for real.
 *
 * Structure (docs/Reference/Encapsulation.md): the request-outcome, metrics
 * and limits plugins are shared (skip-override) because their hooks and
 * decorators serve every route; each route file is an encapsulated plugin
 * that receives the enclave through its options. The root has no body
 * parsers at all, so only `POST /v1/ohttp`, which adds its own two, reads a
 * body. Every error leaves as an RFC 9457 problem document built from the
 * error registry (gateway/errors.ts), never from an error's message.
 */
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import type { Enclave } from '../enclave/types.ts'
import type { GatewayConfig } from './config.ts'
import { GatewayError, PROBLEM_CONTENT_TYPE, problemFor } from './errors.ts'
import { createGatewayLogger, logRequestRecord } from './plugins/logging.ts'
import { createGatewayMetrics, metricsPlugin, type GatewayMetrics } from './plugins/metrics.ts'
import { limitsPlugin } from './plugins/limits.ts'
import { requestOutcomePlugin } from './plugins/request-outcome.ts'
import { attestationRoute } from './routes/attestation.ts'
import { healthRoutes, type RegistrationCheck } from './routes/health.ts'
import { modelsRoute } from './routes/models.ts'
import { ohttpRoute } from './routes/ohttp.ts'
import { ohttpKeysRoute } from './routes/ohttp-keys.ts'
import { logRoutes, type LogRouteOptions } from './routes/log.ts'

export interface BuildServerParameters {
  /** The only way the gateway reaches the enclave. */
  readonly enclave: Enclave
  readonly config: GatewayConfig
  /** Default: `createGatewayLogger(config.logLevel)` on stdout. Pass one built with gateway/plugins/logging.ts to keep the redaction. */
  readonly logger?: Logger
  /** Whether the current epoch is registered on-chain; absent = registration not required for readiness. */
  readonly registrationReady?: RegistrationCheck
  /** Clock in ms for rate limits and evidence expiry. Default `Date.now`. */
  readonly now?: () => number
  /** Default: a fresh registry (never prom-client's global one). */
  readonly metrics?: GatewayMetrics
  /** The attestation log's directory (and data directory of earlier logs), served under /log/ (gateway/routes/log.ts); absent = no log routes. */
  readonly log?: LogRouteOptions
}

export type BuildServerReturnType = FastifyInstance

/** Send the problem document for `error` (or cut the connection if a response already started). */
function sendProblem(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply | undefined {
  const { status, headers, problem } = problemFor(error)
  request.cgwOutcome = problem.code
  if (problem.code === 'GATEWAY_INTERNAL') request.log.error({ err: error }, 'unexpected error')
  if (reply.raw.headersSent) {
    reply.raw.destroy()
    return undefined
  }
  return reply.code(status).headers(headers).header('content-type', PROBLEM_CONTENT_TYPE).header('cache-control', 'no-store').send(problem)
}

/** The gateway as a fastify instance, plugins registered, not listening. */
export function buildServer({ enclave, config, logger, registrationReady, now = Date.now, metrics = createGatewayMetrics(), log }: BuildServerParameters): BuildServerReturnType {
  const app = Fastify({
    loggerInstance: logger ?? createGatewayLogger(config.logLevel),
    // fastify's request lines carry the raw URL and error messages; the
    // request-outcome plugin writes one redacted line instead.
    logController: new LogController({ disableRequestLogging: true }),
    // Requests that arrive while closing get 503 without reaching a route.
    return503OnClosing: true,
    // Never take a request id from a client header: it would be logged.
    requestIdHeader: false,
    bodyLimit: config.limits.bodyLimitBytes,
    // A request must arrive whole in time: stream slots are taken before the
    // body is read, and a stalled upload must not keep one (node: no limit).
    requestTimeout: config.timeouts.requestMs,
    // fastify types the instance by its logger (pino's Logger here); the
    // rest of the gateway only needs the base logger interface.
  }) as unknown as FastifyInstance

  app.removeAllContentTypeParsers()
  app.setErrorHandler((error: FastifyError, request, reply) => sendProblem(error, request, reply))
  app.setNotFoundHandler((request, reply) => sendProblem(new GatewayError('GATEWAY_NOT_FOUND'), request, reply))

  app.register(requestOutcomePlugin, { listeners: [logRequestRecord, (record) => metrics.observeRequest(record)] })
  app.register(metricsPlugin, { metrics, expose: config.metrics })
  app.register(limitsPlugin, { config, now })

  app.register(healthRoutes, { enclave, registrationReady })
  app.register(ohttpKeysRoute, { enclave })
  app.register(attestationRoute, { enclave, now })
  app.register(modelsRoute, { enclave })
  app.register(ohttpRoute, { enclave })
  if (log) app.register(logRoutes, log)
  return app
}
