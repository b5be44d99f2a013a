/**
 * Writes deploy/dstack/app-compose.json: dstack's app manifest embedding
 * docker-compose.yml verbatim. dstack extends SHA-256 of this file's bytes
 * into RTMR3 as the `compose-hash` event, so it is generated, never edited
 * by hand: same compose in, same bytes out.
 *
 *   node --import tsx deploy/dstack/app-compose.ts
 */
import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

/**
 * The manifest around the compose (dstack app-compose fields): no KMS and no
 * dstack gateway (the CVM's keys are the gateway's own, made in memory), no
 * public logs (they are redacted, but nothing needs them public),
 * `no_instance_id` so RTMR3 does not depend on a per-instance random value
 * and `cgw measure` can predict it from a reference boot.
 */
export function appCompose(composeYaml: string): string {
  const manifest = {
    manifest_version: 2,
    name: 'confidential-gateway',
    runner: 'docker-compose',
    docker_compose_file: composeYaml,
    kms_enabled: false,
    gateway_enabled: false,
    local_key_provider_enabled: false,
    public_logs: false,
    public_sysinfo: true,
    public_tcbinfo: true,
    no_instance_id: true,
    allowed_envs: [],
  }
  return `${JSON.stringify(manifest, null, 2)}\n`
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const here = (f: string) => fileURLToPath(new URL(f, import.meta.url))
  await writeFile(here('app-compose.json'), appCompose(await readFile(here('docker-compose.yml'), 'utf8')))
}
