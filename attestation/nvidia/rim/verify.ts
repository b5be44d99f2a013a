/**
 * Verification of an NVIDIA RIM: its enveloped XML signature (W3C XML-DSig
 * 1.1) and its signing chain to the pinned RIM root. Verification only: no
 * policy, and no comparison with a GPU report (`compare.ts`). Revocation is
 * not checked here; OCSP for the RIM chain is verified by the OCSP module.
 *
 * Fixed order, stopping at the first failure:
 *  1. parse (`parse.ts`): one `ds:Signature` in the document, a child of the
 *     root, holding SignedInfo, SignatureValue and one X509Data only;
 *  2. the signature profile NVIDIA uses and nothing else: C14N 1.1,
 *     ECDSA-SHA384, exactly one Reference with URI="" and exactly the
 *     transforms enveloped-signature then C14N 1.1, SHA-384 digest;
 *  3. SignedInfo canonicalised and its 96-byte r||s value checked with the
 *     key of the first KeyInfo certificate (XML-DSig 1.1 §3.2.2);
 *  4. SignedInfo read again from the very bytes just verified, the document
 *     without its Signature canonicalised, and the SHA-384 of that compared
 *     with the signed DigestValue (§3.2.1);
 *  5. the RIM parsed again from those canonical bytes, and only from them
 *     ("see what is signed", XML-DSig 1.1 §8.1.3): nothing a verifier
 *     returns can come from outside the digested content;
 *  6. the KeyInfo chain, leaf first, to the pinned root at `now`.
 *
 * Canonical XML 1.1 and xml-crypto. xml-crypto 6.3.2 canonicalises with
 * C14N 1.0 (inclusive and exclusive) only; it has no C14N 1.1. The two differ
 * only in C14N 1.1 §2.4 (document subsets: when an element's parent is
 * omitted from the node-set, C14N 1.1 stops inheriting `xml:id` and fixes up
 * `xml:base`; `xml:lang` and `xml:space` are inherited by both). Here:
 *  - the Reference covers the whole document minus the Signature subtree, so
 *    no element in the node-set has an omitted parent and §2.4 never applies;
 *  - SignedInfo is canonicalised as a subset whose ancestors are omitted, so
 *    §2.4 does apply to it, but only through `xml:` attributes on those
 *    ancestors, and `parse.ts` rejects every `xml:` attribute in a RIM.
 * With no `xml:` attributes anywhere, C14N 1.1 output equals C14N 1.0
 * output, which is what xml-crypto's `C14nCanonicalization` produces; this
 * module subclasses it only to sort namespace and attribute nodes by code
 * point (C14N 1.1 §2.2) where xml-crypto uses `localeCompare`. The
 * signature algorithm is not taken from xml-crypto at all (it knows RSA and
 * HMAC only): SignedInfo is verified here with `verifyRaw('ecdsa-sha384')`.
 */
import type { NamespacePrefix } from 'xml-crypto'
import { ancestorNamespaces, canonicalizer, C14N11_ALGORITHM } from './c14n.ts'
import { ConfigError, VerificationError } from '../../errors.ts'
import { verifyChain } from '../../pki/chain.ts'
import { certificateKey, sha384, verifyRaw } from '../../pki/ecdsa.ts'
import { commonName, parseCertificate, sameBytes, type Certificate } from '../../pki/x509.ts'
import type { TrustedRoot } from '../../roots/trust-root.ts'
import {
  parseXmlDocument,
  readSignedInfo,
  readSoftwareIdentity,
  type RimContent,
  type RimSignature,
} from './parse.ts'

export { C14N11_ALGORITHM }
/** The enveloped-signature transform (XML-DSig 1.1 §6.6.4). */
export const ENVELOPED_SIGNATURE_TRANSFORM = 'http://www.w3.org/2000/09/xmldsig#enveloped-signature'
/** ECDSA over SHA-384 (XML-DSig 1.1 §6.4.3; RFC 6931 §2.3.6). */
export const ECDSA_SHA384_ALGORITHM = 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384'
/** SHA-384 digest (XML-DSig 1.1 §6.2.4; RFC 6931 §2.1.3). */
export const SHA384_DIGEST_ALGORITHM = 'http://www.w3.org/2001/04/xmldsig-more#sha384'
/**
 * An XML-DSig ECDSA SignatureValue is r || s, each I2OSP-encoded to the
 * byte length of the curve order (XML-DSig 1.1 §6.4.3): 2 x 48 for P-384.
 * Not the DER `ECDSA-Sig-Value` of X.509.
 */
