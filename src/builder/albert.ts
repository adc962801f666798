/**
 * The ALBERT graph builder: config + weights → an fp32 ONNX graph (opset 17, standard ops only)
 * that computes what Hugging Face transformers computes, for every ALBERT head.
 *
 * Layout choices: the hidden state is kept 2-D ([batch·seq, hidden]) so every nn.Linear is one
 * Gemm(transB=1) on the checkpoint's own (out, in) weight: nothing is transposed or copied, and
 * each checkpoint tensor is one initializer, used by every layer call that shares it. The tied
 * MLM decoder reads the word-embedding initializer itself.
 */
import { DataType, dtypeName } from '../ir/dtype.js'
import { Graph, Model, attrInt, type Value } from '../ir/graph.js'
import { GraphBuilder } from '../ir/builder.js'
import { Tensor } from '../ir/tensor.js'
import { groupOfLayer, type AlbertConfig } from '../checkpoint/config.js'
import type { WeightEntry } from '../checkpoint/weights.js'
import type { Task } from '../checkpoint/task.js'
import { fail } from '../util/errors.js'
import { buildActivation, checkActivation } from './activations.js'

export const OUTPUTS_OF_TASK: Record<Task, string[]> = {
  'feature-extraction': ['last_hidden_state', 'pooler_output'],
  'fill-mask': ['logits'],
  pretraining: ['prediction_logits', 'sop_logits'],
  'text-classification': ['logits'],
  'token-classification': ['logits'],
  'question-answering': ['start_logits', 'end_logits'],
  'multiple-choice': ['logits'],
}

export const INPUT_NAMES = ['input_ids', 'attention_mask', 'token_type_ids'] as const

/** Where weights come from: checkpoint names, with or without the `albert.` prefix of task models. */
class WeightSource {
  private readonly values = new Map<string, Value>()
  readonly used = new Set<string>()

  constructor(
    private readonly graph: Graph,
    private readonly weights: Map<string, WeightEntry>,
    private readonly where: string,
  ) {}

  private resolve(name: string, base: boolean): string | undefined {
    const candidates = base ? [`albert.${name}`, name] : [name]
    return candidates.find((c) => this.weights.has(c))
  }

  has(name: string, base = true): boolean {
    return this.resolve(name, base) !== undefined
  }

  /** The checkpoint's key for tensor `name`, which must exist with `shape`; nothing is added to the graph. */
  expect(name: string, shape: number[], base = true): string {
    const key = this.resolve(name, base)
    if (key === undefined) {
      fail(this.where, `missing tensor '${base ? `albert.${name}` : name}' (expected shape [${shape.join(', ')}])`)
    }
    const { tensor, file } = this.weights.get(key)!
    if (tensor.dims.length !== shape.length || tensor.dims.some((d, i) => d !== shape[i])) {
      fail(file, `tensor '${key}' has shape [${tensor.dims.join(', ')}], expected [${shape.join(', ')}]`)
    }
    return key
  }

  /** The initializer for checkpoint tensor `name`, checked against `shape`; created once. */
  get(name: string, shape: number[], base = true): Value {
    const key = this.expect(name, shape, base)
    const cached = this.values.get(key)
    if (cached) return cached
    const { tensor, file } = this.weights.get(key)!
    let t = tensor
    const bad = firstNonFinite(t)
    if (bad !== undefined) fail(file, `tensor '${key}' holds a non-finite value (${bad}); the checkpoint is damaged`)
    if (t.dtype !== DataType.FLOAT) {
      if (t.dtype !== DataType.FLOAT16 && t.dtype !== DataType.BFLOAT16 && t.dtype !== DataType.DOUBLE) {
        fail(file, `tensor '${key}' is ${dtypeName(t.dtype)}, expected a floating-point type`)
      }
      t = Tensor.fromFloat32(shape, t.toFloat32())
    }
    const v = this.graph.addInitializer(key, t)
    this.values.set(key, v)
    this.used.add(key)
    return v
  }
}

/** The first NaN or ±Infinity in a float tensor, if any. */
function firstNonFinite(t: Tensor): number | undefined {
  if (t.dtype !== DataType.FLOAT && t.dtype !== DataType.FLOAT16 && t.dtype !== DataType.BFLOAT16 && t.dtype !== DataType.DOUBLE) return undefined
  const v = t.toFloat32()
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!
    if (x - x !== 0) return x
  }
  return undefined
}

