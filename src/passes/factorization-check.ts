/**
 * factorization-check: finds ALBERT's embedding factorization, the word-embedding Gather on a V×E
 * table and the E→H projection after it, and reports V, E, H with the parameters it stores
 * (V·E + E·H) against an unfactorized table (V·H).
 *
 * When no widening projection follows the lookup, the table is V×D and may be a factorization
 * with its projection folded in (T = X·Wᵀ, multiplied out by some exporter). The pass measures the
 * table's numerical rank (analysis/rank.ts: the figure holds for the whole table, not a sample).
 * A rank r ≤ min(V, D)/2 gives a warning; a
 * full-rank table (an unfactorized, BERT-like model) gives figures only. A square or narrowing
 * MatMul after the lookup (a BERT attention projection) does not count as the factorization's.
 * Cost: about V·r·D multiply-adds to fit the rows (≈2 s for 30000×768 at rank 128); a full-rank
 * table stops after the sample (≈0.6 s for 30000×768).
 *
 * With `refactor`, a folded table is stored factorized again:
 *
 *     Gather(T[V×D], ids)  →  MatMul(Gather(C[V×r], ids), B[r×D])
 *
 * with B (`<table>.factor_b`) an orthonormal basis of T's rows and C = T·Bᵀ (`<table>.factor_c`),
 * both float32 as stored. The lookup's output keeps its name and readers. Safe because the rewrite
 * happens only when the stored factors reproduce the table, ‖T − C·B‖_F / ‖T‖_F ≤ 1e-5 measured on
 * the float32 factors; and only when the table is a float32 initializer read by the lookup alone
 * and is no graph input (a tied decoder, or a caller feeding the table, still needs V×D).
 * Otherwise the graph is left unchanged and a warning says why.
 */
import { DataType, dtypeName } from '../ir/dtype.js'
import { Node, type Graph, type Model } from '../ir/graph.js'
import { Tensor } from '../ir/tensor.js'
import { factorization, findEmbeddingLookup, type EmbeddingLookup } from '../analysis/factorization.js'
import { NEAR_TOLERANCE, analyzeRank, type Factors, type Matrix } from '../analysis/rank.js'
import type { Pass, PassContext, PassResult } from './pass.js'

/** Largest ‖T − C·B‖_F / ‖T‖_F for which `refactor` rewrites the table. */
export const REFACTOR_TOLERANCE = 1e-5
type Stats = Record<string, number | string | boolean>

interface LowRank {
  rank: number
  relativeError: number
  factors: Factors
}

export const factorizationCheck: Pass = {
  name: 'factorization-check',
  description: 'report the embedding factorization; warn on (and with refactor, undo) a folded V×H table',
  inPlace: true,
  run(model: Model, context: PassContext): PassResult {
    const lookup = findEmbeddingLookup(model.graph)
    if (!lookup) return { model, changed: false, stats: { lookupFound: false } }
    const { V, E } = lookup
    const projection = lookup.projection && lookup.projection.H > E ? lookup.projection : undefined
    const base: Stats = { lookupFound: true, table: lookup.table.name, projectionFound: projection !== undefined }
    if (projection) return { model, changed: false, stats: { ...base, ...figures(V, E, projection.H) } }
    return { model, ...checkUnfactorized(model.graph, lookup, base, context) }
  },
}

/** V, E, H and the parameter counts, factorized and not. */
function figures(V: number, E: number, H: number): Stats {
  const f = factorization(V, E, H)
  return { V, E, H, factorized: f.factorized, unfactorized: f.unfactorized, saving: f.saving }
}

/** A V×D table with no projection after it: measure its rank; a low one is reported and acted on. */
function checkUnfactorized(g: Graph, lookup: EmbeddingLookup, base: Stats, { options, warn: report }: PassContext): Omit<PassResult, 'model'> {
  const { V, E: D } = lookup
  const stats: Stats = { ...base, V, E: D, H: D, factorized: V * D, unfactorized: V * D, saving: 0 }
  const matrix = readableTable(lookup)
  if (typeof matrix === 'string') return { changed: false, stats: { ...stats, rankChecked: false, note: matrix } }
  const a = analyzeRank(matrix)
  Object.assign(stats, { rankChecked: true, rankCap: a.cap })
  if (a.rank === undefined || a.relativeError === undefined || a.relativeError > NEAR_TOLERANCE) {
    const note = `full rank: no rank ≤ ${a.cap} fits the table within ${NEAR_TOLERANCE}`
    return { changed: false, stats: { ...stats, lowRank: false, note } }
  }
  const e = a.relativeError
  Object.assign(stats, { lowRank: true, rank: a.rank, relativeError: e, folded: e <= REFACTOR_TOLERANCE, ...figures(V, a.rank, D) })
  const warnings: string[] = []
  const warn = (m: string) => {
    warnings.push(m)
    report(m)
  }
  const changed = actOnLowRank(g, lookup, { rank: a.rank, relativeError: e, factors: a.factors! }, options.refactor === true, warn)
  if (options.refactor && e <= REFACTOR_TOLERANCE) Object.assign(stats, { refactored: changed })
  if (changed) stats.bytesSaved = (stats.saving as number) * 4
  return { changed, stats, warnings }
}

