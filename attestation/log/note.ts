/**
 * C2SP signed-note: a UTF-8 text ending in a newline, a blank line, then
 * one or more signature lines `— <key name> <base64(key ID ‖ signature)>`
 * (U+2014 EM DASH). Ed25519 keys (signed-note "Signature types": type
 * 0x01) have key ID = SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)[:4] and the
 * verifier key string `<name>+<hex key ID>+<base64(0x01 ‖ public key)>`.
 *
 * Parsing checks framing only; `verifyNote` checks a signature by one given
 * key; unknown signers are ignored (signed-note: a verifier skips
 * signatures by keys it does not know).
 */
import { createHash, createPublicKey, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto'
import { LogError, logError } from './errors.ts'
import { hex } from '../bytes/hex.ts'

/** signed-note: the signature type byte of Ed25519. */
export const SIGNATURE_TYPE_ED25519 = 0x01
/** signed-note: a key ID is the first 4 bytes of the key hash. */
export const KEY_ID_SIZE = 4
const ED25519_PUBLIC_KEY_SIZE = 32
const ED25519_SIGNATURE_SIZE = 64
const EM_DASH = '\u2014'

export interface NoteSignature {
  readonly name: string
  /** 4-byte key ID. */
  readonly keyId: Uint8Array
  /** The signature bytes after the key ID. */
  readonly signature: Uint8Array
}

export interface Note {
  /** The signed text, ending in "\n". */
  readonly text: string
  readonly signatures: readonly NoteSignature[]
}

/** A signed-note key name: non-empty, no whitespace, no '+'. */
function checkName(name: string): void {
  if (typeof name !== 'string' || name.length === 0 || /[\s+]/u.test(name)) logError('LOG_NOTE_MALFORMED', 'a key name is non-empty and has no spaces or "+"', { name })
}

/** signed-note key ID of an Ed25519 key: SHA-256(name ‖ "\n" ‖ 0x01 ‖ key)[:4]. */
export function ed25519KeyId(name: string, publicKey: Uint8Array): Uint8Array {
  checkName(name)
  if (publicKey.length !== ED25519_PUBLIC_KEY_SIZE) logError('LOG_OPTIONS_INVALID', 'an Ed25519 public key is 32 bytes')
  return new Uint8Array(createHash('sha256').update(name).update('\n').update(Buffer.from([SIGNATURE_TYPE_ED25519])).update(publicKey).digest().subarray(0, KEY_ID_SIZE))
}

/** signed-note verifier key string `<name>+<hex key ID>+<base64(0x01 ‖ key)>`. */
export function formatVerifierKey(name: string, publicKey: Uint8Array): string {
  const id = hex(ed25519KeyId(name, publicKey))
  return `${name}+${id}+${Buffer.concat([Buffer.from([SIGNATURE_TYPE_ED25519]), publicKey]).toString('base64')}`
}

export interface VerifierKey {
  readonly name: string
  readonly keyId: Uint8Array
  readonly publicKey: Uint8Array
}

/** Parse a verifier key string (Ed25519 only); checks the key ID matches name and key. */
export function parseVerifierKey(vkey: string): VerifierKey {
  // name+id+key: the base64 key may itself contain '+', so split at the first two only.
  const m = typeof vkey === 'string' ? /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+={0,2})$/.exec(vkey) : null
  if (!m) logError('LOG_NOTE_MALFORMED', 'not a signed-note verifier key')
  const parts = [m[1]!, m[2]!, m[3]!]
  const raw = Buffer.from(parts[2]!, 'base64')
  if (raw.toString('base64') !== parts[2] || raw.length !== 1 + ED25519_PUBLIC_KEY_SIZE || raw[0] !== SIGNATURE_TYPE_ED25519) {
    logError('LOG_NOTE_MALFORMED', 'verifier key is not an Ed25519 key')
  }
  const publicKey = new Uint8Array(raw.subarray(1))
  const keyId = ed25519KeyId(parts[0]!, publicKey)
  if (hex(keyId) !== parts[1]) logError('LOG_NOTE_MALFORMED', 'verifier key ID does not match its name and key')
  return { name: parts[0]!, keyId, publicKey }
}

