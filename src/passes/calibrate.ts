/**
 * Calibration for static quantization (not a pass): run the float model on sample inputs (through
 * the context's model runner), with the activations to quantize exposed as extra graph outputs of
 * a copy, and record each one's range. Sample inputs are the caller's (cut to the model's pinned
 * batch size) or seeded random token batches shaped like the model's inputs (verify/inputs.ts
 * `randomInputs`, with a seed of its own so calibration and verification never see the same batch).
 */
import { DataType } from '../ir/dtype.js'
import { cloneModel, type Graph, type Model, type Value } from '../ir/graph.js'
import { inferTypes } from '../ir/infer.js'
import { Tensor } from '../ir/tensor.js'
import type { AlbertConfig } from '../checkpoint/config.js'
import { UserError } from '../util/errors.js'
import { DEFAULT_INPUTS, randomInputs, type Feed } from '../verify/inputs.js'
import type { OutputMap } from '../verify/verdict.js'
import type { ModelRunner } from './pass.js'

export interface Range {
  min: number
  max: number
}

/**
 * Random feeds made when the caller gives none: `rows` rows from `seed`; and as many held-out rows
 * from `holdoutSeed` that the accuracy guard also judges on (never calibrated on), so that what it
 * keeps in float holds on inputs the scales were not fitted to.
 */
const RANDOM_FEEDS = { rows: 8, seed: 20_240, holdoutSeed: 30_240 } as const

/** What a calibration run saw: each named value's range, and the model's own outputs (all feeds, rows concatenated). */
export interface Calibration {
  ranges: Map<string, Range>
  reference: OutputMap
}

/** Run the float model on every feed, recording the range of each named float value. */
export async function calibrate(model: Model, names: string[], feeds: readonly Feed[], runner: ModelRunner): Promise<Calibration> {
  const probe = cloneModel(model)
  const outputs = probe.graph.outputs.map((v) => v.name)
  exposeValues(probe.graph, names)
  const ranges = new Map<string, Range>(names.map((n) => [n, { min: Infinity, max: -Infinity }]))
  const each = (out: OutputMap) => {
    for (const name of names) widen(ranges.get(name)!, out.get(name)!.data)
  }
  const reference = await runner.run(probe, feeds, { exact: true, each, keep: outputs })
  return { ranges, reference }
}

function widen(r: Range, data: Float32Array): void {
  for (let i = 0; i < data.length; i++) {
    const x = data[i]!
    if (x < r.min) r.min = x
    if (x > r.max) r.max = x
  }
}

/** Make the named values graph outputs, typed by element only (shapes inferred earlier may be stale). */
function exposeValues(g: Graph, names: string[]): void {
  inferTypes(g)
  for (const name of names) {
    const v = g.values.get(name)
    if (!v) throw new Error(`calibration: no value '${name}'`)
    if (v.isGraphOutput) continue
    if (!v.type?.tensor || v.type.inferred) v.setTensorType(v.elemType ?? DataType.FLOAT)
    g.outputs.push(v)
  }
}

/** The caller's feeds fitted to the model's pinned input sizes, or default random feeds. */
export function calibrationFeeds(g: Graph, given: Feed[] | undefined): Feed[] {
  return given?.length ? given.flatMap((f) => fitFeed(g, f)) : randomFeeds(g)
}

const modelInputs = (g: Graph): Value[] => g.inputs.filter((v) => !v.const)

/** One feed cut into feeds of the pinned batch size; its other sizes must match the pinned ones. */
function fitFeed(g: Graph, feed: Feed): Feed[] {
  const inputs = modelInputs(g)
  const tensors = inputs.map((v) => feed.get(v.name) ?? noInput(v.name, feed))
  const rows = tensors[0]?.dims[0] ?? 0
  const pinned = inputs[0]?.shape?.[0]
  const batch = typeof pinned === 'number' ? pinned : rows
  inputs.forEach((v, k) => {
    const t = tensors[k]!
    const shape = v.shape ?? []
    const fits = t.dims.length === shape.length && t.dims[0] === rows && shape.every((d, i) => i === 0 || typeof d !== 'number' || d === t.dims[i])
    if (!fits) throw new UserError(`calibration input '${v.name}' is [${t.dims}], the model is pinned to [${shape}] (and every input needs ${rows} rows)`)
  })
  if (batch < 1 || rows % batch !== 0) throw new UserError(`calibration inputs have ${rows} rows, not a multiple of the pinned batch ${batch}`)
  return Array.from({ length: rows / batch }, (_, p) => new Map(inputs.map((v, k) => [v.name, rowsOf(tensors[k]!, p * batch, batch)])))
}

function noInput(name: string, feed: Feed): never {
  throw new UserError(`calibration inputs have no '${name}' (they have ${[...feed.keys()].join(', ')})`)
}

