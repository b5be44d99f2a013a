// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

import {PcsCollateral} from "./PcsCollateral.sol";
import {Crypto} from "./lib/Crypto.sol";
import "./lib/Errors.sol";

/**
 * @title AttestationRegistry
 * @notice On-chain registry of attested enclaves: `register` verifies a TDX
 *         v4/v5 quote itself (attestation key and QE report signatures through
 *         the EIP-7951 P256VERIFY precompile, QE report binding, PCK leaf
 *         cached in PcsCollateral, TCB evaluation against on-chain TCB info,
 *         QE identity and TDX module identity), then checks REPORTDATA against
 *         the enclave's keys, model and URL, this chain, this registry and a
 *         recent block hash, the workload against a per-model allow-list and the minimum
 *         TCB status, and keeps one expiring record per enclave.
 * @dev Reads are cheap, writes are expensive: one write per key epoch
 *      (registration), one per log checkpoint (anchor), nothing per request
 *      (`verifyReceipt` is a view). No upgrade proxy: a registry is a trust
 *      anchor whose code clients pin; a new version is a new address that
 *      clients opt into, never a silent swap behind an old one.
 *
 *      Only header ‖ body (attestation key), the QE report (PCK key) and the
 *      QE authentication data (hashed into the QE report) are signed, so the
 *      quote may arrive with its PEM certification data cut off after the
 *      QE authentication data: the PCK leaf is named by its cached id instead.
 *      Nothing unsigned is read.
 */
