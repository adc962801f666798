/**
 * sort-and-name: puts nodes in topological order (producers before consumers, as ONNX requires)
 * and gives every node a unique, non-empty name. Names of values are unique by construction.
 */
import { unsorted } from '../ir/check.js'
import type { Graph, Model } from '../ir/graph.js'
import type { Pass, PassResult } from './pass.js'

export const sortAndName: Pass = {
  name: 'sort-and-name',
  description: 'topological order and unique node names',
  inPlace: true,
  ensures(model: Model): void {
    const problem = unsorted(model.graph) ?? duplicateNodeName(model.graph)
    if (problem) throw new Error(problem)
  },
  run(model: Model): PassResult {
    const before = model.graph.nodes.slice()
    const renamed = tidy(model.graph)
    const reordered = model.graph.nodes.some((n, i) => n !== before[i])
    return { model, changed: renamed > 0 || reordered, stats: { renamed, reordered } }
  },
}

function tidy(graph: Graph): number {
  graph.toposort()
  const seen = new Set<string>()
  const taken = new Set(graph.nodes.map((n) => n.name))
  // The suffix to try next for each base: every smaller one is taken (the sets only grow), so a
  // million unnamed Add nodes are named in linear time.
  const next = new Map<string, number>()
  let renamed = 0
  for (const n of graph.nodes) {
    if (n.name && !seen.has(n.name)) {
      seen.add(n.name)
      continue
    }
    const base = n.name || n.opType
    let i = next.get(base) ?? 0
    let name: string
    do name = `${base}_${i++}`
    while (seen.has(name) || taken.has(name))
    next.set(base, i)
    n.name = name
    seen.add(name)
    taken.add(name)
    renamed++
  }
  for (const n of graph.nodes) for (const g of n.subgraphs()) renamed += tidy(g)
  return renamed
}

/** A node name two nodes of the graph share, in words. */
function duplicateNodeName(graph: Graph): string | undefined {
  const seen = new Set<string>()
  for (const n of graph.nodes) {
    if (seen.has(n.name)) return `two nodes are named '${n.name}'`
    seen.add(n.name)
  }
  return undefined
}
