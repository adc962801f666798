/**
 * Labelled examples from line formats, streamed: JSONL and TSV for text classification, CoNLL
 * words and tags for token classification, JSONL for fill-mask and multiple-choice. Every problem
 * is one line naming the file and the line; blank lines are skipped (CoNLL: they end a sentence).
 */
import path from 'node:path'
import { fail } from '../util/errors.js'
import { printable } from '../util/printable.js'
import { textTooLong } from '../tokenizer/index.js'
import { EVAL_LIMITS } from './limits.js'
import type { Labels } from './labels.js'
import { jsonWhere, type Line, type LineReader } from './lines.js'

export const EVAL_TASKS = ['text-classification', 'token-classification', 'question-answering', 'fill-mask', 'multiple-choice'] as const
export type EvalTask = (typeof EVAL_TASKS)[number]

export type EvalFormat = 'jsonl' | 'tsv' | 'conll' | 'squad'

/** The formats each task reads. */
export const TASK_FORMATS: Record<EvalTask, readonly EvalFormat[]> = {
  'text-classification': ['jsonl', 'tsv'],
  'token-classification': ['conll'],
  'question-answering': ['squad'],
  'fill-mask': ['jsonl'],
  'multiple-choice': ['jsonl'],
}

/**
 * The format of `file` for `task`: the one asked for (checked), the task's only one, or for text
 * classification the extension (.tsv: TSV; .jsonl, .json, .ndjson: JSONL) and otherwise the first
 * non-blank line ('{' starts JSONL). `undefined` means: look at the first line.
 */
export function formatFor(task: EvalTask, file: string, asked?: EvalFormat): EvalFormat | undefined {
  const formats = TASK_FORMATS[task]
  if (asked !== undefined) {
    if (!formats.includes(asked)) fail(file, `${task} reads ${formats.join(' or ')}, not ${asked}`)
    return asked
  }
  if (formats.length === 1) return formats[0]
  const ext = path.extname(file).toLowerCase()
  if (ext === '.tsv') return 'tsv'
  if (ext === '.jsonl' || ext === '.json' || ext === '.ndjson') return 'jsonl'
  return undefined
}

export interface TextExample {
  line: number
  text: string
  pair?: string
  /** the label's id (the first id of its name) */
  label: number
}

export interface WordsExample {
  /** line of the sentence's first word */
  line: number
  words: string[]
  /** tag ids, one per word */
  tags: number[]
}

export interface MaskExample {
  line: number
  text: string
  answer: string
}

export interface ChoiceExample {
  line: number
  question: string
  choices: string[]
  answer: number
}

/** The one-line error for a file with no example in it. */
export function noExamples(reader: LineReader, what = 'example'): never {
  fail(reader.file, reader.size === 0 ? `empty file: no ${what}` : `no ${what} (only blank lines)`)
}

type Json = Record<string, unknown>

function at(file: string, line: number, problem: string): never {
  fail(file, `line ${line}: ${problem}`)
}

