/**
 * One labelled evaluation: a file read as it streams, its examples tokenized and batched (rows
 * padded per batch), each batch run by the caller's `run` (an onnxruntime session in the pipeline),
 * the outputs decoded per head and scored. Only the per-example outcomes stay in memory (a few
 * bytes per example; SQuAD keeps its document, read whole).
 */
import type { Tensor } from '../ir/tensor.js'
import type { TextTokenizer } from '../tokenizer/index.js'
import { UsageError, UserError, fail } from '../util/errors.js'
import { printable } from '../util/printable.js'
import { answerRank, argmax, decideSpan, spellingPieces, type SpanFeature } from './decode.js'
import { Encoder, contextWindows, padRows, type ContextTokens, type Row } from './encode.js'
import { Labels, type EvalModel } from './labels.js'
import { DEFAULT_BATCH, EVAL_LIMITS, type BatchOptions } from './limits.js'
import { openChecked, openLines, type LineReader } from './lines.js'
import { parseTag, squadExact, squadF1 } from './metrics.js'
import { choiceExamples, formatFor, maskExamples, textExamples, wordExamples, type EvalFormat, type EvalTask } from './readers.js'
import { ChoiceScorer, ClassificationScorer, MaskScorer, QaScorer, TokenScorer, type QaDetail, type Scorer } from './scoring.js'
import { readSquad, type SquadQuestion } from './squad.js'

export interface ModelOutput {
  data: Float32Array
  dims: readonly number[]
}

/** Runs the model on one batch: int64 input_ids / attention_mask / token_type_ids in, float32 outputs by name out. */
export type RunModel = (feeds: Map<string, Tensor>) => Promise<Map<string, ModelOutput>>

/** The model's outputs do not fit its task (a missing output, a shape that is not the head's). */
export class EvalOutputError extends Error {
  override name = 'EvalOutputError'
}

export interface QaOptions {
  /** 1: never answer ""; 2: SQuAD v2.0's null answer (default: as the file says) */
  version?: 1 | 2
  /** tokens of one window with its question and special tokens (default min(384, max_position_embeddings)) */
  maxLength?: number
  /** tokens two windows share (default min(128, maxLength / 4)) */
  docStride?: number
  /** tokens of the longest answer (default 30) */
  maxAnswerLength?: number
}

export interface EvalProgress {
  /** examples scored or skipped so far */
  examples: number
  bytesRead: number
  bytesTotal: number
}

export interface EvalOptions extends BatchOptions {
  /** the file's format (default: by the task, and for text classification the extension or first line) */
  format?: EvalFormat
  /** score only the first `limit` examples */
  limit?: number
  qa?: QaOptions
  /** after each batch */
  onProgress?: (p: EvalProgress) => void
}

export interface Skip {
  /** `line 12`, or a SQuAD question's id and place */
  where: string
  reason: string
}

export interface EvalResult {
  task: EvalTask
  file: string
  format: EvalFormat
  /** examples scored (lines, sentences, questions) */
  examples: number
  /** examples left out, each for a reason (the first 20 in `skips`) */
  skipped: number
  skips: Skip[]
  /** whether `limit` stopped the reading */
  limited: boolean
  /** model rows run (a question's windows, a question's choices count one each) and batches */
  rows: number
  batches: number
  metrics: Record<string, number>
  /** the metric a gate looks at by default */
  primary: string
  /** examples cut to max_position_embeddings tokens (scored as cut) */
  truncated: number
  /** examples whose outputs held NaN (scored as they decode: an all-NaN row is never right) */
  nonFinite: number
  warnings: string[]
  /** question answering: how windows were cut and spans chosen */
  qa?: { version: 1 | 2; maxLength: number; docStride: number; maxAnswerLength: number }
  seconds: { total: number; model: number }
  /** per-example outcomes (for compareEval and reports; not JSON) */
  scorer: Scorer
}

const MAX_SKIPS_SHOWN = 20

/** Accumulates one evaluation's batches, outcomes and counts. */
class Run {
  rows = 0
  batches = 0
  modelMs = 0
  skipped = 0
  skips: Skip[] = []
  truncated = 0
  nonFinite = 0
  taken = 0
  limited = false
  readonly warnings: string[] = []

