/**
 * strip-metadata: drops what exporters annotate a graph with for debugging — metadata_props and
 * doc_string of every node, metadata_props of values (inputs, outputs, value_info, initializers)
 * and of the graph, in subgraphs too. The torch.export-based exporter writes module paths, FX
 * nodes and stack traces (absolute paths of the machine that exported) on every node: about 92%
 * of a small model's file. The model's own metadata_props (where albertkit stamps provenance),
 * names, types and value_info stay. Run it unless the annotations are wanted: leaving the pass out
 * keeps them. Safe: nothing reads them to compute.
 */
import type { Graph, Model, StringPair } from '../ir/graph.js'
import { inPlacePass, type Pass, type Rewrite } from './pass.js'

export const stripMetadata: Pass = inPlacePass({
  name: 'strip-metadata',
  description: "drop exporters' node, value and graph metadata (stack traces, module paths)",
  rewrite(model: Model): Rewrite {
    const counts = { nodes: 0, values: 0, entries: 0, bytes: 0 }
    stripGraph(model.graph, counts)
    return {
      changed: counts.entries > 0 || counts.nodes > 0,
      stats: { nodesStripped: counts.nodes, valuesStripped: counts.values, entriesRemoved: counts.entries, textBytesRemoved: counts.bytes },
    }
  },
})

interface Counts {
  nodes: number
  values: number
  entries: number
  bytes: number
}

const textBytes = (props: StringPair[] | undefined) => (props ?? []).reduce((n, p) => n + Buffer.byteLength(p.key) + Buffer.byteLength(p.value), 0)

function stripGraph(g: Graph, counts: Counts): void {
  if (g.metadataProps?.length) {
    counts.entries += g.metadataProps.length
    counts.bytes += textBytes(g.metadataProps)
    g.metadataProps = undefined
  }
  for (const n of g.nodes) {
    const props = n.metadataProps?.length ?? 0
    if (props || n.docString) {
      counts.nodes++
      counts.entries += props + (n.docString ? 1 : 0)
      counts.bytes += textBytes(n.metadataProps) + (n.docString ? Buffer.byteLength(n.docString) : 0)
      n.metadataProps = undefined
      n.docString = undefined
    }
    for (const sub of n.subgraphs()) stripGraph(sub, counts)
  }
  for (const v of g.values.values()) {
    if (!v.metadataProps?.length) continue
    counts.values++
    counts.entries += v.metadataProps.length
    counts.bytes += textBytes(v.metadataProps)
    v.metadataProps = undefined
  }
}
