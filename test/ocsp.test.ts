/**
 * OCSP responses (RFC 6960): the parser and the offline verifier.
 *
 * Real vectors: the seven base64 responses in
 * test/vectors/nvidia/hopper-sample/ocsp, each matched to its certificate by
 * the CertID serial (see VECTORS below). Each names SHA-384 in its CertID, is
 * signed (ecdsa-with-SHA384) by a delegated responder whose certificate it
 * carries, identified byKey, and is valid for 24 hours:
 *
 *   GPU device chain:  thisUpdate 2025-08-21T06:47:07/08Z, nextUpdate +24h
 *   RIM signing chains: thisUpdate 2025-10-24T11:32:21/22Z, nextUpdate +24h
 *
 * so they are verified at GPU_AT and RIM_AT, inside those windows (no single
 * instant fits both). Negative cases mutate a vector (named after what the
 * mutation breaks) or build a small P-384 PKI here, signing honestly with
 * node:crypto: a responder certificate without id-kp-OCSPSigning cannot be
 * made from NVIDIA's without their key. Errors are asserted by code and
 * `details.reason`, never by message.
 */
import t, { type Test } from 'tap'
import fc from 'fast-check'
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { BaseError, ParseError, VerificationError } from '../attestation/errors.ts'
import { pemToDer } from '../attestation/asn1/pem.ts'
import { parseCertificate, type Certificate } from '../attestation/pki/x509.ts'
import {
  OID_OCSP_BASIC,
  OID_OCSP_NONCE,
  parseOcspResponse,
  parseOcspResponseBase64,
  subjectPublicKeyBits,
  type BasicOcspResponse,
  type OcspResponse,
} from '../attestation/pki/ocsp.ts'
import {
  OID_KP_OCSP_SIGNING,
  delegatedResponderProblem,
  hasOcspSigningEku,
  verifyOcspResponse,
  type VerifyOcspResponseOptions,
} from '../attestation/pki/ocsp-verify.ts'
import { bitString, boolean, enumerated, integer, octetString, oid, sequence, tlv, type Der } from '../attestation/dev/der-encode.ts'
import { VECTORS_DIR } from './helpers/vectors.ts'

const SEED = 42
const HOUR = 3_600_000
const DIR = `${VECTORS_DIR}nvidia/hopper-sample/`
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

/** Inside the GPU chain responses' window (2025-08-21T06:47:08Z .. 2025-08-22T06:47:07Z). */
const GPU_AT = new Date('2025-08-21T12:00:00Z')
/** Inside the RIM chain responses' window (2025-10-24T11:32:22Z .. 2025-10-25T11:32:21Z). */
const RIM_AT = new Date('2025-10-24T12:00:00Z')

// ---------------------------------------------------------------------------
// Vectors and the certificates they speak about.

/** GPU chain, leaf first: FMC leaf, GSP BROM, Provisioner ICA 1, GH100 Identity, Device Identity CA. */
const gpu = pemToDer(readFileSync(`${DIR}hopperCertChain.txt`, 'utf8')).map(parseCertificate)
const deviceRoot = parseCertificate(pemToDer(readFileSync(`${DIR}verifier_device_root.pem`, 'utf8'))[0]!)
const rimRoot = parseCertificate(pemToDer(readFileSync(`${DIR}verifier_RIM_root.pem`, 'utf8'))[0]!)

