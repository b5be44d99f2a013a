/**
 * The deployment files of deploy/ parse and pass schema validation (ajv,
 * schemas in test/fixtures/deploy-schemas with their provenance; container
 * resources against Kubernetes' published ResourceRequirements schema), and
 * keep the properties deploy/README.md promises: gateway and vLLM share one
 * CVM over loopback with only the gateway port exposed, the engine gets the
 * GPU and starts only after the gateway's GPU gate (compose healthcheck,
 * Kubernetes native sidecar startupProbe, systemd wait with a start budget
 * that covers it), no volume carries plaintext and no host path is assumed
 * (RIMs and weights come in digest-pinned images), images are pinned by
 * digest, the configs are valid gateway configs with the GPU ready-state
 * gate, dstack's app-compose embeds the compose verbatim (and `cgw measure`
 * turns it into the compose-hash event), the systemd units assert the TDX
 * interfaces before starting, and each Kubernetes pod carries its initdata:
 * the annotation decodes to deploy/k8s/initdata.toml, which carries
 * policy.rego verbatim, whose pinned containers are the pod spec's (image,
 * command line, environment, mounts, privileges). Docker is not run: files
 * are parsed, never deployed.
 */
import t from 'tap'
import { readFile, writeFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import { Ajv } from 'ajv'
import { parse as parseYaml, parseAllDocuments } from 'yaml'
import { parseGatewayConfig } from '../gateway/config.ts'
import { parseGpuPolicy } from '../attestation/policy/policy.ts'
import { appCompose } from '../deploy/dstack/app-compose.ts'
import { computeMeasurement, devReference, pinComposeImages, DSTACK_COMPOSE_HASH_EVENT } from '../deploy/measure/measure.ts'
import { UNRELEASED_RELEASE_HASH } from '../deploy/release/manifest.ts'
import { createRuntimeEvent, replayRuntimeEvents, runtimeEventDigest } from '../attestation/eventlog/runtime-events.ts'
import { decodeInitdataAnnotation, initdataToml, INITDATA_ANNOTATION } from '../deploy/k8s/initdata.ts'
import { checkAgentPolicy, parseInitdata } from '../deploy/measure/initdata.ts'
import { codeOf, thrown } from './helpers/errors.ts'

const read = (p: string) => readFile(p, 'utf8')
const schema = async (name: string) => JSON.parse(await read(join('test/fixtures/deploy-schemas', name)))
// Compose's schema uses formats ajv does not define ("duration", "ports"); their values are asserted below.
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false, validateSchema: false })
const validateCompose = ajv.compile(await schema('compose-spec.json'))
// Kubernetes' own ResourceRequirements (vendored, README.md there), referenced by the subset's containers.
ajv.addSchema(await schema('k8s-resourcerequirements-v1.json'), 'k8s-resourcerequirements-v1.json')
const validateK8s = ajv.compile(await schema('k8s-subset.json'))
const validateAppCompose = ajv.compile(await schema('dstack-app-compose.json'))
const errors = (v: { errors?: unknown }) => JSON.stringify(v.errors ?? null)

const ZERO_DIGEST = `sha256:${'0'.repeat(64)}`
const DIGEST = (label: string) => `sha256:${createHash('sha256').update(label).digest('hex')}`

interface ComposeService {
  image: string
  ports?: string[]
  network_mode?: string
  command?: string[]
  volumes?: { type: string; source: string; target: string; read_only?: boolean }[]
  environment?: Record<string, string>
  tmpfs?: string[]
  depends_on?: Record<string, { condition: string }>
  configs?: { source: string; target: string }[]
}

const composeText = await read('deploy/dstack/docker-compose.yml')
const compose = parseYaml(composeText) as { services: Record<string, ComposeService>; configs: Record<string, { content: string }> }

