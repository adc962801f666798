/** The ONNX codec: wire primitives, lossless round trips, external data, hostile bytes. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { ProtoReader, ProtoWriter, concatPieces } from '../src/protobuf/wire.js'
import { decodeModel, DecodeError } from '../src/onnx/decode.js'
import { encodeModel } from '../src/onnx/encode.js'
import { modelBytes, readModelFile, writeModelFile } from '../src/onnx/file.js'
import { openCheckpoint } from '../src/checkpoint/index.js'
import { buildAlbert } from '../src/builder/albert.js'
import { createSession, runSession } from '../src/runtime/session.js'
import { compareOutputs } from '../src/verify/compare.js'
import { UserError } from '../src/util/errors.js'
import { fixtureDir, fixtureInputs, tempDir } from './support/helpers.js'

function bytesOf(w: ProtoWriter): Uint8Array {
  return concatPieces(w.finish())
}

function buildFixture(name: string) {
  const ckpt = openCheckpoint(fixtureDir(name))
  const task = ckpt.config.architectures[0] === 'AlbertModel' ? 'feature-extraction' : 'fill-mask'
  return buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.dir, configFile: ckpt.configFile }).model
}

describe('protobuf wire format', () => {
  it('round-trips int64 varints, negative and past 2^53', () => {
    const values = [0, 1, 127, 128, 300, 2 ** 31, 2 ** 32 + 5, 2 ** 53 - 1, -1, -(2 ** 40), 9223372036854775807n, -9223372036854775808n]
    const w = new ProtoWriter()
    for (const v of values) w.int64(1, v)
    const r = new ProtoReader(bytesOf(w))
    for (const v of values) {
      assert.deepEqual(r.tag(), [1, 0])
      assert.equal(r.int64(), v)
    }
    assert.ok(r.done)
  })

  it('walks a message field by field, a skipped field coming back whole, tag included', () => {
    const w = new ProtoWriter()
    w.int64(1, 300)
    w.string(2, 'ab')
    w.float(3, 1.5)
    const r = new ProtoReader(bytesOf(w))
    const fields: [number, number, number[]][] = []
    while (r.nextField()) fields.push([r.field, r.wire, Array.from(r.skipField())])
    assert.deepEqual(fields, [
      [1, 0, [8, 172, 2]],
      [2, 2, [18, 2, 97, 98]],
      [3, 5, [29, 0, 0, 192, 63]],
    ])
    assert.equal(r.nextField(), false)
  })

  it('encodes -1 as ten bytes, as protobuf does', () => {
    const w = new ProtoWriter()
    w.int64(1, -1)
    assert.deepEqual(Array.from(bytesOf(w)), [8, 255, 255, 255, 255, 255, 255, 255, 255, 255, 1])
  })

  it('keeps large byte fields by reference', () => {
    const big = new Uint8Array(10_000).fill(3)
    const w = new ProtoWriter()
    w.bytes(9, big)
    assert.ok(w.finish().includes(big))
  })

  it('rejects truncated and oversized fields', () => {
    assert.throws(() => new ProtoReader(Uint8Array.of(0x80)).uint32(), /truncated/)
    assert.throws(() => new ProtoReader(Uint8Array.of(0x0a, 0x05, 1)).bytes(), /past the end/)
    assert.throws(() => new ProtoReader(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)).uint32(), /too large/)
  })
})

describe('ONNX models', () => {
  it('re-encodes its own model byte for byte', () => {
    const bytes = modelBytes(buildFixture('albert-pretraining'))
    assert.deepEqual(Buffer.from(concatPieces(encodeModel(decodeModel(bytes)))), Buffer.from(bytes))
  })

  it('keeps fields it does not model: unknown fields, metadata, doc strings, functions, value_info', () => {
    const model = buildFixture('albert-model')
    model.docString = 'model doc'
    model.graph.docString = 'graph doc'
    model.setMetadata('k', 'v')
    model.graph.nodes[0]!.docString = 'node doc'
    model.functions.push(Uint8Array.of(0x0a, 0x01, 0x66))
    const hidden = model.graph.nodes[5]!.outputs[0]!
    hidden.setTensorType(1, ['batch_size', null, 16])
    // A field number no ONNX version uses, on the model and on a node.
    model.unknown = [Uint8Array.of(0xfa, 0x3e, 0x02, 0x68, 0x69)]
    model.graph.nodes[1]!.unknown = [Uint8Array.of(0xa0, 0x06, 0x07)]
    const again = decodeModel(modelBytes(model))
    assert.equal(again.docString, 'model doc')
    assert.equal(again.graph.docString, 'graph doc')
    assert.deepEqual(again.metadataProps, [{ key: 'k', value: 'v' }])
    assert.equal(again.graph.nodes[0]!.docString, 'node doc')
    assert.deepEqual(again.functions.map((f) => Array.from(f)), [[0x0a, 0x01, 0x66]])
    assert.deepEqual(again.graph.values.get(hidden.name)!.shape, ['batch_size', null, 16])
    assert.deepEqual(again.unknown!.map((u) => Array.from(u)), [[0xfa, 0x3e, 0x02, 0x68, 0x69]])
    assert.deepEqual(again.graph.nodes[1]!.unknown!.map((u) => Array.from(u)), [[0xa0, 0x06, 0x07]])
    assert.deepEqual(Buffer.from(modelBytes(again)), Buffer.from(modelBytes(model)))
  })

  it('writes and reads external data, and onnxruntime runs it', async () => {
    const model = buildFixture('albert-model')
    const dir = tempDir()
    const file = path.join(dir, 'model.onnx')
    const written = writeModelFile(file, model, { externalData: true })
    assert.ok(fs.existsSync(path.join(dir, 'model.onnx_data')))
    const inline = modelBytes(model).byteLength
    assert.ok(written.externalBytes! > 10_000, 'weights went to the data file')
    assert.ok(written.bytes <= inline - 10_000, `the protobuf shrank: ${written.bytes} of ${inline}`)
    const back = readModelFile(file)
    const w = back.graph.values.get('encoder.albert_layer_groups.0.albert_layers.0.ffn.weight')!
    assert.deepEqual(Buffer.from(w.const!.data), Buffer.from(model.graph.values.get(w.name)!.const!.data))
    const inMemory = await runSession(await createSession(modelBytes(model)), fixtureInputs('albert-model'))
    const fromFile = await runSession(await createSession(file), fixtureInputs('albert-model'))
    for (const [name, o] of inMemory) assert.equal(compareOutputs(o.data, fromFile.get(name)!.data).maxAbs, 0)
  })

  it('refuses external data that points outside the model folder or past its file', () => {
    const model = buildFixture('albert-model')
    const dir = tempDir()
    const file = path.join(dir, 'model.onnx')
    writeModelFile(file, model, { externalData: true })
    const data = path.join(dir, 'model.onnx_data')
    fs.truncateSync(data, 100)
    assert.throws(() => readModelFile(file), (e: unknown) => e instanceof UserError && /needs bytes .* of 'model.onnx_data'/.test(e.message))
    const bytes = fs.readFileSync(file)
    fs.writeFileSync(file, Buffer.from(bytes.toString('latin1').replaceAll('model.onnx_data', '../model.onnx_d'), 'latin1'))
    assert.throws(() => readModelFile(file), (e: unknown) => e instanceof UserError && /outside the model's folder/.test(e.message))
  })

  it('rejects garbage and dangling edges with a clear error', () => {
    assert.throws(() => decodeModel(Uint8Array.of(1, 2, 3, 4, 5)), DecodeError)
    const model = buildFixture('albert-model')
    const node = model.graph.nodes[3]!
    const ghost = model.graph.addValue('ghost')
    node.setInput(0, ghost)
    assert.throws(() => decodeModel(modelBytes(model)), /reads 'ghost', which nothing defines/)
  })
})
