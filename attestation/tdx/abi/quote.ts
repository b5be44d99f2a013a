/**
 * DCAP quote bytes → structures (versions 3, 4 and 5). No crypto, no policy.
 *
 * Every field is a view into the input (no copies); the signed region and
 * the exact certification data are kept so that verifiers check the bytes
 * that were signed, not a re-serialisation. Trailing bytes after the declared
 * signature data are tolerated (real quotes carry them) and counted.
 */
import { ParseError, type ParseErrorCode } from '../../errors.ts'
import { pemToDer } from '../../asn1/pem.ts'
import { ByteReader, type Truncated } from '../../bytes/reader.ts'
import {
  ATTESTATION_KEY_TYPE_ECDSA_P256,
  CERT_DATA_HEADER_SIZE,
  CERT_DATA_TYPE_PCK_CHAIN,
  CERT_DATA_TYPE_QE_REPORT,
  ECDSA_KEY_SIZE,
  ECDSA_SIGNATURE_SIZE,
  ENCLAVE_REPORT,
  HEADER,
  QE_AUTH_DATA_SIZE_FIELD,
  TD_REPORT10,
  TD_REPORT15,
  TEE_TYPE_SGX,
  TEE_TYPE_TDX,
  V5_BODY_DESCRIPTOR_SIZE,
  V5_BODY_TYPE_TD10,
  V5_BODY_TYPE_TD15,
} from './constants.ts'

export interface QuoteHeader {
  readonly version: 3 | 4 | 5
  readonly attestationKeyType: number
  readonly teeType: number
  readonly qeSvn: number
  readonly pceSvn: number
  readonly qeVendorId: Uint8Array
  readonly userData: Uint8Array
}

/** SGX enclave report (the body of a v3 quote, and every QE report). */
export interface EnclaveReport {
  readonly raw: Uint8Array
  readonly cpuSvn: Uint8Array
  readonly miscSelect: number
  readonly attributes: Uint8Array
  readonly mrEnclave: Uint8Array
  readonly mrSigner: Uint8Array
  readonly isvProdId: number
  readonly isvSvn: number
  readonly reportData: Uint8Array
}

/** TD report, TDX 1.0 fields; `teeTcbSvn2` and `mrServiceTd` only in TDX 1.5. */
export interface TdReport {
  readonly raw: Uint8Array
  readonly teeTcbSvn: Uint8Array
  readonly mrSeam: Uint8Array
  readonly mrSignerSeam: Uint8Array
  readonly seamAttributes: Uint8Array
  readonly tdAttributes: Uint8Array
  readonly xfam: Uint8Array
  readonly mrTd: Uint8Array
  readonly mrConfigId: Uint8Array
  readonly mrOwner: Uint8Array
  readonly mrOwnerConfig: Uint8Array
  readonly rtmrs: readonly [Uint8Array, Uint8Array, Uint8Array, Uint8Array]
  readonly reportData: Uint8Array
  readonly teeTcbSvn2?: Uint8Array
  readonly mrServiceTd?: Uint8Array
}

export type QuoteBody =
  | { readonly kind: 'sgx'; readonly report: EnclaveReport }
  | { readonly kind: 'td10'; readonly report: TdReport }
  | { readonly kind: 'td15'; readonly report: TdReport }

/** The QE report certification data [TDX-QL A.3.10], or its v3 equivalent. */
export interface QeCertification {
  readonly qeReport: EnclaveReport
  readonly qeReportSignature: Uint8Array
  readonly qeAuthData: Uint8Array
  /** Type of the innermost certification data (5 = PEM PCK chain). */
  readonly certDataType: number
  readonly certData: Uint8Array
  /** The PCK chain, DER, leaf first (from type 5 data). */
  readonly pckChain: readonly Uint8Array[]
}

export interface Quote {
  readonly raw: Uint8Array
  readonly header: QuoteHeader
  readonly body: QuoteBody
  /** header || body (v5: with its descriptor): what the attestation key signed. */
  readonly signedRegion: Uint8Array
  readonly signature: Uint8Array
  readonly attestationKey: Uint8Array
  /** Type of the outer certification data (6 for v4/v5, 5 for v3). */
  readonly outerCertDataType: number
  readonly certification: QeCertification
  /** Bytes after the declared signature data. */
  readonly trailingBytes: number
}

/** Quote truncation is one typed error wherever it happens. */
const truncated: Truncated = (what, offset, needed, available) => {
  throw new ParseError('ATTESTATION_QUOTE_TRUNCATED', `quote ends inside ${what}`, { details: { offset, needed, available } })
}

class Reader extends ByteReader {
  constructor(buf: Uint8Array, pos: number, end: number) {
    super(buf, pos, end, truncated)
  }
}

