/**
 * `convert`: checkpoint → ALBERT graph → one model per plan (passes from the target or precision) → parity
 * verdict of each against the plain fp32 graph → ONNX files stamped with their provenance, in a
 * staged folder that appears at the destination only when everything was written.
 */
import fs from 'node:fs'
import path from 'node:path'
import { openCheckpoint, type Checkpoint } from '../checkpoint/index.js'
import { checkpointPathOf, type ResolveOptions } from '../checkpoint/hf-cache.js'
import { buildAlbert } from '../builder/albert.js'
import { resolveTask, type Task } from '../checkpoint/task.js'
import { cloneModel, type Model } from '../ir/graph.js'
import { formatPassReport, type PassOptions, type PassReport } from '../passes/pass.js'
import { passesOf, precisionPlans, type ArtifactPlan, type Precision } from '../targets/precision.js'
import { ortFileOf, transformersJsConfig, writesRequiredOperators } from '../targets/targets.js'
import { ortOperators } from '../onnx/ort-format.js'
import { modelBytes, readModelFile, writeModelFile } from '../onnx/file.js'
import { releaseMemory } from '../util/memory.js'
import { checkOutput, type CheckedOutput, type GuardedInput } from '../util/output-guard.js'
import { UsageError } from '../util/errors.js'
import { graphParameterStats, checkpointParameterStats, type ParameterStats } from '../analysis/parameters.js'
import { factorization, type Factorization } from '../analysis/factorization.js'
import { digestCheckpoint, stampProvenance, type Provenance, type SourceDigest } from '../report/provenance.js'
import { DEFAULT_INPUTS, beyondPositions, describeRandomInputs, pinnedInputSpec, randomInputs, resolveInputSpec, type Feed, type InputRequest, type InputSpec } from '../verify/inputs.js'
import { formatVerdict, type ArtifactVerdict, type OutputMap, type ThresholdOverrides } from '../verify/verdict.js'
import { referenceOutputs, verifyCandidates } from '../runtime/parity.js'
import { ortRunner } from '../runtime/runner.js'
import { saveOrtFormat } from '../runtime/session.js'
import { VERSION } from '../util/version.js'
import { RequiredOperators } from '../report/required-ops.js'
import { textFeeds, tokenPreview, type TextFeeds, type TextInput } from '../tokenizer/index.js'
import { describeTextInputs, textReport, type TextReport } from './verify.js'
import { layOutFolder, writeFolderReport, type Alias } from './layout.js'
import { runPlan } from './plans.js'
import { searchPlan, type AutoReport } from './auto.js'
import { lineProgress, type Progress } from '../util/progress.js'
import { Evaluator, evalStamp, formatEvalCandidate, portableFile, type EvalCandidate, type EvalReport, type EvalRequest } from './evaluation.js'

/** The default random inputs: the sequence adapts to the model's positions. */
const DEFAULT_INPUTS_REQUEST: InputRequest = { batch: DEFAULT_INPUTS.batch, seed: DEFAULT_INPUTS.seed, choices: DEFAULT_INPUTS.choices ?? 2 }

