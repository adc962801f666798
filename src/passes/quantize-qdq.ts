/**
 * quantize-qdq: static int8 as a QDQ graph of standard ONNX ops, for onnxruntime's mobile path.
 * Weights: int8, symmetric, one scale per output channel, each stored once however many layer
 * calls share it, read through DequantizeLinear(axis) by every MatMul/Gemm (qdq-common.ts);
 * embedding tables int8 per row, gathered then dequantized. Activations: the input of every
 * quantized MatMul/Gemm goes through QuantizeLinear → DequantizeLinear, uint8 with a scale and
 * zero point from the range seen when the float model ran on calibration inputs
 * (`options.calibration`, else seeded random inputs; see calibrate.ts). Each layer call gets its
 * own activation scales (the values differ per call); the weights it reads are shared.
 * LayerNormalization, Softmax, the attention MatMuls (activation × activation), GELU and the mask
 * path stay float. A Gemm's bias becomes an Add after it, so that the Gemm with its two
 * DequantizeLinear inputs is a QDQ node unit onnxruntime runs as an int8 kernel.
 *
 * An accuracy guard (accuracy-guard.ts) runs the result on the calibration inputs and on as many
 * held-out random rows (calibrate.ts `holdoutFeeds`), and keeps in float the few weights or
 * activations that cost most, when needed to stay within cosine 0.9995 and top-1 agreement 99.9% of the float model there.
 *
 * Safe up to quantization error, bounded by the calibrated ranges: inputs far outside what
 * calibration saw are clipped. Needs onnxruntime-node (calibration and the guard).
 */
import { DataType } from '../ir/dtype.js'
import type { Graph, Model, Node, Value } from '../ir/graph.js'
import { Tensor } from '../ir/tensor.js'
import type { Range } from './calibrate.js'
import type { Pass, PassContext, PassOptions, PassResult } from './pass.js'
import { applyQdqWeights, guardedQuantization, linearInputs, planQdqWeights } from './qdq-common.js'
import { roundEven, type Int8Weight, type WeightPlan } from './quant-common.js'
import { cleanup } from '../ir/cleanup.js'

export const quantizeQdq: Pass = {
  name: 'quantize-qdq',
  description: 'static int8 QDQ graph, activation scales calibrated on sample inputs',
  inPlace: true,
  run(model: Model, context: PassContext): Promise<PassResult> {
    const activations = (plans: WeightPlan[]) => [...linearInputs(plans).keys()].map((v) => v.name)
    return guardedQuantization('quantize-qdq', model, context, activations, (m, kept, ranges, cache) => rewrite(m, context.options, kept, ranges, cache))
  },
}

interface QdqStats extends Record<string, number> {
  weightsQuantized: number
  linearReaders: number
  lookups: number
  activations: number
  biasesSplit: number
  leftFloat: number
}

/** Quantize every planned weight and activation but those `kept` in float. */
function rewrite(model: Model, opts: Readonly<PassOptions>, kept: ReadonlySet<string>, ranges: Map<string, Range>, cache: Map<string, Int8Weight>): QdqStats {
  const g = model.graph
  const { plans, skipped } = planQdqWeights(model, opts)
  const chosen = plans.filter((p) => !kept.has(p.weight.name))
  const inputs = [...linearInputs(chosen)].filter(([a]) => !kept.has(a.name))
  const w = applyQdqWeights(model, chosen, true, skipped + plans.length - chosen.length, cache)
  for (const [a, readers] of inputs) quantizeActivation(g, a, readers, uint8Params(ranges.get(a.name)!))
  const biases = w.readers.filter((n) => splitBias(g, n)).length
  g.toposort()
  cleanup(g)
  return { weightsQuantized: w.weights, linearReaders: w.readers.length, lookups: w.lookups, activations: inputs.length, biasesSplit: biases, leftFloat: w.leftFloat }
}

export interface QuantParams {
  scale: number
  zeroPoint: number
}

/** uint8 asymmetric parameters covering [min, max] and 0 (so zero padding is exact). */
export function uint8Params(r: Range): QuantParams {
  const lo = Math.min(0, r.min)
  const hi = Math.max(0, r.max)
  if (!(hi > lo) || !Number.isFinite(hi - lo)) return { scale: 1, zeroPoint: 0 }
  const scale = Math.fround((hi - lo) / 255)
  const zeroPoint = Math.max(0, Math.min(255, roundEven(-lo / scale)))
  return { scale, zeroPoint }
}

/** One QuantizeLinear of the value, one DequantizeLinear per reader (a node unit each). */
function quantizeActivation(g: Graph, a: Value, readers: Node[], p: QuantParams): void {
  const scale = g.addInitializer(g.uniqueName(`${a.name}_scale`), Tensor.scalarFloat(p.scale))
  const zero = g.addInitializer(g.uniqueName(`${a.name}_zero_point`), new Tensor(DataType.UINT8, [], Uint8Array.of(p.zeroPoint)))
  const qName = `${a.name}_QuantizeLinear`
  const q = g.addNode('QuantizeLinear', [a, scale, zero], [`${a.name}_quantized`], { name: g.uniqueNodeName(qName) }).outputs[0]!
  for (const reader of readers) {
    const dqName = `${reader.name || a.name}_input_DequantizeLinear`
    const dq = g.addNode('DequantizeLinear', [q, scale, zero], [`${a.name}_dequantized`], { name: g.uniqueNodeName(dqName) }).outputs[0]!
    reader.inputs.forEach((v, i) => {
      if (v === a) reader.setInput(i, dq)
    })
  }
}

/** Gemm(A, B, C) → Add(Gemm(A, B), C): the bias stays float (and shared), the Gemm a QDQ unit. */
function splitBias(g: Graph, gemm: Node): boolean {
  const c = gemm.inputs[2]
  if (gemm.opType !== 'Gemm' || !c) return false
  const attrs = gemm.attributes.filter((a) => a.name !== 'beta')
  const name = gemm.name || 'Gemm'
  const product = g.addNode('Gemm', [gemm.inputs[0]!, gemm.inputs[1]!], [`${gemm.outputs[0]!.name}_product`], { name: g.uniqueNodeName(`${name}_product`), attrs })
  g.replaceNode(gemm, 'Add', [product.outputs[0]!, c], { name: g.uniqueNodeName(`${name}_bias`) })
  return true
}