export const ECDSA_P384_SIGNATURE_LENGTH = 96
/** SHA-384 output length. */
const SHA384_LENGTH = 48
/** keyUsage digitalSignature (RFC 5280 §4.2.1.3: bit 0). */
const KEY_USAGE_DIGITAL_SIGNATURE = 1 << 0
/** Chain label in error details. */
const CHAIN_LABEL = 'nvidia-rim'

export interface VerifyRimOptions {
  /** The instant at which the signing chain must be valid. Required: no hidden clock. */
  readonly now: Date
  /** The pinned root of the RIM signing chain (NVIDIA's "CoRIM signing Root CA" in production). */
  readonly root: TrustedRoot
}

/** A RIM whose signature and chain verified; every field comes from the signed content. */
export interface VerifiedRim extends RimContent {
  /** SHA-384 of the canonical signed content (the Reference's digest). */
  readonly contentDigest: Uint8Array
  /** The signing chain below the root, leaf first, as verified. */
  readonly chain: readonly Certificate[]
  readonly signer: {
    readonly commonName: string
    /** Lower-case hex. */
    readonly serial: string
    readonly notBefore: Date
    readonly notAfter: Date
  }
  readonly root: { readonly kind: TrustedRoot['kind']; readonly fingerprint: string }
  readonly verifiedAt: Date
}

/** Results of `verifyRim`: `compare.ts` accepts nothing else, so a hand-built object cannot pass as verified. */
const verifiedRims = new WeakSet<object>()

/** True for objects returned by `verifyRim` (in this process). */
export function isVerifiedRim(value: unknown): value is VerifiedRim {
  return typeof value === 'object' && value !== null && verifiedRims.has(value)
}

function invalidSignature(reason: string, details: Record<string, unknown> = {}, cause?: unknown): never {
  throw new VerificationError('ATTESTATION_RIM_SIGNATURE_INVALID', `RIM signature: ${reason}`, {
    details: { reason, ...details },
    ...(cause === undefined ? {} : { cause }),
  })
}

/** Canonical UTF-8 bytes of `el` and, decoded back, the exact text those bytes hold. */
function canonicalize(el: Element, ancestors: NamespacePrefix[], what: string): { bytes: Uint8Array; text: string } {
  let out: string
  try {
    out = canonicalizer.process(el, { ancestorNamespaces: ancestors })
  } catch (e) {
    return invalidSignature(`${what} cannot be canonicalised`, {}, e)
  }
  const bytes = new Uint8Array(Buffer.from(out, 'utf8'))
  // Re-parse what was hashed, not the string it came from: they differ if
  // the string held a lone surrogate, which UTF-8 encoding replaced.
  return { bytes, text: Buffer.from(bytes).toString('utf8') }
}

/** Step 2: the exact profile NVIDIA signs with; anything else fails closed. */
function checkProfile(sig: Omit<RimSignature, 'signatureValue'>): void {
  if (sig.canonicalizationMethod !== C14N11_ALGORITHM) {
    invalidSignature('CanonicalizationMethod is not C14N 1.1', { algorithm: sig.canonicalizationMethod })
  }
  if (sig.signatureMethod !== ECDSA_SHA384_ALGORITHM) {
    invalidSignature('SignatureMethod is not ECDSA-SHA384', { algorithm: sig.signatureMethod })
  }
  if (sig.references.length !== 1) invalidSignature('SignedInfo does not hold exactly one Reference', { count: sig.references.length })
  const ref = sig.references[0]!
  // URI="" is the whole document without comments (XML-DSig 1.1 §4.4.3.3):
  // an ID-based reference could point at a wrapped copy instead.
  if (ref.uri !== '') invalidSignature('Reference URI is not ""', { uri: ref.uri })
  const expected = [ENVELOPED_SIGNATURE_TRANSFORM, C14N11_ALGORITHM]
  if (ref.transforms.length !== expected.length || ref.transforms.some((t, i) => t !== expected[i])) {
    invalidSignature('Reference transforms are not enveloped-signature then C14N 1.1', { transforms: ref.transforms })
  }
  if (ref.digestMethod !== SHA384_DIGEST_ALGORITHM) invalidSignature('DigestMethod is not SHA-384', { algorithm: ref.digestMethod })
  if (ref.digestValue.length !== SHA384_LENGTH) invalidSignature('DigestValue is not 48 bytes', { length: ref.digestValue.length })
}

