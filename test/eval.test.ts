/**
 * Labelled evaluation (src/eval, issue 16): every metric against the references stored with the
 * eval fixtures (fed the stored per-example predictions) and against the hand-made cases; end to
 * end with onnxruntime on each fixture's fp32 model (tokens, predictions and metrics equal to
 * transformers'); every bad input's one-line message; the comparison and the --max-drop gate on
 * the trained classifier; a file far larger than the memory it may use, streamed.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { FIXTURES, buildFixture, fixtureDir, tempDir } from './support/helpers.js'
import { runCommandBounded } from './support/bounded.js'
import { openCheckpoint } from '../src/checkpoint/index.js'
import { modelBytes } from '../src/onnx/file.js'
import { createSession, runSession } from '../src/runtime/session.js'
import { openTokenizer } from '../src/tokenizer/index.js'
import type { Model } from '../src/ir/graph.js'
import type { Tensor } from '../src/ir/tensor.js'
import { passByName } from '../src/passes/index.js'
import { runPasses } from '../src/passes/pass.js'
import { ClassificationScorer, Labels, compareEval, evaluate, gateDrop, type EvalOptions, type EvalTask, type RunModel } from '../src/eval/index.js'
import { accuracyOf, entityF1Of, iob2Entities, macroF1Of, squadExact, squadF1, squadNormalize, squadTotals } from '../src/eval/metrics.js'
import { answerRank, decideSpan, spellingPieces, type SpanFeature } from '../src/eval/decode.js'
import { Encoder, contextWindows } from '../src/eval/encode.js'
import { Rng, quantile } from '../src/eval/bootstrap.js'
import { openLines } from '../src/eval/lines.js'
import { readSquad } from '../src/eval/squad.js'
import type { QaScorer, TokenScorer, MaskScorer } from '../src/eval/scoring.js'

const EVAL = path.join(FIXTURES, 'eval')
const TRAINED = fixtureDir('albert-seqcls-trained')
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'))
/** float64 agreement with the Python references */
const same = (got: number, want: number, what: string) => assert.ok(Math.abs(got - want) <= 1e-12, `${what}: ${got} vs ${want}`)

const QA_DECODING = { maxLength: 40, docStride: 10, maxAnswerLength: 15 }

/** Every eval file with a reference: the fixture whose model made it, and its task. */
const REFERENCES: { fixture: string; file: string; task: EvalTask }[] = [
  ...['pairs.jsonl', 'pairs-ids.jsonl', 'pairs.tsv', 'pairs-ids.tsv'].map((f) => ({ fixture: 'albert-seqcls-text', file: path.join(EVAL, 'albert-seqcls-text', f), task: 'text-classification' as const })),
  ...['dev.jsonl', 'dev.tsv', 'heldout.jsonl'].map((f) => ({ fixture: 'albert-seqcls-trained', file: path.join(TRAINED, f), task: 'text-classification' as const })),
  ...['places.conll', 'places-tab.conll'].map((f) => ({ fixture: 'albert-tokcls-text', file: path.join(EVAL, 'albert-tokcls-text', f), task: 'token-classification' as const })),
  ...['squad-v1.1.json', 'squad-v2.0.json'].map((f) => ({ fixture: 'albert-qa-text', file: path.join(EVAL, 'albert-qa-text', f), task: 'question-answering' as const })),
  { fixture: 'albert-mlm', file: path.join(EVAL, 'albert-mlm', 'fill-mask.jsonl'), task: 'fill-mask' },
  { fixture: 'albert-mc-text', file: path.join(EVAL, 'albert-mc-text', 'choices.jsonl'), task: 'multiple-choice' },
]

/** The reference's metrics flattened as EvalResult has them (SQuAD's HasAns.exact → HasAns_exact). */
function flatMetrics(m: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(m)) {
    if (typeof v === 'number') out[k] = v
    else for (const [k2, v2] of Object.entries(v as Record<string, number>)) out[`${k}_${k2}`] = v2
  }
  return out
}

const models = new Map<string, Model>()
function fp32(fixture: string): Model {
  if (!models.has(fixture)) models.set(fixture, buildFixture(fixture))
  return models.get(fixture)!
}

/** An onnxruntime runner for a model, recording every batch's input_ids rows. */
async function runner(model: Model): Promise<{ run: RunModel; rows: number[][] }> {
  const session = await createSession(modelBytes(model))
  const rows: number[][] = []
  const run: RunModel = async (feeds: Map<string, Tensor>) => {
    const ids = feeds.get('input_ids')!
    const mask = feeds.get('attention_mask')!.toBigInt64()
    const all = ids.toBigInt64()
    const len = ids.dims[ids.dims.length - 1]!
    for (let r = 0; r < all.length / len; r++) {
      const row: number[] = []
      for (let i = 0; i < len; i++) if (mask[r * len + i] === 1n) row.push(Number(all[r * len + i]))
      rows.push(row)
    }
    return runSession(session, feeds)
  }
  return { run, rows }
}

