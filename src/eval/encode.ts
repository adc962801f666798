/**
 * Examples as model inputs, in the verification feeds' layout (tokenizer/index.ts encodeTexts):
 * int64 input_ids / attention_mask / token_type_ids of [rows, longest], padded per batch with the
 * tokenizer's pad id. Texts and pairs go through encodeTexts itself; words (token classification)
 * and SQuAD windows are framed here as `[CLS] a [SEP]` / `[CLS] a [SEP] b [SEP]`, which the
 * tokenizer's post-processor is checked to produce. Context tokens carry character offsets by the
 * rule in fixtures/eval/DECODING.md, in UTF-16 units of the context (JavaScript string indices).
 */
import { DataType } from '../ir/dtype.js'
import { Tensor, bytesOf } from '../ir/tensor.js'
import { encodeTexts, type TextInput, type TextTokenizer } from '../tokenizer/index.js'
import { UserError, describe, fail } from '../util/errors.js'
import { printable } from '../util/printable.js'
import type { EvalModel } from './labels.js'

/** One row of a batch before padding. */
export interface Row {
  ids: number[]
  types: number[]
}

/** SentencePiece's word-start mark, which ALBERT's Metaspace pre-tokenizer writes. */
export const WORD_START = '\u2581'

/** Runs of characters that are not Unicode White_Space (what tokenizers' WhitespaceSplit splits on). */
const WORD = /[^\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/g
const ASCII = /^[\x00-\x7f]*$/

export interface ContextTokens {
  ids: number[]
  /** [start, end) of each token, in UTF-16 units of the context: 2 entries per token */
  offsets: Int32Array
  /** words whose pieces could not be matched to characters (each piece then spans the whole word) */
  unaligned: number
}

interface Normalizer {
  normalize(text: string): string
}

export class Encoder {
  readonly padId: number
  readonly cls: number
  readonly sep: number
  private readonly unk: number | undefined
  private readonly added: Map<string, number>
  private readonly normalizer: Normalizer | undefined
  /** rows whose token types were set to 0 (a model with one token type) */
  zeroedTypes = false

  constructor(
    readonly tok: TextTokenizer,
    readonly model: EvalModel,
  ) {
    const t = tok.tokenizer
    this.added = new Map([...t.get_added_tokens_decoder()].map(([id, a]) => [a.content, id]))
    this.unk = t.model?.unk_token_id ?? undefined
    this.padId = tok.padId
    if (this.padId < 0 || this.padId >= model.vocabSize) fail(tok.file, `pad id ${this.padId} is outside the model's vocab_size ${model.vocabSize}`)
    const n = t.normalizer as unknown as Normalizer | null
    this.normalizer = n && typeof n.normalize === 'function' ? n : undefined
    const framed = this.library('a pair', () => t.post_processor?.(['a'], ['b'], true)) as { tokens?: unknown; token_type_ids?: unknown } | undefined
    const tokens = framed?.tokens
    const types = framed?.token_type_ids
    const ok =
      Array.isArray(tokens) &&
      tokens.length === 5 &&
      tokens[1] === 'a' &&
      tokens[3] === 'b' &&
      tokens[2] === tokens[4] &&
      Array.isArray(types) &&
      types.join(',') === '0,0,0,1,1'
    if (!ok) fail(tok.file, 'its post-processor does not frame a pair as [CLS] a [SEP] b [SEP] with token types 0 0 0 1 1, as ALBERT does')
    this.cls = this.idOf(tokens[0] as string)
    this.sep = this.idOf(tokens[2] as string)
  }

  private library<T>(what: string, fn: () => T): T {
    try {
      return fn()
    } catch (e) {
      if (e instanceof UserError) throw e
      fail(this.tok.file, `cannot tokenize ${what}: ${describe(e)}`)
    }
  }

  /** The id of a token string (added tokens first, then the vocabulary, then the unknown token). */
  idOf(token: string): number {
    const id = this.added.get(token) ?? this.tok.tokenizer.token_to_id(token) ?? this.unk
    if (id === undefined) fail(this.tok.file, `token '${printable(token)}' has no id and the tokenizer has no unknown token`)
    return id
  }

  /** Text pieces without special tokens. */
  pieces(text: string, what: string): string[] {
    return this.library(what, () => this.tok.tokenizer.tokenize(text))
  }

  /** The tokenizer's normalization of a text (the text itself when it has no normalizer). */
  normalize(text: string): string {
    return this.normalizer ? this.library('a text', () => this.normalizer!.normalize(text)) : text
  }

  /** A text or pair through encodeTexts (the verification path): its row, and how many tokens it lost to max_position_embeddings. */
  text(input: TextInput, what: string): { row: Row; truncated: number } {
    this.tok.begin(what)
    let enc
    try {
      enc = encodeTexts(this.tok, [input], { maxLength: this.model.maxPositionEmbeddings })
    } catch (e) {
      // encodeTexts names the text 'text 1'; here it is a line of a file
      if (e instanceof UserError && !(e.message.startsWith(this.tok.file))) throw new UserError(`${what}: ${e.message.replace(/^text 1: /, '')}`)
      throw e
    }
    const r = enc.rows[0]!
    const types = enc.feeds.get('token_type_ids')!.toBigInt64()
    return { row: { ids: r.ids, types: Array.from(types, Number) }, truncated: r.truncated }
  }

  /** `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` from ids. */
  frame(a: readonly number[], b?: readonly number[]): Row {
    const ids = [this.cls, ...a, this.sep]
    const types = new Array<number>(ids.length).fill(0)
    if (b) {
      for (const id of b) ids.push(id), types.push(1)
      ids.push(this.sep), types.push(1)
    }
    return { ids, types }
  }

  /**
   * Words tokenized one by one (transformers' is_split_into_words): the ids of all their pieces,
   * and the index of each word's first piece (-1 for a word the tokenizer turns into nothing).
   */
  words(words: readonly string[], what: string): { ids: number[]; first: number[] } {
    this.tok.begin(what)
    const ids: number[] = []
    const first: number[] = []
    for (const w of words) {
      const p = this.pieces(w, what)
      first.push(p.length > 0 ? ids.length : -1)
      for (const piece of p) ids.push(this.idOf(piece))
    }
    return { ids, first }
  }

  /**
   * A SQuAD context's tokens (each whitespace-separated word tokenized as ▁ + word) and each
   * token's characters: a piece covers its own characters of the word, its ▁ none; a lone ▁
   * covers the word's first character; an unknown piece covers the characters it stands for.
   * Pieces are matched to characters through the normalization of each character alone; where
   * that does not give the word's normalization, the word's pieces all span the whole word.
   */
  context(context: string, what: string): ContextTokens {
    this.tok.begin(what)
    const ids: number[] = []
    const offsets: number[] = []
    let unaligned = 0
    for (const m of context.matchAll(WORD)) {
      const word = m[0]
      const ws = m.index!
      const we = ws + word.length
      const pieces = this.pieces(word, what)
      const map = this.alignment(word)
      let cursor = 0
      let aligned = map !== undefined
      for (const piece of pieces) {
        ids.push(this.idOf(piece))
        const own = piece.startsWith(WORD_START) ? piece.slice(1) : piece
        if (own === '') {
          offsets.push(ws, ws + (word.codePointAt(0)! > 0xffff ? 2 : 1))
          continue
        }
        if (aligned) {
          while (cursor < map!.text.length && /\s/.test(map!.text[cursor]!)) cursor++
          if (map!.text.startsWith(own, cursor)) {
            offsets.push(ws + map!.start[cursor]!, ws + map!.end[cursor + own.length - 1]!)
            cursor += own.length
            continue
          }
          aligned = false
        }
        offsets.push(ws, we)
      }
      if (!aligned) unaligned++
    }
    return { ids, offsets: Int32Array.from(offsets), unaligned }
  }

  /** The word's normalized text and, per UTF-16 unit of it, the word's characters it came from; undefined when per-character normalization does not give the word's. */
  private alignment(word: string): { text: string; start: number[]; end: number[] } | undefined {
    const whole = this.normalize(word)
    if (ASCII.test(word) && whole.length === word.length) {
      const start = [...Array(word.length).keys()]
      return { text: whole, start, end: start.map((i) => i + 1) }
    }
    let text = ''
    const start: number[] = []
    const end: number[] = []
    for (let i = 0; i < word.length; ) {
      const cp = word.codePointAt(i)!
      const len = cp > 0xffff ? 2 : 1
      const n = this.normalize(word.slice(i, i + len))
      text += n
      for (let k = 0; k < n.length; k++) start.push(i), end.push(i + len)
      i += len
    }
    return text === whole ? { text, start, end } : undefined
  }

  /** Check a row against the model: ids within vocab_size, token types within type_vocab_size (all 0 for a model with one type). */
  check(row: Row): Row {
    for (const id of row.ids) {
      if (id < 0 || id >= this.model.vocabSize) fail(this.tok.file, `gives id ${id}, outside the model's vocab_size ${this.model.vocabSize} (tokenizer and checkpoint do not match)`)
    }
    if (row.types.some((t) => t >= this.model.typeVocabSize)) {
      if (this.model.typeVocabSize > 1) fail(this.tok.file, `gives token types beyond the model's type_vocab_size ${this.model.typeVocabSize}`)
      row.types.fill(0)
      this.zeroedTypes = true
    }
    return row
  }
}

/** Rows padded to the longest as int64 input_ids / attention_mask / token_type_ids of `outer` × longest (default [rows]). */
export function padRows(rows: readonly Row[], padId: number, outer: readonly number[] = [rows.length]): Map<string, Tensor> {
  let longest = 0
  for (const r of rows) longest = Math.max(longest, r.ids.length)
  const n = rows.length * longest
  const ids = new BigInt64Array(n).fill(BigInt(padId))
  const mask = new BigInt64Array(n)
  const types = new BigInt64Array(n)
  rows.forEach((row, r) => {
    const base = r * longest
    for (let i = 0; i < row.ids.length; i++) {
      ids[base + i] = BigInt(row.ids[i]!)
      mask[base + i] = 1n
      types[base + i] = BigInt(row.types[i]!)
    }
  })
  const dims = [...outer, longest]
  return new Map([
    ['input_ids', new Tensor(DataType.INT64, dims, bytesOf(ids))],
    ['attention_mask', new Tensor(DataType.INT64, dims, bytesOf(mask))],
    ['token_type_ids', new Tensor(DataType.INT64, dims, bytesOf(types))],
  ])
}

/**
 * The windows of a SQuAD context: W = maxLength − question tokens − 3 context tokens each, starting
 * at 0, W − stride, 2(W − stride), …; the last is the first that reaches the last token. [first, end) pairs.
 */
export function contextWindows(contextTokens: number, questionTokens: number, maxLength: number, stride: number): [number, number][] | string {
  const w = maxLength - questionTokens - 3
  if (w <= stride) return `the question's ${questionTokens} tokens leave ${Math.max(w, 0)} for the context within ${maxLength}, not more than the document stride ${stride}`
  if (contextTokens === 0) return 'the context has no tokens'
  const out: [number, number][] = []
  for (let s = 0; ; s += w - stride) {
    const e = Math.min(s + w, contextTokens)
    out.push([s, e])
    if (e >= contextTokens) return out
  }
}
