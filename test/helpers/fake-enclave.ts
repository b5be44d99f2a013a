/**
 * An in-memory `Enclave` for gateway tests: no keys, no crypto, no engine.
 * It honours the interface's contract (ciphertext-shaped bytes out, errors
 * as EnclaveError before the first byte, cancellation through the signal)
 * and records what the gateway did to it.
 *
 * `handle` dispatches on the first byte of the "encapsulated" request:
 *
 * - MARK.STREAM: a chunked response of `chunks` fixed chunks, `chunkDelayMs`
 *   apart, each after `gate()` resolves when one is given (tests step the
 *   stream with `createGate()` to check ordering without clocks);
 * - MARK.SINGLE: a one-chunk `message/ohttp-res`;
 * - MARK.ENCLAVE_ERROR: rejects with the EnclaveError whose code follows the
 *   marker (ASCII) — see `errorRequest(code)`;
 * - MARK.PLAIN_ERROR: rejects with a plain Error whose message quotes the
 *   whole input (as a careless component would), to prove the gateway
 *   never passes error messages on;
 * - MARK.HANG: never answers until the signal aborts;
 * - MARK.FAIL_MID_STREAM: one chunk, then the stream throws (quoting input);
 * - MARK.STALL: one chunk, then silence until the signal aborts.
 *
 * No chunk ever contains any byte of the input.
 *
 * Below the fake: the plumbing gateway tests share — a server around a
 * FakeEnclave with a silent logger and a hand-moved clock, a raw HTTP client
 * that sees chunks as they arrive, and event-driven waiting (no wall-clock
 * bounds).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setImmediate as tick } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { DEFAULT_GATEWAY_CONFIG, parseGatewayConfig, type GatewayConfig } from '../../gateway/config.ts'
import { createGatewayLogger } from '../../gateway/plugins/logging.ts'
import { buildServer, type BuildServerParameters } from '../../gateway/server.ts'
import type { Enclave, EncapsulatedResponse, EvidenceBundle, HandleOutcome } from '../../enclave/types.ts'
import { ENCLAVE_ERROR_CODES, EnclaveError, type EnclaveErrorCode } from '../../enclave/errors.ts'
import { pushFromIterable, responseOf } from '../../enclave/enclave.ts'

export const MARK = {
  STREAM: 0x01,
  SINGLE: 0x02,
  ENCLAVE_ERROR: 0x03,
  PLAIN_ERROR: 0x04,
  HANG: 0x05,
  FAIL_MID_STREAM: 0x06,
  STALL: 0x07,
} as const

/** The bytes of chunk `i` of a fake response: fixed, recognisable, input-free. */
export function fakeChunk(i: number): Uint8Array {
  return new Uint8Array(Buffer.from(`<chunk ${i}>`))
}

/** An "encapsulated request" starting with `mark`, followed by `rest`. */
export function fakeRequest(mark: number, rest: Uint8Array | string = ''): Buffer {
  return Buffer.concat([Buffer.from([mark]), Buffer.from(rest)])
}

/** A request the fake answers with EnclaveError `code`. */
export function errorRequest(code: EnclaveErrorCode): Buffer {
  return fakeRequest(MARK.ENCLAVE_ERROR, code)
}

/** A one-shot latch per chunk: `release()` lets the next waiting chunk go. */
export interface Gate {
  /** Wait for a release; a waiter whose signal aborts leaves the queue (its chunk will never be made). */
  (signal?: AbortSignal): Promise<void>
  release(): void
  /** Chunks waiting at the gate right now. */
  readonly waiting: number
}

