/**
 * Targets: what `--target NAME` emits for a runtime, one record each — the models (file,
 * precision, the passes that make each from the plain fp32 graph), whether the folder gets an
 * onnxruntime required_operators.config, and which of convert's target flags it takes. Nothing
 * else in albertkit names a target: adding one is adding a record here (and to its test).
 * Every target keeps each shared tensor stored once and the transformers.js file layout.
 */
import { UserError } from '../util/errors.js'
import { CLEANUP, PREPARE, PRECISION, type ArtifactPlan, type Precision } from './precision.js'

/** Flags of convert that only some targets take. */
export type TargetFlag = 'fixed-shape' | 'calibration'

export interface TargetModel {
  /** a transformers.js file name (precision.ts), or another where a target writes two models of one precision */
  file: string
  precision: Precision
  passes: string[]
}

export interface Target {
  /** `--target`'s value */
  name: string
  /** what it is for and what its models do, in one line */
  summary: string
  models: TargetModel[]
  /** write onnx/required_operators.config: the ops every model needs, for onnxruntime's reduced-operator builds */
  requiredOperators: boolean
  /** convert's flags that apply to it: `--fixed-shape` (pins [B, S] through fix-shapes), `--calibration` (sample inputs for static int8) */
  flags: TargetFlag[]
}

const CPU_FUSIONS = ['fuse-attention', 'fuse-gelu']
const GPU_FUSIONS = ['fuse-attention', 'fuse-gelu', 'fuse-layernorm']

export const TARGETS: readonly Target[] = [
  {
    name: 'cpu',
    summary:
      "onnxruntime's CPU kernels: fused Attention (packed QKV), FastGelu/Gelu with the bias; fp32 and dynamic int8 (QAttention, DynamicQuantizeMatMul). " +
      'LayerNorm stays unfused: on the CPU provider SkipLayerNormalization measured slower than Add + LayerNormalization. ' +
      'A padded batch costs its real tokens (pack-tokens: token-wise ops on the real tokens only, attention per row).',
    models: [
      { file: PRECISION.fp32.file, precision: 'fp32', passes: [...PREPARE, ...CPU_FUSIONS, 'pack-tokens', ...CLEANUP] },
      { file: PRECISION.int8.file, precision: 'int8', passes: [...PREPARE, ...CPU_FUSIONS, 'quantize-int8', 'pack-tokens', ...CLEANUP] },
    ],
    requiredOperators: false,
    flags: [],
  },
  {
    name: 'gpu',
    summary: "the fused ops onnxruntime's CUDA provider runs (SkipLayerNormalization too), float16 compute with float32 model inputs and outputs, plus the fused fp32 model.",
    models: [
      { file: PRECISION.fp32.file, precision: 'fp32', passes: [...PREPARE, ...GPU_FUSIONS, ...CLEANUP] },
      { file: PRECISION.fp16.file, precision: 'fp16', passes: [...PREPARE, ...GPU_FUSIONS, 'fp16', ...CLEANUP] },
    ],
    requiredOperators: false,
    flags: [],
  },
  {
    name: 'mobile',
    summary: 'standard ONNX ops only (opset 17), int8 as a QDQ graph calibrated on sample inputs, and a weight-only int8 variant; shapes can be pinned.',
    models: [
      { file: PRECISION.fp32.file, precision: 'fp32', passes: [...PREPARE, 'fix-shapes', ...CLEANUP] },
      { file: PRECISION.int8.file, precision: 'int8', passes: [...PREPARE, 'fix-shapes', 'quantize-qdq', ...CLEANUP] },
      { file: PRECISION.int8.alias!.file, precision: 'int8', passes: [...PREPARE, 'fix-shapes', 'quantize-weights', ...CLEANUP] },
    ],
    requiredOperators: true,
    flags: ['fixed-shape', 'calibration'],
  },
]

export const TARGET_NAMES: readonly string[] = TARGETS.map((t) => t.name)

/** The target named `name`; an unknown name is a UserError listing the targets. */
export function targetByName(name: string): Target {
  const t = TARGETS.find((x) => x.name === name)
  if (!t) throw new UserError(`unknown target '${name}' (choose from ${TARGET_NAMES.join(', ')})`)
  return t
}

/** The models a target emits, as plans. */
export function targetPlans(name: string): ArtifactPlan[] {
  const t = targetByName(name)
  return t.models.map((m) => ({ file: m.file, precision: m.precision, target: t.name, passes: m.passes }))
}

/** Whether the target named `name` (if any) takes convert's `flag`. */
export function takes(name: string | undefined, flag: TargetFlag): boolean {
  return TARGETS.some((t) => t.name === name && t.flags.includes(flag))
}

/** `--target mobile`, or `--target a or --target b`: the targets that take a flag, for messages and help. */
export function targetsTaking(flag: TargetFlag): string {
  return TARGETS.filter((t) => t.flags.includes(flag))
    .map((t) => `--target ${t.name}`)
    .join(' or ')
}

/** Whether any of these plans comes from a target that writes onnx/required_operators.config. */
export function writesRequiredOperators(plans: readonly ArtifactPlan[]): boolean {
  return plans.some((p) => TARGETS.some((t) => t.name === p.target && t.requiredOperators))
}
