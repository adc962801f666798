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
import type { Model } from '../ir/graph.js'
import type { Pass, PassOptions, PassResult } from './pass.js'
import { applyInt8, planWeights } from './quant-common.js'

export const quantizeInt8Pass: Pass = {
  name: 'quantize-int8',
  description: 'int8 weights (each shared weight once), activations quantized at run time',
  run(model: Model, opts: PassOptions): PassResult {
    const contrib = opts.contribOps ?? true
    const { plans, skipped } = planWeights(model.graph, opts)
    const readers = applyInt8(model, plans, contrib)
    return {
      changed: plans.length > 0,
      stats: { weightsQuantized: plans.length, readers, leftFloat: skipped, perTensor: !!opts.perTensor, contribOps: contrib },
    }
  },
}
