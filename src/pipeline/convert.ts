/**
 * `convert`: checkpoint → ALBERT graph → one model per plan (passes from the recipe) → parity
 * verdict of each against the plain fp32 graph → ONNX files stamped with their provenance, in a
 * staged folder that appears at the destination only when everything was written.
 */
import fs from 'node:fs'
import path from 'node:path'
import { openCheckpoint, type Checkpoint } from '../checkpoint/index.js'
import { buildAlbert, resolveTask, type Task } from '../builder/albert.js'
import { cloneModel, type Model } from '../ir/graph.js'
import { runPasses, formatPassReport, type PassOptions, type PassReport } from '../passes/pass.js'
import { passesOf, precisionPlans, type ArtifactPlan, type Precision } from '../recipes/precision.js'
import { modelBytes, writeModelFile } from '../onnx/file.js'
import { StagedDir } from '../util/atomic.js'
import { UserError } from '../util/errors.js'
import { graphParameterStats, checkpointParameterStats, factorization, type ParameterStats, type Factorization } from '../report/stats.js'
import { digestCheckpoint, stampProvenance, type SourceDigest } from '../report/provenance.js'
import {
  DEFAULT_INPUTS,
  formatVerdict,
  randomInputs,
  referenceOutputs,
  verifyCandidates,
  type ArtifactVerdict,
  type InputSpec,
  type OutputMap,
  type Thresholds,
} from '../verify/verify.js'
import type { Tensor } from '../ir/tensor.js'
import { graphFigures } from '../passes/pass.js'
import { VERSION } from '../version.js'
import { pinnedInputSpec } from '../passes/fix-shapes.js'
import { RequiredOperators } from '../report/required-ops.js'

/** Files copied from the checkpoint folder next to the ONNX models when they exist. */
export const COPIED_FILES = ['config.json', 'spiece.model', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']

export interface ConvertOptions extends PassOptions {
  checkpoint: string
  out: string
  task?: string
  /** Precisions to emit without a target (default fp32 only). */
  precisions?: Precision[]
  /** Plans to emit; overrides `precisions` (targets build these). */
  plans?: ArtifactPlan[]
  /** Replace an existing output folder. */
  force?: boolean
  /** Skip the parity verdict. */
  noVerify?: boolean
  /** Verification inputs (seeded random by default) and threshold overrides. */
  inputs?: InputSpec
  thresholds?: Thresholds
  /** Progress lines (what each step did). */
  log?: (line: string) => void
}

export interface Artifact {
  path: string
  bytes: number
  precision: string
  target: string
  nodes: number
  initializers: number
  opCounts: Record<string, number>
  passes: PassReport[]
  verdict?: ArtifactVerdict
}

export interface ConvertReport {
  albertkit: string
  source: { path: string; format: string; sha256: string; files: SourceDigest['files'] }
  task: Task
  outputs: string[]
  artifacts: Artifact[]
  copied: string[]
  parameters: { checkpoint: ParameterStats; model: ParameterStats }
  factorization: Factorization
  unusedTensors: string[]
  verification: { inputs: InputSpec | null; pass: boolean } | null
}

export async function convert(opts: ConvertOptions): Promise<ConvertReport> {
  const log = opts.log ?? (() => {})
  const out = path.resolve(opts.out)
  if (fs.existsSync(out) && !opts.force) {
    throw new UserError(`${opts.out}: already exists (pass --force to replace it)`)
  }
  const ckpt = openCheckpoint(opts.checkpoint)
  const task = resolveTask(ckpt.config, opts.task, ckpt.configFile)
  const built = buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.weightFiles[0] ?? ckpt.dir, configFile: ckpt.configFile })
  const reference = built.model
  log(`built ${task} graph: ${reference.graph.nodes.length} nodes, ${reference.graph.initializers.length} initializers`)
  const digest = digestCheckpoint(ckpt.dir, [ckpt.configFile, ...ckpt.weightFiles])
  const plans = opts.plans ?? precisionPlans(opts.precisions ?? ['fp32'])

  const inputSpec = pinnedInputSpec(opts.inputs ?? DEFAULT_INPUTS, opts.fixedShape)
  const feeds = opts.noVerify ? undefined : randomInputs(ckpt.config, task, inputSpec)

  const stage = new StagedDir(out)
  try {
    fs.mkdirSync(path.join(stage.path, 'onnx'))
    const runner = new VerificationRunner(path.join(stage.path, '.verify'), graphFigures(reference).initializerBytes > LARGE_MODEL_BYTES)
    const expected = feeds ? await runner.reference(reference, feeds) : undefined
    const artifacts: Artifact[] = []
    // mobile: the operators every emitted model needs, for onnxruntime's reduced builds
    const requiredOps = plans.some((p) => p.target === 'mobile') ? new RequiredOperators() : undefined
    for (const plan of plans) {
      const variant = cloneModel(reference)
      const passes = await runPasses(variant, passesOf(plan), opts)
      for (const r of passes) if (r.changed) log(`  ${plan.file}: ${formatPassReport(r)}`)
      variant.graph.toposort()
      const provenance = { sourceSha256: digest.sha256, task, target: plan.target, precision: plan.precision, passes: plan.passes }
      stampProvenance(variant, provenance)
      let verdict: ArtifactVerdict | undefined
      if (feeds && expected) {
        verdict = await runner.verify(variant, plan, expected, feeds, opts.thresholds)
        stampProvenance(variant, { ...provenance, verdict: verdict! })
        for (const line of formatVerdict(verdict!)) log(line)
      }
      const written = writeModelFile(path.join(stage.path, plan.file), variant)
      log(`wrote ${plan.file} (${written.bytes} bytes)`)
      requiredOps?.add(plan.file, variant)
      const artifact: Artifact = { ...artifactOf(plan, written.bytes + (written.externalBytes ?? 0), variant), passes }
      if (verdict) artifact.verdict = verdict
      artifacts.push(artifact)
    }
    runner.cleanup()
    if (requiredOps) {
      requiredOps.write(path.join(stage.path, 'onnx', 'required_operators.config'))
      log('wrote onnx/required_operators.config')
    }
    const copied = copyCheckpointFiles(ckpt, stage.path)
    const c = ckpt.config
    const report: ConvertReport = {
      albertkit: VERSION,
      source: { path: ckpt.dir, format: ckpt.format, sha256: digest.sha256, files: digest.files },
      task,
      outputs: reference.graph.outputs.map((v) => v.name),
      artifacts,
      copied,
      parameters: {
        checkpoint: checkpointParameterStats(c, new Map([...ckpt.weights].map(([k, e]) => [k, e.tensor]))),
        model: graphParameterStats(reference.graph),
      },
      factorization: factorization(c.vocabSize, c.embeddingSize, c.hiddenSize),
      unusedTensors: built.unused,
      verification: feeds ? { inputs: inputSpec, pass: artifacts.every((a) => a.verdict?.pass) } : null,
    }
    fs.writeFileSync(path.join(stage.path, 'report.json'), JSON.stringify(report, null, 2) + '\n')
    stage.commit(opts.force ?? false)
    return report
  } catch (e) {
    stage.abort()
    throw e
  }
}

