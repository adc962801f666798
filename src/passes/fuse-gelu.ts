/**
 * fuse-gelu: GELU written out in elementary ops becomes one com.microsoft op — the tanh forms
 * (gelu_new, gelu_fast, gelu_pytorch_tanh) FastGelu, the erf form Gelu — and a bias added by the
 * linear layer before it moves in (FastGelu's bias input, BiasGelu), so the layer's output is
 * written once. The ai.onnx Gelu op (opset 20) becomes the same ops: approximate "none" Gelu /
 * BiasGelu, "tanh" FastGelu. Safe: the fused ops compute the same formulas; only patterns whose
 * inner values nothing else reads are fused.
 *
 * Patterns (Add and Mul match either operand order; constants within 1e-5 relative):
 *   h(body) = Mul(Mul(0.5, x), body) | Mul(0.5, Mul(x, body)) | Mul(x, Mul(0.5, body))
 *   tanh:  h(Add(1, Tanh(inner))) with inner one of
 *            Mul(0.7978845608, Add(x, Mul(0.044715, Pow(x, 3))))          gelu_new, exporters
 *            Mul(0.7978845608, Add(x, Mul(0.044715, Mul(Mul(x, x), x))))
 *            Mul(Mul(x, 0.7978845608), Add(1, Mul(Mul(0.044715, x), x)))  gelu_fast
 *   erf:   h(Add(1, Erf(Div(x, √2) | Mul(x, 1/√2))))
 * Candidates are the Gelu nodes, the Erf nodes of x/√2 and the Tanh nodes of a product by
 * √(2/π) (a pooler's Tanh, a Laplace activation's Erf are none): a candidate left unfused is
 * reported, `fuse-gelu: F of N candidates matched: ...`.
 */
import type { Graph, Node, Value } from '../ir/graph.js'
import { fusionPass, nodeList } from './fusion.js'
import { isSelfContained, match, num, op, val, type Pattern } from '../ir/match.js'
import type { Pass, Rewrite } from './pass.js'
import { cleanup } from '../ir/cleanup.js'
import { takeBias } from './linear.js'

const x = val('x')
const half = (inner: Pattern) => op('Mul', [op('Mul', [num(0.5), x]), inner])
const halfAlt = (inner: Pattern) => op('Mul', [num(0.5), op('Mul', [x, inner])])
/** x · (0.5 · body): the dynamo exporter's erf GELU. */
const halfInner = (inner: Pattern) => op('Mul', [x, op('Mul', [num(0.5), inner])])

/** 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), with x³ as Pow or x·x·x. */
const tanhInner = [
  op('Mul', [num(0.7978845608, 1e-5), op('Add', [x, op('Mul', [num(0.044715, 1e-5), op('Pow', [x, num(3)])])])]),
  op('Mul', [num(0.7978845608, 1e-5), op('Add', [x, op('Mul', [num(0.044715, 1e-5), op('Mul', [op('Mul', [x, x]), x])])])]),
  // gelu_fast: x·0.7978845608·(1 + 0.044715·x·x)
  op('Mul', [op('Mul', [x, num(0.7978845608, 1e-5)]), op('Add', [num(1), op('Mul', [op('Mul', [num(0.044715, 1e-5), x]), x])])]),
]
const TANH_GELU: Pattern[] = tanhInner.flatMap((inner) => {
  const body = op('Add', [num(1), op('Tanh', [inner])])
  return [half(body), halfAlt(body), halfInner(body)]
})

/** 0.5·x·(1 + erf(x/√2)) (also x·0.5 first, or erf(x·(1/√2))). */
const ERF_GELU: Pattern[] = [op('Div', [x, num(Math.SQRT2, 1e-5)]), op('Mul', [x, num(Math.SQRT1_2, 1e-5)])].flatMap((arg) => {
  const body = op('Add', [num(1), op('Erf', [arg])])
  return [half(body), halfAlt(body), halfInner(body)]
})

