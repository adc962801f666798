/**
 * Passes and the pass manager, after onnx-ir's pass infrastructure. A pass is a small object whose
 * `run(model, context)` returns a PassResult: the model, whether it changed, the pass's own
 * figures. It says whether it edits the model it is given (in place) or returns a new one, and may
 * check the model before it runs (`requires`) and after (`ensures`). It gets what it needs through
 * a narrow PassContext: the pass options, a model runner, a place for warnings; never a
 * command's options.
 *
 * A PassManager runs a list of passes in order, optionally again until a round changes nothing (a
 * fixed point). Around every pass it checks the IR's invariants (every value read is defined) and
 * the pass's own conditions, measures it (time; nodes, initializers and their bytes before and
 * after) and hands its report to a callback, for progress lines and statistics. Both pipelines,
 * convert's per model and optimize's, run their passes through it.
 */
import type { Model } from '../ir/graph.js'
import { undefinedValueDeep } from '../ir/check.js'
import { UserError } from '../util/errors.js'
import type { Feed } from '../verify/inputs.js'
import type { OutputMap } from '../verify/verdict.js'

export type Int4Tables = 'GatherBlockQuantized' | 'DequantizeLinear' | 'int8'

/** Options a pass may read, as the user set them; each pass documents the ones it uses. */
export interface PassOptions {
  /** quantize-int8: one scale per tensor instead of per output channel. */
  perTensor?: boolean
  /** quantize-*: node names to keep in float. */
  keepNodes?: string[]
  /** quantize-*: op types to keep in float (e.g. Gather keeps the embedding table fp32). */
  keepOps?: string[]
  /** quantize-*: com.microsoft ops may be used (false: standard ONNX ops only). */
  contribOps?: boolean
  /** quantize-int4: elements per quantization block along K. */
  blockSize?: number
  /** quantize-int4: asymmetric (with zero points) instead of symmetric. */
  asymmetric?: boolean
  /** quantize-int4: how 4-bit codes are chosen (int4-rounding.ts; default `mse`; `gptq` calibrates on sample inputs). */
  int4Rounding?: 'nearest' | 'mse' | 'gptq'
  /**
   * quantize-int4: how lookup tables are stored (quantize-gather4.ts). `GatherBlockQuantized` (the
   * default): the word table 4-bit, read by that com.microsoft op, other tables int8.
   * `DequantizeLinear`: standard ops (opset 21) for runtimes without that op (onnxruntime-web in
   * a browser): the word table 4-bit, other tables int8, each dequantized whole. `int8`: every table int8.
   */
  int4Tables?: Int4Tables
  /** quantize-int4: leave float the matrices whose K is under one block (for onnxruntime-web's WebGPU MatMulNBits). */
  wholeBlocks?: boolean
  /** fp16: keep model inputs and outputs fp32 (default true). */
  keepIoTypes?: boolean
  /** factorization-check: restore a folded embedding factorization. */
  refactor?: boolean
  /** fold-constants (and fix-shapes' folding): fold results however much they grow the model (default: limits, see fold-constants.ts). */
  foldLarge?: boolean
  /** fix-shapes: pin batch and sequence to [B, S] (multiple choice keeps num_choices as given). */
  fixedShape?: [number, number]
  /** quantize-qdq, quantize-weights: sample input feeds to calibrate on (default: seeded random inputs). */
  calibration?: Feed[]
}

export interface RunOptions {
  /** the graph exactly as written (no runtime graph optimizations), as a reference runs */
  exact?: boolean
  /** sees every feed's outputs, before they are dropped */
  each?: (out: OutputMap) => void
  /** the outputs to return (default: the graph's outputs) */
  keep?: readonly string[]
}

/**
 * Runs models, for the passes that must (calibration, the accuracy guard). The pass stage defines
 * it; the pipeline injects one backed by onnxruntime (runtime/runner.ts).
 */
export interface ModelRunner {
  /** Run `model` on every feed in turn: the outputs asked for, with the rows of all feeds concatenated. */
  run(model: Model, feeds: readonly Feed[], options?: RunOptions): Promise<OutputMap>
}

/** What a pass gets besides the model. */
export interface PassContext {
  readonly options: Readonly<PassOptions>
  /** undefined where nothing can run models; a pass that needs one says so (modelRunner below) */
  readonly runner: ModelRunner | undefined
  /** a warning for the user; it goes into the pass's report too */
  warn(message: string): void
}

export interface PassResult {
  /** the model after the pass: the one it was given when the pass works in place */
  model: Model
  changed: boolean
  /** Figures particular to the pass (tensors merged, bytes saved, nodes fused, ...). */
  stats?: Record<string, number | string | boolean>
  warnings?: string[]
}