/** Models with more initializer bytes than this are verified from external-data files, memory-mapped. */
export const LARGE_MODEL_BYTES = 256e6

/**
 * Runs the reference and candidates for the parity verdict. Small models go to onnxruntime as
 * bytes; large ones are written to scratch files with external data, which onnxruntime maps
 * instead of copying, with pre-packing off, so a model is in memory about once.
 */
class VerificationRunner {
  private count = 0
  constructor(
    private readonly scratch: string,
    private readonly large: boolean,
  ) {}

  private async withSource<T>(model: Model, use: (source: Uint8Array | string) => Promise<T>): Promise<T> {
    if (!this.large) return use(modelBytes(model))
    const dir = path.join(this.scratch, String(this.count++))
    fs.mkdirSync(dir, { recursive: true })
    try {
      const file = path.join(dir, 'model.onnx')
      writeModelFile(file, model, { externalData: true })
      return await use(file)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }

  private get session() {
    return this.large ? { disablePrepacking: true } : {}
  }

  reference(model: Model, feeds: Map<string, Tensor>): Promise<OutputMap> {
    return this.withSource(model, (source) => referenceOutputs(source, feeds, this.session))
  }

  async verify(model: Model, plan: ArtifactPlan, expected: OutputMap, feeds: Map<string, Tensor>, thresholds?: Thresholds): Promise<ArtifactVerdict> {
    const [verdict] = await this.withSource(model, (source) =>
      verifyCandidates(expected, feeds, [{ path: plan.file, ...(typeof source === 'string' ? {} : { bytes: source }), precision: plan.precision }], thresholds, this.session, typeof source === 'string' ? source : undefined),
    )
    return verdict!
  }

  cleanup(): void {
    fs.rmSync(this.scratch, { recursive: true, force: true })
  }
}

function artifactOf(plan: ArtifactPlan, bytes: number, model: Model): Omit<Artifact, 'passes'> {
  return {
    path: plan.file,
    bytes,
    precision: plan.precision,
    target: plan.target,
    nodes: model.graph.nodes.length,
    initializers: model.graph.initializers.length,
    opCounts: Object.fromEntries([...model.graph.opCounts()].sort(([a], [b]) => a.localeCompare(b))),
  }
}

function copyCheckpointFiles(ckpt: Checkpoint, dest: string): string[] {
  const copied: string[] = []
  if (ckpt.format === 'tf-checkpoint') {
    // An original Google checkpoint has albert_config.json: write the Hugging Face config it maps to,
    // and Google's SentencePiece model under the name transformers loads.
    fs.writeFileSync(path.join(dest, 'config.json'), JSON.stringify(ckpt.config.raw, null, 2) + '\n')
    copied.push('config.json')
    const spm = fs.readdirSync(ckpt.dir).find((f) => f.endsWith('.model'))
    if (spm && !fs.existsSync(path.join(ckpt.dir, 'spiece.model'))) {
      fs.copyFileSync(path.join(ckpt.dir, spm), path.join(dest, 'spiece.model'))
      copied.push('spiece.model')
    }
  }
  for (const name of COPIED_FILES) {
    const src = path.join(ckpt.dir, name)
    if (!fs.existsSync(src)) continue
    fs.copyFileSync(src, path.join(dest, name))
    copied.push(name)
  }
  return copied
}
