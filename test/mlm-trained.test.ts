/**
 * Masked-token top-1 agreement with transformers on a trained masked LM (issue 15:
 * "on a trained model, masked-token top-1 agreement ≥ 0.98"). fixtures/albert-mlm-trained is a
 * tiny ALBERT trained on English fortunes (fixtures/make_mlm_fixture.py); its heldout.jsonl masks
 * one whole word a line, and heldout.jsonl.reference.json holds transformers' (PyTorch, float32)
 * prediction at each mask. Every model `convert` writes is run by onnxruntime-node on those ids,
 * and its argmax at the mask (and nowhere else: not the other positions, no padding) is compared
 * with transformers'. `convert --eval` on the same file must count the same changed predictions.
 */
import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { convert } from '../src/pipeline/convert.js'
import { targetPlans } from '../src/targets/targets.js'
import { createSession, runSession } from '../src/runtime/session.js'
import { BIN, fixtureDir, rowFeed, tempDir } from './support/helpers.js'

const DIR = fixtureDir('albert-mlm-trained')
const HELDOUT = path.join(DIR, 'heldout.jsonl')

interface Example {
  line: number
  input_ids: number[]
  mask_position: number
  /** transformers' prediction at the mask */
  top1_id: number
}
const reference = JSON.parse(fs.readFileSync(`${HELDOUT}.reference.json`, 'utf8')) as { examples: Example[]; metrics: { hits_top1: number; total: number } }
const examples = reference.examples
const TOTAL = examples.length

/**
 * Masks (of TOTAL) where each model's top-1 is transformers': measured on this machine
 * (onnxruntime-node 1.30, CPU). int4 is albertkit's `--precision int4` (4-bit MatMulNBits weights,
 * the word table GatherBlockQuantized 4-bit and read by the tied decoder), rounded by the default
 * per-block scale search (`mse`) or by GPTQ (`int4Rounding: 'gptq'`, not a flag yet); web q4 keeps
 * the same 4-bit word table as int4 read through DequantizeLinear (onnxruntime-web's browser build
 * has no GatherBlockQuantized on wasm), and so agrees exactly as int4 does.
 */
const AGREEMENT = {
  'fp32': TOTAL,
  'int8': 1400,
  'int4 (mse)': 1069,
  'int4 (gptq)': 1089,
  'web fp32': TOTAL,
  'web fp16': 1450,
  'web q4': 1069,
  'web q8': 1400,
}
/**
 * What `convert --eval` counts as changed for the int8 model: its activations are quantized at run
 * time, per tensor, and --eval runs padded batches whose scales see the whole batch, so a few
 * masks come out otherwise than one line a run (the same count here, 52, but not the same lines).
 */
const EVAL_INT8_CHANGED = 52
/** The bar for int4 ("on a trained model, masked-token top-1 agreement ≥ 0.98"): not met here. */
const INT4_BAR = 0.98

const albertkit = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 })

/**
 * The lines of the held-out file where the model's top-1 at the mask differs from transformers'.
 * One line a run, as transformers ran them: int8's activations are quantized per tensor at run
 * time, so what else shares the batch (and its padding) moves their scales.
 */
async function disagreements(file: string): Promise<number[]> {
  const session = await createSession(file)
  const differ: number[] = []
  for (const ex of examples) {
    const logits = (await runSession(session, rowFeed(ex.input_ids))).get('logits')!
    const vocab = logits.dims[2]!
    const base = ex.mask_position * vocab
    let best = 0
    for (let j = 1; j < vocab; j++) if (logits.data[base + j]! > logits.data[base + best]!) best = j
    if (best !== ex.top1_id) differ.push(ex.line)
  }
  return differ
}

interface EvalCandidate {
  file: string
  comparison: { changed: number; examples: number; changedExamples: number[] }
}
interface Report {
  evaluation: { examples: number; skipped: number; reference: { metrics: { hits_top1: number; total: number } }; candidates: EvalCandidate[] }
}

