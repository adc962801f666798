/**
 * Targets: what `--target NAME` emits for a runtime, one record each — the models (file,
 * precision, the passes that make each from the plain fp32 graph), whether the folder gets an
 * onnxruntime required_operators.config, and which of convert's target flags it takes. Nothing
 * else in albertkit names a target: adding one is adding a record here (and to its test).
 * Every target keeps each shared tensor stored once and the transformers.js file layout.
 */
import { UserError } from '../util/errors.js'
import { CLEANUP, PREPARE, PRECISION, type ArtifactPlan, type Precision } from './precision.js'
import type { PassOptions } from '../passes/pass.js'

/** Flags of convert that only some targets take. */
export type TargetFlag = 'fixed-shape' | 'calibration'

export interface TargetModel {
  /** a transformers.js file name (precision.ts), or another where a target writes two models of one precision */
  file: string
  precision: Precision
  passes: string[]
  /** pass options this model is made with, over the user's (e.g. a runtime that lacks an op) */
  options?: Partial<PassOptions>
  /** also written in ORT format (the flatbuffer ORT Mobile loads), by onnxruntime itself, as this file */
  ortFile?: string
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
  /** what config.json's `transformers.js_config` gets, so transformers.js picks these files by default */
  transformersJs?: Record<string, unknown>
  /**
   * `optimize --target` on another exporter's ONNX: the passes that bring it, after IMPORT_PREPARE,
   * to the form this target's own passes expect (what onnxruntime's optimizer fused that the
   * target does not keep); they run in place of the models' PREPARE.
   */
  imported: string[]
}

const CPU_FUSIONS = ['fuse-attention', 'fuse-gelu']
const GPU_FUSIONS = ['fuse-attention', 'fuse-gelu', 'fuse-layernorm']
/**
 * The fused ops onnxruntime-web's WebGPU provider runs that albertkit makes: FastGelu and
 * SkipLayerNormalization. Not Attention: its WebGPU kernel (and MultiHeadAttention's) does not
 * implement the padding mask (mask_index, key_padding_mask), and onnxruntime-web 1.30 leaves a
 * masked Attention to the CPU provider — a fallback; attention stays MatMul + Softmax there.
 */
const WEB_FUSIONS = ['fuse-gelu', 'fuse-layernorm']
/**
 * The web target's 4-bit options: onnxruntime-web's browser build has no GatherBlockQuantized on
 * wasm, so the word table is 4-bit through DequantizeLinear (opset 21); its WebGPU MatMulNBits is
 * wrong for K under one block, so those (tiny) matrices stay float.
 */