/** The RIM signing chain in a RIM's ds:X509Certificate elements, leaf first (public certificates; no XML parsing needed). */
function rimChain(file: string): Certificate[] {
  const xml = readFileSync(`${DIR}rims-matching/${file}`, 'utf8')
  return [...xml.matchAll(/<ds:X509Certificate>([^<]*)<\/ds:X509Certificate>/g)].map((m) =>
    parseCertificate(new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'))),
  )
}
/** Driver RIM chain: HCC RIM L4 Signer, Reference Value L3 GH100 002, Reference Value GH100 CA, CoRIM root. */
const driver = rimChain('NV_GPU_DRIVER_GH100_550.90.07.xml')
/** VBIOS RIM chain: another L4 signer under the same L3, CA and root. */
const vbios = rimChain('NV_GPU_VBIOS_1010_0200_882_96009F0001.xml')

interface Vector {
  readonly name: string
  readonly cert: Certificate
  readonly issuer: Certificate
  readonly at: Date
  readonly serial: string
  readonly thisUpdate: string
  readonly nextUpdate: string
  readonly producedAt: string
  /** Common name of the delegated responder certificate the response carries. */
  readonly responder: string
}

/** Which certificate each response covers (by CertID serial) and its issuer. `lN` counts from the root side. */
const VECTORS: readonly Vector[] = [
  {
    name: 'test_gpu_certificate_l2',
    cert: gpu[3]!, // NVIDIA GH100 Identity
    issuer: deviceRoot,
    at: GPU_AT,
    serial: '4c255ede3bd001bf3f4a3b605fca898a',
    thisUpdate: '2025-08-21T06:47:08.000Z',
    nextUpdate: '2025-08-22T06:47:08.000Z',
    producedAt: '2025-08-21T06:47:08.000Z',
    responder: 'NVIDIA OCSP Responder L1-A 02',
  },
  {
    name: 'test_gpu_certificate_l3',
    cert: gpu[2]!, // NVIDIA GH100 Provisioner ICA 1
    issuer: gpu[3]!,
    at: GPU_AT,
    serial: '6afe7184f92232c8df7b242261776e56',
    thisUpdate: '2025-08-21T06:47:07.000Z',
    nextUpdate: '2025-08-22T06:47:07.000Z',
    producedAt: '2025-08-21T06:47:07.000Z',
    responder: 'NVIDIA OCSP Responder L2 GH100 Identity',
  },
  {
    name: 'test_gpu_certificate_l4',
    cert: gpu[1]!, // GH100 A01 GSP BROM
    issuer: gpu[2]!,
    at: GPU_AT,
    serial: '41431d480fe5e87274',
    thisUpdate: '2025-08-21T06:47:07.000Z',
    nextUpdate: '2025-08-22T06:47:07.000Z',
    producedAt: '2025-08-21T06:47:07.000Z',
    responder: 'NVIDIA OCSP Responder L3 GH100 ICA1 Identity',
  },
  {
    name: 'test_gpu_rim_l2',
    cert: driver[2]!, // NVIDIA Reference Value GH100 CA
    issuer: rimRoot,
    at: RIM_AT,
    serial: 'c6dbf0754093fdeb4333f34ba205b4dc',
    thisUpdate: '2025-10-24T11:32:21.000Z',
    nextUpdate: '2025-10-25T11:32:21.000Z',
    producedAt: '2025-10-24T11:32:21.000Z',
    responder: 'NVIDIA OCSP Responder L1 CoRIM Root',
  },
  {
    name: 'test_gpu_driver_rim_l3',
    cert: driver[1]!, // NVIDIA Reference Value L3 GH100 002
    issuer: driver[2]!,
    at: RIM_AT,
    serial: 'b4ebf6542022fdec4512f24ba503a3cb',
    thisUpdate: '2025-10-24T11:32:21.000Z',
    nextUpdate: '2025-10-25T11:32:21.000Z',
    producedAt: '2025-10-24T11:32:21.000Z',
    responder: 'NVIDIA OCSP Responder L2 Reference Value GH100',
  },
  {
    name: 'test_gpu_driver_rim_l4',
    cert: driver[0]!, // driver RIM's HCC RIM L4 Signer
    issuer: driver[1]!,
    at: RIM_AT,
    serial: 'd69f10b46c05d201',
    thisUpdate: '2025-10-24T11:32:21.000Z',
    nextUpdate: '2025-10-25T11:32:21.000Z',
    producedAt: '2025-10-24T11:32:21.000Z',
    responder: 'NVIDIA OCSP Responder L3 GH100 002',
  },
  {
    name: 'test_gpu_vbios_l4',
    cert: vbios[0]!, // VBIOS RIM's HCC RIM L4 Signer
    issuer: vbios[1]!,
    at: RIM_AT,
    serial: '89624ede804c3916',
    thisUpdate: '2025-10-24T11:32:22.000Z',
    nextUpdate: '2025-10-25T11:32:22.000Z',
    producedAt: '2025-10-24T11:32:22.000Z',
    responder: 'NVIDIA OCSP Responder L3 GH100 002',
  },
]

const text = (v: Vector) => readFileSync(`${DIR}ocsp/${v.name}_base64encoded_ocsp_response.dat`, 'utf8')
const raw = (v: Vector) => new Uint8Array(Buffer.from(text(v), 'base64'))
const vector = (name: string) => VECTORS.find((v) => v.name === name)!

function basicOf(r: OcspResponse): BasicOcspResponse {
  if (r.responseStatus !== 'successful') throw new Error(`not successful: ${r.responseStatus}`)
  return r.basic
}

/** The error `f` throws (fails the test when it returns). */
function caught(f: () => unknown): BaseError {
  try {
    f()
  } catch (e) {
    if (e instanceof BaseError) return e
    throw e
  }
  throw new Error('expected an error')
}

/** Assert that verification fails with `code` and, for ATTESTATION_OCSP_INVALID, `reason`. */
function rejects(
  t: Test,
  f: () => unknown,
  code: string,
  reason?: string,
  extra: Record<string, unknown> = {},
): BaseError | undefined {
  let e: BaseError
  try {
    e = caught(f)
  } catch (err) {
    t.fail(`expected ${code}${reason ? `/${reason}` : ''}, got ${String(err)}`)
    return undefined
  }
  t.equal(e.code, code, `code ${code}`)
  if (reason !== undefined) t.equal(e.details.reason, reason, `reason ${reason}`)
  for (const [k, v] of Object.entries(extra)) t.same(e.details[k], v, `details.${k}`)
  return e
}

// ---------------------------------------------------------------------------
// (1) The vectors parse, and each verifies against its certificate and issuer.

t.test('the RIM chains in the XML end at the pinned RIM root; the GPU chain at the device root', async (t) => {
  t.equal(hex(driver[3]!.der), hex(rimRoot.der))
  t.equal(hex(vbios[3]!.der), hex(rimRoot.der))
  t.equal(hex(driver[1]!.der), hex(vbios[1]!.der), 'one L3 for both RIMs')
  t.equal(hex(gpu[4]!.der), hex(deviceRoot.der))
})

for (const v of VECTORS) {
  t.test(`${v.name}: parses`, async (t) => {
    const r = parseOcspResponseBase64(text(v))
    t.equal(r.responseStatus, 'successful')
    const b = basicOf(r)
    t.equal(b.responses.length, 1)
    const s = b.responses[0]!
    t.equal(s.certId.serialNumber, v.serial, 'CertID serial')
    t.equal(s.certId.serialNumber, v.cert.serial, 'the certificate it covers')
    t.equal(s.certId.hashAlgorithm, 'sha384')
    t.equal(s.certId.issuerNameHash.length, 48)
    t.equal(s.certId.issuerKeyHash.length, 48)
    t.same(s.certStatus, { kind: 'good' })
    t.equal(new Date(s.thisUpdate).toISOString(), v.thisUpdate)
    t.equal(new Date(s.nextUpdate!).toISOString(), v.nextUpdate)
    t.equal(new Date(b.producedAt).toISOString(), v.producedAt)
    t.equal(b.responderId.kind, 'byKey')
    t.equal(b.signatureAlgorithm, 'ecdsa-sha384')
    t.equal(b.nonce, undefined, 'stapled responses carry no nonce')
    t.equal(b.responseExtensions.size, 0)
    t.equal(b.certs.length, 1, 'the delegated responder certificate')
    t.ok(hasOcspSigningEku(b.certs[0]!))
    // tbsResponseData is a view into the parsed copy, not a re-encoding.
    t.equal(b.tbsResponseData.buffer, r.der.buffer)
    t.equal(hex(r.der), hex(raw(v)))
    t.same(parseOcspResponse(raw(v)).responseStatus, 'successful', 'DER and base64 entry points agree')
  })

  t.test(`${v.name}: verifies (good) at ${v.at.toISOString()}`, async (t) => {
    const r = parseOcspResponseBase64(text(v))
    const ok = verifyOcspResponse(r, { cert: v.cert, issuer: v.issuer, now: v.at })
    t.equal(ok.status, 'good')
    t.equal(ok.thisUpdate.toISOString(), v.thisUpdate)
    t.equal(ok.nextUpdate?.toISOString(), v.nextUpdate)
    t.equal(ok.validUntil.toISOString(), v.nextUpdate)
    t.equal(ok.producedAt.toISOString(), v.producedAt)
    t.equal(ok.responder.kind, 'delegated')
    if (ok.responder.kind === 'delegated') {
      const c = ok.responder.certificate
      t.equal(Buffer.from(c.subject).includes(Buffer.from(v.responder)), true, `responder ${v.responder}`)
      t.equal(delegatedResponderProblem(c, v.issuer, v.at.getTime()), undefined, 'the predicate agrees')
    }

    // The window is closed at both ends: thisUpdate and nextUpdate themselves pass.
    const from = Date.parse(v.thisUpdate)
    const to = Date.parse(v.nextUpdate)
    t.equal(verifyOcspResponse(r, { cert: v.cert, issuer: v.issuer, now: new Date(from) }).status, 'good', 'at thisUpdate')
    t.equal(verifyOcspResponse(r, { cert: v.cert, issuer: v.issuer, now: new Date(to) }).status, 'good', 'at nextUpdate')
    rejects(t, () => verifyOcspResponse(r, { cert: v.cert, issuer: v.issuer, now: new Date(to + 1000) }), 'ATTESTATION_OCSP_INVALID', 'stale')
    rejects(t, () => verifyOcspResponse(r, { cert: v.cert, issuer: v.issuer, now: new Date(from - 1000) }), 'ATTESTATION_OCSP_INVALID', 'not-yet-valid')
    // A tolerated skew, when the caller asks for one, moves both ends.
    t.equal(verifyOcspResponse(r, { cert: v.cert, issuer: v.issuer, now: new Date(to + 1000), clockSkewMs: 5000 }).status, 'good')
    t.equal(verifyOcspResponse(r, { cert: v.cert, issuer: v.issuer, now: new Date(from - 1000), clockSkewMs: 5000 }).status, 'good')
    // maxAgeMs applies only without nextUpdate: it does not shorten a stated window.
    t.equal(verifyOcspResponse(r, { cert: v.cert, issuer: v.issuer, now: v.at, maxAgeMs: 1 }).status, 'good')
  })
}

// ---------------------------------------------------------------------------
// (2) Negative cases on the real vectors.

t.test('a response for another certificate is certid-mismatch', async (t) => {
  const drv = parseOcspResponseBase64(text(vector('test_gpu_driver_rim_l4')))
  // Same issuer and responder, other serial: the VBIOS signer is not the driver signer.
  rejects(t, () => verifyOcspResponse(drv, { cert: vbios[0]!, issuer: vbios[1]!, now: RIM_AT }), 'ATTESTATION_OCSP_INVALID', 'certid-mismatch', {
    serial: vbios[0]!.serial,
    responseSerials: [driver[0]!.serial],
  })
  // The right serial under a wrong issuer: name and key hashes differ.
  const l4 = parseOcspResponseBase64(text(vector('test_gpu_certificate_l4')))
  rejects(t, () => verifyOcspResponse(l4, { cert: gpu[1]!, issuer: gpu[3]!, now: GPU_AT }), 'ATTESTATION_OCSP_INVALID', 'certid-mismatch')
  // A response about the issuer, presented for the certificate below it.
  const l3 = parseOcspResponseBase64(text(vector('test_gpu_certificate_l3')))
  rejects(t, () => verifyOcspResponse(l3, { cert: gpu[1]!, issuer: gpu[2]!, now: GPU_AT }), 'ATTESTATION_OCSP_INVALID', 'certid-mismatch')
  // Every vector against every other vector's certificate and issuer.
  for (const a of VECTORS) {
    const r = parseOcspResponseBase64(text(a))
    for (const b of VECTORS) {
      if (a === b) continue
      rejects(t, () => verifyOcspResponse(r, { cert: b.cert, issuer: b.issuer, now: b.at }), 'ATTESTATION_OCSP_INVALID', 'certid-mismatch')
    }
  }
})

/** Offset of the first occurrence of `needle` in `hay`. */
function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  const i = Buffer.from(hay).indexOf(Buffer.from(needle))
  if (i < 0) throw new Error('not found')
  return i
}

