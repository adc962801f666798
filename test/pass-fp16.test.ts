/**
 * The fp16 pass: which tensors and nodes go float16, where float32 stays (LayerNormalization,
 * Softmax, the attention-mask path), the Casts on the boundary, clamping, and the numbers
 * onnxruntime computes from the result against the transformers goldens.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import type { Tensor as OrtTensor } from 'onnxruntime-node'
import { openCheckpoint } from '../src/checkpoint/index.js'
import { buildAlbert } from '../src/builder/albert.js'
import { resolveTask } from '../src/checkpoint/task.js'
import { DataType } from '../src/ir/dtype.js'
import { Graph, Model, attrFloat, attrInt, type Node, type Value } from '../src/ir/graph.js'
import { Tensor } from '../src/ir/tensor.js'
import { modelBytes, readModelFile } from '../src/onnx/file.js'
import { fp16 } from '../src/passes/fp16.js'
import { passContext, type PassOptions, type PassResult } from '../src/passes/pass.js'
import { createSession, loadOrt, runSession } from '../src/runtime/session.js'
import { compareOutputs } from '../src/verify/compare.js'
import { halfArrayToFloat32, toHalfBits } from '../src/util/half.js'
import { fixtureDir, fixtureGolden, fixtureInputs } from './support/helpers.js'

const { FLOAT, FLOAT16, INT64 } = DataType

function build(name: string): Model {
  const ckpt = openCheckpoint(fixtureDir(name))
  const task = resolveTask(ckpt.config, undefined, ckpt.configFile)
  return buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.dir, configFile: ckpt.configFile }).model
}

async function convert(model: Model, options: PassOptions = {}, warn?: (m: string) => void): Promise<Record<string, number>> {
  const result: PassResult = await fp16.run(model, passContext(options, { warn }))
  return result.stats as Record<string, number>
}

const nodesOf = (m: Model, op: string) => m.graph.nodes.filter((n) => n.opType === op)
const init = (m: Model, name: string) => m.graph.values.get(name)!.const!

/** The largest magnitude in the reference: fp16 errors scale with it. */
function peak(a: Float32Array): number {
  let m = 0
  for (const x of a) m = Math.max(m, Math.abs(x))
  return m
}

/**
 * Largest max-abs error allowed, as a share of the output's peak magnitude. fp16 rounds to
 * 2⁻¹¹ ≈ 4.9e-4 relative; through the network the fixtures measure up to 2.4e-3 (albert-mlm
 * logits: 0.0134 on a peak of 5.57; the others 0.4e-3 to 1.8e-3), so 4e-3 is about eight fp16
 * steps: room for another CPU's kernels, not for float16 LayerNorms (albert-mlm then fails it).
 */
const MAX_ABS_SHARE = 4e-3

async function assertParity(model: Model, fixture: string): Promise<void> {
  const session = await createSession(modelBytes(model))
  const outputs = await runSession(session, fixtureInputs(fixture))
  for (const [name, ref] of fixtureGolden(fixture)) {
    const r = ref.toFloat32()
    const p = compareOutputs(r, outputs.get(name)!.data)
    assert.equal(p.nonFinite, 0, `${fixture} ${name}: NaN or Inf in the output`)
    assert.ok(p.cosine >= 0.9999, `${fixture} ${name}: cosine ${p.cosine}`)
    assert.ok(p.maxAbs <= MAX_ABS_SHARE * peak(r), `${fixture} ${name}: max abs ${p.maxAbs}, peak ${peak(r)}`)
    // fp32 parity is 1e-5: a larger error shows that the model really computes in float16.
    assert.ok(p.maxAbs > 1e-5, `${fixture} ${name}: max abs ${p.maxAbs} looks like float32`)
  }
}

