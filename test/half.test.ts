/** Half-precision checkpoints: read exactly, upcast for fp32 work, and not rounded twice for fp16. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { openCheckpoint } from '../src/checkpoint/index.js'
import { DataType } from '../src/ir/dtype.js'
import { runPasses } from '../src/passes/pass.js'
import { passByName } from '../src/passes/index.js'
import { buildFixture, fixtureDir, parityWithGolden } from './support/helpers.js'

describe('half-precision checkpoints', () => {
  for (const [name, dtype] of [
    ['albert-model-f16', DataType.FLOAT16],
    ['albert-seqcls-bf16', DataType.BFLOAT16],
  ] as const) {
    it(`${name}: stored as ${DataType[dtype]}, converted exactly`, async () => {
      const ckpt = openCheckpoint(fixtureDir(name))
      assert.ok([...ckpt.weights.values()].every((e) => e.tensor.dtype === dtype))
      const model = buildFixture(name)
      assert.ok(model.graph.initializers.every((v) => v.const!.dtype !== dtype), 'upcast to float32 for the fp32 graph')
      for (const [k, v] of await parityWithGolden(model, name)) assert.ok(v.maxAbs <= 1e-5, `${k}: ${v.maxAbs}`)
    })
  }

  it('keeps an F16 checkpoint’s own half values in the fp16 model (rounded once, by the checkpoint)', async () => {
    const ckpt = openCheckpoint(fixtureDir('albert-model-f16'))
    const model = buildFixture('albert-model-f16')
    await runPasses(model, [passByName('fp16')])
    const name = 'encoder.albert_layer_groups.0.albert_layers.0.ffn.weight'
    const fp16 = model.graph.values.get(name)!.const!
    assert.equal(fp16.dtype, DataType.FLOAT16)
    assert.deepEqual(Buffer.from(fp16.data), Buffer.from(ckpt.weights.get(name)!.tensor.data))
  })
})
