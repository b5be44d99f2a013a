/**
 * Prove that a receipt was logged: fetch the gateway's inclusion proof for
 * the receipt's log index (`GET /log/proof/<index>`, gateway/routes/log.ts),
 * check the signed checkpoint under the log key the quote bound and the
 * audit path to its root (attestation/log/client.ts, RFC 6962 §2.1.1), and
 * that the proven entry is this receipt: its EIP-712 digest and signature.
 *
 * The gateway is not trusted for any of it: a proof it made up fails the
 * checkpoint signature, an entry for another receipt fails the digest. A
 * consumer who keeps the returned checkpoint can later hold the log to it
 * (an auditor checks every checkpoint is consistent with the next).
 */
import { request } from 'undici'
import { verifyInclusionProofJson, type InclusionProofJson } from '../../attestation/log/client.ts'
import { decodeEntry } from '../../attestation/log/entry.ts'
import type { Checkpoint } from '../../attestation/log/checkpoint.ts'
import { BaseError } from '../../attestation/errors.ts'
import { hashReceipt, type ReceiptDomain, type ReceiptFields } from '../../enclave/receipts.ts'
import { readLimited } from './body.ts'
import { ClientError } from './errors.ts'

/** A proof is a checkpoint note, one entry and ~log2(size) hashes: far below this. */
const MAX_PROOF_BYTES = 256 * 1024

export interface ReceiptLoggedParameters {
  /** Gateway base URL (its log is served under /log). */
  readonly url: string
  readonly receipt: { readonly fields: ReceiptFields; readonly signature: `0x${string}`; readonly domain: ReceiptDomain }
  /** The log key the verified quote bound (VerifiedProvider.logPublicKey). */
  readonly logPublicKey: Uint8Array
  readonly signal?: AbortSignal
}

export interface ReceiptLogged {
  readonly index: number
  /** The signed checkpoint (C2SP signed note) the entry is proven under, and what it says. */
  readonly checkpointNote: string
  readonly checkpoint: Checkpoint
}

function notLogged(reason: string, details: Record<string, unknown> = {}, cause?: unknown): ClientError {
  return new ClientError('CLIENT_RECEIPT_NOT_LOGGED', `the receipt is not proven logged: ${reason}`, { details: { reason, ...details }, ...(cause ? { cause } : {}) })
}

/** Fetch and check the inclusion proof of `receipt`; throws CLIENT_RECEIPT_NOT_LOGGED (details.reason) otherwise. */
export async function verifyReceiptLogged(p: ReceiptLoggedParameters): Promise<ReceiptLogged> {
  const index = p.receipt.fields.logIndex
  if (index > BigInt(Number.MAX_SAFE_INTEGER)) throw notLogged('index', { logIndex: index.toString() })
  let proof: InclusionProofJson
  try {
    const res = await request(`${p.url.replace(/\/+$/, '')}/log/proof/${index}`, { ...(p.signal ? { signal: p.signal } : {}), headersTimeout: 10_000, bodyTimeout: 10_000 })
    if (res.statusCode !== 200) {
      await res.body.dump()
      throw notLogged('no proof', { status: res.statusCode })
    }
    const bytes = await readLimited(res.body, MAX_PROOF_BYTES, { headers: res.headers, tooLarge: () => notLogged('proof too large') })
    proof = JSON.parse(bytes.toString('utf8')) as InclusionProofJson
  } catch (e) {
    throw e instanceof ClientError ? e : notLogged('unreachable', {}, e)
  }
  if (proof?.index !== Number(index)) throw notLogged('another index', { logIndex: index.toString() })
  let verified: ReturnType<typeof verifyInclusionProofJson>
  try {
    verified = verifyInclusionProofJson(proof, p.logPublicKey)
  } catch (e) {
    throw notLogged('proof', { code: e instanceof BaseError ? e.code : undefined }, e)
  }
  let entry: ReturnType<typeof decodeEntry>
  try {
    entry = decodeEntry(verified.entry)
  } catch (e) {
    throw notLogged('entry', { code: e instanceof BaseError ? e.code : undefined }, e)
  }
  if (entry.type !== 'receipt') throw notLogged('entry type', { type: entry.type })
  if (entry.receiptHash.toLowerCase() !== hashReceipt(p.receipt.fields, p.receipt.domain).toLowerCase()) throw notLogged('another receipt')
  if (entry.signature.toLowerCase() !== p.receipt.signature.toLowerCase()) throw notLogged('another signature')
  return { index: Number(index), checkpointNote: proof.checkpoint, checkpoint: verified.checkpoint }
}
