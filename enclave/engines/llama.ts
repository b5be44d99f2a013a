/**
 * The embedded engine: llama.cpp in this process (node-llama-cpp), serving
 * one GGUF model through the same OpenAI API surface as the HTTP engine, so
 * no plaintext ever leaves the process, not even to loopback.
 *
 * - `/v1/chat/completions`: messages are formatted by the model's own chat
 *   template (node-llama-cpp's chat wrapper resolved from the GGUF); streamed
 *   as `data: {chat.completion.chunk}` events, one per generated text chunk,
 *   then `data: [DONE]`; or one `chat.completion` JSON.
 * - `/v1/completions`: a raw prompt, `text_completion` objects.
 * - `/v1/embeddings`: only when enabled (`embeddings: true`); otherwise a
 *   400 with reason `unsupported_endpoint`.
 *
 * Requests are checked strictly (unknown fields, wrong types, unsupported
 * features are ENGINE_BAD_REQUEST with a `reason` and, for a field, its
 * name), because silently ignoring `tools` or `n: 3` answers a different
 * question than the client asked.
 *
 * Concurrency: one llama.cpp context with `maxConcurrency` sequences; each
 * request holds one sequence for its generation and clears it afterwards (no
 * KV state — no trace of one client's prompt — carries over to the next).
 * Up to `maxQueue` requests wait for a sequence; beyond that a request is
 * refused at once with ENGINE_RATE_LIMITED (reason `busy`, Retry-After).
 *
 * Never logged: prompts, completions, or the text of llama.cpp's own
 * messages (only their level and length): a tokenizer or sampler warning may
 * quote text, and one Llama instance is shared by every engine of the
 * process, so "only at load time" could not be guaranteed.
 *
 * No download, ever: the llama.cpp binding is loaded with `build: 'never'`
 * and `skipDownload: true` from the prebuilt @node-llama-cpp/* packages that
 * npm installed; without a usable binary the engine fails to start.
 */
import { randomBytes } from 'node:crypto'
import { open, stat, type FileHandle } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { basename } from 'node:path'
import type {
  ChatHistoryItem,
  ChatWrapper,
  Llama,
  LlamaContext,
  LlamaContextSequence,
  LlamaEmbeddingContext,
  LlamaModel,
  LLamaContextualRepeatPenalty,
  Token,
} from 'node-llama-cpp'
import { ConfigError } from '../../attestation/errors.ts'
import type { Engine } from '../types.ts'
import { cancelled, checkEnginePath, closedError, isObject, once, parseJsonObject, TOKEN_RE } from './common.ts'
import { EngineError } from './errors.ts'

export interface LlamaEngineLogger {
  info(obj: Record<string, unknown>, msg: string): void
  warn(obj: Record<string, unknown>, msg: string): void
}

export interface LlamaEngineOptions {
  /** A local GGUF file (never a URL: nothing is downloaded). */
  readonly modelPath: string
  /** The id clients name in `model`. Default: the file name without `.gguf`. */
  readonly modelId?: string
  /**
   * llama.cpp backend: `false` (CPU, the default), `'cuda'`, `'vulkan'`, or
   * `'auto'` (the best available prebuilt binary). A named GPU backend that
   * cannot be loaded is an error, never a silent fall back to CPU.
   */
  readonly gpu?: false | 'cuda' | 'vulkan' | 'auto'
  /** Layers to offload to the GPU: a number, `'max'` or `'auto'` (default). Ignored on CPU. */
  readonly gpuLayers?: number | 'max' | 'auto'
  /** Tokens per sequence (prompt + completion). Default: the model's training context, at most 4096. */
  readonly contextSize?: number
  /** Requests generating at once (llama.cpp sequences). Default 4. */
  readonly maxConcurrency?: number
  /** Requests waiting for a sequence; beyond it ENGINE_RATE_LIMITED. Default 4 × maxConcurrency. */
  readonly maxQueue?: number
  /**
   * CPU threads for evaluation. Default: half the available cores, 1 to 4.
   * llama.cpp's threads busy-wait, so more threads than free cores collapses
   * throughput (tiny model, busy 2-core machine: 1 thread 1344 tokens/s,
   * 2 threads 6 tokens/s).
   */
  readonly threads?: number
  /** Serve `/v1/embeddings` (an extra llama.cpp context in embedding mode). Default false. */
  readonly embeddings?: boolean
  /** Largest completion a request may ask for; also the default for chat. Default: contextSize. */
  readonly maxTokens?: number
  /** Retry-After seconds sent with a busy refusal. Default 1. */
  readonly retryAfterSeconds?: number
  /** `Engine.name`. Default `'llama'`. */
  readonly name?: string
  readonly logger?: LlamaEngineLogger
  /** The clock for `created` fields (ms). Default Date.now. */
  readonly now?: () => number
}

/** What the engine resolved at load time: no content, safe to log. */
export interface LlamaEngineInfo {
  readonly modelId: string
  readonly contextSize: number
  readonly maxConcurrency: number
  readonly maxQueue: number
  readonly gpu: string | false
  readonly threads: number
  readonly loadMs: number
  readonly chatWrapper: string
  readonly embeddings: boolean
}

/** Counters for metrics and tests: numbers only. */
export interface LlamaEngineStats {
  /** Requests generating now (holding a sequence). */
  readonly active: number
  /** Requests waiting for a sequence. */
  readonly queued: number
  /** Tokens generated since load. */
  readonly generatedTokens: number
  /** Requests refused as busy since load. */
  readonly refusedBusy: number
  /** Generations stopped early (client gone, reader stopped, engine closed) since load. */
  readonly cancelled: number
}

export interface LlamaEngine extends Engine {
  readonly info: LlamaEngineInfo
  stats(): LlamaEngineStats
}

const LLAMA_ENGINE_DEFAULTS = {
  maxConcurrency: 4,
  queuePerSequence: 4,
  contextSizeCap: 4096,
  retryAfterSeconds: 1,
  /** OpenAI's documented default `max_tokens` for /v1/completions. */
  completionMaxTokens: 16,
} as const

/** OpenAI allows up to 4 stop sequences. */
const MAX_STOP = 4
/** Bytes of a request body the engine parses at most (the gateway caps bodies too; this is the engine's own bound). */
const MAX_BODY_BYTES = 8 * 1024 * 1024
const encoder = new TextEncoder()

