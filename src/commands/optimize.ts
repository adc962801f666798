import { Args, Flags } from '@oclif/core'
import { AlbertkitCommand } from '../cli/base.js'
import { checkOptimizeOutput, optimize } from '../pipeline/optimize.js'
import { PASSES } from '../passes/index.js'
import { UserError } from '../util/errors.js'
import { formatPassReport } from '../passes/pass.js'
import { passFlags, passOptionsFrom, verboseFlag } from '../cli/pass-flags.js'
import { formatBytes } from '../util/format.js'
import { passByName } from '../passes/index.js'
import { type ParsedFlags, readRecipe, recipeFlag, withRecipe } from '../cli/recipe.js'
import { checkOptimizeFlags, checkVerbosity } from '../cli/contradictions.js'
import type { FlagGroup, HelpTable } from '../cli/help.js'
import { exitCodeRows } from '../cli/exit-codes.js'

export default class Optimize extends AlbertkitCommand {
  static override summary = 'Run graph passes on any ONNX file.'
  static override description = [
    'Loads an ONNX model (albertkit’s or another exporter’s, external data included), runs the passes --passes names, in order, and writes the result to a new file.',
    'What each pass did goes to stdout (with --json, the report); progress goes to stderr.',
    'A recipe file (--recipe) can pin the passes ("passes") and their options ("options").',
  ].join('\n\n')
  static override usage = '<%= command.id %> INPUT -o <file> [FLAGS]'
  static override examples = [
    {
      description: 'Quantize a model another exporter wrote to int8:',
      command: '<%= config.bin %> optimize exported/model.onnx --out exported/model_int8.onnx --passes dedup,quantize-int8',
    },
    {
      description: 'int4 weights in blocks of 64:',
      command: '<%= config.bin %> optimize model.onnx --out model_q4.onnx --passes dedup,quantize-int4 --block-size 64',
    },
    {
      description: 'Passes and options from the repository\'s recipe, the report as JSON, no progress:',
      command: '<%= config.bin %> optimize model.onnx --out model_int8.onnx --recipe albertkit.json --json --quiet',
    },
  ]
  static helpTables: readonly HelpTable[] = [{ header: 'PASSES', rows: [...PASSES.values()].map((p) => [p.name, p.description]) }]
  static exitCodes = exitCodeRows({
    ok: 'the passes ran and the model was written',
    usage: 'an unknown or missing flag or argument, an unknown pass, a bad flag value, a bad recipe file, an output that --force may not replace; nothing was read or written',
    input: 'an unreadable or malformed ONNX file, an output file that exists (no --force) or cannot be written; nothing is left at the output',
  })
  static override args = {
    input: Args.string({ description: 'ONNX file to read', required: true }),
  }
  static override flags = {
    out: Flags.string({ char: 'o', description: 'ONNX file to write', required: true, helpValue: '<file>', helpGroup: 'OUTPUT' satisfies FlagGroup }),
    force: Flags.boolean({ char: 'f', description: 'replace the output file if it exists', default: false, helpGroup: 'OUTPUT' satisfies FlagGroup }),
    passes: Flags.string({ char: 'p', description: 'comma-separated passes, run in order', default: 'dedup,fold-constants,remove-unused,sort-and-name', helpValue: '<list>', helpGroup: 'GRAPH' satisfies FlagGroup }),
    ...passFlags,
    ...recipeFlag,
    ...verboseFlag,
  }
  static override enableJsonFlag = true

  async run(): Promise<unknown> {
    const parsed = await this.parse(Optimize)
    const { args } = parsed
    const recipe = parsed.flags.recipe ? readRecipe(parsed.flags.recipe) : undefined
    const flags = withRecipe(parsed, recipe, Optimize.flags)
    const passes = flags.passes.split(',').map((s) => s.trim()).filter(Boolean)
    const options = this.usage(() => {
      checkVerbosity(flags)
      if (passes.length === 0) throw new UserError('--passes names no pass')
      passes.forEach(passByName)
      checkOptimizeFlags(parsed as unknown as ParsedFlags<Record<string, unknown>>, flags, recipe, passes)
      return passOptionsFrom(flags)
    })
    const checked = checkOptimizeOutput({ input: args.input, output: flags.out, force: flags.force, read: flags.recipe ? [{ path: flags.recipe, what: 'the recipe' }] : [] })
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
}