function u16At(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8)
}

function u32At(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0
}

function fail(code: ParseErrorCode, what: string, details: Record<string, unknown> = {}): never {
  throw new ParseError(code, what, { details })
}

/** Parse a 384-byte SGX enclave report (quote v3 body, QE report). */
export function parseEnclaveReport(raw: Uint8Array): EnclaveReport {
  if (raw.length !== ENCLAVE_REPORT.SIZE) fail('ATTESTATION_QUOTE_TRUNCATED', 'enclave report is not 384 bytes')
  const E = ENCLAVE_REPORT
  return {
    raw,
    cpuSvn: raw.subarray(E.CPU_SVN, E.CPU_SVN + 16),
    miscSelect: u32At(raw, E.MISC_SELECT),
    attributes: raw.subarray(E.ATTRIBUTES, E.ATTRIBUTES + 16),
    mrEnclave: raw.subarray(E.MR_ENCLAVE, E.MR_ENCLAVE + 32),
    mrSigner: raw.subarray(E.MR_SIGNER, E.MR_SIGNER + 32),
    isvProdId: u16At(raw, E.ISV_PROD_ID),
    isvSvn: u16At(raw, E.ISV_SVN),
    reportData: raw.subarray(E.REPORT_DATA, E.REPORT_DATA + 64),
  }
}

/** Parse a TD report 1.0 (584 bytes) or 1.5 (648 bytes). */
export function parseTdReport(raw: Uint8Array): TdReport {
  const T = TD_REPORT10
  if (raw.length !== T.SIZE && raw.length !== TD_REPORT15.SIZE) fail('ATTESTATION_QUOTE_TRUNCATED', 'TD report has a wrong size')
  const f = (o: number, n: number) => raw.subarray(o, o + n)
  const base = {
    raw,
    teeTcbSvn: f(T.TEE_TCB_SVN, 16),
    mrSeam: f(T.MR_SEAM, 48),
    mrSignerSeam: f(T.MR_SIGNER_SEAM, 48),
    seamAttributes: f(T.SEAM_ATTRIBUTES, 8),
    tdAttributes: f(T.TD_ATTRIBUTES, 8),
    xfam: f(T.XFAM, 8),
    mrTd: f(T.MR_TD, 48),
    mrConfigId: f(T.MR_CONFIG_ID, 48),
    mrOwner: f(T.MR_OWNER, 48),
    mrOwnerConfig: f(T.MR_OWNER_CONFIG, 48),
    rtmrs: [f(T.RTMR0, 48), f(T.RTMR0 + 48, 48), f(T.RTMR0 + 96, 48), f(T.RTMR0 + 144, 48)] as const,
    reportData: f(T.REPORT_DATA, 64),
  }
  if (raw.length === T.SIZE) return base
  return { ...base, teeTcbSvn2: f(TD_REPORT15.TEE_TCB_SVN2, 16), mrServiceTd: f(TD_REPORT15.MR_SERVICE_TD, 48) }
}

function parseHeader(r: Reader): QuoteHeader {
  const version = r.u16('header.version')
  if (version !== 3 && version !== 4 && version !== 5) {
    fail('ATTESTATION_QUOTE_UNSUPPORTED_VERSION', `quote version ${version} is not supported`, { version })
  }
  const attestationKeyType = r.u16('header.attestationKeyType')
  if (attestationKeyType !== ATTESTATION_KEY_TYPE_ECDSA_P256) {
    fail('ATTESTATION_QUOTE_UNSUPPORTED_KEY_TYPE', `attestation key type ${attestationKeyType} is not ECDSA P-256`, { attestationKeyType })
  }
  const teeType = r.u32('header.teeType')
  const tdx = teeType === TEE_TYPE_TDX
  if (!(tdx || teeType === TEE_TYPE_SGX) || (version === 3) === tdx) {
    fail('ATTESTATION_QUOTE_UNSUPPORTED_TEE', `TEE type 0x${teeType.toString(16)} does not fit quote version ${version}`, { teeType, version })
  }
  return {
    version,
    attestationKeyType,
    teeType,
    qeSvn: r.u16('header.qeSvn'),
    pceSvn: r.u16('header.pceSvn'),
    qeVendorId: r.take(16, 'header.qeVendorId'),
    userData: r.take(20, 'header.userData'),
  }
}

