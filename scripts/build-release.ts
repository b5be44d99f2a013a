/**
 * `npm run build:release`: the reproducible gateway release.
 *
 * Same tracked sources + package-lock.json (so the same node_modules) and the
 * same node major → byte-identical outputs, wherever the checkout lives:
 *
 *   dist/release/cgw.mjs        esbuild bundle of bin/cgw (gateway + CLI), one ESM file
 *   dist/release/receipt-signature-worker.mjs
 *                               the audit's worker thread (WORKER_ENTRIES), bundled on its own
 *   dist/release/secp256k1.wasm libsecp256k1 (RELEASE_ASSETS), which tiny-secp256k1 reads beside the bundle
 *   dist/release/package.json   name, version, the external native packages, pinned
 *   dist/release/release.json   manifest (deploy/release/manifest.ts); SHA-384 of it = release hash
 *   dist/confidential-gateway-<version>.tar.gz   these files, deterministic tar + gzip
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
 *
 * Complete, or no release: code that loads a file relative to itself
 * (`new URL('./x', import.meta.url)`: a worker thread, a lazily imported
 * module) finds it beside the bundle, not in the checkout it was built
 * from. Workers are bundled as entries of their own under the name the code
 * asks for; any other literal reference that does not resolve to a shipped
 * file fails the build (ReleaseError RELEASE_BUNDLE_INCOMPLETE) rather than
 * ship a command that breaks only once installed (test/deploy-release-build
 * runs commands from an unpacked tarball, away from any checkout).
 */
import { createHash } from 'node:crypto'
import { mkdir, readFile, rm, writeFile, chmod } from 'node:fs/promises'
import { basename, join, posix, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { build } from 'esbuild'
import { createReleaseManifest, encodeReleaseManifest, releaseHash, ReleaseError, RELEASE_MANIFEST_FILE, type ReleaseManifest } from '../deploy/release/manifest.ts'
import { gzipDeterministic, sourceDateEpoch, writeTar, type TarEntry } from '../deploy/release/tar.ts'

/** Packages left out of the bundle: native addons (see the module header). */
export const EXTERNAL_PACKAGES = ['koffi', 'node-llama-cpp'] as const
/** The bundle's entry, relative to the checkout. */
export const RELEASE_ENTRY = 'deploy/release/entry.ts'
/**
 * Worker threads the bundle starts with `new Worker(new URL('./<out>', import.meta.url))`:
 * each bundled from its source (plain JS, no TypeScript loader in a worker) to `<out>` beside cgw.mjs.
 */
export const WORKER_ENTRIES: readonly { readonly source: string; readonly out: string }[] = [
  { source: 'attestation/log/audit/receipt-signature-worker.mjs', out: 'receipt-signature-worker.mjs' },
]
/**
 * Files a bundled dependency reads beside itself, copied byte for byte into
 * the release, its manifest and so its hash. tiny-secp256k1 loads its
 * WebAssembly with `new URL(name, import.meta.url)` — a computed name the
 * reference check below cannot see, so it is listed here: `out` is read
 * from the folder of the bundled module `loader` (the one esbuild actually
 * bundled, so JavaScript and WebAssembly always come from the same copy
 * of the package), and the bundle must still name it (a renamed asset
 * fails the build).
 */
export const RELEASE_ASSETS: readonly { readonly loader: string; readonly out: string }[] = [
  { loader: 'tiny-secp256k1/lib/wasm_path.js', out: 'secp256k1.wasm' },
]
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

/**
 * The files a bundle loads relative to itself: the literal first argument of
 * every `new URL(<literal>, import.meta.url)` (a computed one cannot be
 * checked here, so the code should not use one for a file it ships).
 */
export function selfRelativeReferences(code: string): string[] {
  return [...code.matchAll(/new URL\(\s*(["'`])([^"'`$]+)\1\s*,\s*import\.meta\.url\s*\)/g)].map((m) => m[2]!)
}

/** Throw RELEASE_BUNDLE_INCOMPLETE for a reference of `file` (a release path) that is not among `shipped`. */
export function checkSelfContained(file: string, code: string, shipped: readonly string[]): void {
  const missing = selfRelativeReferences(code)
    .map((ref) => ({ ref, path: posix.normalize(posix.join(posix.dirname(file), ref)) }))
    .filter((r) => !shipped.includes(r.path))
  if (missing.length > 0) {
    throw new ReleaseError('RELEASE_BUNDLE_INCOMPLETE', `${file} loads ${missing.map((m) => m.ref).join(', ')} relative to itself, which the release does not ship (import it statically, or add it as a release entry)`, {
      details: { file, references: missing.map((m) => m.ref) },
    })
  }
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
    entryPoints: [{ in: RELEASE_ENTRY, out: 'cgw' }, ...WORKER_ENTRIES.map((w) => ({ in: w.source, out: w.out.replace(/\.mjs$/, '') }))],
    outdir: 'release',
    outExtension: { '.js': '.mjs' },
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
    metafile: true,
  })
  const output = (name: string) => {
    const f = result.outputFiles.find((o) => basename(o.path) === name)
    if (!f) throw new Error(`build-release: esbuild produced no ${name}`)
    return f
  }
  const bundle = output('cgw.mjs')
  const workers = WORKER_ENTRIES.map((w) => ({ path: w.out, mode: '0644' as const, bytes: output(w.out).contents }))
  const assets = await Promise.all(
    RELEASE_ASSETS.map(async (a) => {
      const loaders = Object.keys(result.metafile.inputs).filter((i) => i.endsWith(`node_modules/${a.loader}`))
      if (loaders.length !== 1) throw new ReleaseError('RELEASE_BUNDLE_INCOMPLETE', `the bundle holds ${loaders.length} copies of ${a.loader}, not one`, { details: { file: a.out } })
      return { path: a.out, mode: '0644' as const, bytes: new Uint8Array(await readFile(join(root, posix.dirname(loaders[0]!), a.out))) }
    }),
  )
  const shipped = ['cgw.mjs', 'package.json', ...workers.map((w) => w.path), ...assets.map((a) => a.path)]
  const bundleText = Buffer.from(bundle.contents).toString('utf8')
  for (const a of assets) {
    if (!bundleText.includes(`"${a.path}"`)) throw new ReleaseError('RELEASE_BUNDLE_INCOMPLETE', `the bundle no longer names ${a.path}`, { details: { file: a.path } })
  }
  for (const f of [{ path: 'cgw.mjs', bytes: bundle.contents }, ...workers]) {
    const text = Buffer.from(f.bytes).toString('utf8')
    // Fail rather than ship a bundle that names the build machine.
    if (text.includes(root)) throw new Error(`build-release: ${f.path} contains the absolute path of the checkout`)
    checkSelfContained(f.path, text, shipped)
  }

  const packageJson = new TextEncoder().encode(
    `${JSON.stringify({ name: pkg.name, version: pkg.version, type: 'module', bin: { cgw: 'cgw.mjs' }, engines: pkg.engines ?? {}, dependencies: external }, null, 2)}\n`,
  )
  const files = [
    { path: 'cgw.mjs', mode: '0755' as const, bytes: bundle.contents },
    { path: 'package.json', mode: '0644' as const, bytes: packageJson },
    ...workers,
    ...assets,
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
