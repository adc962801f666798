/**
 * quantize-weights: weight-only int8 with standard ops. Every quantizable weight becomes int8,
 * symmetric, one scale per output channel, stored once however many layer calls share it, and is
 * read through one DequantizeLinear(axis) per weight; embedding tables are int8 per row, gathered
 * then dequantized (qdq-common.ts). Compute stays float32: activations are not quantized, so no
 * calibration of scales is needed. The file is about a quarter of the float one. The accuracy
 * guard (accuracy-guard.ts) runs it on calibration and held-out inputs (as quantize-qdq does) and
 * keeps in float the weights that cost most, when needed to stay within cosine 0.9995 and top-1 agreement 99.9% of the float model.
 *
 * Safe up to the weights' rounding error (at most half a step of each channel's scale).
 */
import type { Model } from '../ir/graph.js'
import type { Pass, PassContext, PassResult } from './pass.js'
import { applyQdqWeights, guardedQuantization, planQdqWeights } from './qdq-common.js'

export const quantizeWeights: Pass = {
  name: 'quantize-weights',
  description: 'weight-only int8 with standard DequantizeLinear, float compute',
  inPlace: true,
  run(model: Model, context: PassContext): Promise<PassResult> {
    return guardedQuantization('quantize-weights', model, context, () => [], (m, kept, _ranges, cache) => {
      const { plans: all, skipped } = planQdqWeights(m, context.options)
      const chosen = all.filter((p) => !kept.has(p.weight.name))
      const w = applyQdqWeights(m, chosen, false, skipped + all.length - chosen.length, cache)
      return { weightsQuantized: w.weights, linearReaders: w.readers.length, lookups: w.lookups, int8Bytes: w.int8Bytes, leftFloat: w.leftFloat }
    })
  },
}
