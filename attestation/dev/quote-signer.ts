/**
 * The development quote signer: TDX v4 quotes in Intel's exact byte layout,
 * signed under the dev root CA. NOT FOR PRODUCTION: a verifier accepts these
 * only under a policy that pins the dev root's fingerprint.
 *
 * It plays the parts of the platform's quoting stack:
 *   - the TDX module, which fills the TD report (TEE_TCB_SVN, MRSEAM, ...);
 *   - the TD Quoting Enclave, which signs header || body with its
 *     attestation key and reports that key to the PCE in its QE report;
 *   - the PCE, which signs the QE report with the PCK key certified by the
 *     dev Platform CA.
 * The layout is [TDX-QL] Intel TDX DCAP Quoting Library API, Appendix A.3
 * (quote v4) with certification data type 6 [TDX-QL A.3.10] wrapping type 5
 * [TDX-QL A.3.9], the same offsets `attestation/tdx/abi/quote.ts` reads.
 *
 * The platform's values (FMSPC, SVNs, QE identity) default to the `DEV_*`
 * constants below, and `signDevCollateral` defaults to describing exactly that
 * platform as UpToDate; `signer.platform` hands the values actually used to it.
 */
import { createHash, randomBytes, sign } from 'node:crypto'
import { ConfigError } from '../errors.ts'
import {
  ATTESTATION_KEY_TYPE_ECDSA_P256,
  CERT_DATA_TYPE_PCK_CHAIN,
  CERT_DATA_TYPE_QE_REPORT,
  ENCLAVE_REPORT,
  HEADER,
  INTEL_QE_VENDOR_ID,
  TD_REPORT10,
  TEE_TYPE_TDX,
} from '../tdx/abi/constants.ts'
import { deriveDevBytes, deriveDevKey, devBytes, type DevKeyPair, type DevPckLeaf, type DevRootCa } from './root-ca.ts'

/** Quote version this signer emits [TDX-QL A.3.1]. */
const QUOTE_VERSION_4 = 4

function labelHash(alg: 'sha256' | 'sha384', label: string): string {
  return createHash(alg).update(label).digest('hex')
}

/** A FMSPC no Intel platform uses ("de7" for dev), for callers without one of their own. */
export const DEV_FMSPC = 'de7000000000'
/** PCE-ID 0, as on every Intel platform so far [PCK profile §1.3.5]. */
export const DEV_PCE_ID = '0000'
/** Platform SGX TCB component SVNs (values of the Emerald Rapids vector's UpToDate level). */
export const DEV_SGX_TCB_COMPONENTS: readonly number[] = [2, 2, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0]
/** PCE SVN of the dev platform (the vector's UpToDate level's). */
export const DEV_PCE_SVN = 11
/**
 * TEE_TCB_SVN of the dev TDX module [TDX-QL A.3.2]: byte 0 the module's SVN,
 * byte 1 its major version (the "TDX_01" module identity), byte 2 the TDX
 * late microcode update. Equal, byte for byte, to the default TCB level's
 * tdxtcbcomponents, so platforms comparing all 16 bytes and those that skip
 * bytes 0-1 when a module identity applies both find it UpToDate.
 */
export const DEV_TEE_TCB_SVN = '04010200000000000000000000000000'

/**
 * The dev TD Quoting Enclave's identity. MRSIGNER and MRENCLAVE are hashes of
 * a dev label, never Intel's (DC9E2A7C...), so no identity of Intel's QE can
 * match a dev QE report or the other way round.
 */
export const DEV_QE_MRSIGNER = labelHash('sha256', 'Confidential Gateway DEV TD_QE signer - NOT FOR PRODUCTION')
export const DEV_QE_MRENCLAVE = labelHash('sha256', 'Confidential Gateway DEV TD_QE enclave - NOT FOR PRODUCTION')
/** ISVPRODID of Intel's TD_QE (QE identity "TD_QE", isvprodid 2). */
export const DEV_QE_ISV_PROD_ID = 2
export const DEV_QE_ISV_SVN = 4
export const DEV_QE_MISC_SELECT = 0
/**
 * QE report ATTRIBUTES [SGX-QL A.4 Table 5]: flags INIT | MODE64BIT |
 * PROVISIONKEY, DEBUG clear; XFRM 0xE7. Copied from the real QE report.
 */
