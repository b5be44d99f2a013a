/**
 * The whole chain, on loopback with a real anvil: a dev-TEE enclave is
 * registered in the AttestationRegistry (its quote verified on-chain), then
 *
 *   openai → proxy → verify (TDX, binding, policy, registry record read
 *   through viem from anvil, behind a dead RPC endpoint first) → OHTTP →
 *   gateway → test engine → streamed answer → receipt checked →
 *   the audited receipt verified on-chain with AttestationRegistry.verifyReceipt.
 *
 * Clocks: the chain starts at a fixed genesis (test/helpers/dev-registry.ts),
 * so the enclave, the gateway and the client all run on that clock,
 * advancing with real time.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import OpenAI from 'openai'
import { createEnclave } from '../enclave/enclave.ts'
import { createHttpEngine } from '../enclave/engines/http.ts'
import { createDevQuoteProvider } from '../enclave/quote-providers/dev.ts'
import { receiptDomain, receiptFromJson, verifyReceipt, type ReceiptJson } from '../enclave/receipts.ts'
import { createRegistrationEvidence } from '../enclave/registration.ts'
import { createGatewayLogger } from '../gateway/plugins/logging.ts'
import { buildServer } from '../gateway/server.ts'
import { viemRegistryFactory } from '../gateway/client/viem-registry.ts'
import { parseProxyConfig } from '../gateway/proxy/config.ts'
import { startProxy } from '../gateway/proxy/main.ts'
import { devRegistry, MEASUREMENTS, MODEL } from './helpers/dev-registry.ts'

/** The registry fixture's quotes carry fixed RTMRs that no firmware log describes: serve none (the policy pins no events). */
const NO_EVENT_LOG = { read: async () => null }
import { startEngineServer, expectedTokens } from './helpers/engine-server.ts'
import { listenLocal, testConfig } from './helpers/fake-enclave.ts'

