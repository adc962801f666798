/**
 * factorization-check: figures for factorized models, the folded-table warning, and the refactor
 * (rank-E decomposition) checked by onnxruntime on small graphs built here.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { openCheckpoint } from '../src/checkpoint/index.js'
import { buildAlbert } from '../src/builder/albert.js'
import { resolveTask } from '../src/checkpoint/task.js'
import { GraphBuilder } from '../src/ir/builder.js'
import { DataType } from '../src/ir/dtype.js'
import { Graph, Model, attrInt, type Value } from '../src/ir/graph.js'
import { Tensor } from '../src/ir/tensor.js'
import { modelBytes } from '../src/onnx/file.js'
import { factorizationCheck, REFACTOR_TOLERANCE } from '../src/passes/factorization-check.js'
import { analyzeRank } from '../src/analysis/rank.js'
import { ortRunner } from '../src/runtime/runner.js'
import { runPasses, type PassReport } from '../src/passes/pass.js'
import { createSession, runSession } from '../src/runtime/session.js'
import { fixtureDir } from './support/helpers.js'
import { cpuTimed } from './support/bounded.js'

const TABLE = 'embeddings.word_embeddings.weight'

/** Deterministic values in [-1, 1) (xorshift32). */
function random(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n)
  let s = seed >>> 0 || 1
  for (let i = 0; i < n; i++) {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    out[i] = ((s >>> 0) / 2 ** 31 - 1) * scale
  }
  return out
}

/** X·W (rows×k times k×cols), float64 sums, rounded to float32: a rank-k table. */
function product(x: Float32Array, w: Float32Array, rows: number, k: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols)
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let s = 0
      for (let t = 0; t < k; t++) s += x[i * k + t]! * w[t * cols + j]!
      out[i * cols + j] = s
    }
  }
  return out
}

function foldedTable(V: number, E: number, H: number): Float32Array {
  return product(random(V * E, 1), random(E * H, 2, 0.5), V, E, H)
}

/**
 * ids → Gather(table) → + bias → LayerNorm → Relu → MatMul(H×16) → `logits`; with `tied`, a second
 * output reads the same table as a decoder (Gemm, transB).
 */
function lookupModel(table: Float32Array, V: number, H: number, tied = false): Model {
  const g = new Graph()
  g.name = 'lookup'
  const b = new GraphBuilder(g)
  const ids = g.addValue('input_ids')
  ids.setTensorType(DataType.INT64, ['batch', 'seq'])
  g.inputs.push(ids)
  const t = g.addInitializer(TABLE, Tensor.fromFloat32([V, H], table))
  const emb = b.op('Gather', [t, ids], [], { label: 'word_embeddings' })
  const biased = b.add(emb, g.addInitializer('embeddings.bias', Tensor.fromFloat32([H], random(H, 3, 0.1))))
  const scale = g.addInitializer('ln.weight', Tensor.fromFloat32([H], random(H, 4, 0.2).map((v) => 1 + v)))
  const hidden = b.op('Relu', [b.layerNorm(biased, scale, g.addInitializer('ln.bias', Tensor.fromFloat32([H], random(H, 5, 0.1))), 1e-5)])
  output(g, b.matmul(hidden, g.addInitializer('head.weight', Tensor.fromFloat32([H, 16], random(H * 16, 6, 0.3)))), 'logits')
  if (tied) output(g, b.op('Gemm', [b.reshape(hidden, b.ints([-1, H])), t], [attrInt('transB', 1)]), 'decoder_logits')
  return new Model(g)
}

function output(g: Graph, v: Value, name: string): void {
  g.renameValue(v, name)
  v.setTensorType(DataType.FLOAT)
  g.outputs.push(v)
}

async function check(model: Model, refactor = false): Promise<PassReport> {
  const [report] = await runPasses(model, [factorizationCheck], { refactor })
  return report!
}

