/**
 * fuse-layernorm: LayerNormalization(a + b) over the last axis becomes com.microsoft
 * SkipLayerNormalization(a, b, gamma, beta[, bias]); a bias vector added by the Gemm (or MatMul +
 * Add) that computes one of the terms moves into the fused op, so that layer writes its output
 * once. Safe: same arithmetic; only when both terms have the same shape (no broadcasting), the
 * LayerNorm normalizes the last axis only, and nothing else reads the intermediate sum.
 *
 * Pattern: LayerNormalization(Add(a, b), γ, β, axis=-1) with a and b computed values of one
 * shape (same rank and sizes; a size unknown on both sides counts as equal), the sum read only
 * there. Candidates are the LayerNormalizations over the last axis of a sum of known rank of
 * two computed values whose shapes are not known to differ (the embedding sum, which broadcasts
 * the position table, is no candidate); one left unfused is reported,
 * `fuse-layernorm: F of N candidates matched: ...`.
 */
import type { Graph, Node, Value } from '../ir/graph.js'
import { attrFloat } from '../ir/graph.js'
import { Candidates, fusionPass } from './fusion.js'
import type { Pass, Rewrite } from './pass.js'
import { takeBias } from './linear.js'

export const fuseLayerNorm: Pass = fusionPass({
  name: 'fuse-layernorm',
  description: 'Add + LayerNormalization → com.microsoft SkipLayerNormalization (with the bias)',
  fuse(g: Graph): Rewrite & { fused: number } {
    let biases = 0
    const candidates = new Candidates()
    for (const ln of [...g.nodes]) {
      const r = fuse(g, ln)
      if (r === undefined) continue
      if (typeof r === 'string') {
        candidates.miss(r, ln)
        continue
      }
      candidates.hit()
      if (r.bias) biases++
    }
    const fused = candidates.matched
    const stats: Record<string, number> = { fused, biasesMoved: biases }
    const warnings = candidates.warnings('fuse-layernorm')
    if (warnings.length) stats.candidates = candidates.total
    return { fused, changed: fused > 0, stats, warnings }
  },
})

/**
 * Both terms have the same shape: same rank, the same known sizes, and unknown sizes only where
 * both are unknown (two computed activations, never a broadcast constant).
 */
const sameShape = (a: Value, b: Value) => {
  const sa = a.shape
  const sb = b.shape
  if (!sa || !sb || sa.length !== sb.length || a.const || b.const) return false
  return sa.every((d, i) => d === sb[i]) && typeof sa[sa.length - 1] === 'number'
}

/** Known to differ: both shapes known, and a rank or a size told on both sides that differs. */
const knownToDiffer = (a: Value, b: Value) => {
  const sa = a.shape
  const sb = b.shape
  if (!sa || !sb) return false
  return sa.length !== sb.length || sa.some((d, i) => d !== null && sb[i] !== null && d !== sb[i])
}

/** Fuse one LayerNormalization: undefined when it is no candidate, a reason when it is one that does not match. */
function fuse(g: Graph, ln: Node): { bias: boolean } | string | undefined {
  if (ln.opType !== 'LayerNormalization' || ln.domain !== '' || !g.contains(ln)) return undefined
  const x = ln.inputs[0]
  const add = x?.producer
  if (!x || !add || add.opType !== 'Add' || add.domain !== '') return undefined
  const [a0, b0] = add.inputs
  if (!a0 || !b0 || a0.const || b0.const || knownToDiffer(a0, b0)) return undefined
  const rank = x.shape?.length
  const axis = ln.attrInt('axis', -1)
  if (rank === undefined || (axis !== -1 && axis !== rank - 1)) return undefined
  if (ln.outputs.slice(1).some((o) => o && (o.consumers.length || o.isGraphOutput))) return 'its mean or inverse deviation is read'
  if (x.consumers.length !== 1 || x.isGraphOutput) return 'the sum is read elsewhere'
  if (!sameShape(a0, b0)) return 'the shapes of the two terms are not known to be equal'
  const one = (v: Value) => (v.consumers.length === 1 ? takeBias(g, v) : undefined)
  const bias = (one(a0) ?? one(b0))?.bias ?? null
  const [a, b] = add.inputs as [Value, Value]
  const inputs = [a, b, ln.inputs[1]!, ln.inputs[2] ?? null, bias]
  while (inputs[inputs.length - 1] === null) inputs.pop()
  const eps = ln.attrFloat('epsilon', 1e-5)
  ln.outputs.length = 1
  g.replaceNode(ln, 'SkipLayerNormalization', inputs, {
    name: g.uniqueNodeName(ln.name ? ln.name.replace(/LayerNormalization$/, 'SkipLayerNormalization') : 'SkipLayerNormalization'),
    domain: 'com.microsoft',
    attrs: [attrFloat('epsilon', eps)],
  })
  return { bias: bias !== null }
}
