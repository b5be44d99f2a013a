/**
 * Deploy the registry (PcsCollateral + AttestationRegistry) with viem to any
 * RPC endpoint, or to a local anvil.
 *
 *   RPC_URL=https://… DEPLOYER_PRIVATE_KEY=0x… REGISTRY_OWNER=0x<multisig> \
 *     node --import tsx deploy/contracts/deploy.ts                 # production (Intel root)
 *   node --import tsx deploy/contracts/deploy.ts --anvil --dev-root dev-root.der
 *                                                                   # development, local anvil
 *
 * Environment: RPC_URL, DEPLOYER_PRIVATE_KEY, REGISTRY_OWNER (required for
 * production: the multisig that will own the allow-list), MIN_TCB_STATUS
 * (default UpToDate), MAX_BLOCK_AGE (blocks, default 64),
 * REGISTRATION_TTL (seconds, default 86400). `--anvil` defaults RPC_URL to
 * http://127.0.0.1:8545 and the key to anvil's first well-known account.
 *
 * A production deployment pins Intel's SGX Root CA; `--dev-root` (DER or
 * PEM) makes a development deployment and is refused together with
 * `--production`. Prints one JSON object with the addresses.
 */
import { readFileSync } from 'node:fs'
import { createPublicClient, createWalletClient, defineChain, getAddress, http, isAddress, type Address, type Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { pemToDer } from '../../attestation/asn1/pem.ts'
import { deployRegistry, DEFAULT_MAX_BLOCK_AGE, DEFAULT_REGISTRATION_TTL, DEFAULT_MIN_TCB_STATUS, type DeployTarget } from '../../contracts/client/deploy.ts'
import { RegistryError } from '../../contracts/client/errors.ts'
import { REGISTRY_TCB_STATUSES, type RegistryTcbStatus } from '../../contracts/registry-types.ts'

/** Anvil's first default account (public, for local development only). */
const ANVIL_KEY_0 = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80'

export interface DeployPlan {
  readonly rpcUrl: string
  readonly privateKey: Hex
  readonly owner: Address | null
  readonly target: DeployTarget
  readonly minTcbStatus: RegistryTcbStatus
  readonly maxBlockAge: bigint
  readonly registrationTtl: bigint
}

function bad(field: string, reason: string): never {
  throw new RegistryError('REGISTRY_CONFIG_INVALID', { details: { field, reason } })
}

/** Read and check the deployment plan from the environment and arguments (no network). */
export function deployPlan(env: Record<string, string | undefined>, argv: readonly string[]): DeployPlan {
  const anvil = argv.includes('--anvil')
  const production = argv.includes('--production')
  const devRootAt = argv.indexOf('--dev-root')
  const devRootPath = devRootAt >= 0 ? argv[devRootAt + 1] : undefined
  if (devRootAt >= 0 && !devRootPath) bad('--dev-root', 'expects a file path')
  if (production && devRootPath) throw new RegistryError('REGISTRY_PRODUCTION_DEV_ROOT')
  let target: DeployTarget = { kind: 'production' }
  if (devRootPath) {
    const bytes = readFileSync(devRootPath)
    const text = bytes.toString('latin1')
    const der = text.includes('-----BEGIN') ? pemToDer(text)[0] : new Uint8Array(bytes)
    if (!der) bad('--dev-root', 'no certificate in the file')
    target = { kind: 'development', rootCertDer: der }
  }
  const rpcUrl = env.RPC_URL ?? (anvil ? 'http://127.0.0.1:8545' : bad('RPC_URL', 'required'))
  const privateKey = (env.DEPLOYER_PRIVATE_KEY ?? (anvil ? ANVIL_KEY_0 : bad('DEPLOYER_PRIVATE_KEY', 'required'))) as Hex
  if (!/^0x[0-9a-fA-F]{64}$/.test(privateKey)) bad('DEPLOYER_PRIVATE_KEY', 'expected 32 bytes of 0x hex')
  const ownerRaw = env.REGISTRY_OWNER
  if (ownerRaw !== undefined && !isAddress(ownerRaw)) bad('REGISTRY_OWNER', 'not an address')
  // A production registry is governed by a multisig chosen on purpose, never by whoever deployed it.
  if (target.kind === 'production' && ownerRaw === undefined) bad('REGISTRY_OWNER', 'required for a production deployment')
  const minTcbStatus = (env.MIN_TCB_STATUS ?? DEFAULT_MIN_TCB_STATUS) as RegistryTcbStatus
  if (!REGISTRY_TCB_STATUSES.includes(minTcbStatus)) bad('MIN_TCB_STATUS', `one of ${REGISTRY_TCB_STATUSES.join(', ')}`)
  const int = (v: string | undefined, d: bigint, field: string) => {
    if (v === undefined) return d
    if (!/^[1-9][0-9]*$/.test(v)) bad(field, 'expected a positive integer')
    return BigInt(v)
  }
  return {
    rpcUrl,
    privateKey,
    owner: ownerRaw === undefined ? null : getAddress(ownerRaw),
    target,
    minTcbStatus,
    maxBlockAge: int(env.MAX_BLOCK_AGE, DEFAULT_MAX_BLOCK_AGE, 'MAX_BLOCK_AGE'),
    registrationTtl: int(env.REGISTRATION_TTL, DEFAULT_REGISTRATION_TTL, 'REGISTRATION_TTL'),
  }
}

export async function runDeploy(plan: DeployPlan) {
  const account = privateKeyToAccount(plan.privateKey)
  const probe = createPublicClient({ transport: http(plan.rpcUrl) })
  const chainId = await probe.getChainId()
  const chain = defineChain({ id: chainId, name: `chain-${chainId}`, nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [plan.rpcUrl] } } })
  const publicClient = createPublicClient({ chain, transport: http(plan.rpcUrl) })
  const walletClient = createWalletClient({ account, chain, transport: http(plan.rpcUrl) })
  const deployed = await deployRegistry({
    publicClient,
    walletClient,
    target: plan.target,
    owner: plan.owner ?? account.address,
    minTcbStatus: plan.minTcbStatus,
    maxBlockAge: plan.maxBlockAge,
    registrationTtl: plan.registrationTtl,
  })
  return { chainId, ...deployed, owner: plan.owner ?? account.address, gasUsed: { pcs: String(deployed.gasUsed.pcs), registry: String(deployed.gasUsed.registry) }, blockNumber: String(deployed.blockNumber) }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  try {
    const out = await runDeploy(deployPlan(process.env, process.argv.slice(2)))
    console.log(JSON.stringify(out))
  } catch (e) {
    console.error(e instanceof RegistryError ? JSON.stringify(e.toJSON()) : e)
    process.exitCode = 1
  }
}
