/**
 * An albert-xxlarge-shaped checkpoint (H 4096, I 16384, 64 heads; 223 M parameters, 0.89 GB,
 * written to the bench's scratch folder, which goes when the bench ends): convert to fp32 and int8
 * with verification, whole-process wall time and peak memory against the checkpoint's size. Run
 * with `npm run bench -- --large`.
 */
import fs from 'node:fs'
import path from 'node:path'
import { ALBERT_BASE, writeSyntheticCheckpoint } from '../test/support/synthetic.js'
import { runAlbertkit } from './measure.js'

export const ALBERT_XXLARGE = { ...ALBERT_BASE, hidden_size: 4096, num_attention_heads: 64, intermediate_size: 16384 }

export interface LargeFigures {
  checkpointBytes: number
  seconds: number
  peakMB: number
  peakOverCheckpoint: number
  files: Record<string, number>
}

export function largeFigures(scratch: string): LargeFigures {
  const dir = path.join(scratch, 'albert-xxlarge')
  writeSyntheticCheckpoint(dir, ALBERT_XXLARGE)
  const out = path.join(scratch, 'xxlarge-out')
  const run = runAlbertkit(['convert', dir, '--out', out, '--precision', 'fp32,int8'])
  const checkpointBytes = fs.statSync(path.join(dir, 'model.safetensors')).size
  const files = Object.fromEntries(fs.readdirSync(path.join(out, 'onnx')).map((f) => [f, fs.statSync(path.join(out, 'onnx', f)).size]))
  fs.rmSync(dir, { recursive: true, force: true })
  fs.rmSync(out, { recursive: true, force: true })
  return { checkpointBytes, seconds: run.seconds, peakMB: run.peakMB, peakOverCheckpoint: (run.peakMB * 1024 * 1024) / checkpointBytes, files }
}

export function printLarge(f: LargeFigures): void {
  console.log('\n### albert-xxlarge-shaped checkpoint: convert fp32 + int8 with verification\n')
  console.log(`checkpoint ${(f.checkpointBytes / 1e9).toFixed(2)} GB; ${f.seconds.toFixed(1)} s; peak ${f.peakMB.toFixed(0)} MB = ${f.peakOverCheckpoint.toFixed(2)}× the checkpoint (goal ≤ 2.5×)`)
  for (const [file, bytes] of Object.entries(f.files)) console.log(`  ${file}: ${(bytes / 1e6).toFixed(1)} MB`)
}