/**
 * Load the model and return the engine. Fails (ENGINE_OPTIONS_INVALID for
 * options and model file, ENGINE_UNAVAILABLE for a backend that cannot be
 * loaded) rather than start half-working.
 */
export async function createLlamaEngine(options: LlamaEngineOptions): Promise<LlamaEngine> {
  const o = checkOptions(options)
  const started = performance.now()
  const fileInfo = await stat(o.modelPath).catch(() => null)
  if (fileInfo === null || !fileInfo.isFile()) {
    throw new EngineError('ENGINE_OPTIONS_INVALID', 'modelPath is not a readable file', { details: { reason: 'model_file' } })
  }
  if (!(await looksLikeGguf(o.modelPath))) {
    throw new EngineError('ENGINE_OPTIONS_INVALID', 'modelPath is not a GGUF v2/v3 file', { details: { reason: 'model_load' } })
  }
  const modelId = o.modelId ?? basename(o.modelPath).replace(/\.gguf$/i, '')

  const logger = o.logger
  const llamaLog = (level: string, message: string): void => {
    logger?.warn({ engine: o.name, level, bytes: message.length }, 'llama.cpp message')
  }

  const nlc = await nodeLlamaCpp()
  const lease = await acquireLlama(o.gpu, o.threads, llamaLog)
  const llama = lease.llama
  if (o.gpu !== 'auto' && llama.gpu !== o.gpu) {
    // node-llama-cpp does not fall back from a named backend today; this keeps it that way.
    await lease.release()
    throw new EngineError('ENGINE_UNAVAILABLE', `llama.cpp loaded backend ${String(llama.gpu)}, not ${String(o.gpu)}`, { details: { reason: 'backend', gpu: String(o.gpu) } })
  }
  let model: LlamaModel | undefined
  let context: LlamaContext | undefined
  let embeddingContext: LlamaEmbeddingContext | undefined
  try {
    try {
      model = await llama.loadModel({
        modelPath: o.modelPath,
        ...(o.gpu === false ? {} : { gpuLayers: o.gpuLayers }),
      })
    } catch {
      throw new EngineError('ENGINE_OPTIONS_INVALID', 'the model file could not be loaded as a GGUF model', { details: { reason: 'model_load' } })
    }
    const trained = model.trainContextSize
    const contextSize = o.contextSize ?? Math.min(trained, LLAMA_ENGINE_DEFAULTS.contextSizeCap)
    try {
      context = await model.createContext({ contextSize, sequences: o.maxConcurrency, threads: o.threads })
      if (o.embeddings) embeddingContext = await model.createEmbeddingContext({ contextSize, threads: o.threads })
    } catch {
      throw new EngineError('ENGINE_OPTIONS_INVALID', 'the llama.cpp context could not be created (contextSize × maxConcurrency too large for memory?)', {
        details: { reason: 'context', contextSize, maxConcurrency: o.maxConcurrency },
      })
    }
    // The GGUF's own chat template (tokenizer.chat_template) and architecture decide the wrapper.
    const chatWrapper = nlc.resolveChatWrapper(model)
    const info: LlamaEngineInfo = {
      modelId,
      contextSize: context.contextSize,
      maxConcurrency: o.maxConcurrency,
      maxQueue: o.maxQueue,
      gpu: llama.gpu,
      threads: o.threads,
      loadMs: Math.round(performance.now() - started),
      chatWrapper: chatWrapper.wrapperName,
      embeddings: embeddingContext !== undefined,
    }
    logger?.info({ engine: o.name, ...info }, 'llama engine loaded')
    return buildEngine(o, info, { nlc, lease, model, context, embeddingContext, chatWrapper })
  } catch (e) {
    await embeddingContext?.dispose().catch(() => {})
    await context?.dispose().catch(() => {})
    await model?.dispose().catch(() => {})
    await lease.release()
    throw e
  }
}

interface Loaded {
  readonly nlc: NodeLlamaCpp
  readonly lease: LlamaLease
  readonly model: LlamaModel
  readonly context: LlamaContext
  readonly embeddingContext: LlamaEmbeddingContext | undefined
  readonly chatWrapper: ChatWrapper
}

type Checked = Required<Omit<LlamaEngineOptions, 'modelId' | 'contextSize' | 'maxTokens' | 'logger'>> &
  Pick<LlamaEngineOptions, 'modelId' | 'contextSize' | 'maxTokens' | 'logger'>

