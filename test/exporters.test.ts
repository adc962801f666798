/**
 * Other exporters' ONNX files (fixtures/exports: torch's TorchScript exporter at opsets 11, 14
 * and 17, eager and SDPA attention, unrolled weight copies; the torch.export-based exporter at
 * opsets 18 and 23, with and without external data, with unfolded weight transposes; and each
 * of these through onnxruntime's transformer optimizer) made into albertkit's own graphs by the
 * imported-model plans (importedPlans, src/targets/targets.ts). For every file: the cpu recipe's fp32 model
 * has exactly the fused ops of albertkit's `convert --target cpu` graph of the same head (every
 * attention block an Attention, every GELU fused, LayerNormalization as the cpu target keeps
 * it), no node albertkit's graph lacks beyond the exporters' head forms, no more nodes, and
 * outputs within 1e-4 of the transformers golden. On albert-model's 18 kinds (every exporter ×
 * opset) `optimize --target` cpu, gpu and mobile: every model passes its verdict against the input
 * ONNX and matches the goldens (fp32 within 1e-4, int8 and fp16 cosine ≥ 0.999). The command's
 * folder, flags and errors. And the single passes: what each matches and how a miss is reported.
 */
import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Model } from '../src/ir/graph.js'
import { DataType } from '../src/ir/dtype.js'
import { modelBytes, readModelFile } from '../src/onnx/file.js'
import { graphFigures, runPasses, type PassReport } from '../src/passes/pass.js'
import { passByName } from '../src/passes/index.js'
import { IMPORT_PREPARE, TARGET_NAMES, importedPlans, targetPlans } from '../src/targets/targets.js'
import { optimizeTarget } from '../src/pipeline/optimize.js'
import { BIN, FIXTURES, buildFixture, parityWithGolden } from './support/helpers.js'

interface ExportEntry {
  path: string
  fixture: string
  kind: string
}

const MANIFEST = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'exports', 'manifest.json'), 'utf8')) as { files: ExportEntry[]; tolerance: number }
const EXPORTS = MANIFEST.files
const TOLERANCE = MANIFEST.tolerance
const fileOf = (e: ExportEntry) => path.join(FIXTURES, '..', e.path)
const exportFile = (fixture: string, kind: string) => path.join(FIXTURES, 'exports', fixture, kind, 'model.onnx')

const apply = (m: Model, passes: string[]) => runPasses(m, passes.map(passByName))
/** The passes `optimize --target` runs on another exporter's file for one of the target's models. */
const IMPORTED_PASSES = (target: string, file: string) => importedPlans(target).find((p) => p.file === file)!.passes

/** Ops whose counts make a graph's fused form: attention, GELU, normalization, what is left of them. */
const SIGNATURE = ['Attention', 'QAttention', 'FastGelu', 'BiasGelu', 'Gelu', 'LayerNormalization', 'SkipLayerNormalization', 'Softmax', 'Erf', 'Tanh', 'DynamicQuantizeMatMul']
/** Node kinds an export's head keeps that albertkit's graph writes otherwise (3-D MatMul + Add for Gemm, QA's Split + Squeeze, shape Unsqueeze). */
const EXPORT_FORMS = new Set(['MatMul', 'Split', 'Squeeze', 'Unsqueeze'])

function signature(m: Model): Record<string, number> {
  const counts = m.graph.opCounts()
  const out: Record<string, number> = {}
  for (const op of SIGNATURE) out[op] = (counts.get(op) ?? 0) + (counts.get(`com.microsoft.${op}`) ?? 0)
  // linear layers: a MatMul or Gemm by a constant matrix
  out.linear = m.graph.nodes.filter((n) => (n.opType === 'MatMul' || n.opType === 'Gemm') && n.domain === '' && n.inputs[1]?.const?.dims.length === 2).length
  return out
}

const opTypes = (m: Model) => new Set([...m.graph.opCounts().keys()])

