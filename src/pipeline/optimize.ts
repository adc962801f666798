/** `optimize`: any ONNX file → chosen passes → a new ONNX file, with what each pass did. */
import fs from 'node:fs'
import path from 'node:path'
import { readModelFile, writeModelFile } from '../onnx/file.js'
import { passByName } from '../passes/index.js'
import { runPasses, type PassOptions, type PassReport } from '../passes/pass.js'
import { UserError } from '../util/errors.js'
import { VERSION } from '../version.js'
import { lineProgress, type Progress } from '../util/progress.js'

export interface OptimizeOptions extends PassOptions {
  input: string
  output: string
  passes: string[]
  force?: boolean
  log?: (line: string) => void
  /** Long steps as they run (reading, each pass, writing); takes the place of `log`. */
  progress?: Progress
}

export interface OptimizeReport {
  albertkit: string
  input: { path: string; bytes: number }
  output: { path: string; bytes: number }
  passes: PassReport[]
}

export async function optimize(opts: OptimizeOptions): Promise<OptimizeReport> {
  if (path.resolve(opts.input) === path.resolve(opts.output)) throw new UserError(`${opts.output}: the output must not overwrite the input`)
  if (fs.existsSync(opts.output) && !opts.force) throw new UserError(`${opts.output}: already exists (pass --force to replace it)`)
  const passes = opts.passes.map(passByName)
  const progress = opts.progress ?? lineProgress(opts.log)
  const reading = progress.start(`reading ${opts.input}`)
  const model = readModelFile(opts.input)
  reading.done(`${model.graph.nodes.length} nodes, ${model.graph.initializers.length} initializers`)
  const running = progress.start('running passes', passes.length)
  const reports: PassReport[] = []
  for (const pass of passes) {
    running.running(pass.name)
    reports.push(...(await runPasses(model, [pass], opts)))
    running.tick()
  }
  running.done(`${reports.filter((r) => r.changed).length} of ${reports.length} changed the graph; ${model.graph.nodes.length} nodes`)
  model.graph.toposort()
  fs.mkdirSync(path.dirname(path.resolve(opts.output)), { recursive: true })
  const writing = progress.start(`writing ${opts.output}`)
  const written = writeModelFile(opts.output, model)
  writing.done(`${written.bytes + (written.externalBytes ?? 0)} bytes`)
  return {
    albertkit: VERSION,
    input: { path: opts.input, bytes: fs.statSync(opts.input).size },
    output: { path: opts.output, bytes: written.bytes + (written.externalBytes ?? 0) },
    passes: reports,
  }
}
