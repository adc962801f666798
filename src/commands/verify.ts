import { Args, Flags } from '@oclif/core'
import { AlbertkitCommand } from '../cli/base.js'
import { checkRandomInputFlags, inputSpecFrom, textFlags, textsFrom, thresholdsFrom, verifyFlags } from '../cli/verify-flags.js'
import { verify } from '../pipeline/verify.js'
import { formatVerdict } from '../verify/verify.js'
import { tokenPreview } from '../tokenizer/index.js'
import { type ParsedFlags, readRecipe, recipeFlag, thresholdsWith, withRecipe } from '../cli/recipe.js'
import { checkVerifyFlags, sequenceSource } from '../cli/contradictions.js'
import { EXIT_CODES_HELP } from '../cli/help.js'
import { TASKS } from '../builder/albert.js'
import { UserError } from '../util/errors.js'

/** Rows of text inputs shown in the report's token preview. */
const PREVIEW_ROWS = 5

export default class Verify extends AlbertkitCommand {
  static override summary = 'Check ONNX models against the checkpoint they came from.'
  static override description =
    'Runs the checkpoint through albertkit’s plain fp32 graph (onnxruntime optimizations off) — or takes PyTorch goldens with --golden — and each candidate on the same inputs (seeded random batches with padding, --inputs, or real text through the checkpoint’s own tokenizer with --text / --text-file), then reports per output the max abs error, mean abs error, cosine similarity and, for logits, top-1 agreement. Thresholds follow each model’s precision (fp32: max abs 1e-4; fp16: cosine 0.9999; int8: cosine 0.999 and top-1 99%; int4: cosine 0.99) unless overridden by --max-abs, --cosine, --top1 or a recipe file (which can set them per precision).\n\n' +
    EXIT_CODES_HELP
  static override examples = [
    '<%= config.bin %> verify fixtures/albert-mlm build/albert-mlm/onnx/model.onnx build/albert-mlm/onnx/model_int8.onnx',
    '<%= config.bin %> verify ./ckpt model.onnx --golden golden.safetensors --inputs inputs.safetensors --json',
    '<%= config.bin %> verify fixtures/albert-mlm model.onnx --text "The quick brown fox." --text $\'Where is it?\\tIn the box.\'',
    '<%= config.bin %> verify ./ckpt model.onnx --text-file questions.tsv',
    {
      description: 'Inputs and thresholds as the repository pins them, the verdict as JSON for CI, nothing on stderr but errors:',
      command: '<%= config.bin %> verify ./ckpt build/onnx/model.onnx build/onnx/model_int8.onnx --recipe albertkit.json --json --quiet > verdict.json',
    },
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
    ...recipeFlag,
  }
  static override enableJsonFlag = true

  async run(): Promise<unknown> {
    const parsed = await this.parse(Verify)
    const { args, argv } = parsed
    const candidates = (argv as string[]).slice(1)
    const recipe = parsed.flags.recipe ? readRecipe(parsed.flags.recipe) : undefined
    const flags = withRecipe(parsed, recipe, Verify.flags)
    // Flag values are checked before any file is read: a bad one is a usage error (exit code 2).
    const typed = parsed as unknown as ParsedFlags<Record<string, unknown>>
    const settings = this.usage(() => {
      checkRandomInputFlags(typed, flags)
      if (flags.golden && !flags.inputs) throw new UserError(`${flags.golden}: goldens need the inputs they were computed on (--inputs)`)
      checkVerifyFlags(typed, flags)
      if (flags.task && !(TASKS as readonly string[]).includes(flags.task)) throw new UserError(`unknown task '${flags.task}' (choose one of ${TASKS.join(', ')})`)
      return { spec: inputSpecFrom(flags, sequenceSource(typed, recipe)), thresholds: thresholdsWith(recipe, thresholdsFrom(flags)) }
    })
    const text = flags['text-file'] !== undefined ? textsFrom(flags) : this.usage(() => textsFrom(flags))
    const progress = this.progress(flags)
    const report = await verify({
      checkpoint: args.checkpoint,
      candidates,
      task: flags.task,
      golden: flags.golden,
      inputs: flags.inputs,
      text,
      ...settings,
      progress,
    })
    for (const w of report.text?.warnings ?? []) progress.warn(w)
    if (!this.jsonEnabled()) {
      this.log(`reference: ${report.reference}; inputs: ${report.inputs}`)
      const rows = report.text?.rows ?? []
      for (const row of rows.slice(0, PREVIEW_ROWS)) this.log(`  ${tokenPreview(row.tokens)}`)
      if (rows.length > PREVIEW_ROWS) this.log(`  … ${rows.length - PREVIEW_ROWS} more`)
      for (const a of report.artifacts) for (const line of formatVerdict(a)) this.log(line)
    }
    if (!report.pass) this.parityFailed()
    return report
  }
}
