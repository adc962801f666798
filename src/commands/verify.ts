import { Args, Flags } from '@oclif/core'
import { AlbertkitCommand } from '../cli/base.js'
import { inputSpecFrom, textFlags, textsFrom, thresholdsFrom, verifyFlags } from '../cli/verify-flags.js'
import { verify } from '../pipeline/verify.js'
import { formatVerdict } from '../verify/verify.js'
import { tokenPreview } from '../tokenizer/index.js'

/** Rows of text inputs shown in the report's token preview. */
const PREVIEW_ROWS = 5

export default class Verify extends AlbertkitCommand {
  static override summary = 'Check ONNX models against the checkpoint they came from.'
  static override description =
    'Runs the checkpoint through albertkit’s plain fp32 graph (onnxruntime optimizations off) — or takes PyTorch goldens with --golden — and each candidate on the same inputs (seeded random batches with padding, --inputs, or real text through the checkpoint’s own tokenizer with --text / --text-file), then reports per output the max abs error, mean abs error, cosine similarity and, for logits, top-1 agreement. Thresholds follow each model’s precision (fp32: max abs 1e-4; fp16: cosine 0.9999; int8: cosine 0.999 and top-1 99%; int4: cosine 0.99) unless overridden. Exit code 1 when any model fails.'
  static override examples = [
    '<%= config.bin %> verify fixtures/albert-mlm build/albert-mlm/onnx/model.onnx build/albert-mlm/onnx/model_int8.onnx',
    '<%= config.bin %> verify ./ckpt model.onnx --golden golden.safetensors --inputs inputs.safetensors --json',
    '<%= config.bin %> verify fixtures/albert-mlm model.onnx --text "The quick brown fox." --text $\'Where is it?\\tIn the box.\'',
    '<%= config.bin %> verify ./ckpt model.onnx --text-file questions.tsv',
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
    ...textFlags,
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
      text: textsFrom(flags),
      spec: inputSpecFrom(flags),
      thresholds: thresholdsFrom(flags),
    })
    for (const w of report.text?.warnings ?? []) this.warn(w)
    if (!this.jsonEnabled()) {
      this.log(`reference: ${report.reference}; inputs: ${report.inputs}`)
      const rows = report.text?.rows ?? []
      for (const row of rows.slice(0, PREVIEW_ROWS)) this.log(`  ${tokenPreview(row.tokens)}`)
      if (rows.length > PREVIEW_ROWS) this.log(`  … ${rows.length - PREVIEW_ROWS} more`)
      for (const a of report.artifacts) for (const line of formatVerdict(a)) this.log(line)
    }
    if (!report.pass) process.exitCode = 1
    return report
  }
}