export function createGate(): Gate {
  const waiters: { resolve: () => void }[] = []
  let credits = 0
  const gate = ((signal?: AbortSignal) => {
    if (credits > 0) {
      credits--
      return Promise.resolve()
    }
    return new Promise<void>((resolve, reject) => {
      const waiter = { resolve }
      waiters.push(waiter)
      signal?.addEventListener(
        'abort',
        () => {
          const i = waiters.indexOf(waiter)
          if (i >= 0) waiters.splice(i, 1)
          reject(signal.reason)
        },
        { once: true },
      )
    })
  }) as Gate
  gate.release = () => {
    const w = waiters.shift()
    if (w) w.resolve()
    else credits++
  }
  Object.defineProperty(gate, 'waiting', { get: () => waiters.length })
  return gate
}

export interface FakeEnclaveOptions {
  /** Chunks of a MARK.STREAM response. Default 3. */
  chunks?: number
  /** Delay before each chunk. Default 0. */
  chunkDelayMs?: number
  /** Awaited before each chunk of a MARK.STREAM response. */
  gate?: Gate
  /** `status().ready`. Default true. */
  ready?: boolean
  /** Model ids. Default ['fake-model-a', 'fake-model-b']. */
  models?: string[]
  /** models() rejects with this. */
  modelsError?: unknown
  /** models() never answers (until its signal aborts). */
  modelsHang?: boolean
  /** attest() rejects with this. */
  attestError?: unknown
  /** The epoch reported by status() and bundles. Default '7'. */
  epoch?: string
  /** The outcome code of a completed stream. Default 'ok'. */
  outcomeCode?: string
}

/** The fixed evidence of the fake (nonce filled in per request). */
export function fakeBundle(nonceHex: string, epoch: string): EvidenceBundle {
  return {
    version: 1,
    nonce: nonceHex,
    quote: Buffer.from('fake quote').toString('base64'),
    eventLog: null,
    gpu: null,
    keyConfig: Buffer.from(FAKE_KEY_CONFIGS).toString('base64'),
    signingAddress: FAKE_SIGNING_ADDRESS,
    epoch,
    logPublicKey: null,
    epochExpiresAt: '2999-01-01T00:00:00.000Z',
  }
}

/** A syntactically plausible application/ohttp-keys body: one 2-byte length-prefixed config. */
export const FAKE_KEY_CONFIGS = new Uint8Array([0x00, 0x05, 0x01, 0x00, 0x20, 0xaa, 0xbb])
export const FAKE_SIGNING_ADDRESS = `0x${'ab'.repeat(20)}` as const

export class FakeEnclave implements Enclave {
  readonly options: FakeEnclaveOptions
  ready: boolean
  readonly calls = { handle: 0, attest: 0, models: 0, keyConfigs: 0 }
  /** Every signal handed to handle(), in call order. */
  readonly signals: AbortSignal[] = []
  /** Outcomes of finished or cancelled streams, in completion order. */
  readonly outcomes: HandleOutcome[] = []
  /** Chunks actually produced, per handle call. */
  readonly produced: number[] = []
  closed = false

  constructor(options: FakeEnclaveOptions = {}) {
    this.options = options
    this.ready = options.ready ?? true
  }

  get epoch(): string {
    return this.options.epoch ?? '7'
  }

  /** Whether the signal of handle call `i` (default: the last) was aborted. */
  aborted(i = this.signals.length - 1): boolean {
    return this.signals[i]?.aborted ?? false
  }

  keyConfigs(): Uint8Array {
    this.calls.keyConfigs++
    return FAKE_KEY_CONFIGS
  }

  async attest(nonce: Uint8Array, _options?: { signal?: AbortSignal }): Promise<EvidenceBundle> {
    this.calls.attest++
    if (this.options.attestError !== undefined) throw this.options.attestError
    return fakeBundle(Buffer.from(nonce).toString('hex'), this.epoch)
  }

  async models(options?: { signal?: AbortSignal }): Promise<readonly string[]> {
    this.calls.models++
    if (this.options.modelsError !== undefined) throw this.options.modelsError
    if (this.options.modelsHang) await waitForAbort(options?.signal)
    return this.options.models ?? ['fake-model-a', 'fake-model-b']
  }

