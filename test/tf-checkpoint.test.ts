/**
 * Original Google ALBERT (TF1) checkpoints: the TensorFlow-written fixture albert-pretraining-tf
 * opens with the right config and tensors, converts and matches albert-pretraining's transformers
 * goldens; the name mapping, checkpoint discovery and config translation; and broken bundles
 * (index, table blocks, shards, entries) give one-line errors naming the file.
 */
import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { openCheckpoint, type Checkpoint } from '../src/checkpoint/index.js'
import { findTfCheckpoint, hfNameOf, readTfCheckpoint, tfConfig } from '../src/checkpoint/tf-checkpoint.js'
import { transpose2d as transposeInto } from '../src/ir/evaluate.js'

const transpose2d = (data: Uint8Array, rows: number, cols: number, width: number) => {
  const out = new Uint8Array(data.byteLength)
  transposeInto(data, out, rows, cols, width)
  return out
}
import { FOOTER_BYTES, parseBlock, readFooter } from '../src/checkpoint/tf-table.js'
import { buildAlbert } from '../src/builder/albert.js'
import { resolveTask } from '../src/checkpoint/task.js'
import { modelBytes } from '../src/onnx/file.js'
import { createSession, runSession } from '../src/runtime/session.js'
import { compareOutputs } from '../src/verify/compare.js'
import { crc32c, maskCrc, unmaskCrc } from '../src/util/crc32c.js'
import { UserError } from '../src/util/errors.js'
import { copyFixture, fixtureDir, fixtureGolden, fixtureInputs, loadTensors, tempDir } from './support/helpers.js'
import { encodeFooter, encodeHeader, encodeIndex, readIndexEntries, rewriteIndex, rewriteIndexBlock } from './support/tf-bundle.js'

