/**
 * fp16: stores float32 weights as float16 and runs float32 compute in float16, keeping float32
 * where float16 breaks:
 * - LayerNormalization, Softmax and every op this pass does not know to be type-generic (com.microsoft
 *   normalizations included) stay float32, as do the op types and node names in `keepOps` /
 *   `keepNodes`;
 * - the attention-mask path stays float32: nodes fed by a float constant beyond ±65504 (a dtype-min
 *   or -inf mask fill) through element-wise and data-movement ops, up to the Add that joins the mask
 *   into the scores and the Softmax after it. In float16 the fill overflows and 0·-inf gives NaN;
 * - where float16 would only add Casts, nodes stay float32 too: data movement and comparisons whose
 *   data comes float32 (a Reshape after a LayerNormalization), and nodes whose readers all run
 *   float32 and whose inputs are float32 already (1 - mask on the int attention mask's Cast).
 * Constants (initializers and Constant nodes) read in float16 become FLOAT16, rounded to nearest
 * even, values beyond ±65504 clamped (counted), once per precision: a tensor read in both regions
 * is stored once as float32 and once as float16. Cast nodes go on every edge that crosses the
 * boundary, one per value and direction. Cast(to FLOAT) and ConstantOfShape in the float16 region
 * produce FLOAT16. Model inputs and outputs keep float32 (a Cast after / before them, names and
 * declared types unchanged) unless `keepIoTypes` is false, when float inputs and outputs become
 * FLOAT16. Initializers that are also graph inputs stay float32, since a caller may feed them.
 *
 * Safe where float16 holds the model's activations: transformer encoders whose normalizations and
 * softmax are kept float32, as here. Results move by float16 rounding (~1e-3 relative per tensor).
 */
import { DataType } from '../ir/dtype.js'
import { Node, attrInt, attrTensor, type Graph, type Model, type Value } from '../ir/graph.js'
import { inferTypes } from '../ir/infer.js'
import { Tensor, bytesOf } from '../ir/tensor.js'
import { HALF_MAX, toHalfBits } from '../util/half.js'
import type { Pass, PassContext, PassOptions, PassResult } from './pass.js'

type Precision = 'fp16' | 'fp32'

/** Standard ops that compute in whatever float type their inputs have: safe to run in float16. */
const FP16_OPS = new Set([
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Neg', 'Abs', 'Sqrt', 'Reciprocal', 'Exp', 'Log', 'Erf', 'Tanh', 'Sigmoid', 'Relu',
  'LeakyRelu', 'Elu', 'Selu', 'Celu', 'HardSigmoid', 'HardSwish', 'Softplus', 'Softsign', 'Mish', 'Gelu', 'PRelu', 'Clip',
  'Max', 'Min', 'Sign', 'Floor', 'Ceil', 'Round', 'Sin', 'Cos', 'Where', 'MatMul', 'Gemm', 'Einsum', 'Identity', 'Reshape',
  'Transpose', 'Unsqueeze', 'Squeeze', 'Flatten', 'Concat', 'Split', 'Slice', 'Gather', 'GatherElements', 'GatherND',
  'Expand', 'Tile', 'Pad', 'ReduceMax', 'ReduceMin', 'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'IsNaN',
  'IsInf', 'Dropout', 'Cast', 'CastLike', 'ConstantOfShape',
])

/**
 * Fused com.microsoft ops whose float16 kernels accumulate in float32 (onnxruntime's CUDA kernels;
 * on the CPU provider onnxruntime runs them through Casts to float32), and the 4-bit weight ops
 * (MatMulNBits: float16 activations, scales and bias; GatherBlockQuantized: float16 scales give
 * float16 rows), for q4f16 models.
 */
const FP16_CONTRIB_OPS = new Set(['Attention', 'MultiHeadAttention', 'SkipLayerNormalization', 'FastGelu', 'BiasGelu', 'Gelu', 'QuickGelu', 'MatMulNBits', 'GatherBlockQuantized'])

/** Ops a mask passes through on its way to the scores: element-wise and data movement. */
const MASK_OPS = new Set([
  'Add', 'Sub', 'Mul', 'Div', 'Neg', 'Where', 'Min', 'Max', 'Clip', 'Cast', 'Identity', 'Reshape', 'Unsqueeze', 'Squeeze',
  'Expand', 'Tile', 'Transpose', 'Concat', 'Slice', 'Gather', 'Flatten',
])