export interface ConvertOptions {
  checkpoint: string
  /** How a checkpoint in the Hugging Face cache is looked up: the revision (default main). */
  cache?: ResolveOptions
  out: string
  task?: string
  /** Precisions to emit without a target (default fp32 only). */
  precisions?: Precision[]
  /** Plans to emit; overrides `precisions` (targets build these). */
  plans?: ArtifactPlan[]
  /** Replace an existing output folder albertkit wrote (util/output-guard.ts). */
  force?: boolean
  /** The output, already checked (see `checkConvertOutput`); checked here when absent. */
  checked?: CheckedOutput
  /** Skip the parity verdict. */
  noVerify?: boolean
  /** What the passes read (each pass documents its own options). */
  passOptions?: PassOptions
  /** Verification inputs (seeded random by default; an explicit sequence must fit the model's positions) and threshold overrides. */
  inputs?: InputRequest
  thresholds?: ThresholdOverrides
  /** Where `passOptions.fixedShape` came from, for messages (default `--fixed-shape`). */
  fixedShapeFrom?: string
  /** Verify on these texts (and pairs) through the checkpoint's tokenizer instead of seeded random inputs. */
  text?: { texts: TextInput[]; source: string }
  /** `--precision auto`: search the plans (pipeline/auto.ts) for the smallest that holds `eval.maxDrop`, and emit it alone */
  auto?: boolean
  /** A labelled dev set every model is scored on against the fp32 reference (and gated with `maxDrop`). */
  eval?: EvalRequest
  /** Progress lines (what each step did). */
  log?: (line: string) => void
  /** Long steps as they run, and what each did (takes the place of `log`). */
  progress?: Progress
  /** Warnings of the passes, as they come. */
  warn?: (message: string) => void
}

export interface Artifact {
  path: string
  bytes: number
  precision: string
  target: string
  nodes: number
  initializers: number
  opCounts: Record<string, number>
  /** what each pass did; without its timing, so the same checkpoint and flags give the same report */
  passes: Omit<PassReport, 'ms'>[]
  verdict?: ArtifactVerdict
}

export interface ConvertReport {
  albertkit: string
  /** the checkpoint: its folder's name (no path of the machine that wrote the report), format and digest */
  source: { name: string; format: string; sha256: string; files: SourceDigest['files']; hub?: HubSource }
  task: Task
  outputs: string[]
  artifacts: Artifact[]
  /** Second names of emitted files (transformers.js's q8 name for the int8 model). */
  aliases: Alias[]
  copied: string[]
  /** Files albertkit wrote for the folder (tokenizer files made from spiece.model). */
  generated: string[]
  parameters: { checkpoint: ParameterStats; model: ParameterStats }
  factorization: Factorization
  unusedTensors: string[]
  verification: { inputs: InputSpec | null; text?: TextReport; pass: boolean } | null
  /** with --eval: every model's metric on the dev set against the fp32 reference */
  evaluation?: EvalReport
  /** with --precision auto: the plan chosen, and every plan tried with its size and metric */
  auto?: AutoReport
  /** every file albertkit put in the folder, report.json included: with `albertkit`, the mark `--force` looks for */
  written: string[]
}

/** A checkpoint from the Hugging Face cache: the model, the revision asked for and the commit read. */
export interface HubSource {
  id: string
  revision: string
  commit: string
}

/**
 * convert's output, checked before anything is read: a folder clear of the checkpoint (and of the
 * other files named in `read`), that `--force` may replace only when albertkit wrote it.
 */
export function checkConvertOutput(opts: { checkpoint: string; cache?: ResolveOptions; out: string; force?: boolean; read?: GuardedInput[] }): CheckedOutput {
  return checkOutput(opts.out, { kind: 'folder', force: !!opts.force, inputs: [{ path: checkpointFolder(opts.checkpoint, opts.cache), what: 'the checkpoint' }, ...(opts.read ?? [])] })
}

/** The checkpoint folder an argument names: the folder, or the one a file inside it lies in (a cached model's snapshot). */
function checkpointFolder(arg: string, cache?: ResolveOptions): string {
  arg = checkpointPathOf(arg, cache)
  try {
    return fs.statSync(arg).isDirectory() ? arg : path.dirname(arg)
  } catch {
    return arg
  }
}

