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