/**
 * Warn about a low-rank table and, when asked and safe, store it factorized. Returns whether the
 * graph changed.
 */
function actOnLowRank(g: Graph, lookup: EmbeddingLookup, a: LowRank, refactor: boolean, warn: (m: string) => void): boolean {
  const { V, E: D, table } = lookup
  const { rank: r, relativeError: e } = a
  const what = `embedding table '${table.name}' ${V}×${D}`
  if (e > REFACTOR_TOLERANCE) {
    warn(
      `${what} is close to rank ${r} (relative error ${e.toExponential(2)}, above the ${REFACTOR_TOLERANCE.toExponential()} ` +
        `a lossless refactor needs): it may have been folded and then changed (rounded, fine-tuned)${refactor ? '; --refactor leaves it unchanged' : ''}`,
    )
    return false
  }
  if (!refactor) {
    const saved = V * D - V * r - r * D
    warn(
      `${what} has rank ${r}: its factorization was folded; factorization-check --refactor stores ${V}·${r} + ${r}·${D} = ` +
        `${count(V * r + r * D)} instead of ${V}·${D} = ${count(V * D)} parameters (saves ${count(saved)}, ${megabytes(saved * 4)})`,
    )
    return false
  }
  const refusal = refactorRefusal(lookup)
  if (refusal) {
    warn(`${what} has rank ${r}: its factorization was folded, but --refactor leaves it: ${refusal}`)
    return false
  }
  rewriteLookup(g, lookup, a.factors, r)
  return true
}

/** The table as float32 rows, or why it cannot be read as one. */
function readableTable(lookup: EmbeddingLookup): Matrix | string {
  const t = lookup.table.const!
  if (lookup.gather.inputs[0] !== lookup.table) {
    return `the lookup reads '${lookup.table.name}' through ${lookup.gather.inputs[0]?.producer ?? 'another value'}: rank not checked`
  }
  if (t.dims.length !== 2) return `the table is not a matrix: rank not checked`
  if (![DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE].includes(t.dtype)) {
    return `the table is ${dtypeName(t.dtype)}: rank not checked`
  }
  const [rows, cols] = t.dims as [number, number]
  return { data: t.toFloat32(), rows, cols }
}

/** Why the lookup cannot be rewritten, or undefined when it can. */
function refactorRefusal(lookup: EmbeddingLookup): string | undefined {
  const { table, gather } = lookup
  if (table.const!.dtype !== DataType.FLOAT) return `the table is ${dtypeName(table.const!.dtype)}; only float32 tables are refactored`
  if (table.isGraphInput) return `'${table.name}' is also a graph input, which a caller may feed with a V×D table`
  if (table.isGraphOutput) return `'${table.name}' is also a graph output`
  const other = table.consumers.find((n) => n !== gather)
  if (other) return `'${table.name}' is also read by ${other} (a tied decoder?), which needs the V×D table`
  return undefined
}

/** Gather(T, ids) → MatMul(Gather(C, ids), B); the lookup's output value keeps its name and readers. */
function rewriteLookup(g: Graph, lookup: EmbeddingLookup, factors: Factors, r: number): void {
  const { gather, table, V } = lookup
  const D = lookup.E
  const out = gather.outputs[0]!
  const ids = gather.inputs[1]!
  const c = g.addInitializer(g.uniqueName(`${table.name}.factor_c`), Tensor.fromFloat32([V, r], factors.c))
  const b = g.addInitializer(g.uniqueName(`${table.name}.factor_b`), Tensor.fromFloat32([r, D], factors.b))
  const next = g.contains(gather) ? g.nodeAfter(gather) : g.firstNode
  g.removeNode(gather)
  const rows = g.addNode('Gather', [c, ids], [`${out.name}.factor_c`], { name: gather.name, attrs: [...gather.attributes] })
  g.insertNode(rows, next)
  const project = new Node(g, 'MatMul', '', g.uniqueNodeName(`${gather.name || 'Gather'}.factor_b`))
  project.setInput(0, rows.outputs[0]!)
  project.setInput(1, b)
  project.outputs.push(out)
  out.producer = project
  g.insertNode(project, next)
  g.deleteValue(table)
}

function count(n: number): string {
  return n.toLocaleString('en-US')
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(bytes < 1e5 ? 3 : 2)} MB`
}
