/**
 * The command line in a terminal and in CI: exit codes that say whose problem it is (0 ok, 1
 * parity, 2 usage, 3 input/output, 4 bug), --json giving exactly one JSON document on stdout for
 * results, parity failures and errors alike, --quiet leaving only errors on stderr, plain progress
 * lines when stderr is not a terminal, and --help that documents all of it.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Config } from '@oclif/core'
import { BIN, ROOT, fixtureDir, tempDir } from './support/helpers.js'
import { EXIT, classify } from '../src/cli/exit-codes.js'
import { UsageError, UserError } from '../src/util/errors.js'
import { DecodeError } from '../src/onnx/decode.js'
import Inspect from '../src/commands/inspect.js'
import { Graph, Model } from '../src/ir/graph.js'
import { GraphBuilder } from '../src/ir/builder.js'
import { DataType } from '../src/ir/dtype.js'
import { Tensor } from '../src/ir/tensor.js'
import { writeModelFile } from '../src/onnx/file.js'

const work = tempDir()
const COMMANDS = ['convert', 'inspect', 'optimize', 'verify']
const ONNX = path.join(fixtureDir('albert-model'), 'export', 'model.onnx')

function albertkit(...args: string[]) {
  const env = { ...process.env }
  delete env.ALBERTKIT_DEBUG
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** stdout is one JSON document and nothing else (JSON.parse fails on anything before or after it). */
function jsonOut(r: { stdout: string; stderr: string }): any {
  try {
    return JSON.parse(r.stdout)
  } catch (e) {
    assert.fail(`stdout is not one JSON document (${String(e)}):\n${r.stdout}\n--- stderr\n${r.stderr}`)
  }
}

function assertErrorJson(r: { code: number | null; stdout: string; stderr: string }, kind: string, code: number, fragment: string | RegExp): void {
  assert.equal(r.code, code, r.stderr)
  const doc = jsonOut(r)
  assert.deepEqual(Object.keys(doc), ['error'])
  assert.deepEqual(Object.keys(doc.error), ['message', 'kind', 'exitCode'])
  assert.equal(doc.error.kind, kind)
  assert.equal(doc.error.exitCode, code)
  if (typeof fragment === 'string') assert.ok(doc.error.message.includes(fragment), doc.error.message)
  else assert.match(doc.error.message, fragment)
  assert.equal(r.stderr, `Error: ${doc.error.message}\n`, 'the same message, one line, on stderr')
}

/** An ONNX model whose embedding table is a folded low-rank product, which factorization-check warns about. */
function foldedModel(file: string): string {
  const [V, E, H] = [64, 4, 16]
  const x = Float32Array.from({ length: V * E }, (_, i) => Math.sin(i + 1))
  const w = Float32Array.from({ length: E * H }, (_, i) => Math.cos(3 * i + 1))
  const table = new Float32Array(V * H)
  for (let i = 0; i < V; i++) for (let j = 0; j < H; j++) for (let t = 0; t < E; t++) table[i * H + j] = table[i * H + j]! + x[i * E + t]! * w[t * H + j]!
  const g = new Graph()
  const ids = g.addValue('input_ids')
  ids.setTensorType(DataType.INT64, ['batch', 'seq'])
  g.inputs.push(ids)
  const out = new GraphBuilder(g).op('Gather', [g.addInitializer('embeddings.word_embeddings.weight', Tensor.fromFloat32([V, H], table)), ids])
  g.renameValue(out, 'hidden')
  out.setTensorType(DataType.FLOAT)
  g.outputs.push(out)
  writeModelFile(file, new Model(g))
  return file
}

