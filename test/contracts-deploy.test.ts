/**
 * deploy/contracts: the plan refuses a dev root for production and a
 * production deployment without a multisig owner; a development deployment
 * to a real anvil through the script is visibly development, and a client
 * refuses it unless told to accept development registries.
 */
import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createDevRootCa } from '../attestation/dev/index.ts'
import { deployPlan, runDeploy } from '../deploy/contracts/deploy.ts'
import { createRegistryClient } from '../contracts/client/registry.ts'
import { startAnvil } from './helpers/anvil.ts'

const ca = createDevRootCa({ seed: new Uint8Array(32).fill(3), now: new Date('2026-01-01T00:00:00Z') })
const dir = mkdtempSync(join(tmpdir(), 'cgw-deploy-'))
const devRoot = join(dir, 'dev-root.der')
writeFileSync(devRoot, ca.rootCertificateDer)
const KEY = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d'
const OWNER = '0x000000000000000000000000000000000000dEaD'

t.test('the plan fails closed', async (t) => {
  t.throws(() => deployPlan({ RPC_URL: 'http://x', DEPLOYER_PRIVATE_KEY: KEY, REGISTRY_OWNER: OWNER }, ['--production', '--dev-root', devRoot]), { code: 'REGISTRY_PRODUCTION_DEV_ROOT' })
  t.throws(() => deployPlan({ RPC_URL: 'http://x', DEPLOYER_PRIVATE_KEY: KEY }, []), { code: 'REGISTRY_CONFIG_INVALID' }, 'production needs REGISTRY_OWNER')
  t.throws(() => deployPlan({ DEPLOYER_PRIVATE_KEY: KEY, REGISTRY_OWNER: OWNER }, []), { code: 'REGISTRY_CONFIG_INVALID' }, 'RPC_URL required')
  t.throws(() => deployPlan({ RPC_URL: 'http://x', DEPLOYER_PRIVATE_KEY: KEY, REGISTRY_OWNER: OWNER, MIN_TCB_STATUS: 'Revoked' }, []), { code: 'REGISTRY_CONFIG_INVALID' })
  const plan = deployPlan({ RPC_URL: 'http://x', DEPLOYER_PRIVATE_KEY: KEY, REGISTRY_OWNER: OWNER }, ['--production'])
  t.equal(plan.target.kind, 'production')
  t.equal(plan.owner, OWNER)
})

t.test('a development deployment through the script, on anvil', async (t) => {
  const anvil = await startAnvil(t, { timestamp: 1_767_225_600n })
  const out = await runDeploy(deployPlan({ RPC_URL: anvil.rpcUrl }, ['--anvil', '--dev-root', devRoot]))
  t.equal(out.development, true)
  t.equal(out.chainId, anvil.chainId)
  await t.rejects(createRegistryClient({ publicClient: anvil.publicClient, address: out.registry }), { code: 'REGISTRY_PRODUCTION_DEV_ROOT' }, 'a client refuses a dev registry by default')
  const dev = await createRegistryClient({ publicClient: anvil.publicClient, address: out.registry, allowDevelopment: true })
  t.equal(await dev.isDevelopment(), true)
})

t.test('a writer from an RPC URL and key (the gateway configuration)', async (t) => {
  const anvil = await startAnvil(t, { timestamp: 1_767_225_600n })
  const out = await runDeploy(deployPlan({ RPC_URL: anvil.rpcUrl }, ['--anvil', '--dev-root', devRoot]))
  const { createRegistryWriterFromUrl } = await import('../contracts/client/registry.ts')
  const w = await createRegistryWriterFromUrl({ rpcUrl: anvil.rpcUrl, privateKey: KEY, address: out.registry, allowDevelopment: true })
  t.equal(w.chainId, BigInt(anvil.chainId))
  t.ok((await w.freshnessBlock()).number > 0n)
})

t.test('no deployment on a chain without P256VERIFY', async (t) => {
  const { hasP256Precompile, deployRegistry } = await import('../contracts/client/deploy.ts')
  const withIt = await startAnvil(t)
  t.equal(await hasP256Precompile(withIt.publicClient), true, "anvil's default hardfork has it")
  const without = await startAnvil(t, { args: ['--hardfork', 'cancun'] })
  t.equal(await hasP256Precompile(without.publicClient), false)
  await t.rejects(
    deployRegistry({ publicClient: without.publicClient, walletClient: without.walletClient, target: { kind: 'development', rootCertDer: ca.rootCertificateDer }, owner: OWNER }),
    { code: 'REGISTRY_CONFIG_INVALID' },
  )
})
