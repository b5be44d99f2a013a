/**
 * NVIDIA Reference Integrity Manifests (RIMs), bytes to structure. No crypto:
 * nothing here hashes, canonicalises or checks a signature (that is
 * `verify.ts`), and nothing compares measurements (`compare.ts`).
 *
 * A RIM is a SWID tag (ISO/IEC 19770-2:2015) whose `Meta` element carries the
 * TCG Reference Integrity Manifest Information Model attributes and whose
 * `Payload` lists golden measurements, one `Resource` per SPDM measurement
 * index, signed with an enveloped XML signature (W3C XML-DSig 1.1). NVIDIA
 * publishes one RIM per driver build and one per VBIOS build.
 *
 * The parser is strict on purpose. A RIM decides which firmware a verifier
 * accepts, so every element this module reads must appear exactly as often as
 * the schema allows one (one `Meta`, one `Payload`, one `Resource` per index,
 * one `Signature`), unknown elements are errors rather than things to skip,
 * and XML features RIMs never use (DTDs, entities, comments, processing
 * instructions, CDATA, attributes in the `xml:` namespace) are rejected
 * before anything else looks at the document. Every failure is a
 * `ParseError` with code ATTESTATION_RIM_MALFORMED and a stable
 * `details.defect` token naming what is wrong.
 */
import { DOMParser } from '@xmldom/xmldom'
import { ParseError } from '../../errors.ts'
import { parseCertificate } from '../../pki/x509.ts'

/** SWID tag namespace (ISO/IEC 19770-2:2015, the `schema.xsd` URI the standard assigns). */
export const SWID_NAMESPACE = 'http://standards.iso.org/iso/19770/-2/2015/schema.xsd'
/**
 * Namespace of the TCG attributes on `Meta` (BindingSpec, PlatformModel,
 * FirmwareManufacturerId, ...): the TCG RIM Information Model, which NVIDIA's
 * RIMs name as `BindingSpec="RIMIM"`, `BindingSpecVersion="1.01"`.
 */
export const TCG_RIM_NAMESPACE =
  'https://trustedcomputinggroup.org/resource/tcg-reference-integrity-manifest-rim-information-model/'
/**
 * Namespace of the `HashN` attributes of a `Resource`: the SHA-384 algorithm
 * URI of XML Encryption 1.1 §5.7.3, used (as TCG's SWID bindings do for file
 * hashes) as the namespace that says which digest the value is.
 */
export const SHA384_HASH_NAMESPACE = 'http://www.w3.org/2001/04/xmlenc#sha384'
/** XML-DSig namespace (XML-DSig 1.1 §1.3). */
export const XMLDSIG_NAMESPACE = 'http://www.w3.org/2000/09/xmldsig#'
/** The `xml:` prefix namespace (Namespaces in XML 1.0 §3). */
const XML_NAMESPACE = 'http://www.w3.org/XML/1998/namespace'

/** A real RIM is about 20 KB; anything far larger is not one, and bounding it bounds the parse. */
export const MAX_RIM_TEXT_LENGTH = 1 << 20
/** SHA-384 digest length: the only digest the `HashN` namespace above admits. */
export const RIM_DIGEST_SIZE = 48
/**
 * Largest RIM index: SPDM measurement block indices run 1..0xFE (DSP0274
 * 1.1 §10.11, 0xFF meaning "all"), and RIM index = SPDM index - 1.
 */
export const MAX_RIM_INDEX = 0xfd
/** NVIDIA RIMs list at most 4 alternatives; a generous bound keeps a hostile count from driving work. */
const MAX_ALTERNATIVES = 64

/** One golden measurement: a `Resource type="Measurement"` of the payload. */
export interface RimMeasurement {
  /** RIM index: the SPDM measurement block with Index `index + 1` (NVIDIA's numbering). */
  readonly index: number
  /** Only active measurements are compared with the report. */
  readonly active: boolean
  /** Acceptable values `Hash0..Hash{alternatives-1}`, in order; any one matches. */
  readonly alternatives: readonly Uint8Array[]
  /** Declared size of the value in bytes (always 48, SHA-384). */
  readonly size: number
  readonly name: string
}

