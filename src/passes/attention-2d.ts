/**
 * Self-attention at batch 1 as 2-D MatMuls, for fix-shapes (not a pass of its own). The block
 * albertkit builds — 2-D projections Q, K, V [S, H] reshaped to [1, S, h, d] and transposed into
 * heads, MatMul(Q, Kᵀ) scaled, plus the additive mask, Softmax, MatMul with V, heads merged back
 * to [S, H] — becomes:
 *
 *   Split(Q, axis 1) → h × [S, d];  Split(Transpose(K), axis 0) → h × [d, S];  Split(V, axis 1)
 *   h × MatMul(Q_i, Kᵀ_i) → Concat(axis 0) [h·S, S] → scale → + mask [1, S] → Softmax → Split
 *   h × MatMul(P_i, V_i) → Concat(axis 1) [S, H]
 *
 * Every MatMul is 2-D (what XNNPACK and NNAPI run); scale, mask and Softmax run once for all
 * heads. Safe: each output element is computed by the same operations in the same order; only
 * blocks whose shapes are all known and batch is 1 are rewritten.
 */
import { DataType } from '../ir/dtype.js'
import { attrInt, attrInts, type Attribute, type Graph, type Node, type Value } from '../ir/graph.js'
import { inferTypes } from '../ir/infer.js'
import { Tensor } from '../ir/tensor.js'

interface Heads {
  /** the 2-D projection [S, H] */
  flat: Value
  seq: number
  heads: number
  headDim: number
}

interface Block {
  q: Heads
  k: Value
  v: Value
  /** the scale applied to the scores, as written (Mul or Div by a constant) */
  scale: { op: 'Mul' | 'Div'; constant: Value; scoresFirst: boolean } | undefined
  mask: Value
  /** the merged heads [S, H] */
  output: Value
}

/** Rewrite every matching block; returns how many. Inferred types must be fresh (or absent). */
export function attentionTo2d(g: Graph): number {
  inferTypes(g)
  const masks = new Map<Value, Value>()
  let rewritten = 0
  for (const sm of [...g.nodes]) {
    if (sm.opType !== 'Softmax' || sm.domain !== '') continue
    const block = matchBlock(sm)
    if (!block) continue
    rewriteBlock(g, block, sm.name, masks)
    rewritten++
  }
  if (rewritten) g.toposort()
  return rewritten
}

const isPerm = (n: Node | null | undefined, p: number[]): n is Node =>
  n?.opType === 'Transpose' && n.domain === '' && (n.attrInts('perm') ?? []).join() === p.join()

const staticShape = (v: Value | null | undefined): number[] | undefined => {
  const s = v?.shape
  return s && s.every((d) => typeof d === 'number') ? (s as number[]) : undefined
}

/** Transpose(perm) ← Reshape(flat [S, h·d], const [1, S, h, d]). */
function headsOf(v: Value | null | undefined, perm: number[]): Heads | undefined {
  const t = v?.producer
  if (!isPerm(t, perm)) return undefined
  const r = t.inputs[0]?.producer
  if (r?.opType !== 'Reshape' || r.domain !== '') return undefined
  const target = r.inputs[1]?.const?.toNumbers()
  const flat = r.inputs[0]
  const fs = staticShape(flat)
  if (!target || target.length !== 4 || !fs || fs.length !== 2) return undefined
  const [b, seq, heads, headDim] = target as [number, number, number, number]
  if (b !== 1 || seq !== fs[0] || heads * headDim !== fs[1] || heads < 1 || headDim < 1) return undefined
  return { flat: flat!, seq, heads, headDim }
}

/** Kᵀ in heads: Transpose(0,2,3,1) of the reshape, or Transpose(0,1,3,2) of the usual head split. */
function keysOf(v: Value | null | undefined): Heads | undefined {
  const direct = headsOf(v, [0, 2, 3, 1])
  if (direct) return direct
  const t = v?.producer
  return isPerm(t, [0, 1, 3, 2]) ? headsOf(t.inputs[0], [0, 2, 1, 3]) : undefined
}

/** The scores: MatMul, or Mul/Div of it by a scalar constant. */
function scoresOf(v: Value | null | undefined): { mm: Node; scale: Block['scale'] } | undefined {
  const n = v?.producer
  if (!n || n.domain !== '') return undefined
  if (n.opType === 'MatMul') return { mm: n, scale: undefined }
  if (n.opType !== 'Mul' && n.opType !== 'Div') return undefined
  for (const first of [true, false]) {
    const [a, c] = first ? [n.inputs[0], n.inputs[1]] : [n.inputs[1], n.inputs[0]]
    if (c?.const?.size !== 1 || a?.producer?.opType !== 'MatMul' || a.producer.domain !== '') continue
    if (n.opType === 'Div' && !first) continue
    return { mm: a.producer, scale: { op: n.opType, constant: c, scoresFirst: first } }
  }
  return undefined
}

