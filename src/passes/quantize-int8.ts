/**
 * quantize-int8: dynamic int8 quantization for CPUs. Every constant weight of a MatMul or Gemm
 * becomes int8, symmetric, with one scale per output channel (or per tensor on request); the
 * activations are quantized at run time (com.microsoft DynamicQuantizeMatMul, or with standard
 * ops only DynamicQuantizeLinear + MatMulInteger + rescale). Lookup tables (the word, position and
 * token-type embeddings) are stored int8 with per-row scales and dequantized after the lookup.
 *
 * A weight is quantized once, however many nodes read it (ALBERT's shared layers, the tied MLM
 * decoder), and no float copy of it stays. A weight some reader cannot take quantized (or that
 * keepNodes/keepOps keep in float) stays float for all its readers. Safe up to quantization error.
 */
import { DataType } from '../ir/dtype.js'
import { cleanup } from '../ir/cleanup.js'
import { attrInt, type Graph, type Model, type Node, type Value } from '../ir/graph.js'
import type { Pass, PassContext, PassResult } from './pass.js'
import { fusableBias, int8Weight, planWeights, rewriteLookup, storeInt8, type StoredWeight, type Use, type WeightPlan } from './quant-common.js'

export const quantizeInt8: Pass = {
  name: 'quantize-int8',
  description: 'int8 weights (each shared weight once), activations quantized at run time',
  inPlace: true,
  run(model: Model, { options: opts }: PassContext): PassResult {
    const contrib = opts.contribOps ?? true
    const { plans, skipped } = planWeights(model.graph, opts)
    const readers = applyInt8(model, plans, contrib)
    return {
      model,
      changed: plans.length > 0,
      stats: { weightsQuantized: plans.length, readers, leftFloat: skipped, perTensor: !!opts.perTensor, contribOps: contrib },
    }
  },
}

/** Lookup tables with more rows than this keep their per-row scales in float16 (half the bytes). */
export const HALF_SCALE_ROWS = 4096

/** Should this weight's scales be stored as float16? */
export function wantsHalfScales(plan: WeightPlan): boolean {
  return !plan.perTensor && plan.channelAxis === 0 && plan.uses.some((u) => u.kind === 'lookup') && plan.weight.const!.dims[0]! > HALF_SCALE_ROWS
}

/**
 * Quantize the planned weights to int8 and rewrite every reader: linear layers to a dynamically
 * quantized matmul, lookups to gather-then-dequantize. Returns the number of readers rewritten.
 */
export function applyInt8(model: Model, plans: WeightPlan[], contrib: boolean): number {
  const graph = model.graph
  const dql = new Map<Value, Value[]>()
  let readers = 0
  for (const plan of plans) {
    const qw = int8Weight(plan.weight.const!, plan.channelAxis, plan.perTensor, plan.storeTransposed, wantsHalfScales(plan))
    const stored = storeInt8(graph, plan, qw)
    const [R, C] = plan.weight.const!.dims as [number, number]
    for (const use of plan.uses) {
      if (use.kind === 'lookup') rewriteLookup(graph, use, stored, plan.perTensor)
      else if (use.kind === 'attention') rewriteAttention(graph, use.node, stored, dql)
      else rewriteLinear(graph, use, stored, use.orientation === 'NK' ? R : C, contrib, dql)
      readers++
    }
  }
  if (plans.length) {
    if (contrib) model.requireOpset('com.microsoft', 1)
    graph.toposort()
    cleanup(graph)
  }
  return readers
}

/** The activation quantized once per value (uint8, scale, zero point), shared by its readers. */
function quantizedActivation(graph: Graph, a: Value, before: Node, dql: Map<Value, Value[]>): [Value, Value, Value] {
  let q = dql.get(a)
  if (!q) {
    const d = graph.addNode('DynamicQuantizeLinear', [a], [`${a.name}_quant`, `${a.name}_scale`, `${a.name}_zero_point`], {
      name: graph.uniqueNodeName(`${a.name}_DynamicQuantizeLinear`),
    })
    graph.moveLastBefore(before)
    q = d.outputs as Value[]
    dql.set(a, q)
  }
  return q as [Value, Value, Value]
}

