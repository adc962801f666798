/**
 * A candidate (int8, int4, a mixed plan) against the fp32 reference on the same examples: each
 * metric's drop in points, a 95% interval for the drop by a seeded paired bootstrap
 * (bootstrap.ts), how many predictions changed, and the --max-drop gate's decision.
 */
import { UsageError } from '../util/errors.js'
import { pairedBootstrap } from './bootstrap.js'
import type { EvalResult } from './evaluate.js'
import { EVAL_LIMITS } from './limits.js'
import type { EvalTask } from './readers.js'
import { TokenScorer } from './scoring.js'

export interface MetricDrop {
  metric: string
  reference: number
  candidate: number
  /** points per unit of the metric: 100 for a share (accuracy 0.844 is 84.4 points), 1 for SQuAD's percentages */
  scale: number
  /** reference − candidate in points (a share × 100: 0.725 → 0.710 is 1.5; SQuAD's percentages as they are), rounded to 1e-9 */
  drop: number
  /** the interval for the drop at the comparison's confidence, in points */
  interval: [number, number]
}

export interface EvalComparison {
  task: EvalTask
  file: string
  examples: number
  /** the metric the gate looks at by default */
  primary: string
  drops: MetricDrop[]
  /** examples whose prediction differs (a sentence: any word's tag) */
  changed: number
  /** examples right in the reference and wrong in the candidate, and the other way round */
  lost: number
  gained: number
  /** token classification: words whose tag differs */
  changedWords?: number
  /** the first changed examples' lines (SQuAD: question ids) */
  changedExamples: (number | string)[]
  bootstrap: { resamples: number; seed: number; confidence: number; method: string; seconds: number }
}

export interface CompareOptions {
  /** default 10,000, fewer on large sets: floor(BOOTSTRAP_DRAWS / examples), at least MIN_RESAMPLES */
  resamples?: number
  /** default 0 */
  seed?: number
  /** default 0.95 */
  confidence?: number
}

/** Draws (resamples × examples) the default aims at: 25-40 ns each, about 1.5 s of one core. */
export const BOOTSTRAP_DRAWS = 50_000_000
export const DEFAULT_RESAMPLES = 10_000
/** Resamples taken however many examples there are (1,000 × 1,000,000 examples: about 30 s). */
export const MIN_RESAMPLES = 1_000
const CHANGED_SHOWN = 20

const points = (x: number) => Math.round(x * 1e9) / 1e9

export const BOOTSTRAP_METHOD =
  'paired bootstrap over examples: each resample draws n examples with replacement (xoshiro128** seeded through splitmix32); both models are scored on the same draws; the interval is the 2.5th and 97.5th percentiles of the resampled drops (linear interpolation)'

/** What a comparison reads of an evaluation. */
export type Evaluated = Pick<EvalResult, 'task' | 'file' | 'scorer'>

