// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

/**
 * @title CollateralTypes
 * @notice Decoded TCB info and QE identity, as the JSON parser returns them
 *         and the collateral store keeps them (Intel PCS API v4: TCB Info V3,
 *         Enclave Identity V2). Status ranks: 0 UpToDate, 1 SWHardeningNeeded,
 *         2 ConfigurationNeeded, 3 ConfigurationAndSWHardeningNeeded,
 *         4 OutOfDate, 5 OutOfDateConfigurationNeeded, 6 Revoked.
 */

/// @notice One platform TCB level: SGX components (component 1 first), TDX components, PCESVN.
struct PlatformLevel {
    bytes16 sgx;
    bytes16 tdx;
    uint16 pceSvn;
    uint8 status;
    /// @dev Intel's advisoryIDs array text without brackets, e.g. `"INTEL-SA-00960","INTEL-SA-00982"`.
    bytes advisories;
}

/// @notice One QE or TDX module level: an ISVSVN threshold.
struct IsvLevel {
    uint16 isvSvn;
    uint8 status;
    bytes advisories;
}

/// @notice A TDX module identity: MRSIGNER (keccak256 of its 48 bytes), attributes and mask.
struct ModuleIdentity {
    bytes32 mrSignerHash;
    bytes8 attributes;
    bytes8 mask;
    bool exists;
}

/// @notice A `TDX_<major>` module identity with its levels.
struct ModuleIdentityDoc {
    uint8 version;
    ModuleIdentity identity;
    IsvLevel[] levels;
}

struct TcbInfoDoc {
    bool tdx;
    uint256 version;
    uint64 issueDate;
    uint64 nextUpdate;
    bytes6 fmspc;
    bytes2 pceId;
    uint32 evaluationDataNumber;
    ModuleIdentity tdxModule;
    /// @dev Only well-formed `TDX_<hex byte>` identities, first occurrence of each major version.
    ModuleIdentityDoc[] identities;
    /// @dev Every entry of tdxModuleIdentities, matched or not (QVL asks "are there any").
    uint256 identityCount;
    PlatformLevel[] levels;
}

struct QeIdentityDoc {
    uint64 issueDate;
    uint64 nextUpdate;
    uint32 evaluationDataNumber;
    uint16 isvProdId;
    bytes4 miscSelect;
    bytes4 miscSelectMask;
    bytes16 attributes;
    bytes16 attributesMask;
    bytes32 mrSigner;
    IsvLevel[] levels;
}
