/** `inspect`: what a checkpoint or an ONNX file holds, as figures. */
import fs from 'node:fs'
import { openCheckpoint } from '../checkpoint/index.js'
import type { ResolveOptions } from '../checkpoint/hf-cache.js'
import { readModelFile } from '../onnx/file.js'
import type { AlbertConfig } from '../checkpoint/config.js'
import { checkpointParameterStats, graphParameterStats, nodesDeep, type ParameterStats } from '../analysis/parameters.js'
import { factorization, findEmbeddingLookup, type Factorization } from '../analysis/factorization.js'

export interface InspectReport {
  /** the checkpoint or file as the user named it */
  path: string
  kind: 'checkpoint' | 'onnx'
  format: string
  /** a model of the Hugging Face cache: its id, the revision asked for and the commit read */
  hub?: { id: string; revision: string; commit: string }
  config?: ConfigSummary
  onnx?: {
    irVersion: number
    opsets: Record<string, number>
    producer: string
    nodes: number
    /** nodes of each op type in the graph and its subgraphs (both branches of a packed model's If) */
    opCounts: Record<string, number>
    inputs: string[]
    outputs: string[]
    metadata: Record<string, string>
  }
  parameters: ParameterStats
  /** Set when the embedding lookup was found (always for checkpoints). */
  factorization?: Factorization & { projectionFound: boolean }
}

export interface ConfigSummary {
  architecture: string | null
  vocab_size: number
  embedding_size: number
  hidden_size: number
  num_hidden_layers: number
  num_hidden_groups: number
  inner_group_num: number
  num_attention_heads: number
  intermediate_size: number
  hidden_act: string
  max_position_embeddings: number
  type_vocab_size: number
  layer_norm_eps: number
  num_labels: number
}

export function summarizeConfig(c: AlbertConfig): ConfigSummary {
  return {
    architecture: c.architectures[0] ?? null,
    vocab_size: c.vocabSize,
    embedding_size: c.embeddingSize,
    hidden_size: c.hiddenSize,
    num_hidden_layers: c.numHiddenLayers,
    num_hidden_groups: c.numHiddenGroups,
    inner_group_num: c.innerGroupNum,
    num_attention_heads: c.numAttentionHeads,
    intermediate_size: c.intermediateSize,
    hidden_act: c.hiddenAct,
    max_position_embeddings: c.maxPositionEmbeddings,
    type_vocab_size: c.typeVocabSize,
    layer_norm_eps: c.layerNormEps,
    num_labels: c.numLabels,
  }
}

export function inspect(target: string, cache: ResolveOptions = {}): InspectReport {
  const isOnnx = target.endsWith('.onnx') && fs.existsSync(target) && fs.statSync(target).isFile()
  return isOnnx ? inspectOnnx(target) : inspectCheckpoint(target, cache)
}

function inspectCheckpoint(target: string, cache: ResolveOptions): InspectReport {
  const ckpt = openCheckpoint(target, cache)
  const c = ckpt.config
  const tensors = new Map([...ckpt.weights].map(([k, e]) => [k, e.tensor]))
  return {
    path: target,
    kind: 'checkpoint',
    format: ckpt.format,
    ...(ckpt.repo ? { hub: { id: ckpt.repo.id, revision: ckpt.repo.revision, commit: ckpt.repo.commit } } : {}),
    config: summarizeConfig(c),
    parameters: checkpointParameterStats(c, tensors),
    factorization: {
      ...factorization(c.vocabSize, c.embeddingSize, c.hiddenSize),
      projectionFound: [...tensors.keys()].some((k) => k.endsWith('encoder.embedding_hidden_mapping_in.weight')),
    },
  }
}

function inspectOnnx(file: string): InspectReport {
  const model = readModelFile(file)
  const g = model.graph
  const report: InspectReport = {
    path: file,
    kind: 'onnx',
    format: 'onnx',
    onnx: {
      irVersion: model.irVersion,
      opsets: Object.fromEntries(model.opsetImports.map((o) => [o.domain || 'ai.onnx', o.version])),
      producer: [model.producerName, model.producerVersion].filter(Boolean).join(' '),
      nodes: g.nodes.length,
      opCounts: Object.fromEntries([...deepOpCounts(g)].sort(([a], [b]) => a.localeCompare(b))),
      inputs: g.inputs.filter((v) => !v.const).map((v) => v.name),
      outputs: g.outputs.map((v) => v.name),
      metadata: Object.fromEntries(model.metadataProps.map((p) => [p.key, p.value])),
    },
    parameters: graphParameterStats(g),
  }
  const lookup = findEmbeddingLookup(g)
  if (lookup) {
    const H = lookup.projection?.H ?? lookup.E
    report.factorization = { ...factorization(lookup.V, lookup.E, H), projectionFound: lookup.projection !== undefined }
  }
  return report
}

function deepOpCounts(g: Parameters<typeof nodesDeep>[0]): Map<string, number> {
  const counts = new Map<string, number>()
  for (const n of nodesDeep(g)) counts.set(n.opType, (counts.get(n.opType) ?? 0) + 1)
  return counts
}