async function evaluateFixture(fixture: string, file: string, task: EvalTask, model: Model = fp32(fixture), opts: EvalOptions = {}) {
  const ckpt = openCheckpoint(fixtureDir(fixture))
  const { run, rows } = await runner(model)
  const result = await evaluate(task, file, openTokenizer(fixtureDir(fixture)), ckpt.config, run, { qa: QA_DECODING, ...opts })
  return { result, rows }
}

describe('eval metrics: the stored predictions give the stored reference metrics', () => {
  for (const ref of REFERENCES) {
    it(`${path.basename(ref.file)} (${ref.fixture})`, () => {
      const r = readJson(`${ref.file}.reference.json`)
      const ex = r.examples as Record<string, any>[]
      switch (ref.task) {
        case 'text-classification':
        case 'multiple-choice': {
          const gold = ex.map((e) => e.gold)
          const pred = ex.map((e) => e.prediction)
          same(accuracyOf(gold, pred), r.metrics.accuracy, 'accuracy')
          if (ref.task === 'text-classification') same(macroF1Of(gold, pred), r.metrics.macro_f1, 'macro-F1')
          break
        }
        case 'token-classification': {
          ex.forEach((e) => {
            assert.deepEqual(iob2Entities(e.gold), e.gold_entities, `line ${e.line} gold entities`)
            assert.deepEqual(iob2Entities(e.prediction), e.predicted_entities, `line ${e.line} predicted entities`)
          })
          const s = entityF1Of(
            ex.map((e) => e.gold),
            ex.map((e) => e.prediction),
          )
          same(s.entity_precision, r.metrics.entity_precision, 'precision')
          same(s.entity_recall, r.metrics.entity_recall, 'recall')
          same(s.entity_f1, r.metrics.entity_f1, 'F1')
          break
        }
        case 'question-answering': {
          const exact = ex.map((e) => squadExact(e.gold, e.prediction))
          const f1 = ex.map((e) => squadF1(e.gold, e.prediction))
          ex.forEach((e, i) => {
            assert.equal(exact[i], e.exact, `${e.id} exact`)
            same(f1[i]!, e.f1, `${e.id} F1`)
          })
          const totals = squadTotals(exact, f1, ex.map((e) => (e.gold.length > 0 ? 1 : 0)), r.file.includes('v2.0'))
          const want = flatMetrics(r.metrics)
          assert.deepEqual(Object.keys(totals).sort(), Object.keys(want).sort())
          for (const [k, v] of Object.entries(want)) same(totals[k as keyof typeof totals]!, v, k)
          break
        }
        case 'fill-mask': {
          const n = ex.length
          same(ex.filter((e) => e.rank === 1).length / n, r.metrics.top1, 'top-1')
          same(ex.filter((e) => e.rank !== null && e.rank <= 5).length / n, r.metrics.top5, 'top-5')
          break
        }
      }
    })
  }
})

describe('eval metrics: the hand-made cases', () => {
  const cases = readJson(path.join(EVAL, 'metric-cases.json'))

  it('accuracy and macro-F1 (scikit-learn)', () => {
    for (const c of cases.classification) {
      same(accuracyOf(c.gold, c.pred), c.accuracy, 'accuracy')
      same(macroF1Of(c.gold, c.pred), c.macro_f1, `macro-F1 of ${JSON.stringify(c)}`)
    }
  })

  it('IOB2 entities and entity scores (seqeval strict)', () => {
    for (const c of cases.entities) assert.deepEqual(iob2Entities(c.tags), c.entities, c.tags.join(' '))
    for (const c of cases.entity_f1) {
      const s = entityF1Of(c.gold, c.pred)
      same(s.entity_precision, c.entity_precision, 'precision')
      same(s.entity_recall, c.entity_recall, 'recall')
      same(s.entity_f1, c.entity_f1, 'F1')
    }
  })

  it('SQuAD normalization, exact match and F1 (the official v2.0 script)', () => {
    for (const c of cases.squad_normalize) assert.equal(squadNormalize(c.text), c.normalized)
    for (const c of cases.squad_pair) {
      assert.equal(squadExact(c.gold, c.pred), c.exact, JSON.stringify(c))
      same(squadF1(c.gold, c.pred), c.f1, JSON.stringify(c))
    }
    // Python's \b and str.split(): an article inside a word of non-ASCII letters stays, \x1f splits
    assert.equal(squadNormalize('éthe Thé the\u001fend'), 'éthe thé end')
  })

  it('fill-mask ranks, ties to the lower id', () => {
    for (const c of cases.topk) {
      const ids = spellingPieces(c.answer.toLowerCase(), (p) => (c.pieces.indexOf(p) >= 0 ? c.pieces.indexOf(p) : undefined))
      const rank = answerRank(c.logits, 0, c.logits.length, ids)
      assert.equal(rank, c.rank, c.answer)
      assert.equal(rank === 1 ? 1 : 0, c.top1)
      assert.equal(rank !== null && rank <= 5 ? 1 : 0, c.top5)
    }
  })

  it('QA spans: order, ties, null answer, max_answer_length, context tokens only', () => {
    for (const c of cases.qa_decoding) {
      const features: SpanFeature[] = c.features.map((f: any) => {
        const ctx = (f.sequence_ids as (number | null)[]).flatMap((s, i) => (s === 1 ? [i] : []))
        return { start: f.start_logits, end: f.end_logits, first: ctx[0]!, last: ctx[ctx.length - 1]! + 1 }
      })
      const d = decideSpan(features, c.max_answer_length, c.version_2)
      const text = d.answered ? c.context.slice(c.features[d.span!.feature].offsets[d.span!.start][0], c.features[d.span!.feature].offsets[d.span!.end][1]) : ''
      assert.equal(text, c.text, c.name)
      if (c.feature !== null) assert.deepEqual([d.span!.feature, d.span!.start, d.span!.end], [c.feature, c.start_token, c.end_token], c.name)
    }
  })
})

