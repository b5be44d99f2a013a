/**
 * `cgw measure`: the TDX measurements a deployment will have, from source.
 *
 *   cgw measure --config gateway.json
 *               (--release DIR | --release-hash HEX | --unreleased)
 *               [--compose app-compose.json [--image-digests FILE]]
 *               [--initdata initdata.toml]
 *               [--reference dev | --reference EVIDENCE.json]
 *               [--dev-root FILE] [--gpu-dev-root FILE] [--gpu-policy FILE]
 *               [--pcs URL | --collateral FILE]
 *               [--chain-id N --registry 0x… --rpc-url URL...] [--max-evidence-age SECONDS]
 *               [--policy-out FILE] [--quote-policy-out FILE] [--workload-ids-out FILE]
 *
 * Prints the measurement document (deploy/measure/measure.ts: expected
 * registers, runtime events, workload ids, provenance, the quote policy and,
 * given a collateral source, the client policy) as JSON. `--policy-out`
 * writes the client policy alone: the file `cgw verify --policy`, `cgw proxy`
 * and `cgw verify-quote --policy` take as is (a client policy must name
 * where collateral comes from, so it needs --pcs or --collateral; there is
 * no default PCS). `--quote-policy-out` writes the bare quote policy
 * (attestation/policy), `--workload-ids-out` the registry allow-list
 * entries. File paths inside the client policy (collateral file, dev roots)
 * are written relative to the policy file's folder, where the client
 * resolves them. Same inputs, same bytes: no time, no absolute path goes
 * into the output.
 *
 * `--initdata` (Kubernetes with Confidential Containers, deploy/k8s): the
 * pod's initdata TOML, as its annotation carries it. MRCONFIGID is then its
 * digest as Kata binds it (deploy/measure/initdata.ts), not the reference
 * boot's, and the policies pin it; the agent policy inside must refuse
 * exec, container stdio, policy replacement and fail-open outright, and no
 * placeholder may remain (MEASURE_INITDATA_POLICY / _PLACEHOLDER /
 * _INVALID, exit 1).
 *
 * The config is measured as the gateway checks it (defaults filled in) but
 * without CGW_* environment overrides: a deployment that sets them measures
 * differently, so deploy/ puts every setting in the config file.
 * Exit codes: 0 computed, 1 bad arguments or inputs (an initdata refused
 * included), 2 a malformed or incomplete reference
 * (MEASURE_REFERENCE_INCOMPLETE: no CCEL).
 */
