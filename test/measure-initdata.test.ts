/**
 * `cgw measure --initdata`: MRCONFIGID of a Kata Confidential Containers pod
 * from its initdata, as Kata binds it (deploy/measure/initdata.ts).
 *
 * Known vector: kata-containers src/runtime/pkg/oci/utils_test.go
 * (TestAddRuntimeAnnotations, TestAddAssetAnnotations; repository HEAD
 * 7c6ba40c54ea29b459b4997cff948caaba4e658b) feeds the annotation below to
 * the runtime and expects the decompressed TOML below and the SHA-256
 * InitdataDigest c6694bb7…49e5; src/runtime/pkg/govmm/qemu/qemu.go
 * prepareTDXObject copies that digest into 48 zero bytes for QEMU's
 * `mrconfigid`. The other algorithms are checked against an independent
 * computation (node:crypto over the file bytes, resized by hand).
 *
 * Then the deployment's own files: the policy refuses what it must, the
 * shipped placeholders are refused, an exec-allowing or otherwise weakened
 * policy is refused by code, and a filled-in initdata pins MRCONFIGID in the
 * quote policy, the client policy and the workload id.
 */
import t from 'tap'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import { checkAgentPolicy, initdataMrConfigId, measureInitdata, parseInitdata, POLICY_DENIED_OUTRIGHT } from '../deploy/measure/initdata.ts'
import { computeMeasurement, devReference, referenceFromEvidence } from '../deploy/measure/measure.ts'
import { decodeInitdataAnnotation, encodeInitdataAnnotation, initdataToml } from '../deploy/k8s/initdata.ts'
import { UNRELEASED_RELEASE_HASH } from '../deploy/release/manifest.ts'
import { computeWorkloadId } from '../attestation/workload.ts'
import { parsePolicy } from '../attestation/policy/policy.ts'
import { runMeasure } from '../bin/commands/measure.ts'
import { EXIT } from '../bin/exit-codes.ts'
import { codeOf, thrown } from './helpers/errors.ts'

const enc = (s: string) => new TextEncoder().encode(s)
const h = (b: Uint8Array) => Buffer.from(b).toString('hex')

// kata-containers src/runtime/pkg/oci/utils_test.go, verbatim.
const KATA_ANNOTATION = 'H4sIAFlC92cAAytLLSrOzM9TsFVQMtAz1DNQ4krMSc8vyizJyAWJFWckGpmaKXFFpySWJMZyKSUm6pXk5+YoAeXU1dW5QJhLKTklA4toQX5OZnKlXlFqej6yBABS/5JkcQAAAA=='
const KATA_TOML = `version = "0.1.0"
algorithm = "sha256"
[data]
"aa.toml" = '''
'''

"cdh.toml" = '''
'''

"policy.rego" = '''
'''
`
const KATA_DIGEST = [0xc6, 0x69, 0x4b, 0xb7, 0xa2, 0x9d, 0x6f, 0x37, 0xec, 0x72, 0xa1, 0x55, 0x82, 0xe0, 0x4, 0xb9, 0xf3, 0x14, 0x21, 0x59, 0x68, 0x2d, 0xb8, 0x50, 0x9a, 0x30, 0x44, 0x7, 0x41, 0x9a, 0x49, 0xe5]

t.test("Kata's own vector: annotation → TOML → SHA-256 → MRCONFIGID (zero-padded to 48 bytes)", async (t) => {
  const toml = decodeInitdataAnnotation(KATA_ANNOTATION)
  t.equal(toml.toString('utf8'), KATA_TOML, 'base64(gzip(TOML)) decodes to the TOML the Go runtime expects')
  const doc = parseInitdata(toml)
  t.equal(doc.algorithm, 'sha256')
  t.same(doc.data, { 'aa.toml': '', 'cdh.toml': '', 'policy.rego': '' }, "''' followed by a newline: the newline is not part of the value")
  const expected = new Uint8Array(48)
  expected.set(KATA_DIGEST)
  t.equal(h(initdataMrConfigId(toml)), h(expected), "the runtime's InitdataDigest, then 16 zero bytes (qemu.go adjustProperLength)")
  // The digest is over the bytes: the same document re-encoded is not the same pod.
  t.not(h(initdataMrConfigId(enc(KATA_TOML.replace('[data]', '\n[data]')))), h(expected), 'another spelling of the same data is another MRCONFIGID')
})

