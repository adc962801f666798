/**
 * ALBERT's config.json, typed, with Hugging Face's defaults for missing keys. Keys the model does
 * not use (old hub configs carry down_scale_factor, gap_size, ...) are ignored; values that would
 * make a broken model are rejected with the key named, and so are sizes past CONFIG_LIMITS, before
 * anything is built from them. Text from the file is escaped in messages.
 */
import fs from 'node:fs'
import { fail } from '../util/errors.js'
import { printable } from '../util/printable.js'
import { readJsonFile } from '../util/read.js'

export interface AlbertConfig {
  vocabSize: number
  embeddingSize: number
  hiddenSize: number
  numHiddenLayers: number
  numHiddenGroups: number
  numAttentionHeads: number
  intermediateSize: number
  innerGroupNum: number
  hiddenAct: string
  maxPositionEmbeddings: number
  typeVocabSize: number
  layerNormEps: number
  numLabels: number
  tieWordEmbeddings: boolean
  architectures: string[]
  /** label names by index, when the config gives them */
  id2label: Record<string, string> | undefined
  /** The parsed JSON, for copying through unchanged. */
  raw: Record<string, unknown>
}

/** HF AlbertConfig defaults (albert-xxlarge shaped). */
export const CONFIG_DEFAULTS = {
  vocab_size: 30000,
  embedding_size: 128,
  hidden_size: 4096,
  num_hidden_layers: 12,
  num_hidden_groups: 1,
  num_attention_heads: 64,
  intermediate_size: 16384,
  inner_group_num: 1,
  hidden_act: 'gelu_new',
  max_position_embeddings: 512,
  type_vocab_size: 2,
  layer_norm_eps: 1e-12,
} as const

/**
 * Ceilings far above any published ALBERT (base to xxlarge: 12 or 24 layers, hidden ≤ 4096,
 * intermediate ≤ 16384, ≤ 64 heads, 30,000 pieces, 512 positions). Weights bound most sizes (the
 * builder checks every tensor's shape), but not num_hidden_layers: ALBERT repeats its shared
 * layers, so a config alone could ask for a billion layer calls. These make a config that no
 * model could have an input error before anything is built.
 */
export const CONFIG_LIMITS = {
  vocab_size: 1 << 22,
  embedding_size: 1 << 16,
  hidden_size: 1 << 16,
  num_hidden_layers: 256,
  num_hidden_groups: 256,
  num_attention_heads: 1024,
  intermediate_size: 1 << 18,
  inner_group_num: 64,
  max_position_embeddings: 1 << 20,
  type_vocab_size: 1 << 16,
} as const
/** num_hidden_layers × inner_group_num: the layer blocks the graph holds, about 40 nodes each. */
export const MAX_LAYER_CALLS = 256
export const MAX_LABELS = 1 << 20
/**
 * What a config.json may hold: hub configs are a few kB, one naming 20,000 labels both ways a few
 * MB, and any real one has a handful of objects and lists (id2label, label2id, architectures).
 */
export const CONFIG_JSON_LIMITS = { what: 'a config.json', maxBytes: 8 << 20, maxDepth: 32, maxContainers: 10_000 }

export function readConfig(file: string): AlbertConfig {
  if (!fs.existsSync(file)) fail(file, 'not found (an ALBERT checkpoint needs a config.json)')
  return parseConfig(readJsonFile(file, CONFIG_JSON_LIMITS), file)
}

/** A value from the file for a message: JSON, control characters escaped, length capped. */
const show = (v: unknown) => printable(JSON.stringify(v) ?? String(v), 80)

