/** What the built graph holds: one initializer per checkpoint tensor, shared across layer calls. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { openCheckpoint } from '../src/checkpoint/index.js'
import { buildAlbert } from '../src/builder/albert.js'
import { resolveTask } from '../src/checkpoint/task.js'
import { modelBytes, readModelFile } from '../src/onnx/file.js'
import { convert } from '../src/pipeline/convert.js'
import { fixtureDir, tempDir } from './support/helpers.js'
import { ALBERT_BASE, writeSyntheticCheckpoint } from './support/synthetic.js'

function build(name: string) {
  const ckpt = openCheckpoint(fixtureDir(name))
  const task = resolveTask(ckpt.config, undefined, ckpt.configFile)
  return { ckpt, ...buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.dir, configFile: ckpt.configFile }) }
}

/** Initializers named after checkpoint tensors (the rest are small constants the builder adds). */
function weightInitializers(model: ReturnType<typeof build>['model'], names: Iterable<string>) {
  const set = new Set(names)
  return model.graph.initializers.filter((v) => set.has(v.name))
}

describe('graph structure', () => {
  it('uses only standard-domain ops at opset 17', () => {
    const { model } = build('albert-pretraining')
    assert.deepEqual(model.opsetImports, [{ domain: '', version: 17 }])
    assert.ok(model.graph.nodes.every((n) => n.domain === ''))
    assert.equal(model.graph.nodes.filter((n) => n.opType === 'LayerNormalization').length, 1 + 4 * 2 * 2 + 1)
  })

  it('stores each checkpoint tensor once and every other initializer is a small constant', () => {
    for (const name of ['albert-model', 'albert-mlm', 'albert-pretraining', 'albert-qa', 'albert-mc']) {
      const { ckpt, model, unused } = build(name)
      const weights = weightInitializers(model, ckpt.weights.keys())
      assert.equal(weights.length + unused.length, ckpt.weights.size, `${name}: every tensor used once or reported unused`)
      for (const v of model.graph.initializers) {
        if (!ckpt.weights.has(v.name)) assert.ok(v.const!.size <= 4, `${name}: extra initializer ${v.name} is a small constant`)
      }
    }
  })

  it('runs each group as many times as transformers does: groups 2 × inner 2 over 4 layers', () => {
    const { model } = build('albert-pretraining')
    for (const g of [0, 1]) {
      for (const j of [0, 1]) {
        const q = model.graph.values.get(`albert.encoder.albert_layer_groups.${g}.albert_layers.${j}.attention.query.weight`)!
        assert.equal(q.consumers.length, 2, `group ${g} inner ${j} query weight read by 2 layer calls`)
        assert.ok(q.consumers.every((n) => n.opType === 'Gemm'))
      }
    }
  })

  it('maps 6 layers onto 3 groups as int(i / (L / G))', () => {
    const { model } = build('albert-qa')
    for (const g of [0, 1, 2]) {
      const w = model.graph.values.get(`albert.encoder.albert_layer_groups.${g}.albert_layers.0.ffn.weight`)!
      assert.equal(w.consumers.length, 2)
    }
  })

  it('ties the MLM decoder to the word embeddings: one tensor, read by the lookup and the decoder', () => {
    const { model } = build('albert-mlm')
    const emb = model.graph.values.get('albert.embeddings.word_embeddings.weight')!
    assert.deepEqual(emb.consumers.map((n) => n.opType).sort(), ['Gather', 'Gemm'])
    assert.ok(!model.graph.values.has('predictions.decoder.weight'))
    const bytes = modelBytes(model).byteLength
    const total = model.graph.initializers.reduce((n, v) => n + v.const!.byteLength, 0)
    assert.ok(bytes < total + 40_000, 'no second copy of the embedding table in the file')
  })

  it('declares dynamic batch and sequence axes named as Optimum names them', () => {
    const { model } = build('albert-mc')
    for (const v of model.graph.inputs) assert.deepEqual(v.shape, ['batch_size', 'num_choices', 'sequence_length'])
    assert.deepEqual(model.graph.outputs[0]!.shape, ['batch_size', 'num_choices'])
    const { model: m2 } = build('albert-tokcls')
    assert.deepEqual(m2.graph.outputs[0]!.shape, ['batch_size', 'sequence_length', 5])
  })
})

describe('albert-base-shaped checkpoint', () => {
  it("converts to one initializer per checkpoint tensor, file within 1% of the checkpoint", async () => {
    const dir = writeSyntheticCheckpoint(path.join(tempDir(), 'base'), ALBERT_BASE)
    const out = path.join(tempDir(), 'out')
    const report = await convert({ checkpoint: dir, out })
    const ckptBytes = fs.statSync(path.join(dir, 'model.safetensors')).size
    const onnxBytes = fs.statSync(path.join(out, 'onnx/model.onnx')).size
    assert.ok(Math.abs(onnxBytes / ckptBytes - 1) < 0.01, `onnx ${onnxBytes} vs checkpoint ${ckptBytes}`)
    const model = readModelFile(path.join(out, 'onnx/model.onnx'))
    const ckpt = openCheckpoint(dir)
    const names = new Set(ckpt.weights.keys())
    const prefixed = model.graph.initializers.filter((v) => names.has(v.name.replace(/^albert\./, '')))
    assert.equal(prefixed.length, 25)
    assert.equal(ckpt.weights.size, 25)
    assert.equal(report.parameters.model.stored, 11_683_584)
    assert.equal(report.parameters.model.asIfUnshared, 89_650_176)
    assert.equal(report.parameters.checkpoint.asIfUnshared, 89_650_176)
  })
})
