/**
 * The command line end to end: a good conversion, and malformed input giving one error line on
 * stderr, exit code 3 (2 for a bad flag value), no stack trace and nothing at the output path.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { BIN, copyFixture, fixtureDir, tempDir } from './support/helpers.js'
import { readSafetensors, encodeSafetensors } from '../src/checkpoint/safetensors.js'
import { Tensor } from '../src/ir/tensor.js'
import { readModelFile } from '../src/onnx/file.js'

function albertkit(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

const work = tempDir()

/** Rewrite a fixture's model.safetensors through `edit`. */
function editWeights(dir: string, edit: (m: Map<string, Tensor>) => void): void {
  const file = path.join(dir, 'model.safetensors')
  const st = readSafetensors(file)
  const tensors = new Map([...st.tensors].map(([k, t]) => [k, new Tensor(t.dtype, t.dims, Uint8Array.from(t.data))]))
  edit(tensors)
  fs.writeFileSync(file, Buffer.concat(encodeSafetensors(tensors)))
}

function expectCleanFailure(args: string[], out: string, ...fragments: string[]): void {
  const r = albertkit(...args)
  assert.equal(r.code, 3, `exit code (stderr: ${r.stderr})`)
  const lines = r.stderr.trim().split('\n')
  assert.equal(lines.filter((l) => l.startsWith('Error')).length, 1, `one error line on stderr, got:\n${r.stderr}`)
  assert.match(lines.at(-1)!, /^Error: /, 'the error is the last line (progress lines may come before it)')
  assert.doesNotMatch(r.stderr, /\bat .*\(.*:\d+:\d+\)/, 'no stack trace')
  for (const f of fragments) assert.ok(r.stderr.includes(f), `stderr mentions "${f}": ${r.stderr}`)
  assert.ok(!fs.existsSync(out), 'nothing left at the output path')
  const leftovers = fs.readdirSync(path.dirname(out)).filter((n) => n.includes(path.basename(out)))
  assert.deepEqual(leftovers, [], 'no temporary files left beside it')
}

describe('albertkit convert', () => {
  it('converts the MLM fixture: model, config, tokenizer files, report', () => {
    const out = path.join(work, 'mlm')
    const r = albertkit('convert', fixtureDir('albert-mlm'), '--out', out)
    assert.equal(r.code, 0, r.stderr)
    for (const f of ['onnx/model.onnx', 'config.json', 'spiece.model', 'tokenizer_config.json', 'special_tokens_map.json', 'report.json']) {
      assert.ok(fs.existsSync(path.join(out, f)), `${f} written`)
    }
    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'))
    assert.equal(report.task, 'fill-mask')
    assert.deepEqual(report.outputs, ['logits'])
    assert.equal(report.artifacts[0].path, 'onnx/model.onnx')
    assert.equal(report.artifacts[0].bytes, fs.statSync(path.join(out, 'onnx/model.onnx')).size)
    assert.ok(report.parameters.model.stored > 0)
    assert.equal(report.parameters.model.stored, report.parameters.model.unique, 'no tensor stored twice')
    const model = readModelFile(path.join(out, 'onnx/model.onnx'))
    assert.deepEqual(model.graph.inputs.map((v) => v.name), ['input_ids', 'attention_mask', 'token_type_ids'])
  })

  it('refuses to overwrite an existing output unless --force, and --force replaces only what albertkit wrote', () => {
    const out = path.join(work, 'exists')
    fs.mkdirSync(out)
    fs.writeFileSync(path.join(out, 'keep.txt'), 'x')
    const r = albertkit('convert', fixtureDir('albert-model'), '--out', out)
    assert.equal(r.code, 3)
    assert.match(r.stderr, /already exists and is a folder albertkit did not write/)
    const forced = albertkit('convert', fixtureDir('albert-model'), '--out', out, '--force')
    assert.equal(forced.code, 2, forced.stderr)
    assert.ok(fs.existsSync(path.join(out, 'keep.txt')), 'a folder albertkit did not write is never replaced')
    fs.rmSync(path.join(out, 'keep.txt'))
    assert.equal(albertkit('convert', fixtureDir('albert-model'), '--out', out, '--force').code, 0, 'an empty folder is replaced')
    const again = albertkit('convert', fixtureDir('albert-model'), '--out', out)
    assert.equal(again.code, 3)
    assert.match(again.stderr, /already exists \(pass --force to replace it\)/)
    const replaced = albertkit('convert', fixtureDir('albert-model'), '--out', out, '--force')
    assert.equal(replaced.code, 0, replaced.stderr)
    assert.ok(fs.existsSync(path.join(out, 'onnx/model.onnx')))
  })

  it('--task overrides the architecture', () => {
    const out = path.join(work, 'as-model')
    const r = albertkit('convert', fixtureDir('albert-seqcls'), '--out', out, '--task', 'feature-extraction', '--json')
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(JSON.parse(r.stdout).outputs, ['last_hidden_state', 'pooler_output'])
  })
})

