/**
 * decompose-contrib: the com.microsoft ops onnxruntime's transformer optimizer leaves in a model
 * go back to standard ONNX ops, for targets that run only those (mobile):
 *
 *   FastGelu(x[, b])  → h = x (+ b); 0.5·h·(1 + Tanh(0.7978845608·(h + 0.044715·Pow(h, 3))))
 *   Gelu(x)           → 0.5·x·(1 + Erf(x / √2))
 *   BiasGelu(x, b)    → the same of h = x + b
 *   SkipLayerNormalization → Add (+ bias) + LayerNormalization (as split-skip-layernorm)
 *   LayerNormalization in a model below opset 17 (an onnxruntime extension there, which its
 *   optimizer writes) → ReduceMean, Sub, Mul, ReduceMean, Add ε, Sqrt, Div, Mul γ, Add β
 *
 * A bias lands as Add(MatMul, b): the linear layer the quantizers recognize. Any other
 * com.microsoft op is left and reported by name. Opset imports of domains no node uses go. Safe: the same formulas.
 */
import { attrInt, attrInts, type Graph, type Model, type Node, type Value } from '../ir/graph.js'
import { GraphBuilder } from '../ir/builder.js'
import { inPlacePass, type Pass, type Rewrite } from './pass.js'
import { cleanup } from '../ir/cleanup.js'
import { splitOne } from './split-skip-layernorm.js'

export const decomposeContrib: Pass = inPlacePass({
  name: 'decompose-contrib',
  description: 'com.microsoft FastGelu, Gelu, BiasGelu, SkipLayerNormalization → standard ONNX ops',
  rewrite(model: Model): Rewrite {
    const g = model.graph
    const c = new GraphBuilder(g)
    const counts = { gelu: 0, skipLayerNorm: 0, layerNorm: 0 }
    const left = new Map<string, number>()
    const opset = model.opsetVersion('') ?? 1
    for (const n of [...g.nodes]) {
      if (opset < 17 && n.opType === 'LayerNormalization' && n.domain === '' && layerNorm(g, c, n)) counts.layerNorm++
      if (n.domain !== 'com.microsoft') continue
      if (n.opType === 'FastGelu' || n.opType === 'Gelu' || n.opType === 'BiasGelu') {
        gelu(g, c, n)
        counts.gelu++
      } else if (n.opType === 'SkipLayerNormalization' && splitOne(g, n)) counts.skipLayerNorm++
      else left.set(n.opType, (left.get(n.opType) ?? 0) + 1)
    }
    if (opset < 17) {
      for (const n of [...g.nodes]) if (n.opType === 'LayerNormalization' && n.domain === '' && layerNorm(g, c, n)) counts.layerNorm++
    }
    const changed = counts.gelu + counts.skipLayerNorm + counts.layerNorm > 0
    if (changed) {
      g.toposort()
      cleanup(g)
    }
    // the optimizer also imports domains it never uses (ai.onnx.ml, com.microsoft.nchwc, ...): only those nodes use stay
    const used = domainsUsed(g)
    model.opsetImports = model.opsetImports.filter((o) => o.domain === '' || o.domain === 'ai.onnx' || used.has(o.domain))
    const warnings = left.size ? [`decompose-contrib: com.microsoft ops left as they are: ${[...left].map(([op, k]) => `${op} ×${k}`).join(', ')}`] : []
    return { changed, stats: counts, warnings }
  },
})

function gelu(g: Graph, c: GraphBuilder, n: Node): void {
  const at = (op: string, inputs: Value[], label: string) => g.addNodeBefore(n, op, inputs, `${n.name || n.opType}_${label}`).outputs[0]!
  const [input, bias] = n.inputs
  const h = bias ? at('Add', [input!, bias], 'bias') : input!
  let body: Value
  if (n.opType === 'FastGelu') {
    const cube = at('Pow', [h, c.scalar(3)], 'cube')
    const inner = at('Add', [h, at('Mul', [cube, c.scalar(0.044715)], 'cubic_term')], 'inner')
    body = at('Tanh', [at('Mul', [inner, c.scalar(0.7978845608)], 'scaled')], 'tanh')
  } else {
    body = at('Erf', [at('Div', [h, c.scalar(Math.SQRT2)], 'scaled')], 'erf')
  }
  const onePlus = at('Add', [body, c.scalar(1)], 'one_plus')
  const halfH = at('Mul', [h, c.scalar(0.5)], 'half')
  g.replaceNode(n, 'Mul', [halfH, onePlus], { name: g.uniqueNodeName(`${n.name || n.opType}_gelu`), attrs: [] })
}

/** LayerNormalization over the last axis, written out in opset-11..16 ops (ReduceMean's axes an attribute); false when its axis or extra outputs rule that out. */
function layerNorm(g: Graph, c: GraphBuilder, n: Node): boolean {
  const [x, gamma, beta] = n.inputs
  const axis = n.attrInt('axis', -1)
  const rank = x?.shape?.length
  if (!x || !gamma || (axis !== -1 && (rank === undefined || axis !== rank - 1))) return false
  if (n.outputs.slice(1).some((o) => o && (o.consumers.length || o.isGraphOutput))) return false
  const at = (op: string, inputs: Value[], label: string, attrs = [] as ReturnType<typeof attrInt>[]) =>
    g.addNodeBefore(n, op, inputs, `${n.name || 'LayerNorm'}_${label}`, { attrs }).outputs[0]!
  const mean = (v: Value, label: string) => at('ReduceMean', [v], label, [attrInts('axes', [-1]), attrInt('keepdims', 1)])
  const centred = at('Sub', [x, mean(x, 'mean')], 'centred')
  const variance = mean(at('Mul', [centred, centred], 'square'), 'variance')
  const deviation = at('Sqrt', [at('Add', [variance, c.scalar(n.attrFloat('epsilon', 1e-5))], 'plus_eps')], 'deviation')
  const scaled = at('Mul', [at('Div', [centred, deviation], 'normed'), gamma], 'scaled')
  for (const o of n.outputs.slice(1)) if (o) o.producer = null
  n.outputs.length = 1
  g.replaceNode(n, beta ? 'Add' : 'Identity', beta ? [scaled, beta] : [scaled], { name: g.uniqueNodeName(`${n.name || 'LayerNorm'}_shift`), attrs: [] })
  return true
}

/** The domains the nodes of a graph and its subgraphs use. */
function domainsUsed(g: Graph, into = new Set<string>()): Set<string> {
  for (const n of g.nodes) {
    into.add(n.domain)
    for (const sub of n.subgraphs()) domainsUsed(sub, into)
  }
  return into
}
