/**
 * Flags that contradict each other, or that the run they are given to cannot use, are usage errors
 * (exit code 2) naming both sides, found before any file is read: nothing is silently ignored.
 *
 * The rule for recipes: an option that contradicts the run (standard ops with a target whose fused
 * ops are com.microsoft ops) is refused wherever it comes from; an option a run merely does not use
 * is refused only when typed on the command line, since one recipe serves convert, verify and
 * optimize alike (its `block-size` is for an optimize run that makes int4 models).
 */
import { given, type ParsedFlags, type Recipe } from './recipe.js'
import type { ArtifactPlan } from '../targets/precision.js'
import { takes, targetsTaking } from '../targets/targets.js'
import { UsageError } from '../util/errors.js'

type Parsed = ParsedFlags<Record<string, unknown>>

/** The passes that read each pass-option flag, and the models that run them (for the message). */
export const OPTION_READERS: Record<string, { passes: string[]; models: string }> = {
  'per-tensor': { passes: ['quantize-int8', 'quantize-qdq', 'quantize-weights'], models: 'int8 models' },
  'keep-nodes': { passes: ['quantize-int8', 'quantize-int4', 'quantize-qdq', 'quantize-weights', 'fp16'], models: 'int8, int4 and fp16 models' },
  'keep-ops': { passes: ['quantize-int8', 'quantize-int4', 'quantize-qdq', 'quantize-weights', 'fp16'], models: 'int8, int4 and fp16 models' },
  'standard-ops': { passes: ['quantize-int8'], models: 'int8 models without a target' },
  'block-size': { passes: ['quantize-int4'], models: 'int4 models' },
  asymmetric: { passes: ['quantize-int4'], models: 'int4 models' },
  refactor: { passes: ['factorization-check'], models: 'optimize --passes factorization-check' },
  calibration: { passes: ['quantize-qdq', 'quantize-weights'], models: targetsTaking('calibration') },
}

/** Passes that write com.microsoft ops whatever --standard-ops says. */
const CONTRIB_PASSES = ['fuse-attention', 'fuse-gelu', 'fuse-layernorm', 'quantize-int4']

const list = (names: string[]) => names.map((n) => `--${n}`).join(', ')
const verb = (names: string[], one: string, many: string) => (names.length === 1 ? one : many)

/** --verbose asks for more on stderr, --quiet for nothing but errors. */
export function checkVerbosity(flags: { verbose?: boolean | undefined; quiet?: boolean | undefined }): void {
  if (flags.verbose && flags.quiet) throw new UsageError('--verbose and --quiet contradict each other (--quiet prints nothing on stderr but errors)')
}

/** Where an option's value came from, for messages: `--block-size`, or `albertkit.json: options.block-size`. */
function optionSource(parsed: Parsed, recipe: Recipe | undefined, name: string): string {
  return given(parsed, name) || !recipe ? `--${name}` : `${recipe.file}: options.${name}`
}

/**
 * Pass options against the passes that will run: `--standard-ops` with a pass that writes
 * com.microsoft ops contradicts it (from any source); an option typed on the command line that no
 * pass reads does nothing. `chose` names what chose the passes (`--target cpu`, `--passes ...`).
 */
export function checkPassOptions(parsed: Parsed, flags: Record<string, unknown>, recipe: Recipe | undefined, passes: Set<string>, chose: string): void {
  if (flags['standard-ops']) {
    const contrib = CONTRIB_PASSES.find((p) => passes.has(p))
    if (contrib) throw new UsageError(`${optionSource(parsed, recipe, 'standard-ops')} contradicts ${chose}: ${contrib} writes com.microsoft ops`)
  }
  for (const [name, { passes: readers, models }] of Object.entries(OPTION_READERS)) {
    if (!given(parsed, name) || readers.some((p) => passes.has(p))) continue
    const hint = chose.startsWith('--passes') ? '' : ` (${models})`
    throw new UsageError(`--${name} does nothing with ${chose}: only ${readers.join(', ')} ${verb(readers, 'reads', 'read')} it${hint}`)
  }
}

/** What chose convert's models, for messages. */
function modelChoice(parsed: Parsed, flags: { target?: string | undefined; precision: string }, recipe: Recipe | undefined): string {
  if (given(parsed, 'target')) return `--target ${flags.target}`
  if (given(parsed, 'precision')) return `--precision ${flags.precision}`
  if (flags.target) return `--target ${flags.target} (from ${recipe?.file})`
  if (recipe?.precisions) return `--precision ${flags.precision} (from ${recipe.file})`
  return `--precision ${flags.precision} (the default)`
}

export interface ConvertFlags {
  target?: string | undefined
  precision: string
  verify: boolean
  'fixed-shape'?: string | undefined
  text?: string[] | undefined
  'text-file'?: string | undefined
  [name: string]: unknown
}

/**
 * convert: `--target` with `--precision` (both choose the models), pass options the chosen models
 * do not use, verification flags with --no-verify, and input shapes that --fixed-shape overrides.
 */
