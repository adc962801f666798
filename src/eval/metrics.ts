/**
 * The metrics, by their published definitions, in float64:
 * - accuracy and macro-F1 as scikit-learn's accuracy_score and f1_score(average="macro",
 *   zero_division=0): over the labels seen in the gold labels or the predictions (sorted),
 *   F1_c = 2·tp_c / (gold_c + predicted_c), then their mean;
 * - entities as seqeval's strict mode with the IOB2 scheme, micro precision / recall / F1;
 * - SQuAD exact match and F1 as the official v2.0 evaluation script (answer normalization, gold
 *   answers that normalize to nothing dropped, none left meaning "no answer").
 * macroF1FromCounts and entityScores take the counts themselves, so a bootstrap resample's sums give its metrics.
 */

/** Sort label values as scikit-learn's unique_labels does: numbers numerically, strings by code units. */
function sortLabels<T extends string | number>(values: T[]): T[] {
  return values.sort((a, b) => (typeof a === 'number' && typeof b === 'number' ? a - b : String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0))
}

/** Macro-F1 from per-label counts, in the order given; labels with no gold and no prediction are left out. */
export function macroF1FromCounts(tp: ArrayLike<number>, gold: ArrayLike<number>, predicted: ArrayLike<number>, order: readonly number[]): number {
  let sum = 0
  let labels = 0
  for (const c of order) {
    const denom = gold[c]! + predicted[c]!
    if (denom === 0) continue
    sum += (2 * tp[c]!) / denom
    labels++
  }
  return labels === 0 ? 0 : sum / labels
}

export function accuracyOf(gold: readonly (string | number)[], pred: readonly (string | number)[]): number {
  let correct = 0
  gold.forEach((g, i) => g === pred[i] && correct++)
  return correct / gold.length
}

export function macroF1Of(gold: readonly (string | number)[], pred: readonly (string | number)[]): number {
  const labels = sortLabels([...new Set([...gold, ...pred])])
  const index = new Map(labels.map((l, i) => [l, i]))
  const tp = new Float64Array(labels.length)
  const g = new Float64Array(labels.length)
  const p = new Float64Array(labels.length)
  gold.forEach((x, i) => {
    const gi = index.get(x)!
    const pi = index.get(pred[i]!)!
    g[gi]!++
    p[pi]!++
    if (gi === pi) tp[gi]!++
  })
  return macroF1FromCounts(tp, g, p, [...labels.keys()])
}

/** An entity: type, first word, end word (exclusive). */
export type Entity = [type: string, start: number, end: number]

/** IOB2 tag parts: 'B' / 'I' with a type, or 'O'. */
export interface Tag {
  prefix: 'B' | 'I' | 'O'
  type: string
}

/** A tag as IOB2 parts, or undefined when it is neither O nor B-X / I-X. */
export function parseTag(tag: string): Tag | undefined {
  if (tag === 'O') return { prefix: 'O', type: '' }
  const m = /^([BI])-(.+)$/.exec(tag)
  return m ? { prefix: m[1] as 'B' | 'I', type: m[2]! } : undefined
}

/** seqeval strict IOB2: an entity starts at B-X and takes the following I-X; an I-X that continues no chunk of X starts nothing. */
export function entitiesOf(tags: readonly Tag[]): Entity[] {
  const out: Entity[] = []
  let open: Entity | undefined
  tags.forEach((t, i) => {
    if (t.prefix === 'I' && open && open[0] === t.type) {
      open[2] = i + 1
      return
    }
    if (open) out.push(open)
    open = t.prefix === 'B' ? [t.type, i, i + 1] : undefined
  })
  if (open) out.push(open)
  return out
}

export function iob2Entities(tags: readonly string[]): Entity[] {
  return entitiesOf(
    tags.map((t) => {
      const parsed = parseTag(t)
      if (!parsed) throw new Error(`'${t}' is not an IOB2 tag`)
      return parsed
    }),
  )
}

/** Entities of a sentence's gold and predicted tags: how many each has and how many match exactly. */
export function entityCounts(gold: readonly Tag[], pred: readonly Tag[]): { tp: number; gold: number; predicted: number } {
  const g = entitiesOf(gold)
  const p = entitiesOf(pred)
  const keys = new Set(g.map((e) => e.join('\u0000')))
  let tp = 0
  for (const e of p) if (keys.has(e.join('\u0000'))) tp++
  return { tp, gold: g.length, predicted: p.length }
}

