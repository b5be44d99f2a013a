/** Types of receipt-batch-verify.mjs (batch verification of secp256k1 recoverable signatures by one key). */
export interface BatchItem {
  readonly digest: Uint8Array
  readonly signature: Uint8Array
  readonly publicKey: Uint8Array
}
export function recoveryId(signature: Uint8Array): 0 | 1 | null
export function toNobleRecovered(signature: Uint8Array): Uint8Array | null
export function verifyOne(digest: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean
export function verifyBatch(items: readonly BatchItem[]): boolean[]
