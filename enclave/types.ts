/**
 * The enclave's interfaces: the one narrow surface the gateway reaches it
 * through, and the providers it is built from. Types only.
 *
 * Trust boundary (DESIGN.md): plaintext prompts and completions exist only
 * inside enclave/. The gateway hands `Enclave.handle` the encapsulated
 * request bytes exactly as they arrived and streams back the encapsulated
 * response chunks exactly as they leave; it learns an outcome code for
 * metrics and logs, never content. Private keys never leave enclave/.
 */
import type { GpuEvidenceBundle } from '../attestation/nvidia/evidence.ts'
import type { RuntimeEvent } from '../attestation/eventlog/runtime-events.ts'
import type { RegistrationEvidence, RegistrationTarget } from './registration.ts'

/** Where a TDX quote comes from: configfs-tsm on real hardware, the dev TEE otherwise. */
export interface QuoteProvider {
  readonly name: string
  /** A quote whose REPORTDATA is exactly `reportData` (64 bytes). */
  getQuote(reportData: Uint8Array, options?: { signal?: AbortSignal }): Promise<Uint8Array>
}

/** The CCEL event log of this boot (ACPI table + data), when the platform exposes one. */
export interface EventLogProvider {
  read(): Promise<{ readonly table: Uint8Array; readonly data: Uint8Array } | null>
  /**
   * What userspace extended into RTMR2/3 this boot (the kernel's CCEL does
   * not record it), oldest first; absent where nothing is extended.
   */
  runtimeEvents?(): readonly RuntimeEvent[]
}

/**
 * Everything a verifier needs for one nonce, all public: the quote binds the
 * rest through REPORTDATA (attestation/binding.ts, mode "nonce").
 */
export interface EvidenceBundle {
  readonly version: 1
  /** The verifier's 32-byte nonce, hex. */
  readonly nonce: string
  /** Base64 of the raw TDX quote. */
  readonly quote: string
  /** Base64 of the CCEL table and data, or null on platforms without CCEL. */
  readonly eventLog: { readonly table: string; readonly data: string } | null
  /** GPU evidence in the nvattest JSON form (attestation/nvidia/evidence.ts), or null for a TD without GPU. */
  readonly gpu: Record<string, unknown> | null
  /** Base64 of the RFC 9458 key config of this epoch (application/ohttp-keys entry). */
  readonly keyConfig: string
  /** The epoch's receipt-signing Ethereum address (EIP-55). */
  readonly signingAddress: `0x${string}`
  /** Key epoch (decimal string: a u64). */
  readonly epoch: string
  /** Base64 of the transparency log's public key (bound in REPORTDATA), or null when the gateway keeps no log. */
  readonly logPublicKey: string | null
  /** When the epoch stops being offered to new clients (ISO 8601). */
  readonly epochExpiresAt: string
  /**
   * Runtime events extended into RTMR2/3 after boot (the gateway's release and
   * config hashes, attestation/eventlog/runtime-events.ts), oldest first; a
   * verifier replays them onto the quote's RTMR3 from the CCEL value or zero.
   * Absent when the TD extends nothing.
   */
  readonly runtimeEvents?: readonly RuntimeEvent[]
}

/** An OpenAI-compatible inference engine, reached only from inside the enclave. */
export interface Engine {
  readonly name: string
  /** Models the engine serves (OpenAI `GET /v1/models` data entries). */
  models(options?: { signal?: AbortSignal }): Promise<readonly { readonly id: string; readonly [k: string]: unknown }[]>
  /**
   * Forward one OpenAI API request (path like `/v1/chat/completions`, JSON
   * body as bytes). A streamed answer yields each SSE event (`data: ...\n\n`)
   * as it arrives; a plain one yields the whole body once. Upstream failures
   * throw `EngineError` with distinct codes (see enclave/engines/errors.ts).
   */
  request(
    path: string,
    body: Uint8Array,
    options: {
      readonly signal: AbortSignal
      /** Whether the body asks for a stream (`"stream": true`), when the caller has parsed it already; else the engine parses. */
      readonly stream?: boolean
    },
  ): Promise<{
    readonly status: number
    readonly contentType: string
    readonly stream: boolean
    readonly body: AsyncIterable<Uint8Array>
    /**
     * Optional push form of a streamed `body` (the consumer uses one of the
     * two, once): each event is handed to `sink.event` synchronously as it
     * is parsed, with no promise per event. The HTTP engine offers it.
     */
    readonly push?: (sink: EngineEventSink) => PushControl
  }>
  close(): Promise<void>
}

/** Receives a streamed engine answer event by event (`Engine.request(...).push`). */
export interface EngineEventSink {
  /**
   * One SSE event, exactly as `body` would yield it. Return false to pause:
   * no event comes until `resume()`. `last` marks the stream's terminal event
   * (`data: [DONE]`), which `end()` follows at once; an engine that cannot
   * tell leaves it out.
   */
  event(bytes: Uint8Array, last?: boolean): boolean
  /**
   * Called once when the stream is over: without an argument after the last
   * event (`data: [DONE]`), with an `EngineError` when it failed or was
   * cancelled. Never followed by `event`.
   */
  end(error?: unknown): void
}

