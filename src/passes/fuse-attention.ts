/**
 * fuse-attention: the self-attention block — three projections of one input, reshape and
 * transpose into heads, Q·Kᵀ scaled, plus the additive padding mask, Softmax, ·V, heads merged
 * back — becomes one com.microsoft Attention node with Q, K and V packed into one [in, 3·out]
 * weight. ALBERT's layers share that weight: it is packed once and read by every layer call.
 * The padding mask is given to Attention as the raw int32 mask (0 = padded key), which is what
 * the additive mask was computed from. Matches albertkit's graphs (Gemm, 2-D hidden state) and
 * torch exports (MatMul + Add, 3-D). Safe: the op computes the same function; skipped when any
 * piece of the pattern is missing or read elsewhere.
 */
import { DataType } from '../ir/dtype.js'
import { attrFloat, attrInt, type Graph, type Model, type Node, type Value } from '../ir/graph.js'
import { Tensor } from '../ir/tensor.js'
import { GraphBuilder } from '../ir/builder.js'
import { inferTypes } from '../ir/infer.js'
import type { Pass, PassResult } from './pass.js'
import { cleanup } from '../ir/cleanup.js'
import { linearOf, outWidth, weightAs, type Linear } from './linear.js'

export const fuseAttention: Pass = {
  name: 'fuse-attention',
  description: 'self-attention blocks → com.microsoft Attention with packed QKV weights',
  inPlace: true,
  run(model: Model): PassResult {
    const g = model.graph
    g.toposort()
    inferTypes(g)
    const ctx: Context = { consts: new GraphBuilder(g), packed: new Map(), masks: new Map(), shapes: new Map() }
    let fused = 0
    for (const sm of [...g.nodes]) {
      if (sm.opType !== 'Softmax' || sm.domain !== '' || !g.contains(sm)) continue
      const block = matchBlock(sm)
      if (block && rewrite(g, block, ctx)) fused++
    }
    if (fused) {
      model.requireOpset('com.microsoft', 1)
      cleanup(g)
    }
    return { model, changed: fused > 0, stats: { blocksFused: fused, packedWeights: ctx.packed.size } }
  },
}

interface Block {
  q: Linear
  k: Linear
  v: Linear
  heads: number
  headDim: number
  scale: number
  mask: Value
  /** shape [B, S, heads, headDim] of the Q reshape (to recover [B, S]) */
  headsShape: Value
  /** the value the merged heads end in */
  output: Value
}

const perm = (n: Node | null | undefined, p: number[]) => n?.opType === 'Transpose' && n.domain === '' && (n.attrInts('perm') ?? []).join() === p.join()

/** Through Transpose(0,2,1,3) ← Reshape(lin, shape): the head split of a projection. */
function headsOf(v: Value | null | undefined, permutation: number[]): { lin: Linear; shape: Value } | undefined {
  const t = v?.producer
  if (!perm(t, permutation)) return undefined
  const r = t!.inputs[0]?.producer
  if (r?.opType !== 'Reshape' || !r.inputs[0] || !r.inputs[1]) return undefined
  const lin = linearOf(r.inputs[0])
  return lin ? { lin, shape: r.inputs[1] } : undefined
}

/** A value times a scalar constant (either order), or the value itself with scale 1. */
function scaled(v: Value | null | undefined): { x: Value; scale: number } | undefined {
  const n = v?.producer
  if (n && n.domain === '' && (n.opType === 'Mul' || n.opType === 'Div')) {
    for (const [a, b] of [[n.inputs[0], n.inputs[1]], [n.inputs[1], n.inputs[0]]] as const) {
      const c = b?.const?.size === 1 ? b.const.toNumbers()[0] : undefined
      if (c === undefined || !a || a.const) continue
      if (n.opType === 'Div' && a !== n.inputs[0]) continue
      return { x: a, scale: n.opType === 'Mul' ? c : 1 / c }
    }
  }
  return v ? { x: v, scale: 1 } : undefined
}

/**
 * Q·Kᵀ with its scale: Mul(MatMul, c), Div(MatMul, c), a bare MatMul, or — as torch exports
 * scaled_dot_product_attention — MatMul(Mul(Q, √c), Mul(Kᵀ, √c)).
 */
function scoresOf(v: Value): { mm: Node; scale: number; q: Value; k: Value } | undefined {
  const outer = scaled(v)
  const mm = outer?.x.producer
  if (!outer || mm?.opType !== 'MatMul' || mm.domain !== '') return undefined
  const q = scaled(mm.inputs[0])
  const k = scaled(mm.inputs[1])
  if (!q || !k) return undefined
  return { mm, scale: outer.scale * q.scale * k.scale, q: q.x, k: k.x }
}

