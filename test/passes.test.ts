/**
 * Cleanup and compression passes on small graphs: structure (ops, initializers, bytes) and numbers
 * (onnxruntime outputs against transformers goldens), on albertkit's graphs and on torch exports.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { DataType } from '../src/ir/dtype.js'
import { Graph, Model, attrInt, cloneModel, type Value } from '../src/ir/graph.js'
import { Tensor } from '../src/ir/tensor.js'
import { GraphBuilder } from '../src/ir/builder.js'
import { decodeModel } from '../src/onnx/decode.js'
import { encodeModel } from '../src/onnx/encode.js'
import { concatPieces } from '../src/protobuf/wire.js'
import { modelBytes, readModelFile } from '../src/onnx/file.js'
import { runPasses, graphFigures, type PassOptions } from '../src/passes/pass.js'
import { passByName } from '../src/passes/index.js'
import { pack4 } from '../src/passes/quantize-int4.js'
import { int8Weight as quantizeInt8 } from '../src/passes/quant-common.js'
import { createSession, runSession } from '../src/runtime/session.js'
import { compareOutputs } from '../src/verify/compare.js'
import { buildFixture, fixtureDir, fixtureInputs, parityWithGolden } from './support/helpers.js'

const exportOf = (name: string, kind = 'export') => path.join(fixtureDir(name), kind, 'model.onnx')

async function apply(model: Model, names: string[], opts: PassOptions = {}) {
  return runPasses(model, names.map(passByName), opts)
}

const initializersOf = (m: Model, dtype: DataType) => m.graph.initializers.filter((v) => v.const!.dtype === dtype)
const countOps = (m: Model, op: string) => m.graph.nodes.filter((n) => n.opType === op).length
const floatMatrices = (m: Model) => m.graph.initializers.filter((v) => v.const!.dtype === DataType.FLOAT && v.const!.dims.length === 2)
const elements = (vs: Value[]) => vs.reduce((n, v) => n + v.const!.size, 0)
/** One int8 byte per element of every float matrix the model held: each stored exactly once. */
function assertEachMatrixOnceInt8(m: Model, matrixElements: number): void {
  assert.deepEqual(floatMatrices(m).map((v) => v.name), [], 'no float copy of any matrix stays')
  assert.equal(elements(initializersOf(m, DataType.INT8)), matrixElements)
}

describe('third-party exports', () => {
  for (const [name, kind] of [
    ['albert-model', 'export'],
    ['albert-model', 'export-unshared'],
    ['albert-mlm', 'export'],
    ['albert-seqcls', 'export'],
  ] as const) {
    it(`${name}/${kind} re-encodes byte for byte`, () => {
      const bytes = fs.readFileSync(exportOf(name, kind))
      assert.deepEqual(Buffer.from(concatPieces(encodeModel(decodeModel(bytes)))), bytes)
    })
  }
})

