/**
 * A tiny llama-architecture GGUF model with deterministic random weights and
 * a byte-level BPE tokenizer with a ChatML template: what the embedded
 * engine's tests load with the real llama.cpp, and what `npm start` serves
 * when no model is configured, so the system runs end to end with nothing
 * downloaded.
 *
 * It produces gibberish by design. Two choices make the gibberish usable:
 * only printable ASCII (and merged) tokens get non-zero output rows, so the
 * text is readable and valid UTF-8 at temperature 0; and no end-of-generation
 * token ever wins, so a request runs until max_tokens or a stop sequence,
 * which makes lengths predictable in tests.
 *
 * Keys and tensors follow what llama.cpp's loader requires for LLM_ARCH_LLAMA
 * (src/models/llama.cpp `load_arch_hparams` / `load_arch_tensors`,
 * src/llama-model.cpp `load_hparams`, src/llama-vocab.cpp `load`), named as
 * in gguf.md "Standardized key-value pairs".
 */
import { writeFile, rename, rm } from 'node:fs/promises'
import { buildByteLevelVocab, type ByteLevelVocab } from './byte-level-bpe.ts'
import { GgufError } from './errors.ts'
import { encodeGguf, GGUF_DEFAULT_ALIGNMENT, type GgufTensor, type GgufValue } from './writer.ts'

export interface TinyModelOptions {
  /** Seed of the weights (an unsigned 32-bit integer). Same seed and options → byte-identical file. Default 1. */
  readonly seed?: number
  /** Embedding width (llama.embedding_length). Default 64. */
  readonly embeddingLength?: number
  /** Transformer blocks (llama.block_count). Default 2. */
  readonly blockCount?: number
  /** Attention heads (llama.attention.head_count); must divide embeddingLength into an even head size. Default 4. */
  readonly headCount?: number
  /** Feed-forward width (llama.feed_forward_length). Default 128. */
  readonly feedForwardLength?: number
  /** Training context (llama.context_length): the largest context a runtime should ask for. Default 256. */
  readonly contextLength?: number
  /** general.name. Default "cgw-tiny-random". */
  readonly name?: string
}

export const TINY_MODEL_DEFAULTS = {
  seed: 1,
  embeddingLength: 64,
  blockCount: 2,
  headCount: 4,
  feedForwardLength: 128,
  contextLength: 256,
  name: 'cgw-tiny-random',
} as const

/**
 * ChatML (the Qwen / OpenAI ChatML convention) as a Jinja template, the form
 * `tokenizer.chat_template` takes (gguf.md "Prompting"); node-llama-cpp
 * recognises it and formats chats with its ChatML wrapper.
 */
const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

/** gguf.md "general.file_type": 0 = ALL_F32. */
const FILE_TYPE_ALL_F32 = 0
/** llama.cpp's own default RMS-norm epsilon for llama models (convert_hf_to_gguf.py writes the HF config's 1e-5/1e-6). */
const RMS_EPS = 1e-5
/** gguf.md "[llm].rope.freq_base": the original LLaMA base. */
const ROPE_FREQ_BASE = 10000
/**
 * Scale of the output rows of visible tokens: large enough that their logits
 * spread by several units, so greedy decoding is decisive and stable under
 * the small float differences between CPU kernels.
 */
const OUTPUT_SCALE = 4

/** Build the tiny model's GGUF bytes (pure: no I/O). */
export function buildTinyModel(options: TinyModelOptions = {}): Uint8Array {
  const o = checkOptions(options)
  const vocab = buildByteLevelVocab()
  const rng = mulberry32(o.seed)
  const nVocab = vocab.tokens.length
  const nEmbd = o.embeddingLength
  const nFf = o.feedForwardLength
  const headDim = nEmbd / o.headCount

  const u32 = (value: number): GgufValue => ({ type: 'uint32', value })
  const metadata: [string, GgufValue][] = [
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['general.name', { type: 'string', value: o.name }],
    ['general.alignment', u32(GGUF_DEFAULT_ALIGNMENT)],
    ['general.file_type', u32(FILE_TYPE_ALL_F32)],
    ['llama.vocab_size', u32(nVocab)],
    ['llama.context_length', u32(o.contextLength)],
    ['llama.embedding_length', u32(nEmbd)],
    ['llama.block_count', u32(o.blockCount)],
    ['llama.feed_forward_length', u32(nFf)],
    ['llama.attention.head_count', u32(o.headCount)],
    ['llama.attention.head_count_kv', u32(o.headCount)],
    // llama.cpp requires n_rot == head size for LLM_ARCH_LLAMA (llama-model.cpp "invalid n_rot").
    ['llama.rope.dimension_count', u32(headDim)],
    ['llama.rope.freq_base', { type: 'float32', value: ROPE_FREQ_BASE }],
    ['llama.attention.layer_norm_rms_epsilon', { type: 'float32', value: RMS_EPS }],
    ...tokenizerMetadata(vocab),
  ]

  // Shapes are ggml order, row length first (llama.cpp `create_tensor(..., {n_embd, n_vocab})`).
  const tensors: GgufTensor[] = []
  const add = (name: string, dims: readonly number[], data: Float32Array): void => {
    tensors.push({ name, dims, type: 'F32', data })
  }
  add('token_embd.weight', [nEmbd, nVocab], uniform(rng, nEmbd * nVocab, 1))
  add('output_norm.weight', [nEmbd], ones(nEmbd))
  add('output.weight', [nEmbd, nVocab], outputRows(rng, vocab, nEmbd))
  for (let i = 0; i < o.blockCount; i++) {
    const attn = 1 / Math.sqrt(nEmbd)
    add(`blk.${i}.attn_norm.weight`, [nEmbd], ones(nEmbd))
    add(`blk.${i}.attn_q.weight`, [nEmbd, nEmbd], uniform(rng, nEmbd * nEmbd, attn))
    add(`blk.${i}.attn_k.weight`, [nEmbd, nEmbd], uniform(rng, nEmbd * nEmbd, attn))
    add(`blk.${i}.attn_v.weight`, [nEmbd, nEmbd], uniform(rng, nEmbd * nEmbd, attn))
    add(`blk.${i}.attn_output.weight`, [nEmbd, nEmbd], uniform(rng, nEmbd * nEmbd, attn))
    add(`blk.${i}.ffn_norm.weight`, [nEmbd], ones(nEmbd))
    add(`blk.${i}.ffn_gate.weight`, [nEmbd, nFf], uniform(rng, nEmbd * nFf, attn))
    add(`blk.${i}.ffn_up.weight`, [nEmbd, nFf], uniform(rng, nEmbd * nFf, attn))
    add(`blk.${i}.ffn_down.weight`, [nFf, nEmbd], uniform(rng, nFf * nEmbd, 1 / Math.sqrt(nFf)))
  }
  return encodeGguf({ metadata, tensors })
}

