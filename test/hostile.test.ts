/**
 * Hostile input: damaged files of every kind albertkit reads, and a bounded fuzz of byte flips and
 * truncations of valid files and of small hostile shapes (stride-0 views, deflated members, deep
 * nesting, huge APPENDS, absurd config numbers). Every case must end in a clean one-line error
 * (UserError or DecodeError) or a correct result — never an internal error, a hang or a huge
 * allocation; checkpoint readers' messages carry no raw control characters. Outputs appear
 * atomically, also when the process is killed mid-write.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { readSafetensors } from '../src/checkpoint/safetensors.js'
import { parseConfig } from '../src/checkpoint/config.js'
import { openCheckpoint } from '../src/checkpoint/index.js'
import { readTorchBin } from '../src/checkpoint/torch-bin.js'
import { buildAlbert } from '../src/builder/albert.js'
import { decodeModel, DecodeError } from '../src/onnx/decode.js'
import { encodeModel } from '../src/onnx/encode.js'
import { readModelFile } from '../src/onnx/file.js'
import { ProtoWriter, concatPieces } from '../src/protobuf/wire.js'
import { Tensor } from '../src/ir/tensor.js'
import { UserError } from '../src/util/errors.js'
import { encodeSafetensors } from '../src/checkpoint/safetensors.js'
import { BIN, copyFixture, fixtureDir, tempDir } from './support/helpers.js'
import { cpuTimed } from './support/bounded.js'
import { ALBERT_BASE, writeSyntheticCheckpoint } from './support/synthetic.js'
import { CONFIG_LIMITS } from '../src/checkpoint/config.js'
import { appendsCheckpoint, deepSafetensorsCheckpoint, nestedRebuildCheckpoint, stride0Checkpoint, torchCheckpoint } from './support/hostile-inputs.js'
import { deflatedZeros, dictPickle, tensorOps, torchZip } from './support/torch-files.js'

const work = tempDir()
let n = 0
const scratch = (ext: string, bytes: Uint8Array) => {
  const f = path.join(work, `case${n++}${ext}`)
  fs.writeFileSync(f, bytes)
  return f
}

/** The call ends in a result or a clean, one-line, anticipated error. */
function clean<T>(fn: () => T): { ok: true; value: T } | { ok: false; message: string } {
  try {
    return { ok: true, value: fn() }
  } catch (e) {
    if (!(e instanceof UserError || e instanceof DecodeError)) throw new Error(`internal error on hostile input: ${(e as Error).stack}`)
    assert.ok(!e.message.includes('\n'), `one line: ${e.message}`)
    return { ok: false, message: e.message }
  }
}

/** `clean`, for the checkpoint readers: also quick (CPU time) and with file text escaped in the message. */
function cleanBounded<T>(fn: () => T, cpuMs = 2000): ReturnType<typeof clean<T>> {
  const { value: r, cpuMs: used } = cpuTimed(() => clean(fn))
  assert.ok(used < cpuMs, `one case took ${used} ms of CPU`)
  if (!r.ok) assert.ok(!/[\u0000-\u001f\u007f-\u009f]/.test(r.message), `control characters escaped: ${JSON.stringify(r.message)}`)
  return r
}

/** config.json keys → AlbertConfig fields, for the sizes CONFIG_LIMITS bounds. */
const CONFIG_FIELDS = {
  vocab_size: 'vocabSize',
  embedding_size: 'embeddingSize',
  hidden_size: 'hiddenSize',
  num_hidden_layers: 'numHiddenLayers',
  num_hidden_groups: 'numHiddenGroups',
  num_attention_heads: 'numAttentionHeads',
  intermediate_size: 'intermediateSize',
  inner_group_num: 'innerGroupNum',
  max_position_embeddings: 'maxPositionEmbeddings',
  type_vocab_size: 'typeVocabSize',
} as const

