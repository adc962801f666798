/**
 * Type and shape inference over the IR, for the ops transformer graphs use. Passes need element
 * types (which values are float) and, where they can be had, shapes; exporters often leave both
 * out. Known facts are never overwritten; what cannot be derived stays unknown.
 */
import { DataType } from './dtype.js'
import type { Dim, Graph, Node, Value } from './graph.js'

const SAME_AS_INPUT0 = new Set([
  'Abs', 'Neg', 'Relu', 'Tanh', 'Sigmoid', 'Erf', 'Sqrt', 'Exp', 'Log', 'Softplus', 'HardSwish', 'HardSigmoid', 'LeakyRelu',
  'Identity', 'Softmax', 'LogSoftmax', 'Gelu', 'FastGelu', 'BiasGelu', 'QuickGelu', 'Clip', 'PRelu', 'Reciprocal', 'Floor',
  'Ceil', 'Round', 'Sin', 'Cos', 'Elu', 'Selu', 'Celu', 'Mish', 'Sign', 'LayerNormalization', 'SkipLayerNormalization',
  'SimplifiedLayerNormalization', 'SkipSimplifiedLayerNormalization', 'Dropout', 'BatchNormalization', 'InstanceNormalization',
  'Not', 'Trilu', 'CumSum',
])
const BROADCAST = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Mod', 'BitShift', 'Sum', 'Mean'])
const COMPARE = new Set(['IsNaN', 'IsInf', 'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor'])
const TYPE_ONLY_INPUT0 = new Set([
  'Expand', 'Tile', 'ReduceMean', 'ReduceSum', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL2', 'ReduceSumSquare',
  'Einsum', 'Pad', 'Resize', 'ScatterND', 'ScatterElements', 'GatherElements', 'GatherND', 'Split', 'Flatten', 'Compress',
  'ReverseSequence', 'Attention', 'MultiHeadAttention', 'EmbedLayerNormalization', 'FusedMatMul', 'SplitToSequence',
])
const INT64_OUT = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin'])

/**
 * Element types and shapes for every value where they follow from the inputs. Types inferred by an
 * earlier call are dropped first (a pass may have changed what they were derived from); declared
 * types are kept.
 */
export function inferTypes(graph: Graph): void {
  for (const v of graph.values.values()) if (v.type?.inferred) v.type = undefined
  for (const node of graph.nodes) {
    try {
      inferNode(node)
    } catch {
      // Inference is best effort: a malformed attribute leaves the outputs unknown.
    }
  }
}

function elem(v: Value | null | undefined): DataType | undefined {
  return v?.elemType
}

function shapeOf(v: Value | null | undefined): Dim[] | undefined {
  return v?.shape
}

function set(v: Value | null | undefined, elemType: DataType | undefined, shape?: Dim[]): void {
  if (!v || elemType === undefined || elemType === DataType.UNDEFINED) return
  const known = v.type?.tensor
  if (known && known.elemType !== DataType.UNDEFINED) {
    if (!known.shape && shape) known.shape = shape
    return
  }
  if (v.type?.encoded) return
  v.type = { tensor: shape ? { elemType, shape } : { elemType }, inferred: true }
}

function constInts(v: Value | null | undefined): number[] | undefined {
  const t = v?.const
  if (!t || (t.dtype !== DataType.INT64 && t.dtype !== DataType.INT32)) return undefined
  return t.toNumbers()
}

