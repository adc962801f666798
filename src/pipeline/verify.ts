/** `verify`: parity of ONNX models against a checkpoint (or PyTorch goldens), as figures and a verdict. */
import fs from 'node:fs'
import path from 'node:path'
import { openCheckpoint } from '../checkpoint/index.js'
import { readSafetensors } from '../checkpoint/safetensors.js'
import { buildAlbert } from '../builder/albert.js'
import { resolveTask } from '../checkpoint/task.js'
import { modelBytes, readModelFile } from '../onnx/file.js'
import { fail } from '../util/errors.js'
import { ModelRunError } from '../runtime/session.js'
import { silentProgress, type Progress } from '../util/progress.js'
import { textFeeds, type TextFeeds, type TextInput } from '../tokenizer/index.js'
import { DEFAULT_INPUTS, describeRandomInputs, randomInputs, resolveInputSpec, type InputRequest } from '../verify/inputs.js'
import { goldenOutputs, type ArtifactVerdict, type ThresholdOverrides } from '../verify/verdict.js'
import { referenceOutputs, verifyCandidates } from '../runtime/parity.js'
import { precisionOfFile } from '../targets/precision.js'
import { Evaluator, type EvalCandidate, type EvalReport, type EvalRequest } from './evaluation.js'

export interface VerifyOptions {
  checkpoint: string
  candidates: string[]
  task?: string
  /** safetensors of PyTorch outputs to compare against instead of the reference graph */
  golden?: string
  /** safetensors of model inputs instead of seeded random ones */
  inputs?: string
  /** the random inputs (when neither `inputs` nor `text`); an explicit sequence must fit the model's positions */
  spec?: InputRequest
  /** texts (and pairs) through the checkpoint's tokenizer instead of seeded random inputs; `source` names where they came from */
  text?: { texts: TextInput[]; source: string }
  thresholds?: ThresholdOverrides
  /** a labelled dev set: every candidate scored against the fp32 reference (and gated with `maxDrop`) */
  eval?: EvalRequest
  /** Long steps as they run (reading, the reference, each candidate) */
  progress?: Progress
}

/** The texts verification ran on, as the tokenizer encoded them. */
export interface TextReport {
  source: string
  /** the tokenizer file used (tokenizer.json, or the SentencePiece model albertkit converted) */
  tokenizer: string
  /** tokens in the longest row; shorter rows are padded to it */
  longest: number
  rows: { text: string; pair?: string; length: number; ids: number[]; tokens: string[]; truncated: number }[]
  warnings: string[]
}

export interface VerifyReport {
  reference: string
  inputs: string
  /** present when the inputs came from text */
  text?: TextReport
  /** parity and, with --max-drop, the dev set's gate */
  pass: boolean
  artifacts: ArtifactVerdict[]
  /** with --eval: the dev set's figures */
  eval?: EvalReport
}

/**
 * The texts as the report holds them. The tokenizer file is named as the user named the checkpoint
 * (`fixtures/x/tokenizer.json`), or relative to `checkpointDir` when given (report.json: the same
 * wherever the checkpoint lies).
 */
export function textReport(t: TextFeeds, checkpointDir?: string): TextReport {
  return {
    source: t.source,
    tokenizer: checkpointDir === undefined ? t.tokenizerFile : path.relative(checkpointDir, t.tokenizerFile),
    longest: t.longest,
    rows: t.rows.map((r) => ({ text: r.text, ...(r.pair !== undefined ? { pair: r.pair } : {}), length: r.ids.length, ids: r.ids, tokens: r.tokens, truncated: r.truncated })),
    warnings: t.warnings,
  }
}

/** `2 texts from --text, 14 tokens (longest)` */
export function describeTextInputs(t: TextFeeds): string {
  return `${t.rows.length} text${t.rows.length === 1 ? '' : 's'} from ${t.source}, ${t.longest} tokens (longest)`
}

/**
 * `work`, with onnxruntime's refusals of a user's files as input errors: a candidate it cannot
 * load or run names the candidate, inputs that do not fit name the --inputs file. Anything else
 * (albertkit's own reference graph failing) stays an internal error.
 */
