/**
 * The parity verdict: run a reference and every candidate model on the same inputs and compare
 * output by output (max abs, mean abs, cosine, top-1 agreement for logits) against thresholds
 * chosen by precision. The reference is the checkpoint through albertkit's plain fp32 graph run
 * with onnxruntime's graph optimizations off (the tests prove that graph against transformers),
 * or goldens computed by PyTorch.
 */
import { DataType } from '../ir/dtype.js'
import { Tensor, bytesOf } from '../ir/tensor.js'
import type { AlbertConfig } from '../checkpoint/config.js'
import type { Task } from '../builder/albert.js'
import { compareTokens, type Parity, type TokenMask } from './compare.js'
import { runOnce, type SessionOptions } from './runtime.js'
import { UsageError } from '../util/errors.js'

export type OutputMap = Map<string, { data: Float32Array; dims: number[] }>

export interface Thresholds {
  /** largest allowed max abs error */
  maxAbs?: number
  /** smallest allowed cosine similarity */
  cosine?: number
  /** smallest allowed share of rows whose argmax agrees (logits outputs only) */
  top1?: number
}

/** Thresholds over the precision defaults: for every model, and for models of one precision (which win). */
export interface ThresholdOverrides extends Thresholds {
  byPrecision?: Partial<Record<string, Thresholds>>
}

export const DEFAULT_THRESHOLDS: Record<string, Thresholds> = {
  fp32: { maxAbs: 1e-4 },
  fp16: { cosine: 0.9999 },
  int8: { cosine: 0.999, top1: 0.99 },
  int4: { cosine: 0.99 },
}

export interface OutputVerdict extends Parity {
  name: string
  /** positions holding padding that were left out of this output's figures */
  padded?: number
  /** One line per threshold missed: which figure, its value, the bound, by how much. */
  failures: string[]
}

export interface ArtifactVerdict {
  path: string
  precision: string
  pass: boolean
  thresholds: Thresholds
  outputs: OutputVerdict[]
}