contract AttestationRegistry {
    /// @dev EIP-712 §"Definition of domainSeparator".
    bytes32 private constant EIP712_DOMAIN_TYPEHASH = keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    /// @dev enclave/receipts.ts RECEIPT_TYPE_STRING.
    bytes32 public constant RECEIPT_TYPEHASH =
        keccak256("Receipt(bytes32 requestHash,bytes32 responseHash,string model,uint64 epoch,uint64 time,uint64 logIndex)");
    /// @dev contracts/client/checkpoint-anchor.ts CHECKPOINT_ANCHOR_TYPES.
    bytes32 public constant CHECKPOINT_ANCHOR_TYPEHASH = keccak256("CheckpointAnchor(bytes32 logId,uint64 size,bytes32 root)");
    /// @dev enclave/receipts.ts receiptDomain: name and version.
    bytes32 private constant DOMAIN_NAME_HASH = keccak256("ConfidentialGateway");
    bytes32 private constant DOMAIN_VERSION_HASH = keccak256("1");
    /// @dev attestation/binding.ts BINDING_DOMAIN and BINDING_MODE_REGISTRATION (3: the layout
    ///      that binds model and URL; mode 2, without them, is retired and never accepted).
    bytes32 public constant BINDING_DOMAIN = keccak256("confidential-gateway/report-data/v1");
    uint256 public constant BINDING_MODE_REGISTRATION = 3;
    /// @dev Intel's QE vendor id 939A7233-F79C-4CA9-940A-0DB3957F0607 [TDX-QL A.3.1].
    bytes16 private constant INTEL_QE_VENDOR_ID = 0x939a7233f79c4ca9940a0db3957f0607;
    /// @dev secp256k1 n / 2: signatures with a larger s are malleable copies (EIP-2).
    uint256 private constant SECP256K1_HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;
    /// @notice EnclaveEnded reasons.
    uint8 public constant ENDED_REPLACED = 0;
    uint8 public constant ENDED_INVALIDATED = 1;
    uint8 public constant ENDED_EXPIRED = 2;
    /// @notice The owner took the record's workload off its model's allow-list (`invalidate`).
    uint8 public constant ENDED_WORKLOAD_REMOVED = 3;

    PcsCollateral public immutable pcs;
    uint256 private immutable cachedChainId;
    bytes32 private immutable cachedDomainSeparator;

    address public owner;
    address public pendingOwner;
    /// @notice Worst accepted TCB status rank (0 UpToDate … 5 OutOfDateConfigurationNeeded).
    uint8 public minTcbStatus;
    /// @notice How many blocks old the registration's block hash may be (≤ 256, the BLOCKHASH window).
    uint64 public maxBlockAge;
    /// @notice Longest life of a record in seconds (it also ends with its collateral).
    uint64 public registrationTtl;

    /// @notice What a registering enclave presents beside its quote.
    struct EnclaveData {
        /// @dev Ed25519 public key of the transparency log; enclaveId = keccak256(logPublicKey).
        bytes32 logPublicKey;
        address signingAddress;
        bytes32 keyConfigHash;
        bytes32 gpuEvidenceHash;
        uint64 epoch;
        /// @dev The block whose hash is REPORTDATA's freshness half.
        uint64 blockNumber;
        string model;
        string url;
    }

    struct Record {
        address signer;
        uint64 expiresAt;
        uint8 tcbStatus;
        uint64 epoch;
        uint64 registeredAt;
        bytes6 fmspc;
        bytes32 keyConfigHash;
        bytes32 workloadId;
        bytes32 gpuEvidenceHash;
        bytes32 pckCertId;
        /// @dev keccak256 of the quote bytes as registered, so `invalidate` can re-check exactly that quote.
        bytes32 quoteHash;
        string model;
        string url;
    }

    struct Receipt {
        bytes32 requestHash;
        bytes32 responseHash;
        string model;
        uint64 epoch;
        uint64 time;
        uint64 logIndex;
    }

    /// @dev One storage slot per log: the size and the first 24 bytes of the root (the full root is in the event).
    struct Anchor {
        uint64 size;
        bytes24 rootPrefix;
    }

    /// @notice A verified quote: status, advisories (Intel's JSON array text per component), identity.
    struct QuoteResult {
        uint8 status;
        uint8 platformStatus;
        uint8 moduleStatus;
        uint8 qeStatus;
        bytes platformAdvisories;
        bytes moduleAdvisories;
        bytes qeAdvisories;
        bytes6 fmspc;
        bytes32 workloadId;
        bytes32 reportDataBinding;
        bytes32 reportDataFreshness;
        bool debug;
        uint64 validUntil;
    }

    /// @dev Offsets of one quote in calldata, relative to its start.
    struct Layout {
        uint256 body;
        uint256 bodyEnd;
        uint256 qeReport;
    }

    mapping(bytes32 enclaveId => Record) private records;
    mapping(address signer => bytes32 enclaveId) public enclaveIdOf;
    mapping(bytes32 modelHash => mapping(bytes32 workloadId => bool)) public workloadAllowed;
    mapping(bytes32 logId => Anchor) public anchors;
    /// @dev keccak256(certId, TD report TCB fields, QE report, TCB info seq, QE identity seq) → status + 1.
    mapping(bytes32 => uint256) private tcbCache;

    event EnclaveRegistered(
        bytes32 indexed enclaveId,
        address indexed signingAddress,
        bytes32 indexed modelHash,
        uint64 epoch,
        uint64 registeredAt,
        uint64 expiresAt,
        bytes32 workloadId,
        uint8 tcbStatus,
        bytes6 fmspc,
        string model,
        string url
    );
    event EnclaveEnded(bytes32 indexed enclaveId, address indexed signingAddress, uint64 epoch, uint64 endedAt, uint8 reason);
    event CheckpointAnchored(bytes32 indexed logId, uint64 size, bytes32 root, uint64 anchoredAt);
    event CheckpointForkDetected(bytes32 indexed logId, uint64 size, bytes24 anchoredRootPrefix, bytes32 offeredRoot);
    event WorkloadSet(bytes32 indexed modelHash, bytes32 indexed workloadId, bool allowed, string model);
    event MinTcbStatusSet(uint8 status);
    event MaxBlockAgeSet(uint64 blocks);
    event RegistrationTtlSet(uint64 seconds_);
    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    constructor(PcsCollateral pcs_, address owner_, uint8 minTcbStatus_, uint64 maxBlockAge_, uint64 registrationTtl_) {
        if (address(pcs_) == address(0) || owner_ == address(0)) revert InvalidParameter();
        pcs = pcs_;
        cachedChainId = block.chainid;
        cachedDomainSeparator = buildDomainSeparator();
        owner = owner_;
        emit OwnershipTransferred(address(0), owner_);
        setMinTcbStatusInternal(minTcbStatus_);
        setMaxBlockAgeInternal(maxBlockAge_);
        setRegistrationTtlInternal(registrationTtl_);
    }

    /// @notice True when the collateral store trusts a development root (never for production).
    function isDevelopment() external view returns (bool) {
        return pcs.isDevelopment();
    }

    // ------------------------------------------------------------------ quote verification

    function u16le(bytes calldata q, uint256 o) private pure returns (uint256) {
        return uint8(q[o]) | (uint256(uint8(q[o + 1])) << 8);
    }

    /// @dev Header checks and offsets [TDX-QL A.3.1 (v4), A.3.1.1 (v5 body descriptor)].
    function layout(bytes calldata q) private pure returns (Layout memory l) {
        if (q.length < 48) revert QuoteMalformed(0);
        uint256 version = u16le(q, 0);
        if (
            (version != 4 && version != 5) ||
            u16le(q, 2) != 2 ||
            bytes4(q[4:8]) != 0x81000000 ||
            bytes16(q[12:28]) != INTEL_QE_VENDOR_ID
        ) revert QuoteUnsupported();
        if (version == 4) {
            l.body = 48;
            l.bodyEnd = 48 + 584;
        } else {
            if (q.length < 54) revert QuoteMalformed(48);
            uint256 kind = u16le(q, 48);
            uint256 size = u16le(q, 50) | (u16le(q, 52) << 16);
            if (!((kind == 2 && size == 584) || (kind == 3 && size == 648))) revert QuoteUnsupported();
            l.body = 54;
            l.bodyEnd = 54 + size;
        }
        // u32 signature data length, signature (64), attestation key (64), u16 type 6, u32 size [TDX-QL A.3.7, A.3.9].
        uint256 sig = l.bodyEnd + 4;
        if (q.length < sig + 128 + 6 + 384 + 64 + 2) revert QuoteMalformed(l.bodyEnd);
        if (u16le(q, sig + 128) != 6) revert QuoteUnsupported();
        l.qeReport = sig + 134;
        uint256 authEnd = l.qeReport + 384 + 64 + 2 + u16le(q, l.qeReport + 448);
        if (q.length < authEnd) revert QuoteMalformed(l.qeReport + 448);
    }

    function sha256Of(bytes calldata q, uint256 start, uint256 end) private view returns (bytes32 h) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            let len := sub(end, start)
            calldatacopy(p, add(q.offset, start), len)
            if iszero(staticcall(gas(), 0x02, p, len, 0x00, 0x20)) { revert(0, 0) }
            h := mload(0x00)
        }
    }

    /**
     * @dev The three signature links [TDX-QL A.3.7, A.3.10]: QE report signed
     *      by the PCK key; QE REPORTDATA = SHA-256(attestation key ‖ QE auth
     *      data) ‖ 32 zero bytes; header ‖ body signed by the attestation key.
     */
    function checkSignatures(bytes calldata q, Layout memory l, PcsCollateral.Pck memory p) private view {
        uint256 qe = l.qeReport;
        if (!Crypto.p256Verify(sha256Of(q, qe, qe + 384), bytes32(q[qe + 384:qe + 416]), bytes32(q[qe + 416:qe + 448]), p.pkX, p.pkY)) {
            revert QeReportSignatureInvalid();
        }
        uint256 key = l.bodyEnd + 68;
        uint256 authEnd = qe + 450 + u16le(q, qe + 448);
        bytes32 expected;
        assembly ("memory-safe") {
            let m := mload(0x40)
            calldatacopy(m, add(q.offset, key), 64)
            let authLen := sub(authEnd, add(qe, 450))
            calldatacopy(add(m, 64), add(q.offset, add(qe, 450)), authLen)
            if iszero(staticcall(gas(), 0x02, m, add(64, authLen), 0x00, 0x20)) { revert(0, 0) }
            expected := mload(0x00)
        }
        if (bytes32(q[qe + 320:qe + 352]) != expected || bytes32(q[qe + 352:qe + 384]) != bytes32(0)) revert QeReportDataMismatch();
        uint256 sig = l.bodyEnd + 4;
        if (!Crypto.p256Verify(sha256Of(q, 0, l.bodyEnd), bytes32(q[sig:sig + 32]), bytes32(q[sig + 32:sig + 64]), bytes32(q[key:key + 32]), bytes32(q[key + 32:key + 64]))) {
            revert QuoteSignatureInvalid();
        }
    }

    function evalInput(bytes calldata q, Layout memory l, PcsCollateral.Pck memory p) private pure returns (PcsCollateral.EvalInput memory x) {
        uint256 b = l.body;
        uint256 qe = l.qeReport;
        x.fmspc = p.fmspc;
        x.pceId = p.pceId;
        x.pceSvn = p.pceSvn;
        x.sgxComponents = p.sgxComponents;
        // TD report [TDX-QL A.3.2]: TEE_TCB_SVN 0, MRSIGNERSEAM 64, SEAMATTRIBUTES 112.
        x.teeTcbSvn = bytes16(q[b:b + 16]);
        x.mrSignerSeamHash = keccak256(q[b + 64:b + 112]);
        x.seamAttributes = bytes8(q[b + 112:b + 120]);
        // QE report [SGX-QL A.4]: MISCSELECT 16, ATTRIBUTES 48, MRSIGNER 128, ISVPRODID 256, ISVSVN 258.
        x.qeMiscSelect = bytes4(q[qe + 16:qe + 20]);
        x.qeAttributes = bytes16(q[qe + 48:qe + 64]);
        x.qeMrSigner = bytes32(q[qe + 128:qe + 160]);
        x.qeIsvProdId = uint16(u16le(q, qe + 256));
        x.qeIsvSvn = uint16(u16le(q, qe + 258));
    }

    function checked(bytes calldata q, bytes32 pckCertId) private view returns (Layout memory l, PcsCollateral.Pck memory p, uint64 pckValidUntil) {
        l = layout(q);
        (p, pckValidUntil) = pcs.pck(pckCertId);
        checkSignatures(q, l, p);
    }

    function fill(bytes calldata q, Layout memory l, QuoteResult memory r) private pure {
        uint256 b = l.body;
        r.workloadId = keccak256(q[b + 136:b + 520]);
        r.reportDataBinding = bytes32(q[b + 520:b + 552]);
        r.reportDataFreshness = bytes32(q[b + 552:b + 584]);
        // TD ATTRIBUTES bit 0 is TUD.DEBUG [TDX module ABI, TD ATTRIBUTES]; little-endian, so byte 120's low bit.
        r.debug = uint8(q[b + 120]) & 1 != 0;
    }

    /**
     * @notice Verify a quote with the cached PCK leaf `pckCertId` against the
     *         stored collateral, now, without binding, workload or status
     *         policy: what register() builds on, and what clients and tests
     *         compare with the TypeScript verifier.
     */
    function verifyQuote(bytes calldata quote, bytes32 pckCertId) public view returns (QuoteResult memory r) {
        (Layout memory l, PcsCollateral.Pck memory p, uint64 pckValidUntil) = checked(quote, pckCertId);
        PcsCollateral.EvalResult memory e = pcs.evaluate(evalInput(quote, l, p));
        r.status = e.status;
        r.platformStatus = e.platformStatus;
        r.moduleStatus = e.moduleStatus;
        r.qeStatus = e.qeStatus;
        r.platformAdvisories = e.platformAdvisories;
        r.moduleAdvisories = e.moduleAdvisories;
        r.qeAdvisories = e.qeAdvisories;
        r.fmspc = p.fmspc;
        r.validUntil = e.validUntil < pckValidUntil ? e.validUntil : pckValidUntil;
        fill(quote, l, r);
    }

    /// @dev Status through the cache: TCB evaluation runs once per (platform, TCB inputs, collateral version).
    function cachedStatus(bytes calldata q, Layout memory l, PcsCollateral.Pck memory p, bytes32 pckCertId) private returns (uint8 status, uint64 validUntil) {
        (uint32 tcbSeq, uint32 qeSeq, uint64 until) = pcs.collateralState(p.fmspc);
        uint256 b = l.body;
        uint256 qe = l.qeReport;
        bytes32 key = keccak256(abi.encodePacked(pckCertId, q[b:b + 120], q[qe:qe + 320], tcbSeq, qeSeq));
        uint256 hit = tcbCache[key];
        if (hit != 0) return (uint8(hit - 1), until);
        PcsCollateral.EvalResult memory e = pcs.evaluate(evalInput(q, l, p));
        tcbCache[key] = uint256(e.status) + 1;
        return (e.status, e.validUntil);
    }

    // ------------------------------------------------------------------ registration

    /**
     * @notice Register (or re-register at a new epoch) the enclave that made
     *         `quote`. `pckCertDer` is the PCK leaf for a first registration on
     *         a platform (verified and cached); empty to use the cached
     *         `pckCertId`. Returns the enclave id, keccak256(logPublicKey).
     */
    function register(bytes calldata quote, bytes calldata pckCertDer, bytes32 pckCertId, EnclaveData calldata data) external returns (bytes32 enclaveId) {
        if (pckCertDer.length > 0) pckCertId = pcs.submitPckCert(pckCertDer);
        (Layout memory l, PcsCollateral.Pck memory p, uint64 validUntil) = checked(quote, pckCertId);
        (uint8 status, uint64 collateralUntil) = cachedStatus(quote, l, p, pckCertId);
        if (collateralUntil < validUntil) validUntil = collateralUntil;
        QuoteResult memory r;
        fill(quote, l, r);
        if (r.debug) revert DebugTd();
        if (status > minTcbStatus) revert TcbStatusNotAccepted(status);
        bytes32 modelHash = keccak256(bytes(data.model));
        if (!workloadAllowed[modelHash][r.workloadId]) revert WorkloadNotAllowed(modelHash, r.workloadId);
        checkFreshness(data.blockNumber, r.reportDataFreshness);
        enclaveId = keccak256(abi.encodePacked(data.logPublicKey));
        bytes32 urlHash = keccak256(bytes(data.url));
        if (r.reportDataBinding != binding(data, r.reportDataFreshness, enclaveId, modelHash, urlHash)) revert BindingMismatch();
        store(enclaveId, data, r.workloadId, status, p.fmspc, pckCertId, keccak256(quote), validUntil, modelHash, urlHash);
    }

    function checkFreshness(uint64 blockNumber, bytes32 freshness) private view {
        if (blockNumber >= block.number || block.number - blockNumber > maxBlockAge) revert StaleBlockHash(blockNumber);
        bytes32 h = blockhash(blockNumber);
        if (h == bytes32(0) || h != freshness) revert StaleBlockHash(blockNumber);
    }

    /// @notice attestation/binding.ts computeReportData, mode "registration": the upper 32 bytes.
    function bindingHash(EnclaveData calldata d, bytes32 blockHash, bytes32 logKeyHash) external view returns (bytes32) {
        return binding(d, blockHash, logKeyHash, keccak256(bytes(d.model)), keccak256(bytes(d.url)));
    }

    /// @dev Model and URL are bound (as keccak256 of their UTF-8 bytes) because the record publishes
    ///      them for discovery: a resent quote cannot point clients at another URL or model.
    function binding(EnclaveData calldata d, bytes32 blockHash, bytes32 logKeyHash, bytes32 modelHash, bytes32 urlHash) private view returns (bytes32) {
        return
            keccak256(
                abi.encode(
                    BINDING_DOMAIN,
                    BINDING_MODE_REGISTRATION,
                    d.keyConfigHash,
                    d.signingAddress,
                    d.gpuEvidenceHash,
                    logKeyHash,
                    d.epoch,
                    blockHash,
                    block.chainid,
                    address(this),
                    modelHash,
                    urlHash
                )
            );
    }

    /**
     * @dev Equal-epoch re-registration (the worker renews before expiry) must
     *      present the record's keys, workload, model and URL unchanged: one
     *      process has one set of keys per epoch and one log key for life, so
     *      anything else is not a renewal. Only tcbStatus, the GPU evidence
     *      hash, quote and expiry may change. A live record never goes back
     *      an epoch. A signing address held by another enclave's expired
     *      record is free: that record is ended (ENDED_EXPIRED) first, so
     *      enclaveIdOf always names the record whose signer it is.
     */
    function store(
        bytes32 enclaveId,
        EnclaveData calldata data,
        bytes32 workloadId,
        uint8 status,
        bytes6 fmspc,
        bytes32 pckCertId,
        bytes32 quoteHash,
        uint64 validUntil,
        bytes32 modelHash,
        bytes32 urlHash
    ) private {
        Record storage rec = records[enclaveId];
        address old = rec.signer;
        bool sameService;
        if (old != address(0)) {
            sameService = keccak256(bytes(rec.model)) == modelHash && keccak256(bytes(rec.url)) == urlHash;
            if (data.epoch == rec.epoch) {
                if (old != data.signingAddress || rec.keyConfigHash != data.keyConfigHash || rec.workloadId != workloadId || !sameService) {
                    revert EpochConflict(data.epoch);
                }
            } else if (block.timestamp < rec.expiresAt && data.epoch < rec.epoch) {
                revert EpochRegression(rec.epoch, data.epoch);
            }
            if (old != data.signingAddress) delete enclaveIdOf[old];
            emit EnclaveEnded(enclaveId, old, rec.epoch, uint64(block.timestamp), ENDED_REPLACED);
        }
        bytes32 holder = enclaveIdOf[data.signingAddress];
        if (holder != bytes32(0) && holder != enclaveId) {
            Record storage held = records[holder];
            if (block.timestamp < held.expiresAt) revert SignerInUse(data.signingAddress);
            remove(holder, held, ENDED_EXPIRED);
            holder = bytes32(0);
        }
        uint64 expiresAt = uint64(block.timestamp) + registrationTtl;
        if (validUntil < expiresAt) expiresAt = validUntil;
        rec.signer = data.signingAddress;
        rec.expiresAt = expiresAt;
        rec.tcbStatus = status;
        rec.epoch = data.epoch;
        rec.registeredAt = uint64(block.timestamp);
        rec.fmspc = fmspc;
        rec.keyConfigHash = data.keyConfigHash;
        rec.workloadId = workloadId;
        rec.gpuEvidenceHash = data.gpuEvidenceHash;
        rec.pckCertId = pckCertId;
        rec.quoteHash = quoteHash;
        if (!sameService) {
            rec.model = data.model;
            rec.url = data.url;
        }
        if (holder == bytes32(0)) enclaveIdOf[data.signingAddress] = enclaveId;
        emit EnclaveRegistered(enclaveId, data.signingAddress, modelHash, data.epoch, uint64(block.timestamp), expiresAt, workloadId, status, fmspc, data.model, data.url);
    }

    /// @notice The record of `enclaveId` (signer zero when none); callers check `expiresAt` themselves.
    function enclave(bytes32 enclaveId) external view returns (Record memory) {
        return records[enclaveId];
    }

    function remove(bytes32 enclaveId, Record storage rec, uint8 reason) private {
        address s = rec.signer;
        if (enclaveIdOf[s] == enclaveId) delete enclaveIdOf[s];
        emit EnclaveEnded(enclaveId, s, rec.epoch, uint64(block.timestamp), reason);
        delete records[enclaveId];
    }

    /**
     * @notice Permissionless: re-check a live record's quote (`quote`, exactly
     *         as registered) against current collateral and remove the record
     *         when its PCK (or CA) is revoked, its TCB is no longer found or is
     *         Revoked, or its status fell below the minimum; expired records
     *         are removed outright, and so are records whose workload the
     *         owner has since taken off the model's allow-list (no quote
     *         needed for those two). Anything else is StillValid.
     */
    function invalidate(bytes32 enclaveId, bytes calldata quote) external {
        Record storage rec = records[enclaveId];
        if (rec.signer == address(0)) revert EnclaveNotRegistered(enclaveId);
        if (block.timestamp >= rec.expiresAt) return remove(enclaveId, rec, ENDED_EXPIRED);
        // The allow-list is the owner's verdict on the code; it binds live records as well as new ones.
        if (!workloadAllowed[keccak256(bytes(rec.model))][rec.workloadId]) return remove(enclaveId, rec, ENDED_WORKLOAD_REMOVED);
        if (keccak256(quote) != rec.quoteHash) revert InvalidParameter();
        try this.verifyQuote(quote, rec.pckCertId) returns (QuoteResult memory r) {
            if (r.status <= minTcbStatus) revert StillValid(enclaveId);
        } catch (bytes memory reason) {
            // Only a verdict about the platform ends a record; an out-of-gas
            // or expired-collateral failure says nothing about it.
            bytes4 sel = reason.length >= 4 ? bytes4(reason) : bytes4(0);
            if (
                sel != CertRevoked.selector &&
                sel != TcbRevoked.selector &&
                sel != TcbLevelNotFound.selector &&
                sel != QeIdentityMismatch.selector &&
                sel != TdxModuleMismatch.selector
            ) {
                assembly ("memory-safe") {
                    revert(add(reason, 32), mload(reason))
                }
            }
        }
        remove(enclaveId, rec, ENDED_INVALIDATED);
    }

    // ------------------------------------------------------------------ receipts and checkpoints

    function buildDomainSeparator() private view returns (bytes32) {
        return keccak256(abi.encode(EIP712_DOMAIN_TYPEHASH, DOMAIN_NAME_HASH, DOMAIN_VERSION_HASH, block.chainid, address(this)));
    }

    /// @notice The EIP-712 domain separator of receipts and checkpoint anchors (enclave/receipts.ts receiptDomain).
    function domainSeparator() public view returns (bytes32) {
        return block.chainid == cachedChainId ? cachedDomainSeparator : buildDomainSeparator();
    }

    function recover(bytes32 structHash, bytes calldata signature) private view returns (address signer) {
        if (signature.length != 65) revert SignatureMalformed();
        bytes32 digest = keccak256(abi.encodePacked(hex"1901", domainSeparator(), structHash));
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) v += 27;
        if (uint256(s) > SECP256K1_HALF_N || (v != 27 && v != 28)) revert SignatureMalformed();
        signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert SignatureMalformed();
    }

    /**
     * @notice Check a receipt (enclave/receipts.ts signReceipt with the chain
     *         domain): returns the enclave whose live signer signed it, or
     *         reverts (SignerNotRegistered, EnclaveExpired, SignatureMalformed).
     * @dev EIP-712 hashing and ECDSA recovery in assembly over calldata: the
     *      same words `abi.encode` would produce (typehash, requestHash,
     *      responseHash, keccak256(model), epoch, time, logIndex), without
     *      the decoder's copies, so a contract can afford to call this.
     */
    function verifyReceipt(Receipt calldata receipt, bytes calldata signature) external view returns (bytes32 enclaveId, address signer) {
        string calldata model = receipt.model;
        bytes32 separator = domainSeparator();
        bytes32 typehash = RECEIPT_TYPEHASH;
        if (signature.length != 65) revert SignatureMalformed();
        bool bad;
        assembly ("memory-safe") {
            let m := mload(0x40)
            calldatacopy(m, model.offset, model.length)
            let modelHash := keccak256(m, model.length)
            mstore(m, typehash)
            calldatacopy(add(m, 0x20), receipt, 0x40)
            mstore(add(m, 0x60), modelHash)
            calldatacopy(add(m, 0x80), add(receipt, 0x60), 0x60)
            // uint64 fields must be canonical words, as the ABI decoder would insist.
            bad := or(or(gt(mload(add(m, 0x80)), 0xffffffffffffffff), gt(mload(add(m, 0xa0)), 0xffffffffffffffff)), gt(mload(add(m, 0xc0)), 0xffffffffffffffff))
            let structHash := keccak256(m, 0xe0)
            mstore(m, 0x1901000000000000000000000000000000000000000000000000000000000000)
            mstore(add(m, 0x02), separator)
            mstore(add(m, 0x22), structHash)
            let digest := keccak256(m, 0x42)
            let r := calldataload(signature.offset)
            let s := calldataload(add(signature.offset, 0x20))
            let v := byte(0, calldataload(add(signature.offset, 0x40)))
            if lt(v, 27) { v := add(v, 27) }
            bad := or(bad, or(gt(s, SECP256K1_HALF_N), and(iszero(eq(v, 27)), iszero(eq(v, 28)))))
            mstore(m, digest)
            mstore(add(m, 0x20), v)
            mstore(add(m, 0x40), r)
            mstore(add(m, 0x60), s)
            mstore(0x00, 0)
            pop(staticcall(gas(), 0x01, m, 0x80, 0x00, 0x20))
            signer := mload(0x00)
        }
        if (bad || signer == address(0)) revert SignatureMalformed();
        enclaveId = enclaveIdOf[signer];
        if (enclaveId == bytes32(0)) revert SignerNotRegistered(signer);
        if (block.timestamp >= records[enclaveId].expiresAt) revert EnclaveExpired(enclaveId);
    }

    /**
     * @notice Anchor a signed log checkpoint. `logId` is the enclave id of the
     *         log's enclave (keccak256 of the log public key); the signature is
     *         that enclave's live signing key over EIP-712
     *         CheckpointAnchor(logId, size, root), so anyone may submit it.
     *         Sizes only grow; the same size with another root is a fork: it is
     *         not stored, CheckpointForkDetected is emitted and false returned.
     * @dev Storage keeps one slot per log (size and a 192-bit root prefix) so
     *      that even a log's first anchor stays under 60k gas; history and the
     *      full roots are in CheckpointAnchored events. A fork that matched the
     *      stored prefix would need a 2^96-work collision by the enclave itself.
     */
    function anchorCheckpoint(bytes32 logId, uint64 size, bytes32 root, bytes calldata signature) external returns (bool anchored) {
        Record storage rec = records[logId];
        address expected = rec.signer;
        if (expected == address(0)) revert EnclaveNotRegistered(logId);
        if (block.timestamp >= rec.expiresAt) revert EnclaveExpired(logId);
        address signer = recover(keccak256(abi.encode(CHECKPOINT_ANCHOR_TYPEHASH, logId, size, root)), signature);
        if (signer != expected) revert SignerNotRegistered(signer);
        Anchor storage a = anchors[logId];
        (uint64 current, bytes24 stored) = (a.size, a.rootPrefix);
        if (stored != bytes24(0)) {
            if (size == current && bytes24(root) != stored) {
                emit CheckpointForkDetected(logId, size, stored, root);
                return false;
            }
            if (size <= current) revert CheckpointNotNewer(logId, current, size);
        }
        // A zero-prefix root would read as "no anchor"; a real RFC 6962 root never is one (2^-192).
        if (bytes24(root) == bytes24(0)) revert InvalidParameter();
        (a.size, a.rootPrefix) = (size, bytes24(root));
        emit CheckpointAnchored(logId, size, root, uint64(block.timestamp));
        return true;
    }

    // ------------------------------------------------------------------ governance

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    /// @notice Allow or disallow a workload id (attestation/workload.ts) for a model.
    function setWorkload(string calldata model, bytes32 workloadId, bool allowed) external onlyOwner {
        bytes32 modelHash = keccak256(bytes(model));
        workloadAllowed[modelHash][workloadId] = allowed;
        emit WorkloadSet(modelHash, workloadId, allowed, model);
    }

    function setMinTcbStatus(uint8 status) external onlyOwner {
        setMinTcbStatusInternal(status);
    }

    function setMaxBlockAge(uint64 blocks) external onlyOwner {
        setMaxBlockAgeInternal(blocks);
    }

    function setRegistrationTtl(uint64 seconds_) external onlyOwner {
        setRegistrationTtlInternal(seconds_);
    }

    function setMinTcbStatusInternal(uint8 status) private {
        // 6 (Revoked) is never acceptable.
        if (status > 5) revert InvalidParameter();
        minTcbStatus = status;
        emit MinTcbStatusSet(status);
    }

    function setMaxBlockAgeInternal(uint64 blocks) private {
        if (blocks == 0 || blocks > 256) revert InvalidParameter();
        maxBlockAge = blocks;
        emit MaxBlockAgeSet(blocks);
    }

    function setRegistrationTtlInternal(uint64 seconds_) private {
        if (seconds_ == 0) revert InvalidParameter();
        registrationTtl = seconds_;
        emit RegistrationTtlSet(seconds_);
    }

    /// @notice Two-step ownership transfer (the owner is a multisig in production).
    function transferOwnership(address newOwner) external onlyOwner {
        pendingOwner = newOwner;
        emit OwnershipTransferStarted(owner, newOwner);
    }

    function acceptOwnership() external {
        if (msg.sender != pendingOwner) revert NotPendingOwner(msg.sender);
        emit OwnershipTransferred(owner, msg.sender);
        owner = msg.sender;
        pendingOwner = address(0);
    }
}
