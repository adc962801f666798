import { Args, Flags } from '@oclif/core'
import { AlbertkitCommand } from '../cli/base.js'
import { inputSpecFrom, thresholdsFrom, verifyFlags } from '../cli/verify-flags.js'
import { verify } from '../pipeline/verify.js'
import { formatVerdict } from '../verify/verify.js'

export default class Verify extends AlbertkitCommand {
  static override summary = 'Check ONNX models against the checkpoint they came from.'
  static override description =
    'Runs the checkpoint through albertkit’s plain fp32 graph (onnxruntime optimizations off) — or takes PyTorch goldens with --golden — and each candidate on the same inputs (seeded random batches with padding, or --inputs), then reports per output the max abs error, mean abs error, cosine similarity and, for logits, top-1 agreement. Thresholds follow each model’s precision (fp32: max abs 1e-4; fp16: cosine 0.9999; int8: cosine 0.999 and top-1 99%; int4: cosine 0.99) unless overridden. Exit code 1 when any model fails.'
  static override examples = [
    '<%= config.bin %> verify fixtures/albert-mlm build/albert-mlm/onnx/model.onnx build/albert-mlm/onnx/model_int8.onnx',
    '<%= config.bin %> verify ./ckpt model.onnx --golden golden.safetensors --inputs inputs.safetensors --json',
  ]
  static override strict = false
  static override args = {
    checkpoint: Args.string({ description: 'the original checkpoint folder', required: true }),
    candidates: Args.string({ description: 'ONNX models to check (one or more)', required: true }),
  }
  static override flags = {
    task: Flags.string({ description: 'head of the reference graph (default: from config.architectures)' }),
    golden: Flags.string({ description: 'safetensors of PyTorch outputs to compare against (needs --inputs)' }),
    inputs: Flags.string({ description: 'safetensors of input_ids, attention_mask, token_type_ids to run on' }),
    ...verifyFlags,
  }
  static override enableJsonFlag = true

  async run(): Promise<unknown> {
    const { args, argv, flags } = await this.parse(Verify)
    const candidates = (argv as string[]).slice(1)
    const report = await verify({
      checkpoint: args.checkpoint,
      candidates,
      task: flags.task,
      golden: flags.golden,
      inputs: flags.inputs,
      spec: inputSpecFrom(flags),
      thresholds: thresholdsFrom(flags),
    })
    if (!this.jsonEnabled()) {
      this.log(`reference: ${report.reference}; inputs: ${report.inputs}`)
      for (const a of report.artifacts) for (const line of formatVerdict(a)) this.log(line)
    }
    if (!report.pass) process.exitCode = 1
    return report
  }
}