t.test('sha384 is MRCONFIGID as is; sha512 is cut to 48 bytes (independent computation)', async (t) => {
  for (const algorithm of ['sha384', 'sha512'] as const) {
    const bytes = enc(`algorithm = "${algorithm}"\nversion = "0.1.0"\n\n[data]\n"policy.rego" = '''\npackage agent_policy\n'''\n`)
    const full = createHash(algorithm).update(bytes).digest()
    t.equal(h(initdataMrConfigId(bytes)), full.subarray(0, 48).toString('hex'), algorithm)
  }
})

t.test('the parser reads only the strict subset, never a different value than Kata', async (t) => {
  const base = `algorithm = "sha384"\nversion = "0.1.0"\n\n[data]\n"policy.rego" = '''\nx\n'''\n`
  t.same(parseInitdata(enc(base)).data, { 'policy.rego': 'x\n' })
  t.same(parseInitdata(enc(base.replace("x\n'''", "x''''"))).data, { 'policy.rego': "x'" }, 'a quote before the closing delimiter belongs to the value (TOML 1.0)')
  t.same(parseInitdata(enc('# c\nversion = \'0.1.0\'\nalgorithm="sha256" # c\n[data] # c\nk = "v"\n')).data, { k: 'v' }, 'comments, literal strings, no spaces')
  const refused: [string, string][] = [
    [base.replace(/\n/g, '\r\n'), 'CRLF'],
    ['\uFEFF' + base, 'BOM'],
    [base.replace('0.1.0', '0.2.0'), 'another version'],
    [base.replace('sha384', 'md5'), 'an algorithm Kata does not know'],
    [base.replace('version = "0.1.0"\n', ''), 'no version'],
    [base.replace('[data]\n', ''), 'no [data]'],
    [base + '"policy.rego" = "y"\n', 'a duplicate key'],
    [base.replace('version', 'extra = "1"\nversion'), 'an unknown top-level key'],
    [base + 'k = "a\\u0041"\n', 'an escape'],
    [base + 'k = 1\n', 'a number'],
    [base + 'a.b = "c"\n', 'a dotted key'],
    [base + '[other]\n', 'another table'],
    [base.replace("x\n'''", "x\n''''''"), 'six quotes'],
    [base.replace("x\n'''\n", 'x\n'), 'unterminated'],
    [base.replace("x\n'''\n", "x\n''' trailing\n"), 'text after the closing delimiter'],
  ]
  for (const [text, what] of refused) t.equal(codeOf(thrown(() => parseInitdata(enc(text)))), 'MEASURE_INITDATA_INVALID', what)
  t.equal(codeOf(thrown(() => parseInitdata(new Uint8Array([0xff, 0xfe])))), 'MEASURE_INITDATA_INVALID', 'not UTF-8')
})

const policy = await readFile('deploy/k8s/policy.rego', 'utf8')
const shipped = await readFile('deploy/k8s/initdata.toml')

t.test('deploy/k8s/policy.rego refuses exec, stdio, policy replacement and fail-open outright', async (t) => {
  t.ok(checkAgentPolicy(policy).length > 0)
  for (const name of POLICY_DENIED_OUTRIGHT) {
    t.equal(policy.match(new RegExp(`\\b${name}\\b`, 'g'))?.length, 1, `${name} occurs once`)
    t.match(policy, new RegExp(`^default ${name} := false$`, 'm'), `${name} defaults to false`)
  }
  for (const name of ['CreateContainerRequest', 'CreateSandboxRequest', 'CopyFileRequest']) t.match(policy, new RegExp(`^default ${name} := false$`, 'm'))
  t.equal(parseInitdata(shipped).data['policy.rego'], policy, 'initdata.toml carries policy.rego verbatim')
})

/** The shipped initdata with every placeholder filled in, as a provider would. */
function filled(toml: string): string {
  return toml
    .replace(/confidential-gateway@sha256:0{64}/, `confidential-gateway@sha256:${createHash('sha256').update('gateway').digest('hex')}`)
    .replace(/cgw-vllm-model@sha256:0{64}/, `cgw-vllm-model@sha256:${createHash('sha256').update('vllm').digest('hex')}`)
    .replace(/"CGW-FILL-IN the image's Env"/g, '"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"')
}