const reference = new Map<string, Model>()
/** albertkit's own graph of a fixture through a target recipe's plan, tokens unpacked (cached). */
async function albertkit(fixture: string, target: string, file: string): Promise<Model> {
  const key = `${fixture} ${target} ${file}`
  let m = reference.get(key)
  if (!m) {
    m = buildFixture(fixture)
    // pack-tokens takes only albertkit's own 2-D projections (it leaves an export's 3-D MatMuls as they are),
    // so the fused form to compare with is albertkit's before packing
    await apply(m, targetPlans(target).find((p) => p.file === file)!.passes.filter((p) => p !== 'pack-tokens'))
    reference.set(key, m)
  }
  return m
}

async function assertGolden(m: Model, fixture: string, label: string) {
  for (const [k, v] of await parityWithGolden(m, fixture)) assert.ok(v.maxAbs <= TOLERANCE, `${label} ${k}: max abs ${v.maxAbs}`)
}

const warningsOf = (reports: PassReport[]) => reports.flatMap((r) => r.warnings)

describe('other exporters through the imported-model cpu recipe', () => {
  it('covers every exporter form the fixtures hold', () => {
    assert.equal(EXPORTS.length, 49)
    const kinds = new Set(EXPORTS.map((e) => e.kind))
    for (const k of ['torchscript-op11', 'torchscript-op14', 'torchscript-op17', 'torchscript-op17-eager', 'unrolled-op17', 'dynamo-op18', 'dynamo-op18-external', 'dynamo-op18-unfolded', 'dynamo-op23', 'dynamo-op23-external', 'dynamo-op18-ortopt', 'dynamo-op23-ortopt', 'torchscript-op11-ortopt']) {
      assert.ok(kinds.has(k), k)
    }
  })

  for (const e of EXPORTS) {
    it(`${e.fixture}/${e.kind}: albertkit's cpu graph ops, within ${TOLERANCE} of the golden`, async () => {
      const m = readModelFile(fileOf(e))
      const reports = await apply(m, IMPORTED_PASSES('cpu', 'onnx/model.onnx'))
      const own = await albertkit(e.fixture, 'cpu', 'onnx/model.onnx')
      assert.deepEqual(signature(m), signature(own))
      const extra = [...opTypes(m)].filter((op) => !opTypes(own).has(op) && !EXPORT_FORMS.has(op))
      assert.deepEqual(extra, [], 'no op albertkit’s graph lacks')
      assert.ok(m.graph.nodeCount <= own.graph.nodeCount, `${m.graph.nodeCount} nodes, albertkit ${own.graph.nodeCount}`)
      assert.deepEqual(warningsOf(reports), [])
      assert.ok(m.opsetVersion('')! >= 17, `opset ${m.opsetVersion('')}`)
      await assertGolden(m, e.fixture, e.kind)
    })
  }
})

