/**
 * The real GPU evidence providers (enclave/gpu/nvml.ts, nvattest-cli.ts)
 * against fakes of what they read, since this machine has no GPU:
 *
 * - NVML: test/fixtures/fake-nvml.c, compiled here with the machine's C
 *   compiler into a temporary libfake-nvml.so and loaded through koffi
 *   exactly as libnvidia-ml.so.1 would be (same entry points, nvml.h
 *   layouts);
 * - nvattest: test/fixtures/fake-nvattest.mjs, run as a child process
 *   through the provider's own execFile runner.
 *
 * Both fakes answer with NVIDIA's sample H100 evidence, whose report answers
 * one fixed nonce (the fakes cannot sign): asking for that nonce succeeds,
 * any other is refused as ENCLAVE_GPU_EVIDENCE_INVALID. What the providers
 * return is then verified by attestation/nvidia at 2025-08-21T12:00:00Z (see
 * test/helpers/nvidia-sample.ts), showing that they deliver evidence the
 * verifier accepts. Errors are asserted by code and details, never message.
 */
import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { hashGpuEvidence } from '../attestation/binding.ts'
import { parseGpuEvidence, type GpuEvidenceBundle } from '../attestation/nvidia/evidence.ts'
import { verifyGpuReport } from '../attestation/nvidia/verify/gpu-report.ts'
import { verifyGpuEvidence } from '../attestation/nvidia/verify/verify-gpu-evidence.ts'
import { GPU_COLLECTION_ERROR_CODES, GpuCollectionError, isGpuCollectionError } from '../enclave/gpu/errors.ts'
import type { GpuCollateralGetters } from '../enclave/gpu/collect.ts'
import { createNvattestProvider, execFileRunner, type RunCommand } from '../enclave/gpu/nvattest-cli.ts'
import { createNvmlProvider, type NvmlBinding } from '../enclave/gpu/nvml.ts'
import type { GpuEvidenceProvider } from '../enclave/gpu/provider.ts'
import { GPU_OCSP_TIME, SAMPLE_DIR, SAMPLE_NONCE, sampleBundle, sampleChain, sampleOcsp, sampleReport, sampleRims } from './helpers/nvidia-sample.ts'

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url))
const REPORT_FILE = `${SAMPLE_DIR}hopperAttestationReport.txt`
const CHAIN_FILE = `${SAMPLE_DIR}hopperCertChain.txt`
const OTHER_NONCE = new Uint8Array(32).fill(0x42)
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** The error a promise rejects with (a resolved promise is a test failure). */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p
  } catch (e) {
    return e
  }
  throw new Error('expected a rejection, the promise resolved')
}

/** Assert a GpuCollectionError with `code` and return it for its details. */
async function collectionError(t: Test, p: Promise<unknown>, code: keyof typeof GPU_COLLECTION_ERROR_CODES): Promise<GpuCollectionError> {
  const e = await rejection(p)
  t.ok(isGpuCollectionError(e), 'a registered GpuCollectionError')
  t.equal((e as GpuCollectionError).code, code)
  return e as GpuCollectionError
}

/** Set environment variables for one test, restoring them afterwards. */
function withEnv(t: Test, vars: Record<string, string | undefined>): void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
  const apply = (v: Record<string, string | undefined>) => {
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) delete process.env[k]
      else process.env[k] = x
    }
  }
  apply(vars)
  t.teardown(() => apply(saved))
}

/** The evidence is NVIDIA's sample, byte for byte, and the verifier accepts it. */
function assertSampleEvidence(t: Test, bundle: GpuEvidenceBundle, gpus = 1): void {
  t.same(hex(bundle.nonce), hex(SAMPLE_NONCE))
  t.equal(bundle.gpus.length, gpus)
  for (const g of bundle.gpus) {
    t.equal(g.arch, 'HOPPER')
    t.equal(hex(g.report), hex(sampleReport()), 'report bytes are the sample')
    t.equal(Buffer.from(g.certificateChain).toString('latin1'), Buffer.from(sampleChain()).toString('latin1'), 'chain is the sample PEM')
  }
  // The binding hashes exactly these bytes: the provider changes none of them.
  t.equal(hex(hashGpuEvidence(bundle.gpus)), hex(hashGpuEvidence(sampleBundle({ count: gpus }).gpus)))
  const parsed = parseGpuEvidence(bundle)
  for (const g of parsed.gpus) {
    const v = verifyGpuReport(g.report, g.chain, { now: GPU_OCSP_TIME, expectedNonce: SAMPLE_NONCE })
    t.equal(v.chain.length, 4, 'chain verified to the pinned NVIDIA root')
  }
}