  constructor(
    readonly run: RunModel,
    readonly opts: EvalOptions,
    readonly progress: () => { bytesRead: number; bytesTotal: number },
    readonly scorer: Scorer,
  ) {}

  /** Whether the limit lets one more example in (and counts it). */
  take(): boolean {
    if (this.opts.limit !== undefined && this.taken >= this.opts.limit) {
      this.limited = true
      return false
    }
    this.taken++
    return true
  }

  skip(where: string, reason: string): void {
    this.skipped++
    if (this.skips.length < MAX_SKIPS_SHOWN) this.skips.push({ where, reason })
  }

  async call(feeds: Map<string, Tensor>, rows: number): Promise<Map<string, ModelOutput>> {
    const t = performance.now()
    const out = await this.run(feeds)
    this.modelMs += performance.now() - t
    this.rows += rows
    this.batches++
    return out
  }

  reportProgress(): void {
    this.opts.onProgress?.({ examples: this.scorer.count + this.skipped, ...this.progress() })
  }
}

/** An output by name, its shape checked: `dims` with -1 for any size. */
function output(out: Map<string, ModelOutput>, name: string, dims: readonly number[]): ModelOutput {
  const o = out.get(name)
  if (!o) throw new EvalOutputError(`the model has no output '${name}' (outputs: ${[...out.keys()].map((k) => printable(k, 60)).join(', ') || 'none'})`)
  const ok = o.dims.length === dims.length && dims.every((d, i) => d < 0 || d === o.dims[i])
  if (!ok) throw new EvalOutputError(`the model's output '${name}' has shape [${o.dims.join(', ')}], expected [${dims.map((d) => (d < 0 ? '?' : d)).join(', ')}]`)
  return o
}

function hasNaN(values: Float32Array, offset: number, count: number): boolean {
  for (let i = offset; i < offset + count; i++) if (Number.isNaN(values[i]!)) return true
  return false
}

/** Rows gathered into a batch until one more would pass the row, token or output budget. */
class Batch<T> {
  rows: Row[] = []
  items: T[] = []
  private longest = 0

  constructor(
    private readonly maxRows: number,
    private readonly maxTokens: number,
    /** output values per token of a row (fill-mask: the vocabulary), bounding the largest output */
    private readonly perToken = 1,
  ) {}

  /** Whether `rows` more rows (one unit) fit beside those already here. */
  fits(rows: readonly Row[]): boolean {
    if (this.rows.length === 0) return true
    let longest = this.longest
    for (const r of rows) longest = Math.max(longest, r.ids.length)
    const n = this.rows.length + rows.length
    return n <= this.maxRows && n * longest <= this.maxTokens && n * longest * this.perToken <= EVAL_LIMITS.outputValues
  }

  add(rows: readonly Row[], item: T): void {
    for (const r of rows) {
      this.rows.push(r)
      this.longest = Math.max(this.longest, r.ids.length)
    }
    this.items.push(item)
  }

  take(): { rows: Row[]; items: T[] } {
    const taken = { rows: this.rows, items: this.items }
    this.rows = []
    this.items = []
    this.longest = 0
    return taken
  }

  get size(): number {
    return this.rows.length
  }
}

function batchLimits(opts: EvalOptions): { rows: number; tokens: number } {
  const rows = opts.batchSize ?? DEFAULT_BATCH.batchSize
  const tokens = opts.batchTokens ?? DEFAULT_BATCH.batchTokens
  if (!Number.isSafeInteger(rows) || rows < 1 || rows > EVAL_LIMITS.batchRows) throw new UsageError(`batch size must be an integer from 1 to ${EVAL_LIMITS.batchRows}, got ${rows}`)
  if (!Number.isSafeInteger(tokens) || tokens < 1) throw new UsageError(`batch tokens must be a positive integer, got ${tokens}`)
  if (opts.limit !== undefined && (!Number.isSafeInteger(opts.limit) || opts.limit < 1)) throw new UsageError(`limit must be a positive integer, got ${opts.limit}`)
  return { rows, tokens }
}

