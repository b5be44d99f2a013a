/**
 * The release manifest: which files make a gateway release, each with its
 * SHA-384, size and mode, as canonical JSON (`release.json`). The release
 * hash — what the gateway extends into RTMR3 as `cgw-release` and what
 * `cgw measure` prints — is SHA-384 of those exact bytes.
 *
 * Defining the hash over the manifest rather than over the tarball keeps it
 * independent of compression (gzip output may change with node's zlib),
 * while still covering every byte the release runs. The gateway never
 * trusts a manifest it finds: `verifyReleaseDirectory` re-hashes every
 * listed file and refuses on any difference, so the extended hash is of the
 * files on disk.
 */
import { createHash } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { canonicalJson } from '../../attestation/eventlog/runtime-events.ts'
import { BaseError, type BaseErrorOptions } from '../../attestation/errors.ts'

/** The manifest's file name inside a release directory. */
export const RELEASE_MANIFEST_FILE = 'release.json'
/** Format version of the manifest. */
export const RELEASE_MANIFEST_VERSION = 1

/** Registry of release error codes. */
export const RELEASE_ERROR_CODES = {
  RELEASE_MANIFEST_MISSING: { description: 'no release.json in the release directory (an unreleased source tree cannot be measured)' },
  RELEASE_MANIFEST_MALFORMED: { description: 'release.json is not a canonical manifest of the expected shape' },
  RELEASE_FILE_MISMATCH: { description: 'a file listed in release.json is missing or differs from its recorded size, mode or SHA-384' },
  RELEASE_BUNDLE_INCOMPLETE: { description: 'the bundle loads a file relative to itself (new URL(..., import.meta.url)) that the release does not ship' },
} as const satisfies Record<string, { readonly description: string }>

export type ReleaseErrorCode = keyof typeof RELEASE_ERROR_CODES

export class ReleaseError extends BaseError<ReleaseErrorCode> {
  override name = 'ReleaseError'
  constructor(code: ReleaseErrorCode, shortMessage: string, options: BaseErrorOptions = {}) {
    super(code, shortMessage, options)
  }
}

export interface ReleaseFile {
  /** Relative, "/"-separated, no "." or ".." segments. */
  readonly path: string
  /** "0644" or "0755": tar and the manifest record only these two. */
  readonly mode: '0644' | '0755'
  readonly size: number
  /** 96 lower-case hex digits. */
  readonly sha384: string
}

export interface ReleaseManifest {
  readonly version: typeof RELEASE_MANIFEST_VERSION
  readonly name: string
  readonly packageVersion: string
  /** Packages left out of the bundle (native addons), with their pinned versions. */
  readonly external: Readonly<Record<string, string>>
  /** Sorted by path (byte order). */
  readonly files: readonly ReleaseFile[]
}

const sha384 = (b: Uint8Array): string => createHash('sha384').update(b).digest('hex')

function checkPath(p: unknown): string {
  if (typeof p !== 'string' || p.length === 0 || p.length > 100 || p.startsWith('/') || p.split('/').some((s) => s === '' || s === '.' || s === '..') || !/^[\x21-\x7e]+$/.test(p)) {
    throw new ReleaseError('RELEASE_MANIFEST_MALFORMED', 'release.json: a file path is not a plain relative path', { details: { path: String(p) } })
  }
  return p
}