/** Small files of the hostile shapes (each readable or cleanly refused), as bases for the fuzz. */
function hostileTorchBases(): Buffer[] {
  const bin = (dir: string) => fs.readFileSync(path.join(dir, 'pytorch_model.bin'))
  const deflatedPkl = dictPickle([['w', tensorOps({ key: '0', numel: 4096, size: [64, 64], stride: [64, 1] })], ['e', tensorOps({ key: '1', numel: 4, size: [4, 256], stride: [1, 0] })]])
  return [
    bin(stride0Checkpoint(path.join(work, 'fuzz-stride0'), 3, 1000)),
    bin(torchCheckpoint(path.join(work, 'fuzz-deflated'), torchZip(deflatedPkl, { 0: deflatedZeros(16384), 1: deflatedZeros(16) }, { deflatePickle: true }))),
    bin(nestedRebuildCheckpoint(path.join(work, 'fuzz-nested'), 20)),
    bin(appendsCheckpoint(path.join(work, 'fuzz-appends'), 1000)),
  ]
}

function rng(seed: number) {
  let s = seed >>> 0
  return (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s % n
  }
}

/** Byte flips, truncations, and 8-byte fields overwritten with absurd sizes. */
function mutate(base: Uint8Array, next: (n: number) => number): Uint8Array {
  const b = Uint8Array.from(base)
  switch (next(4)) {
    case 0: {
      for (let k = 1 + next(8); k > 0; k--) b[next(b.length)] = next(256)
      return b
    }
    case 1:
      return b.subarray(0, next(b.length))
    case 2: {
      const at = next(Math.max(1, b.length - 8))
      new DataView(b.buffer).setBigUint64(at, 0xffffffffffn * BigInt(1 + next(1000)), true)
      return b
    }
    default: {
      const at = next(b.length)
      const len = next(64)
      return Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + len)])
    }
  }
}

describe('hostile corpus', () => {
  it('ONNX: tensor dims claiming terabytes, a cycle, a dangling edge, garbage', () => {
    // A TensorProto claiming 2^40 floats with 4 bytes of data, as an initializer of a graph.
    const t = new ProtoWriter()
    t.int64(1, 2 ** 40)
    t.int64(2, 1)
    t.string(8, 'w')
    t.bytes(9, Uint8Array.of(0, 0, 0, 0))
    const g = new ProtoWriter()
    g.message(5, t)
    const m = new ProtoWriter()
    m.int64(1, 8)
    m.message(7, g)
    const huge = clean(() => decodeModel(concatPieces(m.finish())))
    assert.equal(huge.ok, false)
    assert.match((huge as { message: string }).message, /tensor 'w' .*holds 4 bytes, needs 4398046511104/)

    const model = readModelFile(path.join(fixtureDir('albert-model'), 'export', 'model.onnx'))
    const [a, b] = [model.graph.nodes[10]!, model.graph.nodes[11]!]
    a.setInput(0, b.outputs[0]!)
    b.setInput(0, a.outputs[0]!)
    const cyclic = scratch('.onnx', concatPieces(encodeModel(model)))
    const r = clean(() => readModelFile(cyclic))
    assert.equal(r.ok, false)
    assert.match((r as { message: string }).message, /cycle/)
    assert.equal(clean(() => readModelFile(scratch('.onnx', Buffer.from('not a model at all')))).ok, false)
  })

  it('safetensors: offsets pointing terabytes outside the file, and a 2^63 header length', () => {
    const header = JSON.stringify({ w: { dtype: 'F32', shape: [2 ** 38], data_offsets: [0, 2 ** 40] } })
    const len = Buffer.alloc(8)
    len.writeBigUInt64LE(BigInt(header.length))
    const far = scratch('.safetensors', Buffer.concat([len, Buffer.from(header), Buffer.alloc(16)]))
    assert.match((clean(() => readSafetensors(far)) as { message: string }).message, /past the data section/)
    len.writeBigUInt64LE(2n ** 63n)
    const big = scratch('.safetensors', Buffer.concat([len, Buffer.from('{}')]))
    assert.match((clean(() => readSafetensors(big)) as { message: string }).message, /over the 100000000-byte limit/)
  })

  it('weights holding NaN or Infinity are refused by name', () => {
    const dir = copyFixture('albert-model')
    const file = path.join(dir, 'model.safetensors')
    const st = readSafetensors(file)
    const tensors = new Map([...st.tensors].map(([k, v]) => [k, new Tensor(v.dtype, v.dims, Uint8Array.from(v.data))]))
    const w = tensors.get('pooler.weight')!
    new DataView(w.data.buffer, w.data.byteOffset).setFloat32(8, NaN, true)
    fs.writeFileSync(file, Buffer.concat(encodeSafetensors(tensors)))
    const ckpt = openCheckpoint(dir)
    const r = clean(() => buildAlbert(ckpt.config, ckpt.weights, { task: 'feature-extraction', where: ckpt.dir, configFile: ckpt.configFile }))
    assert.match((r as { message: string }).message, /tensor 'pooler\.weight' holds a non-finite value \(NaN\)/)
  })

  it('config.json: absurd sizes are refused or fail against the weights without allocating them', () => {
    for (const cfg of [{ vocab_size: 1e15 }, { hidden_size: -4 }, { num_attention_heads: 'many' }, { layer_norm_eps: 'x' }, { vocab_size: 2 ** 60 }]) {
      const config = clean(() => parseConfig({ model_type: 'albert', ...cfg }, 'config.json'))
      if (!config.ok) continue
      const ckpt = openCheckpoint(fixtureDir('albert-model'))
      const r = clean(() => buildAlbert(config.value, ckpt.weights, { task: 'feature-extraction', where: 'model.safetensors', configFile: 'config.json' }))
      assert.equal(r.ok, false, JSON.stringify(cfg))
    }
  })
})

