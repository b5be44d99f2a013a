/**
 * A GGUF v3 writer: header, metadata key/value pairs of every GGUF value
 * type, tensor infos and F32 or F16 tensor data, aligned as the spec requires.
 *
 * Spec: github.com/ggml-org/ggml docs/gguf.md ("File Structure"), and the
 * reader it must satisfy, ggml/src/gguf.cpp. Everything is little-endian.
 *
 * Values are tagged with their GGUF type rather than inferred from JS types:
 * a JS number does not say whether llama.cpp expects u32, i32 or f32, and
 * llama.cpp refuses a key of the wrong type (e.g. `general.alignment` must be
 * UINT32), so the caller states it.
 */
import { GgufError } from './errors.ts'

/** "GGUF" read as a little-endian u32 (gguf.md "File Structure": magic). */
const GGUF_MAGIC = 0x46554747
/** gguf.md: version 3 adds big-endian support; we write little-endian v3. */
const GGUF_VERSION = 3
/** gguf.md "general.alignment": default and the value we write; must be a power of two (gguf.cpp checks). */
export const GGUF_DEFAULT_ALIGNMENT = 32

/** gguf.md `enum gguf_metadata_value_type`. */
const GGUF_VALUE_TYPES = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const

/** gguf.md `enum ggml_type`: the tensor types this writer produces. */
const GGML_TYPES = {
  F32: 0,
  F16: 1,
} as const

type GgufScalarType = Exclude<keyof typeof GGUF_VALUE_TYPES, 'array'>
type GgufNumberType = Exclude<GgufScalarType, 'bool' | 'string' | 'uint64' | 'int64'>

/** One metadata value with its GGUF type. */
export type GgufValue =
  | { readonly type: GgufNumberType; readonly value: number }
  | { readonly type: 'uint64' | 'int64'; readonly value: bigint }
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'array'; readonly itemType: GgufNumberType; readonly value: readonly number[] }
  | { readonly type: 'array'; readonly itemType: 'uint64' | 'int64'; readonly value: readonly bigint[] }
  | { readonly type: 'array'; readonly itemType: 'bool'; readonly value: readonly boolean[] }
  | { readonly type: 'array'; readonly itemType: 'string'; readonly value: readonly string[] }

/** One tensor: `dims` innermost first (ggml `ne[0]` is the row length), F32 data in row-major ggml order. */
export interface GgufTensor {
  readonly name: string
  readonly dims: readonly number[]
  readonly type: keyof typeof GGML_TYPES
  readonly data: Float32Array
}

export interface GgufDocument {
  /** Written in this order; keys must be unique. `general.alignment`, when present, must be a UINT32 power of two. */
  readonly metadata: ReadonlyArray<readonly [key: string, value: GgufValue]>
  /** Written in this order; names must be unique. */
  readonly tensors: readonly GgufTensor[]
}

/** gguf.md: tensor names are at most 64 bytes (GGML_MAX_NAME). */
const MAX_TENSOR_NAME = 64
/** gguf.md: tensors have at most 4 dimensions (GGML_MAX_DIMS). */
const MAX_DIMS = 4

const RANGES: Record<GgufNumberType, readonly [number, number] | null> = {
  uint8: [0, 0xff],
  int8: [-0x80, 0x7f],
  uint16: [0, 0xffff],
  int16: [-0x8000, 0x7fff],
  uint32: [0, 0xffffffff],
  int32: [-0x80000000, 0x7fffffff],
  float32: null,
  float64: null,
}

const utf8 = new TextEncoder()
/** A lone surrogate would be written as U+FFFD by TextEncoder: refuse it rather than change the string. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * Encode a GGUF v3 file. Output depends only on the document: the same
 * document gives byte-identical output (padding is zeros).
 */
