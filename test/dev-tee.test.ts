/**
 * Dev TEE tests: the dev CA's certificates, quotes and collateral go through
 * the production parsers and verifiers unchanged; only the trust anchor
 * differs, and Intel's root never accepts dev evidence. Structures are
 * compared with the real Emerald Rapids vector (test/vectors/tdx) so the dev
 * PKI keeps Intel's shape. A fixed clock throughout; errors are asserted by
 * code, never by message.
 */

import { readFileSync } from 'node:fs'
import { createHash, createPublicKey, verify } from 'node:crypto'
import t from 'tap'
import { QuoteVerifier } from '@phala/dcap-qvl'
import { BaseError, ConfigError, VerificationError } from '../attestation/errors.ts'
import { children, decodeOid, readTlv, type Tlv } from '../attestation/asn1/der.ts'
import { pemToDer } from '../attestation/asn1/pem.ts'
import { parseQuote, type TdReport } from '../attestation/tdx/abi/quote.ts'
import { OID_SGX_EXTENSION, parsePckExtension } from '../attestation/tdx/abi/pck-extension.ts'
import { commonName, parseCertificate, type Certificate } from '../attestation/pki/x509.ts'
import { parseCrl } from '../attestation/pki/crl.ts'
import { verifyChain, verifyCrl, type VerifiedCrl } from '../attestation/pki/chain.ts'
import { certificateKey, p256KeyFromRaw, verifyRaw } from '../attestation/pki/ecdsa.ts'
import { verifyQuote } from '../attestation/tdx/verify/verify-quote.ts'
import { INTEL_SGX_ROOT_CA, trustedRootFromDer } from '../attestation/roots/trust-root.ts'
import type { QuoteCollateralV3 } from '../attestation/pcs/types.ts'
import {
  createDevQuoteSigner,
  createDevRootCa,
  devTcbLevel,
  signDevCollateral,
  DEV_FMSPC,
  DEV_PCE_SVN,
  DEV_QE_AUTH_DATA,
  DEV_QE_ISV_PROD_ID,
  DEV_QE_ISV_SVN,
  DEV_QE_MRSIGNER,
  DEV_ROOT_CA_NAME,
  DEV_SGX_TCB_COMPONENTS,
  DEV_TEE_TCB_SVN,
  TD_ATTRIBUTES_DEBUG,
  TD_ATTRIBUTES_SEPT_VE_DISABLE,
} from '../attestation/dev/index.ts'
import { thrown, codeOf } from './helpers/errors.ts'

const NOW = new Date('2025-06-01T12:00:00Z')
const DAY = 86_400_000
const SEED = new Uint8Array(createHash('sha256').update('dev-tee test seed').digest())
const SIGNER_SEED = new Uint8Array(createHash('sha256').update('dev-tee test QE').digest())

const VECTOR = new URL('./vectors/tdx/tdx-v4-emerald-rapids-uptodate/', import.meta.url)
const realQuote = parseQuote(new Uint8Array(readFileSync(new URL('quote.bin', VECTOR))))
const realCollateral = JSON.parse(readFileSync(new URL('collateral.json', VECTOR), 'utf8')) as QuoteCollateralV3
const intelRoot = parseCertificate(new Uint8Array(readFileSync(new URL('./vectors/intel/intel-sgx-root-ca.der', import.meta.url))))

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
/** Distinct, recognisable bytes per field, so a field written at the wrong offset shows. */
const pattern = (size: number, tag: number): Uint8Array => Uint8Array.from({ length: size }, (_, i) => (tag * 16 + i) & 0xff)



const ca = createDevRootCa({ seed: SEED, now: NOW })
const signer = createDevQuoteSigner(ca, { fmspc: DEV_FMSPC, seed: SIGNER_SEED })
const collateral = signDevCollateral(ca, { fmspc: DEV_FMSPC, now: NOW, nextUpdateDays: 30, platform: signer.platform })
const root = parseCertificate(ca.rootCertificateDer)
const platformCa = parseCertificate(ca.platformCaDer)
const tcbSigning = parseCertificate(ca.tcbSigningDer)
const leaf = parseCertificate(signer.pckLeaf.der)

