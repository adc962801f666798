/**
 * Checks of a graph's structure that every stage relies on, each answering with what is wrong in
 * words (naming a node or value) or undefined: the ONNX reader refuses a file that fails one, and
 * the pass manager checks them around every pass (a failure there is a bug in a pass).
 */
import type { Graph } from './graph.js'

/** A value read (by a node, or as a graph output) that nothing defines: no producer, no constant, no graph input. This graph only. */
export function undefinedValue(g: Graph): string | undefined {
  const inputs = new Set(g.inputs)
  const outputs = new Set(g.outputs)
  for (const v of g.values.values()) {
    if (v.producer || v.const || inputs.has(v)) continue
    if (v.consumers.length > 0) return `${v.consumers[0]} reads '${v.name}', which nothing defines`
    if (outputs.has(v)) return `graph output '${v.name}' is never defined`
  }
  return undefined
}

/** The same for the graph and every subgraph in it. */
export function undefinedValueDeep(g: Graph): string | undefined {
  const own = undefinedValue(g)
  if (own) return own
  for (const n of g.nodes) {
    for (const sub of n.subgraphs()) {
      const inner = undefinedValueDeep(sub)
      if (inner) return inner
    }
  }
  return undefined
}

/** A node listed before the producer of a value it reads (the graph's own nodes; ONNX wants producers first). */
export function unsorted(g: Graph): string | undefined {
  const placed = new Set()
  for (const n of g.nodes) {
    for (const v of n.inputs) {
      const p = v?.producer
      if (p && g.contains(p) && !placed.has(p)) return `${n} reads '${v!.name}' before ${p} makes it`
    }
    placed.add(n)
  }
  return undefined
}
