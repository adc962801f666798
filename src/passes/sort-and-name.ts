/**
 * sort-and-name: puts nodes in topological order (producers before consumers, as ONNX requires)
 * and gives every node a unique, non-empty name. Names of values are unique by construction.
 */
import type { Graph, Model } from '../ir/graph.js'
import type { Pass, PassResult } from './pass.js'

export const sortAndName: Pass = {
  name: 'sort-and-name',
  description: 'topological order and unique node names',
  run(model: Model): PassResult {
    const before = model.graph.nodes.slice()
    const renamed = tidy(model.graph)
    const reordered = model.graph.nodes.some((n, i) => n !== before[i])
    return { changed: renamed > 0 || reordered, stats: { renamed, reordered } }
  },
}

function tidy(graph: Graph): number {
  graph.toposort()
  const seen = new Set<string>()
  const taken = new Set(graph.nodes.map((n) => n.name))
  let renamed = 0
  for (const n of graph.nodes) {
    if (n.name && !seen.has(n.name)) {
      seen.add(n.name)
      continue
    }
    let i = 0
    let name: string
    do name = `${n.name || n.opType}_${i++}`
    while (seen.has(name) || taken.has(name))
    n.name = name
    seen.add(name)
    taken.add(name)
    renamed++
  }
  for (const n of graph.nodes) for (const g of n.subgraphs()) renamed += tidy(g)
  return renamed
}