function inferNode(n: Node): void {
  const [a, b] = n.inputs
  const out = n.outputs[0]
  const op = n.opType
  if (SAME_AS_INPUT0.has(op)) {
    set(out, elem(a), shapeOf(a))
    for (const o of n.outputs.slice(1)) set(o, op === 'Dropout' ? DataType.BOOL : elem(a))
    return
  }
  if (BROADCAST.has(op)) return set(out, elem(a) ?? elem(b), broadcast(n.inputs.map(shapeOf)))
  if (COMPARE.has(op)) return set(out, DataType.BOOL, op.startsWith('Is') ? shapeOf(a) : broadcast(n.inputs.map(shapeOf)))
  if (op === 'Attention' && n.domain === 'com.microsoft') {
    // [B, S, K] in, [B, S, N] out, N a third of the packed bias (Q, K and V widths equal)
    const shape = shapeOf(a)
    const bias = n.inputs[2]?.const
    if (shape?.length === 3 && bias?.dims.length === 1 && bias.dims[0]! % 3 === 0) return set(out, elem(a), [shape[0]!, shape[1]!, bias.dims[0]! / 3])
  }
  if (TYPE_ONLY_INPUT0.has(op)) {
    for (const o of n.outputs) set(o, elem(a))
    return
  }
  if (INT64_OUT.has(op)) {
    if (op === 'Shape') {
      const rank = shapeOf(a)?.length
      if (rank !== undefined) {
        const norm = (x: number) => Math.max(0, Math.min(rank, x < 0 ? x + rank : x))
        return set(out, DataType.INT64, [norm(n.attrInt('end', rank)) - norm(n.attrInt('start', 0))])
      }
    }
    if (op === 'Size') return set(out, DataType.INT64, [])
    return set(out, DataType.INT64)
  }
  switch (op) {
    case 'Cast':
      return set(out, n.attrInt('to'), shapeOf(a))
    case 'CastLike':
      return set(out, elem(b), shapeOf(a))
    case 'Where':
      return set(out, elem(n.inputs[1]) ?? elem(n.inputs[2]), broadcast(n.inputs.map(shapeOf)))
    case 'MatMul':
      return set(out, elem(a), matmulShape(shapeOf(a), shapeOf(b)))
    case 'Gemm': {
      const sa = shapeOf(a)
      const sb = shapeOf(b)
      const m = sa ? (n.attrInt('transA', 0) ? sa[1] : sa[0]) : undefined
      const k = sb ? (n.attrInt('transB', 0) ? sb[0] : sb[1]) : undefined
      return set(out, elem(a), m !== undefined && k !== undefined ? [m, k] : undefined)
    }
    case 'Gather': {
      const sd = shapeOf(a)
      const si = shapeOf(b)
      if (sd && si) {
        const axis = normAxis(n.attrInt('axis', 0), sd.length)
        return set(out, elem(a), [...sd.slice(0, axis), ...si, ...sd.slice(axis + 1)])
      }
      return set(out, elem(a))
    }
    case 'Transpose': {
      const s = shapeOf(a)
      const perm = n.attrInts('perm') ?? (s ? s.map((_, i) => s.length - 1 - i) : undefined)
      return set(out, elem(a), s && perm ? perm.map((p) => s[p] ?? null) : undefined)
    }
    case 'Reshape':
      return set(out, elem(a), reshapeShape(shapeOf(a), constInts(b)))
    case 'Unsqueeze': {
      const s = shapeOf(a)
      const axes = constInts(b) ?? n.attrInts('axes')
      if (!s || !axes) return set(out, elem(a))
      const rank = s.length + axes.length
      const norm = new Set(axes.map((x) => normAxis(x, rank)))
      const res: Dim[] = []
      let k = 0
      for (let i = 0; i < rank; i++) res.push(norm.has(i) ? 1 : (s[k++] ?? null))
      return set(out, elem(a), res)
    }
    case 'Squeeze': {
      const s = shapeOf(a)
      const axes = constInts(b) ?? n.attrInts('axes')
      if (!s || !axes) return set(out, elem(a))
      const norm = new Set(axes.map((x) => normAxis(x, s.length)))
      return set(out, elem(a), s.filter((_, i) => !norm.has(i)))
    }
    case 'Concat': {
      const shapes = n.inputs.map(shapeOf)
      const t = n.inputs.map(elem).find((x) => x !== undefined)
      if (shapes.some((s) => !s) || shapes.length === 0) return set(out, t)
      const rank = shapes[0]!.length
      const axis = normAxis(n.attrInt('axis', 0), rank)
      const res = [...shapes[0]!]
      let total: Dim = 0
      for (const s of shapes) total = typeof total === 'number' && typeof s![axis] === 'number' ? total + (s![axis] as number) : null
      res[axis] = total
      return set(out, t, res)
    }
    case 'Slice':
      return set(out, elem(a), shapeOf(a)?.map(() => null))
    case 'ConstantOfShape': {
      const t = n.attr('value')?.t
      const dims = constInts(a)
      return set(out, t?.dtype ?? DataType.FLOAT, dims)
    }
    case 'Constant': {
      const t = n.attr('value')?.t
      if (t) return set(out, t.dtype, [...t.dims])
      if (n.attr('value_float')) return set(out, DataType.FLOAT, [])
      if (n.attr('value_int')) return set(out, DataType.INT64, [])
      if (n.attr('value_ints')) return set(out, DataType.INT64, [n.attr('value_ints')!.ints!.length])
      if (n.attr('value_floats')) return set(out, DataType.FLOAT, [n.attr('value_floats')!.floats!.length])
      return
    }
    case 'Range':
      return set(out, elem(a), [null])
    case 'DynamicQuantizeLinear':
      set(n.outputs[0], DataType.UINT8, shapeOf(a))
      set(n.outputs[1], DataType.FLOAT, [])
      set(n.outputs[2], DataType.UINT8, [])
      return
    case 'MatMulInteger':
      return set(out, DataType.INT32, matmulShape(shapeOf(a), shapeOf(b)))
    case 'QuantizeLinear':
      return set(out, elem(n.inputs[2]) ?? DataType.UINT8, shapeOf(a))
    case 'DequantizeLinear':
      return set(out, elem(b) ?? DataType.FLOAT, shapeOf(a))
    case 'DynamicQuantizeMatMul':
    case 'MatMulIntegerToFloat':
      return set(out, elem(n.inputs[2]) ?? DataType.FLOAT, matmulShape(shapeOf(a), shapeOf(b)))
    case 'MatMulNBits': {
      const s = shapeOf(a)
      const N = n.attrInt('N')
      return set(out, elem(a), s && N !== undefined ? [...s.slice(0, -1), N] : undefined)
    }
    case 'GatherBlockQuantized': {
      // the scales' float type; uint8 data holds 8 / bits values a byte along its last axis
      const sd = shapeOf(a)
      const si = shapeOf(b)
      if (!sd || !si) return set(out, elem(n.inputs[2]))
      const axis = normAxis(n.attrInt('gather_axis', 0), sd.length)
      const perByte = elem(a) === DataType.UINT8 ? 8 / n.attrInt('bits', 4) : 1
      const dims: Dim[] = [...sd.slice(0, axis), ...si, ...sd.slice(axis + 1)]
      const last = dims[dims.length - 1]
      if (typeof last === 'number') dims[dims.length - 1] = last * perByte
      return set(out, elem(n.inputs[2]), dims)
    }
    case 'TopK':
      set(n.outputs[0], elem(a))
      set(n.outputs[1], DataType.INT64)
      return
    case 'OneHot':
      return set(out, elem(n.inputs[2]))
  }
}

