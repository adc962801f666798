/** Flags for the parity verdict, shared by `convert` and `verify`. */
import fs from 'node:fs'
import { Flags } from '@oclif/core'
import { given, type ParsedFlags } from './recipe.js'
import { DEFAULT_INPUTS, type InputRequest } from '../verify/inputs.js'
import type { Thresholds } from '../verify/verdict.js'
import { UsageError, UserError, fail } from '../util/errors.js'
import { LIMITS, textTooLong, textsTooMany, type TextInput } from '../tokenizer/index.js'
import type { FlagGroup } from './help.js'

export const verifyFlags = {
  seed: Flags.integer({ description: 'seed of the random verification inputs', default: DEFAULT_INPUTS.seed, helpValue: '<n>', helpGroup: 'VERIFICATION' satisfies FlagGroup }),
  batch: Flags.integer({ description: 'rows of the random verification inputs', default: DEFAULT_INPUTS.batch, helpValue: '<n>', helpGroup: 'VERIFICATION' satisfies FlagGroup }),
  sequence: Flags.integer({ description: `tokens per row of the random verification inputs (default ${DEFAULT_INPUTS.sequence}, or the model's max_position_embeddings when fewer; more than that is refused)`, helpValue: '<n>', helpGroup: 'VERIFICATION' satisfies FlagGroup }),
  'max-abs': Flags.string({ description: 'fail when an output’s max abs error is above this (instead of the precision’s default)', helpValue: '<x>', helpGroup: 'VERIFICATION' satisfies FlagGroup }),
  cosine: Flags.string({ description: 'fail when an output’s cosine similarity is below this (instead of the precision’s default)', helpValue: '<x>', helpGroup: 'VERIFICATION' satisfies FlagGroup }),
  top1: Flags.string({ description: 'fail when the top-1 agreement of logits is below this share, 0 to 1 (instead of the precision’s default)', helpValue: '<share>', helpGroup: 'VERIFICATION' satisfies FlagGroup }),
}

/** `--[no-]verify`, on unless turned off; `description` says what is checked against what. */
export function verifySwitch(description: string) {
  return {
    verify: Flags.boolean({ description, default: true, allowNo: true, helpGroup: 'VERIFICATION' satisfies FlagGroup }),
  }
}

function number(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const v = Number(text)
  if (!Number.isFinite(v)) throw new UserError(`--${name} must be a number, got '${text}'`)
  return v
}

export function thresholdsFrom(flags: { 'max-abs'?: string | undefined; cosine?: string | undefined; top1?: string | undefined }): Thresholds {
  const t: Thresholds = {}
  const maxAbs = number('max-abs', flags['max-abs'])
  const cosine = number('cosine', flags.cosine)
  const top1 = number('top1', flags.top1)
  if (maxAbs !== undefined) t.maxAbs = maxAbs
  if (cosine !== undefined) t.cosine = cosine
  if (top1 !== undefined) t.top1 = top1
  return t
}

/**
 * The random inputs asked for. `sequenceFrom` says where an explicit sequence came from (the flag
 * or a recipe: see contradictions.ts `sequenceSource`); without one the sequence adapts to the
 * model (verify/inputs.ts `resolveInputSpec`).
 */
export function inputSpecFrom(flags: { seed: number; batch: number; sequence?: number | undefined }, sequenceFrom?: string): InputRequest {
  const request: InputRequest = { seed: flags.seed, batch: flags.batch, choices: DEFAULT_INPUTS.choices ?? 2 }
  if (flags.sequence !== undefined) {
    request.sequence = flags.sequence
    request.sequenceFrom = sequenceFrom ?? '--sequence'
  }
  return request
}

/**
 * Real text instead of random inputs, through the checkpoint's own tokenizer. Kept apart from
 * `verifyFlags` so that a command offers them only once it passes them on (see `textsFrom`).
 */
export const textFlags = {
  text: Flags.string({
    description: 'verify on this text instead of random inputs, through the checkpoint’s tokenizer; repeatable; a TAB splits a pair (question<TAB>context)',
    multiple: true,
    multipleNonGreedy: true,
    exclusive: ['text-file'],
    helpValue: '<text>',
    helpGroup: 'VERIFICATION' satisfies FlagGroup,
  }),
  'text-file': Flags.string({
    description: 'verify on the texts of this UTF-8 file, one a line (blank lines skipped); a TAB splits a pair',
    exclusive: ['text'],
    helpValue: '<file>',
    helpGroup: 'VERIFICATION' satisfies FlagGroup,
  }),
}

