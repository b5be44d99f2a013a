// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

import {JsonMalformed} from "./Errors.sol";
import {DateTime} from "./DateTime.sol";
import {Crypto} from "./Crypto.sol";

/**
 * @title Json
 * @notice A single-pass JSON (RFC 8259) reader over memory bytes for Intel's
 *         collateral documents: walk an object's members or an array's
 *         elements by offsets and read the scalar values the registry needs.
 * @dev Recursive descent without a separate skipping pass: `member` and
 *      `element` return where a value starts, the caller reads (or skips)
 *      that value, which yields where it ends, and `next` moves past the
 *      separator. Every byte is visited about once, which is what keeps a
 *      4 KB TCB info affordable. The documents are signed by Intel before
 *      anything here runs, so the reader guards against reads past the end
 *      and structural confusion (a key is matched only at the level being
 *      walked), not against adversarial nesting. Values are read strictly: a
 *      number is ASCII digits, a hex field exactly its length, a status one
 *      of Intel's strings; anything else is JsonMalformed (fail closed).
 *      Escapes are skipped, never decoded: no field read here contains one.
 */
library Json {
    function ch(bytes memory j, uint256 p) internal pure returns (bytes1 c) {
        if (p >= j.length) revert JsonMalformed(p);
        assembly ("memory-safe") {
            c := mload(add(add(j, 32), p))
        }
    }

    function ws(bytes memory j, uint256 p) internal pure returns (uint256 q) {
        assembly ("memory-safe") {
            let base := add(j, 32)
            let len := mload(j)
            q := p
            for {} lt(q, len) { q := add(q, 1) } {
                let c := byte(0, mload(add(base, q)))
                // space, \n, \r, \t
                if iszero(or(or(eq(c, 0x20), eq(c, 0x0a)), or(eq(c, 0x0d), eq(c, 0x09)))) {
                    break
                }
            }
        }
    }

    /// @notice End (one past the closing quote) of the string starting at `p`.
    function skipString(bytes memory j, uint256 p) internal pure returns (uint256 end) {
        bool bad;
        assembly ("memory-safe") {
            let base := add(j, 32)
            let len := mload(j)
            switch and(lt(p, len), eq(byte(0, mload(add(base, p))), 0x22))
            case 0 {
                bad := 1
            }
            default {
                p := add(p, 1)
                for {} 1 {} {
                    if iszero(lt(p, len)) {
                        bad := 1
                        break
                    }
                    let c := byte(0, mload(add(base, p)))
                    if eq(c, 0x22) {
                        break
                    }
                    if lt(c, 0x20) {
                        bad := 1
                        break
                    }
                    if eq(c, 0x5c) {
                        p := add(p, 1)
                    }
                    p := add(p, 1)
                }
            }
            end := add(p, 1)
        }
        if (bad) revert JsonMalformed(p);
    }

    /// @notice End of the value starting at `p` (string, object, array or scalar), for values nobody reads.
    function skipValue(bytes memory j, uint256 p) internal pure returns (uint256 end) {
        bytes1 c = ch(j, p);
        if (c == '"') return skipString(j, p);
        if (c == "{" || c == "[") {
            bool bad;
            assembly ("memory-safe") {
                let base := add(j, 32)
                let len := mload(j)
                let depth := 0
                for {} 1 {} {
                    if iszero(lt(p, len)) {
                        bad := 1
                        break
                    }
                    let b := byte(0, mload(add(base, p)))
                    if eq(b, 0x22) {
                        // a string inside the container: brackets in it do not count
                        p := add(p, 1)
                        for {} 1 {} {
                            if iszero(lt(p, len)) {
                                bad := 1
                                break
                            }
                            let d := byte(0, mload(add(base, p)))
                            if eq(d, 0x22) {
                                break
                            }
                            if eq(d, 0x5c) {
                                p := add(p, 1)
                            }
                            p := add(p, 1)
                        }
                        if bad {
                            break
                        }
                    }
                    if or(eq(b, 0x7b), eq(b, 0x5b)) {
                        depth := add(depth, 1)
                    }
                    if or(eq(b, 0x7d), eq(b, 0x5d)) {
                        depth := sub(depth, 1)
                        if iszero(depth) {
                            break
                        }
                    }
                    p := add(p, 1)
                }
                end := add(p, 1)
            }
            if (bad) revert JsonMalformed(p);
            return end;
        }
        return scalarEnd(j, p);
    }

    /// @notice End of a number or literal starting at `p`.
    function scalarEnd(bytes memory j, uint256 p) internal pure returns (uint256 q) {
        assembly ("memory-safe") {
            let base := add(j, 32)
            let len := mload(j)
            q := p
            for {} lt(q, len) { q := add(q, 1) } {
                let c := byte(0, mload(add(base, q)))
                // , } ] space \n \r \t
                if or(or(or(eq(c, 0x2c), eq(c, 0x7d)), or(eq(c, 0x5d), eq(c, 0x20))), or(or(eq(c, 0x0a), eq(c, 0x0d)), eq(c, 0x09))) {
                    break
                }
            }
        }
        if (q == p) revert JsonMalformed(p);
    }

    /// @notice Position of the first member/element inside the container at `p` (which must open with `open`).
    function enter(bytes memory j, uint256 p, bytes1 open) internal pure returns (uint256) {
        if (ch(j, p) != open) revert JsonMalformed(p);
        return ws(j, p + 1);
    }

    /**
     * @notice The object member at `p`: its key hash and where its value
     *         starts. `done` when `p` is at the closing brace; then `vs` is
     *         the position after it (the object's end).
     */
    function member(bytes memory j, uint256 p) internal pure returns (bool done, bytes32 key, uint256 vs) {
        if (ch(j, p) == "}") return (true, 0, p + 1);
        uint256 e = skipString(j, p);
        // The key's text, quotes excluded; skipString returned e ≥ p + 2, so neither bound wraps.
        unchecked {
            key = Crypto.keccakSlice(j, p + 1, e - 1);
        }
        p = ws(j, e);
        if (ch(j, p) != ":") revert JsonMalformed(p);
        vs = ws(j, p + 1);
    }

    /// @notice The array element at `p`: where it starts, or `done` (then `vs` is the array's end).
    function element(bytes memory j, uint256 p) internal pure returns (bool done, uint256 vs) {
        if (ch(j, p) == "]") return (true, p + 1);
        return (false, p);
    }

    /// @notice After a value ending at `ve`: the start of the next member/element, or the closing bracket.
    function next(bytes memory j, uint256 ve, bytes1 close) internal pure returns (uint256) {
        uint256 p = ws(j, ve);
        bytes1 c = ch(j, p);
        if (c == ",") return ws(j, p + 1);
        if (c == close) return p;
        revert JsonMalformed(p);
    }

    /// @notice A non-negative decimal integer value at `p` and its end.
    function uintAt(bytes memory j, uint256 p) internal pure returns (uint256 v, uint256 end) {
        end = scalarEnd(j, p);
        if (end - p > 10) revert JsonMalformed(p);
        for (uint256 q = p; q < end; q++) {
            uint8 c = uint8(j[q]);
            if (c < 0x30 || c > 0x39) revert JsonMalformed(q);
            v = v * 10 + (c - 0x30);
        }
    }

    /// @notice Content bounds of the string value at `p` (without quotes) and its end.
    function stringAt(bytes memory j, uint256 p) internal pure returns (uint256 s, uint256 e, uint256 end) {
        end = skipString(j, p);
        return (p + 1, end - 1, end);
    }

    function nibble(uint256 b) private pure returns (uint256) {
        if (b >= 0x30 && b <= 0x39) return b - 0x30;
        if (b >= 0x61 && b <= 0x66) return b - 0x57;
        if (b >= 0x41 && b <= 0x46) return b - 0x37;
        revert JsonMalformed(0);
    }

    /// @notice The byte written as two hex digits at `p` (caller checks bounds).
    function hexByteAt(bytes memory j, uint256 p) internal pure returns (uint8) {
        return uint8((nibble(uint8(j[p])) << 4) | nibble(uint8(j[p + 1])));
    }

    /// @notice A hex string value of exactly `n` ≤ 32 bytes at `p`, left-aligned in a word, and its end.
    function hexAt(bytes memory j, uint256 p, uint256 n) internal pure returns (bytes32 v, uint256 end) {
        uint256 s;
        uint256 e;
        (s, e, end) = stringAt(j, p);
        if (n > 32 || e - s != 2 * n) revert JsonMalformed(p);
        uint256 x;
        for (uint256 i = 0; i < n; i++) x = (x << 8) | hexByteAt(j, s + 2 * i);
        v = bytes32(x << (8 * (32 - n)));
    }

    /// @notice A 48-byte hex string value at `p` as keccak256 of its bytes (MRSIGNERSEAM is compared by hash), and its end.
    function hex48HashAt(bytes memory j, uint256 p) internal pure returns (bytes32 h, uint256 end) {
        uint256 s;
        uint256 e;
        (s, e, end) = stringAt(j, p);
        if (e - s != 96) revert JsonMalformed(p);
        uint256 a;
        uint256 b;
        for (uint256 i = 0; i < 32; i++) a = (a << 8) | hexByteAt(j, s + 2 * i);
        for (uint256 i = 32; i < 48; i++) b = (b << 8) | hexByteAt(j, s + 2 * i);
        h = keccak256(abi.encodePacked(bytes32(a), bytes16(uint128(b))));
    }

    /// @notice An RFC 3339 date string value at `p` as Unix seconds, and its end.
    function dateAt(bytes memory j, uint256 p) internal pure returns (uint64 t, uint256 end) {
        (uint256 s, uint256 e, uint256 x) = stringAt(j, p);
        return (DateTime.fromRfc3339(j, s, e), x);
    }

    /**
     * @notice A TCB status string at `p` as its rank (TCB info v3 / identity
     *         v2, Intel PCS API v4): 0 UpToDate … 5 OutOfDateConfigurationNeeded,
     *         6 Revoked. An unknown status cannot be ranked, so it is an error.
     */
    function statusAt(bytes memory j, uint256 p) internal pure returns (uint8 rank, uint256 end) {
        (uint256 s, uint256 e, uint256 x) = stringAt(j, p);
        bytes32 h = Crypto.keccakSlice(j, s, e);
        end = x;
        if (h == keccak256("UpToDate")) rank = 0;
        else if (h == keccak256("SWHardeningNeeded")) rank = 1;
        else if (h == keccak256("ConfigurationNeeded")) rank = 2;
        else if (h == keccak256("ConfigurationAndSWHardeningNeeded")) rank = 3;
        else if (h == keccak256("OutOfDate")) rank = 4;
        else if (h == keccak256("OutOfDateConfigurationNeeded")) rank = 5;
        else if (h == keccak256("Revoked")) rank = 6;
        else revert JsonMalformed(p);
    }

    /// @notice The bytes of `j[s:e]`.
    function slice(bytes memory j, uint256 s, uint256 e) internal pure returns (bytes memory out) {
        out = new bytes(e - s);
        assembly ("memory-safe") {
            mcopy(add(out, 32), add(add(j, 32), s), sub(e, s))
        }
    }

    /**
     * @notice An advisoryIDs array at `p` checked to hold only strings,
     *         returned as its inner text (`"INTEL-SA-00960","INTEL-SA-00982"`):
     *         Intel's exact bytes, which clients read back as
     *         `JSON.parse('[' + x + ']')`; and its end.
     */
    function advisoriesAt(bytes memory j, uint256 p) internal pure returns (bytes memory text, uint256 end) {
        uint256 q = enter(j, p, "[");
        uint256 first = q;
        uint256 last = q;
        while (true) {
            (bool done, uint256 vs) = element(j, q);
            if (done) {
                end = vs;
                break;
            }
            last = skipString(j, vs);
            q = next(j, last, "]");
        }
        return (slice(j, first, last), end);
    }
}
