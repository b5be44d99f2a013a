/**
 * The whole system on one machine (`npm start`, `cgw start`): a local
 * anvil, the registry and collateral store deployed on it for a development
 * root, the gateway on the development TEE (with a development GPU) in front
 * of an engine, registered on-chain by its own registration worker, its
 * attestation log anchored there, and the enterprise proxy verifying it
 * before it forwards anything.
 *
 * Every part is the production code path; only the roots differ. The
 * development roots are made here, so the registry can be deployed for
 * them before the enclave exists, and the policy the proxy verifies with
 * pins them by fingerprint (no bypass: an Intel- or NVIDIA-rooted policy
 * would refuse this gateway).
 *
 * The engine: ENGINE_URL (any OpenAI-compatible server), else MODEL_PATH (a
 * GGUF for the embedded llama.cpp engine), else a tiny GGUF with random
 * weights generated on the spot, so the system runs end to end on a fresh
 * machine with nothing downloaded. Files (policy, dev roots, collateral,
 * log, audit) go under `dir`.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'
import { randomBytes } from 'node:crypto'
import { createPublicClient, createWalletClient, defineChain, http, type Address, type Hex } from 'viem'
import { mnemonicToAccount } from 'viem/accounts'
import { createDevGpuRootCa, createDevRootCa, type DevGpuRootCa, type DevRootCa } from '../../attestation/dev/index.ts'
import type { QuoteCollateralV3 } from '../../attestation/pcs/types.ts'
import type { TdReport } from '../../attestation/tdx/abi/quote.ts'
import { parseQuote } from '../../attestation/tdx/abi/quote.ts'
import { computeWorkloadId } from '../../attestation/workload.ts'
import { collateralSubmission, createPcsClient, quotePckChain } from '../../contracts/client/collateral.ts'
import { deployRegistry } from '../../contracts/client/deploy.ts'
import { createRegistryWriter, type RegistryWriterClient } from '../../contracts/client/registry.ts'
import type { AnyPublicClient, AnyWalletClient } from '../../contracts/client/tx.ts'
import { createEnclaveFromConfig } from '../../enclave/index.ts'
import { generateTinyModel } from '../../enclave/engines/gguf/index.ts'
import { registryAnchorer } from '../../gateway/chain.ts'
import { parseGatewayConfig } from '../../gateway/config.ts'
import { startGateway, type RunningGateway } from '../../gateway/main.ts'
import { parseProxyConfig } from '../../gateway/proxy/config.ts'
import { startProxy, type RunningProxy } from '../../gateway/proxy/main.ts'
import { ANVIL_MNEMONIC, freePort, spawnAnvil, type AnvilProcess } from './anvil.ts'

export interface LocalSystemOptions {
  /** Where the system writes its files; default `.cgw/local` in the working directory. */
  readonly dir?: string
  /** Environment: ENGINE_URL, MODEL_PATH, MODEL (the served model's name). Default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Proxy port; default 8787 (0: any free port). */
  readonly proxyPort?: number
  /** Gateway port; default 8080 (0: any free port). */
  readonly gatewayPort?: number
  /** Log level of the gateway and the proxy; default "warn". */
  readonly logLevel?: 'info' | 'warn' | 'error' | 'silent'
  /** Seconds per key epoch; default 3600. */
  readonly epochSeconds?: number
  /** Progress lines. */
  readonly progress?: (line: string) => void
}

export interface LocalSystem {
  readonly rpcUrl: string
  readonly registry: Address
  readonly gatewayUrl: string
  readonly proxyUrl: string
  readonly model: string
  /** The client policy the proxy verifies with (usable by `cgw verify` and `cgw chat`). */
  readonly policyFile: string
  readonly auditFile: string
  readonly logDir: string
  readonly gateway: RunningGateway
  readonly proxy: RunningProxy
  /** The development roots the registry trusts (another dev-TEE gateway issued under them registers here too). */
  readonly devRoots: { readonly tdx: DevRootCa; readonly gpu: DevGpuRootCa }
  /** The registry as its owner (allow-list, parameters): anvil's first account. */
  readonly owner: RegistryWriterClient
  /** Stop proxy, gateway and chain, in that order. Idempotent. */
  stop(): Promise<void>
}