/** Attention with an int8 packed weight: QAttention on the dynamically quantized input. */
function rewriteAttention(graph: Graph, node: Node, stored: StoredWeight, dql: Map<Value, Value[]>): void {
  const [aq, aScale, aZero] = quantizedActivation(graph, node.inputs[0]!, node, dql)
  const inputs = [aq, stored.q, node.inputs[2] ?? null, aScale, stored.floatScale(), node.inputs[3] ?? null, aZero]
  graph.replaceNode(node, 'QAttention', inputs, {
    name: graph.uniqueNodeName(node.name.replace(/Attention$/, 'QAttention') || 'QAttention'),
    domain: 'com.microsoft',
    attrs: node.attributes.filter((a) => a.name === 'num_heads' || a.name === 'mask_filter_value'),
  })
}

function rewriteLinear(graph: Graph, use: Extract<Use, { kind: 'linear' }>, stored: StoredWeight, N: number, contrib: boolean, dql: Map<Value, Value[]>): void {
  const node = use.node
  const a = node.inputs[0]!
  // The bias: Gemm's C when it is a plain [N] vector, or the Add right after a MatMul.
  let bias: Value | null = null
  let replaced: Node = node
  let extraAdd: Value | null = null
  if (node.opType === 'Gemm' && node.inputs[2]) {
    const c = node.inputs[2]
    if (c.const && c.const.dims.length === 1 && c.const.dims[0] === N) bias = c
    else extraAdd = c
  } else if (node.opType === 'MatMul') {
    const fused = fusableBias(node, N)
    if (fused) {
      bias = fused.bias
      graph.removeNode(node)
      replaced = fused.add
    }
  }
  const name = node.name || `${stored.q.name}_matmul`
  const b = stored.linearB()
  let result: Node
  if (contrib) {
    const inputs = bias ? [a, b, stored.floatScale(), null, bias] : [a, b, stored.floatScale()]
    result = extraAdd
      ? graph.addNodeBefore(replaced, 'DynamicQuantizeMatMul', inputs, `${name}_quant`, { domain: 'com.microsoft' })
      : graph.replaceNode(replaced, 'DynamicQuantizeMatMul', inputs, { name: graph.uniqueNodeName(`${name}_quant`), domain: 'com.microsoft' })
  } else {
    const [aq, aScale, aZero] = quantizedActivation(graph, a, replaced, dql)
    const mm = graph.addNodeBefore(replaced, 'MatMulInteger', [aq, b, aZero], `${name}_MatMulInteger`)
    const f = graph.addNodeBefore(replaced, 'Cast', [mm.outputs[0]!], `${name}_cast`, { attrs: [attrInt('to', DataType.FLOAT)] })
    const scale = graph.addNodeBefore(replaced, 'Mul', [aScale, stored.floatScale()], `${name}_scale`)
    if (bias || extraAdd) {
      const y = graph.addNodeBefore(replaced, 'Mul', [f.outputs[0]!, scale.outputs[0]!], `${name}_rescale`)
      result = y
    } else {
      result = graph.replaceNode(replaced, 'Mul', [f.outputs[0]!, scale.outputs[0]!], { name: graph.uniqueNodeName(`${name}_rescale`) })
    }
    if (bias) {
      result = graph.replaceNode(replaced, 'Add', [result.outputs[0]!, bias], { name: graph.uniqueNodeName(`${name}_bias`) })
      return
    }
  }
  if (extraAdd) graph.replaceNode(replaced, 'Add', [result.outputs[0]!, extraAdd], { name: graph.uniqueNodeName(`${name}_bias`) })
}
