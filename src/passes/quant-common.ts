/**
 * What the quantization passes share: finding every use of a weight (linear layers, lookup
 * tables, through a layout Transpose), deciding one storage layout and one set of scales per
 * weight, symmetric int8 weights, and rewriting embedding lookups to gather int8 rows and
 * dequantize them. Not a pass: quantize-int8.ts holds the dynamic int8 rewrite, qdq-common.ts the
 * QDQ one, quantize-int4.ts the 4-bit one.
 */
import { DataType } from '../ir/dtype.js'
import { attrInt, attrInts, type Graph, type Node, type Value } from '../ir/graph.js'
import { Tensor, bytesOf } from '../ir/tensor.js'
import { float32ToHalfArray, halfArrayToFloat32 } from '../util/half.js'
import type { PassOptions } from './pass.js'

/**
 * How a node reads a weight W. `linear`: y = x·B with B = W ('KN') or B = Wᵀ ('NK'); `lookup`:
 * rows of W are gathered (Gather on axis 0) or sliced (Slice on axis 0).
 */
export type Use =
  | { kind: 'linear'; node: Node; orientation: 'KN' | 'NK'; via?: Node }
  | { kind: 'lookup'; node: Node; op: 'Gather' | 'Slice' }
  | { kind: 'attention'; node: Node }

export interface WeightPlan {
  weight: Value
  uses: Use[]
  /** Axis of the stored [rows, cols] tensor that has one scale per index (per channel). */
  channelAxis: 0 | 1
  /** Store transposed (rows↔cols) so linear readers get B = [K, N] directly. */
  storeTransposed: boolean
  /** One scale for the whole tensor (requested, or forced by readers that disagree on channels). */
  perTensor: boolean
}

function isFloatConst2d(v: Value | null | undefined): v is Value {
  return !!v?.const && v.const.dtype === DataType.FLOAT && v.const.dims.length === 2 && !v.isGraphInput
}

/** Is the node a plain y = A·B (+C) a quantized kernel can replace? */
function linearOrientation(node: Node, slot: number): 'KN' | 'NK' | undefined {
  if (node.domain !== '' || slot !== 1) return undefined
  if (node.opType === 'MatMul') return node.inputs[0]?.const ? undefined : 'KN'
  if (node.opType !== 'Gemm') return undefined
  if (node.attrInt('transA', 0) !== 0 || node.attrFloat('alpha', 1) !== 1) return undefined
  const c = node.inputs[2]
  if (c && node.attrFloat('beta', 1) !== 1) return undefined
  if (node.inputs[0]?.const) return undefined
  return node.attrInt('transB', 0) ? 'NK' : 'KN'
}

/**
 * A com.microsoft Attention whose packed Q/K/V weight (input 1) QAttention can take: default
 * scale, no past state, no attention bias.
 */
function isQuantizableAttention(node: Node, slot: number): boolean {
  if (node.opType !== 'Attention' || node.domain !== 'com.microsoft' || slot !== 1) return false
  if (node.inputs.length > 4 || node.attrInt('unidirectional', 0) !== 0 || node.attrInt('do_rotary', 0) !== 0) return false
  const heads = node.attrInt('num_heads')
  const w = node.inputs[1]?.const
  if (!heads || !w || w.dims.length !== 2 || w.dims[1]! % 3 !== 0) return false
  const headDim = w.dims[1]! / 3 / heads
  const scale = node.attrFloat('scale')
  return scale === undefined || Math.abs(scale - 1 / Math.sqrt(headDim)) <= 1e-6 * scale
}

function lookupOp(node: Node, slot: number): 'Gather' | 'Slice' | undefined {
  if (node.domain !== '' || slot !== 0) return undefined
  if (node.opType === 'Gather' && node.attrInt('axis', 0) === 0) return 'Gather'
  if (node.opType === 'Slice') {
    const axes = node.inputs[3]
    const steps = node.inputs[4]
    const axesOk = axes ? axes.const?.toNumbers().join() === '0' : node.inputs[1]?.const?.size === 1
    const stepsOk = !steps || steps.const?.toNumbers().every((s) => s === 1)
    if (axesOk && stepsOk) return 'Slice'
  }
  return undefined
}

function excluded(node: Node, opts: PassOptions): boolean {
  return !!(opts.keepNodes?.includes(node.name) || opts.keepOps?.includes(node.opType))
}

