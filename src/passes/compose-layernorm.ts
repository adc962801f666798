/**
 * compose-layernorm: LayerNorm written out in elementary ops (what the TorchScript exporter
 * writes below opset 17) becomes one LayerNormalization node. The pattern, over the last axis:
 *
 *   m = ReduceMean(x, axes=[-1])          (axes an attribute below opset 18, an input from 18)
 *   d = Sub(x, m)                         (d read by exactly the two nodes below)
 *   v = ReduceMean(Pow(d, 2) | Mul(d, d), axes=[-1])
 *   n = Div(d, Sqrt(Add(v, ε)))           (ε a scalar constant, either operand order)
 *   y = Add(Mul(n, γ), β) | Mul(n, γ)     (γ, β 1-D float constants, either operand order)
 *
 * → LayerNormalization(x, γ[, β], axis=-1, epsilon=ε). Candidates are the ReduceMean nodes read
 * by a Sub of their own input; one that does not match is reported with the step that failed.
 * Safe: the same formula, and every inner value must be read only inside the pattern.
 * LayerNormalization is an ai.onnx op from opset 17; in older models it is left in the default
 * domain, where onnxruntime runs it (its transformer optimizer writes the same), unless the pass
 * option contribOps is false (standard ONNX only): then older models are left alone.
 */
import { DataType } from '../ir/dtype.js'
import { attrFloat, attrInt, type Graph, type Model, type Node, type Value } from '../ir/graph.js'
import { inferTypes } from '../ir/infer.js'
import { Candidates } from './fusion.js'
import { inPlacePass, type Pass, type PassContext, type Rewrite } from './pass.js'
import { cleanup } from '../ir/cleanup.js'

export const composeLayerNorm: Pass = inPlacePass({
  name: 'compose-layernorm',
  description: 'LayerNorm written out (ReduceMean, Sub, Pow, Sqrt, Div, Mul, Add) → LayerNormalization',
  rewrite(model: Model, { options }: PassContext): Rewrite {
    const g = model.graph
    const opset = model.opsetVersion('') ?? 1
    if (opset < 17 && options.contribOps === false) {
      const any = g.nodes.some((n) => isCandidate(n))
      return { changed: false, stats: { composed: 0 }, warnings: any ? [`compose-layernorm: left as is: LayerNormalization needs opset 17 and the model is opset ${opset} (standard ONNX only)`] : [] }
    }
    g.toposort()
    inferTypes(g)
    const candidates = new Candidates()
    for (const n of [...g.nodes]) {
      if (!g.contains(n) || !isCandidate(n)) continue
      const r = compose(g, n)
      if (typeof r === 'string') candidates.miss(r, n)
      else candidates.hit()
    }
    const composed = candidates.matched
    if (composed) cleanup(g)
    const warnings = candidates.warnings('compose-layernorm')
    return { changed: composed > 0, stats: { composed, candidates: candidates.total }, warnings }
  },
})

/** A ReduceMean read by Sub(its own input, it). */
function isCandidate(n: Node): boolean {
  if (n.opType !== 'ReduceMean' || n.domain !== '') return false
  const x = n.inputs[0]
  return n.outputs[0]!.consumers.some((c) => c.opType === 'Sub' && c.domain === '' && c.inputs[0] === x && c.inputs[1] === n.outputs[0])
}

/** The one node reading `v`, when `v` is read once and is no graph output. */
function only(v: Value | null | undefined, opType: string): Node | undefined {
  if (!v || v.isGraphOutput || v.consumers.length !== 1) return undefined
  const c = v.consumers[0]!
  return c.opType === opType && c.domain === '' ? c : undefined
}

/** Does a ReduceMean average over the last axis only, keeping it? */
function overLastAxis(n: Node, rank: number | undefined): boolean {
  if (n.attrInt('keepdims', 1) === 0) return false
  const axes = n.attrInts('axes') ?? n.inputs[1]?.const?.toNumbers()
  if (!axes || axes.length !== 1) return false
  return axes[0] === -1 || (rank !== undefined && axes[0] === rank - 1)
}

function scalar(v: Value | null | undefined): number | undefined {
  const t = v?.const
  return t && t.size === 1 && t.dtype === DataType.FLOAT ? t.toNumbers()[0] : undefined
}

function vector(v: Value | null | undefined): boolean {
  const t = v?.const
  return !!t && t.dtype === DataType.FLOAT && t.dims.length === 1
}

/** The other operand of a two-input node. */
const other = (n: Node, v: Value) => (n.inputs[0] === v ? n.inputs[1] : n.inputs[0])

function compose(g: Graph, mean: Node): true | string {
  const x = mean.inputs[0]!
  const rank = x.shape?.length
  if (!overLastAxis(mean, rank)) return 'the mean is not over the last axis'
  const sub = only(mean.outputs[0], 'Sub')
  if (!sub) return 'the mean is read elsewhere'
  const d = sub.outputs[0]!
  if (d.isGraphOutput || d.consumers.length !== 2) return 'x − mean is not read by exactly a square and a Div'
  const square = d.consumers.find((c) => c.domain === '' && ((c.opType === 'Pow' && c.inputs[0] === d && scalar(c.inputs[1]) === 2) || (c.opType === 'Mul' && c.inputs[0] === d && c.inputs[1] === d)))
  const div = d.consumers.find((c) => c.opType === 'Div' && c.domain === '' && c.inputs[0] === d)
  if (!square || !div) return 'x − mean is not read by exactly a square and a Div'
  const variance = only(square.outputs[0], 'ReduceMean')
  if (!variance || variance.inputs[0] !== square.outputs[0] || !overLastAxis(variance, rank)) return 'no mean of the squares over the last axis'
  const addEps = only(variance.outputs[0], 'Add')
  const eps = addEps ? scalar(other(addEps, variance.outputs[0]!)) : undefined
  if (!addEps || eps === undefined || !(eps >= 0)) return 'no Add of a constant ε to the variance'
  const sqrt = only(addEps.outputs[0], 'Sqrt')
  if (!sqrt || only(sqrt.outputs[0], 'Div') !== div || div.inputs[1] !== sqrt.outputs[0]) return 'the centred value is not divided by √(variance + ε)'
  const normed = div.outputs[0]!
  const mul = only(normed, 'Mul')
  const gamma = mul ? other(mul, normed) : undefined
  if (!mul || !vector(gamma)) return 'the normalized value is not scaled by a constant vector γ'
  const addBeta = only(mul.outputs[0], 'Add')
  const beta = addBeta ? other(addBeta, mul.outputs[0]!) : undefined
  const hasBeta = !!addBeta && vector(beta)
  const last = hasBeta ? addBeta! : mul
  const inputs = hasBeta ? [x, gamma!, beta!] : [x, gamma!]
  const name = g.uniqueNodeName(last.name ? last.name.replace(/\/[^/]*$/, '/LayerNormalization') : 'LayerNormalization')
  g.replaceNode(last, 'LayerNormalization', inputs, { name, attrs: [attrInt('axis', -1), attrFloat('epsilon', eps)] })
  return true
}