export interface BuildOptions {
  task: Task
  /** Where errors about missing tensors point (the weight file or checkpoint folder). */
  where: string
  /** Where errors about the config point. */
  configFile: string
}

export interface BuiltModel {
  model: Model
  task: Task
  /** Checkpoint tensors the graph does not use (e.g. a pooler in an MLM checkpoint). */
  unused: string[]
}

export function buildAlbert(config: AlbertConfig, weights: Map<string, WeightEntry>, opts: BuildOptions): BuiltModel {
  checkActivation(config.hiddenAct, opts.configFile)
  const graph = new Graph()
  graph.name = 'albertkit'
  const model = new Model(graph)
  model.irVersion = 8
  model.opsetImports = [{ domain: '', version: 17 }]
  const b = new GraphBuilder(graph)
  const w = new WeightSource(graph, weights, opts.where)
  const { task } = opts
  const V = config.vocabSize
  const E = config.embeddingSize
  const H = config.hiddenSize
  // Before building: the sizes the config names against the weights that must hold them, and every
  // layer group and inner layer it names (the config's limits bound how many) present.
  w.expect('embeddings.word_embeddings.weight', [V, E])
  w.expect('encoder.embedding_hidden_mapping_in.weight', [H, E])
  for (let g = 0; g < config.numHiddenGroups; g++) {
    for (let j = 0; j < config.innerGroupNum; j++) {
      const p = `encoder.albert_layer_groups.${g}.albert_layers.${j}.`
      w.expect(`${p}attention.query.weight`, [H, H])
      w.expect(`${p}ffn.weight`, [config.intermediateSize, H])
    }
  }

  // Inputs.
  const multipleChoice = task === 'multiple-choice'
  const dims = multipleChoice ? ['batch_size', 'num_choices', 'sequence_length'] : ['batch_size', 'sequence_length']
  const inputs = INPUT_NAMES.map((name) => {
    const v = graph.addValue(name)
    v.setTensorType(DataType.INT64, [...dims])
    graph.inputs.push(v)
    return v
  })
  let [ids, mask, types] = inputs as [Value, Value, Value]
  if (multipleChoice) {
    // (batch, choices, seq) → (batch·choices, seq)
    b.within('flatten_choices', () => {
      const flat = b.concat([b.ints([-1]), b.shape(ids, 2, 3)])
      ids = b.reshape(ids, flat)
      mask = b.reshape(mask, flat)
      types = b.reshape(types, flat)
    })
  }
  const batchSeq = b.within('shapes', () => b.shape(ids)) // [B, S]

  // Embeddings.
  const embeddings = b.within('embeddings', () => {
    const word = b.op('Gather', [w.get('embeddings.word_embeddings.weight', [V, E]), ids], [], { label: 'word_embeddings' })
    const tokenType = b.op('Gather', [w.get('embeddings.token_type_embeddings.weight', [config.typeVocabSize, E]), types], [], {
      label: 'token_type_embeddings',
    })
    const seqLen = b.shape(ids, 1, 2)
    const positions = b.op('Slice', [w.get('embeddings.position_embeddings.weight', [config.maxPositionEmbeddings, E]), b.ints([0]), seqLen, b.ints([0])], [], {
      label: 'position_embeddings',
    })
    const sum = b.add(b.add(word, tokenType), positions)
    return b.layerNorm(sum, w.get('embeddings.LayerNorm.weight', [E]), w.get('embeddings.LayerNorm.bias', [E]), config.layerNormEps)
  })

  // Encoder: hidden state as [B·S, H].
  let hidden = b.within('mapping_in', () =>
    b.linear(b.reshape(embeddings, b.ints([-1, E])), w.get('encoder.embedding_hidden_mapping_in.weight', [H, E]), w.get('encoder.embedding_hidden_mapping_in.bias', [H])),
  )
  const maskBias = b.within('mask', () => {
    // (1 - mask) · float32-min, shaped [B, 1, 1, S]: padded keys get the dtype's most negative value.
    const m = b.op('Cast', [mask], [attrInt('to', DataType.FLOAT)])
    const inverted = b.sub(b.scalar(1), m)
    const scaled = b.mul(inverted, b.scalar(-3.4028234663852886e38))
    return b.op('Unsqueeze', [scaled, b.ints([1, 2])])
  })
  const heads = config.numAttentionHeads
  const headDim = H / heads
  const headsShape = b.within('shapes', () => b.concat([batchSeq, b.ints([heads, headDim])])) // [B, S, heads, headDim]
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const group = groupOfLayer(config, i)
    for (let j = 0; j < config.innerGroupNum; j++) {
      const prefix = `encoder.albert_layer_groups.${group}.albert_layers.${j}.`
      const scope = config.innerGroupNum > 1 ? `layer.${i}.${j}` : `layer.${i}`
      hidden = b.within(scope, () => albertLayer(b, w, config, prefix, hidden, maskBias, headsShape, headDim))
    }
  }

  let seq3d: Value | undefined
  const sequence3d = (): Value => (seq3d ??= b.within('encoder', () => b.reshape(hidden, b.concat([batchSeq, b.ints([H])]))))
  const pooled = (): Value =>
    b.within('pooler', () => {
      const first = b.op('Gather', [sequence3d(), b.scalar(0, DataType.INT64)], [attrInt('axis', 1)], { label: 'first_token' })
      return b.op('Tanh', [b.linear(first, w.get('pooler.weight', [H, H]), w.get('pooler.bias', [H]))])
    })
  const mlmLogits = (): Value =>
    b.within('predictions', () => {
      let t = b.linear(hidden, w.get('predictions.dense.weight', [E, H], false), w.get('predictions.dense.bias', [E], false), 'dense')
      t = b.within('act', () => buildActivation(b, config.hiddenAct, t, () => w.get('predictions.activation.weight', [1], false)))
      t = b.layerNorm(t, w.get('predictions.LayerNorm.weight', [E], false), w.get('predictions.LayerNorm.bias', [E], false), config.layerNormEps)
      const decoderWeight =
        !config.tieWordEmbeddings && w.has('predictions.decoder.weight', false)
          ? w.get('predictions.decoder.weight', [V, E], false)
          : w.get('embeddings.word_embeddings.weight', [V, E])
      const logits = b.linear(t, decoderWeight, w.get('predictions.bias', [V], false), 'decoder')
      return b.reshape(logits, b.concat([batchSeq, b.ints([V])]))
    })
  const L = config.numLabels
  const outputs: Record<string, Value> = {}
  switch (task) {
    case 'feature-extraction':
      outputs.last_hidden_state = sequence3d()
      outputs.pooler_output = pooled()
      break
    case 'fill-mask':
      outputs.logits = mlmLogits()
      break
    case 'pretraining':
      outputs.prediction_logits = mlmLogits()
      outputs.sop_logits = b.within('sop_classifier', () =>
        b.linear(pooled(), w.get('sop_classifier.classifier.weight', [L, H], false), w.get('sop_classifier.classifier.bias', [L], false)),
      )
      break
    case 'text-classification':
      outputs.logits = b.within('classifier', () => b.linear(pooled(), w.get('classifier.weight', [L, H], false), w.get('classifier.bias', [L], false)))
      break
    case 'token-classification':
      outputs.logits = b.within('classifier', () =>
        b.reshape(b.linear(hidden, w.get('classifier.weight', [L, H], false), w.get('classifier.bias', [L], false)), b.concat([batchSeq, b.ints([L])])),
      )
      break
    case 'question-answering': {
      if (L !== 2) fail(opts.configFile, `question answering needs num_labels 2 (start, end), the config has ${L}`)
      b.within('qa_outputs', () => {
        const qa = b.reshape(b.linear(hidden, w.get('qa_outputs.weight', [2, H], false), w.get('qa_outputs.bias', [2], false)), b.concat([batchSeq, b.ints([2])]))
        outputs.start_logits = b.op('Gather', [qa, b.scalar(0, DataType.INT64)], [attrInt('axis', 2)], { label: 'start' })
        outputs.end_logits = b.op('Gather', [qa, b.scalar(1, DataType.INT64)], [attrInt('axis', 2)], { label: 'end' })
      })
      break
    }
    case 'multiple-choice':
      outputs.logits = b.within('classifier', () => {
        const scores = b.linear(pooled(), w.get('classifier.weight', [1, H], false), w.get('classifier.bias', [1], false))
        return b.reshape(scores, b.concat([b.ints([-1]), b.shape(inputs[0]!, 1, 2)]))
      })
      break
  }

  const outShapes: Record<string, (string | number)[]> = {
    last_hidden_state: ['batch_size', 'sequence_length', H],
    pooler_output: ['batch_size', H],
    prediction_logits: ['batch_size', 'sequence_length', V],
    sop_logits: ['batch_size', L],
    start_logits: ['batch_size', 'sequence_length'],
    end_logits: ['batch_size', 'sequence_length'],
  }
  const logitsShape: Record<string, (string | number)[]> = {
    'fill-mask': ['batch_size', 'sequence_length', V],
    'text-classification': ['batch_size', L],
    'token-classification': ['batch_size', 'sequence_length', L],
    'multiple-choice': ['batch_size', 'num_choices'],
  }
  for (const name of OUTPUTS_OF_TASK[task]) {
    const v = outputs[name]!
    graph.renameValue(v, name)
    v.setTensorType(DataType.FLOAT, name === 'logits' ? logitsShape[task] : outShapes[name])
    graph.outputs.push(v)
  }
  const unused = [...weights.keys()].filter((k) => !w.used.has(k) && !isTiedAlias(k, config))
  return { model, task, unused }
}

