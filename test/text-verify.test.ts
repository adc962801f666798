/**
 * `verify --text` / `--text-file` end to end: real text through the checkpoint's tokenizer drives
 * the reference and the candidate, the report shows the tokens, and bad text inputs or a checkpoint
 * without a tokenizer stop with one line.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { BIN, fixtureDir, tempDir } from './support/helpers.js'
import { readModelFile, writeModelFile } from '../src/onnx/file.js'
import { Tensor } from '../src/ir/tensor.js'

const albertkit = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' })
const work = tempDir()
const MLM = fixtureDir('albert-mlm')
/** torch.onnx.export of the MLM fixture */
const MODEL = path.join(MLM, 'export', 'model.onnx')

interface Sample {
  text: string
  pair: string | null
  input_ids: number[]
  tokens: string[]
}
const SAMPLES: Sample[] = JSON.parse(fs.readFileSync(path.join(MLM, 'meta.json'), 'utf8')).tokenizer.samples
const [FOX, LIBRARY] = SAMPLES as [Sample, Sample]

interface Row {
  text: string
  pair?: string
  length: number
  ids: number[]
  tokens: string[]
}

function expectOneLineError(r: ReturnType<typeof albertkit>, ...fragments: string[]): void {
  assert.notEqual(r.status, 0, `exit code (stdout: ${r.stdout})`)
  assert.notEqual(r.status, 1, 'not the parity verdict')
  const lines = r.stderr.trim().split('\n')
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`)
  assert.doesNotMatch(r.stderr, /\bat .*\(.*:\d+:\d+\)/, 'no stack trace')
  for (const f of fragments) assert.ok(r.stderr.includes(f), `stderr mentions "${f}": ${r.stderr}`)
}

describe('verify --text', () => {
  it('runs on the texts, shows the inputs and a token preview above the verdict', () => {
    const r = albertkit('verify', MLM, MODEL, '--text', FOX.text, '--text', 'Zebras quietly xylophone.')
    assert.equal(r.status, 0, r.stdout + r.stderr)
    const lines = r.stdout.split('\n')
    assert.match(lines[0]!, /; inputs: 2 texts from --text, 25 tokens \(longest\)$/)
    assert.equal(lines[1], '  [CLS] ▁the ▁qui c k ▁b … (25 tokens)')
    assert.equal(lines[2], '  [CLS] ▁ z e br as … (21 tokens)')
    assert.match(lines[3]!, /^PASS .*model\.onnx \(fp32\)$/)
    assert.match(lines[4]!, /^ {2}logits: max abs [\d.e-]+, mean abs [\d.e-]+, cosine 1\.000000, top-1 100\.00% \(4 padded positions left out\)$/)
  })

  it('--json carries the texts, their ids and tokens as transformers encodes them', () => {
    const r = albertkit('verify', MLM, '--text', FOX.text, MODEL, '--text', `${LIBRARY.text}\t${LIBRARY.pair}`, '--json')
    assert.equal(r.status, 0, r.stdout + r.stderr)
    const report = JSON.parse(r.stdout)
    assert.equal(report.inputs, '2 texts from --text, 26 tokens (longest)')
    assert.equal(report.text.source, '--text')
    assert.equal(report.text.tokenizer, path.join(MLM, 'tokenizer.json'))
    assert.equal(report.text.longest, 26)
    const rows: Row[] = report.text.rows
    assert.deepEqual(rows.map((x) => [x.text, x.pair, x.length]), [
      [FOX.text, undefined, 25],
      [LIBRARY.text, LIBRARY.pair, 26],
    ])
    assert.deepEqual(rows[0]!.ids, FOX.input_ids)
    assert.deepEqual(rows[0]!.tokens, FOX.tokens)
    assert.deepEqual(rows[1]!.ids, LIBRARY.input_ids)
    assert.deepEqual(rows[1]!.tokens, LIBRARY.tokens)
    assert.equal(report.pass, true)
    assert.ok(report.artifacts[0].outputs[0].maxAbs < 1e-4)
  })

  it('--text-file: one text a line, a TAB before the pair, blank lines skipped', () => {
    const file = path.join(work, 'texts.txt')
    fs.writeFileSync(file, `${FOX.text}\n\n   \r\n${LIBRARY.text}\t${LIBRARY.pair}\r\n`)
    const r = albertkit('verify', MLM, MODEL, '--text-file', file, '--json')
    assert.equal(r.status, 0, r.stdout + r.stderr)
    const report = JSON.parse(r.stdout)
    assert.equal(report.inputs, `2 texts from ${file}, 26 tokens (longest)`)
    const rows: Row[] = report.text.rows
    assert.deepEqual(rows[1]!.pair, LIBRARY.pair)
    assert.deepEqual(rows.map((x) => x.ids), [FOX.input_ids, LIBRARY.input_ids])
  })

  it('converts spiece.model when the checkpoint has no tokenizer.json: the same ids', () => {
    const dir = path.join(work, 'spiece-only')
    fs.mkdirSync(dir)
    for (const f of ['config.json', 'model.safetensors', 'spiece.model']) fs.copyFileSync(path.join(MLM, f), path.join(dir, f))
    const r = albertkit('verify', dir, MODEL, '--text', `${LIBRARY.text}\t${LIBRARY.pair}`, '--json')
    assert.equal(r.status, 0, r.stdout + r.stderr)
    const report = JSON.parse(r.stdout)
    assert.equal(report.text.tokenizer, path.join(dir, 'spiece.model'))
    assert.deepEqual(report.text.rows[0].tokens, LIBRARY.tokens)
  })

  it('cuts a text longer than max_position_embeddings (40) and warns', () => {
    const long = Array(6).fill('the quick brown fox').join(' ')
    const warning = 'text 1 has 56 tokens; cut to 40 (max_position_embeddings 40)'
    const r = albertkit('verify', MLM, MODEL, '--text', long, '--text', 'short', '--json')
    assert.equal(r.status, 0, r.stdout + r.stderr)
    const report = JSON.parse(r.stdout)
    assert.equal(report.text.longest, 40)
    assert.deepEqual(report.text.rows.map((x: Row) => x.length), [40, 6])
    assert.deepEqual(report.text.warnings, [warning])
    assert.equal(report.pass, true)
    const plain = albertkit('verify', MLM, MODEL, '--text', long)
    assert.equal(plain.status, 0, plain.stdout + plain.stderr)
    assert.ok(plain.stderr.includes(`warning: ${warning}`), plain.stderr)
    assert.match(plain.stdout, /inputs: 1 text from --text, 40 tokens \(longest\)/)
  })

  it('fails a model with a corrupted embedding row the texts use: exit code 1', () => {
    const model = readModelFile(MODEL)
    const w = model.graph.values.get('albert.embeddings.word_embeddings.weight')!
    const data = Float32Array.from(w.const!.toFloat32())
    const the = FOX.input_ids[1]! // "▁the"
    assert.equal(FOX.tokens[1], '▁the')
    // not the same shift on every dimension: the embedding LayerNorm would subtract it again
    for (let i = 0; i < 8; i++) data[the * 8 + i]! += i % 2 ? 0.5 : -0.5
    w.const = Tensor.fromFloat32(w.const!.dims, data)
    const bad = path.join(work, 'corrupted.onnx')
    writeModelFile(bad, model)
    const r = albertkit('verify', MLM, bad, '--text', FOX.text)
    assert.equal(r.status, 1, r.stdout + r.stderr)
    assert.match(r.stdout, /inputs: 1 text from --text, 25 tokens \(longest\)/)
    assert.match(r.stdout, /FAIL .*corrupted\.onnx \(fp32\)/)
    assert.match(r.stdout, /logits: max abs error [\d.e-]+ > 1\.000e-4/)
  })

  it('a checkpoint without a tokenizer: one line naming the folder and the files looked for', () => {
    const dir = fixtureDir('albert-model')
    const r = albertkit('verify', dir, path.join(dir, 'export', 'model.onnx'), '--text', 'hello')
    expectOneLineError(r, dir, 'has no tokenizer', 'tokenizer.json', 'spiece.model')
  })

  it('refuses bad text inputs with one line', () => {
    const empty = path.join(work, 'empty.txt')
    fs.writeFileSync(empty, '\n \n')
    expectOneLineError(albertkit('verify', MLM, MODEL, '--text-file', empty), empty, 'no texts')
    const tabs = path.join(work, 'tabs.txt')
    fs.writeFileSync(tabs, 'fine\nquestion\tcontext\tmore\n')
    expectOneLineError(albertkit('verify', MLM, MODEL, '--text-file', tabs), `${tabs}: line 2: 2 TABs`)
    const noPair = path.join(work, 'nopair.txt')
    fs.writeFileSync(noPair, 'question\t  \n')
    expectOneLineError(albertkit('verify', MLM, MODEL, '--text-file', noPair), `${noPair}: line 1: empty second text after the TAB`)
    const binary = path.join(work, 'binary.txt')
    fs.writeFileSync(binary, Uint8Array.of(0x68, 0xff, 0xfe, 0x0a))
    expectOneLineError(albertkit('verify', MLM, MODEL, '--text-file', binary), `${binary}: not UTF-8 text`)
    expectOneLineError(albertkit('verify', MLM, MODEL, '--text-file', path.join(work, 'missing.txt')), 'missing.txt: no such file')
    expectOneLineError(albertkit('verify', MLM, MODEL, '--text', ''), '--text #1: empty text')
    expectOneLineError(albertkit('verify', MLM, MODEL, '--text', 'a', '--inputs', path.join(MLM, 'inputs.safetensors')), '--inputs', '--text')
    const mc = fixtureDir('albert-mc')
    expectOneLineError(albertkit('verify', mc, MODEL, '--text', 'a'), 'multiple-choice')
  })
})

describe('convert --text', () => {
  const QA = fixtureDir('albert-qa-text')
  const rows: { text: string; pair: string; tokens: string[] }[] = JSON.parse(fs.readFileSync(path.join(QA, 'meta.json'), 'utf8')).text_inputs

  it('verifies every emitted model on the texts, tokenized as transformers tokenized them', () => {
    const out = path.join(work, 'convert-text')
    const r = albertkit('convert', QA, '--out', out, '--target', 'cpu', '--text', `${rows[0]!.text}\t${rows[0]!.pair}`, '--text', rows[1]!.text, '--json')
    assert.equal(r.status, 0, r.stderr)
    const report = JSON.parse(r.stdout)
    assert.equal(report.verification.inputs, null)
    assert.equal(report.verification.text.rows.length, 2)
    assert.deepEqual(report.verification.text.rows[0].tokens, rows[0]!.tokens, 'the pair, as transformers tokenized it')
    assert.equal(report.verification.text.longest, rows[0]!.tokens.length)
    assert.equal(report.artifacts.length, 2)
    for (const a of report.artifacts) assert.equal(a.verdict.pass, true, a.path)
    assert.match(r.stderr, /inputs: 2 texts from --text, 37 tokens \(longest\)/)
  })

  it('refuses --text with --no-verify as a usage error, before reading anything', () => {
    const r = albertkit('convert', QA, '--out', path.join(work, 'never'), '--no-verify', '--text', 'hello')
    assert.equal(r.status, 2)
    assert.match(r.stderr, /--no-verify/)
    assert.equal(fs.existsSync(path.join(work, 'never')), false)
  })
})

describe('random-input flags beside texts', () => {
  it('--seed, --batch or --sequence with --text, --text-file or --inputs is a usage error that names them', () => {
    const qa = fixtureDir('albert-qa-text')
    const model = path.join(qa, '..', 'albert-model', 'export', 'model.onnx')
    const a = albertkit('verify', qa, model, '--text', 'hi', '--seed', '3', '--sequence', '9')
    assert.equal(a.status, 2)
    assert.equal(a.stderr, 'Error: --seed, --sequence shape the random inputs and do nothing with --text\n')
    const b = albertkit('convert', qa, '--out', path.join(work, 'never-2'), '--text-file', 'x.txt', '--batch', '2')
    assert.equal(b.status, 2)
    assert.equal(b.stderr, 'Error: --batch shapes the random inputs and does nothing with --text-file\n')
    assert.equal(fs.existsSync(path.join(work, 'never-2')), false)
    const c = albertkit('verify', qa, model, '--inputs', path.join(qa, 'inputs.safetensors'), '--batch', '2')
    assert.equal(c.status, 2)
    assert.match(c.stderr, /--batch shapes the random inputs and does nothing with --inputs/)
  })
})
