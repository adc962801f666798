/** fp16: placeholder until the fp16 pass lands. */
import type { Pass } from './pass.js'

export const fp16: Pass = {
  name: 'fp16',
  description: 'weights and compute in float16, float32 kept where float16 breaks',
  run() {
    throw new Error('fp16 is not implemented yet')
  },
}