export const DEV_QE_ATTRIBUTES = '1500000000000000e700000000000000'
/** QE authentication data: Intel's QE emits these 32 bytes 0x00..0x1F [TDX-QL A.3.11]. */
export const DEV_QE_AUTH_DATA: Uint8Array = Uint8Array.from({ length: 32 }, (_, i) => i)

/**
 * TD ATTRIBUTES [TDX module ABI spec, "TD ATTRIBUTES"]: bit 0 TUD.DEBUG,
 * bit 28 SEC.SEPT_VE_DISABLE. The default TD has SEPT_VE_DISABLE and no debug,
 * what a production policy requires.
 */
export const TD_ATTRIBUTES_DEBUG = 1n << 0n
export const TD_ATTRIBUTES_SEPT_VE_DISABLE = 1n << 28n
export const DEV_TD_ATTRIBUTES = '0000001000000000'
/** XFAM of the vector's TD (x87, SSE, AVX, AVX-512 state, PKRU, AMX). */
export const DEV_XFAM = 'e702060000000000'

/** The platform a signer impersonates; pass it to `signDevCollateral` as `platform`. */
export interface DevPlatform {
  readonly fmspc: string
  readonly pceId: string
  readonly sgxTcbComponents: readonly number[]
  readonly pceSvn: number
  /** 16 bytes hex. */
  readonly cpuSvn: string
  /** 16 bytes hex, the default TEE_TCB_SVN of quotes. */
  readonly teeTcbSvn: string
  readonly qeSvn: number
}

export interface DevQuoteSignerOptions {
  /** 6 bytes hex (12 digits); e.g. {@link DEV_FMSPC}. */
  readonly fmspc: string
  /** Default {@link DEV_PCE_ID}. */
  readonly pceId?: string
  /** Default {@link DEV_SGX_TCB_COMPONENTS}. */
  readonly sgxTcbComponents?: readonly number[]
  /** Default {@link DEV_PCE_SVN}. */
  readonly pceSvn?: number
  /** 16 bytes; default the SGX TCB components as bytes, like Intel's PCK leaves. */
  readonly cpuSvn?: Uint8Array | string
  /** 16 bytes; default the CA's dev platform PPID. */
  readonly ppid?: Uint8Array | string
  /** Default TEE_TCB_SVN for quotes (16 bytes); default {@link DEV_TEE_TCB_SVN}. */
  readonly teeTcbSvn?: Uint8Array | string
  /** QE report ISVSVN; default {@link DEV_QE_ISV_SVN}. */
  readonly qeSvn?: number
  /** QE authentication data (0..65535 bytes); default {@link DEV_QE_AUTH_DATA}. */
  readonly qeAuthData?: Uint8Array
  /** 32 bytes: derives the attestation key and QE ID. Random when absent (a fresh QE). */
  readonly seed?: Uint8Array
  /** Issue instant of the PCK leaf; default the CA's `now`. */
  readonly now?: Date
}

/** What goes into one quote. Omitted fields are zeros, except where a default is named. */
export interface DevQuoteInput {
  /** 64 bytes. */
  readonly reportData?: Uint8Array
  /** 48 bytes. */
  readonly mrTd?: Uint8Array
  /** Four 48-byte values. */
  readonly rtmrs?: readonly Uint8Array[]
  readonly mrConfigId?: Uint8Array
  readonly mrOwner?: Uint8Array
  readonly mrOwnerConfig?: Uint8Array
  /** 8 bytes; default {@link DEV_TD_ATTRIBUTES} (SEPT_VE_DISABLE, no debug). */
  readonly tdAttributes?: Uint8Array
  /** 8 bytes; default {@link DEV_XFAM}. */
  readonly xfam?: Uint8Array
  /** 16 bytes; default the signer's `platform.teeTcbSvn`. */
  readonly teeTcbSvn?: Uint8Array
  /** 48 bytes each. MRSIGNERSEAM zero means an Intel-signed module, as on real platforms. */
  readonly mrSeam?: Uint8Array
  readonly mrSignerSeam?: Uint8Array
  /** 8 bytes. */
  readonly seamAttributes?: Uint8Array
  /** 20 bytes of header user data; default the QE ID (16 bytes) and four zeros, like Intel's QE. */
  readonly userData?: Uint8Array
}