export function parseConfig(json: unknown, file: string): AlbertConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(file, 'not a JSON object')
  const raw = json as Record<string, unknown>
  const modelType = raw.model_type
  const architectures = raw.architectures
  if (architectures !== undefined && architectures !== null) {
    if (!Array.isArray(architectures) || !architectures.every((a) => typeof a === 'string' && /^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(a))) {
      fail(file, `'architectures' is not a list of class names (got ${show(architectures)})`)
    }
  }
  const archs = (architectures as string[] | undefined | null) ?? []
  if (modelType === undefined) {
    if (!archs.some((a) => a.startsWith('Albert'))) fail(file, "no 'model_type' (expected \"albert\")")
  } else if (modelType !== 'albert') {
    fail(file, `model_type is ${show(modelType)}, not "albert": albertkit converts ALBERT models only`)
  }

  const int = (key: keyof typeof CONFIG_LIMITS, min = 1): number => {
    const v = raw[key] ?? CONFIG_DEFAULTS[key]
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) fail(file, `'${key}' must be an integer ≥ ${min}, got ${show(v)}`)
    const max = CONFIG_LIMITS[key]
    if (v > max) fail(file, `'${key}' is ${v}, over albertkit's limit of ${max} (far above any ALBERT model)`)
    return v
  }
  const hiddenSize = int('hidden_size')
  const heads = int('num_attention_heads')
  if (hiddenSize % heads !== 0) fail(file, `hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${heads}`)
  const layers = int('num_hidden_layers')
  const groups = int('num_hidden_groups')
  if (groups > layers) fail(file, `num_hidden_groups ${groups} is more than num_hidden_layers ${layers}`)
  const inner = int('inner_group_num')
  if (layers * inner > MAX_LAYER_CALLS) {
    fail(file, `num_hidden_layers ${layers} × inner_group_num ${inner} is ${layers * inner} layer calls, over albertkit's limit of ${MAX_LAYER_CALLS}`)
  }

  const act = raw.hidden_act ?? CONFIG_DEFAULTS.hidden_act
  if (typeof act !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(act)) fail(file, `'hidden_act' must be an activation name, got ${show(act)}`)
  const eps = raw.layer_norm_eps ?? CONFIG_DEFAULTS.layer_norm_eps
  if (typeof eps !== 'number' || !(eps >= 0) || !Number.isFinite(eps)) fail(file, `'layer_norm_eps' must be a non-negative number`)

  let id2label: Record<string, string> | undefined
  if (raw.id2label !== undefined && raw.id2label !== null) {
    if (typeof raw.id2label !== 'object' || Array.isArray(raw.id2label)) fail(file, "'id2label' is not an object")
    id2label = raw.id2label as Record<string, string>
  }
  let numLabels = 2
  if (typeof raw.num_labels === 'number') numLabels = raw.num_labels
  else if (id2label) numLabels = Object.keys(id2label).length
  if (!Number.isSafeInteger(numLabels) || numLabels < 1) fail(file, `'num_labels' must be a positive integer`)
  if (numLabels > MAX_LABELS) fail(file, `'num_labels' is ${numLabels}, over albertkit's limit of ${MAX_LABELS}`)

  const tie = raw.tie_word_embeddings ?? true
  if (typeof tie !== 'boolean') fail(file, "'tie_word_embeddings' must be true or false")

  return {
    vocabSize: int('vocab_size'),
    embeddingSize: int('embedding_size'),
    hiddenSize,
    numHiddenLayers: layers,
    numHiddenGroups: groups,
    numAttentionHeads: heads,
    intermediateSize: int('intermediate_size'),
    innerGroupNum: inner,
    hiddenAct: act,
    maxPositionEmbeddings: int('max_position_embeddings'),
    typeVocabSize: int('type_vocab_size'),
    layerNormEps: eps,
    numLabels,
    tieWordEmbeddings: tie,
    architectures: archs,
    id2label,
    raw,
  }
}

/** The group whose shared layers the i-th layer call runs, computed exactly as transformers does. */
export function groupOfLayer(config: AlbertConfig, i: number): number {
  return Math.trunc(i / (config.numHiddenLayers / config.numHiddenGroups))
}