/**
 * The raw 2-D mask a mask bias was computed from. When the bias depends (other than through
 * shapes) on one graph input only, a [batch, keys] one, that input is the mask (torch exports
 * build a boolean mask from it in many steps). Otherwise the first integer or boolean value on
 * the way back: the Cast input in albertkit's graphs, the flattened mask of multiple choice.
 */
function rawMask(v: Value): Value | undefined {
  const integral = (x: Value) => x.elemType === DataType.INT64 || x.elemType === DataType.INT32 || x.elemType === DataType.BOOL
  const leaves = new Set<Value>()
  let firstIntegral: Value | undefined
  const seen = new Set<Value>()
  const queue: Value[] = [v]
  while (queue.length && seen.size < 256) {
    const x = queue.shift()!
    if (seen.has(x) || x.const) continue
    seen.add(x)
    if (!firstIntegral && integral(x) && (x.shape === undefined || x.shape.length === 2)) firstIntegral = x
    const p = x.producer
    if (!p) {
      if (x.isGraphInput) leaves.add(x)
      continue
    }
    if (p.opType === 'Shape' || p.opType === 'Size') continue
    for (const i of p.inputs) if (i) queue.push(i)
  }
  const [only] = leaves
  if (leaves.size === 1 && only!.shape?.length === 2 && integral(only!)) return only
  return firstIntegral
}

/**
 * Softmax output, or Where(IsNaN(p), 0, p) after it (torch's guard for fully masked rows, which
 * Attention handles itself): the value the ·V product reads.
 */
function zeroedNaN(p: Value): Value {
  if (p.consumers.length !== 2) return p
  const isnan = p.consumers.find((n) => n.opType === 'IsNaN')
  const where = p.consumers.find((n) => n.opType === 'Where')
  if (!isnan || !where || where.inputs[0] !== isnan.outputs[0] || where.inputs[2] !== p) return p
  const zero = where.inputs[1]?.const
  if (!zero || zero.size !== 1 || zero.toNumbers()[0] !== 0) return p
  return where.outputs[0]!
}

/** Trailing constant ints of a shape value (a constant, or a Concat ending in constants). */
function trailingConstants(shape: Value): number[] {
  if (shape.const) return shape.const.toNumbers()
  const p = shape.producer
  if (p?.opType !== 'Concat') return []
  const out: number[] = []
  for (let i = p.inputs.length - 1; i >= 0; i--) {
    const t = p.inputs[i]?.const
    if (!t) break
    out.unshift(...t.toNumbers())
  }
  return out
}

function matchBlock(sm: Node): Block | undefined {
  const axis = sm.attrInt('axis', -1)
  if (axis !== -1 && axis !== 3) return undefined
  const add = sm.inputs[0]?.producer
  if (add?.opType !== 'Add' || add.domain !== '') return undefined
  let scores: ReturnType<typeof scoresOf>
  let maskBias: Value | undefined
  for (const [a, b] of [[add.inputs[0], add.inputs[1]], [add.inputs[1], add.inputs[0]]] as const) {
    const s = a ? scoresOf(a) : undefined
    if (s && b) {
      scores = s
      maskBias = b
      break
    }
  }
  if (!scores || !maskBias) return undefined
  const mask = rawMask(maskBias)
  if (!mask) return undefined
  const q = headsOf(scores.q, [0, 2, 1, 3])
  let k = headsOf(scores.k, [0, 2, 3, 1])
  if (!k) {
    const t = scores.k.producer
    if (perm(t, [0, 1, 3, 2])) k = headsOf(t!.inputs[0], [0, 2, 1, 3])
  }
  const probs = zeroedNaN(sm.outputs[0]!)
  if (probs.consumers.length !== 1) return undefined
  const pv = probs.consumers[0]!
  if (pv.opType !== 'MatMul' || pv.inputs[0] !== probs) return undefined
  const v = headsOf(pv.inputs[1], [0, 2, 1, 3])
  if (!q || !k || !v) return undefined
  if (q.lin.x !== k.lin.x || q.lin.x !== v.lin.x) return undefined
  const merged = pv.outputs[0]!.consumers
  if (merged.length !== 1 || !perm(merged[0], [0, 2, 1, 3])) return undefined
  const reshape = merged[0]!.outputs[0]!.consumers
  if (reshape.length !== 1 || reshape[0]!.opType !== 'Reshape') return undefined
  const width = outWidth(q.lin)
  if (outWidth(k.lin) !== width || outWidth(v.lin) !== width) return undefined
  const tail = trailingConstants(q.shape)
  let heads = tail.length >= 2 ? tail[tail.length - 2]! : 0
  let headDim = tail.length >= 2 ? tail[tail.length - 1]! : 0
  if (heads <= 0 || headDim <= 0 || heads * headDim !== width) {
    headDim = headDim > 0 && width % headDim === 0 ? headDim : 0
    heads = headDim ? width / headDim : 0
  }
  if (!heads || !headDim) return undefined
  return { q: q.lin, k: k.lin, v: v.lin, heads, headDim, scale: scores.scale, mask, headsShape: q.shape, output: reshape[0]!.outputs[0]! }
}

