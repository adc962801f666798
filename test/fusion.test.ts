/** Fusion passes and the cpu/gpu recipes: op counts, shared packed weights, numbers. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { DataType } from '../src/ir/dtype.js'
import type { Model } from '../src/ir/graph.js'
import { runPasses } from '../src/passes/pass.js'
import { passByName } from '../src/passes/index.js'
import { targetPlans } from '../src/targets/targets.js'
import { buildFixture, fixtureDir, parityWithGolden } from './support/helpers.js'
import { readModelFile } from '../src/onnx/file.js'

const apply = (m: Model, names: string[]) => runPasses(m, names.map(passByName))
const count = (m: Model, op: string) => m.graph.nodes.filter((n) => n.opType === op).length

async function assertParity(m: Model, name: string, tolerance: number) {
  for (const [k, v] of await parityWithGolden(m, name, { optimization: 'all' })) {
    assert.ok(v.maxAbs <= tolerance, `${name} ${k}: max abs ${v.maxAbs}`)
  }
}

describe('fuse-attention', () => {
  it('turns every layer call into one Attention reading one packed QKV weight per shared layer', async () => {
    const m = buildFixture('albert-pretraining')
    const [r] = await apply(m, ['fuse-attention'])
    // 4 layer calls × 2 inner layers; 2 groups × 2 inner layers of weights
    assert.equal(r!.stats.blocksFused, 8)
    assert.equal(r!.stats.packedWeights, 4)
    assert.equal(count(m, 'Attention'), 8)
    assert.equal(count(m, 'Softmax'), 0)
    const packed = m.graph.values.get('albert.encoder.albert_layer_groups.0.albert_layers.0.attention.qkv.weight')!
    assert.deepEqual(packed.const!.dims, [24, 72])
    assert.equal(packed.consumers.length, 2, 'read by both calls of group 0')
    assert.ok(!m.graph.values.has('albert.encoder.albert_layer_groups.0.albert_layers.0.attention.query.weight'), 'the separate weights are gone')
    const attention = m.graph.nodes.find((n) => n.opType === 'Attention')!
    assert.equal(attention.attrInt('num_heads'), 3)
    assert.equal(attention.inputs[3]!.producer!.opType, 'Cast', 'the raw mask, as int32')
    await assertParity(m, 'albert-pretraining', 1e-5)
  })

  it('keeps every head and task right: classification, QA, multiple choice', async () => {
    for (const name of ['albert-seqcls', 'albert-qa', 'albert-mc', 'albert-tokcls']) {
      const m = buildFixture(name)
      const [r] = await apply(m, ['fuse-attention'])
      assert.ok((r!.stats.blocksFused as number) > 0, name)
      await assertParity(m, name, 1e-5)
    }
  })
})

describe('fuse-gelu and fuse-layernorm', () => {
  it('fuses the tanh GELU into FastGelu with the ffn bias', async () => {
    const m = buildFixture('albert-model')
    const [r] = await apply(m, ['fuse-gelu'])
    assert.deepEqual([r!.stats.fastGelu, r!.stats.biasesMoved], [3, 3])
    assert.equal(count(m, 'Tanh'), 1, 'only the pooler tanh is left')
    const gelu = m.graph.nodes.find((n) => n.opType === 'FastGelu')!
    assert.equal(gelu.inputs[1]!.name, 'encoder.albert_layer_groups.0.albert_layers.0.ffn.bias')
    assert.equal(gelu.inputs[0]!.producer!.inputs.length, 2, 'the Gemm lost its bias')
    await assertParity(m, 'albert-model', 1e-5)
  })

  it('fuses the erf GELU into BiasGelu, and gelu_fast into FastGelu', async () => {
    const erf = buildFixture('act-gelu')
    const [r] = await apply(erf, ['fuse-gelu'])
    assert.equal(r!.stats.erfGelu, 2)
    assert.equal(count(erf, 'BiasGelu'), 2)
    await assertParity(erf, 'act-gelu', 1e-5)
    const fast = buildFixture('act-gelu_fast')
    const [f] = await apply(fast, ['fuse-gelu'])
    assert.equal(f!.stats.fastGelu, 2)
    await assertParity(fast, 'act-gelu_fast', 1e-5)
  })

  it('leaves other activations alone', async () => {
    const m = buildFixture('act-relu')
    const [r] = await apply(m, ['fuse-gelu'])
    assert.equal(r!.changed, false)
  })

  it('fuses residual Add + LayerNormalization into SkipLayerNormalization with the bias', async () => {
    const m = buildFixture('albert-model')
    const [r] = await apply(m, ['fuse-layernorm'])
    assert.equal(r!.stats.fused, 6, 'two per layer call')
    assert.equal(r!.stats.biasesMoved, 6)
    assert.equal(count(m, 'LayerNormalization'), 1, 'the embedding LayerNorm has no residual')
    await assertParity(m, 'albert-model', 1e-5)
  })
})

describe('target recipes', () => {
  it('cpu: fused fp32 and int8 with QAttention; every shared weight once', async () => {
    const [fp32, int8] = targetPlans('cpu')
    // pack-tokens runs last before the cleanup (test/pack-tokens.test.ts); the fusions are counted before it
    for (const plan of [fp32!, int8!]) assert.deepEqual(plan.passes.slice(-3), ['pack-tokens', 'remove-unused', 'sort-and-name'])
    const fused = (passes: string[]) => passes.filter((p) => p !== 'pack-tokens')
    const m = buildFixture('albert-mlm')
    await apply(m, fused(fp32!.passes))
    const layers = 2
    assert.equal(count(m, 'Attention'), layers)
    assert.equal(count(m, 'FastGelu'), layers + 1, 'and the MLM head')
    const shapes = m.graph.nodes.filter((n) => n.opType === 'Shape')
    assert.ok(shapes.length <= 2 && shapes.every((n) => n.inputs[0]!.isGraphInput), 'shapes read once, from input_ids, none per layer')
    await assertParity(m, 'albert-mlm', 1e-5)
    const q = buildFixture('albert-mlm')
    await apply(q, fused(int8!.passes))
    assert.equal(count(q, 'QAttention'), layers)
    const packed = q.graph.initializers.filter((v) => v.name.endsWith('qkv.weight.int8'))
    assert.equal(packed.length, 1)
    assert.equal(packed[0]!.consumers.length, layers)
    assert.deepEqual(q.graph.initializers.filter((v) => v.const!.dtype === DataType.FLOAT && v.const!.dims.length === 2).map((v) => v.name), [])
    for (const [k, v] of await parityWithGolden(q, 'albert-mlm')) assert.ok(v.cosine > 0.998, `${k}: ${v.cosine}`)
  })

  it('gpu: fused fp16 runs on the CPU provider with fp32 inputs and outputs', async () => {
    const [, fp16] = targetPlans('gpu')
    const m = buildFixture('albert-seqcls')
    await apply(m, fp16!.passes)
    assert.ok(count(m, 'Attention') > 0 && count(m, 'SkipLayerNormalization') > 0)
    assert.equal(m.graph.values.get('albert.encoder.albert_layer_groups.0.albert_layers.0.attention.qkv.weight')!.const!.dtype, DataType.FLOAT16)
    assert.equal(m.graph.outputs[0]!.elemType, DataType.FLOAT)
    for (const [k, v] of await parityWithGolden(m, 'albert-seqcls')) assert.ok(v.cosine > 0.9999, `${k}: ${v.cosine}`)
  })

  it('fuses a torch export too: scaled Q and K, the boolean mask, the NaN guard after Softmax', async () => {
    const m = readModelFile(path.join(fixtureDir('albert-model'), 'export', 'model.onnx'))
    await apply(m, targetPlans('cpu')[0]!.passes)
    assert.equal(count(m, 'Attention'), 3)
    assert.equal(count(m, 'FastGelu'), 3)
    assert.equal(count(m, 'Softmax'), 0)
    const mask = m.graph.nodes.find((n) => n.opType === 'Attention')!.inputs[3]!
    assert.equal(mask.producer!.inputs[0]!.name, 'attention_mask', 'the raw mask input')
    await assertParity(m, 'albert-model', 1e-5)
    const q = readModelFile(path.join(fixtureDir('albert-model'), 'export', 'model.onnx'))
    await apply(q, targetPlans('cpu')[1]!.passes)
    assert.equal(count(q, 'QAttention'), 3)
    for (const [k, v] of await parityWithGolden(q, 'albert-model')) assert.ok(v.cosine > 0.998, `${k}: ${v.cosine}`)
  })
})
