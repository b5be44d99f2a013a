/**
 * GPU evidence straight from NVML (libnvidia-ml.so.1) through koffi, the FFI
 * — the same calls NVIDIA's own SDK makes (nv-attestation-sdk-cpp
 * `src/gpu/nvml_client.cpp`), without the SDK:
 *
 *     nvmlInit_v2
 *     nvmlSystemGetConfComputeState (and ...Settings, for protected-PCIe mode)
 *     nvmlDeviceGetCount_v2
 *     for each GPU: nvmlDeviceGetHandleByIndex_v2
 *                   nvmlDeviceGetConfComputeGpuAttestationReport  (nonce in, SPDM transcript out)
 *                   nvmlDeviceGetConfComputeGpuCertificate        (attestation chain, PEM)
 *     nvmlShutdown                                                 (always)
 *
 * Struct layouts and sizes are those of nvml.h (NVIDIA, NVML API version 13,
 * as vendored in github.com/NVIDIA/go-nvml `pkg/nvml/nvml.h`, "Confidential
 * Computing definitions"); `loadNvmlLibrary` checks koffi's sizes against
 * them. The device certificate chain is `attestationCertChain`, not
 * `certChain`: it is the one NVIDIA's SDK serialises as the evidence
 * `certificate` (nvml_client.cpp `get_attestation_cert_chain`) and the one
 * whose leaf signs the report.
 *
 * Calls run on koffi's worker threads (`.async`): each report is an SPDM
 * exchange with the GPU, and the first handle lookup initialises the GPU
 * (nvml.h, nvmlInit_v2), so calls block for long enough to matter to a
 * server's event loop; nvml.h states NVML is thread-safe. The provider
 * collects; it checks only that every report parses and answers the nonce
 * (errors.ts), never signatures.
 */
import type koffiDefault from 'koffi'
import type { GpuEvidenceBundle, GpuEvidenceItem } from '../../attestation/nvidia/evidence.ts'
import type { CollectOptions, GpuEvidenceProvider } from './provider.ts'
import { assertAnswersNonce, assertNonce, attachCollateral, type GpuCollateralGetters } from './collect.ts'
import { GpuCollectionError } from './errors.ts'

type Koffi = typeof koffiDefault
type TypeObject = ReturnType<Koffi['struct']>
type TypeSpec = Parameters<Koffi['sizeof']>[0]

// ---------------------------------------------------------------------------
// nvml.h constants

/** nvmlReturn_t NVML_SUCCESS (nvml.h `nvmlReturn_enum`). */
export const NVML_SUCCESS = 0
/** nvmlReturn_t NVML_ERROR_NOT_SUPPORTED: the query is not available on this system. */
export const NVML_ERROR_NOT_SUPPORTED = 3
/** nvmlReturn_t NVML_ERROR_FUNCTION_NOT_FOUND: this NVML does not implement the function. */
export const NVML_ERROR_FUNCTION_NOT_FOUND = 13
/** nvml.h `NVML_CC_SYSTEM_FEATURE_ENABLED`: `nvmlConfComputeSystemState_t.ccFeature` when CC mode is on. */
export const NVML_CC_SYSTEM_FEATURE_ENABLED = 1
/** nvml.h `NVML_CC_SYSTEM_MULTIGPU_PROTECTED_PCIE`: `multiGpuMode` in protected-PCIe mode (CC feature off, GPUs still attest). */
export const NVML_CC_SYSTEM_MULTIGPU_PROTECTED_PCIE = 1
/** nvml.h `NVML_CC_GPU_CEC_NONCE_SIZE` (0x20): the nonce the caller writes into the report struct. */
export const NVML_CC_GPU_CEC_NONCE_SIZE = 0x20
/** nvml.h `NVML_CC_GPU_ATTESTATION_REPORT_SIZE` (0x2000): capacity of `attestationReport`. */
export const NVML_CC_GPU_ATTESTATION_REPORT_SIZE = 0x2000
/** nvml.h `NVML_CC_GPU_CEC_ATTESTATION_REPORT_SIZE` (0x1000): capacity of `cecAttestationReport` (not used here). */
export const NVML_CC_GPU_CEC_ATTESTATION_REPORT_SIZE = 0x1000
/** nvml.h `NVML_GPU_CERT_CHAIN_SIZE` (0x1000): capacity of `certChain` (not the attestation chain). */
export const NVML_GPU_CERT_CHAIN_SIZE = 0x1000
/** nvml.h `NVML_GPU_ATTESTATION_CERT_CHAIN_SIZE` (0x1400): capacity of `attestationCertChain`, the device chain. */
export const NVML_GPU_ATTESTATION_CERT_CHAIN_SIZE = 0x1400

