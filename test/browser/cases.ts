/**
 * What the browser suite runs, as data: output folders (a fixture converted one way) × their model
 * files × providers, and the transformers.js pipelines on them. A new target's folder slots in as
 * one more entry here; the page and the test read nothing else.
 *
 * Every head's `--target web` folder. Their WebGPU runs leave int64 plumbing to the CPU provider;
 * `webgpuOnCpu` records exactly which nodes (op types with counts), so the test fails when that
 * changes either way — a float op falling back fails it. A file without it must place every node
 * on WebGPU.
 */
import path from 'node:path'
import { convert } from '../../src/pipeline/convert.js'
import { targetPlans } from '../../src/targets/targets.js'
import type { Precision } from '../../src/targets/precision.js'
import { fixtureDir } from '../support/helpers.js'

export const PROVIDERS = ['wasm', 'webgpu'] as const
export type Provider = (typeof PROVIDERS)[number]

export interface WebFile {
  /** path inside the folder */
  file: string
  /** transformers.js's name for it */
  dtype: 'fp32' | 'fp16' | 'q8' | 'int8' | 'q4' | 'q4f16'
  /** where it is meant to run (and is tested): q8 is wasm's file, fp16 WebGPU's */
  providers: Provider[]
  /** a WebGPU adapter feature the file needs ('shader-f16'); without it the WebGPU run is skipped, said so */
  needs?: string
  /** op types (sorted, 'Op×n') that WebGPU leaves to the CPU provider today; absent: none may be */
  webgpuOnCpu?: string[]
}

export interface PipelineCase {
  task: 'text-classification' | 'token-classification' | 'question-answering' | 'fill-mask'
  /** the pipeline's arguments, one call for the batch: [texts] or [questions, contexts] */
  args: string[][]
}

export interface WebFolder {
  /** folder name under the models root */
  name: string
  fixture: string
  /** how it is made: a --target, or precisions of the default plans */
  target?: string
  precisions?: Precision[]
  files: WebFile[]
  pipeline?: PipelineCase
}

const TEXTS = ['The library opens at nine in the morning.', 'Good software is tested carefully and documented clearly.', 'Trains leave the central station every hour.']
const QUESTIONS = ['Where is the library?', 'When do trains leave?']
const CONTEXTS = ['The library opens at nine in the morning and closes at six.', 'Trains leave the central station every hour for the coast.']
const MASKED = ['the library opens at [MASK] in the morning.', 'trains leave the [MASK] station every hour.']

const HEADS: { short: string; fixture: string; pipeline?: PipelineCase }[] = [
  { short: 'seqcls', fixture: 'albert-seqcls-text', pipeline: { task: 'text-classification', args: [TEXTS] } },
  { short: 'tokcls', fixture: 'albert-tokcls-text', pipeline: { task: 'token-classification', args: [TEXTS] } },
  { short: 'qa', fixture: 'albert-qa-text', pipeline: { task: 'question-answering', args: [QUESTIONS, CONTEXTS] } },
  { short: 'mc', fixture: 'albert-mc-text' },
  { short: 'mlm', fixture: 'albert-mlm', pipeline: { task: 'fill-mask', args: [MASKED] } },
]

/**
 * What WebGPU leaves to the CPU provider in the web target's files (measured with onnxruntime-web
 * 1.30 and transformers.js's 1.31 build alike), by head. All of it is int64 plumbing that
 * onnxruntime-web's WebGPU provider has no kernel for while int64 is off (its default, and
 * transformers.js's): the Shape/Concat that build the head-split Reshape's target, the Cast of
 * attention_mask. Every float op runs on WebGPU (FastGelu, SkipLayerNormalization, MatMulNBits,
 * and the q4 files' tables: DequantizeLinear of int4 or int8, then Gather), the same in every file.
 */
const TODAY: Record<string, string> = {
  seqcls: 'Cast Concat×2 Shape×2',
  tokcls: 'Cast Concat×2 Shape×2',
  qa: 'Cast Concat×2 Shape×2',
  mc: 'Cast Concat×4 Reshape×3 Shape×4',
  mlm: 'Cast Concat×2 Shape×2',
}

/** Every head's `--target web` folder: fp32 and q4 on both providers, q8 on wasm, fp16 and q4f16 on WebGPU with shader-f16. */
export const FOLDERS: WebFolder[] = HEADS.map(({ short, fixture, pipeline }) => ({
  name: `${short}-web`,
  fixture,
  target: 'web',
  files: [
    { file: 'onnx/model.onnx', dtype: 'fp32', providers: ['wasm', 'webgpu'], webgpuOnCpu: TODAY[short]!.split(' ') },
    {
      file: 'onnx/model_q4.onnx',
      dtype: 'q4',
      providers: ['wasm', 'webgpu'],
      webgpuOnCpu: TODAY[short]!.split(' '),
    },
    { file: 'onnx/model_quantized.onnx', dtype: 'q8', providers: ['wasm'] },
    { file: 'onnx/model_fp16.onnx', dtype: 'fp16', providers: ['webgpu'], needs: 'shader-f16', webgpuOnCpu: TODAY[short]!.split(' ') },
    { file: 'onnx/model_q4f16.onnx', dtype: 'q4f16', providers: ['webgpu'], needs: 'shader-f16', webgpuOnCpu: TODAY[short]!.split(' ') },
  ],
  ...(pipeline ? { pipeline } : {}),
}))

/** Make a folder under `root` (no verification: the rest of the suite checks these models). */
export async function buildFolder(root: string, f: WebFolder): Promise<void> {
  const out = path.join(root, f.name)
  const common = { checkpoint: fixtureDir(f.fixture), out, noVerify: true }
  if (f.target) await convert({ ...common, plans: targetPlans(f.target) })
  else await convert({ ...common, precisions: f.precisions ?? ['fp32'] })
}
