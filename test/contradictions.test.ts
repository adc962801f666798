/**
 * Flags that contradict each other, or that the run cannot use, are usage errors (exit code 2)
 * naming both sides, found before anything is read (the checkpoint here does not even exist) and
 * with nothing written. One rule for the verification sequence everywhere: an explicit --sequence
 * (flag or recipe) or --fixed-shape beyond the model's positions is refused; the default adapts to
 * min(64, positions), and every report states the sequence that ran.
 *
 * The commands run in this process (oclif's Command.run), which keeps the many cases fast.
 */
import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { format } from 'node:util'
import { Config } from '@oclif/core'
import { ROOT, fixtureDir, tempDir } from './support/helpers.js'
import Convert from '../src/commands/convert.js'
import Optimize from '../src/commands/optimize.js'
import Verify from '../src/commands/verify.js'
import { resolveInputSpec } from '../src/verify/inputs.js'
import type { AlbertConfig } from '../src/checkpoint/config.js'

const work = tempDir()
const NOWHERE = path.join(work, 'no-such-checkpoint')
const MODEL = fixtureDir('albert-model')
const ONNX = path.join(MODEL, 'export', 'model.onnx')
let config: Config

type Runnable = { run(argv: string[], config: Config): Promise<unknown> }

/**
 * Run a command here, capturing stdout (oclif prints results through console.log; the test
 * reporter writes to process.stdout, which is left alone), stderr and the exit code.
 */
async function run(command: Runnable, ...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = []
  const err: string[] = []
  const [log, stderr, exitCode] = [console.log, process.stderr.write, process.exitCode]
  console.log = (...args: unknown[]) => void out.push(`${format(...args)}\n`)
  process.stderr.write = ((t: string) => err.push(String(t)) > 0) as typeof process.stderr.write
  process.exitCode = undefined
  let code = 0
  try {
    await command.run(argv, config)
    code = Number(process.exitCode ?? 0)
  } catch (e) {
    const exit = (e as { oclif?: { exit?: number } }).oclif?.exit
    if (exit === undefined) throw e
    code = exit
  } finally {
    console.log = log
    process.stderr.write = stderr
    process.exitCode = exitCode
  }
  return { code, stdout: out.join(''), stderr: err.join('') }
}

function recipe(name: string, json: object): string {
  const file = path.join(work, name)
  fs.writeFileSync(file, JSON.stringify(json))
  return file
}