describe('eval end to end: the fp32 model in onnxruntime predicts what transformers did', () => {
  for (const ref of REFERENCES) {
    it(`${path.basename(ref.file)} (${ref.fixture})`, async () => {
      const r = readJson(`${ref.file}.reference.json`)
      const ex = r.examples as Record<string, any>[]
      const { result, rows } = await evaluateFixture(ref.fixture, ref.file, ref.task)
      assert.equal(result.examples, ex.length)
      assert.equal(result.skipped, 0)
      assert.deepEqual(result.warnings, [])
      const want = flatMetrics(r.metrics)
      for (const [k, v] of Object.entries(want)) same(result.metrics[k]!, v, k)
      const s = result.scorer
      switch (ref.task) {
        case 'text-classification':
        case 'multiple-choice':
          ex.forEach((e, i) => assert.deepEqual(s.prediction(i), { line: e.line, gold: e.gold, prediction: e.prediction }))
          break
        case 'token-classification':
          ex.forEach((e, i) => assert.deepEqual((s as TokenScorer).prediction(i), { line: e.line, prediction: e.prediction }))
          break
        case 'fill-mask':
          ex.forEach((e, i) => assert.deepEqual((s as MaskScorer).prediction(i), { line: e.line, rank: e.rank, top1_id: e.top5_ids[0] }))
          break
        case 'question-answering':
          ex.forEach((e, i) => {
            const p = (s as QaScorer).prediction(i)
            assert.equal(p.id, e.id)
            assert.equal(p.prediction, e.prediction, e.id)
            assert.equal(p.features, e.features)
            const { score, ...best } = p.best!
            const { score: refScore, ...refBest } = e.best
            assert.deepEqual(best, refBest, e.id)
            assert.ok(Math.abs(score - refScore) < 1e-4, `${e.id} score ${score} vs ${refScore}`)
            if (e.null_score === null) assert.equal(p.null_score, null)
            else assert.ok(Math.abs(p.null_score! - e.null_score) < 1e-4, `${e.id} null score`)
          })
          break
      }
      // the same token ids as transformers (the QA windows are checked below)
      if (ref.task !== 'question-answering' && ref.task !== 'multiple-choice') assert.deepEqual(rows, ex.map((e) => e.input_ids))
      if (ref.task === 'multiple-choice') assert.equal(rows.length, 4 * ex.length)
    })
  }

  it('SQuAD contexts: token ids, character offsets and windows as transformers gives them', async () => {
    const tok = openTokenizer(fixtureDir('albert-qa-text'))
    const encoder = new Encoder(tok, openCheckpoint(fixtureDir('albert-qa-text')).config)
    const file = path.join(EVAL, 'albert-qa-text', 'squad-v2.0.json')
    const r = readJson(`${file}.reference.json`)
    const squad = await readSquad(file)
    assert.equal(squad.version, 2)
    squad.paragraphs.forEach((p, i) => {
      const c = encoder.context(p.context, p.where)
      assert.deepEqual(c.ids, r.paragraphs[i].context_input_ids)
      assert.deepEqual(Array.from(c.offsets), r.paragraphs[i].context_offsets.flat())
      assert.equal(c.unaligned, 0)
    })
    const byId = new Map(squad.paragraphs.flatMap((p, i) => p.questions.map((q) => [q.id, i] as const)))
    for (const e of r.examples) {
      const contextTokens = r.paragraphs[byId.get(e.id)!].context_input_ids.length
      assert.deepEqual(contextWindows(contextTokens, e.question_input_ids.length, 40, 10), e.windows, e.id)
    }
  })

  it('offsets of words the ASCII rule does not cover: accents, ligatures, unknown characters, beyond the BMP', () => {
    const tok = openTokenizer(fixtureDir('albert-qa-text'))
    const encoder = new Encoder(tok, openCheckpoint(fixtureDir('albert-qa-text')).config)
    // transformers' offset_mapping (AlbertTokenizerFast, tokenizers 0.23.2), code points turned into UTF-16 indices
    const cases: [string, number[], number[][]][] = [
      ['Café ﬁne 1898', [18, 55, 126, 11, 145, 23, 28, 11, 6, 1], [[0, 1], [1, 2], [2, 3], [3, 4], [5, 6], [5, 6], [6, 7], [7, 8], [9, 10], [9, 13]]],
      ['x 😀y', [6, 36, 6, 1, 19], [[0, 1], [0, 1], [2, 4], [2, 4], [4, 5]]],
    ]
    for (const [text, ids, offsets] of cases) {
      const c = encoder.context(text, 'test')
      assert.deepEqual(c.ids, ids, text)
      assert.deepEqual(Array.from(c.offsets), offsets.flat(), text)
    }
  })

  it('padding per batch does not change a prediction: batch size 1 and 7 give the same as 32', async () => {
    const file = path.join(EVAL, 'albert-seqcls-text', 'pairs.jsonl')
    const a = await evaluateFixture('albert-seqcls-text', file, 'text-classification', undefined, { batchSize: 1 })
    const b = await evaluateFixture('albert-seqcls-text', file, 'text-classification', undefined, { batchSize: 7 })
    assert.equal(a.result.batches, 30)
    assert.equal(b.result.batches, 5)
    assert.equal(compareEval(a.result, b.result).changed, 0)
    const limited = await evaluateFixture('albert-seqcls-text', file, 'text-classification', undefined, { limit: 10 })
    assert.equal(limited.result.examples, 10)
    assert.equal(limited.result.limited, true)
  })
})

