/**
 * Running a plan's passes on a model: in one PassManager run, or stage by stage for a plan in
 * stages (targets/precision.ts `PlanStage`), each stage keeping the weights it names out of its
 * passes by adding their readers to `keepNodes`.
 */
import type { Model } from '../ir/graph.js'
import { passByName } from '../passes/index.js'
import { PassManager, type PassManagerOptions, type PassOptions, type PassReport, type PassServices } from '../passes/pass.js'
import type { ArtifactPlan } from '../targets/precision.js'

/** The names of the nodes that read these weights (initializers of `model`'s graph). */
export function readersOf(model: Model, weights: readonly string[]): string[] {
  const out: string[] = []
  for (const name of weights) {
    const v = model.graph.lookup(name)
    if (!v?.const) throw new Error(`the plan keeps weight '${name}', which the graph does not hold`)
    for (const n of v.consumers) {
      if (!n.name) throw new Error(`weight '${name}' is read by a node without a name`)
      if (!out.includes(n.name)) out.push(n.name)
    }
  }
  return out
}

export async function runPlan(model: Model, plan: ArtifactPlan, options: Readonly<PassOptions> = {}, services: PassServices = {}, callbacks: PassManagerOptions = {}): Promise<{ model: Model; reports: PassReport[] }> {
  const reports: PassReport[] = []
  if (plan.options) options = { ...options, ...plan.options }
  for (const stage of plan.stages ?? [{ passes: plan.passes }]) {
    const keep = 'keepWeights' in stage && stage.keepWeights?.length ? readersOf(model, stage.keepWeights) : []
    const opts = keep.length > 0 ? { ...options, keepNodes: [...(options.keepNodes ?? []), ...keep] } : options
    const r = await new PassManager(stage.passes.map(passByName), callbacks).run(model, opts, services)
    model = r.model
    reports.push(...r.reports)
  }
  return { model, reports }
}