t.test('dstack compose: valid compose spec; one CVM, loopback, only the gateway port, no plaintext volume', async (t) => {
  t.ok(validateCompose(compose), errors(validateCompose))
  const { gateway, vllm } = compose.services
  t.ok(gateway && vllm, 'gateway and vllm')
  t.same(gateway!.ports, ['8080:8080'], 'the gateway publishes 8080 and nothing else')
  t.equal(vllm!.ports, undefined, 'vLLM publishes nothing')
  t.equal(vllm!.network_mode, 'service:gateway', "vLLM joins the gateway's network namespace: loopback between them")
  const host = vllm!.command![vllm!.command!.indexOf('--host') + 1]
  t.equal(host, '127.0.0.1', 'vLLM listens on loopback only')
  t.same(vllm!.depends_on, { gateway: { condition: 'service_healthy' } }, 'vLLM waits for /readyz (GPU verified and ready)')
  for (const [name, s] of Object.entries(compose.services)) {
    t.match(s.image, /@sha256:[0-9a-f]{64}$/, `${name}: image pinned by digest`)
    for (const v of s.volumes ?? []) {
      // A dstack CVM has no host directories (only what the compose brings): binds are the agent and kernel interfaces only.
      const iface = v.source.startsWith('/sys/') || v.source === '/var/run/dstack.sock'
      t.ok(v.type === 'bind' && iface, `${name}: ${v.source} is a kernel or agent interface, not data`)
    }
    t.notOk(Object.keys(s.environment ?? {}).some((k) => k.startsWith('CGW_')), `${name}: no CGW_* override outside the measured config`)
  }
  t.equal(vllm!.volumes, undefined, 'the weights are in the vLLM image, not on a volume')
  t.equal(vllm!.command![vllm!.command!.indexOf('--model') + 1], '/opt/model', 'where deploy/docker/vllm-model.Dockerfile puts them')
  t.same(gateway!.tmpfs, ['/run/cgw'], 'the runtime event log is on tmpfs')
  t.equal(compose.configs['gateway-config'] !== undefined, true)
  t.notOk('volumes' in (compose as Record<string, unknown>), 'no named volumes')
  t.notMatch(composeText, /source:\s*\/dstack\//, 'no path of the host or the CVM data disk')
})

t.test('dstack compose: the inline config is deploy/dstack/gateway.json, a valid gateway config with the GPU gate', async (t) => {
  const inline = JSON.parse(compose.configs['gateway-config']!.content)
  const file = JSON.parse(await read('deploy/dstack/gateway.json'))
  t.same(inline, file, 'the file cgw measure reads is the config the CVM runs')
  const config = parseGatewayConfig(inline)
  const enclave = config.enclave as { tee: string; gpu: string; engine: { url: string }; gpuReadyState: { policy: unknown } }
  t.equal(enclave.tee, 'dstack', 'quotes and RTMR3 through the guest agent')
  t.ok(compose.services.gateway!.volumes!.some((v) => v.source === '/var/run/dstack.sock'), 'the agent socket is mounted')
  t.match(enclave.engine.url, /^http:\/\/127\.0\.0\.1:/, 'engine on loopback')
  t.doesNotThrow(() => parseGpuPolicy(enclave.gpuReadyState.policy), 'the GPU gate policy parses')
})

t.test('dstack app-compose.json: valid manifest, embeds the compose verbatim, is regenerated byte for byte', async (t) => {
  const text = await read('deploy/dstack/app-compose.json')
  const app = JSON.parse(text)
  t.ok(validateAppCompose(app), errors(validateAppCompose))
  t.equal(app.docker_compose_file, composeText, 'docker_compose_file is docker-compose.yml, verbatim')
  t.equal(appCompose(composeText), text, 'app-compose.ts regenerates the same bytes (run it after editing the compose)')
  t.equal(app.no_instance_id, true, 'RTMR3 does not depend on a per-instance random value')
  t.equal(app.kms_enabled, false)
})

t.test('cgw measure on the dstack deployment: placeholders refused; pinned images give the compose-hash event', async (t) => {
  const app = await read('deploy/dstack/app-compose.json')
  t.equal(codeOf(thrown(() => pinComposeImages(composeText))), 'ATTESTATION_OPTIONS_INVALID', 'all-zero placeholder digests are refused')
  t.equal(codeOf(thrown(() => pinComposeImages('services:\n  a:\n    image: vllm/vllm-openai:latest\n'))), 'ATTESTATION_OPTIONS_INVALID', 'a tag is refused')
  const pinned = composeText.replace(`confidential-gateway@${ZERO_DIGEST}`, `confidential-gateway@${DIGEST('gateway')}`).replace(`cgw-vllm-model@${ZERO_DIGEST}`, `cgw-vllm-model@${DIGEST('vllm')}`)
  t.same(pinComposeImages(pinned).map((i) => [i.service, i.image]), [['gateway', 'confidential-gateway'], ['vllm', 'cgw-vllm-model']])
  t.equal(codeOf(thrown(() => pinComposeImages(pinned, { 'confidential-gateway': DIGEST('rebuilt elsewhere') }))), 'ATTESTATION_OPTIONS_INVALID', 'a digest other than the expected one')

  const bytes = new TextEncoder().encode(appCompose(pinned))
  t.not(appCompose(pinned), app)
  const config = parseGatewayConfig(JSON.parse(await read('deploy/dstack/gateway.json')))
  // A dstack reference boot: the agent's own events precede the gateway's, its compose-hash among them.
  const referenceCompose = new Uint8Array(createHash('sha256').update('the reference boot\'s app-compose.json').digest())
  const appId = createRuntimeEvent(3, 'app-id', new Uint8Array(20).fill(7))
  const reference = { ...devReference(), priorEvents: [appId, createRuntimeEvent(3, DSTACK_COMPOSE_HASH_EVENT, referenceCompose)] }
  const input = {
    config,
    configProvenance: {},
    releaseHash: UNRELEASED_RELEASE_HASH,
    releaseProvenance: {},
    reference,
    compose: { fileName: 'app-compose.json', bytes, imageDigests: { 'confidential-gateway': DIGEST('gateway') } },
    trustRoot: 'intel' as const,
  }
  const m = computeMeasurement(input)
  const composeHash = createHash('sha256').update(bytes).digest()
  const composeEvent = createRuntimeEvent(3, DSTACK_COMPOSE_HASH_EVENT, new Uint8Array(composeHash))
  t.equal(m.expected.rtmr3, Buffer.from(replayRuntimeEvents([appId, composeEvent, ...m.runtimeEvents.slice(1)], reference.base)[3]!).toString('hex'), 'RTMR3: the reference\'s events, this deployment\'s compose-hash in place of its own, then the gateway\'s')
  t.same(m.runtimeEvents.map((e) => e.event), [DSTACK_COMPOSE_HASH_EVENT, 'cgw-release', 'cgw-config'])
  t.equal(m.runtimeEvents[0]!.payload, composeHash.toString('hex'), 'compose-hash payload: SHA-256 of app-compose.json')
  t.equal(m.runtimeEvents[0]!.digest, Buffer.from(runtimeEventDigest('compose-hash', composeHash)).toString('hex'))
  t.equal(m.quotePolicy.tdx.requiredEvents!.length, 3, 'the policy requires the compose-hash and both gateway events')
  t.match(m.quotePolicy.gpu, { trustRoot: 'nvidia', count: 1 }, 'the GPU section comes from the config\'s gate policy')

  // A reference without dstack's compose-hash (the dev TEE's): RTMR3 could not include the compose, so no document.
  const refused = thrown(() => computeMeasurement({ ...input, reference: devReference() }))
  t.equal(codeOf(refused), 'MEASURE_REFERENCE_INCOMPLETE', '--compose needs a dstack reference boot')
  t.same((refused as { details?: unknown }).details, { missing: DSTACK_COMPOSE_HASH_EVENT })
})

t.test('Kubernetes manifests: every document validates; replicas are CVMs with GPUs; loopback engine', async (t) => {
  const files = ['namespace.yaml', 'gateway-config.yaml', 'statefulset.yaml', 'service.yaml', 'networkpolicy.yaml', 'kustomization.yaml']
  const docs: Record<string, unknown>[] = []
  for (const f of files) {
    for (const d of parseAllDocuments(await read(join('deploy/k8s', f)))) {
      t.equal(d.errors.length, 0, `${f} parses`)
      const o = d.toJS() as Record<string, unknown>
      t.ok(validateK8s(o), `${f} ${String(o.kind)}: ${errors(validateK8s)}`)
      docs.push(o)
    }
  }
  const kustomization = docs.find((d) => d.kind === 'Kustomization') as { resources: string[] }
  t.same([...kustomization.resources].sort(), files.filter((f) => f !== 'kustomization.yaml').sort(), 'kustomization lists every manifest')

  interface K8sContainer {
    name: string
    image: string
    command?: string[]
    args?: string[]
    restartPolicy?: string
    env?: { name: string; value: string }[]
    ports?: { containerPort: number }[]
    startupProbe?: { httpGet?: { path: string } }
    resources?: { limits?: Record<string, string> }
    securityContext?: { privileged?: boolean; readOnlyRootFilesystem?: boolean }
    volumeMounts?: { mountPath: string }[]
  }
  const sts = docs.find((d) => d.kind === 'StatefulSet') as {
    spec: {
      replicas: number
      serviceName: string
      template: { metadata: { annotations: Record<string, string> }; spec: { runtimeClassName: string; initContainers: K8sContainer[]; containers: K8sContainer[]; volumes: Record<string, unknown>[] } }
    }
  }
  const pod = sts.spec.template.spec
  t.ok(sts.spec.replicas >= 2, 'N replicas')
  t.match(pod.runtimeClassName, /^kata-.*tdx/, 'each pod is a Kata TDX VM')
  const gw = pod.initContainers.find((c) => c.name === 'gateway')!
  const vllm = pod.containers.find((c) => c.name === 'vllm')!
  t.ok(gw && vllm, 'the gateway is an init container, vLLM the main one')
  t.equal(gw.restartPolicy, 'Always', 'a native sidecar: it keeps running beside vLLM')
  t.equal(gw.startupProbe?.httpGet?.path, '/readyz', 'vLLM starts only after the gateway verified the GPU and set its ready state')
  t.same(gw.ports!.map((p) => p.containerPort), [8080])
  t.equal(vllm.ports, undefined, 'vLLM exposes no port')
  t.equal(vllm.args![vllm.args!.indexOf('--host') + 1], '127.0.0.1')
  t.equal(vllm.resources?.limits?.['nvidia.com/pgpu'], '1', 'the engine that runs CUDA requests the passthrough GPU')
  const gpus = [...pod.initContainers, ...pod.containers].reduce((n, c) => n + Number(c.resources?.limits?.['nvidia.com/pgpu'] ?? 0), 0)
  t.equal(gpus, 1, 'one GPU per replica: requested once (a second request would take a second GPU)')
  t.same(gw.env?.find((e) => e.name === 'NVIDIA_VISIBLE_DEVICES')?.value, 'all', 'the gateway still reaches the pod\'s GPU for evidence and nvidia-smi')
  for (const c of [...pod.initContainers, ...pod.containers]) t.match(c.image, /@sha256:[0-9a-f]{64}$/, `${c.name}: pinned by digest`)
  t.same(pod.volumes.map((v) => Object.keys(v).filter((k) => k !== 'name')[0]).sort(), ['configMap', 'emptyDir'], 'no host path, no PVC: weights and RIMs come in the images')
  t.equal((pod.volumes.find((v) => v.name === 'runtime-events') as { emptyDir?: { medium: string } }).emptyDir?.medium, 'Memory', 'runtime event log in TD memory')

  const services = docs.filter((d) => d.kind === 'Service') as { metadata: { name: string }; spec: { clusterIP?: string; ports: { targetPort: string }[] } }[]
  t.ok(services.some((s) => s.metadata.name === sts.spec.serviceName && s.spec.clusterIP === 'None'), 'a headless Service gives each replica its DNS name')
  t.ok(services.every((s) => s.spec.ports.every((p) => p.targetPort === 'gateway')), 'Services reach the gateway port only')

  const cm = docs.find((d) => d.kind === 'ConfigMap') as { data: Record<string, string> }
  const config = parseGatewayConfig(JSON.parse(cm.data['gateway.json']!))
  const dstackConfig = JSON.parse(await read('deploy/dstack/gateway.json'))
  t.same(config, parseGatewayConfig({ ...dstackConfig, enclave: { ...dstackConfig.enclave, tee: 'tdx' } }), 'the dstack deployment\'s config, with the kernel interfaces instead of the agent')

  // The subset schema refuses what it does not know (a misspelt field is not silently ignored).
  t.notOk(validateK8s({ ...sts, spec: { ...sts.spec, replica: 3 } }))
  // Resources are checked against Kubernetes' own schema: a misplaced or misspelt GPU request is refused.
  const withVllm = (c: Record<string, unknown>) => ({ ...sts, spec: { ...sts.spec, template: { ...sts.spec.template, spec: { ...pod, containers: [{ ...vllm, ...c }] } } } })
  t.ok(validateK8s(withVllm({})), errors(validateK8s))
  t.notOk(validateK8s(withVllm({ resources: { limit: { 'nvidia.com/pgpu': '1' } } })), '"limit" is not a field of ResourceRequirements')
  t.notOk(validateK8s(withVllm({ resources: { limits: { 'nvidia.com/pgpu': { count: 1 } } } })), 'a quantity is a string or a number')
  t.notOk(validateK8s(withVllm({ restartPolicy: 'OnFailure' })), 'only Always, and only for a sidecar')

  // The pod's initdata: what the host must bind into MRCONFIGID (deploy/k8s/README.md).
  const policy = await read('deploy/k8s/policy.rego')
  const initdata = await readFile('deploy/k8s/initdata.toml')
  t.equal(initdata.toString('utf8'), initdataToml(policy), 'initdata.toml is generated from policy.rego (node --import tsx deploy/k8s/initdata.ts)')
  t.same(decodeInitdataAnnotation(sts.spec.template.metadata.annotations[INITDATA_ANNOTATION]!), initdata, 'the pod annotation is base64(gzip(initdata.toml)), byte for byte')
  t.equal(parseInitdata(initdata).algorithm, 'sha384', 'SHA-384: exactly the 48 bytes of MRCONFIGID')
  t.ok(checkAgentPolicy(policy).length > 0, 'the policy refuses exec, stdio, policy replacement and fail-open')

  // The policy's containers are the pod spec's, field by field.
  const data = JSON.parse(policy.match(/^policy_data := (\{[\s\S]*?^\})$/m)![1]!) as {
    namespace: string
    sandbox_name: string
    containers: Record<string, { image: string; args: string[]; env: string[]; mounts: string[]; readonly_root: boolean; privileged: boolean; devices: boolean }>
  }
  const ns = docs.find((d) => d.kind === 'Namespace') as { metadata: { name: string } }
  t.equal(data.namespace, ns.metadata.name)
  t.match(`${(sts as unknown as { metadata: { name: string } }).metadata.name}-0`, new RegExp(data.sandbox_name), 'replica pod names match the sandbox name pattern')
  const all = [...pod.initContainers, ...pod.containers]
  t.same(Object.keys(data.containers).sort(), all.map((c) => c.name).sort(), 'exactly the pod\'s containers')
  for (const c of all) {
    const p = data.containers[c.name]!
    t.equal(p.image, c.image, `${c.name}: the same image reference (placeholder digests alike)`)
    t.ok(c.command, `${c.name}: the command is spelled out, so the whole command line is the pod spec's`)
    t.same(p.args, [...(c.command ?? []), ...(c.args ?? [])], `${c.name}: command line`)
    t.same(p.env, (c.env ?? []).map((e) => `${e.name}=${e.value}`), `${c.name}: environment`)
    t.same(p.mounts, (c.volumeMounts ?? []).map((m) => m.mountPath), `${c.name}: mounts`)
    t.equal(p.readonly_root, c.securityContext?.readOnlyRootFilesystem === true, `${c.name}: read-only root`)
    t.equal(p.privileged, c.securityContext?.privileged === true, `${c.name}: privileged`)
    t.equal(p.devices, c.resources?.limits?.['nvidia.com/pgpu'] !== undefined, `${c.name}: devices only with the GPU`)
  }
})

/** A systemd unit as sections of (key, value) pairs, keys repeatable. */
function parseUnit(text: string): Map<string, [string, string][]> {
  const out = new Map<string, [string, string][]>()
  let section = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const s = line.match(/^\[([A-Za-z]+)\]$/)
    if (s) {
      section = s[1]!
      out.set(section, out.get(section) ?? [])
      continue
    }
    const kv = line.match(/^([A-Za-z]+)=(.*)$/)
    if (!kv || section === '') throw new Error(`not a unit line: ${line}`)
    out.get(section)!.push([kv[1]!, kv[2]!])
  }
  return out
}
const values = (u: Map<string, [string, string][]>, section: string, key: string) => (u.get(section) ?? []).filter(([k]) => k === key).map(([, v]) => v)

