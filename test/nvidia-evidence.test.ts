/**
 * NVIDIA H100 SPDM evidence: the real Hopper sample (test/vectors/nvidia/
 * hopper-sample, provenance in test/vectors/README.md) parses, its signature,
 * device chain and FWID verify, and every corruption is rejected with a
 * registered code (asserted by code, never by message).
 *
 * The sample's instant: no time is recorded in the report itself, and all
 * five certificates are valid from 2022-03-01T00:00:00Z (the latest
 * notBefore, "NVIDIA GH100 Provisioner ICA 1") to 9999-12-31T23:59:59Z (every
 * notAfter). The sample's OCSP responses for the chain were produced on
 * 2025-08-21 (thisUpdate 06:47:07Z/06:47:08Z, nextUpdate one day later), so
 * 2025-08-21T12:00:00Z is used: inside every certificate and every OCSP
 * window, the instant an integrator checking both should use too.
 *
 * Chains for the FWID and key-usage cases are built here under a dev root
 * (node:crypto keys, DER from attestation/dev/der-encode.ts) and the sample
 * report is re-signed with their leaf key: the only way to reach the checks
 * that come after the signature with a signature that verifies.
 */
import t from 'tap'
import fc from 'fast-check'
import { readFileSync, readdirSync } from 'node:fs'
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { ParseError, errorFamily, isAttestationError, type BaseError, type ErrorCode } from '../attestation/errors.ts'
import { derToPem, pemToDer } from '../attestation/asn1/pem.ts'
import { parseCertificate, type Certificate } from '../attestation/pki/x509.ts'
import { trustedRootFromDer } from '../attestation/roots/trust-root.ts'
import { bitString, boolean, integer, octetString, oid, sequence, tlv } from '../attestation/dev/der-encode.ts'
import {
  NVIDIA_DEVICE_IDENTITY_CA,
  NVIDIA_DEVICE_IDENTITY_CA_FINGERPRINT,
  NVIDIA_RIM_ROOT_CA,
  NVIDIA_RIM_ROOT_CA_FINGERPRINT,
  OID_NVIDIA_DICE_TCB_INFO_ALT,
  OID_TCG_DICE_TCB_INFO,
  OPAQUE_FIELD,
  certificateFwid,
  diceIdentityOf,
  formatVbiosVersion,
  parseDiceExtension,
  parseGpuReport,
  parseGpuReportHex,
  verifyGpuReport,
  type GpuReport,
} from '../attestation/nvidia/index.ts'
import { VECTORS_DIR } from './helpers/vectors.ts'

const DIR = `${VECTORS_DIR}nvidia/hopper-sample/`
const REPORT_TEXT = readFileSync(`${DIR}hopperAttestationReport.txt`, 'utf8')
const CHAIN_PEM = readFileSync(`${DIR}hopperCertChain.txt`, 'utf8')
const REPORT_BYTES = new Uint8Array(Buffer.from(REPORT_TEXT.trim(), 'hex'))
const CHAIN_DER = pemToDer(CHAIN_PEM)
const CHAIN = CHAIN_DER.map(parseCertificate)
const AT = new Date('2025-08-21T12:00:00Z')
const SAMPLE_NONCE = '931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb'
const SAMPLE_FWID = 'f5c384aebb579217a2c66b17ed0f28e6a9b8d639041acd7b4721cec004f7275494ba94bb5cdfdb3055ee051762b1f75d'
const OID_SHA384 = '2.16.840.1.101.3.4.2.2'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))
const nonceOf = (r: GpuReport): Uint8Array => r.request.nonce.slice()

type Outcome = { readonly kind: 'accepted' } | { readonly kind: 'error'; readonly code: ErrorCode } | { readonly kind: 'bug'; readonly what: string }

/** Run `f` and classify: accepted, a registered attestation error, or anything else (a bug). */
function outcome(f: () => unknown): Outcome {
  try {
    f()
    return { kind: 'accepted' }
  } catch (e) {
    if (isAttestationError(e)) return { kind: 'error', code: e.code }
    return { kind: 'bug', what: e instanceof Error ? `${e.name}: ${e.message}` : String(e) }
  }
}

function codeOf(f: () => unknown): string {
  const o = outcome(f)
  return o.kind === 'error' ? o.code : o.kind === 'bug' ? `bug: ${o.what}` : 'accepted'
}

function thrown(f: () => unknown): unknown {
  try {
    f()
  } catch (e) {
    return e
  }
  return undefined
}

function verifySample(bytes: Uint8Array, chain: readonly Certificate[] = CHAIN, now: Date = AT) {
  return verifyGpuReport(parseGpuReport(bytes), chain, { now, expectedNonce: fromHex(SAMPLE_NONCE) })
}

// ---------------------------------------------------------------------------
// A tiny certificate builder for dev chains (test only).

const OID_ECDSA_SHA384 = '1.2.840.10045.4.3.3'
const utcTime = (s: string) => tlv(0x17, Buffer.from(s, 'ascii'))
const commonNameOnly = (cn: string) => sequence(tlv(0x31, sequence(oid('2.5.4.3'), tlv(0x0c, Buffer.from(cn, 'utf8')))))
const extension = (id: string, critical: boolean, value: Uint8Array) =>
  sequence(oid(id), ...(critical ? [boolean(true)] : []), octetString(value))
