/**
 * The canary test for the proxy: canary strings go in through every channel
 * an internal caller controls — prompts (chat, completions, embeddings,
 * streamed or not), the model name, the API key header, query strings,
 * malformed and oversized bodies — on success and on each kind of failure
 * (verification refused, engine error echoing the prompt, tampered answer).
 * None may come out in a log line (pino at trace, through the redaction),
 * stdout/stderr, the audit file or any other file; nor may the completion
 * text. A control run proves the scan finds a canary that does leak.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import OpenAI from 'openai'
import { pino } from 'pino'
import { request } from 'undici'
import { createClient } from '../gateway/client/client.ts'
import { loadClientPolicy, loadPolicyRoots } from '../gateway/client/policy.ts'
import { gatewayLoggerOptions } from '../gateway/plugins/logging.ts'
import { openAuditLog } from '../gateway/proxy/audit.ts'
import { parseProxyConfig } from '../gateway/proxy/config.ts'
import { buildProxy } from '../gateway/proxy/server.ts'
import { startBitFlipRelay } from './helpers/bit-flip-relay.ts'
import { canaryEncodings } from './helpers/canary.ts'
import { devPolicyDocument, devWorld, startDevProvider, writePolicy } from './helpers/dev-provider.ts'
import { expectedTokens } from './helpers/engine-server.ts'

const CANARY = 'CANARY-proxy-5d1e77b0'

function leaks(text: string, canaries: readonly string[]): string[] {
  const found: string[] = []
  const lower = text.toLowerCase()
  for (const c of canaries) {
    for (const [encoding, form] of Object.entries(canaryEncodings(c))) {
      const hay = encoding === 'hex' || encoding === 'lowercase' ? lower : text
      if (form.length > 0 && hay.includes(encoding === 'hex' ? form.toLowerCase() : form)) found.push(`${c}:${encoding}`)
    }
  }
  return found
}

function capture(stream: NodeJS.WriteStream): { text(): string; restore(): void } {
  const original = stream.write.bind(stream)
  const parts: string[] = []
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    parts.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'))
    return (original as (...a: unknown[]) => boolean)(chunk, ...rest)
  }) as typeof stream.write
  return { text: () => parts.join(''), restore: () => void (stream.write = original) }
}

async function runScenario(t: Test, scenario: (ctx: { openai: OpenAI; url: string; log: pino.Logger }) => Promise<void>) {
  const world = await devWorld(t)
  const good = await startDevProvider(t, world)
  const refused = await startDevProvider(t, world, { measurements: { mrTd: new Uint8Array(48).fill(5) } })
  const tampered = await startDevProvider(t, world)
  tampered.engine.knobs.models = ['tampered-model']
  const relay = await startBitFlipRelay(tampered.url, { flipAt: 300 })
  t.teardown(() => relay.close())
  const dir = await mkdtemp(join(tmpdir(), 'cgw-proxy-canary-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const policyPath = await writePolicy(world, devPolicyDocument(world, {}, { mrTd: ['00'.repeat(48)] }))
  const config = parseProxyConfig({
    listen: { host: '127.0.0.1', port: 0 },
    policy: policyPath,
    models: {
      'test-model': { providers: [good.url] },
      'refused-model': { providers: [refused.url] },
      'tampered-model': { providers: [{ url: tampered.url, relay: relay.url }] },
    },
    apiKeys: ['sk-canary-test-key'],
    limits: { bodyLimitBytes: 4096 },
    audit: { file: join(dir, 'audit.jsonl') },
    logLevel: 'trace',
  })
  const logFile = join(dir, 'proxy.log')
  const destination = pino.destination({ dest: logFile, sync: true })
  const logger = pino(gatewayLoggerOptions('trace'), destination)
  const audit = await openAuditLog(config.audit.file)
  const policy = await loadClientPolicy(policyPath)
  const relays = new Map([[tampered.url, relay.url]])
  const client = createClient({ policy, roots: await loadPolicyRoots(policy), onVerification: (r) => audit.verification(r), relay: (u) => relays.get(u) })
  const app = buildProxy({ config, client, audit, logger })
  const stdout = capture(process.stdout)
  const stderr = capture(process.stderr)
  try {
    await app.listen({ host: '127.0.0.1', port: 0 })
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
    const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-canary-test-key', maxRetries: 0 })
    await scenario({ openai, url, log: logger })
  } finally {
    await app.close()
    await client.close()
    await audit.close()
    destination.flushSync()
    destination.end()
    stdout.restore()
    stderr.restore()
  }
  const files: Record<string, string> = {}
  for (const name of await readdir(dir)) files[name] = await readFile(join(dir, name), 'utf8')
  return { files, stdout: stdout.text(), stderr: stderr.text(), engineSaw: good.engine.stats.log.some((r) => r.body.includes(CANARY)) }
}

const ignore = (p: Promise<unknown>) => p.then(() => undefined, () => undefined)

t.test('no canary from any input channel in logs, audit file, stdout/stderr', async (t) => {
  const completion = expectedTokens(`${CANARY} chat`, 8).join('')
  const result = await runScenario(t, async ({ openai, url }) => {
    const msg = (s: string) => [{ role: 'user' as const, content: s }]
    let streamed = ''
    for await (const c of await openai.chat.completions.create({ model: 'test-model', messages: msg(`${CANARY} chat`), stream: true })) streamed += c.choices[0]?.delta?.content ?? ''
    t.equal(streamed, completion, 'the caller got the completion')
    await openai.chat.completions.create({ model: 'test-model', messages: msg(`${CANARY} chat`) })
    await openai.completions.create({ model: 'test-model', prompt: CANARY })
    await openai.embeddings.create({ model: 'test-model', input: CANARY })
    await ignore(openai.chat.completions.create({ model: `model-${CANARY}`, messages: msg(CANARY) }))
    await ignore(openai.chat.completions.create({ model: 'refused-model', messages: msg(CANARY) }))
    await ignore(openai.chat.completions.create({ model: 'tampered-model', messages: msg(CANARY), stream: true }).then(async (s) => {
      for await (const _ of s);
    }))
    await ignore(openai.chat.completions.create({ model: 'test-model', messages: msg(CANARY.repeat(300)) }))
    const bad = new OpenAI({ baseURL: `${url}/v1`, apiKey: CANARY, maxRetries: 0 })
    await ignore(bad.chat.completions.create({ model: 'test-model', messages: msg(CANARY) }))
    for (const body of [`{"model": "${CANARY}"`, `{"messages": "${CANARY}"}`, `${CANARY}`]) {
      await request(`${url}/v1/chat/completions?q=${CANARY}`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', authorization: 'Bearer sk-canary-test-key', 'x-prompt': CANARY },
      }).then((r) => r.body.dump())
    }
    await request(`${url}/${CANARY}?q=${CANARY}`, { headers: { authorization: `Bearer ${CANARY}` } }).then((r) => r.body.dump())
    await request(`${url}/${CANARY}?q=${CANARY}`, { headers: { authorization: 'Bearer sk-canary-test-key' } }).then((r) => r.body.dump())
    await request(`${url}/v1/models?q=${CANARY}`, { headers: { authorization: 'Bearer sk-canary-test-key', cookie: CANARY } }).then((r) => r.body.dump())
  })
  const logLines = result.files['proxy.log']!.split('\n').filter(Boolean)
  t.ok(logLines.length > 10, `the scenario logged (${logLines.length} lines)`)
  t.ok(result.files['audit.jsonl']!.includes('"type":"receipt"'), 'receipts were audited')
  for (const [name, text] of Object.entries({ ...result.files, stdout: result.stdout, stderr: result.stderr })) {
    t.same(leaks(text, [CANARY]), [], `no canary in ${name}`)
    t.notOk(text.includes(completion), `no completion text in ${name}`)
  }
  const outcomes = new Set(logLines.map((l) => (JSON.parse(l) as { outcome?: string }).outcome).filter(Boolean))
  t.comment([...outcomes].join(' '))
  for (const code of ['ok', 'PROXY_NO_PROVIDER', 'PROXY_VERIFICATION_FAILED', 'PROXY_RESPONSE_REJECTED', 'PROXY_BODY_TOO_LARGE', 'PROXY_UNAUTHORIZED', 'PROXY_BAD_REQUEST', 'PROXY_NOT_FOUND']) {
    t.ok(outcomes.has(code), `a request ended with ${code}`)
  }
  t.ok(result.engineSaw, 'while the engine did receive the plaintext (inside the CVM)')
})

t.test('control: the scan finds a canary that leaks', async (t) => {
  const result = await runScenario(t, async ({ log }) => {
    log.info(`careless ${CANARY}`)
  })
  t.not(leaks(result.files['proxy.log']!, [CANARY]).length, 0)
})