/** Keys that duplicate a tied tensor (a .bin may store them); they are not "unused". */
function isTiedAlias(key: string, config: AlbertConfig): boolean {
  return config.tieWordEmbeddings && (key === 'predictions.decoder.weight' || key === 'predictions.decoder.bias')
}

/** One ALBERT layer (attention block + feed-forward) on the 2-D hidden state, weights under `p`. */
function albertLayer(
  b: GraphBuilder,
  w: WeightSource,
  config: AlbertConfig,
  p: string,
  hidden: Value,
  maskBias: Value,
  headsShape: Value,
  headDim: number,
): Value {
  const H = config.hiddenSize
  const I = config.intermediateSize
  const proj = (name: string) => b.linear(hidden, w.get(`${p}attention.${name}.weight`, [H, H]), w.get(`${p}attention.${name}.bias`, [H]), name)
  const attention = b.within('attn', () => {
    const q = b.transpose(b.reshape(proj('query'), headsShape), [0, 2, 1, 3]) // [B, h, S, d]
    const k = b.transpose(b.reshape(proj('key'), headsShape), [0, 2, 3, 1]) // [B, h, d, S]
    const v = b.transpose(b.reshape(proj('value'), headsShape), [0, 2, 1, 3]) // [B, h, S, d]
    const scores = b.mul(b.matmul(q, k), b.scalar(Math.fround(headDim ** -0.5)))
    const probs = b.op('Softmax', [b.add(scores, maskBias)], [attrInt('axis', -1)])
    const context = b.transpose(b.matmul(probs, v), [0, 2, 1, 3]) // [B, S, h, d]
    const flat = b.reshape(context, b.ints([-1, H]))
    const dense = b.linear(flat, w.get(`${p}attention.dense.weight`, [H, H]), w.get(`${p}attention.dense.bias`, [H]), 'dense')
    return b.layerNorm(b.add(hidden, dense), w.get(`${p}attention.LayerNorm.weight`, [H]), w.get(`${p}attention.LayerNorm.bias`, [H]), config.layerNormEps)
  })
  return b.within('ffn', () => {
    const up = b.linear(attention, w.get(`${p}ffn.weight`, [I, H]), w.get(`${p}ffn.bias`, [I]), 'ffn')
    const act = b.within('act', () => buildActivation(b, config.hiddenAct, up, () => w.get(`${p}activation.weight`, [1])))
    const down = b.linear(act, w.get(`${p}ffn_output.weight`, [H, I]), w.get(`${p}ffn_output.bias`, [H]), 'ffn_output')
    return b.layerNorm(b.add(down, attention), w.get(`${p}full_layer_layer_norm.weight`, [H]), w.get(`${p}full_layer_layer_norm.bias`, [H]), config.layerNormEps)
  })
}

