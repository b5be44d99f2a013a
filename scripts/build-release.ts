/**
 * `npm run build:release`: the reproducible gateway release.
 *
 * Same tracked sources + package-lock.json (so the same node_modules) and the
 * same node major → byte-identical outputs, wherever the checkout lives:
 *
 *   dist/release/cgw.mjs        esbuild bundle of bin/cgw (gateway + CLI), one ESM file
 *   dist/release/package.json   name, version, the external native packages, pinned
 *   dist/release/release.json   manifest (deploy/release/manifest.ts); SHA-384 of it = release hash
 *   dist/confidential-gateway-<version>.tar.gz   the three files, deterministic tar + gzip
 *
 * Determinism, option by option (esbuild is deterministic for fixed inputs
 * and options; what remains is what could carry the build machine in):
 * - absWorkingDir = the checkout: every path esbuild writes (module comments)
 *   is relative to it, and the build fails if the checkout's absolute path
 *   appears in the output anyway;
 * - no sourcemap (a map embeds sources paths and is not needed to audit a
 *   readable, unminified bundle);
 * - legalComments "eof": third-party license comments are kept (Apache-2.0
 *   and MIT require the notices) in one block in esbuild's fixed order;
 * - one constant banner: `require` for CommonJS dependencies that call it
 *   (esbuild's ESM output has none); no date, no version string;
 * - external: koffi and node-llama-cpp ship prebuilt native addons (.node)
 *   per platform that esbuild cannot inline; they are installed from the
 *   registry at the versions the manifest pins (`npm ci --omit=dev` in the
 *   image) and loaded only when a config asks for NVML or the embedded engine.
 * The tarball: sorted entries, mtime SOURCE_DATE_EPOCH or 0, uid/gid 0, modes
 * 0644/0755 (deploy/release/tar.ts).
 */
import { createHash } from 'node:crypto'
import { mkdir, readFile, rm, writeFile, chmod } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { build } from 'esbuild'
import { createReleaseManifest, encodeReleaseManifest, releaseHash, RELEASE_MANIFEST_FILE, type ReleaseManifest } from '../deploy/release/manifest.ts'
import { gzipDeterministic, sourceDateEpoch, writeTar, type TarEntry } from '../deploy/release/tar.ts'

/** Packages left out of the bundle: native addons (see the module header). */
export const EXTERNAL_PACKAGES = ['koffi', 'node-llama-cpp'] as const
/** The bundle's entry, relative to the checkout. */
export const RELEASE_ENTRY = 'deploy/release/entry.ts'
/** The constant banner (see the module header). */
export const BUNDLE_BANNER = "import { createRequire as __cgwCreateRequire } from 'node:module';\nconst require = __cgwCreateRequire(import.meta.url);"

export interface BuildReleaseOptions {
  /** The checkout (holds package.json, package-lock.json, node_modules). */
  readonly root: string
  /** Output directory; default `<root>/dist`. Replaced. */
  readonly outDir?: string
  readonly env?: Readonly<Record<string, string | undefined>>
}

export interface BuiltRelease {
  readonly releaseDir: string
  readonly tarball: string
  readonly manifest: ReleaseManifest
  /** SHA-384 of release.json, hex: the `cgw-release` event payload. */
  readonly releaseHash: string
  readonly bundleBytes: number
  readonly tarballSha256: string
  readonly tarballSha384: string
  readonly buildMs: number
}

