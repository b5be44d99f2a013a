// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

import {Der} from "./Der.sol";
import {DateTime} from "./DateTime.sol";
import {Crypto} from "./Crypto.sol";
import {DerMalformed, UnsupportedAlgorithm, SgxExtensionInvalid, CriticalExtensionUnknown} from "./Errors.sol";

/**
 * @title X509
 * @notice Just enough of X.509 (RFC 5280 §4.1) and CRLs (RFC 5280 §5.1) for
 *         Intel's PCK PKI: ECDSA P-256/SHA-256 certificates, their validity,
 *         key, serial, basicConstraints, keyUsage, and the Intel SGX extension
 *         of PCK leaves (Intel SGX PCK Certificate and CRL Profile §1.3.5).
 *         A certificate with any other extension marked critical is refused
 *         (RFC 5280 §4.2: a critical extension the relying party does not
 *         process changes what the certificate means), as is one repeating
 *         any of these three; the TypeScript verifier refuses the same
 *         (attestation/pki/chain.ts; attestation/pki/x509.ts refuses every
 *         repeated extension).
 * @dev Parsing only: the caller verifies `tbsHash` against the issuer's key.
 *      Names are compared by keccak256 of their DER bytes (Intel's issuer and
 *      subject names are byte-identical across its PKI).
 */