export async function convert(opts: ConvertOptions): Promise<ConvertReport> {
  const progress = opts.progress ?? lineProgress(opts.log)
  const log = (line: string) => progress.info(line)
  const output = opts.checked ?? checkConvertOutput({ checkpoint: opts.checkpoint, cache: opts.cache, out: opts.out, force: opts.force })
  const reading = progress.start('reading checkpoint')
  const ckpt = openCheckpoint(opts.checkpoint, opts.cache)
  const task = resolveTask(ckpt.config, opts.task, ckpt.configFile)
  const digest = digestCheckpoint(ckpt.dir, [ckpt.configFile, ...ckpt.weightFiles])
  if (opts.auto && opts.eval?.maxDrop === undefined) throw new UsageError('--precision auto picks the smallest model that holds a largest drop on a dev set: give --eval FILE and --max-drop X')
  let plans = opts.plans ?? precisionPlans(opts.precisions ?? ['fp32'])
  const fixedShape = opts.passOptions?.fixedShape
  if (opts.eval && fixedShape) throw new UsageError('--eval cannot score a model with --fixed-shape (a dev set\'s batches vary in size and length; the model takes exactly the pinned shape)')
  if (opts.text && fixedShape) throw new UsageError('text inputs cannot verify a model with --fixed-shape (texts vary in length; the model takes exactly the pinned shape)')
  if (fixedShape && fixedShape[1] > ckpt.config.maxPositionEmbeddings) {
    const [B, S] = fixedShape
    throw new UsageError(beyondPositions(`${opts.fixedShapeFrom ?? '--fixed-shape'} ${B},${S} (sequence ${S})`, ckpt.config.maxPositionEmbeddings, ckpt.configFile))
  }
  // The sequence actually run: an explicit one must fit the model, the default adapts to it.
  const inputSpec = opts.noVerify || opts.text ? undefined : pinnedInputSpec(resolveInputSpec(opts.inputs ?? DEFAULT_INPUTS_REQUEST, ckpt.config, ckpt.configFile), fixedShape)
  reading.done(`${ckpt.format}, ${ckpt.weights.size} tensors`)
  const text = !opts.noVerify && opts.text ? textFeeds(ckpt.dir, opts.text.texts, ckpt.config, task, opts.text.source) : undefined
  if (text) {
    log(`inputs: ${describeTextInputs(text)}`)
    for (const row of text.rows) log(`  ${tokenPreview(row.tokens)}`)
    for (const w of text.warnings) progress.warn(w)
  } else if (inputSpec) log(`inputs: ${describeRandomInputs(inputSpec)}`)
  const feeds = text ? text.feeds : inputSpec ? randomInputs(ckpt.config, task, inputSpec) : undefined
  const weightBytes = [...ckpt.weights.values()].reduce((n, e) => n + e.tensor.byteLength, 0)
  const evaluator = opts.eval ? Evaluator.open(opts.eval, task, ckpt.dir, ckpt.config, progress, weightBytes > LARGE_MODEL_BYTES ? { disablePrepacking: true } : {}) : undefined
  await evaluator?.check()

  const stage = output.stage()
  try {
    fs.mkdirSync(path.join(stage.path, 'onnx'))
    let auto: AutoReport | undefined
    if (opts.auto) {
      const building = progress.start(`building ${task} graph`)
      const reference = buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.weightFiles[0] ?? ckpt.dir, configFile: ckpt.configFile }).model
      building.done()
      const found = await searchPlan(reference, evaluator!, opts.eval!.maxDrop!, opts.passOptions ?? {}, { runner: ortRunner, warn: opts.warn }, progress)
      plans = [found.plan]
      auto = found.report
      progress.info(`chose ${auto.chosen} (${plans[0]!.file})`)
    }
    const holder = new ModelHolder(path.join(stage.path, '.verify'), weightBytes > LARGE_MODEL_BYTES)
    const made = await makeModels(ckpt, task, plans, holder, digest.sha256, !!feeds || !!evaluator, opts, progress)
    if (holder.large) {
      // The checkpoint's buffers go before onnxruntime maps the models: about one copy at a time.
      ckpt.weights.clear()
      releaseMemory()
    }

    // The parity verdict of each model against the plain fp32 graph.
    const verdicts = new Map<ArtifactPlan, ArtifactVerdict>()
    if (feeds && made.reference) {
      const checking = progress.start('verifying', made.models.length + 1)
      checking.running('fp32 reference')
      const expected = await holder.reference(made.reference, feeds)
      checking.tick()
      for (const m of made.models) {
        checking.running(m.plan.file)
        const verdict = await holder.verify(m.held, m.plan, expected, feeds, opts.thresholds)
        checking.tick()
        verdicts.set(m.plan, verdict)
        for (const line of formatVerdict(verdict)) log(line)
      }
      const inputs = text ? describeTextInputs(text) : describeRandomInputs(inputSpec!)
      checking.done(`${[...verdicts.values()].filter((v) => v.pass).length} of ${verdicts.size} within tolerance; inputs: ${inputs}`)
    }

    // Each model on the labelled dev set against the fp32 reference.
    let evaluation: EvalReport | undefined
    const scored = new Map<ArtifactPlan, EvalCandidate>()
    if (evaluator && made.reference) {
      await evaluator.reference(holder.source(made.reference), `albertkit's fp32 graph of ${opts.checkpoint}`)
      for (const m of made.models) {
        const c = await evaluator.candidate(holder.source(m.held), m.plan.file, m.plan.precision)
        scored.set(m.plan, c)
        log(formatEvalCandidate(c))
      }
      evaluation = evaluator.report([...scored.values()], portableFile(opts.eval!.file), false)
    }

    // The files, with the verdict in their provenance.
    const artifacts: Artifact[] = []
    const externalFiles: string[] = []
    const writing = progress.start('writing', made.models.length)
    for (const m of made.models) {
      writing.running(m.plan.file)
      const model = holder.release(m.held)
      const verdict = verdicts.get(m.plan)
      const evaluated = scored.get(m.plan)
      if (verdict || evaluated) {
        stampProvenance(model, {
          ...provenanceOf(m.plan, digest.sha256, task),
          ...(verdict ? { verdict } : {}),
          ...(evaluated ? { eval: evalStamp(evaluation!, evaluated) } : {}),
          ...(auto ? { plan: auto } : {}),
        })
      }
      const written = writeModelFile(path.join(stage.path, m.plan.file), model)
      log(`wrote ${m.plan.file} (${written.bytes} bytes)`)
      if (written.externalFile) externalFiles.push(m.plan.file)
      const artifact: Artifact = { ...m.artifact, bytes: written.bytes + (written.externalBytes ?? 0) }
      if (verdict) artifact.verdict = verdict
      artifacts.push(artifact)
      writing.tick()
    }
    writing.done(`${artifacts.length} model${artifacts.length === 1 ? '' : 's'}`)
    holder.cleanup()
    await writeOrtFormat(stage.path, made.models.map((m) => m.plan), made.requiredOps, log)
    if (made.requiredOps) {
      made.requiredOps.write(path.join(stage.path, 'onnx', 'required_operators.config'))
      log('wrote onnx/required_operators.config')
    }
    const { copied, aliases, generated } = layOutFolder(ckpt, task, stage.path, artifacts.map((a) => a.path), externalFiles, transformersJsConfig(plans))
    const c = ckpt.config
    const report: ConvertReport = writeFolderReport(stage.path, {
      albertkit: VERSION,
      source: {
        // A cached model is named by its id (its snapshot folder's name is only the commit).
        name: ckpt.repo?.id ?? path.basename(path.resolve(ckpt.dir)),
        format: ckpt.format,
        sha256: digest.sha256,
        files: digest.files,
        ...(ckpt.repo ? { hub: { id: ckpt.repo.id, revision: ckpt.repo.revision, commit: ckpt.repo.commit } } : {}),
      },
      task,
      outputs: made.outputs,
      artifacts: artifacts.map((a) => ({ ...a, passes: a.passes.map(withoutTiming) })),
      aliases,
      copied,
      generated,
      parameters: made.parameters,
      factorization: factorization(c.vocabSize, c.embeddingSize, c.hiddenSize),
      unusedTensors: made.unused,
      verification: feeds
        ? { inputs: inputSpec ?? null, ...(text ? { text: portableTextReport(text, ckpt.dir) } : {}), pass: artifacts.every((a) => a.verdict?.pass) }
        : null,
      ...(evaluation ? { evaluation } : {}),
      ...(auto ? { auto } : {}),
    })
    output.commit(stage)
    return report
  } catch (e) {
    throw output.failed(e, stage)
  }
}

