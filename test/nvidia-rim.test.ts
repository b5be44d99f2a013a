/**
 * NVIDIA RIMs (attestation/nvidia/rim): the real driver and VBIOS RIMs of
 * test/vectors/nvidia/hopper-sample verify (XML signature + chain to the RIM
 * root) and match the sample SPDM report; genuine RIMs of other builds verify
 * but do not match; every synthetic malformed RIM, and every mutation made
 * here (named after what it breaks), is rejected with a typed code.
 *
 * Clock: NOW = 2025-01-01T00:00:00Z lies inside every certificate of every
 * vector RIM (the latest notBefore is the 550.90.07 driver RIM leaf,
 * 2024-06-01T02:08:29Z; the earliest notAfter is the 96005E0001 VBIOS RIM
 * leaves', 2025-06-22T09:30:33Z). The matching pair alone is valid from
 * 2024-06-01T02:08:29Z to 2026-02-22T23:17:58Z (the 96009F0001 VBIOS leaf).
 */
import t from 'tap'
import { readFileSync, readdirSync } from 'node:fs'
import { pemToDer } from '../attestation/asn1/pem.ts'
import { NVIDIA_RIM_ROOT_CA_FINGERPRINT } from '../attestation/roots/nvidia.ts'
import { trustedRootFromDer } from '../attestation/roots/trust-root.ts'
import {
  assertMeasurementsMatch,
  compareMeasurements,
  isVerifiedRim,
  parseRim,
  verifyRim,
  type CompareMeasurementsParameters,
  type VerifiedRim,
} from '../attestation/nvidia/rim/index.ts'
import { codeOf, thrown } from './helpers/errors.ts'
import { VECTORS_DIR } from './helpers/vectors.ts'

const DIR = `${VECTORS_DIR}nvidia/hopper-sample/`
const read = (path: string) => readFileSync(`${DIR}${path}`, 'utf8')

const RIM_ROOT = trustedRootFromDer('nvidia-rim', pemToDer(read('verifier_RIM_root.pem'))[0]!)
const DEVICE_ROOT = trustedRootFromDer('nvidia-device', pemToDer(read('verifier_device_root.pem'))[0]!)

const NOW = new Date('2025-01-01T00:00:00Z')
/** After the 96009F0001 VBIOS RIM leaf's notAfter (2026-02-22T23:17:58Z); the driver leaf is still valid. */
const AFTER_VBIOS_LEAF = new Date('2026-03-01T00:00:00Z')
/** Before the 550.90.07 driver RIM leaf's notBefore (2024-06-01T02:08:29Z). */
const BEFORE_DRIVER_LEAF = new Date('2024-05-01T00:00:00Z')

const DRIVER_XML = read('rims-matching/NV_GPU_DRIVER_GH100_550.90.07.xml')
const VBIOS_XML = read('rims-matching/NV_GPU_VBIOS_1010_0200_882_96009F0001.xml')

const verify = (xml: string, now = NOW, root = RIM_ROOT) => verifyRim(xml, { now, root })
const codeOfVerify = (xml: string) => codeOf(thrown(() => verify(xml)))
const detailsOf = (e: unknown) => (e as { details?: Record<string, unknown> }).details ?? {}

/**
 * The parts of the sample report the comparison needs, read with a local
 * DSP0274 1.1 walk so this test does not depend on the SPDM parser: request
 * (37 bytes: header, nonce, SlotIDParam), then MEASUREMENTS: header (4),
 * NumberOfBlocks (1), MeasurementRecordLength (3, LE), blocks of
 * Index (1) | MeasurementSpecification (1) | MeasurementSize (2, LE) |
 * DMTFSpecMeasurementValueType (1) | ValueSize (2, LE) | value; then the
 * nonce (32), OpaqueLength (2, LE) and NVIDIA's type-length-value fields.
 */