describe('optimize --target on every exporter × opset (albert-model): verified against the input ONNX and the goldens', () => {
  const kinds = EXPORTS.filter((e) => e.fixture === 'albert-model')
  it('has all 18 kinds', () => assert.equal(kinds.length, 18))
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'albertkit-exporters-'))
  after(() => fs.rmSync(scratch, { recursive: true, force: true }))
  for (const e of kinds) {
    it(`${e.kind}: cpu (fp32, int8 as albertkit's), gpu (fused as albertkit's, fp16), mobile (standard ops, QDQ int8, weight-only int8)`, async () => {
      for (const target of ['cpu', 'gpu', 'mobile']) {
        const out = path.join(scratch, `${e.kind}-${target}`)
        const report = await optimizeTarget({ input: fileOf(e), out, target })
        assert.deepEqual(report.artifacts.map((a) => a.path), targetPlans(target).map((p) => p.file))
        assert.equal(report.verification?.pass, true, `${target}: parity against the input`)
        for (const a of report.artifacts) {
          const m = readModelFile(path.join(out, a.path))
          const parity = await parityWithGolden(m, 'albert-model')
          for (const [k, v] of parity) {
            if (a.precision === 'fp32') assert.ok(v.maxAbs <= TOLERANCE, `${target} ${a.path} ${k}: max abs ${v.maxAbs}`)
            else assert.ok(v.cosine >= 0.999, `${target} ${a.path} ${k}: cosine ${v.cosine}`)
          }
          if (target === 'mobile') {
            assert.deepEqual(m.graph.nodes.filter((n) => n.domain !== '').map((n) => n.opType), [], `${a.path}: standard ONNX ops only`)
            assert.deepEqual(m.opsetImports.map((o) => o.domain), [''])
          } else {
            assert.deepEqual(signature(m), signature(await albertkit('albert-model', target, a.path)), `${target} ${a.path}: albertkit's fused ops`)
          }
          if (a.precision === 'int8' && target === 'cpu') {
            assert.equal(m.graph.initializers.filter((v) => v.const!.dtype === DataType.FLOAT && v.const!.dims.length === 2).length, 0, 'no float matrix left')
          }
          assert.equal(m.graph.nodes.filter((n) => n.metadataProps?.length).length, 0, 'no exporter metadata')
        }
        fs.rmSync(out, { recursive: true })
      }
    })
  }

  it('importedPlans: the target\'s files, IMPORT_PREPARE and the target\'s own passes in place of PREPARE; --keep-metadata leaves strip-metadata out', () => {
    for (const t of ['cpu', 'gpu', 'mobile']) {
      assert.deepEqual(importedPlans(t).map((p) => p.file), targetPlans(t).map((p) => p.file))
      for (const p of importedPlans(t)) assert.deepEqual(p.passes.slice(0, IMPORT_PREPARE.length), IMPORT_PREPARE)
      for (const p of importedPlans(t, { keepMetadata: true })) assert.ok(!p.passes.includes('strip-metadata'))
    }
    assert.deepEqual(IMPORTED_PASSES('cpu', 'onnx/model_int8.onnx'), [...IMPORT_PREPARE, 'split-skip-layernorm', 'fuse-attention', 'fuse-gelu', 'quantize-int8', 'pack-tokens', 'remove-unused', 'sort-and-name'])
  })
})