/** What a RIM says: the SWID tag, its TCG metadata and its measurements. */
export interface RimContent {
  /** `SoftwareIdentity/@tagId`. */
  readonly tagId: string
  /** `SoftwareIdentity/@name` (the chip, e.g. "GH100"). */
  readonly name: string
  /** `SoftwareIdentity/@version`. */
  readonly version: string
  readonly tagVersion: string | undefined
  /** `Meta/@colloquialVersion`: the driver ("550.90.07") or VBIOS ("96.00.9F.00.01") version. */
  readonly colloquialVersion: string
  readonly product: string
  readonly edition: string | undefined
  readonly revision: string | undefined
  readonly payloadType: string | undefined
  /** TCG RIM IM attributes of `Meta`. */
  readonly bindingSpec: string | undefined
  readonly bindingSpecVersion: string | undefined
  readonly platformManufacturerId: string | undefined
  readonly platformManufacturerStr: string | undefined
  readonly platformModel: string | undefined
  readonly firmwareManufacturer: string
  readonly firmwareManufacturerId: string
  /** Every `Resource`, in document order (active and inactive). */
  readonly measurements: readonly RimMeasurement[]
}

/** One `ds:Reference` of `SignedInfo`, as written (XML-DSig 1.1 §4.4.3). */
export interface RimReference {
  /** `@URI`; null when the attribute is absent. */
  readonly uri: string | null
  /** `Transforms/Transform/@Algorithm`, in order. */
  readonly transforms: readonly string[]
  readonly digestMethod: string
  readonly digestValue: Uint8Array
}

/** The signature material of a RIM, as written; `verify.ts` decides whether it is acceptable. */
export interface RimSignature {
  readonly canonicalizationMethod: string
  readonly signatureMethod: string
  readonly references: readonly RimReference[]
  /** Decoded `SignatureValue`. */
  readonly signatureValue: Uint8Array
}

/** A parsed, not yet verified RIM. */
export interface ParsedRim extends RimContent {
  readonly signature: RimSignature
  /** `KeyInfo/X509Data/X509Certificate` DER, in document order (NVIDIA: leaf first, root last). */
  readonly certificateChainDer: readonly Uint8Array[]
}

function malformed(defect: string, message: string, details: Record<string, unknown> = {}, cause?: unknown): never {
  throw new ParseError('ATTESTATION_RIM_MALFORMED', message, {
    details: { defect, ...details },
    ...(cause === undefined ? {} : { cause }),
  })
}

const ELEMENT_NODE = 1
const TEXT_NODE = 3
const PROCESSING_INSTRUCTION_NODE = 7

/** XML whitespace (XML 1.0 §2.3 production S). */
const isXmlSpace = (s: string) => /^[ \t\r\n]*$/.test(s)

/**
 * Parse `text` as a namespace-well-formed XML document of element and text
 * nodes only. xmldom is lenient by default, so every warning is an error
 * here, and what it would let through silently (a DTD, text after the root
 * element, unbound prefixes, comments, PIs, CDATA) is checked afterwards.
 *
 * Exported for `verify.ts`, which re-parses the canonical bytes it digested.
 */
export function parseXmlDocument(text: string, what = 'RIM'): Document {
  if (typeof text !== 'string') malformed('not-text', `${what} is not a string`)
  if (text.length > MAX_RIM_TEXT_LENGTH) {
    malformed('too-large', `${what} is larger than any RIM`, { length: text.length, max: MAX_RIM_TEXT_LENGTH })
  }
  const source = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text
  // No DTD means no entity expansion of any kind (XXE, billion laughs), and
  // no default attributes that a signer and a verifier could see differently.
  if (/<!DOCTYPE|<!ENTITY/i.test(source)) malformed('dtd', `${what} has a document type declaration`)
  const fail = (level: string) => (msg: string) => {
    throw new Error(`${level}: ${msg}`)
  }
  let doc: Document
  try {
    doc = new DOMParser({
      errorHandler: { warning: fail('warning'), error: fail('error'), fatalError: fail('fatal') },
    }).parseFromString(source, 'text/xml')
  } catch (e) {
    return malformed('not-xml', `${what} is not well-formed XML`, {}, e)
  }
  let root: Element | undefined
  for (let i = 0; i < doc.childNodes.length; i++) {
    const n = doc.childNodes[i]!
    if (n.nodeType === ELEMENT_NODE && root === undefined) root = n as Element
    else if (n.nodeType === TEXT_NODE && isXmlSpace(n.nodeValue ?? '')) continue
    // xmldom reports the XML declaration as a PI; it is not document data
    // (C14N 1.1 §1: canonical form removes it) and may only come first.
    else if (n.nodeType === PROCESSING_INSTRUCTION_NODE && i === 0 && (n as ProcessingInstruction).target === 'xml') continue
    else malformed('outside-root', `${what} has content outside its root element`, { nodeType: n.nodeType })
  }
  if (!root) return malformed('no-root', `${what} has no root element`)
  checkTree(root, what)
  return doc
}

