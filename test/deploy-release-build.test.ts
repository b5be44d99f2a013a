/**
 * The reproducible release: two builds from two copies of the checkout in
 * different directories (tracked and untracked-but-not-ignored files, the
 * same node_modules) produce byte-identical bundles, manifests and
 * tarballs; nothing of either directory appears in them; the tarball has
 * fixed order, mtimes, owners and modes. The release is complete: unpacked
 * from its tarball far from any checkout (as the image does), its commands
 * start, it verifies a real quote, and the audit's worker thread loads and
 * answers; a bundle that loads a file relative to itself which the release
 * does not ship fails the build (RELEASE_BUNDLE_INCOMPLETE). Then the built
 * bundle runs under plain node as a dev-TEE gateway, finds its own
 * release.json, and its quote's runtime events carry exactly the release
 * hash the build printed.
 */
import t from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { mkdtemp, mkdir, copyFile, symlink, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { randomBytes } from 'node:crypto'
import { buildRelease, checkSelfContained, selfRelativeReferences, WORKER_ENTRIES, type BuiltRelease } from '../scripts/build-release.ts'
import { promisify } from 'node:util'
import { execFile } from 'node:child_process'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { tdxCase } from './helpers/vectors.ts'
import { codeOf, thrown } from './helpers/errors.ts'
import { parseReleaseManifest, releaseHash, verifyReleaseDirectory } from '../deploy/release/manifest.ts'
import { writeTar, sourceDateEpoch } from '../deploy/release/tar.ts'
import { parseQuote } from '../attestation/tdx/abi/quote.ts'
import { replayRuntimeEvents } from '../attestation/eventlog/runtime-events.ts'

const repo = process.cwd()
const work = await mkdtemp(join(tmpdir(), 'cgw-release-'))
t.teardown(() => rm(work, { recursive: true, force: true }))

/** Copy what git would hand a builder (tracked + untracked, not ignored) and link node_modules. */
async function checkout(to: string): Promise<string> {
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: repo, encoding: 'utf8' }).split('\0').filter(Boolean)
  for (const f of files) {
    await mkdir(dirname(join(to, f)), { recursive: true })
    await copyFile(join(repo, f), join(to, f)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e // a file deleted in the working tree but still tracked
    })
  }
  await symlink(join(repo, 'node_modules'), join(to, 'node_modules'), 'dir')
  return to
}

const a = await checkout(join(work, 'a'))
const b = await checkout(join(work, 'deeper', 'path', 'b'))
let builtA: BuiltRelease
let builtB: BuiltRelease

