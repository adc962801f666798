/**
 * The pass interface and the pass manager. A pass edits a model in place and says whether it
 * changed anything, with figures of what it did; a recipe is an ordered list of passes. The
 * manager measures every pass (time, nodes, initializers, initializer bytes before and after).
 */
import type { Model } from '../ir/graph.js'
import type { Tensor } from '../ir/tensor.js'

/** Options every pass may read; each pass documents the ones it uses. */
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
  /** fp16: keep model inputs and outputs fp32 (default true). */
  keepIoTypes?: boolean
  /** factorization-check: restore a folded embedding factorization. */
  refactor?: boolean
  /** fold-constants (and fix-shapes' folding): fold results however much they grow the model (default: limits, see fold-constants.ts). */
  foldLarge?: boolean
  /** fix-shapes: pin batch and sequence to [B, S] (multiple choice keeps num_choices as given). */
  fixedShape?: [number, number]
  /** quantize-qdq: sample input feeds to calibrate activation scales on (default: seeded random inputs). */
  calibration?: Map<string, Tensor>[]
  /** Warnings go here as well as into the pass result. */
  warn?: (message: string) => void
}

export interface PassResult {
  changed: boolean
  /** Figures particular to the pass (tensors merged, bytes saved, nodes fused, ...). */
  stats?: Record<string, number | string | boolean>
  warnings?: string[]
}

export interface Pass {
  readonly name: string
  /** One line: what the pass removes or rewrites. */
  readonly description: string
  run(model: Model, options: PassOptions): PassResult | Promise<PassResult>
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

/** Run passes in order; returns a report per pass. */
export async function runPasses(model: Model, passes: readonly Pass[], options: PassOptions = {}): Promise<PassReport[]> {
  const reports: PassReport[] = []
  for (const pass of passes) {
    const before = graphFigures(model)
    const warnings: string[] = []
    const opts: PassOptions = {
      ...options,
      warn: (m) => {
        warnings.push(m)
        options.warn?.(m)
      },
    }
    const start = performance.now()
    const result = await pass.run(model, opts)
    const ms = performance.now() - start
    for (const w of result.warnings ?? []) if (!warnings.includes(w)) warnings.push(w)
    reports.push({ pass: pass.name, changed: result.changed, ms, before, after: graphFigures(model), stats: result.stats ?? {}, warnings })
  }
  return reports
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