/** Both dev CRLs, verified against their issuers at `now`. */
function devCrls(c: QuoteCollateralV3, now: number): VerifiedCrl[] {
  return [
    verifyCrl(parseCrl(Buffer.from(c.root_ca_crl, 'hex')), root, now, 'root-ca'),
    verifyCrl(parseCrl(Buffer.from(c.pck_crl, 'hex')), platformCa, now, 'pck'),
  ]
}

t.test('quote round-trips through parseQuote with every field where it was put', async (t) => {
  const input = {
    reportData: pattern(64, 1),
    mrTd: pattern(48, 2),
    rtmrs: [pattern(48, 3), pattern(48, 4), pattern(48, 5), pattern(48, 6)],
    mrConfigId: pattern(48, 7),
    mrOwner: pattern(48, 8),
    mrOwnerConfig: pattern(48, 9),
    tdAttributes: pattern(8, 10),
    xfam: pattern(8, 11),
    teeTcbSvn: pattern(16, 12),
    mrSeam: pattern(48, 13),
    mrSignerSeam: pattern(48, 14),
    seamAttributes: pattern(8, 15),
  }
  const raw = signer.signQuote(input)
  const q = parseQuote(raw)
  t.equal(q.header.version, 4)
  t.equal(q.header.attestationKeyType, 2)
  t.equal(q.header.teeType, 0x81)
  t.equal(hex(q.header.qeVendorId), '939a7233f79c4ca9940a0db3957f0607')
  t.equal(hex(q.header.userData.subarray(16)), '00000000', 'user data: 16-byte QE ID then zeros, like Intel QE')
  t.equal(q.body.kind, 'td10')
  const r = q.body.report as TdReport
  for (const k of ['reportData', 'mrTd', 'mrConfigId', 'mrOwner', 'mrOwnerConfig', 'tdAttributes', 'xfam', 'teeTcbSvn', 'mrSeam', 'mrSignerSeam', 'seamAttributes'] as const) {
    t.equal(hex(r[k]), hex(input[k]), k)
  }
  r.rtmrs.forEach((v, i) => t.equal(hex(v), hex(input.rtmrs[i]!), `rtmr${i}`))
  t.equal(q.signedRegion.length, 48 + 584)
  t.equal(q.trailingBytes, 0)
  t.equal(q.outerCertDataType, 6)
  t.equal(q.certification.certDataType, 5)
  t.equal(q.certification.certData[q.certification.certData.length - 1], 0, 'PEM chain is NUL-terminated like real quotes')
  t.same(q.certification.pckChain.map(hex), [signer.pckLeaf.der, ca.platformCaDer, ca.rootCertificateDer].map(hex), 'chain: leaf, platform CA, root')
  t.equal(hex(q.attestationKey), hex(signer.attestationPublicKey))
  t.equal(hex(q.certification.qeAuthData), hex(DEV_QE_AUTH_DATA))

  const qe = q.certification.qeReport
  t.equal(hex(qe.mrSigner), DEV_QE_MRSIGNER)
  t.equal(qe.isvProdId, DEV_QE_ISV_PROD_ID)
  t.equal(qe.isvSvn, DEV_QE_ISV_SVN)
  t.equal(qe.miscSelect, 0)
  t.equal(qe.attributes[0]! & 0x02, 0, 'QE is not a debug enclave')
  t.equal(hex(qe.cpuSvn), hex(Uint8Array.from(DEV_SGX_TCB_COMPONENTS)), 'QE report CPUSVN is the platform CPUSVN')
  const binding = createHash('sha256').update(q.attestationKey).update(q.certification.qeAuthData).digest('hex')
  t.equal(hex(qe.reportData), binding + '00'.repeat(32), 'QE REPORTDATA = SHA-256(key || auth data) || 32 zero bytes')

  // The real quote's sizes around the variable-length chain are the same.
  t.equal(q.certification.qeReport.raw.length, realQuote.certification.qeReport.raw.length)
  t.equal(q.certification.qeAuthData.length, realQuote.certification.qeAuthData.length)
})

