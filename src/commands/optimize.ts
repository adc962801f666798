import { Args, Flags } from '@oclif/core'
import { AlbertkitCommand } from '../cli/base.js'
import { optimize } from '../pipeline/optimize.js'
import { PASSES } from '../passes/index.js'
import { formatPassReport } from '../passes/pass.js'
import { passFlags, passOptionsFrom } from '../cli/pass-flags.js'
import { formatBytes } from './convert.js'

export default class Optimize extends AlbertkitCommand {
  static override summary = 'Run graph passes on any ONNX file.'
  static override description = `Loads an ONNX model (albertkit's or another exporter's, external data included), runs the passes named by --passes in order, and writes the result. Passes: ${[...PASSES.values()].map((p) => `${p.name} (${p.description})`).join('; ')}.`
  static override examples = [
    '<%= config.bin %> optimize exported/model.onnx --out exported/model_int8.onnx --passes dedup,quantize-int8',
    '<%= config.bin %> optimize model.onnx --out model_q4.onnx --passes dedup,quantize-int4 --block-size 64',
  ]
  static override args = {
    input: Args.string({ description: 'ONNX file to read', required: true }),
  }
  static override flags = {
    out: Flags.string({ char: 'o', description: 'ONNX file to write', required: true }),
    passes: Flags.string({ char: 'p', description: 'comma-separated passes, run in order', default: 'dedup,fold-constants,remove-unused,sort-and-name' }),
    force: Flags.boolean({ char: 'f', description: 'replace the output file if it exists', default: false }),
    ...passFlags,
  }
  static override enableJsonFlag = true

  async run(): Promise<unknown> {
    const { args, flags } = await this.parse(Optimize)
    const report = await optimize({
      input: args.input,
      output: flags.out,
      passes: flags.passes.split(',').map((s) => s.trim()).filter(Boolean),
      force: flags.force,
      ...passOptionsFrom(flags),
      warn: (m) => process.stderr.write(`warning: ${m}\n`),
    })
    if (!this.jsonEnabled()) {
      for (const r of report.passes) this.log(formatPassReport(r))
      this.log(`${flags.out}: ${formatBytes(report.output.bytes)} (from ${formatBytes(report.input.bytes)})`)
    }
    return report
  }
}