describe('exit codes', () => {
  it('0: success', () => {
    assert.equal(albertkit('inspect', fixtureDir('albert-mlm')).code, EXIT.ok)
  })

  it('1: the parity verdict, from convert and verify', () => {
    const out = path.join(work, 'parity')
    // No cosine similarity reaches 2: the verdict must fail.
    const r = albertkit('convert', fixtureDir('albert-model'), '--out', out, '--cosine', '2')
    assert.equal(r.code, EXIT.parity, r.stderr)
    assert.match(r.stdout, /model\.onnx: fp32, .* parity FAIL/)
    assert.ok(fs.existsSync(path.join(out, 'report.json')), 'the files and the report are still written')
    const v = albertkit('verify', fixtureDir('albert-model'), path.join(out, 'onnx/model.onnx'), '--cosine', '2')
    assert.equal(v.code, EXIT.parity, v.stderr)
  })

  it('2: usage errors — unknown flag, missing argument, bad flag values — in one line', () => {
    const cases: [string[], RegExp][] = [
      [['convert', fixtureDir('albert-model'), '--out', path.join(work, 'u1'), '--bogus'], /^Error: Nonexistent flag: --bogus \(see albertkit convert --help\)$/],
      [['convert', '--out', path.join(work, 'u2')], /^Error: missing argument CHECKPOINT \(see albertkit convert --help\)$/],
      [['optimize', ONNX], /^Error: missing required flag --out \(see albertkit optimize --help\)$/],
      [['verify', fixtureDir('albert-model'), ONNX, '--seed', 'abc'], /^Error: Parsing --seed: Expected an integer but received: abc/],
      [['convert', fixtureDir('albert-model'), '--out', path.join(work, 'u3'), '--target', 'tpu'], /^Error: unknown target 'tpu'/],
      [['convert', fixtureDir('albert-model'), '--out', path.join(work, 'u4'), '--task', 'summarize'], /^Error: unknown task 'summarize'/],
      [['convert', fixtureDir('albert-model'), '--out', path.join(work, 'u5'), '--precision', 'int4', '--block-size', '20'], /^Error: --block-size must be a power of two/],
      [['convert', fixtureDir('albert-model'), '--out', path.join(work, 'u6'), '--top1', 'most'], /^Error: --top1 must be a number, got 'most'/],
      [['optimize', ONNX, '--out', path.join(work, 'u7.onnx'), '--passes', ','], /^Error: --passes names no pass/],
    ]
    for (const [args, message] of cases) {
      const r = albertkit(...args)
      assert.equal(r.code, EXIT.usage, `${args.join(' ')}: ${r.stderr}`)
      assert.equal(r.stderr.split('\n').length, 2, `one line: ${r.stderr}`)
      assert.match(r.stderr.trim(), message)
      assert.equal(r.stdout, '')
    }
    for (const n of [1, 2, 3, 4, 5, 6]) assert.ok(!fs.existsSync(path.join(work, `u${n}`)), 'nothing written')
  })

  it('3: input/output problems — missing or malformed files, output in the way', () => {
    const missing = albertkit('inspect', path.join(work, 'nope'))
    assert.equal(missing.code, EXIT.input)
    assert.match(missing.stderr, /^Error: .*nope: no such file or folder\n$/)
    const broken = path.join(work, 'broken.onnx')
    fs.writeFileSync(broken, 'not protobuf at all')
    assert.equal(albertkit('inspect', broken).code, EXIT.input)
    assert.equal(albertkit('verify', fixtureDir('albert-model'), broken).code, EXIT.input)
    const exists = path.join(work, 'exists.onnx')
    fs.writeFileSync(exists, 'x')
    const r = albertkit('optimize', ONNX, '--out', exists)
    assert.equal(r.code, EXIT.input)
    assert.match(r.stderr, /exists\.onnx: already exists and is not an ONNX file albertkit wrote/)
  })

  it('4: a bug is an internal error, one line, with the stack only under ALBERTKIT_DEBUG', async () => {
    class Broken extends Inspect {
      override async run(): Promise<never> {
        const nothing: { dims?: number[] } | undefined = undefined
        return nothing!.dims as never
      }
    }
    const config = await Config.load(ROOT)
    const stdout: string[] = []
    const stderr: string[] = []
    const [out, err] = [process.stdout.write, process.stderr.write]
    process.stdout.write = ((t: string) => stdout.push(String(t)) > 0) as typeof process.stdout.write
    process.stderr.write = ((t: string) => stderr.push(String(t)) > 0) as typeof process.stderr.write
    let exit: unknown
    try {
      await Broken.run(['anything', '--json'], config)
    } catch (e) {
      exit = (e as { oclif?: { exit?: number } }).oclif?.exit
    } finally {
      process.stdout.write = out
      process.stderr.write = err
    }
    assert.equal(exit, EXIT.internal)
    assert.equal(stderr.length, 1)
    assert.match(stderr[0]!, /^Error: Cannot read properties of undefined .* \(internal error; set ALBERTKIT_DEBUG=1 for details\)\n$/)
    const doc = JSON.parse(stdout.join(''))
    assert.equal(doc.error.kind, 'internal')
    assert.equal(doc.error.exitCode, 4)
  })

  it('sorts what commands throw', () => {
    assert.deepEqual(classify(new UsageError('--x must be a number')), { kind: 'usage', exitCode: 2, message: '--x must be a number' })
    assert.deepEqual(classify(new UserError('a.onnx: truncated')), { kind: 'input', exitCode: 3, message: 'a.onnx: truncated' })
    assert.equal(classify(new DecodeError('bad varint')).exitCode, 3)
    const enoent = Object.assign(new Error("EACCES: permission denied, open 'x/config.json'"), { code: 'EACCES', syscall: 'open' })
    assert.deepEqual(classify(enoent), { kind: 'input', exitCode: 3, message: 'x/config.json: permission denied' })
    assert.equal(classify(new RangeError('Invalid array length')).exitCode, 4)
  })
})

