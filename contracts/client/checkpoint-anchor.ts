/**
 * The EIP-712 typed data an enclave signs to anchor a log checkpoint
 * on-chain (AttestationRegistry.anchorCheckpoint): CheckpointAnchor(bytes32
 * logId, uint64 size, bytes32 root) in the receipts' domain
 * (enclave/receipts.ts receiptDomain: 'ConfidentialGateway', '1', chain id,
 * registry address). Signed by the live record's current signing address, so
 * anyone (the gateway's worker, a relayer) may submit it and the enclave key
 * never needs ETH.
 *
 * logId is the log's enclave id: keccak256 of the log's Ed25519 public key
 * (contracts/registry-types.ts), the record that may anchor it.
 */
import { hashTypedData, type Hex } from 'viem'
import { ConfigError } from '../../attestation/errors.ts'
import type { ReceiptDomain } from '../../enclave/receipts.ts'

/** EIP-712 types of a checkpoint anchor. */
export const CHECKPOINT_ANCHOR_TYPES = {
  CheckpointAnchor: [
    { name: 'logId', type: 'bytes32' },
    { name: 'size', type: 'uint64' },
    { name: 'root', type: 'bytes32' },
  ],
} as const

export const CHECKPOINT_ANCHOR_PRIMARY_TYPE = 'CheckpointAnchor' as const

export interface CheckpointAnchorFields {
  readonly logId: Hex
  readonly size: bigint
  /** RFC 6962 root hash. */
  readonly root: Hex
}

function bytes32(v: unknown, field: string): Hex {
  if (typeof v !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(v)) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `checkpoint anchor ${field} must be 32 bytes of 0x hex`)
  }
  return v.toLowerCase() as Hex
}

/** The log id of a log public key (the enclave id): the log's own definition, re-exported so the two cannot drift. */
export { logIdOf } from '../../attestation/log/checkpoint.ts'

/** The full typed-data definition (what viem's signTypedData / verifyTypedData take). */
export function checkpointAnchorTypedData(fields: CheckpointAnchorFields, domain: ReceiptDomain) {
  if (typeof fields.size !== 'bigint' || fields.size < 0n || fields.size >= 1n << 64n) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'checkpoint anchor size must be a u64 bigint')
  }
  return {
    domain,
    types: CHECKPOINT_ANCHOR_TYPES,
    primaryType: CHECKPOINT_ANCHOR_PRIMARY_TYPE,
    message: { logId: bytes32(fields.logId, 'logId'), size: fields.size, root: bytes32(fields.root, 'root') },
  } as const
}

/** The EIP-712 digest the enclave's signing key signs (SigningKey.signDigest takes its bytes). */
export function checkpointAnchorDigest(fields: CheckpointAnchorFields, domain: ReceiptDomain): Hex {
  return hashTypedData(checkpointAnchorTypedData(fields, domain))
}
