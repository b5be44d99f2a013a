/**
 * C2SP tlog-checkpoint: the note text `<origin>\n<tree size>\n<base64 root
 * hash>\n[extension lines]`, signed as a C2SP signed-note by the log key.
 *
 * Origin of a gateway's log (documented in DESIGN/README):
 * `cgw.log/<logId as 64 lower-case hex digits>`, where logId = enclaveId =
 * keccak256(raw 32-byte Ed25519 log public key) — the identifier the
 * on-chain registry uses for the enclave. The signing key's name is the
 * origin (tlog-checkpoint: "the key name SHOULD be the origin").
 */
import { keccak_256 } from '@noble/hashes/sha3.js'
import type { KeyObject } from 'node:crypto'
import { hex } from '../bytes/hex.ts'
import { HASH_SIZE } from './hash.ts'
import { logError } from './errors.ts'
import { ed25519KeyId, formatSignedNote, parseNote, signNoteText, verifyNote, type Note, type VerifierKey } from './note.ts'

/** Prefix of a gateway log's origin line. */
export const ORIGIN_PREFIX = 'cgw.log/'

export interface Checkpoint {
  readonly origin: string
  readonly size: number
  readonly root: Uint8Array
  /** tlog-checkpoint extension lines (each without its newline). */
  readonly extensions: readonly string[]
}

/** logId = keccak256(raw Ed25519 public key), as 0x-hex (the registry's enclaveId). */
export function logIdOf(publicKey: Uint8Array): `0x${string}` {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) logError('LOG_OPTIONS_INVALID', 'a log public key is 32 raw Ed25519 bytes')
  return `0x${hex(keccak_256(publicKey))}`
}

/** The origin line of the log with this public key. */
export function originOf(publicKey: Uint8Array): string {
  return `${ORIGIN_PREFIX}${logIdOf(publicKey).slice(2)}`
}

/** The signed-note verifier key of a log (name = origin). */
export function logVerifierKey(publicKey: Uint8Array): VerifierKey {
  // Built directly rather than formatted and parsed back: originOf checks the key (32 bytes) and the name is always a valid key name.
  const name = originOf(publicKey)
  return { name, keyId: ed25519KeyId(name, publicKey), publicKey: new Uint8Array(publicKey) }
}

/** The checkpoint body (note text). */
export function formatCheckpoint(c: Checkpoint): string {
  if (!c.origin || c.origin.includes('\n')) logError('LOG_CHECKPOINT_MALFORMED', 'origin must be one non-empty line')
  if (!Number.isSafeInteger(c.size) || c.size < 0) logError('LOG_CHECKPOINT_MALFORMED', 'size must be a non-negative integer')
  if (c.root.length !== HASH_SIZE) logError('LOG_CHECKPOINT_MALFORMED', 'root must be 32 bytes')
  for (const e of c.extensions) if (e.length === 0 || e.includes('\n')) logError('LOG_CHECKPOINT_MALFORMED', 'an extension is one non-empty line')
  return `${c.origin}\n${c.size}\n${Buffer.from(c.root).toString('base64')}\n${c.extensions.map((e) => `${e}\n`).join('')}`
}

/** Parse a checkpoint body (note text). */
export function parseCheckpointText(text: string): Checkpoint {
  const lines = text.split('\n')
  if (lines.length < 4 || lines[lines.length - 1] !== '') logError('LOG_CHECKPOINT_MALFORMED', 'a checkpoint has origin, size and root lines')
  const [origin, sizeLine, rootLine] = lines as [string, string, string]
  if (origin.length === 0) logError('LOG_CHECKPOINT_MALFORMED', 'empty origin')
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeLine) || !Number.isSafeInteger(Number(sizeLine))) logError('LOG_CHECKPOINT_MALFORMED', 'size is not a decimal integer')
  const root = Buffer.from(rootLine, 'base64')
  if (root.length !== HASH_SIZE || root.toString('base64') !== rootLine) logError('LOG_CHECKPOINT_MALFORMED', 'root is not base64 of 32 bytes')
  const extensions = lines.slice(3, -1)
  for (const e of extensions) if (e.length === 0) logError('LOG_CHECKPOINT_MALFORMED', 'empty extension line')
  return { origin, size: Number(sizeLine), root: new Uint8Array(root), extensions }
}

/** Sign a checkpoint with the log's Ed25519 private key; the whole signed note. */
export function signCheckpoint(c: Checkpoint, publicKey: Uint8Array, privateKey: KeyObject): string {
  const text = formatCheckpoint(c)
  return formatSignedNote(text, [signNoteText(text, c.origin, publicKey, privateKey)])
}

export interface SignedCheckpoint {
  readonly checkpoint: Checkpoint
  readonly note: Note
}

/** Parse a signed checkpoint (framing only). */
export function parseSignedCheckpoint(input: Uint8Array | string): SignedCheckpoint {
  const note = parseNote(input)
  return { note, checkpoint: parseCheckpointText(note.text) }
}

/**
 * Verify a signed checkpoint against the log public key: a valid signature
 * by the key named by the origin, and the origin that key implies. Throws
 * LOG_CHECKPOINT_SIGNATURE_INVALID.
 */
export function verifyCheckpoint(input: Uint8Array | string, publicKey: Uint8Array): Checkpoint {
  const { note, checkpoint } = parseSignedCheckpoint(input)
  const key = logVerifierKey(publicKey)
  if (checkpoint.origin !== key.name) {
    logError('LOG_CHECKPOINT_SIGNATURE_INVALID', 'the checkpoint origin is not the log of this key', { origin: checkpoint.origin, expected: key.name })
  }
  verifyNote(note, key)
  return checkpoint
}