/** Every use of a weight, or undefined if some reader is not one a quantized kernel can serve. */
function usesOf(w: Value, opts: PassOptions): Use[] | undefined {
  const uses: Use[] = []
  const visit = (v: Value, via?: Node): boolean => {
    for (const node of new Set(v.consumers)) {
      if (excluded(node, opts)) return false
      const slots = node.inputs.flatMap((x, i) => (x === v ? [i] : []))
      if (slots.length !== 1) return false
      const slot = slots[0]!
      if (node.opType === 'Identity' && node.domain === '') {
        if (node.outputs[0]!.isGraphOutput || !visit(node.outputs[0]!, via)) return false
        continue
      }
      if (!via && node.opType === 'Transpose' && node.domain === '' && (node.attrInts('perm') ?? [1, 0]).join() === '1,0') {
        if (node.outputs[0]!.isGraphOutput || !visit(node.outputs[0]!, node)) return false
        continue
      }
      if (!via && isQuantizableAttention(node, slot)) {
        uses.push({ kind: 'attention', node })
        continue
      }
      const orientation = linearOrientation(node, slot)
      if (orientation) {
        const flipped = via ? (orientation === 'KN' ? 'NK' : 'KN') : orientation
        uses.push(via ? { kind: 'linear', node, orientation: flipped, via } : { kind: 'linear', node, orientation: flipped })
        continue
      }
      const op = via ? undefined : lookupOp(node, slot)
      if (op) {
        uses.push({ kind: 'lookup', node, op })
        continue
      }
      return false
    }
    return true
  }
  if (w.isGraphOutput || !visit(w)) return undefined
  return uses.length ? uses : undefined
}

/** Plan every quantizable weight of the graph (each weight once, whatever its number of readers). */
export function planWeights(graph: Graph, opts: PassOptions, accept: (uses: Use[]) => boolean = () => true): { plans: WeightPlan[]; skipped: number } {
  const plans: WeightPlan[] = []
  let skipped = 0
  for (const w of graph.initializers) {
    if (!isFloatConst2d(w) || w.consumers.length === 0) continue
    const uses = usesOf(w, opts)
    if (!uses || !accept(uses)) {
      if (w.consumers.some((n) => n.opType === 'MatMul' || n.opType === 'Gemm' || n.opType === 'Gather')) skipped++
      continue
    }
    const hasLookup = uses.some((u) => u.kind === 'lookup')
    const orientations = new Set(uses.flatMap((u) => (u.kind === 'linear' ? [u.orientation] : u.kind === 'attention' ? ['KN' as const] : [])))
    // Output channels: rows of an NK matrix or of a lookup table, columns of a KN matrix.
    const wantAxis = new Set<0 | 1>([...orientations].map((o) => (o === 'NK' ? 0 : 1)))
    if (hasLookup) wantAxis.add(0)
    const channelAxis: 0 | 1 = wantAxis.has(0) ? 0 : 1
    plans.push({
      weight: w,
      uses,
      channelAxis,
      storeTransposed: !hasLookup && orientations.size === 1 && orientations.has('NK'),
      perTensor: !!opts.perTensor || wantAxis.size > 1,
    })
  }
  return { plans, skipped }
}

/** Round half to even, as numpy and onnxruntime round. */
export function roundEven(x: number): number {
  const r = Math.round(x)
  // Math.round takes halves up; a tie rounds to the even neighbour instead.
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r
}

export interface Int8Weight {
  /** int8 data, [rows, cols] or transposed. */
  q: Tensor
  /** float32 scales: [channels] or a scalar. */
  scale: Tensor
}

/**
 * Symmetric int8 with one scale per channel (or per tensor): scale = max|w| / 127, q = round(w / scale).
 * The result is laid out transposed when asked, in one pass over the data.
 */
export function int8Weight(w: Tensor, channelAxis: 0 | 1, perTensor: boolean, transposed: boolean, halfScales = false): Int8Weight {
  const [R, C] = w.dims as [number, number]
  const src = w.toFloat32()
  const channels = channelAxis === 0 ? R : C
  // Per-element scale index: 0 (per tensor), the row, or the column.
  const rowStride = perTensor ? 0 : channelAxis === 0 ? 1 : 0
  const colStride = perTensor ? 0 : channelAxis === 1 ? 1 : 0
  const amax = new Float32Array(perTensor ? 1 : channels)
  for (let r = 0, i = 0; r < R; r++) {
    const kr = r * rowStride
    for (let c = 0; c < C; c++, i++) {
      const a = Math.abs(src[i]!)
      const k = kr + c * colStride
      if (a > amax[k]!) amax[k] = a
    }
  }
  const scales = new Float32Array(amax.length)
  for (let k = 0; k < amax.length; k++) scales[k] = amax[k]! > 0 ? amax[k]! / 127 : 1
  // Scales stored as float16 are rounded first, and the weights quantized with the rounded scale.
  const halves = halfScales ? float32ToHalfArray(scales) : undefined
  if (halves) halfArrayToFloat32(halves, scales)
  const out = new Int8Array(R * C)
  for (let r = 0, i = 0; r < R; r++) {
    const kr = r * rowStride
    for (let c = 0; c < C; c++, i++) {
      let q = roundEven(src[i]! / scales[kr + c * colStride]!)
      q = q > 127 ? 127 : q < -127 ? -127 : q
      out[transposed ? c * R + r : i] = q
    }
  }
  const dims = transposed ? [C, R] : [R, C]
  const scaleDims = perTensor ? [] : [channels]
  return {
    q: new Tensor(DataType.INT8, dims, bytesOf(out)),
    scale: halves ? new Tensor(DataType.FLOAT16, scaleDims, bytesOf(halves)) : Tensor.fromFloat32(scaleDims, scales),
  }
}