/**
 * Evaluate `task` on the labelled `file`: read, tokenize with `tok`, batch, run, decode, score.
 * Bad input stops it with a one-line UserError naming the file (and line); examples that cannot be
 * scored as they are (a sentence longer than the model takes, a question that leaves no room for
 * its context) are skipped and counted.
 */
export async function evaluate(task: EvalTask, file: string, tok: TextTokenizer, model: EvalModel, run: RunModel, opts: EvalOptions = {}): Promise<EvalResult> {
  const start = performance.now()
  const limits = batchLimits(opts)
  const encoder = new Encoder(tok, model)
  const format = formatFor(task, file, opts.format)
  let r: Run
  let qa: EvalResult['qa']
  let used = format
  if (task === 'question-answering') {
    const out = await evaluateQa(file, encoder, model, run, opts, limits)
    r = out.run
    qa = out.qa
  } else {
    const reader = await openLines(file, { maxLineBytes: EVAL_LIMITS.lineBytes, maxFileBytes: EVAL_LIMITS.streamedFileBytes })
    try {
      r = await evaluateLines(task, format, reader, encoder, model, run, opts, limits, (f) => (used = f))
    } finally {
      await reader.close()
    }
  }
  if (r.scorer.count === 0) fail(file, `no example could be scored (${r.skipped} skipped; the first: ${r.skips[0] ? `${r.skips[0].where}: ${r.skips[0].reason}` : 'none'})`)
  if (encoder.zeroedTypes) r.warnings.push('the model has one token type (type_vocab_size 1): second segments ran with token type 0')
  if (r.truncated > 0) r.warnings.push(`${r.truncated} ${r.truncated === 1 ? 'example was' : 'examples were'} cut to max_position_embeddings (${model.maxPositionEmbeddings} tokens) and scored as cut`)
  if (r.nonFinite > 0) r.warnings.push(`the model gave NaN for ${r.nonFinite} ${r.nonFinite === 1 ? 'example' : 'examples'}`)
  if (r.skipped > 0) r.warnings.push(`${r.skipped} ${r.skipped === 1 ? 'example' : 'examples'} skipped; the first: ${r.skips[0]!.where}: ${r.skips[0]!.reason}`)
  const result: EvalResult = {
    task,
    file,
    format: used!,
    examples: r.scorer.count,
    skipped: r.skipped,
    skips: r.skips,
    limited: r.limited,
    rows: r.rows,
    batches: r.batches,
    metrics: r.scorer.metrics(),
    primary: r.scorer.dropMetrics[0]!,
    truncated: r.truncated,
    nonFinite: r.nonFinite,
    warnings: r.warnings,
    seconds: { total: (performance.now() - start) / 1000, model: r.modelMs / 1000 },
    scorer: r.scorer,
  }
  if (qa) result.qa = qa
  return result
}

