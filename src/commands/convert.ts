import { Args, Flags } from '@oclif/core'
import { AlbertkitCommand } from '../cli/base.js'
import { convert } from '../pipeline/convert.js'
import { TASKS } from '../builder/albert.js'

export default class Convert extends AlbertkitCommand {
  static override summary = 'Build ONNX models from an ALBERT checkpoint.'
  static override description =
    'Reads a Hugging Face ALBERT checkpoint (config.json with model.safetensors or sharded safetensors) and writes <out>/onnx/model.onnx, built straight from the weights (opset 17, standard ops, each shared ALBERT tensor stored once), the config and tokenizer files, and <out>/report.json. The head comes from config.architectures unless --task names one. Nothing is left at <out> when anything fails.'
  static override examples = [
    '<%= config.bin %> convert fixtures/albert-mlm --out build/albert-mlm',
    '<%= config.bin %> convert ./my-albert --out ./onnx-albert --task text-classification',
  ]
  static override args = {
    checkpoint: Args.string({ description: 'checkpoint folder (or a file inside it)', required: true }),
  }
  static override flags = {
    out: Flags.string({ char: 'o', description: 'output folder', required: true }),
    task: Flags.string({ description: `head to build (default: from config.architectures): ${TASKS.join(', ')}` }),
    force: Flags.boolean({ char: 'f', description: 'replace the output folder if it exists', default: false }),
  }
  static override enableJsonFlag = true

  async run(): Promise<unknown> {
    const { args, flags } = await this.parse(Convert)
    const report = convert({
      checkpoint: args.checkpoint,
      out: flags.out,
      task: flags.task,
      force: flags.force,
      log: (line) => this.logToStderr(line),
    })
    for (const a of report.artifacts) this.log(`${flags.out}/${a.path}: ${a.precision}, ${formatBytes(a.bytes)}, ${a.nodes} nodes`)
    return report
  }
}

export function formatBytes(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} MB`
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`
  return `${n} B`
}
