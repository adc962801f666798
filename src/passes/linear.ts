/**
 * Linear layers as exporters write them — Gemm(x, W, b), or MatMul(x, W) with an Add of a bias
 * vector — recognized once for the passes that fuse or quantize them. Not a pass.
 */
import { DataType } from '../ir/dtype.js'
import type { Graph, Node, Value } from '../ir/graph.js'
import { transposeTensor } from '../ir/evaluate.js'

/** y = x·B + b, with B stored as W ('KN': B = W; 'NK': B = Wᵀ). */
export interface Linear {
  x: Value
  weight: Value
  orientation: 'KN' | 'NK'
  bias: Value | null
  /** the nodes computing it */
  nodes: Node[]
}

const isMatrix = (w: Value | null | undefined) => !!w?.const && w.const.dims.length === 2 && w.const.dtype === DataType.FLOAT
const isVector = (b: Value | null | undefined) => !!b?.const && b.const.dims.length === 1 && b.const.dtype === DataType.FLOAT

/** Recognize the linear layer that computes `v`. */
export function linearOf(v: Value | null | undefined): Linear | undefined {
  const n = v?.producer
  if (!n || n.domain !== '') return undefined
  if (n.opType === 'Gemm') {
    if (n.attrInt('transA', 0) || n.attrFloat('alpha', 1) !== 1 || (n.inputs[2] && n.attrFloat('beta', 1) !== 1)) return undefined
    const [x, w, b] = n.inputs
    if (!x || !isMatrix(w) || (b && !isVector(b))) return undefined
    return { x, weight: w!, orientation: n.attrInt('transB', 0) ? 'NK' : 'KN', bias: b ?? null, nodes: [n] }
  }
  if (n.opType === 'MatMul' && isMatrix(n.inputs[1]) && n.inputs[0]) return { x: n.inputs[0], weight: n.inputs[1]!, orientation: 'KN', bias: null, nodes: [n] }
  if (n.opType === 'Add') {
    for (const [a, b] of [[n.inputs[0], n.inputs[1]], [n.inputs[1], n.inputs[0]]] as const) {
      const mm = a?.producer
      if (mm?.opType === 'MatMul' && mm.domain === '' && isVector(b) && isMatrix(mm.inputs[1]) && mm.inputs[0] && a!.consumers.length === 1) {
        return { x: mm.inputs[0], weight: mm.inputs[1]!, orientation: 'KN', bias: b!, nodes: [mm, n] }
      }
    }
  }
  return undefined
}

/** Output width of a linear layer. */
export function outWidth(l: Linear): number {
  const [r, c] = l.weight.const!.dims as [number, number]
  return l.orientation === 'NK' ? r : c
}

/** The weight as float32 in [in, out] ('KN') or [out, in] ('NK') layout, transposing once if needed. */
export function weightAs(weight: Value, stored: 'KN' | 'NK', wanted: 'KN' | 'NK'): { data: Float32Array; rows: number; cols: number } {
  const t = stored === wanted ? weight.const! : transposeTensor(weight.const!, [1, 0])
  const [rows, cols] = t.dims as [number, number]
  return { data: t.toFloat32(), rows, cols }
}

/**
 * Take the bias off the linear layer computing `v` (Gemm's C, or the Add after a MatMul) when only
 * one reader depends on it, so that reader (a fused op) can add it instead. Returns the layer's
 * new output and the bias.
 */
export function takeBias(g: Graph, v: Value): { x: Value; bias: Value } | undefined {
  const n = v.producer
  if (!n || n.domain !== '' || v.isGraphOutput) return undefined
  if (n.opType === 'Gemm' && isVector(n.inputs[2]) && n.attrFloat('beta', 1) === 1) {
    const bias = n.inputs[2]!
    n.setInput(2, null)
    n.inputs.length = 2
    return { x: v, bias }
  }
  if (n.opType === 'Add') {
    for (const [a, b] of [[n.inputs[0], n.inputs[1]], [n.inputs[1], n.inputs[0]]] as const) {
      if (a?.producer?.opType === 'MatMul' && isVector(b) && a.consumers.length === 1) {
        g.replaceAllUses(v, a)
        return { x: a, bias: b! }
      }
    }
  }
  return undefined
}