library X509 {
    using Der for bytes;

    // Fixed encodings are compared by keccak256 of their full TLV (Der.hashOf): a
    // constant hash costs less code and gas than copying the bytes to memory.
    /// @dev AlgorithmIdentifier ecdsa-with-SHA256 (RFC 5758 §3.2: parameters absent).
    bytes32 internal constant ALG_ECDSA_SHA256 = keccak256(hex"300a06082a8648ce3d040302");
    /// @dev SubjectPublicKeyInfo algorithm: id-ecPublicKey with namedCurve prime256v1 (RFC 5480 §2.1.1).
    bytes32 internal constant ALG_EC_P256 = keccak256(hex"301306072a8648ce3d020106082a8648ce3d030107");
    /// @dev id-ce-basicConstraints, 2.5.29.19 (RFC 5280 §4.2.1.9).
    bytes32 internal constant OID_BASIC_CONSTRAINTS = keccak256(hex"0603551d13");
    /// @dev id-ce-keyUsage, 2.5.29.15 (RFC 5280 §4.2.1.3).
    bytes32 internal constant OID_KEY_USAGE = keccak256(hex"0603551d0f");
    /// @notice First keyUsage octet: keyCertSign (bit 5) and cRLSign (bit 6); bit 0 is the octet's MSB.
    uint8 internal constant KU_CERT_SIGN = 0x04;
    uint8 internal constant KU_CRL_SIGN = 0x02;
    /// @dev Intel SGX extension 1.2.840.113741.1.13.1 [PCK profile §1.3.5].
    bytes32 internal constant OID_SGX = keccak256(hex"06092a864886f84d010d01");
    /// @dev keccak256 of the SGX OID's 9 content octets: prefix of every member OID.
    bytes32 internal constant SGX_OID_PREFIX_HASH = keccak256(hex"2a864886f84d010d01");

    struct Cert {
        bytes32 issuerHash;
        bytes32 subjectHash;
        bytes32 serialHash;
        uint64 notBefore;
        uint64 notAfter;
        bytes32 pkX;
        bytes32 pkY;
        bool isCa;
        /// @dev The first keyUsage octet; 0xff when the certificate has no keyUsage (no restriction, RFC 5280 §4.2.1.3).
        uint8 keyUsage;
        bytes32 tbsHash;
        bytes32 sigR;
        bytes32 sigS;
        /// @dev Content bounds of the SGX extension's OCTET STRING; zero when absent.
        uint256 sgxCs;
        uint256 sgxEnd;
    }

    struct Crl {
        bytes32 issuerHash;
        uint64 thisUpdate;
        uint64 nextUpdate;
        bytes32 tbsHash;
        bytes32 sigR;
        bytes32 sigS;
        /// @dev The revokedCertificates SEQUENCE (tag 0 when the CRL lists none).
        Der.Node revoked;
    }

    /// @notice What a PCK leaf certifies [PCK profile §1.3.5].
    struct SgxExt {
        bytes6 fmspc;
        bytes2 pceId;
        uint16 pceSvn;
        /// @dev The 16 SGX TCB component SVNs, component 1 first.
        bytes16 sgxComponents;
    }

    function signature(bytes memory d, Der.Node memory bits) private pure returns (bytes32 r, bytes32 s) {
        // BIT STRING with 0 unused bits wrapping ECDSA-Sig-Value (RFC 5758 §3.2).
        if (bits.tag != 0x03 || bits.cs >= bits.end || d[bits.cs] != 0) revert DerMalformed(bits.start);
        Der.Node memory seq = d.expect(bits.cs + 1, bits.end, 0x30);
        if (seq.end != bits.end) revert DerMalformed(seq.start);
        Der.Node memory rn = d.expect(seq.cs, seq.end, 0x02);
        Der.Node memory sn = d.expect(rn.end, seq.end, 0x02);
        if (sn.end != seq.end) revert DerMalformed(sn.start);
        r = d.word32(rn);
        s = d.word32(sn);
    }

    function algorithm(bytes memory d, Der.Node memory alg) private pure {
        if (d.hashOf(alg) != ALG_ECDSA_SHA256) revert UnsupportedAlgorithm();
    }

    function time(bytes memory d, Der.Node memory n) private pure returns (uint64) {
        return DateTime.fromAsn1(d, n.tag, n.cs, n.end);
    }

    /// @notice Parse a DER certificate.
    function parseCert(bytes memory d) internal view returns (Cert memory c) {
        Der.Node memory cert = d.expect(0, d.length, 0x30);
        if (cert.end != d.length) revert DerMalformed(cert.end);
        Der.Node memory tbs = d.expect(cert.cs, cert.end, 0x30);
        Der.Node memory outerAlg = d.next(tbs, cert);
        algorithm(d, outerAlg);
        (c.sigR, c.sigS) = signature(d, d.next(outerAlg, cert));
        c.tbsHash = Crypto.sha256Slice(d, tbs.start, tbs.end);

        Der.Node memory n = d.first(tbs);
        if (n.tag == 0xa0) n = d.next(n, tbs); // [0] EXPLICIT version
        c.serialHash = d.serialHash(n);
        n = d.next(n, tbs);
        algorithm(d, n);
        n = d.next(n, tbs);
        if (n.tag != 0x30) revert DerMalformed(n.start);
        c.issuerHash = d.hashOf(n);
        n = d.next(n, tbs); // validity
        {
            Der.Node memory nb = d.first(n);
            Der.Node memory na = d.next(nb, n);
            c.notBefore = time(d, nb);
            c.notAfter = time(d, na);
        }
        n = d.next(n, tbs);
        if (n.tag != 0x30) revert DerMalformed(n.start);
        c.subjectHash = d.hashOf(n);
        n = d.next(n, tbs); // subjectPublicKeyInfo
        {
            Der.Node memory alg = d.first(n);
            if (d.hashOf(alg) != ALG_EC_P256) revert UnsupportedAlgorithm();
            Der.Node memory key = d.next(alg, n);
            // BIT STRING 0x00 ‖ 0x04 ‖ X ‖ Y: an uncompressed point (SEC 1 §2.3.3).
            if (key.tag != 0x03 || key.end - key.cs != 66 || d[key.cs] != 0 || d[key.cs + 1] != 0x04) revert UnsupportedAlgorithm();
            c.pkX = Crypto.word(d, key.cs + 2);
            c.pkY = Crypto.word(d, key.cs + 34);
        }
        c.keyUsage = 0xff;
        while (n.end < tbs.end) {
            n = d.next(n, tbs);
            if (n.tag == 0xa3) extensions(d, n, c);
        }
    }

    function extensions(bytes memory d, Der.Node memory a3, Cert memory c) private pure {
        Der.Node memory list = d.expect(a3.cs, a3.end, 0x30);
        if (list.cs == list.end) return;
        Der.Node memory ext = d.first(list);
        uint256 seen;
        while (true) {
            Der.Node memory oid = d.expect(ext.cs, ext.end, 0x06);
            Der.Node memory v = d.next(oid, ext);
            bool critical;
            if (v.tag == 0x01) {
                // critical BOOLEAN: one octet, 0x00 or 0xff (X.690 §11.1).
                if (v.end - v.cs != 1) revert DerMalformed(v.start);
                bytes1 b = d[v.cs];
                if (b != 0x00 && b != 0xff) revert DerMalformed(v.start);
                critical = b == 0xff;
                v = d.next(v, ext);
            }
            if (v.tag != 0x04) revert DerMalformed(v.start);
            uint256 bit;
            bytes32 id = d.hashOf(oid);
            if (id == OID_BASIC_CONSTRAINTS) {
                bit = 1;
                Der.Node memory bc = d.expect(v.cs, v.end, 0x30);
                if (bc.cs < bc.end) {
                    Der.Node memory ca = d.first(bc);
                    c.isCa = ca.tag == 0x01 && ca.end - ca.cs == 1 && d[ca.cs] == 0xff;
                }
            } else if (id == OID_KEY_USAGE) {
                bit = 2;
                // BIT STRING: unused-bits octet, then the bits; an empty one grants nothing.
                Der.Node memory bits = d.expect(v.cs, v.end, 0x03);
                c.keyUsage = bits.end - bits.cs > 1 ? uint8(d[bits.cs + 1]) : 0;
            } else if (id == OID_SGX) {
                bit = 4;
                c.sgxCs = v.cs;
                c.sgxEnd = v.end;
            } else if (critical) {
                revert CriticalExtensionUnknown(oid.start);
            }
            if (seen & bit != 0) revert DerMalformed(oid.start);
            seen |= bit;
            if (ext.end == list.end) break;
            ext = d.next(ext, list);
        }
    }

    /// @notice Parse a DER CRL (RFC 5280 §5.1).
    function parseCrl(bytes memory d) internal view returns (Crl memory c) {
        Der.Node memory crl = d.expect(0, d.length, 0x30);
        if (crl.end != d.length) revert DerMalformed(crl.end);
        Der.Node memory tbs = d.expect(crl.cs, crl.end, 0x30);
        Der.Node memory outerAlg = d.next(tbs, crl);
        algorithm(d, outerAlg);
        (c.sigR, c.sigS) = signature(d, d.next(outerAlg, crl));
        c.tbsHash = Crypto.sha256Slice(d, tbs.start, tbs.end);

        Der.Node memory n = d.first(tbs);
        if (n.tag == 0x02) n = d.next(n, tbs); // version v2
        algorithm(d, n);
        n = d.next(n, tbs);
        if (n.tag != 0x30) revert DerMalformed(n.start);
        c.issuerHash = d.hashOf(n);
        n = d.next(n, tbs);
        c.thisUpdate = time(d, n);
        // nextUpdate is optional in RFC 5280 but Intel always sets it; without it a CRL never expires, so require it.
        n = d.next(n, tbs);
        c.nextUpdate = time(d, n);
        if (n.end < tbs.end) {
            n = d.next(n, tbs);
            if (n.tag == 0x30) c.revoked = n;
        }
    }

    /// @notice Serial hash of one revoked entry (CertificateParser.parseCrl walks `Crl.revoked`'s children).
    function revokedSerial(bytes memory d, Der.Node memory entry) internal pure returns (bytes32) {
        if (entry.tag != 0x30) revert DerMalformed(entry.start);
        return d.serialHash(d.expect(entry.cs, entry.end, 0x02));
    }

    function smallUint(bytes memory d, Der.Node memory n, uint256 max) private pure returns (uint256 v) {
        if (n.tag != 0x02) revert SgxExtensionInvalid();
        v = d.uintValue(n);
        if (v > max) revert SgxExtensionInvalid();
    }

    function memberId(bytes memory d, Der.Node memory oid, uint256 len) private pure returns (uint256) {
        if (oid.tag != 0x06 || oid.end - oid.cs != len) return 0;
        if (Crypto.keccakSlice(d, oid.cs, oid.cs + 9) != SGX_OID_PREFIX_HASH) return 0;
        if (len == 11 && d[oid.cs + 9] != 0x02) return 0;
        return uint8(d[oid.end - 1]);
    }

    /// @notice Parse the SGX extension of a PCK leaf (FMSPC, PCE-ID, PCESVN, 16 component SVNs).
    function parseSgx(bytes memory d, Cert memory c) internal pure returns (SgxExt memory e) {
        if (c.sgxEnd == 0) revert SgxExtensionInvalid();
        Der.Node memory seq = d.expect(c.sgxCs, c.sgxEnd, 0x30);
        if (seq.end != c.sgxEnd || seq.cs == seq.end) revert SgxExtensionInvalid();
        uint256 seen;
        Der.Node memory pair = d.first(seq);
        while (true) {
            if (pair.tag != 0x30) revert SgxExtensionInvalid();
            Der.Node memory oid = d.first(pair);
            Der.Node memory v = d.next(oid, pair);
            uint256 id = memberId(d, oid, 10);
            if (id == 0 || id > 32 || seen & (1 << id) != 0) revert SgxExtensionInvalid();
            seen |= 1 << id;
            if (id == 2) {
                tcb(d, v, e);
            } else if (id == 3) {
                if (v.tag != 0x04 || v.end - v.cs != 2) revert SgxExtensionInvalid();
                e.pceId = bytes2(Crypto.word(d, v.cs));
            } else if (id == 4) {
                if (v.tag != 0x04 || v.end - v.cs != 6) revert SgxExtensionInvalid();
                e.fmspc = bytes6(Crypto.word(d, v.cs));
            }
            if (pair.end == seq.end) break;
            pair = d.next(pair, seq);
        }
        // TCB (.2), PCE-ID (.3) and FMSPC (.4) are required.
        if (seen & 0x1c != 0x1c) revert SgxExtensionInvalid();
    }

    function tcb(bytes memory d, Der.Node memory seq, SgxExt memory e) private pure {
        if (seq.tag != 0x30 || seq.cs == seq.end) revert SgxExtensionInvalid();
        uint256 seen;
        uint256 comps;
        Der.Node memory pair = d.first(seq);
        while (true) {
            if (pair.tag != 0x30) revert SgxExtensionInvalid();
            Der.Node memory oid = d.first(pair);
            Der.Node memory v = d.next(oid, pair);
            uint256 id = memberId(d, oid, 11);
            if (id == 0 || id > 18 || seen & (1 << id) != 0) revert SgxExtensionInvalid();
            seen |= 1 << id;
            if (id <= 16) {
                comps |= smallUint(d, v, 255) << (8 * (16 - id));
            } else if (id == 17) {
                e.pceSvn = uint16(smallUint(d, v, 0xffff));
            } else if (v.tag != 0x04 || v.end - v.cs != 16) {
                revert SgxExtensionInvalid(); // .18 CPUSVN
            }
            if (pair.end == seq.end) break;
            pair = d.next(pair, seq);
        }
        if (seen != 0x7fffe) revert SgxExtensionInvalid(); // .1 - .18 all present
        e.sgxComponents = bytes16(uint128(comps));
    }
}
