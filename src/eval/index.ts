/**
 * Labelled evaluation (issue 16): read a dev set for a head, run the model on it in padded
 * batches through a caller's `run`, decode the outputs and score them; compare a candidate with
 * the fp32 reference (drop in points, a seeded bootstrap interval, changed predictions) and gate
 * on the largest drop allowed. How outputs become predictions: fixtures/eval/DECODING.md.
 */
export { evaluate, checkEvalFile, EvalOutputError } from './evaluate.js'
export type { EvalOptions, EvalProgress, EvalResult, ModelOutput, QaOptions, RunModel, Skip } from './evaluate.js'
export { compareEval, gateDrop, formatPoints, BOOTSTRAP_METHOD, BOOTSTRAP_DRAWS, DEFAULT_RESAMPLES, MIN_RESAMPLES } from './compare.js'
export type { CompareOptions, EvalComparison, Evaluated, GateDecision, MetricDrop } from './compare.js'
export { ClassificationScorer, TokenScorer, QaScorer, MaskScorer, ChoiceScorer, Scorer } from './scoring.js'
export { EVAL_TASKS, TASK_FORMATS, formatFor } from './readers.js'
export type { EvalFormat, EvalTask } from './readers.js'
export { EVAL_LIMITS, DEFAULT_BATCH } from './limits.js'
export type { BatchOptions } from './limits.js'
export { Labels } from './labels.js'
export type { EvalModel } from './labels.js'
export { summarizeEval, summarizeComparison } from './summary.js'
export * as metrics from './metrics.js'
