/**
 * albertkit's output folders load in transformers.js (@huggingface/transformers) from local files
 * only, for every ALBERT head it supports (and token classification through AutoModel), at the
 * dtypes it names fp32, int8 and q8, and give the numbers onnxruntime gives on the same file.
 * Pipelines run on the fixtures that carry a tokenizer, against transformers' goldens.
 */
import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import {
  env,
  AutoModel,
  AutoModelForMaskedLM,
  AutoModelForQuestionAnswering,
  AutoModelForSequenceClassification,
  AutoTokenizer,
  Tensor as HfTensor,
  TokenClassificationPipeline,
  pipeline,
} from '@huggingface/transformers'
import * as ort from 'onnxruntime-node'
import { convert } from '../src/pipeline/convert.js'
import { targetPlans } from '../src/targets/targets.js'
import type { Tensor } from '../src/ir/tensor.js'
import { compareOutputs, compareTokens } from '../src/verify/compare.js'
import { tokenMask } from '../src/verify/inputs.js'
import { fixtureDir, fixtureGolden, fixtureInputs, tempDir } from './support/helpers.js'

const ROOT = tempDir('albertkit-tjs-')
env.allowRemoteModels = false
env.allowLocalModels = true
env.localModelPath = ROOT
const LOCAL = { local_files_only: true } as const

type Loader = { from_pretrained: (name: string, opts: Record<string, unknown>) => Promise<unknown> }
type CallableModel = ((inputs: Record<string, HfTensor>) => Promise<Record<string, HfTensor>>) & { dispose(): Promise<unknown> }

interface Case {
  fixture: string
  loader: Loader
  /** what transformers.js names the head (AutoModel where it has no ALBERT class) */
  via: string
  task?: string
}

const CASES: Case[] = [
  { fixture: 'albert-model', loader: AutoModel, via: 'AutoModel (AlbertModel)' },
  { fixture: 'albert-seqcls-text', loader: AutoModelForSequenceClassification, via: 'AutoModelForSequenceClassification' },
  { fixture: 'albert-tokcls-text', loader: AutoModel, via: 'AutoModel (no AlbertForTokenClassification in transformers.js)' },
  { fixture: 'albert-qa-text', loader: AutoModelForQuestionAnswering, via: 'AutoModelForQuestionAnswering' },
  { fixture: 'albert-mlm', loader: AutoModelForMaskedLM, via: 'AutoModelForMaskedLM' },
]
const DTYPES = [
  { dtype: 'fp32', file: 'onnx/model.onnx' },
  { dtype: 'int8', file: 'onnx/model_int8.onnx' },
  { dtype: 'q8', file: 'onnx/model_quantized.onnx' },
] as const

function hfTensor(t: Tensor): HfTensor {
  const ids = new BigInt64Array(t.data.buffer, t.data.byteOffset, t.size)
  return new HfTensor('int64', ids, [...t.dims])
}

function fixtureFeeds(fixture: string): Record<string, HfTensor> {
  return Object.fromEntries([...fixtureInputs(fixture)].map(([k, t]) => [k, hfTensor(t)]))
}

/** The same file run straight through onnxruntime-node, as transformers.js's session would. */
async function ortRun(file: string, feeds: Record<string, HfTensor>): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(file, { executionProviders: ['cpu'] })
  const ortFeeds: Record<string, ort.Tensor> = {}
  for (const name of session.inputNames) {
    const t = feeds[name]!
    ortFeeds[name] = new ort.Tensor('int64', t.data as BigInt64Array, t.dims)
  }
  const out = await session.run(ortFeeds)
  await session.release()
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]))
}

