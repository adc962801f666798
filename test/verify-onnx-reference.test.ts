/**
 * verify REFERENCE CANDIDATES... with an ONNX model as the reference (issue 14): every export of
 * fixtures/exports (both exporters, every opset, external data, unrolled, onnxruntime-optimized) as
 * the reference of albertkit's convert output, and albertkit's output as the reference of every
 * export, judged by the same verdict; inputs sized from the reference's own tables; texts through
 * the tokenizer beside it or --tokenizer; bad references are one line with the right exit code.
 */
import { before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { BIN, FIXTURES, fixtureDir, tempDir } from './support/helpers.js'
import { convert } from '../src/pipeline/convert.js'
import { verify, type VerifyReport } from '../src/pipeline/verify.js'
import type { ArtifactVerdict } from '../src/verify/verdict.js'
import { readConfig } from '../src/checkpoint/config.js'
import { Graph, Model, attrInt } from '../src/ir/graph.js'
import { Tensor } from '../src/ir/tensor.js'
import { DataType } from '../src/ir/dtype.js'
import { writeModelFile } from '../src/onnx/file.js'
import { EXIT } from '../src/cli/exit-codes.js'

const EXPORTS = path.join(FIXTURES, 'exports')
const FP32_MAX_ABS = 1e-4
const work = tempDir('albertkit-onnx-reference-')

/** The export folders of a fixture (each holds model.onnx), in name order. */
function exportsOf(fixture: string): string[] {
  const dir = path.join(EXPORTS, fixture)
  return fs.readdirSync(dir).sort().map((kind) => path.join(dir, kind, 'model.onnx')).filter((f) => fs.existsSync(f))
}

const FIXTURE_NAMES = fs.readdirSync(EXPORTS).filter((n) => fs.statSync(path.join(EXPORTS, n)).isDirectory()).sort()

/** albertkit's fp32 and int8 models of a fixture (no verdict: verify gives it here). */
const converted = new Map<string, string>()
async function convertedOf(fixture: string): Promise<string> {
  const known = converted.get(fixture)
  if (known) return known
  const out = path.join(work, `converted-${fixture}`)
  await convert({ checkpoint: fixtureDir(fixture), out, precisions: ['fp32', 'int8'], noVerify: true })
  converted.set(fixture, out)
  return out
}

function worst(report: VerifyReport, candidate: string): number {
  const a = report.artifacts.find((x) => x.path === candidate)!
  return Math.max(...a.outputs.map((o) => o.maxAbs))
}

function albertkit(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ALBERTKIT_DEBUG: '' } })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('an ONNX model as the reference', () => {
  it(`has the fixtures' exports to check (${FIXTURE_NAMES.join(', ')})`, () => {
    assert.deepEqual(FIXTURE_NAMES, ['albert-mlm', 'albert-model', 'albert-pretraining', 'albert-qa', 'albert-seqcls'])
    assert.equal(FIXTURE_NAMES.flatMap(exportsOf).length, 49)
  })

  for (const fixture of FIXTURE_NAMES) {
    it(`${fixture}: each export is the reference of albertkit's fp32 (max abs <= ${FP32_MAX_ABS}) and int8 models (the verdict the checkpoint gives), its sizes read from its tables`, async () => {
      const out = await convertedOf(fixture)
      const fp32 = path.join(out, 'onnx', 'model.onnx')
      const int8 = path.join(out, 'onnx', 'model_int8.onnx')
      const config = readConfig(path.join(fixtureDir(fixture), 'config.json'))
      // The int8 model of a tiny random checkpoint may miss int8's default thresholds: against an
      // export it must get the verdict it gets against the checkpoint, with the same figures.
      const byCheckpoint = (await verify({ checkpoint: fixtureDir(fixture), candidates: [int8] })).artifacts[0]!
      for (const reference of exportsOf(fixture)) {
        const report = await verify({ checkpoint: reference, candidates: [fp32, int8] })
        const kind = path.basename(path.dirname(reference))
        const [a32, a8] = report.artifacts as [ArtifactVerdict, ArtifactVerdict]
        assert.equal(a32.pass, true, `${kind}: ${JSON.stringify(a32.outputs.map((o) => o.failures))}`)
        assert.ok(worst(report, fp32) <= FP32_MAX_ABS, `${kind}: max abs ${worst(report, fp32)}`)
        assert.equal(a8.pass, byCheckpoint.pass, kind)
        assert.deepEqual(a8.thresholds, byCheckpoint.thresholds)
        for (const [i, o] of a8.outputs.entries()) {
          const c = byCheckpoint.outputs[i]!
          assert.equal(o.name, c.name)
          assert.ok(Math.abs(o.cosine - c.cosine) <= 1e-5 && Math.abs(o.maxAbs - c.maxAbs) <= 1e-4, `${kind} ${o.name}: cosine ${o.cosine} vs ${c.cosine}, max abs ${o.maxAbs} vs ${c.maxAbs}`)
        }
        assert.deepEqual(
          [report.signature?.vocabSize, report.signature?.maxPositions, report.signature?.typeVocabSize],
          [config.vocabSize, config.maxPositionEmbeddings, config.typeVocabSize],
          kind,
        )
        assert.deepEqual(report.signature?.inputs, ['input_ids', 'attention_mask', 'token_type_ids'])
        assert.equal(report.inputs, `random, seed 1234, batch 3, sequence ${Math.min(64, config.maxPositionEmbeddings)}`)
        assert.equal(report.artifacts[0]!.outputs.length, report.artifacts[1]!.outputs.length)
      }
    })

    it(`${fixture}: albertkit's fp32 model is the reference of every export (max abs <= ${FP32_MAX_ABS})`, async () => {
      const reference = path.join(await convertedOf(fixture), 'onnx', 'model.onnx')
      const candidates = exportsOf(fixture)
      const report = await verify({ checkpoint: reference, candidates })
      assert.equal(report.pass, true)
      assert.equal(report.artifacts.length, candidates.length)
      for (const c of candidates) assert.ok(worst(report, c) <= FP32_MAX_ABS, `${c}: max abs ${worst(report, c)}`)
      assert.match(report.reference, /^.*\/onnx\/model\.onnx \(vocabulary \d+, \d+ positions, 2 token types; onnxruntime optimizations off\)$/)
    })
  }
})

