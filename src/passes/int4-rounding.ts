/**
 * How a matrix becomes 4-bit codes (not a pass). A matrix is read as [N, K] (rows are output
 * channels, or a lookup table's rows) and cut into blocks of `blockSize` along K; each block has
 * one scale (and, asymmetric, one zero point) and its values are codes 0..15 meaning
 * (code − zero point) · scale, the zero point being 8 when symmetric. Three ways to choose them:
 *
 * - `nearest`: the block's largest magnitude maps to −8 (symmetric) or its range [min(lo, 0),
 *   max(hi, 0)] to 0..15 (asymmetric); every value is rounded to the nearest code.
 * - `mse`: the scale of each block is searched: the candidates map the largest magnitude to −8 or
 *   to +7, shrunk by a grid of factors (1, 0.98, ..., 0.52), and the one with the least squared
 *   error over the block wins (the first of equals). Clipping a few large values buys a finer step
 *   for all the others.
 * - `gptq`: error-compensating rounding (Frantar et al., GPTQ): columns are rounded in order and
 *   the rounding error of each is pushed onto the columns not rounded yet, weighted by the inverse
 *   Hessian of the layer's squared output error, H = Σ xᵀx over sample activations x. Block
 *   scales are searched as in `mse`, on the values as they stand when the block's turn comes.
 *
 * All three are deterministic (plain double arithmetic, one order of operations); `gptq` as far
 * as its Hessians are (onnxruntime's sums on the machine at hand).
 */
import { roundEven } from './quant-common.js'

export type Int4Rounding = 'nearest' | 'mse' | 'gptq'

export interface BlockSpec {
  blockSize: number
  asymmetric: boolean
}

/** 4-bit codes of an [N, K] matrix, one code a byte, with a scale (and zero point) per block. */
export interface Codes4 {
  N: number
  K: number
  blockSize: number
  /** [N, K], values 0..15 */
  codes: Uint8Array
  /** [N, ceil(K / blockSize)] */
  scales: Float32Array
  /** [N, ceil(K / blockSize)], values 0..15 (asymmetric only) */
  zeroPoints?: Uint8Array
}

/** Shrink factors of the scale search: 1, 0.98, ..., 0.52. */
const SEARCH_FACTORS = Array.from({ length: 25 }, (_, i) => 1 - 0.02 * i)

const storedScale = (s: number) => Math.fround(s)

/** 1.5 · 2^52: adding and subtracting it rounds a double below 2^51 in magnitude to the nearest integer, ties to even. */
const ROUNDER = 6755399441055744

const code = (x: number, scale: number, zp: number) => Math.min(15, Math.max(0, roundEven(x / scale) + zp))

/** Squared error of the block x[0, n) under a scale and zero point, or `limit` once it reaches it. */
function blockError(x: Float64Array, n: number, scale: number, zp: number, limit: number): number {
  let e = 0
  const lo = -zp
  const hi = 15 - zp
  for (let k = 0; k < n; k++) {
    const v = x[k]!
    // the code's integer part, ties to even (as roundEven; |v / scale| is far below 2^51 or clamped anyway)
    let r = v / scale + ROUNDER - ROUNDER
    r = r < lo ? lo : r > hi ? hi : r
    const d = v - r * scale
    e += d * d
    if (e >= limit) return limit
  }
  return e
}

interface Choice {
  scale: number
  zp: number
}

/** The nearest-rounding scale and zero point of the block x[0, n). */
function nearestBlock(x: Float64Array, n: number, spec: BlockSpec): Choice {
  if (spec.asymmetric) {
    const [lo, hi] = range(x, n)
    const scale = storedScale(hi > lo ? (hi - lo) / 15 : 1)
    return { scale, zp: Math.min(15, Math.max(0, roundEven(-lo / scale))) }
  }
  const m = largest(x, n)
  return { scale: storedScale(m !== 0 ? m / -8 : 1), zp: 8 }
}

/** [min(x, 0), max(x, 0)] */
function range(x: Float64Array, n: number): [number, number] {
  let lo = 0
  let hi = 0
  for (let k = 0; k < n; k++) {
    const v = x[k]!
    if (v < lo) lo = v
    if (v > hi) hi = v
  }
  return [lo, hi]
}

/** The value of largest magnitude (the first of equals). */
function largest(x: Float64Array, n: number): number {
  let m = 0
  for (let k = 0; k < n; k++) if (Math.abs(x[k]!) > Math.abs(m)) m = x[k]!
  return m
}

