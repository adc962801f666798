import { Args, Flags, type Interfaces } from '@oclif/core'
import { AlbertkitCommand } from '../cli/base.js'
import { checkOptimizeOutput, checkOptimizeTargetOutput, optimize, optimizeTarget, targetModelPlans } from '../pipeline/optimize.js'
import { PRECISIONS, parsePrecisions } from '../targets/precision.js'
import { TARGET_NAMES } from '../targets/targets.js'
import { inputSpecFrom, thresholdsFrom, verifyFlags, verifySwitch } from '../cli/verify-flags.js'
import { parseFixedShape, readCalibration, targetFlags } from '../cli/target-flags.js'
import { given } from '../cli/recipe.js'
import { PASSES } from '../passes/index.js'
import { UserError } from '../util/errors.js'
import { formatPassReport } from '../passes/pass.js'
import { passFlags, passOptionsFrom, verboseFlag } from '../cli/pass-flags.js'
import { formatBytes } from '../util/format.js'
import { folderLines, outputFlags, outputShown, readFiles } from '../cli/output.js'
import { passByName } from '../passes/index.js'
import { type ParsedFlags, type Recipe, recipeFlag } from '../cli/recipe.js'
import { checkOptimizeFlags, checkOptimizeTargetFlags, checkVerbosity } from '../cli/contradictions.js'
import type { FlagGroup, HelpTable } from '../cli/help.js'
import { examples, prose } from '../cli/prose.js'
import { exitCodeRows } from '../cli/exit-codes.js'

export default class Optimize extends AlbertkitCommand {
  static override summary = 'Run graph passes on any ONNX file.'
  static override description = prose(`
    Loads an ONNX model (albertkit’s or another exporter’s, external data included), runs the passes
    --passes names, in order, and writes the result to a new file.

    What each pass did goes to stdout (with --json, the report); progress goes to stderr.

    A recipe file (--recipe) can pin the passes ("passes") and their options ("options").

    With --target, --out is a folder laid out as convert’s: the target’s models (onnx/model.onnx,
    onnx/model_int8.onnx, …), config.json and the tokenizer files that sit beside the input, and
    report.json.

    Each model is made by the target’s passes after those that bring another exporter’s graph to
    albertkit’s form (the exporter’s node metadata dropped unless --keep-metadata), and checked against
    the input on seeded random inputs (exit code 1 when one fails).
  `)
  static override usage = '<%= command.id %> INPUT -o <file> [FLAGS]'
  static override examples = examples('optimize', `
    Quantize a model another exporter wrote to int8:
    exported/model.onnx --out exported/model_int8.onnx --passes dedup,quantize-int8

    What convert --target cpu gives, from an ONNX file torch exported (config and tokenizer files beside
    it are copied):
    exported/model.onnx --target cpu --out build/albert-cpu

    int4 weights in blocks of 64:
    model.onnx --out model_q4.onnx --passes dedup,quantize-int4 --block-size 64

    Passes and options from the repository's recipe, the report as JSON, no progress:
    model.onnx --out model_int8.onnx --recipe albertkit.json --json --quiet
  `)
  static helpTables: readonly HelpTable[] = [{ header: 'PASSES', rows: [...PASSES.values()].map((p) => [p.name, p.description]) }]
  static exitCodes = exitCodeRows(`
    ok: the passes ran and the model was written (with --target: every model agrees with the input)

    parity: with --target, a model’s outputs differ from the input’s beyond the thresholds (the folder
    is written)

    usage: an unknown or missing flag or argument, an unknown pass, a bad flag value, a bad recipe file,
    an output that --force may not replace; nothing was read or written

    input: an unreadable or malformed ONNX file, an output file that exists (no --force) or cannot be
    written; nothing is left at the output
  `)
  static override args = {
    input: Args.string({ description: 'ONNX file to read', required: true }),
  }
  static override flags = {
    ...outputFlags('file', 'ONNX file to write (with --target: the folder)'),
    passes: Flags.string({ char: 'p', description: 'comma-separated passes, run in order', default: 'dedup,fold-constants,remove-unused,sort-and-name', helpValue: '<list>', helpGroup: 'GRAPH' satisfies FlagGroup }),
    target: Flags.string({ description: `make the models of a runtime target, as convert --target does: ${TARGET_NAMES.join(', ')}`, helpValue: '<target>', helpGroup: 'MODEL' satisfies FlagGroup }),
    precision: Flags.string({ description: `with --target: only its models of these precisions (comma-separated: ${PRECISIONS.join(', ')})`, helpValue: '<list>', helpGroup: 'MODEL' satisfies FlagGroup }),
    'keep-metadata': Flags.boolean({ description: 'with --target: keep the exporter’s node metadata (stack traces, module paths)', default: false, helpGroup: 'MODEL' satisfies FlagGroup }),
    ...targetFlags,
    ...passFlags,
    ...verifySwitch('with --target: check every model against the input (exit code 1 when one fails)'),
    ...verifyFlags,
    ...recipeFlag,
    ...verboseFlag,
  }