function sampleReport() {
  const b = Buffer.from(read('hopperAttestationReport.txt').trim(), 'hex')
  let p = 37 + 4
  const count = b[p]!
  const recordLength = b.readUIntLE(p + 1, 3)
  p += 4
  const end = p + recordLength
  const measurements = new Map<number, Uint8Array>()
  while (p < end) {
    const size = b.readUInt16LE(p + 2)
    const valueSize = b.readUInt16LE(p + 5)
    measurements.set(b[p]!, new Uint8Array(b.subarray(p + 7, p + 7 + valueSize)))
    p += 4 + size
  }
  p += 32
  const opaqueEnd = p + 2 + b.readUInt16LE(p)
  p += 2
  const fields = new Map<number, Buffer>()
  while (p < opaqueEnd) {
    const length = b.readUInt16LE(p + 2)
    fields.set(b.readUInt16LE(p), b.subarray(p + 4, p + 4 + length))
    p += 4 + length
  }
  // NVIDIA formats the 8 little-endian VBIOS bytes b0..b7 as b3.b2.b1.b0.b4.
  const v = fields.get(6)!
  const vbios = [v[3]!, v[2]!, v[1]!, v[0]!, v[4]!].map((x) => x.toString(16).padStart(2, '0').toUpperCase()).join('.')
  return {
    count,
    measurements,
    driverVersion: fields.get(3)!.toString('latin1').replace(/\0+$/, ''),
    vbiosVersion: vbios,
    nvdec0Status: fields.get(11)![0]!,
  }
}

const REPORT = sampleReport()

function params(driver: VerifiedRim, vbios: VerifiedRim, over: Partial<CompareMeasurementsParameters> = {}): CompareMeasurementsParameters {
  return {
    driver,
    vbios,
    measurements: REPORT.measurements,
    reportDriverVersion: REPORT.driverVersion,
    reportVbiosVersion: REPORT.vbiosVersion,
    nvdec0Status: REPORT.nvdec0Status,
    ...over,
  }
}

t.test('the vector RIM root is the pinned NVIDIA RIM root', async (t) => {
  t.equal(RIM_ROOT.fingerprint, NVIDIA_RIM_ROOT_CA_FINGERPRINT)
})

t.test('the sample report, as this test reads it', async (t) => {
  t.equal(REPORT.count, 64)
  t.equal(REPORT.measurements.size, 64)
  t.equal(REPORT.driverVersion, '550.90.07')
  t.equal(REPORT.vbiosVersion, '96.00.9F.00.01')
  t.equal(REPORT.nvdec0Status, 0x55, 'the sample GPU reports NVDEC0 disabled')
})

t.test('matching RIMs: signature and chain verify, and all 33 active golden measurements match', async (t) => {
  const driver = verify(DRIVER_XML)
  const vbios = verify(VBIOS_XML)
  t.ok(isVerifiedRim(driver) && isVerifiedRim(vbios))
  t.equal(driver.colloquialVersion, '550.90.07')
  t.equal(vbios.colloquialVersion, '96.00.9F.00.01')
  t.equal(driver.product, 'GH100')
  t.equal(driver.firmwareManufacturerId, '5703')
  t.equal(driver.measurements.length, 64)
  t.equal(vbios.measurements.length, 64)
  t.equal(driver.measurements.filter((m) => m.active).length, 21)
  t.equal(vbios.measurements.filter((m) => m.active).length, 12)
  t.equal(driver.signer.commonName, 'HCC RIM L4 Signer')
  t.equal(driver.signer.notBefore.toISOString(), '2024-06-01T02:08:29.000Z')
  t.equal(vbios.signer.notAfter.toISOString(), '2026-02-22T23:17:58.000Z')
  t.equal(driver.chain.length, 3, 'leaf, L3, L2; the carried root is the pinned one and dropped')
  t.equal(driver.root.fingerprint, RIM_ROOT.fingerprint)

  // The document as written says what the signed content says.
  const parsed = parseRim(DRIVER_XML)
  t.same(parsed.measurements, driver.measurements)
  t.equal(parsed.certificateChainDer.length, 4)
  t.equal(parsed.signature.signatureValue.length, 96)

  const result = assertMeasurementsMatch(params(driver, vbios))
  t.equal(result.matched.length, 33)
  t.same(result.mismatches, [])
  // NVDEC0 is disabled in the sample, so index 35 would be forgiven; it
  // matches anyway (the driver RIM's 4th alternative).
  t.same(result.exempted, [])
  t.ok(result.matched.includes(35))
  t.same(
    result.matched,
    [...driver.measurements, ...vbios.measurements].filter((m) => m.active).map((m) => m.index).sort((a, b) => a - b),
  )
})