/** The least-squared-error scale (and zero point) of the block x[0, n) among the search candidates. */
function searchBlock(x: Float64Array, n: number, spec: BlockSpec): Choice {
  let best = nearestBlock(x, n, spec)
  let bestError = blockError(x, n, best.scale, best.zp, Infinity)
  if (bestError === 0) return best
  const consider = (scale: number, zp: number) => {
    if (!(scale !== 0 && Number.isFinite(scale))) return
    const e = blockError(x, n, scale, zp, bestError)
    if (e < bestError) {
      bestError = e
      best = { scale, zp }
    }
  }
  if (spec.asymmetric) {
    const [lo, hi] = range(x, n)
    for (const f of SEARCH_FACTORS) {
      const scale = storedScale(((hi - lo) * f) / 15)
      consider(scale, Math.min(15, Math.max(0, roundEven((-lo * f) / scale))))
    }
    return best
  }
  const m = largest(x, n)
  for (const f of SEARCH_FACTORS) {
    consider(storedScale((m / -8) * f), 8)
    consider(storedScale((m / 7) * f), 8)
  }
  return best
}

function emptyCodes(N: number, K: number, spec: BlockSpec): Codes4 {
  const blocks = Math.ceil(K / spec.blockSize)
  const out: Codes4 = { N, K, blockSize: spec.blockSize, codes: new Uint8Array(N * K), scales: new Float32Array(N * blocks) }
  if (spec.asymmetric) out.zeroPoints = new Uint8Array(N * blocks)
  return out
}

/** Round every block of `w` ([N, K], row-major) by its own scale: `nearest` or `mse`. */
export function roundBlocks(w: Float32Array, N: number, K: number, spec: BlockSpec, how: 'nearest' | 'mse'): Codes4 {
  const out = emptyCodes(N, K, spec)
  const bs = spec.blockSize
  const blocks = Math.ceil(K / bs)
  const choose = how === 'mse' ? searchBlock : nearestBlock
  const x = new Float64Array(bs)
  for (let r = 0; r < N; r++) {
    for (let b = 0; b < blocks; b++) {
      const start = r * K + b * bs
      const n = Math.min(K, (b + 1) * bs) - b * bs
      for (let k = 0; k < n; k++) x[k] = w[start + k]!
      const { scale, zp } = choose(x, n, spec)
      out.scales[r * blocks + b] = scale
      if (out.zeroPoints) out.zeroPoints[r * blocks + b] = zp
      for (let k = 0; k < n; k++) out.codes[start + k] = code(x[k]!, scale, zp)
    }
  }
  return out
}

/** Dampening added to the Hessian's diagonal, as a share of its mean diagonal. */
export const GPTQ_DAMP = 0.1

/**
 * GPTQ rounding of `w` ([N, K], row-major) against the Hessian `h` ([K, K], row-major, symmetric,
 * any positive scale: Σ xᵀx over the sample rows x that multiply W). Returns undefined when the
 * dampened Hessian cannot be factored (then round by `mse`).
 */
export function roundGptq(w: Float32Array, N: number, K: number, h: Float64Array, spec: BlockSpec, damp = GPTQ_DAMP): Codes4 | undefined {
  const H = Float64Array.from(h)
  const work = Float64Array.from(w)
  // A column no sample reaches (x_k = 0 always) has no say in the output: round it to 0.
  let diag = 0
  for (let k = 0; k < K; k++) {
    if (!(H[k * K + k]! > 0)) {
      H[k * K + k] = 1
      for (let n = 0; n < N; n++) work[n * K + k] = 0
    }
    diag += H[k * K + k]!
  }
  const lambda = (damp * diag) / K
  for (let k = 0; k < K; k++) H[k * K + k] += lambda
  const U = inverseFactor(H, K)
  if (!U) return undefined
  const out = emptyCodes(N, K, spec)
  const bs = spec.blockSize
  const blocks = Math.ceil(K / bs)
  const err = new Float64Array(bs)
  const x = new Float64Array(bs)
  for (let n = 0; n < N; n++) {
    const row = n * K
    for (let b = 0; b < blocks; b++) {
      const b0 = b * bs
      const b1 = Math.min(K, b0 + bs)
      for (let k = b0; k < b1; k++) x[k - b0] = work[row + k]!
      const { scale, zp } = searchBlock(x, b1 - b0, spec)
      out.scales[n * blocks + b] = scale
      if (out.zeroPoints) out.zeroPoints[n * blocks + b] = zp
      // Round the block column by column, each error spread over the block's later columns...
      for (let j = b0; j < b1; j++) {
        const x = work[row + j]!
        const c = code(x, scale, zp)
        out.codes[row + j] = c
        const e = (x - (c - zp) * scale) / U[j * K + j]!
        err[j - b0] = e
        if (e === 0) continue
        for (let k = j + 1; k < b1; k++) work[row + k] -= e * U[j * K + k]!
      }
      // ...then the block's errors over every column after it.
      for (let j = b0; j < b1; j++) {
        const e = err[j - b0]!
        if (e === 0) continue
        const u = j * K
        for (let k = b1; k < K; k++) work[row + k] -= e * U[u + k]!
      }
    }
  }
  return out
}

