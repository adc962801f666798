/**
 * Per-example outcomes of one evaluation, kept compact (typed arrays that grow), the metrics
 * computed from them, and for a comparison the sums a bootstrap resample needs, added one drawn
 * example at a time (O(1) each; macro-F1 and entity F1 are computed from the resample's sums, not
 * averaged per example). One scorer per task.
 */
import { meanDifferences, type DropAccumulator } from './bootstrap.js'
import type { Labels } from './labels.js'
import { entityCounts, entityScores, macroF1FromCounts, parseTag, squadTotals, type Tag } from './metrics.js'
import type { EvalTask } from './readers.js'

/** A growable Int32Array. */
export class IntList {
  private a = new Int32Array(64)
  length = 0

  push(v: number): void {
    if (this.length === this.a.length) {
      const b = new Int32Array(this.a.length * 2)
      b.set(this.a)
      this.a = b
    }
    this.a[this.length++] = v
  }

  get(i: number): number {
    return this.a[i]!
  }

  view(): Int32Array {
    return this.a.subarray(0, this.length)
  }
}

export abstract class Scorer {
  abstract readonly task: EvalTask
  /** metrics a drop is measured on, the gate's default first */
  abstract readonly dropMetrics: readonly string[]
  abstract get count(): number
  /** what identifies example i across runs: its line, or a SQuAD question's id */
  abstract key(i: number): number | string
  /** the metrics of the whole set */
  abstract metrics(): Record<string, number>
  /** dropMetrics' values */
  abstract values(): number[]
  /** sums over drawn examples of this (the reference) and `candidate`, giving each dropMetric's drop in points */
  abstract dropAccumulator(candidate: this): DropAccumulator
  /** whether example i's prediction differs from `other`'s (the same task and examples) */
  abstract differs(i: number, other: this): boolean
  /** whether example i is right (classification, choice, top-1, exact match; a sentence with every word right) */
  abstract correct(i: number): boolean
  /** example i's prediction, for a report */
  abstract prediction(i: number): unknown
  /** points per unit of a metric: 100 for a share (0..1), 1 for SQuAD's percentages */
  scale(_metric: string): number {
    return 100
  }
}

/** A scorer of one gold and one predicted index per example (a label, a choice). */
abstract class IndexScorer extends Scorer {
  readonly lines = new IntList()
  readonly gold = new IntList()
  /** the predicted index, -1 for none (every logit NaN) */
  readonly pred = new IntList()

  get count() {
    return this.lines.length
  }

  record(line: number, gold: number, pred: number): void {
    this.lines.push(line)
    this.gold.push(gold)
    this.pred.push(pred)
  }

  key(i: number) {
    return this.lines.get(i)
  }

  differs(i: number, other: this) {
    return this.pred.get(i) !== other.pred.get(i)
  }

  correct(i: number) {
    return this.pred.get(i) === this.gold.get(i)
  }

  /** examples whose prediction is the gold index */
  protected correctCount(): number {
    let correct = 0
    for (let i = 0; i < this.count; i++) if (this.correct(i)) correct++
    return correct
  }
}

export class ClassificationScorer extends IndexScorer {
  readonly task = 'text-classification'
  readonly dropMetrics = ['accuracy', 'macro_f1']
  /** label indices by name (scikit-learn sorts labels), then -1's slot */
  private readonly order: number[]

  constructor(readonly labels: Labels) {
    super()
    const names = labels.names
    this.order = [...names.keys()].sort((a, b) => (names[a]! < names[b]! ? -1 : names[a]! > names[b]! ? 1 : a - b))
    this.order.push(names.length)
  }

  /** Per-label true positives, gold and predicted counts of `pred` (slot labels.count: no prediction). */
  private counts(pred: Int32Array, tp: Float64Array, g: Float64Array, p: Float64Array, i: number): boolean {
    const gi = this.gold.get(i)
    const pi = pred[i]! < 0 ? this.labels.count : pred[i]!
    g[gi]!++
    p[pi]!++
    if (gi !== pi) return false
    tp[gi]!++
    return true
  }