function parseBody(r: Reader, header: QuoteHeader): QuoteBody {
  if (header.version === 3) return { kind: 'sgx', report: parseEnclaveReport(r.take(ENCLAVE_REPORT.SIZE, 'body')) }
  if (header.version === 4) return { kind: 'td10', report: parseTdReport(r.take(TD_REPORT10.SIZE, 'body')) }
  const type = r.u16('body.type')
  const size = r.u32('body.size')
  if (type === V5_BODY_TYPE_TD10 && size === TD_REPORT10.SIZE) {
    return { kind: 'td10', report: parseTdReport(r.take(size, 'body')) }
  }
  if (type === V5_BODY_TYPE_TD15 && size === TD_REPORT15.SIZE) {
    return { kind: 'td15', report: parseTdReport(r.take(size, 'body')) }
  }
  return fail('ATTESTATION_QUOTE_UNSUPPORTED_BODY', `v5 body type ${type} with size ${size} is not a TD report`, { type, size })
}

/** Certification data type 5: a PEM chain, possibly NUL-terminated. */
function parsePckChain(type: number, data: Uint8Array): Uint8Array[] {
  if (type !== CERT_DATA_TYPE_PCK_CHAIN) {
    fail('ATTESTATION_CERT_DATA_UNSUPPORTED', `certification data type ${type} carries no PCK chain`, { type })
  }
  return pemToDer(Buffer.from(data).toString('latin1'))
}

function parseAuthAndChain(r: Reader, qeReportRaw: Uint8Array, qeReportSignature: Uint8Array): QeCertification {
  const authSize = r.u16('qeAuthData.size')
  const qeAuthData = r.take(authSize, 'qeAuthData')
  const certDataType = r.u16('certData.type')
  const certSize = r.u32('certData.size')
  const certData = r.take(certSize, 'certData')
  if (r.pos !== r.end) {
    fail('ATTESTATION_QUOTE_MALFORMED', 'bytes left inside the QE certification data', { offset: r.pos, end: r.end })
  }
  return {
    qeReport: parseEnclaveReport(qeReportRaw),
    qeReportSignature,
    qeAuthData,
    certDataType,
    certData,
    pckChain: parsePckChain(certDataType, certData),
  }
}

/** Parse a DCAP quote (v3 SGX, v4 and v5 TDX). Throws `ParseError` only. */
export function parseQuote(raw: Uint8Array): Quote {
  const r = new Reader(raw, 0, raw.length)
  const header = parseHeader(r)
  const body = parseBody(r, header)
  const signedRegion = raw.subarray(0, r.pos)
  const sigDataLen = r.u32('signatureData.size')
  const sigEnd = r.pos + sigDataLen
  if (sigEnd > raw.length) {
    fail('ATTESTATION_QUOTE_TRUNCATED', 'signature data runs past the end of the quote', { offset: r.pos, declared: sigDataLen })
  }
  const s = new Reader(raw, r.pos, sigEnd)
  const signature = s.take(ECDSA_SIGNATURE_SIZE, 'signature')
  const attestationKey = s.take(ECDSA_KEY_SIZE, 'attestationKey')
  let outerCertDataType: number
  let certification: QeCertification
  if (header.version === 3) {
    // v3 [SGX-QL A.4]: QE report, its signature and auth data sit directly here.
    const qeReport = s.take(ENCLAVE_REPORT.SIZE, 'qeReport')
    const qeSig = s.take(ECDSA_SIGNATURE_SIZE, 'qeReportSignature')
    certification = parseAuthAndChain(s, qeReport, qeSig)
    outerCertDataType = certification.certDataType
  } else {
    outerCertDataType = s.u16('certData.type')
    const size = s.u32('certData.size')
    if (outerCertDataType !== CERT_DATA_TYPE_QE_REPORT) {
      fail('ATTESTATION_CERT_DATA_UNSUPPORTED', `outer certification data type ${outerCertDataType} is not 6`, { type: outerCertDataType })
    }
    if (s.pos + size !== sigEnd) {
      fail('ATTESTATION_QUOTE_MALFORMED', 'certification data size disagrees with signature data size', { declared: size, available: sigEnd - s.pos })
    }
    const inner = new Reader(raw, s.pos, sigEnd)
    const qeReport = inner.take(ENCLAVE_REPORT.SIZE, 'qeReport')
    const qeSig = inner.take(ECDSA_SIGNATURE_SIZE, 'qeReportSignature')
    certification = parseAuthAndChain(inner, qeReport, qeSig)
    s.pos = sigEnd
  }
  if (s.pos !== sigEnd) fail('ATTESTATION_QUOTE_MALFORMED', 'bytes left inside the signature data', { offset: s.pos, end: sigEnd })
  return {
    raw,
    header,
    body,
    signedRegion,
    signature,
    attestationKey,
    outerCertDataType,
    certification,
    trailingBytes: raw.length - sigEnd,
  }
}

/** Size constants re-exported for callers that build quotes (the dev TEE). */
export { CERT_DATA_HEADER_SIZE, QE_AUTH_DATA_SIZE_FIELD }