/**
 * Deepest element nesting accepted. A RIM's deepest element is 5 levels down
 * (Signature/SignedInfo/Reference/Transforms/Transform); the bound keeps
 * recursive DOM code (cloning, canonicalisation) far from the stack limit.
 */
const MAX_DEPTH = 16

/** Elements and text only; every prefix bound; no `xml:` attributes (see verify.ts on C14N 1.1); bounded depth. */
function checkTree(root: Element, what: string): void {
  const stack: [Element, number][] = [[root, 1]]
  for (let item = stack.pop(); item; item = stack.pop()) {
    const [el, depth] = item
    if (depth > MAX_DEPTH) malformed('too-deep', `${what} nests elements deeper than any RIM`, { max: MAX_DEPTH })
    if (el.prefix && !el.namespaceURI) malformed('unbound-prefix', `${what} uses an undeclared prefix`, { element: el.tagName })
    for (let i = 0; i < el.attributes.length; i++) {
      const a = el.attributes[i]!
      if (a.prefix && a.prefix !== 'xmlns' && !a.namespaceURI) {
        malformed('unbound-prefix', `${what} uses an undeclared prefix`, { element: el.tagName, attribute: a.name })
      }
      if (a.namespaceURI === XML_NAMESPACE) {
        malformed('xml-attribute', `${what} carries an xml: attribute`, { element: el.tagName, attribute: a.name })
      }
    }
    for (let i = 0; i < el.childNodes.length; i++) {
      const n = el.childNodes[i]!
      if (n.nodeType === ELEMENT_NODE) stack.push([n as Element, depth + 1])
      else if (n.nodeType !== TEXT_NODE) {
        malformed('node-type', `${what} has a node RIMs never carry (comment, PI or CDATA)`, {
          element: el.tagName,
          nodeType: n.nodeType,
        })
      }
    }
  }
}

/** Child elements of `el`; non-whitespace text between them is an error (element-only content). */
function childElements(el: Element): Element[] {
  const out: Element[] = []
  for (let i = 0; i < el.childNodes.length; i++) {
    const n = el.childNodes[i]!
    if (n.nodeType === ELEMENT_NODE) out.push(n as Element)
    else if (!isXmlSpace(n.nodeValue ?? '')) malformed('stray-text', `<${el.localName}> has text where only elements belong`)
  }
  return out
}

function is(el: Element, ns: string, localName: string): boolean {
  return el.namespaceURI === ns && el.localName === localName
}

/** The text of an element that must hold text only. */
function textOf(el: Element): string {
  let s = ''
  for (let i = 0; i < el.childNodes.length; i++) {
    const n = el.childNodes[i]!
    if (n.nodeType !== TEXT_NODE) malformed('unexpected-element', `<${el.localName}> must hold text only`)
    s += n.nodeValue ?? ''
  }
  return s
}

/** Non-namespace-declaration attributes, by namespace and local name. */
function attributesOf(el: Element): { ns: string | null; name: string; value: string }[] {
  const out: { ns: string | null; name: string; value: string }[] = []
  for (let i = 0; i < el.attributes.length; i++) {
    const a = el.attributes[i]!
    if (a.name === 'xmlns' || a.prefix === 'xmlns') continue
    out.push({ ns: a.namespaceURI || null, name: a.localName ?? a.name, value: a.value })
  }
  return out
}

/**
 * Read the attributes of `el`: exactly the `allowed` unqualified names plus,
 * per namespace in `namespaced`, the listed local names; anything else is an
 * error. Returns them by name (`ns` names keyed `{ns}local`).
 */
function readAttributes(
  el: Element,
  allowed: readonly string[],
  namespaced: Readonly<Record<string, readonly string[]>> = {},
): Map<string, string> {
  const out = new Map<string, string>()
  for (const a of attributesOf(el)) {
    const ok = a.ns === null ? allowed.includes(a.name) : (namespaced[a.ns]?.includes(a.name) ?? false)
    if (!ok) {
      malformed('unknown-attribute', `<${el.localName}> has an unexpected attribute`, {
        element: el.localName,
        attribute: a.name,
        namespace: a.ns,
      })
    }
    out.set(a.ns === null ? a.name : `{${a.ns}}${a.name}`, a.value)
  }
  return out
}

