/**
 * Recipe files (`--recipe albertkit.json`): the settings a repository pins so CI converts and
 * verifies the same way every time. Keys are named as the command-line flags; a flag given on the
 * command line wins over the recipe. Validation is strict: an unknown key, a wrong type or an
 * unknown name is one line naming the file and the key (exit code 2). docs/recipe.md has the schema.
 */
import fs from 'node:fs'
import path from 'node:path'
import { Flags } from '@oclif/core'
import { TASKS } from '../checkpoint/task.js'
import { PASSES } from '../passes/index.js'
import { PRECISIONS, type Precision } from '../targets/precision.js'
import { TARGET_NAMES } from '../targets/targets.js'
import { revisionProblem } from '../checkpoint/hf-cache.js'
import { UsageError, describe } from '../util/errors.js'
import type { ThresholdOverrides, Thresholds } from '../verify/verdict.js'
import type { FlagGroup } from './help.js'

export const recipeFlag = {
  recipe: Flags.string({
    description: 'JSON file pinning task, target, precisions, passes, pass options, verification inputs and thresholds (docs/recipe.md); flags typed on the command line win over it',
    helpValue: '<file>',
    helpGroup: 'RECIPE' satisfies FlagGroup,
  }),
}

/** Pass options, named as their flags. */
export interface RecipeOptions {
  'per-tensor'?: boolean
  'keep-nodes'?: string[]
  'keep-ops'?: string[]
  'standard-ops'?: boolean
  'block-size'?: number
  asymmetric?: boolean
  refactor?: boolean
  'fixed-shape'?: [number, number]
}

/** The verification inputs: seeded random ones, or texts through the checkpoint's tokenizer. */
export interface RecipeInputs {
  seed?: number
  batch?: number
  sequence?: number
  /** texts to verify on (a TAB splits a pair), as --text */
  text?: string[]
  /** a file of texts, one a line, as --text-file; a relative path is taken from the recipe's folder */
  'text-file'?: string
}

/** Labelled evaluation, as --eval, --max-drop, --eval-metric, --eval-limit, --eval-seed. */
export interface RecipeEval {
  /** the dev set; a relative path is taken from the recipe's folder */
  file: string
  'max-drop'?: number
  metric?: string
  limit?: number
  seed?: number
}

export interface Recipe {
  /** the file it came from, for messages */
  file: string
  /** the version of a model in the Hugging Face cache, as --revision */
  revision?: string
  task?: string
  target?: string
  precisions?: Precision[]
  /** optimize: the passes to run, in order */
  passes?: string[]
  options?: RecipeOptions
  inputs?: RecipeInputs
  /** thresholds for every model, and by precision */
  thresholds?: ThresholdOverrides
  /** a labelled dev set and the largest drop allowed */
  eval?: RecipeEval
}

const THRESHOLD_KEYS = { 'max-abs': 'maxAbs', cosine: 'cosine', top1: 'top1' } as const

/** Read and check a recipe file; any problem is a UsageError `<file>: <key> ...`. */
export function readRecipe(file: string): Recipe {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (e) {
    const code = (e as { code?: string }).code
    throw new UsageError(`${file}: ${code === 'ENOENT' ? 'no such recipe file' : `cannot read the recipe (${describe(e)})`}`)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    throw new UsageError(`${file}: not valid JSON (${describe(e)})`)
  }
  return parseRecipe(json, file)
}

/** Check a parsed recipe (exported for tests). */
export function parseRecipe(json: unknown, file: string): Recipe {
  const bad = (key: string, problem: string): never => {
    throw new UsageError(`${file}: ${key} ${problem}`)
  }
  // A relative path in the recipe is taken from the recipe's folder.
  const fromRecipe = (p: string) => path.resolve(path.dirname(file), p)
  const keys: Readers<Omit<Recipe, 'file'>> = {
    revision: (v, key) => {
      if (typeof v !== 'string') bad(key, `must be a string, got ${shown(v)}`)
      const problem = revisionProblem(v as string)
      if (problem !== undefined) bad(key, `${shown(v)} is no branch, tag or commit: ${problem}`)
      return v as string
    },
    task: (v, key) => oneOf(v, key, TASKS, bad),
    target: (v, key) => oneOf(v, key, TARGET_NAMES, bad),
    precisions: (v, key) => {
      const precisions = list(v, key, bad).map((p, i) => oneOf(p, `${key}[${i}]`, PRECISIONS, bad))
      if (new Set(precisions).size !== precisions.length) bad(key, 'names a precision twice')
      return precisions
    },
    passes: (v, key) => list(v, key, bad).map((p, i) => oneOf(p, `${key}[${i}]`, [...PASSES.keys()], bad)),
    options: (v, key) => readObject(v, key, OPTIONS, bad),
    inputs: (v, key) => {
      const o = inputs(v, key, bad)
      if (o['text-file'] !== undefined) o['text-file'] = fromRecipe(o['text-file'])
      return o
    },
    thresholds: (v, key) => thresholdSet(v, key, bad, true),
    eval: (v, key) => {
      const e = evalKeys(v, key, bad)
      e.file = fromRecipe(e.file)
      return e
    },
  }
  const recipe: Recipe = { file, ...readKeys(object(json, '(the recipe)', bad), '', keys, bad) }
  if (recipe.target && recipe.precisions) bad('target', 'and precisions are both given: a target fixes the models it emits (give one of them)')
  return recipe
}

