/**
 * The MRCONFIGID of a Kata Confidential Containers pod, from its initdata,
 * exactly as Kata binds it, and the structural check `cgw measure` makes on
 * the agent policy the initdata carries.
 *
 * How the value reaches the quote (read in the sources, not guessed):
 *   - the pod annotation `io.katacontainers.config.hypervisor.cc_init_data`
 *     holds base64(gzip(initdata TOML)); the Go runtime decodes it and hashes
 *     the decompressed TOML bytes as they are with the document's
 *     `algorithm` (sha256 | sha384 | sha512): kata-containers
 *     src/runtime/pkg/oci/utils.go addHypervisorInitdataOverrides;
 *   - QEMU's tdx-guest object gets `mrconfigid` = that digest copied into 48
 *     zero bytes (longer truncated, shorter zero-padded): kata-containers
 *     src/runtime/pkg/govmm/qemu/qemu.go prepareTDXObject / adjustProperLength
 *     (runtime-rs: src/libs/kata-types/src/initdata.rs adjust_digest, same rule);
 *   - inside the TD the attestation agent re-hashes the initdata it was
 *     given and refuses to start unless the result, resized to 48 bytes,
 *     equals MRCONFIGID: confidential-containers/guest-components
 *     attestation-agent/attester/src/tdx/mod.rs bind_init_data, and the kata
 *     agent then exits (src/agent/src/main.rs init_attestation_components);
 *   - the same rule is the Initdata Specification's (confidential-containers/
 *     trustee kbs/docs/initdata.md, "Integrity Binding for Different TEEs").
 * Known vector: kata-containers src/runtime/pkg/oci/utils_test.go
 * TestAddRuntimeAnnotations (annotation → TOML → SHA-256 c6694bb7…),
 * test/measure-initdata.test.ts.
 *
 * The digest is of the bytes, so this reads no more TOML than it must, and
 * refuses what it does not read exactly as Kata's TOML parsers would: a
 * strict subset (the form deploy/k8s/initdata.ts writes and the examples in
 * the sources use). Anything else is MEASURE_INITDATA_INVALID, never a
 * best-effort reading that could check a different policy than the agent
 * loads.
 */
import { createHash } from 'node:crypto'
import { hex } from '../../attestation/bytes/hex.ts'
import { MeasureError } from './measure.ts'

/** The pod annotation the Kata runtime reads initdata from (kata-containers src/runtime/virtcontainers/pkg/annotations/annotations.go `Initdata`). */
export const INITDATA_ANNOTATION = 'io.katacontainers.config.hypervisor.cc_init_data'
/** The only initdata version Kata accepts (src/libs/kata-types/src/initdata.rs INITDATA_VERSION). */
export const INITDATA_VERSION = '0.1.0'
/** Kata's supported algorithms (src/libs/kata-types/src/initdata.rs SUPPORTED_ALGORITHMS). */
export const INITDATA_ALGORITHMS = ['sha256', 'sha384', 'sha512'] as const
export type InitdataAlgorithm = (typeof INITDATA_ALGORITHMS)[number]
/** TDX MRCONFIGID length. */
export const MRCONFIGID_LENGTH = 48
/** The initdata key whose value the kata agent loads as its policy (src/agent/src/initdata.rs POLICY_KEY). */
export const POLICY_KEY = 'policy.rego'

/**
 * Agent API requests the policy must refuse outright: each name must occur
 * exactly once in the policy text, in its `default NAME := false` line.
 * Any other occurrence (a rule that could allow it, even a narrow one such
 * as genpolicy's exec-probe rules; a package or a string naming it; a
 * comment) is refused: a text check cannot tell a harmless mention from a
 * rule, so it allows none.
 *   ExecProcessRequest          kubectl exec (and kubectl cp, which execs tar)
 *   ReadStreamRequest           container stdout/stderr to the host (kubectl logs, attach)
 *   WriteStreamRequest, CloseStdinRequest   container stdin (kubectl attach)
 *   SetPolicyRequest            replacing the policy at run time
 *   AllowRequestsFailingPolicy  the agent's switch that turns every refusal into a warning
 *                               (kata-containers src/agent/policy/src/policy.rs)
 */
