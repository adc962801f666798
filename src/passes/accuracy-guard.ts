/**
 * The accuracy guard of quantize-qdq and quantize-weights (not a pass): the quantized model is run
 * on the calibration feeds and on held-out random feeds, and judged against the float model's
 * outputs on them by verify/verdict.ts's `judge` with GUARD_THRESHOLDS: stricter than the int8
 * verdict (cosine 0.999, top-1 99%), for a margin on unseen inputs. The verdict's 3 rows hold about
 * 120 positions, so a model flipping 0.5% of near-tied labels fails it about one time in eight:
 * the guard allows 0.1%.
 * When it falls short, the units (a weight, or an activation's QuantizeLinear) whose quantization
 * costs most are kept in float until it passes: units are ranked by the loss of cosine each causes
 * alone (only it quantized), and the fewest of the worst that pass are found by a doubling search
 * then bisection (one run per unit to rank, then about 2·log₂(units) runs). Small models with few,
 * narrow channels need this; albert-base passes with nothing kept, after one run.
 */
import { cloneModel, type Model } from '../ir/graph.js'
import type { Feed } from '../verify/inputs.js'
import { judge, type OutputMap, type Thresholds } from '../verify/verdict.js'
import type { ModelRunner } from './pass.js'

export const GUARD_THRESHOLDS: Required<Pick<Thresholds, 'cosine' | 'top1'>> = { cosine: 0.9995, top1: 0.999 }

export interface Guarded {
  /** units kept in float, in the order they were chosen */
  kept: string[]
  /** worst output's shortfall: ≤ 1 passes (1 − cosine over 1 − the bound, likewise top-1) */
  shortfall: number
  evaluations: number
}

/** Inputs the guard judges on, with the float model's outputs on them. Each set is judged on its own. */
export interface JudgedSet {
  feeds: readonly Feed[]
  reference: OutputMap
}

/**
 * Rewrite `model` in place by `rewrite`, keeping in float the fewest of the costliest units that
 * make it pass the guard on every set (run by `runner`; a set of few rows is not diluted by a larger
 * one). Returns what rewrite returned, and the guard's account.
 */
export async function guardedRewrite<S>(
  model: Model,
  units: string[],
  rewrite: (m: Model, kept: ReadonlySet<string>) => S,
  sets: readonly JudgedSet[],
  runner: ModelRunner,
): Promise<{ stats: S; guard: Guarded }> {
  const pristine = cloneModel(model)
  const judgeKept = async (kept: ReadonlySet<string>): Promise<Judgement> => {
    const candidate = cloneModel(pristine)
    rewrite(candidate, kept)
    const each: Judgement[] = []
    for (const set of sets) each.push(judgement(set.reference, await runner.run(candidate, set.feeds)))
    return { shortfall: Math.max(...each.map((j) => j.shortfall)), loss: each.reduce((sum, j) => sum + j.loss, 0) }
  }
  const guard = await chooseKept(units, judgeKept)
  return { stats: rewrite(model, new Set(guard.kept)), guard }
}

interface Judgement {
  /** ≤ 1 passes */
  shortfall: number
  /** Σ over outputs of 1 − cosine: additive over units, for ranking them */
  loss: number
}

/**
 * Rank units by the loss each causes alone (only it quantized), then keep the fewest of the
 * worst in float that pass: a doubling search, then bisection, over how many.
 */
async function chooseKept(units: string[], judgeKept: (kept: ReadonlySet<string>) => Promise<Judgement>): Promise<Guarded> {
  let evaluations = 1
  const all = await judgeKept(new Set())
  if (all.shortfall <= 1) return { kept: [], shortfall: all.shortfall, evaluations }
  const damage: [string, number][] = []
  for (const u of units) {
    damage.push([u, (await judgeKept(new Set(units.filter((x) => x !== u)))).loss])
    evaluations++
  }
  const ranked = damage.sort((a, b) => b[1] - a[1]).map(([u]) => u)
  const results = new Map<number, number>()
  const tryFirst = async (k: number): Promise<number> => {
    if (!results.has(k)) {
      results.set(k, (await judgeKept(new Set(ranked.slice(0, k)))).shortfall)
      evaluations++
    }
    return results.get(k)!
  }
  let hi = 1
  while (hi < ranked.length && (await tryFirst(hi)) > 1) hi = Math.min(ranked.length, hi * 2)
  let lo = hi === 1 ? 0 : hi / 2
  if (hi === ranked.length) await tryFirst(hi)
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2)
    if ((await tryFirst(mid)) <= 1) hi = mid
    else lo = mid
  }
  return { kept: ranked.slice(0, hi), shortfall: await tryFirst(hi), evaluations }
}

/** How far the worst output is from the guard: the larger of the cosine and top-1 shortfalls. */
export function shortfall(reference: OutputMap, got: OutputMap): number {
  return judgement(reference, got).shortfall
}

function judgement(reference: OutputMap, got: OutputMap): Judgement {
  let worst = 0
  let loss = 0
  for (const o of judge(reference, got, GUARD_THRESHOLDS)) {
    const cos = Number.isNaN(o.cosine) ? Infinity : (1 - o.cosine) / (1 - GUARD_THRESHOLDS.cosine)
    const top = o.top1 === undefined ? 0 : (1 - o.top1) / (1 - GUARD_THRESHOLDS.top1)
    worst = Math.max(worst, cos, top)
    loss += Number.isNaN(o.cosine) ? Infinity : 1 - o.cosine
  }
  return { shortfall: worst, loss }
}
