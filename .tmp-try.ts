import { writeFileSync } from 'node:fs'
import { createDevRootCa } from './attestation/dev/root-ca.ts'
import { parseCertificate } from './attestation/pki/x509.ts'
import { parseCrl } from './attestation/pki/crl.ts'
import { parsePckExtension } from './attestation/tdx/abi/pck-extension.ts'
const ca = createDevRootCa({ seed: new Uint8Array(32), now: new Date('2025-06-01T00:00:00Z') })
const leaf = ca.issuePckLeaf({ fmspc: 'de7000000000', pceId: '0000', cpuSvn: new Uint8Array(16).fill(3), sgxTcbComponents: Array(16).fill(3), pceSvn: 11 })
writeFileSync('/tmp/d0.der', leaf.der); writeFileSync('/tmp/d1.der', ca.platformCaDer); writeFileSync('/tmp/d2.der', ca.rootCertificateDer); writeFileSync('/tmp/d3.der', ca.tcbSigningDer)
const crl = ca.issueCrl({ issuer: 'platform', revokedSerials: [leaf.serial, 'ff01'], thisUpdate: new Date('2025-06-01T00:00:00Z'), nextUpdate: new Date('2025-07-01T00:00:00Z') })
writeFileSync('/tmp/d.crl', crl)
console.log(parseCertificate(leaf.der).serial, leaf.serial, parsePckExtension(parseCertificate(leaf.der)))
console.log(parseCrl(crl).revoked, ca.rootFingerprint)
for (const d of [ca.rootCertificateDer, ca.platformCaDer, ca.tcbSigningDer]) { const c = parseCertificate(d); console.log(c.basicConstraints, c.keyUsage) }