t.test('measure refuses the shipped placeholders, then pins the filled-in initdata', async (t) => {
  t.equal(codeOf(thrown(() => measureInitdata(shipped, 'initdata.toml'))), 'MEASURE_INITDATA_PLACEHOLDER', 'all-zero digests as shipped')
  const digestsOnly = shipped.toString('utf8').replace(/@sha256:0{64}/g, `@sha256:${'ab'.repeat(32)}`)
  t.equal(codeOf(thrown(() => measureInitdata(enc(digestsOnly), 'initdata.toml'))), 'MEASURE_INITDATA_PLACEHOLDER', 'the image environment is still to be filled in')
  const unpinned = filled(shipped.toString('utf8')).replace(/"image": "cgw-vllm-model@sha256:[0-9a-f]{64}"/, '"image": "cgw-vllm-model:latest"')
  t.equal(codeOf(thrown(() => measureInitdata(enc(unpinned), 'initdata.toml'))), 'MEASURE_INITDATA_PLACEHOLDER', 'a tag instead of a digest')

  const bytes = enc(filled(shipped.toString('utf8')))
  const m = measureInitdata(bytes, 'initdata.toml')
  t.equal(h(m.mrConfigId), createHash('sha384').update(bytes).digest('hex'), 'sha384 of the file: MRCONFIGID without padding')
  t.match(m.provenance, { algorithm: 'sha384', version: '0.1.0', dataKeys: ['policy.rego'], policy: { evaluated: false } })

  const config = { listen: { host: '0.0.0.0', port: 8080 }, enclave: { tee: 'tdx', gpu: 'none', engine: { url: 'http://127.0.0.1:8000' } } }
  const ref = devReference()
  const measured = computeMeasurement({ config, configProvenance: {}, releaseHash: UNRELEASED_RELEASE_HASH, releaseProvenance: {}, reference: ref, trustRoot: 'intel', initdata: m, client: { collateral: { pcsUrl: 'https://pcs.example' } } })
  t.equal(measured.expected.mrConfigId, h(m.mrConfigId))
  t.same(measured.quotePolicy.tdx.mrConfigId, [h(m.mrConfigId)], 'the quote policy pins it')
  t.same(measured.policy!.quote.tdx.mrConfigId, [h(m.mrConfigId)], 'and so does the client policy')
  t.doesNotThrow(() => parsePolicy(measured.quotePolicy))
  const rtmrs = (['rtmr0', 'rtmr1', 'rtmr2', 'rtmr3'] as const).map((k) => new Uint8Array(Buffer.from(measured.expected[k], 'hex'))) as [Uint8Array, Uint8Array, Uint8Array, Uint8Array]
  t.same(measured.workloadIds, [computeWorkloadId({ mrTd: ref.mrTd, mrConfigId: m.mrConfigId, mrOwner: ref.mrOwner, mrOwnerConfig: ref.mrOwnerConfig, rtmrs })], 'the workload id covers it')
  t.match(measured.provenance, { initdata: { mrConfigId: h(m.mrConfigId), referenceMrConfigId: '0'.repeat(96) }, registers: { initdata: ['mrConfigId'], host: ['mrOwner', 'mrOwnerConfig'] } })
})

