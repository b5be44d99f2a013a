/**
 * Putting a QuoteCollateralV3 bundle on-chain (PcsCollateral): which
 * certificates, CRLs and signed documents to submit, in an order the
 * contract accepts (CA certificates, then the Root CA CRL, then PCK CRLs,
 * then TCB info and QE identity), and the PCK leaf of a quote. Also the
 * quote form the registry wants: certification data cut after the QE
 * authentication data (the unsigned PEM chain is replaced by the cached
 * PCK certificate's id; see AttestationRegistry's header).
 */
import { keccak256, toHex, type Address, type Hex } from 'viem'
import { pemToDer } from '../../attestation/asn1/pem.ts'
import { parseQuote } from '../../attestation/tdx/abi/quote.ts'
import { parseCertificate } from '../../attestation/pki/x509.ts'
import type { QuoteCollateralV3 } from '../../attestation/pcs/types.ts'
import { pcsCollateralAbi } from '../artifacts/pcs-collateral.ts'
import { RegistryError } from './errors.ts'
import { sendContractTx, type AnyPublicClient, type AnyWalletClient, type SentTransaction } from './tx.ts'

export interface SignedDocument {
  /** The exact JSON text Intel signed. */
  readonly json: string
  readonly r: Hex
  readonly s: Hex
  /** keccak256 of the signing certificate's subject Name DER. */
  readonly signerName: Hex
}

/** What one bundle puts on-chain. */
export interface CollateralSubmission {
  /** Intermediate CA and TCB signing certificates (DER), root excluded. */
  readonly caCerts: readonly Uint8Array[]
  /** Root CA CRL first, then PCK CRLs (DER). */
  readonly crls: readonly Uint8Array[]
  readonly tcbInfo: SignedDocument
  readonly qeIdentity: SignedDocument
}

const hexBytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h.replace(/^0x/, '').trim(), 'hex'))

function signed(json: string, signatureHex: string, chainPem: string): SignedDocument {
  const sig = hexBytes(signatureHex)
  if (sig.length !== 64) throw new RegistryError('REGISTRY_CONFIG_INVALID', { details: { field: 'signature' } })
  const [signerDer] = pemToDer(chainPem)
  if (!signerDer) throw new RegistryError('REGISTRY_CONFIG_INVALID', { details: { field: 'issuer chain' } })
  return { json, r: toHex(sig.subarray(0, 32)), s: toHex(sig.subarray(32)), signerName: keccak256(parseCertificate(signerDer).subject) }
}

/** Everything but the root from each issuer chain, deduplicated, plus the CAs (leaf dropped) of extra chains such as a quote PCK chain. */
export function collateralSubmission(bundle: QuoteCollateralV3, extraChains: readonly (readonly Uint8Array[])[] = []): CollateralSubmission {
  const seen = new Set<string>()
  const caCerts: Uint8Array[] = []
  const chains = [
    pemToDer(bundle.tcb_info_issuer_chain),
    pemToDer(bundle.qe_identity_issuer_chain),
    pemToDer(bundle.pck_crl_issuer_chain),
    ...extraChains.map((chain) => chain.slice(1)),
  ]
  for (const chain of chains) {
    for (const der of chain) {
      const cert = parseCertificate(der)
      const selfSigned = Buffer.compare(Buffer.from(cert.issuer), Buffer.from(cert.subject)) === 0
      const key = Buffer.from(der).toString('hex')
      if (selfSigned || seen.has(key)) continue
      seen.add(key)
      caCerts.push(der)
    }
  }
  return {
    caCerts,
    crls: [hexBytes(bundle.root_ca_crl), hexBytes(bundle.pck_crl)],
    tcbInfo: signed(bundle.tcb_info, bundle.tcb_info_signature, bundle.tcb_info_issuer_chain),
    qeIdentity: signed(bundle.qe_identity, bundle.qe_identity_signature, bundle.qe_identity_issuer_chain),
  }
}