/** Collateral getters serving the sample's OCSP responses and RIMs, recording what they were given. */
function sampleCollateral() {
  const seen: GpuEvidenceBundle[] = []
  return {
    seen,
    attach: {
      ocsp: async (b: GpuEvidenceBundle) => (seen.push(b), sampleOcsp('gpu')),
      rims: async (b: GpuEvidenceBundle) => (seen.push(b), sampleRims()),
    },
  }
}

function assertFullVerification(t: Test, bundle: GpuEvidenceBundle): void {
  const v = verifyGpuEvidence(bundle, { now: GPU_OCSP_TIME, expectedNonce: SAMPLE_NONCE })
  t.equal(v.gpus.length, bundle.gpus.length)
  t.equal(v.gpus[0]!.measurements.matched, 33, 'every golden measurement of the attached RIMs matches')
  t.same(
    v.gpus[0]!.certificates.filter((c) => c.chain === 'device').map((c) => c.ocsp),
    ['exempt', 'good', 'good', 'good'],
    'attached OCSP covers the device chain',
  )
}

t.test('the error registry names every collection code', async (t) => {
  t.same(Object.keys(GPU_COLLECTION_ERROR_CODES).sort(), ['ENCLAVE_GPU_COLLECTION_FAILED', 'ENCLAVE_GPU_EVIDENCE_INVALID', 'ENCLAVE_GPU_UNAVAILABLE'])
  for (const info of Object.values(GPU_COLLECTION_ERROR_CODES)) t.ok(info.description.length > 0)
})

// ---------------------------------------------------------------------------
// NVML

/** Build fake-nvml.c; no compiler is a failure with a message saying so, never a silent skip. */
function compileFakeNvml(dir: string): string {
  const out = join(dir, 'libfake-nvml.so')
  const compilers = [...new Set([process.env.CC, 'cc', 'gcc', 'clang'].filter((c): c is string => !!c))]
  for (const cc of compilers) {
    try {
      execFileSync(cc, ['-std=c11', '-shared', '-fPIC', '-Wall', '-o', out, `${FIXTURES}fake-nvml.c`], { stdio: 'pipe' })
      return out
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw new Error(`${cc} could not compile test/fixtures/fake-nvml.c:\n${String((e as { stderr?: unknown }).stderr ?? e)}`)
    }
  }
  throw new Error(`no C compiler found (tried ${compilers.join(', ')}): the NVML provider tests build test/fixtures/fake-nvml.c; install gcc or set CC`)
}