t.test('registered on anvil → proxy → gateway → engine → receipt verified on-chain', async (t) => {
  const f = await devRegistry(t)
  await f.syncClock()
  const base = f.clock
  const started = Date.now()
  const clock = () => base + (Date.now() - started)

  const engine = await startEngineServer({ models: [MODEL] })
  t.teardown(() => engine.close())
  const domain = receiptDomain({ chainId: f.registry.chainId, registry: f.registry.address })
  const enclave = await createEnclave({
    engine: createHttpEngine({ baseUrl: engine.url }),
    quotes: createDevQuoteProvider({ signer: f.signer, measurements: MEASUREMENTS }),
    eventLog: NO_EVENT_LOG,
    gpu: null,
    epochLengthMs: 3_600_000,
    graceMs: 60_000,
    now: clock,
    logPublicKey: f.logPublicKey,
    receiptDomain: domain,
  })
  t.teardown(() => enclave.close())
  const app = buildServer({ enclave, config: testConfig(), logger: createGatewayLogger('silent'), now: clock })
  t.teardown(() => app.close())
  const gatewayUrl = `http://127.0.0.1:${await listenLocal(app)}`

  const unregistered = await createEnclave({
    engine: createHttpEngine({ baseUrl: engine.url }),
    quotes: createDevQuoteProvider({ signer: f.signer, measurements: MEASUREMENTS }),
    eventLog: NO_EVENT_LOG,
    gpu: null,
    epochLengthMs: 3_600_000,
    graceMs: 60_000,
    now: clock,
    receiptDomain: domain,
  })
  t.teardown(() => unregistered.close())
  const app2 = buildServer({ enclave: unregistered, config: testConfig(), logger: createGatewayLogger('silent'), now: clock })
  t.teardown(() => app2.close())
  const unregisteredUrl = `http://127.0.0.1:${await listenLocal(app2)}`

  // Register the enclave's current epoch: its own key config and signing address, bound for a recent block.
  const bundle = await enclave.attest(crypto.getRandomValues(new Uint8Array(32)))
  const current = {
    number: BigInt(bundle.epoch),
    ohttpKey: { keyConfig: new Uint8Array(Buffer.from(bundle.keyConfig, 'base64')) },
    signingKey: { address: bundle.signingAddress },
    expiresAt: Date.parse(bundle.epochExpiresAt),
  }
  const evidence = createRegistrationEvidence({
    quotes: createDevQuoteProvider({ signer: f.signer, measurements: MEASUREMENTS }),
    gpu: null,
    epochs: { current: () => current },
    logPublicKey: f.logPublicKey,
    model: MODEL,
    url: gatewayUrl,
  })
  const block = await f.registry.freshnessBlock()
  const ev = await evidence({ blockHash: block.hash, blockNumber: block.number, chainId: f.registry.chainId, registry: f.registry.address })
  const cached = await f.registry.hasPckCert(ev.pckCertId)
  await f.registry.register({ quote: ev.quote, pckCertDer: cached ? null : ev.pckCertDer, pckCertId: ev.pckCertId, data: ev.data })
  t.equal((await f.registry.enclaveBySigner(bundle.signingAddress))?.url, gatewayUrl, 'registered')

  const dir = await mkdtemp(join(tmpdir(), 'cgw-anvil-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'root.pem'), f.ca.rootCertificatePem)
  await writeFile(join(dir, 'collateral.json'), JSON.stringify(f.collateral))
  await writeFile(
    join(dir, 'policy.json'),
    JSON.stringify({
      version: 1,
      quote: {
        version: 1,
        trustRoot: { dev: f.ca.rootFingerprint },
        tdx: {
          maxCollateralAgeSeconds: 86_400 * 2,
          mrTd: [Buffer.from(MEASUREMENTS.mrTd!).toString('hex')],
          rtmr0: 'any',
          rtmr1: 'any',
          rtmr2: 'any',
          rtmr3: 'any',
          mrConfigId: 'any',
          mrOwner: 'any',
          mrOwnerConfig: 'any',
        },
      },
      gpu: { required: false },
      registry: { required: true, chainId: f.anvil.chainId, address: f.registry.address, rpcUrls: ['http://127.0.0.1:1', f.anvil.rpcUrl], matchWorkloadId: true },
      collateral: { file: 'collateral.json' },
      maxEvidenceAgeSeconds: 600,
      devRoots: { tdx: 'root.pem' },
    }),
  )
  const config = parseProxyConfig(
    { listen: { host: '127.0.0.1', port: 0 }, policy: 'policy.json', models: { [MODEL]: { discover: true }, 'unregistered-model': { providers: [unregisteredUrl] } }, audit: { file: 'audit.jsonl' }, logLevel: 'silent' },
    { baseDir: dir },
  )
  const proxy = await startProxy(config, { client: { registryFactory: viemRegistryFactory({ allowDevelopment: true }), now: () => new Date(clock()) } })
  t.teardown(() => proxy.close())

  const openai = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: 'internal', maxRetries: 0 })
  let text = ''
  for await (const chunk of await openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'on-chain hello' }], stream: true })) {
    text += chunk.choices[0]?.delta?.content ?? ''
  }
  t.equal(text, expectedTokens('on-chain hello', 8).join(''), 'the answer came through')

  await proxy.audit.flush()
  const lines = (await readFile(join(dir, 'audit.jsonl'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
  const report = (lines.find((l) => l.type === 'verification' && (l.report as { provider: string }).provider === gatewayUrl) as { report: { ok: boolean; registry: { status: string; check: { chainId: string } } } }).report
  t.equal(report.ok, true)
  t.equal(report.registry.status, 'registered')
  t.equal(report.registry.check.chainId, String(f.anvil.chainId))
  const { fields, signature, domain: d } = receiptFromJson((lines.find((l) => l.type === 'receipt') as { receipt: ReceiptJson }).receipt)
  t.equal(d.chainId, f.registry.chainId, 'the receipt is in the registry’s domain')
  t.ok(await verifyReceipt(fields, signature, bundle.signingAddress, d), 'off-chain (viem)')
  const onChain = await f.registry.verifyReceipt(fields, signature)
  t.equal(onChain.signer.toLowerCase(), bundle.signingAddress.toLowerCase(), 'on-chain: AttestationRegistry.verifyReceipt names the live signer')
  t.equal(onChain.enclaveId, (await f.registry.enclaveBySigner(bundle.signingAddress))!.enclaveId)

  // A genuine enclave on the same platform, but not registered: refused before anything is sent.
  let refused: { code?: string | null; reason?: string } = {}
  try {
    await openai.chat.completions.create({ model: 'unregistered-model', messages: [{ role: 'user', content: 'must not be sent' }] })
  } catch (e) {
    if (e instanceof OpenAI.APIError) refused = { code: e.code, reason: (e.error as { reason?: string }).reason }
  }
  t.same(refused, { code: 'PROXY_VERIFICATION_FAILED', reason: 'CLIENT_NOT_REGISTERED' })
  t.equal(engine.stats.requests, 1, 'the engine saw only the registered enclave’s request')
})