describe('dedup', () => {
  it('brings an unrolled export (one copy of the shared layer per call) back to one copy', async () => {
    const unshared = readModelFile(exportOf('albert-model', 'export-unshared'))
    const plain = readModelFile(exportOf('albert-model'))
    assert.ok(graphFigures(unshared).initializerBytes > 2 * graphFigures(plain).initializerBytes)
    const [r] = await apply(unshared, ['dedup'])
    await apply(plain, ['dedup'])
    assert.ok((r!.stats.merged as number) >= 32, `merged ${r!.stats.merged}`)
    assert.equal(graphFigures(unshared).initializerBytes, graphFigures(plain).initializerBytes)
    assert.equal(graphFigures(unshared).initializers, graphFigures(plain).initializers)
    const p = await parityWithGolden(unshared, 'albert-model')
    for (const [k, v] of p) assert.ok(v.maxAbs < 1e-5, `${k}: ${v.maxAbs}`)
  })

  it("restores the MLM tie torch's constant folding broke: the decoder's transposed copy goes", async () => {
    const m = readModelFile(exportOf('albert-mlm'))
    const embedding = () => m.graph.initializers.filter((v) => v.const!.size === 200 * 8)
    assert.equal(embedding().length, 2, 'the export holds the table twice')
    const [r] = await apply(m, ['dedup'])
    assert.equal(r!.stats.transposedMerged, 1)
    assert.equal(r!.stats.bytesSaved as number >= 200 * 8 * 4, true)
    assert.equal(embedding().length, 1)
    assert.deepEqual(embedding()[0]!.const!.dims, [200, 8], 'the Gather layout is kept')
    const p = await parityWithGolden(m, 'albert-mlm')
    assert.ok(p.get('logits')!.maxAbs < 1e-5)
  })

  it('merges Constant nodes and equal initializers, and rewires a transposed Gemm weight by transB', async () => {
    const g = new Graph()
    const m = new Model(g)
    const x = g.addValue('x')
    x.setTensorType(DataType.FLOAT, [2, 3])
    g.inputs.push(x)
    const w = Float32Array.from({ length: 12 }, (_, i) => i - 5.5)
    const wt = new Float32Array(12)
    for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) wt[c * 3 + r] = w[r * 4 + c]!
    const a = g.addInitializer('a', Tensor.fromFloat32([3, 4], w))
    const b = g.addInitializer('b', Tensor.fromFloat32([4, 3], wt))
    const c1 = g.addInitializer('c1', Tensor.fromFloat32([4], Float32Array.of(1, 2, 3, 4)))
    const cNode = g.addNode('Constant', [], ['c2'], { name: 'const', attrs: [{ name: 'value', type: 4, t: Tensor.fromFloat32([4], Float32Array.of(1, 2, 3, 4)) }] })
    const y1 = g.addNode('MatMul', [x, a], ['y1'], { name: 'mm' }).outputs[0]!
    const y2 = g.addNode('Gemm', [x, b, cNode.outputs[0]!], ['y2'], { name: 'gemm', attrs: [attrInt('transB', 1)] }).outputs[0]!
    const s = g.addNode('Add', [y1, c1], ['s'], { name: 'add' }).outputs[0]!
    const out = g.addNode('Sub', [s, y2], ['out'], { name: 'sub' }).outputs[0]!
    out.setTensorType(DataType.FLOAT, [2, 4])
    g.outputs.push(out)
    const reference = modelBytes(m)
    const [r] = await apply(m, ['dedup'])
    assert.equal(r!.stats.constantNodes, 1)
    assert.equal(r!.stats.merged, 1)
    assert.equal(r!.stats.transposedMerged, 1)
    assert.deepEqual(g.initializers.map((v) => v.name).sort(), ['a', 'c1'])
    const gemm = g.nodes.find((n) => n.opType === 'Gemm')!
    assert.equal(gemm.inputs[1]!.name, 'a')
    assert.equal(gemm.attrInt('transB'), 0)
    const feeds = new Map([['x', Tensor.fromFloat32([2, 3], Float32Array.of(1, -2, 3, 0.5, 4, -1))]])
    const before = await runSession(await createSession(reference), feeds)
    const after = await runSession(await createSession(modelBytes(m)), feeds)
    assert.deepEqual(Array.from(after.get('out')!.data), Array.from(before.get('out')!.data))
  })
})

