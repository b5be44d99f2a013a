/**
 * The timing loop every benchmark shares: warm-up, then rounds that
 * interleave the contenders (rotating order, about ROUND_MS each) until each
 * has run at least `timeMs` and `minCalls` calls. Every call is timed with
 * process.hrtime.bigint; medians and p90 are of those per-call times.
 * Benchmarks never assert on time: they report.
 */

const WARMUP_CALLS = 30
const ROUND_MS = 50

export interface ContenderStats {
  readonly name: string
  readonly calls: number
  readonly median: number
  readonly p90: number
}

export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b)
  const pos = (s.length - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo)
}

export const round = (x: number, d = 4) => Number(x.toFixed(d))

/** Time each contender; returns stats in the order given (milliseconds per call). */
export function measure(
  contenders: readonly { readonly name: string; readonly run: () => unknown }[],
  { timeMs = 1000, minCalls = 200 }: { timeMs?: number; minCalls?: number } = {},
): ContenderStats[] {
  const ks = contenders.map((c) => ({ ...c, times: [] as number[], batch: 1, total: 0 }))
  for (const k of ks) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < WARMUP_CALLS; i++) k.run()
    const perCall = Number(process.hrtime.bigint() - t0) / 1e6 / WARMUP_CALLS
    k.batch = Math.max(1, Math.round(ROUND_MS / perCall))
  }
  const done = (k: (typeof ks)[0]) => k.times.length >= minCalls && k.total >= timeMs
  for (let r = 0; !ks.every(done); r++) {
    for (let j = 0; j < ks.length; j++) {
      const k = ks[(r + j) % ks.length]!
      for (let i = 0; i < k.batch; i++) {
        const t0 = process.hrtime.bigint()
        k.run()
        const ms = Number(process.hrtime.bigint() - t0) / 1e6
        k.times.push(ms)
        k.total += ms
      }
    }
  }
  return ks.map((k) => ({ name: k.name, calls: k.times.length, median: quantile(k.times, 0.5), p90: quantile(k.times, 0.9) }))
}

/** `--flag value` from argv. */
export function argValue(args: readonly string[], flag: string): string | undefined {
  const i = args.indexOf(flag)
  return i >= 0 ? args[i + 1] : undefined
}