/**
 * The ORT-format copies the plans' targets ask for, saved by onnxruntime-node from the written
 * models; their operators join required_operators.config (onnxruntime's basic optimizations may
 * change a graph's ops, and the config must cover what ORT Mobile is given).
 */
async function writeOrtFormat(dir: string, plans: ArtifactPlan[], requiredOps: RequiredOperators | undefined, log: (line: string) => void): Promise<void> {
  for (const plan of plans) {
    const ortFile = ortFileOf(plan)
    if (!ortFile) continue
    const to = path.join(dir, ortFile)
    await saveOrtFormat(path.join(dir, plan.file), to)
    const bytes = fs.readFileSync(to)
    requiredOps?.addOperators(ortFile, ortOperators(bytes))
    log(`wrote ${ortFile} (${bytes.byteLength} bytes, ORT format)`)
  }
}

/**
 * The text report as report.json keeps it: no path of the machine that wrote it. The tokenizer
 * file is named inside the checkpoint folder; a text file by the path the user gave when it is
 * relative, by its name when it is absolute.
 */
function portableTextReport(text: TextFeeds, checkpointDir: string): TextReport {
  const report = textReport(text)
  const tokenizer = path.relative(path.resolve(checkpointDir), path.resolve(report.tokenizer))
  return {
    ...report,
    source: path.isAbsolute(report.source) ? path.basename(report.source) : report.source,
    tokenizer: tokenizer.split(path.sep).join('/'),
  }
}

