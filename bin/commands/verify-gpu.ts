/**
 * `cgw verify-gpu <evidence.json> [--nonce HEX] [--rims DIR] [--policy FILE]
 *  [--dev-root FILE] [--at ISO-TIME] [--json]`
 *
 * Verify GPU evidence (NVIDIA `nvattest collect-evidence` JSON, optionally
 * with `ocsp` and `rims`) offline, then apply the `gpu` section of a policy
 * (without --policy: NVIDIA roots, OCSP required, any version). Same exit
 * codes as `cgw verify-quote`. Without --nonce the evidence's own nonce is
 * used and the report says that freshness was not checked.
 */
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { ConfigError } from '../../attestation/errors.ts'
import { gpuEvidenceFromJson, parseGpuEvidence } from '../../attestation/nvidia/evidence.ts'
import { verifyGpuEvidence, type VerifiedGpuEvidence } from '../../attestation/nvidia/verify/verify-gpu-evidence.ts'
import { validateGpuEvidence } from '../../attestation/nvidia/validate/validate-gpu.ts'
import { BASELINE_GPU_POLICY_DOCUMENT, parseGpuPolicy, parsePolicy, type GpuPolicy } from '../../attestation/policy/policy.ts'
import { EXIT } from '../exit-codes.ts'
import { COMMON_VERDICTS, devRootFor, runReported, Table, type CommandReport } from '../report.ts'
import { instantOption, readInput, readJson } from '../io.ts'
import type { Io } from '../cgw.ts'

type Stage = 'arguments' | 'parse' | 'verify' | 'policy' | 'accepted'

interface Report extends CommandReport {
  stage: Stage
  nonce?: { value: string; checked: boolean }
  verification?: VerifiedGpuEvidence
}

async function loadPolicy(path: string | undefined): Promise<GpuPolicy> {
  if (!path) return parseGpuPolicy(BASELINE_GPU_POLICY_DOCUMENT)
  const doc = (await readJson(path, 'policy')) as Record<string, unknown>
  // A whole policy document (version, trustRoot, tdx, gpu) or just its gpu section.
  if (doc && typeof doc === 'object' && 'version' in doc) {
    const gpu = parsePolicy(doc).gpu
    if (!gpu) throw new ConfigError('ATTESTATION_POLICY_INVALID', 'the policy has no "gpu" section', { details: { path: 'policy.gpu' } })
    return gpu
  }
  return parseGpuPolicy(doc)
}

async function loadRimStore(dir: string | undefined): Promise<string[]> {
  if (!dir) return []
  let names: string[]
  try {
    names = (await readdir(dir)).filter((n) => /\.(xml|swidtag)$/i.test(n)).sort()
  } catch (e) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `cannot read RIM directory ${dir}`, { cause: e, details: { path: dir } })
  }
  return Promise.all(names.map(async (n) => Buffer.from(await readInput(join(dir, n), 'RIM')).toString('utf8')))
}

export async function runVerifyGpu(args: string[], io: Io): Promise<number> {
  const report: Report = { ok: false, exitCode: EXIT.USAGE, stage: 'arguments', policy: { source: 'baseline (NVIDIA roots, OCSP required, any driver/VBIOS)' } }
  return runReported(report, args, io, async () => {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        nonce: { type: 'string' },
        rims: { type: 'string' },
        policy: { type: 'string' },
        'dev-root': { type: 'string' },
        at: { type: 'string' },
        json: { type: 'boolean' },
      },
    })
    if (positionals.length !== 1) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', 'expected exactly one evidence file')
    const now = instantOption(values.at)
    if (values.nonce !== undefined && !/^(0x)?[0-9a-fA-F]{64}$/.test(values.nonce)) {
      throw new ConfigError('ATTESTATION_OPTIONS_INVALID', '--nonce must be 32 bytes of hex')
    }
    const policy = await loadPolicy(values.policy)
    if (values.policy) report.policy.source = values.policy
    const root = await devRootFor(policy.trustRoot, values['dev-root'])
    const rims = await loadRimStore(values.rims)
    const text = Buffer.from(await readInput(positionals[0]!, 'evidence')).toString('utf8')

    report.stage = 'parse'
    const parsed = parseGpuEvidence(gpuEvidenceFromJson(text))
    const nonce = values.nonce ? new Uint8Array(Buffer.from(values.nonce.replace(/^0x/, ''), 'hex')) : parsed.nonce
    report.nonce = { value: Buffer.from(nonce).toString('hex'), checked: values.nonce !== undefined }

    report.stage = 'verify'
    report.verification = verifyGpuEvidence(parsed, {
      now,
      expectedNonce: nonce,
      rims,
      ...(root ? { deviceRoot: root, rimRoot: root } : {}),
    })

    report.stage = 'policy'
    validateGpuEvidence(report.verification, policy)
  }, render)
}

const VERDICT: Record<Stage, string> = {
  ...COMMON_VERDICTS,
  parse: 'REJECTED: malformed evidence',
}

function render(r: Report): string {
  const t = new Table()
  const row = t.row.bind(t)
  row('Result', VERDICT[r.stage])
  if (r.nonce) row('Nonce', `${r.nonce.value}${r.nonce.checked ? '' : ' (taken from the evidence: freshness NOT checked; pass --nonce)'}`)
  const v = r.verification
  if (v) {
    row('Roots', `device ${v.roots.device.kind} ${v.roots.device.fingerprint.slice(0, 16)}…, RIM ${v.roots.rim.kind} ${v.roots.rim.fingerprint.slice(0, 16)}…`)
    row('Verified at', v.verifiedAt.toISOString())
    for (const g of v.gpus) {
      const ocsp = ['good', 'missing', 'exempt'].map((s) => `${g.certificates.filter((c) => c.ocsp === s).length} ${s}`).join(', ')
      row(`GPU ${g.index}`, `${g.arch} driver ${g.driverVersion}, VBIOS ${g.vbiosVersion}`)
      row('  measurements', `${g.measurements.matched} golden values matched${g.measurements.exempted.length ? `, exempted ${g.measurements.exempted.join(',')}` : ''}`)
      row('  OCSP', ocsp)
      row('  FWID', g.fwid)
    }
  }
  return t.close(r)
}
