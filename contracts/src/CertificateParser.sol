// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

import {Der} from "./lib/Der.sol";
import {X509} from "./lib/X509.sol";

/**
 * @title CertificateParser
 * @notice Stateless parser of the DER certificates and CRLs of Intel's PCK
 *         PKI (lib/X509.sol): what PcsCollateral needs from each, and
 *         nothing it must trust. The store verifies every signature over
 *         `tbsHash` against a key it holds, and applies every validity,
 *         issuer and revocation rule itself.
 * @dev A separate contract only to keep PcsCollateral under EIP-170's 24 KiB
 *      (X.509 parsing is about a quarter of its code); PcsCollateral creates
 *      it in its constructor, as it does CollateralJsonParser, so it is not a
 *      second thing to deploy or configure. Calls cost the store a few
 *      thousand gas; none is made on re-registration, only when a
 *      certificate or CRL is submitted (a platform's first registration
 *      submits its PCK leaf). Errors are lib/Errors.sol's and reach the
 *      caller unchanged.
 */
contract CertificateParser {
    using Der for bytes;

    /// @notice Parse a CA, TCB signing or root certificate.
    function parseCert(bytes calldata der) external view returns (X509.Cert memory) {
        return X509.parseCert(der);
    }

    /// @notice Parse a PCK leaf: the certificate and its SGX extension (FMSPC, PCE-ID, PCESVN, SGX TCB components).
    function parsePckCert(bytes calldata der) external view returns (X509.Cert memory c, X509.SgxExt memory e) {
        bytes memory d = der;
        c = X509.parseCert(d);
        e = X509.parseSgx(d, c);
    }

    /// @notice Parse a CRL and list the serial hashes it revokes (Der.serialHash of each entry's serial).
    function parseCrl(bytes calldata der) external view returns (X509.Crl memory c, bytes32[] memory serials) {
        bytes memory d = der;
        c = X509.parseCrl(d);
        if (c.revoked.tag != 0x30 || c.revoked.cs == c.revoked.end) return (c, serials);
        // Two passes (count, then fill): memory arrays do not grow.
        uint256 n = 1;
        Der.Node memory e = d.first(c.revoked);
        while (e.end != c.revoked.end) {
            e = d.next(e, c.revoked);
            n++;
        }
        serials = new bytes32[](n);
        e = d.first(c.revoked);
        for (uint256 i = 0; i < n; i++) {
            if (i > 0) e = d.next(e, c.revoked);
            serials[i] = X509.revokedSerial(d, e);
        }
    }
}