/**
 * The upper-triangular U with UᵀU = H⁻¹ (the Cholesky factor of the inverse, which GPTQ's
 * updates read row by row), without forming H⁻¹: H = RRᵀ with R upper triangular (a Cholesky
 * factorization taken from the last index down), and U = R⁻¹. Undefined when H is not positive
 * definite.
 */
export function inverseFactor(H: Float64Array, K: number): Float64Array | undefined {
  // R: upper triangular, H = R·Rᵀ. R[i][j] (i <= j) = (H[i][j] − Σ_{k>j} R[i][k]·R[j][k]) / R[j][j].
  const R = new Float64Array(K * K)
  for (let j = K - 1; j >= 0; j--) {
    const rj = j * K
    let d = H[rj + j]!
    for (let k = j + 1; k < K; k++) d -= R[rj + k]! * R[rj + k]!
    if (!(d > 0)) return undefined
    const pivot = Math.sqrt(d)
    R[rj + j] = pivot
    for (let i = 0; i < j; i++) {
      const ri = i * K
      let s = H[ri + j]!
      for (let k = j + 1; k < K; k++) s -= R[ri + k]! * R[rj + k]!
      R[ri + j] = s / pivot
    }
  }
  // U = R⁻¹, upper triangular, row by row: row i solves Σ_k U[i][k]·R[k][j] = δ(i, j) for j = i, i+1, ...
  // (the running sums `acc` take each solved U[i][k] times row k of R, read in order).
  const U = new Float64Array(K * K)
  const acc = new Float64Array(K)
  for (let i = 0; i < K; i++) {
    const ui = i * K
    acc.fill(0, i)
    for (let k = i; k < K; k++) {
      const rk = k * K
      const u = ((k === i ? 1 : 0) - acc[k]!) / R[rk + k]!
      U[ui + k] = u
      if (u === 0) continue
      for (let j = k + 1; j < K; j++) acc[j] += u * R[rk + j]!
    }
  }
  return U
}

/** Squared error of the rounded matrix against `w` (for reports and tests). */
export function roundingError(w: Float32Array, c: Codes4): number {
  const blocks = Math.ceil(c.K / c.blockSize)
  let e = 0
  for (let n = 0; n < c.N; n++) {
    for (let k = 0; k < c.K; k++) {
      const b = n * blocks + Math.floor(k / c.blockSize)
      const zp = c.zeroPoints ? c.zeroPoints[b]! : 8
      const d = w[n * c.K + k]! - (c.codes[n * c.K + k]! - zp) * c.scales[b]!
      e += d * d
    }
  }
  return e
}

/**
 * MatMulNBits layout: [N, blocks, blockSize / 2] bytes, two codes a byte (low nibble first), the
 * padding past K holding the zero point (the value 0); zero points [N, ceil(blocks / 2)] packed the same way.
 */
export function packBlocks(c: Codes4): { data: Uint8Array; zeroPoints?: Uint8Array } {
  const blocks = Math.ceil(c.K / c.blockSize)
  const blob = c.blockSize / 2
  const data = new Uint8Array(c.N * blocks * blob)
  for (let n = 0; n < c.N; n++) {
    for (let b = 0; b < blocks; b++) {
      const zp = c.zeroPoints ? c.zeroPoints[n * blocks + b]! : 8
      const base = (n * blocks + b) * blob
      for (let i = 0; i < c.blockSize; i++) {
        const k = b * c.blockSize + i
        const q = k < c.K ? c.codes[n * c.K + k]! : zp
        data[base + (i >> 1)]! |= q << ((i & 1) * 4)
      }
    }
  }
  return c.zeroPoints ? { data, zeroPoints: packZeroPoints(c.zeroPoints, c.N, blocks) } : { data }
}

/**
 * GatherBlockQuantized layout (uint8 data, bits 4): [N, K / 2] bytes, two codes a byte, low nibble
 * first, no padding (K even); zero points as packBlocks packs them. Equal to packBlocks' bytes
 * when K is a multiple of the block size.
 */
export function packRows(c: Codes4): { data: Uint8Array; zeroPoints?: Uint8Array } {
  if (c.K % 2 !== 0) throw new Error(`packRows: ${c.K} columns, not an even number`)
  const data = new Uint8Array((c.N * c.K) / 2)
  for (let i = 0; i < c.codes.length; i++) data[i >> 1]! |= c.codes[i]! << ((i & 1) * 4)
  const blocks = Math.ceil(c.K / c.blockSize)
  return c.zeroPoints ? { data, zeroPoints: packZeroPoints(c.zeroPoints, c.N, blocks) } : { data }
}

function packZeroPoints(zps: Uint8Array, N: number, blocks: number): Uint8Array {
  const bytes = Math.ceil(blocks / 2)
  const out = new Uint8Array(N * bytes)
  for (let n = 0; n < N; n++) for (let b = 0; b < blocks; b++) out[n * bytes + (b >> 1)]! |= zps[n * blocks + b]! << ((b & 1) * 4)
  return out
}