  values(): number[] {
    const L = this.labels.count + 1
    const tp = new Float64Array(L)
    const g = new Float64Array(L)
    const p = new Float64Array(L)
    const pred = this.pred.view()
    let correct = 0
    for (let i = 0; i < this.count; i++) if (this.counts(pred, tp, g, p, i)) correct++
    return [correct / this.count, macroF1FromCounts(tp, g, p, this.order)]
  }

  dropAccumulator(candidate: ClassificationScorer): DropAccumulator {
    const L = this.labels.count + 1
    const gold = this.gold.view()
    const rp = this.pred.view()
    const cp = candidate.pred.view()
    const g = new Float64Array(L)
    const [rtp, rpc, ctp, cpc] = [0, 0, 0, 0].map(() => new Float64Array(L)) as [Float64Array, Float64Array, Float64Array, Float64Array]
    const none = this.labels.count
    let rc = 0
    let cc = 0
    let n = 0
    const out = new Float64Array(2)
    return {
      metrics: 2,
      reset() {
        for (const a of [g, rtp, rpc, ctp, cpc]) a.fill(0)
        rc = cc = n = 0
      },
      add: (i) => {
        const gi = gold[i]!
        const r = rp[i]! < 0 ? none : rp[i]!
        const c = cp[i]! < 0 ? none : cp[i]!
        n++
        g[gi]!++
        rpc[r]!++
        cpc[c]!++
        if (r === gi) rc++, rtp[gi]!++
        if (c === gi) cc++, ctp[gi]!++
      },
      drops: () => {
        out[0] = ((rc - cc) * 100) / n
        out[1] = (macroF1FromCounts(rtp, g, rpc, this.order) - macroF1FromCounts(ctp, g, cpc, this.order)) * 100
        return out
      },
    }
  }

  metrics() {
    const [accuracy, macro_f1] = this.values()
    return { accuracy: accuracy!, macro_f1: macro_f1!, correct: this.correctCount(), total: this.count }
  }

  prediction(i: number) {
    const p = this.pred.get(i)
    return { line: this.lines.get(i), gold: this.labels.names[this.gold.get(i)]!, prediction: p < 0 ? null : this.labels.names[p]! }
  }
}

export class TokenScorer extends Scorer {
  readonly task = 'token-classification'
  readonly dropMetrics = ['entity_f1', 'entity_precision', 'entity_recall', 'word_accuracy']
  readonly lines = new IntList()
  /** per sentence: true positives, predicted and gold entities, words right, words */
  private readonly tp = new IntList()
  private readonly predicted = new IntList()
  private readonly goldEntities = new IntList()
  private readonly right = new IntList()
  private readonly words = new IntList()
  /** every word's gold and predicted tag id (-1: no prediction), sentence after sentence */
  private readonly goldTags = new IntList()
  private readonly predTags = new IntList()
  private readonly starts = new IntList()
  private readonly tags: Tag[]
  private static readonly NONE: Tag = { prefix: 'O', type: '' }

  constructor(readonly labels: Labels) {
    super()
    this.tags = labels.names.map((n) => {
      const t = parseTag(n)
      if (!t) throw new Error(`label '${n}' is not an IOB2 tag`)
      return t
    })
  }

  get count() {
    return this.lines.length
  }

  record(line: number, gold: readonly number[], pred: readonly number[]): void {
    this.lines.push(line)
    this.starts.push(this.goldTags.length)
    let right = 0
    gold.forEach((g, k) => {
      this.goldTags.push(g)
      this.predTags.push(pred[k]!)
      if (g === pred[k]) right++
    })
    const c = entityCounts(
      gold.map((g) => this.tags[g]!),
      pred.map((p) => (p < 0 ? TokenScorer.NONE : this.tags[p]!)),
    )
    this.tp.push(c.tp)
    this.predicted.push(c.predicted)
    this.goldEntities.push(c.gold)
    this.right.push(right)
    this.words.push(gold.length)
  }

  key(i: number) {
    return this.lines.get(i)
  }

  /** tp, predicted, gold, words right, words */
  private static readonly FIELDS = 5

  private row(i: number): number[] {
    return [this.tp.get(i), this.predicted.get(i), this.goldEntities.get(i), this.right.get(i), this.words.get(i)]
  }