function maxAbs(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

function softmax(xs: number[]): number[] {
  const m = Math.max(...xs)
  const e = xs.map((x) => Math.exp(x - m))
  const s = e.reduce((a, b) => a + b, 0)
  return e.map((x) => x / s)
}

function argmax(xs: ArrayLike<number>): number {
  let best = 0
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i
  return best
}

function rowOf(t: Tensor, index: number[]): number[] {
  const f = t.toFloat32()
  const last = t.dims[t.dims.length - 1]!
  let offset = 0
  for (let d = 0; d < index.length; d++) offset = offset * t.dims[d]! + index[d]!
  return [...f.subarray(offset * last, offset * last + last)]
}

function textRows(fixture: string): { text: string; pair: string | null; tokens: string[] }[] {
  return JSON.parse(fs.readFileSync(path.join(fixtureDir(fixture), 'meta.json'), 'utf8')).text_inputs
}

before(async () => {
  for (const c of CASES) {
    await convert({ checkpoint: fixtureDir(c.fixture), out: path.join(ROOT, c.fixture), precisions: ['fp32', 'int8'], noVerify: true })
  }
  for (const target of ['cpu', 'gpu', 'mobile']) {
    await convert({ checkpoint: fixtureDir('albert-seqcls-text'), out: path.join(ROOT, `seqcls-${target}`), plans: targetPlans(target), noVerify: true })
  }
  // The classifier checkpoint built as its base model: config.json must then name AlbertModel.
  await convert({ checkpoint: fixtureDir('albert-seqcls-text'), out: path.join(ROOT, 'albert-text-base'), task: 'feature-extraction', precisions: ['fp32'], noVerify: true })
})

describe('transformers.js loads the output folder (local files only)', () => {
  it('the int8 model also sits under transformers.js\'s q8 name, as a hard link', () => {
    const dir = path.join(ROOT, 'albert-seqcls-text')
    const a = fs.statSync(path.join(dir, 'onnx/model_int8.onnx'))
    const b = fs.statSync(path.join(dir, 'onnx/model_quantized.onnx'))
    assert.equal(a.ino, b.ino, 'one file, two names')
    assert.equal(a.nlink, 2)
    const report = JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8'))
    assert.deepEqual(report.aliases, [{ file: 'onnx/model_quantized.onnx', of: 'onnx/model_int8.onnx', how: 'link' }])
  })

  for (const c of CASES) {
    for (const { dtype, file } of DTYPES) {
      it(`${c.fixture} ${dtype} via ${c.via}: same outputs as onnxruntime on ${file}, and close to transformers`, async () => {
        const feeds = fixtureFeeds(c.fixture)
        const model = (await c.loader.from_pretrained(c.fixture, { ...LOCAL, dtype })) as CallableModel
        const got = await model(feeds)
        await model.dispose()
        const direct = await ortRun(path.join(ROOT, c.fixture, file), feeds)
        const golden = fixtureGolden(c.fixture)
        for (const [name, ref] of golden) {
          const out = got[name]
          assert.ok(out, `transformers.js output has '${name}' (has ${Object.keys(got).join(', ')})`)
          assert.deepEqual(out.dims, [...ref.dims])
          const data = out.data as Float32Array
          assert.equal(maxAbs(data, direct[name]!), 0, `${name}: transformers.js and onnxruntime differ`)
          // real positions only: padded ones hold 0 or -10000 (pack-tokens, README "Padded batches")
          const parity = compareTokens(ref.toFloat32(), data, ref.dims, tokenMask(fixtureInputs(c.fixture)), true)
          if (dtype === 'fp32') assert.ok(parity.maxAbs < 1e-4, `${name}: max abs ${parity.maxAbs} to transformers`)
          else assert.ok(parity.cosine > 0.99, `${name}: cosine ${parity.cosine} to transformers`)
        }
      })
    }
  }

  const TARGET_CASES = [
    { target: 'cpu', dtype: 'fp32', file: 'onnx/model.onnx' },
    { target: 'cpu', dtype: 'q8', file: 'onnx/model_quantized.onnx' },
    { target: 'gpu', dtype: 'fp16', file: 'onnx/model_fp16.onnx' },
    { target: 'mobile', dtype: 'int8', file: 'onnx/model_int8.onnx' },
    { target: 'mobile', dtype: 'q8', file: 'onnx/model_quantized.onnx' },
  ] as const
  for (const { target, dtype, file } of TARGET_CASES) {
    it(`--target ${target} folder, dtype ${dtype}: same outputs as onnxruntime, close to transformers`, async () => {
      const feeds = fixtureFeeds('albert-seqcls-text')
      const model = (await AutoModelForSequenceClassification.from_pretrained(`seqcls-${target}`, { ...LOCAL, dtype })) as unknown as CallableModel
      const got = (await model(feeds)).logits!
      await model.dispose()
      const direct = await ortRun(path.join(ROOT, `seqcls-${target}`, file), feeds)
      assert.equal(maxAbs(got.data as Float32Array, direct.logits!), 0)
      const ref = fixtureGolden('albert-seqcls-text').get('logits')!
      const parity = compareOutputs(ref.toFloat32(), got.data as Float32Array, 2)
      assert.ok(dtype === 'fp32' ? parity.maxAbs < 1e-4 : parity.cosine > (dtype === 'fp16' ? 0.9999 : 0.99), `max abs ${parity.maxAbs}, cosine ${parity.cosine}`)
      assert.equal(parity.top1, 1)
    })
  }

  it('config.json names the head that was built (--task feature-extraction on a classifier)', async () => {
    const config = JSON.parse(fs.readFileSync(path.join(ROOT, 'albert-text-base', 'config.json'), 'utf8'))
    assert.deepEqual(config.architectures, ['AlbertModel'])
    assert.deepEqual(config.id2label, { 0: 'NEGATIVE', 1: 'POSITIVE' }, 'the rest of the config is kept')
    const copied = fs.readFileSync(path.join(ROOT, 'albert-mlm', 'config.json'))
    assert.ok(copied.equals(fs.readFileSync(path.join(fixtureDir('albert-mlm'), 'config.json'))), 'an unchanged head keeps the checkpoint\'s config byte for byte')
  })
})

describe('a checkpoint with only spiece.model', () => {
  it('gets tokenizer.json and friends that transformers.js tokenizes exactly as transformers', async () => {
    const src = path.join(tempDir(), 'spm-only')
    fs.cpSync(fixtureDir('albert-mlm'), src, { recursive: true })
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) fs.rmSync(path.join(src, f))
    const report = await convert({ checkpoint: src, out: path.join(ROOT, 'spm-only'), precisions: ['fp32'], noVerify: true })
    assert.deepEqual(report.generated.sort(), ['special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json'])
    const tokenizer = await AutoTokenizer.from_pretrained('spm-only', LOCAL)
    const samples = JSON.parse(fs.readFileSync(path.join(fixtureDir('albert-mlm'), 'meta.json'), 'utf8')).tokenizer.samples as {
      text: string
      pair: string | null
      input_ids: number[]
      token_type_ids: number[]
    }[]
    assert.equal(samples.length, 3)
    for (const s of samples) {
      const enc = tokenizer(s.text, { ...(s.pair ? { text_pair: s.pair } : {}), return_token_type_ids: true })
      assert.deepEqual([...(enc.input_ids.data as BigInt64Array)].map(Number), s.input_ids, s.text)
      assert.deepEqual([...(enc.token_type_ids!.data as BigInt64Array)].map(Number), s.token_type_ids, s.text)
    }
  })

  it('a bad tokenizer_config.json beside spiece.model stops convert with the checkpoint\'s file named, nothing written', async () => {
    const src = path.join(tempDir(), 'bad-config')
    fs.cpSync(fixtureDir('albert-mlm'), src, { recursive: true })
    fs.rmSync(path.join(src, 'tokenizer.json'))
    fs.writeFileSync(path.join(src, 'tokenizer_config.json'), '{"do_lower_case": "yes"}')
    const out = path.join(ROOT, 'never')
    await assert.rejects(convert({ checkpoint: src, out, noVerify: true }), (e: Error) => {
      assert.equal(e.message, `${path.join(src, 'tokenizer_config.json')}: do_lower_case must be true or false, got "yes"`)
      return true
    })
    assert.equal(fs.existsSync(out), false)
  })

  it('a checkpoint that has tokenizer.json keeps its own files byte for byte', () => {
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'spiece.model']) {
      assert.ok(fs.readFileSync(path.join(ROOT, 'albert-mlm', f)).equals(fs.readFileSync(path.join(fixtureDir('albert-mlm'), f))), f)
    }
  })
})

