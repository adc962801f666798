/** Mobile-target passes: placeholders until they land (fix-shapes, quantize-qdq, quantize-weights). */
import type { Pass } from './pass.js'

const stub = (name: string, description: string): Pass => ({
  name,
  description,
  run() {
    throw new Error(`${name} is not implemented yet`)
  },
})

export const fixShapes = stub('fix-shapes', 'pin batch and sequence sizes and fold what they make constant')
export const quantizeQdq = stub('quantize-qdq', 'static int8 QDQ graph, activation scales calibrated on sample inputs')
export const quantizeWeights = stub('quantize-weights', 'weight-only int8 with standard DequantizeLinear')