t.test('two builds in different directories are byte-identical', async (t) => {
  builtA = await buildRelease({ root: a, env: {} })
  builtB = await buildRelease({ root: b, env: {} })
  for (const f of ['cgw.mjs', 'package.json', 'receipt-signature-worker.mjs', 'secp256k1.wasm', 'release.json']) {
    const x = await readFile(join(builtA.releaseDir, f))
    const y = await readFile(join(builtB.releaseDir, f))
    t.ok(x.equals(y), `release/${f} identical`)
  }
  t.ok((await readFile(builtA.tarball)).equals(await readFile(builtB.tarball)), 'tarball identical')
  t.equal(builtA.releaseHash, builtB.releaseHash)
  t.equal(builtA.tarballSha256, builtB.tarballSha256)
  const bundle = await readFile(join(builtA.releaseDir, 'cgw.mjs'), 'utf8')
  for (const p of [a, b, work, repo, tmpdir()]) t.notOk(bundle.includes(p), `no absolute path (${p.length} chars) in the bundle`)
  t.notMatch(bundle, /sourceMappingURL/, 'no source map reference')
  t.ok(bundle.startsWith('#!/usr/bin/env node\n'), 'runnable: the entry shebang first')
  t.notMatch(bundle, /from ["']koffi["'][\s\S]*from ["']koffi["']/, 'koffi stays external (imported, not inlined twice)')
  t.comment(`bundle ${builtA.bundleBytes} bytes; builds ${builtA.buildMs} ms and ${builtB.buildMs} ms; release hash ${builtA.releaseHash}; tarball sha256 ${builtA.tarballSha256}`)
})

t.test('the manifest is canonical and covers every release file', async (t) => {
  const v = await verifyReleaseDirectory(builtA.releaseDir)
  t.equal(Buffer.from(v.releaseHash).toString('hex'), builtA.releaseHash)
  t.same(v.manifest.files.map((f) => f.path), ['cgw.mjs', 'package.json', 'receipt-signature-worker.mjs', 'secp256k1.wasm'])
  const wasm = await readFile(join(builtA.releaseDir, 'secp256k1.wasm'))
  t.ok(wasm.equals(await readFile(join(repo, 'node_modules/tiny-secp256k1/lib/secp256k1.wasm'))), 'libsecp256k1 shipped byte for byte as the lockfile pins it')
  const pinned = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')).dependencies
  t.same(v.manifest.external, { koffi: pinned.koffi, 'node-llama-cpp': pinned['node-llama-cpp'] }, 'native addons pinned as in package.json')
  const bytes = await readFile(join(builtA.releaseDir, 'release.json'))
  t.equal(Buffer.from(releaseHash(bytes)).toString('hex'), builtA.releaseHash)
  const pretty = Buffer.from(`${JSON.stringify(JSON.parse(bytes.toString()), null, 2)}\n`)
  t.throws(() => parseReleaseManifest(pretty), { code: 'RELEASE_MANIFEST_MALFORMED' }, 'another encoding of the same manifest is refused')
})

t.test('the tarball: fixed order, mtime, owner and modes', async (t) => {
  const tar = gunzipSync(await readFile(builtA.tarball))
  const entries: { name: string; mode: string; uid: string; gid: string; mtime: string; type: string }[] = []
  for (let off = 0; off + 512 <= tar.length; ) {
    const hdr = tar.subarray(off, off + 512)
    if (hdr.every((x) => x === 0)) break
    const field = (s: number, n: number) => hdr.subarray(s, s + n).toString('latin1').replace(/\0.*$/s, '')
    const size = Number.parseInt(field(124, 12), 8)
    entries.push({ name: field(0, 100), mode: field(100, 8), uid: field(108, 8), gid: field(116, 8), mtime: field(136, 12), type: field(156, 1) })
    off += 512 + Math.ceil(size / 512) * 512
  }
  t.same(entries.map((e) => e.name), [
    'confidential-gateway-0.1.0/',
    'confidential-gateway-0.1.0/cgw.mjs',
    'confidential-gateway-0.1.0/package.json',
    'confidential-gateway-0.1.0/receipt-signature-worker.mjs',
    'confidential-gateway-0.1.0/release.json',
    'confidential-gateway-0.1.0/secp256k1.wasm',
  ])
  t.ok(entries.every((e) => e.uid === '0000000' && e.gid === '0000000' && e.mtime === '00000000000'), 'uid/gid 0, mtime 0')
  t.same(entries.map((e) => e.mode), ['0000755', '0000755', '0000644', '0000644', '0000644', '0000644'])
  // SOURCE_DATE_EPOCH moves only the mtimes, never the release hash.
  t.equal(sourceDateEpoch({ SOURCE_DATE_EPOCH: '1700000000' }), 1700000000)
  t.throws(() => sourceDateEpoch({ SOURCE_DATE_EPOCH: 'yesterday' }))
  const one = writeTar([{ path: 'x', mode: 0o644, bytes: new Uint8Array(3) }], 1700000000)
  t.equal(Buffer.from(one.subarray(136, 147)).toString('latin1'), (1700000000).toString(8).padStart(11, '0'))
  t.equal(one.length, 512 * 4, 'header, one data block, two zero blocks')
})

t.test('the release is complete: unpacked away from any checkout, its commands run and its worker answers', async (t) => {
  // Every file the bundle loads relative to itself is shipped (the build checks it; so does this).
  for (const f of ['cgw.mjs', ...WORKER_ENTRIES.map((w) => w.out)]) {
    const code = await readFile(join(builtA.releaseDir, f), 'utf8')
    for (const ref of selfRelativeReferences(code)) t.ok(builtA.manifest.files.some((m) => m.path === join(dirname(f), ref).replace(/^\.\//, '')), `${f}: ${ref} is in the release`)
  }
  const missing = thrown(() => checkSelfContained('cgw.mjs', 'const m = await import(new URL("../../contracts/client/index.ts", import.meta.url).href)', ['cgw.mjs']))
  t.equal(codeOf(missing), 'RELEASE_BUNDLE_INCOMPLETE', 'a module loaded from the checkout fails the build')
  t.same((missing as { details: { references: string[] } }).details.references, ['../../contracts/client/index.ts'])

  // As the image does: the tarball unpacked into an empty directory, no node_modules, no sources around it.
  const root = join(work, 'installed')
  await mkdir(root)
  execFileSync('tar', ['-xzf', builtA.tarball, '-C', root, '--strip-components=1'])
  const exec = promisify(execFile)
  const cgw = async (args: string[]) =>
    exec(process.execPath, [join(root, 'cgw.mjs'), ...args], { cwd: root, timeout: 60_000 }).then(
      (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, out: e.stdout ?? '', err: e.stderr ?? '' }),
    )
  for (const args of [['--help'], ['verify', '--help'], ['measure', '--help'], ['proxy', '--help'], ['gateway', '--help'], ['start', '--help']]) {
    const r = await cgw(args)
    t.equal(r.code, 0, `cgw ${args.join(' ')} from the release: ${r.err.slice(0, 200)}`)
  }
  const c = tdxCase('tdx-v4-emerald-rapids-uptodate')
  const verified = await cgw(['verify-quote', `${c.dir}quote.bin`, '--collateral', `${c.dir}collateral.json`, '--at', c.verifyAt.toISOString(), '--json'])
  t.equal(verified.code, 0, 'a real quote verifies from the release')
  t.equal(JSON.parse(verified.out).ok, true)

  // The audit's worker thread, as createReceiptSignaturePool starts it from the bundle: one valid, one forged signature.
  const sk = secp256k1.utils.randomSecretKey()
  const item = (digest: Uint8Array, key: Uint8Array) => {
    const s = secp256k1.sign(digest, key, { prehash: false, format: 'recovered' })
    return Buffer.concat([digest, s.subarray(1), Uint8Array.of(27 + s[0]!), secp256k1.getPublicKey(sk, true)])
  }
  const items = Buffer.concat([item(new Uint8Array(32).fill(1), sk), item(new Uint8Array(32).fill(2), secp256k1.utils.randomSecretKey())])
  const script = `import { Worker } from 'node:worker_threads'
const w = new Worker(new URL('./receipt-signature-worker.mjs', import.meta.url))
w.on('message', (m) => { process.stdout.write(JSON.stringify([...m.results])); w.terminate() })
w.on('error', (e) => { process.stderr.write(String(e)); process.exit(1) })
w.postMessage({ id: 1, items: new Uint8Array(Buffer.from('${items.toString('hex')}', 'hex')) })
`
  await writeFile(join(root, 'worker-probe.mjs'), script)
  const probe = await exec(process.execPath, [join(root, 'worker-probe.mjs')], { cwd: root, timeout: 60_000 })
  t.same(JSON.parse(probe.stdout), [1, 0], 'the shipped worker loads without a TypeScript loader and gives exact verdicts')
})

t.test('the built bundle runs as a dev-TEE gateway and reports its own release hash', async (t) => {
  const dir = join(work, 'run')
  await mkdir(dir)
  const config = join(dir, 'gateway.json')
  await writeFile(config, JSON.stringify({ logLevel: 'silent', listen: { host: '127.0.0.1', port: 0 }, enclave: { tee: 'dev', gpu: 'none', engine: { url: 'http://127.0.0.1:9' } } }))
  const child = spawn(process.execPath, [join(builtA.releaseDir, 'cgw.mjs'), 'gateway', '--config', config], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => void child.kill('SIGKILL'))
  let out = ''
  let err = ''
  child.stderr.on('data', (d: Buffer) => void (err += d))
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d
      const m = out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/)
      if (m) resolve(Number(m[1]))
    })
    child.on('exit', (code) => reject(new Error(`gateway exited ${code}: ${err}`)))
  })
  const res = await fetch(`http://127.0.0.1:${port}/v1/attestation?nonce=${randomBytes(32).toString('hex')}`)
  t.equal(res.status, 200)
  const bundle = (await res.json()) as { quote: string; runtimeEvents: { event: string; payload: string; digest: string; imr: 3 }[] }
  t.equal(bundle.runtimeEvents[0]!.event, 'cgw-release')
  t.equal(bundle.runtimeEvents[0]!.payload, builtA.releaseHash, 'the bundle measured the release the build printed')
  const q = parseQuote(new Uint8Array(Buffer.from(bundle.quote, 'base64')))
  if (q.body.kind === 'sgx') throw new Error('sgx')
  t.equal(Buffer.from(q.body.report.rtmrs[3]).toString('hex'), Buffer.from(replayRuntimeEvents(bundle.runtimeEvents)[3]!).toString('hex'), 'and its RTMR3 replays')
  child.kill('SIGTERM')
  await new Promise((r) => child.once('exit', r))
})
