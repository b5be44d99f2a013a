/**
 * `npm start`'s system, exactly as `cgw start` brings it up
 * (deploy/local/system.ts): a real anvil with the registry deployed, the
 * gateway on the development TEE and a development GPU in front of the
 * embedded llama.cpp engine with a generated tiny GGUF, registered on-chain
 * by its own worker, and the proxy in front. The real `openai` package
 * talks to the proxy; the answer arrives, its receipt is in the proxy's
 * audit file and verifies on-chain, the gateway's attestation log replays
 * clean under `cgw audit`, and stopping leaves nothing running.
 */
import t from 'tap'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { createPublicClient, http } from 'viem'
import { startLocalSystem } from '../deploy/local/system.ts'
import { createRegistryClient } from '../contracts/client/registry.ts'
import { receiptFromJson, type ReceiptJson } from '../enclave/receipts.ts'
import { runAudit } from '../bin/commands/audit.ts'
import { runChat } from '../bin/commands/chat.ts'
import { verifyReceiptLogged } from '../gateway/client/receipt-proof.ts'
import { writeFile } from 'node:fs/promises'
import { mnemonicToAccount } from 'viem/accounts'
import { ANVIL_MNEMONIC } from '../deploy/local/anvil.ts'
import { connectChain } from '../gateway/chain.ts'
import type { ChainConfig } from '../gateway/config.ts'
import { runGateway } from '../bin/commands/gateway.ts'
import { createEnclaveFromConfig } from '../enclave/index.ts'
import { parseQuote, type TdReport } from '../attestation/tdx/abi/quote.ts'
import { computeWorkloadId } from '../attestation/workload.ts'
import { startEngineServer } from './helpers/engine-server.ts'

const codeOf = (e: unknown) => (e as { code?: string }).code

/** Poll until `f` gives a value (each test bounds itself through tap's timeout, not a clock). */
async function until<T>(f: () => T | undefined | Promise<T | undefined>): Promise<T> {
  for (;;) {
    const v = await f()
    if (v !== undefined) return v
    await new Promise((r) => setTimeout(r, 50))
  }
}