describe('cse, fold-constants, remove-unused', () => {
  it('cse merges twin shape computations of a torch export and keeps its numbers', async () => {
    const m = readModelFile(exportOf('albert-model'))
    const nodes = m.graph.nodes.length
    const [r] = await apply(m, ['cse'])
    assert.ok((r!.stats.nodesMerged as number) > 10, `merged ${r!.stats.nodesMerged}`)
    assert.equal(m.graph.nodes.length, nodes - (r!.stats.nodesMerged as number) - 0, 'only merged nodes went')
    for (const [k, v] of await parityWithGolden(m, 'albert-model')) assert.ok(v.maxAbs < 1e-5, k)
  })

  it('folds shape arithmetic on a static shape and Constant nodes into initializers', async () => {
    const g = new Graph()
    const m = new Model(g)
    const b = new GraphBuilder(g)
    const x = g.addValue('x')
    x.setTensorType(DataType.FLOAT, [2, 3, 4])
    g.inputs.push(x)
    const shape = b.shape(x)
    const last = b.op('Gather', [shape, b.scalar(2, DataType.INT64)])
    const dims = b.concat([b.ints([-1]), b.op('Unsqueeze', [last, b.ints([0])])])
    const y = b.reshape(x, dims)
    g.renameValue(y, 'y')
    g.outputs.push(y)
    const [r] = await apply(m, ['fold-constants'])
    assert.equal(r!.stats.nodesFolded, 4)
    assert.deepEqual(g.nodes.map((n) => n.opType), ['Reshape'])
    assert.deepEqual(g.nodes[0]!.inputs[1]!.const!.toNumbers(), [-1, 4])
  })

  it('removes dead chains and unused initializers, never graph inputs', async () => {
    const m = buildFixture('albert-model')
    const g = m.graph
    const dead = g.addNode('Relu', [g.addInitializer('unused_w', Tensor.fromFloat32([2], Float32Array.of(1, 2)))], ['dead1'])
    g.addNode('Neg', [dead.outputs[0]!], ['dead2'])
    const before = g.nodes.length
    const [r] = await apply(m, ['remove-unused'])
    assert.equal(r!.stats.nodesRemoved, 2)
    assert.equal(g.nodes.length, before - 2)
    assert.ok(!g.values.has('unused_w'))
    assert.equal(g.inputs.length, 3)
  })

  it('cloneModel copies structure and shares tensor bytes', () => {
    const m = buildFixture('albert-mlm')
    const c = cloneModel(m)
    assert.deepEqual(Buffer.from(modelBytes(c)), Buffer.from(modelBytes(m)))
    c.graph.nodes = c.graph.nodes.slice(0, -1)
    assert.notEqual(c.graph.nodes.length, m.graph.nodes.length)
    const name = 'albert.embeddings.word_embeddings.weight'
    assert.equal(c.graph.values.get(name)!.const, m.graph.values.get(name)!.const)
  })
})

