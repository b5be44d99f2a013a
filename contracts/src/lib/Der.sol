// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

import {DerMalformed} from "./Errors.sol";
import {Crypto} from "./Crypto.sol";

/**
 * @title Der
 * @notice A minimal DER (ITU-T X.690 §8, §10) TLV reader over memory bytes:
 *         enough to walk certificates and CRLs by offsets, no copies.
 * @dev Only single-byte tags (X.690 §8.1.2.2; the high-tag-number form is
 *      rejected) and definite lengths of at most 4 length octets (§8.1.3);
 *      every node is bounds-checked against its parent, so a malformed length
 *      is an error, never a read past the end.
 */
library Der {
    /// @notice One TLV: its tag, where its header starts, where its content starts and ends.
    struct Node {
        uint256 tag;
        uint256 start;
        uint256 cs;
        uint256 end;
    }

    /// @notice Read the TLV at `p`, which must end by `limit`.
    function at(bytes memory d, uint256 p, uint256 limit) internal pure returns (Node memory n) {
        if (limit > d.length || p + 2 > limit) revert DerMalformed(p);
        n.tag = uint8(d[p]);
        if (n.tag & 0x1f == 0x1f) revert DerMalformed(p);
        n.start = p;
        uint256 l = uint8(d[p + 1]);
        uint256 q = p + 2;
        if (l & 0x80 != 0) {
            uint256 k = l & 0x7f;
            if (k == 0 || k > 4 || q + k > limit) revert DerMalformed(p);
            l = 0;
            for (uint256 i = 0; i < k; i++) l = (l << 8) | uint8(d[q + i]);
            q += k;
        }
        n.cs = q;
        n.end = q + l;
        if (n.end > limit) revert DerMalformed(p);
    }

    /// @notice Read the TLV at `p` and require its tag.
    function expect(bytes memory d, uint256 p, uint256 limit, uint256 tag) internal pure returns (Node memory n) {
        n = at(d, p, limit);
        if (n.tag != tag) revert DerMalformed(p);
    }

    /// @notice First child of a constructed node.
    function first(bytes memory d, Node memory parent) internal pure returns (Node memory) {
        return at(d, parent.cs, parent.end);
    }

    /// @notice The sibling after `n` inside `parent`.
    function next(bytes memory d, Node memory n, Node memory parent) internal pure returns (Node memory) {
        return at(d, n.end, parent.end);
    }

    /// @notice keccak256 of a node's full encoding (the identity of a Name, say).
    function hashOf(bytes memory d, Node memory n) internal pure returns (bytes32) {
        return Crypto.keccakSlice(d, n.start, n.end);
    }

    /// @notice An INTEGER's magnitude, leading zero octets stripped, as a 32-byte right-aligned word (≤ 32 significant bytes).
    function uintValue(bytes memory d, Node memory n) internal pure returns (uint256 v) {
        if (n.tag != 0x02 && n.tag != 0x0a) revert DerMalformed(n.start);
        uint256 p = n.cs;
        if (p == n.end || uint8(d[p]) & 0x80 != 0) revert DerMalformed(n.start); // empty or negative
        while (p < n.end && d[p] == 0) p++;
        if (n.end - p > 32) revert DerMalformed(n.start);
        for (; p < n.end; p++) v = (v << 8) | uint8(d[p]);
    }

    /// @notice keccak256 of an INTEGER's magnitude with leading zeros stripped: a serial number's identity.
    function serialHash(bytes memory d, Node memory n) internal pure returns (bytes32) {
        if (n.tag != 0x02 || n.cs == n.end) revert DerMalformed(n.start);
        uint256 p = n.cs;
        while (p + 1 < n.end && d[p] == 0) p++;
        return Crypto.keccakSlice(d, p, n.end);
    }

    /// @notice A 32-byte big-endian word from an INTEGER of an ECDSA signature (≤ 33 octets with a sign octet).
    function word32(bytes memory d, Node memory n) internal pure returns (bytes32) {
        return bytes32(uintValue(d, n));
    }
}
