/**
 * The numerical rank of a float32 matrix, with factors that reproduce it: row-pivoted modified
 * Gram–Schmidt (with reorthogonalization) on a sample of rows gives an orthonormal basis and the
 * rank, taken at a clear gap in the pivot norms; then every row is fitted to that basis, so the
 * figure holds for the whole matrix, not the sample (rows the basis misses join the sample and
 * pivoting runs again). Sums are float64 over the float32 data. factorization-check uses it to
 * find an embedding table whose factorization was folded in.
 */

/** Rows within this much (× the rms row norm) of a subspace count as in it when looking for a rank. */
export const NEAR_TOLERANCE = 1e-3
/** A rank is taken where a pivot norm is at least this many times the next one. */
const MIN_GAP = 10
/** Pivoting stops once every sampled row is within this much (× rms row norm) of the basis. */
const STOP_TOLERANCE = 1e-6
/** Rows sampled beyond `cap`, so that a rank above it shows. */
const SAMPLE_MARGIN = 64
/** Rounds of "fit every row, add the rows the basis misses to the sample, pivot again". */
const MAX_ROUNDS = 4

/** A row-major float32 matrix. */
export interface Matrix {
  data: Float32Array
  rows: number
  cols: number
}

/** T ≈ C·B: C rows×r, B r×cols, row-major float32. */
export interface Factors {
  c: Float32Array
  b: Float32Array
}

export interface RankAnalysis {
  /** Ranks above this are not looked for: floor(min(rows, cols) / 2). */
  cap: number
  /** The rank found at a clear gap, at most `cap`; undefined when there is none. */
  rank?: number
  /** ‖T − C·B‖_F / ‖T‖_F for the float32 factors, with `rank`. */
  relativeError?: number
  factors?: Factors
  /** Rounds of sampling, pivoting and fitting used. */
  rounds: number
}

/**
 * The numerical rank of `m` with factors that reproduce it. Costs about 2·m·cap·cols for the
 * sample (cap + 64 rows) plus rows·r·cols to fit every row; the rank found is exact for the
 * whole matrix, since rows the sample's basis misses are added to the sample and pivoted again.
 */
export function analyzeRank(m: Matrix, cap = Math.floor(Math.min(m.rows, m.cols) / 2)): RankAnalysis {
  const norms = rowNormsSquared(m)
  const total = norms.reduce((a, b) => a + b, 0)
  if (cap < 1 || total === 0) return { cap, rounds: 0 }
  const rms = Math.sqrt(total / m.rows)
  let sample = sampleRows(m.rows, Math.min(m.rows, cap + SAMPLE_MARGIN), 0x9e3779b9)
  let previous = 0
  for (let round = 1; ; round++) {
    const pivoting = pivotedBasis(m, sample, cap + 1, STOP_TOLERANCE * rms)
    const rank = rankAtGap(pivoting, cap, NEAR_TOLERANCE * rms)
    if (rank === undefined) return { cap, rounds: round }
    const level = Math.max(MIN_GAP * residualAfter(pivoting, rank), STOP_TOLERANCE * rms)
    const fit = fitRows(m, norms, pivoting.basis.slice(0, rank), level)
    const result: RankAnalysis = { cap, rank, relativeError: Math.sqrt(fit.errorSquared / total), factors: fit.factors, rounds: round }
    if (fit.outliers.length === 0 || rank <= previous || round === MAX_ROUNDS) return result
    previous = rank
    sample = mergeRows(sample, fit.outliers.slice(0, cap))
  }
}

/** ‖row‖² for every row, float64 sums. */
function rowNormsSquared(m: Matrix): Float64Array {
  const out = new Float64Array(m.rows)
  const { data, cols } = m
  for (let i = 0; i < m.rows; i++) {
    let s = 0
    for (let j = i * cols, end = j + cols; j < end; j++) s += data[j]! * data[j]!
    out[i] = s
  }
  return out
}

/** `k` distinct row indices of `n`, spread by a seeded partial Fisher–Yates shuffle, sorted. */
function sampleRows(n: number, k: number, seed: number): number[] {
  const idx = Int32Array.from({ length: n }, (_, i) => i)
  let s = seed >>> 0 || 1
  for (let i = 0; i < k; i++) {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    const j = i + ((s >>> 0) % (n - i))
    const t = idx[i]!
    idx[i] = idx[j]!
    idx[j] = t
  }
  return Array.from(idx.subarray(0, k)).sort((a, b) => a - b)
}