/**
 * sizeof(nvmlConfComputeGpuAttestationReport_t): three unsigned ints, then
 * nonce[0x20], attestationReport[0x2000], cecAttestationReport[0x1000]; no
 * padding (byte arrays after 4-byte fields).
 */
export const NVML_ATTESTATION_REPORT_STRUCT_SIZE = 3 * 4 + NVML_CC_GPU_CEC_NONCE_SIZE + NVML_CC_GPU_ATTESTATION_REPORT_SIZE + NVML_CC_GPU_CEC_ATTESTATION_REPORT_SIZE
/** sizeof(nvmlConfComputeGpuCertificate_t): certChainSize, attestationCertChainSize, certChain[0x1000], attestationCertChain[0x1400]. */
export const NVML_CERTIFICATE_STRUCT_SIZE = 2 * 4 + NVML_GPU_CERT_CHAIN_SIZE + NVML_GPU_ATTESTATION_CERT_CHAIN_SIZE
/** sizeof(nvmlSystemConfComputeSettings_v1_t): version, environment, ccFeature, devToolsMode, multiGpuMode. */
const SETTINGS_V1_SIZE = 5 * 4
/** nvml.h `nvmlSystemConfComputeSettings_v1` = NVML_STRUCT_VERSION(SystemConfComputeSettings, 1) = sizeof | (1 << 24). */
export const NVML_SYSTEM_CONF_COMPUTE_SETTINGS_V1 = (SETTINGS_V1_SIZE | (1 << 24)) >>> 0

/** The NVML library NVIDIA's SDK opens (the driver installs it with the soname's major version). */
export const DEFAULT_NVML_LIBRARY = 'libnvidia-ml.so.1'

// ---------------------------------------------------------------------------
// The binding: the NVML surface this provider uses, one method per C function

/** An opaque nvmlDevice_t, valid between nvmlInit_v2 and nvmlShutdown. */
export type NvmlDevice = unknown

/**
 * The NVML functions the provider calls, returning each call's nvmlReturn_t
 * (`ret`) and its output. `loadNvmlLibrary` binds them to the real library
 * with koffi; a test may bind them to anything.
 */
export interface NvmlBinding {
  nvmlInit_v2(): Promise<number>
  nvmlShutdown(): Promise<number>
  /** Static text of a return code (never freed, per nvml.h). */
  nvmlErrorString(ret: number): string
  nvmlSystemGetConfComputeState(): Promise<{ ret: number; environment: number; ccFeature: number; devToolsMode: number }>
  /** Absent from NVML releases older than protected-PCIe mode. */
  nvmlSystemGetConfComputeSettings?: () => Promise<{ ret: number; ccFeature: number; multiGpuMode: number }>
  nvmlDeviceGetCount_v2(): Promise<{ ret: number; count: number }>
  nvmlDeviceGetHandleByIndex_v2(index: number): Promise<{ ret: number; device: NvmlDevice }>
  /** `nonce` is written into the struct before the call; the buffers come back whole, with their declared sizes. */
  nvmlDeviceGetConfComputeGpuAttestationReport(
    device: NvmlDevice,
    nonce: Uint8Array,
  ): Promise<{ ret: number; attestationReportSize: number; attestationReport: Uint8Array }>
  nvmlDeviceGetConfComputeGpuCertificate(device: NvmlDevice): Promise<{ ret: number; attestationCertChainSize: number; attestationCertChain: Uint8Array }>
}

