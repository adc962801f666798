/**
 * The parity verdict, run: the reference and every candidate on the same inputs in onnxruntime,
 * each candidate judged (verify/verdict.ts) against thresholds chosen by its precision
 * (targets/precision.ts) and the user's overrides.
 */
import type { Tensor } from '../ir/tensor.js'
import { defaultThresholds, precisionOfFile } from '../targets/precision.js'
import { tokenMask } from '../verify/inputs.js'
import { judge, type ArtifactVerdict, type OutputMap, type ThresholdOverrides } from '../verify/verdict.js'
import { runOnce, type SessionOptions } from './session.js'

/** Outputs of the reference graph, run exactly as written (onnxruntime optimizations off). */
export async function referenceOutputs(model: Uint8Array | string, feeds: Map<string, Tensor>, session: SessionOptions = {}): Promise<OutputMap> {
  return runOnce(model, feeds, { ...session, optimization: 'disabled' })
}

export interface Candidate {
  path: string
  /** bytes in memory, or undefined to load from `path` */
  bytes?: Uint8Array
  precision?: string
}

/** Run every candidate on `feeds` and judge it against the reference outputs. */
export async function verifyCandidates(
  reference: OutputMap,
  feeds: Map<string, Tensor>,
  candidates: Candidate[],
  overrides: ThresholdOverrides = {},
  session: SessionOptions = {},
  /** where to load a single candidate from, when not its `path` (a scratch copy) */
  loadFrom?: string,
): Promise<ArtifactVerdict[]> {
  const verdicts: ArtifactVerdict[] = []
  const { byPrecision, ...common } = overrides
  const mask = tokenMask(feeds)
  for (const c of candidates) {
    const precision = c.precision ?? precisionOfFile(c.path)
    const thresholds = { ...defaultThresholds(precision), ...common, ...byPrecision?.[precision] }
    const out = await runOnce(c.bytes ?? loadFrom ?? c.path, feeds, session)
    const outputs = judge(reference, out, thresholds, mask)
    verdicts.push({ path: c.path, precision, pass: outputs.every((o) => o.failures.length === 0), thresholds, outputs })
  }
  return verdicts
}