/** Precision of a model file from its transformers.js-style name. */
export function precisionOfFile(file: string): string {
  const base = file.replace(/\\/g, '/').split('/').pop() ?? file
  if (/_int8|_quantized|_uint8/.test(base)) return 'int8'
  if (/_q4|_int4|_bnb4/.test(base)) return 'int4'
  if (/_fp16/.test(base)) return 'fp16'
  return 'fp32'
}

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
export function resolveInputSpec(request: InputRequest, config: AlbertConfig, configFile: string): InputSpec {
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
export function randomInputs(config: AlbertConfig, task: Task, spec: InputSpec = DEFAULT_INPUTS): Map<string, Tensor> {
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

/** Outputs of the reference graph, run exactly as written (onnxruntime optimizations off). */
export async function referenceOutputs(model: Uint8Array | string, feeds: Map<string, Tensor>, session: SessionOptions = {}): Promise<OutputMap> {
  return runOnce(model, feeds, { ...session, optimization: 'disabled' })
}

/** Goldens from a safetensors file as an output map. */
export function goldenOutputs(golden: Map<string, Tensor>): OutputMap {
  const out: OutputMap = new Map()
  for (const [name, t] of golden) out.set(name, { data: t.toFloat32(), dims: [...t.dims] })
  return out
}

const fmt = (x: number) => (Math.abs(x) >= 0.01 || x === 0 ? x.toFixed(6) : x.toExponential(3))

/** The inputs' attention mask as a token mask, or undefined when there is none. */
export function tokenMask(feeds: Map<string, Tensor>): TokenMask | undefined {
  const m = feeds.get('attention_mask')
  if (!m) return undefined
  const values = m.toBigInt64()
  const keep = new Uint8Array(values.length)
  for (let i = 0; i < values.length; i++) keep[i] = values[i] !== 0n ? 1 : 0
  return { dims: m.dims, keep }
}

/**
 * Compare candidate outputs with the reference under thresholds. With a token mask, positions that
 * hold padding are left out of per-token outputs (see compareTokens).
 */
export function judge(reference: OutputMap, candidate: OutputMap, thresholds: Thresholds, mask?: TokenMask): OutputVerdict[] {
  const verdicts: OutputVerdict[] = []
  for (const [name, ref] of reference) {
    const got = candidate.get(name)
    if (!got) {
      verdicts.push({ name, maxAbs: Infinity, meanAbs: Infinity, cosine: NaN, nonFinite: 0, failures: [`${name}: missing from the candidate`] })
      continue
    }
    if (got.dims.join() !== ref.dims.join()) {
      verdicts.push({ name, maxAbs: Infinity, meanAbs: Infinity, cosine: NaN, nonFinite: 0, failures: [`${name}: shape [${got.dims}] differs from the reference [${ref.dims}]`] })
      continue
    }
    const isLogits = /logits/.test(name)
    const p = compareTokens(ref.data, got.data, ref.dims, mask, isLogits)
    const failures: string[] = []
    if (p.nonFinite > 0) failures.push(`${name}: ${p.nonFinite} values are NaN or infinite`)
    if (thresholds.maxAbs !== undefined && !(p.maxAbs <= thresholds.maxAbs)) {
      failures.push(`${name}: max abs error ${fmt(p.maxAbs)} > ${fmt(thresholds.maxAbs)} (over by ${fmt(p.maxAbs - thresholds.maxAbs)})`)
    }
    if (thresholds.cosine !== undefined && !(p.cosine >= thresholds.cosine)) {
      failures.push(`${name}: cosine ${fmt(p.cosine)} < ${fmt(thresholds.cosine)} (short by ${fmt(thresholds.cosine - p.cosine)})`)
    }
    if (thresholds.top1 !== undefined && p.top1 !== undefined && !(p.top1 >= thresholds.top1)) {
      failures.push(`${name}: top-1 agreement ${(100 * p.top1).toFixed(2)}% < ${(100 * thresholds.top1).toFixed(2)}%`)
    }
    verdicts.push({ name, ...p, failures })
  }
  return verdicts
}

export interface Candidate {
  path: string
  /** bytes in memory, or undefined to load from `path` */
  bytes?: Uint8Array
  precision?: string
}

/** Run every candidate on `feeds` and judge it against the reference outputs. */
export async function verifyCandidates(
  reference: OutputMap,
  feeds: Map<string, Tensor>,
  candidates: Candidate[],
  overrides: ThresholdOverrides = {},
  session: SessionOptions = {},
  /** where to load a single candidate from, when not its `path` (a scratch copy) */
  loadFrom?: string,
): Promise<ArtifactVerdict[]> {
  const verdicts: ArtifactVerdict[] = []
  const { byPrecision, ...common } = overrides
  const mask = tokenMask(feeds)
  for (const c of candidates) {
    const precision = c.precision ?? precisionOfFile(c.path)
    const thresholds = { ...(DEFAULT_THRESHOLDS[precision] ?? DEFAULT_THRESHOLDS.fp32), ...common, ...byPrecision?.[precision] }
    const out = await runOnce(c.bytes ?? loadFrom ?? c.path, feeds, session)
    const outputs = judge(reference, out, thresholds, mask)
    verdicts.push({ path: c.path, precision, pass: outputs.every((o) => o.failures.length === 0), thresholds, outputs })
  }
  return verdicts
}

/** One line per output, and the failures. */
export function formatVerdict(v: ArtifactVerdict): string[] {
  const lines = [`${v.pass ? 'PASS' : 'FAIL'} ${v.path} (${v.precision})`]
  for (const o of v.outputs) {
    const top = o.top1 !== undefined ? `, top-1 ${(100 * o.top1).toFixed(2)}%` : ''
    const padded = o.padded ? ` (${o.padded} padded positions left out)` : ''
    lines.push(`  ${o.name}: max abs ${fmt(o.maxAbs)}, mean abs ${fmt(o.meanAbs)}, cosine ${fmt(o.cosine)}${top}${padded}`)
    for (const f of o.failures) lines.push(`    ✗ ${f}`)
  }
  return lines
}
