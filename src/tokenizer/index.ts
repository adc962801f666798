/**
 * Real text as model inputs: open a checkpoint's tokenizer (tokenizer.json through
 * @huggingface/tokenizers, or its SentencePiece model converted on the fly), and encode texts or
 * text pairs into the int64 input_ids / attention_mask / token_type_ids batch the verifier runs.
 */
import fs from 'node:fs'
import path from 'node:path'
import { Tokenizer } from '@huggingface/tokenizers'
import { DataType } from '../ir/dtype.js'
import { Tensor, bytesOf } from '../ir/tensor.js'
import type { AlbertConfig } from '../checkpoint/config.js'
import type { Task } from '../checkpoint/task.js'
import { UserError, describe, fail } from '../util/errors.js'
import { printable } from '../util/printable.js'
import { tokenizerFilesFromSentencepiece, type AlbertTokenizerOptions } from './sentencepiece.js'
import { LIMITS, boundTokenizerWork, checkTokenizerConfig, checkTokenizerJson } from './limits.js'
import { statOrFail } from '../util/read.js'
import { isFile } from '../util/paths.js'

export { tokenizerFilesFromSentencepiece, albertTokenizerFiles, parseSentencepiece, readSentencepiece } from './sentencepiece.js'
export type { AlbertTokenizerOptions, TokenizerFiles, SentencePieceModel, Piece, PieceType } from './sentencepiece.js'
export { LIMITS } from './limits.js'

/** Files that hold a tokenizer, in order of preference. */
export const TOKENIZER_FILES = ['tokenizer.json', 'spiece.model', '30k-clean.model'] as const

export interface TextTokenizer {
  /** the file it came from (tokenizer.json, or the SentencePiece model it was converted from) */
  file: string
  /** 'tokenizer.json' or 'sentencepiece' (converted by albertkit) */
  kind: 'tokenizer.json' | 'sentencepiece'
  tokenizer: Tokenizer
  /** id written at padded positions */
  padId: number
  /** starts counting the work on the next text (see boundTokenizerWork) */
  begin(label: string): void
}

export interface TextInput {
  text: string
  /** second segment (a question's context, a sentence pair's second sentence) */
  pair?: string
}

export interface EncodedRow extends TextInput {
  ids: number[]
  /** token strings of `ids` (the vocabulary's, so unknown text shows as the unk token) */
  tokens: string[]
  /** tokens dropped to fit maxLength (0 when none) */
  truncated: number
}

export interface EncodedTexts {
  /** int64 [rows, longest]: input_ids, attention_mask, token_type_ids */
  feeds: Map<string, Tensor>
  rows: EncodedRow[]
  /** length of the longest row, which every row is padded to */
  longest: number
  warnings: string[]
}

