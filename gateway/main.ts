/**
 * `startGateway()`: build the server, listen, and stop gracefully.
 *
 * Shutdown (SIGTERM, SIGINT, or `shutdown()`): stop accepting connections
 * (fastify answers 503 to requests already on open connections), let
 * running streams finish for up to `timeouts.shutdownGraceMs`, then cut the
 * rest — their signals abort, so the enclave cancels the engine requests —
 * and only then close the enclave, whose keys die with it. A second signal
 * skips the grace period.
 */
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { AddressInfo } from 'node:net'
import type { Enclave } from '../enclave/types.ts'
import type { GatewayConfig } from './config.ts'
import { GatewayError } from './errors.ts'
import type { RegistrationCheck } from './routes/health.ts'
import { buildServer } from './server.ts'

export interface StartGatewayOptions {
  readonly enclave: Enclave
  readonly logger?: Logger
  readonly registrationReady?: RegistrationCheck
  /** Install SIGTERM/SIGINT handlers (removed again once stopped). Default true. */
  readonly handleSignals?: boolean
}

export interface RunningGateway {
  readonly server: FastifyInstance
  /** Where it listens (the real port when the config said 0). */
  readonly address: { readonly host: string; readonly port: number }
  /** Stop gracefully (idempotent; a second call while stopping cuts running streams at once). */
  shutdown(reason?: string): Promise<void>
  /** Settles once the server is closed and the enclave closed. */
  readonly closed: Promise<void>
}

const SIGNALS = ['SIGTERM', 'SIGINT'] as const

export async function startGateway(config: GatewayConfig, { enclave, logger, registrationReady, handleSignals = true }: StartGatewayOptions): Promise<RunningGateway> {
  const server = buildServer({ enclave, config, ...(logger ? { logger } : {}), ...(registrationReady ? { registrationReady } : {}) })
  try {
    await server.listen({ host: config.listen.host, port: config.listen.port })
  } catch (e) {
    await server.close().catch(() => {})
    throw e
  }
  const bound = server.server.address() as AddressInfo

  let stopping: Promise<void> | undefined
  let cut: (() => void) | undefined
  let resolveClosed!: () => void
  let rejectClosed!: (e: unknown) => void
  const closed = new Promise<void>((resolve, reject) => {
    resolveClosed = resolve
    rejectClosed = reject
  })

  const onSignal = (signal: NodeJS.Signals) => void shutdown(signal)
  if (handleSignals) for (const s of SIGNALS) process.on(s, onSignal)

  async function stop(reason: string): Promise<void> {
    server.log.info({ reason }, 'gateway shutting down')
    const slots = server.gatewayLimits.slots
    let timer: NodeJS.Timeout | undefined
    const cutNow = () => {
      if (timer !== undefined) clearTimeout(timer)
      slots.abortAll(new GatewayError('GATEWAY_SHUTTING_DOWN'))
      server.server.closeAllConnections()
    }
    cut = cutNow
    // Keep-alive connections that go idle after their stream ends would
    // otherwise hold server.close() open until the grace period expires.
    const reap = setInterval(() => server.server.closeIdleConnections(), 50)
    try {
      const closing = server.close()
      timer = setTimeout(cutNow, config.timeouts.shutdownGraceMs)
      await closing
    } finally {
      clearTimeout(timer)
      clearInterval(reap)
      if (handleSignals) for (const s of SIGNALS) process.removeListener(s, onSignal)
      // The enclave goes last: streams still running need its keys.
      await enclave.close()
      server.log.info('gateway stopped')
    }
  }

  function shutdown(reason = 'shutdown'): Promise<void> {
    if (stopping) {
      cut?.()
      return stopping
    }
    stopping = stop(reason).then(resolveClosed, (e: unknown) => {
      rejectClosed(e)
      throw e
    })
    return stopping
  }

  closed.catch(() => {})
  return { server, address: { host: config.listen.host, port: bound.port }, shutdown, closed }
}
