/** Plain JSON of an evaluation and a comparison, for report.json and --json (no per-example arrays). */
import type { EvalComparison } from './compare.js'
import type { EvalResult } from './evaluate.js'

/** An evaluation without its per-example outcomes. */
export type EvalSummary = Omit<EvalResult, 'scorer'>

export function summarizeEval(r: EvalResult): EvalSummary {
  const { scorer: _scorer, ...rest } = r
  return { ...rest, skips: [...r.skips], warnings: [...r.warnings], metrics: { ...r.metrics } }
}

export function summarizeComparison(c: EvalComparison): EvalComparison {
  return JSON.parse(JSON.stringify(c)) as EvalComparison
}
