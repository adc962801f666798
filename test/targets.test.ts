/**
 * The target records (src/targets/targets.ts): each is well formed, and what convert writes for it
 * and what the CLI says about it follow from the record alone. Adding a target is adding a record
 * there and a case here (docs/architecture.md).
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { PASSES } from '../src/passes/index.js'
import { PRECISION, PRECISIONS } from '../src/targets/precision.js'
import { TARGETS, TARGET_NAMES, targetPlans, takes, targetsTaking } from '../src/targets/targets.js'
import { convert } from '../src/pipeline/convert.js'
import { BIN, FIXTURES, tempDir } from './support/helpers.js'

const work = tempDir()

/** The files convert writes under onnx/ for a target, from its record. */
function expectedOnnxFiles(name: string): string[] {
  const t = TARGETS.find((x) => x.name === name)!
  const files = new Set(t.models.map((m) => path.basename(m.file)))
  // transformers.js's q8 name is a second name of the int8 model unless the target writes its own
  if (t.models.some((m) => m.precision === 'int8' && m.file === PRECISION.int8.file) && PRECISION.int8.alias) files.add(path.basename(PRECISION.int8.alias.file))
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
