/**
 * `cgw chat [gateway URL] --model NAME "prompt" [--relay URL] [--policy FILE] [--collateral FILE | --pcs URL] [--max-tokens N] [--json]`
 *
 * Verify the provider (the whole of `cgw verify`), send the prompt
 * encrypted to its attested key, print the answer as it streams in, and
 * print the receipt once it has checked out — and, when the quote binds a
 * transparency log key, once the gateway has proven the receipt is in that
 * log (gateway/client/receipt-proof.ts). Without a URL the provider
 * comes from the on-chain registry (the policy must name one); providers
 * are tried in the registry's order until one verifies.
 *
 * --model is required, with a URL too: the only other source of a model
 * name would be the gateway's /v1/models, which nothing attests (anyone on
 * the path can rewrite it), and letting it choose which model gets the
 * prompt is a decision the user did not make. The receipt then names the
 * model that was served, and must name the one asked for.
 *
 * --relay URL sends the encrypted request through an RFC 9458 relay
 * resource, so the provider never sees this machine's address (evidence is
 * still fetched from the provider directly). `{gateway}` in it is replaced
 * by the chosen provider's URL, percent-encoded. The relay sees only
 * ciphertext; one that alters it makes the answer fail its checks.
 *
 * The answer is on stdout as it arrives; the receipt follows it. A failure
 * after the first token (a tampered chunk, a bad receipt) ends the command
 * with its code on stderr and a non-zero exit: the text printed so far must
 * then not be trusted. Exit codes are those of `cgw verify`.
 */
import { parseArgs } from 'node:util'
import { normalizeProviderUrl, type ConfidentialClient } from '../../gateway/client/client.ts'
import { ClientError, codeInBody } from '../../gateway/client/errors.ts'
import type { VerifiedReceipt } from '../../gateway/client/receipt.ts'
import { verifyReceiptLogged } from '../../gateway/client/receipt-proof.ts'
import { reportOf } from '../../gateway/client/verify.ts'
import { EXIT } from '../exit-codes.ts'
import type { Io } from '../cgw.ts'
import { CLIENT_OPTIONS, clientFromPolicy, failureOfClient, policyFromArgs, renderVerificationReport, type ClientCommandDeps } from './verify.ts'

const USAGE = 'usage: cgw chat [gateway URL] --model NAME "prompt" [--relay URL] [--policy FILE] [--collateral FILE | --pcs URL] [--max-tokens N] [--json]\n'

/** The text of one SSE event of a chat completion stream ('' for anything else). */
function deltaOf(event: Uint8Array): string {
  const text = Buffer.from(event).toString('utf8')
  let out = ''
  for (const line of text.split(/\r?\n/)) {
    if (!line.startsWith('data:')) continue
    const data = line.slice(5).trim()
    if (data === '[DONE]') continue
    try {
      const v = JSON.parse(data) as { choices?: { delta?: { content?: unknown } }[] }
      const c = v.choices?.[0]?.delta?.content
      if (typeof c === 'string') out += c
    } catch {
      // not a JSON event: nothing to print
    }
  }
  return out
}

function renderReceipt(r: VerifiedReceipt): string {
  const f = r.fields
  return [
    '--- receipt (verified) ---',
    `signer          ${r.signer}`,
    `model           ${f.model}`,
    `epoch           ${f.epoch}`,
    `time            ${new Date(Number(f.time) * 1000).toISOString()}`,
    `log index       ${f.logIndex}`,
    `request hash    ${f.requestHash}`,
    `response hash   ${f.responseHash}`,
    `domain          chain ${r.domain.chainId}, ${r.domain.verifyingContract}`,
    `digest          ${r.digest}`,
    `signature       ${r.signature}`,
    '',
  ].join('\n')
}

