/**
 * GPU evidence from NVIDIA's `nvattest` CLI (NVIDIA Attestation SDK,
 * github.com/NVIDIA/attestation-sdk `nv-attestation-cli`), run without a
 * shell as
 *
 *     nvattest collect-evidence --device gpu --nonce <64 hex digits> --format json
 *
 * `--format` is a global option whose default is `text` (which prints only
 * log lines), so it must be given; CLI11 lets it follow the subcommand.
 * Logs go to stderr (spdlog `stderr_color_mt`), the JSON document alone to
 * stdout:
 *
 *     { "result_code": 0, "result_message": "Ok",
 *       "evidences": [ { "arch": "HOPPER", "nonce": "<hex>",
 *                        "evidence": "<base64 SPDM>", "certificate": "<base64 PEM chain>" } ] }
 *
 * `evidences` is null when `result_code` is not 0 (NVAT_RC_*, nvat.h). The
 * process exit status is the result code itself, so above 255 it is
 * truncated by the OS: the JSON `result_code` is what counts, the exit
 * status only when there is no JSON.
 *
 * The provider collects and checks only that every report parses and
 * answers the nonce (errors.ts); signatures are the verifier's. OCSP
 * responses and RIMs are attached only through the caller's getters.
 */
import { execFile } from 'node:child_process'
import { gpuEvidenceFromJson, type GpuEvidenceBundle } from '../../attestation/nvidia/evidence.ts'
import type { CollectOptions, GpuEvidenceProvider } from './provider.ts'
import { assertAnswersNonce, assertNonce, attachCollateral, type GpuCollateralGetters } from './collect.ts'
import { GpuCollectionError } from './errors.ts'

/** What a finished run of the CLI left: its output and exit status. */
export interface RunResult {
  readonly stdout: string
  readonly stderr: string
  readonly exitCode: number
}

/**
 * Runs `file` with `args` (no shell). Resolves when the process exits,
 * whatever its status; rejects when it cannot be started (an error with
 * `code` 'ENOENT' or 'EACCES' when the program is missing or not
 * executable), was killed, or `signal` aborted it.
 */
export type RunCommand = (file: string, args: readonly string[], options: { readonly signal: AbortSignal; readonly timeoutMs: number }) => Promise<RunResult>

export interface NvattestProviderParameters {
  /** The CLI, found on PATH unless a path is given. Default 'nvattest'. */
  readonly command?: string
  /** How the CLI is run. Default `execFileRunner` (node:child_process execFile, no shell). */
  readonly run?: RunCommand
  /** Kill the CLI after this long (ms). Default 60 000: an 8-GPU SPDM exchange takes seconds, not minutes. */
  readonly timeoutMs?: number
  /** Where OCSP responses and RIMs come from; none by default (the bundle ships without them). */
  readonly attach?: GpuCollateralGetters
}

/** Output larger than this is not evidence (8 GPUs are about 100 KiB of JSON). */
export const NVATTEST_MAX_OUTPUT = 16 * 1024 * 1024

/**
 * NVAT_RC_* result codes (nv-attestation-sdk-cpp/include/nvat.h) meaning
 * "nothing to collect here" rather than "collection failed":
 * NVAT_RC_FEATURE_NOT_ENABLED (6, the SDK was built without NVML),
 * NVAT_RC_NVML_INIT_FAILED (500, libnvidia-ml.so.1 missing or nvmlInit_v2
 * failed: no driver, no GPU), NVAT_RC_GPU_MODE_NOT_SUPPORTED (509, neither
 * CC nor protected-PCIe mode). Every other non-zero code, e.g.
 * NVAT_RC_NVML_ERROR (501), is a collection failure.
 */
export const NVAT_RC_UNAVAILABLE: ReadonlySet<number> = new Set([6, 500, 509])

/** Errors of `execFile` meaning the CLI is not there to run. */
const MISSING_PROGRAM = new Set(['ENOENT', 'EACCES', 'ENOTDIR'])