function mergeRows(a: readonly number[], b: readonly number[]): number[] {
  return [...new Set([...a, ...b])].sort((x, y) => x - y)
}

interface Pivoting {
  /** Orthonormal rows, in pivot order. */
  basis: Float64Array[]
  /** Norm of each pivot row's residual when it was taken. */
  pivots: number[]
  /** Largest residual norm left in the sample after the last pivot. */
  rest: number
}

/**
 * Row-pivoted modified Gram–Schmidt on rows `rows` of `m`: repeatedly take the row with the
 * largest residual, reorthogonalize it against the basis (twice is enough), normalize it, and
 * remove its direction from every other residual. Stops after `maxSteps` pivots or when no
 * residual is above `floor`.
 */
function pivotedBasis(m: Matrix, rows: readonly number[], maxSteps: number, floor: number): Pivoting {
  const D = m.cols
  const n = rows.length
  const R = new Float64Array(n * D)
  const norms = new Float64Array(n)
  rows.forEach((row, i) => {
    R.set(m.data.subarray(row * D, row * D + D), i * D)
    norms[i] = dot(R, i * D, R, i * D, D)
  })
  const taken = new Uint8Array(n)
  const basis: Float64Array[] = []
  const pivots: number[] = []
  for (;;) {
    const p = largestFree(norms, taken)
    const rest = p < 0 ? 0 : Math.sqrt(norms[p]!)
    if (basis.length >= maxSteps || rest <= floor) return { basis, pivots, rest }
    const q = R.slice(p * D, p * D + D)
    for (const b of basis) axpy(q, 0, b, 0, -dot(q, 0, b, 0, D), D)
    const norm = Math.sqrt(dot(q, 0, q, 0, D))
    if (norm <= floor) return { basis, pivots, rest: norm }
    for (let j = 0; j < D; j++) q[j]! /= norm
    taken[p] = 1
    basis.push(q)
    pivots.push(norm)
    for (let i = 0; i < n; i++) if (!taken[i]) norms[i] = removeDirection(R, i * D, q, D)
  }
}

function largestFree(norms: Float64Array, taken: Uint8Array): number {
  let best = -1
  for (let i = 0; i < norms.length; i++) if (!taken[i] && (best < 0 || norms[i]! > norms[best]!)) best = i
  return best
}

/** r ← r − (r·q) q for the row at `off`; returns ‖r‖² afterwards. */
function removeDirection(R: Float64Array, off: number, q: Float64Array, D: number): number {
  const d = dot(R, off, q, 0, D)
  let s = 0
  for (let j = 0; j < D; j++) {
    const v = R[off + j]! - d * q[j]!
    R[off + j] = v
    s += v * v
  }
  return s
}

function dot(a: Float64Array, ao: number, b: Float64Array, bo: number, n: number): number {
  let s = 0
  for (let j = 0; j < n; j++) s += a[ao + j]! * b[bo + j]!
  return s
}

function axpy(y: Float64Array, yo: number, x: Float64Array, xo: number, alpha: number, n: number): void {
  for (let j = 0; j < n; j++) y[yo + j]! += alpha * x[xo + j]!
}

/** Residual level after `k` pivots: the next pivot, or what was left when pivoting stopped. */
function residualAfter(p: Pivoting, k: number): number {
  return k < p.pivots.length ? p.pivots[k]! : p.rest
}

/**
 * The rank at the clearest gap: the k ≤ cap maximizing pivot(k) / residual after k, among those
 * whose residual is at most `level` and whose gap is at least MIN_GAP.
 */
function rankAtGap(p: Pivoting, cap: number, level: number): number | undefined {
  let best: number | undefined
  let bestGap = MIN_GAP
  for (let k = 1; k <= Math.min(cap, p.pivots.length); k++) {
    const next = residualAfter(p, k)
    if (next > level) continue
    const gap = next === 0 ? Infinity : p.pivots[k - 1]! / next
    if (gap >= bestGap && (best === undefined || gap > bestGap)) {
      best = k
      bestGap = gap
    }
  }
  return best
}

interface Fit {
  factors: Factors
  /** ‖T − C·B‖_F² for the float32 factors. */
  errorSquared: number
  /** Rows whose residual is above the level asked for, largest first. */
  outliers: number[]
}

/**
 * Fit every row to the basis as stored in float32 (B̃): c = B̃·x in float64, stored as c̃ (float32),
 * and the residual ‖x − B̃ᵀc̃‖² = ‖x‖² − 2c̃·c + c̃ᵀ(B̃B̃ᵀ)c̃ from the r×r Gram matrix, so the error
 * is that of the factors as written (float64 rounding bounds it below by about 1e-7 of a row).
 */