describe('albert-mlm-trained: masked-token top-1 agreement with transformers', () => {
  const work = tempDir()
  const models: Record<keyof typeof AGREEMENT, string> = {
    'fp32': path.join(work, 'precisions', 'onnx', 'model.onnx'),
    'int8': path.join(work, 'precisions', 'onnx', 'model_int8.onnx'),
    'int4 (mse)': path.join(work, 'precisions', 'onnx', 'model_q4.onnx'),
    'int4 (gptq)': path.join(work, 'gptq', 'onnx', 'model_q4.onnx'),
    'web fp32': path.join(work, 'web', 'onnx', 'model.onnx'),
    'web fp16': path.join(work, 'web', 'onnx', 'model_fp16.onnx'),
    'web q4': path.join(work, 'web', 'onnx', 'model_q4.onnx'),
    'web q8': path.join(work, 'web', 'onnx', 'model_quantized.onnx'),
  }
  let report: Report
  const differ = {} as Record<keyof typeof AGREEMENT, number[]>

  before(async () => {
    const r = albertkit('convert', DIR, '-o', path.join(work, 'precisions'), '--precision', 'fp32,int8,int4', '--no-verify', '--eval', HELDOUT, '--json', '--quiet')
    assert.equal(r.status, 0, r.stderr)
    report = JSON.parse(r.stdout) as Report
    await convert({ checkpoint: DIR, out: path.join(work, 'web'), plans: targetPlans('web'), noVerify: true })
    await convert({ checkpoint: DIR, out: path.join(work, 'gptq'), precisions: ['int4'], noVerify: true, passOptions: { int4Rounding: 'gptq' } })
    for (const [k, file] of Object.entries(models)) differ[k as keyof typeof AGREEMENT] = await disagreements(file)
  })

  it(`the held-out file: ${TOTAL} masks, one a line, transformers right on ${reference.metrics.hits_top1}`, () => {
    assert.equal(reference.metrics.total, TOTAL)
    assert.ok(TOTAL >= 1000, `${TOTAL} masks`)
    assert.deepEqual(examples.map((e) => e.line), examples.map((_, i) => i + 1))
    for (const ex of examples) assert.equal(ex.input_ids.filter((id) => id === 4).length, 1, `line ${ex.line}: one [MASK]`)
  })

  it('fp32 (and the web fp32) agree with transformers at every mask', () => {
    assert.deepEqual(differ['fp32'], [], `fp32 differs on lines ${differ['fp32'].slice(0, 10)}`)
    assert.deepEqual(differ['web fp32'], [], `web fp32 differs on lines ${differ['web fp32'].slice(0, 10)}`)
  })

  it('each model\'s agreement, as measured', () => {
    const measured = Object.fromEntries(Object.entries(differ).map(([k, d]) => [k, TOTAL - d.length]))
    const shares = Object.entries(measured).map(([k, n]) => `${k} ${n}/${TOTAL} = ${(n / TOTAL).toFixed(4)}`).join(', ')
    assert.deepEqual(measured, AGREEMENT, shares)
  })

  it(`int4 stays under the issue's ${INT4_BAR} on this model`, () => {
    for (const k of ['int4 (mse)', 'int4 (gptq)', 'web q4'] as const) {
      const share = (TOTAL - differ[k].length) / TOTAL
      assert.ok(share < INT4_BAR, `${k} agrees on ${share.toFixed(4)} of the masks: the bar is met, say so here and in the issue`)
    }
  })

  it('convert --eval counts the same changed predictions (albertkit\'s fp32 is transformers\', its tokenizer the same ids)', () => {
    const e = report.evaluation
    assert.deepEqual([e.examples, e.skipped], [TOTAL, 0])
    assert.equal(e.reference.metrics.hits_top1, reference.metrics.hits_top1, 'fp32 top-1 hits as transformers')
    const files: Record<string, 'fp32' | 'int8' | 'int4 (mse)'> = { 'onnx/model.onnx': 'fp32', 'onnx/model_int8.onnx': 'int8', 'onnx/model_q4.onnx': 'int4 (mse)' }
    assert.deepEqual(e.candidates.map((c) => c.file), Object.keys(files))
    for (const c of e.candidates) {
      const key = files[c.file]!
      if (key === 'int8') {
        assert.equal(c.comparison.changed, EVAL_INT8_CHANGED, `${c.file}: --eval's changed (one line a run: ${differ[key].length})`)
        continue
      }
      assert.equal(c.comparison.changed, differ[key].length, `${c.file}: --eval's changed`)
      assert.deepEqual(c.comparison.changedExamples, differ[key].slice(0, c.comparison.changedExamples.length), `${c.file}: the changed lines`)
    }
  })
})
