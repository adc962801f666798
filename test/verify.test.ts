/** The parity verdict, provenance stamps and reproducible output. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { convert } from '../src/pipeline/convert.js'
import { readModelFile, writeModelFile } from '../src/onnx/file.js'
import { Tensor } from '../src/ir/tensor.js'
import { openCheckpoint } from '../src/checkpoint/index.js'
import { digestCheckpoint, sha256File } from '../src/report/provenance.js'
import { randomInputs } from '../src/verify/inputs.js'
import { judge } from '../src/verify/verdict.js'
import { precisionOfFile } from '../src/targets/precision.js'
import { BIN, fixtureDir, tempDir } from './support/helpers.js'

const work = tempDir()
const albertkit = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' })

describe('verify', () => {
  const out = path.join(work, 'seqcls')
  const ready = convert({ checkpoint: fixtureDir('albert-seqcls'), out, precisions: ['fp32', 'fp16'] })

  it('passes good models: exit code 0, figures per output', async () => {
    await ready
    const r = albertkit('verify', fixtureDir('albert-seqcls'), path.join(out, 'onnx/model.onnx'), path.join(out, 'onnx/model_fp16.onnx'), '--json')
    assert.equal(r.status, 0, r.stdout + r.stderr)
    const report = JSON.parse(r.stdout)
    assert.equal(report.pass, true)
    assert.deepEqual(report.artifacts.map((a: { precision: string }) => a.precision), ['fp32', 'fp16'])
    const logits = report.artifacts[0].outputs[0]
    assert.equal(logits.name, 'logits')
    assert.ok(logits.maxAbs < 1e-5 && logits.cosine > 0.999999 && logits.top1 === 1)
  })

  it('fails a model with one corrupted weight: exit code 1, naming the figure and by how much', async () => {
    await ready
    const model = readModelFile(path.join(out, 'onnx/model.onnx'))
    const w = model.graph.values.get('albert.encoder.albert_layer_groups.0.albert_layers.0.ffn_output.weight')!
    const data = Float32Array.from(w.const!.toFloat32())
    data[7] = data[7]! + 0.5
    w.const = Tensor.fromFloat32(w.const!.dims, data)
    const bad = path.join(work, 'corrupted.onnx')
    writeModelFile(bad, model)
    const r = albertkit('verify', fixtureDir('albert-seqcls'), bad)
    assert.equal(r.status, 1, r.stdout + r.stderr)
    assert.match(r.stdout, /FAIL .*corrupted\.onnx \(fp32\)/)
    assert.match(r.stdout, /logits: max abs error [\d.e-]+ > 1\.000e-4 \(over by [\d.e-]+\)/)
  })

  it('checks against PyTorch goldens on their inputs', async () => {
    await ready
    const dir = fixtureDir('albert-seqcls')
    const r = albertkit('verify', dir, path.join(out, 'onnx/model.onnx'), '--golden', path.join(dir, 'golden.safetensors'), '--inputs', path.join(dir, 'inputs.safetensors'), '--max-abs', '1e-5')
    assert.equal(r.status, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /^reference: .*golden\.safetensors/m)
    const noInputs = albertkit('verify', dir, path.join(out, 'onnx/model.onnx'), '--golden', path.join(dir, 'golden.safetensors'))
    assert.equal(noInputs.status, 2, 'a usage error')
    assert.match(noInputs.stderr, /goldens need the inputs/)
  })

  it('judges against thresholds: NaN, shape and top-1 failures are named', () => {
    const ref = new Map([['logits', { data: Float32Array.of(1, 2, 3, 4), dims: [2, 2] }]])
    const nan = judge(ref, new Map([['logits', { data: Float32Array.of(1, NaN, 3, 4), dims: [2, 2] }]]), { cosine: 0.9 })
    assert.match(nan[0]!.failures.join(), /1 values are NaN or infinite/)
    const flipped = judge(ref, new Map([['logits', { data: Float32Array.of(2, 1, 3, 4), dims: [2, 2] }]]), { top1: 0.99 })
    assert.match(flipped[0]!.failures.join(), /top-1 agreement 50\.00% < 99\.00%/)
    const shape = judge(ref, new Map([['logits', { data: Float32Array.of(1, 2, 3, 4), dims: [4] }]]), {})
    assert.match(shape[0]!.failures.join(), /shape \[4\] differs/)
  })

  it('leaves padded positions out of per-token and per-position outputs, not out of pooled ones', () => {
    // batch 2 × sequence 3; row 1 has one padded position (index 5)
    const mask = { dims: [2, 3], keep: Uint8Array.of(1, 1, 1, 1, 1, 0) }
    const tokens = (last: number[]) => ({ data: Float32Array.from([1, 0, 0, 1, 1, 0, 0, 1, 1, 0, ...last]), dims: [2, 3, 2] })
    const ref = new Map([['logits', tokens([0, 1])]])
    const paddingOnly = judge(ref, new Map([['logits', tokens([9, -9])]]), { maxAbs: 1e-6, top1: 1 }, mask)[0]!
    assert.deepEqual(paddingOnly.failures, [], 'a difference only at the padded position')
    assert.equal(paddingOnly.padded, 1)
    assert.equal(paddingOnly.top1, 1)
    const unmasked = judge(ref, new Map([['logits', tokens([9, -9])]]), { maxAbs: 1e-6 })[0]!
    assert.equal(unmasked.maxAbs, 10, 'without the mask the padded row counts')
    const realFlip = judge(ref, new Map([['logits', { data: Float32Array.from([0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1]), dims: [2, 3, 2] }]]), { top1: 0.99 }, mask)[0]!
    assert.equal(realFlip.top1, 0.8, 'one of five real tokens flipped')
    // per position (start_logits [2, 3]): the argmax over a padded position does not count
    const start = new Map([['start_logits', { data: Float32Array.of(0, 2, 1, 0, 2, 1), dims: [2, 3] }]])
    const qa = judge(start, new Map([['start_logits', { data: Float32Array.of(0, 2, 1, 0, 2, 5), dims: [2, 3] }]]), { maxAbs: 1e-6, top1: 1 }, mask)[0]!
    assert.deepEqual(qa.failures, [])
    assert.equal(qa.padded, 1)
    const qaFlip = judge(start, new Map([['start_logits', { data: Float32Array.of(0, 2, 1, 3, 2, 1), dims: [2, 3] }]]), { top1: 1 }, mask)[0]!
    assert.equal(qaFlip.top1, 0.5)
    // pooled [2, 4]: compared whole
    const pooled = judge(new Map([['pooler_output', { data: new Float32Array(8), dims: [2, 4] }]]), new Map([['pooler_output', { data: Float32Array.of(0, 0, 0, 0, 0, 0, 0, 1), dims: [2, 4] }]]), { maxAbs: 1e-6 }, mask)[0]!
    assert.equal(pooled.maxAbs, 1)
    assert.equal(pooled.padded, undefined)
  })

  it('makes seeded inputs with padding, two segments and choices', () => {
    const config = openCheckpoint(fixtureDir('albert-mc')).config
    const a = randomInputs(config, 'multiple-choice', { batch: 3, sequence: 16, seed: 7, choices: 2 })
    const b = randomInputs(config, 'multiple-choice', { batch: 3, sequence: 16, seed: 7, choices: 2 })
    assert.deepEqual(a.get('input_ids')!.dims, [3, 2, 16])
    assert.deepEqual(Buffer.from(a.get('input_ids')!.data), Buffer.from(b.get('input_ids')!.data))
    const mask = a.get('attention_mask')!.toNumbers()
    assert.ok(mask.includes(0) && mask.slice(0, 16).every((m) => m === 1), 'first row full, others padded')
    assert.ok(a.get('token_type_ids')!.toNumbers().includes(1))
    assert.equal(precisionOfFile('onnx/model_q4.onnx'), 'int4')
  })
})

describe('provenance and reproducibility', () => {
  it('stamps version, source sha256, target, passes and parity into each model', async () => {
    const out = path.join(work, 'stamped')
    const report = await convert({ checkpoint: fixtureDir('albert-model'), out, precisions: ['int8'] })
    const meta = Object.fromEntries(readModelFile(path.join(out, 'onnx/model_int8.onnx')).metadataProps.map((p) => [p.key, p.value]))
    const dir = fixtureDir('albert-model')
    const digest = digestCheckpoint(dir, [path.join(dir, 'config.json'), path.join(dir, 'model.safetensors')])
    assert.equal(meta['albertkit.source_sha256'], digest.sha256)
    assert.equal(report.source.sha256, digest.sha256)
    assert.equal(digest.files.find((f) => f.path === 'model.safetensors')!.sha256, sha256File(path.join(dir, 'model.safetensors')))
    assert.equal(meta['albertkit.precision'], 'int8')
    assert.equal(meta['albertkit.task'], 'feature-extraction')
    assert.match(meta['albertkit.passes']!, /quantize-int8/)
    const parity = JSON.parse(meta['albertkit.parity']!)
    assert.equal(typeof parity.outputs.last_hidden_state.cosine, 'number')
    assert.equal(parity.pass, report.artifacts[0]!.verdict!.pass)
  })

  it('gives byte-identical files for the same inputs and flags', async () => {
    const a = path.join(work, 'repro-a')
    const b = path.join(work, 'repro-b')
    for (const out of [a, b]) await convert({ checkpoint: fixtureDir('albert-mlm'), out, precisions: ['fp32', 'int8', 'int4', 'fp16'] })
    const files = fs.readdirSync(path.join(a, 'onnx')).sort()
    assert.deepEqual(files, ['model.onnx', 'model_fp16.onnx', 'model_int8.onnx', 'model_q4.onnx', 'model_quantized.onnx'])
    for (const f of files) assert.equal(sha256File(path.join(a, 'onnx', f)), sha256File(path.join(b, 'onnx', f)), f)
  })
})