describe('quantize-int8', () => {
  it('quantizes symmetric per channel: scale = max|w|/127 per output channel', () => {
    const w = Tensor.fromFloat32([2, 3], Float32Array.of(1, -2, 0.5, 0.1, 0.3, -0.2))
    const q = quantizeInt8(w, 0, false, false)
    assert.deepEqual(Array.from(q.scale.toFloat32()), [Math.fround(2 / 127), Math.fround(0.3 / 127)])
    assert.deepEqual(q.q.toNumbers(), [64, -127, 32, 42, 127, -85])
    const t = quantizeInt8(w, 0, false, true)
    assert.deepEqual(t.q.dims, [3, 2])
    assert.deepEqual(t.q.toNumbers(), [64, 42, -127, 127, 32, -85])
    assert.deepEqual(quantizeInt8(w, 0, true, false).scale.dims, [])
  })

  it('stores every weight of the MLM model int8 once: shared layers, tied decoder, embeddings', async () => {
    const m = buildFixture('albert-mlm')
    const matrices = elements(floatMatrices(m))
    const [r] = await apply(m, ['quantize-int8'])
    assert.equal(r!.stats.leftFloat, 0)
    assertEachMatrixOnceInt8(m, matrices)
    const table = m.graph.values.get('albert.embeddings.word_embeddings.weight.int8')!
    assert.deepEqual(table.const!.dims, [200, 8])
    assert.equal(table.const!.dtype, DataType.INT8)
    assert.deepEqual(table.consumers.map((n) => n.opType).sort(), ['Gather', 'Transpose'], 'lookup and tied decoder read one table')
    const q = m.graph.values.get('albert.encoder.albert_layer_groups.0.albert_layers.0.attention.query.weight.int8')!
    const layers = JSON.parse(fs.readFileSync(path.join(fixtureDir('albert-mlm'), 'config.json'), 'utf8')).num_hidden_layers
    assert.equal(q.consumers.length, layers, 'one int8 tensor read by every layer call')
    assert.ok(q.consumers.every((n) => n.opType === 'DynamicQuantizeMatMul' && n.domain === 'com.microsoft'))
    // A 16-wide toy loses more to per-tensor activation quantization than albert-base does.
    const p = await parityWithGolden(m, 'albert-mlm')
    assert.ok(p.get('logits')!.cosine > 0.998, `cosine ${p.get('logits')!.cosine}`)
  })

  it('with standard ops only: DynamicQuantizeLinear + MatMulInteger, one activation quantizer per input', async () => {
    const m = buildFixture('albert-model')
    await apply(m, ['quantize-int8'], { contribOps: false })
    assert.ok(m.graph.nodes.every((n) => n.domain === ''))
    assert.equal(m.opsetVersion('com.microsoft'), undefined)
    const layers = 3
    // Per layer: q/k/v share one quantized input; dense, ffn, ffn_output one each; plus mapping and pooler.
    assert.equal(countOps(m, 'DynamicQuantizeLinear'), layers * 4 + 2)
    assert.equal(countOps(m, 'MatMulInteger'), layers * 6 + 2)
    for (const [k, v] of await parityWithGolden(m, 'albert-model')) assert.ok(v.cosine > 0.999, `${k} cosine ${v.cosine}`)
  })

  it('keeps argmax of every row on the classification fixtures', async () => {
    for (const name of ['albert-seqcls', 'albert-tokcls', 'albert-qa', 'albert-mc']) {
      const m = buildFixture(name)
      await apply(m, ['quantize-int8'])
      for (const [k, v] of await parityWithGolden(m, name)) {
        assert.equal(v.top1, 1, `${name} ${k}: top-1 agreement ${v.top1}`)
        assert.ok(v.cosine > 0.995, `${name} ${k}: cosine ${v.cosine}`)
      }
    }
  })

  it('per tensor, and keeping op types or nodes in float', async () => {
    const m = buildFixture('albert-model')
    await apply(m, ['quantize-int8'], { perTensor: true })
    assert.ok(initializersOf(m, DataType.INT8).length > 0)
    assert.ok(m.graph.initializers.filter((v) => v.name.endsWith('.scale')).every((v) => v.const!.dims.length === 0))

    const kept = buildFixture('albert-model')
    await apply(kept, ['quantize-int8'], { keepOps: ['Gather'] })
    assert.equal(kept.graph.values.get('embeddings.word_embeddings.weight')?.const?.dtype, DataType.FLOAT, 'the table stays float')
    assert.ok(kept.graph.values.has('encoder.albert_layer_groups.0.albert_layers.0.ffn.weight.int8'))

    const one = buildFixture('albert-model')
    await apply(one, ['quantize-int8'], { keepNodes: ['/pooler/Gemm'] })
    assert.equal(one.graph.values.get('pooler.weight')?.const?.dtype, DataType.FLOAT)
    assert.ok(one.graph.values.has('encoder.embedding_hidden_mapping_in.weight.int8'))
  })

  it('quantizes a plain torch export (weights behind Identity nodes, MatMul + Add) with no type hints', async () => {
    const m = readModelFile(exportOf('albert-model'))
    const [, r] = await apply(m, ['dedup', 'quantize-int8'])
    const reference = buildFixture('albert-model')
    assert.equal(r!.stats.leftFloat, 0)
    assertEachMatrixOnceInt8(m, elements(floatMatrices(reference)))
    assert.equal(countOps(m, 'MatMul'), 6, 'only the attention products stay MatMul')
    for (const [k, v] of await parityWithGolden(m, 'albert-model')) assert.ok(v.cosine > 0.999, `${k} cosine ${v.cosine}`)
  })
})