/** The producer side of a push stream. */
export interface PushControl {
  /** Continue after a sink asked to pause (no effect otherwise). */
  resume(): void
  /** Stop: the upstream request is cancelled and `end` is called with a cancellation, unless it already ended. */
  cancel(): void
}

/** Receives an encapsulated response chunk by chunk (`EncapsulatedResponse.pipe`). */
export interface EncapsulatedChunkSink {
  /** The next ciphertext chunk, to be sent at once. Return false to pause: no chunk comes until `resume()`. */
  chunk(bytes: Uint8Array): boolean
  /**
   * Called once, after the last chunk. Without an argument the response is
   * complete; with an error it is not (cancelled, or failed after its first
   * chunk) and must be cut, never ended cleanly. `outcome` is settled first.
   */
  end(error?: unknown): void
}

/** Outcome of one handled request, for the gateway's metrics and logs: codes only, never content. */
export interface HandleOutcome {
  /** 'ok' or a stable error code (ENCLAVE_*, ENGINE_*). */
  readonly code: string
  /** Inner HTTP status returned to the client (inside the encryption). */
  readonly innerStatus: number
  readonly stream: boolean
  readonly epoch: string
}

/** An encapsulated response: a content type and ciphertext chunks, each to be flushed as it comes. */
export interface EncapsulatedResponse {
  /** `message/ohttp-res` or `message/ohttp-chunked-res` (draft-ietf-ohai-chunked-ohttp). */
  readonly contentType: string
  /** The same stream as `pipe`, pulled: for consumers that iterate (tests, clients in-process). */
  readonly chunks: AsyncIterable<Uint8Array>
  /** Resolves once the last chunk was produced (or the stream failed / was cancelled). */
  readonly outcome: Promise<HandleOutcome>
  /**
   * The push form of `chunks` (use one of the two, once): every chunk is
   * handed to `sink.chunk` the moment it is sealed, synchronously from the
   * engine's socket read — no promise per chunk. Required, so the gateway
   * has one relay path; enclave.ts's `responseOf` builds both forms.
   */
  readonly pipe: (sink: EncapsulatedChunkSink) => PushControl
}

/**
 * The narrow interface between gateway/ and enclave/. Everything crossing it
 * is public or ciphertext.
 */
export interface Enclave {
  /** `application/ohttp-keys` (RFC 9458 §3.2): the key configs clients may use now, newest first. */
  keyConfigs(): Uint8Array
  /** Evidence for a verifier's nonce (32 bytes). */
  attest(nonce: Uint8Array, options?: { signal?: AbortSignal }): Promise<EvidenceBundle>
  /**
   * Decapsulate and serve one request. Rejects (before any byte is sent) with
   * an `EnclaveError` for an unknown key id, a stale epoch, a request that does
   * not decrypt or is replayed, or malformed Binary HTTP; everything after
   * decryption — unknown model, engine failures — is answered inside the
   * encrypted response with its own status.
   */
  handle(encapsulated: Uint8Array, contentType: string, options: { readonly signal: AbortSignal }): Promise<EncapsulatedResponse>
  /** Public model list (ids only). */
  models(options?: { signal?: AbortSignal }): Promise<readonly string[]>
  /**
   * The current epoch, and `ready`: evidence for this epoch's keys has been
   * produced (the enclave attests itself at start and after every rotation,
   * so a TD that cannot make a quote never reports ready).
   */
  status(): { readonly epoch: string; readonly ready: boolean; readonly signingAddress: `0x${string}` }
  /** Present when the enclave was built for a chain: what gateway/registration-worker.ts needs. Public data only. */
  readonly registration?: EnclaveRegistration
  close(): Promise<void>
}

/** The registration side of an enclave built for a chain (createEnclave's `registration`). */
export interface EnclaveRegistration {
  /** Registration evidence for the current epoch's keys against a block (enclave/registration.ts). */
  evidence(target: RegistrationTarget): Promise<RegistrationEvidence>
  /** The current epoch's number. */
  epoch(): bigint
  /** `listener` runs after every key epoch change; returns the function that removes it. */
  onEpochChange(listener: () => void): () => void
  /** Record a registration that succeeded (the attestation log's registration entry). */
  registered(event: RegisteredEvent): Promise<void>
}

/**
 * A registration the registry accepted: the one shape the registration
 * worker reports, `EnclaveRegistration.registered` takes and createEnclave's
 * `registration.record` writes to the attestation log.
 */
export interface RegisteredEvent {
  readonly txHash: `0x${string}`
  /** The registry's id of this enclave. */
  readonly enclaveId: `0x${string}`
  /** The key epoch that was registered. */
  readonly epoch: bigint
  /** The block that included the registration transaction. */
  readonly blockNumber: bigint
}

export type { GpuEvidenceBundle }
