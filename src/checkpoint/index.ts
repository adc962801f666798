/**
 * Opening a checkpoint: find its config and weight files, read the weights with the reader for
 * their format, and hand back one name → tensor map. The graph builder never sees file formats.
 */
import fs from 'node:fs'
import path from 'node:path'
import type { Tensor } from '../ir/tensor.js'
import { fail } from '../util/errors.js'
import { printable } from '../util/printable.js'
import { readConfig, type AlbertConfig } from './config.js'
import { readJsonFile, statOrFail } from '../util/read.js'
import { readSafetensors } from './safetensors.js'
import { readTorchBin } from './torch-bin.js'
import { findTfCheckpoint, readTfCheckpoint } from './tf-checkpoint.js'
import type { WeightEntry } from './weights.js'
import { resolveCheckpoint, type CachedRepo, type ResolveOptions } from './hf-cache.js'

export interface Checkpoint {
  dir: string
  configFile: string
  config: AlbertConfig
  format: 'safetensors' | 'safetensors-sharded' | 'pytorch-bin' | 'pytorch-bin-sharded' | 'tf-checkpoint'
  /** Files that hold the weights, in reading order. */
  weightFiles: string[]
  weights: Map<string, WeightEntry>
  /** set when the checkpoint was found in the Hugging Face cache (hf-cache.ts) */
  repo?: CachedRepo
}

/** Weight file layouts albertkit reads, in order of preference. */
const SAFETENSORS = 'model.safetensors'
const SAFETENSORS_INDEX = 'model.safetensors.index.json'
const TORCH_BIN = 'pytorch_model.bin'
const TORCH_BIN_INDEX = 'pytorch_model.bin.index.json'
const TF_CONFIG = 'albert_config.json'
/** A shard index lists every tensor once (some 100 bytes each) in one object, beside a metadata object. */
const SHARD_INDEX_LIMITS = { what: 'a shard index', maxBytes: 64 << 20, maxDepth: 8, maxContainers: 1000 }

/** Open a Hugging Face checkpoint folder (or a file inside one), or a model in the Hugging Face cache (hf-cache.ts). */
export function openCheckpoint(where: string, source: ResolveOptions = {}): Checkpoint {
  const resolved = resolveCheckpoint(where, source)
  const ckpt = openFolder(resolved.path)
  return resolved.repo ? { ...ckpt, repo: resolved.repo } : ckpt
}

function openFolder(where: string): Checkpoint {
  // Kept as the user gave it (relative stays relative), so every message names their path.
  let dir = path.normalize(where).replace(/(.)\/+$/, '$1')
  const stat = statOrFail(dir, () => 'no such file or folder')
  if (stat.isFile()) dir = path.dirname(dir)
  // An original Google checkpoint: albert_config.json beside model.ckpt-N.index and its data files.
  const tfConfig = path.join(dir, TF_CONFIG)
  if (!fs.existsSync(path.join(dir, 'config.json')) && fs.existsSync(tfConfig)) {
    const tf = readTfCheckpoint(dir, tfConfig)
    return { dir, configFile: tfConfig, config: tf.config, format: 'tf-checkpoint', weightFiles: tf.weightFiles, weights: tf.weights }
  }
  const configFile = path.join(dir, 'config.json')
  if (!fs.existsSync(configFile) && findTfCheckpoint(dir)) fail(dir, `found a TensorFlow checkpoint but no ${TF_CONFIG} (and no config.json)`)
  const config = readConfig(configFile)

  const single = path.join(dir, SAFETENSORS)
  const index = path.join(dir, SAFETENSORS_INDEX)
  if (fs.existsSync(single)) {
    const st = readSafetensors(single)
    const weights = new Map<string, WeightEntry>()
    for (const [name, tensor] of st.tensors) weights.set(name, { tensor, file: single })
    return { dir, configFile, config, format: 'safetensors', weightFiles: [single], weights }
  }
  if (fs.existsSync(index)) return { dir, configFile, config, format: 'safetensors-sharded', ...readShardedSafetensors(index) }
  const bin = path.join(dir, TORCH_BIN)
  if (fs.existsSync(bin)) {
    const weights = new Map<string, WeightEntry>()
    for (const [name, tensor] of readTorchBin(bin)) weights.set(name, { tensor, file: bin })
    return { dir, configFile, config, format: 'pytorch-bin', weightFiles: [bin], weights }
  }
  const binIndex = path.join(dir, TORCH_BIN_INDEX)
  if (fs.existsSync(binIndex)) return { dir, configFile, config, format: 'pytorch-bin-sharded', ...readShards(binIndex, readTorchBin) }
  if (findTfCheckpoint(dir)) fail(dir, `found a TensorFlow checkpoint but no ${TF_CONFIG} (and no config.json)`)
  fail(dir, `no weights found (looked for ${SAFETENSORS}, ${SAFETENSORS_INDEX}, ${TORCH_BIN}, ${TORCH_BIN_INDEX} and a TensorFlow model.ckpt)`)
}

/** Sharded safetensors: the index maps each tensor to a shard; every shard is read once. */
export function readShardedSafetensors(indexFile: string): { weightFiles: string[]; weights: Map<string, WeightEntry> } {
  return readShards(indexFile, (file) => readSafetensors(file).tensors)
}

/** A sharded checkpoint: the index maps each tensor to a shard; every shard is read once with `read`. */
function readShards(indexFile: string, read: (file: string) => Map<string, Tensor>): { weightFiles: string[]; weights: Map<string, WeightEntry> } {
  const json = readJsonFile(indexFile, SHARD_INDEX_LIMITS)
  const map = (json as { weight_map?: unknown } | null)?.weight_map
  if (typeof map !== 'object' || map === null || Array.isArray(map)) fail(indexFile, "no 'weight_map' object")
  const dir = path.dirname(indexFile)
  const byShard = new Map<string, Set<string>>()
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    // A shard's name becomes part of every message about it: no control characters.
    if (typeof shard !== 'string' || shard === '' || shard !== path.basename(shard) || shard === '..' || printable(shard) !== shard) {
      fail(indexFile, `tensor '${printable(name)}' maps to ${printable(JSON.stringify(shard) ?? String(shard), 80)}, not a file name in the checkpoint folder`)
    }
    const set = byShard.get(shard) ?? new Set<string>()
    set.add(name)
    byShard.set(shard, set)
  }
  const weights = new Map<string, WeightEntry>()
  const weightFiles: string[] = []
  for (const [shard, names] of byShard) {
    const file = path.join(dir, shard)
    if (!fs.existsSync(file)) fail(file, `shard listed in ${path.basename(indexFile)} is missing`)
    const tensors = read(file)
    weightFiles.push(file)
    for (const name of names) {
      const tensor = tensors.get(name)
      if (!tensor) fail(file, `tensor '${printable(name)}' is listed in ${path.basename(indexFile)} but not in this shard`)
    }
    for (const [name, tensor] of tensors) {
      const prev = weights.get(name)
      if (prev) fail(file, `tensor '${printable(name)}' is also in ${path.basename(prev.file)}`)
      if (!names.has(name)) fail(file, `tensor '${printable(name)}' is in this shard but ${path.basename(indexFile)} does not list it here`)
      weights.set(name, { tensor, file })
    }
  }
  return { weightFiles, weights }
}
