/**
 * 4-bit figures on the albert-base-shaped checkpoint, side by side with the Python chain's q4 in
 * one run: the size of albertkit's q4 (and q4f16) and the worst output's cosine to transformers'
 * own outputs (the fixture's golden), padded positions left out, for each way of rounding; the
 * chain (torch.onnx.export → onnxruntime's optimizer → MatMulNBitsQuantizer, block 32,
 * symmetric) measured the same way. Models are made in memory or in a temporary folder that goes.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { buildAlbert } from '../src/builder/albert.js'
import { openCheckpoint } from '../src/checkpoint/index.js'
import { resolveTask } from '../src/checkpoint/task.js'
import { cloneModel, type Model } from '../src/ir/graph.js'
import { modelBytes } from '../src/onnx/file.js'
import { passByName } from '../src/passes/index.js'
import { runPasses, type PassOptions } from '../src/passes/pass.js'
import { ortRunner } from '../src/runtime/runner.js'
import { PRECISION, type Precision } from '../src/targets/precision.js'
import { targetByName } from '../src/targets/targets.js'
import { findPython } from './chain.js'
import { parityToGolden } from './compression.js'
import { ROOT } from './measure.js'

export interface Int4Row {
  model: string
  bytes: number
  /** cosine to the golden of each output, padded positions left out */
  cosines: Record<string, number>
  worst: number
  ms?: number
}

export interface Int4Figures {
  checkpoint: string
  rows: Int4Row[]
  chainSeconds?: number
}

/** Each output's cosine to the fixture's golden outputs (transformers'), over real tokens only. */
export async function maskedCosines(model: Uint8Array | string, dir: string): Promise<Record<string, number>> {
  return Object.fromEntries(Object.entries(await parityToGolden(model, dir)).map(([name, p]) => [name, p.cosine]))
}

function build(dir: string): Model {
  const ckpt = openCheckpoint(dir)
  const task = resolveTask(ckpt.config, undefined, ckpt.configFile)
  return buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.dir, configFile: ckpt.configFile }).model
}

/** A precision's model made from the fp32 graph by its passes, as convert makes it. */
export async function makePrecision(base: Model, precision: Precision, options: PassOptions = {}): Promise<{ bytes: Uint8Array; ms: number }> {
  const m = cloneModel(base)
  const start = performance.now()
  await runPasses(m, PRECISION[precision].passes.map(passByName), options, { runner: ortRunner })
  const ms = performance.now() - start
  return { bytes: modelBytes(m), ms }
}

async function row(model: string, bytes: Uint8Array | string, dir: string, ms?: number): Promise<Int4Row> {
  const cosines = await maskedCosines(bytes, dir)
  const size = typeof bytes === 'string' ? fs.statSync(bytes).size : bytes.byteLength
  return { model, bytes: size, cosines, worst: Math.min(...Object.values(cosines)), ...(ms === undefined ? {} : { ms }) }
}

export async function int4Figures(dir: string, opts: { chain?: boolean } = {}): Promise<Int4Figures> {
  const base = build(dir)
  const figures: Int4Figures = { checkpoint: dir, rows: [] }
  const variants: [string, Precision, PassOptions][] = [
    ['albertkit q4 (default)', 'int4', {}],
    ['albertkit q4, nearest rounding', 'int4', { int4Rounding: 'nearest' }],
    ['albertkit q4, gptq rounding', 'int4', { int4Rounding: 'gptq' }],
    ['albertkit q4f16 (default)', 'q4f16', {}],
  ]
  for (const [label, precision, options] of variants) {
    const { bytes, ms } = await makePrecision(base, precision, options)
    figures.rows.push(await row(label, bytes, dir, ms))
  }
  // --target web's q4: its own passes (the WebGPU fusions), every table 4-bit through DequantizeLinear
  const web = targetByName('web').models.find((x) => x.precision === 'int4')!
  const m = cloneModel(base)
  const start = performance.now()
  await runPasses(m, web.passes.map(passByName), web.options ?? {}, { runner: ortRunner })
  figures.rows.push(await row('albertkit --target web q4 (tables: DequantizeLinear)', modelBytes(m), dir, performance.now() - start))
  const python = opts.chain === false ? undefined : findPython()
  if (python) {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'albertkit-int4-'))
    try {
      const start = performance.now()
      const r = spawnSync(python, [path.join(ROOT, 'bench', 'python', 'int4_chain.py'), dir, work], { encoding: 'utf8' })
      figures.chainSeconds = (performance.now() - start) / 1000
      if (r.status !== 0) throw new Error(`the Python int4 chain failed:\n${r.stderr.slice(-2000)}`)
      const report = JSON.parse(r.stdout.trim().split('\n').pop()!) as { file: string }
      figures.rows.push(await row('Python chain q4 (MatMulNBitsQuantizer, block 32, symmetric)', report.file, dir))
    } finally {
      fs.rmSync(work, { recursive: true, force: true })
    }
  }
  return figures
}

export function printInt4(f: Int4Figures): void {
  console.log(`\n### 4-bit models on ${path.relative(process.cwd(), f.checkpoint)} (cosine to transformers, padded positions left out)\n`)
  console.log('| model | size | worst cosine | per output | passes |')
  console.log('|---|---|---|---|---|')
  for (const r of f.rows) {
    const per = Object.entries(r.cosines)
      .map(([k, v]) => `${k} ${v.toFixed(6)}`)
      .join(', ')
    console.log(`| ${r.model} | ${(r.bytes / 1e6).toFixed(2)} MB | ${r.worst.toFixed(6)} | ${per} | ${r.ms === undefined ? '—' : `${r.ms.toFixed(0)} ms`} |`)
  }
  if (f.chainSeconds !== undefined) console.log(`\nPython chain (export, optimizer, MatMulNBitsQuantizer): ${f.chainSeconds.toFixed(1)} s`)
  else console.log('\nPython chain: skipped (no Python with torch, transformers and onnxruntime; set ALBERTKIT_PYTHON)')
}

// `node dist/bench/int4.js [CHECKPOINT] [--no-chain]`: these figures alone.
if (process.argv[1] && path.resolve(process.argv[1]) === path.join(ROOT, 'dist', 'bench', 'int4.js')) {
  const dir = process.argv.slice(2).find((a) => !a.startsWith('--')) ?? path.join(ROOT, 'fixtures', '.generated', 'albert-base-hfinit')
  printInt4(await int4Figures(dir, { chain: !process.argv.includes('--no-chain') }))
}