t.test('a leading XML declaration and CRLF line ends change nothing that is signed', async (t) => {
  const expected = verify(DRIVER_XML).measurements
  t.same(verify(`<?xml version="1.0" encoding="UTF-8"?>\n${DRIVER_XML}`).measurements, expected)
  t.same(verify(DRIVER_XML.replace(/\n/g, '\r\n')).measurements, expected)
})

t.test('rims-not-matching: genuine signatures, other builds', async (t) => {
  const driver = verify(read('rims-not-matching/Driver_RIM_test_no_gpu.swidtag'))
  const vbios = verify(read('rims-not-matching/1010_0200_882_96005E0001_test_no_gpu.swidtag'))
  const vbiosProd = verify(read('rims-not-matching/1010_0200_882_96005E0001_PROD.swidtag'))
  t.equal(driver.colloquialVersion, '545.00')
  t.equal(vbios.colloquialVersion, '96.00.5E.00.01')
  t.equal(vbiosProd.colloquialVersion, '96.00.5E.00.01')

  // Against the report as it is, the versions already disagree.
  const e = thrown(() => compareMeasurements(params(driver, vbios)))
  t.equal(codeOf(e), 'ATTESTATION_RIM_MISMATCH')
  t.equal(detailsOf(e).rim, 'driver')

  // With the report's version fields set to theirs, the measurements decide.
  const asIfVersions = (d: VerifiedRim, v: VerifiedRim) =>
    params(d, v, { reportDriverVersion: d.colloquialVersion, reportVbiosVersion: v.colloquialVersion })
  const pair = thrown(() => assertMeasurementsMatch(asIfVersions(driver, vbios)))
  t.equal(codeOf(pair), 'ATTESTATION_GPU_MEASUREMENT_MISMATCH')
  t.same(detailsOf(pair).indices, [1, 2, 3, 7, 9, 11, 21, 22, 25, 26, 27, 29, 30, 31, 32, 34, 36, 37, 39, 40])
  t.equal((detailsOf(pair).indices as number[]).length, 20)

  const matchingDriver = verify(DRIVER_XML)
  const prod = thrown(() => assertMeasurementsMatch(asIfVersions(matchingDriver, vbiosProd)))
  t.equal(codeOf(prod), 'ATTESTATION_GPU_MEASUREMENT_MISMATCH')
  t.same(detailsOf(prod).indices, [1, 2, 9, 11], 'VBIOS indices only: the driver RIM is the right one')
  const m = (detailsOf(prod).mismatches as { index: number; rim: string; blockIndex: number; actual: string }[])[0]!
  t.equal(m.rim, 'vbios')
  t.equal(m.blockIndex, 2)
  t.equal(m.actual, Buffer.from(REPORT.measurements.get(2)!).toString('hex'))
})