/** Ops exact in either float type (moving elements) or writing no float (comparisons). */
const FOLLOW_OPS = new Set([
  'Identity', 'Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Flatten', 'Gather', 'Slice', 'Expand', 'Tile', 'Concat', 'Split',
  'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'IsNaN', 'IsInf',
])

/** Constant-input size up to which a node may stay float32 without keeping a weight float32. */
const SMALL_CONSTANT = 64

export const fp16: Pass = {
  name: 'fp16',
  description: 'weights and compute in float16, float32 kept where float16 breaks',
  inPlace: true,
  run(model: Model, { options, warn }: PassContext): PassResult {
    const g = model.graph
    g.toposort()
    inferTypes(g)
    const ctx = newContext(g, options.keepIoTypes === false ? 'fp16' : 'fp32')
    planNodes(ctx, options)
    preferFp32WhereFree(ctx)
    const bytesBefore = constantBytes(g)
    convertConstants(ctx)
    retypeNodes(ctx)
    retypeGraphInputs(ctx)
    retypeGraphOutputs(ctx)
    insertBoundaryCasts(ctx)
    const s = ctx.stats
    const warnings = ctx.warnings
    for (const w of warnings) warn(w)
    const fp16Nodes = [...ctx.plan.values()].filter((p) => p === 'fp16').length
    return {
      model,
      changed: s.tensorsConverted + s.castsInserted + fp16Nodes > 0,
      stats: {
        tensorsConverted: s.tensorsConverted,
        bytesSaved: bytesBefore - constantBytes(g),
        clamped: s.clamped,
        underflowed: s.underflowed,
        castsInserted: s.castsInserted,
        nodesFp16: fp16Nodes,
        nodesKeptFp32: ctx.plan.size - fp16Nodes,
      },
      warnings,
    }
  },
}

interface Context {
  g: Graph
  io: Precision
  /** Values that were float32 before the pass (after type inference). */
  floats: Set<Value>
  /** The precision of every node that computes on float32 values; absent nodes are untouched. */
  plan: Map<Node, Precision>
  /** Cast outputs by source value and target precision, shared by all readers. */
  casts: Map<Value, Map<Precision, Value>>
  stats: { tensorsConverted: number; clamped: number; underflowed: number; castsInserted: number }
  warnings: string[]
}

function newContext(g: Graph, io: Precision): Context {
  const floats = new Set([...g.values.values()].filter((v) => v.elemType === DataType.FLOAT))
  const stats = { tensorsConverted: 0, clamped: 0, underflowed: 0, castsInserted: 0 }
  return { g, io, floats, plan: new Map(), casts: new Map(), stats, warnings: [] }
}

// ---------------------------------------------------------------------------------------------
// Reading the graph

const isStd = (n: Node) => n.domain === '' || n.domain === 'ai.onnx'
const isConstantNode = (n: Node) => isStd(n) && n.opType === 'Constant'
const isSoftmax = (n: Node) => isStd(n) && (n.opType === 'Softmax' || n.opType === 'LogSoftmax')

/** The float32 tensor a value holds when it is a constant (initializer or Constant node output). */
function constantOf(v: Value): Tensor | undefined {
  if (v.const) return v.const.dtype === DataType.FLOAT && !v.isGraphInput ? v.const : undefined
  const p = v.producer
  if (!p || !isConstantNode(p)) return undefined
  const a = p.attr('value_float') ?? p.attr('value_floats') ?? p.attr('value')
  if (a?.t) return a.t.dtype === DataType.FLOAT ? a.t : undefined
  if (a?.f !== undefined) return Tensor.scalarFloat(a.f)
  if (a?.floats) return Tensor.fromFloat32([a.floats.length], Float32Array.from(a.floats))
  return undefined
}

/** Input slots whose element type does not matter to the node (Shape reads only dims). */
function readsAnyType(n: Node, slot: number): boolean {
  if (!isStd(n)) return false
  return n.opType === 'Shape' || n.opType === 'Size' || ((n.opType === 'Cast' || n.opType === 'CastLike') && slot === 0)
}

/** Each (node, slot) reading `v`, nodes of subgraphs included. */
function readers(v: Value): { node: Node; slot: number }[] {
  const out: { node: Node; slot: number }[] = []
  for (const node of new Set(v.consumers)) node.inputs.forEach((x, slot) => x === v && out.push({ node, slot }))
  return out
}

