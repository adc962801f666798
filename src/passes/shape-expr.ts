/**
 * Reading shape arithmetic without running it: what each element of a 1-D int64 shape vector is —
 * a constant, or "dimension k of tensor T" — through the ops exporters build shapes with (Shape
 * with start/end, Gather/Slice of a shape, Concat, Unsqueeze/Squeeze of one element, Cast). A
 * dimension read through a Transpose is named by the tensor before it (dimension perm[k]), so
 * `Shape(Transpose(x))` and `Gather(Shape(x), perm)` (what onnxruntime's transpose optimizer
 * writes) read as the same dimensions. Not a pass: the fusion matchers use it to check that a
 * Reshape target is what they assume.
 */
import { DataType } from '../ir/dtype.js'
import type { Value } from '../ir/graph.js'

/** One element of a shape vector: a known number, or a dimension of a tensor. */
export type DimExpr = { const: number } | { of: Value; axis: number }

/** Shape expressions nested deeper than this are not followed (hostile graphs). */
const MAX_DEPTH = 24
/** Shape vectors longer than this are not described (no ALBERT shape comes near). */
const MAX_DIMS = 16

const isInt = (t: DataType) => t === DataType.INT64 || t === DataType.INT32

/** The rank of a tensor when the graph tells it: declared or inferred shape, a Transpose's perm, a Reshape's target length. */
export function rankOf(v: Value | null | undefined, depth = 0): number | undefined {
  if (!v || depth > MAX_DEPTH) return undefined
  if (v.shape) return v.shape.length
  const p = v.producer
  if (!p || p.domain !== '') return undefined
  if (p.opType === 'Transpose') return p.attrInts('perm')?.length ?? rankOf(p.inputs[0], depth + 1)
  if (p.opType === 'Reshape') return dimsOf(p.inputs[1], depth + 1)?.length
  return undefined
}

/** Dimension `axis` of `v`, named by the tensor before any Transposes. */
export function dimOf(v: Value, axis: number): DimExpr {
  let of = v
  let k = axis
  for (let i = 0; i < MAX_DEPTH; i++) {
    const p = of.producer
    const perm = p && p.opType === 'Transpose' && p.domain === '' ? p.attrInts('perm') : undefined
    if (!perm || !p!.inputs[0] || k < 0 || k >= perm.length) break
    k = perm[k]!
    of = p!.inputs[0]
  }
  return { of, axis: k }
}

export function sameDim(a: DimExpr | undefined, b: DimExpr | undefined): boolean {
  if (!a || !b) return false
  if ('const' in a) return 'const' in b && a.const === b.const
  return 'of' in b && a.of === b.of && a.axis === b.axis
}

function constInts(v: Value): number[] | undefined {
  const t = v.const
  if (!t || !isInt(t.dtype) || t.dims.length > 1 || t.size > MAX_DIMS) return undefined
  return t.toNumbers()
}

/** The elements of a 1-D (or scalar) int shape value, or undefined when one cannot be told. */
export function dimsOf(v: Value | null | undefined, depth = 0): DimExpr[] | undefined {
  if (!v || depth > MAX_DEPTH) return undefined
  if (v.const) return constInts(v)?.map((c) => ({ const: c }))
  const p = v.producer
  if (!p || p.domain !== '') return undefined
  const [a, b] = p.inputs
  switch (p.opType) {
    case 'Shape': {
      const rank = rankOf(a, depth + 1)
      if (!a || rank === undefined || rank > MAX_DIMS) return undefined
      const start = clampIndex(p.attrInt('start', 0), rank)
      const end = clampIndex(p.attrInt('end', rank), rank)
      const out: DimExpr[] = []
      for (let k = start; k < end; k++) out.push(dimOf(a, k))
      return out
    }
    case 'Concat': {
      if (p.attrInt('axis', 0) !== 0 && p.attrInt('axis', 0) !== -1) return undefined
      const out: DimExpr[] = []
      for (const i of p.inputs) {
        const d = dimsOf(i, depth + 1)
        if (!d) return undefined
        out.push(...d)
      }
      return out.length <= MAX_DIMS ? out : undefined
    }
    case 'Gather': {
      const data = dimsOf(a, depth + 1)
      const idx = b ? constInts(b) : undefined
      if (!data || !idx || p.attrInt('axis', 0) !== 0) return undefined
      const out: DimExpr[] = []
      for (const i of idx) {
        const k = i < 0 ? i + data.length : i
        if (k < 0 || k >= data.length) return undefined
        out.push(data[k]!)
      }
      return out
    }
    case 'Slice': {
      const data = dimsOf(a, depth + 1)
      const [, s, e, axes, steps] = p.inputs
      const starts = s ? constInts(s) : undefined
      const ends = e ? constInts(e) : undefined
      if (!data || starts?.length !== 1 || ends?.length !== 1) return undefined
      if (axes && constInts(axes)?.join() !== '0' && constInts(axes)?.join() !== '-1') return undefined
      if (steps && constInts(steps)?.join() !== '1') return undefined
      return data.slice(clampIndex(starts[0]!, data.length), clampIndex(ends[0]!, data.length))
    }
    case 'Unsqueeze':
    case 'Squeeze':
    case 'Identity': {
      const d = dimsOf(a, depth + 1)
      return d?.length === 1 ? d : undefined
    }
    case 'Cast':
      return isInt(p.attrInt('to', 0)) ? dimsOf(a, depth + 1) : undefined
    default:
      return undefined
  }
}