describe('albertkit convert --precision and optimize', () => {
  it('writes the transformers.js file names for every precision asked, and reports each pass', () => {
    const out = path.join(work, 'all-precisions')
    const r = albertkit('convert', fixtureDir('albert-mlm'), '--out', out, '--precision', 'fp32,int8,int4,fp16', '--json', '--no-verify', '--verbose')
    assert.equal(r.code, 0, r.stderr)
    const report = JSON.parse(r.stdout)
    const files = ['onnx/model.onnx', 'onnx/model_int8.onnx', 'onnx/model_q4.onnx', 'onnx/model_fp16.onnx']
    assert.deepEqual(report.artifacts.map((a: { path: string }) => a.path), files)
    for (const a of report.artifacts) {
      assert.equal(a.bytes, fs.statSync(path.join(out, a.path)).size)
      assert.ok(a.passes.length >= 3, 'passes recorded')
    }
    const int8 = report.artifacts[1]
    const q = int8.passes.find((p: { pass: string }) => p.pass === 'quantize-int8')
    assert.ok(q.changed && q.after.initializerBytes < q.before.initializerBytes)
    assert.match(r.stderr, /quantize-int8 +changed +nodes \d+→\d+ +tensors \d+→\d+ +size [\d.]+→[\d.]+ kB +\d+ ms;/)
    assert.ok(report.artifacts[1].bytes < report.artifacts[0].bytes, "the int8 file is the smaller")
  })

  it('rejects an unknown precision and an unknown pass in one line', () => {
    const bad = albertkit('convert', fixtureDir('albert-model'), '--out', path.join(work, 'x1'), '--precision', 'int3')
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /unknown precision 'int3'/)
    const model = path.join(fixtureDir('albert-model'), 'export', 'model.onnx')
    const badPass = albertkit('optimize', model, '--out', path.join(work, 'x.onnx'), '--passes', 'dedup,shrink')
    assert.equal(badPass.code, 2)
    assert.match(badPass.stderr, /unknown pass 'shrink'/)
    assert.ok(!fs.existsSync(path.join(work, 'x.onnx')))
  })

  it('optimize quantizes a torch export and prints what each pass did', () => {
    const model = path.join(fixtureDir('albert-model'), 'export', 'model.onnx')
    const out = path.join(work, 'opt', 'model_int8.onnx')
    const r = albertkit('optimize', model, '--out', out, '--passes', 'dedup,quantize-int8', '--verbose')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^dedup +changed /m)
    assert.match(r.stdout, /^quantize-int8 +changed .*; weightsQuantized 11/m)
    assert.ok(fs.statSync(out).size < fs.statSync(model).size)
    const again = albertkit('optimize', model, '--out', out, '--passes', 'dedup')
    assert.equal(again.code, 3, 'does not overwrite without --force')
  })

  it('optimize reports a damaged ONNX file in one line', () => {
    const file = path.join(work, 'broken.onnx')
    fs.writeFileSync(file, Buffer.from([0x0a, 0xff, 0xff, 0x01, 0x02]))
    const r = albertkit('optimize', file, '--out', path.join(work, 'y.onnx'))
    assert.equal(r.code, 3)
    assert.equal(r.stderr.trim().split('\n').length, 1)
    assert.match(r.stderr, /broken.onnx: not a valid ONNX model/)
  })
})

