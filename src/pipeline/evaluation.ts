/**
 * Labelled evaluation for `verify --eval` and `convert --eval` (issue 16): the fp32 reference and
 * each candidate run on the same dev set (src/eval, through onnxruntime sessions), each
 * candidate's metric, its drop in points against the reference, a seeded paired-bootstrap
 * interval of the drop, the predictions that changed, and the `--max-drop` gate.
 */
import path from 'node:path'
import type { Task } from '../checkpoint/task.js'
import { EVAL_TASKS, checkEvalFile, compareEval, evaluate, formatPoints, gateDrop, summarizeComparison, type EvalComparison, type EvalModel, type EvalResult, type EvalTask, type GateDecision, type RunModel } from '../eval/index.js'
import { createSession, runSession, ModelRunError, type SessionOptions } from '../runtime/session.js'
import { openTokenizer, type TextTokenizer } from '../tokenizer/index.js'
import { UsageError, fail } from '../util/errors.js'
import type { Progress } from '../util/progress.js'

/** What the user asked to evaluate on (the flags, or a recipe's `eval`). */
export interface EvalRequest {
  file: string
  /** the largest drop allowed, in points; no gate when absent */
  maxDrop?: number
  /** the metric gated on and reported first (default: the task's primary, accuracy / entity_f1 / f1 / top1) */
  metric?: string
  /** score only the first `limit` examples */
  limit?: number
  /** the bootstrap's seed (default 0) */
  seed?: number
}

/** One candidate's figures against the reference. */
export interface EvalCandidate {
  file: string
  precision: string
  metrics: Record<string, number>
  /** the gated metric's drop in points, its interval, and the other metrics' drops */
  comparison: EvalComparison
  /** present with --max-drop */
  gate?: Omit<GateDecision, 'message'> & { message: string }
  seconds: number
}

export interface EvalReport {
  /** the dev set as the user named it (report.json: its name when the path is absolute) */
  file: string
  task: EvalTask
  format: string
  examples: number
  skipped: number
  warnings: string[]
  metric: string
  /** points per unit of the metric (100 for a share, 1 for SQuAD's percentages) */
  scale: number
  maxDrop: number | null
  reference: { metrics: Record<string, number>; seconds: number }
  candidates: EvalCandidate[]
  /** every candidate within --max-drop (true without a gate) */
  pass: boolean
}

/** The head's dev-set task, or a one-line refusal (feature extraction and pretraining have no labels to score). */
export function evalTaskOf(task: Task, file: string): EvalTask {
  if (!(EVAL_TASKS as readonly string[]).includes(task)) throw new UsageError(`--eval ${file}: a ${task} model has no labels to score (--eval reads dev sets for ${EVAL_TASKS.join(', ')})`)
  return task as EvalTask
}

/** A RunModel over one onnxruntime session; a model onnxruntime refuses is blamed on `name`. */
async function sessionRunner(source: Uint8Array | string, name: string, session: SessionOptions): Promise<{ run: RunModel; release: () => Promise<void> }> {
  let s
  try {
    s = await createSession(source, session)
  } catch (e) {
    if (e instanceof ModelRunError) fail(name, e.message)
    throw e
  }
  const run: RunModel = async (feeds) => {
    try {
      return await runSession(s, feeds)
    } catch (e) {
      if (e instanceof ModelRunError) fail(name, e.message)
      throw e
    }
  }
  return { run, release: () => s.release() }
}

/**
 * Evaluates models on one dev set against the reference, which runs first. Candidates are scored
 * one at a time; only per-example outcomes stay (the reference's, and the one candidate's).
 */
export class Evaluator {
  private ref: EvalResult | undefined
  readonly task: EvalTask

  constructor(
    readonly request: EvalRequest,
    task: Task,
    private readonly tok: TextTokenizer,
    private readonly config: EvalModel,
    private readonly progress: Progress,
    private readonly session: SessionOptions = {},
  ) {
    this.task = evalTaskOf(task, request.file)
  }

  private async run(source: Uint8Array | string, name: string, label: string): Promise<EvalResult> {
    const step = this.progress.start(`evaluating ${label} on ${path.basename(this.request.file)}`)
    const { run, release } = await sessionRunner(source, name, this.session)
    try {
      const r = await evaluate(this.task, this.request.file, this.tok, this.config, run, {
        ...(this.request.limit !== undefined ? { limit: this.request.limit } : {}),
        onProgress: (p) => step.running(`${p.examples} examples, ${p.bytesTotal > 0 ? Math.floor((100 * p.bytesRead) / p.bytesTotal) : 100}%`),
      })
      step.done(`${r.examples} examples, ${r.primary} ${r.metrics[r.primary]!.toFixed(4)}`)
      return r
    } finally {
      await release()
    }
  }