import { writeFile } from 'node:fs/promises'
import { basename, dirname, relative, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { createHash } from 'node:crypto'
import { BaseError, ConfigError } from '../../attestation/errors.ts'
import { parseGpuPolicy, type GpuPolicyDocument } from '../../attestation/policy/policy.ts'
import { certificateFingerprint } from '../../attestation/roots/trust-root.ts'
import { parseGatewayConfig } from '../../gateway/config.ts'
import { GatewayConfigError } from '../../gateway/errors.ts'
import { ReleaseError, UNRELEASED_RELEASE_HASH, verifyReleaseDirectory } from '../../deploy/release/manifest.ts'
import { computeMeasurement, devReference, MeasureError, referenceFromEvidence, type ClientPolicyInput, type Reference } from '../../deploy/measure/measure.ts'
import { measureInitdata, type InitdataMeasurement } from '../../deploy/measure/initdata.ts'
import { EXIT, failureOf } from '../exit-codes.ts'
import { readCertificate, readInput, readJson } from '../io.ts'
import type { Io } from '../cgw.ts'

const USAGE = `usage: cgw measure --config FILE (--release DIR | --release-hash HEX | --unreleased)
                   [--compose app-compose.json [--image-digests FILE]] [--initdata initdata.toml]
                   [--reference dev|FILE]
                   [--dev-root FILE] [--gpu-dev-root FILE] [--gpu-policy FILE]
                   [--pcs URL | --collateral FILE] [--chain-id N --registry 0x... --rpc-url URL...]
                   [--max-evidence-age SECONDS] [--policy-out FILE] [--quote-policy-out FILE]
                   [--workload-ids-out FILE]
`

const usage = (what: string): never => {
  throw new ConfigError('ATTESTATION_OPTIONS_INVALID', what)
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

/** The document as printed and written: two-space JSON and a final newline. */
function render(v: unknown): string {
  return `${JSON.stringify(v, null, 2)}\n`
}

export async function runMeasure(args: string[], io: Io): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string' },
        release: { type: 'string' },
        'release-hash': { type: 'string' },
        unreleased: { type: 'boolean' },
        compose: { type: 'string' },
        'image-digests': { type: 'string' },
        initdata: { type: 'string' },
        reference: { type: 'string' },
        'dev-root': { type: 'string' },
        'gpu-dev-root': { type: 'string' },
        'gpu-policy': { type: 'string' },
        pcs: { type: 'string' },
        collateral: { type: 'string' },
        'chain-id': { type: 'string' },
        registry: { type: 'string' },
        'rpc-url': { type: 'string', multiple: true },
        'max-evidence-age': { type: 'string' },
        'policy-out': { type: 'string' },
        'quote-policy-out': { type: 'string' },
        'workload-ids-out': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    })
    if (values.help) {
      io.out(USAGE)
      return EXIT.OK
    }
    if (positionals.length > 0) usage(`unexpected argument ${positionals[0]}`)
    if (!values.config) usage('--config is required')

    const configBytes = await readInput(values.config!, 'gateway config')
    let configDoc: unknown
    try {
      configDoc = JSON.parse(Buffer.from(configBytes).toString('utf8'))
    } catch (e) {
      throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `gateway config ${values.config} is not JSON`, { cause: e })
    }
    // The file as written: CGW_* overrides are not applied (they would change the measurement; see configProvenance).
    const config = parseGatewayConfig(configDoc)

    const releaseChoices = [values.release !== undefined, values['release-hash'] !== undefined, values.unreleased === true].filter(Boolean).length
    if (releaseChoices !== 1) usage('give exactly one of --release DIR, --release-hash HEX, --unreleased')
    let releaseHash: Uint8Array
    let releaseProvenance: Record<string, unknown>
    if (values.release !== undefined) {
      const v = await verifyReleaseDirectory(values.release)
      releaseHash = v.releaseHash
      releaseProvenance = { source: 'release directory (every file re-hashed)', name: v.manifest.name, version: v.manifest.packageVersion, external: v.manifest.external, files: v.manifest.files }
    } else if (values['release-hash'] !== undefined) {
      if (!/^[0-9a-f]{96}$/.test(values['release-hash'])) usage('--release-hash must be 96 lower-case hex digits (SHA-384 of release.json)')
      releaseHash = new Uint8Array(Buffer.from(values['release-hash'], 'hex'))
      releaseProvenance = { source: 'release hash given on the command line' }
    } else {
      releaseHash = UNRELEASED_RELEASE_HASH.slice()
      releaseProvenance = { source: 'unreleased source tree (dev TEE only)' }
    }

    let reference: Reference
    if (values.reference === undefined || values.reference === 'dev') {
      if (values.reference === undefined && (config.enclave as { tee?: unknown } | null)?.tee !== 'dev') usage('--reference is required for a real TD: the evidence bundle of a trusted reference boot')
      reference = devReference()
    } else {
      const bytes = await readInput(values.reference, 'reference evidence')
      let doc: unknown
      try {
        doc = JSON.parse(Buffer.from(bytes).toString('utf8'))
      } catch (e) {
        throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `reference ${values.reference} is not JSON (expected an evidence bundle)`, { cause: e })
      }
      reference = referenceFromEvidence(doc)
      reference = { ...reference, provenance: { ...reference.provenance, file: basename(values.reference), sha256: sha256(bytes) } }
    }

    let trustRoot: 'intel' | { dev: string } = 'intel'
    if (values['dev-root'] !== undefined) trustRoot = { dev: certificateFingerprint(await readCertificate(values['dev-root'], 'dev root')) }
    else if (reference.kind === 'dev') usage('--reference dev measures a development TEE: give --dev-root (the PEM its gateway wrote) so the policy names that root')

    let gpu: GpuPolicyDocument | undefined
    if (values['gpu-policy'] !== undefined) {
      gpu = (await readJson(values['gpu-policy'], 'GPU policy')) as GpuPolicyDocument
      parseGpuPolicy(gpu)
    }

    let compose
    if (values.compose !== undefined) {
      const digests = values['image-digests'] === undefined ? {} : ((await readJson(values['image-digests'], 'image digests')) as Record<string, string>)
      if (typeof digests !== 'object' || digests === null || Array.isArray(digests)) usage('--image-digests must be a JSON object of image name → "sha256:..." (the digests the compose must pin)')
      compose = { fileName: basename(values.compose), bytes: await readInput(values.compose, 'compose file'), imageDigests: digests }
    } else if (values['image-digests'] !== undefined) usage('--image-digests needs --compose')

    let initdata: InitdataMeasurement | undefined
    if (values.initdata !== undefined) initdata = measureInitdata(await readInput(values.initdata, 'initdata'), basename(values.initdata))

    // The client policy's sections: files named relative to where the policy is written (the client resolves them there).
    const policyDir = resolve(values['policy-out'] !== undefined ? dirname(values['policy-out']) : '.')
    const rel = (f: string) => relative(policyDir, resolve(f)).split('\\').join('/')
    let client: ClientPolicyInput | undefined
    if (values.pcs !== undefined && values.collateral !== undefined) usage('give --pcs URL or --collateral FILE, not both')
    if (values.pcs !== undefined || values.collateral !== undefined) {
      const registryFlags = [values['chain-id'], values.registry, values['rpc-url']].filter((v) => v !== undefined).length
      if (registryFlags !== 0 && registryFlags !== 3) usage('a registry needs all of --chain-id, --registry and --rpc-url')
      let maxEvidenceAgeSeconds: number | undefined
      if (values['max-evidence-age'] !== undefined) {
        maxEvidenceAgeSeconds = Number(values['max-evidence-age'])
        if (!Number.isSafeInteger(maxEvidenceAgeSeconds) || maxEvidenceAgeSeconds <= 0) usage('--max-evidence-age must be a positive number of seconds')
      }
      const devRoots = {
        ...(values['dev-root'] !== undefined ? { tdx: rel(values['dev-root']) } : {}),
        ...(values['gpu-dev-root'] !== undefined ? { gpu: rel(values['gpu-dev-root']) } : {}),
      }
      client = {
        collateral: values.pcs !== undefined ? { pcsUrl: values.pcs } : { file: rel(values.collateral!) },
        ...(registryFlags === 3
          ? { registry: { required: true, chainId: Number(values['chain-id']), address: values.registry!, rpcUrls: values['rpc-url']!, matchWorkloadId: true } }
          : {}),
        ...(maxEvidenceAgeSeconds !== undefined ? { maxEvidenceAgeSeconds } : {}),
        ...(Object.keys(devRoots).length > 0 ? { devRoots } : {}),
      }
    } else {
      if (values['policy-out'] !== undefined) usage('--policy-out writes a client policy, which names where collateral comes from: give --pcs URL or --collateral FILE')
      for (const f of ['chain-id', 'registry', 'rpc-url', 'max-evidence-age', 'gpu-dev-root'] as const) if (values[f] !== undefined) usage(`--${f} is part of the client policy: give --pcs URL or --collateral FILE too`)
    }

    const m = computeMeasurement({
      config,
      configProvenance: { file: basename(values.config!), sha256: sha256(configBytes), environment: 'not applied (CGW_* overrides change the measurement)' },
      releaseHash,
      releaseProvenance,
      reference,
      ...(compose ? { compose } : {}),
      trustRoot,
      ...(gpu ? { gpu } : {}),
      ...(client ? { client } : {}),
      ...(initdata ? { initdata } : {}),
    })
    if (values['policy-out'] && m.policy) await writeFile(values['policy-out'], render(m.policy))
    if (values['quote-policy-out']) await writeFile(values['quote-policy-out'], render(m.quotePolicy))
    if (values['workload-ids-out']) await writeFile(values['workload-ids-out'], render({ workloadIds: m.workloadIds, description: m.quotePolicy.description }))
    io.out(render(m))
    return EXIT.OK
  } catch (e) {
    if (e instanceof GatewayConfigError) {
      io.err(`cgw measure: ${e.shortMessage}\n`)
      return EXIT.USAGE
    }
    if (e instanceof MeasureError) {
      io.err(`cgw measure: ${e.code}: ${e.shortMessage}\n`)
      // A refused initdata is the caller's input; only an incomplete reference is malformed evidence.
      return e.code === 'MEASURE_REFERENCE_INCOMPLETE' ? EXIT.PARSE : EXIT.USAGE
    }
    // Release problems are the caller's input, not a bug.
    const f = failureOf(e instanceof ReleaseError ? new ConfigError('ATTESTATION_OPTIONS_INVALID', e.shortMessage, { cause: e, details: { code: e.code, ...e.details } }) : e)
    // Another module's typed error (e.g. CLIENT_CONFIG_INVALID for a registry address): the caller's input, by its own code.
    if (e instanceof BaseError && f.exitCode === EXIT.INTERNAL) {
      io.err(`cgw measure: ${e.code}: ${e.shortMessage}\n${USAGE}`)
      return EXIT.USAGE
    }
    io.err(`cgw measure: ${f.error.code}: ${f.error.message}\n${f.exitCode === EXIT.USAGE ? USAGE : ''}`)
    return f.exitCode
  }
}
