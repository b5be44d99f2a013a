// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

import {Crypto} from "./lib/Crypto.sol";
import {X509} from "./lib/X509.sol";
import {CertificateParser} from "./CertificateParser.sol";
import {CollateralJsonParser} from "./CollateralJsonParser.sol";
import "./lib/CollateralTypes.sol";
import "./lib/Errors.sol";

/**
 * @title PcsCollateral
 * @notice Intel DCAP collateral verified once on-chain and kept for the
 *         quotes that need it: intermediate CA and TCB signing certificates
 *         (against the pinned root), CRLs (revoked serials), TDX TCB info and
 *         TD_QE identity (Intel's ECDSA P-256 signature over the exact JSON
 *         bytes, then parsed here), and PCK leaf certificates.
 * @dev Anyone may submit; everything is checked against the root fixed at
 *      construction. A production deployment accepts only Intel's SGX Root
 *      CA (pinned by the keccak256 of its DER); a development deployment
 *      takes another root and says so through `isDevelopment()`, so the two
 *      can never be confused. Collateral not valid at submission is rejected,
 *      and older collateral never replaces newer (no rollback to a friendlier
 *      TCB info; see `rank`). Revocation is sticky: Intel never un-revokes a
 *      serial. A cached PCK leaf remembers the CA certificate that verified
 *      it (serial and validity), so a CA re-issued under the same name
 *      neither revives leaves of a revoked or expired one nor ends leaves of
 *      a valid one. Issuers must be CAs whose keyUsage (when present) allows
 *      keyCertSign for certificates and cRLSign for CRLs, as the TypeScript
 *      verifier requires (attestation/pki/chain.ts).
 *
 *      The evaluation views follow Intel's QVL semantics exactly as the
 *      TypeScript verifier does (attestation/tdx/verify/tcb-status.ts): first
 *      platform level whose SGX components, PCESVN and 16 TDX components are
 *      all met (levels must be published best first, which submission
 *      checks), TDX module identity `TDX_<major>` with its own levels, QE
 *      identity and the QVL convergence of the three statuses.
 */
