/**
 * quantize-weights: weight-only int8 with standard ops. Every quantizable weight becomes int8,
 * symmetric, one scale per output channel, stored once however many layer calls share it, and is
 * read through one DequantizeLinear(axis) per weight; embedding tables are int8 per row, gathered
 * then dequantized (qdq-common.ts). Compute stays float32: activations are not quantized, so no
 * calibration of scales is needed. The file is about a quarter of the float one. The accuracy
 * guard (accuracy-guard.ts) runs it on calibration inputs (as quantize-qdq does) and keeps in
 * float the weights that cost most, when needed to stay within cosine 0.9995 of the float model.
 *
 * Safe up to the weights' rounding error (at most half a step of each channel's scale).
 */
import type { Model } from '../ir/graph.js'
import { guardedRewrite } from './accuracy-guard.js'
import { calibrate, calibrationFeeds } from './calibrate.js'
import type { Pass, PassOptions, PassResult } from './pass.js'
import { applyQdqWeights, planQdqWeights } from './qdq-common.js'
import type { Int8Weight } from './quant-common.js'
import { guardResult } from './quantize-qdq.js'

export const quantizeWeights: Pass = {
  name: 'quantize-weights',
  description: 'weight-only int8 with standard DequantizeLinear, float compute',
  async run(model: Model, opts: PassOptions): Promise<PassResult> {
    const { plans } = planQdqWeights(model, opts)
    if (plans.length === 0) return { changed: false, stats: { weightsQuantized: 0 } }
    const feeds = calibrationFeeds(model.graph, opts.calibration)
    const { reference } = await calibrate(model, [], feeds)
    const cache = new Map<string, Int8Weight>()
    const rewrite = (m: Model, kept: ReadonlySet<string>) => {
      const { plans: all, skipped } = planQdqWeights(m, opts)
      const chosen = all.filter((p) => !kept.has(p.weight.name))
      const w = applyQdqWeights(m, chosen, false, skipped + all.length - chosen.length, cache)
      return { weightsQuantized: w.weights, linearReaders: w.readers.length, lookups: w.lookups, int8Bytes: w.int8Bytes, leftFloat: w.leftFloat }
    }
    const { stats, guard } = await guardedRewrite(model, plans.map((p) => p.weight.name), rewrite, reference, feeds)
    return guardResult(stats, guard, feeds.length, opts)
  },
}