t.test('a flipped bit in tbsResponseData is a signature failure', async (t) => {
  for (const v of VECTORS) {
    const bytes = raw(v)
    const b = basicOf(parseOcspResponse(bytes))
    // producedAt's last seconds digit ('7' or '8'), bit 0: still a valid time, now a different one.
    const at = indexOf(bytes, b.tbsResponseData) + indexOf(b.tbsResponseData, Buffer.from(v.producedAt.slice(0, 4))) + 13
    const m = bytes.slice()
    m[at]! ^= 0x01
    const r = parseOcspResponse(m)
    t.not(basicOf(r).producedAt, b.producedAt, 'producedAt changed')
    rejects(t, () => verifyOcspResponse(r, { cert: v.cert, issuer: v.issuer, now: v.at }), 'ATTESTATION_OCSP_INVALID', 'signature')
  }
})

t.test('a flipped bit in the signature is a signature failure', async (t) => {
  const v = vector('test_gpu_certificate_l4')
  const bytes = raw(v)
  const b = basicOf(parseOcspResponse(bytes))
  const m = bytes.slice()
  m[indexOf(bytes, b.signature) + b.signature.length - 1]! ^= 0x01
  rejects(t, () => verifyOcspResponse(parseOcspResponse(m), { cert: v.cert, issuer: v.issuer, now: v.at }), 'ATTESTATION_OCSP_INVALID', 'signature')
})

t.test('a responder certificate its issuer did not sign is responder-unauthorised', async (t) => {
  for (const v of VECTORS) {
    // The response ends with the responder certificate's signature: flip its last bit.
    const m = raw(v)
    m[m.length - 1]! ^= 0x01
    rejects(t, () => verifyOcspResponse(parseOcspResponse(m), { cert: v.cert, issuer: v.issuer, now: v.at }), 'ATTESTATION_OCSP_INVALID', 'responder-unauthorised', {
      responderProblem: 'not-issued-by-issuer',
    })
  }
})

t.test('every single-bit flip of one tbsResponseData is rejected with a typed code', async (t) => {
  const v = vector('test_gpu_certificate_l4')
  const bytes = raw(v)
  const b = basicOf(parseOcspResponse(bytes))
  const start = indexOf(bytes, b.tbsResponseData)
  const seen = new Map<string, number>()
  let accepted = 0
  for (let i = start; i < start + b.tbsResponseData.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const m = bytes.slice()
      m[i]! ^= 1 << bit
      let key: string
      try {
        verifyOcspResponse(parseOcspResponse(m), { cert: v.cert, issuer: v.issuer, now: v.at })
        accepted++
        key = 'accepted'
      } catch (e) {
        if (e instanceof ParseError && e.code === 'ATTESTATION_OCSP_MALFORMED') key = e.code
        else if (e instanceof VerificationError && e.code === 'ATTESTATION_OCSP_INVALID') key = `${e.code}/${String(e.details.reason)}`
        else throw e
      }
      seen.set(key, (seen.get(key) ?? 0) + 1)
    }
  }
  t.equal(accepted, 0, `no flip verifies (${JSON.stringify(Object.fromEntries(seen))})`)
  t.ok(seen.get('ATTESTATION_OCSP_INVALID/signature'), 'most flips reach the signature check')
})