export async function runChat(args: string[], io: Io, deps: ClientCommandDeps = {}): Promise<number> {
  let json = args.includes('--json')
  let client: ConfidentialClient | undefined
  let source = 'none'
  let started = false
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, model: { type: 'string' }, relay: { type: 'string' }, 'max-tokens': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    })
    if (values.help) {
      io.out(USAGE)
      return EXIT.OK
    }
    json = values.json === true
    const [first, second] = positionals
    const model = values.model
    if (model === undefined || model.length === 0) {
      throw new ClientError('CLIENT_CONFIG_INVALID', 'pass --model NAME: the gateway’s model list is not attested, so it does not choose the model')
    }
    let url: string | undefined
    let prompt: string
    if (positionals.length === 2) {
      url = first!
      prompt = second!
    } else if (positionals.length === 1) {
      prompt = first!
    } else {
      throw new ClientError('CLIENT_CONFIG_INVALID', 'expected [gateway URL] --model NAME and a prompt')
    }
    const relay = values.relay
    if (relay !== undefined) {
      try {
        normalizeProviderUrl(relay.replaceAll('{gateway}', 'x'))
      } catch (e) {
        throw new ClientError('CLIENT_CONFIG_INVALID', '--relay must be an http(s) URL', { cause: e })
      }
    }
    let maxTokens: number | undefined
    if (values['max-tokens'] !== undefined) {
      maxTokens = Number(values['max-tokens'])
      if (!Number.isSafeInteger(maxTokens) || maxTokens < 1) throw new ClientError('CLIENT_CONFIG_INVALID', '--max-tokens must be a positive integer')
    }
    const loaded = await policyFromArgs(values)
    source = loaded.source
    client = await clientFromPolicy(loaded.policy, deps)
    const candidates = url !== undefined ? [url] : await client.discover(model)

    // The first provider that verifies gets the prompt; none of the others sees anything.
    let lastError: unknown
    let chosen: string | undefined
    for (const c of candidates) {
      try {
        await client.verify(c)
        chosen = c
        break
      } catch (e) {
        lastError = e
      }
    }
    if (chosen === undefined) throw lastError
    const body = { model, messages: [{ role: 'user', content: prompt }], stream: true, ...(maxTokens ? { max_tokens: maxTokens } : {}) }
    const res = await client.send(chosen, { path: '/v1/chat/completions', body, ...(relay !== undefined ? { relay } : {}) })
    let answer = ''
    const errorBody: Uint8Array[] = []
    for await (const event of res.content) {
      if (res.status !== 200) {
        errorBody.push(event)
        continue
      }
      const d = deltaOf(event)
      answer += d
      if (!json && d) {
        started = true
        io.out(d)
      }
    }
    if (res.status !== 200) {
      // Only a code-shaped value is printed (the body is the engine's and could say anything); a numeric code stays readable.
      const code = codeInBody(Buffer.concat(errorBody), (json) => {
        const c = (json as { error?: { code?: unknown } } | null)?.error?.code
        return typeof c === 'number' && Number.isSafeInteger(c) ? String(c) : c
      })
      throw new ClientError(res.status === 429 ? 'CLIENT_UPSTREAM_RATE_LIMITED' : 'CLIENT_UPSTREAM_FAILED', 'the engine answered with an error', { details: { status: res.status, reason: code } })
    }
    const receipt = res.receipt()!
    // A gateway whose quote binds a log key must prove the receipt is in its log.
    const logged = res.provider.logPublicKey === null ? null : await verifyReceiptLogged({ url: res.provider.url, receipt, logPublicKey: res.provider.logPublicKey })
    if (json) {
      const inclusion = logged && { index: logged.index, checkpoint: logged.checkpointNote }
      io.out(`${JSON.stringify({ ok: true, exitCode: 0, provider: chosen, answer, receipt: receipt.json, digest: receipt.digest, logged: inclusion, report: res.provider.report }, null, 2)}\n`)
    } else {
      io.out(`\n\n${renderReceipt(receipt)}`)
      io.out(logged ? `logged          entry ${logged.index} of ${logged.checkpoint.size} in ${logged.checkpoint.origin} (inclusion proof verified)\n` : 'logged          the gateway keeps no transparency log\n')
    }
    return EXIT.OK
  } catch (e) {
    const { exitCode, error } = failureOfClient(e)
    const report = reportOf(e)
    if (json) io.out(`${JSON.stringify({ ok: false, exitCode, error, ...(report ? { report } : {}) }, null, 2)}\n`)
    else {
      if (started) io.err('\n\nthe answer above is NOT verified: ')
      if (report) io.err(renderVerificationReport(report, source, error))
      else io.err(`cgw chat: ${error.code}: ${error.message}\n${exitCode === EXIT.USAGE ? USAGE : ''}`)
    }
    return exitCode
  } finally {
    await client?.close()
  }
}
