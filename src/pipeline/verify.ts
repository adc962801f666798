/**
 * `verify`: parity of ONNX models against a reference, as figures and a verdict. The reference is a
 * checkpoint (albertkit's plain fp32 graph of it), an ONNX model (run as written: another
 * exporter's file, or albertkit's own), or PyTorch goldens.
 */
import fs from 'node:fs'
import path from 'node:path'
import { openCheckpoint } from '../checkpoint/index.js'
import { readSafetensors } from '../checkpoint/safetensors.js'
import { buildAlbert } from '../builder/albert.js'
import { resolveTask } from '../checkpoint/task.js'
import { modelBytes, readModelFile } from '../onnx/file.js'
import { UsageError, fail } from '../util/errors.js'
import { ModelRunError } from '../runtime/session.js'
import { silentProgress, type Progress } from '../util/progress.js'
import { TOKENIZER_FILES, textFeeds, type TextFeeds, type TextInput } from '../tokenizer/index.js'
import { DEFAULT_INPUTS, describeRandomInputs, pinnedInputSpec, randomInputs, resolveInputSpec, type Feed, type InputRequest, type InputShape } from '../verify/inputs.js'
import { goldenOutputs, type ArtifactVerdict, type OutputMap, type ThresholdOverrides } from '../verify/verdict.js'
import { referenceSignature, type ReferenceSignature } from '../verify/signature.js'
import type { Task } from '../checkpoint/task.js'
import type { AlbertConfig } from '../checkpoint/config.js'
import { referenceOutputs, verifyCandidates } from '../runtime/parity.js'
import { precisionOfFile } from '../targets/precision.js'
import type { ResolveOptions } from '../checkpoint/hf-cache.js'
import { Evaluator, type EvalCandidate, type EvalReport, type EvalRequest } from './evaluation.js'
import { isFile } from '../util/paths.js'

export interface VerifyOptions {
  /** the reference: a checkpoint (folder, file in one, or cached model id), or an ONNX model (`isOnnxReference`) */
  checkpoint: string
  /** the folder of the tokenizer for `text` (default: the checkpoint's, or the one beside an ONNX reference) */
  tokenizer?: string
  /** How a checkpoint in the Hugging Face cache is looked up: the revision (default main). */
  cache?: ResolveOptions
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
  /** what an ONNX reference takes, as found in its graph */
  signature?: ReferenceSignature
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

/** Whether a reference argument names an ONNX model (a file ending .onnx) rather than a checkpoint. */
export function isOnnxReference(ref: string): boolean {
  try {
    return ref.endsWith('.onnx') && fs.statSync(ref).isFile()
  } catch {
    return false
  }
}

/** A reference, read: the sizes its inputs must respect, its head, and how to run it. */
interface Reference {
  shape: InputShape
  /** where `shape`'s positions come from, for messages */
  shapeFrom: string
  task: Task
  /** the folder to find a tokenizer in, or the problem when there is none */
  tokenizer: () => string
  format: string
  describe: string
  signature?: ReferenceSignature
  outputs: (feeds: Feed) => Promise<OutputMap>
  /** a checkpoint reference: its folder (tokenizer), config (labels) and fp32 graph, built once, for --eval */
  checkpoint?: { dir: string; config: AlbertConfig; graph: () => Uint8Array }
}

function checkpointReference(opts: VerifyOptions): Reference {
  const ckpt = openCheckpoint(opts.checkpoint, opts.cache)
  const task = resolveTask(ckpt.config, opts.task, ckpt.configFile)
  const at = ckpt.repo ? ` at ${ckpt.repo.revision} (commit ${ckpt.repo.commit.slice(0, 12)})` : ''
  let built: Uint8Array | undefined
  const graph = () => (built ??= modelBytes(buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.dir, configFile: ckpt.configFile }).model))
  return {
    shape: ckpt.config,
    shapeFrom: ckpt.configFile,
    task,
    tokenizer: () => opts.tokenizer ?? ckpt.dir,
    format: ckpt.format,
    describe: `albertkit fp32 graph of ${opts.checkpoint}${at} (onnxruntime optimizations off)`,
    outputs: (feeds) => blaming(undefined, opts.inputs, () => referenceOutputs(graph(), feeds)),
    checkpoint: { dir: ckpt.dir, config: ckpt.config, graph },
  }
}

/**
 * An ONNX model as the reference: inputs sized by what its graph holds (verify/signature.ts), text
 * through the tokenizer beside it (its folder, or the folder above an `onnx/` folder, as convert
 * lays it out) or the one --tokenizer names; run as written, onnxruntime optimizations off.
 */
