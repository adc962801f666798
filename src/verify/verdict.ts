/**
 * The parity verdict, without running anything: a candidate's outputs against the reference's,
 * output by output (max abs, mean abs, cosine, top-1 agreement for logits), judged against
 * thresholds. The reference is albertkit's plain fp32 graph run with onnxruntime's optimizations
 * off, or goldens computed by PyTorch; runtime/parity.ts runs the models.
 */
import type { Tensor } from '../ir/tensor.js'
import { compareTokens, type Parity, type TokenMask } from './compare.js'

/** Float32 outputs by name, as a runtime returns them. */
export type OutputMap = Map<string, { data: Float32Array; dims: number[] }>

export interface Thresholds {
  /** largest allowed max abs error */
  maxAbs?: number
  /** smallest allowed cosine similarity */
  cosine?: number
  /** smallest allowed share of rows whose argmax agrees (logits outputs only) */
  top1?: number
}

/** Thresholds over the precision defaults: for every model, and for models of one precision (which win). */
export interface ThresholdOverrides extends Thresholds {
  byPrecision?: Partial<Record<string, Thresholds>>
}

export interface OutputVerdict extends Parity {
  name: string
  /** positions holding padding that were left out of this output's figures */
  padded?: number
  /** One line per threshold missed: which figure, its value, the bound, by how much. */
  failures: string[]
}

export interface ArtifactVerdict {
  path: string
  precision: string
  pass: boolean
  thresholds: Thresholds
  outputs: OutputVerdict[]
}

/** Goldens from a safetensors file as an output map. */
export function goldenOutputs(golden: Map<string, Tensor>): OutputMap {
  const out: OutputMap = new Map()
  for (const [name, t] of golden) out.set(name, { data: t.toFloat32(), dims: [...t.dims] })
  return out
}

const fmt = (x: number) => (Math.abs(x) >= 0.01 || x === 0 ? x.toFixed(6) : x.toExponential(3))

/**
 * Compare candidate outputs with the reference under thresholds. With a token mask, positions that
 * hold padding are left out of per-token outputs (see compareTokens).
 */
export function judge(reference: OutputMap, candidate: OutputMap, thresholds: Thresholds, mask?: TokenMask): OutputVerdict[] {
  const verdicts: OutputVerdict[] = []
  for (const [name, ref] of reference) {
    const got = candidate.get(name)
    if (!got) {
      verdicts.push({ name, maxAbs: Infinity, meanAbs: Infinity, cosine: NaN, nonFinite: 0, failures: [`${name}: missing from the candidate`] })
      continue
    }
    if (got.dims.join() !== ref.dims.join()) {
      verdicts.push({ name, maxAbs: Infinity, meanAbs: Infinity, cosine: NaN, nonFinite: 0, failures: [`${name}: shape [${got.dims}] differs from the reference [${ref.dims}]`] })
      continue
    }
    const isLogits = /logits/.test(name)
    const p = compareTokens(ref.data, got.data, ref.dims, mask, isLogits)
    const failures: string[] = []
    if (p.nonFinite > 0) failures.push(`${name}: ${p.nonFinite} values are NaN or infinite`)
    if (thresholds.maxAbs !== undefined && !(p.maxAbs <= thresholds.maxAbs)) {
      failures.push(`${name}: max abs error ${fmt(p.maxAbs)} > ${fmt(thresholds.maxAbs)} (over by ${fmt(p.maxAbs - thresholds.maxAbs)})`)
    }
    if (thresholds.cosine !== undefined && !(p.cosine >= thresholds.cosine)) {
      failures.push(`${name}: cosine ${fmt(p.cosine)} < ${fmt(thresholds.cosine)} (short by ${fmt(thresholds.cosine - p.cosine)})`)
    }
    if (thresholds.top1 !== undefined && p.top1 !== undefined && !(p.top1 >= thresholds.top1)) {
      failures.push(`${name}: top-1 agreement ${(100 * p.top1).toFixed(2)}% < ${(100 * thresholds.top1).toFixed(2)}%`)
    }
    verdicts.push({ name, ...p, failures })
  }
  return verdicts
}

/** One line per output, and the failures. */
export function formatVerdict(v: ArtifactVerdict): string[] {
  const lines = [`${v.pass ? 'PASS' : 'FAIL'} ${v.path} (${v.precision})`]
  for (const o of v.outputs) {
    const top = o.top1 !== undefined ? `, top-1 ${(100 * o.top1).toFixed(2)}%` : ''
    const padded = o.padded ? ` (${o.padded} padded positions left out)` : ''
    lines.push(`  ${o.name}: max abs ${fmt(o.maxAbs)}, mean abs ${fmt(o.meanAbs)}, cosine ${fmt(o.cosine)}${top}${padded}`)
    for (const f of o.failures) lines.push(`    ✗ ${f}`)
  }
  return lines
}