t.test('NVML provider against a fake libnvidia-ml', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fake-nvml-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  let library: string
  try {
    library = compileFakeNvml(dir)
  } catch (e) {
    t.fail((e as Error).message)
    return
  }
  const logFile = join(dir, 'calls.log')
  const calls = (): string[] => (existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n') : [])
  // One provider for all cases, as a gateway keeps one: the library is bound once.
  const nvml = createNvmlProvider({ library })

  /** Each case starts from the working sample and an empty call log. */
  const fake = (t: Test, knobs: Record<string, string> = {}) => {
    rmSync(logFile, { force: true })
    withEnv(t, {
      FAKE_NVML_REPORT: REPORT_FILE,
      FAKE_NVML_CHAIN: CHAIN_FILE,
      FAKE_NVML_LOG: logFile,
      FAKE_NVML_INIT_FAIL: undefined,
      FAKE_NVML_COUNT: undefined,
      FAKE_NVML_CC: undefined,
      FAKE_NVML_REPORT_FAIL: undefined,
      FAKE_NVML_CERT_FAIL: undefined,
      FAKE_NVML_REPORT_SIZE: undefined,
      ...knobs,
    })
  }

  t.test('the sample nonce: the sample report and PEM chain, verified by attestation/nvidia', async (t) => {
    fake(t)
    const bundle = await nvml.collect(SAMPLE_NONCE)
    t.equal(nvml.name, 'nvml')
    assertSampleEvidence(t, bundle)
    t.same(bundle.ocsp, [])
    t.same(bundle.rims, [])
    t.same(calls(), ['init', 'cc-state', 'count', 'handle', `report ${hex(SAMPLE_NONCE)}`, 'certificate', 'shutdown'], 'nonce written into the struct; NVML shut down')
  })

  t.test('eight GPUs, OCSP and RIMs attached through the getters: the whole evidence verifies', async (t) => {
    fake(t, { FAKE_NVML_COUNT: '8' })
    const { attach, seen } = sampleCollateral()
    const bundle = await createNvmlProvider({ library, attach }).collect(SAMPLE_NONCE)
    assertSampleEvidence(t, bundle, 8)
    t.equal(seen.length, 2)
    t.equal(seen[0]!.gpus.length, 8, 'getters see the collected GPUs')
    assertFullVerification(t, bundle)
    t.equal(calls().filter((c) => c.startsWith('report ')).length, 8)
  })

  t.test('protected-PCIe mode collects too', async (t) => {
    fake(t, { FAKE_NVML_CC: 'ppcie' })
    assertSampleEvidence(t, await nvml.collect(SAMPLE_NONCE))
    t.ok(calls().includes('cc-settings'))
  })

  t.test('another nonce: the report does not answer it', async (t) => {
    fake(t)
    const e = await collectionError(t, nvml.collect(OTHER_NONCE), 'ENCLAVE_GPU_EVIDENCE_INVALID')
    t.match(e.details, { provider: 'nvml', gpu: 0, expected: hex(OTHER_NONCE), actual: hex(SAMPLE_NONCE) })
    t.ok(calls().includes(`report ${hex(OTHER_NONCE)}`), 'the nonce asked for was passed to NVML')
    t.equal(calls().at(-1), 'shutdown')
  })

  t.test('nvmlInit_v2 fails: unavailable, with the NVML code', async (t) => {
    fake(t, { FAKE_NVML_INIT_FAIL: '9' })
    const e = await collectionError(t, nvml.collect(SAMPLE_NONCE), 'ENCLAVE_GPU_UNAVAILABLE')
    t.match(e.details, { provider: 'nvml', call: 'nvmlInit_v2', nvmlReturn: 9, nvmlError: 'Driver Not Loaded' })
    t.same(calls(), ['init'], 'nothing to shut down after a failed init')
  })

  t.test('zero GPUs: unavailable', async (t) => {
    fake(t, { FAKE_NVML_COUNT: '0' })
    const e = await collectionError(t, nvml.collect(SAMPLE_NONCE), 'ENCLAVE_GPU_UNAVAILABLE')
    t.match(e.details, { call: 'nvmlDeviceGetCount_v2', nvmlReturn: 0, gpuCount: 0 })
    t.equal(calls().at(-1), 'shutdown')
  })

  t.test('CC off: unavailable', async (t) => {
    fake(t, { FAKE_NVML_CC: 'off' })
    const e = await collectionError(t, nvml.collect(SAMPLE_NONCE), 'ENCLAVE_GPU_UNAVAILABLE')
    t.match(e.details, { ccFeature: 0, multiGpuMode: 0 })
    t.notOk(calls().some((c) => c.startsWith('report')), 'no report asked for')
    t.equal(calls().at(-1), 'shutdown')
  })

  t.test('the report call fails: collection failed, with the NVML code and GPU', async (t) => {
    fake(t, { FAKE_NVML_COUNT: '2', FAKE_NVML_REPORT_FAIL: '15' })
    const e = await collectionError(t, nvml.collect(SAMPLE_NONCE), 'ENCLAVE_GPU_COLLECTION_FAILED')
    t.match(e.details, { provider: 'nvml', call: 'nvmlDeviceGetConfComputeGpuAttestationReport', nvmlReturn: 15, nvmlError: 'GPU is lost', gpu: 0 })
    t.equal(calls().at(-1), 'shutdown', 'shut down after the failure')
  })

  t.test('the certificate call fails: collection failed', async (t) => {
    fake(t, { FAKE_NVML_CERT_FAIL: '999' })
    const e = await collectionError(t, nvml.collect(SAMPLE_NONCE), 'ENCLAVE_GPU_COLLECTION_FAILED')
    t.match(e.details, { call: 'nvmlDeviceGetConfComputeGpuCertificate', nvmlReturn: 999, nvmlError: 'Unknown Error', gpu: 0 })
    t.equal(calls().at(-1), 'shutdown')
  })

  t.test('a declared size beyond the buffer, or zero: invalid evidence', async (t) => {
    for (const size of ['8193', '0']) {
      fake(t, { FAKE_NVML_REPORT_SIZE: size })
      const e = await collectionError(t, nvml.collect(SAMPLE_NONCE), 'ENCLAVE_GPU_EVIDENCE_INVALID')
      t.match(e.details, { field: 'attestationReportSize', size: Number(size), capacity: 0x2000 })
    }
    fake(t, { FAKE_NVML_REPORT_SIZE: '100' })
    const e = await collectionError(t, nvml.collect(SAMPLE_NONCE), 'ENCLAVE_GPU_EVIDENCE_INVALID')
    t.match(e.details, { gpu: 0 }, 'a truncated report does not parse')
  })

  t.test('a library that is not there, or is not NVML: unavailable', async (t) => {
    fake(t)
    const missing = await collectionError(t, createNvmlProvider({ library: join(dir, 'no-such-libnvidia-ml.so.1') }).collect(SAMPLE_NONCE), 'ENCLAVE_GPU_UNAVAILABLE')
    t.match(missing.details, { provider: 'nvml' })
    // libc loads but has no nvmlInit_v2: a driver without the API is no NVML.
    await collectionError(t, createNvmlProvider({ library: 'libc.so.6' }).collect(SAMPLE_NONCE), 'ENCLAVE_GPU_UNAVAILABLE')
  })

  t.test('argument misuse and abort', async (t) => {
    fake(t)
    t.ok((await rejection(nvml.collect(new Uint8Array(31)))) instanceof RangeError, 'a nonce is 32 bytes')
    const reason = new Error('caller gave up')
    t.equal(await rejection(nvml.collect(SAMPLE_NONCE, { signal: AbortSignal.abort(reason) })), reason)
    t.same(calls(), [], 'nothing called once aborted')
  })
})