describe('--json: one JSON document on stdout, whatever happens', () => {
  it('every command, on success', () => {
    const inspected = albertkit('inspect', fixtureDir('albert-mlm'), '--json')
    assert.equal(inspected.code, 0)
    assert.equal(jsonOut(inspected).kind, 'checkpoint')
    assert.match(inspected.stderr, /^reading .*albert-mlm: checkpoint, safetensors \(\d+\.\ds\)$/m, 'progress still goes to stderr')

    const out = path.join(work, 'json-ok')
    const converted = albertkit('convert', fixtureDir('albert-model'), '--out', out, '--json')
    assert.equal(converted.code, 0, converted.stderr)
    const report = jsonOut(converted)
    assert.equal(report.verification.pass, true)
    assert.match(converted.stderr, /^verifying: 1 of 1 within tolerance/m)

    const optimized = albertkit('optimize', path.join(out, 'onnx/model.onnx'), '--out', path.join(work, 'json-ok.onnx'), '--json')
    assert.equal(optimized.code, 0, optimized.stderr)
    assert.deepEqual(jsonOut(optimized).passes.map((p: { pass: string }) => p.pass), ['dedup', 'fold-constants', 'remove-unused', 'sort-and-name'])

    const verified = albertkit('verify', fixtureDir('albert-model'), path.join(out, 'onnx/model.onnx'), '--json')
    assert.equal(verified.code, 0, verified.stderr)
    assert.equal(jsonOut(verified).pass, true)
  })

  it('a parity failure: the report, exit code 1', () => {
    const r = albertkit('convert', fixtureDir('albert-model'), '--out', path.join(work, 'json-parity'), '--cosine', '2', '--json')
    assert.equal(r.code, 1, r.stderr)
    const report = jsonOut(r)
    assert.equal(report.verification.pass, false)
    assert.equal(report.artifacts[0].verdict.pass, false)
    assert.match(r.stderr, /^Error: parity check failed/m)
  })

  it('errors of every kind, from every command', () => {
    assertErrorJson(albertkit('inspect', path.join(work, 'nope'), '--json'), 'input', 3, 'no such file or folder')
    assertErrorJson(albertkit('inspect', '--json'), 'usage', 2, 'missing argument TARGET')
    assertErrorJson(albertkit('convert', fixtureDir('albert-model'), '--out', path.join(work, 'j1'), '--precision', 'fp64', '--json'), 'usage', 2, "unknown precision 'fp64'")
    assertErrorJson(albertkit('convert', path.join(work, 'nope'), '--out', path.join(work, 'j2'), '--json'), 'input', 3, 'no such file or folder')
    assertErrorJson(albertkit('optimize', ONNX, '--out', path.join(work, 'j3.onnx'), '--passes', 'shrink', '--json'), 'usage', 2, "unknown pass 'shrink'")
    assertErrorJson(albertkit('optimize', path.join(work, 'nope.onnx'), '--out', path.join(work, 'j4.onnx'), '--json'), 'input', 3, 'nope.onnx')
    assertErrorJson(albertkit('verify', fixtureDir('albert-model'), '--json'), 'usage', 2, 'missing argument CANDIDATES')
    assertErrorJson(albertkit('verify', fixtureDir('albert-model'), path.join(work, 'nope.onnx'), '--json'), 'input', 3, 'nope.onnx: no such file')
    assertErrorJson(albertkit('verify', fixtureDir('albert-model'), ONNX, '--bogus', '--json'), 'usage', 2, 'Nonexistent flag: --bogus')
  })
})

