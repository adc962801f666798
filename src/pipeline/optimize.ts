/**
 * `optimize`: any ONNX file → chosen passes → a new ONNX file, with what each pass did; or, with a
 * target, → the target's models, each verified against the input, in a folder laid out as convert's.
 */
import fs from 'node:fs'
import path from 'node:path'
import { cloneModel } from '../ir/graph.js'
import { modelBytes, readModelFile, writeModelFile } from '../onnx/file.js'
import { passByName } from '../passes/index.js'
import { PassManager, formatPassReport, type PassOptions, type PassReport } from '../passes/pass.js'
import { randomModelFeed } from '../passes/calibrate.js'
import { passesOf, type ArtifactPlan, type Precision } from '../targets/precision.js'
import { importedPlans, writesRequiredOperators } from '../targets/targets.js'
import { ortRunner } from '../runtime/runner.js'
import { referenceOutputs, verifyCandidates } from '../runtime/parity.js'
import { checkOutput, type CheckedOutput, type GuardedInput } from '../util/output-guard.js'
import { UsageError, UserError } from '../util/errors.js'
import { sha256File, stampOptimized, stampProvenance } from '../report/provenance.js'
import { RequiredOperators } from '../report/required-ops.js'
import { DEFAULT_INPUTS, type Feed } from '../verify/inputs.js'
import { formatVerdict, type ArtifactVerdict, type OutputMap, type ThresholdOverrides } from '../verify/verdict.js'
import { copyFolderFiles, writeAliases, writeFolderReport, type Alias } from './layout.js'
import { artifactOf, withoutTiming, type Artifact } from './convert.js'
import { VERSION } from '../util/version.js'
import { lineProgress, type Progress } from '../util/progress.js'

/** Where a run's lines go. */
interface Reporting {
  log?: (line: string) => void
  /** Long steps as they run (reading, each pass, writing); takes the place of `log`. */
  progress?: Progress
  /** Warnings of the passes, as they come. */
  warn?: (message: string) => void
}

export interface OptimizeOptions extends Reporting {
  input: string
  output: string
  passes: string[]
  /** What the passes read (each pass documents its own options). */
  passOptions?: PassOptions
  /** Replace an existing ONNX file albertkit wrote (util/output-guard.ts). */
  force?: boolean
  /** The output, already checked (see `checkOptimizeOutput`); checked here when absent. */
  checked?: CheckedOutput
}

export interface OptimizeReport {
  albertkit: string
  input: { path: string; bytes: number }
  output: { path: string; bytes: number }
  passes: PassReport[]
}

/** optimize's output, checked before anything is read: an ONNX file that is not the input, replaced only when albertkit wrote it. */
export function checkOptimizeOutput(opts: { input: string; output: string; force?: boolean; read?: GuardedInput[] }): CheckedOutput {
  return checkOutput(opts.output, { kind: 'onnx-file', force: !!opts.force, inputs: [{ path: opts.input, what: 'the input' }, ...(opts.read ?? [])] })
}

export async function optimize(opts: OptimizeOptions): Promise<OptimizeReport> {
  const output = opts.checked ?? checkOptimizeOutput({ input: opts.input, output: opts.output, force: opts.force })
  const passes = opts.passes.map(passByName)
  const progress = opts.progress ?? lineProgress(opts.log)
  const reading = progress.start(`reading ${opts.input}`)
  const input = readModelFile(opts.input)
  reading.done(`${input.graph.nodes.length} nodes, ${input.graph.initializers.length} initializers`)
  const running = progress.start('running passes', passes.length)
  const manager = new PassManager(passes, { onStart: (pass) => running.running(pass.name), onReport: () => running.tick() })
  const { model, reports } = await manager.run(input, opts.passOptions, { runner: ortRunner, warn: opts.warn })
  running.done(`${reports.filter((r) => r.changed).length} of ${reports.length} changed the graph; ${model.graph.nodes.length} nodes`)
  model.graph.toposort()
  stampOptimized(model, opts.passes)
  const writing = progress.start(`writing ${opts.output}`)
  const stage = output.stage()
  let written
  try {
    written = writeModelFile(output.fileIn(stage), model)
    output.commit(stage)
  } catch (e) {
    throw output.failed(e, stage)
  }
  writing.done(`${written.bytes + (written.externalBytes ?? 0)} bytes`)
  return {
    albertkit: VERSION,
    input: { path: opts.input, bytes: fs.statSync(opts.input).size },
    output: { path: opts.output, bytes: written.bytes + (written.externalBytes ?? 0) },
    passes: reports,
  }
}

export interface OptimizeTargetOptions extends Reporting {
  input: string
  /** the folder to write, laid out as convert's (pipeline/layout.ts) */
  out: string
  /** a target of targets/targets.ts */
  target: string
  /** only the target's models of these precisions (default: all of them) */
  precisions?: Precision[]
  /** keep the exporter's node metadata (no strip-metadata) */
  keepMetadata?: boolean
  force?: boolean
  /** The output, already checked (see `checkOptimizeTargetOutput`); checked here when absent. */
  checked?: CheckedOutput
  passOptions?: PassOptions
  /** Skip the parity verdict against the input. */
  noVerify?: boolean
  /** The verdict's random inputs (default: DEFAULT_INPUTS, the sequence cut to the model's positions). */
  inputs?: { batch: number; seed: number; sequence?: number }
  thresholds?: ThresholdOverrides
}

export interface OptimizeTargetReport {
  albertkit: string
  /** the input file: its name (no path of the machine), size and digest */
  input: { name: string; bytes: number; sha256: string }
  target: string
  artifacts: Artifact[]
  aliases: Alias[]
  /** config and tokenizer files copied from beside the input */
  copied: string[]
  verification: { inputs: { batch: number; sequence: number; seed: number }; pass: boolean } | null
  /** every file albertkit put in the folder, report.json included: the mark `--force` looks for */
  written: string[]
}