describe('eval: bad inputs stop with one line naming the file and line', () => {
  const BAD = path.join(EVAL, 'bad')
  const messages: Record<string, string> = {
    'seqcls-unknown-label.jsonl': 'line 2: label "NEUTRAL" is not in the config\'s id2label (NEGATIVE, POSITIVE)',
    'seqcls-unknown-label-id.jsonl': "line 3: label id 2 is not in the config's id2label (ids 0, 1)",
    'seqcls-malformed.jsonl': 'line 3: not valid JSON (the line ends before the value is complete)',
    'seqcls-missing-text.jsonl': 'line 2: no "text" field (a string)',
    'seqcls-wrong-columns.tsv': 'line 2: 4 TAB-separated columns (2 or 3 expected: text[, text_pair], label)',
    'trained-unknown-label.tsv': 'line 3: label "fr" is not in the config\'s id2label (en, eo, es, it)',
    'invalid-utf8.jsonl': 'line 2: not UTF-8 (byte 0xE9 at byte 14 of the line)',
    'empty.jsonl': 'empty file: no example',
    'blank-lines.jsonl': 'no example (only blank lines)',
    'squad-answer-outside-context.json':
      '3 answers outside their context; the first: question "start-past-the-end" (data[0].paragraphs[0].qas[1]): answer_start 91 is past the context\'s end (86 characters)',
    'squad-malformed.json': 'not valid JSON (the file ends before the document is complete)',
    'squad-no-data.json': 'no "data" list (SQuAD: data[].paragraphs[].qas[])',
    'conll-unknown-tag.conll': 'line 9: tag "B-PERSON" is not in the config\'s id2label (O, B-PLACE, I-PLACE)',
    'conll-malformed.conll': 'line 8: 3 columns (word and tag expected)',
    'conll-missing-tag.conll': 'line 7: a word without a tag',
    'mc-answer-out-of-range.jsonl': 'line 2: answer 4 with 4 choices (indices 0-3)',
    'fill-mask-no-mask.jsonl': 'line 2: no [MASK] in the text',
    'fill-mask-two-masks.jsonl': 'line 1: 2 [MASK] in the text (one expected)',
  }
  const cases = readJson(path.join(BAD, 'cases.json')).cases as { file: string; fixture: string; task: EvalTask; line: number | null }[]

  it('every case in cases.json has its message here', () => assert.deepEqual(cases.map((c) => c.file).sort(), Object.keys(messages).sort()))

  for (const c of cases) {
    it(c.file, async () => {
      const file = path.join(BAD, c.file)
      const ckpt = openCheckpoint(fixtureDir(c.fixture))
      let ran = 0
      const run: RunModel = async () => {
        ran++
        throw new Error('the model must not run before the error')
      }
      await assert.rejects(evaluate(c.task, file, openTokenizer(fixtureDir(c.fixture)), ckpt.config, run, { qa: QA_DECODING }), (e: Error) => {
        assert.equal(e.name, 'UserError')
        assert.equal(e.message, `${file}: ${messages[c.file]}`)
        assert.ok(!e.message.includes('\n'))
        if (c.line !== null) assert.ok(e.message.includes(`line ${c.line}:`))
        return true
      })
      assert.equal(ran, 0)
    })
  }

  it('more bad input: a line over the limit, a file that is not a regular file, a missing file', async () => {
    const dir = tempDir()
    const long = path.join(dir, 'long.jsonl')
    // the long line starts mid-chunk and runs across the 1 MiB read boundary
    fs.writeFileSync(long, `{"text": "ok", "label": "en"}\n{"text": "${'a'.repeat(1100000)}", "label": "en"}\n`)
    const ckpt = openCheckpoint(TRAINED)
    const tok = openTokenizer(TRAINED)
    const never: RunModel = async () => assert.fail('no run')
    await assert.rejects(evaluate('text-classification', long, tok, ckpt.config, never), { message: `${long}: line 2: longer than the 1048576 bytes albertkit reads in one line` })
    await assert.rejects(evaluate('text-classification', '/dev/zero', tok, ckpt.config, never), { message: '/dev/zero: not a regular file' })
    await assert.rejects(evaluate('text-classification', path.join(dir, 'none.jsonl'), tok, ckpt.config, never), { message: `${path.join(dir, 'none.jsonl')}: no such file` })
    await assert.rejects(evaluate('text-classification', dir, tok, ckpt.config, never), { message: `${dir}: is a folder, not a file` })
  })

  it('lines: CRLF, a byte-order mark, a last line without a newline, a UTF-8 character split by the read boundary', async () => {
    const dir = tempDir()
    const file = path.join(dir, 'lines.txt')
    const pad = 'x'.repeat((1 << 20) - 1 - 4)
    // '€' (3 bytes) starts 1 byte before the 1 MiB boundary
    fs.writeFileSync(file, Buffer.concat([Buffer.from('\uFEFFone\r\n'), Buffer.from(`${pad}\n`.slice(0, -1) + '€\nlast')]))
    const reader = await openLines(file, { maxLineBytes: 2 << 20, maxFileBytes: 1 << 30 })
    const lines = []
    for await (const l of reader.lines()) lines.push(l)
    assert.deepEqual(
      lines.map((l) => [l.number, l.text.length, l.text.slice(-1)]),
      [
        [1, 3, 'e'],
        [2, pad.length + 1, '€'],
        [3, 4, 't'],
      ],
    )
  })

  it('examples that cannot be scored as they are: skipped, counted, named', async () => {
    const dir = tempDir()
    const fake = (name: string, dims: (rows: number, len: number) => number[]): RunModel => async (feeds) => {
      const [rows, len] = feeds.get('input_ids')!.dims as [number, number]
      const d = dims(rows, len)
      return new Map([[name, { data: new Float32Array(d.reduce((a, b) => a * b, 1)), dims: d }]])
    }
    const open = (fixture: string) => ({ tok: openTokenizer(fixtureDir(fixture)), config: openCheckpoint(fixtureDir(fixture)).config })

    // token classification: a word the tokenizer drops, a sentence longer than 40 positions
    const conll = path.join(dir, 'skips.conll')
    fs.writeFileSync(conll, `Port B-PLACE\nEllis I-PLACE\n\nThe O\n\u0301 O\n\n${Array.from({ length: 50 }, () => 'the O').join('\n')}\n`)
    const t = open('albert-tokcls-text')
    const tr = await evaluate('token-classification', conll, t.tok, t.config, fake('logits', (r, l) => [r, l, 3]))
    assert.equal(tr.examples, 1)
    assert.equal(tr.skipped, 2)
    assert.deepEqual(tr.skips, [
      { where: 'line 5', reason: 'the word "\u0301" has no tokens' },
      { where: 'line 7', reason: 'the sentence has 52 tokens, more than max_position_embeddings 40' },
    ])
    assert.deepEqual(tr.warnings, ['2 examples skipped; the first: line 5: the word "\u0301" has no tokens'])
    // all-zero logits: every word O, so the one gold entity is missed
    assert.deepEqual([tr.metrics.gold_entities, tr.metrics.predicted_entities, tr.metrics.word_accuracy], [1, 0, 0])

    // question answering: a question that leaves no room for a window wider than the stride
    const squad = path.join(dir, 'skips.json')
    const context = 'Trains leave the central station every hour.'
    const qas = [
      { id: 'long', question: Array(30).fill('the').join(' '), answers: [{ text: 'every hour', answer_start: 33 }] },
      { id: 'fine', question: 'How often?', answers: [{ text: 'every hour', answer_start: 33 }] },
    ]
    fs.writeFileSync(squad, JSON.stringify({ version: '1.1', data: [{ title: 't', paragraphs: [{ context, qas }] }] }))
    const q = open('albert-qa-text')
    const qr = await evaluate('question-answering', squad, q.tok, q.config, async (feeds) => {
      const [rows, len] = feeds.get('input_ids')!.dims as [number, number]
      const out = { data: new Float32Array(rows * len), dims: [rows, len] }
      return new Map([
        ['start_logits', out],
        ['end_logits', out],
      ])
    }, { qa: QA_DECODING })
    assert.equal(qr.examples, 1)
    assert.deepEqual(qr.skips, [{ where: 'question "long" (data[0].paragraphs[0].qas[0])', reason: "the question's 30 tokens leave 7 for the context within 40, not more than the document stride 10" }])
    // equal scores everywhere: the first span, the context's first token (▁tra of ▁tra in s)
    assert.equal((qr.scorer as QaScorer).predictions[0], 'Tra')

    // fill-mask: a [MASK] past the 40 positions the model has
    const mlm = path.join(dir, 'skips.jsonl')
    fs.writeFileSync(mlm, `${JSON.stringify({ text: `${'the '.repeat(45)}[MASK].`, answer: 'end' })}\n${JSON.stringify({ text: 'The [MASK] opens.', answer: 'library' })}\n`)
    const m = open('albert-mlm')
    const mr = await evaluate('fill-mask', mlm, m.tok, m.config, fake('logits', (r, l) => [r, l, 200]))
    assert.deepEqual([mr.examples, mr.skipped, mr.skips[0]], [1, 1, { where: 'line 1', reason: 'the [MASK] was cut off at max_position_embeddings 40' }])
    // all-zero logits: ties rank by id, so the answer's rank is its lowest spelling piece's id + 1
    const rank = (mr.scorer as MaskScorer).prediction(0).rank!
    const pieces = spellingPieces('library', (p) => m.tok.tokenizer.token_to_id(p))
    assert.equal(rank, pieces.length === 0 ? null : Math.min(...pieces) + 1)

    // and a file too large is refused before it is read
    await assert.rejects(openLines(conll, { maxLineBytes: 1 << 20, maxFileBytes: 10 }), { message: `${conll}: is ${fs.statSync(conll).size} bytes, more than the 10 albertkit reads from a file it streams` })
  })

  it('SQuAD: answer_start counts code points (a context with characters beyond the BMP)', async () => {
    const file = path.join(tempDir(), 'emoji.json')
    const context = 'We ate 🍕 at nine in the evening.'
    const qa = (id: string, start: number) => ({ id, question: 'When?', answers: [{ text: 'nine', answer_start: start }] })
    fs.writeFileSync(file, JSON.stringify({ version: '1.1', data: [{ title: 't', paragraphs: [{ context, qas: [qa('ok', 12)] }] }] }))
    assert.equal((await readSquad(file)).questions, 1)
    fs.writeFileSync(file, JSON.stringify({ version: '1.1', data: [{ title: 't', paragraphs: [{ context, qas: [qa('utf16', 13)] }] }] }))
    await assert.rejects(readSquad(file), { message: `${file}: an answer outside its context: question "utf16" (data[0].paragraphs[0].qas[0]): "nine" is not at answer_start 13 (it is at 12)` })
  })
})