interface Context {
  /** int64 constants, one per content */
  consts: GraphBuilder
  packed: Map<string, { weight: Value; bias: Value }>
  masks: Map<Value, Value>
  shapes: Map<Value, Value>
}

function pack(g: Graph, b: Block, ctx: Context): { weight: Value; bias: Value } {
  const key = [b.q.weight, b.k.weight, b.v.weight, b.q.bias, b.k.bias, b.v.bias].map((v) => v?.name ?? '-').join('|')
  let p = ctx.packed.get(key)
  if (p) return p
  const parts = [b.q, b.k, b.v].map((l) => weightAs(l.weight, l.orientation, 'KN'))
  const K = parts[0]!.rows
  const N = parts[0]!.cols
  const w = new Float32Array(K * 3 * N)
  for (let r = 0; r < K; r++) parts.forEach((part, i) => w.set(part.data.subarray(r * N, (r + 1) * N), r * 3 * N + i * N))
  const bias = new Float32Array(3 * N)
  ;[b.q, b.k, b.v].forEach((l, i) => {
    if (l.bias) bias.set(l.bias.const!.toFloat32(), i * N)
  })
  const base = b.q.weight.name.replace(/query\.weight$/, 'qkv')
  p = {
    weight: g.addInitializer(g.uniqueName(`${base === b.q.weight.name ? `${base}.qkv` : base}.weight`), Tensor.fromFloat32([K, 3 * N], w)),
    bias: g.addInitializer(g.uniqueName(`${base === b.q.weight.name ? `${base}.qkv` : base}.bias`), Tensor.fromFloat32([3 * N], bias)),
  }
  ctx.packed.set(key, p)
  return p
}


function rewrite(g: Graph, b: Block, ctx: Context): boolean {
  const first = b.q.nodes[0]!
  const packed = pack(g, b, ctx)
  let mask = ctx.masks.get(b.mask)
  if (!mask) {
    mask = g.addNodeBefore(g.firstNode!, 'Cast', [b.mask], `${b.mask.name}_int32`, { attrs: [attrInt('to', DataType.INT32)] }).outputs[0]!
    ctx.masks.set(b.mask, mask)
  }
  // Attention takes [B, S, hidden]: a 2-D hidden state is viewed as 3-D through the [B, S] of the
  // head reshape (one shape computation for the whole model, shared by every layer).
  let input = b.q.x
  const rank = input.shape?.length ?? shapeRank(b.output.producer?.inputs[1])
  if (rank !== 3) {
    let shape3 = ctx.shapes.get(b.headsShape)
    if (!shape3) {
      const where = b.headsShape.producer ? nextAfter(g, b.headsShape.producer) : g.firstNode!
      const bs = g.addNodeBefore(where, 'Slice', [b.headsShape, ctx.consts.ints([0]), ctx.consts.ints([2])], `${b.headsShape.name}_batch_seq`).outputs[0]!
      shape3 = g.addNodeBefore(where, 'Concat', [bs, ctx.consts.ints([b.heads * b.headDim])], `${b.headsShape.name}_hidden`, { attrs: [attrInt('axis', 0)] }).outputs[0]!
      ctx.shapes.set(b.headsShape, shape3)
    }
    input = g.addNodeBefore(first, 'Reshape', [input, shape3], `${first.name || 'attention'}_input_3d`).outputs[0]!
  }
  const attrs = [attrInt('num_heads', b.heads), attrFloat('scale', b.scale)]
  const name = first.name ? first.name.replace(/\/[^/]*$/, '') + '/Attention' : 'Attention'
  let out = g.addNodeBefore(first, 'Attention', [input, packed.weight, packed.bias, mask], name, { attrs, domain: 'com.microsoft' }).outputs[0]!
  const outRank = shapeRank(b.output.producer?.inputs[1])
  if (outRank !== 3) out = g.addNodeBefore(first, 'Reshape', [out, ctx.consts.ints([-1, b.heads * b.headDim])], `${name}_2d`).outputs[0]!
  g.replaceAllUses(b.output, out)
  return true
}

/** The number of dimensions a Reshape target describes: a constant's length or a Concat of scalars. */
function shapeRank(shape: Value | null | undefined): number | undefined {
  if (!shape) return undefined
  if (shape.const) return shape.const.size
  const p = shape.producer
  if (p?.opType !== 'Concat') return undefined
  let n = 0
  for (const i of p.inputs) {
    const size = i?.const?.size ?? (i?.producer?.opType === 'Unsqueeze' ? 1 : undefined)
    if (size === undefined) return undefined
    n += size
  }
  return n
}

function nextAfter(g: Graph, n: Node): Node {
  return (g.contains(n) ? g.nodeAfter(n) : g.firstNode) ?? n
}