  /** An evaluator for a checkpoint: its head checked before its tokenizer is read. */
  static open(request: EvalRequest, task: Task, checkpointDir: string, config: EvalModel, progress: Progress, session: SessionOptions = {}): Evaluator {
    evalTaskOf(task, request.file)
    return new Evaluator(request, task, openTokenizer(checkpointDir), config, progress, session)
  }

  /** The dev set is there and readable (before anything runs). */
  check(): Promise<void> {
    return checkEvalFile(this.task, this.request.file)
  }

  /** Score the fp32 reference (once: a second call returns the first's result). */
  async reference(source: Uint8Array | string, name: string): Promise<EvalResult> {
    if (this.ref) return this.ref
    this.ref = await this.run(source, name, 'the fp32 reference')
    const metric = this.request.metric
    if (metric !== undefined && !this.ref.scorer.dropMetrics.includes(metric)) {
      throw new UsageError(`--eval-metric ${metric}: ${this.task} has no metric '${metric}' (${this.ref.scorer.dropMetrics.join(', ')})`)
    }
    for (const w of this.ref.warnings) this.progress.warn(`${this.request.file}: ${w}`)
    return this.ref
  }

  /** Score a candidate and compare it with the reference. */
  async candidate(source: Uint8Array | string, file: string, precision: string): Promise<EvalCandidate> {
    if (!this.ref) throw new Error('the reference is scored before any candidate')
    const r = await this.run(source, file, file)
    const comparison = summarizeComparison(compareEval(this.ref, r, this.request.seed !== undefined ? { seed: this.request.seed } : {}))
    const metric = this.request.metric ?? comparison.primary
    // the gated metric first
    comparison.drops.sort((a, b) => (a.metric === metric ? -1 : b.metric === metric ? 1 : 0))
    const out: EvalCandidate = { file, precision, metrics: r.metrics, comparison, seconds: r.seconds.total }
    if (this.request.maxDrop !== undefined) out.gate = gateDrop(comparison, this.request.maxDrop, metric)
    return out
  }

  /**
   * The report of the candidates scored, the file named as `shownFile`; without `timings` (report.json,
   * which the same run writes the same) no seconds.
   */
  report(candidates: EvalCandidate[], shownFile = this.request.file, timings = true): EvalReport {
    const ref = this.ref!
    for (const c of candidates) {
      c.comparison.file = shownFile
      if (!timings) {
        c.seconds = 0
        c.comparison.bootstrap.seconds = 0
      }
    }
    return {
      file: shownFile,
      task: this.task,
      format: ref.format,
      examples: ref.examples,
      skipped: ref.skipped,
      warnings: ref.warnings,
      metric: this.request.metric ?? ref.primary,
      scale: ref.scorer.scale(this.request.metric ?? ref.primary),
      maxDrop: this.request.maxDrop ?? null,
      reference: { metrics: ref.metrics, seconds: timings ? ref.seconds.total : 0 },
      candidates,
      pass: candidates.every((c) => c.gate?.pass ?? true),
    }
  }
}

/** `eval: 500 examples of dev.jsonl (text-classification), fp32 accuracy 84.4` */
export function formatEvalHeader(e: EvalReport): string {
  return `eval: ${e.examples} examples of ${e.file} (${e.task}), fp32 ${e.metric} ${formatPoints(e.reference.metrics[e.metric]! * e.scale)}${e.skipped > 0 ? `, ${e.skipped} skipped` : ''}`
}

/** One line per candidate: the gate's verdict, or without a gate the drop and its interval. */
export function formatEvalCandidate(c: EvalCandidate): string {
  if (c.gate) return `${c.file}: ${c.gate.pass ? 'eval PASS' : 'eval FAIL'}: ${c.gate.message}; ${changedOf(c.comparison)}`
  const d = c.comparison.drops[0]!
  const p = formatPoints
  return `${c.file}: ${d.metric} ${p(d.reference * d.scale)} → ${p(d.candidate * d.scale)}: a drop of ${p(d.drop)} points (${p(c.comparison.bootstrap.confidence * 100)}% interval ${p(d.interval[0])} to ${p(d.interval[1])}); ${changedOf(c.comparison)}`
}

function changedOf(c: EvalComparison): string {
  return `${c.changed} of ${c.examples} predictions changed (${c.lost} lost, ${c.gained} gained)`
}

/** A dev set's name as report.json keeps it: the path the user gave when relative, the file's name when absolute. */
export function portableFile(file: string): string {
  return path.isAbsolute(file) ? path.basename(file) : file.split(path.sep).join('/')
}

/** What a model's provenance keeps of its evaluation: the file, the metric, its drop and interval, the gate. */
export function evalStamp(report: EvalReport, c: EvalCandidate): object {
  const d = c.comparison.drops[0]!
  return {
    file: report.file,
    examples: report.examples,
    metric: d.metric,
    reference: d.reference,
    candidate: d.candidate,
    drop: d.drop,
    interval: d.interval,
    changed: c.comparison.changed,
    ...(c.gate ? { maxDrop: c.gate.maxDrop, pass: c.gate.pass } : {}),
  }
}