t.test('bare TDX guest: systemd units and config', async (t) => {
  const gw = parseUnit(await read('deploy/tdx-guest/cgw-gateway.service'))
  t.same([...gw.keys()], ['Unit', 'Service', 'Install'])
  t.same(values(gw, 'Unit', 'AssertPathIsDirectory'), ['/sys/kernel/config/tsm/report'], 'configfs-tsm asserted: a clear failure when absent')
  t.same(values(gw, 'Unit', 'AssertPathExists'), ['/sys/devices/virtual/misc/tdx_guest/measurements/rtmr3:sha384', '/sys/firmware/acpi/tables/data/CCEL'], 'tsm-mr RTMR3 and the CCEL asserted')
  t.match(values(gw, 'Service', 'ExecStart')[0], /^\/usr\/bin\/node \/opt\/cgw\/release\/cgw\.mjs gateway --config \/etc\/cgw\/gateway\.json$/, 'runs the release bundle')
  t.same(values(gw, 'Service', 'Environment'), [], 'no environment: all settings are measured')
  t.same(values(gw, 'Service', 'EnvironmentFile'), ['-/etc/cgw/registration.env'], 'only the registration key, which the config names and never holds')
  t.same(values(gw, 'Service', 'RuntimeDirectoryPreserve'), ['yes'], 'the runtime event log survives a restart')
  t.match(values(gw, 'Service', 'RestartPreventExitStatus')[0], /\b6\b/, 'exit 6 (no TDX interface) is not restarted in a loop')

  const engine = parseUnit(await read('deploy/tdx-guest/cgw-engine.service'))
  t.same(values(engine, 'Unit', 'After'), ['cgw-gateway.service'])
  const wait = values(engine, 'Service', 'ExecStartPre')[0]!
  t.match(wait, /127\.0\.0\.1:8080\/readyz/, 'the engine waits for the GPU gate')
  // systemd kills a start that outlasts TimeoutStartSec (default 90 s): the budget must cover curl's whole wait.
  const flag = (name: string) => Number(wait.match(new RegExp(`--${name} (\\d+)`))?.[1])
  const budget = Number(values(engine, 'Service', 'TimeoutStartSec')[0])
  t.ok(flag('retry-max-time') > 0 && flag('max-time') > 0, 'the wait is bounded in total and per try')
  t.ok(budget > flag('retry-max-time') + flag('max-time'), `TimeoutStartSec ${budget} covers the wait`)
  t.ok(flag('retry') * flag('retry-delay') >= flag('retry-max-time'), 'and enough retries to use it')
  t.match(values(engine, 'Service', 'ExecStart')[0], /--host 127\.0\.0\.1 --port 8000/, 'loopback only')

  const config = parseGatewayConfig(JSON.parse(await read('deploy/tdx-guest/gateway.json')))
  const enclave = config.enclave as { tee: string; release: string; gpuReadyState?: { policy: unknown } }
  t.equal(enclave.tee, 'tdx')
  t.equal(enclave.release, '/opt/cgw/release', 'the release directory the unit runs from')
  t.doesNotThrow(() => parseGpuPolicy(enclave.gpuReadyState!.policy))
  t.ok(config.chain !== null && (config.enclave as { log?: unknown; collateral?: unknown }).log && (config.enclave as { collateral?: unknown }).collateral, 'registers on a chain, keeps its log, archives its collateral')
  t.notMatch(config.chain!.privateKeyEnv, /^CGW_/, 'the key variable is no config override')
})