describe('fp16 on albertkit graphs', () => {
  it('stores weights FLOAT16 and LayerNorm parameters and the mask fill FLOAT, each tensor once', async () => {
    const model = build('albert-mlm')
    const before = model.graph.initializers.length
    const stats = await convert(model)
    const scalar = (v: Value) => (v.const!.size === 1 ? v.const!.toFloat32()[0] : undefined)
    const floats = model.graph.initializers.filter((v) => v.const!.dtype !== INT64)
    const fill = floats.find((v) => scalar(v)! < -1e38)!
    assert.equal(fill.const!.dtype, FLOAT, 'the mask fill stays float32, unclamped')
    assert.equal(scalar(fill), -3.4028234663852886e38)
    // The scalar 1 is read by 1 - mask (float32) and by the activation (float16): once per precision.
    const ones = floats.filter((v) => scalar(v) === 1)
    assert.deepEqual(ones.map((v) => `${v.const!.dtype}:${[...new Set(v.consumers.map((n) => n.opType))]}`).sort(), ['10:Add', '1:Sub'])
    assert.equal(model.graph.initializers.length, before + 1)
    for (const v of floats) {
      if (v === fill || ones.includes(v)) continue
      assert.equal(v.const!.dtype, /LayerNorm|layer_norm/.test(v.name) ? FLOAT : FLOAT16, v.name)
    }
    const emb = model.graph.values.get('albert.embeddings.word_embeddings.weight')!
    assert.deepEqual(emb.consumers.map((n) => n.opType).sort(), ['Gather', 'Gemm'], 'the tied embedding is read by lookup and decoder')
    assert.ok(!model.graph.initializers.some((v) => v !== emb && v.const!.dims.join() === '200,8'), 'no second copy of the embedding')
    assert.equal(stats.clamped, 0)
    assert.equal(stats.underflowed, 0)
    assert.ok(stats.bytesSaved! > 9000 && modelBytes(model).byteLength < 26_000, `bytes saved ${stats.bytesSaved}`)
  })

  it('computes LayerNormalization, Softmax and the mask Add in float32, the rest in float16', async () => {
    const model = build('albert-pretraining')
    await convert(model)
    const f32 = (n: Node) => [n.inputs[0]!, n.outputs[0]!].every((v) => v.elemType === FLOAT)
    for (const op of ['LayerNormalization', 'Softmax']) {
      assert.ok(nodesOf(model, op).length > 0)
      for (const n of nodesOf(model, op)) assert.ok(f32(n), `${n} runs float32`)
    }
    for (const n of nodesOf(model, 'Softmax')) {
      const join = n.inputs[0]!.producer!
      assert.equal(join.opType, 'Add')
      assert.ok(join.inputs.every((v) => v!.elemType === FLOAT), 'scores + mask in float32')
    }
    for (const op of ['Gemm', 'MatMul', 'Tanh', 'Pow']) {
      for (const n of nodesOf(model, op)) assert.equal(n.outputs[0]!.elemType, FLOAT16, `${n} runs float16`)
    }
  })

  it('puts one Cast on each boundary edge, shared by all readers', async () => {
    // Embedding LayerNorm in and out: 2; per layer call: scores → fp32, probs → fp16, two
    // LayerNorms in and out: 6; MLM head LayerNorm in and out and logits: 3; pooler: the first
    // token to fp16 and its output to fp32: 2. The last layer's LayerNorm feeds only the float32
    // Reshape of last_hidden_state in albert-model: one Cast fewer.
    const expected: Record<string, number> = { 'albert-mlm': 2 + 6 * 2 + 3, 'albert-pretraining': 2 + 6 * 8 + 3 + 2, 'albert-model': 2 + 6 * 3 - 1 + 2 }
    for (const [name, count] of Object.entries(expected)) {
      const model = build(name)
      const castsBefore = nodesOf(model, 'Cast').length
      const stats = await convert(model)
      assert.equal(stats.castsInserted, count, name)
      const casts = nodesOf(model, 'Cast')
      assert.equal(casts.length - castsBefore, count, name)
      const seen = new Set<string>()
      for (const c of casts) {
        const key = `${c.inputs[0]!.name}→${c.attrInt('to')}`
        assert.ok(!seen.has(key), `${name}: two Casts for ${key}`)
        seen.add(key)
      }
      // The int mask's Cast stays a Cast to float32: 1 - mask runs float32, next to the mask fill.
      const maskCast = casts.find((c) => c.inputs[0]!.name === 'attention_mask')!
      assert.equal(maskCast.attrInt('to'), FLOAT)
    }
  })

  it('keeps model inputs and outputs as they were', async () => {
    const model = build('albert-pretraining')
    const io = (m: Model) => [...m.graph.inputs, ...m.graph.outputs].map((v) => `${v.name}:${v.elemType}:${v.shape!.join('x')}`)
    const before = io(model)
    await convert(model)
    assert.deepEqual(io(model), before)
    for (const v of model.graph.outputs) {
      assert.equal(v.producer!.opType, 'Cast')
      assert.equal(v.producer!.inputs[0]!.elemType, FLOAT16)
      assert.ok(!v.type!.inferred, 'declared type kept')
    }
  })

  for (const name of ['albert-model', 'albert-mlm', 'albert-pretraining', 'albert-mc']) {
    it(`${name}: onnxruntime output matches transformers within float16 rounding`, async () => {
      const model = build(name)
      await convert(model)
      await assertParity(model, name)
    })
  }

  it('keepOps and keepNodes keep those nodes and their weights float32', async () => {
    const model = build('albert-mlm')
    const decoder = nodesOf(model, 'Gemm').find((n) => n.inputs[1]!.name === 'albert.embeddings.word_embeddings.weight')!
    await convert(model, { keepOps: ['Pow'], keepNodes: [decoder.name] })
    for (const n of nodesOf(model, 'Pow')) assert.equal(n.outputs[0]!.elemType, FLOAT)
    assert.equal(decoder.outputs[0]!.elemType, FLOAT)
    // The embedding is read in both precisions now: float32 for the decoder, a float16 twin for the lookup.
    assert.equal(decoder.inputs[1]!.const!.dtype, FLOAT)
    const lookup = nodesOf(model, 'Gather').find((n) => n.inputs[0]!.name.startsWith('albert.embeddings.word_embeddings'))!
    assert.equal(lookup.inputs[0]!.const!.dtype, FLOAT16)
    await assertParity(model, 'albert-mlm')
  })

  it('changes nothing when run again', async () => {
    const model = build('albert-mlm')
    await convert(model)
    const nodes = model.graph.nodes.length
    const result = await fp16.run(model, passContext())
    assert.equal(result.changed, false)
    assert.equal(result.stats!.castsInserted, 0)
    assert.equal(model.graph.nodes.length, nodes)
  })
})

