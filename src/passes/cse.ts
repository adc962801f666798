/**
 * cse: common subexpression elimination. Two nodes with the same op, domain, attributes and
 * inputs compute the same outputs; the later one is dropped and its readers read the first.
 * Exporters emit many such twins (a Shape node per view of the same tensor, Unsqueeze of the same
 * index), and merging constants (dedup) creates more. Safe for deterministic ops: random ops and
 * nodes holding subgraphs are never merged.
 */
import type { Attribute, Graph, Model, Node } from '../ir/graph.js'
import type { Pass, PassResult } from './pass.js'
import { cleanup } from '../ir/cleanup.js'

const NONDETERMINISTIC = new Set(['RandomNormal', 'RandomNormalLike', 'RandomUniform', 'RandomUniformLike', 'Multinomial', 'Bernoulli', 'Dropout'])

export const cse: Pass = {
  name: 'cse',
  description: 'merge nodes that compute the same thing from the same inputs',
  inPlace: true,
  run(model: Model): PassResult {
    const merged = eliminateCommonSubexpressions(model.graph)
    return { model, changed: merged > 0, stats: { nodesMerged: merged } }
  },
}

export function eliminateCommonSubexpressions(graph: Graph): number {
  graph.toposort()
  const seen = new Map<string, Node>()
  const outputs = new Set(graph.outputs)
  let merged = 0
  for (const node of [...graph.nodes]) {
    if (NONDETERMINISTIC.has(node.opType) || [...node.subgraphs()].length) continue
    const key = keyOf(node)
    const first = seen.get(key)
    if (!first) {
      seen.set(key, node)
      continue
    }
    if (node.outputs.some((o) => o && outputs.has(o))) continue
    node.outputs.forEach((o, i) => {
      const keep = first.outputs[i]
      if (o && keep) graph.replaceAllUses(o, keep)
    })
    merged++
  }
  if (merged) cleanup(graph)
  return merged
}

function keyOf(n: Node): string {
  const inputs = n.inputs.map((v) => (v ? v.name : '')).join('\u0001')
  const attrs = [...n.attributes].sort((a, b) => (a.name < b.name ? -1 : 1)).map(attrKey).join('\u0002')
  return `${n.domain}\u0003${n.opType}\u0003${n.outputs.length}\u0003${inputs}\u0003${attrs}`
}

function attrKey(a: Attribute): string {
  const parts: unknown[] = [a.name, a.type, a.f, a.i?.toString(), a.refAttrName]
  if (a.s) parts.push(Buffer.from(a.s).toString('base64'))
  if (a.floats) parts.push(a.floats.join(','))
  if (a.ints) parts.push(a.ints.map(String).join(','))
  if (a.strings) parts.push(a.strings.map((s) => Buffer.from(s).toString('base64')).join(','))
  // Tensor attributes are compared by identity of bytes: same dtype, dims and content.
  if (a.t) parts.push(a.t.dtype, a.t.dims.join('x'), Buffer.from(a.t.data).toString('base64'))
  if (a.tensors || a.graphs || a.g || a.unknown) parts.push(Math.random())
  return JSON.stringify(parts)
}