t.test('after nextUpdate is stale; before thisUpdate is not-yet-valid', async (t) => {
  for (const v of VECTORS) {
    const r = parseOcspResponseBase64(text(v))
    const late = new Date(Date.parse(v.nextUpdate) + 1)
    const e = rejects(t, () => verifyOcspResponse(r, { cert: v.cert, issuer: v.issuer, now: late }), 'ATTESTATION_OCSP_INVALID', 'stale')
    t.equal(e?.details.nextUpdate, v.nextUpdate)
    rejects(t, () => verifyOcspResponse(r, { cert: v.cert, issuer: v.issuer, now: new Date(Date.parse(v.thisUpdate) - 1) }), 'ATTESTATION_OCSP_INVALID', 'not-yet-valid')
  }
})

t.test('a responder certificate that has expired at now is responder-expired', async (t) => {
  // NVIDIA OCSP Responder L1-A 02 (GPU l2) is valid until 2025-09-21T23:59:59Z.
  const v = vector('test_gpu_certificate_l2')
  const r = parseOcspResponseBase64(text(v))
  rejects(t, () => verifyOcspResponse(r, { cert: v.cert, issuer: v.issuer, now: new Date('2025-09-22T00:00:00Z') }), 'ATTESTATION_OCSP_INVALID', 'responder-expired', {
    notAfter: '2025-09-21T23:59:59.000Z',
  })
})

t.test('NVIDIA responder certificates are only good for their own issuer', async (t) => {
  for (const v of VECTORS) {
    const responder = basicOf(parseOcspResponseBase64(text(v))).certs[0]!
    t.equal(delegatedResponderProblem(responder, v.issuer, v.at.getTime()), undefined)
    const other = VECTORS.find((w) => hex(w.issuer.der) !== hex(v.issuer.der))!
    t.equal(delegatedResponderProblem(responder, other.issuer, v.at.getTime()), 'not-issued-by-issuer')
    // CA certificates carry no id-kp-OCSPSigning.
    t.equal(hasOcspSigningEku(v.issuer), false)
  }
})

/** OCSPResponse with an error status: SEQUENCE { ENUMERATED status }. */
const errorResponse = (status: number) => sequence(enumerated(status))

t.test('a non-successful response parses and is rejected by the verifier', async (t) => {
  const names = { 1: 'malformedRequest', 2: 'internalError', 3: 'tryLater', 5: 'sigRequired', 6: 'unauthorized' } as const
  for (const [n, name] of Object.entries(names)) {
    const r = parseOcspResponse(errorResponse(Number(n)))
    t.equal(r.responseStatus, name)
    rejects(t, () => verifyOcspResponse(r, { cert: gpu[1]!, issuer: gpu[2]!, now: GPU_AT }), 'ATTESTATION_OCSP_INVALID', 'not-successful', {
      responseStatus: name,
    })
  }
})

// ---------------------------------------------------------------------------
// (3) A small PKI built here, to reach what the vectors cannot show.

const OID_ECDSA_SHA384 = '1.2.840.10045.4.3.3'
const OID_EKU = '2.5.29.37'
const OID_KU = '2.5.29.15'
const OID_BC = '2.5.29.19'
const OID_ANY_EKU = '2.5.29.37.0'
const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2'
const ALG = sequence(oid(OID_ECDSA_SHA384))
const NULL = tlv(0x05, new Uint8Array(0))
const HASH_OIDS = { sha1: '1.3.14.3.2.26', sha256: '2.16.840.1.101.3.4.2.1', sha384: '2.16.840.1.101.3.4.2.2' } as const

interface Key {
  readonly privateKey: KeyObject
  readonly spki: Uint8Array
}
function newKey(): Key {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' })
  return { privateKey, spki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })) }
}
/** The subjectPublicKey bits of a P-384 SPKI, computed without the code under test: the 97-byte uncompressed point ends it. */
const keyBits = (spki: Uint8Array) => spki.subarray(spki.length - 97)

const cat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts))
const name = (cn: string) => sequence(tlv(0x31, sequence(oid('2.5.4.3'), tlv(0x0c, Buffer.from(cn)))))
const compact = (d: Date) => d.toISOString().replace(/[-:T]/g, '').slice(0, 14)
const utcTime = (d: Date) => tlv(0x17, Buffer.from(`${compact(d).slice(2)}Z`))
const genTime = (d: Date) => tlv(0x18, Buffer.from(`${compact(d)}Z`))
const ext = (id: string, value: Der, critical = false) => sequence(oid(id), ...(critical ? [boolean(true)] : []), octetString(value))
/** keyUsage BIT STRING (RFC 5280 §4.2.1.3): bit 0 is the top bit of the first octet. */
const ku = (bits: number[]) => {
  let v = 0
  for (const b of bits) v |= 0x80 >> b
  const unused = 7 - Math.max(...bits)
  return tlv(0x03, Uint8Array.of(unused, v))
}
const KU_DIGITAL_SIGNATURE = ku([0])
const KU_CA = ku([5, 6])
const eku = (...oids: string[]) => sequence(...oids.map(oid))

let nextSerial = 0x1000n
interface Issued {
  readonly cert: Certificate
  readonly key: Key
}
function issue(opts: { cn: string; signer?: Issued; ca?: boolean; extensions?: Der[]; notBefore?: Date; notAfter?: Date }): Issued {
  const key = newKey()
  const exts = opts.extensions ?? (opts.ca ? [ext(OID_BC, sequence(boolean(true)), true), ext(OID_KU, KU_CA, true)] : [])
  const tbs = sequence(
    tlv(0xa0, integer(2)),
    integer(nextSerial++),
    ALG,
    opts.signer ? opts.signer.cert.subject : name(opts.cn),
    sequence(utcTime(opts.notBefore ?? new Date('2024-01-01T00:00:00Z')), utcTime(opts.notAfter ?? new Date('2034-01-01T00:00:00Z'))),
    name(opts.cn),
    key.spki,
    ...(exts.length ? [tlv(0xa3, sequence(...exts))] : []),
  )
  const sig = sign('sha384', tbs, (opts.signer?.key ?? key).privateKey)
  return { cert: parseCertificate(sequence(tbs, ALG, bitString(sig))), key }
}

const NOW = new Date('2026-03-01T12:00:00Z')
const THIS_UPDATE = new Date('2026-03-01T10:00:00Z')
const NEXT_UPDATE = new Date('2026-03-02T10:00:00Z')

