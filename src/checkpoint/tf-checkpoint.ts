/** Original Google ALBERT (TF1) checkpoints: placeholder until the bundle reader lands. */
import type { AlbertConfig } from './config.js'
import type { WeightEntry } from './index.js'
import { fail } from '../util/errors.js'

export interface TfCheckpoint {
  config: AlbertConfig
  weightFiles: string[]
  weights: Map<string, WeightEntry>
}

/** The `model.ckpt-N.index` file of a folder, if it holds a TF checkpoint. */
export function findTfCheckpoint(dir: string): string | undefined {
  void dir
  return undefined
}

/** Read albert_config.json and the tensor bundle, names mapped to Hugging Face's. */
export function readTfCheckpoint(dir: string, configFile: string): TfCheckpoint {
  void configFile
  fail(dir, 'reading TensorFlow checkpoints is not implemented yet')
}