describe('fp16 with keepIoTypes false', () => {
  for (const name of ['albert-mlm', 'albert-model']) {
    it(`${name}: float outputs become FLOAT16, onnxruntime returns float16 matching the golden`, async () => {
      const model = build(name)
      const stats = await convert(model, { keepIoTypes: false })
      if (name === 'albert-mlm') assert.equal(stats.castsInserted, 2 + 6 * 2 + 2, 'no Cast before the logits')
      assert.ok(model.graph.outputs.every((v) => v.elemType === FLOAT16))
      assert.ok(model.graph.inputs.every((v) => v.elemType === INT64))
      const ort = await loadOrt()
      const session = await createSession(modelBytes(model))
      const feeds: Record<string, OrtTensor> = {}
      for (const [k, t] of fixtureInputs(name)) feeds[k] = new ort.Tensor('int64', t.toBigInt64(), [...t.dims])
      const outputs = await session.run(feeds)
      for (const [output, ref] of fixtureGolden(name)) {
        const out = outputs[output]!
        assert.equal(out.type, 'float16', output)
        const p = compareOutputs(ref.toFloat32(), halfArrayToFloat32(out.data as Uint16Array))
        assert.ok(p.cosine >= 0.9999 && p.nonFinite === 0, `${output}: cosine ${p.cosine}`)
      }
    })
  }
})

/** x, m: float inputs [2, 4]; y = x + (1 - m)·fill + x·scale, optionally softmaxed. */
function handBuilt(fill: number, softmax: boolean): Model {
  const g = new Graph()
  const model = new Model(g)
  const input = (name: string) => {
    const v = g.addValue(name)
    v.setTensorType(FLOAT, [2, 4])
    g.inputs.push(v)
    return v
  }
  const x = input('x')
  const m = input('m')
  const c = (name: string, values: number[]) => g.addInitializer(name, Tensor.fromFloat32(values.length === 1 ? [] : [values.length], Float32Array.from(values)))
  const op = (type: string, inputs: Value[], attrs = [] as ReturnType<typeof attrInt>[]) =>
    g.addNode(type, inputs, [`${type}_${g.nodes.length}`], { name: `${type}_${g.nodes.length}`, attrs }).outputs[0]!
  const penalty = op('Mul', [op('Sub', [c('one', [1]), m]), c('fill', [fill])])
  const scaled = op('Mul', [x, c('scale', [1e-9, 2, 1e-8, 5e-8])])
  let y = op('Add', [op('Add', [x, penalty]), scaled])
  if (softmax) y = op('Softmax', [y], [attrInt('axis', -1)])
  g.renameValue(y, 'y')
  y.setTensorType(FLOAT, [2, 4])
  g.outputs.push(y)
  return model
}

