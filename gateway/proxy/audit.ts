/**
 * The proxy's audit file: one JSON line per verification report and per
 * receipt (and per refused answer), appended to a local file for the
 * enterprise's own records.
 *
 * Hashes only: a line holds the receipt (request and response hashes,
 * model, epoch, time, log index, signer, signature, domain), the
 * verification report (measurements, addresses, hashes, codes) and codes of
 * failures — never a prompt, a completion or a header. The file is opened
 * with O_APPEND (mode 0600) and each line is one write, queued in order, so
 * lines never interleave and nothing is rewritten. Writes happen off the
 * request path; `flush()` waits for them.
 */
import { open, type FileHandle } from 'node:fs/promises'
import type { VerifiedReceipt } from '../client/receipt.ts'
import type { VerificationReport } from '../client/verify.ts'

export interface AuditReceiptRecord {
  readonly provider: string
  readonly path: string
  readonly model: string
  readonly status: number
  readonly receipt: VerifiedReceipt
}

export interface AuditRefusalRecord {
  readonly provider: string
  readonly path: string
  readonly code: string
  readonly reason?: string
}

export interface AuditLog {
  readonly file: string
  verification(report: VerificationReport): void
  receipt(record: AuditReceiptRecord): void
  refusal(record: AuditRefusalRecord): void
  /** Resolves once every queued line is written (rejects with the first write error). */
  flush(): Promise<void>
  close(): Promise<void>
}

export async function openAuditLog(file: string, now: () => Date = () => new Date()): Promise<AuditLog> {
  const handle: FileHandle = await open(file, 'a', 0o600)
  let queue: Promise<void> = Promise.resolve()
  let failed: unknown
  let closed = false

  function append(record: Record<string, unknown>): void {
    if (closed) return
    const line = `${JSON.stringify({ at: now().toISOString(), ...record })}\n`
    queue = queue.then(() => handle.write(line).then(() => undefined)).catch((e: unknown) => {
      failed ??= e
    })
  }

  return {
    file,
    verification(report) {
      append({ type: 'verification', report })
    },
    receipt({ provider, path, model, status, receipt }) {
      append({
        type: 'receipt',
        provider,
        path,
        model,
        status,
        requestHash: receipt.fields.requestHash,
        responseHash: receipt.fields.responseHash,
        digest: receipt.digest,
        signer: receipt.signer,
        receipt: receipt.json,
      })
    },
    refusal(record) {
      append({ type: 'refusal', ...record })
    },
    async flush() {
      await queue
      if (failed) throw failed
    },
    async close() {
      if (closed) return
      await queue
      closed = true
      await handle.close()
    },
  }
}