t.test('NVML provider logic with an injected binding', async (t) => {
  const log: string[] = []
  const report = sampleReport()
  const chain = sampleChain()
  const pad = (b: Uint8Array, n: number) => {
    const out = new Uint8Array(n)
    out.set(b)
    return out
  }
  const binding = (over: Partial<NvmlBinding> = {}): NvmlBinding => ({
    nvmlInit_v2: async () => (log.push('init'), 0),
    nvmlShutdown: async () => (log.push('shutdown'), 0),
    nvmlErrorString: (ret) => `error ${ret}`,
    nvmlSystemGetConfComputeState: async () => ({ ret: 0, environment: 2, ccFeature: 1, devToolsMode: 0 }),
    nvmlDeviceGetCount_v2: async () => ({ ret: 0, count: 1 }),
    nvmlDeviceGetHandleByIndex_v2: async (i) => ({ ret: 0, device: { i } }),
    nvmlDeviceGetConfComputeGpuAttestationReport: async () => ({ ret: 0, attestationReportSize: report.length, attestationReport: pad(report, 0x2000) }),
    nvmlDeviceGetConfComputeGpuCertificate: async () => ({ ret: 0, attestationCertChainSize: chain.length, attestationCertChain: pad(chain, 0x1400) }),
    ...over,
  })
  const provider = (b: NvmlBinding, attach?: GpuCollateralGetters) => createNvmlProvider({ library: 'injected', load: () => b, ...(attach ? { attach } : {}) })

  t.test('the chain is trimmed to its declared size (the rest of the buffer is zeros)', async (t) => {
    log.length = 0
    assertSampleEvidence(t, await provider(binding()).collect(SAMPLE_NONCE))
  })

  t.test('NVML is shut down when a call throws', async (t) => {
    log.length = 0
    const boom = new Error('binding bug')
    const e = await rejection(
      provider(
        binding({
          nvmlDeviceGetCount_v2: async () => {
            throw boom
          },
        }),
      ).collect(SAMPLE_NONCE),
    )
    t.equal(e, boom)
    t.same(log, ['init', 'shutdown'])
  })

  t.test('CC off and no settings function (an NVML before protected-PCIe): unavailable', async (t) => {
    const e = await collectionError(
      t,
      provider(binding({ nvmlSystemGetConfComputeState: async () => ({ ret: 0, environment: 0, ccFeature: 0, devToolsMode: 0 }) })).collect(SAMPLE_NONCE),
      'ENCLAVE_GPU_UNAVAILABLE',
    )
    t.match(e.details, { ccFeature: 0, multiGpuMode: null })
  })

  t.test('CC state not supported: unavailable; another error: collection failed', async (t) => {
    const state = (ret: number) => binding({ nvmlSystemGetConfComputeState: async () => ({ ret, environment: 0, ccFeature: 0, devToolsMode: 0 }) })
    t.match((await collectionError(t, provider(state(3)).collect(SAMPLE_NONCE), 'ENCLAVE_GPU_UNAVAILABLE')).details, { nvmlReturn: 3 })
    t.match((await collectionError(t, provider(state(999)).collect(SAMPLE_NONCE), 'ENCLAVE_GPU_COLLECTION_FAILED')).details, { nvmlReturn: 999, nvmlError: 'error 999' })
  })

  t.test('a handle refused: collection failed for that GPU', async (t) => {
    const b = binding({ nvmlDeviceGetCount_v2: async () => ({ ret: 0, count: 3 }), nvmlDeviceGetHandleByIndex_v2: async (i) => ({ ret: i === 2 ? 4 : 0, device: {} }) })
    t.match((await collectionError(t, provider(b).collect(SAMPLE_NONCE), 'ENCLAVE_GPU_COLLECTION_FAILED')).details, { gpu: 2, nvmlReturn: 4 })
  })

  t.test('a failing collateral getter is a collection failure', async (t) => {
    const e = await collectionError(
      t,
      provider(binding(), {
        ocsp: async () => {
          throw new Error('responder down')
        },
      }).collect(SAMPLE_NONCE),
      'ENCLAVE_GPU_COLLECTION_FAILED',
    )
    t.match(e.details, { stage: 'ocsp' })
  })

  t.test('a loader that throws: unavailable, and tried again next time', async (t) => {
    let tries = 0
    const p = createNvmlProvider({
      load: () => {
        tries++
        throw new Error('dlopen failed')
      },
    })
    await collectionError(t, p.collect(SAMPLE_NONCE), 'ENCLAVE_GPU_UNAVAILABLE')
    await collectionError(t, p.collect(SAMPLE_NONCE), 'ENCLAVE_GPU_UNAVAILABLE')
    t.equal(tries, 2)
  })
})

