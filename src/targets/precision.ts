/**
 * Precisions: one table of what each precision is wherever albertkit meets it — the file convert
 * writes it to (the name transformers.js loads for its dtype), other names for it, the parity
 * verdict's default thresholds, and the passes that make it from the plain fp32 graph when no
 * target is given. A target (targets.ts) lists its own models and passes.
 */
import type { Thresholds } from '../verify/verdict.js'
import type { Pass, PassOptions } from '../passes/pass.js'
import { passByName } from '../passes/index.js'
import { UserError } from '../util/errors.js'

export const PRECISIONS = ['fp32', 'int8', 'int4', 'fp16', 'q4f16'] as const
export type Precision = (typeof PRECISIONS)[number]

/** Passes every model starts with: each shared tensor once, constants folded. */
export const PREPARE = ['dedup', 'fold-constants']
/** Passes every model ends with: nothing unused, topological order, unique node names. */
export const CLEANUP = ['remove-unused', 'sort-and-name']

export interface PrecisionRecord {
  /** where convert writes the model, the file transformers.js loads for `dtype` */
  file: string
  /** transformers.js's dtype for `file` */
  dtype: string
  /** a second name convert gives the model (a hard link where it can): transformers.js's file for another dtype */
  alias?: { file: string; dtype: string }
  /** other names `--precision` takes for it */
  names: string[]
  /** parts of other exporters' file names that tell this precision (verify reads a file's precision from its name when it carries no stamp) */
  markers: string[]
  /** the parity verdict's thresholds unless the user sets others */
  thresholds: Thresholds
  /** the passes that make it from the fp32 graph, without a target */
  passes: string[]
}

export const PRECISION: Record<Precision, PrecisionRecord> = {
  // model.onnx and model_int8.onnx (transformers.js's fp32, int8 and q8) run token-wise ops on the
  // real tokens of a padded batch only (pack-tokens); int4 and fp16 are left as they are (see README)
  fp32: { file: 'onnx/model.onnx', dtype: 'fp32', names: [], markers: [], thresholds: { maxAbs: 1e-4 }, passes: [...PREPARE, 'pack-tokens', ...CLEANUP] },
  int8: {
    file: 'onnx/model_int8.onnx',
    dtype: 'int8',
    // transformers.js's default in the browser (wasm)
    alias: { file: 'onnx/model_quantized.onnx', dtype: 'q8' },
    names: ['q8'],
    markers: ['_int8', '_quantized', '_uint8'],
    thresholds: { cosine: 0.999, top1: 0.99 },
    passes: [...PREPARE, 'quantize-int8', 'pack-tokens', ...CLEANUP],
  },
  int4: { file: 'onnx/model_q4.onnx', dtype: 'q4', names: ['q4'], markers: ['_q4', '_int4', '_bnb4'], thresholds: { cosine: 0.99 }, passes: [...PREPARE, 'quantize-int4', ...CLEANUP] },
  fp16: { file: 'onnx/model_fp16.onnx', dtype: 'fp16', names: [], markers: ['_fp16'], thresholds: { cosine: 0.9999 }, passes: [...PREPARE, 'fp16', ...CLEANUP] },
  // 4-bit weights (as int4) with float16 scales and activations: transformers.js's q4f16 (WebGPU)
  q4f16: { file: 'onnx/model_q4f16.onnx', dtype: 'q4f16', names: [], markers: ['_q4f16'], thresholds: { cosine: 0.99 }, passes: [...PREPARE, 'quantize-int4', 'fp16', ...CLEANUP] },
}

/** One model to emit: where it goes, what it is, and the passes that make it from the fp32 graph. */
export interface ArtifactPlan {
  file: string
  precision: Precision
  /** the target that planned it, 'generic' (a plain precision) or 'auto' (`--precision auto`) */
  target: string
  /** every pass, in order (the stages' passes one after the other when there are stages) */
  passes: string[]
  /** pass options for this model over the user's (a target's record sets them) */
  options?: Partial<PassOptions>
  /** a plan in stages, each stage's passes keeping some weights out (mixed plans); absent: `passes` in one run */
  stages?: PlanStage[]
  /** `--precision auto`: the plan's name (int4, int8, int4+int8 ×2, ...) */
  name?: string
  /** mixed plans: the shared weights kept at the higher precision */
  kept?: string[]
}