  status() {
    return { epoch: this.epoch, ready: this.ready, signingAddress: FAKE_SIGNING_ADDRESS }
  }

  async close(): Promise<void> {
    this.closed = true
  }

  async handle(encapsulated: Uint8Array, _contentType: string, { signal }: { readonly signal: AbortSignal }): Promise<EncapsulatedResponse> {
    this.calls.handle++
    this.signals.push(signal)
    const index = this.produced.push(0) - 1
    const mark = encapsulated[0]
    switch (mark) {
      case MARK.ENCLAVE_ERROR: {
        const code = Buffer.from(encapsulated.subarray(1)).toString('latin1')
        if (!Object.hasOwn(ENCLAVE_ERROR_CODES, code)) throw new Error('fake enclave: unknown error code in request')
        throw new EnclaveError(code as EnclaveErrorCode, 'fake enclave refused the request')
      }
      case MARK.PLAIN_ERROR:
        throw new Error(`fake enclave choked on ${Buffer.from(encapsulated).toString('latin1')}`)
      case MARK.HANG:
        await waitForAbort(signal)
        throw new EnclaveError('ENCLAVE_CLOSED', 'unreachable')
      case MARK.SINGLE:
        return this.respond('message/ohttp-res', 1, signal, index)
      case MARK.FAIL_MID_STREAM:
        return this.respond('message/ohttp-chunked-res', 1, signal, index, () => {
          throw new Error(`fake enclave stream broke on ${Buffer.from(encapsulated).toString('latin1')}`)
        })
      case MARK.STALL:
        return this.respond('message/ohttp-chunked-res', 1, signal, index, () => waitForAbort(signal))
      case MARK.STREAM:
        return this.respond('message/ohttp-chunked-res', this.options.chunks ?? 3, signal, index, undefined, true)
      default:
        throw new EnclaveError('ENCLAVE_OHTTP_MALFORMED', 'fake enclave: unknown marker')
    }
  }

  private respond(contentType: string, count: number, signal: AbortSignal, index: number, after?: () => unknown, gated = false): EncapsulatedResponse {
    let settle!: (o: HandleOutcome) => void
    const outcome = new Promise<HandleOutcome>((resolve) => (settle = resolve))
    let finished = false
    const finish = (code: string) => {
      if (finished) return
      finished = true
      const o: HandleOutcome = { code, innerStatus: code === 'ok' ? 200 : 500, stream: count > 1, epoch: this.epoch }
      this.outcomes.push(o)
      settle(o)
    }
    const self = this
    async function* chunks(): AsyncGenerator<Uint8Array> {
      try {
        for (let i = 0; i < count; i++) {
          if (gated && self.options.gate) await self.options.gate(signal)
          if (self.options.chunkDelayMs) await sleep(self.options.chunkDelayMs, undefined, { signal }).catch(() => {})
          if (signal.aborted) throw signal.reason
          self.produced[index]!++
          yield fakeChunk(i)
        }
        if (after) await after()
        if (signal.aborted) throw signal.reason
        finish(self.options.outcomeCode ?? 'ok')
      } catch (e) {
        finish(signal.aborted ? 'ENGINE_CANCELLED' : 'ENGINE_STREAM_FAILED')
        throw e
      } finally {
        // A consumer that stops early (return()) still gets an outcome.
        finish('ENGINE_CANCELLED')
      }
    }
    // The real enclave's adapters: `pipe` (which the gateway relays) pulls the generator, `chunks` pulls through `pipe`.
    return responseOf(contentType, outcome, (sink) => pushFromIterable(chunks(), { event: (bytes) => sink.chunk(bytes), end: (error) => sink.end(error) }))
  }
}

/** Resolves never; rejects with the signal's reason once it aborts. */
function waitForAbort(signal: AbortSignal | undefined): Promise<never> {
  return new Promise<never>((_resolve, reject) => {
    if (!signal) return
    if (signal.aborted) reject(signal.reason)
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true })
  })
}

// ------------------------------------------------- gateway test plumbing --