function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis
}

/** Numpy broadcasting of shapes; unknown where a dimension cannot be decided. */
export function broadcast(shapes: (Dim[] | undefined)[]): Dim[] | undefined {
  if (shapes.some((s) => !s)) return undefined
  const rank = Math.max(0, ...shapes.map((s) => s!.length))
  const res: Dim[] = []
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1
    for (const s of shapes) {
      const x = s![s!.length - rank + i]
      if (x === undefined || x === 1) continue
      if (d === 1) d = x
      else if (d !== x) d = typeof d === 'number' && typeof x === 'number' ? d : null
    }
    res.push(d)
  }
  return res
}

function matmulShape(a: Dim[] | undefined, b: Dim[] | undefined): Dim[] | undefined {
  if (!a || !b || a.length === 0 || b.length === 0) return undefined
  const aa = a.length === 1 ? [1, a[0]!] : a
  const bb = b.length === 1 ? [b[0]!, 1] : b
  const batch = broadcast([aa.slice(0, -2), bb.slice(0, -2)]) ?? []
  const res = [...batch, aa[aa.length - 2]!, bb[bb.length - 1]!]
  if (a.length === 1) res.splice(res.length - 2, 1)
  if (b.length === 1) res.pop()
  return res
}

function reshapeShape(input: Dim[] | undefined, target: number[] | undefined): Dim[] | undefined {
  if (!target) return undefined
  const res: Dim[] = target.map((d, i) => (d === 0 ? (input?.[i] ?? null) : d === -1 ? null : d))
  const minus = target.indexOf(-1)
  if (minus >= 0 && input && input.every((d) => typeof d === 'number')) {
    const total = (input as number[]).reduce((x, y) => x * y, 1)
    const known = res.reduce<number | null>((x, d, i) => (i === minus || x === null ? x : typeof d === 'number' ? x * d : null), 1)
    if (known) res[minus] = total / known
  }
  return res
}