function buildEngine(o: Checked, info: LlamaEngineInfo, loaded: Loaded): LlamaEngine {
  const { nlc, model, context, embeddingContext, chatWrapper } = loaded
  const maxTokensCap = Math.min(o.maxTokens ?? info.contextSize, info.contextSize)
  const free: LlamaContextSequence[] = []
  for (let i = 0; i < o.maxConcurrency; i++) free.push(context.getSequence())
  const sequences = new Limiter(free, o.maxQueue, o.retryAfterSeconds)
  const embedder = new Limiter(embeddingContext === undefined ? [] : [embeddingContext], o.maxQueue, o.retryAfterSeconds)
  const running = new Set<Generation>()
  let closing: Promise<void> | null = null
  const counters = { generatedTokens: 0, cancelled: 0 }

  const created = () => Math.floor(o.now() / 1000)

  /**
   * Count the prompt's tokens and fix the completion budget before a
   * sequence is taken: a prompt that does not fit is a plain 400, never a
   * stream that starts and then fails.
   */
  function plan(path: '/v1/chat/completions' | '/v1/completions', req: ChatRequest | CompletionRequest): Plan {
    if (path === '/v1/chat/completions') {
      const history: ChatHistoryItem[] = [...(req as ChatRequest).history]
      if (history.at(-1)?.type !== 'model') history.push({ type: 'model', response: [] })
      const promptTokens = chatWrapper.generateContextState({ chatHistory: history }).contextText.tokenize(model.tokenizer).length
      return { history, promptTokens, maxTokens: budget(promptTokens, req.maxTokens ?? maxTokensCap) }
    }
    const prompt = (req as CompletionRequest).prompt
    const promptTokens = model.tokenize(prompt, false).length + (model.tokens.shouldPrependBosToken ? 1 : 0)
    return { prompt, promptTokens, maxTokens: budget(promptTokens, req.maxTokens ?? LLAMA_ENGINE_DEFAULTS.completionMaxTokens) }
  }

  async function generate(req: GenerationRequest, p: Plan, signal: AbortSignal) {
    const seq = await sequences.acquire(signal)
    // From here the sequence is ours until the generation settles; `release` runs exactly once.
    let released = false
    const release = () => {
      if (released) return
      released = true
      sequences.release(seq)
    }
    let gen: Generation
    try {
      if (closing !== null) throw closedError()
      gen = new Generation(signal)
      running.add(gen)
    } catch (e) {
      release()
      throw e
    }
    gen.start(
      () => run(seq, req, p, gen),
      async () => {
        running.delete(gen)
        if (gen.aborted) counters.cancelled++
        // Clearing the KV cells before the next user: no prefix reuse across clients.
        await seq.clearHistory().catch(() => {})
        release()
      },
    )
    return gen
  }

  /** Generate on `seq`: a chat through the model's chat wrapper, or a raw prompt completion. */
  async function run(seq: LlamaContextSequence, req: GenerationRequest, p: Plan, gen: Generation): Promise<RunResult> {
    let completionTokens = 0
    const options = {
      ...sampling(req),
      maxTokens: p.maxTokens,
      signal: gen.abortSignal,
      onToken: (tokens: readonly Token[]) => {
        completionTokens += tokens.length
        counters.generatedTokens += tokens.length
      },
      onTextChunk: (text: string) => gen.text(text),
    }
    let stopReason: string
    if ('history' in p) {
      const chat = new nlc.LlamaChat({ contextSequence: seq, chatWrapper, autoDisposeSequence: false })
      try {
        stopReason = (await chat.generateResponse(p.history, options)).metadata.stopReason
      } finally {
        chat.dispose({ disposeSequence: false })
      }
    } else {
      const completion = new nlc.LlamaCompletion({ contextSequence: seq, autoDisposeSequence: false })
      try {
        stopReason = (await completion.generateCompletionWithMeta(p.prompt, { ...options, disableContextShift: true })).metadata.stopReason
      } finally {
        completion.dispose({ disposeSequence: false })
      }
    }
    return { promptTokens: p.promptTokens, completionTokens, finishReason: finishReason(stopReason) }
  }

  /** Tokens left for the completion; a prompt that leaves none is the client's problem (400), as with OpenAI. */
  function budget(promptTokens: number, asked: number): number {
    // One cell of slack: node-llama-cpp shifts the context when the last cell fills, which must never happen here.
    const room = info.contextSize - promptTokens - 1
    if (room < 1) {
      throw new EngineError('ENGINE_BAD_REQUEST', `the prompt does not fit the context (${info.contextSize} tokens)`, {
        details: { reason: 'context_length_exceeded', promptTokens, contextSize: info.contextSize },
      })
    }
    return Math.min(asked, room)
  }

  async function embed(body: Record<string, unknown>, signal: AbortSignal): Promise<Uint8Array> {
    const req = parseEmbeddingRequest(body, info.modelId)
    const ctx = await embedder.acquire(signal)
    try {
      const data: unknown[] = []
      let promptTokens = 0
      for (const [index, input] of req.inputs.entries()) {
        if (signal.aborted) throw cancelled('the client went away')
        const tokens = model.tokenize(input, false)
        if (tokens.length === 0 || tokens.length >= info.contextSize) {
          throw new EngineError('ENGINE_BAD_REQUEST', 'an input is empty or does not fit the context', { details: { reason: 'input_length', index } })
        }
        promptTokens += tokens.length
        const vector = await ctx.getEmbeddingFor(tokens).then(
          (e) => e.vector,
          () => {
            throw new EngineError('ENGINE_UPSTREAM_ERROR', 'llama.cpp failed computing an embedding', { details: { reason: 'embedding', index } })
          },
        )
        data.push({ object: 'embedding', index, embedding: req.base64 ? float32Base64(vector) : Array.from(vector) })
      }
      return encodeJson({ object: 'list', data, model: info.modelId, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } })
    } finally {
      embedder.release(ctx)
    }
  }

  return {
    name: o.name,
    info,

    stats() {
      return { active: running.size, queued: sequences.queued, generatedTokens: counters.generatedTokens, refusedBusy: sequences.refused + embedder.refused, cancelled: counters.cancelled }
    },

    async models() {
      if (closing !== null) throw closedError()
      return [{ id: info.modelId, object: 'model', created: 0, owned_by: 'cgw', context_length: info.contextSize }]
    },

    async request(path, body, { signal }) {
      if (closing !== null) throw closedError()
      checkEnginePath(path)
      const json = parseBody(body)
      if (signal.aborted) throw cancelled('before the request was served')
      if (path === '/v1/embeddings') {
        if (embeddingContext === undefined) {
          throw new EngineError('ENGINE_BAD_REQUEST', 'this engine does not serve embeddings', { details: { reason: 'unsupported_endpoint' } })
        }
        const bytes = await embed(json, signal)
        return { status: 200, contentType: 'application/json', stream: false, body: once(bytes) }
      }
      const req = path === '/v1/chat/completions' ? parseChatRequest(json, info.modelId, maxTokensCap) : parseCompletionRequest(json, info.modelId, maxTokensCap)
      const gen = await generate(req, plan(path, req), signal)
      const id = `${path === '/v1/chat/completions' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`
      const shape = new ResponseShape(path, id, created(), info.modelId)
      if (req.stream) return { status: 200, contentType: 'text/event-stream', stream: true, body: streamEvents(gen, shape, req.includeUsage) }
      const result = await gen.collect()
      return { status: 200, contentType: 'application/json', stream: false, body: once(encodeJson(shape.whole(result.text, result))) }
    },

    close() {
      closing ??= (async () => {
        sequences.close(closedError())
        embedder.close(closedError())
        for (const gen of running) gen.abort(closedError())
        await Promise.allSettled([...running].map((g) => g.settled))
        await embeddingContext?.dispose().catch(() => {})
        await context.dispose().catch(() => {})
        await model.dispose().catch(() => {})
        await loaded.lease.release()
      })()
      return closing
    },
  }
}

/** The keys of the config file's `enclave.engine` section when `"kind": "llama"`. */
const LLAMA_ENGINE_CONFIG_KEYS = ['kind', 'modelPath', 'modelId', 'gpu', 'gpuLayers', 'contextSize', 'maxConcurrency', 'maxQueue', 'threads', 'embeddings', 'maxTokens'] as const

/**
 * Options from the config file's engine section (`{ "kind": "llama",
 * "modelPath": ..., ... }`), checked strictly with the enclave config's
 * error (ConfigError naming the path). `"gpu": "cpu"` or `false` is the CPU.
 * Value ranges are checked again by createLlamaEngine.
 */
