import { Args, Flags } from '@oclif/core'
import { AlbertkitCommand } from '../cli/base.js'
import { checkConvertOutput, convert } from '../pipeline/convert.js'
import { passFlags, passOptionsFrom } from '../cli/pass-flags.js'
import { AUTO_KINDS, PRECISION, PRECISIONS, autoPlan, parsePrecisions, precisionPlans } from '../targets/precision.js'
import { TARGET_NAMES, targetPlans } from '../targets/targets.js'
import { checkRandomInputFlags, inputSpecFrom, textFlags, textsFrom, thresholdsFrom, verifyFlags, verifySwitch } from '../cli/verify-flags.js'
import { parseFixedShape, readCalibration, targetFlags } from '../cli/target-flags.js'
import { UserError } from '../util/errors.js'
import { given, recipeFlag, thresholdsWith } from '../cli/recipe.js'
import { checkConvertFlags, checkVerbosity, sequenceSource } from '../cli/contradictions.js'
import { formatEvalCandidate, formatEvalHeader } from '../pipeline/evaluation.js'
import { formatPoints } from '../eval/index.js'
import { verboseFlag } from '../cli/pass-flags.js'
import type { FlagGroup } from '../cli/help.js'
import { examples, prose } from '../cli/prose.js'
import { exitCodeRows } from '../cli/exit-codes.js'
import { formatBytes } from '../util/format.js'
import { folderLines, outputFlags, outputShown, readFiles } from '../cli/output.js'
import { checkTask, revisionFlag, revisionOf, taskFlag } from '../cli/checkpoint-flags.js'
import { evalFlags, evalRequestFrom } from '../cli/eval-flags.js'

export default class Convert extends AlbertkitCommand {
  static override summary = 'Build ONNX models from an ALBERT checkpoint.'
  static override description = prose(`
    Reads an ALBERT checkpoint and writes a folder that transformers.js loads as it is. The checkpoint
    is a Hugging Face folder (config.json with model.safetensors, sharded safetensors or
    pytorch_model.bin) or an original Google TF1 checkpoint.

    A model in the Hugging Face cache is named by its id (org/name, at --revision) and read where
    huggingface_hub keeps it (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub); nothing is
    downloaded.

    The folder holds onnx/model.onnx, built straight from the weights (opset 17, each shared ALBERT
    tensor stored once); one more model per --precision, or the models of a --target; config.json; the
    tokenizer files (tokenizer.json made from spiece.model when the checkpoint has none); and
    report.json.

    The head comes from config.architectures unless --task names one.

    Every model is checked against the fp32 graph, on seeded random inputs or on real text (--text,
    --text-file), unless --no-verify.

    Progress goes to stderr: one redrawn line on a terminal, plain lines in CI and pipes. The files
    written, or with --json the report, go to stdout. Nothing is left at the output folder when anything
    fails.
  `)
  static override usage = '<%= command.id %> CHECKPOINT -o <folder> [FLAGS]'
  static override examples = examples('convert', `
    fixtures/albert-mlm --out build/albert-mlm

    ./my-albert --out ./onnx-albert --task text-classification

    Emit fp32 and int8 with int8 held to a tighter cosine, and keep the report for CI:
    ./my-albert --out build/albert --precision fp32,int8 --cosine 0.9995 --json > report.json

    Verify the emitted models on real text, through the checkpoint’s own tokenizer:
    fixtures/albert-seqcls-text --out build/albert-seqcls --target cpu --text "The library opens at nine."

    Convert a model from the Hugging Face cache (as \`hf download\` left it), at a tag:
    albert/albert-base-v2 --revision main --out build/albert-base --target cpu

    The smallest model whose accuracy on a labelled dev set stays within 1 point of fp32:
    ./my-albert --out build/albert --precision auto --eval dev.jsonl --max-drop 1

    Convert as the repository pins it (albertkit.json), quietly; flags on the command line win over the
    recipe:
    ./my-albert --out build/albert --recipe albertkit.json --quiet
  `)
  static exitCodes = exitCodeRows(`
    ok: the folder was written and every model is within tolerance

    parity: a model is out of tolerance, or its metric on --eval dropped by more than --max-drop; the
    folder and its report.json are still written

    usage: an unknown or missing flag or argument, a bad flag value, flags that contradict, a bad recipe
    file, an output that --force may not replace; nothing was read or written

    input: an unreadable, malformed or unsupported checkpoint, a model or revision missing from the
    Hugging Face cache, a bad --text-file, --calibration or --eval file, an output folder that exists
    (no --force) or cannot be written; nothing is left at the output
  `)
  static override args = {
    checkpoint: Args.string({ description: 'checkpoint folder (or a file inside it), or org/name in the Hugging Face cache', required: true }),
  }
  static override flags = {
    ...outputFlags('folder', 'output folder'),
    ...revisionFlag,
    ...taskFlag('head to build', 'MODEL'),
    target: Flags.string({ description: `the models and passes for a runtime: ${TARGET_NAMES.join(', ')} (see the README)`, helpValue: '<target>', helpGroup: 'MODEL' satisfies FlagGroup }),
    precision: Flags.string({ description: `comma-separated precisions to emit: ${PRECISIONS.join(', ')} (${PRECISIONS.map((p) => PRECISION[p].file.replace(/^onnx\//, '')).join(', ')}); or auto: the smallest plan that holds --max-drop on --eval`, default: 'fp32', helpValue: '<list>', helpGroup: 'MODEL' satisfies FlagGroup }),
    ...targetFlags,
    ...passFlags,
    ...verifySwitch('check every emitted model against the fp32 reference (exit code 1 when one fails)'),
    ...textFlags,
    ...verifyFlags,
    ...evalFlags,
    ...recipeFlag,
    ...verboseFlag,
  }

