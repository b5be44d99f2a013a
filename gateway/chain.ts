/**
 * The gateway's chain connection, built from the config's `chain` section:
 * a registry writer (contracts/client) over the listed RPC URLs with
 * fallback, the enclave's chain options (receipt domain, model and URL for
 * registration, the checkpoint anchorer), and the registration worker.
 *
 * The chain id the config names must be the chain the RPC answers for, and
 * a registry deployed with the development root is refused unless the
 * config says `allowDevelopment` — a production gateway pointed at a dev
 * registry by mistake would otherwise register happily.
 */
import { hostname } from 'node:os'
import { createPublicClient, createWalletClient, defineChain, fallback, http, type Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { createRegistryWriter, type RegistryWriterClient } from '../contracts/client/registry.ts'
import type { AnyPublicClient, AnyWalletClient } from '../contracts/client/tx.ts'
import type { CheckpointAnchorer } from '../enclave/log/anchor-worker.ts'
import type { EnclaveChainOptions } from '../enclave/index.ts'
import type { ChainConfig } from './config.ts'
import { GatewayConfigError } from './errors.ts'

export interface GatewayChain {
  readonly registry: RegistryWriterClient
  /** What createEnclaveFromConfig takes for this chain. */
  readonly enclave: EnclaveChainOptions
}

/** The registry's anchor calls in the shape log/anchor-worker.ts needs. */
export function registryAnchorer(registry: RegistryWriterClient): CheckpointAnchorer {
  return {
    anchor: async (logId, size, root, signature) => ({ txHash: (await registry.anchorCheckpoint(logId, size, root, signature)).txHash }),
    // One storage read, not a scan of every anchor event from block 0 (public RPCs refuse such
    // log ranges). The contract keeps only the root's first 24 bytes; the worker reads `size` alone.
    latest: async (logId) => {
      const a = await registry.latestAnchor(logId)
      return a === null ? null : { size: a.size, root: a.rootPrefix }
    },
  }
}

/**
 * The URL to announce: `{hostname}` in the configured one becomes this
 * machine's host name, so replicas sharing one (measured) config each
 * announce their own stable name — a StatefulSet pod's host name is its pod
 * name. The URL itself is bound in the registration's REPORTDATA.
 */
export function announcedUrl(template: string, host: string = hostname()): string {
  const url = template.replaceAll('{hostname}', host)
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) {
    throw new GatewayConfigError('chain.url: not an http(s) URL once {hostname} is filled in', { details: { url } })
  }
  return url
}

/** Connect to the configured chain; `env` holds the transaction key under `privateKeyEnv`. */
export async function connectChain(config: ChainConfig, env: Readonly<Record<string, string | undefined>> = process.env, host: string = hostname()): Promise<GatewayChain> {
  const url = announcedUrl(config.url, host)
  const key = env[config.privateKeyEnv]
  if (key === undefined || !/^0x[0-9a-fA-F]{64}$/.test(key)) {
    throw new GatewayConfigError(`chain: environment variable ${config.privateKeyEnv} must hold the transaction key (0x + 64 hex digits)`, {
      details: { variable: config.privateKeyEnv },
    })
  }
  const chain = defineChain({
    id: config.chainId,
    name: `chain-${config.chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [...config.rpcUrls] } },
  })
  const transport = fallback(config.rpcUrls.map((url) => http(url, { retryCount: 1 })))
  const publicClient = createPublicClient({ chain, transport }) as AnyPublicClient
  const walletClient = createWalletClient({ account: privateKeyToAccount(key as Hex), chain, transport }) as AnyWalletClient
  const registry = await createRegistryWriter({ publicClient, walletClient, address: config.registry, allowDevelopment: config.allowDevelopment })
  if (registry.chainId !== BigInt(config.chainId)) {
    throw new GatewayConfigError(`chain: the RPC serves chain ${registry.chainId}, the config says ${config.chainId}`, {
      details: { configured: config.chainId, served: String(registry.chainId) },
    })
  }
  return {
    registry,
    enclave: {
      chainId: registry.chainId,
      registry: registry.address,
      model: config.model,
      url,
      ...(config.anchorPeriodSeconds > 0 ? { anchorer: registryAnchorer(registry), anchorPeriodMs: config.anchorPeriodSeconds * 1000 } : {}),
    },
  }
}
