/**
 * Loading the reference vectors of test/vectors (byte-for-byte copies of
 * ../shared/vectors; see test/vectors/README.md for provenance).
 */
import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { QuoteCollateralV3 } from '../../attestation/pcs/types.ts'

export const VECTORS_DIR = fileURLToPath(new URL('../vectors/', import.meta.url))

export interface TdxCase {
  readonly id: string
  readonly dir: string
  readonly quote: Uint8Array
  readonly collateralText: string
  readonly collateral: QuoteCollateralV3
  readonly verifyAt: Date
  readonly expected: { readonly status: string; readonly advisoryIds: readonly string[] }
  readonly summary: Record<string, unknown>
}

/** Every case under test/vectors/tdx, sorted by name. */
export function tdxCases(): TdxCase[] {
  const root = `${VECTORS_DIR}tdx/`
  return readdirSync(root)
    .sort()
    .map((id) => {
      const dir = `${root}${id}/`
      const meta = JSON.parse(readFileSync(`${dir}case.json`, 'utf8'))
      const collateralText = readFileSync(`${dir}collateral.json`, 'utf8')
      return {
        id,
        dir,
        quote: new Uint8Array(readFileSync(`${dir}quote.bin`)),
        collateralText,
        collateral: JSON.parse(collateralText),
        verifyAt: new Date(meta.verify_at_unix * 1000),
        expected: { status: meta.computed_result.default.status, advisoryIds: meta.computed_result.default.advisory_ids },
        summary: meta.quote_summary,
      }
    })
}

export function tdxCase(id: string): TdxCase {
  const c = tdxCases().find((x) => x.id === id)
  if (!c) throw new Error(`no vector ${id}`)
  return c
}