  async run(): Promise<unknown> {
    const { args, flags, recipe, typed } = await this.parseWithRecipe(Optimize)
    // only a typed --target: a recipe's target is convert's (one recipe serves both)
    const target = given(typed, 'target') ? flags.target : undefined
    if (target) return this.runTarget(args.input, target, flags, typed, recipe)
    const passes = flags.passes.split(',').map((s) => s.trim()).filter(Boolean)
    const options = this.usage(() => {
      checkVerbosity(flags)
      checkOptimizeTargetFlags(typed, { ...flags, target: undefined, precision: flags.precision ?? '' }, recipe, [])
      if (passes.length === 0) throw new UserError('--passes names no pass')
      passes.forEach(passByName)
      checkOptimizeFlags(typed, flags, recipe, passes)
      return passOptionsFrom(flags)
    })
    const checked = checkOptimizeOutput({ input: args.input, output: flags.out, force: flags.force, read: readFiles({ recipe: flags.recipe }) })
    const progress = this.progress(flags)
    const report = await optimize({
      checked,
      input: args.input,
      output: flags.out,
      passes,
      force: flags.force,
      passOptions: options,
      progress,
      warn: (m) => progress.warn(m),
    })
    if (!this.jsonEnabled()) {
      for (const r of report.passes) this.log(formatPassReport(r, { figures: flags.verbose }))
      this.log(`${flags.out}: ${formatBytes(report.output.bytes)} (from ${formatBytes(report.input.bytes)})`)
    }
    return report
  }

  /** optimize --target: the target's models in a folder laid out as convert's, each verified against the input. */
  private async runTarget(input: string, target: string, flags: OptimizeFlags, typed: ParsedFlags<Record<string, unknown>>, recipe: Recipe | undefined): Promise<unknown> {
    const settings = this.usage(() => {
      checkVerbosity(flags)
      const precisions = given(typed, 'precision') && flags.precision !== undefined ? parsePrecisions(flags.precision) : undefined
      const plans = targetModelPlans(target, precisions, flags['keep-metadata'])
      checkOptimizeTargetFlags(typed, { ...flags, target, precision: flags.precision ?? '' }, recipe, plans)
      const passOptions = passOptionsFrom(flags)
      return {
        precisions,
        passOptions: flags['fixed-shape'] ? { ...passOptions, fixedShape: parseFixedShape(flags['fixed-shape']) } : passOptions,
        inputs: inputSpecFrom(flags),
        thresholds: thresholdsFrom(flags),
      }
    })
    const checked = checkOptimizeTargetOutput({ input, out: flags.out, force: flags.force, read: readFiles(flags) })
    const progress = this.progress(flags)
    const report = await optimizeTarget({
      checked,
      input,
      out: flags.out,
      target,
      force: flags.force,
      keepMetadata: flags['keep-metadata'],
      ...(settings.precisions ? { precisions: settings.precisions } : {}),
      passOptions: flags.calibration ? { ...settings.passOptions, calibration: readCalibration(flags.calibration) } : settings.passOptions,
      noVerify: !flags.verify,
      inputs: settings.inputs,
      thresholds: settings.thresholds,
      progress,
      warn: (m) => progress.warn(m),
    })
    const out = outputShown(flags.out)
    if (!this.jsonEnabled()) {
      for (const line of folderLines(out, report)) this.log(line)
      if (report.copied.length > 0) this.log(`${out}: ${report.copied.join(', ')} copied from beside the input`)
    }
    if (report.verification && !report.verification.pass) {
      this.parityFailed()
      process.stderr.write('Error: parity check failed for at least one model (see above and report.json)\n')
    }
    return report
  }
}

/** optimize's flags, the recipe's values filled in. */
type OptimizeFlags = Interfaces.InferredFlags<typeof Optimize.flags>