describe('quantize-int4', () => {
  it('packs 4-bit blocks low nibble first; the largest magnitude maps to −8', () => {
    const w = Float32Array.from({ length: 32 }, (_, i) => (i - 10) / 4)
    const p = pack4(w, 1, 32, 32, false)
    assert.deepEqual(p.b.dims, [1, 1, 16])
    const scale = p.scales.toFloat32()[0]!
    assert.equal(scale, Math.fround(5.25 / -8))
    const codes = Array.from(p.b.data).flatMap((byte) => [byte & 15, byte >> 4])
    assert.equal(codes[31], 0, 'w = 5.25 → −8 → code 0')
    for (let i = 0; i < 32; i++) assert.ok(Math.abs((codes[i]! - 8) * scale - w[i]!) <= Math.abs(scale) / 2 + 1e-6)
    const asym = pack4(w, 1, 32, 32, true)
    assert.ok(asym.zeroPoints)
    const padded = pack4(Float32Array.of(1, 2, 3), 1, 3, 16, false)
    assert.deepEqual(padded.b.dims, [1, 1, 8])
  })

  it('makes MatMulNBits of every linear weight, each once; tables a tied decoder cannot read 4-bit stay int8', async () => {
    const m = buildFixture('albert-mlm')
    const [r] = await apply(m, ['quantize-int4'])
    // the vocabulary's rows (8 values) are not whole blocks of 32, so the tied decoder cannot share 4-bit bytes: int8 (test/int4.test.ts has the 4-bit tables)
    assert.equal(r!.stats.int8, 3)
    assert.equal(r!.stats.tables4bit, 0)
    assert.deepEqual(floatMatrices(m), [])
    const nbits = m.graph.nodes.filter((n) => n.opType === 'MatMulNBits')
    assert.ok(nbits.length > 0 && nbits.every((n) => n.attrInt('bits') === 4 && n.attrInt('block_size') === 32))
    const ffn = m.graph.values.get('albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight.q4')!
    assert.deepEqual(ffn.const!.dims, [32, 1, 16], 'ffn weight [32 out, 16 in]: one block of 32 (padded), 16 bytes')
    // 4 bits on a 16-wide toy model cost more than on albert-base (see the benchmark); a packing
    // or layout mistake gives cosines near 0.
    const p = await parityWithGolden(m, 'albert-mlm')
    assert.ok(p.get('logits')!.cosine > 0.93, `cosine ${p.get('logits')!.cosine}`)
  })

  it('block size 16 and asymmetric blocks run and stay close', async () => {
    const m = buildFixture('albert-model')
    await apply(m, ['quantize-int4'], { blockSize: 16, asymmetric: true })
    assert.ok(m.graph.nodes.some((n) => n.opType === 'MatMulNBits' && n.inputs[3]))
    for (const [k, v] of await parityWithGolden(m, 'albert-model')) assert.ok(v.cosine > 0.96, `${k} cosine ${v.cosine}`)
  })
})

describe('passes keep the model loadable', () => {
  it('every recipe output runs in onnxruntime with graph optimizations on', async () => {
    for (const passes of [['quantize-int8'], ['quantize-int4'], ['dedup', 'cse', 'fold-constants', 'remove-unused', 'sort-and-name']]) {
      const m = buildFixture('albert-pretraining')
      await apply(m, passes)
      const out = await runSession(await createSession(modelBytes(m), { optimization: 'all' }), fixtureInputs('albert-pretraining'))
      assert.ok([...out.values()].every((o) => o.data.every(Number.isFinite)), passes.join())
    }
  })

  it('leaves no value read before it is written', async () => {
    const m = buildFixture('albert-mc')
    await apply(m, ['quantize-int8', 'sort-and-name'])
    const seen = new Set<Value>([...m.graph.inputs, ...m.graph.initializers])
    for (const n of m.graph.nodes) {
      for (const v of n.inputs) if (v) assert.ok(seen.has(v), `${n} reads ${v.name} before it is written`)
      for (const v of n.outputs) if (v) seen.add(v)
    }
    const names = m.graph.nodes.map((n) => n.name)
    assert.equal(new Set(names).size, names.length, 'node names unique')
    assert.ok(compareOutputs(Float32Array.of(1), Float32Array.of(1)).cosine === 1)
  })
})