/** A pass's report without its timing (the terminal shows that; report.json stays reproducible). */
export function withoutTiming(p: Omit<PassReport, 'ms'>): Omit<PassReport, 'ms'> {
  const { ms: _ms, ...rest } = p as PassReport
  return rest
}

function provenanceOf(plan: ArtifactPlan, sourceSha256: string, task: Task): Provenance {
  return { sourceSha256, task, target: plan.target, precision: plan.precision, passes: plan.passes }
}

interface Made {
  models: { plan: ArtifactPlan; held: Held; artifact: Omit<Artifact, 'bytes'> }[]
  /** the plain fp32 graph, kept for the verdict */
  reference: Held | undefined
  outputs: string[]
  unused: string[]
  parameters: ConvertReport['parameters']
  requiredOps: RequiredOperators | undefined
}

/**
 * Build the fp32 graph and every planned model from it, each stamped with its provenance and
 * handed to the holder. Nothing here outlives the call but what `Made` names, so a large
 * checkpoint's weights can be freed once it returns.
 */
async function makeModels(
  ckpt: Checkpoint,
  task: Task,
  plans: ArtifactPlan[],
  holder: ModelHolder,
  sourceSha256: string,
  keepReference: boolean,
  opts: ConvertOptions,
  progress: Progress,
): Promise<Made> {
  const log = (line: string) => progress.info(line)
  const building = progress.start(`building ${task} graph`)
  const built = buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.weightFiles[0] ?? ckpt.dir, configFile: ckpt.configFile })
  const reference = built.model
  building.done(`${reference.graph.nodes.length} nodes, ${reference.graph.initializers.length} initializers`)
  const parameters = {
    checkpoint: checkpointParameterStats(ckpt.config, new Map([...ckpt.weights].map(([k, e]) => [k, e.tensor]))),
    model: graphParameterStats(reference.graph),
  }
  // the operators every emitted model needs, for onnxruntime's reduced builds (targets that ask for it)
  const requiredOps = writesRequiredOperators(plans) ? new RequiredOperators() : undefined
  const models: Made['models'] = []
  const fileWidth = Math.max(...plans.map((p) => p.file.length))
  for (const plan of plans) {
    const making = progress.start(`making ${plan.file}`, plan.passes.length)
    passesOf(plan) // every pass name known before any runs
    const { model: variant, reports: passes } = await runPlan(cloneModel(reference), plan, opts.passOptions, { runner: ortRunner, warn: opts.warn }, {
      onStart: (pass) => making.running(pass.name),
      onReport: (r) => {
        log(`  ${`${plan.file}:`.padEnd(fileWidth + 1)} ${formatPassReport(r, { figures: true })}`)
        making.tick()
      },
    })
    making.done(`${variant.graph.nodes.length} nodes`)
    variant.graph.toposort()
    stampProvenance(variant, provenanceOf(plan, sourceSha256, task))
    requiredOps?.add(plan.file, variant)
    models.push({ plan, held: holder.hold(variant), artifact: { ...artifactOf(plan, variant), passes } })
  }
  return {
    models,
    reference: keepReference ? holder.hold(reference) : undefined,
    outputs: reference.graph.outputs.map((v) => v.name),
    unused: built.unused,
    parameters,
    requiredOps,
  }
}