/** The precision a reader wants for a float32 value; undefined: any. */
function wantOf(ctx: Context, node: Node, slot: number): Precision | undefined {
  return readsAnyType(node, slot) ? undefined : (ctx.plan.get(node) ?? 'fp32')
}

/** Float inputs whose type the node's computation depends on. */
function floatInputs(ctx: Context, n: Node): Value[] {
  return n.inputs.filter((v, k): v is Value => !!v && ctx.floats.has(v) && !readsAnyType(n, k))
}

function floatOutputs(ctx: Context, n: Node): Value[] {
  return n.outputs.filter((v): v is Value => !!v && ctx.floats.has(v))
}

// ---------------------------------------------------------------------------------------------
// Deciding precisions

function planNodes(ctx: Context, options: PassOptions): void {
  const keepOps = new Set(options.keepOps ?? [])
  const keepNodes = new Set(options.keepNodes ?? [])
  const mask = maskPath(ctx)
  let untyped = 0
  for (const n of ctx.g.nodes) {
    if (isConstantNode(n) || (floatInputs(ctx, n).length === 0 && floatOutputs(ctx, n).length === 0)) continue
    const unknown = [...n.inputs, ...n.outputs].some((v) => v && v.elemType === undefined)
    if (unknown) untyped++
    const keep = unknown || !fp16Capable(n) || keepOps.has(n.opType) || keepNodes.has(n.name) || mask.has(n)
    ctx.plan.set(n, keep ? 'fp32' : 'fp16')
  }
  if (untyped) ctx.warnings.push(`${untyped} nodes read or write values of unknown type; they stay float32`)
}

function fp16Capable(n: Node): boolean {
  if (n.domain === 'com.microsoft') return FP16_CONTRIB_OPS.has(n.opType)
  if (!isStd(n) || !FP16_OPS.has(n.opType)) return false
  if (n.opType === 'Cast') return n.attrInt('to') === DataType.FLOAT
  if (n.opType === 'ConstantOfShape') return (n.attr('value')?.t?.dtype ?? DataType.FLOAT) === DataType.FLOAT
  return true
}

/** Whether a float constant holds a value beyond float16 range (a mask fill such as -3.4e38 or -inf). */
function beyondHalf(t: Tensor | undefined): boolean {
  if (!t) return false
  const a = t.toFloat32()
  for (let i = 0; i < a.length; i++) if (Math.abs(a[i]!) > HALF_MAX) return true
  return false
}

/**
 * Nodes on the attention-mask path: reached from a constant beyond float16 range through mask ops
 * (element-wise, data movement) and leading, through mask ops, to a Softmax (included).
 */
function maskPath(ctx: Context): Set<Node> {
  const { g } = ctx
  const leads = new Set<Node>()
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i]!
    const viaMaskOp = isStd(n) && MASK_OPS.has(n.opType) && n.outputs.some((o) => o?.consumers.some((c) => leads.has(c)))
    if (isSoftmax(n) || viaMaskOp) leads.add(n)
  }
  const tainted = new Set([...ctx.floats].filter((v) => beyondHalf(constantOf(v))))
  const path = new Set<Node>()
  for (const n of g.nodes) {
    if (!leads.has(n) || !n.inputs.some((v) => v && tainted.has(v))) continue
    path.add(n)
    if (!isSoftmax(n)) for (const o of n.outputs) if (o) tainted.add(o)
  }
  return path
}

/**
 * Float16 nodes that gain nothing from float16 run float32, until nothing changes:
 * - a data-movement op or a comparison whose data comes float32 (a Reshape after a
 *   LayerNormalization, IsNaN after a Softmax): float16 gains nothing there, so the Cast moves
 *   after it, and float32 readers need none;
 * - a node whose readers all run float32 and whose float inputs are float32 already or come from
 *   nodes without float inputs (1 - mask, on the Cast of the int attention mask): in float16 it
 *   would only add a Cast.
 * Neither reads a constant of more than SMALL_CONSTANT elements: weights stay float16.
 */
function preferFp32WhereFree(ctx: Context): void {
  for (let changed = true; changed; ) {
    changed = false
    for (const n of [...ctx.g.nodes].reverse()) {
      if (ctx.plan.get(n) === 'fp16' && freeInFp32(ctx, n)) {
        ctx.plan.set(n, 'fp32')
        changed = true
      }
    }
  }
}

