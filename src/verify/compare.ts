/** Parity figures between a reference output and a candidate output. */

export interface Parity {
  maxAbs: number
  meanAbs: number
  cosine: number
  /** Share of rows (over the last axis) whose argmax agrees; for logits. */
  top1?: number
  /** Non-finite values in the candidate. */
  nonFinite: number
}

/** Elements to compare: element i counts when `keep[floor(i / stride)]` is 1. */
export interface ElementMask {
  keep: Uint8Array
  stride: number
}

/**
 * Compare two same-length float arrays. `rowLength` > 1 adds top-1 agreement over rows of that
 * length. With a mask, only the elements it keeps count, argmaxes are taken over the kept elements
 * of a row, and rows with none kept are left out.
 */
export function compareOutputs(ref: Float32Array, got: Float32Array, rowLength?: number, mask?: ElementMask): Parity {
  if (ref.length !== got.length) throw new Error(`length mismatch: ${ref.length} vs ${got.length}`)
  const stride = mask?.stride ?? Math.max(ref.length, 1)
  let maxAbs = 0
  let sumAbs = 0
  let dot = 0
  let nr = 0
  let ng = 0
  let nonFinite = 0
  let count = 0
  for (let k = 0; k * stride < ref.length; k++) {
    if (mask && !mask.keep[k]) continue
    const end = Math.min((k + 1) * stride, ref.length)
    for (let i = k * stride; i < end; i++) {
      count++
      const r = ref[i]!
      const g = got[i]!
      if (!Number.isFinite(g)) {
        nonFinite++
        maxAbs = Infinity
        continue
      }
      const d = Math.abs(r - g)
      if (d > maxAbs) maxAbs = d
      sumAbs += d
      dot += r * g
      nr += r * r
      ng += g * g
    }
  }
  const cosine = nonFinite > 0 ? NaN : nr === 0 && ng === 0 ? 1 : dot / Math.sqrt(nr * ng)
  const out: Parity = { maxAbs, meanAbs: count ? sumAbs / count : 0, cosine, nonFinite }
  if (rowLength && rowLength > 1 && ref.length % rowLength === 0) {
    let rows = 0
    let agree = 0
    const best = mask ? (a: Float32Array, start: number) => maskedArgmax(a, start, rowLength, mask) : (a: Float32Array, start: number) => argmax(a, start, rowLength)
    for (let start = 0; start < ref.length; start += rowLength) {
      const r = best(ref, start)
      if (r < 0) continue
      rows++
      if (r === best(got, start)) agree++
    }
    out.top1 = rows ? agree / rows : 1
  }
  return out
}

/** Index (within the row) of the first largest element. */
function argmax(a: Float32Array, start: number, n: number): number {
  let best = start
  for (let i = start + 1; i < start + n; i++) if (a[i]! > a[best]!) best = i
  return best - start
}

/** Index (within the row) of the first largest element the mask keeps, or -1 when it keeps none. */
function maskedArgmax(a: Float32Array, start: number, n: number, mask: ElementMask): number {
  let best = -1
  for (let i = start; i < start + n; i++) if (mask.keep[Math.floor(i / mask.stride)] === 1 && (best < 0 || a[i]! > a[best]!)) best = i
  return best < 0 ? -1 : best - start
}

/**
 * Which positions of the inputs hold tokens (attention_mask 1) and which padding: `keep[i]` is 1
 * for a token, over the mask's dims ([batch, sequence], or [batch, choices, sequence]).
 */
export interface TokenMask {
  dims: readonly number[]
  keep: Uint8Array
}

/**
 * Parity over the positions that hold tokens only. Outputs at padded positions are never read by a
 * user (transformers computes them, but nothing downstream uses them), and a quantized model is free
 * to differ there. Per-token outputs ([...mask dims, X]: hidden states, token logits) keep the rows
 * of real tokens; per-position outputs ([...mask dims]: question answering's start/end logits) keep
 * the real positions of each sequence, and top-1 is taken over those. Other outputs (pooled, per
 * sequence) are compared whole. `padded` counts the rows or positions left out.
 */
export function compareTokens(ref: Float32Array, got: Float32Array, dims: readonly number[], mask: TokenMask | undefined, logits: boolean): Parity & { padded?: number } {
  const rowLength = logits ? dims[dims.length - 1] : undefined
  const padded = mask ? mask.keep.length - mask.keep.reduce((n, k) => n + k, 0) : 0
  const overPositions = mask !== undefined && mask.dims.every((d, i) => dims[i] === d)
  const perToken = overPositions && dims.length === mask.dims.length + 1
  const perPosition = overPositions && dims.length === mask.dims.length
  if (!mask || padded === 0 || !(perToken || perPosition)) return compareOutputs(ref, got, rowLength)
  return { ...compareOutputs(ref, got, rowLength, { keep: mask.keep, stride: perToken ? dims[dims.length - 1]! : 1 }), padded }
}