describe('albertkit convert on malformed input', () => {
  const out = () => path.join(work, `fail-${Math.random().toString(36).slice(2)}`)

  it('truncated safetensors', () => {
    const dir = copyFixture('albert-model')
    const file = path.join(dir, 'model.safetensors')
    fs.truncateSync(file, fs.statSync(file).size - 100)
    const o = out()
    expectCleanFailure(['convert', dir, '--out', o], o, 'model.safetensors', 'truncated')
  })

  it('header claiming an absurd size', () => {
    const dir = copyFixture('albert-model')
    const fd = fs.openSync(path.join(dir, 'model.safetensors'), 'r+')
    const b = Buffer.alloc(8)
    b.writeBigUInt64LE(2n ** 50n)
    fs.writeSync(fd, b, 0, 8, 0)
    fs.closeSync(fd)
    const o = out()
    expectCleanFailure(['convert', dir, '--out', o], o, 'model.safetensors', 'over the 100000000-byte limit')
  })

  it('overlapping offsets', () => {
    const dir = copyFixture('albert-model')
    const file = path.join(dir, 'model.safetensors')
    const buf = fs.readFileSync(file)
    const n = Number(buf.readBigUInt64LE(0))
    const header = JSON.parse(buf.subarray(8, 8 + n).toString()) as Record<string, { data_offsets: number[] }>
    const names = Object.keys(header).filter((k) => k !== '__metadata__').sort((a, b) => header[a]!.data_offsets[0]! - header[b]!.data_offsets[0]!)
    const second = header[names[1]!]!
    second.data_offsets = [second.data_offsets[0]! - 4, second.data_offsets[1]! - 4]
    let text = JSON.stringify(header)
    text += ' '.repeat(Math.max(0, n - text.length))
    const len = Buffer.alloc(8)
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(text)))
    fs.writeFileSync(file, Buffer.concat([len, Buffer.from(text), buf.subarray(8 + n)]))
    const o = out()
    expectCleanFailure(['convert', dir, '--out', o], o, 'model.safetensors', 'overlaps')
  })

  it('unknown dtype', () => {
    const dir = copyFixture('albert-model')
    const file = path.join(dir, 'model.safetensors')
    const buf = fs.readFileSync(file)
    const text = buf.toString('latin1').replace('"dtype":"F32"', '"dtype":"F33"')
    fs.writeFileSync(file, Buffer.from(text, 'latin1'))
    const o = out()
    expectCleanFailure(['convert', dir, '--out', o], o, 'model.safetensors', "unknown dtype 'F33'")
  })

  it('missing tensor', () => {
    const dir = copyFixture('albert-model')
    editWeights(dir, (m) => m.delete('encoder.albert_layer_groups.0.albert_layers.0.ffn.weight'))
    const o = out()
    expectCleanFailure(['convert', dir, '--out', o], o, 'model.safetensors', "missing tensor 'albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight'")
  })

  it('tensor of the wrong shape', () => {
    const dir = copyFixture('albert-model')
    editWeights(dir, (m) => m.set('pooler.weight', Tensor.fromFloat32([4, 4], new Float32Array(16))))
    const o = out()
    expectCleanFailure(['convert', dir, '--out', o], o, 'model.safetensors', "tensor 'pooler.weight' has shape [4, 4], expected [16, 16]")
  })

  it('no config.json', () => {
    const dir = copyFixture('albert-model')
    fs.rmSync(path.join(dir, 'config.json'))
    const o = out()
    expectCleanFailure(['convert', dir, '--out', o], o, 'config.json', 'not found')
  })

  it('a config of another model type', () => {
    const dir = copyFixture('albert-model')
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))
    cfg.model_type = 'bert'
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg))
    const o = out()
    expectCleanFailure(['convert', dir, '--out', o], o, 'config.json', 'model_type is "bert"')
  })

  it('no weights', () => {
    const dir = copyFixture('albert-model')
    fs.rmSync(path.join(dir, 'model.safetensors'))
    const o = out()
    expectCleanFailure(['convert', dir, '--out', o], o, 'no weights found')
  })

  it('an unsupported activation', () => {
    const dir = copyFixture('albert-model')
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))
    cfg.hidden_act = 'xielu'
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg))
    const o = out()
    expectCleanFailure(['convert', dir, '--out', o], o, 'config.json', "hidden_act 'xielu' is not supported")
  })

  it('a missing checkpoint folder', () => {
    const o = out()
    expectCleanFailure(['convert', path.join(work, 'nope'), '--out', o], o, 'no such file or folder')
  })
})