async function evaluateLines(
  task: Exclude<EvalTask, 'question-answering'>,
  format: EvalFormat | undefined,
  reader: LineReader,
  encoder: Encoder,
  model: EvalModel,
  runModel: RunModel,
  opts: EvalOptions,
  limits: { rows: number; tokens: number },
  onFormat: (f: EvalFormat) => void,
): Promise<Run> {
  const file = reader.file
  const progress = () => ({ bytesRead: reader.bytesRead(), bytesTotal: reader.size })
  const labels = Labels.of(model)
  const where = (line: number) => `${file}: line ${line}`

  switch (task) {
    case 'text-classification': {
      const scorer = new ClassificationScorer(labels)
      const run = new Run(runModel, opts, progress, scorer)
      const batch = new Batch<{ line: number; label: number }>(limits.rows, limits.tokens)
      const flush = async () => {
        if (batch.size === 0) return
        const { rows, items } = batch.take()
        const out = output(await run.call(padRows(rows, encoder.padId), rows.length), 'logits', [rows.length, labels.count])
        items.forEach((it, i) => {
          const base = i * labels.count
          if (hasNaN(out.data, base, labels.count)) run.nonFinite++
          const p = argmax(out.data, base, labels.count)
          scorer.record(it.line, it.label, p < 0 ? -1 : labels.canonical(p))
        })
        run.reportProgress()
      }
      for await (const ex of textExamples(reader, format === 'tsv' || format === 'jsonl' ? format : undefined, labels, onFormat)) {
        if (!run.take()) break
        const input = ex.pair === undefined ? { text: ex.text } : { text: ex.text, pair: ex.pair }
        const { row, truncated } = encoder.text(input, where(ex.line))
        if (truncated > 0) run.truncated++
        const rows = [encoder.check(row)]
        if (!batch.fits(rows)) await flush()
        batch.add(rows, { line: ex.line, label: ex.label })
      }
      await flush()
      return run
    }

    case 'token-classification': {
      const bad = labels.names.find((n) => !parseTag(n))
      if (bad !== undefined) throw new UserError(`the model's label "${printable(bad, 60)}" is not an IOB2 tag (O, B-X, I-X): entity scores need IOB2 labels`)
      const scorer = new TokenScorer(labels)
      const run = new Run(runModel, opts, progress, scorer)
      const batch = new Batch<{ line: number; tags: number[]; first: number[] }>(limits.rows, limits.tokens)
      const flush = async () => {
        if (batch.size === 0) return
        const { rows, items } = batch.take()
        const longest = Math.max(...rows.map((r) => r.ids.length))
        const out = output(await run.call(padRows(rows, encoder.padId), rows.length), 'logits', [rows.length, longest, labels.count])
        items.forEach((it, i) => {
          let nan = false
          const pred = it.first.map((f) => {
            const base = (i * longest + 1 + f) * labels.count
            nan ||= hasNaN(out.data, base, labels.count)
            const p = argmax(out.data, base, labels.count)
            return p < 0 ? -1 : labels.canonical(p)
          })
          if (nan) run.nonFinite++
          scorer.record(it.line, it.tags, pred)
        })
        run.reportProgress()
      }
      for await (const ex of wordExamples(reader, labels)) {
        if (!run.take()) break
        const { ids, first } = encoder.words(ex.words, where(ex.line))
        const empty = first.indexOf(-1)
        if (empty >= 0) {
          run.skip(`line ${ex.line + empty}`, `the word "${printable(ex.words[empty]!, 60)}" has no tokens`)
          continue
        }
        if (ids.length + 2 > model.maxPositionEmbeddings) {
          run.skip(`line ${ex.line}`, `the sentence has ${ids.length + 2} tokens, more than max_position_embeddings ${model.maxPositionEmbeddings}`)
          continue
        }
        const rows = [encoder.check(encoder.frame(ids))]
        if (!batch.fits(rows)) await flush()
        batch.add(rows, { line: ex.line, tags: ex.tags, first })
      }
      await flush()
      return run
    }

    case 'fill-mask': {
      const maskToken = '[MASK]'
      const maskId = encoder.idOf(maskToken)
      if (encoder.tok.tokenizer.id_to_token(maskId) !== maskToken) fail(encoder.tok.file, `has no ${maskToken} token`)
      const vocab = model.vocabSize
      const scorer = new MaskScorer()
      const run = new Run(runModel, opts, progress, scorer)
      const batch = new Batch<{ line: number; mask: number; pieces: number[] }>(limits.rows, limits.tokens, vocab)
      const idOfPiece = (p: string) => encoder.tok.tokenizer.token_to_id(p)
      const flush = async () => {
        if (batch.size === 0) return
        const { rows, items } = batch.take()
        const longest = Math.max(...rows.map((r) => r.ids.length))
        const out = output(await run.call(padRows(rows, encoder.padId), rows.length), 'logits', [rows.length, longest, vocab])
        items.forEach((it, i) => {
          const base = (i * longest + it.mask) * vocab
          if (hasNaN(out.data, base, vocab)) run.nonFinite++
          scorer.record(it.line, answerRank(out.data, base, vocab, it.pieces), it.pieces.length > 0, argmax(out.data, base, vocab))
        })
        run.reportProgress()
      }
      for await (const ex of maskExamples(reader, maskToken)) {
        if (!run.take()) break
        const { row, truncated } = encoder.text({ text: ex.text }, where(ex.line))
        const mask = row.ids.indexOf(maskId)
        if (mask < 0) {
          run.skip(`line ${ex.line}`, `the ${maskToken} was cut off at max_position_embeddings ${model.maxPositionEmbeddings}`)
          continue
        }
        if (truncated > 0) run.truncated++
        const pieces = spellingPieces(encoder.normalize(ex.answer), idOfPiece)
        const rows = [encoder.check(row)]
        if (!batch.fits(rows)) await flush()
        batch.add(rows, { line: ex.line, mask, pieces })
      }
      await flush()
      return run
    }

    case 'multiple-choice': {
      const scorer = new ChoiceScorer()
      const run = new Run(runModel, opts, progress, scorer)
      const batch = new Batch<{ line: number; answer: number }>(limits.rows * EVAL_LIMITS.choices, limits.tokens)
      let choices = 0
      const flush = async () => {
        if (batch.size === 0) return
        const { rows, items } = batch.take()
        const b = items.length
        const out = output(await run.call(padRows(rows, encoder.padId, [b, choices]), rows.length), 'logits', [b, choices])
        items.forEach((it, i) => {
          if (hasNaN(out.data, i * choices, choices)) run.nonFinite++
          scorer.record(it.line, it.answer, argmax(out.data, i * choices, choices))
        })
        run.reportProgress()
      }
      for await (const ex of choiceExamples(reader)) {
        if (!run.take()) break
        let cut = false
        const rows = ex.choices.map((c) => {
          const { row, truncated } = encoder.text({ text: ex.question, pair: c }, where(ex.line))
          cut ||= truncated > 0
          return encoder.check(row)
        })
        if (cut) run.truncated++
        // one batch holds questions of one number of choices, at most batchSize of them
        if (rows.length !== choices || batch.items.length >= limits.rows || !batch.fits(rows)) await flush()
        choices = rows.length
        batch.add(rows, { line: ex.line, answer: ex.answer })
      }
      await flush()
      return run
    }
  }
}