function jsonObject(file: string, line: Line): Json {
  let value: unknown
  try {
    value = JSON.parse(line.text)
  } catch (e) {
    at(file, line.number, `not valid JSON${jsonWhere(line.text, e, false)}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) at(file, line.number, `expected a JSON object, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`}`)
  return value as Json
}

/** A non-empty string field (undefined when optional and absent or null). */
function textField(file: string, line: number, obj: Json, key: string, optional = false): string | undefined {
  const v = obj[key]
  if (v === undefined || v === null) {
    if (optional) return undefined
    at(file, line, `no "${key}" field (a string)`)
  }
  if (typeof v !== 'string') at(file, line, `"${key}" must be a string, got ${printable(JSON.stringify(v), 60)}`)
  if (v.trim() === '') at(file, line, `empty "${key}"`)
  return v
}

function checkLength(file: string, line: number, text: string, pair?: string): void {
  const long = textTooLong(pair === undefined ? { text } : { text, pair })
  if (long) at(file, line, long)
}

function labelOfName(file: string, line: number, labels: Labels, name: string): number {
  const id = labels.idOfName(name)
  if (id === undefined) at(file, line, labels.unknownName(name))
  return id
}

function labelOfId(file: string, line: number, labels: Labels, id: number): number {
  if (id < 0 || id >= labels.count) at(file, line, labels.unknownId(id))
  return labels.canonical(id)
}

/** Non-blank lines, each counted against the example limit; none at all is an error. */
async function* exampleLines(reader: LineReader): AsyncGenerator<Line> {
  let seen = 0
  for await (const line of reader.lines()) {
    if (line.text.trim() === '') continue
    if (++seen > EVAL_LIMITS.examples) fail(reader.file, `has more than ${EVAL_LIMITS.examples} examples, the most one evaluation scores (take the first ones with a limit)`)
    yield line
  }
  if (seen === 0) noExamples(reader)
}

/** JSONL `{"text", "text_pair"?, "label"}` (a name, or an integer id) or TSV `text[TAB text_pair]TAB label` (a name, else digits as an id). */
export async function* textExamples(reader: LineReader, format: 'jsonl' | 'tsv' | undefined, labels: Labels, onFormat?: (f: 'jsonl' | 'tsv') => void): AsyncGenerator<TextExample> {
  const file = reader.file
  for await (const line of exampleLines(reader)) {
    if (format === undefined) {
      format = line.text.trimStart().startsWith('{') ? 'jsonl' : 'tsv'
      onFormat?.(format)
    }
    const n = line.number
    let text: string
    let pair: string | undefined
    let label: number
    if (format === 'jsonl') {
      const obj = jsonObject(file, line)
      text = textField(file, n, obj, 'text')!
      pair = textField(file, n, obj, 'text_pair', true)
      const v = obj.label
      if (typeof v === 'string') label = labelOfName(file, n, labels, v)
      else if (typeof v === 'number' && Number.isSafeInteger(v)) label = labelOfId(file, n, labels, v)
      else if (v === undefined || v === null) at(file, n, 'no "label" field (a label name or id)')
      else at(file, n, `"label" must be a label name (a string) or id (an integer), got ${printable(JSON.stringify(v), 60)}`)
    } else {
      const cols = line.text.split('\t')
      if (cols.length < 2 || cols.length > 3) at(file, n, `${cols.length} TAB-separated ${cols.length === 1 ? 'column' : 'columns'} (2 or 3 expected: text[, text_pair], label)`)
      text = cols[0]!
      pair = cols.length === 3 ? cols[1] : undefined
      const name = cols[cols.length - 1]!.trim()
      if (text.trim() === '') at(file, n, 'empty text')
      if (pair !== undefined && pair.trim() === '') at(file, n, 'empty text_pair')
      const id = labels.idOfName(name)
      if (id !== undefined) label = id
      else if (/^\d{1,9}$/.test(name)) label = labelOfId(file, n, labels, Number(name))
      else at(file, n, labels.unknownName(name))
    }
    checkLength(file, n, text, pair)
    yield pair === undefined ? { line: n, text, label } : { line: n, text, pair, label }
  }
}

/**
 * CoNLL: `word SEP tag` per line (SEP: spaces or TABs), a blank line between sentences; lines
 * whose first column is -DOCSTART- are left out. Tags must be the config's labels.
 */
export async function* wordExamples(reader: LineReader, labels: Labels): AsyncGenerator<WordsExample> {
  const file = reader.file
  let words: string[] = []
  let tags: number[] = []
  let first = 0
  let sentences = 0
  const flush = (): WordsExample | undefined => {
    if (words.length === 0) return undefined
    if (++sentences > EVAL_LIMITS.examples) fail(file, `has more than ${EVAL_LIMITS.examples} sentences, the most one evaluation scores (take the first ones with a limit)`)
    const ex = { line: first, words, tags }
    words = []
    tags = []
    return ex
  }
  for await (const line of reader.lines()) {
    const text = line.text.trim()
    if (text === '') {
      const ex = flush()
      if (ex) yield ex
      continue
    }
    const cols = text.split(/[ \t]+/)
    if (cols[0] === '-DOCSTART-') continue
    if (cols.length === 1) at(file, line.number, 'a word without a tag')
    if (cols.length > 2) at(file, line.number, `${cols.length} columns (word and tag expected)`)
    const tag = labels.idOfName(cols[1]!)
    if (tag === undefined) at(file, line.number, labels.unknownName(cols[1]!, 'tag'))
    if (words.length === 0) first = line.number
    if (words.length >= EVAL_LIMITS.sentenceWords) at(file, first, `a sentence of more than ${EVAL_LIMITS.sentenceWords} words (a blank line ends a sentence)`)
    words.push(cols[0]!)
    tags.push(tag)
  }
  const ex = flush()
  if (ex) yield ex
  if (sentences === 0) noExamples(reader, 'sentence')
}

/** JSONL `{"text": "… [MASK] …", "answer": "word"}`, exactly one mask token per text. */
export async function* maskExamples(reader: LineReader, maskToken: string): AsyncGenerator<MaskExample> {
  const file = reader.file
  for await (const line of exampleLines(reader)) {
    const obj = jsonObject(file, line)
    const text = textField(file, line.number, obj, 'text')!
    const answer = textField(file, line.number, obj, 'answer')!
    const masks = text.split(maskToken).length - 1
    if (masks === 0) at(file, line.number, `no ${maskToken} in the text`)
    if (masks > 1) at(file, line.number, `${masks} ${maskToken} in the text (one expected)`)
    checkLength(file, line.number, text)
    yield { line: line.number, text, answer }
  }
}

/** JSONL `{"question", "choices": [texts], "answer": index}` (0-based). */
export async function* choiceExamples(reader: LineReader): AsyncGenerator<ChoiceExample> {
  const file = reader.file
  for await (const line of exampleLines(reader)) {
    const n = line.number
    const obj = jsonObject(file, line)
    const question = textField(file, n, obj, 'question')!
    const choices = obj.choices
    if (!Array.isArray(choices) || choices.length < 2 || choices.length > EVAL_LIMITS.choices) {
      at(file, n, `"choices" must be a list of 2 to ${EVAL_LIMITS.choices} texts`)
    }
    choices.forEach((c, i) => {
      if (typeof c !== 'string' || c.trim() === '') at(file, n, `choice ${i} is not a non-empty text`)
      checkLength(file, n, question, c)
    })
    const answer = obj.answer
    if (typeof answer !== 'number' || !Number.isSafeInteger(answer)) at(file, n, `"answer" must be the index of the right choice (an integer), got ${printable(JSON.stringify(answer) ?? 'nothing', 60)}`)
    if (answer < 0 || answer >= choices.length) at(file, n, `answer ${answer} with ${choices.length} choices (indices 0-${choices.length - 1})`)
    yield { line: n, question, choices: choices as string[], answer }
  }
}
