/**
 * The committed contract artifacts (contracts/artifacts/*.ts) are what the
 * sources compile to: one solc-js compilation per run, compared byte for
 * byte with the committed files; deployed sizes stay under EIP-170 and
 * creation code under EIP-3860; and the error registry covers every custom
 * error of the ABIs.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ARTIFACTS_DIR, DEPLOYABLE, artifactFileName, artifactSource, compileContracts } from '../contracts/build.ts'
import { REGISTRY_CONTRACT_ERRORS, REGISTRY_ERROR_CODES, REGISTRY_ERRORS_ABI } from '../contracts/client/errors.ts'

t.test('committed artifacts are current', async (t) => {
  const compiled = compileContracts()
  for (const name of DEPLOYABLE) {
    const committed = readFileSync(join(ARTIFACTS_DIR, artifactFileName(name)), 'utf8')
    t.equal(committed, artifactSource(name, compiled[name]), `${name}: run npm run build:contracts`)
    t.ok(compiled[name].deployedSize <= 24_576, `${name} fits EIP-170 (${compiled[name].deployedSize} bytes)`)
    // PcsCollateral's creation code carries both parsers' creation code: EIP-3860 caps it at 48 KiB.
    const initcodeSize = (compiled[name].bytecode.length - 2) / 2
    t.ok(initcodeSize <= 49_152, `${name} creation code fits EIP-3860 (${initcodeSize} bytes)`)
  }
})

t.test('every custom error has a registered code', async (t) => {
  for (const e of REGISTRY_ERRORS_ABI) {
    const name = (e as { name: string }).name
    const code = (REGISTRY_CONTRACT_ERRORS as Record<string, string>)[name]
    t.ok(code, `${name} is mapped`)
    t.ok(code && code in REGISTRY_ERROR_CODES, `${name} → ${code} is registered`)
  }
})
