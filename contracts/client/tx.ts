/**
 * One contract write as the registry client does it: send (viem estimates
 * gas first, so a revert surfaces with its custom error before anything is
 * broadcast), wait for the receipt, and turn any failure into a typed
 * RegistryError. The gas used is returned for the benchmark and callers.
 */
import type { Abi, Account, Address, Chain, Hex, PublicClient, TransactionReceipt, Transport, WalletClient } from 'viem'
import { RegistryError, registryErrorFrom } from './errors.ts'

export type AnyPublicClient = PublicClient<Transport, Chain | undefined>
export type AnyWalletClient = WalletClient<Transport, Chain | undefined, Account>

export interface SentTransaction {
  readonly txHash: Hex
  readonly receipt: TransactionReceipt
  readonly gasUsed: bigint
  readonly blockNumber: bigint
}

export async function sendContractTx(
  publicClient: AnyPublicClient,
  walletClient: AnyWalletClient,
  call: { address: Address; abi: Abi; functionName: string; args: readonly unknown[]; gas?: bigint },
): Promise<SentTransaction> {
  let txHash: Hex
  try {
    txHash = await walletClient.writeContract({
      address: call.address,
      abi: call.abi,
      functionName: call.functionName,
      args: call.args,
      account: walletClient.account,
      chain: walletClient.chain ?? null,
      ...(call.gas !== undefined ? { gas: call.gas } : {}),
    } as never)
  } catch (e) {
    throw registryErrorFrom(e)
  }
  let receipt: TransactionReceipt
  try {
    receipt = await publicClient.waitForTransactionReceipt({ hash: txHash })
  } catch (e) {
    throw registryErrorFrom(e)
  }
  if (receipt.status !== 'success') {
    throw new RegistryError('REGISTRY_REVERTED', { details: { txHash, functionName: call.functionName } })
  }
  return { txHash, receipt, gasUsed: receipt.gasUsed, blockNumber: receipt.blockNumber }
}
