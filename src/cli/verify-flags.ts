/** Flags for the parity verdict, shared by `convert` and `verify`. */
import fs from 'node:fs'
import { Flags } from '@oclif/core'
import { given, type ParsedFlags } from './recipe.js'
import { DEFAULT_INPUTS, type InputSpec, type Thresholds } from '../verify/verify.js'
import { UserError, fail } from '../util/errors.js'
import type { AlbertConfig } from '../checkpoint/config.js'
import type { Task } from '../builder/albert.js'
import { textFeeds, type TextFeeds, type TextInput } from '../tokenizer/index.js'
import type { FlagGroup } from './help.js'

export const verifyFlags = {
  seed: Flags.integer({ description: 'seed of the random verification inputs', default: DEFAULT_INPUTS.seed, helpValue: '<n>', helpGroup: 'VERIFICATION' satisfies FlagGroup }),
  batch: Flags.integer({ description: 'rows of the random verification inputs', default: DEFAULT_INPUTS.batch, helpValue: '<n>', helpGroup: 'VERIFICATION' satisfies FlagGroup }),
  sequence: Flags.integer({ description: 'sequence length of the random verification inputs', default: DEFAULT_INPUTS.sequence, helpValue: '<n>', helpGroup: 'VERIFICATION' satisfies FlagGroup }),
  'max-abs': Flags.string({ description: 'fail when an output’s max abs error is above this (instead of the precision’s default)', helpValue: '<x>', helpGroup: 'VERIFICATION' satisfies FlagGroup }),
  cosine: Flags.string({ description: 'fail when an output’s cosine similarity is below this (instead of the precision’s default)', helpValue: '<x>', helpGroup: 'VERIFICATION' satisfies FlagGroup }),
  top1: Flags.string({ description: 'fail when the top-1 agreement of logits is below this share, 0 to 1 (instead of the precision’s default)', helpValue: '<share>', helpGroup: 'VERIFICATION' satisfies FlagGroup }),
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

export function inputSpecFrom(flags: { seed: number; batch: number; sequence: number }): InputSpec {
  return { ...DEFAULT_INPUTS, seed: flags.seed, batch: flags.batch, sequence: flags.sequence }
}

/**
 * Real text instead of random inputs, through the checkpoint's own tokenizer. Kept apart from
 * `verifyFlags` so that a command offers them only once it passes them on (see `textFeedsFrom`).
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

/** One text, or a pair split at its TAB; `where` names it in errors. */
function textInput(line: string, where: string, file?: string): TextInput {
  const complain = (problem: string): never => {
    if (file) fail(file, `${where}: ${problem}`)
    throw new UserError(`${where}: ${problem}`)
  }
  const parts = line.split('\t')
  if (parts.length > 2) complain(`${parts.length - 1} TABs; one TAB separates a pair (question<TAB>context), texts cannot contain more`)
  const [text = '', pair] = parts
  if (text.trim() === '') complain(pair === undefined ? 'empty text' : 'empty text before the TAB')
  if (pair !== undefined && pair.trim() === '') complain('empty second text after the TAB')
  return pair === undefined ? { text } : { text, pair }
}

/** Texts from a file: one per line, a TAB splitting a pair, blank lines skipped. */
export function readTextFile(file: string): TextInput[] {
  let bytes: Buffer
  try {
    if (!fs.statSync(file).isFile()) fail(file, 'not a file')
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
  text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .forEach((line, i) => {
      if (line.trim() !== '') texts.push(textInput(line, `line ${i + 1}`, file))
    })
  if (texts.length === 0) fail(file, 'no texts (the file is empty or has only blank lines)')
  return texts
}

/** The texts the flags ask for and where they came from, or undefined when they ask for none. */
export function textsFrom(flags: { text?: string[] | undefined; 'text-file'?: string | undefined }): { texts: TextInput[]; source: string } | undefined {
  if (flags['text-file'] !== undefined) return { texts: readTextFile(flags['text-file']), source: flags['text-file'] }
  if (flags.text !== undefined && flags.text.length > 0) {
    return { texts: flags.text.map((t, i) => textInput(t, `--text #${i + 1}`)), source: '--text' }
  }
  return undefined
}

/**
 * Verification feeds from --text / --text-file through the tokenizer in `checkpointDir`, or
 * undefined when neither flag is given (then the seeded random inputs apply).
 */
export function textFeedsFrom(
  flags: { text?: string[] | undefined; 'text-file'?: string | undefined },
  checkpointDir: string,
  config: AlbertConfig,
  task: Task,
): TextFeeds | undefined {
  const asked = textsFrom(flags)
  return asked && textFeeds(checkpointDir, asked.texts, config, task, asked.source)
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