interface NvmlTypes {
  readonly device: TypeObject
  readonly state: TypeObject
  readonly settings: TypeObject
  readonly report: TypeObject
  readonly certificate: TypeObject
}

// koffi registers types process-wide; declare them once, anonymously, so no
// other module's `nvmlDevice_t` can collide with these.
let typesOf: { readonly koffi: Koffi; readonly types: NvmlTypes } | undefined

function nvmlTypes(k: Koffi): NvmlTypes {
  if (typesOf?.koffi === k) return typesOf.types
  const bytes = (n: number) => k.array('uint8_t', n, 'Typed')
  const u32 = 'unsigned int'
  const types: NvmlTypes = {
    device: k.pointer(k.opaque()),
    state: k.struct({ environment: u32, ccFeature: u32, devToolsMode: u32 }),
    settings: k.struct({ version: u32, environment: u32, ccFeature: u32, devToolsMode: u32, multiGpuMode: u32 }),
    report: k.struct({
      isCecAttestationReportPresent: u32,
      attestationReportSize: u32,
      cecAttestationReportSize: u32,
      nonce: bytes(NVML_CC_GPU_CEC_NONCE_SIZE),
      attestationReport: bytes(NVML_CC_GPU_ATTESTATION_REPORT_SIZE),
      cecAttestationReport: bytes(NVML_CC_GPU_CEC_ATTESTATION_REPORT_SIZE),
    }),
    certificate: k.struct({
      certChainSize: u32,
      attestationCertChainSize: u32,
      certChain: bytes(NVML_GPU_CERT_CHAIN_SIZE),
      attestationCertChain: bytes(NVML_GPU_ATTESTATION_CERT_CHAIN_SIZE),
    }),
  }
  // A layout that disagrees with nvml.h would hand NVML a buffer of the wrong size.
  const sizes: [TypeObject, number][] = [
    [types.report, NVML_ATTESTATION_REPORT_STRUCT_SIZE],
    [types.certificate, NVML_CERTIFICATE_STRUCT_SIZE],
    [types.settings, SETTINGS_V1_SIZE],
  ]
  for (const [t, size] of sizes) {
    if (k.sizeof(t) !== size) throw new Error(`koffi lays out an NVML struct in ${k.sizeof(t)} bytes, nvml.h in ${size}`)
  }
  typesOf = { koffi: k, types }
  return types
}

/**
 * Bind `library` (a soname looked up by the dynamic loader, or a path) with
 * koffi. Throws if koffi or the library cannot be loaded or lacks a required
 * function (a driver without the confidential-computing API).
 */
