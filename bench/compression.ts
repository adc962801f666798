/**
 * Compression figures on albert-base: time of each pass, size of each precision, cosine of each
 * output to transformers' own outputs, and the same on torch exports (plain and unrolled).
 */
import fs from 'node:fs'
import path from 'node:path'
import { openCheckpoint } from '../src/checkpoint/index.js'
import { readSafetensors } from '../src/checkpoint/safetensors.js'
import { buildAlbert } from '../src/builder/albert.js'
import { resolveTask } from '../src/checkpoint/task.js'
import { cloneModel, type Model } from '../src/ir/graph.js'
import { DataType } from '../src/ir/dtype.js'
import { modelBytes, readModelFile } from '../src/onnx/file.js'
import { passByName } from '../src/passes/index.js'
import { runPasses } from '../src/passes/pass.js'
import { createSession, runSession } from '../src/runtime/session.js'
import { compareTokens, type Parity } from '../src/verify/compare.js'
import { tokenMask } from '../src/verify/inputs.js'
import { median } from './measure.js'

export interface PrecisionRow {
  precision: string
  bytes: number
  cosines: Record<string, number>
}

export interface CompressionFigures {
  checkpoint: string
  passMs: Record<string, number>
  precisions: PrecisionRow[]
  torchExport?: { bytes: number; floatMatricesLeft: number; cosines: Record<string, number> }
  unrolledExport?: { bytesBefore: number; bytesAfter: number }
}

const PRECISION_PASS: Record<string, string | undefined> = { fp32: undefined, int8: 'quantize-int8', int4: 'quantize-int4', fp16: 'fp16' }

function build(dir: string): Model {
  const ckpt = openCheckpoint(dir)
  const task = resolveTask(ckpt.config, undefined, ckpt.configFile)
  return buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.dir, configFile: ckpt.configFile }).model
}

/** Cosine of every output to the golden, running `bytes` with onnxruntime (CPU, default optimizations). */
export async function cosinesToGolden(model: Uint8Array | string, dir: string): Promise<Record<string, number>> {
  return Object.fromEntries(Object.entries(await parityToGolden(model, dir)).map(([k, p]) => [k, p.cosine]))
}

/** Every output's figures (max abs, cosine, ...) against the golden, running the model with onnxruntime (CPU, default optimizations). */
export async function parityToGolden(model: Uint8Array | string, dir: string): Promise<Record<string, Parity>> {
  const golden = readSafetensors(path.join(dir, 'golden.safetensors')).tensors
  const inputs = readSafetensors(path.join(dir, 'inputs.safetensors')).tensors
  const session = await createSession(model, { intraOpThreads: 1 })
  const out = await runSession(session, inputs)
  await session.release()
  const result: Record<string, Parity> = {}
  // real positions only: a packed model (pack-tokens) writes 0 or -10000 where attention_mask is 0
  const mask = tokenMask(inputs)
  for (const [name, ref] of golden) result[name] = compareTokens(ref.toFloat32(), out.get(name)!.data, ref.dims, mask, false)
  return result
}

/** Median time of a pass over `runs` fresh copies of the model. */
async function timePass(model: Model, pass: string, runs: number): Promise<number> {
  const times: number[] = []
  for (let i = 0; i < runs; i++) {
    const copy = cloneModel(model)
    const [r] = await runPasses(copy, [passByName(pass)])
    times.push(r!.ms)
  }
  return median(times)
}

export async function compressionFigures(dir: string, runs: number): Promise<CompressionFigures> {
  const hasGolden = fs.existsSync(path.join(dir, 'golden.safetensors'))
  const base = build(dir)
  const passMs: Record<string, number> = {}
  for (const pass of ['dedup', 'quantize-int8', 'quantize-int4', 'fp16']) passMs[pass] = await timePass(base, pass, runs)
  const precisions: PrecisionRow[] = []
  for (const [precision, pass] of Object.entries(PRECISION_PASS)) {
    const m = cloneModel(base)
    if (pass) await runPasses(m, [passByName(pass)])
    const bytes = modelBytes(m)
    precisions.push({ precision, bytes: bytes.byteLength, cosines: hasGolden ? await cosinesToGolden(bytes, dir) : {} })
  }
  const figures: CompressionFigures = { checkpoint: dir, passMs, precisions }
  const exported = path.join(dir, 'export', 'model.onnx')
  if (fs.existsSync(exported)) {
    const m = readModelFile(exported)
    await runPasses(m, ['dedup', 'quantize-int8'].map(passByName))
    const bytes = modelBytes(m)
    const floatMatricesLeft = m.graph.initializers.filter((v) => v.const!.dtype === DataType.FLOAT && v.const!.dims.length === 2).length
    figures.torchExport = { bytes: bytes.byteLength, floatMatricesLeft, cosines: hasGolden ? await cosinesToGolden(bytes, dir) : {} }
  }
  const unrolled = path.join(dir, 'export-unshared', 'model.onnx')
  if (fs.existsSync(unrolled)) {
    const m = readModelFile(unrolled)
    await runPasses(m, [passByName('dedup')])
    figures.unrolledExport = { bytesBefore: fs.statSync(unrolled).size, bytesAfter: modelBytes(m).byteLength }
  }
  return figures
}

const mb = (n: number) => `${(n / 1e6).toFixed(2)} MB`
const cos = (c: Record<string, number>) =>
  Object.entries(c)
    .map(([k, v]) => `${k} ${v.toFixed(6)}`)
    .join(', ') || '(no golden)'

export function printCompression(f: CompressionFigures): void {
  console.log(`\n### Compression on ${path.relative(process.cwd(), f.checkpoint)}\n`)
  console.log('| pass | median time |')
  console.log('|---|---|')
  let total = 0
  for (const [pass, ms] of Object.entries(f.passMs)) {
    total += ms
    console.log(`| ${pass} | ${ms.toFixed(0)} ms |`)
  }
  console.log(`| all four | ${total.toFixed(0)} ms (goal ≤ 1000 ms) |`)
  console.log('\n| precision | size | cosine to transformers |')
  console.log('|---|---|---|')
  for (const p of f.precisions) console.log(`| ${p.precision} | ${mb(p.bytes)} | ${cos(p.cosines)} |`)
  if (f.torchExport) {
    const t = f.torchExport
    console.log(`| torch export → dedup,quantize-int8 | ${mb(t.bytes)} (${t.floatMatricesLeft} float matrices left) | ${cos(t.cosines)} |`)
  }
  if (f.unrolledExport) console.log(`| unrolled export → dedup | ${mb(f.unrolledExport.bytesBefore)} → ${mb(f.unrolledExport.bytesAfter)} | |`)
}
