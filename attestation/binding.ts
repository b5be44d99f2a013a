/**
 * The one REPORTDATA binding function, shared by the enclave (which puts it
 * in the quote), every TypeScript verifier and — through the same test
 * vectors — the Solidity registry.
 *
 * REPORTDATA (64 bytes, chosen by the TD, signed in the quote) is
 *
 *     bindingHash (32) || freshness (32)
 *
 *     bindingHash = keccak256(abi.encode(
 *         bytes32 domain,           // keccak256("confidential-gateway/report-data/v1")
 *         uint256 mode,             // 1 = client nonce, 3 = on-chain registration
 *         bytes32 keyConfigHash,    // keccak256(RFC 9458 key config bytes)
 *         address signingAddress,   // the epoch's secp256k1 receipt key
 *         bytes32 gpuEvidenceHash,  // hashGpuEvidence(all GPUs' evidence and chains)
 *         bytes32 logKeyHash,       // keccak256(transparency log public key), or zero
 *         uint64  epoch,
 *         bytes32 freshness,        // the nonce, or the recent block hash
 *         uint256 chainId,          // 0 in nonce mode
 *         address registry,         // 0 in nonce mode
 *         bytes32 modelHash,        // registration only: keccak256(UTF-8 model name)
 *         bytes32 urlHash))         // registration only: keccak256(UTF-8 gateway URL)
 *
 * Nonce mode hashes the first ten words, registration mode all twelve.
 *
 * Why this shape: keccak256 over `abi.encode` is what the EVM computes
 * natively, so the registry recomputes the binding for a few hundred gas;
 * the mode and domain tags keep a nonce-mode quote from ever passing as a
 * registration (and the other way round); the freshness value is repeated in
 * clear in the upper half so a verifier sees which nonce or block a quote
 * answers without guessing. Computing and comparing are separate functions.
 *
 * Why model and URL are bound in registration mode: the registry records
 * both for discovery, and a registration transaction is public. Unbound,
 * anyone could resend an enclave's quote with their own URL (redirecting
 * clients who discover gateways on-chain) or another model sharing the
 * workload id. Mode 2 was the registration binding without them; it is
 * retired, and the new layout took a new mode number so that no quote made
 * for the old layout can be read under the new one. Nonce mode is unchanged:
 * there the client already chose the gateway it talks to, and each signed
 * receipt names the model that answered.
 */
import { keccak_256 } from '@noble/hashes/sha3.js'
import { ConfigError, VerificationError } from './errors.ts'

/** keccak256("confidential-gateway/report-data/v1"). */
export const BINDING_DOMAIN = keccak_256(new TextEncoder().encode('confidential-gateway/report-data/v1'))
export const BINDING_MODE_NONCE = 1n
/** 3, not 2: mode 2 was the retired registration layout without model and URL (see the header). */
export const BINDING_MODE_REGISTRATION = 3n

export type Hex = `0x${string}`

interface BindingCommon {
  /** The RFC 9458 key config bytes served at /.well-known/ohttp-gateway. */
  readonly keyConfig: Uint8Array
  /** 20-byte Ethereum address of the epoch's signing key. */
  readonly signingAddress: Hex
  /** `hashGpuEvidence(...)`; `NO_GPU_EVIDENCE_HASH` when the TD has no GPU, which a policy must accept explicitly. */
  readonly gpuEvidenceHash: Uint8Array
  /** The transparency log's public key, or null when the gateway keeps no log. */
  readonly logPublicKey: Uint8Array | null
  /** Key epoch, an unsigned 64-bit integer. */
  readonly epoch: bigint
}

/** A binding answering a client's fresh 32-byte nonce. */
export interface NonceBinding extends BindingCommon {
  readonly mode: 'nonce'
  readonly nonce: Uint8Array
}

/** A binding for on-chain registration: fresh by a recent block hash. */
export interface RegistrationBinding extends BindingCommon {
  readonly mode: 'registration'
  readonly blockHash: Uint8Array
  readonly chainId: bigint
  readonly registry: Hex
  /** The model served, as registered on-chain (AttestationRegistry EnclaveData.model). */
  readonly model: string
  /** The gateway's public base URL, as registered on-chain (EnclaveData.url). */
  readonly url: string
}

export type BindingInput = NonceBinding | RegistrationBinding

function bad(field: string, what: string): never {
  throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `binding ${field}: ${what}`, { details: { field } })
}

function bytes32(v: Uint8Array, field: string): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length !== 32) bad(field, 'expected 32 bytes')
  return v
}