  private sums() {
    const t = [0, 0, 0, 0, 0]
    for (let i = 0; i < this.count; i++) this.row(i).forEach((v, k) => (t[k]! += v))
    const [tp, predicted, gold, right, words] = t as [number, number, number, number, number]
    return { tp, predicted, gold, right, words }
  }

  private static scores(tp: number, predicted: number, gold: number, right: number, words: number): number[] {
    const e = entityScores(tp, predicted, gold)
    return [e.entity_f1, e.entity_precision, e.entity_recall, words === 0 ? 0 : right / words]
  }

  values(): number[] {
    const s = this.sums()
    return TokenScorer.scores(s.tp, s.predicted, s.gold, s.right, s.words)
  }

  dropAccumulator(candidate: TokenScorer): DropAccumulator {
    const F = TokenScorer.FIELDS
    const table = (sc: TokenScorer) => {
      const t = new Float64Array(sc.count * F)
      for (let i = 0; i < sc.count; i++) t.set(sc.row(i), i * F)
      return t
    }
    const rt = table(this)
    const ct = table(candidate)
    const r = new Float64Array(F)
    const c = new Float64Array(F)
    const out = new Float64Array(4)
    return {
      metrics: 4,
      reset() {
        r.fill(0)
        c.fill(0)
      },
      add(i) {
        for (let k = 0; k < F; k++) {
          r[k]! += rt[i * F + k]!
          c[k]! += ct[i * F + k]!
        }
      },
      drops() {
        const a = TokenScorer.scores(r[0]!, r[1]!, r[2]!, r[3]!, r[4]!)
        const b = TokenScorer.scores(c[0]!, c[1]!, c[2]!, c[3]!, c[4]!)
        for (let m = 0; m < 4; m++) out[m] = (a[m]! - b[m]!) * 100
        return out
      },
    }
  }

  metrics() {
    const s = this.sums()
    return {
      ...entityScores(s.tp, s.predicted, s.gold),
      true_positives: s.tp,
      predicted_entities: s.predicted,
      gold_entities: s.gold,
      word_accuracy: s.words === 0 ? 0 : s.right / s.words,
      sentences: this.count,
      words: s.words,
    }
  }

  private range(i: number): [number, number] {
    return [this.starts.get(i), i + 1 < this.count ? this.starts.get(i + 1) : this.goldTags.length]
  }

  /** words of sentence i whose predicted tag differs from `other`'s */
  changedWords(i: number, other: TokenScorer): number {
    const [a, b] = this.range(i)
    let n = 0
    for (let k = a; k < b; k++) if (this.predTags.get(k) !== other.predTags.get(k)) n++
    return n
  }

  differs(i: number, other: TokenScorer) {
    return this.changedWords(i, other) > 0
  }

  correct(i: number) {
    return this.right.get(i) === this.words.get(i)
  }

  prediction(i: number) {
    const [a, b] = this.range(i)
    const names: (string | null)[] = []
    for (let k = a; k < b; k++) {
      const p = this.predTags.get(k)
      names.push(p < 0 ? null : this.labels.names[p]!)
    }
    return { line: this.lines.get(i), prediction: names }
  }
}

export interface QaDetail {
  /** the best span (window, token positions within it, characters in the context) and its score; null when no span */
  best: { feature: number; start_token: number; end_token: number; start_char: number; end_char: number; score: number } | null
  /** v2.0: the smallest [CLS] score over the windows */
  null_score: number | null
  features: number
}

export class QaScorer extends Scorer {
  readonly task = 'question-answering'
  readonly dropMetrics = ['f1', 'exact']
  readonly ids: string[] = []
  readonly predictions: string[] = []
  readonly details: QaDetail[] = []
  private readonly exact: number[] = []
  private readonly f1: number[] = []
  private readonly hasAnswer: number[] = []

  constructor(readonly version2: boolean) {
    super()
  }

  get count() {
    return this.ids.length
  }

