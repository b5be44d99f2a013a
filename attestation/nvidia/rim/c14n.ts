/**
 * Canonical XML for RIM signatures: xml-crypto's inclusive C14N with the
 * attribute and namespace order of C14N 1.1 §2.2, and the namespaces a
 * subset's apex inherits. One implementation, shared by the verifier
 * (verify.ts, whose header explains why C14N 1.0 output equals C14N 1.1
 * output for RIMs) and the dev RIM signer, so the two cannot drift apart.
 */
import { C14nCanonicalization, type NamespacePrefix } from 'xml-crypto'

/** Canonical XML 1.1 (XML-DSig 1.1 §6.5.2; W3C REC-xml-c14n11-20080502). */
export const C14N11_ALGORITHM = 'http://www.w3.org/2006/12/xml-c14n11'

/** Lexicographic order by UCS code point, as C14N 1.1 §2.2 requires (not `localeCompare`). */
function compareCodePoints(x: string, y: string): -1 | 0 | 1 {
  const a = [...x]
  const b = [...y]
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const d = a[i]!.codePointAt(0)! - b[i]!.codePointAt(0)!
    if (d !== 0) return d < 0 ? -1 : 1
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1
}

/** xml-crypto's inclusive C14N with C14N 1.1 §2.2 ordering; valid as C14N 1.1 only for the inputs described above. */
export class Canonicalizer11 extends C14nCanonicalization {
  override attrCompare(a: Attr, b: Attr): 1 | 0 | -1 {
    return compareCodePoints(a.namespaceURI ?? '', b.namespaceURI ?? '') || compareCodePoints(a.localName, b.localName)
  }
  override nsCompare(a: NamespacePrefix, b: NamespacePrefix): number {
    return compareCodePoints(a.prefix, b.prefix)
  }
  override getAlgorithmName(): string {
    return C14N11_ALGORITHM
  }
}

/** The one canonicalizer instance (it keeps no state between calls). */
export const canonicalizer = new Canonicalizer11()

/**
 * Namespaces in scope at `el` from its (omitted) ancestors, nearest binding
 * first, as inclusive C14N renders them on the apex of a subset (C14N 1.1
 * §2.4 and the namespace axis, XPath 1.0 §5.4). Prefixes the apex declares
 * or uses itself are rendered by the canonicalizer and left out here.
 */
export function ancestorNamespaces(el: Element): NamespacePrefix[] {
  const found = new Map<string, string>()
  for (let n = el.parentNode; n && n.nodeType === 1; n = n.parentNode) {
    const attrs = (n as Element).attributes
    for (let i = 0; i < attrs.length; i++) {
      const a = attrs[i]!
      const prefix = a.name === 'xmlns' ? '' : a.prefix === 'xmlns' ? a.localName : undefined
      if (prefix !== undefined && !found.has(prefix)) found.set(prefix, a.value)
    }
  }
  const own = new Set<string>([el.prefix ?? ''])
  for (let i = 0; i < el.attributes.length; i++) {
    const a = el.attributes[i]!
    if (a.name === 'xmlns') own.add('')
    else if (a.prefix === 'xmlns') own.add(a.localName)
  }
  // An undeclaration (xmlns="") binds nothing: it is not a namespace node.
  return [...found].filter(([p, uri]) => uri !== '' && !own.has(p)).map(([prefix, namespaceURI]) => ({ prefix, namespaceURI }))
}

