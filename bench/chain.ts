/**
 * albertkit's cpu target against the Python chain (plain torch.onnx.export → onnxruntime transformer
 * optimizer → quantize_dynamic per-channel), side by side in one run: latency at batch 1 and
 * sequence 128 on one intra-op thread, file sizes, cosine to the fp32 reference, and the whole
 * process wall time of each chain from checkpoint to verified int8 model.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { DataType } from '../src/ir/dtype.js'
import { Tensor, bytesOf } from '../src/ir/tensor.js'
import { createSession, runSession } from '../src/runtime/session.js'
import { compareOutputs } from '../src/verify/compare.js'
import { cosinesToGolden } from './compression.js'
import { ROOT, median, runAlbertkit } from './measure.js'

/** A Python with torch, transformers and onnxruntime, or undefined. */
export function findPython(): string | undefined {
  const candidates = [process.env.ALBERTKIT_PYTHON, path.join(ROOT, '.venv', 'bin', 'python'), '/work/py/bin/python', 'python3'].filter(Boolean) as string[]
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import torch, transformers, onnxruntime, onnx'], { encoding: 'utf8' })
    if (r.status === 0) return py
  }
  return undefined
}

export interface ChainRow {
  model: string
  bytes: number
  latencyMs: number
  cosineToFp32: number
  cosineToTransformers?: number
}

export interface ChainFigures {
  checkpoint: string
  python?: string
  rows: ChainRow[]
  albertkitWallSeconds: number
  albertkitPeakMB: number
  chainWallSeconds?: number
  chainSteps?: Record<string, number>
  ratios: Record<string, number>
}

export function feedsFor(batch: number, seq: number, vocab: number): Map<string, Tensor> {
  const ids = new BigInt64Array(batch * seq)
  let s = 12345
  for (let i = 0; i < ids.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0
    ids[i] = BigInt(5 + (s % (vocab - 5)))
  }
  const mask = new BigInt64Array(batch * seq).fill(1n)
  const types = new BigInt64Array(batch * seq)
  return new Map([
    ['input_ids', new Tensor(DataType.INT64, [batch, seq], bytesOf(ids))],
    ['attention_mask', new Tensor(DataType.INT64, [batch, seq], bytesOf(mask))],
    ['token_type_ids', new Tensor(DataType.INT64, [batch, seq], bytesOf(types))],
  ])
}

/** Median latency of several models measured in interleaved rounds (so drift hits all alike). */
export async function latencies(models: string[], feeds: Map<string, Tensor>, rounds: number): Promise<number[]> {
  const sessions = await Promise.all(models.map((m) => createSession(m, { intraOpThreads: 1 })))
  for (const s of sessions) for (let i = 0; i < 3; i++) await runSession(s, feeds)
  const times: number[][] = models.map(() => [])
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < sessions.length; i++) {
      const t = performance.now()
      await runSession(sessions[i]!, feeds)
      times[i]!.push(performance.now() - t)
    }
  }
  for (const s of sessions) await s.release()
  return times.map(median)
}

export async function chainFigures(dir: string, rounds: number): Promise<ChainFigures> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'albertkit-chain-'))
  const out = path.join(work, 'albertkit')
  const ours = runAlbertkit(['convert', dir, '--out', out, '--target', 'cpu'])
  const models: [string, string][] = [
    ['albertkit cpu fp32', path.join(out, 'onnx', 'model.onnx')],
    ['albertkit cpu int8', path.join(out, 'onnx', 'model_int8.onnx')],
  ]
  const figures: ChainFigures = { checkpoint: dir, rows: [], albertkitWallSeconds: ours.seconds, albertkitPeakMB: ours.peakMB, ratios: {} }
  const python = findPython()
  if (python) {
    figures.python = python
    const start = performance.now()
    const r = spawnSync(python, [path.join(ROOT, 'bench', 'python', 'chain.py'), dir, path.join(work, 'chain')], { encoding: 'utf8' })
    figures.chainWallSeconds = (performance.now() - start) / 1000
    if (r.status !== 0) throw new Error(`the Python chain failed:\n${r.stderr.slice(-2000)}`)
    const report = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number> & { files: Record<string, string> }
    figures.chainSteps = Object.fromEntries(Object.entries(report).filter(([k]) => k.endsWith('_s'))) as Record<string, number>
    models.push(['chain optimized fp32', report.files.optimized!], ['chain int8', report.files.int8!])
  }
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { vocab_size: number }
  const feeds = feedsFor(1, 128, config.vocab_size)
  const ms = await latencies(models.map(([, f]) => f), feeds, rounds)
  const reference = await runSession(await createSession(models[0]![1], { optimization: 'disabled' }), feeds)
  const hasGolden = fs.existsSync(path.join(dir, 'golden.safetensors'))
  for (let i = 0; i < models.length; i++) {
    const [label, file] = models[i]!
    const got = await runSession(await createSession(file), feeds)
    const cos = Math.min(...[...reference].map(([k, ref]) => compareOutputs(ref.data, got.get(k)!.data).cosine))
    const row: ChainRow = { model: label, bytes: fs.statSync(file).size, latencyMs: ms[i]!, cosineToFp32: cos }
    if (hasGolden) row.cosineToTransformers = Math.min(...Object.values(await cosinesToGolden(file, dir)))
    figures.rows.push(row)
  }
  const lat = (label: string) => figures.rows.find((r) => r.model === label)?.latencyMs
  if (python) {
    figures.ratios = {
      int8Latency: lat('albertkit cpu int8')! / lat('chain int8')!,
      fp32Latency: lat('albertkit cpu fp32')! / lat('chain optimized fp32')!,
      wallTime: ours.seconds / figures.chainWallSeconds!,
    }
  }
  fs.rmSync(work, { recursive: true, force: true })
  return figures
}

export function printChain(f: ChainFigures): void {
  console.log(`\n### cpu target vs the Python chain on ${path.relative(process.cwd(), f.checkpoint)} (batch 1, sequence 128, 1 thread)\n`)
  console.log('| model | size | median latency | cosine to fp32 reference | cosine to transformers (worst output) |')
  console.log('|---|---|---|---|---|')
  for (const r of f.rows) {
    console.log(`| ${r.model} | ${(r.bytes / 1e6).toFixed(2)} MB | ${r.latencyMs.toFixed(1)} ms | ${r.cosineToFp32.toFixed(6)} | ${r.cosineToTransformers?.toFixed(6) ?? '—'} |`)
  }
  console.log('')
  console.log(`albertkit convert --target cpu (fp32 + int8 + verification): ${f.albertkitWallSeconds.toFixed(2)} s, peak ${f.albertkitPeakMB.toFixed(0)} MB`)
  if (f.chainWallSeconds !== undefined) {
    const steps = Object.entries(f.chainSteps ?? {})
      .map(([k, v]) => `${k.replace(/_s$/, '')} ${v.toFixed(1)} s`)
      .join(', ')
    console.log(`Python chain, checkpoint → verified int8: ${f.chainWallSeconds.toFixed(2)} s (${steps})`)
    const r = f.ratios
    console.log(`ratios: int8 latency ${r.int8Latency!.toFixed(2)}× (goal ≤ 0.80), fp32 latency ${r.fp32Latency!.toFixed(2)}× (goal ≤ 0.95), wall time ${r.wallTime!.toFixed(2)}× (goal ≤ 0.25)`)
  } else {
    console.log('Python chain: skipped (no Python with torch, transformers and onnxruntime; set ALBERTKIT_PYTHON)')
  }
}
