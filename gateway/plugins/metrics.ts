/**
 * Prometheus metrics on a registry owned by one server instance (never
 * prom-client's global registry, so tests and benchmarks can build many
 * servers in one process).
 *
 * Labels are a closed set: route pattern, status class, outcome code,
 * enclave operation. Nothing a client controls — address, header, model,
 * path, body — becomes a label, both for privacy (metrics are scraped and
 * kept outside the CVM) and because a client-chosen label is an unbounded
 * cardinality attack on the scraper.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { sharedPlugin } from './shared.ts'
import { safeCode, type RequestRecord } from './request-outcome.ts'

/** Which enclave call an outcome code came from. */
export type EnclaveOperation = 'handle' | 'attest' | 'models'

export interface GatewayMetrics {
  readonly registry: Registry
  /** Count and time one finished request. */
  observeRequest(record: RequestRecord): void
  /** Count one enclave outcome ('ok' or a code). */
  enclaveOutcome(operation: EnclaveOperation, code: string): void
  /** Where the active-streams gauge reads its value at scrape time. */
  setActiveStreamsSource(read: () => number): void
}

/** Upper bounds in seconds: a JSON answer takes milliseconds, a generated stream minutes. */
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]

/** The status class label: one of seven fixed values whatever the status. */
function statusClass(status: number): string {
  return status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : 'other'
}

/** A fresh registry with the gateway's metrics. */
export function createGatewayMetrics(): GatewayMetrics {
  const registry = new Registry()
  const labelNames = ['route', 'status_class', 'outcome'] as const
  const requests = new Counter({ name: 'cgw_gateway_requests_total', help: 'Requests by route pattern, status class and outcome code.', labelNames, registers: [registry] })
  const duration = new Histogram({
    name: 'cgw_gateway_request_duration_seconds',
    help: 'Time from request start to the end of the response (the whole stream for /v1/ohttp).',
    labelNames,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  })
  const enclave = new Counter({
    name: 'cgw_gateway_enclave_outcomes_total',
    help: 'Outcome codes reported by the enclave, by operation.',
    labelNames: ['operation', 'code'] as const,
    registers: [registry],
  })
  let readActive: () => number = () => 0
  new Gauge({
    name: 'cgw_gateway_active_streams',
    help: 'Encapsulated requests in flight (from body upload to the last chunk).',
    registers: [registry],
    collect() {
      this.set(readActive())
    },
  })
  return {
    registry,
    observeRequest(record) {
      const labels = { route: record.route, status_class: statusClass(record.status), outcome: safeCode(record.outcome) }
      requests.inc(labels)
      duration.observe(labels, record.durationMs / 1000)
    },
    enclaveOutcome(operation, code) {
      enclave.inc({ operation, code: safeCode(code) })
    },
    setActiveStreamsSource(read) {
      readActive = read
    },
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** This server's metrics (metrics plugin). */
    gatewayMetrics: GatewayMetrics
  }
}

export interface MetricsPluginOptions extends Record<string, unknown> {
  readonly metrics: GatewayMetrics
  /** Serve `GET /metrics`. */
  readonly expose: boolean
}

/** Decorates the instance with `gatewayMetrics` and, when `expose`, serves `GET /metrics` (text exposition format 0.0.4). */
export const metricsPlugin = sharedPlugin<MetricsPluginOptions>('cgw-metrics', async (app, { metrics, expose }) => {
  app.decorate('gatewayMetrics', metrics)
  if (!expose) return
  app.get(
    '/metrics',
    {
      schema: {
        querystring: { type: 'object', additionalProperties: false, properties: {} },
      },
    },
    async (_request: FastifyRequest, reply: FastifyReply) => {
      const text = await metrics.registry.metrics()
      return reply.header('content-type', metrics.registry.contentType).header('cache-control', 'no-store').send(text)
    },
  )
})