function address(v: Hex, field: string): Uint8Array {
  if (typeof v !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(v)) bad(field, 'expected a 0x-prefixed 20-byte address')
  const word = new Uint8Array(32)
  word.set(Buffer.from(v.slice(2), 'hex'), 12)
  return word
}

function uint(v: bigint, bits: number, field: string): Uint8Array {
  if (typeof v !== 'bigint' || v < 0n || v >= 1n << BigInt(bits)) bad(field, `expected an unsigned ${bits}-bit integer`)
  const word = new Uint8Array(32)
  let x = v
  for (let i = 31; i >= 0 && x > 0n; i--) {
    word[i] = Number(x & 0xffn)
    x >>= 8n
  }
  return word
}

/** keccak256 of a string's UTF-8 bytes: Solidity's keccak256(bytes(s)) for an ABI-encoded string. */
function stringHash(v: string, field: string): Uint8Array {
  if (typeof v !== 'string') bad(field, 'expected a string')
  return keccak_256(new TextEncoder().encode(v))
}

/** keccak256 of the key config, as the registry stores it. */
export function hashKeyConfig(keyConfig: Uint8Array): Uint8Array {
  if (!(keyConfig instanceof Uint8Array) || keyConfig.length === 0) bad('keyConfig', 'expected the key config bytes')
  return keccak_256(keyConfig)
}

/** One GPU's evidence: the SPDM report and its certificate chain, as collected. */
export interface GpuEvidenceItem {
  readonly report: Uint8Array
  readonly certificateChain: Uint8Array
}

/**
 * Hash of all GPU evidence, order-sensitive: keccak256 over a length-prefixed
 * encoding (u32 count, then per GPU u32 length || report || u32 length ||
 * chain), so no two lists share an encoding.
 */
export function hashGpuEvidence(items: readonly GpuEvidenceItem[]): Uint8Array {
  const h = keccak_256.create()
  const u32 = (n: number) => {
    const b = new Uint8Array(4)
    new DataView(b.buffer).setUint32(0, n)
    return b
  }
  h.update(new TextEncoder().encode('confidential-gateway/gpu-evidence/v1'))
  h.update(u32(items.length))
  for (const { report, certificateChain } of items) {
    h.update(u32(report.length)).update(report)
    h.update(u32(certificateChain.length)).update(certificateChain)
  }
  return h.digest()
}

/** The GPU evidence hash of a TD with no GPU. */
export const NO_GPU_EVIDENCE_HASH = hashGpuEvidence([])

/** Compute the 64-byte REPORTDATA for `input`. */
export function computeReportData(input: BindingInput): Uint8Array {
  const registration = input.mode === 'registration'
  if (!registration && input.mode !== 'nonce') bad('mode', 'expected "nonce" or "registration"')
  const freshness = registration ? bytes32(input.blockHash, 'blockHash') : bytes32(input.nonce, 'nonce')
  const words = [
    BINDING_DOMAIN,
    uint(registration ? BINDING_MODE_REGISTRATION : BINDING_MODE_NONCE, 256, 'mode'),
    hashKeyConfig(input.keyConfig),
    address(input.signingAddress, 'signingAddress'),
    bytes32(input.gpuEvidenceHash, 'gpuEvidenceHash'),
    input.logPublicKey === null ? new Uint8Array(32) : keccak_256(input.logPublicKey),
    uint(input.epoch, 64, 'epoch'),
    freshness,
    registration ? uint(input.chainId, 256, 'chainId') : new Uint8Array(32),
    registration ? address(input.registry, 'registry') : new Uint8Array(32),
  ]
  if (registration) words.push(stringHash(input.model, 'model'), stringHash(input.url, 'url'))
  const h = keccak_256.create()
  for (const w of words) h.update(w)
  const out = new Uint8Array(64)
  out.set(h.digest(), 0)
  out.set(freshness, 32)
  return out
}

/** Compare a quote's REPORTDATA with the expected binding; a mismatch means the keys are not the attested ones. */
export function checkReportDataBinding(reportData: Uint8Array, expected: Uint8Array): void {
  if (reportData.length !== 64 || expected.length !== 64 || Buffer.compare(reportData, expected) !== 0) {
    throw new VerificationError('ATTESTATION_BINDING_MISMATCH', 'REPORTDATA does not bind the presented keys and evidence', {
      details: { expected: Buffer.from(expected).toString('hex'), actual: Buffer.from(reportData).toString('hex') },
    })
  }
}
