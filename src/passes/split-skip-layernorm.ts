/**
 * split-skip-layernorm: com.microsoft SkipLayerNormalization(input, skip, γ[, β[, bias]]), as
 * onnxruntime's transformer optimizer writes it, goes back to Add(input, skip) →
 * LayerNormalization(·, γ[, β], axis=-1): the form albertkit's cpu target keeps (on the CPU
 * provider the fused op measured slower) and the standard-ops form for mobile. A bias goes back
 * onto the bias-free MatMul (constant weight) that computes input or skip — MatMul + Add, the
 * linear layer the quantizer and the fusions recognize — or, when neither is one, onto the sum.
 * Candidates are every com.microsoft SkipLayerNormalization; one whose mean or inverse-deviation
 * output is read is left as is and reported. Its fourth output (the sum) is read from the Add.
 * Safe: the same arithmetic.
 */
import { DataType } from '../ir/dtype.js'
import { attrFloat, attrInt, type Graph, type Model, type Node, type Value } from '../ir/graph.js'
import { nodeList } from './fusion.js'
import { inPlacePass, type Pass, type Rewrite } from './pass.js'
import { cleanup } from '../ir/cleanup.js'

export const splitSkipLayerNorm: Pass = inPlacePass({
  name: 'split-skip-layernorm',
  description: 'com.microsoft SkipLayerNormalization → Add (+ bias) + LayerNormalization',
  rewrite(model: Model): Rewrite {
    const g = model.graph
    let split = 0
    let candidates = 0
    let biasesMoved = 0
    const left: Node[] = []
    for (const n of [...g.nodes]) {
      if (n.opType !== 'SkipLayerNormalization' || n.domain !== 'com.microsoft') continue
      candidates++
      const r = splitOne(g, n)
      if (!r) {
        left.push(n)
        continue
      }
      split++
      if (r.biasOnMatMul) biasesMoved++
    }
    if (split) cleanup(g)
    const warnings = left.length
      ? [`split-skip-layernorm: ${split} of ${candidates} candidates split: the mean or inverse deviation of ${nodeList(left)} is read`]
      : []
    return { changed: split > 0, stats: { split, biasesMoved }, warnings }
  },
})

/** The output of a MatMul by a constant float matrix that only `reader` reads. */
function bareMatMul(v: Value, reader: Node): boolean {
  const mm = v.producer
  const w = mm?.inputs[1]?.const
  return !!mm && mm.opType === 'MatMul' && mm.domain === '' && !!w && w.dtype === DataType.FLOAT && w.dims.length === 2 && !v.isGraphOutput && v.consumers.length === 1 && v.consumers[0] === reader
}

/** Split one SkipLayerNormalization in place; undefined (left as is) when its mean or inverse deviation is read. */
export function splitOne(g: Graph, n: Node): { biasOnMatMul: boolean } | undefined {
  if (n.outputs.slice(1, 3).some((o) => o && (o.consumers.length || o.isGraphOutput))) return undefined
  let [input, skip] = n.inputs as [Value | null, Value | null]
  const [, , gamma, beta, bias] = n.inputs
  if (!input || !skip || !gamma) return undefined
  const base = n.name || 'SkipLayerNormalization'
  let biasOnMatMul = false
  if (bias) {
    const onInput = bareMatMul(input, n)
    const onSkip = !onInput && bareMatMul(skip, n)
    if (onInput || onSkip) {
      const target = onInput ? input : skip
      const biased = g.addNodeBefore(n, 'Add', [target, bias], `${target.producer!.name || base}_bias`).outputs[0]!
      if (onInput) input = biased
      else skip = biased
      biasOnMatMul = true
    }
  }
  let sum = g.addNodeBefore(n, 'Add', [input, skip], `${base}_residual`).outputs[0]!
  if (bias && !biasOnMatMul) sum = g.addNodeBefore(n, 'Add', [sum, bias], `${base}_bias`).outputs[0]!
  const total = n.outputs[3]
  if (total) g.replaceAllUses(total, sum)
  for (const o of n.outputs.slice(1)) if (o) o.producer = null
  n.outputs.length = 1
  const name = g.uniqueNodeName(n.name ? n.name.replace(/SkipLayerNorm(alization)?/, 'LayerNorm') : 'LayerNormalization')
  g.replaceNode(n, 'LayerNormalization', beta ? [sum, gamma, beta] : [sum, gamma], {
    name,
    attrs: [attrInt('axis', -1), attrFloat('epsilon', n.attrFloat('epsilon', 1e-12))],
  })
  return { biasOnMatMul }
}
