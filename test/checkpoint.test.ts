/** Checkpoint folders: sharded safetensors, and what inspect reports about them. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { openCheckpoint } from '../src/checkpoint/index.js'
import { readSafetensors, encodeSafetensors } from '../src/checkpoint/safetensors.js'
import { inspect } from '../src/report/inspect.js'
import { convert } from '../src/pipeline/convert.js'
import { UserError } from '../src/util/errors.js'
import type { Tensor } from '../src/ir/tensor.js'
import { copyFixture, fixtureDir, tempDir } from './support/helpers.js'

/** Split a fixture's weights into two shards with an index, as save_pretrained does for big models. */
function shard(name: string, edit?: (index: { weight_map: Record<string, string> }, shards: Map<string, Tensor>[]) => void): string {
  const dir = copyFixture(name)
  const st = readSafetensors(path.join(dir, 'model.safetensors'))
  fs.rmSync(path.join(dir, 'model.safetensors'))
  const names = [...st.tensors.keys()]
  const shards = [new Map<string, Tensor>(), new Map<string, Tensor>()]
  names.forEach((n, i) => shards[i < names.length / 2 ? 0 : 1]!.set(n, st.tensors.get(n)!))
  const files = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']
  const index = { metadata: { total_size: 0 }, weight_map: {} as Record<string, string> }
  shards.forEach((m, i) => m.forEach((_, n) => (index.weight_map[n] = files[i]!)))
  edit?.(index, shards)
  shards.forEach((m, i) => fs.writeFileSync(path.join(dir, files[i]!), Buffer.concat(encodeSafetensors(m))))
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(index))
  return dir
}

const failsWith = (fn: () => unknown, ...fragments: string[]) =>
  assert.throws(fn, (e: unknown) => e instanceof UserError && fragments.every((f) => e.message.includes(f)))

describe('sharded safetensors', () => {
  it('reads every shard and builds the same model as the single file', async () => {
    const dir = shard('albert-model')
    const sharded = openCheckpoint(dir)
    const single = openCheckpoint(fixtureDir('albert-model'))
    assert.equal(sharded.format, 'safetensors-sharded')
    assert.equal(sharded.weightFiles.length, 2)
    assert.deepEqual([...sharded.weights.keys()].sort(), [...single.weights.keys()].sort())
    for (const [k, e] of single.weights) assert.deepEqual(Buffer.from(sharded.weights.get(k)!.tensor.data), Buffer.from(e.tensor.data))
    const a = await convert({ checkpoint: dir, out: path.join(tempDir(), 'a') })
    const b = await convert({ checkpoint: fixtureDir('albert-model'), out: path.join(tempDir(), 'b') })
    assert.equal(a.artifacts[0]!.bytes, b.artifacts[0]!.bytes)
  })

  it('rejects a tensor the index places in another shard', () => {
    const dir = shard('albert-model', (index) => {
      const first = Object.keys(index.weight_map)[0]!
      index.weight_map[first] = 'model-00002-of-00002.safetensors'
    })
    failsWith(() => openCheckpoint(dir), 'model-0000', 'listed in model.safetensors.index.json but not in this shard')
  })

  it('rejects a missing shard and a shard path leaving the folder', () => {
    const dir = shard('albert-model')
    fs.rmSync(path.join(dir, 'model-00002-of-00002.safetensors'))
    failsWith(() => openCheckpoint(dir), 'model-00002-of-00002.safetensors', 'missing')
    const evil = shard('albert-model', (index) => {
      index.weight_map[Object.keys(index.weight_map)[0]!] = '../../etc/passwd'
    })
    failsWith(() => openCheckpoint(evil), 'model.safetensors.index.json', 'not a file name in the checkpoint folder')
  })

  it('rejects a tensor stored in two shards', () => {
    const dir = shard('albert-model', (_index, shards) => {
      const [name, t] = [...shards[0]!][0]!
      shards[1]!.set(name, t)
    })
    failsWith(() => openCheckpoint(dir), 'model-00002-of-00002.safetensors', 'is also in model-00001-of-00002.safetensors')
  })
})

describe('inspect', () => {
  it('reports the parameter arithmetic of a checkpoint with groups', () => {
    const r = inspect(fixtureDir('albert-pretraining'))
    const c = r.config!
    assert.equal(c.num_hidden_groups, 2)
    const { vocab_size: V, embedding_size: E, hidden_size: H, intermediate_size: I } = c
    const layer = 4 * (H * H + H) + 2 * H + (I * H + I) + (H * I + H) + 2 * H
    const embeddings = V * E + c.max_position_embeddings * E + c.type_vocab_size * E + 2 * E
    const mapping = H * E + H
    const heads = H * H + H + (E * H + E) + 2 * E + V + (2 * H + 2)
    const stored = embeddings + mapping + 4 * layer + heads
    assert.equal(r.parameters.stored, stored)
    assert.equal(r.parameters.unique, stored)
    // 4 layer calls, each running 2 inner layers: 8 layer copies instead of 4 stored
    assert.equal(r.parameters.asIfUnshared, stored + 4 * layer)
    assert.deepEqual(r.parameters.bytesByDtype, { FLOAT: 4 * stored })
    assert.equal(r.factorization!.factorized, V * E + E * H)
    assert.equal(r.factorization!.unfactorized, V * H)
    assert.equal(r.factorization!.saving, V * H - V * E - E * H)
  })

  it('finds the same figures in the converted ONNX file', async () => {
    const out = path.join(tempDir(), 'pt')
    await convert({ checkpoint: fixtureDir('albert-pretraining'), out })
    const ckpt = inspect(fixtureDir('albert-pretraining'))
    const onnx = inspect(path.join(out, 'onnx/model.onnx'))
    assert.equal(onnx.kind, 'onnx')
    assert.equal(onnx.parameters.stored, ckpt.parameters.stored)
    assert.equal(onnx.parameters.asIfUnshared, ckpt.parameters.asIfUnshared)
    assert.deepEqual(
      { V: onnx.factorization!.V, E: onnx.factorization!.E, H: onnx.factorization!.H, found: onnx.factorization!.projectionFound },
      { V: 128, E: 12, H: 24, found: true },
    )
    // the Gemms of both branches of the If on padding (pack-tokens): the unpadded graph and the packed one
    assert.equal(onnx.onnx!.opCounts.Gemm, 2 * 53)
  })
})
