import { Args, Flags } from '@oclif/core'
import { AlbertkitCommand } from '../cli/base.js'
import { checkRandomInputFlags, inputSpecFrom, textFlags, textsFrom, thresholdsFrom, verifyFlags } from '../cli/verify-flags.js'
import { isOnnxReference, verify } from '../pipeline/verify.js'
import { formatVerdict } from '../verify/verdict.js'
import { tokenPreview } from '../tokenizer/index.js'
import { recipeFlag, thresholdsWith } from '../cli/recipe.js'
import { checkVerifyFlags, sequenceSource } from '../cli/contradictions.js'
import type { FlagGroup } from '../cli/help.js'
import { examples, prose } from '../cli/prose.js'
import { exitCodeRows } from '../cli/exit-codes.js'
import { UserError } from '../util/errors.js'
import { checkTask, revisionFlag, revisionOf, taskFlag } from '../cli/checkpoint-flags.js'
import { evalFlags, evalRequestFrom } from '../cli/eval-flags.js'
import { formatEvalCandidate, formatEvalHeader } from '../pipeline/evaluation.js'

/** Rows of text inputs shown in the report's token preview. */
const PREVIEW_ROWS = 5

export default class Verify extends AlbertkitCommand {
  static override summary = 'Check ONNX models against their checkpoint or a reference ONNX model.'
  static override description = prose(`
    Runs the reference and each candidate on the same inputs: seeded random batches with padding, a
    safetensors file (--inputs), or real text through the reference’s tokenizer (--text, --text-file).

    The reference is a checkpoint, run through albertkit’s plain fp32 graph; an ONNX model, run as
    written (its vocabulary, positions and token types read from its embedding tables; its tokenizer
    beside it, or --tokenizer); or PyTorch goldens (--golden). onnxruntime optimizations are off.

    It reports per output the max abs error, the mean abs error, the cosine similarity and, for logits,
    the top-1 agreement.

    Thresholds follow each model’s precision (fp32: max abs 1e-4; fp16: cosine 0.9999; int8: cosine
    0.999 and top-1 99%; int4: cosine 0.99) unless --max-abs, --cosine, --top1 or a recipe file (which
    can set them per precision) say otherwise.

    With --eval FILE, each candidate and the fp32 reference are also scored on a labelled dev set (the
    head’s metric: accuracy, entity F1, SQuAD F1, fill-mask top-1): the drop in points, its 95% interval
    (seeded paired bootstrap) and the predictions that changed. --max-drop fails a candidate whose drop
    is larger.

    Nothing is written. The verdicts, or with --json the report, go to stdout; progress goes to stderr.
  `)
  static override usage = '<%= command.id %> REFERENCE CANDIDATES... [FLAGS]'
  static override examples = examples('verify', `
    Check an fp32 and an int8 model against the checkpoint they came from:
    fixtures/albert-mlm build/albert-mlm/onnx/model.onnx build/albert-mlm/onnx/model_int8.onnx

    Check albertkit’s models against another exporter’s ONNX (tokenizer files beside it):
    exported/model.onnx build/albert/onnx/model.onnx build/albert/onnx/model_int8.onnx --text "The quick brown fox."

    Compare with PyTorch outputs computed on given inputs, the verdict as JSON:
    ./ckpt model.onnx --golden golden.safetensors --inputs inputs.safetensors --json

    Verify on real text; a TAB splits a question from its context:
    ./ckpt model.onnx --text "The quick brown fox." --text $'Where is it?\\tIn the box.'

    Verify on the texts of a file, one a line:
    ./ckpt model.onnx --text-file questions.tsv

    Score the int8 model on a labelled dev set; fail when accuracy drops by more than 1 point:
    ./ckpt build/onnx/model_int8.onnx --eval dev.jsonl --max-drop 1

    Inputs and thresholds as the repository pins them, the verdict as JSON for CI, nothing on stderr but
    errors:
    ./ckpt build/onnx/model.onnx build/onnx/model_int8.onnx --recipe albertkit.json --json --quiet > verdict.json
  `)
  static exitCodes = exitCodeRows(`
    ok: every candidate is within tolerance

    parity: a candidate is out of tolerance, or its metric on --eval dropped by more than --max-drop;
    the report still prints

    usage: an unknown or missing flag or argument, a bad flag value, flags that contradict, a bad recipe
    file; nothing was read

    input: an unreadable, malformed or unsupported checkpoint, reference ONNX model (no embedding tables
    found) or candidate, a reference without a tokenizer for --text, a model or revision missing from
    the Hugging Face cache, a bad --golden, --inputs, --text-file or --eval file
  `)
  static override args = {
    reference: Args.string({ description: 'the original checkpoint folder (or org/name in the Hugging Face cache), or an ONNX model to check against', required: true }),
    candidates: Args.string({ description: 'ONNX models to check (one or more)', required: true, multiple: true }),
  }
  static override flags = {
    ...revisionFlag,
    ...taskFlag('head of the reference graph', 'VERIFICATION'),
    golden: Flags.string({ description: 'safetensors of PyTorch outputs to compare against, instead of the fp32 graph (needs --inputs)', helpValue: '<file>', helpGroup: 'VERIFICATION' satisfies FlagGroup }),
    inputs: Flags.string({ description: 'safetensors of input_ids, attention_mask, token_type_ids to run on', exclusive: ['text', 'text-file'], helpValue: '<file>', helpGroup: 'VERIFICATION' satisfies FlagGroup }),
    ...textFlags,
    tokenizer: Flags.string({ description: 'folder of the tokenizer for --text and --text-file (default: the checkpoint’s, or the one beside an ONNX reference)', helpValue: '<folder>', helpGroup: 'VERIFICATION' satisfies FlagGroup }),
    ...verifyFlags,
    ...evalFlags,
    ...recipeFlag,
  }

  async run(): Promise<unknown> {
    const { args, flags, recipe, typed } = await this.parseWithRecipe(Verify)
    const candidates = args.candidates
    // Flag values are checked before any file is read: a bad one is a usage error (exit code 2).
    const settings = this.usage(() => {
      checkRandomInputFlags(typed, flags)
      if (flags.golden && !flags.inputs) throw new UserError(`${flags.golden}: goldens need the inputs they were computed on (--inputs)`)
      checkVerifyFlags(typed, flags, isOnnxReference(args.reference) ? args.reference : undefined)
      checkTask(flags.task)
      const evalRequest = evalRequestFrom(flags)
      return { spec: inputSpecFrom(flags, sequenceSource(typed, recipe)), thresholds: thresholdsWith(recipe, thresholdsFrom(flags)), cache: revisionOf(args.reference, typed, flags, recipe), ...(evalRequest ? { eval: evalRequest } : {}) }
    })
    const text = textsFrom(flags)
    const progress = this.progress(flags)
    const report = await verify({
      checkpoint: args.reference,
      ...(flags.tokenizer !== undefined ? { tokenizer: flags.tokenizer } : {}),
      candidates,
      // A recipe's task is for checkpoints; an ONNX reference has its own head (a typed --task is refused above).
      task: isOnnxReference(args.reference) ? undefined : flags.task,
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
      if (report.eval) {
        const e = report.eval
        this.log(formatEvalHeader(e))
        for (const c of e.candidates) this.log(`  ${formatEvalCandidate(c)}`)
      }
    }
    const failed = report.eval?.candidates.find((c) => c.gate && !c.gate.pass)
    if (failed) process.stderr.write(`Error: ${failed.file}: ${failed.gate!.message}\n`)
    if (!report.pass) this.parityFailed()
    return report
  }
}