  record(id: string, prediction: string, exact: number, f1: number, hasAnswer: boolean, detail: QaDetail): void {
    this.ids.push(id)
    this.predictions.push(prediction)
    this.exact.push(exact)
    this.f1.push(f1)
    this.hasAnswer.push(hasAnswer ? 1 : 0)
    this.details.push(detail)
  }

  key(i: number) {
    return this.ids[i]!
  }

  override scale() {
    return 1
  }

  values(): number[] {
    const t = squadTotals(this.exact, this.f1, this.hasAnswer, false)
    return [t.f1, t.exact]
  }

  dropAccumulator(candidate: QaScorer): DropAccumulator {
    return meanDifferences([this.f1.map((v, i) => v - candidate.f1[i]!), this.exact.map((v, i) => v - candidate.exact[i]!)])
  }

  metrics() {
    return { ...squadTotals(this.exact, this.f1, this.hasAnswer, this.version2) } as Record<string, number>
  }

  differs(i: number, other: QaScorer) {
    return this.predictions[i] !== other.predictions[i]
  }

  correct(i: number) {
    return this.exact[i] === 1
  }

  prediction(i: number) {
    return { id: this.ids[i]!, prediction: this.predictions[i]!, exact: this.exact[i]!, f1: this.f1[i]!, ...this.details[i]! }
  }
}

export class MaskScorer extends Scorer {
  readonly task = 'fill-mask'
  readonly dropMetrics = ['top1', 'top5']
  readonly lines = new IntList()
  /** the answer's rank, 0 when no piece spells it */
  readonly ranks = new IntList()
  readonly top1 = new IntList()
  private unspelled = 0

  get count() {
    return this.lines.length
  }

  record(line: number, rank: number | null, spelled: boolean, top1: number): void {
    this.lines.push(line)
    this.ranks.push(rank ?? 0)
    this.top1.push(top1)
    if (!spelled) this.unspelled++
  }

  key(i: number) {
    return this.lines.get(i)
  }

  private hits(): [number, number, number] {
    let h1 = 0
    let h5 = 0
    for (let i = 0; i < this.count; i++) {
      const r = this.ranks.get(i)
      if (r === 1) h1++
      if (r >= 1 && r <= 5) h5++
    }
    return [h1, h5, this.count]
  }

  values(): number[] {
    const [h1, h5, n] = this.hits()
    return [h1 / n, h5 / n]
  }

  dropAccumulator(candidate: MaskScorer): DropAccumulator {
    const hit = (r: number, k: number) => (r >= 1 && r <= k ? 1 : 0)
    const d1 = Int8Array.from(this.ranks.view(), (r, i) => hit(r, 1) - hit(candidate.ranks.get(i), 1))
    const d5 = Int8Array.from(this.ranks.view(), (r, i) => hit(r, 5) - hit(candidate.ranks.get(i), 5))
    return meanDifferences([d1, d5])
  }

  metrics() {
    const [h1, h5, n] = this.hits()
    return { top1: h1 / n, top5: h5 / n, hits_top1: h1, hits_top5: h5, total: n, answers_not_one_piece: this.unspelled }
  }

  differs(i: number, other: MaskScorer) {
    return this.top1.get(i) !== other.top1.get(i)
  }

  correct(i: number) {
    return this.ranks.get(i) === 1
  }

  prediction(i: number) {
    const r = this.ranks.get(i)
    return { line: this.lines.get(i), rank: r === 0 ? null : r, top1_id: this.top1.get(i) }
  }
}

export class ChoiceScorer extends IndexScorer {
  readonly task = 'multiple-choice'
  readonly dropMetrics = ['accuracy']

  values(): number[] {
    return [this.correctCount() / this.count]
  }

  dropAccumulator(candidate: ChoiceScorer): DropAccumulator {
    return meanDifferences([Int8Array.from(this.lines.view(), (_, i) => (this.correct(i) ? 1 : 0) - (candidate.correct(i) ? 1 : 0))])
  }

  metrics() {
    const correct = this.correctCount()
    return { accuracy: correct / this.count, correct, total: this.count }
  }

  prediction(i: number) {
    const p = this.pred.get(i)
    return { line: this.lines.get(i), gold: this.gold.get(i), prediction: p < 0 ? null : p }
  }
}
