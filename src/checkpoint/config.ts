/**
 * ALBERT's config.json, typed, with Hugging Face's defaults for missing keys. Keys the model does
 * not use (old hub configs carry down_scale_factor, gap_size, ...) are ignored; values that would
 * make a broken model are rejected with the key named.
 */
import fs from 'node:fs'
import { fail } from '../util/errors.js'

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

export function readConfig(file: string): AlbertConfig {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    fail(file, code === 'ENOENT' ? 'not found (an ALBERT checkpoint needs a config.json)' : `cannot read: ${code}`)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    fail(file, `not valid JSON (${(e as Error).message})`)
  }
  return parseConfig(json, file)
}

export function parseConfig(json: unknown, file: string): AlbertConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(file, 'not a JSON object')
  const raw = json as Record<string, unknown>
  const modelType = raw.model_type
  const architectures = raw.architectures
  if (architectures !== undefined && architectures !== null) {
    if (!Array.isArray(architectures) || !architectures.every((a) => typeof a === 'string')) {
      fail(file, "'architectures' is not a list of names")
    }
  }
  const archs = (architectures as string[] | undefined | null) ?? []
  if (modelType === undefined) {
    if (!archs.some((a) => a.startsWith('Albert'))) fail(file, "no 'model_type' (expected \"albert\")")
  } else if (modelType !== 'albert') {
    fail(file, `model_type is ${JSON.stringify(modelType)}, not "albert": albertkit converts ALBERT models only`)
  }

  const int = (key: keyof typeof CONFIG_DEFAULTS, min = 1): number => {
    const v = raw[key] ?? CONFIG_DEFAULTS[key]
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) fail(file, `'${key}' must be an integer ≥ ${min}, got ${JSON.stringify(v)}`)
    return v
  }
  const hiddenSize = int('hidden_size')
  const heads = int('num_attention_heads')
  if (hiddenSize % heads !== 0) fail(file, `hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${heads}`)
  const layers = int('num_hidden_layers')
  const groups = int('num_hidden_groups')
  if (groups > layers) fail(file, `num_hidden_groups ${groups} is more than num_hidden_layers ${layers}`)

  const act = raw.hidden_act ?? CONFIG_DEFAULTS.hidden_act
  if (typeof act !== 'string') fail(file, `'hidden_act' must be a name, got ${JSON.stringify(act)}`)
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
    innerGroupNum: int('inner_group_num'),
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