/** Parse a signed note's framing (no signature is checked). */
export function parseNote(input: Uint8Array | string): Note {
  const s = typeof input === 'string' ? input : decodeUtf8(input)
  const split = s.lastIndexOf('\n\n')
  if (split < 0) logError('LOG_NOTE_MALFORMED', 'no blank line before the signatures')
  const text = s.slice(0, split + 1)
  const sigBlock = s.slice(split + 2)
  if (text.includes('\r') || /[\u0000-\u0008\u000b-\u001f\u007f]/u.test(text)) logError('LOG_NOTE_MALFORMED', 'note text has control characters')
  if (!sigBlock.endsWith('\n')) logError('LOG_NOTE_MALFORMED', 'signature block does not end with a newline')
  const signatures: NoteSignature[] = []
  for (const line of sigBlock.slice(0, -1).split('\n')) {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/]+={0,2})$/u.exec(line)
    if (!m) logError('LOG_NOTE_MALFORMED', 'malformed signature line')
    const raw = Buffer.from(m[2]!, 'base64')
    if (raw.toString('base64') !== m[2] || raw.length <= KEY_ID_SIZE) logError('LOG_NOTE_MALFORMED', 'signature is not base64 of key ID and signature')
    checkName(m[1]!)
    signatures.push({ name: m[1]!, keyId: new Uint8Array(raw.subarray(0, KEY_ID_SIZE)), signature: new Uint8Array(raw.subarray(KEY_ID_SIZE)) })
  }
  if (signatures.length === 0) logError('LOG_NOTE_MALFORMED', 'a signed note has at least one signature')
  return { text, signatures }
}

function decodeUtf8(b: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b)
  } catch (cause) {
    return logError('LOG_NOTE_MALFORMED', 'note is not UTF-8', undefined, cause)
  }
}

const keyObjects = new Map<string, KeyObject>()

/** A node:crypto public key object for raw Ed25519 bytes (cached: the auditor verifies many notes by one key). */
export function ed25519PublicKeyObject(publicKey: Uint8Array): KeyObject {
  const k = Buffer.from(publicKey).toString('base64url')
  let o = keyObjects.get(k)
  if (!o) {
    o = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: k }, format: 'jwk' })
    if (keyObjects.size > 1024) keyObjects.clear()
    keyObjects.set(k, o)
  }
  return o
}

/** The signature line for `text` by an Ed25519 private key (the key stays a KeyObject: never bytes, never logged). */
export function signNoteText(text: string, name: string, publicKey: Uint8Array, privateKey: KeyObject): string {
  if (!text.endsWith('\n')) logError('LOG_NOTE_MALFORMED', 'note text ends with a newline')
  const sig = nodeSign(null, Buffer.from(text, 'utf8'), privateKey)
  const id = ed25519KeyId(name, publicKey)
  return `${EM_DASH} ${name} ${Buffer.concat([id, sig]).toString('base64')}\n`
}

/** A whole signed note: text, blank line, signature line. */
export function formatSignedNote(text: string, signatureLines: readonly string[]): string {
  return `${text}\n${signatureLines.join('')}`
}

/**
 * Check that `note` carries a valid Ed25519 signature by `key`; throws
 * LOG_CHECKPOINT_SIGNATURE_INVALID otherwise. Returns that signature.
 */
export function verifyNote(note: Note, key: VerifierKey): NoteSignature {
  let candidates = 0
  for (const s of note.signatures) {
    if (s.name !== key.name || Buffer.compare(s.keyId, key.keyId) !== 0) continue
    candidates++
    if (s.signature.length === ED25519_SIGNATURE_SIZE && nodeVerify(null, Buffer.from(note.text, 'utf8'), ed25519PublicKeyObject(key.publicKey), s.signature)) return s
  }
  throw new LogError('LOG_CHECKPOINT_SIGNATURE_INVALID', candidates === 0 ? 'no signature by the log key' : 'the log key signature does not verify', {
    details: { keyName: key.name, keyId: hex(key.keyId), candidates },
  })
}