/** Each synthetic malformed vector: the code, and the defect the parser names (the file name's, where it gets that far). */
const MALFORMED: Record<string, { code: string; defect: string }> = {
  'failure_duplicate_index.xml': { code: 'ATTESTATION_RIM_MALFORMED', defect: 'bad-hash' },
  'failure_empty_payload.xml': { code: 'ATTESTATION_RIM_MALFORMED', defect: 'empty-payload' },
  'failure_hash_empty_namespace.xml': { code: 'ATTESTATION_RIM_MALFORMED', defect: 'unknown-attribute' },
  'failure_invalid_alternatives.xml': { code: 'ATTESTATION_RIM_MALFORMED', defect: 'bad-alternatives' },
  'failure_invalid_base64_cert.xml': { code: 'ATTESTATION_RIM_MALFORMED', defect: 'root-element' },
  'failure_invalid_cert_bytes.xml': { code: 'ATTESTATION_RIM_MALFORMED', defect: 'root-element' },
  'failure_invalid_index.xml': { code: 'ATTESTATION_RIM_MALFORMED', defect: 'bad-index' },
  'failure_invalid_pem_data.xml': { code: 'ATTESTATION_RIM_MALFORMED', defect: 'root-element' },
  'failure_invalid_size.xml': { code: 'ATTESTATION_RIM_MALFORMED', defect: 'bad-size' },
  'failure_missing_alternatives.xml': { code: 'ATTESTATION_RIM_MALFORMED', defect: 'missing-attribute' },
  'failure_missing_colloquial_version.xml': { code: 'ATTESTATION_RIM_MALFORMED', defect: 'root-element' },
  'failure_missing_hash.xml': { code: 'ATTESTATION_RIM_MALFORMED', defect: 'missing-hash' },
  'failure_missing_index.xml': { code: 'ATTESTATION_RIM_MALFORMED', defect: 'missing-attribute' },
  'failure_missing_meta.xml': { code: 'ATTESTATION_RIM_MALFORMED', defect: 'root-element' },
  'failure_missing_size.xml': { code: 'ATTESTATION_RIM_MALFORMED', defect: 'missing-attribute' },
  'failure_missing_x509_certificate.xml': { code: 'ATTESTATION_RIM_MALFORMED', defect: 'root-element' },
  'failure_missing_x509_data.xml': { code: 'ATTESTATION_RIM_MALFORMED', defect: 'root-element' },
  'failure_no_payload.xml': { code: 'ATTESTATION_RIM_MALFORMED', defect: 'missing-payload' },
}

t.test('rims-malformed: every file is rejected, by parse and by verify', async (t) => {
  const files = readdirSync(`${DIR}rims-malformed/`).sort()
  t.same(files, Object.keys(MALFORMED).sort(), 'the table covers every vector')
  for (const f of files) {
    const xml = read(`rims-malformed/${f}`)
    for (const [step, run] of [['parseRim', () => parseRim(xml)], ['verifyRim', () => verify(xml)]] as const) {
      const e = thrown(run)
      t.equal(codeOf(e), MALFORMED[f]!.code, `${f}: ${step} code`)
      t.equal(detailsOf(e).defect, MALFORMED[f]!.defect, `${f}: ${step} defect`)
    }
  }
})

t.test('failure_duplicate_index, with valid hashes, fails for its duplicate index', async (t) => {
  // The vector's "hash0"/"hashA" values trip the hex check first; with real
  // digests the duplicate is what is left.
  const xml = read('rims-malformed/failure_duplicate_index.xml').replace(/"hash[0A]"/g, `"${'00'.repeat(48)}"`).replace(/size="(10|20)"/g, 'size="48"')
  const e = thrown(() => parseRim(xml))
  t.equal(codeOf(e), 'ATTESTATION_RIM_MALFORMED')
  t.equal(detailsOf(e).defect, 'duplicate-index')
})

/** Mutations of the real driver RIM, each named after what it breaks. */
const HASH7 = '80161aac5e7509f038a6457b111e048207d1dc0e78edbb8c172fca4139c1d5f29cda67ecdd261fdc9203b76387f7389f'
const SIGNED_PAYLOAD = DRIVER_XML.slice(DRIVER_XML.indexOf('    <ns0:Payload'), DRIVER_XML.indexOf('</ns0:Payload>') + '</ns0:Payload>'.length)
const FORGED_PAYLOAD = SIGNED_PAYLOAD.replace(HASH7, 'ff'.repeat(48))
const certificatesOf = (xml: string) => [...xml.matchAll(/<ds:X509Certificate>([\s\S]*?)<\/ds:X509Certificate>/g)].map((m) => m[1]!)
const replaceLeaf = (xml: string, base64: string) => xml.replace(certificatesOf(xml)[0]!, base64)
const KEYINFO_OF = (xml: string) => xml.slice(xml.indexOf('<ds:KeyInfo>'), xml.indexOf('</ds:KeyInfo>'))