contract PcsCollateral {
    /// @notice keccak256 of the Intel SGX Root CA certificate DER (SHA-256 fingerprint 44:A0:19:6B:…:74:D3).
    bytes32 public constant INTEL_ROOT_CA_DER_HASH = 0xa1acc73eb45794fa1734f14d882e91925b6006f79d3bb2460df9d01b333d7009;

    /// @notice Collateral item codes carried by CollateralExpired / CollateralRollback / CollateralSignatureInvalid.
    uint8 public constant ITEM_ROOT_CRL = 1;
    uint8 public constant ITEM_PCK_CRL = 2;
    uint8 public constant ITEM_TCB_INFO = 3;
    uint8 public constant ITEM_QE_IDENTITY = 4;
    /// @notice TcbLevelNotFound component codes.
    uint8 public constant COMPONENT_PLATFORM = 1;
    uint8 public constant COMPONENT_TDX_MODULE = 2;
    uint8 public constant COMPONENT_QE = 3;
    /// @notice Status ranks (TCB info v3 / enclave identity v2, Intel PCS API v4), best first.
    uint8 public constant STATUS_UP_TO_DATE = 0;
    uint8 public constant STATUS_OUT_OF_DATE = 4;
    uint8 public constant STATUS_REVOKED = 6;
    /// @notice "No TDX module level" marker in evaluation results.
    uint8 public constant STATUS_NONE = 255;

    /// @notice True for a deployment that trusts a development root, never Intel's.
    bool public immutable isDevelopment;
    /// @notice The JSON parser this store created (stateless; split out for EIP-170).
    CollateralJsonParser public immutable parser;
    /// @notice The certificate and CRL parser this store created (stateless; split out for EIP-170).
    CertificateParser public immutable certParser;
    bytes32 public immutable rootNameHash;
    bytes32 private immutable rootX;
    bytes32 private immutable rootY;
    uint64 private immutable rootNotAfter;
    bytes32 private immutable rootSerialHash;

    struct Ca {
        bytes32 pkX;
        bytes32 pkY;
        bytes32 serialHash;
        uint64 notBefore;
        uint64 notAfter;
        bool isCa;
        /// @dev X509.Cert.keyUsage: first keyUsage octet, 0xff when unrestricted.
        uint8 keyUsage;
    }

    struct CrlMeta {
        uint64 thisUpdate;
        uint64 nextUpdate;
    }

    /// @notice A verified PCK leaf: what later quotes of its platform need.
    struct Pck {
        bytes32 pkX;
        bytes32 pkY;
        bytes32 issuerHash;
        bytes32 serialHash;
        uint64 notBefore;
        uint64 notAfter;
        bytes6 fmspc;
        bytes2 pceId;
        uint16 pceSvn;
        bytes16 sgxComponents;
        /// @dev The CA certificate that verified the leaf when it was cached: validity and serial
        ///      (revocation on the Root CA CRL) are checked against it, not a later CA of the same name.
        uint64 caNotBefore;
        uint64 caNotAfter;
        bytes32 caSerialHash;
    }

    struct TcbInfoMeta {
        uint64 issueDate;
        uint64 nextUpdate;
        /// @dev The window intersected with the signing certificate's validity.
        uint64 validFrom;
        uint64 validUntil;
        uint32 evaluationDataNumber;
        uint32 seq;
        bytes2 pceId;
        uint8 moduleIdentityCount;
        /// @dev First 8 bytes of SHA-256 of the document: the last tie-break of `rank`.
        bytes8 digestPrefix;
        /// @dev Serial hash of the TCB signing certificate that signed the document: `collateralState`
        ///      re-checks it against the Root CA CRL on every use, not only at submission.
        bytes32 signerSerialHash;
    }

    struct QeIdentity {
        uint64 issueDate;
        uint64 nextUpdate;
        uint64 validFrom;
        uint64 validUntil;
        uint32 evaluationDataNumber;
        uint32 seq;
        uint16 isvProdId;
        bytes4 miscSelect;
        bytes4 miscSelectMask;
        /// @dev As TcbInfoMeta.digestPrefix (declared here to share a storage slot).
        bytes8 digestPrefix;
        bytes16 attributes;
        bytes16 attributesMask;
        bytes32 mrSigner;
        /// @dev As TcbInfoMeta.signerSerialHash.
        bytes32 signerSerialHash;
    }

    /// @notice Inputs of one TCB evaluation, straight from a quote and its PCK.
    struct EvalInput {
        bytes6 fmspc;
        bytes2 pceId;
        uint16 pceSvn;
        bytes16 sgxComponents;
        bytes16 teeTcbSvn;
        bytes32 mrSignerSeamHash;
        bytes8 seamAttributes;
        bytes4 qeMiscSelect;
        bytes16 qeAttributes;
        bytes32 qeMrSigner;
        uint16 qeIsvProdId;
        uint16 qeIsvSvn;
    }

    struct EvalResult {
        uint8 status;
        uint8 platformStatus;
        uint8 moduleStatus;
        uint8 qeStatus;
        bytes platformAdvisories;
        bytes moduleAdvisories;
        bytes qeAdvisories;
        uint32 tcbSeq;
        uint32 qeSeq;
        uint64 validUntil;
    }

    mapping(bytes32 nameHash => Ca) private cas;
    mapping(bytes32 issuerNameHash => CrlMeta) public crls;
    mapping(bytes32 issuerNameHash => mapping(bytes32 serialHash => bool)) public revoked;
    mapping(bytes32 certId => Pck) private pcks;
    mapping(bytes6 fmspc => TcbInfoMeta) public tcbInfo;
    mapping(bytes32 tcbKey => PlatformLevel[]) private platformLevels;
    mapping(bytes32 tcbKey => ModuleIdentity) private moduleBase;
    mapping(bytes32 tcbKey => mapping(uint8 version => ModuleIdentity)) private moduleIdentities;
    mapping(bytes32 tcbKey => mapping(uint8 version => IsvLevel[])) private moduleLevels;
    QeIdentity public qeIdentity;
    mapping(uint32 seq => IsvLevel[]) private qeLevels;

    event CaCertStored(bytes32 indexed nameHash, bytes32 serialHash, bool isCa, uint64 notAfter);
    event CrlStored(bytes32 indexed issuerNameHash, uint64 thisUpdate, uint64 nextUpdate, uint256 revokedCount);
    event PckCertStored(bytes32 indexed certId, bytes6 indexed fmspc, bytes32 serialHash);
    event TcbInfoStored(bytes6 indexed fmspc, uint32 seq, uint32 evaluationDataNumber, uint64 issueDate, uint64 nextUpdate);
    event QeIdentityStored(uint32 seq, uint32 evaluationDataNumber, uint64 issueDate, uint64 nextUpdate);

    /**
     * @param rootCertDer The root CA certificate. Production: Intel's SGX Root
     *        CA exactly. Development: any other root, with `development` true.
     */
    constructor(bytes memory rootCertDer, bool development) {
        bool intel = keccak256(rootCertDer) == INTEL_ROOT_CA_DER_HASH;
        if (!development && !intel) revert RootNotIntel();
        if (development && intel) revert InvalidParameter();
        CertificateParser certs = new CertificateParser();
        X509.Cert memory c = certs.parseCert(rootCertDer);
        if (c.issuerHash != c.subjectHash) revert CertChainInvalid();
        // The root signs CA certificates and the Root CA CRL.
        uint8 usage = X509.KU_CERT_SIGN | X509.KU_CRL_SIGN;
        if (!c.isCa || c.keyUsage & usage != usage) revert CertChainInvalid();
        if (!Crypto.p256Verify(c.tbsHash, c.sigR, c.sigS, c.pkX, c.pkY)) revert CertChainInvalid();
        isDevelopment = development;
        certParser = certs;
        parser = new CollateralJsonParser();
        rootNameHash = c.subjectHash;
        rootX = c.pkX;
        rootY = c.pkY;
        rootNotAfter = c.notAfter;
        rootSerialHash = c.serialHash;
    }

    // ------------------------------------------------------------------ certificates and CRLs

    /// @notice Store an intermediate CA or TCB signing certificate issued by the root.
    function submitCaCert(bytes calldata der) external {
        X509.Cert memory c = certParser.parseCert(der);
        if (c.issuerHash != rootNameHash) revert IssuerUnknown(c.issuerHash);
        if (!Crypto.p256Verify(c.tbsHash, c.sigR, c.sigS, rootX, rootY)) revert CertChainInvalid();
        if (block.timestamp < c.notBefore || block.timestamp > c.notAfter) revert CertExpired(c.subjectHash);
        Ca storage s = cas[c.subjectHash];
        if (s.notAfter != 0 && s.notBefore > c.notBefore) revert CollateralRollback(0);
        cas[c.subjectHash] = Ca(c.pkX, c.pkY, c.serialHash, c.notBefore, c.notAfter, c.isCa, c.keyUsage);
        emit CaCertStored(c.subjectHash, c.serialHash, c.isCa, c.notAfter);
    }

    /// @notice Store a CRL issued by the root (Root CA CRL) or a stored CA (PCK CRL); its serials become revoked.
    function submitCrl(bytes calldata der) external {
        (X509.Crl memory c, bytes32[] memory serials) = certParser.parseCrl(der);
        bool root = c.issuerHash == rootNameHash;
        bytes32 x;
        bytes32 y;
        if (root) {
            (x, y) = (rootX, rootY);
        } else {
            Ca storage ca = cas[c.issuerHash];
            if (ca.notAfter == 0 || !ca.isCa || ca.keyUsage & X509.KU_CRL_SIGN == 0) revert IssuerUnknown(c.issuerHash);
            (x, y) = (ca.pkX, ca.pkY);
        }
        if (!Crypto.p256Verify(c.tbsHash, c.sigR, c.sigS, x, y)) revert CrlSignatureInvalid();
        uint8 item = root ? ITEM_ROOT_CRL : ITEM_PCK_CRL;
        if (block.timestamp < c.thisUpdate || block.timestamp > c.nextUpdate) revert CollateralExpired(item);
        CrlMeta storage m = crls[c.issuerHash];
        if (m.thisUpdate > c.thisUpdate) revert CollateralRollback(item);
        crls[c.issuerHash] = CrlMeta(c.thisUpdate, c.nextUpdate);
        mapping(bytes32 => bool) storage list = revoked[c.issuerHash];
        for (uint256 i = 0; i < serials.length; i++) {
            if (!list[serials[i]]) list[serials[i]] = true;
        }
        emit CrlStored(c.issuerHash, c.thisUpdate, c.nextUpdate, serials.length);
    }

    /**
     * @notice Verify a PCK leaf against its stored issuing CA and cache it;
     *         returns its id, keccak256 of the DER. Cheap when already cached.
     */
    function submitPckCert(bytes calldata der) external returns (bytes32 certId) {
        certId = keccak256(der);
        if (pcks[certId].notAfter != 0) return certId;
        (X509.Cert memory c, X509.SgxExt memory e) = certParser.parsePckCert(der);
        Ca storage ca = cas[c.issuerHash];
        if (ca.notAfter == 0 || !ca.isCa || ca.keyUsage & X509.KU_CERT_SIGN == 0) revert IssuerUnknown(c.issuerHash);
        if (!Crypto.p256Verify(c.tbsHash, c.sigR, c.sigS, ca.pkX, ca.pkY)) revert CertChainInvalid();
        if (block.timestamp < c.notBefore || block.timestamp > c.notAfter) revert CertExpired(certId);
        pcks[certId] = Pck(
            c.pkX,
            c.pkY,
            c.issuerHash,
            c.serialHash,
            c.notBefore,
            c.notAfter,
            e.fmspc,
            e.pceId,
            e.pceSvn,
            e.sgxComponents,
            ca.notBefore,
            ca.notAfter,
            ca.serialHash
        );
        emit PckCertStored(certId, e.fmspc, c.serialHash);
    }

    function currentCrl(bytes32 issuer, uint8 item) private view returns (uint64) {
        CrlMeta storage m = crls[issuer];
        if (m.nextUpdate == 0) revert CrlMissing(issuer);
        if (block.timestamp < m.thisUpdate || block.timestamp > m.nextUpdate) revert CollateralExpired(item);
        return m.nextUpdate;
    }

    /**
     * @notice A cached PCK leaf, checked now: leaf and the CA certificate that
     *         issued it (as recorded when the leaf was cached) within their
     *         validity, Root CA CRL and PCK CRL current, neither leaf nor that
     *         CA revoked. `validUntil` is the earliest of those expiries.
     */
    function pck(bytes32 certId) external view returns (Pck memory p, uint64 validUntil) {
        p = pcks[certId];
        if (p.notAfter == 0) revert PckCertUnknown(certId);
        uint64 rootCrlNext = currentCrl(rootNameHash, ITEM_ROOT_CRL);
        uint64 pckCrlNext = currentCrl(p.issuerHash, ITEM_PCK_CRL);
        if (block.timestamp > rootNotAfter) revert CertExpired(rootNameHash);
        if (block.timestamp < p.caNotBefore || block.timestamp > p.caNotAfter) revert CertExpired(p.issuerHash);
        if (block.timestamp < p.notBefore || block.timestamp > p.notAfter) revert CertExpired(certId);
        // A root listed on its own CRL ends everything under it (the TypeScript verifier checks the same).
        if (revoked[rootNameHash][rootSerialHash]) revert CertRevoked(rootSerialHash);
        if (revoked[rootNameHash][p.caSerialHash]) revert CertRevoked(p.caSerialHash);
        if (revoked[p.issuerHash][p.serialHash]) revert CertRevoked(p.serialHash);
        validUntil = min(min(rootCrlNext, pckCrlNext), min(p.caNotAfter, p.notAfter));
    }

    /// @notice True when the PCK leaf `certId` is cached (says nothing about its validity now).
    function hasPckCert(bytes32 certId) external view returns (bool) {
        return pcks[certId].notAfter != 0;
    }

    /// @notice A stored intermediate or signing certificate.
    function caCert(bytes32 nameHash) external view returns (Ca memory) {
        return cas[nameHash];
    }

    function min(uint64 a, uint64 b) private pure returns (uint64) {
        return a < b ? a : b;
    }

    /// @dev The TCB signing certificate named `signer`, checked now; returns the window it allows.
    function signer(bytes32 nameHash) private view returns (Ca storage ca) {
        ca = cas[nameHash];
        if (ca.notAfter == 0 || ca.isCa) revert IssuerUnknown(nameHash);
        if (block.timestamp < ca.notBefore || block.timestamp > ca.notAfter) revert CertExpired(nameHash);
        currentCrl(rootNameHash, ITEM_ROOT_CRL);
        if (revoked[rootNameHash][ca.serialHash]) revert CertRevoked(ca.serialHash);
    }

    // ------------------------------------------------------------------ TCB info and QE identity

    /**
     * @dev The order of signed documents of one kind, as one number: the
     *      higher tcbEvaluationDataNumber wins (a TCB recovery never rolls
     *      back, not even to a later-issued document of an earlier round, such
     *      as Intel's standard feed behind its early one), then the later
     *      issueDate, then the larger SHA-256 prefix. The last rule only
     *      separates documents equal in both, so what is stored never depends
     *      on the order of submission. A lower rank is refused, an equal one
     *      is the stored document again (nothing to do).
     */
    function rank(uint32 evalNum, uint64 issueDate, bytes8 digest) private pure returns (uint256) {
        return (uint256(evalNum) << 128) | (uint256(issueDate) << 64) | uint256(uint64(digest));
    }

    /**
     * @notice Verify and store a TDX TCB info v3 document: `json` is the exact
     *         `tcbInfo` member text Intel signed, (r, s) its signature, `signerName`
     *         the keccak256 of the TCB signing certificate's subject DER.
     */
    function submitTcbInfo(bytes calldata json, bytes32 r, bytes32 s, bytes32 signerName) external {
        Ca storage ca = signer(signerName);
        bytes32 digest = sha256(json);
        if (!Crypto.p256Verify(digest, r, s, ca.pkX, ca.pkY)) revert CollateralSignatureInvalid(ITEM_TCB_INFO);
        TcbInfoDoc memory doc = parser.parseTcbInfo(json);
        if (block.timestamp < doc.issueDate || block.timestamp > doc.nextUpdate) revert CollateralExpired(ITEM_TCB_INFO);
        TcbInfoMeta storage m = tcbInfo[doc.fmspc];
        if (m.seq != 0) {
            uint256 offered = rank(doc.evaluationDataNumber, doc.issueDate, bytes8(digest));
            uint256 stored = rank(m.evaluationDataNumber, m.issueDate, m.digestPrefix);
            if (offered < stored) revert CollateralRollback(ITEM_TCB_INFO);
            if (offered == stored) return;
        }
        uint32 seq = m.seq + 1;
        bytes32 key = keccak256(abi.encode(doc.fmspc, seq));
        moduleBase[key] = doc.tdxModule;
        for (uint256 i = 0; i < doc.identities.length; i++) {
            ModuleIdentityDoc memory d = doc.identities[i];
            moduleIdentities[key][d.version] = d.identity;
            IsvLevel[] storage out = moduleLevels[key][d.version];
            for (uint256 k = 0; k < d.levels.length; k++) out.push(d.levels[k]);
        }
        PlatformLevel[] storage levels = platformLevels[key];
        for (uint256 i = 0; i < doc.levels.length; i++) levels.push(doc.levels[i]);
        tcbInfo[doc.fmspc] = TcbInfoMeta(
            doc.issueDate,
            doc.nextUpdate,
            doc.issueDate > ca.notBefore ? doc.issueDate : ca.notBefore,
            min(doc.nextUpdate, ca.notAfter),
            doc.evaluationDataNumber,
            seq,
            doc.pceId,
            doc.identityCount > 255 ? 255 : uint8(doc.identityCount),
            bytes8(digest),
            ca.serialHash
        );
        emit TcbInfoStored(doc.fmspc, seq, doc.evaluationDataNumber, doc.issueDate, doc.nextUpdate);
    }

    /// @notice Verify and store a TD_QE identity v2 document (exact `enclaveIdentity` text, signature, signer name hash).
    function submitQeIdentity(bytes calldata json, bytes32 r, bytes32 s, bytes32 signerName) external {
        Ca storage ca = signer(signerName);
        bytes32 digest = sha256(json);
        if (!Crypto.p256Verify(digest, r, s, ca.pkX, ca.pkY)) revert CollateralSignatureInvalid(ITEM_QE_IDENTITY);
        QeIdentityDoc memory d = parser.parseQeIdentity(json);
        if (block.timestamp < d.issueDate || block.timestamp > d.nextUpdate) revert CollateralExpired(ITEM_QE_IDENTITY);
        QeIdentity storage cur = qeIdentity;
        if (cur.seq != 0) {
            uint256 offered = rank(d.evaluationDataNumber, d.issueDate, bytes8(digest));
            uint256 stored = rank(cur.evaluationDataNumber, cur.issueDate, cur.digestPrefix);
            if (offered < stored) revert CollateralRollback(ITEM_QE_IDENTITY);
            if (offered == stored) return;
        }
        uint32 seq = cur.seq + 1;
        IsvLevel[] storage out = qeLevels[seq];
        for (uint256 k = 0; k < d.levels.length; k++) out.push(d.levels[k]);
        qeIdentity = QeIdentity(
            d.issueDate,
            d.nextUpdate,
            d.issueDate > ca.notBefore ? d.issueDate : ca.notBefore,
            min(d.nextUpdate, ca.notAfter),
            d.evaluationDataNumber,
            seq,
            d.isvProdId,
            d.miscSelect,
            d.miscSelectMask,
            bytes8(digest),
            d.attributes,
            d.attributesMask,
            d.mrSigner,
            ca.serialHash
        );
        emit QeIdentityStored(seq, d.evaluationDataNumber, d.issueDate, d.nextUpdate);
    }

    // ------------------------------------------------------------------ evaluation

    /// @notice Current TCB info and QE identity sequence numbers for `fmspc`, checked valid now (their signing certificate not revoked).
    function collateralState(bytes6 fmspc) public view returns (uint32 tcbSeq, uint32 qeSeq, uint64 validUntil) {
        TcbInfoMeta storage m = tcbInfo[fmspc];
        if (m.seq == 0) revert TcbInfoMissing(fmspc);
        if (block.timestamp < m.validFrom || block.timestamp > m.validUntil) revert CollateralExpired(ITEM_TCB_INFO);
        QeIdentity storage q = qeIdentity;
        if (q.seq == 0) revert QeIdentityMissing();
        if (block.timestamp < q.validFrom || block.timestamp > q.validUntil) revert CollateralExpired(ITEM_QE_IDENTITY);
        // The signing certificate revoked after submission ends both documents at once, as the
        // TypeScript verifier (which checks it on every verification) sees it, not at nextUpdate.
        // Intel signs both with one certificate, so the second lookup is usually skipped.
        bytes32 tcbSigner = m.signerSerialHash;
        bytes32 qeSigner = q.signerSerialHash;
        if (revoked[rootNameHash][tcbSigner]) revert CertRevoked(tcbSigner);
        if (qeSigner != tcbSigner && revoked[rootNameHash][qeSigner]) revert CertRevoked(qeSigner);
        return (m.seq, q.seq, min(m.validUntil, q.validUntil));
    }

    function geAll(bytes16 a, bytes16 b) private pure returns (bool) {
        for (uint256 i = 0; i < 16; i++) if (uint8(a[i]) < uint8(b[i])) return false;
        return true;
    }

    /// @notice QVL convergence of the platform status with a component's (QE or TDX module).
    function converge(uint8 platform, uint8 component) public pure returns (uint8) {
        if (platform == STATUS_REVOKED || component == STATUS_REVOKED) return STATUS_REVOKED;
        if (component == STATUS_OUT_OF_DATE) {
            if (platform <= 1) return STATUS_OUT_OF_DATE;
            if (platform <= 3) return 5;
        }
        return platform;
    }

    function firstIsv(IsvLevel[] storage levels, uint16 svn, uint8 component) private view returns (uint8, bytes memory) {
        for (uint256 i = 0; i < levels.length; i++) {
            IsvLevel storage l = levels[i];
            if (svn >= l.isvSvn) return (l.status, l.advisories);
        }
        revert TcbLevelNotFound(component);
    }

    /**
     * @notice Evaluate a quote's TCB against the stored collateral: QE
     *         identity, platform level, TDX module identity, convergence.
     *         Reverts on a mismatch, a missing level, expired collateral or a
     *         Revoked result; never answers "unknown".
     */
    function evaluate(EvalInput calldata x) external view returns (EvalResult memory r) {
        (r.tcbSeq, r.qeSeq, r.validUntil) = collateralState(x.fmspc);
        // QE identity [QVL: MRSIGNER, ISVPRODID, masked MISCSELECT and ATTRIBUTES].
        QeIdentity storage q = qeIdentity;
        if (
            x.qeMrSigner != q.mrSigner ||
            x.qeIsvProdId != q.isvProdId ||
            (x.qeMiscSelect & q.miscSelectMask) != (q.miscSelect & q.miscSelectMask) ||
            (x.qeAttributes & q.attributesMask) != (q.attributes & q.attributesMask)
        ) revert QeIdentityMismatch();
        (r.qeStatus, r.qeAdvisories) = firstIsv(qeLevels[q.seq], x.qeIsvSvn, COMPONENT_QE);

        TcbInfoMeta storage m = tcbInfo[x.fmspc];
        if (m.pceId != x.pceId) revert TcbInfoMissing(x.fmspc);
        bytes32 key = keccak256(abi.encode(x.fmspc, m.seq));
        PlatformLevel[] storage levels = platformLevels[key];
        bool found;
        for (uint256 i = 0; i < levels.length; i++) {
            PlatformLevel storage l = levels[i];
            if (x.pceSvn < l.pceSvn || !geAll(x.sgxComponents, l.sgx) || !geAll(x.teeTcbSvn, l.tdx)) continue;
            (r.platformStatus, r.platformAdvisories, found) = (l.status, l.advisories, true);
            break;
        }
        if (!found) revert TcbLevelNotFound(COMPONENT_PLATFORM);

        // TDX module: TEE_TCB_SVN[1] is its major version, [0] its SVN [TDX-QL A.3.2].
        uint8 version = uint8(x.teeTcbSvn[1]);
        ModuleIdentity memory id = moduleBase[key];
        bool hasLevels;
        if (version > 0 && m.moduleIdentityCount > 0) {
            id = moduleIdentities[key][version];
            if (!id.exists) revert TdxModuleMismatch();
            hasLevels = true;
        }
        if (x.mrSignerSeamHash != id.mrSignerHash || (x.seamAttributes & id.mask) != (id.attributes & id.mask) || (x.seamAttributes & ~id.mask) != 0) {
            revert TdxModuleMismatch();
        }
        r.status = r.platformStatus;
        r.moduleStatus = STATUS_NONE;
        if (hasLevels) {
            (r.moduleStatus, r.moduleAdvisories) = firstIsv(moduleLevels[key][version], uint8(x.teeTcbSvn[0]), COMPONENT_TDX_MODULE);
            r.status = converge(r.status, r.moduleStatus);
        }
        r.status = converge(r.status, r.qeStatus);
        if (r.status == STATUS_REVOKED) revert TcbRevoked();
    }
}