function freeInFp32(ctx: Context, n: Node): boolean {
  const inputs = floatInputs(ctx, n)
  if (inputs.some((v) => (constantOf(v)?.size ?? 0) > SMALL_CONSTANT)) return false
  const data = inputs.filter((v) => !constantOf(v))
  const fp32 = (v: Value) => currentPrecision(ctx, v) === 'fp32'
  if (FOLLOW_OPS.has(n.opType) && data.length > 0 && data.every(fp32)) return true
  const leaf = (v: Value) => !!v.producer && floatInputs(ctx, v.producer).every((x) => constantOf(x))
  return readersWantOnlyFp32(ctx, n) && data.every((v) => fp32(v) || leaf(v))
}

function readersWantOnlyFp32(ctx: Context, n: Node): boolean {
  const wants = floatOutputs(ctx, n).flatMap((o) => [
    ...readers(o).map((r) => wantOf(ctx, r.node, r.slot)),
    ...(ctx.g.isOutput(o) ? [ctx.io] : []),
  ])
  return wants.includes('fp32') && !wants.includes('fp16')
}

/** The precision a non-constant float value has under the plan. */
function currentPrecision(ctx: Context, v: Value): Precision {
  if (v.producer) return ctx.plan.get(v.producer) ?? 'fp32'
  return v.isGraphInput && !v.const ? ctx.io : 'fp32'
}

// ---------------------------------------------------------------------------------------------
// Rewriting

/** Constants read in float16 become FLOAT16: in place, or as a float16 twin when float32 readers remain. */
function convertConstants(ctx: Context): void {
  for (const v of ctx.floats) {
    const t = constantOf(v)
    if (!t) continue
    const rs = readers(v).map((r) => ({ ...r, want: wantOf(ctx, r.node, r.slot) }))
    const halfReaders = rs.filter((r) => r.want === 'fp16')
    if (halfReaders.length === 0) continue
    const half = toHalfTensor(ctx, t)
    const fp32Needed = rs.some((r) => r.want === 'fp32') || ctx.g.isOutput(v)
    if (!fp32Needed) {
      setConstant(v, half)
      continue
    }
    const twin = addConstantLike(ctx.g, v, half)
    for (const r of halfReaders) r.node.setInput(r.slot, twin)
  }
}

function setConstant(v: Value, t: Tensor): void {
  if (v.const) v.const = t
  else {
    const node = v.producer!
    for (const name of ['value_float', 'value_floats', 'value']) node.removeAttr(name)
    node.setAttr(attrTensor('value', t))
  }
  setElemType(v, t.dtype)
}

/** A new constant of the same kind as `v` (initializer or Constant node) holding `t`. */
function addConstantLike(g: Graph, v: Value, t: Tensor): Value {
  const name = g.uniqueName(`${v.name}_fp16`)
  if (v.const) return g.addInitializer(name, t)
  const node = g.addNode('Constant', [], [name], { name: g.uniqueNodeName(name), attrs: [attrTensor('value', t)] })
  moveAfter(g, node, v.producer)
  const out = node.outputs[0]!
  out.type = { tensor: { elemType: t.dtype, shape: [...t.dims] }, inferred: true }
  return out
}

/** float32 → float16, round to nearest even; finite values beyond ±65504 clamped to it, counted. */
function toHalfTensor(ctx: Context, t: Tensor): Tensor {
  const src = t.toFloat32()
  const out = new Uint16Array(src.length)
  for (let i = 0; i < src.length; i++) {
    let x = src[i]!
    if (Number.isFinite(x) && Math.abs(x) > HALF_MAX) {
      x = Math.sign(x) * HALF_MAX
      ctx.stats.clamped++
    }
    const h = toHalfBits(x)
    if ((h & 0x7fff) === 0 && x !== 0) ctx.stats.underflowed++
    out[i] = h
  }
  ctx.stats.tensorsConverted++
  const half = new Tensor(DataType.FLOAT16, t.dims, bytesOf(out))
  half.meta = t.meta
  return half
}

/** Float16 nodes write FLOAT16: their float outputs' types, Cast's `to`, ConstantOfShape's value. */
function retypeNodes(ctx: Context): void {
  for (const [n, p] of ctx.plan) {
    if (p !== 'fp16') continue
    if (n.opType === 'Cast') n.setAttr(attrInt('to', DataType.FLOAT16))
    if (n.opType === 'ConstantOfShape') {
      const value = n.attr('value')?.t ?? Tensor.fromFloat32([1], new Float32Array(1))
      n.setAttr(attrTensor('value', toHalfTensor(ctx, value)))
    }
    for (const o of floatOutputs(ctx, n)) setElemType(o, DataType.FLOAT16)
  }
}