const ca = issue({ cn: 'Test OCSP CA', ca: true })
const otherCa = issue({ cn: 'Other CA', ca: true })
const leaf = issue({ cn: 'Test leaf', signer: ca, extensions: [ext(OID_KU, KU_DIGITAL_SIGNATURE, true)] })
const sibling = issue({ cn: 'Test sibling', signer: ca })
const responderExts = [ext(OID_KU, KU_DIGITAL_SIGNATURE, true), ext(OID_EKU, eku(OID_KP_OCSP_SIGNING), true)]
const responder = issue({ cn: 'Test OCSP responder', signer: ca, extensions: responderExts })
const noEku = issue({ cn: 'Responder without EKU', signer: ca, extensions: [ext(OID_KU, KU_DIGITAL_SIGNATURE, true)] })
const anyEku = issue({ cn: 'Responder with anyEKU', signer: ca, extensions: [ext(OID_EKU, eku(OID_ANY_EKU))] })
const clientEku = issue({ cn: 'Responder with clientAuth', signer: ca, extensions: [ext(OID_EKU, eku(OID_CLIENT_AUTH))] })
const caKu = issue({ cn: 'Responder with CA keyUsage', signer: ca, extensions: [ext(OID_KU, KU_CA, true), ext(OID_EKU, eku(OID_KP_OCSP_SIGNING))] })
const badEku = issue({ cn: 'Responder with broken EKU', signer: ca, extensions: [ext(OID_EKU, octetString(Uint8Array.of(1)))] })
const foreign = issue({ cn: 'Foreign OCSP responder', signer: otherCa, extensions: responderExts })
const expired = issue({ cn: 'Expired OCSP responder', signer: ca, extensions: responderExts, notAfter: new Date('2026-01-01T00:00:00Z') })

type Status = 'good' | 'unknown' | { revokedAt: Date; reason?: number }
interface SingleSpec {
  cert?: Certificate
  issuer?: Certificate
  hash?: keyof typeof HASH_OIDS
  hashOid?: string
  status?: Status
  thisUpdate?: Date
  nextUpdate?: Date | null
  extensions?: Der[]
}
interface ResponseSpec {
  singles?: SingleSpec[]
  /** Who the ResponderID names; default the signer's certificate. */
  responderId?: { byKey: Certificate } | { byName: Certificate }
  signer?: Issued
  /** Sign with this key instead of the signer's. */
  signingKey?: KeyObject
  certs?: Certificate[]
  producedAt?: Date
  extensions?: Der[]
}

/** Build and sign an OCSPResponse (RFC 6960 §4.2.1) from parts; defaults: `leaf` good, signed by `responder`. */
function buildResponse(spec: ResponseSpec = {}): Uint8Array {
  const signer = spec.signer ?? responder
  const single = (s: SingleSpec): Der => {
    const cert = s.cert ?? leaf.cert
    const issuer = s.issuer ?? ca.cert
    const alg = s.hash ?? 'sha384'
    const h = (d: Uint8Array) => createHash(alg).update(d).digest()
    const certId = sequence(
      sequence(oid(s.hashOid ?? HASH_OIDS[alg]), NULL),
      octetString(h(issuer.subject)),
      octetString(h(keyBits(issuer.spki))),
      integer(BigInt(`0x${cert.serial}`)),
    )
    const st = s.status ?? 'good'
    const status =
      st === 'good'
        ? tlv(0x80, new Uint8Array(0))
        : st === 'unknown'
          ? tlv(0x82, new Uint8Array(0))
          : tlv(0xa1, cat(genTime(st.revokedAt), ...(st.reason === undefined ? [] : [tlv(0xa0, enumerated(st.reason))])))
    const next = s.nextUpdate === undefined ? NEXT_UPDATE : s.nextUpdate
    return sequence(
      certId,
      status,
      genTime(s.thisUpdate ?? THIS_UPDATE),
      ...(next ? [tlv(0xa0, genTime(next))] : []),
      ...(s.extensions ? [tlv(0xa1, sequence(...s.extensions))] : []),
    )
  }
  const rid = spec.responderId ?? { byKey: signer.cert }
  const ridDer =
    'byKey' in rid
      ? tlv(0xa2, octetString(createHash('sha1').update(keyBits(rid.byKey.spki)).digest()))
      : tlv(0xa1, rid.byName.subject)
  const tbs = sequence(
    ridDer,
    genTime(spec.producedAt ?? THIS_UPDATE),
    sequence(...(spec.singles ?? [{}]).map(single)),
    ...(spec.extensions ? [tlv(0xa1, sequence(...spec.extensions))] : []),
  )
  const sig = sign('sha384', tbs, spec.signingKey ?? signer.key.privateKey)
  const certs = spec.certs ?? (signer === ca ? [] : [signer.cert])
  const basic = sequence(tbs, ALG, bitString(sig), ...(certs.length ? [tlv(0xa0, sequence(...certs.map((c) => c.der)))] : []))
  return sequence(enumerated(0), tlv(0xa0, sequence(oid(OID_OCSP_BASIC), octetString(basic))))
}

const OPTS: VerifyOcspResponseOptions = { cert: leaf.cert, issuer: ca.cert, now: NOW }
const verifyBuilt = (spec: ResponseSpec = {}, opts: Partial<VerifyOcspResponseOptions> = {}) =>
  verifyOcspResponse(parseOcspResponse(buildResponse(spec)), { ...OPTS, ...opts })

t.test('built PKI: the test helpers agree with the parser', async (t) => {
  t.equal(hex(subjectPublicKeyBits(ca.cert)), hex(keyBits(ca.cert.spki)))
  t.ok(hasOcspSigningEku(responder.cert))
  t.notOk(hasOcspSigningEku(noEku.cert))
})

t.test('built PKI: delegated and issuer-signed responses are good', async (t) => {
  const d = verifyBuilt()
  t.equal(d.status, 'good')
  t.equal(d.responder.kind, 'delegated')
  if (d.responder.kind === 'delegated') t.equal(hex(d.responder.certificate.der), hex(responder.cert.der))
  t.equal(verifyBuilt({ signer: ca }).responder.kind, 'issuer', 'signed by the issuer, identified byKey')
  t.equal(verifyBuilt({ signer: ca, responderId: { byName: ca.cert } }).responder.kind, 'issuer', 'byName')
  t.equal(verifyBuilt({ responderId: { byName: responder.cert } }).responder.kind, 'delegated', 'delegated byName')
  // The issuer's own certificate in `certs` changes nothing.
  t.equal(verifyBuilt({ signer: ca, certs: [ca.cert] }).responder.kind, 'issuer')
  // The responder's certificate among unrelated ones.
  t.equal(verifyBuilt({ certs: [otherCa.cert, noEku.cert, responder.cert] }).status, 'good')
})

t.test('built PKI: CertID under SHA-1, SHA-256 and SHA-384', async (t) => {
  for (const hash of ['sha1', 'sha256', 'sha384'] as const) {
    const r = parseOcspResponse(buildResponse({ singles: [{ hash }] }))
    t.equal(basicOf(r).responses[0]!.certId.hashAlgorithm, hash)
    t.equal(verifyOcspResponse(r, OPTS).status, 'good', hash)
  }
  // A hash we cannot recompute is parsed, kept by OID, and matches nothing.
  const sha512 = '2.16.840.1.101.3.4.2.3'
  const r = parseOcspResponse(buildResponse({ singles: [{ hash: 'sha384', hashOid: sha512 }] }))
  t.equal(basicOf(r).responses[0]!.certId.hashAlgorithm, null)
  t.equal(basicOf(r).responses[0]!.certId.hashAlgorithmOid, sha512)
  rejects(t, () => verifyOcspResponse(r, OPTS), 'ATTESTATION_OCSP_INVALID', 'certid-mismatch')
})