/** A JSON object file of at most `maxBytes`, its size checked before it is read. */
function readJson(file: string, maxBytes: number): Record<string, unknown> {
  let text: string
  try {
    const size = fs.statSync(file).size
    if (size > maxBytes) fail(file, `is ${size} bytes, more than the ${maxBytes} albertkit reads from a tokenizer file`)
    text = fs.readFileSync(file, 'utf8')
  } catch (e) {
    if (e instanceof UserError) throw e
    fail(file, `cannot read: ${(e as NodeJS.ErrnoException).code ?? describe(e)}`)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    fail(file, `not valid JSON (${describe(e)})`)
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(file, 'expected a JSON object')
  return json as Record<string, unknown>
}

/** A special-token entry of tokenizer_config.json: a string or an AddedToken-like object. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content
  return undefined
}


/** A folder's tokenizer_config.json, read strictly; an empty object when there is none. */
export function readTokenizerConfig(dir: string): { file: string; config: Record<string, unknown> } {
  const file = path.join(dir, 'tokenizer_config.json')
  const config = isFile(file) ? readJson(file, LIMITS.configFileBytes) : {}
  checkTokenizerConfig(config, file)
  return { file, config }
}

/** The casing options a tokenizer_config.json sets for a SentencePiece model (AlbertTokenizer's defaults otherwise). */
export function sentencepieceOptions(config: Record<string, unknown>, configFile: string): AlbertTokenizerOptions {
  const bool = (key: string, fallback: boolean) => {
    const v = config[key]
    if (v === undefined) return fallback
    if (typeof v !== 'boolean') fail(configFile, `${key} must be true or false, got ${printable(JSON.stringify(v))}`)
    return v
  }
  return { doLowerCase: bool('do_lower_case', true), keepAccents: bool('keep_accents', false) }
}

/**
 * The tokenizer of a checkpoint folder: tokenizer.json (with tokenizer_config.json beside it when
 * there is one), else spiece.model or 30k-clean.model converted the way transformers converts
 * ALBERT's. A folder with none of them is a UserError that names the files looked for.
 */
export function openTokenizer(dir: string): TextTokenizer {
  if (statOrFail(dir, () => 'no such folder').isFile()) dir = path.dirname(dir)
  const { file: configFile, config } = readTokenizerConfig(dir)
  const found = TOKENIZER_FILES.map((f) => path.join(dir, f)).find(isFile)
  if (!found) fail(dir, `has no tokenizer (looked for ${TOKENIZER_FILES.join(', ')})`)

  let json: Record<string, unknown>
  let kind: TextTokenizer['kind']
  if (path.basename(found) === 'tokenizer.json') {
    json = readJson(found, LIMITS.tokenizerFileBytes)
    kind = 'tokenizer.json'
  } else {
    const files = tokenizerFilesFromSentencepiece(found, sentencepieceOptions(config, configFile))
    json = files['tokenizer.json']
    for (const [k, v] of Object.entries(files['tokenizer_config.json'])) if (!(k in config)) config[k] = v
    kind = 'sentencepiece'
  }
  // Bounded before the library builds anything: its vocabulary trie, its regexes (which run on a
  // backtracking engine) and its loops are only as cheap as the file lets them be.
  checkTokenizerJson(json, found)
  let tokenizer: Tokenizer
  try {
    tokenizer = new Tokenizer(json, config)
  } catch (e) {
    fail(found, `cannot load this tokenizer: ${describe(e)}`)
  }
  const { begin } = boundTokenizerWork(tokenizer, json, found)
  return { file: found, kind, tokenizer, padId: padIdOf(tokenizer, json, config), begin }
}

function padIdOf(tokenizer: Tokenizer, json: Record<string, unknown>, config: Record<string, unknown>): number {
  const named = tokenContent(config.pad_token)
  const byName = named !== undefined ? idOfToken(tokenizer, named) : undefined
  if (byName !== undefined) return byName
  const padding = json.padding as { pad_id?: unknown } | null | undefined
  if (padding && typeof padding.pad_id === 'number') return padding.pad_id
  return idOfToken(tokenizer, '<pad>') ?? 0
}

function addedTokenIds(tokenizer: Tokenizer): Map<string, number> {
  const ids = new Map<string, number>()
  for (const [id, t] of tokenizer.get_added_tokens_decoder()) ids.set(t.content, id)
  return ids
}

function idOfToken(tokenizer: Tokenizer, token: string): number | undefined {
  return addedTokenIds(tokenizer).get(token) ?? tokenizer.token_to_id(token)
}

/**
 * Drop tokens from the end of the longer segment, one at a time, until `a` and `b` together have
 * `budget` tokens (Hugging Face's "longest_first"). Returns how many were dropped.
 */
function truncateLongestFirst(a: string[], b: string[] | null, budget: number): number {
  let dropped = 0
  while (a.length + (b?.length ?? 0) > budget) {
    if (b && b.length > a.length) b.pop()
    else a.pop()
    dropped++
  }
  return dropped
}

/** Why one text is too long to encode (LIMITS.textChars), or undefined. */
export function textTooLong(input: TextInput): string | undefined {
  const chars = input.text.length + (input.pair?.length ?? 0)
  return chars > LIMITS.textChars ? `${chars} characters, more than the ${LIMITS.textChars} a text may have` : undefined
}

/** Why a set of texts is too many or too much to encode in one run, or undefined. */
export function textsTooMany(count: number, chars: number): string | undefined {
  if (count > LIMITS.texts) return `${count} texts, more than the ${LIMITS.texts} one run verifies (split them over several runs)`
  if (chars > LIMITS.totalTextChars) return `${chars} characters of text, more than the ${LIMITS.totalTextChars} one run verifies (split them over several runs)`
  return undefined
}

/**
 * Encode texts (and pairs) as the model's input batch: the tokenizer's special tokens and token
 * types, each row cut to `maxLength` tokens where it is longer (longest segment first, special
 * tokens kept; a warning says so), then padded with the pad id to the longest row.
 */
export function encodeTexts(tok: TextTokenizer, texts: readonly TextInput[], opts: { maxLength: number }): EncodedTexts {
  if (texts.length === 0) throw new UserError('no texts to encode')
  let chars = 0
  for (const [r, input] of texts.entries()) {
    const long = textTooLong(input)
    if (long) throw new UserError(`text ${r + 1}: ${long}`)
    chars += input.text.length + (input.pair?.length ?? 0)
  }
  const many = textsTooMany(texts.length, chars)
  if (many) throw new UserError(many)
  const { tokenizer } = tok
  const added = addedTokenIds(tokenizer)
  const unk = tokenizer.model?.unk_token_id
  const warnings: string[] = []
  const typeRows: (number[] | undefined)[] = []
  /** The library's work on the tokenizer's file: whatever it throws is the file's problem, named. */
  const library = <T>(r: number, fn: () => T): T => {
    try {
      return fn()
    } catch (e) {
      if (e instanceof UserError) throw e
      fail(tok.file, `cannot tokenize text ${r + 1}: ${describe(e)}`)
    }
  }
  const rows: EncodedRow[] = texts.map((input, r) => {
    tok.begin(`text ${r + 1}`)
    const a = library(r, () => tokenizer.tokenize(input.text))
    const b = input.pair !== undefined && input.pair !== '' ? library(r, () => tokenizer.tokenize(input.pair!)) : null
    const frame = (x: string[], y: string[] | null): { tokens: string[]; types: number[] | undefined } => {
      if (!tokenizer.post_processor) return { tokens: [...x, ...(y ?? [])], types: undefined }
      const out: { tokens?: unknown; token_type_ids?: unknown } = library(r, () => tokenizer.post_processor!(x, y, true))
      if (!Array.isArray(out.tokens) || !out.tokens.every((t) => typeof t === 'string')) fail(tok.file, `its post_processor gives no tokens for text ${r + 1}`)
      const types = Array.isArray(out.token_type_ids) && out.token_type_ids.every((t) => Number.isInteger(t)) ? (out.token_type_ids as number[]) : undefined
      return { tokens: out.tokens as string[], types }
    }
    let framed = frame(a, b)
    let truncated = 0
    if (framed.tokens.length > opts.maxLength) {
      const specials = framed.tokens.length - a.length - (b?.length ?? 0)
      if (specials >= opts.maxLength) throw new UserError(`text ${r + 1}: ${specials} special tokens leave no room within ${opts.maxLength} positions`)
      const before = framed.tokens.length
      truncated = truncateLongestFirst(a, b, opts.maxLength - specials)
      framed = frame(a, b)
      warnings.push(`text ${r + 1} has ${before} tokens; cut to ${framed.tokens.length} (max_position_embeddings ${opts.maxLength})`)
    }
    const ids = framed.tokens.map((t) => {
      const id = added.get(t) ?? tokenizer.token_to_id(t) ?? unk
      if (id === undefined) fail(tok.file, `token '${printable(t)}' of text ${r + 1} has no id and the tokenizer has no unknown token`)
      return id
    })
    const row: EncodedRow = { text: input.text, ids, tokens: ids.map((id, i) => tokenizer.id_to_token(id) ?? framed.tokens[i]!), truncated }
    if (b !== null) row.pair = input.pair
    typeRows.push(framed.types?.length === ids.length ? framed.types : undefined)
    return row
  })
  let longest = 0
  for (const row of rows) longest = Math.max(longest, row.ids.length)
  const n = rows.length * longest
  const ids = new BigInt64Array(n).fill(BigInt(tok.padId))
  const mask = new BigInt64Array(n)
  const types = new BigInt64Array(n)
  rows.forEach((row, r) => {
    const rowTypes = typeRows[r]
    row.ids.forEach((id, i) => {
      ids[r * longest + i] = BigInt(id)
      mask[r * longest + i] = 1n
      types[r * longest + i] = BigInt(rowTypes?.[i] ?? 0)
    })
  })
  const dims = [rows.length, longest]
  const feeds = new Map([
    ['input_ids', new Tensor(DataType.INT64, dims, bytesOf(ids))],
    ['attention_mask', new Tensor(DataType.INT64, dims, bytesOf(mask))],
    ['token_type_ids', new Tensor(DataType.INT64, dims, bytesOf(types))],
  ])
  return { feeds, rows, longest, warnings }
}

export interface TextFeeds extends EncodedTexts {
  /** where the texts came from ('--text', a file) */
  source: string
  /** the tokenizer file used */
  tokenizerFile: string
}

/**
 * Verification inputs from texts through a checkpoint's own tokenizer, checked against the model:
 * every id within vocab_size, rows no longer than max_position_embeddings, token types only where
 * the model has them. The multiple-choice head is refused (it takes [batch, choices, sequence]).
 */
export function textFeeds(dir: string, texts: readonly TextInput[], config: Pick<AlbertConfig, 'vocabSize' | 'typeVocabSize' | 'maxPositionEmbeddings'>, task: Task, source: string): TextFeeds {
  if (task === 'multiple-choice') {
    throw new UserError(`${source}: text inputs cannot drive the multiple-choice head (it takes [batch, choices, sequence] inputs); verify it on random inputs or --inputs`)
  }
  const tok = openTokenizer(dir)
  const encoded = encodeTexts(tok, texts, { maxLength: config.maxPositionEmbeddings })
  for (const [r, row] of encoded.rows.entries()) {
    const bad = row.ids.find((id) => id < 0 || id >= config.vocabSize)
    if (bad !== undefined) fail(tok.file, `gives id ${bad} for text ${r + 1}, outside the model's vocab_size ${config.vocabSize} (tokenizer and checkpoint do not match)`)
  }
  if (tok.padId < 0 || tok.padId >= config.vocabSize) fail(tok.file, `pad id ${tok.padId} is outside the model's vocab_size ${config.vocabSize}`)
  const types = encoded.feeds.get('token_type_ids')!.toBigInt64()
  if (types.some((t) => t >= BigInt(config.typeVocabSize))) {
    if (config.typeVocabSize > 1) fail(tok.file, `gives token types beyond the model's type_vocab_size ${config.typeVocabSize}`)
    types.fill(0n)
    encoded.warnings.push(`the model has one token type (type_vocab_size 1): the second segment of each pair runs with token type 0`)
  }
  return { ...encoded, source, tokenizerFile: tok.file }
}

/** `[CLS] ▁the ▁qui c k ▁b … (25 tokens)`: the first `max` tokens of a row. */
export function tokenPreview(tokens: readonly string[], max = 6): string {
  const shown = tokens.slice(0, max).map((t) => printable(t, 40)).join(' ')
  return tokens.length > max ? `${shown} … (${tokens.length} tokens)` : `${shown} (${tokens.length} tokens)`
}