export interface Pass {
  readonly name: string
  /** One line: what the pass removes or rewrites. */
  readonly description: string
  /** true: `run` edits the model it is given and returns it; false: it returns a new model and leaves the given one as it was. */
  readonly inPlace: boolean
  /** Preconditions: throws when the pass cannot run on this model (a UserError for the user's model, anything else is a bug). */
  requires?(model: Model): void
  /** Postconditions: throws when the pass left the model other than it promises (a bug). */
  ensures?(model: Model): void
  run(model: Model, context: PassContext): PassResult | Promise<PassResult>
}

/** What an in-place pass's rewrite returns: its PassResult without the model (the one it was given). */
export type Rewrite = Omit<PassResult, 'model'>

/**
 * A pass that edits the model it is given (`inPlace`), from its name, description and rewrite:
 * the rewrite says whether it changed the model, with its figures and warnings.
 */
export function inPlacePass(spec: {
  name: string
  description: string
  requires?: (model: Model) => void
  ensures?: (model: Model) => void
  rewrite(model: Model, context: PassContext): Rewrite | Promise<Rewrite>
}): Pass {
  const { rewrite, ...rest } = spec
  return {
    ...rest,
    inPlace: true,
    async run(model, context) {
      return { model, ...(await rewrite(model, context)) }
    },
  }
}

/** A model's condition before a pass that cannot run on it: a bug of the pass before, or of albertkit. */
export class PreconditionError extends Error {
  override name = 'PreconditionError'
}

/** A pass left the model in a state it must not (a bug in the pass). */
export class PostconditionError extends Error {
  override name = 'PostconditionError'
}

/** The context's model runner; a pass that runs models and was given none is a bug of its caller. */
export function modelRunner(pass: string, context: PassContext): ModelRunner {
  if (!context.runner) throw new Error(`${pass} runs models: give the pass manager a model runner (runtime/runner.ts)`)
  return context.runner
}

export interface GraphFigures {
  nodes: number
  initializers: number
  initializerBytes: number
}

export interface PassReport {
  pass: string
  changed: boolean
  ms: number
  before: GraphFigures
  after: GraphFigures
  stats: Record<string, number | string | boolean>
  warnings: string[]
}

export function graphFigures(model: Model): GraphFigures {
  let bytes = 0
  let count = 0
  for (const v of model.graph.values.values()) {
    if (!v.const) continue
    count++
    bytes += v.const.byteLength
  }
  return { nodes: model.graph.nodes.length, initializers: count, initializerBytes: bytes }
}

export interface PassManagerOptions {
  /** Run the list up to this many rounds, stopping after the first round that changed nothing (a fixed point). Default 1: once. */
  steps?: number
  /** Called as each pass starts (progress). */
  onStart?: (pass: Pass) => void
  /** Called with each pass's report as it ends (progress, figures). */
  onReport?: (report: PassReport) => void
}

export interface PassManagerResult {
  model: Model
  changed: boolean
  /** one per pass run, in order (a pass run in several rounds reports each time) */
  reports: PassReport[]
}

/** Services a context gets besides the options: a model runner, and where warnings go besides the report. */
export interface PassServices {
  runner?: ModelRunner | undefined
  warn?: ((message: string) => void) | undefined
}

export class PassManager {
  constructor(
    readonly passes: readonly Pass[],
    private readonly settings: PassManagerOptions = {},
  ) {}

  /** Run the passes on `model` with these options; `services.warn` sees every warning as it comes. */
  async run(model: Model, options: Readonly<PassOptions> = {}, services: PassServices = {}): Promise<PassManagerResult> {
    invariant(model, 'before the first pass', PreconditionError)
    const reports: PassReport[] = []
    let changed = false
    for (let step = 0; step < (this.settings.steps ?? 1); step++) {
      let changedThisRound = false
      for (const pass of this.passes) {
        this.settings.onStart?.(pass)
        const report = await this.runOne(pass, model, options, services)
        model = report.model
        changedThisRound ||= report.report.changed
        reports.push(report.report)
        this.settings.onReport?.(report.report)
      }
      changed ||= changedThisRound
      if (!changedThisRound) break
    }
    return { model, changed, reports }
  }