t.test('omitted fields: zeros, SEPT_VE_DISABLE set, debug off', async (t) => {
  const r = parseQuote(signer.signQuote()).body.report as TdReport
  const attrs = new DataView(r.tdAttributes.buffer, r.tdAttributes.byteOffset, 8).getBigUint64(0, true)
  t.equal(attrs & TD_ATTRIBUTES_SEPT_VE_DISABLE, TD_ATTRIBUTES_SEPT_VE_DISABLE, 'SEPT_VE_DISABLE (bit 28)')
  t.equal(attrs & TD_ATTRIBUTES_DEBUG, 0n, 'TUD.DEBUG (bit 0) clear')
  t.equal(hex(r.tdAttributes), hex((realQuote.body.report as TdReport).tdAttributes), 'same TD attributes as the real TD')
  t.equal(hex(r.teeTcbSvn), DEV_TEE_TCB_SVN)
  for (const k of ['reportData', 'mrTd', 'mrConfigId', 'mrOwner', 'mrOwnerConfig', 'mrSeam', 'mrSignerSeam', 'seamAttributes'] as const) {
    t.ok(r[k].every((b) => b === 0), `${k} is zero`)
  }
  t.ok(r.rtmrs.every((m) => m.every((b) => b === 0)), 'RTMRs are zero')
})

t.test('quote and QE report signatures verify; a flipped body byte does not', async (t) => {
  const raw = signer.signQuote({ reportData: pattern(64, 3) })
  const q = parseQuote(raw)
  t.ok(verifyRaw('ecdsa-sha256', q.signedRegion, p256KeyFromRaw(q.attestationKey), q.signature), 'attestation key signs header || body')
  t.ok(verifyRaw('ecdsa-sha256', q.certification.qeReport.raw, certificateKey(leaf), q.certification.qeReportSignature), 'PCK leaf signs the QE report')
  const flipped = new Uint8Array(raw)
  flipped[48 + 520] = flipped[48 + 520]! ^ 1 // first REPORTDATA byte
  const f = parseQuote(flipped)
  t.notOk(verifyRaw('ecdsa-sha256', f.signedRegion, p256KeyFromRaw(f.attestationKey), f.signature))
})

t.test('PCK leaf: the SGX extension parses to the FMSPC, PCE-ID and SVNs given', async (t) => {
  const components = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 200, 255]
  const cpuSvn = pattern(16, 9)
  const ppid = pattern(16, 5)
  const issued = ca.issuePckLeaf({ fmspc: '00a06d080000', pceId: '0102', cpuSvn, sgxTcbComponents: components, pceSvn: 300, ppid })
  const cert = parseCertificate(issued.der)
  const ext = parsePckExtension(cert)
  t.equal(hex(ext.fmspc), '00a06d080000')
  t.equal(hex(ext.pceId), '0102')
  t.same(ext.sgxTcbComponents, components)
  t.equal(ext.pceSvn, 300)
  t.equal(hex(ext.cpuSvn), hex(cpuSvn))
  t.equal(hex(ext.ppid), hex(ppid))
  t.equal(ext.sgxType, 1, 'Scalable, as Platform CA leaves of TDX servers')
  t.equal(cert.serial, issued.serial)
  t.equal(cert.extensions.get(OID_SGX_EXTENSION)?.critical, false)
  t.same(cert.basicConstraints, { ca: false })

  const fromSigner = parsePckExtension(leaf)
  t.equal(hex(fromSigner.fmspc), DEV_FMSPC)
  t.same(fromSigner.sgxTcbComponents, DEV_SGX_TCB_COMPONENTS)
  t.equal(fromSigner.pceSvn, DEV_PCE_SVN)
  t.equal(hex(fromSigner.cpuSvn), hex(Uint8Array.from(DEV_SGX_TCB_COMPONENTS)), 'CPUSVN carries the component SVNs, as on Intel leaves')
})

/** The SGX extension's shape: each member's OID and value tag, nested members flattened in order. */
function sgxShape(cert: Certificate): string[] {
  const v = cert.extensions.get(OID_SGX_EXTENSION)!.value
  const out: string[] = []
  const walk = (seq: Tlv): void => {
    for (const pair of children(v, seq)) {
      const [oid, value] = children(v, pair)
      const id = decodeOid(v, oid!)
      out.push(`${id}:${value!.tag.toString(16)}:${value!.tag === 0x04 ? value!.end - value!.contentStart : ''}`)
      if (value!.tag === 0x30) walk(value!)
    }
  }
  walk(readTlv(v, 0))
  return out
}

