/**
 * Anchoring signed checkpoints on-chain (AttestationRegistry.anchorCheckpoint):
 * periodically, when the log grew since the last anchor, the enclave's
 * current secp256k1 signing key signs EIP-712 `CheckpointAnchor(bytes32
 * logId,uint64 size,bytes32 root)` in the receipts' chain domain
 * (contracts/client/checkpoint-anchor.ts), and the anchorer submits it.
 *
 * At most one transaction per period: the time of an attempt is recorded
 * before it is sent, so a failing or slow chain cannot make the worker send
 * twice in one period; the next period retries. Time and the timer are
 * parameters (tests call `tick()` with a fake clock).
 */
import type { Hex } from 'viem'
import { checkpointAnchorDigest } from '../../contracts/client/checkpoint-anchor.ts'
import { parseSignedCheckpoint } from '../../attestation/log/checkpoint.ts'
import { LogError } from '../../attestation/log/errors.ts'
import { hex } from '../../attestation/bytes/hex.ts'
import type { ReceiptDomain } from '../receipts.ts'

/** What the worker needs from the chain (contracts/client/registry.ts RegistryWriterClient fits through a small adapter). */
export interface CheckpointAnchorer {
  anchor(logId: Hex, size: bigint, root: Hex, signature: Hex): Promise<{ txHash: Hex }>
  /** The latest anchor of `logId`, or null. */
  latest(logId: Hex): Promise<{ size: bigint; root: Hex } | null>
}

export interface AnchorWorkerOptions {
  readonly logId: Hex
  /** The latest signed checkpoint (the writer's `checkpoint`), or null before the first batch. */
  readonly checkpoint: () => string | null
  /** The signing key of the current epoch (what the registry's live record names). */
  readonly signDigest: (digest: Uint8Array) => Promise<Hex>
  readonly domain: ReceiptDomain
  readonly anchorer: CheckpointAnchorer
  /** Period in ms (at most one transaction per period). */
  readonly periodMs: number
  /** Clock in ms. */
  readonly now: () => number
  /** Run `tick` on a timer; default true. Tests pass false and call tick(). */
  readonly autoStart?: boolean
  readonly onError?: (e: unknown) => void
  readonly onAnchored?: (a: { size: bigint; root: Hex; txHash: Hex }) => void
}

export interface AnchorWorker {
  /** Anchor now if a period has passed since the last attempt and the log grew; resolves to what was sent, or null. */
  tick(): Promise<{ size: bigint; root: Hex; txHash: Hex } | null>
  stop(): void
}

export function createAnchorWorker(o: AnchorWorkerOptions): AnchorWorker {
  if (!Number.isSafeInteger(o.periodMs) || o.periodMs <= 0) throw new LogError('LOG_OPTIONS_INVALID', 'periodMs must be a positive integer')
  let lastAttempt = -Infinity
  let anchored: { size: bigint } | null | undefined
  let running: Promise<{ size: bigint; root: Hex; txHash: Hex } | null> | null = null
  let timer: NodeJS.Timeout | null = null
  let stopped = false

  async function run(): Promise<{ size: bigint; root: Hex; txHash: Hex } | null> {
    const t = o.now()
    if (t - lastAttempt < o.periodMs) return null
    const note = o.checkpoint()
    if (note === null) return null
    const c = parseSignedCheckpoint(note).checkpoint
    const size = BigInt(c.size)
    anchored ??= await o.anchorer.latest(o.logId)
    if (anchored !== null && size <= anchored.size) return null
    lastAttempt = t
    const root = `0x${hex(c.root)}` as Hex
    const digest = checkpointAnchorDigest({ logId: o.logId, size, root }, o.domain)
    const signature = await o.signDigest(Buffer.from(digest.slice(2), 'hex'))
    const { txHash } = await o.anchorer.anchor(o.logId, size, root, signature)
    anchored = { size }
    const result = { size, root, txHash }
    o.onAnchored?.(result)
    return result
  }

  const tick = () => {
    running ??= run().finally(() => {
      running = null
    })
    return running
  }

  function arm(): void {
    if (stopped || o.autoStart === false) return
    timer = setTimeout(() => {
      tick()
        .catch((e: unknown) => o.onError?.(e))
        .finally(arm)
    }, o.periodMs)
    timer.unref()
  }
  arm()

  return {
    tick,
    stop() {
      stopped = true
      if (timer !== null) clearTimeout(timer)
    },
  }
}