export function encodeGguf(doc: GgufDocument): Uint8Array {
  const alignment = alignmentOf(doc.metadata)
  const out = new ByteSink()
  out.u32(GGUF_MAGIC)
  out.u32(GGUF_VERSION)
  out.u64(BigInt(doc.tensors.length))
  out.u64(BigInt(doc.metadata.length))

  const keys = new Set<string>()
  for (const [key, value] of doc.metadata) {
    if (key === '' || keys.has(key)) throw new GgufError('GGUF_VALUE_INVALID', `metadata key ${JSON.stringify(key)} is empty or repeated`, { details: { key } })
    keys.add(key)
    out.string(key)
    writeValue(out, key, value)
  }

  // gguf.md: each tensor's offset is relative to the start of the data section and a multiple of the alignment.
  const names = new Set<string>()
  let offset = 0
  const placed: { tensor: GgufTensor; bytes: number; offset: number }[] = []
  for (const tensor of doc.tensors) {
    const bytes = checkTensor(tensor, names)
    out.string(tensor.name)
    out.u32(tensor.dims.length)
    for (const d of tensor.dims) out.u64(BigInt(d))
    out.u32(GGML_TYPES[tensor.type])
    out.u64(BigInt(offset))
    placed.push({ tensor, bytes, offset })
    offset += pad(bytes, alignment)
  }

  out.padTo(alignment)
  const dataStart = out.length
  for (const { tensor, offset: at } of placed) {
    out.padTo(alignment)
    if (out.length - dataStart !== at) throw new Error('gguf writer: data offset drift (bug)')
    if (tensor.type === 'F32') out.f32Array(tensor.data)
    else out.f16Array(tensor.data)
  }
  // gguf.cpp reads the data section as the sum of padded tensor sizes, so the last tensor is padded too.
  out.padTo(alignment)
  return out.bytes()
}

function alignmentOf(metadata: GgufDocument['metadata']): number {
  const entry = metadata.find(([k]) => k === 'general.alignment')
  if (entry === undefined) return GGUF_DEFAULT_ALIGNMENT
  const v = entry[1]
  // gguf.cpp refuses any other type, and any value that is not a power of two.
  if (v.type !== 'uint32' || v.value <= 0 || (v.value & (v.value - 1)) !== 0) {
    throw new GgufError('GGUF_VALUE_INVALID', 'general.alignment must be a uint32 power of two', { details: { key: 'general.alignment' } })
  }
  return v.value
}

function checkTensor(t: GgufTensor, names: Set<string>): number {
  const nameBytes = utf8.encode(t.name).length
  if (nameBytes === 0 || nameBytes >= MAX_TENSOR_NAME || names.has(t.name)) {
    throw new GgufError('GGUF_TENSOR_INVALID', `tensor name ${JSON.stringify(t.name)} is empty, too long or repeated`, { details: { tensor: t.name } })
  }
  names.add(t.name)
  if (!Object.hasOwn(GGML_TYPES, t.type)) throw new GgufError('GGUF_TENSOR_INVALID', `tensor ${t.name}: type must be F32 or F16`, { details: { tensor: t.name } })
  if (t.dims.length === 0 || t.dims.length > MAX_DIMS || !t.dims.every((d) => Number.isSafeInteger(d) && d > 0)) {
    throw new GgufError('GGUF_TENSOR_INVALID', `tensor ${t.name}: 1 to ${MAX_DIMS} positive dimensions expected`, { details: { tensor: t.name } })
  }
  const elements = t.dims.reduce((a, b) => a * b, 1)
  if (elements !== t.data.length) {
    throw new GgufError('GGUF_TENSOR_INVALID', `tensor ${t.name}: ${t.data.length} values for ${elements} elements`, { details: { tensor: t.name, elements, values: t.data.length } })
  }
  return elements * (t.type === 'F32' ? 4 : 2)
}

function writeValue(out: ByteSink, key: string, v: GgufValue): void {
  if (!Object.hasOwn(GGUF_VALUE_TYPES, v.type)) throw new GgufError('GGUF_VALUE_INVALID', `metadata ${key}: unknown type`, { details: { key } })
  out.u32(GGUF_VALUE_TYPES[v.type])
  if (v.type !== 'array') return writeScalar(out, key, v.type, v.value)
  // gguf.md: arrays of arrays are allowed by the format, but llama.cpp reads none; we do not write them.
  if (!Object.hasOwn(GGUF_VALUE_TYPES, v.itemType) || (v.itemType as string) === 'array') {
    throw new GgufError('GGUF_VALUE_INVALID', `metadata ${key}: unsupported array item type`, { details: { key } })
  }
  out.u32(GGUF_VALUE_TYPES[v.itemType])
  out.u64(BigInt(v.value.length))
  for (const item of v.value) writeScalar(out, key, v.itemType, item)
}

