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

/** Compare two same-length float arrays. `rowLength` > 1 adds top-1 agreement over rows of that length. */
export function compareOutputs(ref: Float32Array, got: Float32Array, rowLength?: number): Parity {
  if (ref.length !== got.length) throw new Error(`length mismatch: ${ref.length} vs ${got.length}`)
  let maxAbs = 0
  let sumAbs = 0
  let dot = 0
  let nr = 0
  let ng = 0
  let nonFinite = 0
  for (let i = 0; i < ref.length; i++) {
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
  const cosine = nonFinite > 0 ? NaN : nr === 0 && ng === 0 ? 1 : dot / Math.sqrt(nr * ng)
  const out: Parity = { maxAbs, meanAbs: ref.length ? sumAbs / ref.length : 0, cosine, nonFinite }
  if (rowLength && rowLength > 1 && ref.length % rowLength === 0) {
    const rows = ref.length / rowLength
    let agree = 0
    for (let r = 0; r < rows; r++) if (argmax(ref, r * rowLength, rowLength) === argmax(got, r * rowLength, rowLength)) agree++
    out.top1 = rows ? agree / rows : 1
  }
  return out
}

function argmax(a: Float32Array, start: number, n: number): number {
  let best = start
  for (let i = start + 1; i < start + n; i++) if (a[i]! > a[best]!) best = i
  return best - start
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
  if (!mask) return compareOutputs(ref, got, rowLength)
  const m = mask.dims
  const prefix = (n: number) => m.every((d, i) => dims[i] === d) && dims.length === m.length + n
  const kept = mask.keep.reduce((n, k) => n + k, 0)
  const padded = mask.keep.length - kept
  if (padded === 0) return compareOutputs(ref, got, rowLength)
  if (prefix(1)) {
    // one row of X values per position: keep the rows of real tokens
    const x = dims[dims.length - 1]!
    const r = new Float32Array(kept * x)
    const g = new Float32Array(kept * x)
    let o = 0
    for (let p = 0; p < mask.keep.length; p++) {
      if (!mask.keep[p]) continue
      r.set(ref.subarray(p * x, (p + 1) * x), o)
      g.set(got.subarray(p * x, (p + 1) * x), o)
      o += x
    }
    return { ...compareOutputs(r, g, rowLength), padded }
  }
  if (prefix(0)) {
    // one value per position: keep the real positions; top-1 over each sequence's real positions
    const s = m[m.length - 1]!
    const r = new Float32Array(kept)
    const g = new Float32Array(kept)
    let o = 0
    let rows = 0
    let agree = 0
    for (let row = 0; row * s < mask.keep.length; row++) {
      const start = o
      for (let p = row * s; p < (row + 1) * s; p++) {
        if (!mask.keep[p]) continue
        r[o] = ref[p]!
        g[o] = got[p]!
        o++
      }
      if (o > start) {
        rows++
        if (argmax(r, start, o - start) === argmax(g, start, o - start)) agree++
      }
    }
    const p = compareOutputs(r, g)
    return logits ? { ...p, top1: rows ? agree / rows : 1, padded } : { ...p, padded }
  }
  return compareOutputs(ref, got, rowLength)
}
