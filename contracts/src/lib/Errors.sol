// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

/**
 * @title Errors
 * @notice Custom errors shared by the collateral store and the registry.
 * @dev Every rejection is one of these, so the TypeScript client maps each
 *      selector to a stable REGISTRY_* code (contracts/client/errors.ts);
 *      messages are never matched. Grouped as parse (bytes are not what they
 *      claim), verification (not genuine), policy (genuine but not accepted)
 *      and authorisation.
 */

// --- parse -----------------------------------------------------------------
/// @notice DER bytes are malformed at `offset`.
error DerMalformed(uint256 offset);
/// @notice A certificate or CRL uses something other than ECDSA P-256 with SHA-256.
error UnsupportedAlgorithm();
/// @notice The PCK certificate lacks a well-formed SGX extension.
error SgxExtensionInvalid();
/// @notice A certificate marks critical an extension this contract does not process (RFC 5280 §4.2); `offset` is its OID's.
error CriticalExtensionUnknown(uint256 offset);
/// @notice Collateral JSON is malformed at `offset` (or a field is missing).
error JsonMalformed(uint256 offset);
/// @notice A date is not of the form the parser accepts (RFC 3339 `YYYY-MM-DDTHH:MM:SSZ`, UTCTime, GeneralizedTime).
error DateMalformed();
/// @notice The quote is truncated or its header/body is not a TDX v4/v5 quote.
error QuoteMalformed(uint256 offset);
/// @notice Quote version, key type, TEE type or QE vendor is not supported (TDX v4/v5, ECDSA P-256, Intel QE).
error QuoteUnsupported();
/// @notice Collateral of a kind this contract does not handle (e.g. SGX TCB info, unsorted levels).
error CollateralUnsupported();

// --- verification ------------------------------------------------------------
/// @notice A certificate's or CRL's issuer is not a stored, valid CA (or the root where the root is required).
error IssuerUnknown(bytes32 issuerNameHash);
/// @notice A certificate is not signed by its issuer, or is not a CA where it must be.
error CertChainInvalid();
/// @notice A certificate is outside its validity period now.
error CertExpired(bytes32 nameOrId);
/// @notice A certificate (PCK leaf or CA) is listed on its issuer's CRL.
error CertRevoked(bytes32 serialHash);
/// @notice A CRL signature does not verify under its issuer's key.
error CrlSignatureInvalid();
/// @notice The CRL needed for a certificate was never submitted.
error CrlMissing(bytes32 issuerNameHash);
/// @notice Collateral (CRL, TCB info, QE identity) is not valid now, or older than what is stored.
error CollateralExpired(uint8 item);
/// @notice A TCB info or QE identity signature does not verify under the TCB signing key.
error CollateralSignatureInvalid(uint8 item);
/// @notice No TCB info is stored for this FMSPC, or its PCE-ID differs.
error TcbInfoMissing(bytes6 fmspc);
/// @notice No QE identity is stored.
error QeIdentityMissing();
/// @notice The platform, TDX module or QE meets no published TCB level.
error TcbLevelNotFound(uint8 component);
/// @notice The TDX module does not match its identity in the TCB info.
error TdxModuleMismatch();
/// @notice The QE report does not match the QE identity.
error QeIdentityMismatch();
/// @notice The TCB of the platform, module or QE is Revoked.
error TcbRevoked();
/// @notice The PCK certificate referenced by id was never submitted.
error PckCertUnknown(bytes32 certId);
/// @notice The QE report signature does not verify under the PCK key.
error QeReportSignatureInvalid();
/// @notice The QE report's REPORTDATA does not vouch for the attestation key.
error QeReportDataMismatch();
/// @notice The attestation key's signature over header and body does not verify.
error QuoteSignatureInvalid();

// --- policy ----------------------------------------------------------------
/// @notice REPORTDATA does not bind the presented enclave data, chain and registry.
error BindingMismatch();
/// @notice The block hash in REPORTDATA is not the hash of a recent block.
error StaleBlockHash(uint256 blockNumber);
/// @notice The workload id is not on the allow-list for the model.
error WorkloadNotAllowed(bytes32 modelHash, bytes32 workloadId);
/// @notice The TD runs with the DEBUG attribute.
error DebugTd();
/// @notice The combined TCB status is worse than the registry's minimum.
error TcbStatusNotAccepted(uint8 status);
/// @notice The registration's epoch is older than the live record's.
error EpochRegression(uint64 stored, uint64 offered);
/// @notice A registration at the record's own epoch differs from it (signer, key config, workload, model or URL).
error EpochConflict(uint64 epoch);

// --- records, receipts, checkpoints -------------------------------------------
/// @notice No live record for this enclave id.
error EnclaveNotRegistered(bytes32 enclaveId);
/// @notice The record exists but is past its expiry.
error EnclaveExpired(bytes32 enclaveId);
/// @notice The signature recovers to no address that is a live enclave signer.
error SignerNotRegistered(address signer);
/// @notice The signature is malformed (length, s in the upper half, v).
error SignatureMalformed();
/// @notice The record still verifies against current collateral; nothing to invalidate.
error StillValid(bytes32 enclaveId);
/// @notice A checkpoint does not grow the anchored log.
error CheckpointNotNewer(bytes32 logId, uint64 anchoredSize, uint64 offeredSize);

// --- authorisation / governance ------------------------------------------------
/// @notice Only the owner may do this.
error NotOwner(address caller);
/// @notice Only the pending owner may accept ownership.
error NotPendingOwner(address caller);
/// @notice A governance parameter is out of range.
error InvalidParameter();
/// @notice A production deployment was given a root other than Intel's.
error RootNotIntel();
/// @notice Collateral older than what is stored (a rollback to a friendlier TCB info, say).
error CollateralRollback(uint8 item);
/// @notice The signing address is the live signer of another enclave.
error SignerInUse(address signer);
