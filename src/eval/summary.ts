/** Plain JSON of an evaluation and a comparison, for report.json and --json (no per-example arrays). */
import type { EvalComparison } from './compare.js'
import type { EvalResult } from './evaluate.js'

export interface EvalSummary {
  task: string
  file: string
  format: string
  examples: number
  skipped: number
  skips: { where: string; reason: string }[]
  limited: boolean
  rows: number
  batches: number
  metrics: Record<string, number>
  primary: string
  truncated: number
  nonFinite: number
  warnings: string[]
  qa?: EvalResult['qa']
  seconds: { total: number; model: number }
}

export function summarizeEval(r: EvalResult): EvalSummary {
  const { scorer: _scorer, ...rest } = r
  return { ...rest, skips: [...r.skips], warnings: [...r.warnings], metrics: { ...r.metrics } }
}

export function summarizeComparison(c: EvalComparison): EvalComparison {
  return JSON.parse(JSON.stringify(c)) as EvalComparison
}
