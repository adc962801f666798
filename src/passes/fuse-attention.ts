/**
 * fuse-attention: the self-attention block — three projections of one input, reshape and
 * transpose into heads, Q·Kᵀ scaled, plus the additive padding mask, Softmax, ·V, heads merged
 * back — becomes one com.microsoft Attention node with Q, K and V packed into one [in, 3·out]
 * weight. ALBERT's layers share that weight: it is packed once and read by every layer call.
 * The padding mask is given to Attention as the raw int32 mask (0 = padded key), which is what
 * the additive mask was computed from. Safe: the op computes the same function; skipped when any
 * piece of the pattern is missing or read elsewhere.
 *
 * Candidates are the ai.onnx Softmax nodes and the ai.onnx Attention nodes (opset 23): each is
 * one attention block or none. A candidate matches when, with Q4/K4/V4 = Transpose(Reshape(
 * linear(x), [B, S, heads, d] or [B, S, -1, d]), perm 0,2,1,3) of three linear layers of one
 * input x (linear: Gemm, or MatMul + Add of a bias vector, either order):
 *
 * - Softmax form: Softmax(axis -1, or 3 on 4-D) of Add(scores, maskBias) (either order), where
 *   scores is Q·Kᵀ with its scale in any of these places —
 *     Mul|Div(MatMul(Q4, Kᵀ), c)                       (eager attention, any exporter)
 *     MatMul(Mul(Q4, √c), Mul(Kᵀ, √c))                  (SDPA as TorchScript and dynamo export it)
 *   and Kᵀ is one of
 *     Transpose(Reshape(linear(x)), perm 0,2,3,1)        (TorchScript)
 *     Transpose(K4, perm 0,1,3,2)
 *     Reshape(Transpose(Reshape(K4, [-1, S, d]), perm 0,2,1), [B, h, d, S])
 *                                                        (dynamo opset 18: the shape vectors are
 *                                                         checked to be K4's own dimensions, also
 *                                                         when read as Gather(Shape(·), perm))
 *   The probabilities go to MatMul(·, V4) directly or through Where(IsNaN(p), 0, p) (SDPA's
 *   guard for fully masked rows, which Attention does not need).
 * - Attention-op form: ai.onnx Attention(Q4, K4, V4[, mask]) with is_causal 0, softcap 0, no
 *   past state, only its first output read; scale from its attribute (default 1/√d).
 *
 * and the result [B, h, S, d] is merged back by Transpose(perm 0,2,1,3) → Reshape. The mask
 * (additive float, or boolean True = attend) must be computed from one [batch, sequence] integer
 * or boolean graph input (besides shapes): that input becomes Attention's mask_index. A candidate
 * that does not match is left as it is and counted by reason: the pass warns
 * `fuse-attention: F of N candidate blocks matched: <reason> (<count>: <nodes>); ...`.
 */
import { DataType } from '../ir/dtype.js'
import { attrFloat, attrInt, type Graph, type Node, type Value } from '../ir/graph.js'
import { Tensor } from '../ir/tensor.js'
import { GraphBuilder } from '../ir/builder.js'
import { Candidates, fusionPass } from './fusion.js'
import type { Pass, Rewrite } from './pass.js'
import { linearOf, outWidth, weightAs, type Linear } from './linear.js'
import { dimOf, dimsOf, rankOf, sameDim } from './shape-expr.js'

export const fuseAttention: Pass = fusionPass({
  name: 'fuse-attention',
  description: 'self-attention blocks → com.microsoft Attention with packed QKV weights',
  fuse(g: Graph): Rewrite & { fused: number } {
    const ctx: Context = { consts: new GraphBuilder(g), packed: new Map(), masks: new Map(), shapes: new Map() }
    const candidates = new Candidates()
    for (const n of [...g.nodes]) {
      if (n.domain !== '' || !g.contains(n)) continue
      let block: Block | string
      if (n.opType === 'Softmax') block = matchBlock(n)
      else if (n.opType === 'Attention') block = matchAttentionOp(n)
      else continue
      if (typeof block === 'string') {
        candidates.miss(block, n)
        continue
      }
      rewrite(g, block, ctx)
      candidates.hit()
    }
    const fused = candidates.matched
    const stats: Record<string, number> = { blocksFused: fused, packedWeights: ctx.packed.size }
    const warnings = candidates.warnings('fuse-attention', 'candidate blocks')
    if (warnings.length) stats.candidates = candidates.total
    return { fused, changed: fused > 0, stats, warnings }
  },
})


