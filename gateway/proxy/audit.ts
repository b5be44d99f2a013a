/**
 * The proxy's audit file: one JSON line per verification report and per
 * receipt (and per refused answer), appended to a local file for the
 * enterprise's own records.
 *
 * Hashes only: a line holds the receipt (request and response hashes,
 * model, epoch, time, log index, signer, signature, domain), the
 * verification report (measurements, addresses, hashes, codes) and codes of
 * failures — never a prompt, a completion or a header. The file is opened
 * with O_APPEND (mode 0600) and one writer appends queued lines in order
 * (a batch per write), so lines never interleave and nothing is rewritten.
 *
 * Fail closed: an audit trail that silently stops is worse than a proxy
 * that stops. The first failed write — or a file that was removed under the
 * open handle (its link count is 0: lines would go to a file nobody can
 * read) — marks the log failed for good: `status()` says so with the
 * reason code (an errno such as ENOSPC, or AUDIT_FILE_REMOVED), `receipt()`
 * rejects with PROXY_AUDIT_UNAVAILABLE, and the proxy refuses requests
 * (server.ts) until it is restarted with a writable file. `receipt()`
 * resolves once its line was handed to the file, so the proxy releases an
 * answer only after its receipt is on record; verification reports and
 * refusals are written off the request path.
 */
import { open } from 'node:fs/promises'
import { reasonOf } from '../client/errors.ts'
import type { VerifiedReceipt } from '../client/receipt.ts'
import type { VerificationReport } from '../client/verify.ts'
import { ProxyError } from './errors.ts'

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

/** Whether the audit file still takes lines; `reason` is a stable code when not. */
export interface AuditStatus {
  readonly ok: boolean
  readonly reason?: string
}

/** What the log needs of an open file (a FileHandle; a fake one in fault-injection tests). */
export interface AuditFile {
  writeFile(data: string): Promise<void>
  stat(): Promise<{ readonly nlink: number | bigint }>
  close(): Promise<void>
}

export interface AuditLogOptions {
  readonly now?: () => Date
  /** Told once, with the reason code, when the log fails (e.g. to log it). */
  readonly onFailure?: (reason: string) => void
  /** Default: open(file, 'a', 0o600). */
  readonly open?: (file: string) => Promise<AuditFile>
}

export interface AuditLog {
  readonly file: string
  verification(report: VerificationReport): void
  /** Resolves once the line is written; rejects with PROXY_AUDIT_UNAVAILABLE when it cannot be. */
  receipt(record: AuditReceiptRecord): Promise<void>
  refusal(record: AuditRefusalRecord): void
  status(): AuditStatus
  /** Resolves once every queued line is written (rejects with PROXY_AUDIT_UNAVAILABLE once the log failed). */
  flush(): Promise<void>
  close(): Promise<void>
}

/** The reason code when the audit file was removed under the open handle (lines would go nowhere anyone can read). */
export const AUDIT_FILE_REMOVED = 'AUDIT_FILE_REMOVED'

interface Pending {
  readonly line: string
  readonly resolve: () => void
  readonly reject: (e: ProxyError) => void
}

export async function openAuditLog(file: string, options: AuditLogOptions = {}): Promise<AuditLog> {
  const now = options.now ?? (() => new Date())
  let handle: AuditFile
  try {
    handle = await (options.open ?? ((f: string) => open(f, 'a', 0o600)))(file)
  } catch (e) {
    // The path and errno text stay in `cause`; the code is what a caller branches on.
    throw new ProxyError('PROXY_AUDIT_UNAVAILABLE', { reason: reasonOf(e), cause: e })
  }
  let queue: Pending[] = []
  let writing: Promise<void> | null = null
  let failure: string | undefined
  let closed = false

  const unavailable = () => new ProxyError('PROXY_AUDIT_UNAVAILABLE', { reason: failure ?? 'AUDIT_CLOSED' })

  function fail(reason: string): void {
    if (failure !== undefined) return
    failure = reason
    options.onFailure?.(reason)
  }

  async function drain(): Promise<void> {
    while (queue.length > 0 && failure === undefined) {
      const batch = queue
      queue = []
      try {
        // A removed file still takes writes through the open handle: the lines count only if it
        // is still linked. The check and the write run side by side (each is a round trip to the
        // thread pool, on every proxied response's path); a line written to a removed file is
        // lost either way, and the batch fails just as if it had not been written.
        const [{ nlink }] = await Promise.all([handle.stat(), handle.writeFile(batch.map((p) => p.line).join(''))])
        if (Number(nlink) === 0) fail(AUDIT_FILE_REMOVED)
      } catch (e) {
        fail(reasonOf(e))
      }
      if (failure === undefined) for (const p of batch) p.resolve()
      else for (const p of batch) p.reject(unavailable())
    }
    for (const p of queue) p.reject(unavailable())
    queue = []
    writing = null
  }

  function append(record: Record<string, unknown>): Promise<void> {
    if (closed || failure !== undefined) return Promise.reject(unavailable())
    const line = `${JSON.stringify({ at: now().toISOString(), ...record })}\n`
    return new Promise<void>((resolve, reject) => {
      queue.push({ line, resolve, reject })
      writing ??= drain()
    })
  }

  // Off the request path: a failure still shows in status(), and the next request is refused.
  const background = (p: Promise<void>) => void p.catch(() => undefined)

  return {
    file,
    verification(report) {
      background(append({ type: 'verification', report }))
    },
    receipt({ provider, path, model, status, receipt }) {
      return append({
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
      background(append({ type: 'refusal', ...record }))
    },
    status() {
      return failure === undefined ? { ok: true } : { ok: false, reason: failure }
    },
    async flush() {
      while (writing !== null) await writing
      if (failure !== undefined) throw unavailable()
    },
    async close() {
      if (closed) return
      while (writing !== null) await writing
      closed = true
      await handle.close()
    },
  }
}