export async function loadNvmlLibrary(library: string): Promise<NvmlBinding> {
  // Imported here, so that a platform without koffi's prebuilt binary only loses this provider.
  const k: Koffi = (await import('koffi')).default
  const T = nvmlTypes(k)
  const lib = k.load(library)
  type Fn = ReturnType<typeof lib.func>
  // nvmlReturn_t is a C enum: an int.
  const fn = (name: string, args: TypeSpec[]): Fn => lib.func(name, 'int', args)
  const call = (f: Fn, ...args: unknown[]): Promise<number> =>
    new Promise((resolve, reject) => f.async(...args, (err: unknown, ret: number) => (err ? reject(err) : resolve(ret))))

  const init = fn('nvmlInit_v2', [])
  const shutdown = fn('nvmlShutdown', [])
  const errorString = lib.func('nvmlErrorString', 'const char *', ['int'])
  const getState = fn('nvmlSystemGetConfComputeState', [k.out(k.pointer(T.state))])
  const getCount = fn('nvmlDeviceGetCount_v2', [k.out(k.pointer('unsigned int'))])
  const getHandle = fn('nvmlDeviceGetHandleByIndex_v2', ['unsigned int', k.out(k.pointer(T.device))])
  const getReport = fn('nvmlDeviceGetConfComputeGpuAttestationReport', [T.device, k.inout(k.pointer(T.report))])
  const getCertificate = fn('nvmlDeviceGetConfComputeGpuCertificate', [T.device, k.out(k.pointer(T.certificate))])
  let getSettings: Fn | undefined
  try {
    getSettings = fn('nvmlSystemGetConfComputeSettings', [k.inout(k.pointer(T.settings))])
  } catch {
    getSettings = undefined // an NVML from before protected-PCIe mode: CC mode is then the only mode
  }

  const binding: NvmlBinding = {
    nvmlInit_v2: () => call(init),
    nvmlShutdown: () => call(shutdown),
    nvmlErrorString: (ret) => String(errorString(ret) ?? 'Unknown Error'),
    async nvmlSystemGetConfComputeState() {
      const s = { environment: 0, ccFeature: 0, devToolsMode: 0 }
      const ret = await call(getState, s)
      return { ret, ...s }
    },
    async nvmlDeviceGetCount_v2() {
      const out: [number | null] = [null]
      const ret = await call(getCount, out)
      return { ret, count: out[0] ?? 0 }
    },
    async nvmlDeviceGetHandleByIndex_v2(index) {
      const out: [unknown] = [null]
      const ret = await call(getHandle, index, out)
      return { ret, device: out[0] }
    },
    async nvmlDeviceGetConfComputeGpuAttestationReport(device, nonce) {
      const r = {
        isCecAttestationReportPresent: 0,
        attestationReportSize: 0,
        cecAttestationReportSize: 0,
        nonce: Uint8Array.from(nonce),
        attestationReport: new Uint8Array(NVML_CC_GPU_ATTESTATION_REPORT_SIZE),
        cecAttestationReport: new Uint8Array(NVML_CC_GPU_CEC_ATTESTATION_REPORT_SIZE),
      }
      const ret = await call(getReport, device, r)
      return { ret, attestationReportSize: r.attestationReportSize, attestationReport: r.attestationReport }
    },
    async nvmlDeviceGetConfComputeGpuCertificate(device) {
      const c = {
        certChainSize: 0,
        attestationCertChainSize: 0,
        certChain: new Uint8Array(NVML_GPU_CERT_CHAIN_SIZE),
        attestationCertChain: new Uint8Array(NVML_GPU_ATTESTATION_CERT_CHAIN_SIZE),
      }
      const ret = await call(getCertificate, device, c)
      return { ret, attestationCertChainSize: c.attestationCertChainSize, attestationCertChain: c.attestationCertChain }
    },
  }
  if (getSettings !== undefined) {
    const f = getSettings
    binding.nvmlSystemGetConfComputeSettings = async () => {
      // The caller sets `version` first: NVML refuses a struct version it does not know.
      const s = { version: NVML_SYSTEM_CONF_COMPUTE_SETTINGS_V1, environment: 0, ccFeature: 0, devToolsMode: 0, multiGpuMode: 0 }
      const ret = await call(f, s)
      return { ret, ccFeature: s.ccFeature, multiGpuMode: s.multiGpuMode }
    }
  }
  return binding
}

// ---------------------------------------------------------------------------
// The provider

export interface NvmlProviderParameters {
  /** The NVML shared library: a soname or a path. Default 'libnvidia-ml.so.1'. */
  readonly library?: string
  /** How the library is bound. Default `loadNvmlLibrary` (koffi); tests may inject a binding. */
  readonly load?: (library: string) => NvmlBinding | Promise<NvmlBinding>
  /** Where OCSP responses and RIMs come from; none by default (the bundle ships without them). */
  readonly attach?: GpuCollateralGetters
}

