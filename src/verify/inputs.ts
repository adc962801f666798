/**
 * The inputs models are run on for the parity verdict (and for calibration): seeded random token
 * batches shaped like real ones, sized to fit the model's positions, and the attention mask that
 * tells padding from tokens. Real text comes through the tokenizer (tokenizer/index.ts `textFeeds`).
 */
import { DataType } from '../ir/dtype.js'
import { Tensor, bytesOf } from '../ir/tensor.js'
import type { AlbertConfig } from '../checkpoint/config.js'

/** The sizes inputs must respect: a checkpoint's config, or what verify/signature.ts finds in an ONNX graph. */
export type InputShape = Pick<AlbertConfig, 'vocabSize' | 'typeVocabSize' | 'maxPositionEmbeddings'>
import type { Task } from '../checkpoint/task.js'
import { UsageError } from '../util/errors.js'
import type { TokenMask } from './compare.js'

/** One set of named model inputs. */
export type Feed = Map<string, Tensor>

/** A small, seeded generator (mulberry32): the same seed gives the same inputs everywhere. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export interface InputSpec {
  batch: number
  sequence: number
  seed: number
  /** multiple-choice: choices per example */
  choices?: number
}

export const DEFAULT_INPUTS: InputSpec = { batch: 3, sequence: 64, seed: 1234, choices: 2 }

/**
 * The random inputs asked for. Without `sequence` the default applies: 64 tokens, or the model's
 * max_position_embeddings when it has fewer. An explicit sequence beyond the model's positions is
 * a usage error (see `resolveInputSpec`); `sequenceFrom` names where it came from for that message
 * (`--sequence`, or a recipe's `inputs.sequence`).
 */
export interface InputRequest {
  batch: number
  seed: number
  sequence?: number | undefined
  choices?: number
  sequenceFrom?: string
}

/** `--sequence 1000 is beyond the model's 40 positions (max_position_embeddings in ckpt/config.json)` */
export function beyondPositions(what: string, positions: number, configFile: string): string {
  return `${what} is beyond the model's ${positions} positions (max_position_embeddings in ${configFile}); give ${positions} or fewer`
}

/** The inputs to run: the default sequence adapted to the model, an explicit one checked against it. */
export function resolveInputSpec(request: InputRequest, config: InputShape, configFile: string): InputSpec {
  const positions = config.maxPositionEmbeddings
  if (request.sequence !== undefined && request.sequence > positions) {
    throw new UsageError(beyondPositions(`${request.sequenceFrom ?? '--sequence'} ${request.sequence}`, positions, configFile))
  }
  const sequence = request.sequence ?? Math.min(DEFAULT_INPUTS.sequence, positions)
  return { batch: request.batch, sequence, seed: request.seed, choices: request.choices ?? DEFAULT_INPUTS.choices ?? 2 }
}

/** `random, seed 1234, batch 3, sequence 32`: the inputs as they ran. */
export function describeRandomInputs(spec: InputSpec): string {
  return `random, seed ${spec.seed}, batch ${spec.batch}, sequence ${spec.sequence}`
}

/**
 * Seeded token ids shaped like real batches: [CLS] text [SEP] text [SEP], lengths from a quarter of
 * the sequence to all of it (the first row full), padding after, two segments where the model has
 * token types. The sequence must fit the model's positions (resolveInputSpec).
 */
export function randomInputs(config: InputShape, task: Task, spec: InputSpec = DEFAULT_INPUTS): Map<string, Tensor> {
  const next = rng(spec.seed)
  const rows = task === 'multiple-choice' ? spec.batch * (spec.choices ?? 2) : spec.batch
  const S = spec.sequence
  // resolveInputSpec refuses a longer sequence; here it would be a caller's bug
  if (!(S >= 1 && S <= config.maxPositionEmbeddings)) throw new RangeError(`randomInputs: sequence ${S} outside 1..${config.maxPositionEmbeddings} positions`)
  const ids = new BigInt64Array(rows * S)
  const mask = new BigInt64Array(rows * S)
  const types = new BigInt64Array(rows * S)
  const low = Math.min(5, config.vocabSize - 1)
  for (let r = 0; r < rows; r++) {
    const len = r === 0 ? S : Math.max(3, Math.floor(S / 4 + next() * ((3 * S) / 4)))
    const split = 1 + Math.floor(next() * (len - 2))
    for (let i = 0; i < len; i++) {
      const o = r * S + i
      let id = low + Math.floor(next() * (config.vocabSize - low))
      if (i === 0) id = 2
      else if (i === len - 1 || i === split) id = 3
      ids[o] = BigInt(Math.min(id, config.vocabSize - 1))
      mask[o] = 1n
      if (config.typeVocabSize > 1 && i > split) types[o] = 1n
    }
  }
  const dims = task === 'multiple-choice' ? [spec.batch, spec.choices ?? 2, S] : [rows, S]
  return new Map([
    ['input_ids', new Tensor(DataType.INT64, dims, bytesOf(ids))],
    ['attention_mask', new Tensor(DataType.INT64, dims, bytesOf(mask))],
    ['token_type_ids', new Tensor(DataType.INT64, dims, bytesOf(types))],
  ])
}

/** The inputs' attention mask as a token mask, or undefined when there is none. */
export function tokenMask(feeds: Feed): TokenMask | undefined {
  const m = feeds.get('attention_mask')
  if (!m) return undefined
  const values = m.toBigInt64()
  const keep = new Uint8Array(values.length)
  for (let i = 0; i < values.length; i++) keep[i] = values[i] !== 0n ? 1 : 0
  return { dims: m.dims, keep }
}

/** Verification inputs shaped like a model pinned to [B, S] (fix-shapes), or `spec` itself when nothing is pinned. */
export function pinnedInputSpec(spec: InputSpec, fixed: [number, number] | undefined): InputSpec {
  return fixed ? { ...spec, batch: fixed[0], sequence: fixed[1] } : spec
}
