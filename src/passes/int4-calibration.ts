/**
 * Sample statistics for error-compensating 4-bit rounding (not a pass): for each weight W read by
 * linear layers y = x·W, the Hessian of the layers' squared output error, H = Σ xᵀx over every row
 * x that reaches W on sample inputs, from every reader (a shared ALBERT layer's weight is read by
 * each of its calls, and all of them count).
 *
 * The products are made by onnxruntime, not here: a copy of the model gets, for each activation,
 * Reshape(x, [-1, K]) → Transpose → MatMul with itself (a K×K Gram matrix) and a Sum over the
 * readers of one weight; the pass context's model runner runs that copy on the sample feeds and
 * hands each feed's sums back. Activations read by several weights (a layer's query, key and value projections) are
 * multiplied once.
 */
import { DataType } from '../ir/dtype.js'
import { attrInts, cloneModel, type Model, type Value } from '../ir/graph.js'
import { Tensor } from '../ir/tensor.js'
import type { Feed } from '../verify/inputs.js'
import type { ModelRunner } from './pass.js'

export interface HessianRequest {
  /** The caller's key for the result. */
  key: string
  /** Values multiplied by the weight (the linear readers' input 0), each [..., K]. */
  activations: Value[]
  /** The reduction width. */
  K: number
}

/** Σ xᵀx for each request, [K, K] row-major in float64 (summed over every feed). */
export async function collectHessians(model: Model, requests: HessianRequest[], feeds: readonly Feed[], runner: ModelRunner): Promise<Map<string, Float64Array>> {
  const probe = cloneModel(model)
  const g = probe.graph
  const grams = new Map<string, Value>()
  const shapes = new Map<number, Value>()
  const gramOf = (name: string, K: number): Value => {
    let v = grams.get(name)
    if (v) return v
    let shape = shapes.get(K)
    if (!shape) {
      shape = g.addInitializer(g.uniqueName(`hessian_rows_of_${K}`), Tensor.fromInt64([2], [-1, K]))
      shapes.set(K, shape)
    }
    const x = g.lookup(name)
    if (!x) throw new Error(`hessian: no value '${name}' in the model`)
    const rows = g.addNode('Reshape', [x, shape], [`${name}_rows`], { name: g.uniqueNodeName(`${name}_rows`) }).outputs[0]!
    const t = g.addNode('Transpose', [rows], [`${name}_rows_t`], { name: g.uniqueNodeName(`${name}_rows_t`), attrs: [attrInts('perm', [1, 0])] }).outputs[0]!
    v = g.addNode('MatMul', [t, rows], [`${name}_gram`], { name: g.uniqueNodeName(`${name}_gram`) }).outputs[0]!
    grams.set(name, v)
    return v
  }
  const outputs = new Map<string, string>()
  const bySet = new Map<string, string>()
  for (const r of requests) {
    const names = [...new Set(r.activations.map((a) => a.name))].sort()
    const id = `${r.K}|${names.join('\u0000')}`
    let out = bySet.get(id)
    if (!out) {
      const parts = names.map((n) => gramOf(n, r.K))
      out = parts.length === 1 ? parts[0]!.name : g.addNode('Sum', parts, [`hessian_${r.key}`], { name: g.uniqueNodeName(`hessian_${r.key}`) }).outputs[0]!.name
      bySet.set(id, out)
    }
    outputs.set(r.key, out)
  }
  for (const v of grams.values()) v.setTensorType(DataType.FLOAT)
  const sums = new Map<string, Float64Array>()
  const wanted = [...new Set(outputs.values())]
  const widths = new Map(requests.map((r) => [outputs.get(r.key)!, r.K]))
  for (const name of wanted) sums.set(name, new Float64Array(widths.get(name)! ** 2))
  for (const name of wanted) {
    const v = g.values.get(name)!
    v.setTensorType(DataType.FLOAT)
    if (!v.isGraphOutput) g.outputs.push(v)
  }
  // keep nothing: each feed's sums are added up here, as they come
  await runner.run(probe, feeds, { keep: [], each: (values) => {
    for (const name of wanted) {
      const got = values.get(name)
      const sum = sums.get(name)!
      if (!got || got.data.length !== sum.length) throw new Error(`hessian: the runner gave no [${Math.sqrt(sum.length)}, ${Math.sqrt(sum.length)}] '${name}'`)
      for (let i = 0; i < sum.length; i++) sum[i] += got.data[i]!
    }
  } })
  return new Map(requests.map((r) => [r.key, sums.get(outputs.get(r.key)!)!]))
}