export function checkConvertFlags(parsed: Parsed, flags: ConvertFlags, recipe: Recipe | undefined, plans: ArtifactPlan[]): void {
  if (given(parsed, 'target') && given(parsed, 'precision')) {
    const files = plans.map((p) => p.file.replace(/^onnx\//, '')).join(', ')
    throw new UsageError(`--target ${flags.target} and --precision ${flags.precision} both choose the models to emit (--target ${flags.target} writes ${files}); give one of them`)
  }
  if (flags['fixed-shape'] && !takes(flags.target, 'fixed-shape')) throw new UsageError(`${optionSource(parsed, recipe, 'fixed-shape')} needs ${targetsTaking('fixed-shape')}`)
  checkPassOptions(parsed, flags, recipe, new Set(plans.flatMap((p) => p.passes)), modelChoice(parsed, flags, recipe))
  if (!flags.verify) {
    if (flags.text !== undefined || flags['text-file'] !== undefined) throw new UsageError('--text and --text-file choose verification inputs; they cannot go with --no-verify')
    const typed = ['seed', 'batch', 'sequence', 'max-abs', 'cosine', 'top1'].filter((n) => given(parsed, n))
    if (typed.length > 0) throw new UsageError(`${list(typed)} ${verb(typed, 'sets', 'set')} up the parity verdict and ${verb(typed, 'does', 'do')} nothing with --no-verify`)
  }
  if (flags['fixed-shape']) {
    if (flags.text !== undefined || flags['text-file'] !== undefined) {
      throw new UsageError(`${flags.text !== undefined ? '--text' : '--text-file'} cannot verify a model with --fixed-shape (texts vary in length; the model takes exactly the pinned shape)`)
    }
    const typed = ['batch', 'sequence'].filter((n) => given(parsed, n))
    if (typed.length > 0) throw new UsageError(`${list(typed)} ${verb(typed, 'does', 'do')} nothing with --fixed-shape ${flags['fixed-shape']}: verification runs at the pinned shape`)
  }
}

/** Flags that only `optimize --target` reads (it writes a folder of verified models). */
export const OPTIMIZE_TARGET_FLAGS = ['precision', 'keep-metadata', 'verify', 'seed', 'batch', 'sequence', 'max-abs', 'cosine', 'top1', 'fixed-shape', 'calibration']

/**
 * optimize --target (typed on the command line: a recipe's target is convert's): the target chooses the passes (--passes contradicts it), --precision picks
 * among its models, pass options its models do not use and verification flags with --no-verify
 * do nothing; without --target, the flags only it reads do nothing.
 */
export function checkOptimizeTargetFlags(parsed: Parsed, flags: ConvertFlags & { passes: string }, recipe: Recipe | undefined, plans: ArtifactPlan[]): void {
  if (!flags.target) {
    const typed = OPTIMIZE_TARGET_FLAGS.filter((n) => given(parsed, n))
    if (typed.length > 0) throw new UsageError(`${list(typed)} ${verb(typed, 'does', 'do')} nothing without --target (optimize --passes writes one ONNX file)`)
    return
  }
  // a recipe's passes give way to a typed --target (flags typed on the command line win over the recipe)
  if (given(parsed, 'passes')) throw new UsageError(`--target ${flags.target} and --passes ${flags.passes} both choose the passes; give one of them`)
  if (flags['fixed-shape'] && !takes(flags.target, 'fixed-shape')) throw new UsageError(`${optionSource(parsed, recipe, 'fixed-shape')} needs ${targetsTaking('fixed-shape')}`)
  checkPassOptions(parsed, flags, recipe, new Set(plans.flatMap((p) => p.passes)), `--target ${flags.target}`)
  if (!flags.verify) {
    const typed = ['seed', 'batch', 'sequence', 'max-abs', 'cosine', 'top1'].filter((n) => given(parsed, n))
    if (typed.length > 0) throw new UsageError(`${list(typed)} ${verb(typed, 'sets', 'set')} up the parity verdict and ${verb(typed, 'does', 'do')} nothing with --no-verify`)
  }
  if (flags['fixed-shape']) {
    const typed = ['batch', 'sequence'].filter((n) => given(parsed, n))
    if (typed.length > 0) throw new UsageError(`${list(typed)} ${verb(typed, 'does', 'do')} nothing with --fixed-shape ${flags['fixed-shape']}: verification runs at the pinned shape`)
  }
}

/** optimize: pass options that none of the passes named reads. */
export function checkOptimizeFlags(parsed: Parsed, flags: Record<string, unknown>, recipe: Recipe | undefined, passes: string[]): void {
  const chose = given(parsed, 'passes') ? `--passes ${passes.join(',')}` : recipe?.passes ? `--passes ${passes.join(',')} (from ${recipe.file})` : `--passes ${passes.join(',')} (the default)`
  checkPassOptions(parsed, flags, recipe, new Set(passes), chose)
}

/**
 * verify: `--task` picks the reference graph's head; with --golden the goldens are the reference;
 * an ONNX reference (`onnxReference`) has its own head and is a reference already; `--tokenizer`
 * encodes texts and does nothing without them.
 */
export function checkVerifyFlags(
  parsed: Parsed,
  flags: { golden?: string | undefined; tokenizer?: string | undefined; text?: string[] | undefined; 'text-file'?: string | undefined },
  onnxReference?: string,
): void {
  if (flags.golden !== undefined && given(parsed, 'task')) throw new UsageError('--task chooses the head of the reference graph and does nothing with --golden (the goldens are the reference)')
  if (onnxReference !== undefined && flags.golden !== undefined) throw new UsageError(`--golden makes PyTorch outputs the reference; ${onnxReference} is an ONNX reference already (give one of them)`)
  if (onnxReference !== undefined && given(parsed, 'task')) throw new UsageError(`--task chooses the head of albertkit's graph of a checkpoint; the ONNX reference ${onnxReference} has its own`)
  if (flags.tokenizer !== undefined && flags.text === undefined && flags['text-file'] === undefined) {
    throw new UsageError('--tokenizer encodes --text and --text-file and does nothing without them')
  }
}

/**
 * Where an explicit `--sequence` came from (the flag, or the recipe's `inputs.sequence`), for the
 * message when it is beyond the model's positions; undefined when the default applies.
 */
export function sequenceSource(parsed: Parsed, recipe: Recipe | undefined): string | undefined {
  if (given(parsed, 'sequence')) return '--sequence'
  if (recipe?.inputs?.sequence !== undefined) return `${recipe.file}: inputs.sequence`
  return undefined
}