/**
 * The default `RunCommand`: node:child_process `execFile`, no shell, the
 * abort signal killing the process with SIGKILL (a CLI stuck in a driver
 * call does not answer SIGTERM), output capped at `NVATTEST_MAX_OUTPUT`.
 */
export const execFileRunner: RunCommand = (file, args, { signal }) =>
  new Promise((resolve, reject) => {
    execFile(
      file,
      [...args],
      { signal, killSignal: 'SIGKILL', maxBuffer: NVATTEST_MAX_OUTPUT, encoding: 'utf8', shell: false, windowsHide: true },
      (err, stdout, stderr) => {
        if (err === null) return resolve({ stdout, stderr, exitCode: 0 })
        // A number is an exit status: the CLI ran to the end and said why in its JSON.
        if (typeof err.code === 'number') return resolve({ stdout, stderr, exitCode: err.code })
        reject(err)
      },
    )
  })

const tail = (s: string, n = 1024): string => (s.length > n ? `…${s.slice(-n)}` : s)

/** The CLI's stderr (its logs), kept as a cause for debugging and never put in a message. */
function stderrCause(stderr: string): Error | undefined {
  return stderr.trim() === '' ? undefined : new Error(`nvattest stderr: ${tail(stderr.trim())}`)
}

function parseOutput(stdout: string): Record<string, unknown> | undefined {
  try {
    const doc: unknown = JSON.parse(stdout)
    return typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? (doc as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/** Run the CLI under the provider's timeout; the caller's abort propagates as its reason. */
async function runCli(
  run: RunCommand,
  command: string,
  args: readonly string[],
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<RunResult> {
  signal?.throwIfAborted()
  const timeout = new AbortController()
  const timer = setTimeout(() => timeout.abort(new Error(`nvattest did not finish within ${timeoutMs} ms`)), timeoutMs)
  const combined = signal === undefined ? timeout.signal : AbortSignal.any([signal, timeout.signal])
  // Race the run against the signal too, so an injected runner that ignores it cannot hang the caller.
  let onAbort: (() => void) | undefined
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(combined.reason)
    combined.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([run(command, args, { signal: combined, timeoutMs }), aborted])
  } catch (e) {
    if (signal?.aborted) throw signal.reason
    if (timeout.signal.aborted) {
      throw new GpuCollectionError('ENCLAVE_GPU_COLLECTION_FAILED', `nvattest did not finish within ${timeoutMs} ms`, {
        details: { provider: 'nvattest', reason: 'timeout', timeoutMs },
      })
    }
    const code = (e as NodeJS.ErrnoException | null)?.code
    if (typeof code === 'string' && MISSING_PROGRAM.has(code)) {
      throw new GpuCollectionError('ENCLAVE_GPU_UNAVAILABLE', `the nvattest CLI cannot be run (${code})`, {
        details: { provider: 'nvattest', command, errno: code },
        cause: e,
      })
    }
    if (code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') {
      throw new GpuCollectionError('ENCLAVE_GPU_EVIDENCE_INVALID', `nvattest wrote more than ${NVATTEST_MAX_OUTPUT} bytes`, {
        details: { provider: 'nvattest', reason: 'output too large' },
      })
    }
    const killedBy = (e as { signal?: unknown } | null)?.signal
    throw new GpuCollectionError('ENCLAVE_GPU_COLLECTION_FAILED', 'nvattest could not be run to completion', {
      details: { provider: 'nvattest', errno: typeof code === 'string' ? code : null, signal: typeof killedBy === 'string' ? killedBy : null },
      cause: e,
    })
  } finally {
    clearTimeout(timer)
    if (onAbort) combined.removeEventListener('abort', onAbort)
    // The race's loser must not surface as an unhandled rejection.
    aborted.catch(() => {})
  }
}

/**
 * The `nvattest` provider. `collect(nonce)` runs the CLI once for every GPU
 * of the TD, requires `result_code` 0, reads the evidence with
 * `gpuEvidenceFromJson`, checks that every report parses and answers
 * `nonce`, then attaches OCSP responses and RIMs through `attach`.
 *
 * Throws GpuCollectionError: ENCLAVE_GPU_UNAVAILABLE (CLI missing; result
 * codes in `NVAT_RC_UNAVAILABLE`), ENCLAVE_GPU_COLLECTION_FAILED (another
 * non-zero result code or exit status, timeout, killed; details.resultCode /
 * details.exitCode), ENCLAVE_GPU_EVIDENCE_INVALID (output that is not the
 * documented JSON, or evidence that does not answer the nonce). A RangeError
 * for a nonce that is not 32 bytes; the caller's abort reason when its
 * signal fires.
 */
export function createNvattestProvider(parameters: NvattestProviderParameters = {}): GpuEvidenceProvider {
  const { command = 'nvattest', run = execFileRunner, timeoutMs = 60_000, attach } = parameters
  if (typeof command !== 'string' || command.length === 0) throw new TypeError('createNvattestProvider: `command` must be a program name or path')
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) throw new RangeError('createNvattestProvider: `timeoutMs` must be a positive integer (milliseconds)')

  return {
    name: 'nvattest',
    async collect(nonce: Uint8Array, options: CollectOptions = {}): Promise<GpuEvidenceBundle> {
      assertNonce(nonce)
      const { signal } = options
      const nonceHex = Buffer.from(nonce).toString('hex')
      const args = ['collect-evidence', '--device', 'gpu', '--nonce', nonceHex, '--format', 'json']
      const { stdout, stderr, exitCode } = await runCli(run, command, args, timeoutMs, signal)
      const cause = stderrCause(stderr)

      const doc = parseOutput(stdout)
      const resultCode = doc?.result_code
      if (typeof resultCode === 'number' && resultCode !== 0) {
        const unavailable = NVAT_RC_UNAVAILABLE.has(resultCode)
        const resultMessage = typeof doc?.result_message === 'string' ? doc.result_message.slice(0, 200) : null
        throw new GpuCollectionError(
          unavailable ? 'ENCLAVE_GPU_UNAVAILABLE' : 'ENCLAVE_GPU_COLLECTION_FAILED',
          `nvattest collect-evidence failed with result code ${resultCode}${resultMessage ? ` (${resultMessage})` : ''}`,
          { details: { provider: 'nvattest', resultCode, resultMessage, exitCode }, cause },
        )
      }
      if (exitCode !== 0) {
        throw new GpuCollectionError('ENCLAVE_GPU_COLLECTION_FAILED', `nvattest collect-evidence exited with status ${exitCode}`, {
          details: { provider: 'nvattest', exitCode, resultCode: typeof resultCode === 'number' ? resultCode : null },
          cause,
        })
      }
      if (doc === undefined || resultCode !== 0) {
        throw new GpuCollectionError('ENCLAVE_GPU_EVIDENCE_INVALID', 'nvattest output is not the collect-evidence JSON document', {
          details: { provider: 'nvattest', reason: doc === undefined ? 'not a JSON object' : 'no numeric result_code', stdoutBytes: stdout.length },
        })
      }

      let bundle: GpuEvidenceBundle
      try {
        // Only `evidences`: anything else the CLI adds (result_message, versions) is not evidence.
        bundle = gpuEvidenceFromJson({ evidences: doc.evidences })
      } catch (e) {
        throw new GpuCollectionError('ENCLAVE_GPU_EVIDENCE_INVALID', 'nvattest evidences are malformed', { details: { provider: 'nvattest' }, cause: e })
      }
      if (Buffer.compare(bundle.nonce, nonce) !== 0) {
        throw new GpuCollectionError('ENCLAVE_GPU_EVIDENCE_INVALID', 'nvattest reports another nonce than the one asked for', {
          details: { provider: 'nvattest', expected: nonceHex, actual: Buffer.from(bundle.nonce).toString('hex') },
        })
      }
      assertAnswersNonce(bundle.gpus, nonce, 'nvattest')
      return attachCollateral(bundle, attach, 'nvattest', signal)
    },
  }
}
