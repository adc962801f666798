/**
 * fuse-layernorm: LayerNormalization(a + b) over the last axis becomes com.microsoft
 * SkipLayerNormalization(a, b, gamma, beta[, bias]); a bias vector added by the Gemm (or MatMul +
 * Add) that computes one of the terms moves into the fused op, so that layer writes its output
 * once. Safe: same arithmetic; only when both terms have the same shape (no broadcasting), the
 * LayerNorm normalizes the last axis only, and nothing else reads the intermediate sum.
 */
import type { Graph, Model, Node, Value } from '../ir/graph.js'
import { attrFloat } from '../ir/graph.js'
import { inferTypes } from '../ir/infer.js'
import type { Pass, PassResult } from './pass.js'
import { cleanup } from '../ir/cleanup.js'
import { takeBias } from './linear.js'

export const fuseLayerNorm: Pass = {
  name: 'fuse-layernorm',
  description: 'Add + LayerNormalization → com.microsoft SkipLayerNormalization (with the bias)',
  inPlace: true,
  run(model: Model): PassResult {
    const g = model.graph
    g.toposort()
    inferTypes(g)
    let fused = 0
    let biases = 0
    for (const ln of [...g.nodes]) {
      const r = fuse(g, ln)
      if (r) {
        fused++
        if (r.bias) biases++
      }
    }
    if (fused) {
      model.requireOpset('com.microsoft', 1)
      cleanup(g)
    }
    return { model, changed: fused > 0, stats: { fused, biasesMoved: biases } }
  },
}

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

function fuse(g: Graph, ln: Node): { bias: boolean } | undefined {
  if (ln.opType !== 'LayerNormalization' || ln.domain !== '' || !g.contains(ln)) return undefined
  const x = ln.inputs[0]
  const rank = x?.shape?.length
  const axis = ln.attrInt('axis', -1)
  if (!x || rank === undefined || (axis !== -1 && axis !== rank - 1)) return undefined
  if (ln.outputs.slice(1).some((o) => o && (o.consumers.length || o.isGraphOutput))) return undefined
  const add = x.producer
  if (!add || add.opType !== 'Add' || add.domain !== '' || x.consumers.length !== 1 || x.isGraphOutput) return undefined
  const [a0, b0] = add.inputs
  if (!a0 || !b0 || !sameShape(a0, b0)) return undefined
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