t.test('built PKI: one of several SingleResponses; never two for one certificate', async (t) => {
  t.equal(verifyBuilt({ singles: [{ cert: sibling.cert, status: 'unknown' }, {}] }).status, 'good')
  rejects(t, () => verifyBuilt({ singles: [{}, { status: { revokedAt: THIS_UPDATE } }] }), 'ATTESTATION_OCSP_INVALID', 'certid-ambiguous')
  rejects(t, () => verifyBuilt({ singles: [{ cert: sibling.cert }] }), 'ATTESTATION_OCSP_INVALID', 'certid-mismatch')
  rejects(t, () => verifyBuilt({ singles: [{ issuer: otherCa.cert }] }), 'ATTESTATION_OCSP_INVALID', 'certid-mismatch')
  rejects(t, () => verifyBuilt({ singles: [] }), 'ATTESTATION_OCSP_INVALID', 'certid-mismatch')
})

t.test('built PKI: revoked and unknown', async (t) => {
  const revokedAt = new Date('2026-02-01T00:00:00Z')
  const r = parseOcspResponse(buildResponse({ singles: [{ status: { revokedAt, reason: 1 } }] }))
  t.same(basicOf(r).responses[0]!.certStatus, { kind: 'revoked', revocationTime: revokedAt.getTime(), reason: 'keyCompromise' })
  rejects(t, () => verifyOcspResponse(r, OPTS), 'ATTESTATION_CERT_REVOKED', undefined, {
    serial: leaf.cert.serial,
    revocationTime: revokedAt.toISOString(),
    revocationReason: 'keyCompromise',
  })
  const e = rejects(t, () => verifyBuilt({ singles: [{ status: { revokedAt } }] }), 'ATTESTATION_CERT_REVOKED', undefined, {
    revocationTime: revokedAt.toISOString(),
  })
  t.equal(e?.details.revocationReason, undefined, 'no reason stated')
  rejects(t, () => verifyBuilt({ singles: [{ status: 'unknown' }] }), 'ATTESTATION_OCSP_INVALID', 'status-unknown')
  // A revoked answer from someone not authorised is not believed either: the responder check comes first.
  rejects(t, () => verifyBuilt({ signer: noEku, singles: [{ status: { revokedAt } }] }), 'ATTESTATION_OCSP_INVALID', 'responder-unauthorised')
})

t.test('built PKI: delegated responders the issuer did not authorise', async (t) => {
  rejects(t, () => verifyBuilt({ signer: noEku }), 'ATTESTATION_OCSP_INVALID', 'responder-unauthorised', { responderProblem: 'no-ocsp-signing-eku' })
  rejects(t, () => verifyBuilt({ signer: anyEku }), 'ATTESTATION_OCSP_INVALID', 'responder-unauthorised', { responderProblem: 'no-ocsp-signing-eku' })
  rejects(t, () => verifyBuilt({ signer: clientEku }), 'ATTESTATION_OCSP_INVALID', 'responder-unauthorised', { responderProblem: 'no-ocsp-signing-eku' })
  rejects(t, () => verifyBuilt({ signer: badEku }), 'ATTESTATION_OCSP_INVALID', 'responder-unauthorised', { responderProblem: 'bad-eku' })
  rejects(t, () => verifyBuilt({ signer: caKu }), 'ATTESTATION_OCSP_INVALID', 'responder-unauthorised', { responderProblem: 'key-usage' })
  rejects(t, () => verifyBuilt({ signer: foreign }), 'ATTESTATION_OCSP_INVALID', 'responder-unauthorised', { responderProblem: 'not-issued-by-issuer' })
  // A CA's sibling end-entity certificate, or the certificate itself, may not answer for the CA.
  rejects(t, () => verifyBuilt({ signer: sibling }), 'ATTESTATION_OCSP_INVALID', 'responder-unauthorised', { responderProblem: 'no-ocsp-signing-eku' })
  rejects(t, () => verifyBuilt({ signer: leaf }), 'ATTESTATION_OCSP_INVALID', 'responder-unauthorised', { responderProblem: 'no-ocsp-signing-eku' })
  // Another CA, naming itself and carrying its own certificate, answering for our certificate.
  rejects(t, () => verifyBuilt({ signer: otherCa }), 'ATTESTATION_OCSP_INVALID', 'responder-unauthorised', { responderProblem: 'not-issued-by-issuer' })
  rejects(t, () => verifyBuilt({ signer: otherCa, certs: [] }), 'ATTESTATION_OCSP_INVALID', 'responder-unauthorised', { responderProblem: 'unknown-responder' })
  // The ResponderID names a certificate the response does not carry.
  rejects(t, () => verifyBuilt({ certs: [] }), 'ATTESTATION_OCSP_INVALID', 'responder-unauthorised', { responderProblem: 'unknown-responder' })
  rejects(t, () => verifyBuilt({ responderId: { byKey: noEku.cert } }), 'ATTESTATION_OCSP_INVALID', 'responder-unauthorised', {
    responderProblem: 'unknown-responder',
  })
  rejects(t, () => verifyBuilt({ signer: expired }), 'ATTESTATION_OCSP_INVALID', 'responder-expired')
  // The predicate directly.
  const at = NOW.getTime()
  t.equal(delegatedResponderProblem(responder.cert, ca.cert, at), undefined)
  t.equal(delegatedResponderProblem(noEku.cert, ca.cert, at), 'no-ocsp-signing-eku')
  t.equal(delegatedResponderProblem(foreign.cert, ca.cert, at), 'not-issued-by-issuer')
  t.equal(delegatedResponderProblem(foreign.cert, otherCa.cert, at), undefined)
  t.equal(delegatedResponderProblem(expired.cert, ca.cert, at), 'expired')
  t.equal(delegatedResponderProblem(responder.cert, ca.cert, Date.parse('2023-12-31T23:59:59Z')), 'expired', 'not yet valid')
})

t.test('built PKI: signature by another key than the responder certificate names', async (t) => {
  rejects(t, () => verifyBuilt({ signingKey: noEku.key.privateKey }), 'ATTESTATION_OCSP_INVALID', 'signature')
  rejects(t, () => verifyBuilt({ signer: ca, signingKey: responder.key.privateKey }), 'ATTESTATION_OCSP_INVALID', 'signature')
})

