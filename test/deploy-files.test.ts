/**
 * The deployment files of deploy/ parse and pass schema validation (ajv,
 * schemas in test/fixtures/deploy-schemas with their provenance), and keep
 * the properties deploy/README.md promises: gateway and vLLM share one
 * CVM over loopback with only the gateway port exposed, no volume carries
 * plaintext, images are pinned by digest, the configs are valid gateway
 * configs with the GPU ready-state gate, dstack's app-compose embeds the
 * compose verbatim (and `cgw measure` turns it into the compose-hash
 * event), the systemd units assert the TDX interfaces before starting.
 * Docker is not run: files are parsed, never deployed.
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
import { runtimeEventDigest } from '../attestation/eventlog/runtime-events.ts'
import { codeOf, thrown } from './helpers/errors.ts'

const read = (p: string) => readFile(p, 'utf8')
const schema = async (name: string) => JSON.parse(await read(join('test/fixtures/deploy-schemas', name)))
// Compose's schema uses formats ajv does not define ("duration", "ports"); their values are asserted below.
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false, validateSchema: false })
const validateCompose = ajv.compile(await schema('compose-spec.json'))
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
      const iface = v.source.startsWith('/sys/') || v.source === '/var/run/dstack.sock'
      t.ok(iface || v.read_only === true, `${name}: ${v.source} is a kernel or agent interface, or read-only (no plaintext written)`)
    }
    t.notOk(Object.keys(s.environment ?? {}).some((k) => k.startsWith('CGW_')), `${name}: no CGW_* override outside the measured config`)
  }
  t.same(gateway!.tmpfs, ['/run/cgw'], 'the runtime event log is on tmpfs')
  t.equal(compose.configs['gateway-config'] !== undefined, true)
  t.notOk('volumes' in (compose as Record<string, unknown>), 'no named volumes')
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
  const pinned = composeText.replace(`confidential-gateway@${ZERO_DIGEST}`, `confidential-gateway@${DIGEST('gateway')}`).replace(`vllm/vllm-openai@${ZERO_DIGEST}`, `vllm/vllm-openai@${DIGEST('vllm')}`)
  t.same(pinComposeImages(pinned).map((i) => [i.service, i.image]), [['gateway', 'confidential-gateway'], ['vllm', 'vllm/vllm-openai']])
  t.equal(codeOf(thrown(() => pinComposeImages(pinned, { 'confidential-gateway': DIGEST('rebuilt elsewhere') }))), 'ATTESTATION_OPTIONS_INVALID', 'a digest other than the expected one')

  const bytes = new TextEncoder().encode(appCompose(pinned))
  t.not(appCompose(pinned), app)
  const config = parseGatewayConfig(JSON.parse(await read('deploy/dstack/gateway.json')))
  const m = computeMeasurement({
    config,
    configProvenance: {},
    releaseHash: UNRELEASED_RELEASE_HASH,
    releaseProvenance: {},
    reference: devReference(),
    compose: { fileName: 'app-compose.json', bytes, imageDigests: { 'confidential-gateway': DIGEST('gateway') } },
    trustRoot: 'intel',
  })
  const composeHash = createHash('sha256').update(bytes).digest()
  t.same(m.runtimeEvents.map((e) => e.event), [DSTACK_COMPOSE_HASH_EVENT, 'cgw-release', 'cgw-config'])
  t.equal(m.runtimeEvents[0]!.payload, composeHash.toString('hex'), 'compose-hash payload: SHA-256 of app-compose.json')
  t.equal(m.runtimeEvents[0]!.digest, Buffer.from(runtimeEventDigest('compose-hash', composeHash)).toString('hex'))
  t.equal(m.policy.tdx.requiredEvents!.length, 3, 'the policy requires the compose-hash and both gateway events')
  t.match(m.policy.gpu, { trustRoot: 'nvidia', count: 1 }, 'the GPU section comes from the config\'s gate policy')
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

  const sts = docs.find((d) => d.kind === 'StatefulSet') as {
    spec: { replicas: number; serviceName: string; template: { spec: { runtimeClassName: string; containers: { name: string; image: string; args: string[]; ports?: { containerPort: number }[]; resources?: { limits?: Record<string, string> } }[]; volumes: { name: string; emptyDir?: { medium: string } }[] } } }
  }
  t.ok(sts.spec.replicas >= 2, 'N replicas')
  t.match(sts.spec.template.spec.runtimeClassName, /^kata-.*tdx/, 'each pod is a Kata TDX VM')
  const gw = sts.spec.template.spec.containers.find((c) => c.name === 'gateway')!
  const vllm = sts.spec.template.spec.containers.find((c) => c.name === 'vllm')!
  t.same(gw.ports!.map((p) => p.containerPort), [8080])
  t.equal(vllm.ports, undefined, 'vLLM exposes no port')
  t.equal(vllm.args[vllm.args.indexOf('--host') + 1], '127.0.0.1')
  t.ok(gw.resources?.limits?.['nvidia.com/pgpu'], 'a passthrough GPU per replica')
  for (const c of sts.spec.template.spec.containers) t.match(c.image, /@sha256:[0-9a-f]{64}$/, `${c.name}: pinned by digest`)
  t.equal(sts.spec.template.spec.volumes.find((v) => v.name === 'runtime-events')?.emptyDir?.medium, 'Memory', 'runtime event log in TD memory')

  const services = docs.filter((d) => d.kind === 'Service') as { metadata: { name: string }; spec: { clusterIP?: string; ports: { targetPort: string }[] } }[]
  t.ok(services.some((s) => s.metadata.name === sts.spec.serviceName && s.spec.clusterIP === 'None'), 'a headless Service gives each replica its DNS name')
  t.ok(services.every((s) => s.spec.ports.every((p) => p.targetPort === 'gateway')), 'Services reach the gateway port only')

  const cm = docs.find((d) => d.kind === 'ConfigMap') as { data: Record<string, string> }
  const config = parseGatewayConfig(JSON.parse(cm.data['gateway.json']!))
  const dstackConfig = JSON.parse(await read('deploy/dstack/gateway.json'))
  t.same(config, parseGatewayConfig({ ...dstackConfig, enclave: { ...dstackConfig.enclave, tee: 'tdx' } }), 'the dstack deployment\'s config, with the kernel interfaces instead of the agent')

  // The subset schema refuses what it does not know (a misspelt field is not silently ignored).
  t.notOk(validateK8s({ ...sts, spec: { ...sts.spec, replica: 3 } }))
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
  t.same(values(gw, 'Service', 'RuntimeDirectoryPreserve'), ['yes'], 'the runtime event log survives a restart')
  t.match(values(gw, 'Service', 'RestartPreventExitStatus')[0], /\b6\b/, 'exit 6 (no TDX interface) is not restarted in a loop')

  const engine = parseUnit(await read('deploy/tdx-guest/cgw-engine.service'))
  t.same(values(engine, 'Unit', 'After'), ['cgw-gateway.service'])
  t.match(values(engine, 'Service', 'ExecStartPre')[0], /127\.0\.0\.1:8080\/readyz/, 'the engine waits for the GPU gate')
  t.match(values(engine, 'Service', 'ExecStart')[0], /--host 127\.0\.0\.1 --port 8000/, 'loopback only')

  const config = parseGatewayConfig(JSON.parse(await read('deploy/tdx-guest/gateway.json')))
  const enclave = config.enclave as { tee: string; release: string; gpuReadyState?: { policy: unknown } }
  t.equal(enclave.tee, 'tdx')
  t.equal(enclave.release, '/opt/cgw/release', 'the release directory the unit runs from')
  t.doesNotThrow(() => parseGpuPolicy(enclave.gpuReadyState!.policy))
})

t.test('the Dockerfile pins its base by argument and unpacks the release tarball', async (t) => {
  const text = await read('deploy/docker/Dockerfile')
  t.match(text, /^ARG NODE_IMAGE$/m, 'no default base tag')
  t.match(text, /^FROM \$\{NODE_IMAGE\}$/m)
  t.match(text, /COPY dist\/confidential-gateway-0\.1\.0\.tar\.gz/)
  const pkg = JSON.parse(await read('package.json')) as { version: string; dependencies: Record<string, string> }
  t.match(text, new RegExp(`confidential-gateway-${pkg.version.replace(/\./g, '\\.')}\\.tar\\.gz`), 'the tarball of this version')
  t.match(text, new RegExp(`koffi@${pkg.dependencies.koffi!.replace(/\./g, '\\.')}`), 'koffi at the pinned version')
})

t.test('schema validation catches a broken compose (the test would notice)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cgw-compose-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const broken = { ...compose, services: { ...compose.services, gateway: { ...compose.services.gateway, portz: ['1:1'] } } }
  await writeFile(join(dir, 'c.json'), JSON.stringify(broken))
  t.notOk(validateCompose(JSON.parse(await read(join(dir, 'c.json')))), 'unknown service key refused')
})
