/**
 * `node dist/bench/eval.js [examples] [tokens]`: what labelled evaluation costs (src/eval).
 * - albert-seqcls-trained's dev set (500 snippets) in fp32 and albertkit's int4: wall time,
 *   the model's share, and the comparison's bootstrap;
 * - an albert-base-shaped classifier (synthetic weights, 4 labels, test/support/synthetic.ts) in
 *   fp32 and int8 on `examples` texts (default 1,000: dev + heldout) of their own length, or
 *   cut / repeated to `tokens` tokens each;
 * - the bootstrap alone on 500 to 100,000 examples.
 * - `albertkit verify CKPT model_int8.onnx --eval FILE` on that albert-base-shaped model, end to end.
 * Times are wall clock on this machine; CPU time is printed beside them (a shared machine's wall
 * time says more about its load than about albertkit). Everything it writes goes to one temp folder,
 * removed when it ends.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { encodeSafetensors } from '../src/checkpoint/safetensors.js'
import { openCheckpoint } from '../src/checkpoint/index.js'
import { buildAlbert } from '../src/builder/albert.js'
import { resolveTask } from '../src/checkpoint/task.js'
import type { Model } from '../src/ir/graph.js'
import { Tensor } from '../src/ir/tensor.js'
import { modelBytes } from '../src/onnx/file.js'
import { passByName } from '../src/passes/index.js'
import { runPasses } from '../src/passes/pass.js'
import { createSession, runSession } from '../src/runtime/session.js'
import { openTokenizer } from '../src/tokenizer/index.js'
import { ClassificationScorer, Labels, compareEval, evaluate, type EvalModel, type EvalResult } from '../src/eval/index.js'
import { ALBERT_BASE, albertModelTensors } from '../test/support/synthetic.js'
import { ROOT } from './measure.js'
import { runBounded } from '../test/support/bounded.js'

const TRAINED = path.join(ROOT, 'fixtures', 'albert-seqcls-trained')

function build(dir: string): { model: Model; config: EvalModel } {
  const ckpt = openCheckpoint(dir)
  const task = resolveTask(ckpt.config, undefined, ckpt.configFile)
  return { model: buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.dir, configFile: ckpt.configFile }).model, config: ckpt.config }
}

async function quantized(dir: string, pass: string): Promise<Model> {
  const { model } = build(dir)
  await runPasses(model, [passByName(pass)])
  return model
}

async function timed(label: string, model: Model, config: EvalModel, file: string): Promise<EvalResult> {
  const session = await createSession(modelBytes(model))
  const cpu = process.cpuUsage()
  const r = await evaluate('text-classification', file, openTokenizer(TRAINED), config, (f) => runSession(session, f))
  const used = process.cpuUsage(cpu)
  await session.release()
  const s = r.seconds
  console.log(
    `${label}: ${r.examples} examples, ${r.batches} batches, accuracy ${r.metrics.accuracy!.toFixed(4)}: ${s.total.toFixed(2)} s wall (model ${s.model.toFixed(2)} s), ${((used.user + used.system) / 1e6).toFixed(2)} s CPU`,
  )
  return r
}

/** Everything the bench writes; removed when it ends. */
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'albertkit-bench-eval-'))
process.on('exit', () => fs.rmSync(scratch, { recursive: true, force: true }))
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130))

function syntheticBase(): string {
  const dir = path.join(scratch, 'albert-base')
  fs.mkdirSync(dir, { recursive: true })
  // the trained fixture's tokenizer (its 1,000 ids are all within albert-base's 30,000)
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'spiece.model']) fs.copyFileSync(path.join(TRAINED, f), path.join(dir, f))
  const tensors = new Map<string, Tensor>()
  for (const [k, v] of albertModelTensors(ALBERT_BASE)) tensors.set(`albert.${k}`, v)
  const w = new Float32Array(4 * ALBERT_BASE.hidden_size).map((_, i) => Math.sin(i) * 0.05)
  tensors.set('classifier.weight', Tensor.fromFloat32([4, ALBERT_BASE.hidden_size], w))
  tensors.set('classifier.bias', Tensor.fromFloat32([4], new Float32Array(4)))
  const id2label = { 0: 'en', 1: 'eo', 2: 'es', 3: 'it' }
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...ALBERT_BASE, model_type: 'albert', architectures: ['AlbertForSequenceClassification'], id2label, label2id: { en: 0, eo: 1, es: 2, it: 3 } }))
  fs.writeFileSync(path.join(dir, 'model.safetensors'), Buffer.concat(encodeSafetensors(tensors)))
  return dir
}

