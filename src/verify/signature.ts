/**
 * What an ONNX model used as verify's reference takes: the inputs of its graph and, found in the
 * graph, the sizes seeded random ids and tokenized texts must respect (no config.json needed):
 *
 * - the vocabulary: rows of the word-embedding table, the constant 2-D table of the Gather (axis
 *   0) whose indices carry the values of the `input_ids` input;
 * - the token types: rows of the table whose Gather indices carry `token_type_ids` (1 when the
 *   model takes no `token_type_ids`);
 * - the sequence limit: rows of the position table, a constant table as wide as the word table
 *   whose Gather indices carry neither input (position ids are a constant sliced, or a Range, to
 *   the sequence length; when several qualify, the one with the most rows), or a constant table
 *   of that width that a Slice cuts along its rows to the sequence length (albertkit's own graphs);
 * - a model pinned to one [batch, sequence] (--fixed-shape) needs no position table: its
 *   sequence is the limit;
 * - onnxruntime's fused EmbedLayerNormalization (com.microsoft) names all three tables directly.
 *
 * Nodes inside If and Loop bodies count too (a packed model, passes/pack-tokens.ts, runs in an If).
 * "Carry the values of an input" is a walk up from the indices through producers that pass values
 * on, stopping at Shape and Size (which pass only a length) and after a bounded number of nodes;
 * a table seen through Identity, Cast, Transpose or DequantizeLinear counts as constant.
 */
import type { Graph, Model, Node, Value } from '../ir/graph.js'
import { constantSource } from '../analysis/factorization.js'
import { fail } from '../util/errors.js'
import { printable } from '../util/printable.js'
import { nodesDeep } from '../analysis/parameters.js'

export interface ReferenceSignature {
  /** the graph's inputs (initializers left out) */
  inputs: string[]
  vocabSize: number
  /** the word-embedding table's name */
  vocabFrom: string
  maxPositions: number
  /** the position table's name */
  positionsFrom: string
  /** rows of the token-type table; 1 when the model takes no token_type_ids */
  typeVocabSize: number
  /** input_ids of rank 3 ([batch, choices, sequence]): the multiple-choice head */
  multipleChoice: boolean
  /** choices per row of a multiple-choice model, when its input pins them */
  choices?: number
  /** [batch, sequence] when the model's input_ids pin both (a model made with --fixed-shape) */
  fixed?: [number, number]
}

/** Producers walked above a Gather's indices before giving up: an embedding's ids are a few nodes from the input. */
const MAX_WALK = 256
/** Ops whose outputs hold an input's length, not its values: the walk stops there. */
const SHAPE_OPS = new Set(['Shape', 'Size'])

interface Lookup {
  gather: Node
  table: Value
  rows: number
  width: number
  from: Set<string>
}

/** The reference's signature; a graph without the tables is one line naming the file and what is missing. */
export function referenceSignature(model: Model, file: string): ReferenceSignature {
  const g = model.graph
  const inputs = g.inputs.filter((v) => !v.const)
  const names = inputs.map((v) => v.name)
  const shown = names.length ? names.map((n) => printable(n, 60)).join(', ') : 'none'
  const ids = inputs.find((v) => v.name === 'input_ids')
  if (!ids) fail(file, `takes no input_ids (its inputs: ${shown}): verify drives an ONNX reference by input_ids, attention_mask and token_type_ids, as transformers names them`)
  const rank = ids.shape?.length
  if (rank !== undefined && rank !== 2 && rank !== 3) fail(file, `input_ids has rank ${rank}: an ALBERT model takes [batch, sequence] (or [batch, choices, sequence])`)

  const lookups = embeddingLookups(g)
  const fused = fusedEmbeddings(g)
  const word = fused?.word ?? best(lookups.filter((l) => l.from.has('input_ids')))
  if (!word) {
    fail(file, `no word-embedding table found: no Gather (axis 0) of a constant [vocabulary, width] table takes its indices from input_ids; the vocabulary size comes from that table`)
  }
  const takesTypes = names.includes('token_type_ids')
  const types = fused?.types ?? best(lookups.filter((l) => l !== word && l.from.has('token_type_ids') && !l.from.has('input_ids')))
  const position =
    fused?.position ??
    best(lookups.filter((l) => l !== word && l !== types && l.width === word.width && !l.from.has('input_ids') && !l.from.has('token_type_ids'))) ??
    best(slicedTables(g).filter((l) => l.table !== word.table && l.width === word.width))
  const dims = ids.shape ?? []
  const fixed: [number, number] | undefined =
    rank === 2 && typeof dims[0] === 'number' && typeof dims[1] === 'number' && dims[0] > 0 && dims[1] > 0 ? [dims[0], dims[1]] : undefined
  // A model pinned to one shape (--fixed-shape) may hold its positions folded into a constant.
  if (!position && !fixed) {
    fail(
      file,
      `no position table found: no Gather (axis 0) of a constant [positions, ${word.width}] table besides the word embeddings (${printable(word.table.name, 80)}) takes position ids; the sequence limit comes from that table`,
    )
  }
  const signature: ReferenceSignature = {
    inputs: names,
    vocabSize: word.rows,
    vocabFrom: word.table.name,
    maxPositions: position?.rows ?? fixed![1],
    positionsFrom: position?.table.name ?? `input_ids pinned to [${fixed!.join(', ')}]`,
    typeVocabSize: takesTypes && types ? types.rows : 1,
    multipleChoice: rank === 3,
  }
  if (rank === 3 && typeof dims[1] === 'number' && dims[1] > 0) signature.choices = dims[1]
  if (fixed) signature.fixed = fixed
  return signature
}