interface PendingQuestion {
  q: SquadQuestion
  context: string
  tokens: ContextTokens
  windows: [number, number][]
  /** position of the first context token in every window's row */
  first: number
  features: SpanFeature[]
  remaining: number
}

async function evaluateQa(
  file: string,
  encoder: Encoder,
  model: EvalModel,
  runModel: RunModel,
  opts: EvalOptions,
  limits: { rows: number; tokens: number },
): Promise<{ run: Run; qa: NonNullable<EvalResult['qa']> }> {
  const squad = await readSquad(file)
  const o = opts.qa ?? {}
  const version = o.version ?? squad.version
  const maxLength = o.maxLength ?? Math.min(384, model.maxPositionEmbeddings)
  const docStride = o.docStride ?? Math.min(128, Math.floor(maxLength / 4))
  const maxAnswerLength = o.maxAnswerLength ?? 30
  if (!Number.isSafeInteger(maxLength) || maxLength < 4 || maxLength > model.maxPositionEmbeddings) {
    throw new UsageError(`the window length must be an integer from 4 to the model's max_position_embeddings ${model.maxPositionEmbeddings}, got ${maxLength}`)
  }
  if (!Number.isSafeInteger(docStride) || docStride < 0) throw new UsageError(`the document stride must be a non-negative integer, got ${docStride}`)
  if (!Number.isSafeInteger(maxAnswerLength) || maxAnswerLength < 1) throw new UsageError(`the longest answer must be a positive number of tokens, got ${maxAnswerLength}`)
  const scorer = new QaScorer(version === 2)
  let done = 0
  const run = new Run(runModel, opts, () => ({ bytesRead: Math.round((squad.size * done) / squad.questions), bytesTotal: squad.size }), scorer)
  const batch = new Batch<{ p: PendingQuestion; f: number }>(limits.rows, limits.tokens)
  const queue: PendingQuestion[] = []

  const decide = (p: PendingQuestion) => {
    const d = decideSpan(p.features, maxAnswerLength, version === 2)
    let text = ''
    let best: QaDetail['best'] = null
    if (d.span) {
      const [a] = p.windows[d.span.feature]!
      const ts = a + d.span.start - p.first
      const te = a + d.span.end - p.first
      const sc = p.tokens.offsets[2 * ts]!
      const ec = p.tokens.offsets[2 * te + 1]!
      best = { feature: d.span.feature, start_token: d.span.start, end_token: d.span.end, start_char: sc, end_char: ec, score: d.span.score }
      if (d.answered) text = p.context.slice(sc, ec)
    }
    scorer.record(p.q.id, text, squadExact(p.q.answers, text), squadF1(p.q.answers, text), p.q.answers.length > 0, { best, null_score: d.nullScore ?? null, features: p.features.length })
    done++
  }

  const flush = async () => {
    if (batch.size === 0) return
    const { rows, items } = batch.take()
    const longest = Math.max(...rows.map((r) => r.ids.length))
    const out = await run.call(padRows(rows, encoder.padId), rows.length)
    const starts = output(out, 'start_logits', [rows.length, longest])
    const ends = output(out, 'end_logits', [rows.length, longest])
    items.forEach(({ p, f }, i) => {
      const len = rows[i]!.ids.length
      const start = starts.data.slice(i * longest, i * longest + len)
      const end = ends.data.slice(i * longest, i * longest + len)
      p.features[f] = { start, end, first: p.first, last: len - 1 }
      p.remaining--
    })
    while (queue.length > 0 && queue[0]!.remaining === 0) {
      const p = queue.shift()!
      if (p.features.some((f) => hasNaN(f.start as Float32Array, 0, f.start.length) || hasNaN(f.end as Float32Array, 0, f.end.length))) run.nonFinite++
      decide(p)
    }
    run.reportProgress()
  }

  outer: for (const para of squad.paragraphs) {
    if (para.context.length > EVAL_LIMITS.contextChars) {
      for (const q of para.questions) {
        if (!run.take()) break outer
        run.skip(`question "${printable(q.id, 80)}" (${q.where})`, `its context has ${para.context.length} characters, more than ${EVAL_LIMITS.contextChars}`)
        done++
      }
      continue
    }
    const tokens = encoder.context(para.context, `${file}: ${para.where}`)
    if (tokens.unaligned > 0) run.warnings.push(`${para.where}: ${tokens.unaligned} context words could not be matched to characters; their answers span the whole word`)
    for (const q of para.questions) {
      if (!run.take()) break outer
      const qWhere = `question "${printable(q.id, 80)}" (${q.where})`
      if (q.question.length > EVAL_LIMITS.textChars) {
        run.skip(qWhere, `the question has ${q.question.length} characters, more than ${EVAL_LIMITS.textChars}`)
        done++
        continue
      }
      encoder.tok.begin(`${file}: ${qWhere}`)
      const qIds = encoder.pieces(q.question, `${file}: ${qWhere}`).map((t) => encoder.idOf(t))
      const windows = contextWindows(tokens.ids.length, qIds.length, maxLength, docStride)
      if (typeof windows === 'string') {
        run.skip(qWhere, windows)
        done++
        continue
      }
      const p: PendingQuestion = { q, context: para.context, tokens, windows, first: qIds.length + 2, features: [], remaining: windows.length }
      queue.push(p)
      for (const [f, [a, b]] of windows.entries()) {
        const rows = [encoder.check(encoder.frame(qIds, tokens.ids.slice(a, b)))]
        if (!batch.fits(rows)) await flush()
        batch.add(rows, { p, f })
      }
    }
  }
  await flush()
  return { run, qa: { version, maxLength, docStride, maxAnswerLength } }
}

/** Whether `file` can be read as `task`'s dev set (it exists, is a regular file, within its size), before any model runs. */
export async function checkEvalFile(task: EvalTask, file: string): Promise<void> {
  const squad = task === 'question-answering'
  const { handle } = await openChecked(file, squad ? EVAL_LIMITS.squadFileBytes : EVAL_LIMITS.streamedFileBytes, squad ? 'a SQuAD JSON file (read whole)' : 'a file it streams')
  await handle.close()
}
