/**
 * `convert --precision auto --eval FILE --max-drop X`: the smallest model whose metric on the dev
 * set holds the drop. Plans are tried as targets/precision.ts orders them: int4; then int8; when
 * int4 does not hold, each shared weight's sensitivity is measured (int4 everywhere but that
 * weight, kept at int8: the points it wins back; ALBERT's sharing makes this a handful of
 * weights), and int4 plans keeping the 1, 2, … most sensitive weights at int8 are tried while they
 * are smaller than int8 and until one holds; when int8
 * does not hold either, int8 plans keeping the 1, 2 most sensitive at fp32, then fp16, then fp32.
 * Of the plans that hold, the one whose file is smallest is chosen.
 */
import { cloneModel, type Model } from '../ir/graph.js'
import { modelBytes } from '../onnx/file.js'
import { planWeights } from '../passes/quant-common.js'
import type { PassOptions, PassServices } from '../passes/pass.js'
import { PREPARE, autoPlan, type ArtifactPlan } from '../targets/precision.js'
import type { Progress } from '../util/progress.js'
import type { EvalCandidate, Evaluator } from './evaluation.js'
import { runPlan } from './plans.js'

/** int8 plans keep at most this many weights at fp32 (int4 plans keep more at int8 while they stay smaller than int8). */
export const MAX_KEPT_FP32 = 2

export interface TriedPlan {
  name: string
  precision: string
  /** weights kept at the higher precision (mixed plans) */
  kept: string[]
  /** the ONNX file's bytes */
  bytes: number
  metric: string
  /** the candidate's metric (a share, or SQuAD's percent) */
  value: number
  /** points */
  drop: number
  interval: [number, number]
  changed: number
  holds: boolean
}

export interface AutoReport {
  metric: string
  maxDrop: number
  /** the plan chosen (its name) */
  chosen: string
  tried: TriedPlan[]
  /** points each shared weight wins back at int8 in an int4 model, most first (measured when int4 does not hold) */
  sensitivity: { weight: string; points: number }[]
}

/** The shared weights a 4-bit plan quantizes (read only by MatMul/Gemm), in graph order, after the plans' first stage. */
function sharedLinearWeights(reference: Model, options: Readonly<PassOptions>): string[] {
  return planWeights(reference.graph, options)
    .plans.filter((p) => p.uses.every((u) => u.kind === 'linear'))
    .map((p) => p.weight.name)
}

export async function searchPlan(
  reference: Model,
  evaluator: Evaluator,
  maxDrop: number,
  options: Readonly<PassOptions>,
  services: PassServices,
  progress: Progress,
): Promise<{ plan: ArtifactPlan; report: AutoReport }> {
  await evaluator.reference(modelBytes(reference), "albertkit's fp32 graph")
  const tried: { plan: ArtifactPlan; t: TriedPlan }[] = []
  let metric = ''
  /** Make and score a plan; undefined, unscored, when its file is not smaller than `under` bytes. */
  const attempt = async (plan: ArtifactPlan, label = plan.name!, under = Infinity): Promise<TriedPlan | undefined> => {
    const { model } = await runPlan(cloneModel(reference), plan, options, services)
    const bytes = modelBytes(model)
    if (bytes.length >= under) return undefined
    const c: EvalCandidate = await evaluator.candidate(bytes, label, plan.precision)
    const d = c.comparison.drops[0]!
    metric = d.metric
    const t: TriedPlan = { name: plan.name!, precision: plan.precision, kept: plan.kept ?? [], bytes: bytes.length, metric: d.metric, value: d.candidate, drop: d.drop, interval: d.interval, changed: c.comparison.changed, holds: d.drop <= maxDrop + 1e-9 }
    progress.info(`${t.name}: ${t.bytes} bytes, ${metric} drop ${t.drop} points, ${t.holds ? 'holds' : 'does not hold'}`)
    return t
  }
  const keep = async (plan: ArtifactPlan, under = Infinity): Promise<TriedPlan | undefined> => {
    const t = await attempt(plan, plan.name, under)
    if (t) tried.push({ plan, t })
    return t
  }

  const int4 = (await keep(autoPlan('int4')))!
  const sensitivity: AutoReport['sensitivity'] = []
  if (!int4.holds) {
    const int8 = (await keep(autoPlan('int8')))!
    // the prepared graph's names: the plans' first stage (dedup, fold-constants) run once
    const { model: prepared } = await runPlan(cloneModel(reference), { ...autoPlan('fp32'), passes: PREPARE }, options, services)
    for (const w of sharedLinearWeights(prepared, options)) {
      const t = (await attempt(autoPlan('int4+int8', [w]), `int4 but ${w} at int8`))!
      // the points this weight wins back: int4's drop less this plan's
      sensitivity.push({ weight: w, points: Math.round((int4.drop - t.drop) * 1e9) / 1e9 })
    }
    sensitivity.sort((a, b) => b.points - a.points || (a.weight < b.weight ? -1 : a.weight > b.weight ? 1 : 0))
    const ranked = sensitivity.map((s) => s.weight)
    // int4 keeping the k most sensitive at int8, while smaller than int8 and until one holds
    let holds = false
    for (let k = 1; k < ranked.length && !holds; k++) {
      const t = await keep(autoPlan('int4+int8', ranked.slice(0, k)), int8.bytes)
      if (!t) break
      holds = t.holds
    }
    if (!int8.holds && !holds) {
      for (let k = 1; k <= Math.min(MAX_KEPT_FP32, ranked.length) && !holds; k++) holds = (await keep(autoPlan('int8+fp32', ranked.slice(0, k))))!.holds
      if (!holds) holds = (await keep(autoPlan('fp16')))!.holds
      if (!holds) await keep(autoPlan('fp32'))
    }
  }
  const holding = tried.filter((x) => x.t.holds)
  // fp32 is the reference itself: it holds any drop of 0 or more
  const best = holding.length > 0 ? holding.reduce((a, b) => (b.t.bytes < a.t.bytes ? b : a)) : tried[tried.length - 1]!
  return { plan: best.plan, report: { metric, maxDrop, chosen: best.t.name, tried: tried.map((x) => x.t), sensitivity } }
}