/** Compare two evaluations of the same file (the same examples, in the same order). */
export function compareEval(reference: Evaluated, candidate: Evaluated, opts: CompareOptions = {}): EvalComparison {
  const ref = reference.scorer
  const cand = candidate.scorer
  if (reference.task !== candidate.task || ref.constructor !== cand.constructor) throw new Error(`cannot compare a ${reference.task} evaluation with a ${candidate.task} one`)
  if (reference.file !== candidate.file) throw new Error(`the reference read ${reference.file} and the candidate ${candidate.file}: not the same examples`)
  if (ref.count !== cand.count) throw new Error(`the reference scored ${ref.count} examples and the candidate ${cand.count}: not the same examples`)
  for (let i = 0; i < ref.count; i++) {
    if (ref.key(i) !== cand.key(i)) throw new Error(`example ${i + 1} is ${ref.key(i)} in the reference and ${cand.key(i)} in the candidate: not the same examples`)
  }
  const seed = opts.seed ?? 0
  const confidence = opts.confidence ?? 0.95
  let resamples = opts.resamples ?? DEFAULT_RESAMPLES
  if (!Number.isSafeInteger(resamples) || resamples < 1 || resamples > EVAL_LIMITS.resamples) throw new UsageError(`resamples must be an integer from 1 to ${EVAL_LIMITS.resamples}, got ${resamples}`)
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) throw new UsageError(`the bootstrap seed must be an integer from 0 to 4294967295, got ${seed}`)
  if (!(confidence > 0 && confidence < 1)) throw new UsageError(`confidence must be between 0 and 1, got ${confidence}`)
  const n = ref.count
  if (opts.resamples === undefined) resamples = Math.max(MIN_RESAMPLES, Math.min(resamples, Math.floor(BOOTSTRAP_DRAWS / n)))

  const names = ref.dropMetrics
  const scales = names.map((m) => ref.scale(m))
  const refAll = ref.values()
  const candAll = cand.values()
  const t = performance.now()
  const intervals = pairedBootstrap(n, ref.dropAccumulator(cand), { resamples, seed, confidence })
  const seconds = (performance.now() - t) / 1000

  let changed = 0
  let lost = 0
  let gained = 0
  let changedWords = 0
  const changedExamples: (number | string)[] = []
  for (let i = 0; i < n; i++) {
    if (ref.differs(i, cand)) {
      changed++
      if (changedExamples.length < CHANGED_SHOWN) changedExamples.push(ref.key(i))
      if (ref instanceof TokenScorer) changedWords += ref.changedWords(i, cand as TokenScorer)
    }
    const r = ref.correct(i)
    const c = cand.correct(i)
    if (r && !c) lost++
    if (!r && c) gained++
  }
  const out: EvalComparison = {
    task: reference.task,
    file: reference.file,
    examples: n,
    primary: names[0]!,
    drops: names.map((metric, m) => ({
      metric,
      reference: refAll[m]!,
      candidate: candAll[m]!,
      scale: scales[m]!,
      drop: points((refAll[m]! - candAll[m]!) * scales[m]!),
      interval: [points(intervals[m]![0]), points(intervals[m]![1])],
    })),
    changed,
    lost,
    gained,
    changedExamples,
    bootstrap: { resamples, seed, confidence, method: BOOTSTRAP_METHOD, seconds },
  }
  if (ref instanceof TokenScorer) out.changedWords = changedWords
  return out
}

export interface GateDecision {
  pass: boolean
  metric: string
  /** points */
  drop: number
  maxDrop: number
  /** maxDrop − drop: what is left (negative: by how much the drop passes the limit) */
  margin: number
  /** one line: the metric, its drop and the margin */
  message: string
}

/** `5.8` / `-0.2` / `1.25`: points to two decimals at most. */
export function formatPoints(x: number): string {
  const r = Math.round(x * 100) / 100
  return (Object.is(r, -0) ? 0 : r).toString()
}

/**
 * The --max-drop gate: the candidate passes when its drop on `metric` (default the task's primary)
 * is at most `maxDrop` points (1e-9 of slack for floating point).
 */
export function gateDrop(comparison: EvalComparison, maxDrop: number, metric = comparison.primary): GateDecision {
  if (!Number.isFinite(maxDrop)) throw new UsageError(`the largest drop must be a number of points, got ${maxDrop}`)
  const d = comparison.drops.find((x) => x.metric === metric)
  if (!d) throw new UsageError(`${comparison.task} has no metric '${metric}' to gate on (${comparison.drops.map((x) => x.metric).join(', ')})`)
  const margin = points(maxDrop - d.drop)
  const pass = d.drop <= maxDrop + 1e-9
  const level = `${formatPoints(comparison.bootstrap.confidence * 100)}%`
  const what = `${metric} ${formatPoints(d.reference * d.scale)} → ${formatPoints(d.candidate * d.scale)}: a drop of ${formatPoints(d.drop)} points (${level} interval ${formatPoints(d.interval[0])} to ${formatPoints(d.interval[1])})`
  const message = pass ? `${what}, within the largest drop allowed, ${formatPoints(maxDrop)}, by ${formatPoints(margin)}` : `${what}, more than the largest drop allowed, ${formatPoints(maxDrop)}, by ${formatPoints(-margin)}`
  return { pass, metric, drop: d.drop, maxDrop, margin, message }
}