async function blaming<T>(candidate: string | undefined, inputs: string | undefined, work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (e) {
    if (!(e instanceof ModelRunError)) throw e
    if (inputs && (e.stage === 'inputs' || !candidate)) fail(inputs, `cannot drive ${candidate ?? "albertkit's reference graph"}: ${e.message}`)
    if (candidate) fail(candidate, e.message)
    throw e
  }
}

export async function verify(opts: VerifyOptions): Promise<VerifyReport> {
  const progress = opts.progress ?? silentProgress
  // Everything is read (checkpoint, inputs, candidates) before anything runs: a bad file stops the
  // command before any step has printed.
  const reading = progress.start('reading checkpoint, inputs and models')
  const ckpt = openCheckpoint(opts.checkpoint)
  const task = resolveTask(ckpt.config, opts.task, ckpt.configFile)
  const evaluator = opts.eval ? Evaluator.open(opts.eval, task, ckpt.dir, ckpt.config, progress) : undefined
  await evaluator?.check()
  if (opts.golden && !opts.inputs) fail(opts.golden, 'goldens need the inputs they were computed on (--inputs)')
  if (opts.text && opts.inputs) fail(opts.inputs, 'give either --inputs or texts, not both')
  const text = opts.text ? textFeeds(ckpt.dir, opts.text.texts, ckpt.config, task, opts.text.source) : undefined
  // The sequence actually run: an explicit one must fit the model, the default adapts to it.
  const spec = text || opts.inputs ? undefined : resolveInputSpec(opts.spec ?? { batch: DEFAULT_INPUTS.batch, seed: DEFAULT_INPUTS.seed }, ckpt.config, ckpt.configFile)
  const feeds = text ? text.feeds : opts.inputs ? readSafetensors(opts.inputs).tensors : randomInputs(ckpt.config, task, spec)
  const golden = opts.golden ? goldenOutputs(readSafetensors(opts.golden).tensors) : undefined
  const candidates = opts.candidates.map((path) => {
    if (!fs.existsSync(path)) fail(path, 'no such file')
    const model = readModelFile(path)
    const stamped = model.metadataProps.find((p) => p.key === 'albertkit.precision')?.value
    return { path, bytes: modelBytes(model), precision: stamped ?? precisionOfFile(path) }
  })
  reading.done(`${ckpt.format}, ${candidates.length} model${candidates.length === 1 ? '' : 's'}`)
  let reference = golden
  let graph: Uint8Array | undefined
  if (!reference || evaluator) graph = modelBytes(buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.dir, configFile: ckpt.configFile }).model)
  if (!reference) {
    const building = progress.start(`running the fp32 reference (${task})`)
    reference = await blaming(undefined, opts.inputs, () => referenceOutputs(graph!, feeds))
    building.done()
  }
  const checking = progress.start('verifying', candidates.length)
  const artifacts: ArtifactVerdict[] = []
  for (const c of candidates) {
    checking.running(c.path)
    artifacts.push(...(await blaming(c.path, opts.inputs, () => verifyCandidates(reference!, feeds, [c], opts.thresholds))))
    checking.tick()
  }
  checking.done(`${artifacts.filter((a) => a.pass).length} of ${artifacts.length} within tolerance`)
  let evaluation: EvalReport | undefined
  if (evaluator) {
    await evaluator.reference(graph!, `albertkit's fp32 graph of ${opts.checkpoint}`)
    const scored: EvalCandidate[] = []
    for (const c of candidates) scored.push(await evaluator.candidate(c.bytes, c.path, c.precision))
    evaluation = evaluator.report(scored)
  }
  return {
    reference: opts.golden ?? `albertkit fp32 graph of ${opts.checkpoint} (onnxruntime optimizations off)`,
    inputs: text ? describeTextInputs(text) : opts.inputs ?? describeRandomInputs(spec!),
    ...(text ? { text: textReport(text) } : {}),
    pass: artifacts.every((a) => a.pass) && (evaluation?.pass ?? true),
    artifacts,
    ...(evaluation ? { eval: evaluation } : {}),
  }
}