const MUTATIONS: Record<string, { xml: string; code: string; defect?: string }> = {
  'one hex digit of an active Hash0 flipped': {
    xml: DRIVER_XML.replace(HASH7, `9${HASH7.slice(1)}`),
    code: 'ATTESTATION_RIM_SIGNATURE_INVALID',
  },
  'one hex digit of an inactive Hash0 flipped': {
    xml: DRIVER_XML.replace(`index="0" active="False" alternatives="1" ns2:Hash0="0`, `index="0" active="False" alternatives="1" ns2:Hash0="1`),
    code: 'ATTESTATION_RIM_SIGNATURE_INVALID',
  },
  'an inactive measurement activated': {
    xml: DRIVER_XML.replace('index="0" active="False"', 'index="0" active="True"'),
    code: 'ATTESTATION_RIM_SIGNATURE_INVALID',
  },
  'colloquialVersion changed': {
    xml: DRIVER_XML.replace('colloquialVersion="550.90.07"', 'colloquialVersion="550.90.08"'),
    code: 'ATTESTATION_RIM_SIGNATURE_INVALID',
  },
  'a Resource with a new index added to the signed Payload': {
    xml: DRIVER_XML.replace('    </ns0:Payload>', `        <ns0:Resource type="Measurement" index="64" active="True" alternatives="1" ns2:Hash0="${'ab'.repeat(48)}" name="Measurement_64" size="48"/>\n    </ns0:Payload>`),
    code: 'ATTESTATION_RIM_SIGNATURE_INVALID',
  },
  'one character of SignatureValue changed': {
    xml: DRIVER_XML.replace('<ds:SignatureValue>uA3a', '<ds:SignatureValue>uB3a'),
    code: 'ATTESTATION_RIM_SIGNATURE_INVALID',
  },
  'DigestValue changed': {
    xml: DRIVER_XML.replace('<ds:DigestValue>gMJp', '<ds:DigestValue>gMJq'),
    code: 'ATTESTATION_RIM_SIGNATURE_INVALID',
  },
  'wrapping: a second, unsigned Payload with other hashes before the signed one': {
    xml: DRIVER_XML.replace(SIGNED_PAYLOAD, `${FORGED_PAYLOAD}\n${SIGNED_PAYLOAD}`),
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'duplicate-payload',
  },
  'wrapping: the signed Payload moved under a new wrapper, a forged one in its place': {
    xml: DRIVER_XML.replace(SIGNED_PAYLOAD, `${FORGED_PAYLOAD}\n<ns0:Evidence>${SIGNED_PAYLOAD}</ns0:Evidence>`),
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'unexpected-element',
  },
  'wrapping: a duplicate Resource index with another hash': {
    xml: DRIVER_XML.replace('    </ns0:Payload>', `        <ns0:Resource type="Measurement" index="7" active="True" alternatives="1" ns2:Hash0="${'ab'.repeat(48)}" name="Measurement_7" size="48"/>\n    </ns0:Payload>`),
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'duplicate-index',
  },
  'wrapping: a forged Payload inside the unsigned Signature (ds:Object)': {
    xml: DRIVER_XML.replace('</ds:KeyInfo>', `</ds:KeyInfo><ds:Object>${FORGED_PAYLOAD}</ds:Object>`),
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'bad-signature',
  },
  'wrapping: a forged Payload inside KeyInfo': {
    xml: DRIVER_XML.replace('<ds:KeyInfo>', `<ds:KeyInfo>${FORGED_PAYLOAD}`),
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'bad-keyinfo',
  },
  'wrapping: the whole signed document moved under a new root': {
    xml: `<SoftwareIdentity xmlns="http://standards.iso.org/iso/19770/-2/2015/schema.xsd" tagId="x" name="GH100" version="1.0">${DRIVER_XML}</SoftwareIdentity>`,
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'unexpected-element',
  },
  'a second Signature at the root': {
    xml: DRIVER_XML.replace('</SoftwareIdentity>', `${DRIVER_XML.slice(DRIVER_XML.indexOf('<ds:Signature'), DRIVER_XML.indexOf('</SoftwareIdentity>'))}</SoftwareIdentity>`),
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'duplicate-signature',
  },
  'Reference URI pointing at an id instead of the document': {
    xml: DRIVER_XML.replace('<ds:Reference URI="">', '<ds:Reference URI="#payload">'),
    code: 'ATTESTATION_RIM_SIGNATURE_INVALID',
  },
  'the enveloped-signature transform removed': {
    xml: DRIVER_XML.replace('<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>', ''),
    code: 'ATTESTATION_RIM_SIGNATURE_INVALID',
  },
  'CanonicalizationMethod downgraded to C14N 1.0 with comments': {
    xml: DRIVER_XML.replace('<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2006/12/xml-c14n11"/>', '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"/>'),
    code: 'ATTESTATION_RIM_SIGNATURE_INVALID',
  },
  'SignatureMethod switched to RSA-SHA256': {
    xml: DRIVER_XML.replace('xmldsig-more#ecdsa-sha384', 'xmldsig-more#rsa-sha256'),
    code: 'ATTESTATION_RIM_SIGNATURE_INVALID',
  },
  'KeyInfo leaf replaced by the VBIOS RIM signer (a real certificate, same issuer)': {
    xml: replaceLeaf(DRIVER_XML, certificatesOf(VBIOS_XML)[0]!),
    code: 'ATTESTATION_RIM_SIGNATURE_INVALID',
  },
  'KeyInfo replaced by the VBIOS RIM KeyInfo (a whole real chain)': {
    xml: DRIVER_XML.replace(KEYINFO_OF(DRIVER_XML), KEYINFO_OF(VBIOS_XML)),
    code: 'ATTESTATION_RIM_SIGNATURE_INVALID',
  },
  'KeyInfo leaf replaced by the GPU device leaf certificate': {
    xml: replaceLeaf(DRIVER_XML, Buffer.from(pemToDer(read('hopperCertChain.txt'))[0]!).toString('base64')),
    code: 'ATTESTATION_RIM_SIGNATURE_INVALID',
  },
  'X509Certificate that is not base64': {
    xml: replaceLeaf(DRIVER_XML, 'invalid base64'),
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'certificate-base64',
  },
  'X509Certificate that is base64 of something else': {
    xml: replaceLeaf(DRIVER_XML, Buffer.from('invalid certificate bytes').toString('base64')),
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'certificate-der',
  },
  'X509Data without certificates': {
    xml: DRIVER_XML.replace(/<ds:X509Data>[\s\S]*<\/ds:X509Data>/, '<ds:X509Data></ds:X509Data>'),
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'missing-x509certificate',
  },
  'KeyInfo without X509Data': {
    xml: DRIVER_XML.replace(/<ds:X509Data>[\s\S]*<\/ds:X509Data>/, ''),
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'missing-x509data',
  },
  'Meta without colloquialVersion': {
    xml: DRIVER_XML.replace(' colloquialVersion="550.90.07"', ''),
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'missing-attribute',
  },
  'Meta removed': {
    xml: DRIVER_XML.replace(/<ns0:Meta [^>]*\/>/, ''),
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'missing-meta',
  },
  'Signature removed': {
    xml: DRIVER_XML.replace(/<ds:Signature [\s\S]*<\/ds:Signature>/, ''),
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'missing-signature',
  },
  'a DOCTYPE with an entity': {
    xml: `<!DOCTYPE SoftwareIdentity [<!ENTITY v "550.90.07">]>\n${DRIVER_XML.replace('colloquialVersion="550.90.07"', 'colloquialVersion="&v;"')}`,
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'dtd',
  },
  'a comment (outside what C14N without comments signs)': {
    xml: DRIVER_XML.replace('    </ns0:Payload>', '<!-- x -->    </ns0:Payload>'),
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'node-type',
  },
  'an xml:id attribute (where C14N 1.0 and 1.1 differ)': {
    xml: DRIVER_XML.replace('<ds:Signature ', '<ds:Signature xml:id="s" '),
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'xml-attribute',
  },
  'a patch tag instead of a base RIM': {
    xml: DRIVER_XML.replace('patch="false"', 'patch="true"'),
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'not-base-rim',
  },
  'elements nested deeper than any RIM': {
    xml: DRIVER_XML.replace('</SoftwareIdentity>', `${'<ns0:Link>'.repeat(20000)}${'</ns0:Link>'.repeat(20000)}</SoftwareIdentity>`),
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'too-deep',
  },
  'a document larger than any RIM': {
    xml: DRIVER_XML.replace('    </ns0:Payload>', `${' '.repeat(1 << 20)}</ns0:Payload>`),
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'too-large',
  },
  'text after the root element': {
    xml: `${DRIVER_XML}<ns0:Payload/>`,
    code: 'ATTESTATION_RIM_MALFORMED',
    defect: 'not-xml',
  },
}