/** keyUsage as a DER BIT STRING: `unused` trailing zero bits of the one content octet. */
const keyUsage = (octet: number, unused: number) => extension('2.5.29.15', true, tlv(0x03, Uint8Array.of(unused, octet)))
const CA_FLAGS = [extension('2.5.29.19', true, sequence(boolean(true))), keyUsage(0x06, 1)]
const riotExtension = (deviceIdSpki: Uint8Array, fwid: Uint8Array) =>
  extension(OID_TCG_DICE_TCB_INFO, false, sequence(integer(1), deviceIdSpki, sequence(oid(OID_SHA384), octetString(fwid))))

interface DevKey {
  readonly privateKey: KeyObject
  readonly spki: Uint8Array
}

function devKey(curve: 'P-384' | 'P-256' = 'P-384'): DevKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve })
  return { privateKey, spki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })) }
}

let serial = 1
function issue(subject: Uint8Array, issuer: Uint8Array, key: DevKey, signer: DevKey, extensions: Uint8Array[]): Uint8Array {
  const alg = sequence(oid(OID_ECDSA_SHA384))
  const tbs = sequence(
    tlv(0xa0, integer(2)),
    integer(serial++),
    alg,
    issuer,
    sequence(utcTime('200101000000Z'), utcTime('491231235959Z')),
    subject,
    key.spki,
    tlv(0xa3, sequence(...extensions)),
  )
  return sequence(tbs, alg, bitString(sign('sha384', tbs, signer.privateKey)))
}

/** A dev root and one leaf under it, with the leaf extensions given. */
function devChain(leafExtensions: (leafKey: DevKey, rootKey: DevKey) => Uint8Array[]) {
  const rootKey = devKey()
  const leafKey = devKey()
  const rootName = commonNameOnly('DEV GPU Device Identity CA')
  const rootDer = issue(rootName, rootName, rootKey, rootKey, CA_FLAGS)
  const leafDer = issue(commonNameOnly('DEV GPU FMC LF'), rootName, leafKey, rootKey, leafExtensions(leafKey, rootKey))
  return {
    root: trustedRootFromDer('dev', rootDer),
    chain: [parseCertificate(leafDer), parseCertificate(rootDer)],
    leafKey,
  }
}