type Bad = (key: string, problem: string) => never

function shown(v: unknown): string {
  const s = JSON.stringify(v)
  return s === undefined ? String(v) : s.length > 40 ? `${s.slice(0, 37)}...` : s
}

function unknownKey(key: string, known: readonly string[], bad: Bad): never {
  return bad(key, `is not a recipe key (known here: ${known.join(', ')})`)
}

function object(v: unknown, key: string, bad: Bad): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(key, `must be an object, got ${shown(v)}`)
  return v as Record<string, unknown>
}

function list(v: unknown, key: string, bad: Bad): unknown[] {
  if (!Array.isArray(v)) bad(key, `must be a list, got ${shown(v)}`)
  if ((v as unknown[]).length === 0) bad(key, 'must not be empty')
  return v as unknown[]
}

function oneOf<T extends string>(v: unknown, key: string, choices: readonly T[], bad: Bad): T {
  if (typeof v !== 'string') bad(key, `must be a string, got ${shown(v)}`)
  if (!choices.includes(v as T)) bad(key, `'${v as string}' is not one of ${choices.join(', ')}`)
  return v as T
}

function bool(v: unknown, key: string, bad: Bad): boolean {
  if (typeof v !== 'boolean') bad(key, `must be true or false, got ${shown(v)}`)
  return v as boolean
}

function integer(v: unknown, key: string, min: number, bad: Bad): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) bad(key, `must be an integer, got ${shown(v)}`)
  if ((v as number) < min) bad(key, `must be ${min} or more, got ${v as number}`)
  return v as number
}

function number(v: unknown, key: string, lo: number, hi: number, bad: Bad): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) bad(key, `must be a number, got ${shown(v)}`)
  if ((v as number) < lo || (v as number) > hi) bad(key, `must be between ${lo} and ${hi}, got ${v as number}`)
  return v as number
}

function names(v: unknown, key: string, bad: Bad): string[] {
  if (!Array.isArray(v)) bad(key, `must be a list of names, got ${shown(v)}`)
  return (v as unknown[]).map((n, i) => {
    if (typeof n !== 'string' || !n.trim()) bad(`${key}[${i}]`, `must be a non-empty string, got ${shown(n)}`)
    return (n as string).trim()
  })
}

/** How each key of a recipe object is read: its value checked (a problem names `key`, the key's path). */
type Readers<T> = { [K in keyof T]-?: (value: unknown, key: string, bad: Bad) => T[K] }

/**
 * An object's keys, each read by its reader, in the file's order; a key without one is a problem
 * that names the keys known there. `prefix` leads each key's path in messages.
 */
function readKeys<T>(o: Record<string, unknown>, prefix: string, readers: Readers<T>, bad: Bad): Partial<T> {
  const out: Partial<T> = {}
  for (const [key, value] of Object.entries(o)) {
    const k = `${prefix}${key}`
    if (!Object.hasOwn(readers, key)) unknownKey(k, Object.keys(readers), bad)
    out[key as keyof T] = readers[key as keyof T](value, k, bad)
  }
  return out
}

/** The object at `at`, its keys read by `readers`. */
function readObject<T>(v: unknown, at: string, readers: Readers<T>, bad: Bad): Partial<T> {
  return readKeys(object(v, at, bad), `${at}.`, readers, bad)
}

/** A non-empty string naming a `what` (a file, a metric). */
function nameOf(what: string): (v: unknown, key: string, bad: Bad) => string {
  return (v, key, bad) => {
    if (typeof v !== 'string' || !v.trim()) bad(key, `must be a ${what} name, got ${shown(v)}`)
    return v as string
  }
}

/** Pass options. */
const OPTIONS: Readers<RecipeOptions> = {
  'per-tensor': bool,
  'keep-nodes': names,
  'keep-ops': names,
  'standard-ops': bool,
  'block-size': (v, key, bad) => {
    const n = integer(v, key, 16, bad)
    if ((n & (n - 1)) !== 0) bad(key, `must be a power of two, got ${n}`)
    return n
  },
  asymmetric: bool,
  refactor: bool,
  'fixed-shape': (v, key, bad) => {
    const shape = list(v, key, bad).map((d, i) => integer(d, `${key}[${i}]`, 1, bad))
    if (shape.length !== 2) bad(key, `must be [batch, sequence], got ${shown(v)}`)
    return [shape[0]!, shape[1]!]
  },
}

/** Verification inputs. */
const INPUTS: Readers<RecipeInputs> = {
  seed: (v, key, bad) => integer(v, key, 0, bad),
  batch: (v, key, bad) => integer(v, key, 1, bad),
  sequence: (v, key, bad) => integer(v, key, 1, bad),
  text: (v, key, bad) => {
    const texts = names(v, key, bad)
    if (texts.length === 0) bad(key, 'must name at least one text')
    return texts
  },
  'text-file': nameOf('file'),
}