t.test('mutations of the matching driver RIM are rejected with typed codes', async (t) => {
  for (const [name, m] of Object.entries(MUTATIONS)) {
    t.not(m.xml, DRIVER_XML, `${name}: the mutation applies`)
    const e = thrown(() => verify(m.xml))
    t.equal(codeOf(e), m.code, name)
    if (m.defect) t.equal(detailsOf(e).defect, m.defect, `${name}: defect`)
  }
})

t.test('the chain: pinned root, validity window', async (t) => {
  t.equal(codeOf(thrown(() => verify(DRIVER_XML, NOW, DEVICE_ROOT))), 'ATTESTATION_ROOT_CA_UNTRUSTED', 'another NVIDIA root is not the RIM root')
  t.equal(codeOf(thrown(() => verify(VBIOS_XML, AFTER_VBIOS_LEAF))), 'ATTESTATION_CERT_EXPIRED', 'VBIOS leaf expired')
  t.equal(verify(DRIVER_XML, AFTER_VBIOS_LEAF).colloquialVersion, '550.90.07', 'the driver leaf is still valid then')
  t.equal(codeOf(thrown(() => verify(DRIVER_XML, BEFORE_DRIVER_LEAF))), 'ATTESTATION_CERT_EXPIRED', 'driver leaf not yet valid')
  // The carried root is optional: the chain ends at the pinned one.
  const withoutRoot = DRIVER_XML.replace(`<ds:X509Certificate>${certificatesOf(DRIVER_XML)[3]!}</ds:X509Certificate>`, '')
  t.equal(verify(withoutRoot).chain.length, 3)
  // A chain missing its intermediate does not reach the root.
  const withoutL3 = DRIVER_XML.replace(`<ds:X509Certificate>${certificatesOf(DRIVER_XML)[1]!}</ds:X509Certificate>`, '')
  t.equal(codeOf(thrown(() => verify(withoutL3))), 'ATTESTATION_CERT_CHAIN_INVALID')
  t.equal(codeOf(thrown(() => verifyRim(DRIVER_XML, { now: new Date(Number.NaN), root: RIM_ROOT }))), 'ATTESTATION_OPTIONS_INVALID')
})