/** The PCK chain a quote carries (DER, leaf first). */
export function quotePckChain(quote: Uint8Array): readonly Uint8Array[] {
  return parseQuote(quote).certification.pckChain
}

/** The PCK leaf certificate a quote carries, and its on-chain id (keccak256 of the DER). */
export function pckLeafOf(quote: Uint8Array): { readonly der: Uint8Array; readonly certId: Hex } {
  const [leaf] = quotePckChain(quote)
  if (!leaf) throw new RegistryError('REGISTRY_CONFIG_INVALID', { details: { field: 'quote PCK chain' } })
  return { der: leaf, certId: keccak256(leaf) }
}

/**
 * The quote cut after the QE authentication data: every signed byte, none of
 * the unsigned PEM chain (TDX-QL A.3.7-A.3.11 offsets). Saves ~3.5 KB of
 * calldata per registration.
 */
export function stripCertificationData(quote: Uint8Array): Uint8Array {
  const q = parseQuote(quote)
  const authEnd = q.certification.qeAuthData.byteOffset + q.certification.qeAuthData.byteLength - quote.byteOffset
  return quote.slice(0, authEnd)
}

export interface CollateralGas {
  readonly txs: readonly { readonly what: string; readonly gasUsed: bigint; readonly txHash: Hex }[]
  readonly totalGas: bigint
}

/** Writes to PcsCollateral. */
export interface PcsClient {
  readonly address: Address
  submitCaCert(der: Uint8Array): Promise<SentTransaction>
  submitCrl(der: Uint8Array): Promise<SentTransaction>
  submitTcbInfo(doc: SignedDocument): Promise<SentTransaction>
  submitQeIdentity(doc: SignedDocument): Promise<SentTransaction>
  submitPckCert(der: Uint8Array): Promise<SentTransaction>
  /** Submit a whole bundle in order; returns each transaction's gas. */
  submitCollateral(submission: CollateralSubmission): Promise<CollateralGas>
  isDevelopment(): Promise<boolean>
}

export function createPcsClient(o: { publicClient: AnyPublicClient; walletClient: AnyWalletClient; address: Address }): PcsClient {
  const send = (functionName: string, args: readonly unknown[]) =>
    sendContractTx(o.publicClient, o.walletClient, { address: o.address, abi: pcsCollateralAbi, functionName, args })
  const client: PcsClient = {
    address: o.address,
    submitCaCert: (der) => send('submitCaCert', [toHex(der)]),
    submitCrl: (der) => send('submitCrl', [toHex(der)]),
    submitTcbInfo: (d) => send('submitTcbInfo', [toHex(new TextEncoder().encode(d.json)), d.r, d.s, d.signerName]),
    submitQeIdentity: (d) => send('submitQeIdentity', [toHex(new TextEncoder().encode(d.json)), d.r, d.s, d.signerName]),
    submitPckCert: (der) => send('submitPckCert', [toHex(der)]),
    async submitCollateral(sub) {
      const txs: { what: string; gasUsed: bigint; txHash: Hex }[] = []
      const note = (what: string, t: SentTransaction) => txs.push({ what, gasUsed: t.gasUsed, txHash: t.txHash })
      for (const der of sub.caCerts) note('caCert', await client.submitCaCert(der))
      for (const [i, der] of sub.crls.entries()) note(i === 0 ? 'rootCaCrl' : 'pckCrl', await client.submitCrl(der))
      note('tcbInfo', await client.submitTcbInfo(sub.tcbInfo))
      note('qeIdentity', await client.submitQeIdentity(sub.qeIdentity))
      return { txs, totalGas: txs.reduce((a, t) => a + t.gasUsed, 0n) }
    },
    async isDevelopment() {
      return (await o.publicClient.readContract({ address: o.address, abi: pcsCollateralAbi, functionName: 'isDevelopment' })) as boolean
    },
  }
  return client
}