export const POLICY_DENIED_OUTRIGHT = ['ExecProcessRequest', 'ReadStreamRequest', 'WriteStreamRequest', 'CloseStdinRequest', 'SetPolicyRequest', 'AllowRequestsFailingPolicy'] as const
/** Requests the policy must default to refusing (then allow by explicit rules only). */
export const POLICY_DEFAULT_DENY = ['CreateContainerRequest', 'CreateSandboxRequest', 'CopyFileRequest'] as const
/** What deploy/k8s ships in place of a value the provider must fill in. */
export const INITDATA_PLACEHOLDER_MARKER = 'CGW-FILL-IN'

export interface ParsedInitdata {
  readonly version: string
  readonly algorithm: InitdataAlgorithm
  /** The `[data]` table: key → string value, as the agent reads it. */
  readonly data: Readonly<Record<string, string>>
}

function invalid(what: string, details: Record<string, unknown> = {}): never {
  throw new MeasureError('MEASURE_INITDATA_INVALID', `initdata: ${what}`, { details })
}

const BLANK_OR_COMMENT = /^[ \t]*(#.*)?$/
const KEY_VALUE = /^[ \t]*(?:"([A-Za-z0-9._-]+)"|([A-Za-z0-9_-]+))[ \t]*=[ \t]*(.*)$/
const BASIC_STRING = /^"([^"\\]*)"[ \t]*(#.*)?$/
const LITERAL_STRING = /^'([^']*)'[ \t]*(#.*)?$/

/**
 * Parse the strict subset: LF line ends, no control characters but tab and
 * newline, no BOM; top-level `version` and `algorithm` (before the table),
 * one `[data]` table; keys bare (`[A-Za-z0-9_-]`) or quoted without
 * escapes (`"policy.rego"`); values single-line basic strings without
 * escapes, single-line literal strings, or multi-line literal strings
 * (`'''…'''`, the newline right after the opening delimiter dropped, TOML
 * v1.0.0). No duplicate keys, no other keys at the top level.
 */