export function llamaEngineOptionsFromConfig(section: Readonly<Record<string, unknown>>, path = 'enclave.engine'): LlamaEngineOptions {
  const bad = (key: string, what: string): never => {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `enclave config ${path}.${key}: ${what}`, { details: { path: `${path}.${key}` } })
  }
  for (const k of Object.keys(section)) if (!(LLAMA_ENGINE_CONFIG_KEYS as readonly string[]).includes(k)) bad(k, 'unknown key')
  if (section.kind !== 'llama') bad('kind', 'expected "llama"')
  if (typeof section.modelPath !== 'string' || section.modelPath === '') bad('modelPath', 'expected the path of a GGUF file')
  const out: { -readonly [K in keyof LlamaEngineOptions]: LlamaEngineOptions[K] } = { modelPath: section.modelPath as string }
  if (section.modelId !== undefined) out.modelId = typeof section.modelId === 'string' ? section.modelId : bad('modelId', 'expected a string')
  if (section.gpu !== undefined) {
    const g = section.gpu
    if (g === false || g === 'cpu') out.gpu = false
    else if (g === 'cuda' || g === 'vulkan' || g === 'auto') out.gpu = g
    else bad('gpu', 'expected "cpu", "cuda", "vulkan" or "auto"')
  }
  if (section.gpuLayers !== undefined) {
    const l = section.gpuLayers
    out.gpuLayers = l === 'max' || l === 'auto' || isInt(l) ? l : bad('gpuLayers', 'expected a number, "max" or "auto"')
  }
  const int = (key: 'contextSize' | 'maxConcurrency' | 'maxQueue' | 'threads' | 'maxTokens') => {
    const v = section[key]
    if (v === undefined) return
    out[key] = isInt(v) && v >= 0 ? v : bad(key, 'expected a non-negative integer')
  }
  int('contextSize')
  int('maxConcurrency')
  int('maxQueue')
  int('threads')
  int('maxTokens')
  if (section.embeddings !== undefined) out.embeddings = typeof section.embeddings === 'boolean' ? section.embeddings : bad('embeddings', 'expected a boolean')
  return out
}

// --- generation ------------------------------------------------------------

type FinishReason = 'stop' | 'length'

interface RunResult {
  readonly promptTokens: number
  readonly completionTokens: number
  readonly finishReason: FinishReason
}

interface Sampling {
  readonly temperature: number
  readonly topP?: number
  readonly topK?: number
  readonly minP?: number
  readonly seed?: number
  readonly stop: readonly string[]
  readonly presencePenalty?: number
  readonly frequencyPenalty?: number
}

interface GenerationRequest extends Sampling {
  readonly stream: boolean
  readonly includeUsage: boolean
  readonly maxTokens: number | undefined
}

interface ChatRequest extends GenerationRequest {
  readonly history: readonly ChatHistoryItem[]
}

interface CompletionRequest extends GenerationRequest {
  readonly prompt: string
}

interface ChatPlan {
  readonly history: ChatHistoryItem[]
  readonly promptTokens: number
  readonly maxTokens: number
}

interface CompletionPlan {
  readonly prompt: string
  readonly promptTokens: number
  readonly maxTokens: number
}

type Plan = ChatPlan | CompletionPlan

function sampling(s: Sampling) {
  const repeatPenalty: false | LLamaContextualRepeatPenalty =
    s.presencePenalty === undefined && s.frequencyPenalty === undefined
      ? false
      : { penalty: 1, presencePenalty: s.presencePenalty ?? 0, frequencyPenalty: s.frequencyPenalty ?? 0 }
  return {
    temperature: s.temperature,
    ...(s.topP !== undefined ? { topP: s.topP } : {}),
    ...(s.topK !== undefined ? { topK: s.topK } : {}),
    ...(s.minP !== undefined ? { minP: s.minP } : {}),
    ...(s.seed !== undefined ? { seed: s.seed } : {}),
    ...(s.stop.length > 0 ? { customStopTriggers: s.stop } : {}),
    repeatPenalty,
  }
}

function finishReason(stop: string): FinishReason {
  return stop === 'maxTokens' ? 'length' : 'stop'
}

/**
 * One generation: text chunks queue here as llama.cpp produces them; a
 * streaming reader takes them as they come, a plain request waits for all.
 * The client's signal, the reader stopping early, and engine close all abort
 * it; the sequence is released only once llama.cpp has actually stopped
 * (`settled`).
 */
class Generation {
  readonly settled: Promise<void>
  #resolveSettled!: () => void
  readonly #controller = new AbortController()
  readonly #signal: AbortSignal
  /**
   * Text not yet taken: a streaming reader drains it as it comes, a plain
   * request takes it all in collect(). A request uses one or the other
   * (request() branches on `stream`), so nothing is kept twice.
   */
  #chunks: string[] = []
  #result: RunResult | null = null
  /** Generation over and the sequence given back. */
  #ended = false
  #failure: EngineError | null = null
  #wake: (() => void) | null = null
  readonly #onAbort = () => this.abort(cancelled('the client went away'))

