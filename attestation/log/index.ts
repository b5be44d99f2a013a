/**
 * The attestation transparency log, verification side: RFC 6962 hashing
 * and proofs, C2SP tlog-tiles, signed-note and tlog-checkpoint, the entry
 * encoding, readers of a published log, client inclusion proofs and the
 * auditor. No servers and no chain here; the writer is in enclave/log/.
 */
export * from './errors.ts'
export { EMPTY_ROOT, HASH_SIZE, leafHash, nodeHash } from './hash.ts'
export {
  buildMemoryTree,
  consistencyProof,
  inclusionProof,
  rootFromInclusionProof,
  rootsFromConsistencyProof,
  subtreeRoot,
  treeRoot,
  verifyConsistency,
  verifyInclusion,
  type MemoryTree,
  type SubtreeHashes,
} from './merkle.ts'
export * from './tile.ts'
export * from './note.ts'
export * from './checkpoint.ts'
export * from './entry.ts'
export * from './reader.ts'
export * from './client.ts'
export { createTreeBuilder, type TreeBuilder, type TileContent } from './tree-builder.ts'
export { auditLog } from './audit/audit.ts'
export * from './audit/types.ts'
export * from './audit/state.ts'
export * from './audit/archives.ts'
export { createReceiptSignaturePool, recoverSigner, verifyReceiptSignaturesInThread, type ReceiptSignaturePool } from './audit/receipt-signatures.ts'