t.test('the Dockerfile pins its base by argument and unpacks the release tarball', async (t) => {
  const text = await read('deploy/docker/Dockerfile')
  t.match(text, /^ARG NODE_IMAGE$/m, 'no default base tag')
  t.match(text, /^FROM \$\{NODE_IMAGE\}$/m)
  t.match(text, /COPY dist\/confidential-gateway-0\.1\.0\.tar\.gz/)
  const pkg = JSON.parse(await read('package.json')) as { version: string; dependencies: Record<string, string> }
  t.match(text, new RegExp(`confidential-gateway-${pkg.version.replace(/\./g, '\\.')}\\.tar\\.gz`), 'the tarball of this version')
  t.match(text, new RegExp(`koffi@${pkg.dependencies.koffi!.replace(/\./g, '\\.')}`), 'koffi at the pinned version')
  t.match(text, /^COPY deploy\/rims\/ \/etc\/cgw\/rims\/$/m, 'the RIMs come in the image, where the configs\' rimsDir points')
  t.ok((await read('deploy/rims/README.md')).includes('rim.attestation.nvidia.com'), 'the folder exists and says where RIMs come from')
  for (const f of ['deploy/dstack/gateway.json', 'deploy/tdx-guest/gateway.json']) {
    t.equal(JSON.parse(await read(f)).enclave.gpuReadyState.rimsDir, '/etc/cgw/rims', `${f}: rimsDir`)
  }
  const model = await read('deploy/docker/vllm-model.Dockerfile')
  t.match(model, /^ARG VLLM_IMAGE$/m, 'the vLLM base by argument (a digest), no default')
  t.match(model, /^COPY model\/ \/opt\/model\/$/m, 'the weights in the image, where the compose and the pod spec point vLLM')
})

t.test('schema validation catches a broken compose (the test would notice)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cgw-compose-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const broken = { ...compose, services: { ...compose.services, gateway: { ...compose.services.gateway, portz: ['1:1'] } } }
  await writeFile(join(dir, 'c.json'), JSON.stringify(broken))
  t.notOk(validateCompose(JSON.parse(await read(join(dir, 'c.json')))), 'unknown service key refused')
})
