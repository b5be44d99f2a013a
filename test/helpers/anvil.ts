/**
 * A real anvil (the @foundry-rs/anvil npm package) for tests: started on a
 * free 127.0.0.1 port, stopped by the test's teardown, with viem clients for
 * its default funded accounts.
 *
 * Anvil's default hardfork has the EIP-7951 P256VERIFY precompile at 0x100,
 * which the registry relies on. Readiness is detected from anvil's own
 * "Listening on" line, not from a timer, so no wall-clock bound enters a test.
 */
import {
  createPublicClient,
  createTestClient,
  createWalletClient,
  defineChain,
  http,
  type Account,
  type Chain,
  type PublicClient,
  type TestClient,
  type Transport,
  type WalletClient,
} from 'viem'
import { mnemonicToAccount } from 'viem/accounts'
import { ANVIL_MNEMONIC, spawnAnvil, type AnvilProcessOptions } from '../../deploy/local/anvil.ts'

export type AnvilOptions = Omit<AnvilProcessOptions, 'port'>

export interface Anvil {
  readonly rpcUrl: string
  readonly chainId: number
  readonly chain: Chain
  readonly publicClient: PublicClient<Transport, Chain>
  readonly testClient: TestClient<'anvil', Transport, Chain>
  /** One wallet client per funded account, same order as `accounts`. */
  readonly walletClients: readonly WalletClient<Transport, Chain, Account>[]
  readonly walletClient: WalletClient<Transport, Chain, Account>
  readonly accounts: readonly Account[]
  stop(): Promise<void>
}

/** The teardown hook of a tap test (only what this helper uses). */
export interface Teardownable {
  teardown(fn: () => unknown): void
}

/** Start anvil for test `t`; it is stopped at `t`'s teardown (or earlier by `stop()`). */
export async function startAnvil(t: Teardownable, options: AnvilOptions = {}): Promise<Anvil> {
  const proc = await spawnAnvil(options)
  t.teardown(proc.stop)
  const { rpcUrl, chainId } = proc
  const chain = defineChain({
    id: chainId,
    name: 'anvil',
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  })
  const transport = http(rpcUrl, { retryCount: 0 })
  const accounts = Array.from({ length: proc.accounts }, (_, i) => mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: i }))
  const walletClients = accounts.map((account) => createWalletClient({ account, chain, transport }))
  return {
    rpcUrl,
    chainId,
    chain,
    publicClient: createPublicClient({ chain, transport, pollingInterval: 50 }) as PublicClient<Transport, Chain>,
    testClient: createTestClient({ chain, transport, mode: 'anvil' }),
    walletClients,
    walletClient: walletClients[0]!,
    accounts,
    stop: proc.stop,
  }
}