const X = Float32Array.from([0.5, -0.25, 0.75, 1, -1, 0.125, 0.3, -0.6])
const M = Float32Array.from([1, 1, 0, 1, 1, 0, 0, 1])

async function runHandBuilt(model: Model, half = false): Promise<Float32Array> {
  const ort = await loadOrt()
  const session = await createSession(modelBytes(model))
  const feed = (a: Float32Array) =>
    half ? new ort.Tensor('float16', Uint16Array.from(a, toHalfBits), [2, 4]) : new ort.Tensor('float32', a, [2, 4])
  const y = (await session.run({ x: feed(X), m: feed(M) })).y!
  return half ? halfArrayToFloat32(y.data as Uint16Array) : (y.data as Float32Array)
}

function expected(fill: number): number[] {
  const scale = [1e-9, 2, 1e-8, 5e-8]
  return [...X].map((x, i) => x + (1 - M[i]!) * fill + x * scale[i % 4]!)
}

/** y against the clamped fill: kept positions within float16 rounding, filled ones within one step at 65504. */
function assertNearClamped(y: Float32Array): void {
  const want = expected(-65504)
  y.forEach((v, i) => {
    assert.ok(Number.isFinite(v), `y[${i}] = ${v}`)
    assert.ok(Math.abs(v - want[i]!) <= (M[i] ? 2e-3 : 32), `y[${i}] = ${v}, want ${want[i]}`)
  })
}

function assertSoftmaxOf(y: Float32Array, logits: number[]): void {
  for (let r = 0; r < 2; r++) {
    const row = logits.slice(r * 4, r * 4 + 4)
    const exp = row.map((v) => Math.exp(v - Math.max(...row)))
    const sum = exp.reduce((a, b) => a + b)
    exp.forEach((e, k) => assert.ok(Math.abs(y[r * 4 + k]! - e / sum) < 2e-3, `row ${r}: ${[...y.slice(r * 4, r * 4 + 4)]}`))
  }
}

describe('fp16 on a hand-built graph', () => {
  it('clamps a constant beyond float16 range and counts it, with no NaN where 0·fill meets', async () => {
    const model = handBuilt(-1e9, false)
    const stats = await convert(model)
    assert.equal(stats.clamped, 1)
    assert.equal(stats.underflowed, 2, '1e-9 and 1e-8 become 0; 5e-8 is a float16 subnormal')
    assert.equal(init(model, 'fill').dtype, FLOAT16)
    assert.equal(init(model, 'fill').toFloat32()[0], -65504)
    assertNearClamped(await runHandBuilt(model))
  })

  it('keeps a mask fill that reaches a Softmax float32 and unclamped', async () => {
    const model = handBuilt(-1e9, true)
    const stats = await convert(model)
    assert.equal(stats.clamped, 0)
    assert.equal(init(model, 'fill').dtype, FLOAT)
    assert.equal(init(model, 'one').dtype, FLOAT)
    const softmax = nodesOf(model, 'Softmax')[0]!
    assert.equal(softmax.inputs[0]!.producer!.inputs[1]!.elemType, FLOAT, 'the mask joins in float32')
    assertSoftmaxOf(await runHandBuilt(model), expected(-1e9))
  })

  it('keeps Softmax float32 off a mask path too; a fill within range goes float16', async () => {
    const model = handBuilt(-1000, true)
    const stats = await convert(model)
    assert.equal(stats.clamped, 0)
    assert.equal(init(model, 'fill').dtype, FLOAT16)
    const softmax = nodesOf(model, 'Softmax')[0]!
    assert.equal(softmax.inputs[0]!.elemType, FLOAT)
    assert.equal(softmax.inputs[0]!.producer!.opType, 'Cast')
    assertSoftmaxOf(await runHandBuilt(model), expected(-1000))
  })

  it('stores a tensor read in both precisions once per precision', async () => {
    const g = new Graph()
    const model = new Model(g)
    // 128 elements: more than a node may keep float32 for free, so the Muls run float16.
    const x = g.addValue('x')
    x.setTensorType(FLOAT, [3, 128])
    g.inputs.push(x)
    const w = g.addInitializer('w', Tensor.fromFloat32([128], Float32Array.from({ length: 128 }, (_, i) => 1 + i / 128)))
    const b = g.addInitializer('b', Tensor.fromFloat32([128], new Float32Array(128)))
    let h = x
    for (let i = 0; i < 3; i++) {
      h = g.addNode('Mul', [h, w], [`mul${i}`]).outputs[0]!
      h = g.addNode('LayerNormalization', [h, w, b], [`ln${i}`], { attrs: [attrInt('axis', -1), attrFloat('epsilon', 1e-5)] }).outputs[0]!
    }
    g.renameValue(h, 'y')
    h.setTensorType(FLOAT, [3, 128])
    g.outputs.push(h)
    const stats = await convert(model)
    assert.equal(stats.tensorsConverted, 1)
    assert.equal(stats.bytesSaved, -256, 'the float16 copy is added, the float32 one kept')
    const ws = g.initializers.filter((v) => v.name.startsWith('w'))
    assert.deepEqual(ws.map((v) => `${v.name}:${v.const!.dtype}:${v.consumers.length}`).sort(), ['w:1:3', 'w_fp16:10:3'])
    // x → fp16 once; each LayerNorm's input → fp32 and output → fp16 (the last feeds only y).
    assert.equal(stats.castsInserted, 1 + 3 + 2)
    assert.equal(stats.nodesKeptFp32, 3)
  })

  it('with keepIoTypes false takes and returns float16', async () => {
    const model = handBuilt(-1e9, false)
    const stats = await convert(model, { keepIoTypes: false })
    assert.equal(stats.castsInserted, 0)
    assert.ok([...model.graph.inputs, ...model.graph.outputs].every((v) => v.elemType === FLOAT16))
    assertNearClamped(await runHandBuilt(model, true))
  })
})

