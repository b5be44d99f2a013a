/**
 * Deploying a registry: PcsCollateral (pinned root; it creates its JSON
 * parser) then AttestationRegistry (owner, minimum TCB status, freshness
 * window, record lifetime). Used by deploy/contracts and by tests.
 *
 * A production deployment takes Intel's SGX Root CA and nothing else: asking
 * for one with any other root fails here, before a transaction is sent (and
 * the contract's constructor refuses it again). A development deployment is
 * asked for explicitly and is visible on-chain as `isDevelopment() == true`.
 */
import { p256 } from '@noble/curves/nist.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { concatHex, getAddress, toHex, type Address, type Hex } from 'viem'
import { INTEL_SGX_ROOT_CA } from '../../attestation/roots/trust-root.ts'
import { REGISTRY_TCB_STATUSES, type RegistryTcbStatus } from '../registry-types.ts'
import { attestationRegistryAbi, attestationRegistryBytecode } from '../artifacts/attestation-registry.ts'
import { pcsCollateralAbi, pcsCollateralBytecode } from '../artifacts/pcs-collateral.ts'
import { RegistryError, registryErrorFrom } from './errors.ts'
import type { AnyPublicClient, AnyWalletClient } from './tx.ts'

/** Defaults: UpToDate only; a block hash at most 64 blocks old; records live at most a day. */
export const DEFAULT_MIN_TCB_STATUS: RegistryTcbStatus = 'UpToDate'
export const DEFAULT_MAX_BLOCK_AGE = 64n
export const DEFAULT_REGISTRATION_TTL = 86_400n

export type DeployTarget =
  | { readonly kind: 'production' }
  | {
      readonly kind: 'development'
      /** The dev root CA certificate DER (attestation/dev createDevRootCa().rootCertificateDer). */
      readonly rootCertDer: Uint8Array
    }

export interface DeployRegistryOptions {
  readonly publicClient: AnyPublicClient
  readonly walletClient: AnyWalletClient
  readonly target: DeployTarget
  /** The owner of the allow-list and parameters: a multisig in production. */
  readonly owner: Address
  readonly minTcbStatus?: RegistryTcbStatus
  readonly maxBlockAge?: bigint
  readonly registrationTtl?: bigint
}

export interface DeployedRegistry {
  readonly pcs: Address
  readonly registry: Address
  readonly development: boolean
  readonly blockNumber: bigint
  readonly gasUsed: { readonly pcs: bigint; readonly registry: bigint }
}

function isIntelRoot(der: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(der), Buffer.from(INTEL_SGX_ROOT_CA.certificate.der)) === 0
}

async function deploy(o: DeployRegistryOptions, abi: readonly unknown[], bytecode: Hex, args: readonly unknown[]) {
  try {
    const hash = await o.walletClient.deployContract({ abi, bytecode, args, account: o.walletClient.account, chain: o.walletClient.chain ?? null } as never)
    const receipt = await o.publicClient.waitForTransactionReceipt({ hash })
    if (receipt.status !== 'success' || !receipt.contractAddress) throw new RegistryError('REGISTRY_REVERTED', { details: { hash } })
    return receipt
  } catch (e) {
    throw registryErrorFrom(e)
  }
}

/** EIP-7951 P256VERIFY. */
export const P256VERIFY_ADDRESS = '0x0000000000000000000000000000000000000100'

/**
 * Whether the chain verifies P-256 at 0x100: one known-good signature must
 * verify and its flipped copy must not. A registry on a chain without it
 * would refuse every quote; better to refuse the deployment.
 */
export async function hasP256Precompile(publicClient: AnyPublicClient): Promise<boolean> {
  const secret = sha256(new TextEncoder().encode('confidential-gateway/p256-precompile-probe'))
  const hash = sha256(new TextEncoder().encode('probe'))
  const sig = p256.sign(hash, secret, { prehash: false })
  const pub = p256.getPublicKey(secret, false)
  const input = (s: Uint8Array) => concatHex([toHex(hash), toHex(s), toHex(pub.subarray(1))])
  const bad = sig.slice()
  bad[5]! ^= 1
  try {
    const [good, wrong] = await Promise.all([
      publicClient.call({ to: P256VERIFY_ADDRESS, data: input(sig) }),
      publicClient.call({ to: P256VERIFY_ADDRESS, data: input(bad) }),
    ])
    return BigInt(good.data ?? '0x0') === 1n && (wrong.data === undefined || wrong.data === '0x' || BigInt(wrong.data) === 0n)
  } catch (e) {
    throw registryErrorFrom(e)
  }
}

export async function deployRegistry(o: DeployRegistryOptions): Promise<DeployedRegistry> {
  const development = o.target.kind === 'development'
  const root = o.target.kind === 'development' ? o.target.rootCertDer : INTEL_SGX_ROOT_CA.certificate.der
  if (development && isIntelRoot(root)) throw new RegistryError('REGISTRY_CONFIG_INVALID', { details: { reason: 'a development deployment takes a dev root' } })
  if (!development && !isIntelRoot(root)) throw new RegistryError('REGISTRY_PRODUCTION_DEV_ROOT')
  const minTcb = REGISTRY_TCB_STATUSES.indexOf(o.minTcbStatus ?? DEFAULT_MIN_TCB_STATUS)
  if (minTcb < 0) throw new RegistryError('REGISTRY_CONFIG_INVALID', { details: { field: 'minTcbStatus' } })
  const owner = getAddress(o.owner)
  if (!(await hasP256Precompile(o.publicClient))) {
    throw new RegistryError('REGISTRY_CONFIG_INVALID', { details: { reason: 'the chain has no EIP-7951 P256VERIFY precompile at 0x100' } })
  }
  const pcs = await deploy(o, pcsCollateralAbi, pcsCollateralBytecode, [toHex(root), development])
  const registry = await deploy(o, attestationRegistryAbi, attestationRegistryBytecode, [
    pcs.contractAddress!,
    owner,
    minTcb,
    o.maxBlockAge ?? DEFAULT_MAX_BLOCK_AGE,
    o.registrationTtl ?? DEFAULT_REGISTRATION_TTL,
  ])
  return {
    pcs: getAddress(pcs.contractAddress!),
    registry: getAddress(registry.contractAddress!),
    development,
    blockNumber: registry.blockNumber,
    gasUsed: { pcs: pcs.gasUsed, registry: registry.gasUsed },
  }
}