async function run(bytes: Uint8Array, ids: Tensor): Promise<Map<string, Float32Array>> {
  const session = await createSession(bytes, { optimization: 'disabled' })
  const out = await runSession(session, new Map([['input_ids', ids]]))
  return new Map([...out].map(([k, v]) => [k, v.data]))
}

function maxAbs(a: Float32Array): number {
  return a.reduce((m, v) => Math.max(m, Math.abs(v)), 0)
}

describe('factorization-check', () => {
  for (const name of ['albert-model', 'albert-mlm']) {
    it(`${name}: reports V, E, H of the checkpoint, no warning, no change`, async () => {
      const ckpt = openCheckpoint(fixtureDir(name))
      const task = resolveTask(ckpt.config, undefined, ckpt.configFile)
      const { model } = buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.dir, configFile: ckpt.configFile })
      const before = modelBytes(model)
      const r = await check(model, true)
      const { vocabSize: V, embeddingSize: E, hiddenSize: H } = ckpt.config
      assert.equal(r.changed, false)
      assert.deepEqual(r.warnings, [])
      assert.deepEqual(
        { V: r.stats.V, E: r.stats.E, H: r.stats.H, projectionFound: r.stats.projectionFound },
        { V, E, H, projectionFound: true },
      )
      assert.equal(r.stats.factorized, V * E + E * H)
      assert.equal(r.stats.unfactorized, V * H)
      assert.equal(r.stats.saving, V * H - V * E - E * H)
      assert.deepEqual(modelBytes(model), before)
    })
  }

  it('says so when the graph has no embedding lookup', async () => {
    const g = new Graph()
    const x = g.addValue('x')
    x.setTensorType(DataType.FLOAT, [2])
    g.inputs.push(x)
    output(g, new GraphBuilder(g).op('Relu', [x]), 'y')
    const r = await check(new Model(g))
    assert.equal(r.changed, false)
    assert.deepEqual(r.stats, { lookupFound: false })
  })

  describe('a folded table (V 300, E 8, H 32: X·Wᵀ stored as one V×H matrix)', () => {
    const [V, E, H] = [300, 8, 32]
    const table = foldedTable(V, E, H)

    it('warns with its rank and what a refactor saves, and leaves the graph alone', async () => {
      const model = lookupModel(table, V, H)
      const before = modelBytes(model)
      const r = await check(model)
      assert.equal(r.changed, false)
      assert.equal(r.warnings.length, 1)
      assert.match(r.warnings[0]!, /300×32 has rank 8: its factorization was folded; factorization-check --refactor stores 300·8 \+ 8·32 = 2,656 instead of 300·32 = 9,600 parameters \(saves 6,944/)
      assert.equal(r.stats.rank, 8)
      assert.equal(r.stats.folded, true)
      assert.equal(r.stats.projectionFound, false)
      assert.deepEqual([r.stats.V, r.stats.E, r.stats.H, r.stats.factorized, r.stats.unfactorized], [V, E, H, 2656, 9600])
      assert.ok((r.stats.relativeError as number) < 1e-6, `relative error ${r.stats.relativeError}`)
      assert.deepEqual(modelBytes(model), before)
    })

    it('with refactor: stores V×8 and 8×H factors, the file shrinks, onnxruntime outputs agree', async (t) => {
      const model = lookupModel(table, V, H)
      const before = modelBytes(model)
      const r = await check(model, true)
      assert.equal(r.changed, true)
      assert.deepEqual(r.warnings, [])
      assert.equal(r.stats.refactored, true)
      assert.equal(r.stats.bytesSaved, (V * H - V * E - E * H) * 4)

      const g = model.graph
      assert.ok(!g.values.has(TABLE), 'the V×H table is gone')
      const c = g.values.get(`${TABLE}.factor_c`)!
      const b = g.values.get(`${TABLE}.factor_b`)!
      assert.deepEqual([c.const!.dims, b.const!.dims], [[V, E], [E, H]])
      const [gather] = c.consumers
      assert.equal(gather!.opType, 'Gather')
      const [matmul] = gather!.outputs[0]!.consumers
      assert.equal(matmul!.opType, 'MatMul')
      assert.equal(matmul!.inputs[1], b)
      assert.equal(matmul!.outputs[0]!.name, '/word_embeddings', 'the lookup output keeps its name')
      assert.ok(g.nodes.indexOf(gather!) < g.nodes.indexOf(matmul!) && g.nodes.indexOf(matmul!) < g.nodes.indexOf(matmul!.outputs[0]!.consumers[0]!))

      const after = modelBytes(model)
      const shrink = before.byteLength - after.byteLength
      assert.ok(shrink <= 27_776 && shrink > 27_776 - 300, `file shrank by ${shrink} bytes, tensors by 27,776`)

      const ids = Tensor.fromInt64([2, 7], [0, 1, 299, 150, 42, 7, 7, 3, 298, 100, 200, 5, 64, 128])
      const ref = (await run(before, ids)).get('logits')!
      const got = (await run(after, ids)).get('logits')!
      let diff = 0
      for (let i = 0; i < ref.length; i++) diff = Math.max(diff, Math.abs(ref[i]! - got[i]!))
      assert.ok(diff <= 1e-5 * maxAbs(ref), `max abs difference ${diff} (outputs up to ${maxAbs(ref)})`)
      t.diagnostic(`file ${before.byteLength} → ${after.byteLength} bytes; relative error ${(r.stats.relativeError as number).toExponential(2)}; outputs max abs diff ${diff.toExponential(2)} (max |output| ${maxAbs(ref).toFixed(2)})`)

      const again = await check(model, true)
      assert.equal(again.changed, false, 'a second run finds the factorization')
      assert.deepEqual(again.warnings, [])
      assert.deepEqual([again.stats.projectionFound, again.stats.V, again.stats.E, again.stats.H], [true, V, E, H])
    })

    it('with refactor, leaves a table that a tied decoder also reads, saying why', async () => {
      const model = lookupModel(table, V, H, true)
      const before = modelBytes(model)
      const r = await check(model, true)
      assert.equal(r.changed, false)
      assert.equal(r.warnings.length, 1)
      assert.match(r.warnings[0]!, /has rank 8: its factorization was folded, but --refactor leaves it: .* is also read by Gemm node/)
      assert.deepEqual(modelBytes(model), before)
    })
  })

  it('a full-rank V×H table: figures only, no warning, and refactor changes nothing', async () => {
    const [V, H] = [300, 32]
    for (const refactor of [false, true]) {
      const model = lookupModel(random(V * H, 9), V, H)
      const before = modelBytes(model)
      const r = await check(model, refactor)
      assert.equal(r.changed, false)
      assert.deepEqual(r.warnings, [])
      assert.equal(r.stats.lowRank, false)
      assert.deepEqual([r.stats.V, r.stats.E, r.stats.H, r.stats.unfactorized, r.stats.saving], [V, H, H, V * H, 0])
      assert.deepEqual(modelBytes(model), before)
    }
  })

  it('a table of rank 8 plus noise above the tolerance: refactor refuses, giving the error', async () => {
    const [V, E, H] = [300, 8, 32]
    const table = foldedTable(V, E, H)
    const noise = random(V * H, 11, 2e-4)
    const rms = Math.sqrt(table.reduce((s, v) => s + v * v, 0) / table.length)
    const noisy = table.map((v, i) => v + noise[i]! * rms)
    const model = lookupModel(noisy, V, H)
    const before = modelBytes(model)
    const r = await check(model, true)
    assert.equal(r.changed, false)
    assert.equal(r.stats.rank, 8)
    assert.equal(r.stats.folded, false)
    const e = r.stats.relativeError as number
    assert.ok(e > REFACTOR_TOLERANCE && e < 1e-3, `relative error ${e}`)
    assert.equal(r.warnings.length, 1)
    assert.match(r.warnings[0]!, /300×32 is close to rank 8 \(relative error \d\.\d\de-4, above the 1e-5 a lossless refactor needs\).*--refactor leaves it unchanged/)
    assert.deepEqual(modelBytes(model), before)
  })

  describe('analyzeRank', () => {
    it('finds directions the sample missed: rank 8 with 3 rows replaced by random ones is rank 11', () => {
      const [V, E, D] = [3000, 8, 64]
      const t = product(random(V * E, 1), random(E * D, 2), V, E, D)
      const extra = random(3 * D, 9)
      ;[17, 1234, 2999].forEach((row, k) => t.set(extra.subarray(k * D, k * D + D), row * D))
      const a = analyzeRank({ data: t, rows: V, cols: D })
      assert.equal(a.rank, 11)
      assert.ok(a.relativeError! < 1e-6)
      assert.ok(a.rounds >= 2)
    })

    it('gives no rank for an all-zero table or a single column', () => {
      assert.equal(analyzeRank({ data: new Float32Array(40), rows: 10, cols: 4 }).rank, undefined)
      assert.equal(analyzeRank({ data: random(10, 1), rows: 10, cols: 1 }).rank, undefined)
    })

    it('albert-base size: a 30000×768 table of rank 128 in a few seconds', async (t) => {
      const [V, E, D] = [30000, 128, 768]
      const table = await onnxruntimeProduct(random(V * E, 1), random(E * D, 2, 0.2), V, E, D)
      const { value: a, cpuMs } = cpuTimed(() => analyzeRank({ data: table, rows: V, cols: D }))
      t.diagnostic(`rank check of 30000×768: ${cpuMs.toFixed(0)} ms of CPU, rank ${a.rank}, relative error ${a.relativeError?.toExponential(2)}`)
      assert.equal(a.rank, 128)
      assert.ok(a.relativeError! <= REFACTOR_TOLERANCE)
    })
  })
})

