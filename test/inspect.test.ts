/**
 * inspect counts every weight as a parameter whatever it is stored as: int8 weights (read by
 * DynamicQuantizeMatMul, MatMulInteger, QAttention, DequantizeLinear, or gathered and scaled),
 * 4-bit MatMulNBits blocks (K×N values, not packed bytes) and fp16 tensors, without their scales
 * and zero points. So every model convert emits — each precision, each target — has the
 * checkpoint's parameter figures. And inspect names paths as the user gave them.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { BIN, ROOT, fixtureDir, tempDir } from './support/helpers.js'
import { convert } from '../src/pipeline/convert.js'
import { optimize } from '../src/pipeline/optimize.js'
import { verify } from '../src/pipeline/verify.js'
import { inspect } from '../src/report/inspect.js'
import { targetPlans } from '../src/targets/targets.js'
import type { ConvertOptions } from '../src/pipeline/convert.js'

const work = tempDir()

/** Every model of every run, with its parameter figures. */
async function allModels(fixture: string, targets: readonly ('cpu' | 'gpu' | 'mobile')[]): Promise<{ run: string; file: string; p: ReturnType<typeof inspect>['parameters'] }[]> {
  const runs: [string, Partial<ConvertOptions>][] = [
    ['precisions', { precisions: ['fp32', 'int8', 'int4', 'fp16'] }],
    ['standard-ops', { precisions: ['int8'], passOptions: { contribOps: false } }],
    ['per-tensor', { precisions: ['int8'], passOptions: { perTensor: true } }],
    ['asymmetric', { precisions: ['int4'], passOptions: { asymmetric: true, blockSize: 16 } }],
    ...targets.map((t): [string, Partial<ConvertOptions>] => [t, { plans: targetPlans(t) }]),
  ]
  const models = []
  for (const [run, options] of runs) {
    const out = path.join(work, `${fixture}-${run}`)
    await convert({ checkpoint: fixtureDir(fixture), out, noVerify: true, ...options })
    for (const file of fs.readdirSync(path.join(out, 'onnx')).filter((f) => f.endsWith('.onnx')).sort()) {
      models.push({ run, file, p: inspect(path.join(out, 'onnx', file)).parameters })
    }
  }
  return models
}

