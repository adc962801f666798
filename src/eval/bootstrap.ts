/**
 * A seeded paired bootstrap of metric drops. Each resample draws n examples with replacement
 * (xoshiro128** seeded through splitmix32 from the seed; an index is a 32-bit draw modulo n,
 * draws at or above the largest multiple of n rejected, so without bias) and scores the
 * reference and the candidate on the same draws: the drop of the resample is their difference. The
 * interval is the 2.5th and 97.5th percentiles of the resampled drops (linear interpolation
 * between order statistics, numpy's default). The same seed gives the same interval on any machine.
 */

/** xoshiro128** (Blackman & Vigna), seeded by splitmix32. */
export class Rng {
  private s0: number
  private s1: number
  private s2: number
  private s3: number

  constructor(seed: number) {
    let x = seed >>> 0
    const next = () => {
      x = (x + 0x9e3779b9) | 0
      let z = x
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
      return z ^ (z >>> 16)
    }
    this.s0 = next()
    this.s1 = next()
    this.s2 = next()
    this.s3 = next()
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const out = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0
    const t = this.s1 << 9
    this.s2 ^= this.s0
    this.s3 ^= this.s1
    this.s1 ^= this.s2
    this.s0 ^= this.s3
    this.s2 ^= t
    this.s3 = rotl(this.s3, 11)
    return out
  }

  /** A uniform integer in [0, n), 1 ≤ n ≤ 2^32: a draw modulo n, draws at or above the largest multiple of n rejected. */
  below(n: number): number {
    const limit = 4294967296 - (4294967296 % n)
    for (;;) {
      const x = this.next()
      if (x < limit) return x % n
    }
  }

  /** out.length draws of below(n), the same as calling it that often (the generator's state in locals: the bootstrap's inner loop). */
  fill(n: number, out: Int32Array): void {
    const limit = 4294967296 - (4294967296 % n)
    let { s0, s1, s2, s3 } = this
    for (let k = 0; k < out.length; ) {
      const x = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0
      const t = s1 << 9
      s2 ^= s0
      s3 ^= s1
      s1 ^= s2
      s0 ^= s3
      s2 ^= t
      s3 = (s3 << 11) | (s3 >>> 21)
      if (x < limit) out[k++] = x % n
    }
    this.s0 = s0
    this.s1 = s1
    this.s2 = s2
    this.s3 = s3
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k))
}

/** The q-quantile (0..1) of sorted values, interpolating linearly between order statistics. */
export function quantile(sorted: Float64Array, q: number): number {
  const n = sorted.length
  if (n === 0) return NaN
  const h = (n - 1) * q
  const lo = Math.floor(h)
  const hi = Math.min(lo + 1, n - 1)
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!)
}

export interface BootstrapOptions {
  resamples: number
  seed: number
  /** e.g. 0.95 */
  confidence: number
}

/** Sums over drawn examples: cleared before each resample, fed every draw, then asked for each metric's drop. */
export interface DropAccumulator {
  readonly metrics: number
  reset(): void
  add(example: number): void
  drops(): ArrayLike<number>
}

/** The interval of each metric's drop over `resamples` resamples of n examples; every metric sees the same draws. */
export function pairedBootstrap(n: number, acc: DropAccumulator, opts: BootstrapOptions): [number, number][] {
  const rng = new Rng(opts.seed)
  const draws = new Int32Array(n)
  const values = Array.from({ length: acc.metrics }, () => new Float64Array(opts.resamples))
  for (let r = 0; r < opts.resamples; r++) {
    rng.fill(n, draws)
    acc.reset()
    for (let k = 0; k < n; k++) acc.add(draws[k]!)
    const d = acc.drops()
    for (let m = 0; m < acc.metrics; m++) values[m]![r] = d[m]!
  }
  const tail = (1 - opts.confidence) / 2
  return values.map((v) => {
    v.sort()
    return [quantile(v, tail), quantile(v, 1 - tail)]
  })
}

/**
 * A drop that is the mean of per-example differences (reference − candidate), one column per
 * metric, in points (× 100): accuracy, top-k, SQuAD's exact match and F1.
 */
export function meanDifferences(columns: readonly ArrayLike<number>[]): DropAccumulator {
  const sums = new Float64Array(columns.length)
  const out = new Float64Array(columns.length)
  let n = 0
  return {
    metrics: columns.length,
    reset() {
      sums.fill(0)
      n = 0
    },
    add(i) {
      for (let m = 0; m < columns.length; m++) sums[m]! += columns[m]![i]!
      n++
    },
    drops() {
      for (let m = 0; m < columns.length; m++) out[m] = (100 * sums[m]!) / n
      return out
    },
  }
}