describe('import passes one by one', () => {
  it('fuse-attention: dynamo opset 18 (decomposed SDPA, Kᵀ through Reshape/Transpose/Reshape) and opset 23 (the Attention op)', async () => {
    for (const kind of ['dynamo-op18', 'dynamo-op23']) {
      const m = readModelFile(exportFile('albert-model', kind))
      const [r] = await apply(m, ['fuse-attention'])
      assert.deepEqual(r!.stats, { blocksFused: 3, packedWeights: 1 }, kind)
      const attention = m.graph.nodes.filter((n) => n.opType === 'Attention')
      assert.deepEqual(attention.map((n) => n.domain), ['com.microsoft', 'com.microsoft', 'com.microsoft'])
      assert.equal(attention[0]!.inputs[3]!.producer!.inputs[0]!.name, 'attention_mask', 'the raw mask input')
      assert.equal(attention[0]!.inputs[1]!.name, 'encoder.albert_layer_groups.0.albert_layers.0.attention.qkv.weight', 'named after the query bias')
      assert.ok(Math.abs(attention[0]!.attrFloat('scale')! - 1 / Math.sqrt(8)) < 1e-6)
      await assertGolden(m, 'albert-model', kind)
    }
  })

  it('fuse-attention: a Kᵀ reshape that is not K with its last two axes swapped is left, and the miss is reported by reason', async () => {
    const m = readModelFile(exportFile('albert-model', 'dynamo-op18'))
    // In every layer, make the reshape back to 4-D ask for [..., S, d] instead of [..., d, S].
    let damaged = 0
    for (const n of m.graph.nodes) {
      const t = n.opType === 'Reshape' ? n.inputs[0]?.producer : undefined
      if (t?.opType !== 'Transpose' || t.attrInts('perm')?.join() !== '0,2,1') continue
      const concat = n.inputs[1]!.producer!
      const [, d, s] = concat.inputs
      concat.setInput(1, s!)
      concat.setInput(2, d!)
      damaged++
    }
    assert.equal(damaged, 3)
    const [r] = await apply(m, ['fuse-attention'])
    assert.deepEqual(r!.stats, { blocksFused: 0, packedWeights: 0, candidates: 3 })
    assert.deepEqual(r!.warnings, [
      "fuse-attention: 0 of 3 candidate blocks matched: Kᵀ is not a head split (Reshape → Transpose 0,2,1,3) of a linear layer, nor a transpose of one (3: Softmax 'node_Softmax_129', Softmax 'node_Softmax_193', Softmax 'node_Softmax_254')",
    ])
  })

  it('strip-metadata: the dynamo exporter’s stack traces go, the graph stays', async () => {
    const m = readModelFile(exportFile('albert-model', 'dynamo-op18'))
    const before = modelBytes(m).length
    const nodes = m.graph.nodeCount
    const [r] = await apply(m, ['strip-metadata'])
    assert.equal(r!.stats.nodesStripped, 185)
    assert.equal(m.graph.nodes.filter((n) => n.metadataProps?.length).length, 0)
    assert.equal(m.graph.metadataProps, undefined)
    assert.equal(m.graph.nodeCount, nodes)
    const after = modelBytes(m).length
    assert.ok(before > 400_000 && after < 40_000, `${before} → ${after} bytes`)
    await assertGolden(m, 'albert-model', 'stripped')
  })

  it('drop-value-info: the dynamo exporter’s declared intermediate types go, inputs and outputs keep theirs', async () => {
    const m = readModelFile(exportFile('albert-model', 'dynamo-op18'))
    const declared = () => [...m.graph.values.values()].filter((v) => !v.const && v.type && !v.type.inferred).length
    const io = m.graph.inputs.length + m.graph.outputs.length
    const before = declared()
    const [r] = await apply(m, ['drop-value-info'])
    assert.equal(r!.stats.valuesDropped, before - io)
    assert.ok(before - io > 100, `${before - io} dropped`)
    assert.equal(declared(), io)
    await assertGolden(m, 'albert-model', 'value_info dropped')
  })

  it('compose-layernorm: the LayerNorms TorchScript writes out at opset 11 and 14', async () => {
    for (const kind of ['torchscript-op11', 'torchscript-op14']) {
      const m = readModelFile(exportFile('albert-model', kind))
      const r = await apply(m, ['dedup', 'compose-layernorm'])
      assert.deepEqual(r[1]!.stats, { composed: 7, candidates: 7 }, kind)
      assert.equal(m.graph.nodes.filter((n) => ['ReduceMean', 'Sqrt'].includes(n.opType)).length, 0)
      assert.equal(m.graph.nodes.filter((n) => n.opType === 'Pow').length, 3, 'only the GELUs’ x³')
      const ln = m.graph.nodes.find((n) => n.opType === 'LayerNormalization')!
      assert.equal(ln.attrFloat('epsilon'), Math.fround(1e-12))
      await assertGolden(m, 'albert-model', kind)
    }
  })

  it('upgrade-opset: opset 11 becomes 17 (axes as inputs), Softmax over the last axis proven from the head transposes', async () => {
    const m = readModelFile(exportFile('albert-model', 'torchscript-op11'))
    const [, r] = await apply(m, ['dedup', 'upgrade-opset'])
    assert.deepEqual(r!.stats, { from: 11, to: 17, nodesRewritten: 19 })
    assert.equal(m.opsetVersion(''), 17)
    assert.equal(m.irVersion, 8)
    assert.ok(m.graph.nodes.filter((n) => n.opType === 'Unsqueeze').every((n) => !n.attr('axes') && n.inputs[1]?.const))
    await assertGolden(m, 'albert-model', 'upgraded')
    // a Softmax over another axis keeps the model at its opset
    const other = readModelFile(exportFile('albert-model', 'torchscript-op11'))
    other.graph.nodes.find((n) => n.opType === 'Softmax')!.setAttr({ name: 'axis', type: 2, i: 1 })
    const [, kept] = await apply(other, ['dedup', 'upgrade-opset'])
    assert.equal(other.opsetVersion(''), 11)
    assert.match(kept!.warnings[0]!, /^upgrade-opset: left at opset 11: Softmax not over the last axis \(or its rank unknown\) \(Softmax '\/encoder\/albert_layer_groups\.0\/albert_layers\.0\/attention\/Softmax'\)$/)
  })

  it('split-skip-layernorm: the optimizer’s SkipLayerNormalization back to Add + LayerNormalization, biases back on their MatMuls', async () => {
    const m = readModelFile(exportFile('albert-model', 'torchscript-op17-ortopt'))
    const [r] = await apply(m, ['split-skip-layernorm'])
    assert.deepEqual(r!.stats, { split: 6, biasesMoved: 5 })
    assert.equal(m.graph.nodes.filter((n) => n.opType === 'SkipLayerNormalization').length, 0)
    assert.equal(m.graph.nodes.filter((n) => n.opType === 'LayerNormalization').length, 7)
    await assertGolden(m, 'albert-model', 'split')
  })

  it('fuse-gelu: the dynamo erf form (x · (0.5 · (1 + erf))) and the opset-20 Gelu op become BiasGelu', async () => {
    for (const kind of ['dynamo-op18', 'dynamo-op23']) {
      const m = readModelFile(exportFile('albert-seqcls', kind))
      const [r] = await apply(m, ['fuse-gelu'])
      assert.deepEqual(r!.stats, { fastGelu: 0, erfGelu: 2, biasesMoved: 2 }, kind)
      assert.equal(m.graph.nodes.filter((n) => n.opType === 'BiasGelu').length, 2)
      await assertGolden(m, 'albert-seqcls', kind)
    }
  })

  it('dedup re-shares the unrolled export’s per-layer weight copies: the same initializers as the shared export', async () => {
    const passes = IMPORTED_PASSES('cpu', 'onnx/model.onnx')
    for (const fixture of ['albert-model', 'albert-qa', 'albert-pretraining']) {
      const shared = readModelFile(exportFile(fixture, 'torchscript-op17'))
      const unrolled = readModelFile(exportFile(fixture, 'unrolled-op17'))
      await apply(shared, passes)
      const reports = await apply(unrolled, passes)
      assert.ok((reports.find((r) => r.pass === 'dedup')!.stats.merged as number) > 0)
      assert.deepEqual(graphFigures(unrolled), graphFigures(shared), fixture)
    }
  })

  it('decompose-contrib: the optimizer’s com.microsoft ops back to standard ONNX ops', async () => {
    const m = readModelFile(exportFile('albert-seqcls', 'torchscript-op11-ortopt'))
    const [r] = await apply(m, ['decompose-contrib'])
    assert.deepEqual(r!.stats, { gelu: 2, skipLayerNorm: 4, layerNorm: 5 })
    assert.deepEqual(m.graph.nodes.filter((n) => n.domain !== '').map((n) => n.opType), [])
    await assertGolden(m, 'albert-seqcls', 'decomposed')
  })
})