/** X·W by onnxruntime (float32), for a table too big to multiply out here quickly. */
async function onnxruntimeProduct(x: Float32Array, w: Float32Array, rows: number, k: number, cols: number): Promise<Float32Array> {
  const g = new Graph()
  const xv = g.addValue('x')
  xv.setTensorType(DataType.FLOAT, [rows, k])
  g.inputs.push(xv)
  const y = new GraphBuilder(g).matmul(xv, g.addInitializer('w', Tensor.fromFloat32([k, cols], w)))
  output(g, y, 'y')
  const session = await createSession(modelBytes(new Model(g)))
  return (await runSession(session, new Map([['x', Tensor.fromFloat32([rows, k], x)]]))).get('y')!.data
}

describe('finding the E→H projection in quantized models', () => {
  it('sees through DynamicQuantizeMatMul, MatMulNBits, QDQ and fp16 casts: E 8 → H 16 in every precision and target', async () => {
    const { findEmbeddingLookup } = await import('../src/analysis/factorization.js')
    const { precisionPlans, passesOf } = await import('../src/targets/precision.js')
    const { targetPlans } = await import('../src/targets/targets.js')
    const ckpt = openCheckpoint(fixtureDir('albert-seqcls-text'))
    const task = resolveTask(ckpt.config, undefined, ckpt.configFile)
    const plans = [...precisionPlans(['fp32', 'int8', 'int4', 'fp16']), ...targetPlans('cpu'), ...targetPlans('mobile')]
    const seen: string[] = []
    for (const plan of plans) {
      const model = buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.dir, configFile: ckpt.configFile }).model
      await runPasses(model, passesOf(plan), { contribOps: plan.target !== 'mobile' }, { runner: ortRunner })
      const found = findEmbeddingLookup(model.graph)
      assert.ok(found?.projection, `${plan.target} ${plan.file}: projection found`)
      assert.deepEqual([found.V, found.E, found.projection.H], [200, 8, 16], `${plan.target} ${plan.file}`)
      seen.push(found.projection.node.opType)
    }
    assert.ok(seen.includes('DynamicQuantizeMatMul') && seen.includes('MatMulNBits'), seen.join(', '))
  })
})
