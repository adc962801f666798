/**
 * `npm run bench`: albertkit on an albert-base-shaped checkpoint. Uses the transformers-made one
 * from `fixtures/make_fixtures.py --base` when present, else writes a synthetic one to a temporary
 * folder that goes when the run ends. Prints its tables; `-- --json FILE` also writes the figures
 * to FILE. Nothing else is written or left behind.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ROOT, medianRuns } from './measure.js'
import { ALBERT_BASE, writeSyntheticCheckpoint } from '../test/support/synthetic.js'
import { compressionFigures, printCompression, type CompressionFigures } from './compression.js'
import { chainFigures, printChain, type ChainFigures } from './chain.js'
import { largeFigures, printLarge, type LargeFigures } from './large.js'
import { printStartup, startupFigures } from './startup.js'
import { int4Figures, printInt4, type Int4Figures } from './int4.js'
import { exporterFigures, printExporters, type ExporterFigures } from './exporters.js'

const RUNS = 5

/** The checkpoint to measure on; a synthetic one is written into `scratch`. */
function baseCheckpoint(scratch: string): { dir: string; origin: string } {
  const generated = path.join(ROOT, 'fixtures', '.generated', 'albert-base')
  if (fs.existsSync(path.join(generated, 'model.safetensors'))) return { dir: generated, origin: 'fixtures/make_fixtures.py --base' }
  const dir = path.join(scratch, 'albert-base')
  writeSyntheticCheckpoint(dir, ALBERT_BASE)
  return { dir, origin: 'synthetic (test/support/synthetic.ts)' }
}

/** The file `--json FILE` names, or undefined. */
function jsonFile(argv: string[]): string | undefined {
  const i = argv.indexOf('--json')
  if (i < 0) return undefined
  const file = argv[i + 1]
  if (!file || file.startsWith('--')) throw new Error('--json needs a file name: npm run bench -- --json figures.json')
  return file
}

interface Row {
  what: string
  seconds: number
  peakMB: number
  goal: string
}

async function main(scratch: string): Promise<void> {
  const json = jsonFile(process.argv)
  const { dir, origin } = baseCheckpoint(scratch)
  const ckptMB = fs.statSync(path.join(dir, 'model.safetensors')).size / 1e6
  const out = path.join(scratch, 'out')
  const clean = () => fs.rmSync(out, { recursive: true, force: true })
  const rows: Row[] = []

  const convert = medianRuns(RUNS, ['convert', dir, '--out', out, '--no-verify'], clean)
  rows.push({ what: 'convert (fp32, --no-verify)', seconds: convert.seconds, peakMB: convert.peakMB, goal: '≤ 1.5 s, ≤ 400 MB' })
  const verified = medianRuns(RUNS, ['convert', dir, '--out', out], clean)
  rows.push({ what: 'convert (fp32 + parity verdict)', seconds: verified.seconds, peakMB: verified.peakMB, goal: '' })
  const onnxMB = fs.statSync(path.join(out, 'onnx', 'model.onnx')).size / 1e6
  clean()

  console.log(`albert-base-shaped checkpoint: ${dir} (${origin}), ${ckptMB.toFixed(2)} MB; median of ${RUNS} runs, whole process`)
  console.log('')
  console.log('| step | wall time | peak memory | goal |')
  console.log('|---|---|---|---|')
  for (const r of rows) console.log(`| ${r.what} | ${r.seconds.toFixed(3)} s | ${r.peakMB.toFixed(0)} MB | ${r.goal} |`)
  console.log('')
  console.log(`model.onnx: ${onnxMB.toFixed(2)} MB (${((onnxMB / ckptMB - 1) * 100).toFixed(2)}% vs the checkpoint)`)

  const compression: CompressionFigures[] = []
  const hfinit = path.join(ROOT, 'fixtures', '.generated', 'albert-base-hfinit')
  for (const d of [dir, hfinit]) {
    if (!fs.existsSync(path.join(d, 'model.safetensors'))) continue
    const f = await compressionFigures(d, RUNS)
    printCompression(f)
    compression.push(f)
  }

  let chain: ChainFigures | undefined
  const chainDir = fs.existsSync(path.join(hfinit, 'model.safetensors')) ? hfinit : dir
  chain = await chainFigures(chainDir, 15)
  printChain(chain)

  // 4-bit figures need transformers' outputs (fixtures/make_fixtures.py --base-hfinit)
  let int4: Int4Figures | undefined
  if (fs.existsSync(path.join(chainDir, 'golden.safetensors'))) {
    int4 = await int4Figures(chainDir)
    printInt4(int4)
  } else console.log('\n4-bit figures: skipped (no golden outputs; make them with fixtures/make_fixtures.py --base-hfinit)')
  // other exporters' ONNX of the same checkpoint (fixtures/make_export_fixtures.py --base), when made
  const exportersDir = fs.existsSync(path.join(hfinit, 'exports')) ? hfinit : dir
  const exporters: ExporterFigures | undefined = await exporterFigures(exportersDir, 15)
  if (exporters) printExporters(exporters)

  const startup = startupFigures()
  printStartup(startup)

  // Batched runs (issue 13): a process of their own (one intra-op thread, interleaved sessions)
  console.log('')
  const batched = spawnSync(process.execPath, [path.join(path.dirname(fileURLToPath(import.meta.url)), 'packed.js')], { stdio: 'inherit' })
  if (batched.status !== 0) throw new Error(`the batched section failed (exit ${batched.status})`)

  let large: LargeFigures | undefined
  if (process.argv.includes('--large')) {
    large = largeFigures(scratch)
    printLarge(large)
  }

  const results = {
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', node: process.version },
    checkpoint: { path: dir, origin, megabytes: ckptMB },
    runs: RUNS,
    convert: { medianSeconds: convert.seconds, medianPeakMB: convert.peakMB, all: convert.runs, onnxMB },
    convertVerified: { medianSeconds: verified.seconds, medianPeakMB: verified.peakMB, all: verified.runs },
    compression,
    chain,
    int4,
    exporters,
    startup,
    large,
  }
  if (json) {
    fs.writeFileSync(json, JSON.stringify(results, null, 2) + '\n')
    console.log(`\nwrote ${json}`)
  }
}

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'albertkit-bench-'))
try {
  await main(scratch)
} finally {
  fs.rmSync(scratch, { recursive: true, force: true })
}
