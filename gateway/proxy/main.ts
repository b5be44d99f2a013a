/**
 * Run the proxy from its config: open the audit file, build the client from
 * the policy (its verification reports go to the audit file too, and a
 * failed one — a background re-verification included — cools its provider
 * down in the pool at once), build the server, listen, verify the
 * configured providers ahead of the first request, and stop cleanly
 * (server — answers in flight get limits.shutdownGraceMs, lingering
 * connections are closed —, client, then the audit file, flushed).
 *
 * Relays go per request from the pool's entries (server.ts), so a provider
 * listed for two models with different relays uses the right one for each.
 * A caller that already read the policy passes it in (`policy`) rather than
 * have it read twice.
 */
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { createClient, createClientFromPolicyFile, type ClientFromFileOptions, type ConfidentialClient } from '../client/client.ts'
import { ClientError } from '../client/errors.ts'
import { loadPolicyRoots, type ClientPolicy } from '../client/policy.ts'
import { openAuditLog, type AuditLog } from './audit.ts'
import type { ProxyConfig } from './config.ts'
import { createProviderPool, type ProviderPool } from './pool.ts'
import { buildProxy } from './server.ts'

export interface StartProxyOptions {
  /** Extra client options (registry readers or factory, collateral, clock, transport). */
  readonly client?: ClientFromFileOptions
  /** `config.policy` already read (a caller that needed it first need not read it twice); default: read here. */
  readonly policy?: ClientPolicy
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
  let server: FastifyInstance | undefined
  // Told once; the code only (the errno text names the path, which is not secret, but codes are what operators alert on).
  const audit = await openAuditLog(config.audit.file, { onFailure: (reason) => server?.log.error({ code: 'PROXY_AUDIT_UNAVAILABLE', reason }, 'audit file unavailable: refusing requests') })
  let client: ConfidentialClient | undefined
  let pool: ProviderPool | undefined
  try {
    const { onVerification, ...clientOptions } = options.client ?? {}
    const settings: ClientFromFileOptions = {
      // Renew shortly before the end so that no request waits for a verification.
      refreshAheadMs: 60_000,
      ...clientOptions,
      onVerification: (report) => {
        audit.verification(report)
        if (!report.ok) pool?.failed(report.provider)
        onVerification?.(report)
      },
    }
    // The same as createClientFromPolicyFile, on the policy the caller read.
    client = options.policy
      ? createClient({ ...settings, policy: options.policy, roots: settings.roots ?? (await loadPolicyRoots(options.policy)) })
      : await createClientFromPolicyFile(config.policy, settings)
    const discovers = [...config.models.values()].some((r) => r.kind === 'discover')
    if (discovers && !client.policy.registry.required && clientOptions.registry === undefined) {
      throw new ClientError('CLIENT_CONFIG_INVALID', 'a model with "discover": true needs a policy that names a registry')
    }
    pool = createProviderPool({ client, models: config.models, cooldownMs: config.limits.cooldownMs })
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
