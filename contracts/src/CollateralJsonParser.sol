// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

import {Json} from "./lib/Json.sol";
import "./lib/CollateralTypes.sol";
import "./lib/Errors.sol";

/**
 * @title CollateralJsonParser
 * @notice Stateless parser of Intel's TDX TCB info v3 and TD_QE identity v2
 *         JSON (the exact signed text) into the structures the collateral
 *         store keeps. Pure functions: the store verifies Intel's signature
 *         over the same bytes before it asks, and applies every validity and
 *         rollback rule itself.
 * @dev A separate contract only to keep PcsCollateral under EIP-170's 24 KiB;
 *      PcsCollateral creates it in its constructor, so it is not a second
 *      thing to deploy or configure. Required fields missing, wrong types,
 *      unknown statuses, non-16 component lists and TCB levels not in QVL's
 *      best-first order are errors (fail closed). Single pass: every reader
 *      returns where its value ends (lib/Json.sol).
 */
contract CollateralJsonParser {
    /// @dev More entries than any Intel document has; beyond it the document is refused, not truncated.
    uint256 private constant MAX_ENTRIES = 64;

    function checkRoom(uint256 n) private pure {
        if (n > MAX_ENTRIES) revert CollateralUnsupported();
    }

    /// @notice Parse a TCB info document (`tcbInfo` member text).
    function parseTcbInfo(bytes calldata json) external pure returns (TcbInfoDoc memory doc) {
        bytes memory j = json;
        uint256 seen;
        uint256 p = Json.enter(j, Json.ws(j, 0), "{");
        while (true) {
            (bool done, bytes32 k, uint256 vs) = Json.member(j, p);
            if (done) break;
            uint256 ve;
            if (k == keccak256("id")) {
                uint256 s;
                uint256 e;
                (s, e, ve) = Json.stringAt(j, vs);
                doc.tdx = e - s == 3 && j[s] == "T" && j[s + 1] == "D" && j[s + 2] == "X";
                seen |= 1;
            } else if (k == keccak256("version")) {
                (doc.version, ve) = Json.uintAt(j, vs);
                seen |= 2;
            } else if (k == keccak256("issueDate")) {
                (doc.issueDate, ve) = Json.dateAt(j, vs);
                seen |= 4;
            } else if (k == keccak256("nextUpdate")) {
                (doc.nextUpdate, ve) = Json.dateAt(j, vs);
                seen |= 8;
            } else if (k == keccak256("fmspc")) {
                bytes32 v;
                (v, ve) = Json.hexAt(j, vs, 6);
                doc.fmspc = bytes6(v);
                seen |= 16;
            } else if (k == keccak256("pceId")) {
                bytes32 v;
                (v, ve) = Json.hexAt(j, vs, 2);
                doc.pceId = bytes2(v);
                seen |= 32;
            } else if (k == keccak256("tcbEvaluationDataNumber")) {
                uint256 v;
                (v, ve) = Json.uintAt(j, vs);
                doc.evaluationDataNumber = uint32(v);
                seen |= 64;
            } else if (k == keccak256("tdxModule")) {
                ModuleIdentityDoc memory m;
                (m, ve) = readModule(j, vs);
                doc.tdxModule = m.identity;
                doc.tdxModule.exists = true;
                seen |= 128;
            } else if (k == keccak256("tcbLevels")) {
                (doc.levels, ve) = readPlatformLevels(j, vs);
                seen |= 256;
            } else if (k == keccak256("tdxModuleIdentities")) {
                (doc.identities, doc.identityCount, ve) = readIdentities(j, vs);
            } else {
                ve = Json.skipValue(j, vs);
            }
            p = Json.next(j, ve, "}");
        }
        // TDX TCB info v3 with a TDX module only [PCS API v4]: SGX TCB info is not what TDX quotes need.
        if (!doc.tdx || doc.version < 3 || seen != 0x1ff) revert CollateralUnsupported();
    }

    /// @dev A tdxModule or tdxModuleIdentities entry; `version` set (and identity.exists) only for a well-formed `TDX_<hex byte>` id.
    function readModule(bytes memory j, uint256 start) private pure returns (ModuleIdentityDoc memory m, uint256 end) {
        uint256 p = Json.enter(j, start, "{");
        uint256 seen;
        while (true) {
            (bool done, bytes32 k, uint256 vs) = Json.member(j, p);
            if (done) {
                end = vs;
                break;
            }
            uint256 ve;
            if (k == keccak256("mrsigner")) {
                (m.identity.mrSignerHash, ve) = Json.hex48HashAt(j, vs);
                seen |= 1;
            } else if (k == keccak256("attributes")) {
                bytes32 v;
                (v, ve) = Json.hexAt(j, vs, 8);
                m.identity.attributes = bytes8(v);
                seen |= 2;
            } else if (k == keccak256("attributesMask")) {
                bytes32 v;
                (v, ve) = Json.hexAt(j, vs, 8);
                m.identity.mask = bytes8(v);
                seen |= 4;
            } else if (k == keccak256("id")) {
                // "TDX_<major>", two hex digits [PCS API v4, tdxModuleIdentities].
                uint256 s;
                uint256 e;
                (s, e, ve) = Json.stringAt(j, vs);
                if (e - s == 6 && j[s] == "T" && j[s + 1] == "D" && j[s + 2] == "X" && j[s + 3] == "_") {
                    m.version = Json.hexByteAt(j, s + 4);
                    m.identity.exists = m.version != 0;
                }
            } else if (k == keccak256("tcbLevels")) {
                (m.levels, ve) = readIsvLevels(j, vs);
                seen |= 8;
            } else {
                ve = Json.skipValue(j, vs);
            }
            p = Json.next(j, ve, "}");
        }
        if (seen & 7 != 7) revert JsonMalformed(start);
        if (seen & 8 == 0) m.identity.exists = false;
    }

    function readIdentities(bytes memory j, uint256 start) private pure returns (ModuleIdentityDoc[] memory out, uint256 total, uint256 end) {
        out = new ModuleIdentityDoc[](MAX_ENTRIES);
        uint256 kept;
        uint256 seenVersions;
        uint256 p = Json.enter(j, start, "[");
        while (true) {
            (bool done, uint256 vs) = Json.element(j, p);
            if (done) {
                end = vs;
                break;
            }
            (ModuleIdentityDoc memory m, uint256 ve) = readModule(j, vs);
            if (m.levels.length == 0) revert JsonMalformed(vs);
            total++;
            // An id other than TDX_<hex byte> never matches a quote, and the TypeScript verifier's find() takes the first of a version.
            if (m.identity.exists && seenVersions & (1 << m.version) == 0) {
                seenVersions |= 1 << m.version;
                checkRoom(kept + 1);
                out[kept++] = m;
            }
            p = Json.next(j, ve, "]");
        }
        assembly ("memory-safe") {
            mstore(out, kept)
        }
    }

    /// @notice An ISV TCB levels array (QE identity, TDX module identity).
    function readIsvLevels(bytes memory j, uint256 start) private pure returns (IsvLevel[] memory out, uint256 end) {
        out = new IsvLevel[](MAX_ENTRIES);
        uint256 n;
        uint256 p = Json.enter(j, start, "[");
        while (true) {
            (bool done, uint256 vs) = Json.element(j, p);
            if (done) {
                end = vs;
                break;
            }
            uint256 q = Json.enter(j, vs, "{");
            IsvLevel memory l;
            uint256 seen;
            uint256 levelEnd;
            while (true) {
                (bool d2, bytes32 k, uint256 v2) = Json.member(j, q);
                if (d2) {
                    levelEnd = v2;
                    break;
                }
                uint256 ve;
                if (k == keccak256("tcb")) {
                    uint256 r = Json.enter(j, v2, "{");
                    (bool d3, bytes32 k3, uint256 v3) = Json.member(j, r);
                    if (d3 || k3 != keccak256("isvsvn")) revert JsonMalformed(v2);
                    uint256 svn;
                    (svn, ve) = Json.uintAt(j, v3);
                    if (svn > 0xffff) revert JsonMalformed(v3);
                    l.isvSvn = uint16(svn);
                    ve = Json.ws(j, ve);
                    if (Json.ch(j, ve) != "}") revert JsonMalformed(ve);
                    ve++;
                    seen |= 1;
                } else if (k == keccak256("tcbStatus")) {
                    (l.status, ve) = Json.statusAt(j, v2);
                    seen |= 2;
                } else if (k == keccak256("advisoryIDs")) {
                    (l.advisories, ve) = Json.advisoriesAt(j, v2);
                } else {
                    ve = Json.skipValue(j, v2);
                }
                q = Json.next(j, ve, "}");
            }
            if (seen != 3) revert JsonMalformed(vs);
            checkRoom(n + 1);
            out[n++] = l;
            p = Json.next(j, levelEnd, "]");
        }
        if (n == 0) revert JsonMalformed(start);
        assembly ("memory-safe") {
            mstore(out, n)
        }
    }

    /// @dev 16 `{"svn": n, ...}` objects as bytes16, component 1 first.
    function readComponents(bytes memory j, uint256 start) private pure returns (bytes16, uint256 end) {
        uint256 p = Json.enter(j, start, "[");
        uint256 acc;
        uint256 n;
        while (true) {
            (bool done, uint256 vs) = Json.element(j, p);
            if (done) {
                end = vs;
                break;
            }
            uint256 q = Json.enter(j, vs, "{");
            bool found;
            uint256 objEnd;
            while (true) {
                (bool d2, bytes32 k, uint256 v2) = Json.member(j, q);
                if (d2) {
                    objEnd = v2;
                    break;
                }
                uint256 ve;
                if (k == keccak256("svn")) {
                    uint256 v;
                    (v, ve) = Json.uintAt(j, v2);
                    if (v > 255 || found) revert JsonMalformed(v2);
                    acc = (acc << 8) | v;
                    found = true;
                } else {
                    ve = Json.skipValue(j, v2);
                }
                q = Json.next(j, ve, "}");
            }
            if (!found) revert JsonMalformed(vs);
            n++;
            p = Json.next(j, objEnd, "]");
        }
        if (n != 16) revert JsonMalformed(start);
        return (bytes16(uint128(acc)), end);
    }

    function readPlatformLevels(bytes memory j, uint256 start) private pure returns (PlatformLevel[] memory out, uint256 end) {
        out = new PlatformLevel[](MAX_ENTRIES);
        uint256 n;
        uint256 p = Json.enter(j, start, "[");
        while (true) {
            (bool done, uint256 vs) = Json.element(j, p);
            if (done) {
                end = vs;
                break;
            }
            (PlatformLevel memory l, uint256 ve) = readPlatformLevel(j, vs);
            // QVL ranks levels by SGX components, PCESVN, TDX components, best first; matching the
            // first in document order is the same only when the document is in that order.
            if (n > 0) {
                PlatformLevel memory prev = out[n - 1];
                if (
                    uint128(l.sgx) > uint128(prev.sgx) ||
                    (l.sgx == prev.sgx && (l.pceSvn > prev.pceSvn || (l.pceSvn == prev.pceSvn && uint128(l.tdx) > uint128(prev.tdx))))
                ) revert CollateralUnsupported();
            }
            checkRoom(n + 1);
            out[n++] = l;
            p = Json.next(j, ve, "]");
        }
        if (n == 0) revert JsonMalformed(start);
        assembly ("memory-safe") {
            mstore(out, n)
        }
    }

    function readPlatformLevel(bytes memory j, uint256 start) private pure returns (PlatformLevel memory l, uint256 end) {
        uint256 q = Json.enter(j, start, "{");
        uint256 seen;
        while (true) {
            (bool d2, bytes32 k, uint256 vs) = Json.member(j, q);
            if (d2) {
                end = vs;
                break;
            }
            uint256 ve;
            if (k == keccak256("tcb")) {
                uint256 r = Json.enter(j, vs, "{");
                while (true) {
                    (bool d3, bytes32 k3, uint256 v3) = Json.member(j, r);
                    if (d3) {
                        ve = v3;
                        break;
                    }
                    uint256 fe;
                    if (k3 == keccak256("sgxtcbcomponents")) {
                        (l.sgx, fe) = readComponents(j, v3);
                        seen |= 1;
                    } else if (k3 == keccak256("tdxtcbcomponents")) {
                        (l.tdx, fe) = readComponents(j, v3);
                        seen |= 2;
                    } else if (k3 == keccak256("pcesvn")) {
                        uint256 v;
                        (v, fe) = Json.uintAt(j, v3);
                        if (v > 0xffff) revert JsonMalformed(v3);
                        l.pceSvn = uint16(v);
                        seen |= 4;
                    } else {
                        fe = Json.skipValue(j, v3);
                    }
                    r = Json.next(j, fe, "}");
                }
            } else if (k == keccak256("tcbStatus")) {
                (l.status, ve) = Json.statusAt(j, vs);
                seen |= 8;
            } else if (k == keccak256("advisoryIDs")) {
                (l.advisories, ve) = Json.advisoriesAt(j, vs);
            } else {
                ve = Json.skipValue(j, vs);
            }
            q = Json.next(j, ve, "}");
        }
        // A TDX level without TDX components cannot be evaluated (the TypeScript verifier refuses it too).
        if (seen != 15) revert JsonMalformed(start);
    }

    /// @notice Parse a TD_QE identity v2 document (`enclaveIdentity` member text).
    function parseQeIdentity(bytes calldata json) external pure returns (QeIdentityDoc memory q) {
        bytes memory j = json;
        uint256 p = Json.enter(j, Json.ws(j, 0), "{");
        uint256 seen;
        while (true) {
            (bool done, bytes32 k, uint256 vs) = Json.member(j, p);
            if (done) break;
            uint256 ve;
            bytes32 v;
            uint256 n;
            if (k == keccak256("id")) {
                (uint256 s, uint256 e, uint256 x) = Json.stringAt(j, vs);
                if (keccak256(Json.slice(j, s, e)) != keccak256("TD_QE")) revert CollateralUnsupported();
                ve = x;
                seen |= 1;
            } else if (k == keccak256("version")) {
                (n, ve) = Json.uintAt(j, vs);
                if (n != 2) revert CollateralUnsupported();
                seen |= 2;
            } else if (k == keccak256("issueDate")) {
                (q.issueDate, ve) = Json.dateAt(j, vs);
                seen |= 4;
            } else if (k == keccak256("nextUpdate")) {
                (q.nextUpdate, ve) = Json.dateAt(j, vs);
                seen |= 8;
            } else if (k == keccak256("tcbEvaluationDataNumber")) {
                (n, ve) = Json.uintAt(j, vs);
                q.evaluationDataNumber = uint32(n);
                seen |= 16;
            } else if (k == keccak256("miscselect")) {
                (v, ve) = Json.hexAt(j, vs, 4);
                q.miscSelect = bytes4(v);
                seen |= 32;
            } else if (k == keccak256("miscselectMask")) {
                (v, ve) = Json.hexAt(j, vs, 4);
                q.miscSelectMask = bytes4(v);
                seen |= 64;
            } else if (k == keccak256("attributes")) {
                (v, ve) = Json.hexAt(j, vs, 16);
                q.attributes = bytes16(v);
                seen |= 128;
            } else if (k == keccak256("attributesMask")) {
                (v, ve) = Json.hexAt(j, vs, 16);
                q.attributesMask = bytes16(v);
                seen |= 256;
            } else if (k == keccak256("mrsigner")) {
                (q.mrSigner, ve) = Json.hexAt(j, vs, 32);
                seen |= 512;
            } else if (k == keccak256("isvprodid")) {
                (n, ve) = Json.uintAt(j, vs);
                if (n > 0xffff) revert JsonMalformed(vs);
                q.isvProdId = uint16(n);
                seen |= 1024;
            } else if (k == keccak256("tcbLevels")) {
                (q.levels, ve) = readIsvLevels(j, vs);
                seen |= 2048;
            } else {
                ve = Json.skipValue(j, vs);
            }
            p = Json.next(j, ve, "}");
        }
        if (seen != 4095) revert JsonMalformed(0);
    }
}