interface Block {
  q: Linear
  k: Linear
  v: Linear
  heads: number
  headDim: number
  scale: number
  /** the raw [batch, sequence] mask, or null when the block has none */
  mask: Value | null
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

/**
 * Kᵀ = K4 with its last two axes swapped, written as the dynamo exporter decomposes it:
 * Reshape(Transpose(Reshape(K4, [-1, a, b]), perm 0,2,1), [...lead, b, a]) where a, b are K4's
 * last two dimensions and lead its others, each read from K4's shape. Returns K4.
 */
function swappedLastTwo(v: Value): Value | undefined {
  const outer = v.producer
  if (outer?.opType !== 'Reshape' || outer.domain !== '') return undefined
  const t = outer.inputs[0]?.producer
  if (!perm(t, [0, 2, 1])) return undefined
  const inner = t!.inputs[0]?.producer
  if (inner?.opType !== 'Reshape' || inner.domain !== '') return undefined
  const k4 = inner.inputs[0]
  const rank = rankOf(k4)
  if (!k4 || rank === undefined || rank < 3) return undefined
  const flat = dimsOf(inner.inputs[1])
  const back = dimsOf(outer.inputs[1])
  if (!flat || !back || flat.length !== 3 || back.length !== rank) return undefined
  const a = dimOf(k4, rank - 2)
  const b = dimOf(k4, rank - 1)
  if (!sameDim(flat[0], { const: -1 }) || !sameDim(flat[1], a) || !sameDim(flat[2], b)) return undefined
  for (let i = 0; i < rank - 2; i++) if (!sameDim(back[i], dimOf(k4, i))) return undefined
  return sameDim(back[rank - 2], b) && sameDim(back[rank - 1], a) ? k4 : undefined
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

const NOT_HEADS = 'is not a head split (Reshape → Transpose 0,2,1,3) of a linear layer'

/** Kᵀ in one of its three written forms, as the head split of K's projection. */
function keyHeads(kT: Value): { lin: Linear; shape: Value } | undefined {
  const direct = headsOf(kT, [0, 2, 3, 1])
  if (direct) return direct
  const t = kT.producer
  if (perm(t, [0, 1, 3, 2])) return headsOf(t!.inputs[0], [0, 2, 1, 3])
  const k4 = swappedLastTwo(kT)
  return k4 ? headsOf(k4, [0, 2, 1, 3]) : undefined
}

/** The rest of a block once Q, K, V and the [B, h, S, d] result are found: one input, heads merged back, head count. */
function finish(
  q: { lin: Linear; shape: Value },
  k: { lin: Linear; shape: Value },
  v: { lin: Linear; shape: Value },
  result: Value,
  scale: number | undefined,
  mask: Value | null,
): Block | string {
  if (q.lin.x !== k.lin.x || q.lin.x !== v.lin.x) return 'Q, K and V are not projections of one input'
  const merged = result.consumers
  if (merged.length !== 1 || !perm(merged[0], [0, 2, 1, 3])) return 'the heads are not merged back by Transpose 0,2,1,3'
  const reshape = merged[0]!.outputs[0]!.consumers
  if (reshape.length !== 1 || reshape[0]!.opType !== 'Reshape') return 'the merged heads are not reshaped back'
  const width = outWidth(q.lin)
  if (outWidth(k.lin) !== width || outWidth(v.lin) !== width) return 'Q, K and V widths differ'
  const tail = trailingConstants(q.shape)
  let heads = tail.length >= 2 ? tail[tail.length - 2]! : 0
  let headDim = tail.length >= 2 ? tail[tail.length - 1]! : 0
  if (heads <= 0 || headDim <= 0 || heads * headDim !== width) {
    headDim = headDim > 0 && width % headDim === 0 ? headDim : 0
    heads = headDim ? width / headDim : 0
  }
  if (!heads || !headDim) return 'the head count cannot be told from the Q reshape'
  return { q: q.lin, k: k.lin, v: v.lin, heads, headDim, scale: scale ?? 1 / Math.sqrt(headDim), mask, headsShape: q.shape, output: reshape[0]!.outputs[0]! }
}

function matchBlock(sm: Node): Block | string {
  const axis = sm.attrInt('axis', -1)
  if (axis !== -1 && axis !== 3) return 'Softmax is not over the last axis'
  const add = sm.inputs[0]?.producer
  if (add?.opType !== 'Add' || add.domain !== '') return 'the Softmax input is not scores + mask (an Add)'
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
  if (!scores || !maskBias) return 'no Q·Kᵀ MatMul before the mask Add'
  const mask = rawMask(maskBias)
  if (!mask) return 'the mask is not computed from a [batch, sequence] input'
  const q = headsOf(scores.q, [0, 2, 1, 3])
  if (!q) return `Q ${NOT_HEADS}`
  const k = keyHeads(scores.k)
  if (!k) return `Kᵀ ${NOT_HEADS}, nor a transpose of one`
  const probs = zeroedNaN(sm.outputs[0]!)
  if (probs.consumers.length !== 1) return 'the attention probabilities are read elsewhere'
  const pv = probs.consumers[0]!
  if (pv.opType !== 'MatMul' || pv.inputs[0] !== probs) return 'the probabilities do not go to a ·V MatMul'
  const v = headsOf(pv.inputs[1], [0, 2, 1, 3])
  if (!v) return `V ${NOT_HEADS}`
  return finish(q, k, v, pv.outputs[0]!, scores.scale, mask)
}

/** ai.onnx Attention (opset 23) on 4-D head splits, without causal masking, softcap or past state. */
function matchAttentionOp(att: Node): Block | string {
  if (att.inputs.slice(4).some((v) => v)) return 'Attention has past state or sequence lengths'
  if (att.outputs.slice(1).some((o) => o && (o.consumers.length || o.isGraphOutput))) return 'more than the first Attention output is read'
  if (att.attrInt('is_causal', 0) !== 0 || att.attrFloat('softcap', 0) !== 0) return 'Attention is causal or soft-capped'
  const [qv, kv, vv, maskIn] = att.inputs
  const q = headsOf(qv, [0, 2, 1, 3])
  if (!q) return `Q ${NOT_HEADS}`
  const k = headsOf(kv, [0, 2, 1, 3])
  if (!k) return `K ${NOT_HEADS}`
  const v = headsOf(vv, [0, 2, 1, 3])
  if (!v) return `V ${NOT_HEADS}`
  let mask: Value | null = null
  if (maskIn) {
    const raw = rawMask(maskIn)
    if (!raw) return 'the mask is not computed from a [batch, sequence] input'
    mask = raw
  }
  return finish(q, k, v, att.outputs[0]!, att.attrFloat('scale'), mask)
}

interface Context {
  /** int64 constants, one per content */
  consts: GraphBuilder
  packed: Map<string, { weight: Value; bias: Value }>
  masks: Map<Value, Value>
  shapes: Map<Value, Value>
}

/** Name for the packed tensors: from the query weight's state-dict name, else the query bias's (exporters rename weights, not biases). */
function packedBase(b: Block): string {
  const w = b.q.weight.name
  if (/query\.weight$/.test(w)) return w.replace(/query\.weight$/, 'qkv')
  const bias = b.q.bias?.name
  if (bias && /query\.bias$/.test(bias)) return bias.replace(/query\.bias$/, 'qkv')
  return `${w}.qkv`
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
  const base = packedBase(b)
  p = {
    weight: g.addInitializer(g.uniqueName(`${base}.weight`), Tensor.fromFloat32([K, 3 * N], w)),
    bias: g.addInitializer(g.uniqueName(`${base}.bias`), Tensor.fromFloat32([3 * N], bias)),
  }
  ctx.packed.set(key, p)
  return p
}

function rewrite(g: Graph, b: Block, ctx: Context): void {
  const first = b.q.nodes[0]!
  const packed = pack(g, b, ctx)
  let mask: Value | null = null
  if (b.mask) {
    mask = ctx.masks.get(b.mask) ?? null
    if (!mask) {
      mask = g.addNodeBefore(g.firstNode!, 'Cast', [b.mask], `${b.mask.name}_int32`, { attrs: [attrInt('to', DataType.INT32)] }).outputs[0]!
      ctx.masks.set(b.mask, mask)
    }
  }
  // Attention takes [B, S, hidden]: a 2-D hidden state is viewed as 3-D through the [B, S] of the
  // head reshape (one shape computation for the whole model, shared by every layer).
  let input = b.q.x
  const rank = input.shape?.length ?? targetRank(b.output.producer?.inputs[1])
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
  const name = first.name.includes('/') ? first.name.replace(/\/[^/]*$/, '') + '/Attention' : 'Attention'
  const inputs = mask ? [input, packed.weight, packed.bias, mask] : [input, packed.weight, packed.bias]
  let out = g.addNodeBefore(first, 'Attention', inputs, name, { attrs, domain: 'com.microsoft' }).outputs[0]!
  const outRank = targetRank(b.output.producer?.inputs[1])
  if (outRank !== 3) out = g.addNodeBefore(first, 'Reshape', [out, ctx.consts.ints([-1, b.heads * b.headDim])], `${name}_2d`).outputs[0]!
  g.replaceAllUses(b.output, out)
}

/** The number of dimensions a Reshape target describes: its elements as read by dimsOf, else a Concat of one-element pieces. */
function targetRank(shape: Value | null | undefined): number | undefined {
  return dimsOf(shape)?.length ?? shapeRank(shape)
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