t.test('built PKI: time window', async (t) => {
  rejects(t, () => verifyBuilt({}, { now: new Date(NEXT_UPDATE.getTime() + 1000) }), 'ATTESTATION_OCSP_INVALID', 'stale')
  rejects(t, () => verifyBuilt({ producedAt: new Date(NOW.getTime() + 1000) }), 'ATTESTATION_OCSP_INVALID', 'not-yet-valid')
  rejects(t, () => verifyBuilt({ singles: [{ thisUpdate: new Date(NOW.getTime() + 1000) }] }), 'ATTESTATION_OCSP_INVALID', 'not-yet-valid')
  t.equal(verifyBuilt({ singles: [{ thisUpdate: new Date(NOW.getTime() + 1000) }] }, { clockSkewMs: 1000 }).status, 'good')
  // Without nextUpdate: fail closed unless the caller gives a maximum age.
  const noNext = { singles: [{ nextUpdate: null }] }
  const r = parseOcspResponse(buildResponse(noNext))
  t.equal(basicOf(r).responses[0]!.nextUpdate, undefined)
  rejects(t, () => verifyOcspResponse(r, OPTS), 'ATTESTATION_OCSP_INVALID', 'no-next-update')
  const ok = verifyOcspResponse(r, { ...OPTS, maxAgeMs: 3 * HOUR })
  t.equal(ok.nextUpdate, undefined)
  t.equal(ok.validUntil.toISOString(), new Date(THIS_UPDATE.getTime() + 3 * HOUR).toISOString())
  rejects(t, () => verifyOcspResponse(r, { ...OPTS, maxAgeMs: HOUR }), 'ATTESTATION_OCSP_INVALID', 'stale')
})

t.test('built PKI: extensions and nonce', async (t) => {
  const nonce = Uint8Array.from({ length: 16 }, (_, i) => i + 1)
  const withNonce = { extensions: [ext(OID_OCSP_NONCE, octetString(nonce))] }
  const r = parseOcspResponse(buildResponse(withNonce))
  t.equal(hex(basicOf(r).nonce!), hex(nonce))
  t.equal(verifyOcspResponse(r, { ...OPTS, nonce }).status, 'good')
  t.equal(verifyOcspResponse(r, OPTS).status, 'good', 'a nonce nobody asked for is harmless')
  rejects(t, () => verifyOcspResponse(r, { ...OPTS, nonce: nonce.slice(1) }), 'ATTESTATION_OCSP_INVALID', 'nonce-mismatch')
  rejects(t, () => verifyBuilt({}, { nonce }), 'ATTESTATION_OCSP_INVALID', 'nonce-mismatch')
  // An unknown extension: ignored unless critical, in ResponseData or in a SingleResponse.
  const unknown = '1.3.6.1.4.1.99999.1'
  t.equal(verifyBuilt({ extensions: [ext(unknown, NULL)] }).status, 'good')
  rejects(t, () => verifyBuilt({ extensions: [ext(unknown, NULL, true)] }), 'ATTESTATION_OCSP_INVALID', 'critical-extension', { oid: unknown })
  rejects(t, () => verifyBuilt({ singles: [{ extensions: [ext(unknown, NULL, true)] }] }), 'ATTESTATION_OCSP_INVALID', 'critical-extension')
  // Malformed nonces and repeated extensions are parse errors.
  t.throws(() => parseOcspResponse(buildResponse({ extensions: [ext(OID_OCSP_NONCE, nonce)] })), { code: 'ATTESTATION_OCSP_MALFORMED' })
  t.throws(() => parseOcspResponse(buildResponse({ extensions: [ext(unknown, NULL), ext(unknown, NULL)] })), { code: 'ATTESTATION_OCSP_MALFORMED' })
})

t.test('bad options are ConfigErrors', async (t) => {
  const r = parseOcspResponse(buildResponse())
  for (const o of [{ now: new Date(Number.NaN) }, { maxAgeMs: -1 }, { maxAgeMs: 0 }, { clockSkewMs: -1 }, { clockSkewMs: Number.POSITIVE_INFINITY }]) {
    t.equal(caught(() => verifyOcspResponse(r, { ...OPTS, ...o })).code, 'ATTESTATION_OPTIONS_INVALID', JSON.stringify(o))
  }
})

// ---------------------------------------------------------------------------
// (4) The parser: hand-made malformations, then properties.

