/**
 * `cgw start` (`npm start`): the main job of a fresh checkout. Until the
 * gateway exists, it verifies a bundled real TDX quote end to end with the
 * collateral of its time, exactly as a user would with `cgw verify-quote`.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { runVerifyQuote } from './verify-quote.ts'
import type { Io } from '../cgw.ts'

const CASE = 'tdx-v4-emerald-rapids-uptodate'

export async function runStart(args: string[], io: Io): Promise<number> {
  const dir = fileURLToPath(new URL(`../../test/vectors/tdx/${CASE}/`, import.meta.url))
  const at = JSON.parse(readFileSync(`${dir}case.json`, 'utf8')).verify_at as string
  io.out(`cgw start: verifying the bundled real quote ${CASE} at ${at}\n\n`)
  return runVerifyQuote([`${dir}quote.bin`, '--collateral', `${dir}collateral.json`, '--at', at, ...args], io)
}