export interface DevQuoteSigner {
  readonly pckLeaf: DevPckLeaf
  /** `x || y` of the attestation key (64 bytes). */
  readonly attestationPublicKey: Uint8Array
  readonly platform: DevPlatform
  /** Build and sign one quote. Synchronous. */
  signQuote(input?: DevQuoteInput): Uint8Array
}

function field(value: Uint8Array | undefined, size: number, name: string): Uint8Array {
  return value === undefined ? new Uint8Array(size) : devBytes(value, size, name)
}

function u16(n: number): Uint8Array {
  return Uint8Array.of(n & 0xff, (n >>> 8) & 0xff)
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n, true)
  return b
}

/** Raw `r || s` ECDSA P-256 with SHA-256: the signature form inside quotes [TDX-QL A.3.7]. */
function signRaw(key: DevKeyPair, data: Uint8Array): Uint8Array {
  return new Uint8Array(sign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' }))
}

/**
 * Create a signer for one dev platform: issues its PCK leaf under `ca` and
 * draws (or derives from `seed`) the QE's attestation key.
 */
export function createDevQuoteSigner(ca: DevRootCa, options: DevQuoteSignerOptions): DevQuoteSigner {
  const fmspc = devBytes(options.fmspc, 6, 'fmspc')
  const pceId = devBytes(options.pceId ?? DEV_PCE_ID, 2, 'pceId')
  const sgxTcbComponents = options.sgxTcbComponents ?? DEV_SGX_TCB_COMPONENTS
  if (sgxTcbComponents.length !== 16) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'sgxTcbComponents must hold 16 SVNs')
  }
  const pceSvn = options.pceSvn ?? DEV_PCE_SVN
  const cpuSvn = options.cpuSvn === undefined ? Uint8Array.from(sgxTcbComponents) : devBytes(options.cpuSvn, 16, 'cpuSvn')
  const teeTcbSvn = devBytes(options.teeTcbSvn ?? DEV_TEE_TCB_SVN, 16, 'teeTcbSvn')
  const qeSvn = options.qeSvn ?? DEV_QE_ISV_SVN
  if (!Number.isInteger(qeSvn) || qeSvn < 0 || qeSvn > 0xffff) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'qeSvn must be a u16')
  const qeAuthData = options.qeAuthData ?? DEV_QE_AUTH_DATA
  if (qeAuthData.length > 0xffff) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'qeAuthData exceeds a u16 length')
  const seed = options.seed ?? new Uint8Array(randomBytes(32))
  if (seed.length !== 32) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'seed must be 32 bytes')

  const pckLeaf = ca.issuePckLeaf({
    fmspc,
    pceId,
    cpuSvn,
    sgxTcbComponents,
    pceSvn,
    ...(options.ppid !== undefined ? { ppid: options.ppid } : {}),
    ...(options.now ? { now: options.now } : {}),
  })
  const attestationKey = deriveDevKey(seed, 'attestation-key')
  const qeId = deriveDevBytes(seed, 'qe-id', 16)

  // The QE report is fixed per attestation key, as on hardware: the QE
  // certifies its key once and reuses the signed report in every quote.
  const qeReport = new Uint8Array(ENCLAVE_REPORT.SIZE)
  const E = ENCLAVE_REPORT
  qeReport.set(cpuSvn, E.CPU_SVN)
  qeReport.set(u32(DEV_QE_MISC_SELECT), E.MISC_SELECT)
  qeReport.set(Buffer.from(DEV_QE_ATTRIBUTES, 'hex'), E.ATTRIBUTES)
  qeReport.set(Buffer.from(DEV_QE_MRENCLAVE, 'hex'), E.MR_ENCLAVE)
  qeReport.set(Buffer.from(DEV_QE_MRSIGNER, 'hex'), E.MR_SIGNER)
  qeReport.set(u16(DEV_QE_ISV_PROD_ID), E.ISV_PROD_ID)
  qeReport.set(u16(qeSvn), E.ISV_SVN)
  // REPORTDATA binds the attestation key [TDX-QL A.3.10]: SHA-256(key || auth data) || 32 zero bytes.
  qeReport.set(createHash('sha256').update(attestationKey.raw).update(qeAuthData).digest(), E.REPORT_DATA)
  const qeReportSignature = signRaw(pckLeaf.key, qeReport)

  // Type 5 data is the PEM chain leaf first, NUL-terminated like Intel's QE writes it.
  const pemChain = Buffer.concat([Buffer.from(pckLeaf.chainPem, 'latin1'), Buffer.of(0)])
  const qeCertification = Buffer.concat([
    qeReport,
    qeReportSignature,
    u16(qeAuthData.length),
    qeAuthData,
    u16(CERT_DATA_TYPE_PCK_CHAIN),
    u32(pemChain.length),
    pemChain,
  ])

  const platform: DevPlatform = {
    fmspc: Buffer.from(fmspc).toString('hex'),
    pceId: Buffer.from(pceId).toString('hex'),
    sgxTcbComponents: [...sgxTcbComponents],
    pceSvn,
    cpuSvn: Buffer.from(cpuSvn).toString('hex'),
    teeTcbSvn: Buffer.from(teeTcbSvn).toString('hex'),
    qeSvn,
  }

  function signQuote(input: DevQuoteInput = {}): Uint8Array {
    const header = new Uint8Array(HEADER.SIZE)
    header.set(u16(QUOTE_VERSION_4), HEADER.VERSION)
    header.set(u16(ATTESTATION_KEY_TYPE_ECDSA_P256), HEADER.ATTESTATION_KEY_TYPE)
    header.set(u32(TEE_TYPE_TDX), HEADER.TEE_TYPE)
    // Bytes 8-11 are reserved in v4 (QE/PCE SVN only in v3) and zero on real quotes.
    header.set(Buffer.from(INTEL_QE_VENDOR_ID, 'hex'), HEADER.QE_VENDOR_ID)
    header.set(input.userData === undefined ? Buffer.concat([qeId, new Uint8Array(4)]) : devBytes(input.userData, 20, 'userData'), HEADER.USER_DATA)

    const T = TD_REPORT10
    const body = new Uint8Array(T.SIZE)
    body.set(input.teeTcbSvn === undefined ? teeTcbSvn : devBytes(input.teeTcbSvn, 16, 'teeTcbSvn'), T.TEE_TCB_SVN)
    body.set(field(input.mrSeam, 48, 'mrSeam'), T.MR_SEAM)
    body.set(field(input.mrSignerSeam, 48, 'mrSignerSeam'), T.MR_SIGNER_SEAM)
    body.set(field(input.seamAttributes, 8, 'seamAttributes'), T.SEAM_ATTRIBUTES)
    body.set(devBytes(input.tdAttributes ?? DEV_TD_ATTRIBUTES, 8, 'tdAttributes'), T.TD_ATTRIBUTES)
    body.set(devBytes(input.xfam ?? DEV_XFAM, 8, 'xfam'), T.XFAM)
    body.set(field(input.mrTd, 48, 'mrTd'), T.MR_TD)
    body.set(field(input.mrConfigId, 48, 'mrConfigId'), T.MR_CONFIG_ID)
    body.set(field(input.mrOwner, 48, 'mrOwner'), T.MR_OWNER)
    body.set(field(input.mrOwnerConfig, 48, 'mrOwnerConfig'), T.MR_OWNER_CONFIG)
    const rtmrs = input.rtmrs ?? []
    if (rtmrs.length !== 0 && rtmrs.length !== 4) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'rtmrs must hold 4 values')
    for (let i = 0; i < 4; i++) body.set(field(rtmrs[i], 48, `rtmrs[${i}]`), T.RTMR0 + 48 * i)
    body.set(field(input.reportData, 64, 'reportData'), T.REPORT_DATA)

    const signedRegion = Buffer.concat([header, body])
    const signatureData = Buffer.concat([
      signRaw(attestationKey, signedRegion),
      attestationKey.raw,
      u16(CERT_DATA_TYPE_QE_REPORT),
      u32(qeCertification.length),
      qeCertification,
    ])
    return new Uint8Array(Buffer.concat([signedRegion, u32(signatureData.length), signatureData]))
  }

  return { pckLeaf, attestationPublicKey: attestationKey.raw, platform, signQuote }
}
