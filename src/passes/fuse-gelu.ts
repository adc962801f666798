/**
 * fuse-gelu: GELU written out in elementary ops becomes one com.microsoft op — the tanh forms
 * (gelu_new, gelu_fast, gelu_pytorch_tanh) FastGelu, the erf form Gelu — and a bias added by the
 * linear layer before it moves in (FastGelu's bias input, BiasGelu), so the layer's output is
 * written once. Safe: the fused ops compute the same formulas; only patterns whose inner values
 * nothing else reads are fused.
 */
import type { Graph, Model, Value } from '../ir/graph.js'
import { isSelfContained, match, num, op, val, type Pattern } from '../ir/match.js'
import type { Pass, PassResult } from './pass.js'
import { cleanup } from '../ir/cleanup.js'
import { takeBias } from './linear.js'

const x = val('x')
const half = (inner: Pattern) => op('Mul', [op('Mul', [num(0.5), x]), inner])
const halfAlt = (inner: Pattern) => op('Mul', [num(0.5), op('Mul', [x, inner])])

/** 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), with x³ as Pow or x·x·x. */
const tanhInner = [
  op('Mul', [num(0.7978845608, 1e-5), op('Add', [x, op('Mul', [num(0.044715, 1e-5), op('Pow', [x, num(3)])])])]),
  op('Mul', [num(0.7978845608, 1e-5), op('Add', [x, op('Mul', [num(0.044715, 1e-5), op('Mul', [op('Mul', [x, x]), x])])])]),
  // gelu_fast: x·0.7978845608·(1 + 0.044715·x·x)
  op('Mul', [op('Mul', [x, num(0.7978845608, 1e-5)]), op('Add', [num(1), op('Mul', [op('Mul', [num(0.044715, 1e-5), x]), x])])]),
]
const TANH_GELU: Pattern[] = tanhInner.flatMap((inner) => {
  const body = op('Add', [num(1), op('Tanh', [inner])])
  return [half(body), halfAlt(body)]
})

/** 0.5·x·(1 + erf(x/√2)) (also x·0.5 first, or erf(x·(1/√2))). */
const ERF_GELU: Pattern[] = [op('Div', [x, num(Math.SQRT2, 1e-5)]), op('Mul', [x, num(Math.SQRT1_2, 1e-5)])].flatMap((arg) => {
  const body = op('Add', [num(1), op('Erf', [arg])])
  return [half(body), halfAlt(body), op('Mul', [op('Mul', [x, body]), num(0.5)])]
})

export const fuseGelu: Pass = {
  name: 'fuse-gelu',
  description: 'elementwise GELU → com.microsoft FastGelu / Gelu / BiasGelu (with the bias)',
  inPlace: true,
  run(model: Model): PassResult {
    const g = model.graph
    g.toposort()
    let fast = 0
    let erf = 0
    let biases = 0
    for (const n of [...g.nodes]) {
      if (n.opType !== 'Mul' || !g.contains(n)) continue
      const root = n.outputs[0]!
      const r = tryFuse(g, root, TANH_GELU, 'FastGelu') ?? tryFuse(g, root, ERF_GELU, 'Gelu')
      if (!r) continue
      if (r.op === 'FastGelu') fast++
      else erf++
      if (r.bias) biases++
    }
    if (fast + erf) {
      model.requireOpset('com.microsoft', 1)
      cleanup(g)
    }
    return { model, changed: fast + erf > 0, stats: { fastGelu: fast, erfGelu: erf, biasesMoved: biases } }
  },
}

function tryFuse(g: Graph, root: Value, patterns: Pattern[], opType: 'FastGelu' | 'Gelu'): { op: string; bias: boolean } | undefined {
  for (const p of patterns) {
    const m = match(root, p)
    if (!m || !isSelfContained(m, root)) continue
    const input = m.values.get('x')!
    const inside = new Set(m.covered)
    const bias = input.consumers.every((c) => inside.has(c)) ? takeBias(g, input) : undefined
    const node = m.covered[m.covered.length - 1]!
    const name = g.uniqueNodeName(node.name ? node.name.replace(/\/[^/]*$/, `/${opType}`) : opType)
    if (opType === 'FastGelu') {
      g.replaceNode(node, 'FastGelu', bias ? [bias.x, bias.bias] : [input], { name, domain: 'com.microsoft' })
    } else {
      g.replaceNode(node, bias ? 'BiasGelu' : 'Gelu', bias ? [bias.x, bias.bias] : [input], { name, domain: 'com.microsoft' })
    }
    return { op: opType, bias: !!bias }
  }
  return undefined
}
