/**
 * The one place the client touches viem for the registry: a
 * RegistryReaderFactory that makes, per RPC URL, a reader backed by the
 * contracts' viem client (contracts/client/ `createRegistryClient`).
 *
 * The reader is lazy (the viem client is made on first use, and made again
 * after a failure) and checks that the RPC's chain is the one the policy
 * names before it answers anything: another chain is CLIENT_REGISTRY_MISMATCH
 * (details.field "chainId"), which the fallback reader (registry.ts) keeps
 * as such rather than calling the registry unavailable — an endpoint on the
 * wrong chain will not recover by waiting. `registryFactoryFor` picks the
 * options a given policy allows.
 */
import { createPublicClient, http, type Address, type Hex } from 'viem'
import type { RegistryReader } from '../../contracts/registry-types.ts'
import { createRegistryClient } from '../../contracts/client/registry.ts'
import { ClientError } from './errors.ts'
import type { ClientPolicy } from './policy.ts'
import type { RegistryReaderFactory } from './registry.ts'

export interface ViemRegistryFactoryOptions {
  readonly fromBlock?: bigint
  /**
   * Accept a registry deployed against a development root. Only for a
   * policy that itself names a dev root (the contracts client refuses such a
   * registry otherwise, REGISTRY_PRODUCTION_DEV_ROOT).
   */
  readonly allowDevelopment?: boolean
}

export function viemRegistryFactory(options: ViemRegistryFactoryOptions = {}): RegistryReaderFactory {
  return (rpcUrl, chain) => {
    let pending: Promise<RegistryReader> | undefined
    const get = (): Promise<RegistryReader> =>
      (pending ??= (async () => {
        const reader: RegistryReader = await createRegistryClient({
          publicClient: createPublicClient({ transport: http(rpcUrl) }) as never,
          address: chain.address,
          ...(options.fromBlock !== undefined ? { fromBlock: options.fromBlock } : {}),
          ...(options.allowDevelopment === true ? { allowDevelopment: true } : {}),
        })
        if (reader.chainId !== chain.chainId) {
          throw new ClientError('CLIENT_REGISTRY_MISMATCH', 'the RPC endpoint serves another chain than the policy names', {
            details: { field: 'chainId', policy: chain.chainId.toString(), rpc: reader.chainId.toString() },
          })
        }
        return reader
      })().catch((e: unknown) => {
        pending = undefined
        throw e
      }))
    return {
      chainId: chain.chainId,
      address: chain.address,
      enclaveBySigner: async (a: Address) => (await get()).enclaveBySigner(a),
      enclave: async (id: Hex) => (await get()).enclave(id),
      enclavesForModel: async (m: string) => (await get()).enclavesForModel(m),
      registrationsOf: async (a: Address) => (await get()).registrationsOf(a),
      checkpointAnchors: async (id: Hex) => (await get()).checkpointAnchors(id),
    }
  }
}

/**
 * The factory a command or the proxy uses for `policy`: a registry deployed
 * against a development root is read only for a policy that itself names a
 * dev root, so a production policy can never be satisfied by a dev registry.
 */
export function registryFactoryFor(policy: ClientPolicy): RegistryReaderFactory {
  return viemRegistryFactory({ allowDevelopment: policy.quote.trustRoot.kind === 'dev' })
}
