/**
 * Registration evidence: the quote and enclave data that
 * AttestationRegistry.register checks, for the current epoch's keys and a
 * given {blockHash, blockNumber, chainId, registry}.
 *
 * Same order as nonce-mode evidence (enclave/evidence.ts): the GPU evidence
 * is collected first, answering the block hash as its nonce, because its
 * hash goes into REPORTDATA (attestation/binding.ts, mode "registration");
 * the quote comes second and covers it. The model and URL the registry
 * records are bound too, so nobody resending the quote can change where
 * clients discovering this enclave are sent. The log public key is bound as
 * keccak256(logPublicKey), which is also the enclave's on-chain id, so only
 * this TD can replace its own record at the next epoch.
 *
 * The PCK leaf is read from the quote's own certification data: the
 * registry caches it on the first registration of a platform, and later ones
 * send its id instead (the worker asks the registry which).
 */
import { keccak_256 } from '@noble/hashes/sha3.js'
import { computeReportData, hashGpuEvidence, hashKeyConfig, NO_GPU_EVIDENCE_HASH, type Hex } from '../attestation/binding.ts'
import { ConfigError, ParseError } from '../attestation/errors.ts'
import type { GpuEvidenceBundle } from '../attestation/nvidia/evidence.ts'
import { parseQuote } from '../attestation/tdx/abi/quote.ts'
import { hex } from '../attestation/bytes/hex.ts'
import type { RegistrationEnclaveData } from '../contracts/registry-types.ts'
import { collectGpuEvidence, evidenceUnavailable, type EvidenceEpochs } from './evidence.ts'
import type { GpuEvidenceProvider } from './gpu/provider.ts'
import type { QuoteProvider } from './types.ts'

/** Ed25519 public keys are 32 bytes (RFC 8032 §5.1.5); the registry takes the log key as bytes32. */
export const LOG_PUBLIC_KEY_SIZE = 32

/** Where and against which block the registration will be checked. */
export interface RegistrationTarget {
  readonly blockHash: Hex
  readonly blockNumber: bigint
  readonly chainId: bigint
  readonly registry: Hex
}

export interface RegistrationEvidence {
  /** The full quote as the quote provider returned it. */
  readonly quote: Uint8Array
  /** The quote's PCK leaf certificate (DER) and its on-chain id, keccak256 of it. */
  readonly pckCertDer: Uint8Array
  readonly pckCertId: Hex
  readonly reportData: Uint8Array
  readonly data: RegistrationEnclaveData
  /** The GPU evidence bound in the quote (null for a TD without GPU), for the transparency log. */
  readonly gpu: GpuEvidenceBundle | null
}

export interface RegistrationEvidenceOptions {
  readonly quotes: QuoteProvider
  /** Null for a TD without GPU: REPORTDATA then commits to NO_GPU_EVIDENCE_HASH. */
  readonly gpu: GpuEvidenceProvider | null
  readonly epochs: EvidenceEpochs
  /** The transparency log's Ed25519 public key (32 bytes): the enclave's identity on-chain. */
  readonly logPublicKey: Uint8Array
  /** The model served and the gateway's public base URL, recorded on-chain for discovery. */
  readonly model: string
  readonly url: string
}

export type RegistrationEvidenceSource = (target: RegistrationTarget) => Promise<RegistrationEvidence>

const toHex = (b: Uint8Array): Hex => `0x${hex(b)}`

const unavailable = (step: 'gpu' | 'binding' | 'quote' | 'pck', provider: string, e: unknown) => evidenceUnavailable(step, provider, e, 'registration evidence')

function fromHex(v: Hex, size: number, field: string): Uint8Array {
  if (typeof v !== 'string' || !new RegExp(`^0x[0-9a-fA-F]{${size * 2}}$`).test(v)) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `registration target ${field} must be ${size} bytes of 0x hex`)
  }
  return new Uint8Array(Buffer.from(v.slice(2), 'hex'))
}

/** Make the registration evidence source of one enclave. */
export function createRegistrationEvidence(options: RegistrationEvidenceOptions): RegistrationEvidenceSource {
  const { quotes, gpu, epochs, logPublicKey, model, url } = options ?? ({} as RegistrationEvidenceOptions)
  const invalid = (what: string): never => {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `createRegistrationEvidence: ${what}`)
  }
  if (typeof quotes?.getQuote !== 'function') invalid('quotes must be a QuoteProvider')
  if (gpu !== null && typeof gpu?.collect !== 'function') invalid('gpu must be a GpuEvidenceProvider or null')
  if (typeof epochs?.current !== 'function') invalid('epochs must have current()')
  if (!(logPublicKey instanceof Uint8Array) || logPublicKey.length !== LOG_PUBLIC_KEY_SIZE) invalid(`logPublicKey must be ${LOG_PUBLIC_KEY_SIZE} bytes`)
  if (typeof model !== 'string' || model.length === 0) invalid('model must be a non-empty string')
  if (typeof url !== 'string') invalid('url must be a string')
  const logKey = logPublicKey.slice()

  return async (target) => {
    const blockHash = fromHex(target?.blockHash, 32, 'blockHash')
    fromHex(target.registry, 20, 'registry')
    if (typeof target.blockNumber !== 'bigint' || target.blockNumber < 0n) invalid('target.blockNumber must be a non-negative bigint')
    const epoch = epochs.current()
    // The block hash is the GPU's nonce too: the GPU evidence is as fresh as the quote.
    const gpuBundle = await collectGpuEvidence(gpu, blockHash, 'registration evidence')
    const gpuEvidenceHash = gpuBundle === null ? NO_GPU_EVIDENCE_HASH : hashGpuEvidence(gpuBundle.gpus)
    let reportData: Uint8Array
    try {
      reportData = computeReportData({
        mode: 'registration',
        blockHash,
        chainId: target.chainId,
        registry: target.registry,
        keyConfig: epoch.ohttpKey.keyConfig,
        signingAddress: epoch.signingKey.address,
        gpuEvidenceHash,
        logPublicKey: logKey,
        epoch: epoch.number,
        model,
        url,
      })
    } catch (e) {
      throw unavailable('binding', 'binding', e)
    }
    let quote: Uint8Array
    try {
      quote = await quotes.getQuote(reportData)
    } catch (e) {
      throw unavailable('quote', quotes.name, e)
    }
    let pckCertDer: Uint8Array
    try {
      const leaf = parseQuote(quote).certification.pckChain[0]
      if (!leaf) throw new ParseError('ATTESTATION_CERT_DATA_UNSUPPORTED', 'the quote carries no PCK certificate')
      pckCertDer = leaf.slice()
    } catch (e) {
      throw unavailable('pck', quotes.name, e)
    }
    return {
      quote,
      pckCertDer,
      pckCertId: toHex(keccak_256(pckCertDer)),
      reportData,
      gpu: gpuBundle,
      data: {
        logPublicKey: toHex(logKey),
        signingAddress: epoch.signingKey.address,
        keyConfigHash: toHex(hashKeyConfig(epoch.ohttpKey.keyConfig)),
        gpuEvidenceHash: toHex(gpuEvidenceHash),
        epoch: epoch.number,
        blockNumber: target.blockNumber,
        model,
        url,
      },
    }
  }
}