function retypeGraphInputs(ctx: Context): void {
  if (ctx.io !== 'fp16') return
  for (const v of ctx.g.inputs) if (ctx.floats.has(v) && !v.const) setElemType(v, DataType.FLOAT16)
}

/**
 * A float output computed in the other precision than the model's interface gets a Cast that
 * writes the output's own name; the producer writes a new value, which its readers now read.
 */
function retypeGraphOutputs(ctx: Context): void {
  const target = ctx.io === 'fp16' ? DataType.FLOAT16 : DataType.FLOAT
  for (const out of ctx.g.outputs) {
    if (!ctx.floats.has(out) || !out.producer || ctx.plan.get(out.producer) === undefined) continue
    if (out.elemType === target) continue
    const computed: Precision = out.elemType === DataType.FLOAT16 ? 'fp16' : 'fp32'
    const inner = ctx.g.newValue(`${out.name}_${computed}`)
    inner.type = { tensor: tensorType(out, computed), inferred: true }
    const producer = out.producer
    producer.outputs[producer.outputs.indexOf(out)] = inner
    inner.producer = producer
    for (const r of readers(out)) r.node.setInput(r.slot, inner)
    ctx.floats.add(inner)
    setElemType(out, target)
    const cast = castNode(ctx, inner, out, ctx.io)
    moveAfter(ctx.g, cast, producer)
  }
}

/** Every float value read in the other precision gets one Cast per direction, shared by its readers. */
function insertBoundaryCasts(ctx: Context): void {
  for (const v of [...ctx.floats]) {
    if (constantOf(v) || v.elemType === undefined) continue
    const have: Precision = v.elemType === DataType.FLOAT16 ? 'fp16' : 'fp32'
    for (const r of readers(v)) {
      const want = wantOf(ctx, r.node, r.slot)
      if (want && want !== have) r.node.setInput(r.slot, castOf(ctx, v, want))
    }
  }
}

function castOf(ctx: Context, v: Value, to: Precision): Value {
  const known = ctx.casts.get(v)?.get(to)
  if (known) return known
  const out = ctx.g.newValue(`${v.name}_${to}`)
  out.type = { tensor: tensorType(v, to), inferred: true }
  moveAfter(ctx.g, castNode(ctx, v, out, to), v.producer)
  return out
}

function tensorType(v: Value, p: Precision) {
  const elemType = p === 'fp16' ? DataType.FLOAT16 : DataType.FLOAT
  return v.shape ? { elemType, shape: [...v.shape] } : { elemType }
}

/** A Cast node from `input` into the existing value `output`. */
function castNode(ctx: Context, input: Value, output: Value, to: Precision): Node {
  const node = new Node(ctx.g, 'Cast', '', ctx.g.uniqueNodeName(`${input.name}/Cast_${to}`))
  node.attributes = [attrInt('to', to === 'fp16' ? DataType.FLOAT16 : DataType.FLOAT)]
  node.setInput(0, input)
  node.outputs.push(output)
  output.producer = node
  ctx.g.appendNode(node)
  if (!ctx.casts.has(input)) ctx.casts.set(input, new Map())
  ctx.casts.get(input)!.set(to, output)
  ctx.stats.castsInserted++
  return node
}

/** Place `node` (already appended) right after `after`, or first when there is none. */
function moveAfter(g: Graph, node: Node, after: Node | null | undefined): void {
  const next = after && g.contains(after) ? g.nodeAfter(after) : g.firstNode
  if (next !== node) g.insertNode(node, next)
}

function setElemType(v: Value, elemType: DataType): void {
  const t = v.type?.tensor
  if (t) v.type = { ...v.type, tensor: { ...t, elemType } }
}

/** Bytes of all constants: initializers and Constant-node tensors. */
function constantBytes(g: Graph): number {
  let n = 0
  for (const v of g.values.values()) {
    const t = v.const ?? (v.producer && isConstantNode(v.producer) ? v.producer.attr('value')?.t : undefined)
    if (t) n += t.dtype === DataType.STRING ? 0 : t.byteLength
  }
  return n
}