function fitRows(m: Matrix, norms: Float64Array, basis: Float64Array[], level: number): Fit {
  const { rows: V, cols: D, data } = m
  const r = basis.length
  const b32 = new Float32Array(r * D)
  basis.forEach((q, k) => b32.set(q, k * D))
  const b = Float64Array.from(b32)
  const gram = gramMatrix(b, r, D)
  const c32 = new Float32Array(V * r)
  const x = new Float64Array(2 * D)
  const c = new Float64Array(2 * r)
  const residuals = new Float64Array(V)
  const floor = 1e-6
  const outliers: number[] = []
  let errorSquared = 0
  for (let i = 0; i < V; i += 2) {
    const pair = i + 1 < V ? 2 : 1
    for (let j = 0; j < D; j++) {
      x[j] = data[i * D + j]!
      x[D + j] = pair === 2 ? data[(i + 1) * D + j]! : 0
    }
    coefficientsOfPair(x, b, r, D, c)
    for (let t = 0; t < pair; t++) {
      const row = i + t
      const res = residualSquared(norms[row]!, c, t * r, c32, row * r, gram, r)
      residuals[row] = res
      errorSquared += res
      const limit = Math.max(level, floor * Math.sqrt(norms[row]!))
      if (res > limit * limit) outliers.push(row)
    }
  }
  outliers.sort((p, q) => residuals[q]! - residuals[p]!)
  return { factors: { c: c32, b: b32 }, errorSquared, outliers }
}

/** G = B·Bᵀ (r×r) for row-major B (r×D). */
function gramMatrix(b: Float64Array, r: number, D: number): Float64Array {
  const g = new Float64Array(r * r)
  for (let k = 0; k < r; k++) {
    for (let l = k; l < r; l++) {
      const s = dot(b, k * D, b, l * D, D)
      g[k * r + l] = s
      g[l * r + k] = s
    }
  }
  return g
}

/**
 * c[0..r) = B·x₀ and c[r..2r) = B·x₁ for the two rows in `x` (2×D), four basis rows at a time:
 * eight float64 accumulators, each element of x and B loaded once per block.
 */
function coefficientsOfPair(x: Float64Array, b: Float64Array, r: number, D: number, c: Float64Array): void {
  let k = 0
  for (; k + 4 <= r; k += 4) {
    const q0 = k * D
    const q1 = q0 + D
    const q2 = q1 + D
    const q3 = q2 + D
    let a0 = 0
    let a1 = 0
    let a2 = 0
    let a3 = 0
    let e0 = 0
    let e1 = 0
    let e2 = 0
    let e3 = 0
    for (let j = 0; j < D; j++) {
      const x0 = x[j]!
      const x1 = x[D + j]!
      const p0 = b[q0 + j]!
      const p1 = b[q1 + j]!
      const p2 = b[q2 + j]!
      const p3 = b[q3 + j]!
      a0 += p0 * x0
      a1 += p1 * x0
      a2 += p2 * x0
      a3 += p3 * x0
      e0 += p0 * x1
      e1 += p1 * x1
      e2 += p2 * x1
      e3 += p3 * x1
    }
    c[k] = a0
    c[k + 1] = a1
    c[k + 2] = a2
    c[k + 3] = a3
    c[r + k] = e0
    c[r + k + 1] = e1
    c[r + k + 2] = e2
    c[r + k + 3] = e3
  }
  for (; k < r; k++) {
    c[k] = dot(b, k * D, x, 0, D)
    c[r + k] = dot(b, k * D, x, D, D)
  }
}

/**
 * ‖x − B̃ᵀc̃‖² from ‖x‖², the float64 coefficients c (at `co`) and their float32 rounding c̃,
 * written to `c32` at `so`. Clamped at 0 (rounding can make it slightly negative).
 */
function residualSquared(xx: number, c: Float64Array, co: number, c32: Float32Array, so: number, gram: Float64Array, r: number): number {
  let cross = 0
  for (let k = 0; k < r; k++) {
    c32[so + k] = c[co + k]!
    cross += c32[so + k]! * c[co + k]!
  }
  let quad = 0
  for (let k = 0; k < r; k++) {
    const ck = c32[so + k]!
    let s = 0.5 * gram[k * r + k]! * ck
    for (let l = k + 1; l < r; l++) s += gram[k * r + l]! * c32[so + l]!
    quad += 2 * ck * s
  }
  return Math.max(0, xx - 2 * cross + quad)
}