function required(attrs: Map<string, string>, key: string, element: string): string {
  const v = attrs.get(key)
  if (v === undefined || v === '') malformed('missing-attribute', `<${element}> lacks ${key}`, { element, attribute: key })
  return v
}

/** A decimal without sign or leading zeros (xs:nonNegativeInteger as RIMs write it). */
function decimal(value: string, defect: string, what: string, details: Record<string, unknown>): number {
  if (!/^(0|[1-9][0-9]{0,8})$/.test(value)) malformed(defect, `${what} is not a decimal number`, { ...details, value })
  return Number(value)
}

/**
 * Strict base64 (RFC 4648 §4) after removing XML whitespace, as
 * xs:base64Binary allows (XML Schema 2 §3.2.16): canonical padding only.
 */
export function decodeBase64(text: string, defect: string, what: string): Uint8Array {
  const b64 = text.replace(/[ \t\r\n]+/g, '')
  if (b64.length === 0 || b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) {
    malformed(defect, `${what} is not base64`)
  }
  const bytes = Buffer.from(b64, 'base64')
  if (bytes.toString('base64') !== b64) malformed(defect, `${what} is not canonical base64`)
  return new Uint8Array(bytes)
}

function hexBytes(value: string, size: number, details: Record<string, unknown>): Uint8Array {
  if (value.length !== size * 2 || !/^[0-9a-fA-F]*$/.test(value)) {
    malformed('bad-hash', `a golden value is not ${size} bytes of hex`, { ...details, length: value.length })
  }
  return new Uint8Array(Buffer.from(value, 'hex'))
}

const RESOURCE_ATTRIBUTES = ['type', 'index', 'active', 'alternatives', 'name', 'size'] as const
/** `Resource/@type` of a golden measurement, as NVIDIA writes it (its C++ SDK selects on it). */
const MEASUREMENT_TYPE = 'Measurement'

function readResource(el: Element, position: number): RimMeasurement {
  if (!is(el, SWID_NAMESPACE, 'Resource')) {
    malformed('unexpected-element', 'a Payload holds something other than Resource elements', { element: el.localName, position })
  }
  if (childElements(el).length !== 0) malformed('unexpected-element', 'a Resource has child elements', { position })
  // Which HashN names exist depends on `alternatives`, so read the plain
  // attributes first and then check the namespaced ones against the count.
  const hashNames = attributesOf(el)
    .filter((a) => a.ns === SHA384_HASH_NAMESPACE)
    .map((a) => a.name)
  const attrs = readAttributes(el, RESOURCE_ATTRIBUTES, { [SHA384_HASH_NAMESPACE]: hashNames })
  const where = { position }
  if (attrs.get('type') !== MEASUREMENT_TYPE) {
    malformed('bad-type', 'a Resource is not a Measurement', { ...where, type: attrs.get('type') ?? null })
  }
  const index = decimal(required(attrs, 'index', 'Resource'), 'bad-index', 'Resource index', where)
  if (index > MAX_RIM_INDEX) malformed('bad-index', 'Resource index is beyond the SPDM index range', { ...where, index })
  const at = { position, index }
  const activeText = required(attrs, 'active', 'Resource')
  // Exactly the two spellings NVIDIA writes: its Python verifier treats any
  // other value as active and its C++ SDK as inactive, so neither is safe.
  if (activeText !== 'True' && activeText !== 'False') {
    malformed('bad-active', 'Resource active is neither True nor False', { ...at, value: activeText })
  }
  const alternatives = decimal(required(attrs, 'alternatives', 'Resource'), 'bad-alternatives', 'Resource alternatives', at)
  if (alternatives < 1 || alternatives > MAX_ALTERNATIVES) {
    malformed('bad-alternatives', 'Resource alternatives is out of range', { ...at, alternatives })
  }
  const size = decimal(required(attrs, 'size', 'Resource'), 'bad-size', 'Resource size', at)
  const name = required(attrs, 'name', 'Resource')
  // Presence before form, form before the size rule: each malformed vector
  // is then rejected for the defect its name states.
  const hashes: string[] = []
  for (let k = 0; k < alternatives; k++) {
    const v = attrs.get(`{${SHA384_HASH_NAMESPACE}}Hash${k}`)
    if (v === undefined) malformed('missing-hash', `Resource lacks Hash${k} in the SHA-384 namespace`, { ...at, alternative: k })
    hashes.push(v)
  }
  if (hashNames.length !== alternatives) {
    malformed('extra-hash', 'Resource has more hash values than its alternatives count', { ...at, alternatives, hashes: hashNames })
  }
  const values = hashes.map((v, k) => hexBytes(v, size, { ...at, alternative: k }))
  if (size !== RIM_DIGEST_SIZE) malformed('bad-size', 'Resource size is not the SHA-384 digest size', { ...at, size })
  return { index, active: activeText === 'True', alternatives: values, size, name }
}