function albertkitCli(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('albertkit optimize --target (the command)', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'albertkit-optimize-target-'))
  after(() => fs.rmSync(work, { recursive: true, force: true }))
  // an export with the checkpoint's config and tokenizer files beside it, as Optimum writes them
  const exported = path.join(work, 'exported')
  fs.mkdirSync(exported)
  fs.copyFileSync(exportFile('albert-seqcls', 'dynamo-op18'), path.join(exported, 'model.onnx'))
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'spiece.model']) {
    const src = path.join(FIXTURES, 'albert-seqcls', f)
    if (fs.existsSync(src)) fs.copyFileSync(src, path.join(exported, f))
  }
  const copied = ['config.json', 'spiece.model', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'].filter((f) => fs.existsSync(path.join(exported, f)))

  it('writes a folder laid out as convert --target cpu: models, q8 alias, the files beside the input, report.json; --force replaces it', () => {
    const out = path.join(work, 'cpu')
    const r = albertkitCli('optimize', path.join(exported, 'model.onnx'), '--target', 'cpu', '--out', out, '--quiet')
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stderr, '')
    assert.match(r.stdout, /cpu\/onnx\/model\.onnx: fp32, .* parity PASS\n.*cpu\/onnx\/model_int8\.onnx: int8, .* parity PASS\n/)
    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'))
    assert.deepEqual(report.written, [...copied, 'onnx/model.onnx', 'onnx/model_int8.onnx', 'onnx/model_quantized.onnx', 'report.json'].sort())
    assert.deepEqual(report.copied, copied)
    assert.ok(copied.includes('config.json'))
    assert.equal(fs.readFileSync(path.join(out, 'config.json'), 'utf8'), fs.readFileSync(path.join(exported, 'config.json'), 'utf8'))
    const m = readModelFile(path.join(out, 'onnx', 'model.onnx'))
    const meta = Object.fromEntries(m.metadataProps.map((p) => [p.key, p.value]))
    assert.equal(meta['albertkit.target'], 'cpu')
    assert.equal(meta['albertkit.precision'], 'fp32')
    assert.equal(meta['albertkit.task'], undefined)
    assert.equal(JSON.parse(meta['albertkit.parity']!).pass, true)
    const again = albertkitCli('optimize', path.join(exported, 'model.onnx'), '--target', 'cpu', '--precision', 'int8', '--out', out, '--force', '--quiet', '--json')
    assert.equal(again.code, 0, again.stderr)
    assert.deepEqual(JSON.parse(again.stdout).artifacts.map((a: { path: string }) => a.path), ['onnx/model_int8.onnx'])
  })

  it('--keep-metadata keeps the exporter’s node metadata', () => {
    const out = path.join(work, 'kept')
    const r = albertkitCli('optimize', path.join(exported, 'model.onnx'), '--target', 'gpu', '--precision', 'fp32', '--keep-metadata', '--out', out, '--quiet')
    assert.equal(r.code, 0, r.stderr)
    const m = readModelFile(path.join(out, 'onnx', 'model.onnx'))
    assert.ok(m.graph.nodes.some((n) => n.metadataProps?.some((p) => p.key === 'pkg.torch.onnx.stack_trace')))
  })

  it('a model out of tolerance is exit code 1, the folder written', () => {
    const out = path.join(work, 'strict')
    const r = albertkitCli('optimize', path.join(exported, 'model.onnx'), '--target', 'cpu', '--precision', 'int8', '--cosine', '1.5', '--out', out, '--quiet')
    assert.equal(r.code, 1)
    assert.match(r.stderr, /^Error: parity check failed for at least one model/m)
    assert.ok(fs.existsSync(path.join(out, 'onnx', 'model_int8.onnx')))
  })

  it('usage errors: --precision the target does not make, --passes with --target, target-only flags without --target, an unknown target', () => {
    const input = path.join(exported, 'model.onnx')
    const out = path.join(work, 'never')
    const cases: [string[], string][] = [
      [['--target', 'cpu', '--precision', 'fp16'], 'Error: --precision fp16: --target cpu makes fp32, int8\n'],
      [['--target', 'gpu', '--passes', 'dedup'], 'Error: --target gpu and --passes dedup both choose the passes; give one of them\n'],
      [['--precision', 'int8', '--keep-metadata'], 'Error: --precision, --keep-metadata do nothing without --target (optimize --passes writes one ONNX file)\n'],
      [['--target', 'cpu', '--fixed-shape', '1,8'], 'Error: --fixed-shape needs --target mobile\n'],
      [['--target', 'tpu'], `Error: unknown target 'tpu' (choose from ${TARGET_NAMES.join(', ')})\n`],
    ]
    for (const [flags, message] of cases) {
      const r = albertkitCli('optimize', input, '--out', out, ...flags)
      assert.equal(r.code, 2, flags.join(' '))
      assert.equal(r.stderr, message)
      assert.ok(!fs.existsSync(out))
    }
  })
})