/** Exit code 2, exactly this one line on stderr, nothing on stdout, nothing at `out`. */
async function refused(command: Runnable, argv: string[], message: string, out?: string): Promise<void> {
  const r = await run(command, ...argv)
  assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`)
  assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('Error: ')).join('\n'), `Error: ${message}`)
  assert.equal(r.stdout, '')
  if (out) assert.equal(fs.existsSync(out), false, `nothing at ${out}`)
}

before(async () => {
  config = await Config.load(ROOT)
})

describe('convert: contradicting flags are refused before anything is read', () => {
  const out = path.join(work, 'never')
  const convert = (flags: string[], message: string) => refused(Convert, [NOWHERE, '--out', out, ...flags], message, out)

  it('--target with --precision: both choose the models', async () => {
    await convert(['--target', 'cpu', '--precision', 'fp16'], '--target cpu and --precision fp16 both choose the models to emit (--target cpu writes model.onnx, model_int8.onnx); give one of them')
    await convert(['--target', 'gpu', '--precision', 'fp32'], '--target gpu and --precision fp32 both choose the models to emit (--target gpu writes model.onnx, model_fp16.onnx); give one of them')
  })

  it('pass options no emitted model reads', async () => {
    await convert(['--calibration', 'samples.safetensors'], '--calibration does nothing with --precision fp32 (the default): only quantize-qdq, quantize-weights read it (--target mobile)')
    await convert(['--target', 'cpu', '--calibration', 'samples.safetensors'], '--calibration does nothing with --target cpu: only quantize-qdq, quantize-weights read it (--target mobile)')
    await convert(['--precision', 'fp32,int8', '--block-size', '64'], '--block-size does nothing with --precision fp32,int8: only quantize-int4 reads it (int4 models)')
    await convert(['--target', 'gpu', '--asymmetric'], '--asymmetric does nothing with --target gpu: only quantize-int4 reads it (int4 models)')
    await convert(['--precision', 'fp16', '--per-tensor'], '--per-tensor does nothing with --precision fp16: only quantize-int8, quantize-qdq, quantize-weights read it (int8 models)')
    await convert(['--keep-ops', 'Gather'], '--keep-ops does nothing with --precision fp32 (the default): only quantize-int8, quantize-int4, quantize-qdq, quantize-weights, fp16 read it (int8, int4 and fp16 models)')
    await convert(['--precision', 'fp32', '--keep-nodes', 'MatMul_1'], '--keep-nodes does nothing with --precision fp32: only quantize-int8, quantize-int4, quantize-qdq, quantize-weights, fp16 read it (int8, int4 and fp16 models)')
    await convert(['--target', 'mobile', '--standard-ops'], '--standard-ops does nothing with --target mobile: only quantize-int8 reads it (int8 models without a target)')
    await convert(['--refactor'], '--refactor does nothing with --precision fp32 (the default): only factorization-check reads it (optimize --passes factorization-check)')
  })

  it('--standard-ops with models that need com.microsoft ops', async () => {
    await convert(['--target', 'cpu', '--standard-ops'], '--standard-ops contradicts --target cpu: fuse-attention writes com.microsoft ops')
    await convert(['--precision', 'int8,int4', '--standard-ops'], '--standard-ops contradicts --precision int8,int4: quantize-int4 writes com.microsoft ops')
  })

  it('verification flags with --no-verify, and input shapes --fixed-shape overrides', async () => {
    await convert(['--no-verify', '--cosine', '0.9'], '--cosine sets up the parity verdict and does nothing with --no-verify')
    await convert(['--no-verify', '--seed', '3', '--batch', '2', '--sequence', '8', '--max-abs', '1', '--top1', '0.5'], '--seed, --batch, --sequence, --max-abs, --top1 set up the parity verdict and do nothing with --no-verify')
    await convert(['--no-verify', '--text', 'hello'], '--text and --text-file choose verification inputs; they cannot go with --no-verify')
    await convert(['--target', 'mobile', '--fixed-shape', '1,16', '--batch', '2', '--sequence', '16'], '--batch, --sequence do nothing with --fixed-shape 1,16: verification runs at the pinned shape')
    await convert(['--target', 'mobile', '--fixed-shape', '1,16', '--text', 'hello'], '--text cannot verify a model with --fixed-shape (texts vary in length; the model takes exactly the pinned shape)')
    await convert(['--fixed-shape', '1,16'], '--fixed-shape needs --target mobile')
  })

  it('--verbose with --quiet', async () => {
    await convert(['--verbose', '--quiet'], '--verbose and --quiet contradict each other (--quiet prints nothing on stderr but errors)')
  })

  it('a recipe: a contradiction is refused from it too; an option it holds for other commands is left alone', async () => {
    const cpu = recipe('cpu-standard.json', { target: 'cpu', options: { 'standard-ops': true } })
    await convert(['--recipe', cpu], `${cpu}: options.standard-ops contradicts --target cpu (from ${cpu}): fuse-attention writes com.microsoft ops`)
    const shared = recipe('shared.json', { precisions: ['fp32', 'int8'], options: { 'block-size': 64 } })
    await convert(['--recipe', shared, '--asymmetric'], `--asymmetric does nothing with --precision fp32,int8 (from ${shared}): only quantize-int4 reads it (int4 models)`)
    // block-size is there for optimize runs that make int4 models: convert goes on (and finds no checkpoint).
    const r = await run(Convert, NOWHERE, '--out', out, '--recipe', shared)
    assert.equal(r.code, 3, r.stderr)
    assert.match(r.stderr, /no-such-checkpoint: no such file or folder/)
  })
})

describe('optimize and verify: flags the run cannot use', () => {
  const out = path.join(work, 'never.onnx')

  it('optimize: pass options none of the passes reads, and --standard-ops with a fusion', async () => {
    const optimize = (flags: string[], message: string) => refused(Optimize, [path.join(work, 'no-such.onnx'), '--out', out, ...flags], message, out)
    await optimize(['--passes', 'dedup', '--block-size', '64'], '--block-size does nothing with --passes dedup: only quantize-int4 reads it')
    await optimize(['--passes', 'dedup,quantize-int8', '--refactor'], '--refactor does nothing with --passes dedup,quantize-int8: only factorization-check reads it')
    await optimize(['--per-tensor'], '--per-tensor does nothing with --passes dedup,fold-constants,remove-unused,sort-and-name (the default): only quantize-int8, quantize-qdq, quantize-weights read it')
    await optimize(['--passes', 'fuse-attention,quantize-int8', '--standard-ops'], '--standard-ops contradicts --passes fuse-attention,quantize-int8: fuse-attention writes com.microsoft ops')
    await optimize(['--verbose', '-q'], '--verbose and --quiet contradict each other (--quiet prints nothing on stderr but errors)')
  })

  it('optimize takes the options its passes read', async () => {
    const r = await run(Optimize, ONNX, '--out', path.join(work, 'q4.onnx'), '--passes', 'dedup,quantize-int4', '--block-size', '16', '--asymmetric', '--keep-ops', 'Gather', '--json')
    assert.equal(r.code, 0, r.stderr)
    const q4 = JSON.parse(r.stdout).passes[1]
    assert.deepEqual([q4.pass, q4.stats.blockSize, q4.stats.asymmetric], ['quantize-int4', 16, true])
  })

  it('verify: --task with --golden, whose goldens are the reference', async () => {
    await refused(Verify, [NOWHERE, ONNX, '--golden', 'g.safetensors', '--inputs', 'i.safetensors', '--task', 'fill-mask'], '--task chooses the head of the reference graph and does nothing with --golden (the goldens are the reference)')
  })
})

describe('the verification sequence: one rule everywhere', () => {
  const limit = (what: string, dir = MODEL, positions = 32) => `${what} is beyond the model's ${positions} positions (max_position_embeddings in ${dir}/config.json); give ${positions} or fewer`

  it('an explicit --sequence beyond the positions is a usage error naming it and the limit, in convert and verify', async () => {
    const out = path.join(work, 'long')
    await refused(Convert, [MODEL, '--out', out, '--sequence', '33'], limit('--sequence 33'), out)
    await refused(Verify, [MODEL, ONNX, '--sequence', '1000'], limit('--sequence 1000'))
    const long = recipe('long.json', { inputs: { sequence: 100 } })
    await refused(Convert, [MODEL, '--out', out, '--recipe', long], limit(`${long}: inputs.sequence 100`), out)
    await refused(Verify, [MODEL, ONNX, '--recipe', long], limit(`${long}: inputs.sequence 100`))
    await refused(Convert, [MODEL, '--out', out, '--target', 'mobile', '--fixed-shape', '1,33'], limit('--fixed-shape 1,33 (sequence 33)'), out)
    const pinned = recipe('pinned.json', { target: 'mobile', options: { 'fixed-shape': [1, 40] } })
    await refused(Convert, [MODEL, '--out', out, '--recipe', pinned], limit(`${pinned}: options.fixed-shape 1,40 (sequence 40)`), out)
  })

  it('the default adapts to the model, and the reports say what ran', async () => {
    const v = await run(Verify, MODEL, ONNX, '--json')
    assert.equal(v.code, 0, v.stderr)
    assert.equal(JSON.parse(v.stdout).inputs, 'random, seed 1234, batch 3, sequence 32')
    const exact = await run(Verify, MODEL, ONNX, '--sequence', '32', '--json')
    assert.equal(JSON.parse(exact.stdout).inputs, 'random, seed 1234, batch 3, sequence 32', 'all the positions may be asked for')
    const out = path.join(work, 'default')
    const c = await run(Convert, MODEL, '--out', out, '--json')
    assert.equal(c.code, 0, c.stderr)
    assert.deepEqual(JSON.parse(c.stdout).verification.inputs, { batch: 3, sequence: 32, seed: 1234, choices: 2 })
    assert.match(c.stderr, /^verifying: 1 of 1 within tolerance; inputs: random, seed 1234, batch 3, sequence 32 \(\d+\.\ds\)$/m)
  })

  it('resolves the default as min(64, positions); an explicit sequence stays as asked', () => {
    const model = (positions: number) => ({ maxPositionEmbeddings: positions }) as AlbertConfig
    assert.equal(resolveInputSpec({ batch: 3, seed: 1 }, model(512), 'c.json').sequence, 64)
    assert.equal(resolveInputSpec({ batch: 3, seed: 1 }, model(40), 'c.json').sequence, 40)
    assert.equal(resolveInputSpec({ batch: 3, seed: 1, sequence: 100 }, model(512), 'c.json').sequence, 100)
    assert.throws(() => resolveInputSpec({ batch: 3, seed: 1, sequence: 41 }, model(40), 'c.json'), {
      name: 'UsageError',
      message: "--sequence 41 is beyond the model's 40 positions (max_position_embeddings in c.json); give 40 or fewer",
    })
  })
})
