/**
 * The GPU ready-state gate: an H100 in confidential-computing mode accepts
 * no work until someone inside the TD sets its ready state (NVIDIA
 * Confidential Computing Deployment Guide, "GPU Ready State";
 * `nvidia-smi conf-compute --set-ready-state 1`, short `-srs 1`). Whoever
 * sets it decides that the GPU is trustworthy, so the gateway does it, and
 * only after it verified the GPU's own evidence:
 *
 *   0. ask `nvidia-smi conf-compute -grs` first: a GPU that is already
 *      ready was declared trustworthy by someone else (a guest image's init,
 *      an operator, an earlier process) before this gate verified anything,
 *      so that is a failure (ENCLAVE_GPU_READY_ALREADY_SET) unless the config
 *      explicitly allows it (`allowAlreadyReady`), or this gateway itself set
 *      it earlier in this boot (`markerPath`: a file on tmpfs written after
 *      a verified set, so a restarted gateway is not locked out by its own
 *      earlier run); either way it is still verified, reported (a warning,
 *      and `preset` in the state), and not set again; output that says
 *      neither ready nor not-ready fails closed;
 *   1. collect evidence from the local GPUs with a fresh nonce (the
 *      configured GpuEvidenceProvider: nvattest or NVML);
 *   2. verify it with attestation/nvidia (device chain to the pinned NVIDIA
 *      root, report signature, nonce, RIMs, measurements, OCSP) and validate
 *      it against the configured GPU policy;
 *   3. run `nvidia-smi conf-compute -srs 1`, then `-grs` and require it to
 *      say "ready".
 *
 * Any failure leaves the GPU not ready: the engine (vLLM) cannot use it and
 * the gateway's /readyz stays false (`withGpuReadyGate`). There is no retry
 * loop: a GPU that failed verification once is not trusted by trying again.
 * The commands go through an injectable runner, so tests use a fake.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { BaseError, type BaseErrorOptions } from '../../attestation/errors.ts'
import type { GpuPolicy } from '../../attestation/policy/policy.ts'
import type { TrustedRoot } from '../../attestation/roots/trust-root.ts'
import type { VerifiedRim } from '../../attestation/nvidia/rim/verify.ts'
import { verifyGpuEvidence } from '../../attestation/nvidia/verify/verify-gpu-evidence.ts'
import { validateGpuEvidence } from '../../attestation/nvidia/validate/validate-gpu.ts'
import type { Enclave } from '../types.ts'
import { execFileRunner, type RunCommand } from './nvattest-cli.ts'
import type { GpuEvidenceProvider } from './provider.ts'
import { codeOf } from '../quote-providers/errno.ts'

/** `nvidia-smi conf-compute` arguments (nvidia-smi(1), "CONF-COMPUTE OPTIONS"). */
export const SET_READY_STATE_ARGS: readonly string[] = ['conf-compute', '-srs', '1']
export const GET_READY_STATE_ARGS: readonly string[] = ['conf-compute', '-grs']
/** What `-grs` prints once the state is set ("Confidential Compute GPUs Ready state: ready"). */
const READY_OUTPUT = /ready state:\s*ready\b/i
/** What `-grs` prints before ("Confidential Compute GPUs Ready state: not-ready"). */
const NOT_READY_OUTPUT = /ready state:\s*not-ready\b/i
/** Default bound on each nvidia-smi run: it answers in well under a second. */
export const DEFAULT_READY_STATE_TIMEOUT_MS = 30_000

/** Registry of ready-state gate codes. */
export const GPU_READY_ERROR_CODES = {
  ENCLAVE_GPU_READY_EVIDENCE_UNAVAILABLE: { description: 'the local GPU evidence could not be collected (details.code: the provider error)' },
  ENCLAVE_GPU_READY_VERIFICATION_FAILED: { description: 'the local GPU evidence did not verify or was rejected by the GPU policy (details.code)' },
  ENCLAVE_GPU_READY_SET_FAILED: { description: 'nvidia-smi could not query or set the ready state, or the GPU does not report it as ready afterwards' },
  ENCLAVE_GPU_READY_ALREADY_SET: { description: 'the GPU was already in ready state before the gate verified it (someone else set it) and the config does not allow that' },
} as const satisfies Record<string, { readonly description: string }>

export type GpuReadyErrorCode = keyof typeof GPU_READY_ERROR_CODES

