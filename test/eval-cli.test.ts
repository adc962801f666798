/**
 * `verify --eval` and `convert --eval --max-drop` (issue 16) on the trained classifier
 * (fixtures/albert-seqcls-trained: language id, fp32 accuracy 0.844 on dev): int4 costs real
 * accuracy, the gate fails and passes both ways with exit code 1 / 0 and one line naming the
 * metric, the drop and the margin; the figures in --json, report.json and the provenance; flags
 * and recipe keys checked before anything runs.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { readModelFile } from '../src/onnx/file.js'
import { parseRecipe, recipeFlagValues } from '../src/cli/recipe.js'
import { BIN, fixtureDir, tempDir } from './support/helpers.js'

const work = tempDir()
const TRAINED = fixtureDir('albert-seqcls-trained')
const DEV = path.join(TRAINED, 'dev.jsonl')
const albertkit = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' })
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'))

/** fixtures/albert-seqcls-trained/meta.json: the PyTorch simulation's figures */
const meta = readJson(path.join(TRAINED, 'meta.json')).quantization_simulated

describe('convert --eval --max-drop on the trained classifier', () => {
  const out = path.join(work, 'trained')
  const r = albertkit('convert', TRAINED, '-o', out, '--precision', 'fp32,int8,int4', '--no-verify', '--eval', DEV, '--max-drop', '1', '--quiet')

  it('int4 drops 4 points: exit code 1, one line naming the model, the metric, the drop and the margin', () => {
    assert.equal(r.status, 1, r.stderr)
    const report = readJson(path.join(out, 'report.json'))
    const int4 = report.evaluation.candidates.find((c: { precision: string }) => c.precision === 'int4')
    const [lo, hi] = int4.comparison.drops[0].interval
    assert.equal(r.stderr, `Error: ${out}/onnx/model_q4.onnx: accuracy 84.4 → 80.4: a drop of 4 points (95% interval ${lo} to ${hi}), more than the largest drop allowed, 1, by 3\n`)
    assert.match(r.stdout, /onnx\/model_q4\.onnx: eval FAIL: accuracy 84\.4 → 80\.4: a drop of 4 points/)
  })

  it('report.json: each model\'s metric, drop, interval and changed predictions; the folder is written', () => {
    const e = readJson(path.join(out, 'report.json')).evaluation
    assert.deepEqual([e.file, e.task, e.format, e.examples, e.skipped, e.metric, e.maxDrop, e.pass], [DEV.split('/').pop(), 'text-classification', 'jsonl', 500, 0, 'accuracy', 1, false])
    assert.equal(e.reference.metrics.accuracy, meta.dev.fp32.accuracy)
    assert.equal(e.reference.seconds, 0, 'report.json carries no timings')
    const [fp32, int8, int4] = e.candidates
    assert.deepEqual(e.candidates.map((c: { file: string }) => c.file), ['onnx/model.onnx', 'onnx/model_int8.onnx', 'onnx/model_q4.onnx'])
    assert.deepEqual([fp32.comparison.drops[0].drop, fp32.comparison.changed, fp32.gate.pass], [0, 0, true])
    assert.ok(Math.abs(int8.comparison.drops[0].drop) <= 1, `int8 drop ${int8.comparison.drops[0].drop}`)
    assert.equal(int8.gate.pass, true)
    const d = int4.comparison.drops[0]
    assert.deepEqual([d.metric, d.drop, int4.gate.pass, int4.gate.margin], ['accuracy', 4, false, -3])
    assert.ok(d.interval[0] > 0 && d.interval[0] < 4 && d.interval[1] > 4, `interval ${d.interval}`)
    assert.equal(int4.comparison.drops[1].metric, 'macro_f1')
    assert.ok(int4.comparison.drops[1].drop > 0)
    assert.equal(int4.comparison.changed, int4.comparison.lost + int4.comparison.gained + (int4.comparison.changed - int4.comparison.lost - int4.comparison.gained))
    assert.ok(int4.comparison.changed >= 50, `${int4.comparison.changed} changed`)
    assert.equal(int4.comparison.bootstrap.seed, 0)
    // the provenance of the file
    const stamp = JSON.parse(readModelFile(path.join(out, 'onnx/model_q4.onnx')).metadataProps.find((p) => p.key === 'albertkit.eval')!.value)
    assert.deepEqual(stamp, { file: 'dev.jsonl', examples: 500, metric: 'accuracy', reference: 0.844, candidate: 0.804, drop: 4, interval: d.interval, changed: int4.comparison.changed, maxDrop: 1, pass: false })
  })

  it('verify --eval --max-drop 6 passes the same int4 model (exit 0), --json carries the gate', () => {
    const v = albertkit('verify', TRAINED, path.join(out, 'onnx/model_q4.onnx'), '--eval', DEV, '--max-drop', '6', '--cosine', '-1', '--json', '--quiet')
    assert.equal(v.status, 0, v.stderr)
    assert.equal(v.stderr, '')
    const j = JSON.parse(v.stdout)
    assert.equal(j.pass, true)
    const c = j.eval.candidates[0]
    assert.deepEqual([c.gate.pass, c.gate.drop, c.gate.margin, c.gate.metric], [true, 4, 2, 'accuracy'])
    assert.match(c.gate.message, /^accuracy 84\.4 → 80\.4: a drop of 4 points \(95% interval [\d.]+ to [\d.]+\), within the largest drop allowed, 6, by 2$/)
  })

  it('verify --eval --max-drop 1 fails it (exit 1), and gates on macro-F1 when asked', () => {
    const v = albertkit('verify', TRAINED, path.join(out, 'onnx/model_q4.onnx'), '--eval', DEV, '--max-drop', '1', '--cosine', '-1', '--quiet')
    assert.equal(v.status, 1)
    assert.match(v.stderr, /^Error: \S+model_q4\.onnx: accuracy 84\.4 → 80\.4: a drop of 4 points \(95% interval [\d.]+ to [\d.]+\), more than the largest drop allowed, 1, by 3\n$/)
    assert.match(v.stdout, /eval: 500 examples of \S+dev\.jsonl \(text-classification\), fp32 accuracy 84\.4\n/)
    const f1 = albertkit('verify', TRAINED, path.join(out, 'onnx/model_q4.onnx'), '--eval', DEV, '--max-drop', '20', '--eval-metric', 'macro_f1', '--cosine', '-1', '--json', '--quiet')
    assert.equal(f1.status, 0, f1.stderr)
    assert.equal(JSON.parse(f1.stdout).eval.candidates[0].gate.metric, 'macro_f1')
  })

  it('a recipe\'s eval key (its file relative to the recipe), overridden by --max-drop', () => {
    const dir = tempDir()
    fs.copyFileSync(DEV, path.join(dir, 'dev.jsonl'))
    const recipe = path.join(dir, 'albertkit.json')
    fs.writeFileSync(recipe, JSON.stringify({ eval: { file: 'dev.jsonl', 'max-drop': 1, seed: 3 } }))
    const model = path.join(out, 'onnx/model_q4.onnx')
    const failing = albertkit('verify', TRAINED, model, '--recipe', recipe, '--cosine', '-1', '--json', '--quiet')
    assert.equal(failing.status, 1)
    const c = JSON.parse(failing.stdout).eval.candidates[0]
    assert.deepEqual([c.gate.maxDrop, c.comparison.bootstrap.seed], [1, 3])
    const passing = albertkit('verify', TRAINED, model, '--recipe', recipe, '--max-drop', '6', '--cosine', '-1', '--quiet')
    assert.equal(passing.status, 0, passing.stderr)
  })
})

