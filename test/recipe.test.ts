/**
 * Recipe files: the sample in fixtures/recipes reads as documented, every kind of mistake is one
 * line naming the file and the key (exit code 2), and through the CLI the recipe sets precisions,
 * pass options, verification inputs and thresholds (per precision too) while flags on the command
 * line win.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { BIN, FIXTURES, fixtureDir, tempDir } from './support/helpers.js'
import { parseRecipe, readRecipe, thresholdsWith, withRecipe } from '../src/cli/recipe.js'
import { UsageError } from '../src/util/errors.js'
import { TARGET_NAMES } from '../src/targets/targets.js'

const SAMPLE = path.join(FIXTURES, 'recipes', 'albertkit.json')
const work = tempDir()
const albertkit = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' })

function recipeFile(name: string, content: unknown): string {
  const file = path.join(work, name)
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content))
  return file
}

function rejects(content: unknown, ...fragments: string[]): void {
  assert.throws(
    () => parseRecipe(content, 'albertkit.json'),
    (e: unknown) => {
      assert.ok(e instanceof UsageError, `a UsageError, got ${String(e)}`)
      assert.ok(e.message.startsWith('albertkit.json: '), e.message)
      assert.ok(!e.message.includes('\n'), 'one line')
      for (const f of fragments) assert.ok(e.message.includes(f), `"${e.message}" mentions "${f}"`)
      return true
    },
  )
}

describe('recipe files', () => {
  it('reads the sample recipe', () => {
    const r = readRecipe(SAMPLE)
    assert.equal(r.task, 'fill-mask')
    assert.deepEqual(r.precisions, ['fp32', 'int8'])
    assert.deepEqual(r.options, { 'keep-ops': ['Gather'], 'block-size': 64 })
    assert.deepEqual(r.inputs, { seed: 7, batch: 2, sequence: 32 })
    assert.deepEqual(r.thresholds, { cosine: 0.999, byPrecision: { fp32: { maxAbs: 1e-4 }, int8: { cosine: 0.998, top1: 0.95 } } })
  })

  it('rejects unknown keys, naming the key', () => {
    rejects({ tsk: 'fill-mask' }, "tsk is not a recipe key", 'task, target')
    rejects({ options: { 'per-tensr': true } }, 'options.per-tensr is not a recipe key', 'per-tensor')
    rejects({ inputs: { seed: 1, rows: 3 } }, 'inputs.rows is not a recipe key')
    rejects({ thresholds: { int3: { cosine: 0.9 } } }, 'thresholds.int3 is not a recipe key', 'int8')
    rejects({ thresholds: { int8: { int4: { cosine: 0.9 } } } }, 'thresholds.int8.int4 is not a recipe key')
  })

  it('rejects wrong types and values, naming the key', () => {
    rejects([], '(the recipe) must be an object')
    rejects({ precisions: 'fp32,int8' }, 'precisions must be a list')
    rejects({ precisions: [] }, 'precisions must not be empty')
    rejects({ precisions: ['fp32', 'int3'] }, "precisions[1] 'int3' is not one of fp32, int8, int4, fp16, q4f16")
    rejects({ precisions: ['int8', 'int8'] }, 'precisions names a precision twice')
    rejects({ target: 'tpu' }, `target 'tpu' is not one of ${TARGET_NAMES.join(', ')}`)
    rejects({ target: 'cpu', precisions: ['fp32'] }, 'target and precisions are both given')
    rejects({ task: 'summarization' }, "task 'summarization' is not one of")
    rejects({ passes: ['dedup', 'shrink'] }, "passes[1] 'shrink' is not one of")
    rejects({ options: { 'per-tensor': 'yes' } }, 'options.per-tensor must be true or false, got "yes"')
    rejects({ options: { 'block-size': '64' } }, 'options.block-size must be an integer, got "64"')
    rejects({ options: { 'block-size': 48 } }, 'options.block-size must be a power of two')
    rejects({ options: { 'keep-ops': 'Gather' } }, 'options.keep-ops must be a list of names')
    rejects({ options: { 'fixed-shape': [1, 128, 3] } }, 'options.fixed-shape must be [batch, sequence]')
    rejects({ inputs: { batch: 0 } }, 'inputs.batch must be 1 or more')
    rejects({ inputs: { seed: 1.5 } }, 'inputs.seed must be an integer')
    rejects({ thresholds: { cosine: 'high' } }, 'thresholds.cosine must be a number, got "high"')
    rejects({ thresholds: { int8: { top1: 99 } } }, 'thresholds.int8.top1 must be between 0 and 1, got 99')
    rejects({ thresholds: { int8: 0.99 } }, 'thresholds.int8 must be an object')
  })

  it('rejects a missing file and a file that is not JSON', () => {
    assert.throws(() => readRecipe(path.join(work, 'none.json')), /none\.json: no such recipe file/)
    assert.throws(() => readRecipe(recipeFile('broken.json', '{"task": "fill-mask",')), (e: unknown) => e instanceof UsageError && /broken\.json: not valid JSON \(/.test(e.message))
  })

  it('fills in what the command line left out, and no more', () => {
    const recipe = parseRecipe({ target: 'cpu', inputs: { seed: 7, batch: 2 }, options: { 'keep-ops': ['Gather', 'Add'] }, passes: ['dedup'] }, 'r.json')
    const known = { target: 1, precision: 1, seed: 1, batch: 1, 'keep-ops': 1 }
    // --batch 5 typed, seed and precision from defaults
    const flags = withRecipe(
      { flags: { precision: 'fp32', seed: 1234, batch: 5 }, metadata: { flags: { precision: { setFromDefault: true }, seed: { setFromDefault: true } } } },
      recipe,
      known,
    )
    assert.deepEqual(flags, { precision: 'fp32', seed: 7, batch: 5, target: 'cpu', 'keep-ops': 'Gather,Add' })
    // --precision typed: the recipe's target, the other half of the choice, is set aside
    const typed = withRecipe({ flags: { precision: 'int8' }, metadata: { flags: {} } }, recipe, known)
    assert.equal(typed.precision, 'int8')
    assert.ok(!('target' in typed))
  })

  it('thresholds: precision default < recipe < recipe for the precision < command line', () => {
    const recipe = parseRecipe({ thresholds: { cosine: 0.99, top1: 0.9, int8: { cosine: 0.995 } } }, 'r.json')
    assert.deepEqual(thresholdsWith(recipe, {}), { cosine: 0.99, top1: 0.9, byPrecision: { int8: { cosine: 0.995 } } })
    assert.deepEqual(thresholdsWith(recipe, { cosine: 0.5 }), { cosine: 0.5, top1: 0.9, byPrecision: { int8: { cosine: 0.5 } } })
    assert.deepEqual(thresholdsWith(undefined, { top1: 0.8 }), { top1: 0.8 })
  })
})

describe('--recipe through the CLI', () => {
  it('convert takes precisions, pass options, inputs and per-precision thresholds from the recipe', () => {
    const out = path.join(work, 'from-recipe')
    const r = albertkit('convert', fixtureDir('albert-mlm'), '--out', out, '--recipe', SAMPLE, '--json')
    assert.equal(r.status, 0, r.stderr)
    const report = JSON.parse(r.stdout)
    assert.deepEqual(report.artifacts.map((a: { precision: string }) => a.precision), ['fp32', 'int8'])
    assert.deepEqual(report.verification.inputs, { batch: 2, sequence: 32, seed: 7, choices: 2 })
    const [fp32, int8] = report.artifacts
    assert.deepEqual(fp32.verdict.thresholds, { maxAbs: 1e-4, cosine: 0.999 })
    assert.deepEqual(int8.verdict.thresholds, { cosine: 0.998, top1: 0.95 })
    const q = int8.passes.find((p: { pass: string }) => p.pass === 'quantize-int8')
    assert.ok(q.stats.leftFloat > 0, 'keep-ops Gather left the embedding tables in float')
  })

  it('flags on the command line win over the recipe', () => {
    const out = path.join(work, 'flags-win')
    const r = albertkit('convert', fixtureDir('albert-mlm'), '--out', out, '--recipe', SAMPLE, '--precision', 'int8', '--seed', '3', '--top1', '0.5', '--json')
    assert.equal(r.status, 0, r.stderr)
    const report = JSON.parse(r.stdout)
    assert.deepEqual(report.artifacts.map((a: { path: string }) => a.path), ['onnx/model_int8.onnx'])
    assert.equal(report.verification.inputs.seed, 3)
    assert.equal(report.verification.inputs.batch, 2, 'what the command line left out still comes from the recipe')
    assert.deepEqual(report.artifacts[0].verdict.thresholds, { cosine: 0.998, top1: 0.5 })
  })

  it('a threshold for one precision fails only that precision: exit code 1, the report on stdout', () => {
    const strict = recipeFile('strict.json', { precisions: ['fp32', 'int8'], thresholds: { int8: { 'max-abs': 1e-6 } }, inputs: { batch: 1, sequence: 16 } })
    const r = albertkit('convert', fixtureDir('albert-mlm'), '--out', path.join(work, 'strict'), '--recipe', strict, '--json')
    assert.equal(r.status, 1, r.stderr)
    const report = JSON.parse(r.stdout)
    assert.equal(report.verification.pass, false)
    assert.deepEqual(report.artifacts.map((a: { verdict: { pass: boolean } }) => a.verdict.pass), [true, false])
    assert.match(report.artifacts[1].verdict.outputs[0].failures[0], /max abs error .* > 1\.000e-6/)
  })

  it('verify takes the task, inputs and per-precision thresholds from the recipe; flags win', () => {
    const out = path.join(work, 'for-verify')
    assert.equal(albertkit('convert', fixtureDir('albert-mlm'), '--out', out, '--precision', 'fp32,int8', '--no-verify', '-q').status, 0)
    const models = [path.join(out, 'onnx/model.onnx'), path.join(out, 'onnx/model_int8.onnx')]
    const r = albertkit('verify', fixtureDir('albert-mlm'), ...models, '--recipe', SAMPLE, '--json')
    assert.equal(r.status, 0, r.stderr)
    const report = JSON.parse(r.stdout)
    assert.equal(report.inputs, 'random, seed 7, batch 2, sequence 32')
    assert.deepEqual(report.artifacts.map((a: { thresholds: object }) => a.thresholds), [{ maxAbs: 1e-4, cosine: 0.999 }, { cosine: 0.998, top1: 0.95 }])
    const flagged = albertkit('verify', fixtureDir('albert-mlm'), ...models, '--recipe', SAMPLE, '--sequence', '16', '--cosine', '0.9', '--json')
    assert.equal(flagged.status, 0, flagged.stderr)
    const f = JSON.parse(flagged.stdout)
    assert.equal(f.inputs, 'random, seed 7, batch 2, sequence 16')
    assert.deepEqual(f.artifacts.map((a: { thresholds: object }) => a.thresholds), [{ maxAbs: 1e-4, cosine: 0.9 }, { cosine: 0.9, top1: 0.95 }])
  })

  it('texts to verify on: inputs.text, or inputs.text-file taken from the recipe\'s folder; --text on the command line wins', () => {
    const dir = path.join(work, 'text-recipe')
    fs.mkdirSync(dir)
    fs.writeFileSync(path.join(dir, 'texts.txt'), 'Where is the library?\tThe library opens at nine.\nWhen do trains leave?\tEvery hour.\n')
    const byFile = path.join(dir, 'albertkit.json')
    // top-1 over 2 rows: the first question's two best start positions differ by 0.017 in fp32
    // (random weights), within int8's noise (packed int8 picks the other one)
    fs.writeFileSync(byFile, JSON.stringify({ target: 'cpu', inputs: { 'text-file': 'texts.txt' }, thresholds: { int8: { top1: 0.5 } } }))
    const r = albertkit('convert', fixtureDir('albert-qa-text'), '--out', path.join(work, 'qa-text-recipe'), '--recipe', byFile, '--json')
    assert.equal(r.status, 0, r.stderr)
    const report = JSON.parse(r.stdout)
    assert.equal(report.verification.text.source, 'texts.txt', 'report.json names no absolute path')
    assert.deepEqual(report.verification.text.rows.map((row: { pair: string }) => row.pair), ['The library opens at nine.', 'Every hour.'])
    const inline = recipeFile('text-inline.json', { inputs: { text: ['The library opens at nine.'] } })
    const v = albertkit('verify', fixtureDir('albert-qa-text'), path.join(work, 'qa-text-recipe', 'onnx/model_int8.onnx'), '--recipe', inline, '--json')
    assert.equal(v.status, 0, v.stderr)
    assert.equal(JSON.parse(v.stdout).text.rows.length, 1)
    const flagged = albertkit('verify', fixtureDir('albert-qa-text'), path.join(work, 'qa-text-recipe', 'onnx/model_int8.onnx'), '--recipe', byFile, '--text', 'one', '--text', 'two', '--json')
    assert.equal(flagged.status, 0, flagged.stderr)
    assert.equal(JSON.parse(flagged.stdout).text.source, '--text')
    rejects({ inputs: { text: ['a'], 'text-file': 'b.txt' } }, 'inputs.text', 'text-file')
    rejects({ inputs: { text: [] } }, 'inputs.text', 'at least one')
  })

  it('optimize takes its passes and options from the recipe', () => {
    const recipe = recipeFile('opt.json', { passes: ['dedup', 'quantize-int8'], options: { 'per-tensor': true } })
    const model = path.join(fixtureDir('albert-model'), 'export', 'model.onnx')
    const r = albertkit('optimize', model, '--out', path.join(work, 'opt.onnx'), '--recipe', recipe, '--json')
    assert.equal(r.status, 0, r.stderr)
    const report = JSON.parse(r.stdout)
    assert.deepEqual(report.passes.map((p: { pass: string }) => p.pass), ['dedup', 'quantize-int8'])
    assert.equal(report.passes[1].stats.perTensor, true)
  })

  it('an invalid recipe is exit code 2 and one line naming the file and the key, with nothing written', () => {
    const bad = recipeFile('bad.json', { precisions: ['fp32'], thresholds: { int8: { cosine: 'high' } } })
    const out = path.join(work, 'bad-out')
    const r = albertkit('convert', fixtureDir('albert-mlm'), '--out', out, '--recipe', bad)
    assert.equal(r.status, 2, r.stderr)
    assert.equal(r.stderr, `Error: ${bad}: thresholds.int8.cosine must be a number, got "high"\n`)
    assert.equal(r.stdout, '')
    assert.ok(!fs.existsSync(out))
    const json = albertkit('convert', fixtureDir('albert-mlm'), '--out', out, '--recipe', path.join(work, 'missing.json'), '--json')
    assert.equal(json.status, 2)
    assert.deepEqual(JSON.parse(json.stdout), { error: { message: `${path.join(work, 'missing.json')}: no such recipe file`, kind: 'usage', exitCode: 2 } })
  })
})
