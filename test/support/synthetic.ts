/**
 * Synthetic ALBERT checkpoints written from JavaScript (random weights, no goldens): for structure
 * tests and benchmarks at full size without Python. Tensor names follow transformers' state dict.
 */
import fs from 'node:fs'
import path from 'node:path'
import { encodeSafetensors } from '../../src/checkpoint/safetensors.js'
import { Tensor } from '../../src/ir/tensor.js'

export interface SyntheticConfig {
  vocab_size: number
  embedding_size: number
  hidden_size: number
  num_hidden_layers: number
  num_hidden_groups: number
  inner_group_num: number
  num_attention_heads: number
  intermediate_size: number
  max_position_embeddings: number
  type_vocab_size: number
  hidden_act: string
}

export const ALBERT_BASE: SyntheticConfig = {
  vocab_size: 30000,
  embedding_size: 128,
  hidden_size: 768,
  num_hidden_layers: 12,
  num_hidden_groups: 1,
  inner_group_num: 1,
  num_attention_heads: 12,
  intermediate_size: 3072,
  max_position_embeddings: 512,
  type_vocab_size: 2,
  hidden_act: 'gelu_new',
}

/** Deterministic pseudo-random normal-ish values (xorshift + sum of uniforms). */
function fill(n: number, scale: number, seed: number, offset = 0): Float32Array {
  const out = new Float32Array(n)
  let s = seed >>> 0 || 1
  for (let i = 0; i < n; i++) {
    let acc = 0
    for (let k = 0; k < 3; k++) {
      s ^= s << 13
      s ^= s >>> 17
      s ^= s << 5
      acc += (s >>> 0) / 4294967296
    }
    out[i] = offset + (acc - 1.5) * 2 * scale
  }
  return out
}

/** The AlbertModel state dict (no `albert.` prefix) for a config. */
export function albertModelTensors(c: SyntheticConfig, seed = 1): Map<string, Tensor> {
  const t = new Map<string, Tensor>()
  let k = seed
  const add = (name: string, dims: number[], scale: number, offset = 0) =>
    t.set(name, Tensor.fromFloat32(dims, fill(dims.reduce((a, b) => a * b, 1), scale, k++ * 7919, offset)))
  const { vocab_size: V, embedding_size: E, hidden_size: H, intermediate_size: I } = c
  add('embeddings.word_embeddings.weight', [V, E], 0.5)
  add('embeddings.position_embeddings.weight', [c.max_position_embeddings, E], 0.5)
  add('embeddings.token_type_embeddings.weight', [c.type_vocab_size, E], 0.5)
  add('embeddings.LayerNorm.weight', [E], 0.3, 1)
  add('embeddings.LayerNorm.bias', [E], 0.2)
  add('encoder.embedding_hidden_mapping_in.weight', [H, E], 1.2 / Math.sqrt(E))
  add('encoder.embedding_hidden_mapping_in.bias', [H], 0.1)
  for (let g = 0; g < c.num_hidden_groups; g++) {
    for (let j = 0; j < c.inner_group_num; j++) {
      const p = `encoder.albert_layer_groups.${g}.albert_layers.${j}.`
      for (const n of ['query', 'key', 'value', 'dense']) {
        add(`${p}attention.${n}.weight`, [H, H], 1.2 / Math.sqrt(H))
        add(`${p}attention.${n}.bias`, [H], 0.1)
      }
      add(`${p}attention.LayerNorm.weight`, [H], 0.3, 1)
      add(`${p}attention.LayerNorm.bias`, [H], 0.2)
      add(`${p}ffn.weight`, [I, H], 1.2 / Math.sqrt(H))
      add(`${p}ffn.bias`, [I], 0.1)
      add(`${p}ffn_output.weight`, [H, I], 1.2 / Math.sqrt(I))
      add(`${p}ffn_output.bias`, [H], 0.1)
      add(`${p}full_layer_layer_norm.weight`, [H], 0.3, 1)
      add(`${p}full_layer_layer_norm.bias`, [H], 0.2)
    }
  }
  add('pooler.weight', [H, H], 1.2 / Math.sqrt(H))
  add('pooler.bias', [H], 0.1)
  return t
}

/** Write config.json + model.safetensors for an AlbertModel checkpoint; returns the folder. */
export function writeSyntheticCheckpoint(dir: string, c: SyntheticConfig, seed = 1): string {
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...c, model_type: 'albert', architectures: ['AlbertModel'] }, null, 2))
  fs.writeFileSync(path.join(dir, 'model.safetensors'), Buffer.concat(encodeSafetensors(albertModelTensors(c, seed))))
  return dir
}