t.test('the PCK leaf mirrors a real Intel Platform CA leaf', async (t) => {
  const real = parseCertificate(realQuote.certification.pckChain[0]!)
  t.same(sgxShape(leaf), sgxShape(real), 'same SGX extension members, tags, sizes and order')
  t.same([...leaf.extensions.keys()], [...real.extensions.keys()], 'same extensions in the same order')
  t.equal(leaf.keyUsage, real.keyUsage, 'digitalSignature | nonRepudiation')
  t.same(leaf.basicConstraints, real.basicConstraints)
  const realChain = realQuote.certification.pckChain.map(parseCertificate)
  t.same(platformCa.basicConstraints, realChain[1]!.basicConstraints, 'platform CA: CA, pathLen 0')
  t.same(root.basicConstraints, realChain[2]!.basicConstraints, 'root: CA, pathLen 1')
  t.equal(platformCa.keyUsage, realChain[1]!.keyUsage)
  t.equal(root.keyUsage, realChain[2]!.keyUsage)
  t.equal(commonName(root.subject), DEV_ROOT_CA_NAME)
  t.equal(commonName(platformCa.subject), 'DEV PCK Platform CA')
  t.equal(commonName(tcbSigning.subject), 'DEV TCB Signing')
  const realTcbSigning = parseCertificate(pemToDer(realCollateral.tcb_info_issuer_chain)[0]!)
  t.same([...tcbSigning.extensions.keys()], [...realTcbSigning.extensions.keys()])
  t.equal(tcbSigning.keyUsage, realTcbSigning.keyUsage)
})

t.test('dev chains verify against the dev root, with both CRLs', async (t) => {
  const now = NOW.getTime()
  const crls = devCrls(collateral, now)
  const pck = verifyChain(q5Chain(), { now, root, crls, requireRevocation: true, label: 'pck' })
  t.equal(pck.length, 2, 'leaf and platform CA below the root')
  const tcb = verifyChain(pemToDer(collateral.tcb_info_issuer_chain).map(parseCertificate), { now, root, crls, requireRevocation: true, label: 'tcb-info' })
  t.equal(tcb[0]!.serial, tcbSigning.serial)
  const crlChain = pemToDer(collateral.pck_crl_issuer_chain).map(parseCertificate)
  t.equal(crlChain[0]!.serial, platformCa.serial)
  t.equal(ca.rootFingerprint, createHash('sha256').update(ca.rootCertificateDer).digest('hex'))
  t.match(ca.rootFingerprint, /^[0-9a-f]{64}$/)
})

/** The PCK chain exactly as the quote carries it. */
function q5Chain(): Certificate[] {
  return parseQuote(signer.signQuote()).certification.pckChain.map(parseCertificate)
}

t.test('the Intel root never accepts dev chains', async (t) => {
  const now = NOW.getTime()
  const pck = thrown(() => verifyChain(q5Chain(), { now, root: intelRoot, crls: [], requireRevocation: false, label: 'pck' }))
  t.ok(pck instanceof VerificationError)
  t.equal(codeOf(pck), 'ATTESTATION_ROOT_CA_UNTRUSTED')
  const tcb = thrown(() =>
    verifyChain(pemToDer(collateral.tcb_info_issuer_chain).map(parseCertificate), { now, root: intelRoot, crls: [], requireRevocation: false, label: 'tcb-info' }),
  )
  t.equal(codeOf(tcb), 'ATTESTATION_ROOT_CA_UNTRUSTED')
  // A dev chain claiming to end at Intel's root: its own root is not byte-identical, so it is just another root.
  const dressed = [...q5Chain().slice(0, 2), intelRoot]
  t.equal(codeOf(thrown(() => verifyChain(dressed, { now, root: intelRoot, crls: [], requireRevocation: false, label: 'pck' }))), 'ATTESTATION_ROOT_CA_UNTRUSTED')
})

