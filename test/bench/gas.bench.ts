/**
 * Gas of the on-chain registry, measured on a real anvil (default hardfork,
 * EIP-7951 P256VERIFY at 0x100, EIP-7623 calldata floor):
 *
 *   npm run bench:gas
 *
 * Figures (transaction gasUsed from receipts: what the sender pays,
 * intrinsic 21k and calldata included, unless said otherwise):
 *   collateral   submitting one FMSPC's real Intel collateral
 *                (tdx-v4-phala-cloud-2026-06: TCB signing + PCK CA certs,
 *                Root CA CRL, PCK CRL, TCB info, QE identity) to a
 *                production store; each transaction and the total;
 *   first        first registration on a new platform (PCK leaf verified
 *                and cached in the same transaction), dev TEE;
 *   reregister   re-registration on a known platform at a new epoch (PCK
 *                and TCB evaluation cached), dev TEE;
 *   receipt      verifyReceipt: execution gas measured in-EVM by a probe
 *                contract around a warm STATICCALL (what a contract calling
 *                it pays), and as a standalone transaction (estimateGas);
 *   anchor       anchorCheckpoint: the first anchor of a log (two new
 *                storage slots) and a later one (the steady state).
 * The dev TEE runs the production code path (same contract bytecode,
 * same checks); only the root the collateral store pins differs.
 *
 * Targets: re-registration ≤ 300k, first registration ≤ 1.5M, verifyReceipt
 * ≤ 10k, anchorCheckpoint ≤ 60k; Automata's on-chain DCAP verifier ~4M gas
 * per TDX quote with the P-256 precompile, ~5M without. No assertions:
 * a missed target is reported. The last line is one JSON object.
 */
import solc from 'solc'
import { keccak256, toHex, type Hex } from 'viem'
import { receiptDomain, signReceipt, type ReceiptFields } from '../../enclave/receipts.ts'
import { checkpointAnchorDigest, logIdOf } from '../../contracts/client/checkpoint-anchor.ts'
import { collateralSubmission, createPcsClient, pckLeafOf, quotePckChain, stripCertificationData } from '../../contracts/client/collateral.ts'
import { deployRegistry } from '../../contracts/client/deploy.ts'
import { attestationRegistryAbi } from '../../contracts/artifacts/attestation-registry.ts'
import { devRegistry, EPOCH_LENGTH_MS, MODEL } from '../helpers/dev-registry.ts'
import { tdxCase } from '../helpers/vectors.ts'

const TARGETS = { reRegistration: 300_000, firstRegistration: 1_500_000, verifyReceipt: 10_000, anchorCheckpoint: 60_000 }
const AUTOMATA = { withPrecompile: 4_000_000, withoutPrecompile: 5_000_000 }

const PROBE_SOURCE = `// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;
/// @title GasProbe
/// @notice Bench-only: execution gas of one warm call.
contract GasProbe {
    function probe(address target, bytes calldata data) external returns (uint256 used, bool ok) {
        uint256 size = target.code.length; // warms the account: the measured call pays 100, not 2600
        require(size > 0);
        uint256 g = gasleft();
        (ok, ) = target.staticcall(data);
        used = g - gasleft();
    }
}`