t.test('any single-bit flip inside the signed content is rejected or changes nothing that is read', async (t) => {
  const reference = verify(DRIVER_XML)
  const start = 0
  const end = DRIVER_XML.indexOf('<ds:Signature')
  // A fixed linear congruential sequence: reproducible, spread over the content.
  let seed = 0x2545f491
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0)
  let rejected = 0
  for (let i = 0; i < 150; i++) {
    const at = start + (next() % (end - start))
    const flipped = String.fromCharCode(DRIVER_XML.charCodeAt(at) ^ (1 << next() % 7))
    const xml = DRIVER_XML.slice(0, at) + flipped + DRIVER_XML.slice(at + 1)
    let v: VerifiedRim | undefined
    const e = thrown(() => {
      v = verify(xml)
    })
    if (e === undefined) {
      // Only a change canonicalisation removes (whitespace inside a tag) may pass.
      t.same(v!.measurements, reference.measurements, `flip at ${at} left the measurements alone`)
      t.same(v!.contentDigest, reference.contentDigest, `flip at ${at}: same signed content`)
    } else {
      rejected++
      t.ok(['ATTESTATION_RIM_SIGNATURE_INVALID', 'ATTESTATION_RIM_MALFORMED'].includes(codeOf(e) ?? ''), `flip at ${at}: ${codeOf(e)}`)
    }
  }
  t.ok(rejected > 140, 'nearly every flip is rejected')
})