/** `optimize --target`'s output: a folder clear of the input (and its external data), replaced only when albertkit wrote it. */
export function checkOptimizeTargetOutput(opts: { input: string; out: string; force?: boolean; read?: GuardedInput[] }): CheckedOutput {
  return checkOutput(opts.out, { kind: 'folder', force: !!opts.force, inputs: [{ path: opts.input, what: 'the input' }, ...(opts.read ?? [])] })
}

/** The target's models of the precisions asked for; a precision the target does not make is a usage error naming those it does. */
export function targetModelPlans(target: string, precisions: Precision[] | undefined, keepMetadata: boolean): ArtifactPlan[] {
  const plans = importedPlans(target, { keepMetadata })
  if (!precisions) return plans
  const chosen = plans.filter((p) => precisions.includes(p.precision))
  const missing = precisions.filter((p) => !plans.some((x) => x.precision === p))
  if (missing.length) throw new UsageError(`--precision ${missing.join(',')}: --target ${target} makes ${[...new Set(plans.map((p) => p.precision))].join(', ')}`)
  return chosen
}

/**
 * `optimize INPUT --target T`: another exporter's ALBERT (or albertkit's own) made into what
 * `convert --target T` emits — the target's models (targets.ts, `importedPlans`), each judged
 * against the input ONNX on seeded random inputs shaped like its signature, in a folder laid out
 * as convert's with the config and tokenizer files that sit beside the input.
 */
export async function optimizeTarget(opts: OptimizeTargetOptions): Promise<OptimizeTargetReport> {
  const progress = opts.progress ?? lineProgress(opts.log)
  const log = (line: string) => progress.info(line)
  const output = opts.checked ?? checkOptimizeTargetOutput({ input: opts.input, out: opts.out, force: opts.force })
  const plans = targetModelPlans(opts.target, opts.precisions, !!opts.keepMetadata)
  const reading = progress.start(`reading ${opts.input}`)
  const input = readModelFile(opts.input)
  const sha256 = sha256File(opts.input)
  reading.done(`${input.graph.nodes.length} nodes, ${input.graph.initializers.length} initializers`)
  const fixed = opts.passOptions?.fixedShape
  const request = { ...DEFAULT_INPUTS, ...opts.inputs }
  const feed = opts.noVerify ? undefined : randomModelFeed(input.graph, fixed ? { batch: fixed[0], sequence: fixed[1], seed: request.seed } : request)
  const expected = feed && (await inputOutputs(opts.input, feed))
  const requiredOps = writesRequiredOperators(plans) ? new RequiredOperators() : undefined

  const stage = output.stage()
  try {
    fs.mkdirSync(path.join(stage.path, 'onnx'))
    const artifacts: Artifact[] = []
    for (const plan of plans) {
      const making = progress.start(`making ${plan.file}`, plan.passes.length)
      const manager = new PassManager(passesOf(plan), {
        onStart: (pass) => making.running(pass.name),
        onReport: (r) => {
          log(`  ${plan.file}: ${formatPassReport(r, { figures: true })}`)
          making.tick()
        },
      })
      const { model, reports } = await manager.run(cloneModel(input), opts.passOptions, { runner: ortRunner, warn: opts.warn })
      model.graph.toposort()
      making.done(`${model.graph.nodes.length} nodes`)
      let verdict: ArtifactVerdict | undefined
      if (feed && expected) {
        ;[verdict] = await verifyCandidates(expected, feed, [{ path: plan.file, bytes: modelBytes(model), precision: plan.precision }], opts.thresholds)
        for (const line of formatVerdict(verdict!)) log(line)
      }
      stampProvenance(model, { sourceSha256: sha256, target: plan.target, precision: plan.precision, passes: plan.passes, ...(verdict ? { verdict } : {}) })
      requiredOps?.add(plan.file, model)
      const written = writeModelFile(path.join(stage.path, plan.file), model)
      log(`wrote ${plan.file} (${written.bytes} bytes)`)
      artifacts.push({
        ...artifactOf(plan, model),
        bytes: written.bytes + (written.externalBytes ?? 0),
        passes: reports.map(withoutTiming),
        ...(verdict ? { verdict } : {}),
      })
    }
    requiredOps?.write(path.join(stage.path, 'onnx', 'required_operators.config'))
    const aliases = writeAliases(stage.path, artifacts.map((a) => a.path))
    const copied = copyFolderFiles(path.dirname(opts.input), stage.path)
    const report: OptimizeTargetReport = writeFolderReport(stage.path, {
      albertkit: VERSION,
      input: { name: path.basename(opts.input), bytes: fs.statSync(opts.input).size, sha256 },
      target: opts.target,
      artifacts,
      aliases,
      copied,
      verification: feed ? { inputs: { batch: feed.values().next().value!.dims[0]!, sequence: feed.values().next().value!.dims.at(-1)!, seed: request.seed }, pass: artifacts.every((a) => a.verdict?.pass) } : null,
    })
    output.commit(stage)
    return report
  } catch (e) {
    throw output.failed(e, stage)
  }
}

/** The input's outputs, the verdict's reference: a model onnxruntime cannot run is the user's file's problem (3), not a bug. */
async function inputOutputs(input: string, feed: Feed): Promise<OutputMap> {
  try {
    return await referenceOutputs(input, feed)
  } catch (e) {
    const why = (e instanceof Error ? e.message : String(e)).split('\n')[0]!.replace(/^onnxruntime cannot run this model: /, '')
    throw new UserError(`${input}: onnxruntime cannot run it on random inputs shaped like its signature (batch ${feed.values().next().value?.dims.join('×')}): ${why}`)
  }
}
