/**
 * `npm run bench:mobile`: the mobile target on albert-base (fixtures/.generated/albert-base-hfinit,
 * made by `fixtures/make_fixtures.py --base-hfinit`): for dynamic shapes and `--fixed-shape 1,128`,
 * each model's size, cosine to the transformers goldens in onnxruntime-node and onnxruntime-web
 * (wasm, one thread), and median latency at batch 1, sequence 128, one thread, in both.
 */
import fs from 'node:fs'
import path from 'node:path'
import { openCheckpoint } from '../src/checkpoint/index.js'
import { readSafetensors } from '../src/checkpoint/safetensors.js'
import { buildAlbert } from '../src/builder/albert.js'
import { cloneModel, type Model } from '../src/ir/graph.js'
import { Tensor } from '../src/ir/tensor.js'
import { modelBytes } from '../src/onnx/file.js'
import { runPasses } from '../src/passes/pass.js'
import { ortRunner } from '../src/runtime/runner.js'
import { passByName } from '../src/passes/index.js'
import { targetPlans } from '../src/targets/targets.js'
import { compareOutputs } from '../src/verify/compare.js'
import { createSession, runSession } from '../src/runtime/session.js'
import type { OutputMap } from '../src/verify/verdict.js'
import { createWebSession, runWebSession } from '../test/support/ort-web.js'
import { ROOT } from './measure.js'

type Feed = Map<string, Tensor>
type Runner = (feed: Feed) => Promise<OutputMap>

const DIR = path.join(ROOT, 'fixtures', '.generated', 'albert-base-hfinit')
const RUNS = 20

function rows(t: Tensor, start: number, n: number): Tensor {
  const size = t.byteLength / t.dims[0]!
  return new Tensor(t.dtype, [n, ...t.dims.slice(1)], t.data.subarray(start * size, (start + n) * size))
}

function feedRows(inputs: Feed, start: number, n: number): Feed {
  return new Map([...inputs].map(([k, t]) => [k, rows(t, start, n)]))
}

async function runner(kind: 'node' | 'web', bytes: Uint8Array): Promise<Runner> {
  if (kind === 'node') {
    const s = await createSession(bytes, { intraOpThreads: 1 })
    return (f) => runSession(s, f)
  }
  const s = await createWebSession(bytes)
  return (f) => runWebSession(s, f)
}

/** Worst cosine over the outputs, running the golden inputs `batch` rows at a time. */
async function cosine(run: Runner, inputs: Feed, golden: Map<string, Tensor>, batch: number): Promise<number> {
  const total = inputs.get('input_ids')!.dims[0]!
  const parts = new Map<string, number[]>()
  for (let r = 0; r < total; r += batch) for (const [k, v] of await run(feedRows(inputs, r, batch))) parts.set(k, [...(parts.get(k) ?? []), ...v.data])
  return Math.min(...[...golden].map(([k, g]) => compareOutputs(g.toFloat32(), Float32Array.from(parts.get(k)!)).cosine))
}

async function medianMs(run: Runner, feed: Feed): Promise<number> {
  for (let i = 0; i < 3; i++) await run(feed)
  const times: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now()
    await run(feed)
    times.push(performance.now() - t)
  }
  return times.sort((a, b) => a - b)[RUNS >> 1]!
}

async function main(): Promise<void> {
  if (!fs.existsSync(path.join(DIR, 'model.safetensors'))) {
    console.log(`no ${DIR}: make it with fixtures/make_fixtures.py --base-hfinit`)
    return
  }
  const ckpt = openCheckpoint(DIR)
  const reference = buildAlbert(ckpt.config, ckpt.weights, { task: 'feature-extraction', where: DIR, configFile: ckpt.configFile }).model
  const inputs = readSafetensors(path.join(DIR, 'inputs.safetensors')).tensors
  const golden = readSafetensors(path.join(DIR, 'golden.safetensors')).tensors
  const one = feedRows(inputs, 0, 1)
  console.log('| shapes | file | MB | cosine node | cosine web | ms node | ms web | quantize pass |')
  console.log('|---|---|---|---|---|---|---|---|')
  for (const fixed of [undefined, [1, 128] as [number, number]]) {
    for (const plan of targetPlans('mobile')) {
      const model: Model = cloneModel(reference)
      const reports = await runPasses(model, plan.passes.map(passByName), fixed ? { fixedShape: fixed } : {}, { runner: ortRunner })
      const q = reports.find((r) => r.pass.startsWith('quantize'))
      const bytes = modelBytes(model)
      const cells: string[] = []
      for (const kind of ['node', 'web'] as const) {
        const run = await runner(kind, bytes)
        cells.push((await cosine(run, inputs, golden, fixed ? 1 : 2)).toFixed(6), (await medianMs(run, one)).toFixed(1))
      }
      const pass = q ? `${q.pass} ${(q.ms / 1000).toFixed(1)} s, ${q.stats.keptFloat} kept float` : ''
      console.log(`| ${fixed ? fixed.join(',') : 'dynamic'} | ${plan.file} | ${(bytes.byteLength / 1e6).toFixed(2)} | ${cells[0]} | ${cells[2]} | ${cells[1]} | ${cells[3]} | ${pass} |`)
    }
  }
}

await main()
