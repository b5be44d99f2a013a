/**
 * The smallest tokenizer llama.cpp accepts that can encode any input: GPT-2
 * byte-level BPE (`tokenizer.ggml.model = "gpt2"`), i.e. one token per byte
 * in GPT-2's byte-to-unicode alphabet, a few merges, and ChatML control
 * tokens so chat templates work.
 *
 * Why byte-level: llama.cpp's BPE tokenizer maps every byte of the input to
 * a token of this alphabet before merging, so with all 256 byte tokens any
 * prompt tokenizes (a missing byte token would make it throw). Why GPT-2's
 * alphabet: llama.cpp decodes BPE token text through the inverse mapping
 * (unicode.cpp `unicode_utf8_to_byte`), so text must be in that alphabet.
 */

/** gguf.md "tokenizer.ggml.token_type" (llama.cpp `llama_token_type`). */
const TOKEN_TYPE = {
  NORMAL: 1,
  CONTROL: 3,
} as const

/** The ChatML control tokens (the names llama.cpp's vocab loader recognises as end-of-turn / end-of-generation). */
const CHATML_TOKENS = {
  endOfText: '<|endoftext|>',
  imStart: '<|im_start|>',
  imEnd: '<|im_end|>',
} as const

/**
 * Merges, lowest rank first, written in byte-to-unicode text ("Ġ" is the
 * space). A few common English pairs: enough to exercise merging, small
 * enough to keep the vocabulary tiny.
 */
const MERGES: readonly (readonly [string, string])[] = [
  ['Ġ', 't'],
  ['h', 'e'],
  ['Ġt', 'he'],
  ['i', 'n'],
  ['e', 'r'],
  ['a', 'n'],
  ['o', 'n'],
  ['Ġ', 'a'],
]

export interface ByteLevelVocab {
  /** Token texts by id: 0..255 are the bytes, then merges, then control tokens. */
  readonly tokens: readonly string[]
  readonly tokenTypes: readonly number[]
  /** "left right" strings, rank order (gguf.md "tokenizer.ggml.merges"). */
  readonly merges: readonly string[]
  readonly endOfTextId: number
  readonly imStartId: number
  readonly imEndId: number
  /** Ids of the byte tokens for printable ASCII (0x20..0x7e) and of the merged tokens: text a reader can see. */
  readonly printableIds: readonly number[]
}

/**
 * GPT-2's byte-to-unicode table (openai/gpt-2 encoder.py `bytes_to_unicode`):
 * printable Latin-1 bytes map to themselves, the other 68 to U+0100 upwards
 * in byte order, so no token text holds whitespace or control characters.
 */
function byteToUnicode(): readonly string[] {
  const table: string[] = new Array<string>(256)
  let next = 256
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)
    table[b] = String.fromCodePoint(printable ? b : next++)
  }
  return table
}

/** The tiny vocabulary: 256 byte tokens, the merged tokens, and the ChatML control tokens. */
export function buildByteLevelVocab(): ByteLevelVocab {
  const tokens = [...byteToUnicode()]
  const tokenTypes: number[] = tokens.map(() => TOKEN_TYPE.NORMAL)
  const printableIds: number[] = []
  for (let b = 0x20; b <= 0x7e; b++) printableIds.push(b)
  const merges: string[] = []
  for (const [left, right] of MERGES) {
    merges.push(`${left} ${right}`)
    printableIds.push(tokens.length)
    tokens.push(left + right)
    tokenTypes.push(TOKEN_TYPE.NORMAL)
  }
  const control = (text: string): number => {
    tokens.push(text)
    tokenTypes.push(TOKEN_TYPE.CONTROL)
    return tokens.length - 1
  }
  const endOfTextId = control(CHATML_TOKENS.endOfText)
  const imStartId = control(CHATML_TOKENS.imStart)
  const imEndId = control(CHATML_TOKENS.imEnd)
  return { tokens, tokenTypes, merges, endOfTextId, imStartId, imEndId, printableIds }
}
