/**
 * The target records (src/targets/targets.ts): each is well formed, and what convert writes for it
 * and what the CLI says about it follow from the record alone. Adding a target is adding a record
 * there and a case here (docs/architecture.md). Where a target has more to it than its passes,
 * its files are checked here too: `--target web` (the files transformers.js picks by dtype in a
 * browser, only ops onnxruntime-web's providers run, config.json's per-device defaults; the
 * browser suite, test/browser/, runs them in Chromium).
 */
import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { PASSES } from '../src/passes/index.js'
import { PRECISION, PRECISIONS } from '../src/targets/precision.js'
import { TARGETS, TARGET_NAMES, targetByName, targetPlans, takes, targetsTaking, transformersJsConfig } from '../src/targets/targets.js'
import { configForFolder } from '../src/pipeline/layout.js'
import { readModelFile } from '../src/onnx/file.js'
import { DataType } from '../src/ir/dtype.js'
import { convert } from '../src/pipeline/convert.js'
import { BIN, FIXTURES, fixtureDir, tempDir } from './support/helpers.js'

const work = tempDir()

/** The files convert writes under onnx/ for a target, from its record. */
function expectedOnnxFiles(name: string): string[] {
  const t = TARGETS.find((x) => x.name === name)!
  const files = new Set(t.models.map((m) => path.basename(m.file)))
  // transformers.js's q8 name is a second name of the int8 model unless the target writes its own
  if (t.models.some((m) => m.precision === 'int8' && m.file === PRECISION.int8.file) && PRECISION.int8.alias) files.add(path.basename(PRECISION.int8.alias.file))
  for (const m of t.models) if (m.ortFile) files.add(path.basename(m.ortFile))
  if (t.requiredOperators) files.add('required_operators.config')
  return [...files].sort()
}

describe('target records', () => {
  it('are well formed: unique names, known precisions and passes, one file per model', () => {
    assert.equal(new Set(TARGET_NAMES).size, TARGETS.length)
    for (const t of TARGETS) {
      assert.match(t.name, /^[a-z][a-z0-9-]*$/)
      assert.ok(t.summary.length > 20 && !t.summary.includes('\n'), `${t.name}: a one-line summary`)
      assert.ok(t.models.length > 0, `${t.name}: emits a model`)
      assert.equal(new Set(t.models.map((m) => m.file)).size, t.models.length, `${t.name}: one model per file`)
      for (const m of t.models) {
        assert.ok((PRECISIONS as readonly string[]).includes(m.precision), `${t.name}: ${m.precision}`)
        assert.match(m.file, /^onnx\/[a-z0-9_]+\.onnx$/)
        for (const p of m.passes) assert.ok(PASSES.has(p), `${t.name} ${m.file}: unknown pass ${p}`)
      }
    }
  })

  it('plans, target flags and their messages come from the records', () => {
    for (const t of TARGETS) {
      assert.deepEqual(
        targetPlans(t.name).map((p) => [p.file, p.precision, p.target, p.passes]),
        t.models.map((m) => [m.file, m.precision, t.name, m.passes]),
      )
      for (const flag of ['fixed-shape', 'calibration'] as const) assert.equal(takes(t.name, flag), t.flags.includes(flag))
    }
    assert.equal(targetsTaking('fixed-shape'), TARGETS.filter((t) => t.flags.includes('fixed-shape')).map((t) => `--target ${t.name}`).join(' or '))
    assert.throws(() => targetPlans('tpu'), { message: `unknown target 'tpu' (choose from ${TARGET_NAMES.join(', ')})` })
  })

  it('convert --help lists every target; an unknown one is a usage error listing them', () => {
    const help = spawnSync(process.execPath, [BIN, 'convert', '--help'], { encoding: 'utf8' })
    assert.equal(help.status, 0)
    assert.ok(help.stdout.replace(/\s+/g, ' ').includes(`the models and passes for a runtime: ${TARGET_NAMES.join(', ')} `), help.stdout)
    const bad = spawnSync(process.execPath, [BIN, 'convert', path.join(FIXTURES, 'albert-seqcls'), '--out', path.join(work, 'never'), '--target', 'tpu'], { encoding: 'utf8' })
    assert.equal(bad.status, 2)
    assert.equal(bad.stderr.trim(), `Error: unknown target 'tpu' (choose from ${TARGET_NAMES.join(', ')})`)
    assert.equal(fs.existsSync(path.join(work, 'never')), false)
  })

  for (const t of TARGETS) {
    it(`${t.name}: convert writes the record's models and nothing else under onnx/`, async () => {
      const out = path.join(work, t.name)
      await convert({ checkpoint: path.join(FIXTURES, 'albert-seqcls'), out, noVerify: true, plans: targetPlans(t.name) })
      assert.deepEqual(fs.readdirSync(path.join(out, 'onnx')).sort(), expectedOnnxFiles(t.name))
      const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as { artifacts: { path: string }[] }
      assert.deepEqual(report.artifacts.map((a) => a.path).sort(), t.models.map((m) => m.file).sort())
    })
  }
})