/** A mask whose every dimension but the last is 1 (it broadcasts over heads and queries). */
function isRowMask(m: Value, seq: number): boolean {
  const s = staticShape(m)
  if (!s || s.length === 0 || s.length > 4) return false
  const last = s[s.length - 1]!
  return (last === seq || last === 1) && s.slice(0, -1).every((d) => d === 1)
}

function matchBlock(sm: Node): Block | undefined {
  const axis = sm.attrInt('axis', -1)
  const add = sm.inputs[0]?.producer
  if ((axis !== -1 && axis !== 3) || add?.opType !== 'Add' || add.domain !== '') return undefined
  const [x, y] = add.inputs
  const scores = scoresOf(x) ?? scoresOf(y)
  const mask = scoresOf(x) ? y : x
  if (!scores || !mask) return undefined
  const q = headsOf(scores.mm.inputs[0], [0, 2, 1, 3])
  const k = keysOf(scores.mm.inputs[1])
  const probs = sm.outputs[0]!
  const pv = probs.consumers[0]
  if (!q || !k || probs.consumers.length !== 1 || pv?.opType !== 'MatMul' || pv.inputs[0] !== probs) return undefined
  const v = headsOf(pv.inputs[1], [0, 2, 1, 3])
  const same = (h: Heads | undefined) => !!h && h.seq === q.seq && h.heads === q.heads && h.headDim === q.headDim
  if (!same(k) || !same(v) || !isRowMask(mask, q.seq)) return undefined
  const merge = pv.outputs[0]!.consumers
  if (merge.length !== 1 || !isPerm(merge[0], [0, 2, 1, 3])) return undefined
  const reshape = merge[0].outputs[0]!.consumers
  const out = reshape[0]?.outputs[0]
  if (reshape.length !== 1 || reshape[0]!.opType !== 'Reshape' || staticShape(out)?.join() !== [q.seq, q.heads * q.headDim].join()) return undefined
  return { q, k: k!.flat, v: v!.flat, scale: scores.scale, mask, output: out! }
}

function rewriteBlock(g: Graph, b: Block, at: string, masks: Map<Value, Value>): void {
  const base = at.replace(/\/[^/]*$/, '') || 'attention'
  const h = b.q.heads
  const one = (op: string, inputs: Value[], label: string, attrs: Attribute[] = []): Value =>
    g.addNode(op, inputs, [`${base}/${label}`], { name: g.uniqueNodeName(`${base}/${label}`), attrs }).outputs[0]!
  // Split's output shapes are declared: type inference here does not derive them.
  const split = (x: Value, axis: number, label: string, shape: number[]): Value[] => {
    const outs = g.addNode('Split', [x], Array.from({ length: h }, (_, i) => `${base}/${label}_${i}`), {
      name: g.uniqueNodeName(`${base}/${label}`),
      attrs: [attrInt('axis', axis)],
    }).outputs as Value[]
    for (const o of outs) o.setTensorType(DataType.FLOAT, shape)
    return outs
  }
  const [S, d] = [b.q.seq, b.q.headDim]
  const qs = split(b.q.flat, 1, 'q_heads', [S, d])
  const ks = split(one('Transpose', [b.k], 'k_t', [attrInts('perm', [1, 0])]), 0, 'kt_heads', [d, S])
  const vs = split(b.v, 1, 'v_heads', [S, d])
  let s = one('Concat', qs.map((q, i) => one('MatMul', [q, ks[i]!], `scores_${i}`)), 'scores', [attrInt('axis', 0)])
  if (b.scale) s = one(b.scale.op, b.scale.scoresFirst ? [s, b.scale.constant] : [b.scale.constant, s], 'scaled')
  s = one('Add', [s, rowMask(g, b.mask, masks)], 'masked')
  const ps = split(one('Softmax', [s], 'probs', [attrInt('axis', -1)]), 0, 'probs_heads', [S, S])
  const context = ps.map((p, i) => one('MatMul', [p, vs[i]!], `context_${i}`))
  g.replaceAllUses(b.output, one('Concat', context, 'context', [attrInt('axis', 1)]))
}

/** The mask as [1, S] (one Reshape per mask, shared by every layer). */
function rowMask(g: Graph, mask: Value, cache: Map<Value, Value>): Value {
  const s = staticShape(mask)!
  if (s.length === 2) return mask
  let m = cache.get(mask)
  if (!m) {
    const shape = g.addInitializer(g.uniqueName(`${mask.name}_2d_shape`), Tensor.fromInt64([2], [1, s[s.length - 1]!]))
    m = g.addNode('Reshape', [mask, shape], [`${mask.name}_2d`], { name: g.uniqueNodeName(`${mask.name}_2d`) }).outputs[0]!
    cache.set(mask, m)
  }
  return m
}