  constructor(signal: AbortSignal) {
    this.#signal = signal
    this.settled = new Promise<void>((r) => (this.#resolveSettled = r))
    if (signal.aborted) this.abort(cancelled('the client went away'))
    else signal.addEventListener('abort', this.#onAbort, { once: true })
  }

  get abortSignal(): AbortSignal {
    return this.#controller.signal
  }

  /**
   * Run the generation, then `cleanup` (which gives the sequence back); only
   * then does the answer end for its reader, so a client that sends its next
   * request after reading [DONE] finds the sequence free.
   */
  start(run: () => Promise<RunResult>, cleanup: () => Promise<void>): void {
    run().then(
      (result) => {
        // An abort that raced the last token still wins: the client asked to stop.
        if (this.#failure === null) this.#result = result
      },
      (e: unknown) => {
        this.#failure ??= e instanceof EngineError ? e : new EngineError('ENGINE_UPSTREAM_ERROR', 'llama.cpp failed during generation', { details: { reason: 'generation' } })
      },
    ).finally(async () => {
      await cleanup().catch(() => {})
      this.#ended = true
      this.#signal.removeEventListener('abort', this.#onAbort)
      this.#notify()
      this.#resolveSettled()
    })
  }

  text(chunk: string): void {
    if (chunk === '' || this.#failure !== null) return
    this.#chunks.push(chunk)
    this.#notify()
  }

  /**
   * Stop: llama.cpp stops at its next token. Once the answer is complete only
   * a cancel still counts (the HTTP engine's rule: a reader whose client left
   * gets ENGINE_CANCELLED even if the last event had arrived).
   */
  abort(reason: EngineError): void {
    if (this.#result !== null && reason.code !== 'ENGINE_CANCELLED') return
    if (this.#failure === null || (reason.code === 'ENGINE_CANCELLED' && this.#failure.code !== 'ENGINE_CANCELLED')) this.#failure = reason
    if (this.#result === null && !this.#controller.signal.aborted) this.#controller.abort(reason)
    this.#notify()
  }

  /** True when llama.cpp was told to stop before it finished. */
  get aborted(): boolean {
    return this.#controller.signal.aborted
  }

  /** Wait for the whole answer. */
  async collect(): Promise<RunResult & { text: string }> {
    await this.settled
    if (this.#failure !== null || this.#result === null) throw this.#failure ?? cancelled('no result')
    return { ...this.#result, text: this.#chunks.join('') }
  }

  /** Text chunks as they come, then the result. A cancel is thrown at once, dropping queued text. */
  async *chunks(): AsyncGenerator<string, RunResult, undefined> {
    let finished = false
    try {
      for (;;) {
        if (this.#failure?.code === 'ENGINE_CANCELLED') throw this.#failure
        if (this.#chunks.length > 0) {
          const batch = this.#chunks
          this.#chunks = []
          for (const c of batch) yield c
          continue
        }
        if (this.#ended) {
          if (this.#failure !== null || this.#result === null) throw this.#failure ?? cancelled('no result')
          finished = true
          return this.#result
        }
        await new Promise<void>((resolve) => (this.#wake = resolve))
      }
    } finally {
      if (!finished) this.abort(cancelled('the consumer stopped reading'))
    }
  }

  #notify(): void {
    const wake = this.#wake
    this.#wake = null
    wake?.()
  }
}

async function* streamEvents(gen: Generation, shape: ResponseShape, includeUsage: boolean): AsyncGenerator<Uint8Array, void, undefined> {
  const it = gen.chunks()
  let complete = false
  try {
    yield sse(shape.first())
    let step = await it.next()
    while (step.done !== true) {
      yield sse(shape.delta(step.value))
      step = await it.next()
    }
    const result = step.value
    yield sse(shape.last(result.finishReason))
    if (includeUsage) yield sse(shape.usageChunk(result))
    complete = true
    yield encoder.encode('data: [DONE]\n\n')
  } finally {
    // A reader that stops early (break, return, even before the first token) must stop llama.cpp too.
    if (!complete) gen.abort(cancelled('the consumer stopped reading'))
  }
}

/** The OpenAI object shapes of one response (chat or text completion). */
class ResponseShape {
  readonly #chat: boolean
  constructor(
    path: '/v1/chat/completions' | '/v1/completions',
    readonly id: string,
    readonly created: number,
    readonly model: string,
  ) {
    this.#chat = path === '/v1/chat/completions'
  }

  #chunk(choices: unknown[], extra: Record<string, unknown> = {}) {
    return { id: this.id, object: this.#chat ? 'chat.completion.chunk' : 'text_completion', created: this.created, model: this.model, choices, ...extra }
  }

  #choice(text: string | null, finish: FinishReason | null, first = false) {
    if (!this.#chat) return { index: 0, text: text ?? '', logprobs: null, finish_reason: finish }
    const delta = first ? { role: 'assistant', content: '' } : text === null ? {} : { content: text }
    return { index: 0, delta, logprobs: null, finish_reason: finish }
  }

  first() {
    return this.#chunk([this.#chat ? this.#choice(null, null, true) : this.#choice('', null)])
  }

  delta(text: string) {
    return this.#chunk([this.#choice(text, null)])
  }

  last(finish: FinishReason) {
    return this.#chunk([this.#choice(null, finish)])
  }

  usageChunk(r: RunResult) {
    return this.#chunk([], { usage: usage(r) })
  }

  whole(text: string, r: RunResult) {
    const choice = this.#chat
      ? { index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: r.finishReason }
      : { index: 0, text, logprobs: null, finish_reason: r.finishReason }
    return { id: this.id, object: this.#chat ? 'chat.completion' : 'text_completion', created: this.created, model: this.model, choices: [choice], usage: usage(r) }
  }
}

function usage(r: RunResult) {
  return { prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens, total_tokens: r.promptTokens + r.completionTokens }
}

// --- concurrency -------------------------------------------------------------

/** A pool of `items` with a bounded wait queue; beyond the queue, a busy refusal. */
class Limiter<T> {
  readonly #free: T[]
  readonly #waiting: { resolve: (item: T) => void; reject: (e: EngineError) => void }[] = []
  readonly #maxQueue: number
  readonly #retryAfter: number
  #closed: EngineError | null = null
  #refused = 0

  constructor(items: T[], maxQueue: number, retryAfterSeconds: number) {
    this.#free = items
    this.#maxQueue = maxQueue
    this.#retryAfter = retryAfterSeconds
  }

  acquire(signal: AbortSignal): Promise<T> {
    if (this.#closed !== null) return Promise.reject(this.#closed)
    if (signal.aborted) return Promise.reject(cancelled('the client went away'))
    const item = this.#free.pop()
    if (item !== undefined) return Promise.resolve(item)
    if (this.#waiting.length >= this.#maxQueue) {
      this.#refused++
      const retryAfter = String(this.#retryAfter)
      return Promise.reject(
        new EngineError('ENGINE_RATE_LIMITED', 'the engine is busy: every sequence is generating and the queue is full', {
          retryAfter,
          details: { reason: 'busy', queued: this.#waiting.length, retryAfter },
        }),
      )
    }
    return new Promise<T>((resolve, reject) => {
      const entry = {
        resolve: (it: T) => {
          signal.removeEventListener('abort', onAbort)
          resolve(it)
        },
        reject: (e: EngineError) => {
          signal.removeEventListener('abort', onAbort)
          reject(e)
        },
      }
      const onAbort = () => {
        const i = this.#waiting.indexOf(entry)
        if (i !== -1) this.#waiting.splice(i, 1)
        entry.reject(cancelled('the client went away while queued'))
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.#waiting.push(entry)
    })
  }

  get queued(): number {
    return this.#waiting.length
  }

  get refused(): number {
    return this.#refused
  }

  release(item: T): void {
    const next = this.#closed === null ? this.#waiting.shift() : undefined
    if (next !== undefined) next.resolve(item)
    else this.#free.push(item)
  }

  close(reason: EngineError): void {
    this.#closed = reason
    for (const w of this.#waiting.splice(0)) w.reject(reason)
  }
}

// --- the llama.cpp binding, shared ------------------------------------------------

interface LlamaLease {
  readonly llama: Llama
  release(): Promise<void>
}

/** One Llama (binding + backend) per backend/threads setting, shared by the engines of this process. */
const llamas = new Map<string, { llama: Promise<Llama>; users: number; log: Set<(level: string, message: string) => void> }>()

async function acquireLlama(gpu: Checked['gpu'], threads: number, log: (level: string, message: string) => void): Promise<LlamaLease> {
  const key = `${String(gpu)}/${threads}`
  let entry = llamas.get(key)
  if (entry === undefined) {
    const sinks = new Set<(level: string, message: string) => void>()
    const created = { llama: loadLlama(gpu, threads, (level, message) => sinks.forEach((s) => s(level, message))), users: 0, log: sinks }
    llamas.set(key, created)
    created.llama.catch(() => {
      if (llamas.get(key) === created) llamas.delete(key)
    })
    entry = created
  }
  const e = entry
  e.users++
  e.log.add(log)
  let llama: Llama
  try {
    llama = await e.llama
  } catch (err) {
    e.users--
    e.log.delete(log)
    throw err
  }
  let released = false
  return {
    llama,
    async release() {
      if (released) return
      released = true
      e.log.delete(log)
      if (--e.users === 0 && llamas.get(key) === e) {
        llamas.delete(key)
        await llama.dispose().catch(() => {})
      }
    },
  }
}

async function loadLlama(gpu: Checked['gpu'], threads: number, log: (level: string, message: string) => void): Promise<Llama> {
  const { getLlama, LlamaLogLevel } = await nodeLlamaCpp()
  try {
    return await getLlama({
      gpu,
      // Never build or download llama.cpp: only the prebuilt binaries npm installed (@node-llama-cpp/*).
      build: 'never',
      usePrebuiltBinaries: true,
      skipDownload: true,
      progressLogs: false,
      maxThreads: threads,
      logLevel: LlamaLogLevel.warn,
      logger: (level, message) => log(level, message),
    })
  } catch {
    throw new EngineError('ENGINE_UNAVAILABLE', `no usable prebuilt llama.cpp binary for gpu=${String(gpu)}`, { details: { reason: 'backend', gpu: String(gpu) } })
  }
}

type NodeLlamaCpp = typeof import('node-llama-cpp')
let nodeLlamaCppModule: Promise<NodeLlamaCpp> | null = null

/** node-llama-cpp, imported on first use: half a second of module loading that HTTP-engine deployments never pay. */
function nodeLlamaCpp(): Promise<NodeLlamaCpp> {
  nodeLlamaCppModule ??= import('node-llama-cpp')
  return nodeLlamaCppModule
}

// --- request parsing -----------------------------------------------------------

function parseBody(body: Uint8Array): Record<string, unknown> {
  if (body.length > MAX_BODY_BYTES) throw badRequest('body_too_large', 'the request body is too large')
  return parseJsonObject(body)
}

/** Fields a request may carry: handled, or accepted because they change nothing here. */
const COMMON_FIELDS = ['model', 'stream', 'stream_options', 'max_tokens', 'temperature', 'top_p', 'top_k', 'min_p', 'seed', 'stop', 'n', 'presence_penalty', 'frequency_penalty', 'user', 'logprobs']
const CHAT_FIELDS = new Set([...COMMON_FIELDS, 'messages', 'max_completion_tokens'])
const COMPLETION_FIELDS = new Set([...COMMON_FIELDS, 'prompt', 'echo', 'best_of'])
/** Known OpenAI fields this engine does not implement: refused by name, so the client learns why. */
const UNSUPPORTED_FIELDS = new Set([
  'tools',
  'tool_choice',
  'functions',
  'function_call',
  'parallel_tool_calls',
  'response_format',
  'logit_bias',
  'top_logprobs',
  'audio',
  'modalities',
  'prediction',
  'suffix',
  'reasoning_effort',
  'web_search_options',
  'service_tier',
  'store',
  'metadata',
])

function checkFields(body: Record<string, unknown>, allowed: ReadonlySet<string>): void {
  for (const key of Object.keys(body)) {
    if (allowed.has(key)) continue
    const field = TOKEN_RE.test(key) ? key : undefined
    if (UNSUPPORTED_FIELDS.has(key)) throw badRequest('unsupported_field', `field ${key} is not supported by this engine`, field)
    throw badRequest('unknown_field', field === undefined ? 'the request has an unknown field' : `unknown field ${key}`, field)
  }
}

function checkModel(body: Record<string, unknown>, modelId: string): void {
  if (typeof body.model !== 'string' || body.model === '') throw badRequest('invalid_field', 'model must be a non-empty string', 'model')
  if (body.model !== modelId) throw new EngineError('ENGINE_MODEL_NOT_FOUND', 'the engine does not serve this model', { details: { reason: 'model' } })
}

function parseGeneration(body: Record<string, unknown>, maxTokensCap: number, maxTokensField: unknown, maxTokensName: string): GenerationRequest {
  const stream = optional<boolean>(body, 'stream', (v) => typeof v === 'boolean') ?? false
  const streamOptions = body.stream_options
  let includeUsage = false
  if (streamOptions !== undefined && streamOptions !== null) {
    if (!stream) throw badRequest('invalid_field', 'stream_options is only allowed with stream: true', 'stream_options')
    if (!isObject(streamOptions) || Object.keys(streamOptions).some((k) => k !== 'include_usage') || (streamOptions.include_usage !== undefined && typeof streamOptions.include_usage !== 'boolean')) {
      throw badRequest('invalid_field', 'stream_options must be { include_usage?: boolean }', 'stream_options')
    }
    includeUsage = streamOptions.include_usage === true
  }
  let maxTokens: number | undefined
  if (maxTokensField !== undefined && maxTokensField !== null) {
    if (!isInt(maxTokensField) || maxTokensField < 1) throw badRequest('invalid_field', `${maxTokensName} must be a positive integer`, maxTokensName)
    if (maxTokensField > maxTokensCap) throw badRequest('max_tokens', `${maxTokensName} exceeds this engine's limit of ${maxTokensCap}`, maxTokensName)
    maxTokens = maxTokensField
  }
  const temperature = optional(body, 'temperature', (v) => isNum(v) && v >= 0 && v <= 2) ?? 1
  const topP = optional(body, 'top_p', (v) => isNum(v) && v > 0 && v <= 1)
  const topK = optional(body, 'top_k', (v) => isInt(v) && v >= 0)
  const minP = optional(body, 'min_p', (v) => isNum(v) && v >= 0 && v <= 1)
  const seedValue = optional(body, 'seed', (v) => isInt(v))
  const presencePenalty = optional(body, 'presence_penalty', (v) => isNum(v) && v >= -2 && v <= 2)
  const frequencyPenalty = optional(body, 'frequency_penalty', (v) => isNum(v) && v >= -2 && v <= 2)
  optional(body, 'user', (v) => typeof v === 'string')
  const n = optional(body, 'n', (v) => isInt(v))
  if (n !== undefined && n !== 1) throw badRequest('unsupported_field', 'only n: 1 is supported', 'n')
  const logprobs = body.logprobs
  if (logprobs !== undefined && logprobs !== null && logprobs !== false) throw badRequest('unsupported_field', 'logprobs are not supported', 'logprobs')
  return {
    stream,
    includeUsage,
    maxTokens,
    temperature,
    ...(topP !== undefined ? { topP } : {}),
    ...(topK !== undefined ? { topK } : {}),
    ...(minP !== undefined ? { minP } : {}),
    // OpenAI seeds are any integer; llama.cpp takes 32 bits.
    ...(seedValue !== undefined ? { seed: Number(BigInt.asUintN(32, BigInt(seedValue))) } : {}),
    ...(presencePenalty !== undefined && presencePenalty !== 0 ? { presencePenalty } : {}),
    ...(frequencyPenalty !== undefined && frequencyPenalty !== 0 ? { frequencyPenalty } : {}),
    stop: parseStop(body.stop),
  }
}

function parseStop(v: unknown): string[] {
  if (v === undefined || v === null) return []
  const list = typeof v === 'string' ? [v] : v
  if (!Array.isArray(list) || list.length > MAX_STOP || !list.every((s) => typeof s === 'string' && s !== '')) {
    throw badRequest('invalid_field', `stop must be a non-empty string or up to ${MAX_STOP} of them`, 'stop')
  }
  return list as string[]
}

function parseChatRequest(body: Record<string, unknown>, modelId: string, maxTokensCap: number): ChatRequest {
  checkFields(body, CHAT_FIELDS)
  checkModel(body, modelId)
  if (body.max_tokens !== undefined && body.max_completion_tokens !== undefined) throw badRequest('invalid_field', 'give max_tokens or max_completion_tokens, not both', 'max_completion_tokens')
  const limitName = body.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens'
  const gen = parseGeneration(body, maxTokensCap, body[limitName], limitName)
  const messages = body.messages
  if (!Array.isArray(messages) || messages.length === 0) throw badRequest('invalid_field', 'messages must be a non-empty array', 'messages')
  const history: ChatHistoryItem[] = messages.map((m, i) => toHistoryItem(m, i))
  return { ...gen, history }
}

function toHistoryItem(m: unknown, index: number): ChatHistoryItem {
  if (!isObject(m)) throw badRequest('invalid_message', 'each message must be an object', 'messages', { index })
  for (const k of Object.keys(m)) {
    if (k !== 'role' && k !== 'content' && k !== 'name') {
      if (k === 'tool_calls' || k === 'tool_call_id' || k === 'function_call' || k === 'audio') throw badRequest('unsupported_field', 'tool and audio messages are not supported', 'messages', { index })
      throw badRequest('invalid_message', 'a message has an unknown field', 'messages', { index })
    }
  }
  if (m.name !== undefined && typeof m.name !== 'string') throw badRequest('invalid_message', 'message name must be a string', 'messages', { index })
  const text = messageText(m.content, index)
  switch (m.role) {
    case 'system':
    case 'developer':
      return { type: 'system', text }
    case 'user':
      return { type: 'user', text }
    case 'assistant':
      return { type: 'model', response: [text] }
    case 'tool':
    case 'function':
      throw badRequest('unsupported_field', 'tool messages are not supported', 'messages', { index })
    default:
      throw badRequest('invalid_message', 'message role must be system, developer, user or assistant', 'messages', { index })
  }
}

function messageText(content: unknown, index: number): string {
  if (typeof content === 'string') return content
  if (Array.isArray(content)) {
    let text = ''
    for (const part of content) {
      if (!isObject(part) || typeof part.type !== 'string') throw badRequest('invalid_message', 'content parts must be objects with a type', 'messages', { index })
      if (part.type !== 'text') throw badRequest('unsupported_field', 'only text content parts are supported', 'messages', { index })
      if (typeof part.text !== 'string' || Object.keys(part).some((k) => k !== 'type' && k !== 'text')) {
        throw badRequest('invalid_message', 'a text part is { type: "text", text: string }', 'messages', { index })
      }
      text += part.text
    }
    return text
  }
  throw badRequest('invalid_message', 'message content must be a string or an array of text parts', 'messages', { index })
}

function parseCompletionRequest(body: Record<string, unknown>, modelId: string, maxTokensCap: number): CompletionRequest {
  checkFields(body, COMPLETION_FIELDS)
  checkModel(body, modelId)
  const gen = parseGeneration(body, maxTokensCap, body.max_tokens, 'max_tokens')
  if (body.echo !== undefined && body.echo !== false) throw badRequest('unsupported_field', 'echo is not supported', 'echo')
  if (body.best_of !== undefined && body.best_of !== 1) throw badRequest('unsupported_field', 'only best_of: 1 is supported', 'best_of')
  let prompt = body.prompt
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === 'string') prompt = prompt[0]
  if (Array.isArray(prompt)) throw badRequest('unsupported_field', 'a prompt must be one string (batches and token arrays are not supported)', 'prompt')
  if (typeof prompt !== 'string' || prompt === '') throw badRequest('invalid_field', 'prompt must be a non-empty string', 'prompt')
  return { ...gen, prompt }
}

const EMBEDDING_FIELDS = new Set(['model', 'input', 'encoding_format', 'user', 'dimensions'])
/** OpenAI caps an embeddings request at 2048 inputs. */
const MAX_EMBEDDING_INPUTS = 2048

function parseEmbeddingRequest(body: Record<string, unknown>, modelId: string): { inputs: string[]; base64: boolean } {
  checkFields(body, EMBEDDING_FIELDS)
  checkModel(body, modelId)
  if (body.dimensions !== undefined) throw badRequest('unsupported_field', 'dimensions is not supported', 'dimensions')
  const format = body.encoding_format ?? 'float'
  if (format !== 'float' && format !== 'base64') throw badRequest('invalid_field', 'encoding_format must be "float" or "base64"', 'encoding_format')
  optional(body, 'user', (v) => typeof v === 'string')
  const input = body.input
  const inputs = typeof input === 'string' ? [input] : input
  if (!Array.isArray(inputs) || inputs.length === 0 || inputs.length > MAX_EMBEDDING_INPUTS) {
    throw badRequest('invalid_field', `input must be a string or 1 to ${MAX_EMBEDDING_INPUTS} strings`, 'input')
  }
  if (!inputs.every((s) => typeof s === 'string')) throw badRequest('unsupported_field', 'only string inputs are supported (not token arrays)', 'input')
  return { inputs: inputs as string[], base64: format === 'base64' }
}

/** A field that may be absent or null; present, it must pass `ok`, whose check also fixes its type (number unless said). */
function optional<T = number>(body: Record<string, unknown>, key: string, ok: (v: unknown) => boolean): T | undefined {
  const v = body[key]
  if (v === undefined || v === null) return undefined
  if (!ok(v)) throw badRequest('invalid_field', `field ${key} has an invalid value`, key)
  return v as T
}

function badRequest(reason: string, message: string, field?: string, extra: Record<string, unknown> = {}): EngineError {
  return new EngineError('ENGINE_BAD_REQUEST', message, { details: { reason, ...(field !== undefined ? { field } : {}), ...extra } })
}

// --- small helpers ------------------------------------------------------------------

function checkOptions(options: LlamaEngineOptions): Checked {
  const bad = (what: string, option: string): never => {
    throw new EngineError('ENGINE_OPTIONS_INVALID', what, { details: { reason: 'option', option } })
  }
  if (typeof options !== 'object' || options === null) bad('options must be an object', 'options')
  const { modelPath } = options
  if (typeof modelPath !== 'string' || modelPath === '') bad('modelPath must be a local file path', 'modelPath')
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(modelPath)) bad('modelPath must be a local file path, not a URL: nothing is downloaded', 'modelPath')
  if (options.modelId !== undefined && (typeof options.modelId !== 'string' || options.modelId === '' || options.modelId.length > 256)) bad('modelId must be a non-empty string', 'modelId')
  const gpu = options.gpu ?? false
  if (gpu !== false && gpu !== 'cuda' && gpu !== 'vulkan' && gpu !== 'auto') bad('gpu must be false, "cuda", "vulkan" or "auto"', 'gpu')
  const gpuLayers = options.gpuLayers ?? 'auto'
  if (gpuLayers !== 'auto' && gpuLayers !== 'max' && !(isInt(gpuLayers) && gpuLayers >= 0)) bad('gpuLayers must be a non-negative integer, "max" or "auto"', 'gpuLayers')
  const positive = (v: unknown, option: string, max = Number.MAX_SAFE_INTEGER): number | undefined => {
    if (v === undefined) return undefined
    if (!isInt(v) || v < 1 || v > max) bad(`${option} must be a positive integer`, option)
    return v as number
  }
  const contextSize = positive(options.contextSize, 'contextSize', 1 << 24)
  if (contextSize !== undefined && contextSize < 16) bad('contextSize must be at least 16', 'contextSize')
  const maxConcurrency = positive(options.maxConcurrency, 'maxConcurrency', 256) ?? LLAMA_ENGINE_DEFAULTS.maxConcurrency
  let maxQueue = options.maxQueue ?? maxConcurrency * LLAMA_ENGINE_DEFAULTS.queuePerSequence
  if (!isInt(maxQueue) || maxQueue < 0) bad('maxQueue must be a non-negative integer', 'maxQueue')
  maxQueue = maxQueue as number
  const threads = positive(options.threads, 'threads', 1024) ?? Math.max(1, Math.min(4, Math.floor(availableParallelism() / 2)))
  const maxTokens = positive(options.maxTokens, 'maxTokens')
  const retryAfterSeconds = positive(options.retryAfterSeconds, 'retryAfterSeconds', 3600) ?? LLAMA_ENGINE_DEFAULTS.retryAfterSeconds
  if (options.embeddings !== undefined && typeof options.embeddings !== 'boolean') bad('embeddings must be a boolean', 'embeddings')
  if (options.name !== undefined && (typeof options.name !== 'string' || options.name === '')) bad('name must be a non-empty string', 'name')
  return {
    modelPath,
    ...(options.modelId !== undefined ? { modelId: options.modelId } : {}),
    gpu,
    gpuLayers,
    ...(contextSize !== undefined ? { contextSize } : {}),
    maxConcurrency,
    maxQueue,
    threads,
    embeddings: options.embeddings ?? false,
    ...(maxTokens !== undefined ? { maxTokens } : {}),
    retryAfterSeconds,
    name: options.name ?? 'llama',
    ...(options.logger !== undefined ? { logger: options.logger } : {}),
    now: options.now ?? Date.now,
  }
}

/**
 * The GGUF magic and a version node-llama-cpp reads (gguf.md "File
 * Structure": magic "GGUF", u32 version). Checked first because
 * node-llama-cpp reads a file of another version as v3 anyway, and garbage
 * lengths can keep its parser busy for minutes.
 */
async function looksLikeGguf(path: string): Promise<boolean> {
  let file: FileHandle | undefined
  try {
    file = await open(path, 'r')
    const head = Buffer.alloc(8)
    const { bytesRead } = await file.read(head, 0, 8, 0)
    const version = head.readUInt32LE(4)
    return bytesRead === 8 && head.toString('latin1', 0, 4) === 'GGUF' && (version === 2 || version === 3)
  } catch {
    return false
  } finally {
    await file?.close()
  }
}

function sse(obj: unknown): Uint8Array {
  return encoder.encode(`data: ${JSON.stringify(obj)}\n\n`)
}

function encodeJson(obj: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(obj))
}

function float32Base64(v: readonly number[]): string {
  const f = Float32Array.from(v)
  return Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString('base64')
}

function isNum(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v)
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v)
}