const dir = await mkdtemp(join(tmpdir(), 'cgw-local-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))

const system = await startLocalSystem({ dir, proxyPort: 0, gatewayPort: 0, logLevel: 'silent', env: {} })
t.teardown(() => system.stop())

t.test('the gateway registered itself on-chain and reports ready', async (t) => {
  const status = system.gateway.registration!.status()
  t.equal(status.ready, true)
  t.equal(status.state, 'registered')
  const ready = await fetch(`${system.gatewayUrl}/readyz`)
  t.equal(ready.status, 200)
  t.same(await ready.json(), { status: 'ready', epoch: status.epoch!.toString(), registration: 'registered' })
  const registry = await createRegistryClient({ publicClient: createPublicClient({ transport: http(system.rpcUrl) }) as never, address: system.registry, allowDevelopment: true })
  const records = await registry.enclavesForModel(system.model)
  t.equal(records.length, 1, 'discoverable by model')
  t.equal(records[0]!.url, system.gatewayUrl)
})

t.test('the openai package through the proxy: verified, encrypted, answered, receipted', async (t) => {
  const openai = new OpenAI({ baseURL: `${system.proxyUrl}/v1`, apiKey: 'local', maxRetries: 0 })
  const models = await openai.models.list()
  t.ok(models.data.some((m) => m.id === system.model), 'the model is listed')
  // A refusal names its code and reason (the proxy's OpenAI-style error): say them if it happens.
  const completion = await openai.chat.completions
    .create({ model: system.model, messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 8 })
    .catch((e: { error?: unknown }) => Promise.reject(new Error(`the proxy refused: ${JSON.stringify(e.error)}`)))
  t.equal(completion.object, 'chat.completion')
  t.type(completion.choices[0]?.message.content, 'string')
  let streamed = 0
  for await (const chunk of await openai.chat.completions.create({ model: system.model, messages: [{ role: 'user', content: 'Count' }], max_tokens: 8, stream: true })) {
    if (chunk.choices[0]?.delta?.content) streamed++
  }
  t.ok(streamed > 0, 'streamed tokens arrived')

  const lines = (await readFile(system.auditFile, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
  const report = lines.find((l) => l.type === 'verification') as { report: { ok: boolean; registry: { status: string } } } | undefined
  t.equal(report?.report.ok, true, 'the proxy verified the gateway first')
  t.equal(report?.report.registry.status, 'registered')
  const receipts = lines.filter((l) => l.type === 'receipt')
  t.equal(receipts.length, 2, 'one receipt per answer')
  const registry = await createRegistryClient({ publicClient: createPublicClient({ transport: http(system.rpcUrl) }) as never, address: system.registry, allowDevelopment: true })
  const { fields, signature } = receiptFromJson((receipts[0] as { receipt: ReceiptJson }).receipt)
  const onChain = await registry.verifyReceipt(fields, signature)
  t.equal(onChain.enclaveId, system.gateway.registration!.status().enclaveId, 'AttestationRegistry.verifyReceipt names the registered enclave')
})

t.test('the attestation log is served and holds the registration', async (t) => {
  const checkpoint = await fetch(`${system.gatewayUrl}/log/checkpoint`)
  t.equal(checkpoint.status, 200)
  const lines = (await checkpoint.text()).split('\n')
  t.match(lines[0], /^cgw\.log\//, 'a C2SP signed note from this log')
  t.ok(Number(lines[1]) >= 4, 'epoch, evidence, collateral and registration entries at least')
})

t.test('cgw chat proves its receipt is in the gateway\'s log; a receipt the log does not hold is refused', async (t) => {
  let out = ''
  const io = { out: (s: string) => void (out += s), err: (s: string) => void (out += s) }
  const code = await runChat([system.gatewayUrl, '--model', system.model, 'Say hello', '--policy', system.policyFile, '--max-tokens', '4', '--json'], io)
  t.equal(code, 0, out)
  const result = JSON.parse(out) as { receipt: ReceiptJson; logged: { index: number; checkpoint: string } | null }
  t.equal(result.logged?.index, Number(result.receipt.message.logIndex), 'the entry at the receipt\'s log index')

  const bundle = (await (await fetch(`${system.gatewayUrl}/v1/attestation?nonce=${'cd'.repeat(32)}`)).json()) as { logPublicKey: string }
  const logPublicKey = new Uint8Array(Buffer.from(bundle.logPublicKey, 'base64'))
  const receipt = receiptFromJson(result.receipt)
  const reason = (p: Promise<unknown>) => p.then(() => 'proven', (e: { code?: string; details?: { reason?: string } }) => `${e.code}/${e.details?.reason}`)
  t.equal(await reason(verifyReceiptLogged({ url: system.gatewayUrl, receipt, logPublicKey })), 'proven')
  const other = { ...receipt, fields: { ...receipt.fields, responseHash: `0x${'00'.repeat(32)}` as const } }
  t.equal(await reason(verifyReceiptLogged({ url: system.gatewayUrl, receipt: other, logPublicKey })), 'CLIENT_RECEIPT_NOT_LOGGED/another receipt')
  t.equal(await reason(verifyReceiptLogged({ url: system.gatewayUrl, receipt, logPublicKey: new Uint8Array(32).fill(1) })), 'CLIENT_RECEIPT_NOT_LOGGED/proof', 'not under the attested log key')
  const beyond = { ...receipt, fields: { ...receipt.fields, logIndex: 1_000_000n } }
  t.equal(await reason(verifyReceiptLogged({ url: system.gatewayUrl, receipt: beyond, logPublicKey })), 'CLIENT_RECEIPT_NOT_LOGGED/no proof')
})

t.test('cgw audit replays the gateway\'s log clean: every quote, receipt and registration', async (t) => {
  let out = ''
  const io = { out: (s: string) => void (out += s), err: (s: string) => void (out += s) }
  const code = await runAudit(
    [`${system.gatewayUrl}/log`, '--registry', system.registry, '--rpc', system.rpcUrl, '--dev-root', join(dir, 'dev-tdx-root.pem'), '--dev-gpu-root', join(dir, 'dev-gpu-root.pem'), '--state', join(dir, 'audit-state.json'), '--json'],
    io,
  )
  const report = JSON.parse(out) as { findings: { code: string }[] }
  t.same(report.findings.map((f) => f.code), [], 'no findings')
  t.equal(code, 0)
})

t.test('cgw gateway with a chain section: connects, registers itself, serves its log; bad chain settings refused', async (t) => {
  const key = `0x${Buffer.from(mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 2 }).getHdKey().privateKey!).toString('hex')}`
  const env = { TEST_GATEWAY_KEY: key }
  const chain: ChainConfig = {
    rpcUrls: ['http://127.0.0.1:1', system.rpcUrl], // the first is down: the fallback takes the second
    chainId: 31337,
    registry: system.registry,
    privateKeyEnv: 'TEST_GATEWAY_KEY',
    model: 'second-model',
    url: 'https://second.gateway.test',
    anchorPeriodSeconds: 3600,
    allowDevelopment: true,
  }
  t.equal(codeOf(await connectChain(chain, {}).catch((e: unknown) => e)), 'GATEWAY_CONFIG_INVALID', 'no key in the environment')
  t.equal(codeOf(await connectChain({ ...chain, chainId: 1 }, env).catch((e: unknown) => e)), 'GATEWAY_CONFIG_INVALID', 'the RPC serves another chain')
  t.equal(codeOf(await connectChain({ ...chain, allowDevelopment: false }, env).catch((e: unknown) => e)), 'REGISTRY_PRODUCTION_DEV_ROOT', 'a dev registry needs allowDevelopment')

  const engine = await startEngineServer()
  t.teardown(() => engine.close())
  const configFile = join(dir, 'second-gateway.json')
  await writeFile(
    configFile,
    JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent', enclave: { tee: 'dev', gpu: 'none', engine: { url: engine.url }, log: { dir: join(dir, 'second-log') } }, chain }),
  )
  const stop = new AbortController()
  let out = ''
  const io = { out: (s: string) => void (out += s), err: (s: string) => void (out += s) }
  process.env.TEST_GATEWAY_KEY = key
  t.teardown(() => void delete process.env.TEST_GATEWAY_KEY)
  const running = runGateway(['--config', configFile], io, (section, config, o) => createEnclaveFromConfig(section, config, { ...o, devRoots: { tdx: system.devRoots.tdx } }), stop.signal)
  t.teardown(() => stop.abort())
  const url = await until(() => out.match(/listening on (http:\/\/[\d.:]+)/)?.[1])
  // Its workload (RTMR3 holds its own config's hash) is allow-listed by the owner once its quote is seen.
  const quote = await until(async () => {
    const r = await fetch(`${url}/v1/attestation?nonce=${'ab'.repeat(32)}`)
    return r.ok ? ((await r.json()) as { quote: string }).quote : undefined
  })
  const td = parseQuote(new Uint8Array(Buffer.from(quote, 'base64'))).body.report as TdReport
  await system.owner.setWorkload('second-model', computeWorkloadId({ mrTd: td.mrTd, mrConfigId: td.mrConfigId, mrOwner: td.mrOwner, mrOwnerConfig: td.mrOwnerConfig, rtmrs: td.rtmrs }), true)
  const ready = await until(async () => {
    const r = await fetch(`${url}/readyz`)
    return r.ok ? ((await r.json()) as { registration: string }) : undefined
  })
  t.equal(ready.registration, 'registered', '/readyz waited for the registration')
  const records = await system.owner.enclavesForModel('second-model')
  t.same(records.map((r) => r.url), ['https://second.gateway.test'], 'registered under its model and announced URL')
  t.equal((await fetch(`${url}/log/checkpoint`)).status, 200, 'its log is served')
  stop.abort()
  t.equal(await running, 0, 'stopped cleanly')
})

t.test('stop stops everything', async (t) => {
  await system.stop()
  await t.rejects(fetch(`${system.proxyUrl}/v1/models`), 'the proxy is gone')
  await t.rejects(fetch(`${system.gatewayUrl}/healthz`), 'the gateway is gone')
  await t.rejects(fetch(system.rpcUrl, { method: 'POST', body: '{}' }), 'the chain is gone')
})