function readPayload(el: Element): RimMeasurement[] {
  readAttributes(el, [])
  const resources = childElements(el)
  if (resources.length === 0) malformed('empty-payload', 'the Payload lists no measurements')
  const seen = new Set<number>()
  return resources.map((r, position) => {
    const m = readResource(r, position)
    if (seen.has(m.index)) malformed('duplicate-index', 'two Resources claim one index', { index: m.index })
    seen.add(m.index)
    return m
  })
}

const TCG = TCG_RIM_NAMESPACE
const META_TCG_ATTRIBUTES = [
  'BindingSpec',
  'BindingSpecVersion',
  'PlatformManufacturerId',
  'PlatformManufacturerStr',
  'PlatformModel',
  'FirmwareManufacturer',
  'FirmwareManufacturerId',
] as const

type MetaFields = Omit<RimContent, 'tagId' | 'name' | 'version' | 'tagVersion' | 'measurements'>

function readMeta(el: Element): MetaFields {
  if (childElements(el).length !== 0) malformed('unexpected-element', 'Meta has child elements')
  const a = readAttributes(el, ['colloquialVersion', 'product', 'edition', 'revision', 'PayloadType'], { [TCG]: META_TCG_ATTRIBUTES })
  return {
    colloquialVersion: required(a, 'colloquialVersion', 'Meta'),
    product: required(a, 'product', 'Meta'),
    edition: a.get('edition'),
    revision: a.get('revision'),
    payloadType: a.get('PayloadType'),
    bindingSpec: a.get(`{${TCG}}BindingSpec`),
    bindingSpecVersion: a.get(`{${TCG}}BindingSpecVersion`),
    platformManufacturerId: a.get(`{${TCG}}PlatformManufacturerId`),
    platformManufacturerStr: a.get(`{${TCG}}PlatformManufacturerStr`),
    platformModel: a.get(`{${TCG}}PlatformModel`),
    firmwareManufacturer: required(a, `{${TCG}}FirmwareManufacturer`, 'Meta'),
    firmwareManufacturerId: required(a, `{${TCG}}FirmwareManufacturerId`, 'Meta'),
  }
}

/** The one element of `children` named `ns`/`localName`: none or several is an error. */
function only(children: readonly Element[], ns: string, localName: string, where: string): Element {
  const found = children.filter((c) => is(c, ns, localName))
  if (found.length === 0) malformed(`missing-${localName.toLowerCase()}`, `${where} has no ${localName}`)
  if (found.length > 1) {
    malformed(`duplicate-${localName.toLowerCase()}`, `${where} has more than one ${localName}`, { count: found.length })
  }
  return found[0]!
}

/** An element carrying only an `Algorithm` attribute and no content (XML-DSig 1.1 §4.4.1, §4.4.2, §4.4.3.4, §4.4.3.5). */
function algorithmOf(el: Element): string {
  if (childElements(el).length !== 0) malformed('unexpected-element', `${el.localName} has parameters, which no RIM uses`)
  return required(readAttributes(el, ['Algorithm']), 'Algorithm', el.localName)
}