/**
 * Write the tiny model to `path` (atomically: a temporary file renamed into
 * place, so a concurrent reader never sees half a model).
 */
export async function generateTinyModel(options: TinyModelOptions & { readonly path: string }): Promise<{ readonly path: string; readonly bytes: number }> {
  if (typeof options.path !== 'string' || options.path === '') throw new GgufError('GGUF_OPTIONS_INVALID', 'path must be a file path')
  const bytes = buildTinyModel(options)
  const tmp = `${options.path}.${process.pid}.tmp`
  try {
    await writeFile(tmp, bytes)
    await rename(tmp, options.path)
  } catch (e) {
    await rm(tmp, { force: true })
    throw e
  }
  return { path: options.path, bytes: bytes.length }
}

function tokenizerMetadata(vocab: ByteLevelVocab): [string, GgufValue][] {
  return [
    ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
    // llama-vocab.cpp: "gpt-2" selects the GPT-2 pre-tokenizer regex; leaving it out logs a loud warning.
    ['tokenizer.ggml.pre', { type: 'string', value: 'gpt-2' }],
    ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: vocab.tokens }],
    ['tokenizer.ggml.token_type', { type: 'array', itemType: 'int32', value: vocab.tokenTypes }],
    ['tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: vocab.merges }],
    ['tokenizer.ggml.bos_token_id', { type: 'uint32', value: vocab.endOfTextId }],
    ['tokenizer.ggml.eos_token_id', { type: 'uint32', value: vocab.imEndId }],
    ['tokenizer.ggml.padding_token_id', { type: 'uint32', value: vocab.endOfTextId }],
    // ChatML models (Qwen) add no BOS: the template's <|im_start|> opens the prompt.
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: false }],
    ['tokenizer.chat_template', { type: 'string', value: CHATML_TEMPLATE }],
  ]
}

/** Output projection: random rows for visible tokens, zero rows for the rest (see the module header). */
function outputRows(rng: () => number, vocab: ByteLevelVocab, nEmbd: number): Float32Array {
  const out = new Float32Array(nEmbd * vocab.tokens.length)
  const scale = OUTPUT_SCALE / Math.sqrt(nEmbd)
  for (const id of vocab.printableIds) {
    for (let j = 0; j < nEmbd; j++) out[id * nEmbd + j] = (rng() * 2 - 1) * scale * Math.sqrt(3)
  }
  return out
}

function uniform(rng: () => number, n: number, scale: number): Float32Array {
  const out = new Float32Array(n)
  // Uniform on [-a, a] has standard deviation a/sqrt(3): scale is the standard deviation asked for.
  const a = scale * Math.sqrt(3)
  for (let i = 0; i < n; i++) out[i] = (rng() * 2 - 1) * a
  return out
}

function ones(n: number): Float32Array {
  return new Float32Array(n).fill(1)
}

/** mulberry32: a small, fast, well-mixed 32-bit PRNG; weights need determinism, not cryptographic strength. */
function mulberry32(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000
  }
}

function checkOptions(options: TinyModelOptions): Required<TinyModelOptions> {
  const o = { ...TINY_MODEL_DEFAULTS, ...stripUndefined(options) }
  const int = (key: keyof TinyModelOptions, min: number, max: number): void => {
    const v = o[key]
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new GgufError('GGUF_OPTIONS_INVALID', `${key} must be an integer in [${min}, ${max}]`, { details: { option: key } })
    }
  }
  int('seed', 0, 0xffffffff)
  int('embeddingLength', 8, 4096)
  int('blockCount', 1, 64)
  int('headCount', 1, 64)
  int('feedForwardLength', 8, 16384)
  int('contextLength', 16, 1 << 20)
  if (o.embeddingLength % o.headCount !== 0 || (o.embeddingLength / o.headCount) % 2 !== 0) {
    // RoPE rotates pairs of dimensions, so the head size must be even.
    throw new GgufError('GGUF_OPTIONS_INVALID', 'headCount must divide embeddingLength into an even head size', { details: { option: 'headCount' } })
  }
  if (typeof o.name !== 'string' || o.name === '') throw new GgufError('GGUF_OPTIONS_INVALID', 'name must be a non-empty string', { details: { option: 'name' } })
  return o
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}