/** Engine section and model name from the environment (see the module header). */
async function engineFor(env: Readonly<Record<string, string | undefined>>, dir: string): Promise<{ engine: Record<string, unknown>; model: string }> {
  if (env.ENGINE_URL) {
    const url = env.ENGINE_URL.replace(/\/+$/, '')
    let model = env.MODEL
    if (!model) {
      const res = await fetch(`${url}/v1/models`)
      const body = (await res.json()) as { data?: { id?: unknown }[] }
      const id = body.data?.[0]?.id
      if (!res.ok || typeof id !== 'string') throw new Error(`ENGINE_URL ${url} lists no model: set MODEL`)
      model = id
    }
    return { engine: { url }, model }
  }
  const modelPath = env.MODEL_PATH ? resolve(env.MODEL_PATH) : (await generateTinyModel({ path: join(dir, 'tiny.gguf') })).path
  const model = env.MODEL ?? (env.MODEL_PATH ? basename(modelPath).replace(/\.gguf$/i, '') : 'cgw-tiny')
  return { engine: { kind: 'llama', modelPath, modelId: model, contextSize: 2048, maxConcurrency: 2 }, model }
}

export async function startLocalSystem(o: LocalSystemOptions = {}): Promise<LocalSystem> {
  const dir = resolve(o.dir ?? join('.cgw', 'local'))
  const env = o.env ?? process.env
  const say = o.progress ?? (() => {})
  const logLevel = o.logLevel ?? 'warn'
  await mkdir(dir, { recursive: true })
  const stops: (() => Promise<void>)[] = []
  const stop = async () => {
    while (stops.length > 0) await stops.pop()!().catch(() => {})
  }
  try {
    // 1. The chain.
    const anvil: AnvilProcess = await spawnAnvil()
    stops.push(anvil.stop)
    say(`chain      anvil at ${anvil.rpcUrl} (chain id ${anvil.chainId})`)
    const chain = defineChain({ id: anvil.chainId, name: 'anvil', nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [anvil.rpcUrl] } } })
    const transport = http(anvil.rpcUrl, { retryCount: 0 })
    const publicClient = createPublicClient({ chain, transport, pollingInterval: 100 }) as AnyPublicClient
    const owner = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 0 })
    const ownerWallet = createWalletClient({ account: owner, chain, transport }) as AnyWalletClient

    // 2. Development roots, made here so the registry can trust them before the enclave exists.
    const now = new Date()
    const tdxRoot = createDevRootCa({ now: new Date(now.getTime() - 86_400_000) })
    const gpuRoot = createDevGpuRootCa({ now: new Date(now.getTime() - 86_400_000) })
    await writeFile(join(dir, 'dev-tdx-root.pem'), tdxRoot.rootCertificatePem)
    await writeFile(join(dir, 'dev-gpu-root.pem'), gpuRoot.rootCertificatePem)

    // 3. Contracts: the registry and its collateral store, for the dev root.
    const deployed = await deployRegistry({ publicClient, walletClient: ownerWallet, target: { kind: 'development', rootCertDer: tdxRoot.rootCertificateDer }, owner: owner.address })
    const registry = await createRegistryWriter({ publicClient, walletClient: ownerWallet, address: deployed.registry, allowDevelopment: true })
    say(`contracts  AttestationRegistry ${deployed.registry}, PcsCollateral ${deployed.pcs}`)

    // 4. The gateway's enclave, on the dev TEE with a dev GPU, built for that chain.
    const { engine, model } = await engineFor(env, dir)
    // The URL goes on-chain before the gateway listens, so port 0 means "a free port, found now".
    const gatewayPort = o.gatewayPort === 0 ? await freePort() : (o.gatewayPort ?? 8080)
    const gatewayUrl = `http://127.0.0.1:${gatewayPort}`
    const logDir = join(dir, 'log')
    const gatewayConfig = parseGatewayConfig({
      listen: { host: '127.0.0.1', port: gatewayPort },
      logLevel,
      enclave: { tee: 'dev', gpu: 'dev', engine, epochSeconds: o.epochSeconds ?? 3600, graceSeconds: Math.min(300, o.epochSeconds ?? 3600), log: { dir: logDir }, devRootsOut: dir },
    })
    // The transaction key (anvil's second account) only pays gas; the enclave's own keys sign what matters.
    const operator = createWalletClient({ account: mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 1 }), chain, transport }) as AnyWalletClient
    const operatorRegistry = await createRegistryWriter({ publicClient, walletClient: operator, address: deployed.registry, allowDevelopment: true })
    const enclave = await createEnclaveFromConfig(gatewayConfig.enclave ?? {}, gatewayConfig, {
      chain: { chainId: registry.chainId, registry: registry.address, model, url: gatewayUrl, anchorer: registryAnchorer(operatorRegistry), anchorPeriodMs: 60_000 },
      devRoots: { tdx: tdxRoot, gpu: gpuRoot },
    })
    // Closed on any failure before the gateway owns it (its timers and the llama engine would keep the
    // process alive); once the gateway's shutdown closed it, this second close does nothing.
    stops.push(() => enclave.close())

    // 5. On-chain: the dev collateral (the quote's PCK chain included) and this workload for the model,
    //    read from a quote once the enclave's own evidence (and its collateral in the log) exists.
    await waitFor('the enclave to attest itself', () => enclave.status().ready, () => null)
    const probe = await enclave.attest(new Uint8Array(randomBytes(32)))
    const quote = new Uint8Array(Buffer.from(probe.quote, 'base64'))
    // The enclave's dev collateral (what a PCS would serve for this platform), also what the proxy verifies with.
    const collateral = JSON.parse(await readFile(join(dir, 'dev-collateral.json'), 'utf8')) as QuoteCollateralV3
    await createPcsClient({ publicClient, walletClient: ownerWallet, address: deployed.pcs }).submitCollateral(collateralSubmission(collateral, [quotePckChain(quote)]))
    const td = parseQuote(quote).body.report as TdReport
    const workloadId: Hex = computeWorkloadId({ mrTd: td.mrTd, mrConfigId: td.mrConfigId, mrOwner: td.mrOwner, mrOwnerConfig: td.mrOwnerConfig, rtmrs: td.rtmrs })
    await registry.setWorkload(model, workloadId, true)
    say(`allow-list ${model} → workload ${workloadId}`)

    // 6. The gateway: serves, registers itself once its evidence exists, anchors its log.
    const gateway = await startGateway(gatewayConfig, { enclave, registry: operatorRegistry, log: { dataDir: logDir }, handleSignals: false })
    stops.push(() => gateway.shutdown('local system stopping'))
    say(`gateway    ${gatewayUrl} (dev TEE + dev GPU, model ${model})`)
    await waitFor('the gateway to register', () => gateway.registration?.status().ready === true, () => gateway.registration?.status().lastError ?? null)
    say(`registered enclave ${gateway.registration!.status().enclaveId} in tx ${gateway.registration!.status().txHash}`)

    // 7. The proxy, verifying before it forwards: dev roots pinned, registry required.
    const policyFile = join(dir, 'policy.json')
    await writeFile(
      policyFile,
      `${JSON.stringify(
        {
          version: 1,
          description: 'cgw start: accepts this machine\u2019s development gateway only (dev roots pinned by fingerprint)',
          quote: {
            version: 1,
            trustRoot: { dev: tdxRoot.rootFingerprint },
            tdx: { acceptedTcbStatuses: ['UpToDate'], maxCollateralAgeSeconds: 7 * 86_400, mrTd: 'any', rtmr0: 'any', rtmr1: 'any', rtmr2: 'any', rtmr3: 'any', mrConfigId: 'any', mrOwner: 'any', mrOwnerConfig: 'any' },
          },
          gpu: { required: true, trustRoot: { dev: gpuRoot.rootFingerprint }, count: 1, driverVersions: 'any', vbiosVersions: 'any' },
          registry: { required: true, chainId: anvil.chainId, address: deployed.registry, rpcUrls: [anvil.rpcUrl], matchWorkloadId: true },
          collateral: { file: 'dev-collateral.json' },
          maxEvidenceAgeSeconds: 3600,
          devRoots: { tdx: 'dev-tdx-root.pem', gpu: 'dev-gpu-root.pem' },
        },
        null,
        2,
      )}\n`,
    )
    const auditFile = join(dir, 'audit.jsonl')
    const proxyConfig = parseProxyConfig(
      { listen: { host: '127.0.0.1', port: o.proxyPort ?? 8787 }, policy: policyFile, models: { [model]: { discover: true } }, audit: { file: auditFile }, logLevel },
      { baseDir: dir },
    )
    const { viemRegistryFactory } = await import('../../gateway/client/viem-registry.ts')
    const proxy = await startProxy(proxyConfig, { client: { registryFactory: viemRegistryFactory({ allowDevelopment: true }) } })
    stops.push(() => proxy.close())
    say(`proxy      ${proxy.url} (OpenAI API; verifies before it forwards; audit ${auditFile})`)

    return { rpcUrl: anvil.rpcUrl, registry: deployed.registry, gatewayUrl, proxyUrl: proxy.url, model, policyFile, auditFile, logDir, gateway, proxy, devRoots: { tdx: tdxRoot, gpu: gpuRoot }, owner: registry, stop }
  } catch (e) {
    await stop()
    throw e
  }
}

/** Poll `done` until true; fail with what `error` last reported after a minute. */
async function waitFor(what: string, done: () => boolean, error: () => unknown, limitMs = 60_000): Promise<void> {
  const start = Date.now()
  while (!done()) {
    if (Date.now() - start > limitMs) throw new Error(`waited ${limitMs / 1000} s for ${what}: ${JSON.stringify(error())}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