describe('--eval: bad flags and files, one line each, no model run', () => {
  const candidate = path.join(work, 'trained', 'onnx', 'model.onnx')
  const bad = path.join(TRAINED, '..', 'eval', 'bad', 'trained-unknown-label.tsv')
  const missing = path.join(work, 'missing.jsonl')
  const cases: [string, string[], number, string][] = [
    ['--max-drop without --eval', ['--max-drop', '1'], 2, 'Error: --max-drop needs a dev set to score (--eval)'],
    ['--max-drop not a number', ['--eval', DEV, '--max-drop', 'lots'], 2, "Error: --max-drop must be a number of points from 0 to 100, got 'lots'"],
    ['--eval-limit 0', ['--eval', DEV, '--eval-limit', '0'], 2, 'Error: --eval-limit must be from 1 to 1000000, got 0'],
    ['a metric the head does not have', ['--eval', DEV, '--eval-metric', 'exact'], 2, "Error: --eval-metric exact: text-classification has no metric 'exact' (accuracy, macro_f1)"],
    ['a missing dev set', ['--eval', missing], 3, `Error: ${missing}: no such file`],
    ['a label the config does not know', ['--eval', bad], 3, `Error: ${bad}: line 3: label "fr" is not in the config's id2label (en, eo, es, it)`],
  ]
  for (const [what, flags, code, message] of cases) {
    it(`${what}: exit ${code}`, () => {
      const r = albertkit('verify', TRAINED, candidate, ...flags, '--quiet')
      assert.equal(r.status, code, r.stderr)
      assert.equal(r.stderr, `${message}\n`)
      assert.equal(r.stdout, '')
    })
  }

  it('a model pinned to one shape cannot take a dev set\'s batches (exit 2, nothing written)', () => {
    const out = path.join(work, 'pinned')
    const r = albertkit('convert', TRAINED, '-o', out, '--target', 'mobile', '--fixed-shape', '1,16', '--eval', DEV)
    assert.equal(r.status, 2)
    assert.equal(r.stderr, "Error: --eval cannot score a model with --fixed-shape (a dev set's batches vary in size and length; the model takes exactly the pinned shape)\n")
    assert.equal(fs.existsSync(out), false)
  })

  it('a head without labels: feature extraction has nothing to score (exit 2)', () => {
    const r = albertkit('verify', fixtureDir('albert-model'), candidate, '--eval', DEV, '--quiet')
    assert.equal(r.status, 2)
    assert.equal(r.stderr, `Error: --eval ${DEV}: a feature-extraction model has no labels to score (--eval reads dev sets for text-classification, token-classification, question-answering, fill-mask, multiple-choice)\n`)
  })
})