t.test('a CRL listing the PCK leaf lists it, and the chain is then revoked', async (t) => {
  const der = ca.issueCrl({ issuer: 'platform', revokedSerials: [signer.pckLeaf.serial], thisUpdate: NOW, nextUpdate: new Date(NOW.getTime() + 30 * DAY) })
  const crl = parseCrl(der)
  t.ok(crl.revoked.has(leaf.serial), 'serial as parseCertificate reports it')
  t.equal(crl.revoked.size, 1)
  const now = NOW.getTime()
  const crls = [devCrls(collateral, now)[0]!, verifyCrl(crl, platformCa, now, 'pck')]
  const e = thrown(() => verifyChain(q5Chain(), { now, root, crls, requireRevocation: true, label: 'pck' }))
  t.equal(codeOf(e), 'ATTESTATION_CERT_REVOKED')

  // The same through the collateral signer.
  const revoked = signDevCollateral(ca, { fmspc: DEV_FMSPC, now: NOW, revokedPckSerials: [signer.pckLeaf.serial] })
  t.ok(parseCrl(Buffer.from(revoked.pck_crl, 'hex')).revoked.has(leaf.serial))
  // A serial with the top bit set needs a sign octet in DER and none in the parsed form.
  t.ok(parseCrl(ca.issueCrl({ issuer: 'root', revokedSerials: ['FF01'], thisUpdate: NOW, nextUpdate: new Date(NOW.getTime() + DAY) })).revoked.has('ff01'))
})

t.test('CRLs are current only inside their window', async (t) => {
  const late = NOW.getTime() + 31 * DAY
  t.equal(codeOf(thrown(() => devCrls(collateral, late))), 'ATTESTATION_COLLATERAL_EXPIRED')
  const wrongIssuer = thrown(() => verifyCrl(parseCrl(Buffer.from(collateral.pck_crl, 'hex')), root, NOW.getTime(), 'pck'))
  t.equal(codeOf(wrongIssuer), 'ATTESTATION_CRL_SIGNATURE_INVALID')
})

t.test('collateral: Intel JSON shapes, signatures raw r||s by the TCB signing cert', async (t) => {
  const key = createPublicKey({ key: Buffer.from(tcbSigning.spki), format: 'der', type: 'spki' })
  const check = (text: string, sig: string) => verify('sha256', Buffer.from(text, 'utf8'), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(sig, 'hex'))
  t.equal(collateral.tcb_info_signature.length, 128, '64 bytes r || s')
  t.ok(check(collateral.tcb_info, collateral.tcb_info_signature), 'TCB info signature')
  t.ok(check(collateral.qe_identity, collateral.qe_identity_signature), 'QE identity signature')
  t.notOk(check(collateral.tcb_info.replace('"UpToDate"', '"OutOfDate"'), collateral.tcb_info_signature), 'an edited TCB info does not verify')
  t.equal(collateral.tcb_info_issuer_chain, collateral.qe_identity_issuer_chain)
  t.same(pemToDer(collateral.tcb_info_issuer_chain).map(hex), [ca.tcbSigningDer, ca.rootCertificateDer].map(hex), 'TCB signing cert, then root')
  t.same(pemToDer(collateral.pck_crl_issuer_chain).map(hex), [ca.platformCaDer, ca.rootCertificateDer].map(hex), 'platform CA, then root')

  const tcbInfo = JSON.parse(collateral.tcb_info)
  const qeIdentity = JSON.parse(collateral.qe_identity)
  t.same(Object.keys(tcbInfo), Object.keys(JSON.parse(realCollateral.tcb_info)), 'TCB info members in Intel order')
  t.same(Object.keys(qeIdentity), Object.keys(JSON.parse(realCollateral.qe_identity)), 'QE identity members in Intel order')
  t.equal(JSON.stringify(tcbInfo), collateral.tcb_info, 'the signed text is JSON.stringify of the object')
  t.match(tcbInfo, { id: 'TDX', version: 3, fmspc: DEV_FMSPC.toUpperCase(), pceId: '0000', tcbType: 0, issueDate: '2025-06-01T12:00:00Z', nextUpdate: '2025-07-01T12:00:00Z' })
  const level = tcbInfo.tcbLevels[0]
  t.equal(level.tcbStatus, 'UpToDate')
  t.same(level.tcb.sgxtcbcomponents.map((c: { svn: number }) => c.svn), DEV_SGX_TCB_COMPONENTS)
  t.equal(level.tcb.pcesvn, DEV_PCE_SVN)
  t.same(level.tcb.tdxtcbcomponents.map((c: { svn: number }) => c.svn), [...Buffer.from(DEV_TEE_TCB_SVN, 'hex')])
  t.equal(tcbInfo.tdxModuleIdentities[0].id, 'TDX_01')
  t.match(qeIdentity, { id: 'TD_QE', version: 2, mrsigner: DEV_QE_MRSIGNER.toUpperCase(), isvprodid: DEV_QE_ISV_PROD_ID, tcbLevels: [{ tcb: { isvsvn: DEV_QE_ISV_SVN }, tcbStatus: 'UpToDate' }] })
})