/** A config document merged over the defaults, section by section. */
export function testConfig(document: Record<string, unknown> = {}): GatewayConfig {
  return parseGatewayConfig({ logLevel: 'silent', ...document })
}

/** A clock the test moves by hand. */
export interface ManualClock {
  (): number
  advance(ms: number): void
}

export function manualClock(start = Date.UTC(2026, 0, 1)): ManualClock {
  let t = start
  const clock = (() => t) as ManualClock
  clock.advance = (ms) => void (t += ms)
  return clock
}

export interface TestGateway {
  readonly app: FastifyInstance
  readonly enclave: FakeEnclave
  readonly clock: ManualClock
}

/** A server on a FakeEnclave, closed when the test ends. */
export function testGateway(
  t: Test,
  { config = {}, enclave = {}, ...rest }: { config?: Record<string, unknown>; enclave?: FakeEnclaveOptions } & Partial<Omit<BuildServerParameters, 'config' | 'enclave'>> = {},
): TestGateway {
  const fake = new FakeEnclave(enclave)
  const clock = manualClock()
  const app = buildServer({ enclave: fake, config: testConfig(config), logger: createGatewayLogger('silent'), now: clock, ...rest })
  t.teardown(() => app.close())
  return { app, enclave: fake, clock }
}

/** Listen on 127.0.0.1, port 0; returns the port. */
export async function listenLocal(app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  return (app.server.address() as AddressInfo).port
}

/** Spin the event loop until `cond()` holds (at most `turns` turns: a safety net, not a timing assertion). */
export async function until(cond: () => boolean, turns = 100_000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (cond()) return
    await tick()
  }
  throw new Error('condition never became true')
}

/** A streaming POST over a real socket that records every chunk as it arrives. */
export interface StreamingPost {
  readonly response: Promise<IncomingMessage>
  /** Bytes received so far. */
  received(): string
  /** Resolves once the received text contains `text`. */
  waitFor(text: string): Promise<void>
  /** Resolves when the response ends (`complete`: whether it ended properly). */
  readonly done: Promise<{ complete: boolean; body: string }>
  /** Cut the connection from the client side. */
  destroy(): void
}

export function streamingPost(port: number, body: Uint8Array, contentType = 'message/ohttp-chunked-req'): StreamingPost {
  const parts: Buffer[] = []
  const waiters: { text: string; resolve: () => void }[] = []
  const received = () => Buffer.concat(parts).toString('latin1')
  const check = () => {
    const now = received()
    for (const w of [...waiters]) {
      if (now.includes(w.text)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve()
      }
    }
  }
  const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/v1/ohttp', headers: { 'content-type': contentType, 'content-length': body.byteLength } })
  let settle!: (v: { complete: boolean; body: string }) => void
  const done = new Promise<{ complete: boolean; body: string }>((resolve) => (settle = resolve))
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req.on('response', (res) => {
      resolve(res)
      res.on('data', (d: Buffer) => {
        parts.push(d)
        check()
      })
      res.on('end', () => settle({ complete: res.complete, body: received() }))
      res.on('error', () => settle({ complete: false, body: received() }))
      res.on('aborted', () => settle({ complete: false, body: received() }))
      res.on('close', () => settle({ complete: res.complete, body: received() }))
    })
    req.on('error', (e) => {
      reject(e)
      settle({ complete: false, body: received() })
    })
  })
  response.catch(() => {})
  req.end(body)
  return {
    response,
    received,
    waitFor: (text) =>
      new Promise<void>((resolve) => {
        waiters.push({ text, resolve })
        check()
      }),
    done,
    destroy: () => req.destroy(),
  }
}

/** The problem document of an inject() answer, with its content type checked by the caller. */
export function problemOf(res: { body: string }): { type: string; title: string; status: number; code: string; detail: string; [k: string]: unknown } {
  return JSON.parse(res.body)
}

export { DEFAULT_GATEWAY_CONFIG }
