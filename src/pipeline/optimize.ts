/** `optimize`: any ONNX file → chosen passes → a new ONNX file, with what each pass did. */
import fs from 'node:fs'
import { readModelFile, writeModelFile } from '../onnx/file.js'
import { passByName } from '../passes/index.js'
import { PassManager, type PassOptions, type PassReport } from '../passes/pass.js'
import { ortRunner } from '../runtime/runner.js'
import { checkOutput, type CheckedOutput, type GuardedInput } from '../util/output-guard.js'
import { stampOptimized } from '../report/provenance.js'
import { VERSION } from '../util/version.js'
import { lineProgress, type Progress } from '../util/progress.js'

export interface OptimizeOptions {
  input: string
  output: string
  passes: string[]
  /** What the passes read (each pass documents its own options). */
  passOptions?: PassOptions
  /** Replace an existing ONNX file albertkit wrote (util/output-guard.ts). */
  force?: boolean
  /** The output, already checked (see `checkOptimizeOutput`); checked here when absent. */
  checked?: CheckedOutput
  log?: (line: string) => void
  /** Long steps as they run (reading, each pass, writing); takes the place of `log`. */
  progress?: Progress
  /** Warnings of the passes, as they come. */
  warn?: (message: string) => void
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