export class GpuReadyError extends BaseError<GpuReadyErrorCode> {
  override name = 'GpuReadyError'
  constructor(code: GpuReadyErrorCode, shortMessage: string, options: BaseErrorOptions = {}) {
    super(code, shortMessage, options)
  }
}

export type GpuReadyState =
  | { readonly state: 'pending' }
  | { readonly state: 'running'; readonly step: 'check' | 'collect' | 'verify' | 'set' }
  /**
   * `preset`: the GPU was ready before the gate ran, so the gate verified it
   * but did not set it — set by this gateway earlier this boot ('gateway',
   * the marker file), or by someone else and allowed by the config ('allowed').
   */
  | { readonly state: 'ready'; readonly at: string; readonly preset: false | 'gateway' | 'allowed' }
  | { readonly state: 'failed'; readonly code: GpuReadyErrorCode; readonly cause: string | undefined }

export interface GpuReadyGateOptions {
  readonly provider: GpuEvidenceProvider
  /** The `gpu` policy section (policy.ts parseGpuPolicy); must require a GPU. */
  readonly policy: GpuPolicy
  /** Default: NVIDIA's pinned roots (verifyGpuEvidence's defaults). */
  readonly deviceRoot?: TrustedRoot
  readonly rimRoot?: TrustedRoot
  /** A local RIM store, when the evidence does not carry its RIMs. */
  readonly rims?: readonly (VerifiedRim | string)[]
  /** Default `nvidia-smi` on PATH. */
  readonly command?: string
  /** Default node:child_process execFile without a shell. */
  readonly run?: RunCommand
  readonly timeoutMs?: number
  readonly now?: () => Date
  /** Default 32 random bytes. */
  readonly nonce?: () => Uint8Array
  /**
   * Accept a GPU that is already ready before the gate ran (it is still
   * verified, and reported). Default false: someone else declared it
   * trustworthy, ENCLAVE_GPU_READY_ALREADY_SET.
   */
  readonly allowAlreadyReady?: boolean
  /** How a pre-set ready state is reported; default process.emitWarning (code CGW_GPU_READY_PRESET). */
  readonly warn?: (message: string) => void
  /**
   * A file on tmpfs (cleared at boot, as the ready state is) that the gate
   * writes after it set the ready state; found at the next start, it says
   * the ready state is this gateway's own from earlier in this boot.
   * Default: none (every pre-set state is someone else's).
   */
  readonly markerPath?: string
}

export interface GpuReadyGate {
  /** Run the gate once (later calls return the same promise). Rejects with GpuReadyError. */
  run(): Promise<void>
  state(): GpuReadyState
  ready(): boolean
}