/** Build the release from the checkout at `root`. */
export async function buildRelease(options: BuildReleaseOptions): Promise<BuiltRelease> {
  const started = performance.now()
  const root = resolve(options.root)
  const outDir = resolve(options.outDir ?? join(root, 'dist'))
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { name: string; version: string; engines?: { node?: string }; dependencies: Record<string, string> }
  const external = Object.fromEntries(EXTERNAL_PACKAGES.map((p) => [p, pkg.dependencies[p] ?? '']))
  for (const [p, v] of Object.entries(external)) if (!v) throw new Error(`build-release: ${p} is not a pinned dependency in package.json`)

  const result = await build({
    absWorkingDir: root,
    entryPoints: [RELEASE_ENTRY],
    outfile: 'cgw.mjs',
    bundle: true,
    write: false,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: [...EXTERNAL_PACKAGES],
    sourcemap: false,
    legalComments: 'eof',
    charset: 'utf8',
    minify: false,
    banner: { js: BUNDLE_BANNER },
    // A symlinked node_modules (a CI cache, the determinism test) must not turn into paths outside the checkout.
    preserveSymlinks: true,
    logLevel: 'silent',
  })
  const bundle = result.outputFiles.find((f) => f.path.endsWith('cgw.mjs'))
  if (!bundle) throw new Error('build-release: esbuild produced no cgw.mjs')
  const text = Buffer.from(bundle.contents).toString('utf8')
  // Fail rather than ship a bundle that names the build machine.
  if (text.includes(root)) throw new Error('build-release: the bundle contains the absolute path of the checkout')

  const packageJson = new TextEncoder().encode(
    `${JSON.stringify({ name: pkg.name, version: pkg.version, type: 'module', bin: { cgw: 'cgw.mjs' }, engines: pkg.engines ?? {}, dependencies: external }, null, 2)}\n`,
  )
  const files = [
    { path: 'cgw.mjs', mode: '0755' as const, bytes: bundle.contents },
    { path: 'package.json', mode: '0644' as const, bytes: packageJson },
  ]
  const manifest = createReleaseManifest({ name: pkg.name, packageVersion: pkg.version, external, files })
  const manifestBytes = encodeReleaseManifest(manifest)

  const releaseDir = join(outDir, 'release')
  await rm(outDir, { recursive: true, force: true })
  await mkdir(releaseDir, { recursive: true })
  for (const f of files) {
    await writeFile(join(releaseDir, f.path), f.bytes)
    await chmod(join(releaseDir, f.path), f.mode === '0755' ? 0o755 : 0o644)
  }
  await writeFile(join(releaseDir, RELEASE_MANIFEST_FILE), manifestBytes)

  const prefix = `${pkg.name}-${pkg.version}/`
  const entries: TarEntry[] = [
    { path: prefix, mode: 0o755 },
    ...[...files, { path: RELEASE_MANIFEST_FILE, mode: '0644' as const, bytes: manifestBytes }]
      .sort((a, b) => (a.path < b.path ? -1 : 1))
      .map((f): TarEntry => ({ path: prefix + f.path, mode: f.mode === '0755' ? 0o755 : 0o644, bytes: f.bytes })),
  ]
  const tgz = gzipDeterministic(writeTar(entries, sourceDateEpoch(options.env ?? process.env)))
  const tarball = join(outDir, `${pkg.name}-${pkg.version}.tar.gz`)
  await writeFile(tarball, tgz)

  return {
    releaseDir,
    tarball,
    manifest,
    releaseHash: Buffer.from(releaseHash(manifestBytes)).toString('hex'),
    bundleBytes: bundle.contents.length,
    tarballSha256: createHash('sha256').update(tgz).digest('hex'),
    tarballSha384: createHash('sha384').update(tgz).digest('hex'),
    buildMs: Math.round(performance.now() - started),
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const outArg = process.argv.indexOf('--out')
  const built = await buildRelease({ root: process.cwd(), ...(outArg > 0 && process.argv[outArg + 1] ? { outDir: process.argv[outArg + 1]! } : {}) })
  process.stdout.write(
    `${[
      `release directory  ${built.releaseDir}`,
      `tarball            ${built.tarball}`,
      `bundle             ${built.bundleBytes} bytes`,
      `release hash       ${built.releaseHash}   (SHA-384 of release.json; cgw-release event payload)`,
      `tarball sha256     ${built.tarballSha256}`,
      `tarball sha384     ${built.tarballSha384}`,
      `build time         ${built.buildMs} ms`,
    ].join('\n')}\n`,
  )
}
