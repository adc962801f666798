/**
 * remove-unused: drops nodes none of whose outputs are read (by a node or as a graph output) and
 * initializers nothing reads, repeatedly, so whole dead chains go (the IR's `cleanup`). Always
 * safe: ONNX ops have no side effects. Graph inputs stay, even when unused, since callers feed them.
 */
import { cleanup } from '../ir/cleanup.js'
import type { Model } from '../ir/graph.js'
import type { Pass, PassResult } from './pass.js'

export const removeUnused: Pass = {
  name: 'remove-unused',
  description: 'remove nodes and initializers nothing reads',
  inPlace: true,
  run(model: Model): PassResult {
    const { nodes, values } = cleanup(model.graph)
    return { model, changed: nodes + values > 0, stats: { nodesRemoved: nodes, valuesRemoved: values } }
  },
}