t.test('the same seed gives the same keys and serials; another seed other ones', async (t) => {
  const again = createDevRootCa({ seed: SEED, now: NOW })
  t.equal(hex(parseCertificate(again.rootCertificateDer).spki), hex(root.spki))
  t.equal(parseCertificate(again.rootCertificateDer).serial, root.serial)
  const again2 = createDevQuoteSigner(again, { fmspc: DEV_FMSPC, seed: SIGNER_SEED })
  t.equal(hex(again2.attestationPublicKey), hex(signer.attestationPublicKey))
  t.equal(again2.pckLeaf.serial, signer.pckLeaf.serial)
  const other = createDevRootCa({ seed: new Uint8Array(32).fill(7), now: NOW })
  t.not(hex(parseCertificate(other.rootCertificateDer).spki), hex(root.spki))
  t.not(other.rootFingerprint, ca.rootFingerprint)
  const unseeded = createDevRootCa({ now: NOW })
  t.not(hex(parseCertificate(unseeded.rootCertificateDer).spki), hex(root.spki), 'no seed: a random CA')
})

t.test('argument misuse throws ConfigError with a code', async (t) => {
  const cases: [string, () => unknown][] = [
    ['short seed', () => createDevRootCa({ seed: new Uint8Array(16), now: NOW })],
    ['invalid now', () => createDevRootCa({ now: new Date(Number.NaN) })],
    ['mrTd of 32 bytes', () => signer.signQuote({ mrTd: new Uint8Array(32) })],
    ['three RTMRs', () => signer.signQuote({ rtmrs: [new Uint8Array(48), new Uint8Array(48), new Uint8Array(48)] })],
    ['FMSPC of 5 bytes', () => createDevQuoteSigner(ca, { fmspc: '0000000000' })],
    ['15 SGX components', () => ca.issuePckLeaf({ fmspc: DEV_FMSPC, pceId: '0000', cpuSvn: new Uint8Array(16), sgxTcbComponents: new Array(15).fill(0), pceSvn: 0 })],
    ['SVN above 255', () => ca.issuePckLeaf({ fmspc: DEV_FMSPC, pceId: '0000', cpuSvn: new Uint8Array(16), sgxTcbComponents: [256, ...new Array(15).fill(0)], pceSvn: 0 })],
    ['collateral FMSPC not hex', () => signDevCollateral(ca, { fmspc: 'zz7000000000', now: NOW })],
  ]
  for (const [name, f] of cases) {
    const e = thrown(f)
    t.ok(e instanceof ConfigError, name)
    t.equal(codeOf(e), 'ATTESTATION_OPTIONS_INVALID', name)
  }
})