/** A Slice/Shape index: negative counts from the end, then clamped to [0, n]. */
function clampIndex(i: number, n: number): number {
  const k = i < 0 ? i + n : i
  return k < 0 ? 0 : k > n ? n : k
}

/** Ops whose output has the shape of their first input. */
const SAME_SHAPE = new Set(['Softmax', 'LogSoftmax', 'Hardmax', 'Tanh', 'Erf', 'Sqrt', 'Cast', 'Not', 'IsNaN', 'Neg', 'Relu', 'Sigmoid', 'Identity', 'Exp', 'Log', 'Abs', 'Reciprocal'])
/** Ops whose output rank is the largest of their inputs' (numpy broadcasting). */
const BROADCASTING = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Where', 'And', 'Or', 'Xor', 'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Max', 'Min'])

/**
 * The rank of `v` when bounds from both sides meet: at least what its producers make (a
 * Transpose's perm, a Reshape's target, the largest rank among broadcast inputs), at most what
 * its readers allow (a Transpose reader fixes it; through same-shape and broadcasting readers
 * and MatMul, no more than their output's). Exporters leave intermediate ranks undeclared; this
 * tells, for instance, that attention scores are 4-D from the head transposes around them.
 */
export function exactRank(v: Value | null | undefined): number | undefined {
  if (!v) return undefined
  if (v.shape) return v.shape.length
  const low = lowerRank(v, 0)
  const high = upperRank(v, 0)
  return low === high ? low : undefined
}

function lowerRank(v: Value | null | undefined, depth: number): number {
  if (!v || depth > MAX_DEPTH) return 0
  if (v.shape) return v.shape.length
  if (v.const) return v.const.dims.length
  const p = v.producer
  if (!p || p.domain !== '') return 0
  if (p.opType === 'Transpose' || p.opType === 'Reshape') return rankOf(v) ?? 0
  if (SAME_SHAPE.has(p.opType)) return lowerRank(p.inputs[0], depth + 1)
  if (BROADCASTING.has(p.opType) || p.opType === 'MatMul') return Math.max(0, ...p.inputs.map((i) => lowerRank(i, depth + 1)))
  return 0
}

function upperRank(v: Value, depth: number): number {
  if (v.shape) return v.shape.length
  if (depth > MAX_DEPTH || v.isGraphOutput) return Infinity
  let bound = Infinity
  for (const c of v.consumers) {
    if (c.domain !== '') continue
    const out = c.outputs[0]
    if (c.opType === 'Transpose') bound = Math.min(bound, c.attrInts('perm')?.length ?? Infinity)
    else if (out && (SAME_SHAPE.has(c.opType) || BROADCASTING.has(c.opType))) bound = Math.min(bound, upperRank(out, depth + 1))
    else if (out && c.opType === 'MatMul') bound = Math.min(bound, Math.max(1, upperRank(out, depth + 1)))
  }
  return bound
}