describe('convert --precision auto --eval dev --max-drop 2 on the trained classifier', () => {
  const out = path.join(work, 'auto')
  const r = albertkit('convert', TRAINED, '-o', out, '--precision', 'auto', '--eval', DEV, '--max-drop', '2', '--no-verify', '--quiet')

  it('int4 drops too much, int8 holds; int4 with the most sensitive shared weight at int8 holds and is smaller: chosen', () => {
    assert.equal(r.status, 0, r.stderr)
    const report = readJson(path.join(out, 'report.json'))
    const a = report.auto
    assert.deepEqual([a.metric, a.maxDrop, a.chosen], ['accuracy', 2, 'int4+int8 ×1'])
    assert.deepEqual(a.tried.map((t: { name: string; holds: boolean }) => [t.name, t.holds]), [
      ['int4', false],
      ['int8', true],
      ['int4+int8 ×1', true],
    ])
    const [int4, int8, chosen] = a.tried
    assert.equal(int4.drop, 4)
    assert.ok(chosen.drop <= 2 && chosen.bytes < int8.bytes && chosen.bytes > int4.bytes, `${chosen.drop} points, ${chosen.bytes} bytes`)
    // the sensitivity of every shared linear weight (9: mapping, Q, K, V, dense, ffn, ffn_output, pooler, classifier), most first
    assert.equal(a.sensitivity.length, 9)
    assert.deepEqual(chosen.kept, a.sensitivity.slice(0, 1).map((s: { weight: string }) => s.weight))
    for (let i = 1; i < 9; i++) assert.ok(a.sensitivity[i - 1].points >= a.sensitivity[i].points)
    // one model, int4's file; its provenance names the plan
    assert.deepEqual(report.artifacts.map((x: { path: string }) => x.path), ['onnx/model_q4.onnx'])
    const model = readModelFile(path.join(out, 'onnx/model_q4.onnx'))
    assert.equal(JSON.parse(model.metadataProps.find((p) => p.key === 'albertkit.plan')!.value).chosen, 'int4+int8 ×1')
    assert.equal(report.evaluation.candidates[0].comparison.drops[0].drop, chosen.drop)
    assert.match(r.stdout, /auto: chose int4\+int8 ×1 \(keeping /)
  })

  it('on the held-out file the chosen model\'s drop lies within the interval stated on dev', () => {
    const chosen = readJson(path.join(out, 'report.json')).auto.tried.find((t: { name: string }) => t.name === 'int4+int8 ×1')
    const v = albertkit('verify', TRAINED, path.join(out, 'onnx/model_q4.onnx'), '--eval', path.join(TRAINED, 'heldout.jsonl'), '--cosine', '-1', '--json', '--quiet')
    assert.equal(v.status, 0, v.stderr)
    const held = JSON.parse(v.stdout).eval.candidates[0].comparison.drops[0].drop
    assert.ok(chosen.interval[0] <= held && held <= chosen.interval[1], `held-out drop ${held} in [${chosen.interval}]`)
  })

  it('without --max-drop: a usage error before anything is read', () => {
    const u = albertkit('convert', TRAINED, '-o', path.join(work, 'auto-no'), '--precision', 'auto', '--eval', DEV)
    assert.equal(u.status, 2)
    assert.equal(u.stderr, 'Error: --precision auto picks the smallest model that holds a largest drop on a dev set: give --eval FILE and --max-drop X\n')
    assert.equal(fs.existsSync(path.join(work, 'auto-no')), false)
  })
})

describe('recipe: the eval key', () => {
  it('is checked: one line naming the file and the key', () => {
    const bad: [unknown, string][] = [
      [{ 'max-drop': 1 }, 'r.json: eval.file is missing: the dev set to score'],
      [{ file: 'dev.jsonl', 'max-drop': 'one' }, 'r.json: eval.max-drop must be a number, got "one"'],
      [{ file: 'dev.jsonl', 'max-drop': 101 }, 'r.json: eval.max-drop must be between 0 and 100, got 101'],
      [{ file: 'dev.jsonl', limt: 5 }, 'r.json: eval.limt is not a recipe key (known here: file, max-drop, metric, limit, seed)'],
      [{ file: '' }, 'r.json: eval.file must be a file name, got ""'],
    ]
    for (const [value, message] of bad) assert.throws(() => parseRecipe({ eval: value }, 'r.json'), { message })
  })

  it('becomes the flags it stands for, its file taken from the recipe\'s folder', () => {
    const r = parseRecipe({ eval: { file: 'dev.jsonl', 'max-drop': 1.5, metric: 'macro_f1', limit: 100, seed: 7 } }, path.join('ci', 'albertkit.json'))
    assert.deepEqual(recipeFlagValues(r), { eval: path.resolve('ci', 'dev.jsonl'), 'max-drop': '1.5', 'eval-metric': 'macro_f1', 'eval-limit': 100, 'eval-seed': 7 })
  })
})