export const fuseGelu: Pass = fusionPass({
  name: 'fuse-gelu',
  description: 'elementwise GELU → com.microsoft FastGelu / Gelu / BiasGelu (with the bias)',
  fuse(g: Graph): Rewrite & { fused: number } {
    const candidates = g.nodes.filter(isCandidate)
    let fast = 0
    let erf = 0
    let biases = 0
    for (const n of [...g.nodes]) {
      if (n.domain !== '' || !g.contains(n)) continue
      let r: { op: string; bias: boolean } | undefined
      if (n.opType === 'Mul') {
        const root = n.outputs[0]!
        r = tryFuse(g, root, TANH_GELU, 'FastGelu') ?? tryFuse(g, root, ERF_GELU, 'Gelu')
      } else if (n.opType === 'Gelu') r = fromGeluOp(g, n)
      if (!r) continue
      if (r.op === 'FastGelu') fast++
      else erf++
      if (r.bias) biases++
    }
    const stats: Record<string, number> = { fastGelu: fast, erfGelu: erf, biasesMoved: biases }
    // a candidate fused is gone once the graph is cleaned up (fusionPass cleans up again: nothing left to do then)
    if (fast + erf) cleanup(g)
    const left = candidates.filter((n) => g.contains(n))
    const warnings: string[] = []
    if (left.length) {
      stats.candidates = candidates.length
      warnings.push(`fuse-gelu: ${candidates.length - left.length} of ${candidates.length} candidates matched: no GELU pattern around ${nodeList(left)}`)
    }
    return { fused: fast + erf, changed: fast + erf > 0, stats, warnings }
  },
})

/** Is `v` a scalar constant near `c`? */
const near = (v: Value | null | undefined, c: number) => {
  const t = v?.const
  return !!t && t.size === 1 && Math.abs(t.toNumbers()[0]! - c) <= 1e-5 * Math.abs(c)
}

/** A Mul or Div of a value by a constant near `c` (Mul either order). */
const scaledBy = (v: Value | null | undefined, op: 'Mul' | 'Div', c: number) => {
  const p = v?.producer
  if (!p || p.opType !== op || p.domain !== '') return false
  return near(p.inputs[1], c) || (op === 'Mul' && near(p.inputs[0], c))
}

/**
 * Where a GELU would be: an Erf of x/√2 (or x·(1/√2)), a Gelu op, a Tanh of a product by
 * √(2/π) (directly, or of a factor, as gelu_fast writes it). Other Erf and Tanh uses (the
 * pooler, other activations) are no candidates.
 */
function isCandidate(n: Node): boolean {
  if (n.domain !== '') return false
  if (n.opType === 'Gelu') return true
  const arg = n.inputs[0]
  if (n.opType === 'Erf') return scaledBy(arg, 'Div', Math.SQRT2) || scaledBy(arg, 'Mul', Math.SQRT1_2)
  if (n.opType !== 'Tanh') return false
  const p = arg?.producer
  const c = 0.7978845608
  return scaledBy(arg, 'Mul', c) || (!!p && p.opType === 'Mul' && p.inputs.some((i) => scaledBy(i, 'Mul', c)))
}

/** ai.onnx Gelu (opset 20): approximate "none" → Gelu / BiasGelu, "tanh" → FastGelu, taking the bias. */
function fromGeluOp(g: Graph, n: Node): { op: string; bias: boolean } | undefined {
  const approximate = n.attrString('approximate') ?? 'none'
  const input = n.inputs[0]
  if (!input || (approximate !== 'none' && approximate !== 'tanh')) return undefined
  const bias = input.consumers.length === 1 ? takeBias(g, input) : undefined
  const opType = approximate === 'tanh' ? 'FastGelu' : bias ? 'BiasGelu' : 'Gelu'
  const name = g.uniqueNodeName(n.name ? n.name.replace(/\/[^/]*$/, `/${opType}`) : opType)
  g.replaceNode(n, opType, bias ? [bias.x, bias.bias] : [input], { name, domain: 'com.microsoft' })
  return { op: approximate === 'tanh' ? 'FastGelu' : 'Gelu', bias: !!bias }
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