/**
 * The NVML provider. `collect(nonce)` initialises NVML, requires CC (or
 * protected-PCIe) mode, and for every GPU asks for an attestation report
 * answering `nonce` and for its attestation certificate chain, each trimmed
 * to its declared size; NVML is shut down whatever happens. The bundle has
 * arch 'HOPPER' for every GPU and the chain as the PEM bytes NVML returned.
 *
 * Throws GpuCollectionError: ENCLAVE_GPU_UNAVAILABLE (library or function
 * missing, nvmlInit_v2 failed, CC off, no GPU), ENCLAVE_GPU_COLLECTION_FAILED
 * (a call returned an NVML error: details.call, details.nvmlReturn,
 * details.nvmlError, details.gpu), ENCLAVE_GPU_EVIDENCE_INVALID (a declared
 * size out of range, a report that does not parse or answers another nonce).
 * A RangeError for a nonce that is not 32 bytes; the caller's abort reason
 * when its signal fires (checked between NVML calls, which cannot be
 * interrupted).
 */
export function createNvmlProvider(parameters: NvmlProviderParameters = {}): GpuEvidenceProvider {
  const { library = DEFAULT_NVML_LIBRARY, load = loadNvmlLibrary, attach } = parameters
  if (typeof library !== 'string' || library.length === 0) throw new TypeError('createNvmlProvider: `library` must be a soname or a path')
  let loaded: Promise<NvmlBinding> | undefined

  const bind = async (): Promise<NvmlBinding> => {
    loaded ??= Promise.resolve().then(() => load(library))
    try {
      return await loaded
    } catch (cause) {
      loaded = undefined // the driver may be installed later; try again next time
      if (cause instanceof GpuCollectionError) throw cause
      throw new GpuCollectionError('ENCLAVE_GPU_UNAVAILABLE', 'the NVML library cannot be loaded', { details: { provider: 'nvml', library }, cause })
    }
  }

  return {
    name: 'nvml',
    async collect(nonce: Uint8Array, options: CollectOptions = {}): Promise<GpuEvidenceBundle> {
      assertNonce(nonce)
      const { signal } = options
      signal?.throwIfAborted()
      const nvml = await bind()

      const failure = (code: 'ENCLAVE_GPU_UNAVAILABLE' | 'ENCLAVE_GPU_COLLECTION_FAILED', call: string, ret: number, gpu?: number): GpuCollectionError => {
        const nvmlError = nvml.nvmlErrorString(ret)
        return new GpuCollectionError(code, `${call}${gpu === undefined ? '' : ` (GPU ${gpu})`} returned ${ret} (${nvmlError})`, {
          details: { provider: 'nvml', call, nvmlReturn: ret, nvmlError, ...(gpu === undefined ? {} : { gpu }) },
        })
      }

      const initRet = await nvml.nvmlInit_v2()
      // No driver, no permission to talk to it: nothing to collect here (as NVIDIA's SDK, NVAT_RC_NVML_INIT_FAILED).
      if (initRet !== NVML_SUCCESS) throw failure('ENCLAVE_GPU_UNAVAILABLE', 'nvmlInit_v2', initRet)
      const gpus: GpuEvidenceItem[] = []
      try {
        signal?.throwIfAborted()
        await requireCcMode(nvml, failure)

        const { ret: countRet, count } = await nvml.nvmlDeviceGetCount_v2()
        if (countRet !== NVML_SUCCESS) throw failure('ENCLAVE_GPU_COLLECTION_FAILED', 'nvmlDeviceGetCount_v2', countRet)
        if (count === 0) {
          throw new GpuCollectionError('ENCLAVE_GPU_UNAVAILABLE', 'NVML sees no GPU', { details: { provider: 'nvml', call: 'nvmlDeviceGetCount_v2', nvmlReturn: countRet, gpuCount: 0 } })
        }

        for (let gpu = 0; gpu < count; gpu++) {
          signal?.throwIfAborted()
          const { ret: handleRet, device } = await nvml.nvmlDeviceGetHandleByIndex_v2(gpu)
          if (handleRet !== NVML_SUCCESS) throw failure('ENCLAVE_GPU_COLLECTION_FAILED', 'nvmlDeviceGetHandleByIndex_v2', handleRet, gpu)

          const r = await nvml.nvmlDeviceGetConfComputeGpuAttestationReport(device, nonce)
          if (r.ret !== NVML_SUCCESS) throw failure('ENCLAVE_GPU_COLLECTION_FAILED', 'nvmlDeviceGetConfComputeGpuAttestationReport', r.ret, gpu)
          const report = trim(r.attestationReport, r.attestationReportSize, NVML_CC_GPU_ATTESTATION_REPORT_SIZE, 'attestationReportSize', gpu)

          const c = await nvml.nvmlDeviceGetConfComputeGpuCertificate(device)
          if (c.ret !== NVML_SUCCESS) throw failure('ENCLAVE_GPU_COLLECTION_FAILED', 'nvmlDeviceGetConfComputeGpuCertificate', c.ret, gpu)
          const certificateChain = trim(c.attestationCertChain, c.attestationCertChainSize, NVML_GPU_ATTESTATION_CERT_CHAIN_SIZE, 'attestationCertChainSize', gpu)

          gpus.push({ arch: 'HOPPER', report, certificateChain })
        }
      } finally {
        // Balance nvmlInit_v2's reference count whatever happened; a failed shutdown changes nothing for the evidence.
        await nvml.nvmlShutdown().catch(() => NVML_SUCCESS)
      }
      signal?.throwIfAborted()

      assertAnswersNonce(gpus, nonce, 'nvml')
      const bundle: GpuEvidenceBundle = { nonce: Uint8Array.from(nonce), gpus, ocsp: [], rims: [] }
      return attachCollateral(bundle, attach, 'nvml', signal)
    },
  }
}