function inputs(v: unknown, at: string, bad: Bad): RecipeInputs {
  const o = readObject(v, at, INPUTS, bad)
  if (o.text && o['text-file']) bad(`${at}.text`, 'and text-file are both given (give one of them)')
  return o
}

/** Labelled evaluation. */
const EVAL: Readers<RecipeEval> = {
  file: nameOf('file'),
  'max-drop': (v, key, bad) => number(v, key, 0, 100, bad),
  metric: nameOf('metric'),
  limit: (v, key, bad) => integer(v, key, 1, bad),
  seed: (v, key, bad) => {
    const seed = integer(v, key, 0, bad)
    if (seed > 0xffffffff) bad(key, `must be 4294967295 or less, got ${seed}`)
    return seed
  },
}

function evalKeys(v: unknown, at: string, bad: Bad): RecipeEval {
  const o = readObject(v, at, EVAL, bad)
  if (o.file === undefined) bad(`${at}.file`, 'is missing: the dev set to score')
  return o as RecipeEval
}

function thresholdSet(v: unknown, at: string, bad: Bad, precisionsToo: boolean): ThresholdOverrides {
  const t: ThresholdOverrides = {}
  for (const [key, value] of Object.entries(object(v, at, bad))) {
    const k = `${at}.${key}`
    if (key === 'max-abs') t.maxAbs = number(value, k, 0, Infinity, bad)
    else if (key === 'cosine') t.cosine = number(value, k, -1, 1, bad)
    else if (key === 'top1') t.top1 = number(value, k, 0, 1, bad)
    else if (precisionsToo && (PRECISIONS as readonly string[]).includes(key)) (t.byPrecision ??= {})[key] = thresholdSet(value, k, bad, false)
    else unknownKey(k, [...Object.keys(THRESHOLD_KEYS), ...(precisionsToo ? PRECISIONS : [])], bad)
  }
  return t
}

/** The recipe as flag values (what the flag would have parsed to), for the keys it sets. */
export function recipeFlagValues(recipe: Recipe): Record<string, string | number | boolean | string[]> {
  const f: Record<string, string | number | boolean | string[]> = {}
  if (recipe.revision !== undefined) f.revision = recipe.revision
  if (recipe.task) f.task = recipe.task
  if (recipe.target) f.target = recipe.target
  if (recipe.precisions) f.precision = recipe.precisions.join(',')
  if (recipe.passes) f.passes = recipe.passes.join(',')
  for (const [k, v] of Object.entries(recipe.options ?? {})) f[k] = Array.isArray(v) ? v.join(',') : (v as string | number | boolean)
  for (const [k, v] of Object.entries(recipe.inputs ?? {})) f[k] = v as number | string | string[]
  if (recipe.eval) {
    const e = recipe.eval
    f.eval = e.file
    if (e['max-drop'] !== undefined) f['max-drop'] = String(e['max-drop'])
    if (e.metric !== undefined) f['eval-metric'] = e.metric
    if (e.limit !== undefined) f['eval-limit'] = e.limit
    if (e.seed !== undefined) f['eval-seed'] = e.seed
  }
  return f
}

/** Flags that choose the same thing: a flag of a group on the command line sets aside the recipe's whole group. */
const GROUPS = [
  ['target', 'precision'],
  ['text', 'text-file', 'inputs'],
]

export interface ParsedFlags<F> {
  flags: F
  metadata: { flags: Record<string, { setFromDefault?: boolean } | undefined> }
}

/** Whether the user typed this flag (not a default). */
export function given(parsed: ParsedFlags<Record<string, unknown>>, name: string): boolean {
  return parsed.flags[name] !== undefined && !parsed.metadata.flags[name]?.setFromDefault
}

/**
 * The flags with the recipe's values where the command line gave none. `known` is the command's
 * flag definitions: recipe keys for other commands (passes for optimize, target for convert) are
 * left out. Flags typed on the command line win.
 */
export function withRecipe<F extends object>(parsed: ParsedFlags<F>, recipe: Recipe | undefined, known: object): F {
  if (!recipe) return parsed.flags
  const p = parsed as unknown as ParsedFlags<Record<string, unknown>>
  const out: Record<string, unknown> = { ...p.flags }
  const setAside = new Set(GROUPS.filter((g) => g.some((name) => given(p, name))).flat())
  for (const [name, value] of Object.entries(recipeFlagValues(recipe))) {
    if (!(name in known) || given(p, name) || setAside.has(name)) continue
    out[name] = value
  }
  return out as F
}

/** Threshold overrides: the recipe's, then the command line's (which win, for every precision). */
export function thresholdsWith(recipe: Recipe | undefined, cli: Thresholds): ThresholdOverrides {
  const r = recipe?.thresholds ?? {}
  const { byPrecision, ...common } = r
  const out: ThresholdOverrides = { ...common, ...cli }
  if (byPrecision) {
    out.byPrecision = Object.fromEntries(Object.entries(byPrecision).map(([p, t]) => [p, { ...t, ...cli }]))
  }
  return out
}