describe('bounded fuzz', () => {
  const CASES = 1500

  it(`safetensors: ${CASES} mutations of a valid file and of a header nested deep`, () => {
    const base = fs.readFileSync(path.join(fixtureDir('albert-model'), 'model.safetensors'))
    const deep = fs.readFileSync(path.join(deepSafetensorsCheckpoint(path.join(work, 'fuzz-deep'), 200), 'model.safetensors'))
    const next = rng(1)
    let ok = 0
    const file = path.join(work, 'fuzz.safetensors')
    for (let i = 0; i < CASES; i++) {
      fs.writeFileSync(file, mutate(i % 8 === 7 ? deep : base, next))
      if (cleanBounded(() => readSafetensors(file)).ok) ok++
    }
    assert.ok(ok < CASES, 'most mutations are caught')
  })

  it(`ONNX: ${CASES} mutations of a torch export`, () => {
    const base = fs.readFileSync(path.join(fixtureDir('albert-model'), 'export', 'model.onnx'))
    const next = rng(2)
    for (let i = 0; i < CASES; i++) {
      const bytes = mutate(base, next)
      const r = clean(() => decodeModel(bytes))
      if (r.ok) {
        // What decodes must also encode and sort (or report a cycle cleanly).
        concatPieces(encodeModel(r.value))
        try {
          r.value.graph.toposort()
        } catch (e) {
          assert.match((e as Error).message, /cycle/)
        }
      }
    }
  })

  it(`pytorch_model.bin (zip, legacy, stride-0 views, deflated members, nesting, APPENDS): ${CASES} mutations`, () => {
    const real = [path.join(fixtureDir('albert-mlm-bin'), 'pytorch_model.bin'), path.join(fixtureDir('torch-bin'), 'legacy-mlm.bin')].map((f) => fs.readFileSync(f))
    const bases = [...real, ...hostileTorchBases()]
    // Unmutated, the stride-0 and deflated files read; the nested and APPENDS ones are refused.
    const outcomes = bases.slice(2).map((b) => {
      fs.writeFileSync(path.join(work, 'base.bin'), b)
      return cleanBounded(() => readTorchBin(path.join(work, 'base.bin'))).ok
    })
    assert.deepEqual(outcomes, [true, true, false, false])
    const next = rng(4)
    const file = path.join(work, 'fuzz.bin')
    for (let i = 0; i < CASES; i++) {
      fs.writeFileSync(file, mutate(bases[i % bases.length]!, next))
      cleanBounded(() => readTorchBin(file))
    }
  })

  it(`TF checkpoint index and data: ${CASES / 2} mutations`, () => {
    const dir = copyFixture('albert-pretraining-tf')
    const files = fs.readdirSync(dir).filter((f) => f.startsWith('model.ckpt-'))
    const originals = new Map(files.map((f) => [f, fs.readFileSync(path.join(dir, f))]))
    const next = rng(5)
    for (let i = 0; i < CASES / 2; i++) {
      const f = files[i % files.length]!
      fs.writeFileSync(path.join(dir, f), mutate(originals.get(f)!, next))
      cleanBounded(() => openCheckpoint(dir))
      fs.writeFileSync(path.join(dir, f), originals.get(f)!)
    }
  })

  it(`config.json and shard index: ${CASES / 2} mutations each`, () => {
    const config = fs.readFileSync(path.join(fixtureDir('albert-model'), 'config.json'))
    const next = rng(3)
    for (let i = 0; i < CASES / 2; i++) {
      const text = Buffer.from(mutate(config, next)).toString('utf8')
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch {
        continue
      }
      cleanBounded(() => parseConfig(json, 'config.json'))
    }
    // Absurd numbers (and non-numbers) for every size: refused, or within the limits.
    const absurd: unknown[] = [0, -1, 1.5, 257, 65537, 1e9, 1e18, 2 ** 53, 1e308, '12', null, true, [], {}, '\u001b[2J']
    const keys = [...Object.keys(CONFIG_LIMITS), 'num_labels']
    for (let i = 0; i < CASES / 2; i++) {
      const cfg: Record<string, unknown> = { model_type: 'albert' }
      for (let k = 1 + next(3); k > 0; k--) cfg[keys[next(keys.length)]!] = absurd[next(absurd.length)]
      const r = cleanBounded(() => parseConfig(cfg, 'config.json'))
      if (!r.ok) continue
      for (const [key, max] of Object.entries(CONFIG_LIMITS)) {
        const v = r.value[CONFIG_FIELDS[key as keyof typeof CONFIG_LIMITS]]
        assert.ok(v >= 1 && v <= max, `${key} ${v} passed the limit ${max}`)
      }
    }
    const dir = copyFixture('albert-model')
    const st = readSafetensors(path.join(dir, 'model.safetensors'))
    fs.renameSync(path.join(dir, 'model.safetensors'), path.join(dir, 'model-00001-of-00001.safetensors'))
    const index = Buffer.from(JSON.stringify({ weight_map: Object.fromEntries([...st.tensors.keys()].map((k) => [k, 'model-00001-of-00001.safetensors'])) }))
    const indexFile = path.join(dir, 'model.safetensors.index.json')
    for (let i = 0; i < CASES / 2; i++) {
      fs.writeFileSync(indexFile, mutate(index, next))
      cleanBounded(() => openCheckpoint(dir))
    }
  })
})