function onnxReference(opts: VerifyOptions): Reference {
  const file = opts.checkpoint
  const signature = referenceSignature(readModelFile(file), file)
  const beside = [path.dirname(file), ...(path.basename(path.dirname(path.resolve(file))) === 'onnx' ? [path.join(path.dirname(file), '..')] : [])]
  return {
    shape: { vocabSize: signature.vocabSize, typeVocabSize: signature.typeVocabSize, maxPositionEmbeddings: signature.maxPositions },
    shapeFrom: `the position table ${signature.positionsFrom} of ${file}`,
    task: signature.multipleChoice ? 'multiple-choice' : 'feature-extraction',
    tokenizer: () => {
      if (opts.tokenizer !== undefined) return opts.tokenizer
      const found = beside.find((dir) => TOKENIZER_FILES.some((f) => isFile(path.join(dir, f))))
      if (found === undefined) {
        fail(file, `no tokenizer beside it to encode ${opts.text?.source ?? 'the texts'} (looked for ${TOKENIZER_FILES.join(', ')} in ${beside.map(path.normalize).join(' and ')}); name its folder with --tokenizer`)
      }
      return found
    },
    format: 'onnx',
    describe: `${file} (vocabulary ${signature.vocabSize}, ${signature.maxPositions} positions, ${signature.typeVocabSize} token type${signature.typeVocabSize === 1 ? '' : 's'}; onnxruntime optimizations off)`,
    signature,
    outputs: (feeds) => blaming(file, opts.inputs, () => referenceOutputs(file, feeds)),
  }
}


export async function verify(opts: VerifyOptions): Promise<VerifyReport> {
  const progress = opts.progress ?? silentProgress
  // Everything is read (reference, inputs, candidates) before anything runs: a bad file stops the
  // command before any step has printed.
  const onnx = isOnnxReference(opts.checkpoint)
  const reading = progress.start(`reading ${onnx ? 'the reference' : 'checkpoint'}, inputs and models`)
  if (onnx && opts.golden) throw new UsageError(`--golden makes PyTorch outputs the reference; ${opts.checkpoint} is an ONNX reference already (give one of them)`)
  if (onnx && opts.task) throw new UsageError(`--task chooses the head of albertkit's graph of a checkpoint; the ONNX reference ${opts.checkpoint} has its own`)
  if (onnx && opts.eval) throw new UsageError(`--eval reads its labels from a checkpoint's config.json and tokenizes with its tokenizer; ${opts.checkpoint} is an ONNX reference (give the checkpoint it came from)`)
  const ref = onnx ? onnxReference(opts) : checkpointReference(opts)
  const task = ref.task
  const evaluator = opts.eval && ref.checkpoint ? Evaluator.open(opts.eval, task, ref.checkpoint.dir, ref.checkpoint.config, progress) : undefined
  await evaluator?.check()
  if (opts.golden && !opts.inputs) fail(opts.golden, 'goldens need the inputs they were computed on (--inputs)')
  if (opts.text && opts.inputs) fail(opts.inputs, 'give either --inputs or texts, not both')
  const fixed = ref.signature?.fixed
  if (opts.text && fixed) throw new UsageError(`${opts.text.source} cannot drive ${opts.checkpoint}: its input_ids are pinned to [${fixed.join(', ')}] and texts vary in length; verify it on random inputs or --inputs`)
  if (fixed && opts.spec?.sequence !== undefined && opts.spec.sequence !== fixed[1]) {
    throw new UsageError(`${opts.spec.sequenceFrom ?? '--sequence'} ${opts.spec.sequence} does nothing with ${opts.checkpoint}: its input_ids are pinned to [${fixed.join(', ')}]`)
  }
  const text = opts.text ? textFeeds(ref.tokenizer(), opts.text.texts, ref.shape, task, opts.text.source) : undefined
  // The sequence actually run: an explicit one must fit the model, the default adapts to it.
  const spec = text || opts.inputs ? undefined : pinnedInputSpec(resolveInputSpec(opts.spec ?? { batch: DEFAULT_INPUTS.batch, seed: DEFAULT_INPUTS.seed }, ref.shape, ref.shapeFrom), fixed)
  const feeds = text ? text.feeds : opts.inputs ? readSafetensors(opts.inputs).tensors : randomInputs(ref.shape, task, { ...spec!, ...(ref.signature?.choices ? { choices: ref.signature.choices } : {}) })
  const golden = opts.golden ? goldenOutputs(readSafetensors(opts.golden).tensors) : undefined
  const candidates = opts.candidates.map((path) => {
    if (!fs.existsSync(path)) fail(path, 'no such file')
    const model = readModelFile(path)
    const stamped = model.metadataProps.find((p) => p.key === 'albertkit.precision')?.value
    return { path, bytes: modelBytes(model), precision: stamped ?? precisionOfFile(path) }
  })
  reading.done(`${ref.format}, ${candidates.length} model${candidates.length === 1 ? '' : 's'}`)
  let reference = golden
  if (!reference) {
    const building = progress.start(onnx ? `running the reference ${opts.checkpoint}` : `running the fp32 reference (${task})`)
    reference = await ref.outputs(feeds)
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
    await evaluator.reference(ref.checkpoint!.graph(), `albertkit's fp32 graph of ${opts.checkpoint}`)
    const scored: EvalCandidate[] = []
    for (const c of candidates) scored.push(await evaluator.candidate(c.bytes, c.path, c.precision))
    evaluation = evaluator.report(scored)
  }
  return {
    reference: opts.golden ?? ref.describe,
    ...(ref.signature ? { signature: ref.signature } : {}),
    inputs: text ? describeTextInputs(text) : opts.inputs ?? describeRandomInputs(spec!),
    ...(text ? { text: textReport(text) } : {}),
    pass: artifacts.every((a) => a.pass) && (evaluation?.pass ?? true),
    artifacts,
    ...(evaluation ? { eval: evaluation } : {}),
  }
}