function compileProbe(): { abi: readonly unknown[]; bytecode: Hex } {
  const out = JSON.parse(
    solc.compile(
      JSON.stringify({
        language: 'Solidity',
        sources: { 'GasProbe.sol': { content: PROBE_SOURCE } },
        settings: { optimizer: { enabled: true, runs: 200 }, outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } } },
      }),
    ),
  )
  const c = out.contracts['GasProbe.sol'].GasProbe
  return { abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` }
}

const teardowns: (() => unknown)[] = []
const t = { teardown: (fn: () => unknown) => teardowns.push(fn) }

async function main(): Promise<void> {
  const f = await devRegistry(t)
  const { anvil, registry } = f

  // First registration on a new platform: the PCK leaf travels with it.
  const first = await f.freshSubmission()
  if (!first.submission.pckCertDer) throw new Error('expected an uncached PCK leaf')
  const firstResult = await registry.register({ ...first.submission, quote: stripCertificationData(first.submission.quote) })
  const firstWithPem = first.submission.quote.length

  // Re-registration at the next epoch on the same platform.
  f.clock += EPOCH_LENGTH_MS
  await f.epochs.rotateIfDue()
  const again = await f.freshSubmission()
  const reResult = await registry.register({ ...again.submission, quote: stripCertificationData(again.submission.quote) })
  // The same with the full quote (PEM chain included), for comparison.
  f.clock += EPOCH_LENGTH_MS
  await f.epochs.rotateIfDue()
  const third = await f.freshSubmission()
  const reFull = await registry.register(third.submission)

  // verifyReceipt.
  const key = f.epochs.current().signingKey
  const domain = receiptDomain({ chainId: registry.chainId, registry: registry.address })
  const fields: ReceiptFields = { requestHash: keccak256('0x01'), responseHash: keccak256('0x02'), model: MODEL, epoch: f.epochs.current().number, time: 1n, logIndex: 1n }
  const signature = await signReceipt(key, fields, domain)
  await registry.verifyReceipt(fields, signature)
  const probe = compileProbe()
  const probeHash = await anvil.walletClient.deployContract({ abi: probe.abi, bytecode: probe.bytecode })
  const probeAddress = (await anvil.publicClient.waitForTransactionReceipt({ hash: probeHash })).contractAddress!
  const { encodeFunctionData } = await import('viem')
  const receiptCall = encodeFunctionData({ abi: attestationRegistryAbi, functionName: 'verifyReceipt', args: [fields, signature] })
  const { result } = await anvil.publicClient.simulateContract({
    address: probeAddress,
    abi: probe.abi,
    functionName: 'probe',
    args: [registry.address, receiptCall],
    account: anvil.accounts[0]!,
  } as never)
  const [receiptExecution, receiptOk] = result as unknown as [bigint, boolean]
  if (!receiptOk) throw new Error('verifyReceipt failed in the probe')
  const receiptAsTx = await anvil.publicClient.estimateGas({ account: anvil.accounts[0]!, to: registry.address, data: receiptCall })

  // anchorCheckpoint: first anchor of the log, then the steady state.
  const logId = logIdOf(f.logPublicKey)
  const sign = (size: bigint, root: Hex) => key.signDigest(Buffer.from(checkpointAnchorDigest({ logId, size, root }, domain).slice(2), 'hex'))
  const a1 = await registry.anchorCheckpoint(logId, 100n, keccak256('0x0a'), await sign(100n, keccak256('0x0a')))
  const a2 = await registry.anchorCheckpoint(logId, 200n, keccak256('0x0b'), await sign(200n, keccak256('0x0b')))
  const a3 = await registry.anchorCheckpoint(logId, 300n, keccak256('0x0c'), await sign(300n, keccak256('0x0c')))

  // Collateral for one FMSPC: real Intel collateral into a production store.
  const c = tdxCase('tdx-v4-phala-cloud-2026-06')
  const at = BigInt(c.verifyAt.getTime() / 1000)
  await anvil.testClient.setNextBlockTimestamp({ timestamp: at - 60n })
  await anvil.testClient.mine({ blocks: 1 })
  const prod = await deployRegistry({ publicClient: anvil.publicClient, walletClient: anvil.walletClient, target: { kind: 'production' }, owner: anvil.accounts[0]!.address })
  const pcs = createPcsClient({ publicClient: anvil.publicClient, walletClient: anvil.walletClient, address: prod.pcs })
  const collateral = await pcs.submitCollateral(collateralSubmission(c.collateral, [quotePckChain(c.quote)]))
  const pckCert = await pcs.submitPckCert(pckLeafOf(c.quote).der)
  const prodVerify = await anvil.publicClient.estimateGas({
    account: anvil.accounts[0]!,
    to: prod.registry,
    data: encodeFunctionData({ abi: attestationRegistryAbi, functionName: 'verifyQuote', args: [toHex(stripCertificationData(c.quote)), pckLeafOf(c.quote).certId] }),
  })

  const figures = {
    collateralSubmission: {
      fmspc: (c.summary as { fmspc?: string }).fmspc ?? null,
      vector: c.id,
      totalGas: Number(collateral.totalGas),
      txs: collateral.txs.map((x) => ({ what: x.what, gas: Number(x.gasUsed) })),
      pckCertSubmission: Number(pckCert.gasUsed),
    },
    firstRegistration: Number(firstResult.gasUsed),
    reRegistration: Number(reResult.gasUsed),
    reRegistrationWithPemChain: Number(reFull.gasUsed),
    verifyReceipt: { execution: Number(receiptExecution), asTransaction: Number(receiptAsTx) },
    anchorCheckpoint: { first: Number(a1.gasUsed), subsequent: Number(a2.gasUsed), subsequent2: Number(a3.gasUsed) },
    realQuoteVerifyAsTransaction: Number(prodVerify),
  }
  const ratio = (x: number, y: number) => Number((x / y).toFixed(4))
  const report = {
    ...figures,
    quoteBytes: { full: firstWithPem, sent: stripCertificationData(first.submission.quote).length },
    targets: TARGETS,
    ratioToTarget: {
      reRegistration: ratio(figures.reRegistration, TARGETS.reRegistration),
      firstRegistration: ratio(figures.firstRegistration, TARGETS.firstRegistration),
      verifyReceipt: ratio(figures.verifyReceipt.execution, TARGETS.verifyReceipt),
      verifyReceiptAsTransaction: ratio(figures.verifyReceipt.asTransaction, TARGETS.verifyReceipt),
      anchorCheckpoint: ratio(figures.anchorCheckpoint.subsequent, TARGETS.anchorCheckpoint),
      anchorCheckpointFirst: ratio(figures.anchorCheckpoint.first, TARGETS.anchorCheckpoint),
    },
    ratioToAutomata: {
      firstRegistrationVsPrecompile4M: ratio(figures.firstRegistration, AUTOMATA.withPrecompile),
      firstRegistrationVsNoPrecompile5M: ratio(figures.firstRegistration, AUTOMATA.withoutPrecompile),
      reRegistrationVsPrecompile4M: ratio(figures.reRegistration, AUTOMATA.withPrecompile),
      reRegistrationVsNoPrecompile5M: ratio(figures.reRegistration, AUTOMATA.withoutPrecompile),
      realQuoteVerifyVsPrecompile4M: ratio(figures.realQuoteVerifyAsTransaction, AUTOMATA.withPrecompile),
    },
  }
  const line = (name: string, gas: number, target?: number) =>
    console.log(`${name.padEnd(44)} ${String(gas).padStart(10)} gas${target ? `   target ${target} (${((gas / target) * 100).toFixed(1)}%)` : ''}`)
  console.log(`anvil ${anvil.rpcUrl}, chain ${anvil.chainId}; dev TEE for registrations, Intel collateral (${c.id}) for submission`)
  for (const x of figures.collateralSubmission.txs) line(`  collateral: ${x.what}`, x.gas)
  line('collateral submission, one FMSPC (total)', figures.collateralSubmission.totalGas)
  line('PCK leaf submission (alone)', figures.collateralSubmission.pckCertSubmission)
  line('first registration (PCK not cached)', figures.firstRegistration, TARGETS.firstRegistration)
  line('re-registration (new epoch)', figures.reRegistration, TARGETS.reRegistration)
  line('re-registration, PEM chain left in the quote', figures.reRegistrationWithPemChain, TARGETS.reRegistration)
  line('verifyReceipt (execution, warm call)', figures.verifyReceipt.execution, TARGETS.verifyReceipt)
  line('verifyReceipt (as a transaction)', figures.verifyReceipt.asTransaction)
  line('anchorCheckpoint (first of a log)', figures.anchorCheckpoint.first, TARGETS.anchorCheckpoint)
  line('anchorCheckpoint (subsequent)', figures.anchorCheckpoint.subsequent, TARGETS.anchorCheckpoint)
  line('verifyQuote of a real quote, as a transaction', figures.realQuoteVerifyAsTransaction)
  console.log(JSON.stringify(report))
}

main()
  .catch((e) => {
    console.error(e)
    process.exitCode = 1
  })
  .finally(async () => {
    for (const fn of teardowns.reverse()) await fn()
  })