t.test('comparison rules', async (t) => {
  const driver = verify(DRIVER_XML)
  const vbios = verify(VBIOS_XML)

  t.test('versions: the report must name the RIMs; case does not matter', async (t) => {
    t.equal(compareMeasurements(params(driver, vbios, { reportVbiosVersion: '96.00.9f.00.01' })).matched.length, 33)
    const e = thrown(() => compareMeasurements(params(driver, vbios, { reportVbiosVersion: '96.00.9F.00.02' })))
    t.equal(codeOf(e), 'ATTESTATION_RIM_MISMATCH')
    t.equal(detailsOf(e).rim, 'vbios')
    t.equal(codeOf(thrown(() => compareMeasurements(params(vbios, driver)))), 'ATTESTATION_RIM_MISMATCH', 'roles swapped')
  })

  t.test('driver and VBIOS may not both claim an active index', async (t) => {
    const e = thrown(() => compareMeasurements(params(driver, driver, { reportVbiosVersion: driver.colloquialVersion })))
    t.equal(codeOf(e), 'ATTESTATION_RIM_MISMATCH')
    t.equal((detailsOf(e).indices as number[]).length, 21)
  })

  t.test('a report block missing for an active golden index is a mismatch', async (t) => {
    const measurements = new Map(REPORT.measurements)
    measurements.delete(8)
    const e = thrown(() => assertMeasurementsMatch(params(driver, vbios, { measurements })))
    t.equal(codeOf(e), 'ATTESTATION_GPU_MEASUREMENT_MISMATCH')
    t.same(detailsOf(e).indices, [7])
    t.equal((detailsOf(e).mismatches as { actual: string | null }[])[0]!.actual, null)
  })

  t.test('every mismatch is listed, not the first', async (t) => {
    const measurements = new Map(REPORT.measurements)
    // Not zeros: the VBIOS RIM's golden value at index 0, and one alternative at 12, is all zeros.
    for (const block of [1, 8, 13, 41]) measurements.set(block, new Uint8Array(48).fill(0xee))
    measurements.set(22, REPORT.measurements.get(22)!.subarray(0, 47))
    const e = thrown(() => assertMeasurementsMatch(params(driver, vbios, { measurements })))
    t.same(detailsOf(e).indices, [0, 7, 12, 21, 40])
    const r = compareMeasurements(params(driver, vbios, { measurements }))
    t.equal(r.matched.length, 28)
    t.same(r.mismatches.map((m) => m.rim), ['vbios', 'driver', 'vbios', 'driver', 'driver'])
  })

  t.test('the NVDEC exception: index 35 only, and only when NVDEC0 is disabled (0x55)', async (t) => {
    const measurements = new Map(REPORT.measurements)
    measurements.set(36, new Uint8Array(48).fill(7))
    const disabled = assertMeasurementsMatch(params(driver, vbios, { measurements, nvdec0Status: 0x55 }))
    t.equal(disabled.matched.length, 32)
    t.same(disabled.exempted.map((m) => m.index), [35])
    const e = thrown(() => assertMeasurementsMatch(params(driver, vbios, { measurements, nvdec0Status: 0xaa })))
    t.equal(codeOf(e), 'ATTESTATION_GPU_MEASUREMENT_MISMATCH')
    t.same(detailsOf(e).indices, [35])
    t.equal(codeOf(thrown(() => compareMeasurements(params(driver, vbios, { nvdec0Status: 0 })))), 'ATTESTATION_GPU_REPORT_MALFORMED')
    // Block 35 (index 34) is not covered by the exception.
    const other = new Map(REPORT.measurements)
    other.set(35, new Uint8Array(48))
    t.same(detailsOf(thrown(() => assertMeasurementsMatch(params(driver, vbios, { measurements: other, nvdec0Status: 0x55 })))).indices, [34])
  })

  t.test('only results of verifyRim are accepted', async (t) => {
    const copy = { ...driver }
    t.notOk(isVerifiedRim(copy))
    t.equal(codeOf(thrown(() => compareMeasurements(params(copy, vbios)))), 'ATTESTATION_OPTIONS_INVALID')
    t.equal(codeOf(thrown(() => compareMeasurements(params(parseRim(DRIVER_XML) as unknown as VerifiedRim, vbios)))), 'ATTESTATION_OPTIONS_INVALID')
  })
})