export function parseInitdata(bytes: Uint8Array): ParsedInitdata {
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes)
  } catch {
    return invalid('not UTF-8')
  }
  if (text.startsWith('\uFEFF')) invalid('starts with a byte-order mark')
  const control = text.search(/[\u0000-\u0008\u000b-\u001f\u007f]/)
  if (control >= 0) invalid('holds a control character (only tab and LF; CR line ends are not read here)', { offset: control })

  const top = new Map<string, string>()
  const data = new Map<string, string>()
  let inData = false
  let pos = 0
  let lineNo = 0
  while (pos < text.length) {
    lineNo++
    const end = text.indexOf('\n', pos) < 0 ? text.length : text.indexOf('\n', pos)
    const line = text.slice(pos, end)
    if (BLANK_OR_COMMENT.test(line)) {
      pos = end + 1
      continue
    }
    if (/^[ \t]*\[/.test(line)) {
      if (!/^\[data\][ \t]*(#.*)?$/.test(line) || inData) invalid(`line ${lineNo}: the only table is one [data]`, { line: lineNo })
      inData = true
      pos = end + 1
      continue
    }
    const kv = line.match(KEY_VALUE)
    if (!kv) return invalid(`line ${lineNo}: not a key = string line`, { line: lineNo })
    const key = (kv[1] ?? kv[2])!
    const target = inData ? data : top
    if (target.has(key)) invalid(`line ${lineNo}: duplicate key ${key}`, { line: lineNo, key })
    if (!inData && key !== 'version' && key !== 'algorithm') invalid(`line ${lineNo}: unknown top-level key ${key}`, { line: lineNo, key })
    const rest = kv[3]!
    if (rest.startsWith("'''")) {
      let start = pos + line.length - rest.length + 3
      if (text[start] === '\n') start++
      const close = text.indexOf("'''", start)
      if (close < 0) invalid(`line ${lineNo}: unterminated ''' string`, { line: lineNo })
      // Up to two quotes may precede the closing delimiter, as part of the value.
      let run = 3
      while (text[close + run] === "'") run++
      if (run > 5) invalid(`line ${lineNo}: more than five quotes close the ''' string`, { line: lineNo })
      const value = text.slice(start, close + run - 3)
      const after = close + run
      const afterEnd = text.indexOf('\n', after) < 0 ? text.length : text.indexOf('\n', after)
      if (!BLANK_OR_COMMENT.test(text.slice(after, afterEnd))) invalid(`line ${lineNo}: text after the closing '''`, { line: lineNo })
      lineNo += text.slice(pos, afterEnd).split('\n').length - 1
      target.set(key, value)
      pos = afterEnd + 1
      continue
    }
    const s = rest.match(BASIC_STRING) ?? rest.match(LITERAL_STRING)
    if (!s) invalid(`line ${lineNo}: the value of ${key} is not a string this reader accepts (no escapes, no numbers, arrays or tables)`, { line: lineNo, key })
    target.set(key, s![1]!)
    pos = end + 1
  }
  const version = top.get('version')
  const algorithm = top.get('algorithm')
  if (version === undefined || algorithm === undefined || !inData) invalid('needs version, algorithm and a [data] table')
  if (version !== INITDATA_VERSION) invalid(`version ${version}: Kata accepts only ${INITDATA_VERSION}`, { version })
  if (!(INITDATA_ALGORITHMS as readonly string[]).includes(algorithm!)) invalid(`algorithm ${algorithm}: Kata accepts ${INITDATA_ALGORITHMS.join(', ')}`, { algorithm })
  return { version: version!, algorithm: algorithm as InitdataAlgorithm, data: Object.fromEntries(data) }
}

/** The document's digest: `algorithm` over the TOML bytes exactly as given (not re-serialised). */
export function initdataDigest(bytes: Uint8Array, algorithm: InitdataAlgorithm): Uint8Array {
  return new Uint8Array(createHash(algorithm).update(bytes).digest())
}

/** A digest as TDX MRCONFIGID: its first 48 bytes, zero-padded when shorter (Kata's adjustProperLength). */
export function mrConfigIdOfDigest(digest: Uint8Array): Uint8Array {
  const out = new Uint8Array(MRCONFIGID_LENGTH)
  out.set(digest.subarray(0, MRCONFIGID_LENGTH))
  return out
}

/** The MRCONFIGID a TD started with this initdata has. */
export function initdataMrConfigId(bytes: Uint8Array): Uint8Array {
  return mrConfigIdOfDigest(initdataDigest(bytes, parseInitdata(bytes).algorithm))
}

const token = (name: string) => new RegExp(`(?<![A-Za-z0-9_])${name}(?![A-Za-z0-9_])`, 'g')
const defaultLine = (name: string, value: 'true' | 'false') => new RegExp(`^default[ \\t]+${name}[ \\t]*:?=[ \\t]*${value}[ \\t]*(#.*)?$`, 'm')

/**
 * The structural check of an agent policy (Rego text; it is not evaluated):
 *   1. its only package is `agent_policy` (the agent queries data.agent_policy.*);
 *   2. each of {@link POLICY_DENIED_OUTRIGHT} occurs exactly once, in `default NAME := false`;
 *   3. each of {@link POLICY_DEFAULT_DENY} has `default NAME := false` and no `default NAME := true`.
 * Returns the checks made, for the provenance; throws MEASURE_INITDATA_POLICY.
 */
export function checkAgentPolicy(rego: string): string[] {
  const fail = (what: string, details: Record<string, unknown> = {}): never => {
    throw new MeasureError('MEASURE_INITDATA_POLICY', `initdata ${POLICY_KEY}: ${what}`, { details })
  }
  const packages = [...rego.matchAll(/^[ \t]*package[ \t]+(\S+)/gm)].map((m) => m[1])
  if (packages.length !== 1 || packages[0] !== 'agent_policy') fail('must declare exactly one package, agent_policy', { packages })
  for (const name of POLICY_DENIED_OUTRIGHT) {
    const n = [...rego.matchAll(token(name))].length
    if (!defaultLine(name, 'false').test(rego) || n !== 1) fail(`${name} must occur exactly once, as \`default ${name} := false\` (found ${n} occurrence(s))`, { request: name, occurrences: n })
  }
  for (const name of POLICY_DEFAULT_DENY) {
    if (!defaultLine(name, 'false').test(rego) || defaultLine(name, 'true').test(rego)) fail(`${name} must default to false`, { request: name })
  }
  return [
    'one package: agent_policy',
    ...POLICY_DENIED_OUTRIGHT.map((n) => `${n}: only \`default ${n} := false\`, no rule`),
    ...POLICY_DEFAULT_DENY.map((n) => `${n}: defaults to false, allowed by explicit rules only`),
  ]
}

/** Refuse values deploy/k8s ships as placeholders: all-zero image digests, the fill-in marker, image references without a digest. */
export function checkNoPlaceholders(text: string): void {
  const fail = (what: string, details: Record<string, unknown>): never => {
    throw new MeasureError('MEASURE_INITDATA_PLACEHOLDER', `initdata: ${what}`, { details })
  }
  const zero = text.match(/[^\s"']*@sha256:0{64}(?![0-9a-f])/)
  if (zero) fail(`image ${zero[0]} still has the placeholder digest`, { image: zero[0] })
  const marker = text.indexOf(INITDATA_PLACEHOLDER_MARKER)
  if (marker >= 0) fail(`${INITDATA_PLACEHOLDER_MARKER} at offset ${marker}: fill in the value it marks`, { offset: marker })
  for (const m of text.matchAll(/"image"[ \t]*:[ \t]*"([^"]*)"/g)) {
    if (!/@sha256:[0-9a-f]{64}$/.test(m[1]!)) fail(`image ${m[1]} is not pinned by digest (name@sha256:...)`, { image: m[1] })
  }
}

/** What `cgw measure --initdata` contributes: the MRCONFIGID and its provenance. */
export interface InitdataMeasurement {
  readonly mrConfigId: Uint8Array
  readonly provenance: Record<string, unknown>
}

/**
 * Everything `cgw measure` does with an initdata file: parse (strict), check
 * the policy and placeholders, compute MRCONFIGID, say where each rule
 * comes from.
 */
export function measureInitdata(bytes: Uint8Array, fileName: string): InitdataMeasurement {
  const doc = parseInitdata(bytes)
  const policy = doc.data[POLICY_KEY]
  if (policy === undefined || policy.trim() === '') {
    throw new MeasureError('MEASURE_INITDATA_POLICY', `initdata has no ${POLICY_KEY}: the agent would keep the guest image's default policy`, { details: { keys: Object.keys(doc.data).sort() } })
  }
  const checks = checkAgentPolicy(policy)
  checkNoPlaceholders(Buffer.from(bytes).toString('utf8'))
  const digest = initdataDigest(bytes, doc.algorithm)
  const mrConfigId = mrConfigIdOfDigest(digest)
  return {
    mrConfigId,
    provenance: {
      file: fileName,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      version: doc.version,
      algorithm: doc.algorithm,
      digest: hex(digest),
      mrConfigId: hex(mrConfigId),
      binding: `MRCONFIGID = ${doc.algorithm}(initdata TOML bytes), first 48 bytes, zero-padded (kata-containers src/runtime/pkg/govmm/qemu/qemu.go prepareTDXObject; guest-components attestation-agent/attester/src/tdx/mod.rs bind_init_data)`,
      annotation: `${INITDATA_ANNOTATION} = base64(gzip(TOML))`,
      dataKeys: Object.keys(doc.data).sort(),
      policy: { key: POLICY_KEY, sha256: createHash('sha256').update(policy, 'utf8').digest('hex'), checks, evaluated: false },
      // What the MRCONFIGID pin rests on besides the policy text: properties of the guest image, fixed by the reference boot's MRTD/RTMR0-2, not checked here.
      guestRequirements: [
        'the guest image runs the CoCo attestation agent with the initdata (agent.guest_components_procs not none), which stops the TD when the initdata does not hash to MRCONFIGID',
        "the guest image's built-in default agent policy (used when a host attaches no initdata at all, whatever MRCONFIGID it sets) refuses exec and policy replacement",
      ],
    },
  }
}