const NAME = 'albert-pretraining-tf'
const SOURCE = 'albert-pretraining'
const PREFIX = 'model.ckpt-1000'
const TOLERANCE = 1e-5

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** `fn` throws a one-line UserError that starts with `file` and contains every fragment. */
function expectError(fn: () => unknown, file: string, ...fragments: (string | RegExp)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`)
    assert.ok(e.message.startsWith(`${file}:`), `message names ${file}: ${e.message}`)
    assert.ok(!e.message.includes('\n'), 'one line')
    for (const f of fragments) assert.match(e.message, typeof f === 'string' ? new RegExp(escape(f)) : f)
    return true
  })
}

/** A damaged copy of the fixture: `damage` gets the copy's folder and its index path. */
function damaged(damage: (dir: string, index: string) => void): { dir: string; index: string; shard: (i: number) => string } {
  const dir = copyFixture(NAME)
  const index = path.join(dir, `${PREFIX}.index`)
  damage(dir, index)
  return { dir, index, shard: (i) => path.join(dir, `${PREFIX}.data-0000${i}-of-00002`) }
}

describe('CRC-32C', () => {
  it('matches the standard check values', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283)
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa)
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43)
    assert.equal(crc32c(Buffer.from('6789'), crc32c(Buffer.from('12345'))), 0xe3069283, 'continues a CRC')
  })
  it('masks and unmasks', () => {
    for (const c of [0, 1, 0xe3069283, 0xffffffff]) assert.equal(unmaskCrc(maskCrc(c)), c)
    assert.notEqual(maskCrc(0xe3069283), 0xe3069283)
  })
})

describe(`TF checkpoint fixture ${NAME}`, () => {
  let ckpt: Checkpoint
  before(() => {
    ckpt = openCheckpoint(fixtureDir(NAME))
  })

  it('opens as a tf-checkpoint with the config translated', () => {
    assert.equal(ckpt.format, 'tf-checkpoint')
    assert.equal(path.basename(ckpt.configFile), 'albert_config.json')
    assert.deepEqual(ckpt.weightFiles.map((f) => path.basename(f)), [`${PREFIX}.index`, `${PREFIX}.data-00000-of-00002`, `${PREFIX}.data-00001-of-00002`])
    const c = ckpt.config
    assert.deepEqual(
      [c.vocabSize, c.embeddingSize, c.hiddenSize, c.numHiddenLayers, c.numHiddenGroups, c.innerGroupNum, c.numAttentionHeads, c.intermediateSize, c.maxPositionEmbeddings, c.typeVocabSize],
      [128, 12, 24, 4, 2, 2, 3, 48, 48, 2],
    )
    assert.equal(c.hiddenAct, 'gelu_new', "Google's gelu is the tanh form")
    assert.equal(c.layerNormEps, 1e-12)
    assert.deepEqual(c.architectures, ['AlbertForPreTraining'])
    assert.equal(c.raw.model_type, 'albert')
  })

  it("holds exactly albert-pretraining's tensors, byte for byte (kernels transposed back)", () => {
    const hf = loadTensors(path.join(fixtureDir(SOURCE), 'model.safetensors'))
    assert.deepEqual([...ckpt.weights.keys()].sort(), [...hf.keys()].sort())
    for (const [name, t] of hf) {
      const got = ckpt.weights.get(name)!.tensor
      assert.deepEqual(got.dims, t.dims, name)
      assert.ok(Buffer.from(got.data).equals(Buffer.from(t.data)), `${name} bytes`)
    }
  })

  it('skips the optimizer slots and global_step', () => {
    const { skipped } = readTfCheckpoint(fixtureDir(NAME), path.join(fixtureDir(NAME), 'albert_config.json'))
    assert.equal(skipped.length, 9)
    assert.ok(skipped.includes('global_step'))
    assert.equal(skipped.filter((n) => /\/adam_[mv]$/.test(n)).length, 8)
    assert.ok(![...ckpt.weights.keys()].some((k) => /adam|global_step/.test(k)))
  })

  it(`converts and matches the ${SOURCE} goldens within ${TOLERANCE}`, async (t) => {
    const task = resolveTask(ckpt.config, undefined, ckpt.configFile)
    assert.equal(task, 'pretraining')
    const built = buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.dir, configFile: ckpt.configFile })
    assert.deepEqual(built.unused, [])
    const session = await createSession(modelBytes(built.model), { optimization: 'disabled' })
    const outputs = await runSession(session, fixtureInputs(NAME))
    const golden = fixtureGolden(SOURCE)
    assert.deepEqual([...outputs.keys()].sort(), ['prediction_logits', 'sop_logits'])
    for (const [name, ref] of golden) {
      const got = outputs.get(name)!
      assert.deepEqual(got.dims, [...ref.dims], name)
      const p = compareOutputs(ref.toFloat32(), got.data)
      t.diagnostic(`${name}: max abs ${p.maxAbs.toExponential(2)}`)
      assert.ok(p.maxAbs <= TOLERANCE, `${name}: max abs ${p.maxAbs} > ${TOLERANCE}`)
    }
  })

  it("carries albert-pretraining's inputs and goldens unchanged", () => {
    for (const f of ['inputs.safetensors', 'golden.safetensors']) {
      assert.ok(fs.readFileSync(path.join(fixtureDir(NAME), f)).equals(fs.readFileSync(path.join(fixtureDir(SOURCE), f))), f)
    }
  })
})

describe('TF → HF names', () => {
  const cases: [string, string, boolean][] = [
    ['bert/embeddings/word_embeddings', 'albert.embeddings.word_embeddings.weight', false],
    ['bert/embeddings/token_type_embeddings', 'albert.embeddings.token_type_embeddings.weight', false],
    ['bert/embeddings/LayerNorm/gamma', 'albert.embeddings.LayerNorm.weight', false],
    ['bert/embeddings/LayerNorm/beta', 'albert.embeddings.LayerNorm.bias', false],
    ['bert/encoder/embedding_hidden_mapping_in/kernel', 'albert.encoder.embedding_hidden_mapping_in.weight', true],
    ['bert/encoder/transformer/group_0/inner_group_0/attention_1/self/query/kernel', 'albert.encoder.albert_layer_groups.0.albert_layers.0.attention.query.weight', true],
    ['bert/encoder/transformer/group_3/inner_group_1/attention_1/self/value/bias', 'albert.encoder.albert_layer_groups.3.albert_layers.1.attention.value.bias', false],
    ['bert/encoder/transformer/group_0/inner_group_0/attention_1/output/dense/kernel', 'albert.encoder.albert_layer_groups.0.albert_layers.0.attention.dense.weight', true],
    ['bert/encoder/transformer/group_0/inner_group_0/LayerNorm/gamma', 'albert.encoder.albert_layer_groups.0.albert_layers.0.attention.LayerNorm.weight', false],
    ['bert/encoder/transformer/group_0/inner_group_0/LayerNorm_1/beta', 'albert.encoder.albert_layer_groups.0.albert_layers.0.full_layer_layer_norm.bias', false],
    ['bert/encoder/transformer/group_0/inner_group_0/ffn_1/intermediate/dense/kernel', 'albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight', true],
    ['bert/encoder/transformer/group_0/inner_group_0/ffn_1/intermediate/output/dense/bias', 'albert.encoder.albert_layer_groups.0.albert_layers.0.ffn_output.bias', false],
    ['bert/pooler/dense/kernel', 'albert.pooler.weight', true],
    ['cls/predictions/transform/dense/kernel', 'predictions.dense.weight', true],
    ['cls/predictions/transform/LayerNorm/gamma', 'predictions.LayerNorm.weight', false],
    ['cls/predictions/output_bias', 'predictions.bias', false],
    ['cls/seq_relationship/output_weights', 'sop_classifier.classifier.weight', false],
    ['cls/seq_relationship/output_bias', 'sop_classifier.classifier.bias', false],
    ['module/bert/pooler/dense/bias', 'albert.pooler.bias', false],
  ]
  for (const [tf, hf, transpose] of cases) {
    it(tf, () => {
      const m = hfNameOf(tf)
      assert.ok(m && m !== 'skip')
      assert.deepEqual([m.hfName, m.transpose], [hf, transpose])
      const layer = /group_(\d+)\/inner_group_(\d+)/.exec(tf)
      assert.deepEqual(m.layer, layer ? { group: Number(layer[1]), inner: Number(layer[2]) } : undefined)
    })
  }
  it('skips optimizer state, rejects what ALBERT does not have', () => {
    for (const n of ['global_step', 'bert/pooler/dense/kernel/adam_m', 'cls/predictions/output_bias/adam_v', 'bert/embeddings/word_embeddings/AdamWeightDecayOptimizer']) assert.equal(hfNameOf(n), 'skip', n)
    for (const n of ['output_weights', 'cls/squad/output_weights', 'bert/pooler/dense/gamma', 'bert/encoder/transformer/group_0/inner_group_0/LayerNorm/kernel', 'bert/encoder/transformer/group_0/inner_group_0/attention_2/self/query/kernel', 'bert/encoder/layer_0/attention/self/query/kernel']) {
      assert.equal(hfNameOf(n), undefined, n)
    }
  })
  it('transposes kernels of any element width', () => {
    const m = Uint32Array.of(1, 2, 3, 4, 5, 6) // (2, 3)
    const t = new Uint32Array(transpose2d(new Uint8Array(m.buffer), 2, 3, 4).buffer)
    assert.deepEqual([...t], [1, 4, 2, 5, 3, 6])
    const h = Uint16Array.of(1, 2, 3, 4, 5, 6)
    assert.deepEqual([...new Uint16Array(transpose2d(new Uint8Array(h.buffer), 3, 2, 2).buffer)], [1, 3, 5, 2, 4, 6])
  })
})

describe('albert_config.json', () => {
  const base = { vocab_size: 30, hidden_size: 8, num_attention_heads: 2, embedding_size: 4, intermediate_size: 16 }
  it("maps Google's activation names (case-insensitive) and ignores unused keys", () => {
    assert.equal(tfConfig({ ...base, hidden_act: 'GELU', down_scale_factor: 1, gap_size: 0 }, 'c.json', 'AlbertModel').hiddenAct, 'gelu_new')
    assert.equal(tfConfig({ ...base }, 'c.json', 'AlbertModel').hiddenAct, 'gelu_new', 'default gelu')
    assert.equal(tfConfig({ ...base, hidden_act: 'relu' }, 'c.json', 'AlbertModel').hiddenAct, 'relu')
    assert.equal(tfConfig({ ...base, hidden_act: 'linear' }, 'c.json', 'AlbertModel').hiddenAct, 'linear')
    const c = tfConfig({ ...base }, 'c.json', 'AlbertForMaskedLM')
    assert.deepEqual([c.layerNormEps, c.typeVocabSize, c.numHiddenLayers, c.architectures[0]], [1e-12, 2, 12, 'AlbertForMaskedLM'])
  })
  it('rejects what Google never wrote', () => {
    expectError(() => tfConfig({ ...base, hidden_act: 'swish' }, 'c.json', 'AlbertModel'), 'c.json', 'hidden_act "swish"')
    expectError(() => tfConfig({ hidden_size: 8 }, 'c.json', 'AlbertModel'), 'c.json', 'vocab_size')
    expectError(() => tfConfig([], 'c.json', 'AlbertModel'), 'c.json', 'not a JSON object')
    expectError(() => tfConfig({ ...base, hidden_size: 9 }, 'c.json', 'AlbertModel'), 'c.json', 'multiple')
  })
})

describe('finding the checkpoint in a folder', () => {
  it("follows the 'checkpoint' file, also when it holds another machine's absolute path", () => {
    const { dir } = damaged((d) => fs.writeFileSync(path.join(d, 'checkpoint'), `model_checkpoint_path: "/train/run7/${PREFIX}"\n`))
    assert.equal(findTfCheckpoint(dir), path.join(dir, `${PREFIX}.index`))
  })
  it('without a checkpoint file: the single index, else the highest step', () => {
    const { dir, index } = damaged((d) => fs.rmSync(path.join(d, 'checkpoint')))
    assert.equal(findTfCheckpoint(dir), index)
    fs.copyFileSync(index, path.join(dir, 'model.ckpt-999.index'))
    fs.copyFileSync(index, path.join(dir, 'model.ckpt-20.index'))
    assert.equal(findTfCheckpoint(dir), index)
    assert.equal(openCheckpoint(dir).weights.size, 80)
    fs.copyFileSync(index, path.join(dir, 'model.ckpt-best.index'))
    expectError(() => findTfCheckpoint(dir), dir, 'several checkpoints')
  })
  it('a checkpoint file naming a missing prefix, or none', () => {
    const { dir } = damaged((d) => fs.writeFileSync(path.join(d, 'checkpoint'), 'model_checkpoint_path: "model.ckpt-5"\n'))
    expectError(() => openCheckpoint(dir), path.join(dir, 'checkpoint'), 'model.ckpt-5.index')
    fs.writeFileSync(path.join(dir, 'checkpoint'), 'nothing here\n')
    expectError(() => openCheckpoint(dir), path.join(dir, 'checkpoint'), 'model_checkpoint_path')
  })
  it('albert_config.json without any checkpoint', () => {
    const dir = tempDir()
    fs.copyFileSync(path.join(fixtureDir(NAME), 'albert_config.json'), path.join(dir, 'albert_config.json'))
    expectError(() => openCheckpoint(dir), dir, 'no TensorFlow checkpoint')
  })
  it('a checkpoint without albert_config.json', () => {
    const { dir } = damaged((d) => fs.rmSync(path.join(d, 'albert_config.json')))
    assert.equal(findTfCheckpoint(dir), path.join(dir, `${PREFIX}.index`))
    // openCheckpoint asks for config.json first (src/checkpoint/index.ts); still one line, naming a file.
    assert.throws(() => openCheckpoint(dir), (e: unknown) => e instanceof UserError && e.message.startsWith(dir) && !e.message.includes('\n'))
  })
})

describe('heads from the variables present', () => {
  it('no cls/ variables: AlbertModel, which builds', () => {
    const { dir } = damaged((_, index) => rewriteIndex(index, (es) => es.filter((e) => !e.name.startsWith('cls/'))))
    const ckpt = openCheckpoint(dir)
    assert.deepEqual(ckpt.config.architectures, ['AlbertModel'])
    const built = buildAlbert(ckpt.config, ckpt.weights, { task: resolveTask(ckpt.config, undefined, ckpt.configFile), where: dir, configFile: ckpt.configFile })
    assert.deepEqual(built.model.graph.outputs.map((o) => o.name), ['last_hidden_state', 'pooler_output'])
  })
  it('cls/predictions only: AlbertForMaskedLM', () => {
    const { dir } = damaged((_, index) => rewriteIndex(index, (es) => es.filter((e) => !e.name.startsWith('cls/seq_relationship/'))))
    assert.deepEqual(openCheckpoint(dir).config.architectures, ['AlbertForMaskedLM'])
  })
})

describe('broken TF checkpoints', () => {
  it('index with a bad magic number', () => {
    const { dir, index } = damaged((_, f) => {
      const b = fs.readFileSync(f)
      b[b.length - 1] ^= 0xff
      fs.writeFileSync(f, b)
    })
    expectError(() => openCheckpoint(dir), index, 'magic')
  })
  it('truncated index', () => {
    const { dir, index } = damaged((_, f) => fs.truncateSync(f, 30))
    expectError(() => openCheckpoint(dir), index, 'truncated: 30 bytes')
    fs.truncateSync(index, 2000)
    expectError(() => openCheckpoint(dir), index, 'magic')
    fs.writeFileSync(index, '')
    expectError(() => openCheckpoint(dir), index, 'truncated: 0 bytes')
  })
  it('footer handle pointing past the file', () => {
    const { dir, index } = damaged((_, f) => {
      const b = fs.readFileSync(f)
      const { metaindex } = readFooter(f, b)
      encodeFooter(metaindex, { offset: 65535, size: 16 }).copy(b, b.length - FOOTER_BYTES)
      fs.writeFileSync(f, b)
    })
    expectError(() => openCheckpoint(dir), index, 'index block at bytes 65535..65551', 'runs past')
  })
  it('index entries pointing outside the data blocks', () => {
    const { dir, index } = damaged((_, f) => rewriteIndexBlock(f, (hs) => hs.map((h) => ({ ...h, offset: 100, size: h.size + 50 }))))
    expectError(() => openCheckpoint(dir), index, 'index entry 0 points at bytes 100..', 'not before the index block')
    rewriteIndexBlock(index, (hs) => hs.map((h) => ({ ...h, offset: 1, size: 40 })))
    expectError(() => openCheckpoint(dir), index, 'data block 0 (bytes 1..41): checksum mismatch')
  })
  it('a flipped byte in the index: block checksum', () => {
    const { dir, index } = damaged((_, f) => {
      const b = fs.readFileSync(f)
      b[100] ^= 0x01
      fs.writeFileSync(f, b)
    })
    expectError(() => openCheckpoint(dir), index, 'checksum mismatch')
  })
  it('data shard too short', () => {
    const { dir, shard } = damaged((d) => fs.truncateSync(path.join(d, `${PREFIX}.data-00000-of-00002`), 50_000))
    expectError(() => openCheckpoint(dir), shard(0), 'runs past the end of this 50000-byte shard')
  })
  it('data shard missing', () => {
    const { dir, shard } = damaged((d) => fs.rmSync(path.join(d, `${PREFIX}.data-00001-of-00002`)))
    expectError(() => openCheckpoint(dir), shard(1), 'data shard 1 of 2', 'missing')
  })
  it('a flipped byte in a shard: tensor checksum', () => {
    const { dir, shard } = damaged((d) => {
      const f = path.join(d, `${PREFIX}.data-00001-of-00002`)
      const b = fs.readFileSync(f)
      b[10] ^= 0x40
      fs.writeFileSync(f, b)
    })
    expectError(() => openCheckpoint(dir), shard(1), /tensor '[^']+': checksum mismatch/)
  })
  it('a tensor whose size disagrees with its shape', () => {
    const name = 'bert/pooler/dense/kernel'
    const { dir, shard } = damaged((_, index) => rewriteIndex(index, (es) => es.map((e) => (e.name === name ? { ...e, size: e.size - 4 } : e))))
    expectError(() => openCheckpoint(dir), shard(1), `tensor '${name}': FLOAT[24, 24] needs 2304 bytes but the index says 2300`)
  })
  it('an unknown variable', () => {
    const { dir, index } = damaged((_, f) =>
      rewriteIndex(f, (es) => [...es, { ...es.find((e) => e.name === 'cls/seq_relationship/output_bias')!, name: 'output_weights' }]),
    )
    expectError(() => openCheckpoint(dir), index, "variable 'output_weights' not part of an ALBERT pre-training checkpoint")
  })
  it('a layer the config does not have', () => {
    const { dir, index } = damaged((_, f) =>
      rewriteIndex(f, (es) => es.map((e) => ({ ...e, name: e.name.replace('group_1/inner_group_1/', 'group_2/inner_group_1/') }))),
    )
    expectError(() => openCheckpoint(dir), index, 'group_2/inner_group_1', 'num_hidden_groups 2')
  })
  it('a partitioned variable', () => {
    const name = 'bert/embeddings/word_embeddings'
    const { dir, shard } = damaged((_, f) => rewriteIndex(f, (es) => es.map((e) => (e.name === name ? { ...e, slices: 2 } : e))))
    expectError(() => openCheckpoint(dir), shard(0), `tensor '${name}' is a partitioned variable`)
  })
  it('a string tensor where a weight should be', () => {
    const name = 'bert/pooler/dense/bias'
    const { dir, shard } = damaged((_, f) => rewriteIndex(f, (es) => es.map((e) => (e.name === name ? { ...e, tfDtype: 7 } : e))))
    expectError(() => openCheckpoint(dir), shard(1), `tensor '${name}' has TensorFlow dtype 7`)
  })
  it('an entry in a shard the header does not have', () => {
    const { dir, index } = damaged((_, f) => rewriteIndex(f, (es) => es.map((e) => (e.name === 'global_step' ? { ...e, shardId: 2 } : e))))
    expectError(() => openCheckpoint(dir), index, 'shard 2, but the bundle has 2')
  })
  it('Snappy-compressed blocks are refused', () => {
    const { dir, index } = damaged((_, f) => rewriteIndex(f, (es) => es, { compression: 1 }))
    expectError(() => openCheckpoint(dir), index, 'Snappy-compressed')
  })
  it('big-endian bundles and newer formats are refused', () => {
    const { dir, index } = damaged((_, f) => rewriteIndex(f, (es) => es, { header: encodeHeader(2, 1) }))
    expectError(() => openCheckpoint(dir), index, 'big-endian')
    rewriteIndex(index, (es) => es, { header: encodeHeader(2, 0, 2) })
    expectError(() => openCheckpoint(dir), index, 'newer reader')
  })
  it('several data blocks and restart points read back', () => {
    const { dir, index } = damaged((_, f) => rewriteIndex(f, (es) => es, { blockEntries: 7, restartInterval: 3 }))
    assert.ok(readFileBlocks(index) > 10)
    assert.equal(openCheckpoint(dir).weights.size, 80)
  })
  it('keys out of order', () => {
    const { dir, index } = damaged(() => {})
    const { numShards, entries } = readIndexEntries(index)
    const swapped = [...entries]
    ;[swapped[20], swapped[21]] = [swapped[21]!, swapped[20]!]
    fs.writeFileSync(index, encodeIndex(numShards, swapped, { sort: false, blockEntries: 21 }))
    expectError(() => openCheckpoint(dir), index, `key "${entries[20]!.name}" in data block 1`, `is not after "${entries[21]!.name}"`)
  })
  it('a malformed entry protobuf', () => {
    const { dir, index } = damaged((_, f) => rewriteIndex(f, (es) => es.map((e) => (e.name === 'global_step' ? { ...e, shape: [-1] } : e))))
    expectError(() => openCheckpoint(dir), index, "entry for \"global_step\"", 'out of range')
  })
})

/** How many data blocks a table's index block lists. */
function readFileBlocks(file: string): number {
  const bytes = fs.readFileSync(file)
  const { index } = readFooter(file, bytes)
  return parseBlock(file, bytes.subarray(index.offset, index.offset + index.size), 'index block').length
}