type Failure = (code: 'ENCLAVE_GPU_UNAVAILABLE' | 'ENCLAVE_GPU_COLLECTION_FAILED', call: string, ret: number, gpu?: number) => GpuCollectionError

/**
 * CC mode on, or protected-PCIe mode (the CC feature reads off there, yet
 * every GPU attests): the two modes NVIDIA's SDK collects in. Anything else
 * has no attestation report to give.
 */
async function requireCcMode(nvml: NvmlBinding, failure: Failure): Promise<void> {
  const state = await nvml.nvmlSystemGetConfComputeState()
  if (state.ret === NVML_ERROR_NOT_SUPPORTED || state.ret === NVML_ERROR_FUNCTION_NOT_FOUND) {
    throw failure('ENCLAVE_GPU_UNAVAILABLE', 'nvmlSystemGetConfComputeState', state.ret)
  }
  if (state.ret !== NVML_SUCCESS) throw failure('ENCLAVE_GPU_COLLECTION_FAILED', 'nvmlSystemGetConfComputeState', state.ret)
  if (state.ccFeature === NVML_CC_SYSTEM_FEATURE_ENABLED) return
  const settings = nvml.nvmlSystemGetConfComputeSettings ? await nvml.nvmlSystemGetConfComputeSettings() : undefined
  if (settings?.ret === NVML_SUCCESS && settings.multiGpuMode === NVML_CC_SYSTEM_MULTIGPU_PROTECTED_PCIE) return
  throw new GpuCollectionError('ENCLAVE_GPU_UNAVAILABLE', 'confidential computing is off (neither CC nor protected-PCIe mode)', {
    details: {
      provider: 'nvml',
      call: 'nvmlSystemGetConfComputeState',
      nvmlReturn: state.ret,
      ccFeature: state.ccFeature,
      multiGpuMode: settings?.ret === NVML_SUCCESS ? settings.multiGpuMode : null,
    },
  })
}

/** The first `size` bytes of a fixed NVML buffer, copied; a size of 0 or beyond the buffer is not evidence. */
function trim(buffer: Uint8Array, size: number, capacity: number, field: string, gpu: number): Uint8Array {
  if (!Number.isInteger(size) || size <= 0 || size > capacity || size > buffer.length) {
    throw new GpuCollectionError('ENCLAVE_GPU_EVIDENCE_INVALID', `NVML declared ${field} ${size} for GPU ${gpu} (capacity ${capacity})`, {
      details: { provider: 'nvml', gpu, field, size, capacity },
    })
  }
  return buffer.slice(0, size)
}