/**
 * Verify a signed NVIDIA RIM (SWID XML text) at `options.now` against
 * `options.root`. Returns what the signed content says; throws `ParseError`
 * (ATTESTATION_RIM_MALFORMED) for malformed documents, `VerificationError`
 * ATTESTATION_RIM_SIGNATURE_INVALID when the signature does not verify or is
 * not of NVIDIA's profile, and the ATTESTATION_CERT_* /
 * ATTESTATION_ROOT_CA_UNTRUSTED codes of `verifyChain` for the chain.
 */
export function verifyRim(xmlText: string, options: VerifyRimOptions): VerifiedRim {
  const now = options?.now instanceof Date ? options.now.getTime() : Number.NaN
  if (!Number.isFinite(now)) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'options.now must be a valid Date')
  if (!options.root?.certificate) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'options.root must be the pinned RIM root (a TrustedRoot)')
  }

  // 1. Structure.
  const doc = parseXmlDocument(xmlText)
  const root = doc.documentElement!
  const parts = readSoftwareIdentity(root, 'required').signature!

  // 2. Profile, from the document as written (it says how to canonicalise).
  checkProfile(parts.signature)
  if (parts.signature.signatureValue.length !== ECDSA_P384_SIGNATURE_LENGTH) {
    invalidSignature('SignatureValue is not a 96-byte P-384 r||s', { length: parts.signature.signatureValue.length })
  }
  const chain = parts.certificateChainDer.map((der) => parseCertificate(der))
  const leaf = chain[0]!
  if (leaf.curve !== 'P-384') invalidSignature('the signing certificate key is not P-384', { curve: leaf.curve })

  // 3. SignedInfo signature.
  const signedInfo = canonicalize(parts.signedInfo, ancestorNamespaces(parts.signedInfo), 'SignedInfo')
  if (!verifyRaw('ecdsa-sha384', signedInfo.bytes, certificateKey(leaf), parts.signature.signatureValue)) {
    invalidSignature('SignatureValue does not verify under the signing certificate', { signer: leaf.serial })
  }

  // 4. The Reference, as signed, and the digest of the content.
  const signed = readSignedInfo(parseXmlDocument(signedInfo.text, 'canonical SignedInfo').documentElement!)
  checkProfile(signed)
  const position = Array.prototype.indexOf.call(root.childNodes, parts.element)
  const content = root.cloneNode(true) as Element
  const enveloped = content.childNodes[position]
  if (position < 0 || !enveloped) return invalidSignature('the Signature is not a child of the root')
  content.removeChild(enveloped)
  const canonical = canonicalize(content, [], 'the signed content')
  const contentDigest = sha384(canonical.bytes)
  if (!sameBytes(contentDigest, signed.references[0]!.digestValue)) {
    invalidSignature('the content does not match the signed DigestValue')
  }

  // 5. What the RIM says, from the digested bytes only.
  const signedRoot = parseXmlDocument(canonical.text, 'canonical RIM content').documentElement!
  const signedContent = readSoftwareIdentity(signedRoot, 'forbidden').content

  // 6. The signer chains to the pinned root at `now`.
  const verifiedChain = verifyChain(chain, {
    now,
    root: options.root.certificate,
    crls: [],
    requireRevocation: false,
    label: CHAIN_LABEL,
  })
  if (leaf.keyUsage !== undefined && (leaf.keyUsage & KEY_USAGE_DIGITAL_SIGNATURE) === 0) {
    throw new VerificationError('ATTESTATION_CERT_CHAIN_INVALID', 'the RIM signing certificate may not sign', {
      details: { chain: CHAIN_LABEL, serial: leaf.serial, keyUsage: leaf.keyUsage },
    })
  }

  const result: VerifiedRim = Object.freeze({
    ...signedContent,
    // Typed arrays cannot be frozen; the arrays and objects around them are.
    measurements: Object.freeze(
      signedContent.measurements.map((m) => Object.freeze({ ...m, alternatives: Object.freeze([...m.alternatives]) })),
    ),
    contentDigest,
    chain: Object.freeze(verifiedChain),
    signer: Object.freeze({
      commonName: commonName(leaf.subject),
      serial: leaf.serial,
      notBefore: new Date(leaf.notBefore),
      notAfter: new Date(leaf.notAfter),
    }),
    root: Object.freeze({ kind: options.root.kind, fingerprint: options.root.fingerprint }),
    verifiedAt: new Date(now),
  })
  verifiedRims.add(result)
  return result
}
