/**
 * Opening a checkpoint: find its config and weight files, read the weights with the reader for
 * their format, and hand back one name → tensor map. The graph builder never sees file formats.
 */
import fs from 'node:fs'
import path from 'node:path'
import type { Tensor } from '../ir/tensor.js'
import { fail } from '../util/errors.js'
import { readConfig, type AlbertConfig } from './config.js'
import { readSafetensors } from './safetensors.js'

export interface WeightEntry {
  tensor: Tensor
  /** The file the tensor came from (for error messages). */
  file: string
}

export interface Checkpoint {
  dir: string
  configFile: string
  config: AlbertConfig
  format: 'safetensors' | 'safetensors-sharded'
  /** Files that hold the weights, in reading order. */
  weightFiles: string[]
  weights: Map<string, WeightEntry>
}

/** Weight file layouts albertkit reads, in order of preference. */
const SAFETENSORS = 'model.safetensors'
const SAFETENSORS_INDEX = 'model.safetensors.index.json'

/** Open a Hugging Face checkpoint folder (or a file inside one). */
export function openCheckpoint(where: string): Checkpoint {
  let dir = path.resolve(where)
  let stat: fs.Stats
  try {
    stat = fs.statSync(dir)
  } catch {
    fail(where, 'no such file or folder')
  }
  if (stat.isFile()) dir = path.dirname(dir)
  const configFile = path.join(dir, 'config.json')
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
  fail(dir, `no weights found (looked for ${SAFETENSORS} and ${SAFETENSORS_INDEX})`)
}

/** Sharded safetensors: the index maps each tensor to a shard; every shard is read once. */
export function readShardedSafetensors(indexFile: string): { weightFiles: string[]; weights: Map<string, WeightEntry> } {
  let json: unknown
  try {
    json = JSON.parse(fs.readFileSync(indexFile, 'utf8'))
  } catch (e) {
    fail(indexFile, `not a readable JSON index (${(e as Error).message})`)
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map
  if (typeof map !== 'object' || map === null || Array.isArray(map)) fail(indexFile, "no 'weight_map' object")
  const dir = path.dirname(indexFile)
  const byShard = new Map<string, Set<string>>()
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard === '' || shard !== path.basename(shard) || shard === '..') {
      fail(indexFile, `tensor '${name}' maps to ${JSON.stringify(shard)}, not a file name in the checkpoint folder`)
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
    const st = readSafetensors(file)
    weightFiles.push(file)
    for (const name of names) {
      const tensor = st.tensors.get(name)
      if (!tensor) fail(file, `tensor '${name}' is listed in ${path.basename(indexFile)} but not in this shard`)
    }
    for (const [name, tensor] of st.tensors) {
      const prev = weights.get(name)
      if (prev) fail(file, `tensor '${name}' is also in ${path.basename(prev.file)}`)
      if (!names.has(name)) fail(file, `tensor '${name}' is in this shard but ${path.basename(indexFile)} does not list it here`)
      weights.set(name, { tensor, file })
    }
  }
  return { weightFiles, weights }
}
