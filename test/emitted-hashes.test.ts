/**
 * Every file albertkit emits, byte for byte: the sha256 of each file `convert` writes for every
 * fixture checkpoint (precisions fp32,int8,int4,fp16 and the cpu, gpu, mobile and web targets), and of
 * each file `optimize` writes for every third-party export under fixtures/exports (the default
 * passes, and the fusing int8 list), against test/hashes/emitted.json. A change that is meant to
 * change no output (a refactor) must keep this test green; a change that means to change outputs
 * updates the file on purpose:
 *
 *   ALBERTKIT_WRITE_HASHES=1 node --test dist/test/emitted-hashes.test.js
 *
 * ORT-format files (the mobile target's .ort) are held by size and operators: onnxruntime does not
 * write them byte for byte the same twice.
 *
 * Verification is off (its figures, stamped into each model, come from onnxruntime's kernels and
 * may differ in the last bits between CPUs); the mobile target's calibration runs onnxruntime too,
 * on the same kernels as every other run on this kind of machine.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { convert, type ConvertOptions } from '../src/pipeline/convert.js'
import { optimize } from '../src/pipeline/optimize.js'
import { targetPlans } from '../src/targets/targets.js'
import { ortOperators } from '../src/onnx/ort-format.js'
import { FIXTURES, ROOT, goldenFixtures, tempDir } from './support/helpers.js'

const HASHES = path.join(ROOT, 'test', 'hashes', 'emitted.json')
const work = tempDir()

type Runs = Record<string, Record<string, string>>

const CONVERT_RUNS: [string, Partial<ConvertOptions>][] = [
  ['precisions', { precisions: ['fp32', 'int8', 'int4', 'fp16'] }],
  ['cpu', { plans: targetPlans('cpu') }],
  ['gpu', { plans: targetPlans('gpu') }],
  ['mobile', { plans: targetPlans('mobile') }],
  ['web', { plans: targetPlans('web') }],
]

const OPTIMIZE_RUNS: [string, string[]][] = [
  ['default', ['dedup', 'fold-constants', 'remove-unused', 'sort-and-name']],
  ['fused-int8', ['dedup', 'fold-constants', 'cse', 'remove-unused', 'fuse-attention', 'fuse-gelu', 'fuse-layernorm', 'quantize-int8', 'sort-and-name']],
]

/**
 * An ORT-format file as this test holds it: its size and operators. onnxruntime's ORT serializer
 * lays its tables out in a different order from one save to the next (same size, same content),
 * so its bytes are not reproducible; the mobile tests check that these files run as the .onnx ones.
 */
function ortDigest(bytes: Uint8Array): string {
  return `ORT format, ${bytes.byteLength} bytes: ${ortOperators(bytes).map((o) => `${o.domain || 'ai.onnx'}:${o.opset}:${o.op}`).join(',')}`
}

/** sha256 of every file under `dir` (an ORT-format file: ortDigest), by path relative to it. */
function hashTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) walk(p)
      else out[path.relative(dir, p).split(path.sep).join('/')] = e.name.endsWith('.ort') ? ortDigest(fs.readFileSync(p)) : createHash('sha256').update(fs.readFileSync(p)).digest('hex')
    }
  }
  walk(dir)
  return out
}

/** A run's files, or the one-line error it ended with (which must stay the same too). */
async function attempt(fn: () => Promise<unknown>, dir: string): Promise<Record<string, string>> {
  try {
    await fn()
    return hashTree(dir)
  } catch (e) {
    return { error: (e as Error).message.replaceAll(work, '<work>') }
  }
}

function exportModels(): string[] {
  const root = path.join(FIXTURES, 'exports')
  const found: string[] = []
  for (const fixture of fs.readdirSync(root).sort()) {
    const dir = path.join(root, fixture)
    if (!fs.statSync(dir).isDirectory()) continue
    for (const kind of fs.readdirSync(dir).sort()) {
      if (fs.existsSync(path.join(dir, kind, 'model.onnx'))) found.push(`${fixture}/${kind}`)
    }
  }
  return found
}

async function emitted(): Promise<Runs> {
  const runs: Runs = {}
  for (const name of goldenFixtures()) {
    for (const [label, opts] of CONVERT_RUNS) {
      const out = path.join(work, 'convert', name, label)
      fs.mkdirSync(path.dirname(out), { recursive: true })
      runs[`convert ${name} ${label}`] = await attempt(() => convert({ checkpoint: path.join(FIXTURES, name), out, noVerify: true, ...opts }), out)
    }
  }
  for (const model of exportModels()) {
    for (const [label, passes] of OPTIMIZE_RUNS) {
      const dir = path.join(work, 'optimize', model, label)
      fs.mkdirSync(dir, { recursive: true })
      runs[`optimize ${model} ${label}`] = await attempt(() => optimize({ input: path.join(FIXTURES, 'exports', model, 'model.onnx'), output: path.join(dir, 'model.onnx'), passes }), dir)
    }
  }
  return runs
}

describe('emitted files', () => {
  it('every file convert and optimize write for the fixtures is byte-identical to test/hashes/emitted.json', async () => {
    const runs = await emitted()
    if (process.env.ALBERTKIT_WRITE_HASHES) {
      fs.mkdirSync(path.dirname(HASHES), { recursive: true })
      fs.writeFileSync(HASHES, JSON.stringify(runs, null, 1) + '\n')
      return
    }
    const expected = JSON.parse(fs.readFileSync(HASHES, 'utf8')) as Runs
    assert.deepEqual(Object.keys(runs).sort(), Object.keys(expected).sort(), 'the same runs')
    const differ = Object.keys(expected).filter((k) => JSON.stringify(runs[k]) !== JSON.stringify(expected[k]))
    assert.deepEqual(differ, [], `runs whose files differ: ${differ.slice(0, 10).join('; ')}`)
    // The baseline covers real work: every fixture converted, most runs writing models.
    assert.ok(Object.keys(expected).length >= 150, `${Object.keys(expected).length} runs`)
    const models = Object.values(expected).reduce((n, files) => n + Object.keys(files).filter((f) => f.endsWith('.onnx')).length, 0)
    assert.ok(models >= 400, `${models} models`)
  })
})