const WEB_INT4: Partial<PassOptions> = { int4Tables: 'DequantizeLinear', wholeBlocks: true }

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
    // the optimizer's SkipLayerNormalization back to Add + LayerNormalization, the form this target keeps
    imported: ['split-skip-layernorm'],
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
    imported: [],
  },
  {
    name: 'mobile',
    summary:
      'standard ONNX ops only (opset 17), int8 as a QDQ graph calibrated on sample inputs, and a weight-only int8 variant; shapes can be pinned. ' +
      'The fp32 and QDQ models also in ORT format (model.ort, model_int8.ort), which ORT Mobile loads.',
    models: [
      { file: PRECISION.fp32.file, precision: 'fp32', passes: [...PREPARE, 'fix-shapes', ...CLEANUP], ortFile: 'onnx/model.ort' },
      { file: PRECISION.int8.file, precision: 'int8', passes: [...PREPARE, 'fix-shapes', 'quantize-qdq', ...CLEANUP], ortFile: 'onnx/model_int8.ort' },
      { file: PRECISION.int8.alias!.file, precision: 'int8', passes: [...PREPARE, 'fix-shapes', 'quantize-weights', ...CLEANUP] },
    ],
    requiredOperators: true,
    flags: ['fixed-shape', 'calibration'],
    // standard ONNX ops only: the optimizer's com.microsoft ops (and a LayerNormalization below opset 17) written out
    imported: ['decompose-contrib'],
  },
  {
    name: 'web',
    summary:
      "the files transformers.js picks by dtype in a browser: fp32, fp16, q4 and q4f16 (MatMulNBits, 4-bit tables through DequantizeLinear) with the fused ops onnxruntime-web's WebGPU provider runs (FastGelu, " +
      'SkipLayerNormalization; attention unfused, as WebGPU has no masked Attention), and q8 (dynamic int8, fused Attention) for wasm; config.json defaults to q8 on wasm, fp32 on WebGPU.',
    models: [
      { file: PRECISION.fp32.file, precision: 'fp32', passes: [...PREPARE, ...WEB_FUSIONS, ...CLEANUP] },
      { file: PRECISION.fp16.file, precision: 'fp16', passes: [...PREPARE, ...WEB_FUSIONS, 'fp16', ...CLEANUP] },
      { file: PRECISION.int4.file, precision: 'int4', passes: [...PREPARE, ...WEB_FUSIONS, 'quantize-int4', ...CLEANUP], options: WEB_INT4 },
      { file: PRECISION.q4f16.file, precision: 'q4f16', passes: [...PREPARE, ...WEB_FUSIONS, 'quantize-int4', 'fp16', ...CLEANUP], options: WEB_INT4 },
      { file: PRECISION.int8.alias!.file, precision: 'int8', passes: [...PREPARE, ...CPU_FUSIONS, 'quantize-int8', ...CLEANUP] },
    ],
    imported: [],
    requiredOperators: false,
    flags: [],
    transformersJs: { device_config: { wasm: { dtype: 'q8' }, webgpu: { dtype: 'fp32' } } },
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
  return t.models.map((m) => ({ file: m.file, precision: m.precision, target: t.name, passes: m.passes, ...(m.options ? { options: m.options } : {}) }))
}

/**
 * What every model made from another exporter's ONNX starts with, in place of PREPARE: the
 * torch.export exporter's node metadata dropped (strip-metadata; `keepMetadata` leaves it), its
 * declared intermediate types and shapes forgotten (drop-value-info: onnxruntime plans with them), each
 * constant once (dedup: also the unrolled exports' per-layer weight copies), constants folded,
 * shared subexpressions merged (TorchScript's shape chains per layer), opsets 11–16 raised to 17
 * and LayerNorm written out at those opsets composed (the form albertkit's own graphs have).
 */
export const IMPORT_PREPARE = ['strip-metadata', 'drop-value-info', ...PREPARE, 'cse', 'upgrade-opset', 'compose-layernorm']

/**
 * The models a target emits from another exporter's ONNX (optimize --target): the target's own
 * plans with IMPORT_PREPARE and the target's `imported` passes in place of PREPARE.
 */
export function importedPlans(name: string, opts: { keepMetadata?: boolean } = {}): ArtifactPlan[] {
  const t = targetByName(name)
  const prepare = opts.keepMetadata ? IMPORT_PREPARE.filter((p) => p !== 'strip-metadata') : IMPORT_PREPARE
  return targetPlans(name).map((plan) => {
    if (PREPARE.some((p, i) => plan.passes[i] !== p)) throw new Error(`target ${name}: ${plan.file} does not start with ${PREPARE.join(', ')}`)
    return { ...plan, passes: [...prepare, ...t.imported, ...plan.passes.slice(PREPARE.length)] }
  })
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

/** The `transformers.js_config` entries the targets of these plans ask config.json for (none: {}). */
export function transformersJsConfig(plans: readonly ArtifactPlan[]): Record<string, unknown> {
  const names = new Set(plans.map((p) => p.target))
  return Object.assign({}, ...TARGETS.filter((t) => names.has(t.name)).map((t) => t.transformersJs ?? {}))
}

/** The ORT-format file a plan's model is also written as, if its target asks for one. */
export function ortFileOf(plan: ArtifactPlan): string | undefined {
  return TARGETS.find((t) => t.name === plan.target)?.models.find((m) => m.file === plan.file)?.ortFile
}

/** Whether any of these plans comes from a target that writes onnx/required_operators.config. */
export function writesRequiredOperators(plans: readonly ArtifactPlan[]): boolean {
  return plans.some((p) => TARGETS.some((t) => t.name === p.target && t.requiredOperators))
}