/** `examples` lines from dev + heldout, each repeated to about `tokens` tokens when asked. */
function evalFile(examples: number, tokens: number | undefined): string {
  const lines = [...fs.readFileSync(path.join(TRAINED, 'dev.jsonl'), 'utf8').trim().split('\n'), ...fs.readFileSync(path.join(TRAINED, 'heldout.jsonl'), 'utf8').trim().split('\n')]
  const out: string[] = []
  for (let i = 0; i < examples; i++) {
    const ex = JSON.parse(lines[i % lines.length]!) as { text: string; label: string }
    // a snippet is about 5 tokens; repeat it to reach the length asked for
    if (tokens) ex.text = Array.from({ length: Math.max(1, Math.round((tokens - 2) / 5)) }, () => ex.text).join(' ')
    out.push(JSON.stringify(ex))
  }
  const file = path.join(scratch, `eval-${examples}-${tokens ?? 'own'}.jsonl`)
  fs.writeFileSync(file, `${out.join('\n')}\n`)
  return file
}

const examples = Number(process.argv[2] ?? 1000)
const tokens = process.argv[3] ? Number(process.argv[3]) : undefined

console.log(`albert-seqcls-trained (74,180 parameters), dev.jsonl`)
const dev = path.join(TRAINED, 'dev.jsonl')
const small = build(TRAINED)
const ref = await timed('  fp32', small.model, small.config, dev)
const int4 = await timed('  int4', await quantized(TRAINED, 'quantize-int4'), small.config, dev)
const cmp = compareEval(ref, int4)
console.log(`  int4 vs fp32: drop ${cmp.drops[0]!.drop} points, 95% [${cmp.drops[0]!.interval.join(', ')}], ${cmp.changed} changed; bootstrap ${cmp.bootstrap.resamples} resamples in ${cmp.bootstrap.seconds.toFixed(2)} s`)

console.log(`albert-base-shaped classifier (synthetic weights), ${examples} examples${tokens ? ` of ~${tokens} tokens` : ' of their own length (~5 tokens)'}`)
const base = syntheticBase()
const file = evalFile(examples, tokens)
const fp32 = build(base)
await timed('  fp32', fp32.model, fp32.config, file)
await timed('  int8', await quantized(base, 'quantize-int8'), fp32.config, file)

// the command end to end: `albertkit verify CKPT model_int8.onnx --eval FILE` (parity on random
// inputs, the fp32 reference and the int8 model on every example, the bootstrap)
const converted = path.join(scratch, 'converted')
const made = await runBounded(['convert', base, '-o', converted, '--precision', 'int8', '--no-verify', '--quiet'], { cpu: 600, mb: 8000 })
if (made.status !== 0) throw new Error(`convert failed: ${made.stderr}`)
const v = await runBounded(['verify', base, path.join(converted, 'onnx', 'model_int8.onnx'), '--eval', file, '--json', '--quiet'], { cpu: 1200, mb: 8000 })
if (v.status !== 0 && v.status !== 1) throw new Error(`verify failed: ${v.stderr}`)
const e = JSON.parse(v.stdout).eval
console.log(
  `  albertkit verify --eval (int8, ${e.examples} examples): ${(v.ms / 1000).toFixed(1)} s wall, ${(v.cpuMs / 1000).toFixed(1)} s CPU, peak ${v.peakMB.toFixed(0)} MB; fp32 reference ${e.reference.seconds.toFixed(1)} s, int8 ${e.candidates[0].seconds.toFixed(1)} s, bootstrap ${e.candidates[0].comparison.bootstrap.seconds.toFixed(2)} s; drop ${e.candidates[0].comparison.drops[0].drop} points, ${e.candidates[0].comparison.changed} changed`,
)

console.log('bootstrap alone (accuracy and macro-F1, 4 labels)')
const labels = Labels.of(small.config)
for (const n of [500, 1000, 10_000, 100_000]) {
  const a = new ClassificationScorer(labels)
  const b = new ClassificationScorer(labels)
  for (let i = 0; i < n; i++) {
    a.record(i + 1, i % 4, i % 4)
    b.record(i + 1, i % 4, i % 7 === 0 ? (i + 1) % 4 : i % 4)
  }
  const cpu = process.cpuUsage()
  const c = compareEval({ task: 'text-classification', file: 'x', scorer: a }, { task: 'text-classification', file: 'x', scorer: b })
  const used = process.cpuUsage(cpu)
  console.log(`  ${n} examples: ${c.bootstrap.resamples} resamples, ${c.bootstrap.seconds.toFixed(2)} s wall, ${((used.user + used.system) / 1e6).toFixed(2)} s CPU`)
}