/** Rows [start, start + count) of a tensor along axis 0 (a view). */
function rowsOf(t: Tensor, start: number, count: number): Tensor {
  if (start === 0 && count === t.dims[0]) return t
  const row = t.byteLength / t.dims[0]!
  return new Tensor(t.dtype, [count, ...t.dims.slice(1)], t.data.subarray(start * row, (start + count) * row))
}

/**
 * Held-out random feeds for the accuracy guard: shaped like calibration's default ones, another
 * seed. None for a model with inputs random feeds cannot make (its calibration inputs are the user's).
 */
export function holdoutFeeds(g: Graph): Feed[] {
  if (!modelInputs(g).every((v) => RANDOM_INPUTS.has(v.name))) return []
  return randomFeeds(g, RANDOM_FEEDS.holdoutSeed)
}

const RANDOM_INPUTS = new Set(['input_ids', 'attention_mask', 'token_type_ids'])

/** Seeded random token batches shaped like the model's inputs, RANDOM_FEEDS.rows rows in all. */
function randomFeeds(g: Graph, seed: number = RANDOM_FEEDS.seed): Feed[] {
  const shape = modelInputs(g)[0]?.shape ?? []
  const batch = typeof shape[0] === 'number' ? shape[0] : RANDOM_FEEDS.rows
  const feeds: Feed[] = []
  for (let k = 0; k * batch < RANDOM_FEEDS.rows; k++) feeds.push(randomModelFeed(g, { batch, seed: seed + k }))
  return feeds
}

/**
 * One seeded random batch for any ALBERT graph (another exporter's too), shaped like its inputs:
 * sizes the graph pins are kept, the others are `spec`'s (batch; sequence up to DEFAULT_INPUTS'
 * and the position table's rows); token ids below the embedding table's rows. What calibration
 * and `optimize --target`'s verdict run on.
 */
export function randomModelFeed(g: Graph, spec: { batch: number; seed: number; sequence?: number }): Feed {
  const inputs = modelInputs(g)
  const shape = inputs[0]?.shape ?? []
  const fixed = (i: number) => (typeof shape[i] === 'number' ? (shape[i] as number) : undefined)
  const rank = shape.length
  const positions = positionRows(g)
  const sequence = fixed(rank - 1) ?? Math.min(spec.sequence ?? DEFAULT_INPUTS.sequence, positions ?? Infinity)
  const config = { vocabSize: tableRows(g, 'input_ids') ?? 2, typeVocabSize: tableRows(g, 'token_type_ids') ?? 1, maxPositionEmbeddings: sequence } as AlbertConfig
  const task = rank === 3 ? 'multiple-choice' : 'feature-extraction'
  const all = randomInputs(config, task, { batch: fixed(0) ?? spec.batch, sequence, seed: spec.seed, choices: fixed(1) ?? DEFAULT_INPUTS.choices ?? 2 })
  return new Map(inputs.map((v) => [v.name, all.get(v.name) ?? missing(v.name)]))
}

function missing(name: string): never {
  throw new UserError(`no random input for model input '${name}' (albertkit makes input_ids, attention_mask and token_type_ids): pass calibration inputs`)
}

/** A value's constant: an initializer, or the tensor of the Constant node that makes it (TorchScript exports, before fold-constants). */
function constantOf(v: Value | null | undefined): Tensor | undefined {
  if (v?.const) return v.const
  const p = v?.producer
  return p?.opType === 'Constant' && p.domain === '' ? p.attr('value')?.t : undefined
}

/** Rows of the constant table a model input indexes (through reshapes of the ids). */
function tableRows(g: Graph, input: string): number | undefined {
  const queue = [g.values.get(input)].filter((v): v is Value => !!v)
  for (let steps = 0; queue.length && steps < 8; steps++) {
    for (const n of queue.shift()!.consumers) {
      const table = constantOf(n.inputs[0])
      if (n.opType === 'Gather' && table && n.inputs[1] !== n.inputs[0]) return table.dims[0]
      if (['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity'].includes(n.opType)) queue.push(n.outputs[0]!)
    }
  }
  return undefined
}

/**
 * Rows of the position table, when the model has one: a float [P, E] table sliced along axis 0
 * (albertkit's graphs), or the int64 [1, P] position_ids buffer exporters slice instead.
 */
function positionRows(g: Graph): number | undefined {
  for (const x of g.nodes) {
    const t = x.opType === 'Slice' && !constantOf(x.inputs[2]) ? constantOf(x.inputs[0]) : undefined
    if (!t || t.dims.length !== 2) continue
    if (t.dtype === DataType.INT64 && t.dims[0] === 1) return t.dims[1]
    if (t.dtype !== DataType.INT64) return t.dims[0]
  }
  return undefined
}