describe('transformers.js pipelines on the output folders', () => {
  it('tokenizer: the folder\'s tokenizer gives transformers\' ids for the fixture texts', async () => {
    const tokenizer = await AutoTokenizer.from_pretrained('albert-qa-text', LOCAL)
    const rows = textRows('albert-qa-text')
    const enc = tokenizer(rows.map((r) => r.text), { text_pair: rows.map((r) => r.pair!), padding: true, return_token_type_ids: true })
    const ids = fixtureInputs('albert-qa-text').get('input_ids')!
    const types = fixtureInputs('albert-qa-text').get('token_type_ids')!
    assert.deepEqual([...(enc.input_ids.data as BigInt64Array)], [...new BigInt64Array(ids.data.buffer, ids.data.byteOffset, ids.size)])
    assert.deepEqual([...(enc.token_type_ids!.data as BigInt64Array)], [...new BigInt64Array(types.data.buffer, types.data.byteOffset, types.size)])
  })

  it('text-classification: labels and scores of transformers\' logits', async () => {
    const golden = fixtureGolden('albert-seqcls-text').get('logits')!
    const rows = textRows('albert-seqcls-text')
    const classify = await pipeline('text-classification', 'albert-seqcls-text', { ...LOCAL, dtype: 'fp32' })
    const labels = ['NEGATIVE', 'POSITIVE']
    for (let i = 0; i < rows.length; i++) {
      const [result] = (await classify(rows[i]!.text)) as { label: string; score: number }[]
      const p = softmax(rowOf(golden, [i]))
      const best = argmax(p)
      assert.equal(result!.label, labels[best], `row ${i}`)
      assert.ok(Math.abs(result!.score - p[best]!) < 1e-5, `row ${i}: score ${result!.score} vs ${p[best]}`)
    }
    await classify.dispose()
  })

  it('token-classification (AutoModel + TokenClassificationPipeline): entities of transformers\' logits', async () => {
    const golden = fixtureGolden('albert-tokcls-text').get('logits')!
    const rows = textRows('albert-tokcls-text')
    const labels = ['O', 'B-PLACE', 'I-PLACE']
    const model = await AutoModel.from_pretrained('albert-tokcls-text', { ...LOCAL, dtype: 'int8' })
    const tokenizer = await AutoTokenizer.from_pretrained('albert-tokcls-text', LOCAL)
    const ner = new TokenClassificationPipeline({ task: 'token-classification', model, tokenizer })
    let entities = 0
    for (let i = 0; i < rows.length; i++) {
      const got = (await ner(rows[i]!.text)) as { entity: string; index: number; score: number }[]
      const expected: { entity: string; index: number }[] = []
      const tokens = rows[i]!.tokens
      for (let j = 1; j < tokens.length - 1; j++) {
        if (tokens[j] === '\u2581') continue // decodes to '': the pipeline skips it as it skips special tokens
        const label = labels[argmax(rowOf(golden, [i, j]))]!
        if (label !== 'O') expected.push({ entity: label, index: j })
      }
      assert.deepEqual(got.map((e) => ({ entity: e.entity, index: e.index })), expected, `row ${i} (int8 model)`)
      entities += expected.length
    }
    assert.ok(entities > 0, 'the fixture has tagged tokens')
    await model.dispose()
  })

  it('question-answering: the best span of transformers\' start/end logits', async () => {
    const golden = fixtureGolden('albert-qa-text')
    const rows = textRows('albert-qa-text')
    const qa = await pipeline('question-answering', 'albert-qa-text', { ...LOCAL, dtype: 'fp32' })
    const tokenizer = await AutoTokenizer.from_pretrained('albert-qa-text', LOCAL)
    for (let i = 0; i < rows.length; i++) {
      const got = (await qa(rows[i]!.text, rows[i]!.pair!)) as { answer: string; score: number }
      // Expected: context tokens only, p(start) · p(end) over start ≤ end, from the golden logits.
      const tokens = rows[i]!.tokens
      const sep = tokens.indexOf('[SEP]')
      const inContext = (j: number) => j > sep && j < tokens.length - 1
      const masked = (xs: number[]) => xs.map((x, j) => (j === 0 || inContext(j) ? x : -Infinity))
      const ps = softmax(masked(rowOf(golden.get('start_logits')!, [i])))
      const pe = softmax(masked(rowOf(golden.get('end_logits')!, [i])))
      ps[0] = 0
      pe[0] = 0
      let best = { s: 0, e: 0, score: -1 }
      for (let s = 0; s < ps.length; s++) for (let e = s; e < pe.length; e++) if (ps[s]! * pe[e]! > best.score) best = { s, e, score: ps[s]! * pe[e]! }
      const ids = fixtureInputs('albert-qa-text').get('input_ids')!
      const rowIds = [...new BigInt64Array(ids.data.buffer, ids.data.byteOffset, ids.size)].slice(i * ids.dims[1]!, (i + 1) * ids.dims[1]!)
      const answer = tokenizer.decode(rowIds.slice(best.s, best.e + 1).map(Number), { skip_special_tokens: true })
      assert.equal(got.answer, answer, `row ${i}`)
      assert.ok(Math.abs(got.score - best.score) < 1e-5, `row ${i}: score ${got.score} vs ${best.score}`)
    }
    await qa.dispose()
  })

  it('fill-mask: the top token is the argmax of onnxruntime\'s logits at [MASK]', async () => {
    const fill = await pipeline('fill-mask', 'albert-mlm', { ...LOCAL, dtype: 'q8' })
    const tokenizer = await AutoTokenizer.from_pretrained('albert-mlm', LOCAL)
    const text = 'the library opens at [MASK] in the morning.'
    const enc = tokenizer(text)
    const direct = await ortRun(path.join(ROOT, 'albert-mlm', 'onnx/model_quantized.onnx'), {
      input_ids: enc.input_ids,
      attention_mask: enc.attention_mask,
      token_type_ids: enc.token_type_ids ?? new HfTensor('int64', new BigInt64Array(enc.input_ids.size), enc.input_ids.dims),
    })
    const ids = [...(enc.input_ids.data as BigInt64Array)].map(Number)
    const at = ids.indexOf(4) // [MASK]
    assert.ok(at > 0)
    const logits = direct.logits!.subarray(at * 200, at * 200 + 200)
    const [top] = (await fill(text)) as { token: number; score: number }[]
    assert.equal(top!.token, argmax(logits))
    assert.ok(Math.abs(top!.score - softmax([...logits])[top!.token]!) < 1e-5)
    await fill.dispose()
  })

  it('feature-extraction on the classifier checkpoint built as its base model', async () => {
    const extract = await pipeline('feature-extraction', 'albert-text-base', { ...LOCAL, dtype: 'fp32' })
    const out = await extract('the quick brown fox.')
    assert.deepEqual(out.dims.slice(0, 1), [1])
    assert.equal(out.dims[2], 16)
    const tokenizer = await AutoTokenizer.from_pretrained('albert-text-base', LOCAL)
    const enc = tokenizer('the quick brown fox.')
    const direct = await ortRun(path.join(ROOT, 'albert-text-base', 'onnx/model.onnx'), {
      input_ids: enc.input_ids,
      attention_mask: enc.attention_mask,
      token_type_ids: enc.token_type_ids ?? new HfTensor('int64', new BigInt64Array(enc.input_ids.size), enc.input_ids.dims),
    })
    assert.equal(maxAbs(out.data as Float32Array, direct.last_hidden_state!), 0)
    await extract.dispose()
  })
})