/** The values the quantized weight lives in, created once and shared by every rewritten reader. */
export interface StoredWeight {
  q: Value
  /** The stored scales (float32, or float16 for large lookup tables). */
  scale: Value
  /** [K, N] int8 for linear readers (the stored tensor, or a Transpose of it). */
  linearB(): Value
  /** The scales as float32 (a Cast of float16 scales, which onnxruntime folds at load). */
  floatScale(): Value
}

export function storeInt8(graph: Graph, plan: WeightPlan, qw: Int8Weight): StoredWeight {
  const base = plan.weight.name
  const q = graph.addInitializer(graph.uniqueName(`${base}.int8`), qw.q)
  const scale = graph.addInitializer(graph.uniqueName(`${base}.scale`), qw.scale)
  let b: Value | undefined
  let f: Value | undefined
  const needsTranspose = !plan.storeTransposed && plan.uses.some((u) => u.kind === 'linear' && u.orientation === 'NK')
  return {
    q,
    scale,
    linearB(): Value {
      if (!needsTranspose) return q
      if (!b) {
        const node = graph.addNode('Transpose', [q], [`${base}.int8_t`], {
          name: graph.uniqueNodeName(`${base}.int8_transpose`),
          attrs: [attrInts('perm', [1, 0])],
        })
        graph.moveLastBefore(graph.firstNode!)
        b = node.outputs[0]!
      }
      return b
    },
    floatScale(): Value {
      if (qw.scale.dtype === DataType.FLOAT) return scale
      if (!f) {
        const node = graph.addNode('Cast', [scale], [`${base}.scale_f32`], {
          name: graph.uniqueNodeName(`${base}.scale_cast`),
          attrs: [attrInt('to', DataType.FLOAT)],
        })
        graph.moveLastBefore(graph.firstNode!)
        f = node.outputs[0]!
      }
      return f
    },
  }
}

/**
 * Gather/Slice rows of the int8 table, then dequantize them: cast to float and multiply by the
 * gathered per-row scales (broadcast over the row).
 */
export function rewriteLookup(graph: Graph, use: Extract<Use, { kind: 'lookup' }>, stored: StoredWeight, perTensor: boolean): void {
  const node = use.node
  const name = node.name || `${stored.q.name}_lookup`
  const rest = node.inputs.slice(1)
  const rows = graph.addNode(node.opType, [stored.q, ...rest], [`${name}_int8`], {
    name: graph.uniqueNodeName(`${name}_int8`),
    attrs: node.attributes,
  })
  graph.moveLastBefore(node)
  const asFloat = graph.addNode('Cast', [rows.outputs[0]!], [`${name}_float`], {
    name: graph.uniqueNodeName(`${name}_cast`),
    attrs: [attrInt('to', DataType.FLOAT)],
  })
  graph.moveLastBefore(node)
  let scale: Value
  if (!perTensor) {
    const rowScales = graph.addNode(node.opType, [stored.scale, ...rest], [`${name}_scales`], {
      name: graph.uniqueNodeName(`${name}_scales`),
      attrs: node.attributes,
    })
    graph.moveLastBefore(node)
    const axes = graph.addInitializer(graph.uniqueName(`${name}_last_axis`), Tensor.fromInt64([1], [-1]))
    const unsq = graph.addNode('Unsqueeze', [rowScales.outputs[0]!, axes], [`${name}_scales_column`], {
      name: graph.uniqueNodeName(`${name}_scales_unsqueeze`),
    })
    graph.moveLastBefore(node)
    scale = unsq.outputs[0]!
    if (stored.scale.const!.dtype !== DataType.FLOAT) {
      const cast = graph.addNode('Cast', [scale], [`${name}_scales_f32`], {
        name: graph.uniqueNodeName(`${name}_scales_cast`),
        attrs: [attrInt('to', DataType.FLOAT)],
      })
      graph.moveLastBefore(node)
      scale = cast.outputs[0]!
    }
  } else scale = stored.floatScale()
  graph.replaceNode(node, 'Mul', [asFloat.outputs[0]!, scale], { name: graph.uniqueNodeName(`${name}_dequantize`) })
}

/** A 1-D float constant bias of length N added right after a MatMul, which a fused kernel can take. */
export function fusableBias(node: Node, N: number): { add: Node; bias: Value } | undefined {
  const out = node.outputs[0]
  if (!out || out.consumers.length !== 1 || out.isGraphOutput) return undefined
  const add = out.consumers[0]!
  if (add.opType !== 'Add' || add.domain !== '') return undefined
  const other = add.inputs[0] === out ? add.inputs[1] : add.inputs[0]
  const t = other?.const
  if (!t || t.dtype !== DataType.FLOAT || t.dims.length !== 1 || t.dims[0] !== N) return undefined
  return { add, bias: other! }
}