/** Micro precision, recall and F1 from entity counts (0 where a denominator is 0). */
export function entityScores(tp: number, predicted: number, gold: number): { entity_precision: number; entity_recall: number; entity_f1: number } {
  const p = predicted === 0 ? 0 : tp / predicted
  const r = gold === 0 ? 0 : tp / gold
  return { entity_precision: p, entity_recall: r, entity_f1: p + r === 0 ? 0 : (2 * p * r) / (p + r) }
}

/** Entity scores over sentences of gold and predicted IOB2 tags. */
export function entityF1Of(gold: readonly (readonly string[])[], pred: readonly (readonly string[])[]): { entity_precision: number; entity_recall: number; entity_f1: number } {
  let tp = 0
  let g = 0
  let p = 0
  gold.forEach((tags, i) => {
    const c = entityCounts(tags.map((t) => parseTag(t)!), pred[i]!.map((t) => parseTag(t)!))
    tp += c.tp
    g += c.gold
    p += c.predicted
  })
  return entityScores(tp, p, g)
}

// Python's string.punctuation, \w (str.isalnum() or _) and str.split() whitespace
const PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g
const ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu
const PY_WHITESPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/

/** The official SQuAD normalization: lowercase, drop punctuation, articles to a space, whitespace collapsed. */
export function squadNormalize(text: string): string {
  const words = text.toLowerCase().replace(PUNCTUATION, '').replace(ARTICLES, ' ').split(PY_WHITESPACE)
  return words.filter((w) => w !== '').join(' ')
}

/** Gold answers as the script scores them: those that normalize to something, or [''] (no answer). */
function goldTexts(gold: readonly string[]): string[] {
  const kept = gold.filter((a) => squadNormalize(a) !== '')
  return kept.length > 0 ? kept : ['']
}

function tokens(text: string): string[] {
  const n = squadNormalize(text)
  return n === '' ? [] : n.split(' ')
}

function tokenF1(gold: string, pred: string): number {
  const g = tokens(gold)
  const p = tokens(pred)
  if (g.length === 0 || p.length === 0) return g.length === p.length ? 1 : 0
  const counts = new Map<string, number>()
  for (const t of g) counts.set(t, (counts.get(t) ?? 0) + 1)
  let same = 0
  for (const t of p) {
    const c = counts.get(t) ?? 0
    if (c > 0) {
      same++
      counts.set(t, c - 1)
    }
  }
  if (same === 0) return 0
  const precision = (1.0 * same) / p.length
  const recall = (1.0 * same) / g.length
  return (2 * precision * recall) / (precision + recall)
}

/** Exact match (0 or 1) of a prediction against a question's gold answers. */
export function squadExact(gold: readonly string[], pred: string): number {
  const p = squadNormalize(pred)
  return goldTexts(gold).some((a) => squadNormalize(a) === p) ? 1 : 0
}

/** Token F1 of a prediction against a question's gold answers (the best over them). */
export function squadF1(gold: readonly string[], pred: string): number {
  let best = 0
  for (const a of goldTexts(gold)) best = Math.max(best, tokenF1(a, pred))
  return best
}

export interface SquadTotals {
  exact: number
  f1: number
  total: number
  HasAns_exact?: number
  HasAns_f1?: number
  HasAns_total?: number
  NoAns_exact?: number
  NoAns_f1?: number
  NoAns_total?: number
}

/**
 * `exact` / `f1` = 100 × their mean over questions (summed in order, then 100 × sum / total, as the
 * script does); v2.0 adds the same over the questions with answers (HasAns: a non-empty answers
 * list) and without (NoAns), as the script splits them.
 */
export function squadTotals(exact: ArrayLike<number>, f1: ArrayLike<number>, hasAnswer: ArrayLike<number>, version2: boolean): SquadTotals {
  const sums = { all: [0, 0, 0], has: [0, 0, 0], no: [0, 0, 0] }
  for (let i = 0; i < exact.length; i++) {
    for (const s of [sums.all, hasAnswer[i] ? sums.has : sums.no]) {
      s[0]! += exact[i]!
      s[1]! += f1[i]!
      s[2]! += 1
    }
  }
  const pct = (s: number[], k: number) => (s[2] === 0 ? 0 : (100.0 * s[k]!) / s[2]!)
  const out: SquadTotals = { exact: pct(sums.all, 0), f1: pct(sums.all, 1), total: sums.all[2]! }
  if (version2) {
    Object.assign(out, {
      HasAns_exact: pct(sums.has, 0),
      HasAns_f1: pct(sums.has, 1),
      HasAns_total: sums.has[2]!,
      NoAns_exact: pct(sums.no, 0),
      NoAns_f1: pct(sums.no, 1),
      NoAns_total: sums.no[2]!,
    })
  }
  return out
}
