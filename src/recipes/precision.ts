/**
 * Recipes: the passes that make each emitted model and the file it is written to (the names
 * transformers.js loads). Without a target, one model per precision asked; a target (see
 * targets.ts) fixes its own list.
 */
import type { Pass } from '../passes/pass.js'
import { passByName } from '../passes/index.js'
import { UserError } from '../util/errors.js'

export const PRECISIONS = ['fp32', 'int8', 'int4', 'fp16'] as const
export type Precision = (typeof PRECISIONS)[number]

export const FILE_OF_PRECISION: Record<Precision, string> = {
  fp32: 'onnx/model.onnx',
  int8: 'onnx/model_int8.onnx',
  int4: 'onnx/model_q4.onnx',
  fp16: 'onnx/model_fp16.onnx',
}

/** One model to emit: where it goes, what it is, and the passes that make it from the fp32 graph. */
export interface ArtifactPlan {
  file: string
  precision: Precision
  target: string
  passes: string[]
}

const CLEANUP = ['remove-unused', 'sort-and-name']

const PRECISION_PASSES: Record<Precision, string[]> = {
  fp32: ['dedup', 'fold-constants', ...CLEANUP],
  int8: ['dedup', 'fold-constants', 'quantize-int8', ...CLEANUP],
  int4: ['dedup', 'fold-constants', 'quantize-int4', ...CLEANUP],
  fp16: ['dedup', 'fold-constants', 'fp16', ...CLEANUP],
}

/** Plans for plain precisions (no target). */
export function precisionPlans(precisions: Precision[]): ArtifactPlan[] {
  return precisions.map((precision) => ({ file: FILE_OF_PRECISION[precision], precision, target: 'generic', passes: PRECISION_PASSES[precision] }))
}

export function passesOf(plan: ArtifactPlan): Pass[] {
  return plan.passes.map(passByName)
}

/** Parse a comma-separated precision list ("fp32,int8"), in the order given, without repeats. */
export function parsePrecisions(list: string): Precision[] {
  const out: Precision[] = []
  for (const raw of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    const p = raw === 'q4' ? 'int4' : raw === 'q8' ? 'int8' : raw
    if (!(PRECISIONS as readonly string[]).includes(p)) throw new UserError(`unknown precision '${raw}' (choose from ${PRECISIONS.join(', ')})`)
    if (!out.includes(p as Precision)) out.push(p as Precision)
  }
  if (out.length === 0) throw new UserError('no precision given')
  return out
}