describe('eval: a candidate against the fp32 reference, and the --max-drop gate', () => {
  const labels = Labels.of(openCheckpoint(TRAINED).config)
  /** a scorer from the trained fixture's stored predictions (transformers' fp32, or the PyTorch simulation of a plan) */
  const stored = (split: string, plan?: string) => {
    const r = readJson(path.join(TRAINED, `${split}.jsonl.reference.json`))
    const scorer = new ClassificationScorer(labels)
    for (const e of r.examples) scorer.record(e.line, labels.idOfName(e.gold)!, labels.idOfName(plan ? e.simulated[plan] : e.prediction)!)
    return { task: 'text-classification' as const, file: path.join(TRAINED, `${split}.jsonl`), scorer }
  }
  const meta = readJson(path.join(TRAINED, 'meta.json')).quantization_simulated

  it('the simulated int8 / int4 predictions: drops, changed predictions, intervals near numpy\'s', () => {
    for (const split of ['dev', 'heldout']) {
      for (const plan of ['int8', 'int4', 'int4-maxabs7']) {
        const c = compareEval(stored(split), stored(split, plan))
        const m = meta[split][plan]
        const acc = c.drops[0]!
        const f1 = c.drops[1]!
        assert.equal(acc.metric, 'accuracy')
        same(acc.candidate, m.accuracy, 'accuracy')
        same(f1.candidate, m.macro_f1, 'macro-F1')
        assert.equal(acc.drop, m.accuracy_drop_points, `${split} ${plan} drop`)
        assert.equal(c.changed, m.changed_predictions)
        assert.equal(c.lost, m.lost)
        assert.equal(c.gained, m.gained)
        // another generator than numpy's: the same interval up to the Monte Carlo error (a 0.2-point grid here)
        assert.ok(Math.abs(acc.interval[0] - m.bootstrap_95_drop_points[0]) <= 0.41, `${split} ${plan} low ${acc.interval[0]} vs ${m.bootstrap_95_drop_points[0]}`)
        assert.ok(Math.abs(acc.interval[1] - m.bootstrap_95_drop_points[1]) <= 0.41, `${split} ${plan} high ${acc.interval[1]} vs ${m.bootstrap_95_drop_points[1]}`)
        assert.ok(acc.interval[0] <= acc.drop && acc.drop <= acc.interval[1])
        assert.equal(c.bootstrap.resamples, 10_000)
        assert.equal(c.bootstrap.seed, 0)
      }
    }
    const dev = compareEval(stored('dev'), stored('dev', 'int4'))
    assert.deepEqual(compareEval(stored('dev'), stored('dev', 'int4')).drops, dev.drops, 'the same seed gives the same interval')
    assert.notDeepEqual(compareEval(stored('dev'), stored('dev', 'int4'), { seed: 1 }).drops[0]!.interval, dev.drops[0]!.interval)
    // the held-out int4 drop lies within the dev interval
    const held = compareEval(stored('heldout'), stored('heldout', 'int4')).drops[0]!.drop
    assert.ok(dev.drops[0]!.interval[0] <= held && held <= dev.drops[0]!.interval[1], `${held} in ${dev.drops[0]!.interval}`)
  })

  it('the gate both ways, naming the metric, the drop and the margin', () => {
    const int4 = compareEval(stored('dev'), stored('dev', 'int4'))
    const [lo, hi] = int4.drops[0]!.interval
    const fail = gateDrop(int4, 1)
    assert.equal(fail.pass, false)
    assert.equal(fail.margin, -4.8)
    assert.equal(fail.message, `accuracy 84.4 → 78.6: a drop of 5.8 points (95% interval ${lo} to ${hi}), more than the largest drop allowed, 1, by 4.8`)
    const pass = gateDrop(int4, 6)
    assert.equal(pass.pass, true)
    assert.equal(pass.message, `accuracy 84.4 → 78.6: a drop of 5.8 points (95% interval ${lo} to ${hi}), within the largest drop allowed, 6, by 0.2`)
    assert.equal(gateDrop(int4, 5.8).pass, true, 'a drop equal to the limit holds')
    const f1 = gateDrop(int4, 6, 'macro_f1')
    assert.equal(f1.pass, false)
    assert.equal(f1.drop, Math.round((meta.dev.fp32.macro_f1 - meta.dev.int4.macro_f1) * 100 * 1e9) / 1e9)
    const int8 = gateDrop(compareEval(stored('dev'), stored('dev', 'int8')), 0)
    assert.equal(int8.pass, true, 'int8 gains 0.2 points')
    assert.equal(int8.drop, -0.2)
    assert.throws(() => gateDrop(int4, 1, 'exact'), { message: "text-classification has no metric 'exact' to gate on (accuracy, macro_f1)" })
  })

  it('albertkit\'s own int8 and int4 models of the trained classifier: real drops, predictions as simulated', async () => {
    const reference = await evaluateFixture('albert-seqcls-trained', path.join(TRAINED, 'dev.jsonl'), 'text-classification')
    const sim = stored('dev', 'int4').scorer
    for (const plan of ['int8', 'int4'] as const) {
      const model = buildFixture('albert-seqcls-trained')
      // the fixture script simulates plain round-to-nearest 4-bit weights over int8 embeddings: that scheme here
      await runPasses(model, [passByName(plan === 'int8' ? 'quantize-int8' : 'quantize-int4')], { int4Rounding: 'nearest', int4Tables: 'int8' })
      const candidate = await evaluateFixture('albert-seqcls-trained', path.join(TRAINED, 'dev.jsonl'), 'text-classification', model)
      const c = compareEval(reference.result, candidate.result)
      const drop = c.drops[0]!.drop
      if (plan === 'int4') {
        assert.ok(drop >= 3 && drop <= 9, `int4 drop ${drop}`)
        assert.equal(gateDrop(c, 1).pass, false)
        assert.equal(gateDrop(c, 10).pass, true)
        let agree = 0
        for (let i = 0; i < c.examples; i++) if (!candidate.result.scorer.differs(i, sim as never)) agree++
        assert.ok(agree >= 480, `${agree} of 500 int4 predictions as the PyTorch simulation`)
      } else {
        assert.ok(Math.abs(drop) <= 1, `int8 drop ${drop}`)
        assert.ok(c.changed <= 10)
      }
    }
  })

  it('compares only the same examples', () => {
    const dev = stored('dev')
    assert.throws(() => compareEval(dev, stored('heldout')), { message: `the reference read ${dev.file} and the candidate ${path.join(TRAINED, 'heldout.jsonl')}: not the same examples` })
    const fewer = new ClassificationScorer(labels)
    fewer.record(1, 0, 0)
    assert.throws(() => compareEval(dev, { ...dev, scorer: fewer }), { message: 'the reference scored 500 examples and the candidate 1: not the same examples' })
    const other = new ClassificationScorer(labels)
    for (let i = 0; i < 500; i++) other.record(i + 2, 0, 0)
    assert.throws(() => compareEval(dev, { ...dev, scorer: other }), { message: 'example 1 is 1 in the reference and 2 in the candidate: not the same examples' })
  })

  it('the generator and the percentiles', () => {
    const rng = new Rng(0)
    const draws = Array.from({ length: 5 }, () => rng.below(10))
    assert.deepEqual(draws, Array.from({ length: 5 }, ((r) => () => r.below(10))(new Rng(0))))
    const counts = new Array(7).fill(0)
    const r = new Rng(42)
    for (let i = 0; i < 70_000; i++) counts[r.below(7)]++
    for (const c of counts) assert.ok(Math.abs(c - 10_000) < 400, `uniform: ${counts}`)
    // numpy.percentile([1, 2, 3, 4], [2.5, 97.5]) = [1.075, 3.925]
    const v = Float64Array.from([1, 2, 3, 4])
    same(quantile(v, 0.025), 1.075, 'low')
    same(quantile(v, 0.975), 3.925, 'high')
  })
})