// ---------------------------------------------------------------------------
// nvattest

const FAKE_CLI = `${FIXTURES}fake-nvattest.mjs`

t.test('nvattest provider against a fake CLI', async (t) => {
  const runs: { file: string; args: readonly string[] }[] = []
  // The provider's own execFile runner, starting the fake with this Node.
  const viaNode: RunCommand = (file, args, options) => {
    runs.push({ file, args })
    return execFileRunner(process.execPath, [file, ...args], options)
  }
  const cli = (p: Parameters<typeof createNvattestProvider>[0] = {}): GpuEvidenceProvider => createNvattestProvider({ command: FAKE_CLI, run: viaNode, ...p })
  const mode = (t: Test, m: string | undefined, gpus?: string) => withEnv(t, { FAKE_NVATTEST_MODE: m, FAKE_NVATTEST_GPUS: gpus })

  t.test('the sample nonce: the documented command line, the sample evidence, verified', async (t) => {
    mode(t, undefined)
    runs.length = 0
    const p = cli()
    const bundle = await p.collect(SAMPLE_NONCE)
    t.equal(p.name, 'nvattest')
    t.same(runs, [{ file: FAKE_CLI, args: ['collect-evidence', '--device', 'gpu', '--nonce', hex(SAMPLE_NONCE), '--format', 'json'] }])
    assertSampleEvidence(t, bundle)
    t.same(bundle.ocsp, [])
    t.same(bundle.rims, [])
  })

  t.test('eight GPUs with OCSP and RIMs attached through the getters: the whole evidence verifies', async (t) => {
    mode(t, undefined, '8')
    const { attach, seen } = sampleCollateral()
    const bundle = await cli({ attach }).collect(SAMPLE_NONCE)
    assertSampleEvidence(t, bundle, 8)
    t.equal(seen[0]!.gpus.length, 8)
    assertFullVerification(t, bundle)
  })

  t.test('another nonce: echoed by the CLI, not answered by the report', async (t) => {
    mode(t, undefined)
    const e = await collectionError(t, cli().collect(OTHER_NONCE), 'ENCLAVE_GPU_EVIDENCE_INVALID')
    t.match(e.details, { provider: 'nvattest', gpu: 0, expected: hex(OTHER_NONCE), actual: hex(SAMPLE_NONCE) })
  })

  t.test('a non-zero exit without JSON: collection failed, with the exit status', async (t) => {
    mode(t, 'exit:3')
    t.match((await collectionError(t, cli().collect(SAMPLE_NONCE), 'ENCLAVE_GPU_COLLECTION_FAILED')).details, { exitCode: 3, resultCode: null })
  })

  t.test('result_code != 0: the JSON code counts, not the truncated exit status', async (t) => {
    mode(t, 'result:501')
    t.match((await collectionError(t, cli().collect(SAMPLE_NONCE), 'ENCLAVE_GPU_COLLECTION_FAILED')).details, { resultCode: 501, exitCode: 501 & 0xff })
    for (const code of [500, 509]) {
      mode(t, `result:${code}`)
      t.match((await collectionError(t, cli().collect(SAMPLE_NONCE), 'ENCLAVE_GPU_UNAVAILABLE')).details, { resultCode: code }, `NVAT_RC ${code}: nothing to collect here`)
    }
  })

  t.test('output that is not the collect-evidence JSON: invalid evidence', async (t) => {
    for (const m of ['garbage', 'text', 'bad-evidence']) {
      mode(t, m)
      const e = await collectionError(t, cli().collect(SAMPLE_NONCE), 'ENCLAVE_GPU_EVIDENCE_INVALID')
      // Safe to log: no evidence in the message or details.
      const shown = `${e.message} ${JSON.stringify(e.toJSON())}`
      t.notOk(shown.includes('LS0tLS1CRUdJTi') || shown.includes(hex(sampleReport()).slice(0, 64)), `${m}: no evidence in the error`)
    }
  })

  t.test('a CLI that hangs is killed at the timeout', async (t) => {
    mode(t, 'hang')
    const started = Date.now()
    const e = await collectionError(t, cli({ timeoutMs: 300 }).collect(SAMPLE_NONCE), 'ENCLAVE_GPU_COLLECTION_FAILED')
    t.match(e.details, { reason: 'timeout', timeoutMs: 300 })
    t.ok(Date.now() - started < 10_000)
  })

  t.test('a runner that ignores the signal cannot hang the caller', async (t) => {
    const deaf: RunCommand = () => new Promise(() => {})
    const e = await collectionError(t, createNvattestProvider({ run: deaf, timeoutMs: 50 }).collect(SAMPLE_NONCE), 'ENCLAVE_GPU_COLLECTION_FAILED')
    t.match(e.details, { reason: 'timeout' })
  })

  t.test("the caller's abort kills the CLI and rejects with the caller's reason", async (t) => {
    mode(t, 'hang')
    const controller = new AbortController()
    const reason = new Error('client went away')
    setTimeout(() => controller.abort(reason), 200)
    t.equal(await rejection(cli().collect(SAMPLE_NONCE, { signal: controller.signal })), reason)
  })

  t.test('no CLI installed: unavailable', async (t) => {
    const e = await collectionError(t, createNvattestProvider({ command: join(FIXTURES, 'no-such-nvattest') }).collect(SAMPLE_NONCE), 'ENCLAVE_GPU_UNAVAILABLE')
    t.match(e.details, { errno: 'ENOENT' })
  })

  t.test('argument misuse throws at once', async (t) => {
    t.throws(() => createNvattestProvider({ timeoutMs: 0 }), RangeError)
    t.ok((await rejection(cli().collect(new Uint8Array(16)))) instanceof RangeError)
  })
})
