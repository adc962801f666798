/** What every checkpoint reader hands back: tensors by checkpoint name, each with the file it came from. */
import type { Tensor } from '../ir/tensor.js'

export interface WeightEntry {
  tensor: Tensor
  /** The file the tensor came from (for error messages). */
  file: string
}

/** A checkpoint's weights by name: the one map the graph builder reads. */
export type Weights = Map<string, WeightEntry>