describe('atomic outputs', () => {
  it('a convert killed mid-write leaves nothing at the output path, and the next run cleans up', async () => {
    const ckpt = writeSyntheticCheckpoint(path.join(work, 'base'), ALBERT_BASE)
    const out = path.join(work, 'killed')
    const child = spawn(process.execPath, [BIN, 'convert', ckpt, '--out', out, '--precision', 'fp32,int8,fp16', '--no-verify'], { stdio: 'ignore' })
    const staged = () => fs.readdirSync(work).some((f) => f.startsWith('.killed.tmp-'))
    for (let i = 0; i < 400 && !staged(); i++) await new Promise((r) => setTimeout(r, 10))
    assert.ok(staged(), 'the run started writing')
    await new Promise((r) => setTimeout(r, 150))
    child.kill('SIGKILL')
    await new Promise((r) => child.on('exit', r))
    assert.ok(!fs.existsSync(out), 'no partial output at the target')
    const again = spawn(process.execPath, [BIN, 'convert', ckpt, '--out', out, '--no-verify'], { stdio: 'ignore' })
    const code = await new Promise((r) => again.on('exit', r))
    assert.equal(code, 0)
    assert.ok(fs.existsSync(path.join(out, 'onnx', 'model.onnx')))
    assert.ok(!staged(), 'the killed run’s temporaries were removed')
  })
})
