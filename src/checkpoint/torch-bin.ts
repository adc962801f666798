/** pytorch_model.bin reader: placeholder until the restricted unpickler lands. */
import type { Tensor } from '../ir/tensor.js'
import { fail } from '../util/errors.js'

/** Read a torch.save state dict without running any code it names. */
export function readTorchBin(file: string): Map<string, Tensor> {
  fail(file, 'reading pytorch_model.bin is not implemented yet')
}
