/**
 * fold-constants: computes at build time what does not depend on model inputs — Constant nodes
 * become initializers, and shape arithmetic on constants or on values whose shape is static
 * (Shape → Gather → Unsqueeze → Concat, ConstantOfShape, Range, ...) becomes constants. Safe:
 * only ops evaluated exactly here are folded, small tensors only, except a Transpose of a weight
 * nothing else reads (folding it stores the weight once, in the layout its reader wants).
 */
import { evaluateNode, MAX_ELEMENTS } from '../ir/evaluate.js'
import { inferTypes } from '../ir/infer.js'
import type { Graph, Model, Node } from '../ir/graph.js'
import type { Pass, PassResult } from './pass.js'
import { sweep } from './remove-unused.js'

export const foldConstants: Pass = {
  name: 'fold-constants',
  description: 'turn Constant nodes and input-independent shape arithmetic into initializers',
  run(model: Model): PassResult {
    const folded = foldGraph(model.graph)
    if (folded) sweep(model.graph)
    return { changed: folded > 0, stats: { nodesFolded: folded } }
  },
}

export function foldGraph(graph: Graph): number {
  graph.toposort()
  inferTypes(graph)
  const outputs = new Set(graph.outputs)
  let folded = 0
  for (const node of [...graph.nodes]) {
    if (node.outputs.some((o) => o && outputs.has(o))) continue
    if (!worthFolding(node)) continue
    let result
    try {
      result = evaluateNode(node)
    } catch {
      result = undefined
    }
    if (!result || result.length !== node.outputs.length) continue
    // An output that is an input's own tensor (Identity) aliases that input: no second copy.
    const aliases = node.outputs.map((_, i) => node.inputs.find((v) => v?.const === result[i]))
    graph.replaceByConstants(node, result)
    node.outputs.forEach((o, i) => {
      const same = aliases[i]
      if (o && same) {
        graph.replaceAllUses(o, same)
        o.const = undefined
      }
    })
    folded++
  }
  return folded
}

function worthFolding(node: Node): boolean {
  if (node.opType === 'Transpose') {
    const input = node.inputs[0]
    return !!input?.const && (input.const.size <= MAX_ELEMENTS || input.consumers.length === 1)
  }
  return true
}