t.test('a policy that allows exec, or could be made to, is refused', async (t) => {
  const withPolicy = (rego: string) => enc(initdataToml(rego))
  const good = filled(policy)
  t.doesNotThrow(() => measureInitdata(withPolicy(good), 'x'), 'the filled-in policy passes')
  const weakened: [string, string][] = [
    [good.replace('default ExecProcessRequest := false', 'default ExecProcessRequest := true'), 'exec allowed by default'],
    [good + '\nExecProcessRequest if {\n  input.process.Args[0] == "/bin/sh"\n}\n', 'a rule allowing some exec'],
    [good.replace('default ExecProcessRequest := false\n', ''), 'no exec default (the agent would still refuse; the check wants it explicit)'],
    [good.replace('default AllowRequestsFailingPolicy := false', 'default AllowRequestsFailingPolicy := true'), 'fail-open switch on'],
    [good.replace('default SetPolicyRequest := false', 'default SetPolicyRequest := true'), 'policy replaceable at run time'],
    [good.replace('default ReadStreamRequest := false', 'default ReadStreamRequest := true'), 'logs to the host'],
    [good.replace('default WriteStreamRequest := false', 'default WriteStreamRequest := true'), 'stdin from the host'],
    [good.replace('default CreateContainerRequest := false', 'default CreateContainerRequest := true'), 'any container'],
    [good.replace('default CopyFileRequest := false', 'default CopyFileRequest := true'), 'any file copy'],
    [good.replace('package agent_policy', 'package agent_policy.ExecProcessRequest'), 'a package named after a request'],
    [good.replace('package agent_policy', 'package other'), 'another package'],
    [good + '\n# ExecProcessRequest is fine\n', 'a mention the text check cannot tell from a rule'],
  ]
  for (const [rego, what] of weakened) t.equal(codeOf(thrown(() => measureInitdata(withPolicy(rego), 'x'))), 'MEASURE_INITDATA_POLICY', what)
  const noPolicy = enc(`algorithm = "sha384"\nversion = "0.1.0"\n\n[data]\n"cdh.toml" = '''\nsocket = 'unix:///run/confidential-containers/cdh.sock'\n'''\n`)
  t.equal(codeOf(thrown(() => measureInitdata(noPolicy, 'x'))), 'MEASURE_INITDATA_POLICY', 'no policy.rego: the guest default policy would apply')
  t.equal(codeOf(thrown(() => measureInitdata(withPolicy('\n'), 'x'))), 'MEASURE_INITDATA_POLICY', 'an empty policy')
})

t.test('cgw measure --initdata on a real reference boot: MRCONFIGID from the pod, the rest from the reference', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cgw-initdata-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const vec = 'test/vectors/eventlog/gce-cos113/'
  const bundle = {
    quote: (await readFile(`${vec}cos-113-tdx-quote.dat`)).toString('base64'),
    eventLog: { table: (await readFile(`${vec}ccel_table.dat`)).toString('base64'), data: (await readFile(`${vec}ccel_data.dat`)).toString('base64') },
  }
  await writeFile(join(dir, 'reference.json'), JSON.stringify(bundle))
  const cm = (await readFile('deploy/k8s/gateway-config.yaml', 'utf8')).split('gateway.json: |\n')[1]!.replace(/^ {4}/gm, '')
  await writeFile(join(dir, 'gateway.json'), cm)
  await writeFile(join(dir, 'initdata.toml'), filled(shipped.toString('utf8')))
  await writeFile(join(dir, 'shipped.toml'), shipped)
  const run = async (initdata: string) => {
    let out = ''
    let err = ''
    const code = await runMeasure(['--config', join(dir, 'gateway.json'), '--unreleased', '--reference', join(dir, 'reference.json'), '--initdata', join(dir, initdata), '--pcs', 'https://pcs.example', '--policy-out', join(dir, 'policy.json')], { out: (s) => void (out += s), err: (s) => void (err += s) })
    return { code, out, err }
  }
  const ok = await run('initdata.toml')
  t.equal(ok.code, EXIT.OK, ok.err)
  const doc = JSON.parse(ok.out)
  const expected = createHash('sha384').update(await readFile(join(dir, 'initdata.toml'))).digest('hex')
  t.equal(doc.expected.mrConfigId, expected)
  t.equal(doc.expected.mrTd, h(referenceFromEvidence(bundle).mrTd), 'MRTD from the reference')
  const written = JSON.parse(await readFile(join(dir, 'policy.json'), 'utf8'))
  t.same(written.quote.tdx.mrConfigId, [expected], 'the policy file pins MRCONFIGID')
  const refused = await run('shipped.toml')
  t.equal(refused.code, EXIT.USAGE, 'a refused initdata is bad input, exit 1')
  t.match(refused.err, /MEASURE_INITDATA_PLACEHOLDER/)
})

t.test('the annotation encoding round-trips', async (t) => {
  const toml = initdataToml(policy)
  t.equal(decodeInitdataAnnotation(encodeInitdataAnnotation(toml)).toString('utf8'), toml)
  t.equal(codeOf(thrown(() => initdataToml("x '''\n"))), 'MEASURE_INITDATA_INVALID', 'a policy holding the delimiter cannot be embedded')
})