/** Every Gather (axis 0, default domain) of a constant 2-D table, with the graph inputs its indices carry. */
function embeddingLookups(g: Graph): Lookup[] {
  const found: Lookup[] = []
  for (const n of nodesDeep(g)) {
    if (n.opType !== 'Gather' || n.domain !== '' || n.attrInt('axis', 0) !== 0) continue
    const lookup = tableLookup(n, n.inputs[0], n.inputs[1])
    if (lookup) found.push(lookup)
  }
  return found
}

function tableLookup(gather: Node, tableInput: Value | null | undefined, indices: Value | null | undefined): Lookup | undefined {
  const table = constantSource(tableInput)
  const dims = table?.const?.dims
  if (!table || !dims || dims.length !== 2 || !indices) return undefined
  return { gather, table, rows: dims[0]!, width: dims[1]!, from: inputsCarried(indices) }
}

/** Constant 2-D tables that a Slice cuts along their rows (axis 0, from row 0): position tables taken to the sequence length. */
function slicedTables(g: Graph): Lookup[] {
  const found: Lookup[] = []
  for (const n of nodesDeep(g)) {
    if (n.opType !== 'Slice' || n.domain !== '') continue
    const table = constantSource(n.inputs[0])
    const dims = table?.const?.dims
    if (!table || !dims || dims.length !== 2) continue
    const axes = intsOf(n.inputs[3])
    const starts = intsOf(n.inputs[1])
    if ((axes !== undefined && (axes.length !== 1 || axes[0] !== 0)) || starts === undefined || starts[0] !== 0) continue
    found.push({ gather: n, table, rows: dims[0]!, width: dims[1]!, from: new Set() })
  }
  return found
}

/** A small constant integer list (Slice's starts and axes), or undefined when it is not constant. */
function intsOf(v: Value | null | undefined): number[] | undefined {
  const t = v?.const
  if (!t || t.dims.length !== 1 || t.dims[0]! > 8) return undefined
  try {
    return [...t.toBigInt64()].map(Number)
  } catch {
    return undefined
  }
}

/** onnxruntime's EmbedLayerNormalization: input_ids, segment_ids, word, position and segment tables. */
function fusedEmbeddings(g: Graph): { word: Lookup; position: Lookup; types?: Lookup } | undefined {
  for (const n of nodesDeep(g)) {
    if (n.opType !== 'EmbedLayerNormalization' || n.domain !== 'com.microsoft') continue
    const word = tableLookup(n, n.inputs[2], n.inputs[0])
    const position = tableLookup(n, n.inputs[3], n.inputs[0])
    if (!word || !position) continue
    const types = n.inputs[1] ? tableLookup(n, n.inputs[4], n.inputs[1]) : undefined
    return types ? { word, position, types } : { word, position }
  }
  return undefined
}

/** The graph inputs whose values reach `v` (not through Shape or Size), walking at most MAX_WALK producers. */
function inputsCarried(v: Value): Set<string> {
  const found = new Set<string>()
  const seen = new Set<Value>([v])
  const queue: Value[] = [v]
  for (let head = 0; head < queue.length && head < MAX_WALK; head++) {
    const cur = queue[head]!
    // inside an If or Loop body (a packed model's branches) a graph input is read from the outer graph
    if (cur.graph.isInput(cur)) found.add(cur.name)
    const p = cur.producer
    if (!p || SHAPE_OPS.has(p.opType)) continue
    for (const i of p.inputs) {
      if (i && !i.const && !seen.has(i)) {
        seen.add(i)
        queue.push(i)
      }
    }
  }
  return found
}

/** The lookup with the most rows (the first such in graph order). */
function best(lookups: Lookup[]): Lookup | undefined {
  let top: Lookup | undefined
  for (const l of lookups) if (!top || l.rows > top.rows) top = l
  return top
}
