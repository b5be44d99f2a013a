/**
 * A deterministic tar writer (POSIX ustar, IEEE Std 1003.1-2001 "pax"
 * interchange format, ustar header) and gzip via node:zlib: same entries in,
 * same bytes out, on any machine and at any time.
 *
 * What varies between machines in an ordinary `tar czf` is removed here:
 * entry order (the caller's order, which build-release sorts), mtimes (one
 * fixed value: SOURCE_DATE_EPOCH or 0, reproducible-builds.org
 * "SOURCE_DATE_EPOCH" specification), owner (uid/gid 0, empty user and
 * group names), modes (0644 / 0755 only), and the gzip header's MTIME and
 * file name (node's zlib writes MTIME 0 and no name, RFC 1952 §2.3).
 */
import { gzipSync } from 'node:zlib'

/** ustar block size (POSIX pax "ustar Interchange Format"). */
const BLOCK = 512
/** ustar header field offsets and sizes. */
const H = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  chksum: [148, 8],
  typeflag: [156, 1],
  magic: [257, 6],
  version: [263, 2],
} as const

export interface TarEntry {
  /** Relative path, at most 100 bytes (no prefix field is used); a directory ends with "/". */
  readonly path: string
  readonly mode: 0o644 | 0o755
  /** Absent for a directory. */
  readonly bytes?: Uint8Array
}

function octal(value: number, size: number): string {
  // size-1 digits and a NUL, as GNU and BSD tar write them.
  const s = value.toString(8).padStart(size - 1, '0')
  if (s.length > size - 1) throw new RangeError(`tar: ${value} does not fit ${size - 1} octal digits`)
  return `${s}\0`
}

function header(entry: TarEntry, size: number, mtime: number): Uint8Array {
  const h = Buffer.alloc(BLOCK)
  const put = ([off, len]: readonly [number, number], text: string) => {
    const b = Buffer.from(text, 'latin1')
    if (b.length > len) throw new RangeError(`tar: field too long for ${entry.path}`)
    b.copy(h, off)
  }
  const name = Buffer.from(entry.path, 'utf8')
  if (name.length > 100 || name.length === 0) throw new RangeError(`tar: path ${entry.path} is not 1-100 bytes`)
  name.copy(h, H.name[0])
  const dir = entry.path.endsWith('/')
  put(H.mode, octal(dir ? 0o755 : entry.mode, 8))
  put(H.uid, octal(0, 8))
  put(H.gid, octal(0, 8))
  put(H.size, octal(dir ? 0 : size, 12))
  put(H.mtime, octal(mtime, 12))
  put(H.typeflag, dir ? '5' : '0')
  put(H.magic, 'ustar\0')
  put(H.version, '00')
  // The checksum is computed with its own field as eight spaces.
  h.fill(0x20, H.chksum[0], H.chksum[0] + H.chksum[1])
  let sum = 0
  for (const byte of h) sum += byte
  put(H.chksum, `${sum.toString(8).padStart(6, '0')}\0 `)
  return h
}

/** The tar archive of `entries`, in the given order, ending with two zero blocks. */
export function writeTar(entries: readonly TarEntry[], mtime = 0): Uint8Array {
  if (!Number.isSafeInteger(mtime) || mtime < 0) throw new RangeError('tar: mtime must be a non-negative integer')
  const parts: Uint8Array[] = []
  for (const e of entries) {
    const body = e.path.endsWith('/') ? new Uint8Array(0) : (e.bytes ?? new Uint8Array(0))
    parts.push(header(e, body.length, mtime), body, new Uint8Array((BLOCK - (body.length % BLOCK)) % BLOCK))
  }
  parts.push(new Uint8Array(2 * BLOCK))
  return new Uint8Array(Buffer.concat(parts))
}

/** gzip at level 9 (the bytes depend on node's bundled zlib, so on the node version). */
export function gzipDeterministic(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(gzipSync(bytes, { level: 9 }))
}

/**
 * The archive's mtime: SOURCE_DATE_EPOCH when set (a decimal integer), else
 * 0. Anything else is refused rather than ignored.
 */
export function sourceDateEpoch(env: Readonly<Record<string, string | undefined>> = process.env): number {
  const v = env.SOURCE_DATE_EPOCH
  if (v === undefined || v === '') return 0
  if (!/^\d{1,11}$/.test(v)) throw new RangeError('SOURCE_DATE_EPOCH must be a decimal number of seconds')
  return Number(v)
}