function readReference(el: Element): RimReference {
  const attrs = readAttributes(el, ['URI'])
  const kids = childElements(el)
  // Schema order (XML-DSig 1.1 §4.4.3): Transforms?, DigestMethod, DigestValue.
  const names = kids.map((k) => (k.namespaceURI === XMLDSIG_NAMESPACE ? k.localName : `{${k.namespaceURI}}${k.localName}`))
  const withTransforms = names.length === 3 && names[0] === 'Transforms'
  const expected = withTransforms ? ['Transforms', 'DigestMethod', 'DigestValue'] : ['DigestMethod', 'DigestValue']
  if (names.join() !== expected.join()) {
    malformed('bad-reference', 'Reference is not Transforms?, DigestMethod, DigestValue', { children: names })
  }
  const transforms = withTransforms
    ? childElements(kids[0]!).map((t) => {
        if (!is(t, XMLDSIG_NAMESPACE, 'Transform')) malformed('bad-reference', 'Transforms holds something other than Transform')
        return algorithmOf(t)
      })
    : []
  const [digestMethod, digestValue] = kids.slice(withTransforms ? 1 : 0)
  return {
    uri: attrs.get('URI') ?? null,
    transforms,
    digestMethod: algorithmOf(digestMethod!),
    digestValue: decodeBase64(textOf(digestValue!), 'bad-digest-value', 'DigestValue'),
  }
}

/**
 * Read a `ds:SignedInfo` (XML-DSig 1.1 §4.4): CanonicalizationMethod,
 * SignatureMethod, Reference+, in that order and nothing else. Exported for
 * `verify.ts`, which reads it again from the canonical bytes it verified.
 */
export function readSignedInfo(el: Element): Omit<RimSignature, 'signatureValue'> {
  if (!is(el, XMLDSIG_NAMESPACE, 'SignedInfo')) malformed('missing-signedinfo', 'expected ds:SignedInfo')
  readAttributes(el, [])
  const kids = childElements(el)
  const [c14n, sigMethod, ...refs] = kids
  if (
    c14n === undefined ||
    sigMethod === undefined ||
    !is(c14n, XMLDSIG_NAMESPACE, 'CanonicalizationMethod') ||
    !is(sigMethod, XMLDSIG_NAMESPACE, 'SignatureMethod')
  ) {
    malformed('bad-signedinfo', 'SignedInfo does not start with CanonicalizationMethod, SignatureMethod')
  }
  if (refs.length === 0) malformed('bad-signedinfo', 'SignedInfo has no Reference')
  return {
    canonicalizationMethod: algorithmOf(c14n),
    signatureMethod: algorithmOf(sigMethod),
    references: refs.map((r) => {
      if (!is(r, XMLDSIG_NAMESPACE, 'Reference')) malformed('bad-signedinfo', 'SignedInfo holds something other than Reference')
      return readReference(r)
    }),
  }
}

/** The elements of a `ds:Signature` that `verify.ts` needs, and what they say. */
export interface SignatureParts {
  readonly element: Element
  readonly signedInfo: Element
  readonly signature: RimSignature
  readonly certificateChainDer: Uint8Array[]
}

/**
 * Read a `ds:Signature` (XML-DSig 1.1 §4.1) of exactly the shape NVIDIA
 * signs: SignedInfo, SignatureValue, KeyInfo holding one X509Data of
 * X509Certificate elements. No `Object` (it could carry content that looks
 * signed but is not), no other KeyInfo forms.
 */
function readSignature(el: Element): SignatureParts {
  readAttributes(el, [])
  const kids = childElements(el)
  const names = kids.map((k) => (k.namespaceURI === XMLDSIG_NAMESPACE ? k.localName : `{${k.namespaceURI}}${k.localName}`))
  if (names.join() !== 'SignedInfo,SignatureValue,KeyInfo') {
    malformed('bad-signature', 'Signature is not SignedInfo, SignatureValue, KeyInfo', { children: names })
  }
  const [signedInfo, signatureValue, keyInfo] = kids as [Element, Element, Element]
  const info = readSignedInfo(signedInfo)
  readAttributes(signatureValue, [])
  const value = decodeBase64(textOf(signatureValue), 'bad-signature-value', 'SignatureValue')
  readAttributes(keyInfo, [])
  const x509Data = only(childElements(keyInfo), XMLDSIG_NAMESPACE, 'X509Data', 'KeyInfo')
  if (childElements(keyInfo).length !== 1) malformed('bad-keyinfo', 'KeyInfo holds more than X509Data')
  readAttributes(x509Data, [])
  const certs = childElements(x509Data)
  if (certs.length === 0) malformed('missing-x509certificate', 'X509Data holds no certificate')
  const certificateChainDer = certs.map((c, position) => {
    if (!is(c, XMLDSIG_NAMESPACE, 'X509Certificate')) {
      malformed('bad-keyinfo', 'X509Data holds something other than X509Certificate', { position })
    }
    readAttributes(c, [])
    const der = decodeBase64(textOf(c), 'certificate-base64', 'X509Certificate')
    try {
      parseCertificate(der)
    } catch (e) {
      malformed('certificate-der', 'X509Certificate is not a certificate this verifier can read', { position }, e)
    }
    return der
  })
  return { element: el, signedInfo, signature: { ...info, signatureValue: value }, certificateChainDer }
}

