/** `optimize`: any ONNX file → chosen passes → a new ONNX file, with what each pass did. */
import fs from 'node:fs'
import path from 'node:path'
import { readModelFile, writeModelFile } from '../onnx/file.js'
import { passByName } from '../passes/index.js'
import { runPasses, type PassOptions, type PassReport } from '../passes/pass.js'
import { UserError } from '../util/errors.js'
import { VERSION } from '../version.js'

export interface OptimizeOptions extends PassOptions {
  input: string
  output: string
  passes: string[]
  force?: boolean
  log?: (line: string) => void
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
  const model = readModelFile(opts.input)
  const reports = await runPasses(model, passes, opts)
  model.graph.toposort()
  fs.mkdirSync(path.dirname(path.resolve(opts.output)), { recursive: true })
  const written = writeModelFile(opts.output, model)
  return {
    albertkit: VERSION,
    input: { path: opts.input, bytes: fs.statSync(opts.input).size },
    output: { path: opts.output, bytes: written.bytes + (written.externalBytes ?? 0) },
    passes: reports,
  }
}
