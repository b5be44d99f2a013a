/**
 * The registry client: typed viem access to AttestationRegistry and
 * PcsCollateral, their error codes, and the checkpoint-anchor typed data.
 */
export * from './registry.ts'
export * from './collateral.ts'
export * from './errors.ts'
export * from './checkpoint-anchor.ts'
export * from './tx.ts'
export * from './deploy.ts'