/** Checkpoints with more weight bytes than this are held and verified through external-data scratch files. */
export const LARGE_MODEL_BYTES = 256e6

/** A model kept for the verdict: in memory, or (large) in a scratch file with external data. */
type Held = { model: Model } | { file: string }

/**
 * Keeps the models between making and writing them, and runs them for the parity verdict. Small
 * models stay in memory and go to onnxruntime as bytes. Large ones are written to scratch files
 * with external data as soon as they are made, so the checkpoint's buffers can go before
 * onnxruntime maps the files (pre-packing off) and each model is read back only to be written:
 * memory holds about one copy at a time.
 */
class ModelHolder {
  private count = 0
  constructor(
    private readonly scratch: string,
    readonly large: boolean,
  ) {}

  hold(model: Model): Held {
    if (!this.large) return { model }
    const file = path.join(this.scratch, String(this.count++), 'model.onnx')
    fs.mkdirSync(path.dirname(file), { recursive: true })
    writeModelFile(file, model, { externalData: true })
    return { file }
  }

  /** The model back, to be written (large: read from its scratch file). */
  release(held: Held): Model {
    return 'model' in held ? held.model : readModelFile(held.file)
  }

  source(held: Held): Uint8Array | string {
    return 'model' in held ? modelBytes(held.model) : held.file
  }

  private get session() {
    return this.large ? { disablePrepacking: true } : {}
  }

  reference(held: Held, feeds: Feed): Promise<OutputMap> {
    return referenceOutputs(this.source(held), feeds, this.session)
  }

  async verify(held: Held, plan: ArtifactPlan, expected: OutputMap, feeds: Feed, thresholds?: ThresholdOverrides): Promise<ArtifactVerdict> {
    const source = this.source(held)
    const candidate = typeof source === 'string' ? { path: plan.file, precision: plan.precision } : { path: plan.file, bytes: source, precision: plan.precision }
    const [verdict] = await verifyCandidates(expected, feeds, [candidate], thresholds, this.session, typeof source === 'string' ? source : undefined)
    return verdict!
  }

  cleanup(): void {
    fs.rmSync(this.scratch, { recursive: true, force: true })
  }
}

/** What report.json says of one emitted model, but its passes and size (optimize --target's report too). */
export function artifactOf(plan: ArtifactPlan, model: Model): Omit<Artifact, 'passes' | 'bytes'> {
  return {
    path: plan.file,
    precision: plan.precision,
    target: plan.target,
    nodes: model.graph.nodes.length,
    initializers: model.graph.initializers.length,
    opCounts: Object.fromEntries([...model.graph.opCounts()].sort(([a], [b]) => a.localeCompare(b))),
  }
}