/** One run of passes, with the weights named in `keepWeights` left out of them (their readers join `keepNodes`). */
export interface PlanStage {
  passes: string[]
  keepWeights?: string[]
}

/**
 * The plans `convert --precision auto` tries, smallest first: int4; int4 with the most sensitive
 * shared weights at int8 (`int4+int8`, a few at a time); int8; int8 with the most sensitive
 * weights at fp32 (`int8+fp32`); fp16; fp32. A mixed plan is written as its base precision's
 * file (the chosen one's provenance names its plan and the weights it keeps).
 */
export const AUTO_KINDS = ['int4', 'int4+int8', 'int8', 'int8+fp32', 'fp16', 'fp32'] as const
export type AutoKind = (typeof AUTO_KINDS)[number]

/** The plan of one kind; a mixed kind keeps `kept` (shared weight names) at its higher precision. */
export function autoPlan(kind: AutoKind, kept: readonly string[] = []): ArtifactPlan {
  const target = 'auto'
  switch (kind) {
    case 'int4+int8': {
      const stages: PlanStage[] = [{ passes: [...PREPARE] }, { passes: ['quantize-int4'], keepWeights: [...kept] }, { passes: ['quantize-int8', ...CLEANUP] }]
      return { file: PRECISION.int4.file, precision: 'int4', target, passes: stages.flatMap((s) => s.passes), stages, name: `int4+int8 ×${kept.length}`, kept: [...kept] }
    }
    case 'int8+fp32': {
      const stages: PlanStage[] = [{ passes: [...PREPARE] }, { passes: ['quantize-int8', ...CLEANUP], keepWeights: [...kept] }]
      return { file: PRECISION.int8.file, precision: 'int8', target, passes: stages.flatMap((s) => s.passes), stages, name: `int8+fp32 ×${kept.length}`, kept: [...kept] }
    }
    default:
      return { file: PRECISION[kind].file, precision: kind, target, passes: PRECISION[kind].passes, name: kind }
  }
}

/** Plans for plain precisions (no target). */
export function precisionPlans(precisions: Precision[]): ArtifactPlan[] {
  return precisions.map((precision) => ({ file: PRECISION[precision].file, precision, target: 'generic', passes: PRECISION[precision].passes }))
}

/** Parse a comma-separated precision list ("fp32,int8"), in the order given, without repeats. */
export function parsePrecisions(list: string): Precision[] {
  const out: Precision[] = []
  for (const raw of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    const p = PRECISIONS.find((name) => name === raw || PRECISION[name].names.includes(raw))
    if (!p) throw new UserError(`unknown precision '${raw}' (choose from ${PRECISIONS.join(', ')})`)
    if (!out.includes(p)) out.push(p)
  }
  if (out.length === 0) throw new UserError('no precision given')
  return out
}

/** Precision of a model file from its transformers.js-style name (model_quantized.onnx: int8). */
export function precisionOfFile(file: string): Precision {
  const base = file.replace(/\\/g, '/').split('/').pop() ?? file
  // the longest marker that matches: model_q4f16.onnx is q4f16, not int4 (_q4)
  let best: { p: Precision; length: number } | undefined
  for (const p of PRECISIONS) for (const m of PRECISION[p].markers) if (base.includes(m) && m.length > (best?.length ?? 0)) best = { p, length: m.length }
  return best?.p ?? 'fp32'
}

/** transformers.js's dtype for a file convert writes (an alias's for a second name), or undefined. */
export function dtypeOfFile(file: string): string | undefined {
  for (const p of PRECISIONS) {
    const r: PrecisionRecord = PRECISION[p]
    if (r.file === file) return r.dtype
    if (r.alias?.file === file) return r.alias.dtype
  }
  return undefined
}

const THRESHOLDS: Record<string, Thresholds> = Object.fromEntries(PRECISIONS.map((p) => [p, PRECISION[p].thresholds]))

/**
 * The verdict's default thresholds for a precision as a model names it (its stamp, or its file
 * name): fp32's for a name that is no precision.
 */
export function defaultThresholds(precision: string): Thresholds {
  return THRESHOLDS[precision] ?? PRECISION.fp32.thresholds
}

/** The passes of a plan, by name (an unknown name is a UserError). */
export function passesOf(plan: ArtifactPlan): Pass[] {
  return plan.passes.map(passByName)
}