describe('an unknown command', () => {
  it('is a usage error naming the commands there are, as JSON with --json', () => {
    const plain = albertkit('conver', 'fixtures/albert-mlm')
    assert.equal(plain.code, 2)
    assert.equal(plain.stderr, "Error: unknown command 'conver'; did you mean convert? (commands: convert, inspect, optimize, verify; see albertkit --help)\n")
    const json = albertkit('nosuch', '--json')
    assert.equal(json.code, 2)
    assert.deepEqual(JSON.parse(json.stdout), { error: { message: "unknown command 'nosuch' (commands: convert, inspect, optimize, verify; see albertkit --help)", kind: 'usage', exitCode: 2 } })
  })
})

describe('--quiet', () => {
  it('leaves stderr empty on success; the results still print', () => {
    const out = path.join(work, 'quiet')
    const r = albertkit('convert', fixtureDir('albert-model'), '--out', out, '--precision', 'fp32,int8', '-q')
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stderr, '')
    assert.match(r.stdout, /onnx\/model\.onnx: fp32, .* parity PASS\n.*onnx\/model_int8\.onnx: int8, .* parity PASS\n.*onnx\/model_quantized\.onnx: hard link to onnx\/model_int8\.onnx \(transformers\.js dtype q8\)\n$/)
    const i = albertkit('inspect', fixtureDir('albert-model'), '--quiet')
    assert.equal(i.stderr, '')
    assert.match(i.stdout, /parameters +stored/)
  })

  it('drops warnings, keeps errors', () => {
    const model = foldedModel(path.join(work, 'folded.onnx'))
    const loud = albertkit('optimize', model, '--out', path.join(work, 'folded-1.onnx'), '--passes', 'factorization-check')
    assert.equal(loud.code, 0, loud.stderr)
    assert.match(loud.stderr, /^warning: embedding table .* has rank \d+: its factorization was folded/m)
    const quiet = albertkit('optimize', model, '--out', path.join(work, 'folded-2.onnx'), '--passes', 'factorization-check', '--quiet')
    assert.equal(quiet.code, 0, quiet.stderr)
    assert.equal(quiet.stderr, '')
    assert.match(quiet.stdout, /^factorization-check +no change/m)
    const failed = albertkit('optimize', model, '--out', path.join(work, 'folded-2.onnx'), '--quiet')
    assert.equal(failed.code, 3)
    assert.match(failed.stderr, /^Error: .*folded-2\.onnx: already exists/)
    assert.equal(failed.stderr.split('\n').length, 2)
    const parity = albertkit('convert', fixtureDir('albert-model'), '--out', path.join(work, 'quiet-parity'), '--cosine', '2', '-q')
    assert.equal(parity.code, 1)
    assert.match(parity.stderr, /^Error: parity check failed[^\n]*\n$/)
  })
})

