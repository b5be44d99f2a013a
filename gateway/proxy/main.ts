/**
 * Run the proxy from its config: open the audit file, build the client from
 * the policy (its verification reports go to the audit file too), build the
 * server, listen, verify the configured providers ahead of the first
 * request, and stop cleanly (server, client, then the audit file, flushed).
 */
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { createClientFromPolicyFile, type ClientFromFileOptions, type ConfidentialClient } from '../client/client.ts'
import { normalizeProviderUrl } from '../client/client.ts'
import { openAuditLog, type AuditLog } from './audit.ts'
import type { ProxyConfig } from './config.ts'
import { createProviderPool } from './pool.ts'
import { buildProxy } from './server.ts'

export interface StartProxyOptions {
  /** Extra client options (registry readers or factory, collateral, clock, transport). */
  readonly client?: ClientFromFileOptions
  readonly logger?: Logger
  /** Verify the static providers before resolving. Default true. */
  readonly warm?: boolean
}

export interface RunningProxy {
  readonly server: FastifyInstance
  readonly client: ConfidentialClient
  readonly audit: AuditLog
  readonly url: string
  close(): Promise<void>
}

export async function startProxy(config: ProxyConfig, options: StartProxyOptions = {}): Promise<RunningProxy> {
  const audit = await openAuditLog(config.audit.file)
  const relays = new Map<string, string>()
  for (const route of config.models.values()) {
    if (route.kind === 'static') for (const p of route.providers) if (p.relay) relays.set(normalizeProviderUrl(p.url), p.relay)
  }
  let client: ConfidentialClient | undefined
  let server: FastifyInstance | undefined
  try {
    client = await createClientFromPolicyFile(config.policy, {
      relay: (url) => relays.get(url),
      onVerification: (report) => audit.verification(report),
      // Renew shortly before the end so that no request waits for a verification.
      refreshAheadMs: 60_000,
      ...options.client,
    })
    const pool = createProviderPool({ client, models: config.models, cooldownMs: config.limits.cooldownMs })
    server = buildProxy({ config, client, pool, audit, ...(options.logger ? { logger: options.logger } : {}) })
    await server.listen({ host: config.listen.host, port: config.listen.port })
    if (options.warm !== false) await pool.warm()
  } catch (e) {
    await server?.close().catch(() => undefined)
    await client?.close().catch(() => undefined)
    await audit.close().catch(() => undefined)
    throw e
  }
  const { port } = server.server.address() as AddressInfo
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host
  const s = server
  const c = client
  let closing: Promise<void> | undefined
  return {
    server: s,
    client: c,
    audit,
    url: `http://${host}:${port}`,
    close: () =>
      (closing ??= (async () => {
        await s.close()
        await c.close()
        await audit.close()
      })()),
  }
}
