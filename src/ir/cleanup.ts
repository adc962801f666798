/**
 * cleanup: removes what nothing needs, as onnx-graphsurgeon's `cleanup()` does — nodes none of
 * whose outputs are read (by a node or as a graph output) and values nothing reads or produces,
 * repeatedly, so whole dead chains go, subgraphs included. Graph inputs stay, even when unused,
 * since callers feed them. Always safe: ONNX ops have no side effects. Passes call it after a
 * rewrite; the remove-unused pass is this alone.
 */
import type { Graph, Node } from './graph.js'

/** Remove dead nodes and values from a graph (and its subgraphs); returns the counts. */
export function cleanup(graph: Graph): { nodes: number; values: number } {
  graph.toposort()
  const outputs = new Set(graph.outputs)
  let nodes = 0
  const order = graph.nodes
  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i]!
    const live = n.outputs.some((o) => o && (o.consumers.length > 0 || outputs.has(o)))
    if (live) continue
    detachDeep(n)
    graph.removeNode(n)
    nodes++
  }
  let values = 0
  const inputs = new Set(graph.inputs)
  for (const v of [...graph.values.values()]) {
    if (v.producer || v.consumers.length || inputs.has(v) || outputs.has(v)) continue
    graph.values.delete(v.name)
    values++
  }
  for (const n of graph.nodes) {
    for (const g of n.subgraphs()) {
      const r = cleanup(g)
      nodes += r.nodes
      values += r.values
    }
  }
  return { nodes, values }
}

/** A removed node's subgraphs stop reading outer values. */
function detachDeep(n: Node): void {
  for (const g of n.subgraphs()) {
    for (const inner of g.nodes) {
      detachDeep(inner)
      inner.inputs.forEach((v, k) => {
        if (v && v.graph !== g) inner.setInput(k, null)
      })
    }
  }
}
