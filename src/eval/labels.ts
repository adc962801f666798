/**
 * The label names a model predicts (config.json's id2label, or transformers' LABEL_<i> when it
 * has none) and how a labelled file's label, given as a name or an id, is matched to them.
 */
import { printable } from '../util/printable.js'

/** What evaluation needs of a model's config (AlbertConfig has all of it). */
export interface EvalModel {
  /** label names by id, when the config gives them */
  id2label?: Record<string, string> | undefined
  numLabels: number
  maxPositionEmbeddings: number
  vocabSize: number
  typeVocabSize: number
}

const SHOWN = 12

export class Labels {
  /** names by id (ids 0 … count-1) */
  readonly names: readonly string[]
  private readonly byName = new Map<string, number>()

  constructor(names: readonly string[]) {
    this.names = names
    // a name given twice (a careless config) means its first id: gold and predictions are compared by name
    names.forEach((n, i) => this.byName.has(n) || this.byName.set(n, i))
  }

  /** The config's labels: id2label when it has one entry per label, else LABEL_0 … LABEL_<n-1> as transformers names them. */
  static of(model: EvalModel): Labels {
    const n = model.numLabels
    const names = Array.from({ length: n }, (_, i) => model.id2label?.[String(i)] ?? `LABEL_${i}`)
    return new Labels(names)
  }

  get count(): number {
    return this.names.length
  }

  /** The id a name stands for (the first id of a name given twice), or undefined. */
  idOfName(name: string): number | undefined {
    return this.byName.get(name)
  }

  /** An id as the id of its name (so that two ids of one name count as one label). */
  canonical(id: number): number {
    return this.byName.get(this.names[id]!)!
  }

  /** `NEGATIVE, POSITIVE` (the first few, then how many). */
  describeNames(): string {
    const shown = this.names.slice(0, SHOWN).map((n) => printable(n, 40))
    return this.names.length > SHOWN ? `${shown.join(', ')}, … (${this.names.length} labels)` : shown.join(', ')
  }

  /** `ids 0, 1` or `ids 0-29`. */
  describeIds(): string {
    const n = this.names.length
    return n <= 3 ? `ids ${[...Array(n).keys()].join(', ')}` : `ids 0-${n - 1}`
  }

  /** Why a label name is not one of them. */
  unknownName(name: string, what = 'label'): string {
    return `${what} "${printable(name, 80)}" is not in the config's id2label (${this.describeNames()})`
  }

  /** Why a label id is not one of them. */
  unknownId(id: number): string {
    return `label id ${id} is not in the config's id2label (${this.describeIds()})`
  }
}