function writeScalar(out: ByteSink, key: string, type: GgufScalarType, value: unknown): void {
  const bad = (what: string): never => {
    throw new GgufError('GGUF_VALUE_INVALID', `metadata ${key}: ${what} for ${type}`, { details: { key, type } })
  }
  switch (type) {
    case 'string':
      if (typeof value !== 'string' || LONE_SURROGATE.test(value)) bad('expected a well-formed string')
      return out.string(value as string)
    case 'bool':
      if (typeof value !== 'boolean') bad('expected a boolean')
      // gguf.md: bool is one byte, 0 or 1.
      return out.u8(value ? 1 : 0)
    case 'uint64':
    case 'int64': {
      if (typeof value !== 'bigint') bad('expected a bigint')
      const n = value as bigint
      if (type === 'uint64' ? n < 0n || n > 0xffffffffffffffffn : n < -(1n << 63n) || n >= 1n << 63n) bad('out of range')
      return type === 'uint64' ? out.u64(n) : out.i64(n)
    }
    default: {
      if (typeof value !== 'number' || Number.isNaN(value)) bad('expected a number')
      const n = value as number
      const range = RANGES[type]
      if (range !== null && (!Number.isInteger(n) || n < range[0] || n > range[1])) bad('expected an integer in range')
      return out.number(type, n)
    }
  }
}

function pad(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment
}

/** A growable little-endian byte buffer. */
class ByteSink {
  #buf = new Uint8Array(1 << 16)
  #view = new DataView(this.#buf.buffer)
  #len = 0

  get length(): number {
    return this.#len
  }

  bytes(): Uint8Array {
    return this.#buf.slice(0, this.#len)
  }

  #reserve(n: number): number {
    const need = this.#len + n
    if (need > this.#buf.length) {
      let size = this.#buf.length * 2
      while (size < need) size *= 2
      const next = new Uint8Array(size)
      next.set(this.#buf.subarray(0, this.#len))
      this.#buf = next
      this.#view = new DataView(next.buffer)
    }
    const at = this.#len
    this.#len = need
    return at
  }

  u8(v: number): void {
    this.#view.setUint8(this.#reserve(1), v)
  }

  u32(v: number): void {
    this.#view.setUint32(this.#reserve(4), v, true)
  }

  u64(v: bigint): void {
    this.#view.setBigUint64(this.#reserve(8), v, true)
  }

  i64(v: bigint): void {
    this.#view.setBigInt64(this.#reserve(8), v, true)
  }

  number(type: GgufNumberType, v: number): void {
    switch (type) {
      case 'uint8':
        return this.#view.setUint8(this.#reserve(1), v)
      case 'int8':
        return this.#view.setInt8(this.#reserve(1), v)
      case 'uint16':
        return this.#view.setUint16(this.#reserve(2), v, true)
      case 'int16':
        return this.#view.setInt16(this.#reserve(2), v, true)
      case 'uint32':
        return this.#view.setUint32(this.#reserve(4), v, true)
      case 'int32':
        return this.#view.setInt32(this.#reserve(4), v, true)
      case 'float32':
        return this.#view.setFloat32(this.#reserve(4), v, true)
      case 'float64':
        return this.#view.setFloat64(this.#reserve(8), v, true)
    }
  }

  /** gguf.md `gguf_string_t`: u64 byte length, then UTF-8 without a terminator. */
  string(s: string): void {
    const b = utf8.encode(s)
    this.u64(BigInt(b.length))
    this.#buf.set(b, this.#reserve(b.length))
  }

  f32Array(a: Float32Array): void {
    const at = this.#reserve(a.length * 4)
    for (let i = 0; i < a.length; i++) this.#view.setFloat32(at + i * 4, a[i]!, true)
  }

  f16Array(a: Float32Array): void {
    const at = this.#reserve(a.length * 2)
    for (let i = 0; i < a.length; i++) this.#view.setUint16(at + i * 2, toHalf(a[i]!), true)
  }

  padTo(alignment: number): void {
    // Bytes past #len were never written (a grown buffer starts zeroed), so padding is zeros and output is deterministic.
    this.#reserve(pad(this.#len, alignment) - this.#len)
  }
}

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** IEEE 754 binary32 → binary16, round to nearest even (ggml's GGML_FP32_TO_FP16 gives the same for finite values). */
function toHalf(v: number): number {
  f32[0] = v
  const x = u32[0]!
  const sign = (x >>> 16) & 0x8000
  const exp = (x >>> 23) & 0xff
  const mant = x & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0)
  const e = exp - 127 + 15
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    if (e < -10) return sign
    const m = mant | 0x800000
    const shift = 14 - e
    const half = 1 << (shift - 1)
    let r = m >>> shift
    const rest = m & ((1 << shift) - 1)
    if (rest > half || (rest === half && (r & 1) === 1)) r++
    return sign | r
  }
  let r = (e << 10) | (mant >>> 13)
  const rest = mant & 0x1fff
  if (rest > 0x1000 || (rest === 0x1000 && (r & 1) === 1)) r++
  return sign | r
}
