/**
 * Errors of the client SDK: stable CLIENT_* codes a caller branches on,
 * grouped in families that decide the CLI's exit codes and the proxy's
 * answers. Messages are fixed text about the failure, never request or
 * response content (a prompt must never end up in an error someone logs);
 * details carry identifiers only (codes, addresses, hashes, URLs).
 *
 * Every verification step that cannot run is a failure with its own code
 * here: there is no "skipped" outcome.
 */
import { BaseError, type BaseErrorOptions } from '../../attestation/errors.ts'

/**
 * - config:       the caller's own policy or options are invalid;
 * - unavailable:  something needed could not be reached (gateway, RPC, PCS);
 * - verification: the provider's evidence is not genuine or does not bind its keys;
 * - policy:       genuine, but not acceptable to this policy;
 * - registry:     the on-chain record does not vouch for these keys;
 * - response:     the answer failed its checks (decryption, receipt);
 * - upstream:     the provider answered with an error.
 */
export type ClientErrorFamily = 'config' | 'unavailable' | 'verification' | 'policy' | 'registry' | 'response' | 'upstream'

export const CLIENT_ERROR_CODES = {
  CLIENT_CONFIG_INVALID: { family: 'config', description: 'the client policy or an option is invalid' },
  CLIENT_EVIDENCE_UNAVAILABLE: { family: 'unavailable', description: 'the provider did not answer the evidence request with a bundle' },
  CLIENT_COLLATERAL_UNAVAILABLE: { family: 'unavailable', description: 'TDX collateral for the quote could not be obtained' },
  CLIENT_REGISTRY_UNAVAILABLE: { family: 'unavailable', description: 'no registry RPC endpoint answered' },
  CLIENT_EVIDENCE_MALFORMED: { family: 'verification', description: 'the evidence bundle, its quote or its GPU evidence is malformed' },
  CLIENT_QUOTE_INVALID: { family: 'verification', description: 'the TDX quote does not verify (signature, chain, CRL, collateral, TCB; details.reason)' },
  CLIENT_GPU_EVIDENCE_MISSING: { family: 'verification', description: 'the policy requires GPU evidence and the bundle has none' },
  CLIENT_GPU_INVALID: { family: 'verification', description: 'the GPU evidence does not verify (details.reason)' },
  CLIENT_BINDING_MISMATCH: {
    family: 'verification',
    description: 'REPORTDATA does not bind the presented key config, signing address, GPU evidence, epoch and this nonce',
  },
  CLIENT_POLICY_REJECTED: { family: 'policy', description: 'the quote is genuine but the policy rejects it (details.mismatches)' },
  CLIENT_GPU_POLICY_REJECTED: { family: 'policy', description: 'the GPU evidence is genuine but the policy rejects it (details.mismatches)' },
  CLIENT_NOT_REGISTERED: { family: 'registry', description: 'no registry record for the signing address' },
  CLIENT_REGISTRATION_EXPIRED: { family: 'registry', description: 'the signing address was registered, but its record expired or was replaced' },
  CLIENT_REGISTRY_MISMATCH: {
    family: 'registry',
    description: 'the registry record names another key config, workload, chain or registry than the verified evidence',
  },
  CLIENT_NO_PROVIDER: { family: 'registry', description: 'the registry lists no live provider for the model' },
  CLIENT_KEY_CONFIG_CHANGED: {
    family: 'verification',
    description: 'the gateway stopped accepting the verified key config and re-verification did not yield a usable one',
  },
  CLIENT_UPSTREAM_FAILED: { family: 'upstream', description: 'the gateway or relay could not be reached, or answered with an error outside the encryption' },
  CLIENT_UPSTREAM_RATE_LIMITED: { family: 'upstream', description: 'the gateway or relay answered 429' },
  CLIENT_RESPONSE_INVALID: {
    family: 'response',
    description: 'the encrypted response does not decrypt in order (tampered, reordered, replayed or truncated; details.reason)',
  },
  CLIENT_RECEIPT_MISSING: { family: 'response', description: 'the response ended without a receipt (or with the enclave error trailer)' },
  CLIENT_RECEIPT_INVALID: {
    family: 'response',
    description: 'the receipt does not cover what was sent and received, or is not signed by the verified signing key in the expected domain',
  },
  CLIENT_RECEIPT_NOT_LOGGED: {
    family: 'response',
    description: "the gateway's transparency log does not prove this receipt: no proof, a proof that does not verify under the attested log key, or an entry for another receipt (details.reason)",
  },
} as const satisfies Record<string, { readonly family: ClientErrorFamily; readonly description: string }>

export type ClientErrorCode = keyof typeof CLIENT_ERROR_CODES

export class ClientError extends BaseError<ClientErrorCode> {
  override name = 'ClientError'
  constructor(code: ClientErrorCode, shortMessage: string, options: BaseErrorOptions = {}) {
    super(code, shortMessage, options)
  }
  get family(): ClientErrorFamily {
    return CLIENT_ERROR_CODES[this.code].family
  }
}

export function isClientError(e: unknown): e is ClientError {
  return e instanceof ClientError && Object.hasOwn(CLIENT_ERROR_CODES, e.code)
}

/** The stable code of whatever was thrown underneath, for `details.reason` (never a message). */
export function reasonOf(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(code) ? code : 'UNKNOWN'
}

/** Where a problem document (RFC 9457, as the gateway and enclave answer) keeps its code. */
const problemCodeOf = (json: unknown): unknown => (json as { code?: unknown }).code

/**
 * The sanitized code of a JSON error body, for `details.reason`: what `pick`
 * finds in it (default: a problem document's top-level `code`; an OpenAI
 * error has it at `error.code`) if it is a well-formed code string, else
 * 'UNKNOWN' — also for a body that is not JSON. Only the picked code leaves
 * here: never the body, nor a parse error (whose message quotes the input).
 */
export function codeInBody(body: string | Uint8Array, pick: (json: unknown) => unknown = problemCodeOf): string {
  try {
    return reasonOf({ code: pick(JSON.parse(typeof body === 'string' ? body : Buffer.from(body).toString('utf8'))) })
  } catch {
    return 'UNKNOWN'
  }
}