t.test('malformed responses are ATTESTATION_OCSP_MALFORMED', async (t) => {
  const good = buildResponse()
  const basicWith = (tbsFields: Der[]) => {
    const tbs = sequence(...tbsFields)
    const basic = sequence(tbs, ALG, bitString(Uint8Array.of(0x30, 0x00)))
    return sequence(enumerated(0), tlv(0xa0, sequence(oid(OID_OCSP_BASIC), octetString(basic))))
  }
  const rid = tlv(0xa2, octetString(new Uint8Array(20)))
  const hashes = [octetString(new Uint8Array(20)), octetString(new Uint8Array(20)), integer(1)]
  const certId = (alg: Der = sequence(oid(HASH_OIDS.sha1))) => sequence(alg, ...hashes)
  const single = (id: Der, status: Der) => sequence(id, status, genTime(THIS_UPDATE))
  const singleGood = single(certId(), tlv(0x80, new Uint8Array(0)))
  t.ok(parseOcspResponse(basicWith([rid, genTime(NOW), sequence(singleGood)])), 'the minimal form parses')
  const cases: Record<string, Uint8Array> = {
    'empty input': new Uint8Array(0),
    'status 4 (not used)': errorResponse(4),
    'status 7': errorResponse(7),
    'status as INTEGER': sequence(integer(0)),
    'error status with responseBytes': sequence(enumerated(3), tlv(0xa0, sequence(oid(OID_OCSP_BASIC), octetString(NULL)))),
    'successful without responseBytes': errorResponse(0),
    'unknown responseType': sequence(enumerated(0), tlv(0xa0, sequence(oid('1.3.6.1.5.5.7.48.1.9'), octetString(NULL)))),
    'trailing byte': cat(good, Uint8Array.of(0)),
    'version field present (v1)': basicWith([tlv(0xa0, integer(0)), rid, genTime(NOW), sequence(singleGood)]),
    'UTCTime producedAt': basicWith([rid, utcTime(NOW), sequence(singleGood)]),
    'responderID untagged': basicWith([octetString(new Uint8Array(20)), genTime(NOW), sequence(singleGood)]),
    'byKey not an OCTET STRING': basicWith([tlv(0xa2, NULL), genTime(NOW), sequence(singleGood)]),
    'byName not a Name': basicWith([tlv(0xa1, NULL), genTime(NOW), sequence(singleGood)]),
    'responses missing': basicWith([rid, genTime(NOW)]),
    'status good with content': basicWith([rid, genTime(NOW), sequence(single(certId(), tlv(0x80, Uint8Array.of(0))))]),
    'status revoked without a time': basicWith([rid, genTime(NOW), sequence(single(certId(), tlv(0xa1, new Uint8Array(0))))]),
    'status with an unknown tag': basicWith([rid, genTime(NOW), sequence(single(certId(), tlv(0x83, new Uint8Array(0))))]),
    'CRLReason 7': buildResponse({ singles: [{ status: { revokedAt: THIS_UPDATE, reason: 7 } }] }),
    'CRLReason 11': buildResponse({ singles: [{ status: { revokedAt: THIS_UPDATE, reason: 11 } }] }),
    'CertID hash parameters not NULL': basicWith([rid, genTime(NOW), sequence(single(certId(sequence(oid(HASH_OIDS.sha1), integer(0))), tlv(0x80, new Uint8Array(0))))]),
    'CertID with three elements': basicWith([rid, genTime(NOW), sequence(single(sequence(sequence(oid(HASH_OIDS.sha1)), ...hashes.slice(1)), tlv(0x80, new Uint8Array(0))))]),
    'unexpected field in ResponseData': basicWith([rid, genTime(NOW), sequence(singleGood), NULL]),
  }
  for (const [what, bytes] of Object.entries(cases)) {
    const e = caught(() => parseOcspResponse(bytes))
    t.equal(e.code, 'ATTESTATION_OCSP_MALFORMED', what)
    t.ok(e instanceof ParseError, `${what}: a ParseError`)
  }
  // An embedded certificate that does not parse: the certificate error is the cause.
  const v = vector('test_gpu_certificate_l4')
  const bytes = raw(v)
  const cert = basicOf(parseOcspResponse(bytes)).certs[0]!
  const m = bytes.slice()
  // Turn the certificate's version [0] { INTEGER 2 } into v2 (1): only v3 is accepted.
  const at = indexOf(bytes, cert.der) + indexOf(cert.der, Uint8Array.of(0xa0, 0x03, 0x02, 0x01, 0x02)) + 4
  m[at] = 1
  const e = caught(() => parseOcspResponse(m))
  t.equal(e.code, 'ATTESTATION_OCSP_MALFORMED')
  t.equal((e.cause as BaseError).code, 'ATTESTATION_CERT_INVALID')
})

t.test('base64 entry point', async (t) => {
  const v = vector('test_gpu_certificate_l3')
  const wrapped = text(v).replace(/(.{64})/g, '$1\n')
  t.equal(hex(parseOcspResponseBase64(wrapped).der), hex(raw(v)), 'line-wrapped base64')
  for (const bad of ['', '   ', 'not base64!', `${text(v)}=`, text(v).slice(1), 'QUJD']) {
    t.equal(caught(() => parseOcspResponseBase64(bad)).code, 'ATTESTATION_OCSP_MALFORMED', JSON.stringify(bad.slice(0, 12)))
  }
})

/** Parse; fail unless it returns or throws a ParseError(ATTESTATION_OCSP_MALFORMED) whose cause, if any, is a ParseError. */
function parsesOrMalformed(bytes: Uint8Array): OcspResponse | ParseError {
  try {
    return parseOcspResponse(bytes)
  } catch (e) {
    if (!(e instanceof ParseError) || e.code !== 'ATTESTATION_OCSP_MALFORMED') throw new Error(`not OCSP_MALFORMED: ${String(e)}`, { cause: e })
    if (e.cause !== undefined && !(e.cause instanceof ParseError)) throw new Error(`wraps a non-ParseError: ${String(e.cause)}`, { cause: e })
    return e
  }
}

function check<T>(t: Test, what: string, arb: fc.Arbitrary<T>, pred: (v: T) => void, numRuns: number): void {
  t.doesNotThrow(() => fc.assert(fc.property(arb, pred), { seed: SEED, numRuns }), what)
}

t.test('property: random and mutated bytes give a response or a ParseError, never anything else', async (t) => {
  const raws = VECTORS.map(raw)
  check(t, 'uniform random bytes', fc.uint8Array({ maxLength: 1200 }), (b) => void parsesOrMalformed(b), 2000)
  // Random bytes behind a plausible OCSPResponse header, so parsing gets past the first TLV.
  const framed = fc.uint8Array({ maxLength: 600 }).map((b) => sequence(enumerated(0), tlv(0xa0, sequence(oid(OID_OCSP_BASIC), octetString(b)))))
  check(t, 'random BasicOCSPResponse bodies', framed, (b) => void parsesOrMalformed(b), 2000)
  // A real response's prefix followed by random bytes.
  const realPrefix = fc.record({ k: fc.nat({ max: raws.length - 1 }), cut: fc.nat(), tail: fc.uint8Array({ maxLength: 1100 }) }).map(({ k, cut, tail }) => {
    const r = raws[k]!
    const n = cut % (r.length + 1)
    const out = r.slice()
    out.set(tail.subarray(0, r.length - n), n)
    return out
  })
  check(t, 'real prefix, random rest', realPrefix, (b) => void parsesOrMalformed(b), 2000)
  check(t, 'random base64 text', fc.string({ maxLength: 200 }), (s) => {
    try {
      parseOcspResponseBase64(s)
    } catch (e) {
      if (!(e instanceof ParseError) || e.code !== 'ATTESTATION_OCSP_MALFORMED') throw e
    }
  }, 1000)
})

t.test('every truncation of every vector is malformed', async (t) => {
  for (const v of VECTORS) {
    const r = raw(v)
    const bad: number[] = []
    for (let n = 0; n < r.length; n++) {
      const out = parsesOrMalformed(r.slice(0, n))
      if (!(out instanceof ParseError)) bad.push(n)
    }
    t.same(bad, [], `${v.name}: no truncation parses`)
  }
})

t.test('property: a mutated vector never verifies', async (t) => {
  const arb = fc.record({
    k: fc.nat({ max: VECTORS.length - 1 }),
    edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 3 }),
  })
  check(t, 'one to three bytes changed', arb, ({ k, edits }) => {
    const v = VECTORS[k]!
    const m = raw(v)
    for (const [at, x] of edits) m[at % m.length]! ^= x
    if (hex(m) === hex(raw(v))) return // edits that cancel out
    const r = parsesOrMalformed(m)
    if (r instanceof ParseError) return
    try {
      verifyOcspResponse(r, { cert: v.cert, issuer: v.issuer, now: v.at })
    } catch (e) {
      if (e instanceof VerificationError && e.code === 'ATTESTATION_OCSP_INVALID') return
      throw e
    }
    throw new Error(`mutated ${v.name} verified`)
  }, 400)
})
