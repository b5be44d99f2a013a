/**
 * Writes deploy/k8s/initdata.toml (the pod's Confidential Containers
 * initdata, carrying policy.rego) and its pod annotation in
 * statefulset.yaml. Generated, never edited by hand: the host binds the
 * digest of initdata.toml's exact bytes into MRCONFIGID, and consumers pin
 * that (deploy/k8s/README.md, `cgw measure --initdata`).
 *
 *   node --import tsx deploy/k8s/initdata.ts
 *
 * Format (confidential-containers/trustee kbs/docs/initdata.md, "Initdata
 * Specification"; kata-containers src/libs/kata-types/src/initdata.rs): TOML
 * with `version = "0.1.0"`, `algorithm`, and a `[data]` table of file name →
 * content. The kata agent writes `policy.rego` into its policy engine,
 * `aa.toml`/`cdh.toml` into the guest components' configs
 * (src/agent/src/initdata.rs); this deployment needs only the policy.
 * SHA-384 because its 48 bytes are exactly MRCONFIGID (no zero padding).
 *
 * Annotation `io.katacontainers.config.hypervisor.cc_init_data`: base64
 * (standard alphabet, padded) of the gzip of the TOML — how the runtime
 * decodes it (kata-containers src/runtime/pkg/oci/utils.go
 * addHypervisorInitdataOverrides; src/libs/kata-types/src/initdata.rs
 * decode_raw_initdata). gzip bytes may differ between zlib builds; the
 * digest is of the decompressed TOML, so they do not matter.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { gunzipSync, gzipSync } from 'node:zlib'
import { MeasureError } from '../measure/measure.ts'
// One definition of the annotation and version, shared with what `cgw measure --initdata` reads back.
import { INITDATA_ANNOTATION, INITDATA_VERSION } from '../measure/initdata.ts'

export { INITDATA_ANNOTATION }

/** The initdata document around a policy: the policy verbatim in a multi-line literal string. */
export function initdataToml(policyRego: string): string {
  // A literal string has no escapes: the one thing it cannot hold is its own delimiter.
  if (policyRego.includes("'''")) throw new MeasureError('MEASURE_INITDATA_INVALID', "policy.rego must not contain ''' (the TOML literal-string delimiter)")
  if (!policyRego.endsWith('\n')) throw new MeasureError('MEASURE_INITDATA_INVALID', 'policy.rego must end with a newline')
  // TOML drops the newline right after the opening delimiter, so the value is the policy text exactly.
  return `algorithm = "sha384"\nversion = "${INITDATA_VERSION}"\n\n[data]\n"policy.rego" = '''\n${policyRego}'''\n`
}

/** base64(gzip(TOML)): the value of {@link INITDATA_ANNOTATION}. */
export function encodeInitdataAnnotation(toml: string): string {
  return gzipSync(Buffer.from(toml, 'utf8'), { level: 9 }).toString('base64')
}

/** The TOML bytes an annotation value carries (what the runtime hashes). */
export function decodeInitdataAnnotation(value: string): Buffer {
  return gunzipSync(Buffer.from(value, 'base64'))
}

/** statefulset.yaml with the annotation line set to `value` (the line must exist: it is part of the template). */
export function withInitdataAnnotation(statefulsetYaml: string, value: string): string {
  const line = new RegExp(`^(\\s+${INITDATA_ANNOTATION.replace(/\./g, '\\.')}: )"[A-Za-z0-9+/=]*"$`, 'm')
  if (!line.test(statefulsetYaml)) throw new MeasureError('MEASURE_INITDATA_INVALID', `statefulset.yaml has no ${INITDATA_ANNOTATION} annotation line to update`)
  return statefulsetYaml.replace(line, `$1"${value}"`)
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const here = (f: string) => fileURLToPath(new URL(f, import.meta.url))
  const toml = initdataToml(await readFile(here('policy.rego'), 'utf8'))
  await writeFile(here('initdata.toml'), toml)
  await writeFile(here('statefulset.yaml'), withInitdataAnnotation(await readFile(here('statefulset.yaml'), 'utf8'), encodeInitdataAnnotation(toml)))
}