/** Replace the signature of a report with one by `key` over its signed bytes. */
function resign(bytes: Uint8Array, key: DevKey): Uint8Array {
  const signed = parseGpuReport(bytes).signedBytes
  const sig = sign('sha384', signed, { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
  return new Uint8Array(Buffer.concat([signed, sig]))
}

/** Offset of a view inside the report it was parsed from. */
const at = (r: GpuReport, view: Uint8Array) => view.byteOffset - r.raw.byteOffset

function withByte(bytes: Uint8Array, offset: number, value: number): Uint8Array {
  const out = bytes.slice()
  out[offset] = value
  return out
}

// ---------------------------------------------------------------------------

t.test('pinned NVIDIA roots', async (t) => {
  const deviceRootDer = pemToDer(readFileSync(`${DIR}verifier_device_root.pem`, 'utf8'))
  const rimRootDer = pemToDer(readFileSync(`${DIR}verifier_RIM_root.pem`, 'utf8'))
  t.equal(deviceRootDer.length, 1)
  t.equal(rimRootDer.length, 1)
  t.equal(hex(NVIDIA_DEVICE_IDENTITY_CA.certificate.der), hex(deviceRootDer[0]!), 'device root is the vector, byte for byte')
  t.equal(hex(NVIDIA_RIM_ROOT_CA.certificate.der), hex(rimRootDer[0]!), 'RIM root is the vector, byte for byte')
  t.equal(NVIDIA_DEVICE_IDENTITY_CA.fingerprint, NVIDIA_DEVICE_IDENTITY_CA_FINGERPRINT)
  t.equal(createHash('sha256').update(deviceRootDer[0]!).digest('hex'), NVIDIA_DEVICE_IDENTITY_CA_FINGERPRINT)
  t.equal(createHash('sha256').update(rimRootDer[0]!).digest('hex'), NVIDIA_RIM_ROOT_CA_FINGERPRINT)
  t.equal(NVIDIA_DEVICE_IDENTITY_CA.kind, 'nvidia-device')
  t.equal(NVIDIA_RIM_ROOT_CA.kind, 'nvidia-rim')
  t.equal(hex(CHAIN[4]!.der), hex(deviceRootDer[0]!), 'the sample chain carries the pinned root as its fifth certificate')
  t.equal(
    codeOf(() => trustedRootFromDer('nvidia-device', deviceRootDer[0]!, NVIDIA_RIM_ROOT_CA_FINGERPRINT)),
    'ATTESTATION_OPTIONS_INVALID',
    'a root with another fingerprint is refused',
  )
})

t.test('the Hopper sample parses', async (t) => {
  const r = parseGpuReportHex(REPORT_TEXT)
  t.equal(r.raw.length, 4117)

  // GET_MEASUREMENTS: SPDM 1.1, signature requested, all measurements, slot 0.
  t.match(r.request, { version: 0x11, code: 0xe0, param1: 0x01, param2: 0xff, slotIdParam: 0, slotId: 0 })
  t.equal(r.request.raw.length, 37)
  t.equal(hex(r.request.nonce), SAMPLE_NONCE)

  // MEASUREMENTS: 64 DMTF blocks, indices 1..64, each a 48-byte SHA-384 digest of mutable firmware.
  const res = r.response
  t.match(res, { version: 0x11, code: 0x60, param1: 0, param2: 0, numberOfBlocks: 64 })
  t.equal(res.measurementRecord.length, 3520)
  t.same(
    res.blocks.map((b) => b.index),
    Array.from({ length: 64 }, (_, i) => i + 1),
  )
  for (const b of res.blocks) {
    if (b.measurementSpecification !== 1 || b.dmtfValueType !== 1 || b.dmtfType !== 1 || b.representation !== 'digest' || b.value.length !== 48) {
      t.fail(`block ${b.index} is not a DMTF mutable-firmware SHA-384 digest`)
    }
  }
  t.equal(res.blocksByIndex.size, 64)
  t.equal(res.blocksByIndex.get(1)!.value.every((x) => x === 0), true, 'block 1 is all zero in the sample')
  t.equal(hex(res.blocksByIndex.get(2)!.value).slice(0, 16), '8048dfd18fe229bf')
  t.equal(hex(res.nonce), 'b4b8a06aaaa35542839388e159d447a5d6f6194998fd86513e2d591ccf640985')
  t.equal(res.signature.length, 96)

  // Opaque data: which TLVs this Hopper firmware sends, in order.
  const o = res.opaque
  t.equal(o.raw.length, 422)
  t.same([...o.fields.keys()], [6, 14, 15, 16, 17, 18, 19, 3, 4, 12, 13, 11, 20, 21])
  t.equal(o.driverVersion, '550.90.07')
  t.equal(o.vbiosVersion, '96.00.9F.00.01')
  t.equal(hex(o.fields.get(OPAQUE_FIELD.VBIOS_VERSION)!.value), '009f009601000000', 'VBIOS field as sent')
  t.equal(o.project, '1010')
  t.equal(o.projectSku, '0200')
  t.equal(o.projectSkuMod, '')
  t.equal(o.chipSku, '882')
  t.equal(o.chipSkuMod, '0')
  t.equal(o.chipInfo, undefined, 'chip info arrives with Blackwell-era firmware')
  t.equal(o.featureFlag, undefined, 'no feature flag (SPT/MPT/PPCIE) in this Hopper report')
  t.equal(o.opaqueDataVersion, undefined)
  t.equal(hex(o.fwid!), SAMPLE_FWID)
  t.equal(o.nvdecStatus, 0x55, 'NVDEC0 disabled')
  t.equal(o.protectedPcieStatus, 0x55)
  t.equal(o.measurementCounts!.length, 64, 'one u32 count per measurement index')
  t.same(o.measurementCounts!.slice(0, 4), [0, 1, 4, 1])

  // The RIMs for this report are named after its versions (the RIM service's IDs).
  const rims = readdirSync(`${DIR}rims-matching`).sort()
  t.same(rims, [
    `NV_GPU_DRIVER_GH100_${o.driverVersion}.xml`,
    `NV_GPU_VBIOS_${o.project}_${o.projectSku}_${o.chipSku}_${o.vbiosVersion!.replace(/\./g, '')}.xml`,
  ])
  const vbiosRim = readFileSync(`${DIR}rims-matching/${rims[1]}`, 'utf8')
  t.match(vbiosRim, `colloquialVersion="${o.vbiosVersion}"`, 'the VBIOS RIM states the version in the same form')

  // Views, not copies; signed bytes are everything but the last 96.
  t.equal(r.signedBytes.buffer, r.raw.buffer)
  t.equal(r.signedBytes.byteOffset, r.raw.byteOffset)
  t.equal(r.signedBytes.length, r.raw.length - 96)
  t.equal(hex(r.signature), hex(r.raw.subarray(r.raw.length - 96)))
  t.equal(r.response.nonce.buffer, r.raw.buffer)
  t.equal(o.fwid!.buffer, r.raw.buffer)
  t.equal(hex(r.signedBytes.subarray(0, 37)), hex(r.request.raw))
  t.equal(at(r, r.response.raw), 37)
})

t.test('VBIOS version formatting', async (t) => {
  t.equal(formatVbiosVersion(fromHex('009f009601000000')), '96.00.9F.00.01')
  t.equal(formatVbiosVersion(fromHex('0102030405ffffff')), '04.03.02.01.05', 'bytes 5-7 are not part of the version')
  t.throws(() => formatVbiosVersion(new Uint8Array(7)), RangeError)
})

t.test('the leaf certificate carries a RIoT composite identity under the DICE TcbInfo OID', async (t) => {
  const leaf = CHAIN[0]!
  t.ok(leaf.extensions.has(OID_TCG_DICE_TCB_INFO))
  t.notOk(leaf.extensions.has(OID_NVIDIA_DICE_TCB_INFO_ALT))
  const id = diceIdentityOf(leaf)!
  t.equal(id.kind, 'riot-composite')
  if (id.kind !== 'riot-composite') return
  t.equal(id.oid, '2.23.133.5.4.1')
  t.equal(id.version, 1)
  t.equal(hex(id.deviceIdSpki), hex(CHAIN[1]!.spki), 'deviceId is the issuing GSP BROM key')
  t.equal(id.fwids.length, 1)
  t.equal(id.fwids[0].hashAlg, OID_SHA384)
  t.equal(hex(id.fwids[0].digest), SAMPLE_FWID)
  t.equal(hex(certificateFwid(leaf)!.digest), SAMPLE_FWID)
  for (const c of CHAIN.slice(1)) t.equal(diceIdentityOf(c), undefined, 'only the leaf carries an FWID')
})

t.test('DiceTcbInfo (the Blackwell layout) and malformed DICE extensions', async (t) => {
  const fwid1 = new Uint8Array(48).fill(0xab)
  const fwid2 = new Uint8Array(32).fill(0xcd)
  const fwidSeq = (h: string, d: Uint8Array) => sequence(oid(h), octetString(d))
  const tcb = sequence(
    tlv(0x80, Buffer.from('NVIDIA')),
    tlv(0x81, Buffer.from('GB100')),
    tlv(0x82, Buffer.from('1.0')),
    tlv(0x83, Uint8Array.of(3)),
    tlv(0x84, Uint8Array.of(1)),
    tlv(0xa6, Buffer.concat([fwidSeq(OID_SHA384, fwid1), fwidSeq('2.16.840.1.101.3.4.2.1', fwid2)])),
    tlv(0x87, Uint8Array.of(0, 0x80)),
    tlv(0x88, Uint8Array.of(1, 2)),
    tlv(0x89, Uint8Array.of(9)),
  )
  const id = parseDiceExtension(tcb)
  t.equal(id.kind, 'tcb-info')
  if (id.kind !== 'tcb-info') return
  t.match(id, { vendor: 'NVIDIA', model: 'GB100', version: '1.0', svn: 3, layer: 1 })
  t.equal(id.index, undefined)
  t.equal(id.fwids.length, 2)
  t.equal(hex(id.fwids[0]!.digest), hex(fwid1))
  t.equal(id.fwids[1]!.hashAlg, '2.16.840.1.101.3.4.2.1')
  t.equal(hex(id.flags!), '80')
  t.equal(hex(id.vendorInfo!), '0102')
  t.equal(hex(id.type!), '09')
  t.same(parseDiceExtension(sequence()), { kind: 'tcb-info', oid: OID_TCG_DICE_TCB_INFO, fwids: [] }, 'every field is optional')

  const bad: Record<string, Uint8Array> = {
    'fields out of order': sequence(tlv(0x81, Buffer.from('a')), tlv(0x80, Buffer.from('b'))),
    'field repeated': sequence(tlv(0x80, Buffer.from('a')), tlv(0x80, Buffer.from('b'))),
    'fwids primitive': sequence(tlv(0x86, Uint8Array.of(0))),
    'vendor constructed': sequence(tlv(0xa0, sequence())),
    'empty FWID list': sequence(tlv(0xa6, new Uint8Array(0))),
    'FWID without digest': sequence(tlv(0xa6, sequence(oid(OID_SHA384)))),
    'FWID with empty digest': sequence(tlv(0xa6, fwidSeq(OID_SHA384, new Uint8Array(0)))),
    'unknown field [11]': sequence(tlv(0x8b, Uint8Array.of(0))),
    'universal field': sequence(octetString(Uint8Array.of(0))),
    'vendor not UTF-8': sequence(tlv(0x80, Uint8Array.of(0xff))),
    'trailing bytes': Buffer.concat([sequence(), Uint8Array.of(0)]),
    'not a SEQUENCE': octetString(Uint8Array.of(0)),
    'RIoT version 2': sequence(integer(2), CHAIN[1]!.spki, fwidSeq(OID_SHA384, fwid1)),
    'RIoT without FWID': sequence(integer(1), CHAIN[1]!.spki),
    'RIoT with extra element': sequence(integer(1), CHAIN[1]!.spki, fwidSeq(OID_SHA384, fwid1), integer(0)),
    'RIoT deviceId not a SEQUENCE': sequence(integer(1), octetString(fwid1), fwidSeq(OID_SHA384, fwid1)),
    truncated: tcb.subarray(0, tcb.length - 1),
  }
  for (const [name, value] of Object.entries(bad)) t.equal(codeOf(() => parseDiceExtension(value)), 'ATTESTATION_CERT_INVALID', name)

  // Both OIDs on one certificate would be two readings of one identity.
  const leaf = CHAIN[0]!
  const both: Certificate = {
    ...leaf,
    extensions: new Map([...leaf.extensions, [OID_NVIDIA_DICE_TCB_INFO_ALT, leaf.extensions.get(OID_TCG_DICE_TCB_INFO)!]]),
  }
  t.equal(codeOf(() => diceIdentityOf(both)), 'ATTESTATION_CERT_INVALID')
  const altOnly: Certificate = {
    ...leaf,
    extensions: new Map([[OID_NVIDIA_DICE_TCB_INFO_ALT, leaf.extensions.get(OID_TCG_DICE_TCB_INFO)!]]),
  }
  t.equal(hex(certificateFwid(altOnly)!.digest), SAMPLE_FWID, 'the alternative OID NVIDIA tools accept is read the same way')
})

t.test('the Hopper sample verifies at the sample instant', async (t) => {
  const r = parseGpuReportHex(REPORT_TEXT)
  const v = verifyGpuReport(r, CHAIN, { now: AT, expectedNonce: fromHex(SAMPLE_NONCE) })
  t.equal(v.leaf, CHAIN[0])
  t.equal(v.chain.length, 4, 'the carried root is dropped')
  t.same(
    v.chain.map((c) => c.serial),
    CHAIN.slice(0, 4).map((c) => c.serial),
  )
  t.equal(hex(v.fwid), SAMPLE_FWID)

  t.equal(verifyGpuReport(r, CHAIN.slice(0, 4), { now: AT, expectedNonce: nonceOf(r) }).chain.length, 4, 'the root need not be carried')
  t.equal(
    verifyGpuReport(r, CHAIN, { now: AT, expectedNonce: nonceOf(r), root: NVIDIA_DEVICE_IDENTITY_CA }).chain.length,
    4,
    'the pinned root named explicitly',
  )

  // Validity window of the whole chain: [2022-03-01T00:00:00Z, 9999-12-31T23:59:59Z].
  const notBefore = Math.max(...CHAIN.map((c) => c.notBefore))
  const notAfter = Math.min(...CHAIN.map((c) => c.notAfter))
  t.equal(new Date(notBefore).toISOString(), '2022-03-01T00:00:00.000Z')
  t.equal(new Date(notAfter).toISOString(), '9999-12-31T23:59:59.000Z')
  t.equal(new Date(CHAIN[0]!.notAfter).toISOString(), '9999-12-31T23:59:59.000Z', 'leaf notAfter')
  t.ok(verifySample(REPORT_BYTES, CHAIN, new Date(notBefore)), 'valid at the first instant')
  t.ok(verifySample(REPORT_BYTES, CHAIN, new Date(notAfter)), 'valid at the last instant')
  t.equal(codeOf(() => verifySample(REPORT_BYTES, CHAIN, new Date(notBefore - 1000))), 'ATTESTATION_CERT_EXPIRED', 'before ICA 1')
})

t.test('an instant after the leaf notAfter is rejected as expired', async (t) => {
  const late = new Date(CHAIN[0]!.notAfter + 1000) // 10000-01-01T00:00:00Z
  const e = thrown(() => verifySample(REPORT_BYTES, CHAIN, late))
  t.ok(isAttestationError(e))
  t.equal((e as BaseError).code, 'ATTESTATION_CERT_EXPIRED')
  t.equal(codeOf(() => verifySample(REPORT_BYTES, CHAIN, new Date(Date.UTC(12000, 0, 1)))), 'ATTESTATION_CERT_EXPIRED')
})

t.test('a wrong expected nonce is rejected', async (t) => {
  const r = parseGpuReport(REPORT_BYTES)
  const wrong = fromHex(SAMPLE_NONCE)
  wrong[31]! ^= 1
  t.equal(codeOf(() => verifyGpuReport(r, CHAIN, { now: AT, expectedNonce: wrong })), 'ATTESTATION_GPU_NONCE_MISMATCH')
  t.equal(
    codeOf(() => verifyGpuReport(r, CHAIN, { now: AT, expectedNonce: r.response.nonce })),
    'ATTESTATION_GPU_NONCE_MISMATCH',
    'the responder nonce is not the challenge',
  )
  t.equal(codeOf(() => verifyGpuReport(r, CHAIN, { now: AT, expectedNonce: new Uint8Array(32) })), 'ATTESTATION_GPU_NONCE_MISMATCH')
})

t.test('bad options are configuration errors', async (t) => {
  const r = parseGpuReport(REPORT_BYTES)
  t.equal(codeOf(() => verifyGpuReport(r, CHAIN, { now: AT, expectedNonce: new Uint8Array(31) })), 'ATTESTATION_OPTIONS_INVALID')
  t.equal(codeOf(() => verifyGpuReport(r, CHAIN, { now: new Date(Number.NaN), expectedNonce: nonceOf(r) })), 'ATTESTATION_OPTIONS_INVALID')
  t.equal(
    codeOf(() => verifyGpuReport(r, CHAIN, { now: 0 as unknown as Date, expectedNonce: nonceOf(r) })),
    'ATTESTATION_OPTIONS_INVALID',
  )
  t.equal(codeOf(() => verifyGpuReport(r, [], { now: AT, expectedNonce: nonceOf(r) })), 'ATTESTATION_CERT_CHAIN_INVALID', 'empty chain')
})

t.test('a chain that does not end at the pinned root is untrusted', async (t) => {
  const r = parseGpuReport(REPORT_BYTES)
  const opts = { now: AT, expectedNonce: nonceOf(r) }
  const rootCert = CHAIN[4]!

  // A self-signed impostor with the very name of the NVIDIA root.
  const impostorKey = devKey()
  const impostorDer = issue(rootCert.subject, rootCert.subject, impostorKey, impostorKey, CA_FLAGS)
  const impostor = parseCertificate(impostorDer)
  t.equal(codeOf(() => verifyGpuReport(r, [...CHAIN.slice(0, 4), impostor], opts)), 'ATTESTATION_ROOT_CA_UNTRUSTED', 'impostor root')

  // The carried root dropped and an unrelated real certificate appended.
  const intelRoot = parseCertificate(new Uint8Array(readFileSync(`${VECTORS_DIR}intel/intel-sgx-root-ca.der`)))
  t.equal(codeOf(() => verifyGpuReport(r, [...CHAIN.slice(0, 4), intelRoot], opts)), 'ATTESTATION_ROOT_CA_UNTRUSTED', 'Intel root appended')

  // The right chain, but verified against another root.
  const other = devChain((leafKey, rootKey) => [keyUsage(0x80, 7), riotExtension(rootKey.spki, fromHex(SAMPLE_FWID))])
  t.equal(codeOf(() => verifyGpuReport(r, CHAIN, { ...opts, root: other.root })), 'ATTESTATION_ROOT_CA_UNTRUSTED', 'a dev root does not anchor NVIDIA')

  // A dev chain is not anchored by the default (NVIDIA) root.
  const devSigned = parseGpuReport(resign(REPORT_BYTES, other.leafKey))
  t.equal(codeOf(() => verifyGpuReport(devSigned, other.chain, opts)), 'ATTESTATION_ROOT_CA_UNTRUSTED', 'dev chain under the NVIDIA root')

  // Intermediates out of order, or one missing.
  t.equal(codeOf(() => verifyGpuReport(r, [CHAIN[0]!, CHAIN[2]!, CHAIN[1]!, CHAIN[3]!, CHAIN[4]!], opts)), 'ATTESTATION_CERT_CHAIN_INVALID')
  t.equal(codeOf(() => verifyGpuReport(r, [CHAIN[0]!, CHAIN[2]!, CHAIN[3]!, CHAIN[4]!], opts)), 'ATTESTATION_CERT_CHAIN_INVALID')
  t.equal(
    codeOf(() => verifyGpuReport(r, CHAIN.slice(1), opts)),
    'ATTESTATION_CERT_CHAIN_INVALID',
    'the GSP BROM certificate as leaf: keyCertSign only, it may not sign reports',
  )
})

t.test('FWID, key usage and signature checks under a dev root', async (t) => {
  const fwid = fromHex(SAMPLE_FWID)
  const good = devChain((_leaf, root) => [keyUsage(0x80, 7), riotExtension(root.spki, fwid)])
  const opts = (root = good.root) => ({ now: AT, expectedNonce: fromHex(SAMPLE_NONCE), root })
  const report = parseGpuReport(resign(REPORT_BYTES, good.leafKey))

  const v = verifyGpuReport(report, good.chain, opts())
  t.equal(hex(v.fwid), SAMPLE_FWID, 'a dev chain with the right FWID verifies under its own root')
  t.equal(v.chain.length, 1)

  t.equal(
    codeOf(() => verifyGpuReport(parseGpuReport(REPORT_BYTES), good.chain, opts())),
    'ATTESTATION_GPU_SIGNATURE_INVALID',
    'the NVIDIA signature is not the dev leaf signature',
  )

  const otherFwid = fwid.slice()
  otherFwid[0]! ^= 0x80
  const wrong = devChain((_leaf, root) => [keyUsage(0x80, 7), riotExtension(root.spki, otherFwid)])
  const wrongReport = parseGpuReport(resign(REPORT_BYTES, wrong.leafKey))
  const e = thrown(() => verifyGpuReport(wrongReport, wrong.chain, opts(wrong.root)))
  t.equal((e as BaseError).code, 'ATTESTATION_GPU_FWID_MISMATCH', 'certificate FWID differs from the report FWID')
  t.same((e as BaseError).details, { certificate: hex(otherFwid), report: SAMPLE_FWID })

  const none = devChain(() => [keyUsage(0x80, 7)])
  const noneReport = parseGpuReport(resign(REPORT_BYTES, none.leafKey))
  t.equal(codeOf(() => verifyGpuReport(noneReport, none.chain, opts(none.root))), 'ATTESTATION_GPU_FWID_MISMATCH', 'leaf without FWID')

  // The report without its FWID TLV (opaque data 52 bytes shorter), re-signed.
  const r0 = parseGpuReport(REPORT_BYTES)
  const f = r0.response.opaque.fields.get(OPAQUE_FIELD.FWID)!
  const lenAt = at(r0, r0.response.opaque.raw) - 2
  const cut = Buffer.concat([REPORT_BYTES.subarray(0, f.offset), REPORT_BYTES.subarray(f.offset + 4 + f.value.length)])
  cut.writeUInt16LE(r0.response.opaque.raw.length - 4 - f.value.length, lenAt)
  const noFwidReport = parseGpuReport(resign(new Uint8Array(cut), good.leafKey))
  t.equal(noFwidReport.response.opaque.fwid, undefined)
  t.equal(codeOf(() => verifyGpuReport(noFwidReport, good.chain, opts())), 'ATTESTATION_GPU_FWID_MISMATCH', 'report without FWID')

  const cantSign = devChain((_leaf, root) => [keyUsage(0x04, 2), riotExtension(root.spki, fwid)])
  const cantSignReport = parseGpuReport(resign(REPORT_BYTES, cantSign.leafKey))
  t.equal(
    codeOf(() => verifyGpuReport(cantSignReport, cantSign.chain, opts(cantSign.root))),
    'ATTESTATION_CERT_CHAIN_INVALID',
    'leaf keyUsage without digitalSignature',
  )

  const malformedDice = devChain(() => [keyUsage(0x80, 7), extension(OID_TCG_DICE_TCB_INFO, false, sequence(integer(2)))])
  const malformedReport = parseGpuReport(resign(REPORT_BYTES, malformedDice.leafKey))
  t.equal(
    codeOf(() => verifyGpuReport(malformedReport, malformedDice.chain, opts(malformedDice.root))),
    'ATTESTATION_CERT_INVALID',
    'a malformed DICE extension in a genuine leaf',
  )

  // The signature check comes before the nonce check: a wrong nonce on a forged report is a signature failure.
  const wrongNonce = { ...opts(), expectedNonce: new Uint8Array(32) }
  t.equal(codeOf(() => verifyGpuReport(parseGpuReport(REPORT_BYTES), good.chain, wrongNonce)), 'ATTESTATION_GPU_SIGNATURE_INVALID')
  t.equal(codeOf(() => verifyGpuReport(wrongReport, wrong.chain, { ...wrongNonce, root: wrong.root })), 'ATTESTATION_GPU_FWID_MISMATCH')

  // A P-256 leaf cannot have made a 96-byte P-384 signature.
  const p256 = (() => {
    const rootKey = devKey()
    const leafKey = devKey('P-256')
    const name = commonNameOnly('DEV P-256 root')
    const rootDer = issue(name, name, rootKey, rootKey, CA_FLAGS)
    const leafDer = issue(commonNameOnly('DEV P-256 leaf'), name, leafKey, rootKey, [keyUsage(0x80, 7), riotExtension(rootKey.spki, fwid)])
    return { root: trustedRootFromDer('dev', rootDer), chain: [parseCertificate(leafDer)] }
  })()
  t.equal(codeOf(() => verifyGpuReport(report, p256.chain, opts(p256.root))), 'ATTESTATION_GPU_SIGNATURE_INVALID')
})

t.test('structural corruptions are parse errors with offset and what', async (t) => {
  const r = parseGpuReport(REPORT_BYTES)
  const res = r.response
  const respAt = at(r, res.raw)
  const block = (i: number) => at(r, res.blocks[i]!.raw)
  const opaqueLenAt = at(r, res.opaque.raw) - 2
  const boardId = res.opaque.fields.get(OPAQUE_FIELD.BOARD_ID)!
  const cases: Record<string, Uint8Array> = {
    'trailing byte': new Uint8Array(Buffer.concat([REPORT_BYTES, Uint8Array.of(0)])),
    'request version 1.2': withByte(REPORT_BYTES, 0, 0x12),
    'request code not GET_MEASUREMENTS': withByte(REPORT_BYTES, 1, 0xe1),
    'request without signature': withByte(REPORT_BYTES, 2, 0x00),
    'request with a reserved attribute bit': withByte(REPORT_BYTES, 2, 0x03),
    'request for index 5 answered with 64 blocks': withByte(REPORT_BYTES, 3, 0x05),
    'count-only request answered with blocks': withByte(REPORT_BYTES, 3, 0x00),
    'reserved SlotIDParam bits': withByte(REPORT_BYTES, 36, 0x10),
    'response version 1.0': withByte(REPORT_BYTES, respAt, 0x10),
    'response code ERROR': withByte(REPORT_BYTES, respAt + 1, 0x7f),
    'one block fewer than recorded': withByte(REPORT_BYTES, respAt + 4, 63),
    'one block more than recorded': withByte(REPORT_BYTES, respAt + 4, 65),
    'record length one more': withByte(REPORT_BYTES, respAt + 5, REPORT_BYTES[respAt + 5]! + 1),
    'record length one less': withByte(REPORT_BYTES, respAt + 5, REPORT_BYTES[respAt + 5]! - 1),
    'record length past the end': withByte(REPORT_BYTES, respAt + 7, 0xff),
    'duplicate block index': withByte(REPORT_BYTES, block(1), 1),
    'block index 0': withByte(REPORT_BYTES, block(0), 0),
    'block index 0xFF': withByte(REPORT_BYTES, block(63), 0xff),
    'block not in DMTF format': withByte(REPORT_BYTES, block(0) + 1, 0x02),
    'MeasurementSize larger than the DMTF value': withByte(REPORT_BYTES, block(0) + 2, 52),
    'DMTF value size smaller than MeasurementSize': withByte(REPORT_BYTES, block(0) + 5, 47),
    'OpaqueLength past the end': withByte(REPORT_BYTES, opaqueLenAt + 1, 0x0f),
    'OpaqueLength over 1024': (() => {
      const b = REPORT_BYTES.slice()
      Buffer.from(b.buffer, b.byteOffset).writeUInt16LE(1025, opaqueLenAt)
      return b
    })(),
    'OpaqueLength cuts a TLV': withByte(REPORT_BYTES, opaqueLenAt, REPORT_BYTES[opaqueLenAt]! - 1),
    'duplicate opaque field (board id as VBIOS version)': withByte(REPORT_BYTES, boardId.offset, OPAQUE_FIELD.VBIOS_VERSION),
    'opaque TLV size past the opaque data': withByte(REPORT_BYTES, boardId.offset + 3, 0x02),
    'driver version not ASCII': withByte(REPORT_BYTES, res.opaque.fields.get(OPAQUE_FIELD.DRIVER_VERSION)!.offset + 4, 0xc3),
    'text after the NUL of a string field': withByte(REPORT_BYTES, res.opaque.fields.get(OPAQUE_FIELD.CHIP_SKU)!.offset + 4 + 8, 0x41),
    'signature missing one byte': REPORT_BYTES.subarray(0, REPORT_BYTES.length - 1),
  }
  for (const [name, bytes] of Object.entries(cases)) {
    const e = thrown(() => parseGpuReport(bytes))
    t.ok(e instanceof ParseError, `${name}: a ParseError`)
    const pe = e as ParseError
    t.equal(pe.code, 'ATTESTATION_GPU_REPORT_MALFORMED', `${name}: code`)
    t.type(pe.details.offset, 'number', `${name}: offset`)
    t.type(pe.details.what, 'string', `${name}: what`)
  }
  t.equal((thrown(() => parseGpuReport(cases['trailing byte']!)) as ParseError).details.offset, REPORT_BYTES.length)
  t.equal((thrown(() => parseGpuReport(cases['duplicate block index']!)) as ParseError).details.offset, block(1))
})

t.test('the hex text form', async (t) => {
  t.equal(parseGpuReportHex(`\n  ${REPORT_TEXT.trim().toUpperCase()}\r\n`).raw.length, 4117, 'case and surrounding whitespace')
  for (const text of ['', 'zz', REPORT_TEXT.trim().slice(1), `${REPORT_TEXT.slice(0, 100)} ${REPORT_TEXT.slice(100)}`, '0x11e0']) {
    t.equal(codeOf(() => parseGpuReportHex(text)), 'ATTESTATION_GPU_EVIDENCE_MALFORMED')
  }
  t.equal(codeOf(() => parseGpuReportHex(REPORT_TEXT.trim().slice(0, 200))), 'ATTESTATION_GPU_REPORT_MALFORMED', 'hex of a truncated report')
})

t.test('every single flipped bit of the signed report is rejected with a typed code', async (t) => {
  const r = parseGpuReport(REPORT_BYTES)
  const signedBits = r.signedBytes.length * 8
  const bits = new Set<number>()
  for (let i = 0; i < signedBits; i += 5) bits.add(i)
  const dense = (view: Uint8Array) => {
    const start = at(r, view) * 8
    for (let i = 0; i < view.length * 8; i++) bits.add(start + i)
  }
  dense(r.request.nonce)
  dense(r.response.nonce)
  dense(r.response.opaque.fwid!)
  dense(r.signature)

  const allowed = new Set(['ATTESTATION_GPU_REPORT_MALFORMED', 'ATTESTATION_GPU_SIGNATURE_INVALID'])
  const tally = new Map<string, number>()
  const problems: string[] = []
  for (const bit of bits) {
    const mutated = REPORT_BYTES.slice()
    mutated[bit >> 3]! ^= 0x80 >> (bit & 7)
    const o = outcome(() => verifySample(mutated))
    const key = o.kind === 'error' ? o.code : o.kind
    tally.set(key, (tally.get(key) ?? 0) + 1)
    if (!(o.kind === 'error' && allowed.has(o.code)) && problems.length < 10) problems.push(`bit ${bit}: ${JSON.stringify(o)}`)
  }
  t.same(problems, [], 'no flip is accepted or escapes as an untyped error')
  t.ok((tally.get('ATTESTATION_GPU_SIGNATURE_INVALID') ?? 0) > 0)
  t.ok((tally.get('ATTESTATION_GPU_REPORT_MALFORMED') ?? 0) > 0)
  t.equal(tally.get('accepted'), undefined)
  t.equal(tally.get('bug'), undefined)
  t.comment(`${bits.size} flips: ${JSON.stringify(Object.fromEntries(tally))}`)
})

t.test('a flipped bit inside any certificate of the chain is rejected with a typed code', async (t) => {
  const problems: string[] = []
  const tally = new Map<string, number>()
  let flips = 0
  CHAIN_DER.forEach((der, ci) => {
    for (let bit = ci; bit < der.length * 8; bit += 23) {
      const mutated = der.slice()
      mutated[bit >> 3]! ^= 0x80 >> (bit & 7)
      const pem = CHAIN_DER.map((d, i) => derToPem(i === ci ? mutated : d)).join('')
      const o = outcome(() => verifySample(REPORT_BYTES, pemToDer(pem).map(parseCertificate)))
      flips++
      const key = o.kind === 'error' ? o.code : o.kind
      tally.set(key, (tally.get(key) ?? 0) + 1)
      const ok = o.kind === 'error' && ['parse', 'verification'].includes(errorFamily(o.code))
      if (!ok && problems.length < 10) problems.push(`certificate ${ci} bit ${bit}: ${JSON.stringify(o)}`)
    }
  })
  t.same(problems, [], 'never accepted, never untyped')
  t.equal(tally.get('accepted'), undefined)
  t.ok((tally.get('ATTESTATION_ROOT_CA_UNTRUSTED') ?? 0) > 0, 'flips in the top certificates break the anchor')
  t.ok((tally.get('ATTESTATION_CERT_CHAIN_INVALID') ?? 0) > 0)
  t.ok((tally.get('ATTESTATION_CERT_INVALID') ?? 0) > 0)
  t.comment(`${flips} flips: ${JSON.stringify(Object.fromEntries(tally))}`)
})

t.test('truncated and random report bytes give only ParseError', async (t) => {
  for (let n = 0; n < REPORT_BYTES.length; n++) {
    const e = thrown(() => parseGpuReport(REPORT_BYTES.subarray(0, n)))
    if (!(e instanceof ParseError) || e.code !== 'ATTESTATION_GPU_REPORT_MALFORMED') {
      t.fail(`prefix of ${n} bytes: ${String(e)}`)
      break
    }
  }
  const onlyParseErrors = (bytes: Uint8Array): boolean => {
    try {
      parseGpuReport(bytes)
      return true
    } catch (e) {
      return e instanceof ParseError && e.code === 'ATTESTATION_GPU_REPORT_MALFORMED'
    }
  }
  const prefix = REPORT_BYTES.subarray(0, 45) // request and the response header
  fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }), onlyParseErrors), { seed: 0x6e76, numRuns: 2000 })
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 4200 }), (tail) => onlyParseErrors(new Uint8Array(Buffer.concat([prefix, tail])))),
    { seed: 0x6e77, numRuns: 2000 },
  )
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: REPORT_BYTES.length }),
      fc.array(fc.tuple(fc.nat(REPORT_BYTES.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
      (cut, edits) => {
        const b = REPORT_BYTES.slice(0, cut)
        for (const [i, v] of edits) if (i < b.length) b[i] = v
        return onlyParseErrors(b)
      },
    ),
    { seed: 0x6e78, numRuns: 3000 },
  )
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (s) => {
      try {
        parseGpuReportHex(s)
        return true
      } catch (e) {
        return e instanceof ParseError && (e.code === 'ATTESTATION_GPU_EVIDENCE_MALFORMED' || e.code === 'ATTESTATION_GPU_REPORT_MALFORMED')
      }
    }),
    { seed: 0x6e79, numRuns: 1000 },
  )
  t.pass('fast-check properties held')
})