t.test('end to end: verifyQuote accepts dev evidence only under the dev root', async (t) => {
  const devRoot = trustedRootFromDer('dev', ca.rootCertificateDer, ca.rootFingerprint)
  const quote = signer.signQuote({ reportData: pattern(64, 1), mrTd: pattern(48, 2) })
  const at = new Date(NOW.getTime() + DAY)

  const ok = verifyQuote(quote, collateral, { now: at, trustedRoot: devRoot })
  t.equal(ok.tcbStatus, 'UpToDate')
  t.same(ok.advisoryIds, [])
  t.equal(ok.root.fingerprint, ca.rootFingerprint)
  t.equal(ok.root.kind, 'dev')
  t.equal(ok.fmspc, DEV_FMSPC)
  t.equal(ok.tdxModule?.id, 'TDX_01')

  // Under Intel's root (the default or explicit) nothing of the dev PKI is
  // trusted: with Intel's own collateral (at the vector's verify_at) the first
  // dev item met is the quote's PCK chain; with dev collateral, the root CA CRL.
  const intelAt = new Date('2025-07-19T10:00:34Z')
  const rejections: [string, () => unknown][] = [
    ['Intel collateral, default root', () => verifyQuote(quote, realCollateral, { now: intelAt })],
    ['Intel collateral, Intel root named', () => verifyQuote(quote, realCollateral, { now: intelAt, trustedRoot: INTEL_SGX_ROOT_CA })],
    ['dev collateral, default root', () => verifyQuote(quote, collateral, { now: at })],
  ]
  for (const [name, f] of rejections) {
    const e = thrown(f)
    t.ok(e instanceof VerificationError, `${name}: rejected as not genuine`)
    t.equal(codeOf(e), 'ATTESTATION_ROOT_CA_UNTRUSTED', `${name}: root CA untrusted`)
  }

  // Same code path as real hardware: expiry, revocation and TCB levels all apply.
  const late = new Date(NOW.getTime() + 31 * DAY)
  t.equal(codeOf(thrown(() => verifyQuote(quote, collateral, { now: late, trustedRoot: devRoot }))), 'ATTESTATION_COLLATERAL_EXPIRED')
  const revoked = signDevCollateral(ca, { fmspc: DEV_FMSPC, now: NOW, revokedPckSerials: [signer.pckLeaf.serial] })
  t.equal(codeOf(thrown(() => verifyQuote(quote, revoked, { now: at, trustedRoot: devRoot }))), 'ATTESTATION_CERT_REVOKED')
  const outOfDate = signDevCollateral(ca, {
    fmspc: DEV_FMSPC,
    now: NOW,
    tcbLevels: [
      devTcbLevel({ sgxTcbComponents: DEV_SGX_TCB_COMPONENTS.map((s) => s + 1), pceSvn: DEV_PCE_SVN, teeTcbSvn: DEV_TEE_TCB_SVN, tcbStatus: 'UpToDate', tcbDate: '2025-05-01T00:00:00Z' }),
      devTcbLevel({ sgxTcbComponents: DEV_SGX_TCB_COMPONENTS, pceSvn: DEV_PCE_SVN, teeTcbSvn: DEV_TEE_TCB_SVN, tcbStatus: 'OutOfDate', tcbDate: '2024-01-01T00:00:00Z', advisoryIDs: ['INTEL-SA-00000'] }),
    ],
  })
  const old = verifyQuote(quote, outOfDate, { now: at, trustedRoot: devRoot })
  t.equal(old.tcbStatus, 'OutOfDate')
  t.same(old.advisoryIds, ['INTEL-SA-00000'])
  const wrongQe = signDevCollateral(ca, { fmspc: DEV_FMSPC, now: NOW, qeIdentity: { mrsigner: 'DC9E2A7C6F948F17474E34A7FC43ED030F7C1563F1BABDDF6340C82E0E54A8C5' } })
  t.equal(codeOf(thrown(() => verifyQuote(quote, wrongQe, { now: at, trustedRoot: devRoot }))), 'ATTESTATION_QE_IDENTITY_MISMATCH', "Intel's QE MRSIGNER is not the dev QE's")
})

t.test('an independent verifier (dcap-qvl) agrees: UpToDate under the dev root, rejected under Intel', async (t) => {
  const quote = signer.signQuote({ reportData: pattern(64, 1) })
  const nowSecs = Math.floor(NOW.getTime() / 1000) + 3600
  const report = QuoteVerifier.newWithRootCa(Buffer.from(ca.rootCertificateDer)).verify(quote, collateral, nowSecs)
  t.equal(report.status, 'UpToDate')
  t.throws(() => QuoteVerifier.newProd().verify(quote, collateral, nowSecs))
})
