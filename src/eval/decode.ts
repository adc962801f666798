/**
 * Model outputs to predictions, exactly as fixtures/eval/DECODING.md states: argmax with the
 * lowest index among equal values; the best SQuAD span over every window and every pair of context
 * tokens, scores summed in float64, the first maximum in (feature, start, end) order, and v2.0's
 * null answer when the smallest [CLS] score beats it strictly; the rank of a fill-mask answer.
 */

/**
 * Index of the largest of `count` values from `offset` (the lowest index among equal ones), relative
 * to `offset`. NaN never wins; -1 when every value is NaN (a prediction that is never right).
 */
export function argmax(values: ArrayLike<number>, offset = 0, count = values.length - offset): number {
  let best = -1
  let top = -Infinity
  for (let i = 0; i < count; i++) {
    const v = values[offset + i]!
    if (v > top || (best < 0 && v === -Infinity)) {
      top = v
      best = i
    }
  }
  return best
}

/** One window's start and end logits, and the positions [first, last) of its context tokens. */
export interface SpanFeature {
  start: ArrayLike<number>
  end: ArrayLike<number>
  first: number
  last: number
}

export interface Span {
  feature: number
  /** positions within the feature */
  start: number
  end: number
  /** start_logits[start] + end_logits[end], in float64 */
  score: number
}

/** The best span of any feature: context positions s ≤ e, e − s + 1 ≤ maxAnswerLength, highest score, the first in (feature, start, end) order among equal ones. */
export function bestSpan(features: readonly SpanFeature[], maxAnswerLength: number): Span | undefined {
  let best: Span | undefined
  features.forEach((f, fi) => {
    for (let s = f.first; s < f.last; s++) {
      const sv = f.start[s]!
      const stop = Math.min(f.last, s + maxAnswerLength)
      for (let e = s; e < stop; e++) {
        const score = sv + f.end[e]!
        if (best === undefined ? !Number.isNaN(score) : score > best.score) best = { feature: fi, start: s, end: e, score }
      }
    }
  })
  return best
}

/** SQuAD v2.0's null score: the smallest start_logits[0] + end_logits[0] ([CLS]) over the features. */
export function nullScore(features: readonly SpanFeature[]): number {
  let min = Infinity
  for (const f of features) min = Math.min(min, f.start[0]! + f.end[0]!)
  return min
}

export interface SpanDecision {
  span: Span | undefined
  /** v2.0 only */
  nullScore: number | undefined
  /** false: the prediction is "" (no answer) */
  answered: boolean
}

/** The span to answer with, and for v2.0 whether the null answer beats it (strictly: on equality the span is answered). */
export function decideSpan(features: readonly SpanFeature[], maxAnswerLength: number, version2: boolean): SpanDecision {
  const span = bestSpan(features, maxAnswerLength)
  if (!version2) return { span, nullScore: undefined, answered: span !== undefined }
  const ns = nullScore(features)
  return { span, nullScore: ns, answered: span !== undefined && !(ns > span.score) }
}

/**
 * The rank (1-based) of a fill-mask answer among all vocabulary ids ordered by the logit at the
 * mask (descending, lower id first among equal logits): the rank of the best-ranked of `pieceIds`,
 * the pieces that spell the answer. null when no piece spells it.
 */
export function answerRank(logits: ArrayLike<number>, offset: number, vocab: number, pieceIds: readonly number[]): number | null {
  let best = -1
  for (const id of pieceIds) {
    if (id < 0 || id >= vocab) continue
    if (best < 0 || ranksAbove(logits[offset + id]!, id, logits[offset + best]!, best)) best = id
  }
  if (best < 0) return null
  const v = logits[offset + best]!
  let above = 0
  for (let j = 0; j < vocab; j++) if (j !== best && ranksAbove(logits[offset + j]!, j, v, best)) above++
  return above + 1
}

/** Whether id a (value va) ranks before id b (value vb): larger value, or equal and lower id. NaN ranks last. */
function ranksAbove(va: number, a: number, vb: number, b: number): boolean {
  if (Number.isNaN(va)) return false
  if (Number.isNaN(vb)) return true
  return va > vb || (va === vb && a < b)
}

/** The pieces that spell `normalized` (the answer as the tokenizer normalizes it): itself and ▁ + itself, where the vocabulary has them. */
export function spellingPieces(normalized: string, idOfPiece: (piece: string) => number | undefined): number[] {
  const ids = new Set<number>()
  for (const p of [normalized, `\u2581${normalized}`]) {
    const id = idOfPiece(p)
    if (id !== undefined) ids.add(id)
  }
  return [...ids]
}