describe('eval: a file far larger than the memory it may use is streamed', () => {
  it('300 MB of JSONL through the trained classifier under a 250 MB peak', async () => {
    const dir = tempDir()
    const file = path.join(dir, 'big.jsonl')
    const dev = fs.readFileSync(path.join(TRAINED, 'dev.jsonl'), 'utf8').trim().split('\n')
    // 300 lines carry a 1 MB field no one reads; the 500 dev lines between them are scored
    const fd = fs.openSync(file, 'w')
    const note = Buffer.from(`{"note": "${'n'.repeat(1_000_000)}", `)
    for (let i = 0; i < 300; i++) {
      fs.writeSync(fd, note)
      fs.writeSync(fd, `${dev[i % dev.length]!.slice(1)}\n${dev.slice(i * 2, i * 2 + 2).join('\n')}\n`)
    }
    fs.closeSync(fd)
    const size = fs.statSync(file).size
    assert.ok(size > 300e6, `${size} bytes`)
    const url = (rel: string) => new URL(rel, import.meta.url).href
    const script = `
      import { openCheckpoint } from '${url('../src/checkpoint/index.js')}'
      import { buildAlbert } from '${url('../src/builder/albert.js')}'
      import { resolveTask } from '${url('../src/checkpoint/task.js')}'
      import { modelBytes } from '${url('../src/onnx/file.js')}'
      import { createSession, runSession } from '${url('../src/runtime/session.js')}'
      import { openTokenizer } from '${url('../src/tokenizer/index.js')}'
      import { evaluate } from '${url('../src/eval/index.js')}'
      const ckpt = openCheckpoint(${JSON.stringify(TRAINED)})
      const task = resolveTask(ckpt.config, undefined, ckpt.configFile)
      const session = await createSession(modelBytes(buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.dir, configFile: ckpt.configFile }).model))
      let progress = 0
      const r = await evaluate('text-classification', ${JSON.stringify(file)}, openTokenizer(${JSON.stringify(TRAINED)}), ckpt.config, (f) => runSession(session, f), { onProgress: (p) => (progress = p.bytesRead / p.bytesTotal) })
      process.stdout.write(JSON.stringify({ examples: r.examples, accuracy: r.metrics.accuracy, progress, seconds: r.seconds.total }))
    `
    const r = await runCommandBounded(process.execPath, ['--input-type=module', '-e', script], { cpu: 60, mb: 250, cwd: path.dirname(new URL(import.meta.url).pathname) })
    assert.equal(r.killed, undefined, `stopped at the ${r.killed} bound (${r.ms.toFixed(0)} ms, ${r.peakMB.toFixed(0)} MB)`)
    assert.equal(r.status, 0, r.stderr)
    const out = JSON.parse(r.stdout)
    assert.equal(out.examples, 800)
    assert.equal(out.progress, 1)
    // dev's 500 lines (accuracy 0.844) plus the first 300 again, in the order written: the same predictions as alone
    const ref = readJson(path.join(TRAINED, 'dev.jsonl.reference.json')).examples as { correct: boolean }[]
    let correct = 0
    for (let i = 0; i < 300; i++) correct += (ref[i % 500]!.correct ? 1 : 0) + (ref[i * 2]?.correct ? 1 : 0) + (ref[i * 2 + 1]?.correct ? 1 : 0)
    same(out.accuracy, correct / 800, 'accuracy')
    console.log(`    streamed ${(size / 1e6).toFixed(0)} MB in ${(r.ms / 1000).toFixed(1)} s, peak ${r.peakMB.toFixed(0)} MB`)
  })
})