export function createGpuReadyGate(o: GpuReadyGateOptions): GpuReadyGate {
  const run = o.run ?? execFileRunner
  const command = o.command ?? 'nvidia-smi'
  const timeoutMs = o.timeoutMs ?? DEFAULT_READY_STATE_TIMEOUT_MS
  const now = o.now ?? (() => new Date())
  const nonceOf = o.nonce ?? (() => new Uint8Array(randomBytes(32)))
  let current: GpuReadyState = { state: 'pending' }
  let started: Promise<void> | undefined

  const fail = (code: GpuReadyErrorCode, message: string, cause?: unknown): GpuReadyError => {
    current = { state: 'failed', code, cause: codeOf(cause) }
    return new GpuReadyError(code, message, { ...(cause === undefined ? {} : { cause }), details: { code: codeOf(cause) } })
  }

  async function smi(args: readonly string[]): Promise<{ stdout: string; exitCode: number }> {
    const signal = AbortSignal.timeout(timeoutMs)
    try {
      return await run(command, args, { signal, timeoutMs })
    } catch (e) {
      throw fail('ENCLAVE_GPU_READY_SET_FAILED', `${command} ${args.join(' ')} could not run`, e)
    }
  }

  async function gate(): Promise<void> {
    if (!o.policy.required) throw fail('ENCLAVE_GPU_READY_VERIFICATION_FAILED', 'the GPU policy does not require a GPU: nothing to verify before the ready state')
    current = { state: 'running', step: 'check' }
    const before = await smi(GET_READY_STATE_ARGS)
    // Fail closed on anything but a clear answer: "ready" can hide in output we do not understand.
    const preset = before.exitCode === 0 && READY_OUTPUT.test(before.stdout)
    if (!preset && (before.exitCode !== 0 || !NOT_READY_OUTPUT.test(before.stdout))) {
      throw fail('ENCLAVE_GPU_READY_SET_FAILED', `${command} ${GET_READY_STATE_ARGS.join(' ')} did not say whether the GPU is ready (exit ${before.exitCode})`)
    }
    let presetBy: false | 'gateway' | 'allowed' = false
    if (preset) {
      const ours = o.markerPath !== undefined && (await readFile(o.markerPath).then(() => true, () => false))
      if (!ours && o.allowAlreadyReady !== true) {
        throw fail('ENCLAVE_GPU_READY_ALREADY_SET', 'the GPU was already in ready state before its evidence was verified: someone else set it (allow it explicitly with gpuReadyState.allowAlreadyReady)')
      }
      presetBy = ours ? 'gateway' : 'allowed'
      const warn = o.warn ?? ((m: string) => process.emitWarning(m, { code: 'CGW_GPU_READY_PRESET' }))
      warn(ours ? 'the GPU is in ready state from this gateway\'s earlier start in this boot; verifying it again, not setting it again' : 'the GPU was already in ready state before the gate ran (allowed by allowAlreadyReady); verifying it now, not setting it again')
    }
    current = { state: 'running', step: 'collect' }
    const nonce = nonceOf()
    let evidence
    try {
      evidence = await o.provider.collect(nonce)
    } catch (e) {
      throw fail('ENCLAVE_GPU_READY_EVIDENCE_UNAVAILABLE', `the ${o.provider.name} provider collected no GPU evidence`, e)
    }
    current = { state: 'running', step: 'verify' }
    try {
      const verified = verifyGpuEvidence(evidence, {
        now: now(),
        expectedNonce: nonce,
        ...(o.deviceRoot ? { deviceRoot: o.deviceRoot } : {}),
        ...(o.rimRoot ? { rimRoot: o.rimRoot } : {}),
        ...(o.rims ? { rims: o.rims } : {}),
      })
      validateGpuEvidence(verified, o.policy)
    } catch (e) {
      throw fail('ENCLAVE_GPU_READY_VERIFICATION_FAILED', 'the local GPU evidence was not accepted; the ready state stays unset', e)
    }
    current = { state: 'running', step: 'set' }
    if (!preset) {
      const set = await smi(SET_READY_STATE_ARGS)
      if (set.exitCode !== 0) throw fail('ENCLAVE_GPU_READY_SET_FAILED', `${command} ${SET_READY_STATE_ARGS.join(' ')} exited ${set.exitCode}`)
    }
    const got = await smi(GET_READY_STATE_ARGS)
    if (got.exitCode !== 0 || !READY_OUTPUT.test(got.stdout)) throw fail('ENCLAVE_GPU_READY_SET_FAILED', 'the GPU does not report its ready state as ready')
    if (!preset && o.markerPath !== undefined) {
      try {
        await mkdir(dirname(o.markerPath), { recursive: true })
        await writeFile(o.markerPath, `${JSON.stringify({ setAt: now().toISOString(), pid: process.pid })}\n`, { mode: 0o600 })
      } catch (e) {
        // Without the marker a restart would refuse our own ready state: say so now, not after the restart.
        throw fail('ENCLAVE_GPU_READY_SET_FAILED', `the ready state is set, but its marker ${o.markerPath} could not be written`, e)
      }
    }
    current = { state: 'ready', at: now().toISOString(), preset: presetBy }
  }

  return {
    run: () => (started ??= gate()),
    state: () => current,
    ready: () => current.state === 'ready',
  }
}

/**
 * The enclave with its readiness tied to the gate: `status().ready` is false
 * until the GPU ready state was set after verification, so /readyz (which
 * reads it) stays false on failure. Everything else passes through.
 */
export function withGpuReadyGate(enclave: Enclave, gate: Pick<GpuReadyGate, 'ready'>): Enclave {
  // Inherit every member (so the interface can grow without this wrapper
  // dropping a method); only status() is replaced.
  const wrapped = Object.create(enclave) as Enclave
  Object.defineProperty(wrapped, 'status', {
    value: () => {
      const s = enclave.status()
      return { ...s, ready: s.ready && gate.ready() }
    },
  })
  return wrapped
}
