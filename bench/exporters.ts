/**
 * Other exporters' ALBERT through `optimize --target cpu` against `convert --target cpu` of the
 * same checkpoint (issue 14): on the albert-base-shaped exports `fixtures/make_export_fixtures.py
 * --base` writes into fixtures/.generated/albert-base/exports (TorchScript opset 17, dynamo opset
 * 18 with and without external data): Attention blocks fused, int8 size against convert's,
 * latency at batch 1 × sequence 128 on one thread (all models interleaved in each round), cosine
 * and max abs to transformers' goldens. Everything is written to a scratch folder that goes.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { readModelFile } from '../src/onnx/file.js'
import { nodesDeep } from '../src/analysis/parameters.js'
import { feedsFor, latencies } from './chain.js'
import { parityToGolden } from './compression.js'
import { runAlbertkit } from './measure.js'

/** The export kinds measured, where the fixture script wrote them. */
export const EXPORT_KINDS = ['torchscript-op17', 'dynamo-op18', 'dynamo-op18-external']

export interface ExporterRow {
  /** 'convert' or the export kind */
  source: string
  /** Attention (fp32) and QAttention (int8) nodes */
  attention: { fp32: number; int8: number }
  fp32Bytes: number
  int8Bytes: number
  fp32LatencyMs: number
  int8LatencyMs: number
  /** worst output */
  fp32MaxAbsToTransformers: number
  int8CosineToTransformers: number
  /** wall time of the command (checkpoint or export → cpu folder, --no-verify: the figures here are against transformers) */
  seconds: number
}

export interface ExporterFigures {
  checkpoint: string
  rows: ExporterRow[]
  /** per export kind: int8 size and latencies over convert's */
  ratios: Record<string, { int8Size: number; int8Latency: number; fp32Latency: number }>
}

// inside If and Loop bodies too: a packed model (pack-tokens) runs its layers there
const count = (file: string, op: string) => {
  const seen = new Set<string>()
  for (const n of nodesDeep(readModelFile(file).graph)) if (n.opType === op && n.domain === 'com.microsoft') seen.add(n.name)
  return seen.size
}
const bytesOf = (file: string) => fs.statSync(file).size + (fs.existsSync(`${file}_data`) ? fs.statSync(`${file}_data`).size : 0)

/** undefined when the checkpoint has no exports (run the fixture script with --base). */
export async function exporterFigures(dir: string, rounds: number): Promise<ExporterFigures | undefined> {
  const exports = path.join(dir, 'exports')
  const kinds = EXPORT_KINDS.filter((k) => fs.existsSync(path.join(exports, k, 'model.onnx')))
  if (kinds.length === 0) return undefined
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'albertkit-exporters-'))
  try {
    const made: { source: string; out: string; seconds: number }[] = []
    const convertOut = path.join(work, 'convert')
    made.push({ source: 'convert', out: convertOut, seconds: runAlbertkit(['convert', dir, '--out', convertOut, '--target', 'cpu', '--no-verify']).seconds })
    for (const kind of kinds) {
      const out = path.join(work, kind)
      made.push({ source: kind, out, seconds: runAlbertkit(['optimize', path.join(exports, kind, 'model.onnx'), '--target', 'cpu', '--out', out, '--no-verify']).seconds })
    }
    const files = made.flatMap((m) => [path.join(m.out, 'onnx', 'model.onnx'), path.join(m.out, 'onnx', 'model_int8.onnx')])
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { vocab_size: number }
    const ms = await latencies(files, feedsFor(1, 128, config.vocab_size), rounds)
    const rows: ExporterRow[] = []
    for (const [i, m] of made.entries()) {
      const [fp32, int8] = [files[2 * i]!, files[2 * i + 1]!]
      const fp32Parity = Object.values(await parityToGolden(fp32, dir))
      const int8Parity = Object.values(await parityToGolden(int8, dir))
      rows.push({
        source: m.source,
        attention: { fp32: count(fp32, 'Attention'), int8: count(int8, 'QAttention') + count(int8, 'Attention') },
        fp32Bytes: bytesOf(fp32),
        int8Bytes: bytesOf(int8),
        fp32LatencyMs: ms[2 * i]!,
        int8LatencyMs: ms[2 * i + 1]!,
        fp32MaxAbsToTransformers: Math.max(...fp32Parity.map((p) => p.maxAbs)),
        int8CosineToTransformers: Math.min(...int8Parity.map((p) => p.cosine)),
        seconds: m.seconds,
      })
    }
    const base = rows[0]!
    const ratios = Object.fromEntries(
      rows.slice(1).map((r) => [r.source, { int8Size: r.int8Bytes / base.int8Bytes, int8Latency: r.int8LatencyMs / base.int8LatencyMs, fp32Latency: r.fp32LatencyMs / base.fp32LatencyMs }]),
    )
    return { checkpoint: dir, rows, ratios }
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}

export function printExporters(f: ExporterFigures): void {
  console.log(`\n### other exporters: optimize --target cpu vs convert --target cpu on ${path.relative(process.cwd(), f.checkpoint)} (batch 1, sequence 128, 1 thread, interleaved)\n`)
  console.log('| source | Attention fp32/int8 | fp32 size | int8 size | fp32 latency | int8 latency | fp32 max abs to transformers | int8 cosine to transformers | command (--no-verify) |')
  console.log('|---|---|---|---|---|---|---|---|---|')
  for (const r of f.rows) {
    console.log(
      `| ${r.source} | ${r.attention.fp32}/${r.attention.int8} | ${(r.fp32Bytes / 1e6).toFixed(2)} MB | ${(r.int8Bytes / 1e6).toFixed(3)} MB | ${r.fp32LatencyMs.toFixed(1)} ms | ${r.int8LatencyMs.toFixed(1)} ms | ${r.fp32MaxAbsToTransformers.toExponential(2)} | ${r.int8CosineToTransformers.toFixed(6)} | ${r.seconds.toFixed(1)} s |`,
    )
  }
  console.log('')
  for (const [kind, r] of Object.entries(f.ratios)) {
    console.log(`${kind}: int8 size ${(100 * (r.int8Size - 1)).toFixed(2)}% (goal within ±1%), int8 latency ${(100 * (r.int8Latency - 1)).toFixed(1)}%, fp32 latency ${(100 * (r.fp32Latency - 1)).toFixed(1)}% (goal within 3%) vs convert`)
  }
}
