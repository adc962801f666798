/**
 * Figures about weights: parameters stored, unique (equal tensors counted once), and as-if-unshared
 * (one copy per use, as exporters that unroll ALBERT's shared layers write them); bytes per dtype;
 * ALBERT's embedding factorization.
 */
import { createHash } from 'node:crypto'
import { dtypeName, isFloat, type DataType } from '../ir/dtype.js'
import type { Graph, Value } from '../ir/graph.js'
import type { Tensor } from '../ir/tensor.js'
import { groupOfLayer, type AlbertConfig } from '../checkpoint/config.js'

export interface ParameterStats {
  /** Floating-point weight elements as stored (every tensor of rank ≥ 1 counted). */
  stored: number
  /** The same with byte-identical tensors counted once. */
  unique: number
  /** What one copy per use would hold (shared layers unrolled per layer call). */
  asIfUnshared: number
  tensors: number
  /** Bytes of every tensor, by element type. */
  bytesByDtype: Record<string, number>
}

/** Group tensors whose dtype, shape and bytes are equal; only same-shaped tensors are hashed. */
export function equalTensorGroups<T>(items: readonly T[], tensorOf: (item: T) => Tensor): T[][] {
  const byShape = new Map<string, T[]>()
  for (const item of items) {
    const t = tensorOf(item)
    const key = `${t.dtype}:${t.dims.join('x')}`
    const list = byShape.get(key)
    if (list) list.push(item)
    else byShape.set(key, [item])
  }
  const groups: T[][] = []
  for (const list of byShape.values()) {
    if (list.length === 1) {
      groups.push(list)
      continue
    }
    const byHash = new Map<string, T[]>()
    for (const item of list) {
      const t = tensorOf(item)
      // Small tensors are their own key (a hash per scalar would cost more than the bytes).
      let digest: string
      if (!t.strings && t.data.byteLength <= 64) digest = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('latin1')
      else {
        const h = createHash('sha256').update(t.data)
        for (const s of t.strings ?? []) h.update(s)
        digest = h.digest('hex')
      }
      const g = byHash.get(digest)
      if (g) g.push(item)
      else byHash.set(digest, [item])
    }
    for (const group of byHash.values()) groups.push(group)
  }
  return groups
}

function isParameter(t: Tensor): boolean {
  return t.dims.length >= 1 && isFloat(t.dtype)
}

function addBytes(acc: Record<string, number>, dtype: DataType, bytes: number): void {
  const k = dtypeName(dtype)
  acc[k] = (acc[k] ?? 0) + bytes
}

/**
 * Stats of a graph's initializers. A weight's "uses" is the largest number of its consumers of one
 * op type: twelve Gemms reading a shared layer weight count 12, a tied embedding read by a Gather
 * and a Gemm counts 1.
 */
export function graphParameterStats(graph: Graph): ParameterStats {
  const inits = graph.initializers
  const bytesByDtype: Record<string, number> = {}
  let stored = 0
  let asIfUnshared = 0
  for (const v of inits) {
    const t = v.const!
    addBytes(bytesByDtype, t.dtype, t.byteLength)
    if (!isParameter(t)) continue
    stored += t.size
    asIfUnshared += t.size * usesOf(v)
  }
  const params = inits.filter((v) => isParameter(v.const!))
  const unique = equalTensorGroups(params, (v) => v.const!).reduce((n, g) => n + g[0]!.const!.size, 0)
  return { stored, unique, asIfUnshared, tensors: inits.length, bytesByDtype }
}

function usesOf(v: Value): number {
  const perOp = new Map<string, number>()
  for (const n of v.consumers) perOp.set(n.opType, (perOp.get(n.opType) ?? 0) + 1)
  return Math.max(1, ...perOp.values())
}

/** Stats of checkpoint tensors; layer-group tensors count once per layer call that runs them. */
export function checkpointParameterStats(config: AlbertConfig, tensors: Map<string, Tensor>): ParameterStats {
  const calls = new Map<number, number>()
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const g = groupOfLayer(config, i)
    calls.set(g, (calls.get(g) ?? 0) + 1)
  }
  const bytesByDtype: Record<string, number> = {}
  let stored = 0
  let asIfUnshared = 0
  const params: Tensor[] = []
  for (const [name, t] of tensors) {
    addBytes(bytesByDtype, t.dtype, t.byteLength)
    if (!isParameter(t)) continue
    params.push(t)
    stored += t.size
    const m = /albert_layer_groups\.(\d+)\./.exec(name)
    asIfUnshared += t.size * (m ? (calls.get(Number(m[1])) ?? 0) : 1)
  }
  const unique = equalTensorGroups(params, (t) => t).reduce((n, g) => n + g[0]!.size, 0)
  return { stored, unique, asIfUnshared, tensors: tensors.size, bytesByDtype }
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
