/**
 * drop-value-info: forgets the types and shapes an exporter declared for intermediate values (its
 * value_info: the torch.export exporter writes one for every value, symbolic sizes included). The
 * passes rewrite around them, and onnxruntime plans with what is declared: on albert-base's dynamo
 * export the int8 model ran about 25% slower with them kept than without (B1 × 128, one thread).
 * Graph inputs and outputs keep theirs; values without a declared type are untouched, and a type
 * albertkit inferred itself is never written. Safe: value_info is optional, onnxruntime infers it.
 */
import type { Graph, Model } from '../ir/graph.js'
import { inPlacePass, type Pass, type Rewrite } from './pass.js'

export const dropValueInfo: Pass = inPlacePass({
  name: 'drop-value-info',
  description: "forget the exporter's declared types and shapes of intermediate values (value_info)",
  rewrite(model: Model): Rewrite {
    const dropped = dropGraph(model.graph)
    return { changed: dropped > 0, stats: { valuesDropped: dropped } }
  },
})

function dropGraph(g: Graph): number {
  const io = new Set([...g.inputs, ...g.outputs])
  let dropped = 0
  for (const v of g.values.values()) {
    if (v.const || io.has(v) || !v.type || v.type.inferred) continue
    v.type = undefined
    dropped++
  }
  for (const n of g.nodes) for (const sub of n.subgraphs()) dropped += dropGraph(sub)
  return dropped
}
