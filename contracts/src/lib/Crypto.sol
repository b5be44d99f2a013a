// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

/**
 * @title Crypto
 * @notice SHA-256 over memory slices and ECDSA P-256 verification.
 * @dev P-256 goes through the EIP-7951 P256VERIFY precompile at 0x100 (the
 *      RIP-7212 interface: input hash ‖ r ‖ s ‖ x ‖ y, output 32 bytes of 1 on
 *      success, empty otherwise). A chain without it answers empty, which
 *      reads as "does not verify": fail closed, never a silent pass.
 *      SHA-256 is the 0x02 precompile, called on memory slices so that the
 *      signed bytes inside a certificate or quote are hashed in place.
 */
library Crypto {
    /// @dev EIP-7951 §Specification: P256VERIFY address.
    address internal constant P256VERIFY = address(0x100);

    /// @notice SHA-256 of `data[start:end]`.
    function sha256Slice(bytes memory data, uint256 start, uint256 end) internal view returns (bytes32 h) {
        require(start <= end && end <= data.length);
        assembly ("memory-safe") {
            let ok := staticcall(gas(), 0x02, add(add(data, 32), start), sub(end, start), 0x00, 0x20)
            if iszero(ok) { revert(0, 0) }
            h := mload(0x00)
        }
    }

    /// @notice True when (r, s) is a valid P-256 signature of `hash` under (x, y).
    function p256Verify(bytes32 hash, bytes32 r, bytes32 s, bytes32 x, bytes32 y) internal view returns (bool ok) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, hash)
            mstore(add(p, 0x20), r)
            mstore(add(p, 0x40), s)
            mstore(add(p, 0x60), x)
            mstore(add(p, 0x80), y)
            mstore(0x00, 0)
            let success := staticcall(gas(), 0x100, p, 0xa0, 0x00, 0x20)
            ok := and(success, and(eq(returndatasize(), 0x20), eq(mload(0x00), 1)))
        }
    }

    /// @notice 32-byte word of `data` at `offset` (caller checks bounds).
    function word(bytes memory data, uint256 offset) internal pure returns (bytes32 w) {
        assembly ("memory-safe") {
            w := mload(add(add(data, 32), offset))
        }
    }

    /// @notice keccak256 of `data[start:end]` (caller checks bounds).
    function keccakSlice(bytes memory data, uint256 start, uint256 end) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            h := keccak256(add(add(data, 32), start), sub(end, start))
        }
    }
}