describe('inspect: parameters of quantized models', () => {
  for (const [fixture, targets, figures, quantized] of [
    // a tied decoder (read by a Gather and a MatMul), one layer group; every target. Its random
    // 200-word decoder has near-tied logits: the mobile accuracy guard (top-1 99.9% on held-out rows) keeps it all float
    ['albert-mlm', ['cpu', 'gpu', 'mobile'], { stored: 4672, unique: 4672, asIfUnshared: 6896 }, { int8: 4240, int4: 4240, mobileInt8: 0, mobileQuantized: 0 }],
    // two layer groups with two inner layers each, the pretraining heads (mobile's calibration is slow here)
    ['albert-pretraining', ['cpu', 'gpu'], { stored: 23062, unique: 23062, asIfUnshared: 42550 }, { int8: 21768, int4: 21768, mobileInt8: 0, mobileQuantized: 0 }],
  ] as const) {
    it(`${fixture}: every precision, and --target ${targets.join(', ')}, has the checkpoint's figures`, async () => {
      const ckpt = inspect(fixtureDir(fixture)).parameters
      assert.deepEqual({ stored: ckpt.stored, unique: ckpt.unique, asIfUnshared: ckpt.asIfUnshared }, figures)
      const models = await allModels(fixture, targets)
      // precisions: 4 and the q8 name; int8 with standard ops and per tensor: 2 each; int4 asymmetric: 1; cpu 3, gpu 2, mobile 3
      assert.equal(models.length, 10 + [3, 2, 3].slice(0, targets.length).reduce((a, b) => a + b, 0))
      for (const { run, file, p } of models) {
        assert.deepEqual({ stored: p.stored, unique: p.unique, asIfUnshared: p.asIfUnshared }, figures, `${run} ${file}`)
        const expected =
          file === 'model.onnx' || file === 'model_fp16.onnx'
            ? 0
            : run === 'mobile'
              ? file === 'model_int8.onnx'
                ? quantized.mobileInt8 // the QDQ model: the accuracy guard keeps some weights float
                : quantized.mobileQuantized
              : file === 'model_q4.onnx'
                ? quantized.int4 // matrices in 4-bit blocks, tables int8
                : quantized.int8 // every matrix in int8: what stays float is biases and LayerNorm
        assert.equal(p.quantized, expected, `${run} ${file}: quantized`)
      }
      // int4 counts K×N values, not its packed bytes (two a byte)
      const q4 = models.find((m) => m.file === 'model_q4.onnx')!.p
      assert.ok(q4.bytesByDtype.UINT8! < quantized.int4, `${q4.bytesByDtype.UINT8} bytes hold more 4-bit values`)
    })
  }

  it("another exporter's model: the same figures through dedup, int8, int4, fp16 and the QDQ passes", async () => {
    const source = path.join(fixtureDir('albert-model'), 'export', 'model.onnx')
    const figures = (passes: string[]) => {
      const out = path.join(work, `export-${passes.join('-')}.onnx`)
      return optimize({ input: source, output: out, passes }).then(() => inspect(out).parameters)
    }
    // dedup turns torch's Constant nodes into initializers: two small float constants join the count.
    const base = await figures(['dedup'])
    assert.equal(inspect(source).parameters.stored + 2, base.stored)
    for (const passes of [['dedup', 'quantize-int8'], ['dedup', 'quantize-int4'], ['dedup', 'quantize-qdq'], ['dedup', 'quantize-weights']]) {
      const p = await figures(passes)
      assert.deepEqual([p.stored, p.unique, p.asIfUnshared, p.quantized], [base.stored, base.unique, base.asIfUnshared, 3496], passes.join(','))
    }
    // fp16 keeps one more small constant in float32 beside its fp16 copy
    assert.equal((await figures(['dedup', 'fp16'])).stored, base.stored + 1)
    // The int4 model of a MatMul + Add export runs (its MatMulNBits once lost their activation input;
    // a lost input gives cosines near 0). 4-bit embeddings on this 8-wide toy cost more than on albert-base.
    const q4 = await verify({ checkpoint: fixtureDir('albert-model'), candidates: [path.join(work, 'export-dedup-quantize-int4.onnx')] })
    for (const o of q4.artifacts[0]!.outputs) assert.ok(o.cosine > 0.97, `${o.name}: cosine ${o.cosine}`)
  })
})

describe('inspect: paths as the user gave them', () => {
  it('a relative checkpoint folder and a relative ONNX file are shown as typed, in text and JSON', () => {
    const cwd = path.join(ROOT, 'fixtures')
    const run = (...args: string[]) => spawnSync(process.execPath, [BIN, 'inspect', ...args], { cwd, encoding: 'utf8' })
    const text = run('albert-mlm')
    assert.equal(text.status, 0, text.stderr)
    assert.match(text.stdout, /^albert-mlm \(checkpoint, safetensors\)$/m)
    assert.match(text.stderr, /^reading albert-mlm: checkpoint, safetensors \(\d+\.\ds\)$/m)
    assert.ok(!text.stdout.includes(ROOT) && !text.stderr.includes(ROOT), 'no absolute path')
    const json = run('albert-model/export/model.onnx', '--json')
    assert.equal(json.status, 0, json.stderr)
    assert.equal(JSON.parse(json.stdout).path, 'albert-model/export/model.onnx')
    const missing = run('albert-mlm-gone')
    assert.equal(missing.stderr, 'Error: albert-mlm-gone: no such file or folder\n')
  })

  it('errors inside a relative checkpoint name the file under the path typed', () => {
    const dir = path.join(work, 'broken')
    fs.cpSync(fixtureDir('albert-model'), dir, { recursive: true })
    fs.truncateSync(path.join(dir, 'model.safetensors'), 100)
    const r = spawnSync(process.execPath, [BIN, 'inspect', 'broken'], { cwd: work, encoding: 'utf8' })
    assert.equal(r.status, 3)
    assert.match(r.stderr, /^Error: broken\/model\.safetensors: truncated/)
  })
})