/** Root-level SWID elements a RIM may carry besides Meta, Payload and Signature; their content is not read. */
const IGNORED_SWID_CHILDREN = ['Entity', 'Link'] as const

/**
 * Read the SWID tag rooted at `root`. With `signature: 'required'` (a RIM
 * as published) there must be exactly one `ds:Signature`, a child of the
 * root; with `'forbidden'` (the signed content after the enveloped-signature
 * transform) there must be none anywhere.
 */
export function readSoftwareIdentity(
  root: Element,
  signature: 'required' | 'forbidden',
): { content: RimContent; signature: SignatureParts | undefined } {
  if (!is(root, SWID_NAMESPACE, 'SoftwareIdentity')) {
    malformed('root-element', 'the root element is not a SWID SoftwareIdentity', {
      element: root.localName,
      namespace: root.namespaceURI,
    })
  }
  const a = readAttributes(root, ['tagId', 'name', 'version', 'tagVersion', 'corpus', 'patch', 'supplemental', 'versionScheme'])
  // A patch or supplemental tag amends another tag and a corpus tag describes
  // an installer (ISO/IEC 19770-2 tag types): none is a complete set of
  // golden values, so none may stand in for one (NVIDIA's are all "false").
  for (const flag of ['corpus', 'patch', 'supplemental']) {
    const v = a.get(flag)
    if (v !== undefined && v !== 'false') malformed('not-base-rim', `SoftwareIdentity is a ${flag} tag`, { [flag]: v })
  }
  const kids = childElements(root)
  for (const k of kids) {
    const known =
      (k.namespaceURI === SWID_NAMESPACE && ['Meta', 'Payload', ...IGNORED_SWID_CHILDREN].includes(k.localName ?? '')) ||
      is(k, XMLDSIG_NAMESPACE, 'Signature')
    if (!known) {
      malformed('unexpected-element', 'SoftwareIdentity has an unexpected child element', {
        element: k.localName,
        namespace: k.namespaceURI,
      })
    }
  }
  // Payload first: for a document with several defects, the one about the
  // measurements is the one worth reporting.
  const measurements = readPayload(only(kids, SWID_NAMESPACE, 'Payload', 'SoftwareIdentity'))
  const meta = readMeta(only(kids, SWID_NAMESPACE, 'Meta', 'SoftwareIdentity'))
  const signatures = root.getElementsByTagNameNS(XMLDSIG_NAMESPACE, 'Signature')
  let parts: SignatureParts | undefined
  if (signature === 'forbidden') {
    if (signatures.length !== 0) {
      malformed('signature-in-content', 'the signed content contains a Signature', { count: signatures.length })
    }
  } else {
    const sig = only(kids, XMLDSIG_NAMESPACE, 'Signature', 'SoftwareIdentity')
    // One Signature in the whole document, and it is the root's child: no
    // second one elsewhere that another tool might verify instead.
    if (signatures.length !== 1) {
      malformed('duplicate-signature', 'the document has more than one Signature', { count: signatures.length })
    }
    parts = readSignature(sig)
  }
  return {
    content: {
      tagId: required(a, 'tagId', 'SoftwareIdentity'),
      name: required(a, 'name', 'SoftwareIdentity'),
      version: required(a, 'version', 'SoftwareIdentity'),
      tagVersion: a.get('tagVersion'),
      ...meta,
      measurements,
    },
    signature: parts,
  }
}

/**
 * Parse a signed RIM (SWID XML text). Structure only: the signature is read
 * but not checked, and the certificates are parsed but not chained; use
 * `verifyRim` before trusting anything in the result. Throws `ParseError`
 * ATTESTATION_RIM_MALFORMED.
 */
export function parseRim(xmlText: string): ParsedRim {
  const doc = parseXmlDocument(xmlText)
  const { content, signature } = readSoftwareIdentity(doc.documentElement!, 'required')
  return { ...content, signature: signature!.signature, certificateChainDer: signature!.certificateChainDer }
}
