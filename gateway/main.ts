/**
 * `startGateway()`: build the server, listen, and stop gracefully.
 *
 * With a registry, the registration worker (registration-worker.ts) keeps
 * the enclave registered: it starts once the enclave first reports ready
 * (its evidence exists, its GPU is verified), re-registers at every key
 * epoch change, and /readyz waits for it. Successful registrations are
 * recorded in the attestation log through `Enclave.registration`.
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
import type { LogRouteOptions } from './routes/log.ts'
import type { RegistryWriter } from '../contracts/registry-types.ts'
import { createRegistrationWorker, type RegistrationWorker } from './registration-worker.ts'

export interface StartGatewayOptions {
  readonly enclave: Enclave
  readonly logger?: Logger
  readonly registrationReady?: RegistrationCheck
  /** Keep the enclave registered here (needs an enclave built for a chain); /readyz then waits for it. */
  readonly registry?: RegistryWriter
  /** Serve the attestation log under /log/ (gateway/routes/log.ts). */
  readonly log?: LogRouteOptions
  /** Install SIGTERM/SIGINT handlers (removed again once stopped). Default true. */
  readonly handleSignals?: boolean
  /** How often to look whether the enclave is ready before the first registration, ms. Default 200. */
  readonly readyPollMs?: number
}

export interface RunningGateway {
  readonly server: FastifyInstance
  /** Where it listens (the real port when the config said 0). */
  readonly address: { readonly host: string; readonly port: number }
  /** Stop gracefully (idempotent; a second call while stopping cuts running streams at once). */
  shutdown(reason?: string): Promise<void>
  /** Settles once the server is closed and the enclave closed. */
  readonly closed: Promise<void>
  /** The registration worker, when a registry was given. */
  readonly registration: RegistrationWorker | null
}

const SIGNALS = ['SIGTERM', 'SIGINT'] as const

export async function startGateway(config: GatewayConfig, options: StartGatewayOptions): Promise<RunningGateway> {
  const { enclave, logger, registry, log, handleSignals = true, readyPollMs = 200 } = options
  let worker: RegistrationWorker | null = null
  let registrationReady = options.registrationReady
  if (registry !== undefined) {
    const registration = enclave.registration
    if (registration === undefined) throw new GatewayError('GATEWAY_INTERNAL', { details: { reason: 'a registry needs an enclave built for a chain' } })
    const w = createRegistrationWorker({
      registry,
      evidence: registration.evidence,
      epochs: { current: () => ({ number: registration.epoch() }) },
      onRegistered: (e) => void registration.registered(e).catch((err: unknown) => server.log.error({ err }, 'registration not recorded in the attestation log')),
      logger: { info: (o, m) => server.log.info(o, m), warn: (o, m) => server.log.warn(o, m) },
    })
    registration.onEpochChange(() => w.epochChanged())
    worker = w
    registrationReady = () => w.status().ready
  }
  const server = buildServer({ enclave, config, ...(logger ? { logger } : {}), ...(registrationReady ? { registrationReady } : {}), ...(log ? { log } : {}) })
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

  // Register only what is ready: the first registration waits for the enclave's own evidence (and GPU gate).
  let readyTimer: NodeJS.Timeout | undefined
  if (worker !== null) {
    const w = worker
    const startWhenReady = () => {
      if (enclave.status().ready) return w.start()
      readyTimer = setTimeout(startWhenReady, readyPollMs)
      readyTimer.unref()
    }
    startWhenReady()
  }

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
      clearTimeout(readyTimer)
      await worker?.stop()
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
  return { server, address: { host: config.listen.host, port: bound.port }, shutdown, closed, registration: worker }
}
