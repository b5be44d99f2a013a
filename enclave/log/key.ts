/**
 * The log key: an Ed25519 key pair made in memory when the gateway process
 * starts, never written to disk and never logged. Its public key is bound
 * into every quote (REPORTDATA, attestation/binding.ts) and names the log:
 * logId = enclaveId = keccak256(raw public key).
 *
 * The private key is a node:crypto KeyObject (signing with node:crypto is
 * several times faster than in JS); the object prints and serialises as
 * its public part only.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { inspect } from 'node:util'
import { logIdOf, originOf } from '../../attestation/log/checkpoint.ts'

export interface LogKey {
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array
  readonly logId: `0x${string}`
  /** C2SP tlog-checkpoint origin (attestation/log/checkpoint.ts). */
  readonly origin: string
  /** Only the writer signs with it. */
  readonly privateKey: KeyObject
  toJSON(): { publicKey: string; logId: string }
}

export function createLogKey(): LogKey {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519')
  const jwk = publicKey.export({ format: 'jwk' })
  const raw = new Uint8Array(Buffer.from(jwk.x!, 'base64url'))
  const logId = logIdOf(raw)
  const view = () => ({ publicKey: Buffer.from(raw).toString('base64'), logId })
  const key: LogKey = { publicKey: raw, logId, origin: originOf(raw), privateKey, toJSON: view }
  Object.defineProperty(key, 'privateKey', { value: privateKey, enumerable: false })
  Object.defineProperty(key, inspect.custom, { value: () => `LogKey ${JSON.stringify(view())}`, enumerable: false })
  return Object.freeze(key)
}