const opsOf = (file: string) => {
  const counts = new Map<string, number>()
  for (const n of readModelFile(file).graph.nodes) counts.set(n.opType, (counts.get(n.opType) ?? 0) + 1)
  return counts
}

describe('--target web', () => {
  const out = path.join(tempDir(), 'web')
  before(async () => {
    await convert({ checkpoint: fixtureDir('albert-seqcls-text'), out, plans: targetPlans('web'), noVerify: true })
  })

  it('writes fp32, fp16, q4, q4f16 and q8 under the names transformers.js loads for those dtypes', () => {
    const models = fs.readdirSync(path.join(out, 'onnx')).sort()
    assert.deepEqual(models, ['model.onnx', 'model_fp16.onnx', 'model_q4.onnx', 'model_q4f16.onnx', 'model_quantized.onnx'])
  })

  it('WebGPU files: FastGelu and SkipLayerNormalization, attention unfused (no masked Attention on WebGPU)', () => {
    for (const f of ['model.onnx', 'model_fp16.onnx', 'model_q4.onnx', 'model_q4f16.onnx']) {
      const ops = opsOf(path.join(out, 'onnx', f))
      // the fixture runs its one shared layer twice
      assert.equal(ops.get('FastGelu'), 2, `${f}: a FastGelu per layer call`)
      assert.equal(ops.get('SkipLayerNormalization'), 4, `${f}: two SkipLayerNormalization per layer call (attention output, FFN output)`)
      assert.equal(ops.get('Attention'), undefined, `${f}: no Attention`)
      assert.equal(ops.get('Softmax'), 2, `${f}: attention as MatMul + Softmax`)
    }
    // only the FFN output (K 32, one whole block) per layer call: the matrices with K 8 or 16 (under
    // one block of 32) stay float, as WebGPU's MatMulNBits is wrong there
    assert.equal(opsOf(path.join(out, 'onnx', 'model_q4.onnx')).get('MatMulNBits'), 2)
    const q4f16 = readModelFile(path.join(out, 'onnx', 'model_q4f16.onnx'))
    assert.equal(q4f16.graph.nodes.filter((n) => n.opType === 'MatMulNBits').length, 2)
    assert.ok(
      q4f16.graph.nodes.filter((n) => n.opType === 'MatMulNBits').every((n) => n.inputs[2]!.const!.dtype === DataType.FLOAT16),
      'q4f16: float16 scales (and so float16 compute)',
    )
    assert.ok(q4f16.graph.outputs.every((v) => v.elemType === DataType.FLOAT), 'q4f16: float32 outputs')
    const fp16 = readModelFile(path.join(out, 'onnx', 'model_fp16.onnx'))
    assert.ok(fp16.graph.initializers.some((v) => v.const!.dtype === DataType.FLOAT16), 'fp16: float16 weights')
    assert.ok(fp16.graph.outputs.every((v) => v.elemType === DataType.FLOAT), 'fp16: float32 outputs')
  })

  it('q8 (wasm): fused Attention and dynamic int8, as the CPU provider runs fastest', () => {
    const ops = opsOf(path.join(out, 'onnx', 'model_quantized.onnx'))
    assert.equal(ops.get('QAttention'), 2)
    assert.ok((ops.get('DynamicQuantizeMatMul') ?? 0) >= 4)
    assert.equal(ops.get('MatMulNBits'), undefined)
  })

  it('config.json: transformers.js loads q8 on wasm and fp32 on WebGPU unless told otherwise', () => {
    const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'))
    assert.deepEqual(config['transformers.js_config'], { device_config: { wasm: { dtype: 'q8' }, webgpu: { dtype: 'fp32' } } })
    assert.deepEqual(config.architectures, ['AlbertForSequenceClassification'])
  })

  it('only the web target asks config.json for anything; external-data entries join what it asks', () => {
    assert.deepEqual(
      TARGETS.filter((t) => t.transformersJs).map((t) => t.name),
      ['web'],
    )
    assert.deepEqual(transformersJsConfig(targetPlans('cpu')), {})
    const raw = { architectures: ['AlbertForSequenceClassification'], 'transformers.js_config': { kept: 1 } }
    assert.equal(configForFolder(raw, 'text-classification', [], {}), undefined)
    assert.deepEqual(configForFolder(raw, 'text-classification', ['onnx/model.onnx'], targetByName('web').transformersJs)!['transformers.js_config'], {
      kept: 1,
      device_config: { wasm: { dtype: 'q8' }, webgpu: { dtype: 'fp32' } },
      use_external_data_format: { 'model.onnx': 1 },
    })
  })
})
