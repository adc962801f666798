/**
 * `convert`: checkpoint → ALBERT graph → ONNX files in a staged folder → report; the folder appears
 * at the destination only when everything succeeded.
 */
import fs from 'node:fs'
import path from 'node:path'
import { openCheckpoint, type Checkpoint } from '../checkpoint/index.js'
import { buildAlbert, resolveTask, type Task } from '../builder/albert.js'
import type { Model } from '../ir/graph.js'
import { writeModelFile } from '../onnx/file.js'
import { StagedDir } from '../util/atomic.js'
import { UserError } from '../util/errors.js'
import { graphParameterStats, checkpointParameterStats, factorization, type ParameterStats, type Factorization } from '../report/stats.js'
import { VERSION } from '../version.js'

/** Files copied from the checkpoint folder next to the ONNX models when they exist. */
export const COPIED_FILES = ['config.json', 'spiece.model', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']

export interface ConvertOptions {
  checkpoint: string
  out: string
  task?: string
  /** Replace an existing output folder. */
  force?: boolean
  /** Progress lines (what each step did). */
  log?: (line: string) => void
}

export interface Artifact {
  path: string
  bytes: number
  precision: string
  nodes: number
  initializers: number
  opCounts: Record<string, number>
}

export interface ConvertReport {
  albertkit: string
  source: { path: string; format: string; files: { path: string; bytes: number }[] }
  task: Task
  outputs: string[]
  artifacts: Artifact[]
  copied: string[]
  parameters: { checkpoint: ParameterStats; model: ParameterStats }
  factorization: Factorization
  unusedTensors: string[]
  seconds: number
}

export function convert(opts: ConvertOptions): ConvertReport {
  const started = performance.now()
  const log = opts.log ?? (() => {})
  const out = path.resolve(opts.out)
  if (fs.existsSync(out) && !opts.force) {
    throw new UserError(`${opts.out}: already exists (pass --force to replace it)`)
  }
  const ckpt = openCheckpoint(opts.checkpoint)
  const task = resolveTask(ckpt.config, opts.task, ckpt.configFile)
  const built = buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.weightFiles[0] ?? ckpt.dir, configFile: ckpt.configFile })
  const { model } = built
  stampModel(model, task)
  log(`built ${task} graph: ${model.graph.nodes.length} nodes, ${model.graph.initializers.length} initializers`)

  const stage = new StagedDir(out)
  try {
    fs.mkdirSync(path.join(stage.path, 'onnx'))
    const rel = 'onnx/model.onnx'
    const written = writeModelFile(path.join(stage.path, rel), model)
    log(`wrote ${rel} (${written.bytes} bytes)`)
    const artifacts: Artifact[] = [artifactOf(rel, written.bytes + (written.externalBytes ?? 0), 'fp32', model)]
    const copied = copyCheckpointFiles(ckpt, stage.path)
    const c = ckpt.config
    const report: ConvertReport = {
      albertkit: VERSION,
      source: {
        path: ckpt.dir,
        format: ckpt.format,
        files: ckpt.weightFiles.map((f) => ({ path: path.relative(ckpt.dir, f), bytes: fs.statSync(f).size })),
      },
      task,
      outputs: model.graph.outputs.map((v) => v.name),
      artifacts,
      copied,
      parameters: {
        checkpoint: checkpointParameterStats(c, new Map([...ckpt.weights].map(([k, e]) => [k, e.tensor]))),
        model: graphParameterStats(model.graph),
      },
      factorization: factorization(c.vocabSize, c.embeddingSize, c.hiddenSize),
      unusedTensors: built.unused,
      seconds: 0,
    }
    report.seconds = round((performance.now() - started) / 1000, 3)
    fs.writeFileSync(path.join(stage.path, 'report.json'), JSON.stringify(report, null, 2) + '\n')
    stage.commit(opts.force ?? false)
    return report
  } catch (e) {
    stage.abort()
    throw e
  }
}

function stampModel(model: Model, task: Task): void {
  model.producerName = 'albertkit'
  model.producerVersion = VERSION
  model.setMetadata('albertkit.task', task)
}

export function artifactOf(rel: string, bytes: number, precision: string, model: Model): Artifact {
  return {
    path: rel,
    bytes,
    precision,
    nodes: model.graph.nodes.length,
    initializers: model.graph.initializers.length,
    opCounts: Object.fromEntries([...model.graph.opCounts()].sort(([a], [b]) => a.localeCompare(b))),
  }
}

function copyCheckpointFiles(ckpt: Checkpoint, dest: string): string[] {
  const copied: string[] = []
  for (const name of COPIED_FILES) {
    const src = path.join(ckpt.dir, name)
    if (!fs.existsSync(src)) continue
    fs.copyFileSync(src, path.join(dest, name))
    copied.push(name)
  }
  return copied
}

function round(x: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}