  private async runOne(pass: Pass, model: Model, options: Readonly<PassOptions>, services: PassServices): Promise<{ model: Model; report: PassReport }> {
    condition(pass, 'requires', model)
    const before = graphFigures(model)
    const warnings: string[] = []
    const context: PassContext = {
      options,
      runner: services.runner,
      warn: (m) => {
        warnings.push(m)
        services.warn?.(m)
      },
    }
    const start = performance.now()
    const result = await pass.run(model, context)
    const ms = performance.now() - start
    if (pass.inPlace !== (result.model === model)) {
      throw new Error(`pass ${pass.name} is declared ${pass.inPlace ? '' : 'not '}in place but returned ${pass.inPlace ? 'another' : 'the same'} model`)
    }
    invariant(result.model, `after ${pass.name}`, PostconditionError)
    condition(pass, 'ensures', result.model)
    for (const w of result.warnings ?? []) if (!warnings.includes(w)) warnings.push(w)
    const report = { pass: pass.name, changed: result.changed, ms, before, after: graphFigures(result.model), stats: result.stats ?? {}, warnings }
    return { model: result.model, report }
  }
}

/** The IR's invariants, which every pass keeps: every value read is defined. */
function invariant(model: Model, when: string, fail: new (message: string) => Error): void {
  const problem = undefinedValueDeep(model.graph)
  if (problem) throw new fail(`${when}: ${problem}`)
}

/** A pass's own pre- or postcondition; a UserError (the user's model) goes through as it is. */
function condition(pass: Pass, which: 'requires' | 'ensures', model: Model): void {
  try {
    pass[which]?.(model)
  } catch (e) {
    if (which === 'requires' && e instanceof UserError) throw e
    const Fail = which === 'requires' ? PreconditionError : PostconditionError
    throw new Fail(`${which === 'requires' ? 'before' : 'after'} ${pass.name}: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
  }
}

/** A context for running a pass by hand (tests, benchmarks): these options, a runner if given, warnings to `services.warn`. */
export function passContext(options: Readonly<PassOptions> = {}, services: PassServices = {}): PassContext {
  return { options, runner: services.runner, warn: (m) => services.warn?.(m) }
}

/**
 * Run passes that work in place on `model`, once each, in order; a report per pass. For tests,
 * benchmarks and callers that hold one model (the pipelines use a PassManager with callbacks).
 */
export async function runPasses(model: Model, passes: readonly Pass[], options: Readonly<PassOptions> = {}, services: PassServices = {}): Promise<PassReport[]> {
  const result = await new PassManager(passes).run(model, options, services)
  if (result.model !== model) throw new Error('runPasses runs passes that work in place; use a PassManager for the others')
  return result.reports
}

/**
 * One line per pass, in columns: name, changed or not, nodes, tensors and initializer size (each
 * `before→after` when it changed, one figure when not), time; with `figures`, the pass's own
 * figures after a semicolon. The size shows as many decimals as it takes for a change to show.
 */
export function formatPassReport(r: PassReport, opts: { figures?: boolean } = {}): string {
  const d = (a: number, b: number) => (a === b ? `${b}` : `${a}→${b}`)
  const columns = [
    r.pass.padEnd(22),
    (r.changed ? 'changed' : 'no change').padEnd(10),
    `nodes ${d(r.before.nodes, r.after.nodes)}`.padEnd(17),
    `tensors ${d(r.before.initializers, r.after.initializers)}`.padEnd(17),
    `size ${sizeChange(r.before.initializerBytes, r.after.initializerBytes)}`.padEnd(22),
    `${r.ms.toFixed(0)} ms`.padStart(8),
  ]
  const line = columns.join(' ')
  if (!opts.figures) return line
  const extra = Object.entries(r.stats)
    .map(([k, v]) => `${k} ${typeof v === 'number' && !Number.isInteger(v) ? v.toPrecision(4) : v}`)
    .join(', ')
  return extra ? `${line}; ${extra}` : line
}

const UNITS: [number, string][] = [
  [1e9, 'GB'],
  [1e6, 'MB'],
  [1e3, 'kB'],
]

/**
 * `18.5 kB`, or `18.52→18.48 kB` when it changed: both in the unit of the larger, two decimals, or
 * more when it takes more to tell them apart (down to the byte).
 */
export function sizeChange(before: number, after: number): string {
  const [scale, unit] = UNITS.find(([s]) => Math.max(before, after) >= s) ?? [1, 'B']
  const exact = Math.round(Math.log10(scale))
  const show = (n: number, decimals: number) => (n / scale).toFixed(decimals)
  if (before === after) return `${show(after, Math.min(exact, 2))} ${unit}`
  let decimals = Math.min(exact, 2)
  while (decimals < exact && show(before, decimals) === show(after, decimals)) decimals++
  return `${show(before, decimals)}→${show(after, decimals)} ${unit}`
}
