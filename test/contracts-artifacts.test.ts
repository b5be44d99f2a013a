/**
 * The committed contract artifacts (contracts/artifacts/*.ts) are what the
 * sources compile to: one solc-js compilation per run, compared byte for
 * byte with the committed files; deployed sizes stay under EIP-170; and the
 * error registry covers every custom error of the ABIs.
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
