import { AsnConvert } from '@peculiar/asn1-schema'
import * as ax from '@peculiar/asn1-x509'
console.log(Object.keys(ax).filter(k=>/^(TBS|Certificate|Name|Extension|Time|Validity|SubjectPublic|Basic|KeyUsage|Authority|SubjectKey|CRL|Revoked|Distribution|id_ce)/.test(k)).join(' '))
console.log(typeof AsnConvert.serialize)