/** One text, or a pair split at its TAB; `where` names it in errors: an input error in `file`, else a usage error (--text). */
function textInput(line: string, where: string, file?: string): TextInput {
  const complain = (problem: string): never => {
    if (file) fail(file, `${where}: ${problem}`)
    throw new UsageError(`${where}: ${problem}`)
  }
  const long = textTooLong({ text: line })
  if (long) complain(long)
  const parts = line.split('\t', 3)
  if (parts.length > 2) complain(`${line.split('\t').length - 1} TABs; one TAB separates a pair (question<TAB>context), texts cannot contain more`)
  const [text = '', pair] = parts
  if (text.trim() === '') complain(pair === undefined ? 'empty text' : 'empty text before the TAB')
  if (pair !== undefined && pair.trim() === '') complain('empty second text after the TAB')
  return pair === undefined ? { text } : { text, pair }
}

/** The most bytes a text file may have: LIMITS.totalTextChars characters of up to 4 UTF-8 bytes. */
export const TEXT_FILE_BYTES = 4 * LIMITS.totalTextChars

/** Texts from a file: one per line, a TAB splitting a pair, blank lines skipped; its size checked before it is read. */
export function readTextFile(file: string): TextInput[] {
  let bytes: Buffer
  try {
    const stat = fs.statSync(file)
    if (!stat.isFile()) fail(file, 'not a file')
    if (stat.size > TEXT_FILE_BYTES) fail(file, `is ${stat.size} bytes, more than the ${TEXT_FILE_BYTES} a text file may have (split it over several runs)`)
    bytes = fs.readFileSync(file)
  } catch (e) {
    if (e instanceof UserError) throw e
    const code = (e as NodeJS.ErrnoException).code
    fail(file, code === 'ENOENT' ? 'no such file' : `cannot read: ${code ?? String(e)}`)
  }
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    fail(file, 'not UTF-8 text')
  }
  const texts: TextInput[] = []
  let chars = 0
  let start = text.startsWith('\uFEFF') ? 1 : 0
  for (let i = 1; start <= text.length; i++) {
    const newline = text.indexOf('\n', start)
    const end = newline < 0 ? text.length : newline
    const line = text.slice(start, end > start && text[end - 1] === '\r' ? end - 1 : end)
    start = end + 1
    if (line.trim() === '') continue
    texts.push(textInput(line, `line ${i}`, file))
    chars += line.length
    if (texts.length > LIMITS.texts) fail(file, `has more than ${LIMITS.texts} texts, the most one run verifies (split it over several runs)`)
    if (chars > LIMITS.totalTextChars) fail(file, `has more than ${LIMITS.totalTextChars} characters of text, the most one run verifies (split it over several runs)`)
  }
  if (texts.length === 0) fail(file, 'no texts (the file is empty or has only blank lines)')
  return texts
}

/**
 * The texts the flags ask for and where they came from, or undefined when they ask for none. A
 * text file's problems are input errors (exit code 3); a bad --text is a usage error (2).
 */
export function textsFrom(flags: { text?: string[] | undefined; 'text-file'?: string | undefined }): { texts: TextInput[]; source: string } | undefined {
  if (flags['text-file'] !== undefined) return { texts: readTextFile(flags['text-file']), source: flags['text-file'] }
  if (flags.text !== undefined && flags.text.length > 0) {
    const texts = flags.text.map((t, i) => textInput(t, `--text #${i + 1}`))
    const many = textsTooMany(texts.length, texts.reduce((n, t) => n + t.text.length + (t.pair?.length ?? 0), 0))
    if (many) throw new UsageError(`--text: ${many}`)
    return { texts, source: '--text' }
  }
  return undefined
}

/**
 * --seed, --batch and --sequence shape the random inputs: typed beside texts or --inputs they would
 * do nothing, so say so (a usage error) rather than ignore them.
 */
export function checkRandomInputFlags(parsed: ParsedFlags<Record<string, unknown>>, flags: { text?: string[] | undefined; 'text-file'?: string | undefined; inputs?: string | undefined }): void {
  const other = flags['text-file'] !== undefined ? '--text-file' : flags.text?.length ? '--text' : flags.inputs !== undefined ? '--inputs' : undefined
  if (!other) return
  const typed = ['seed', 'batch', 'sequence'].filter((name) => given(parsed, name))
  if (typed.length > 0) throw new UserError(`${typed.map((n) => `--${n}`).join(', ')} shape${typed.length === 1 ? 's' : ''} the random inputs and do${typed.length === 1 ? 'es' : ''} nothing with ${other}`)
}