describe('verify with an ONNX reference on the command line', () => {
  let folder: string
  before(async () => {
    // convert writes the tokenizer files beside onnx/: the folder a reference's tokenizer is found in.
    folder = path.join(work, 'seqcls-text')
    await convert({ checkpoint: fixtureDir('albert-seqcls-text'), out: folder, precisions: ['fp32', 'int8'], noVerify: true })
  })

  it('texts through the tokenizer beside the reference (the folder above onnx/), the verdict as JSON; exit code 0', () => {
    const reference = path.join(folder, 'onnx', 'model.onnx')
    const r = albertkit(['verify', reference, path.join(folder, 'onnx', 'model_int8.onnx'), '--text', 'The library opens at nine.', '--text', 'Trains leave every hour.', '--json'])
    assert.equal(r.code, EXIT.ok, r.stderr)
    const report = JSON.parse(r.stdout)
    assert.equal(report.text.tokenizer, path.join(folder, 'tokenizer.json'))
    assert.equal(report.text.rows.length, 2)
    assert.equal(report.inputs, `2 texts from --text, ${report.text.longest} tokens (longest)`)
    assert.equal(report.pass, true)
    assert.ok(report.artifacts[0].outputs[0].cosine >= 0.999)
  })

  it('an export without a tokenizer beside it takes --tokenizer; one that does not fit its vocabulary is an input error (3)', () => {
    const reference = path.join(EXPORTS, 'albert-seqcls', 'torchscript-op17', 'model.onnx')
    const noTokenizer = albertkit(['verify', reference, reference, '--text', 'The library opens at nine.'])
    assert.equal(noTokenizer.code, EXIT.input)
    const beside = path.join(EXPORTS, 'albert-seqcls', 'torchscript-op17')
    assert.equal(noTokenizer.stderr.split('\n').filter((l) => l.startsWith('Error:')).join('\n'), `Error: ${reference}: no tokenizer beside it to encode --text (looked for tokenizer.json, spiece.model, 30k-clean.model in ${beside}); name its folder with --tokenizer`)
    // albert-seqcls-text's tokenizer has a larger vocabulary than the albert-seqcls export's 80 rows.
    const mismatch = albertkit(['verify', reference, reference, '--text', 'The library opens at nine.', '--tokenizer', fixtureDir('albert-seqcls-text'), '--quiet'])
    assert.equal(mismatch.code, EXIT.input)
    assert.match(mismatch.stderr, new RegExp(`^Error: ${fixtureDir('albert-seqcls-text')}/tokenizer\\.json: gives id \\d+ for text 1, outside the model's vocab_size 80 \\(tokenizer and checkpoint do not match\\)\\n$`))
    const named = albertkit(['verify', path.join(folder, 'onnx', 'model.onnx'), path.join(folder, 'onnx', 'model.onnx'), '--text', 'Trains leave every hour.', '--tokenizer', fixtureDir('albert-seqcls-text'), '--json'])
    assert.equal(named.code, EXIT.ok, named.stderr)
    assert.equal(JSON.parse(named.stdout).text.tokenizer, path.join(fixtureDir('albert-seqcls-text'), 'tokenizer.json'))
  })

  it('bad references: not ONNX, no input_ids, no word-embedding table, no position table: exit code 3, one line naming the file', () => {
    const candidate = path.join(EXPORTS, 'albert-seqcls', 'torchscript-op17', 'model.onnx')
    const garbage = path.join(work, 'garbage.onnx')
    fs.writeFileSync(garbage, 'not a model\n')
    const noIds = crafted('no-ids', (g) => {
      const x = input(g, 'x', DataType.FLOAT)
      g.outputs.push(g.addNode('Identity', [x], ['y']).outputs[0]!)
    })
    const noWord = crafted('no-word', (g) => {
      const ids = input(g, 'input_ids', DataType.INT64)
      g.outputs.push(g.addNode('Cast', [ids], ['logits'], { attrs: [attrInt('to', DataType.FLOAT)] }).outputs[0]!)
    })
    const noPositions = crafted('no-positions', (g) => {
      const ids = input(g, 'input_ids', DataType.INT64)
      const table = g.addInitializer('word_embeddings', Tensor.fromFloat32([10, 4], new Float32Array(40)))
      g.outputs.push(g.addNode('Gather', [table, ids], ['last_hidden_state']).outputs[0]!)
    })
    const cases: [string, RegExp | string][] = [
      [garbage, new RegExp(`^${escape(garbage)}: `)],
      [noIds, `${noIds}: takes no input_ids (its inputs: x): verify drives an ONNX reference by input_ids, attention_mask and token_type_ids, as transformers names them`],
      [noWord, `${noWord}: no word-embedding table found: no Gather (axis 0) of a constant [vocabulary, width] table takes its indices from input_ids; the vocabulary size comes from that table`],
      [
        noPositions,
        `${noPositions}: no position table found: no Gather (axis 0) of a constant [positions, 4] table besides the word embeddings (word_embeddings) takes position ids; the sequence limit comes from that table`,
      ],
    ]
    for (const [reference, message] of cases) {
      const r = albertkit(['verify', reference, candidate])
      assert.equal(r.code, EXIT.input, reference)
      const line = r.stderr.split('\n').filter((l) => l.startsWith('Error: '))
      assert.equal(line.length, 1, r.stderr)
      if (typeof message === 'string') assert.equal(line[0], `Error: ${message}`)
      else assert.match(line[0]!.slice('Error: '.length), message)
      assert.equal(r.stdout, '')
    }
  })

  it('flags an ONNX reference cannot use are usage errors (2), before anything runs', () => {
    const reference = path.join(EXPORTS, 'albert-seqcls', 'dynamo-op18', 'model.onnx')
    const inputs = path.join(fixtureDir('albert-seqcls'), 'inputs.safetensors')
    const cases: [string[], string][] = [
      [['--golden', path.join(fixtureDir('albert-seqcls'), 'golden.safetensors'), '--inputs', inputs], `--golden makes PyTorch outputs the reference; ${reference} is an ONNX reference already (give one of them)`],
      [['--task', 'text-classification'], `--task chooses the head of albertkit's graph of a checkpoint; the ONNX reference ${reference} has its own`],
      [['--tokenizer', fixtureDir('albert-seqcls-text')], '--tokenizer encodes --text and --text-file and does nothing without them'],
      [['--sequence', '33'], `--sequence 33 is beyond the model's 32 positions (max_position_embeddings in the position table albert.embeddings.position_embeddings.weight of ${reference}); give 32 or fewer`],
      [['--revision', 'main'], `--revision main contradicts ${reference}: a local path, not a Hub model id (org/name), a models--org--name folder or a snapshot folder of the Hugging Face cache; a revision names a version of a cached model (drop it, or name the model by its id)`],
    ]
    for (const [flags, message] of cases) {
      const r = albertkit(['verify', reference, reference, ...flags])
      assert.equal(r.code, EXIT.usage, flags.join(' '))
      assert.equal(r.stderr, `Error: ${message}\n`)
    }
  })

  it('the fixture inputs (--inputs) drive an export reference too; a candidate out of tolerance exits 1', () => {
    const reference = path.join(EXPORTS, 'albert-seqcls', 'torchscript-op11', 'model.onnx')
    const inputs = path.join(fixtureDir('albert-seqcls'), 'inputs.safetensors')
    const other = path.join(EXPORTS, 'albert-qa', 'torchscript-op17', 'model.onnx')
    const ok = albertkit(['verify', reference, path.join(EXPORTS, 'albert-seqcls', 'dynamo-op23', 'model.onnx'), '--inputs', inputs, '--json'])
    assert.equal(ok.code, EXIT.ok, ok.stderr)
    assert.equal(JSON.parse(ok.stdout).inputs, inputs)
    // Another model's file: its logits are not the reference's (a different head and outputs).
    const bad = albertkit(['verify', reference, other, '--inputs', inputs, '--json'])
    assert.equal(bad.code, EXIT.parity, bad.stderr)
    assert.deepEqual(JSON.parse(bad.stdout).artifacts[0].outputs[0].failures, ['logits: missing from the candidate'])
  })
})

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

function input(g: Graph, name: string, dtype: DataType) {
  const v = g.addValue(name)
  v.setTensorType(dtype, ['batch', 'sequence'])
  g.inputs.push(v)
  return v
}

/** A small ONNX file built by `build`, for references that lack what verify needs. */
function crafted(name: string, build: (g: Graph) => void): string {
  const g = new Graph()
  const model = new Model(g)
  build(g)
  const file = path.join(work, `${name}.onnx`)
  writeModelFile(file, model)
  return file
}