/** The manifest of `files` (path → bytes and mode); files sorted by path. */
export function createReleaseManifest(input: {
  readonly name: string
  readonly packageVersion: string
  readonly external: Readonly<Record<string, string>>
  readonly files: readonly { readonly path: string; readonly mode: '0644' | '0755'; readonly bytes: Uint8Array }[]
}): ReleaseManifest {
  const files = [...input.files]
    .map((f) => ({ path: checkPath(f.path), mode: f.mode, size: f.bytes.length, sha384: sha384(f.bytes) }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  if (files.some((f) => f.path === RELEASE_MANIFEST_FILE)) throw new ReleaseError('RELEASE_MANIFEST_MALFORMED', 'the manifest cannot list itself')
  return { version: RELEASE_MANIFEST_VERSION, name: input.name, packageVersion: input.packageVersion, external: { ...input.external }, files }
}

/** The manifest's bytes: canonical JSON and a final newline. */
export function encodeReleaseManifest(m: ReleaseManifest): Uint8Array {
  return new TextEncoder().encode(`${canonicalJson(m)}\n`)
}

/** SHA-384 of the manifest bytes: the release hash. */
export function releaseHash(manifestBytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha384').update(manifestBytes).digest())
}

/** Strict parse; the bytes must be exactly the canonical encoding of what they hold. */
export function parseReleaseManifest(bytes: Uint8Array): ReleaseManifest {
  const bad = (what: string): never => {
    throw new ReleaseError('RELEASE_MANIFEST_MALFORMED', `release.json: ${what}`)
  }
  let doc: unknown
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch {
    return bad('not UTF-8 JSON')
  }
  const o = doc as Record<string, unknown>
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return bad('expected an object')
  if (o.version !== RELEASE_MANIFEST_VERSION) bad('unsupported version')
  if (typeof o.name !== 'string' || typeof o.packageVersion !== 'string') bad('name and packageVersion must be strings')
  if (typeof o.external !== 'object' || o.external === null || Object.values(o.external).some((v) => typeof v !== 'string')) bad('external must map package names to versions')
  if (!Array.isArray(o.files) || o.files.length === 0) return bad('files must be a non-empty list')
  for (const f of o.files as Record<string, unknown>[]) {
    checkPath(f?.path)
    if (f.mode !== '0644' && f.mode !== '0755') bad('mode must be "0644" or "0755"')
    if (typeof f.size !== 'number' || !Number.isSafeInteger(f.size) || f.size < 0) bad('size must be a byte count')
    if (typeof f.sha384 !== 'string' || !/^[0-9a-f]{96}$/.test(f.sha384)) bad('sha384 must be 96 lower-case hex digits')
  }
  const m = doc as ReleaseManifest
  // Canonical bytes only: two encodings of one manifest would be two release hashes.
  if (Buffer.compare(Buffer.from(encodeReleaseManifest(m)), Buffer.from(bytes)) !== 0) bad('not in canonical form (sorted keys, no spaces, one final newline)')
  const paths = m.files.map((f) => f.path)
  if (paths.some((p, i) => i > 0 && !(paths[i - 1]! < p))) bad('files must be sorted by path without duplicates')
  return m
}

/** What a verified release directory measures to. */
export interface VerifiedRelease {
  readonly manifest: ReleaseManifest
  readonly manifestBytes: Uint8Array
  /** SHA-384 of release.json (48 bytes). */
  readonly releaseHash: Uint8Array
}

/**
 * Read `dir/release.json`, re-hash every file it lists and compare size,
 * mode (owner-execute bit) and SHA-384. Throws ReleaseError; never returns
 * a hash for files it did not check.
 */
export async function verifyReleaseDirectory(dir: string): Promise<VerifiedRelease> {
  let manifestBytes: Uint8Array
  try {
    manifestBytes = new Uint8Array(await readFile(join(dir, RELEASE_MANIFEST_FILE)))
  } catch (e) {
    throw new ReleaseError('RELEASE_MANIFEST_MISSING', `no ${RELEASE_MANIFEST_FILE} in ${dir}`, { cause: e, details: { dir } })
  }
  const manifest = parseReleaseManifest(manifestBytes)
  for (const f of manifest.files) {
    const path = join(dir, f.path)
    let bytes: Uint8Array
    let executable: boolean
    try {
      bytes = new Uint8Array(await readFile(path))
      executable = ((await stat(path)).mode & 0o100) !== 0
    } catch (e) {
      throw new ReleaseError('RELEASE_FILE_MISMATCH', `release file ${f.path} is missing`, { cause: e, details: { path: f.path } })
    }
    if (bytes.length !== f.size || sha384(bytes) !== f.sha384) {
      throw new ReleaseError('RELEASE_FILE_MISMATCH', `release file ${f.path} differs from the manifest`, { details: { path: f.path, expected: f.sha384, actual: sha384(bytes) } })
    }
    if (executable !== (f.mode === '0755')) {
      throw new ReleaseError('RELEASE_FILE_MISMATCH', `release file ${f.path} has another mode than the manifest`, { details: { path: f.path, expected: f.mode } })
    }
  }
  return { manifest, manifestBytes, releaseHash: releaseHash(manifestBytes) }
}

/**
 * The release hash of a source tree run without a release (the dev TEE
 * only): a fixed label's SHA-384, so a dev quote says plainly that no
 * release was measured. A real TD refuses to start without a release.
 */
export const UNRELEASED_RELEASE_HASH: Uint8Array = new Uint8Array(createHash('sha384').update('confidential-gateway: unreleased source tree').digest())