describe('fp16 on ops it does not know', () => {
  it('keeps a node of unknown output type float32, and its readers, with a warning', async () => {
    const g = new Graph()
    const model = new Model(g)
    const x = g.addValue('x')
    x.setTensorType(FLOAT, [2, 128])
    g.inputs.push(x)
    const w = g.addInitializer('w', Tensor.fromFloat32([128], new Float32Array(128).fill(0.5)))
    const custom = g.addNode('Mystery', [g.addNode('Mul', [x, w], ['a']).outputs[0]!], ['b'], { domain: 'example.custom' })
    const reader = g.addNode('Mul', [custom.outputs[0]!, w], ['y'])
    g.outputs.push(reader.outputs[0]!)
    const warnings: string[] = []
    const stats = await convert(model, {}, (m) => warnings.push(m))
    assert.equal(g.values.get('a')!.elemType, FLOAT16, 'the first Mul runs float16')
    assert.equal(custom.inputs[0]!.elemType, FLOAT, 'the custom op reads float32 through a Cast')
    assert.equal(reader.inputs[1]!.const!.dtype, FLOAT, 'the reader of an untyped value keeps float32')
    assert.equal(stats.nodesKeptFp32, 2)
    assert.equal(warnings.length, 1)
    assert.match(warnings[0]!, /unknown type/)
  })
})

const torchExport = path.join(fixtureDir('albert-model'), 'export', 'model.onnx')

describe('fp16 on a torch.onnx.export graph', { skip: !fs.existsSync(torchExport) && 'no fixtures/albert-model/export/model.onnx' }, () => {
  it('converts weights and Constant nodes, keeps the -inf mask path float32, matches the golden', async () => {
    const model = readModelFile(torchExport)
    const stats = await convert(model)
    assert.equal(stats.clamped, 0)
    for (const v of model.graph.initializers) {
      if (v.const!.dtype !== FLOAT && v.const!.dtype !== FLOAT16) continue
      assert.equal(v.const!.dtype, /LayerNorm|layer_norm/.test(v.name) ? FLOAT : FLOAT16, v.name)
    }
    const constants = nodesOf(model, 'Constant').map((n) => n.attr('value')?.t).filter((t) => t && (t.dtype === FLOAT || t.dtype === FLOAT16))
    const infinite = constants.filter((t) => t!.toFloat32().some((x) => x === -Infinity))
    assert.ok(infinite.length > 0 && infinite.every((t) => t!.dtype === FLOAT), 'the -inf fills stay float32')
    assert.ok(constants.some((t) => t!.dtype === FLOAT16), 'scale constants become float16')
    for (const n of [...nodesOf(model, 'Softmax'), ...nodesOf(model, 'LayerNormalization')]) assert.equal(n.inputs[0]!.elemType, FLOAT)
    await assertParity(model, 'albert-model')
  })
})
