/**
 * Targets: the models each deployment target gets and the passes that make each one from the
 * plain fp32 graph. Every target keeps each shared tensor stored once and the transformers.js
 * file layout.
 *
 * - cpu: onnxruntime's CPU kernels — fused Attention (packed QKV), FastGelu/Gelu with the bias;
 *   fp32 and dynamic int8 (QAttention, DynamicQuantizeMatMul). LayerNorm stays unfused: on the
 *   CPU provider SkipLayerNormalization measured slower than Add + LayerNormalization.
 * - gpu: the fused ops onnxruntime's CUDA provider runs (SkipLayerNormalization too), float16
 *   compute with float32 model inputs and outputs, plus the fused fp32 model.
 * - mobile: standard ONNX ops only (opset 17), int8 as a QDQ graph calibrated on sample inputs,
 *   and a weight-only int8 variant; shapes can be pinned.
 */
import { UserError } from '../util/errors.js'
import type { ArtifactPlan } from './precision.js'

export const TARGETS = ['cpu', 'gpu', 'mobile'] as const
export type Target = (typeof TARGETS)[number]

const PREPARE = ['dedup', 'fold-constants']
const CLEANUP = ['remove-unused', 'sort-and-name']
const CPU_FUSIONS = ['fuse-attention', 'fuse-gelu']
const GPU_FUSIONS = ['fuse-attention', 'fuse-gelu', 'fuse-layernorm']

export function targetPlans(target: string): ArtifactPlan[] {
  switch (target) {
    case 'cpu':
      return [
        { file: 'onnx/model.onnx', precision: 'fp32', target, passes: [...PREPARE, ...CPU_FUSIONS, ...CLEANUP] },
        { file: 'onnx/model_int8.onnx', precision: 'int8', target, passes: [...PREPARE, ...CPU_FUSIONS, 'quantize-int8', ...CLEANUP] },
      ]
    case 'gpu':
      return [
        { file: 'onnx/model.onnx', precision: 'fp32', target, passes: [...PREPARE, ...GPU_FUSIONS, ...CLEANUP] },
        { file: 'onnx/model_fp16.onnx', precision: 'fp16', target, passes: [...PREPARE, ...GPU_FUSIONS, 'fp16', ...CLEANUP] },
      ]
    case 'mobile':
      return [
        { file: 'onnx/model.onnx', precision: 'fp32', target, passes: [...PREPARE, 'fix-shapes', ...CLEANUP] },
        { file: 'onnx/model_int8.onnx', precision: 'int8', target, passes: [...PREPARE, 'fix-shapes', 'quantize-qdq', ...CLEANUP] },
        { file: 'onnx/model_quantized.onnx', precision: 'int8', target, passes: [...PREPARE, 'fix-shapes', 'quantize-weights', ...CLEANUP] },
      ]
    default:
      throw new UserError(`unknown target '${target}' (choose from ${TARGETS.join(', ')})`)
  }
}