  async run(): Promise<unknown> {
    const { args, flags, recipe, typed } = await this.parseWithRecipe(Convert)
    // Every flag value is checked before any file is read: a bad one is a usage error (exit code 2).
    const settings = this.usage(() => {
      checkVerbosity(flags)
      checkRandomInputFlags(typed, flags)
      checkTask(flags.task)
      const auto = !flags.target && flags.precision.trim() === 'auto'
      // auto: the options of every plan it may try are checked as if all were asked for
      const plans = flags.target ? targetPlans(flags.target) : auto ? AUTO_KINDS.map((k) => autoPlan(k)) : precisionPlans(parsePrecisions(flags.precision))
      checkConvertFlags(typed, flags, recipe, plans)
      const passOptions = passOptionsFrom(flags)
      const evalRequest = evalRequestFrom(flags)
      if (auto && evalRequest?.maxDrop === undefined) throw new UserError('--precision auto picks the smallest model that holds a largest drop on a dev set: give --eval FILE and --max-drop X')
      return {
        ...(auto ? { auto } : {}),
        ...(evalRequest ? { eval: evalRequest } : {}),
        plans,
        passOptions: flags['fixed-shape'] ? { ...passOptions, fixedShape: parseFixedShape(flags['fixed-shape']) } : passOptions,
        ...(flags['fixed-shape'] && !given(typed, 'fixed-shape') && recipe ? { fixedShapeFrom: `${recipe.file}: options.fixed-shape` } : {}),
        inputs: inputSpecFrom(flags, sequenceSource(typed, recipe)),
        thresholds: thresholdsWith(recipe, thresholdsFrom(flags)),
        cache: revisionOf(args.checkpoint, typed, flags, recipe),
      }
    })
    // Where the output goes is checked before any input is read (util/output-guard.ts).
    const checked = checkConvertOutput({ checkpoint: args.checkpoint, cache: settings.cache, out: flags.out, force: flags.force, read: readFiles(flags) })
    const text = textsFrom(flags)
    const progress = this.progress(flags)
    const report = await convert({
      ...(text ? { text } : {}),
      checkpoint: args.checkpoint,
      out: flags.out,
      task: flags.task,
      force: flags.force,
      checked,
      ...settings,
      ...(flags.calibration ? { passOptions: { ...settings.passOptions, calibration: readCalibration(flags.calibration) } } : {}),
      noVerify: !flags.verify,
      progress,
      warn: (m) => progress.warn(m),
    })
    const out = outputShown(flags.out)
    // A model out of tolerance shows its figures and what it missed (--verbose shows every verdict as it runs).
    for (const line of folderLines(out, report)) this.log(line)
    if (report.generated.length > 0) this.log(`${out}: ${report.generated.join(', ')} made from spiece.model`)
    if (report.auto) {
      const a = report.auto
      for (const t of a.tried) this.log(`auto: ${t.name.padEnd(14)} ${formatBytes(t.bytes).padStart(9)}, ${t.metric} drop ${t.drop} points (95% interval ${t.interval[0]} to ${t.interval[1]}), ${t.holds ? 'within' : 'over'} ${formatPoints(a.maxDrop)}`)
      this.log(`auto: chose ${a.chosen}${a.tried.find((t) => t.name === a.chosen)!.kept.length > 0 ? ` (keeping ${a.tried.find((t) => t.name === a.chosen)!.kept.join(', ')})` : ''}`)
    }
    const e = report.evaluation
    if (e) {
      this.log(formatEvalHeader(e))
      for (const c of e.candidates) this.log(`  ${out}/${formatEvalCandidate(c)}`)
    }
    // one line on stderr: the dev set's gate when it failed (it names the metric, the drop and the margin), else parity's
    const parityFailed = !!report.verification && !report.verification.pass
    const failed = e?.candidates.find((c) => c.gate && !c.gate.pass)
    if (failed) process.stderr.write(`Error: ${out}/${failed.file}: ${failed.gate!.message}${parityFailed ? ' (and parity failed for at least one model: see above and report.json)' : ''}\n`)
    else if (parityFailed) process.stderr.write('Error: parity check failed for at least one model (see above and report.json)\n')
    if (failed || parityFailed) this.parityFailed()
    return report
  }
}
