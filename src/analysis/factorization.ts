/**
 * ALBERT's embedding factorization: its figures (V·E + E·H parameters against V·H), and finding it
 * in any graph: the word-embedding lookup (a Gather, or a 4-bit GatherBlockQuantized, on a constant V×E table) and the first
 * constant-weight projection it feeds (E→H).
 */
import { DataType } from '../ir/dtype.js'
import type { Graph, Node, Value } from '../ir/graph.js'
import { nodesDeep } from './parameters.js'

export interface EmbeddingLookup {
  gather: Node
  table: Value
  V: number
  E: number
  /** The projection from E to H, if the graph has one. */
  projection?: { node: Node; weight: Value; H: number }
}

/** Follow a constant through layout-only ops (Transpose, Cast, DequantizeLinear) to the stored tensor. */
export function constantSource(v: Value | null | undefined): Value | undefined {
  for (let i = 0; v && i < 4; i++) {
    if (v.const) return v
    const p: Node | null = v.producer
    if (!p || !['Transpose', 'Cast', 'DequantizeLinear', 'Identity'].includes(p.opType)) return undefined
    v = p.inputs[0]
  }
  return undefined
}

/** The word-embedding lookup: the Gather (or GatherBlockQuantized) on the constant 2-D table with the most rows. */
export function findEmbeddingLookup(graph: Graph): EmbeddingLookup | undefined {
  let best: EmbeddingLookup | undefined
  for (const n of nodesDeep(graph)) {
    const blockQuantized = n.opType === 'GatherBlockQuantized' && n.domain === 'com.microsoft' && n.attrInt('gather_axis', 0) === 0
    if (!blockQuantized && (n.opType !== 'Gather' || n.domain !== '' || n.attrInt('axis', 0) !== 0)) continue
    const table = constantSource(n.inputs[0])
    const dims = table?.const?.dims ?? (n.inputs[0]?.shape as number[] | undefined)
    if (!table || !dims || dims.length !== 2) continue
    // 4-bit rows in uint8 bytes: 8 / bits values a byte
    const perByte = blockQuantized && table.const?.dtype === DataType.UINT8 ? 8 / n.attrInt('bits', 4) : 1
    const [V, E] = [dims[0]!, dims[1]! * perByte]
    if (!best || V > best.V) best = { gather: n, table, V, E }
  }
  if (!best) return undefined
  const projection = findProjection(best.gather.outputs[0]!, best.E)
  if (projection) best.projection = projection
  return best
}

/** Ops whose second input is a weight [K, N] (Gemm: maybe transposed; MatMulNBits: packed). */
const LINEAR_OPS = new Set(['MatMul', 'Gemm', 'MatMulInteger', 'MatMulNBits', 'DynamicQuantizeMatMul'])

/** Breadth-first from the lookup's output to the first MatMul/Gemm with a constant E-by-H weight. */
function findProjection(start: Value, E: number): EmbeddingLookup['projection'] {
  const queue: Value[] = [start]
  const seen = new Set<Value>()
  for (let steps = 0; queue.length && steps < 64; steps++) {
    const v = queue.shift()!
    if (seen.has(v)) continue
    seen.add(v)
    for (const n of v.consumers) {
      if (LINEAR_OPS.has(n.opType) && n.inputs[0] === v) {
        const weight = constantSource(n.inputs[1])
        const dims = weight?.const?.dims
        if (weight && n.opType === 'MatMulNBits') {
          // packed 4-bit blocks [N, blocks, bytes]: the sizes are attributes
          if (n.attrInt('K', 0) === E) return { node: n, weight, H: n.attrInt('N', 0) }
        } else if (weight && dims && dims.length === 2) {
          const transB = n.opType === 'Gemm' && n.attrInt('transB', 0) === 1
          const [k, h] = transB ? [dims[1]!, dims[0]!] : [dims[0]!, dims[1]!]
          if (k === E) return { node: n, weight, H: h }
        }
      }
      for (const o of n.outputs) if (o) queue.push(o)
    }
  }
  return undefined
}

export interface Factorization {
  V: number
  E: number
  H: number
  /** V·E + E·H */
  factorized: number
  /** V·H */
  unfactorized: number
  /** unfactorized − factorized */
  saving: number
  /** factorized / unfactorized */
  ratio: number
}

export function factorization(V: number, E: number, H: number): Factorization {
  const factorized = V * E + E * H
  const unfactorized = V * H
  return { V, E, H, factorized, unfactorized, saving: unfactorized - factorized, ratio: factorized / unfactorized }
}