describe('progress when stderr is not a terminal', () => {
  it('one plain line per step — no per-pass lines, no carriage returns, no escape sequences', () => {
    const r = albertkit('convert', fixtureDir('albert-seqcls'), '--out', path.join(work, 'plain'), '--precision', 'fp32,int8')
    assert.equal(r.code, 0, r.stderr)
    assert.ok(!r.stderr.includes('\r'), 'no carriage return')
    assert.ok(!r.stderr.includes('\x1b'), 'no escape sequence')
    const lines = r.stderr.trimEnd().split('\n')
    const expected = [
      /^reading checkpoint: safetensors, \d+ tensors \(\d+\.\ds\)$/,
      /^building text-classification graph: \d+ nodes, \d+ initializers \(\d+\.\ds\)$/,
      /^making onnx\/model\.onnx: \d+ nodes \(\d+\.\ds\)$/,
      /^making onnx\/model_int8\.onnx: \d+ nodes \(\d+\.\ds\)$/,
      /^verifying: 2 of 2 within tolerance; inputs: random, seed 1234, batch 3, sequence 32 \(\d+\.\ds\)$/,
      /^writing: 2 models \(\d+\.\ds\)$/,
    ]
    assert.equal(lines.length, expected.length, `one line per step:\n${r.stderr}`)
    expected.forEach((line, i) => assert.match(lines[i]!, line))
    assert.ok(!/reading checkpoint|verifying/.test(r.stdout), 'progress never goes to stdout')
    const o = albertkit('optimize', ONNX, '--out', path.join(work, 'plain.onnx'), '--passes', 'dedup,quantize-int8')
    assert.equal(o.code, 0, o.stderr)
    assert.match(o.stderr, /^running passes: 2 of 2 changed the graph; \d+ nodes \(\d+\.\ds\)$/m)
    assert.equal(o.stderr.trimEnd().split('\n').length, 3, o.stderr)
    assert.ok(!o.stderr.includes('\r') && !o.stderr.includes('\x1b'))
    const v = albertkit('verify', fixtureDir('albert-seqcls'), path.join(work, 'plain', 'onnx', 'model.onnx'), path.join(work, 'plain', 'onnx', 'model_int8.onnx'))
    assert.equal(v.code, 0, v.stderr)
    assert.match(v.stderr, /^reading checkpoint, inputs and models: safetensors, 2 models \(\d+\.\ds\)$/m)
    assert.match(v.stderr, /^running the fp32 reference \(text-classification\) \(\d+\.\ds\)$/m)
    assert.match(v.stderr, /^verifying: 2 of 2 within tolerance \(\d+\.\ds\)$/m)
    assert.ok(!v.stderr.includes('\r') && !v.stderr.includes('\x1b'))
  })

  it('--verbose adds every pass in columns, each verdict and each file written', () => {
    const r = albertkit('convert', fixtureDir('albert-seqcls'), '--out', path.join(work, 'plain-verbose'), '--precision', 'fp32,int8', '--verbose')
    assert.equal(r.code, 0, r.stderr)
    const passes = r.stderr.split('\n').filter((l) => /^ {2}onnx\//.test(l))
    assert.equal(passes.length, 5 + 6, 'five passes make model.onnx, six model_int8.onnx')
    assert.match(r.stderr, /^ {2}onnx\/model_int8\.onnx: quantize-int8 +changed +nodes \d+→\d+ +tensors \d+→\d+ +size [\d.]+→[\d.]+ kB +\d+ ms; weightsQuantized \d+/m)
    assert.match(r.stderr, /^ {2}onnx\/model\.onnx: {6}dedup +no change +nodes \d+ +tensors \d+ +size [\d.]+ kB +\d+ ms;/m)
    assert.match(r.stderr, /^PASS onnx\/model_int8\.onnx \(int8\)$/m)
    assert.match(r.stderr, /^wrote onnx\/model_int8\.onnx \(\d+ bytes\)$/m)
    const o = albertkit('optimize', ONNX, '--out', path.join(work, 'verbose.onnx'), '--passes', 'dedup,quantize-int8', '--verbose')
    assert.equal(o.code, 0, o.stderr)
    assert.match(o.stdout, /^quantize-int8 +changed +nodes \d+→\d+ +tensors \d+→\d+ +size [\d.]+→[\d.]+ kB +\d+ ms; weightsQuantized 11, readers \d+/m)
    const plain = albertkit('optimize', ONNX, '--out', path.join(work, 'plain-2.onnx'), '--passes', 'dedup,quantize-int8')
    assert.match(plain.stdout, /^quantize-int8 +changed +nodes \d+→\d+ +tensors \d+→\d+ +size [\d.]+→[\d.]+ kB +\d+ ms$/m, 'without --verbose, the columns alone')
  })

  it('a model out of tolerance shows its figures and what it missed in the results', () => {
    const r = albertkit('convert', fixtureDir('albert-model'), '--out', path.join(work, 'plain-fail'), '--cosine', '2')
    assert.equal(r.code, 1)
    assert.match(r.stdout, /^.*onnx\/model\.onnx: fp32, .* parity FAIL\n {2}last_hidden_state: max abs [^\n]*\n {4}✗ last_hidden_state: cosine 1\.000000 < 2\.000000 \(short by/m)
  })
})

describe('--help', () => {
  it('albertkit --help lists the commands', () => {
    const r = albertkit('--help')
    assert.equal(r.code, 0)
    for (const c of COMMANDS) assert.match(r.stdout, new RegExp(`^ {2}${c} +\\S`, 'm'), `lists ${c}`)
  })

  for (const c of COMMANDS) {
    it(`${c} --help documents exit codes, --json and --quiet, with examples`, () => {
      const r = albertkit(c, '--help')
      assert.equal(r.code, 0)
      assert.match(r.stdout, /^EXIT CODES\n {2}0 +success: [^]*docs\/exit-codes\.md/m)
      assert.match(r.stdout, /^ +2 +usage: /m)
      assert.match(r.stdout, /^ +3 +input\/output: /m)
      assert.match(r.stdout, /^ +4 +internal error/m)
      if (c !== 'inspect') assert.match(r.stdout, /^ +1 +parity check failed/m)
      else assert.doesNotMatch(r.stdout, /parity check failed/)
      assert.match(r.stdout, /-q, --quiet +print nothing on stderr but errors/)
      assert.match(r.stdout, /--json +print exactly one JSON document on stdout/)
      assert.match(r.stdout, /EXAMPLES[\s\S]*\$ albertkit [\s\S]*--json/, 'an example shows --json')
    })
  }

  it('every flag of every command has a description; recipe-taking commands show --recipe in an example', async () => {
    const config = await Config.load(ROOT)
    for (const id of COMMANDS) {
      const cmd = await config.findCommand(id)!.load()
      for (const [name, flag] of Object.entries(cmd.flags ?? {})) {
        assert.ok(flag.description && flag.description.length > 10, `${id} --${name} has a description`)
      }
      if ('recipe' in (cmd.flags ?? {})) {
        const examples = (cmd.examples ?? []).map((e) => (typeof e === 'string' ? e : e.command)).join('\n')
        assert.match(examples, /--recipe/, `${id} shows --recipe`)
      }
    }
  })
})
