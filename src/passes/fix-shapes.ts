/**
 * fix-shapes: pins the token inputs' batch and sequence sizes to `options.fixedShape` = [B, S] and
 * folds what that makes constant: the Shape → Concat arithmetic behind every Reshape, and the
 * position-embedding Slice (it becomes a constant [S, E] table). Multiple-choice inputs
 * [batch, num_choices, sequence] become [B, num_choices, S]: the number of choices stays as the
 * model declares it (symbolic), so the flattening of choices stays dynamic there. With B = 1 each
 * self-attention block's batched 4-D MatMuls become per-head 2-D MatMuls (see attention-2d.ts),
 * the only MatMuls XNNPACK and NNAPI take; with B > 1 attention keeps its 4-D MatMuls. Every
 * linear layer is already one 2-D Gemm in albertkit's graphs. Without fixedShape it does nothing.
 *
 * Safe: the pinned model computes the same function on inputs of exactly [B, S] (onnxruntime
 * refuses other shapes); sequences longer than the position table are refused here.
 */
import { DataType } from '../ir/dtype.js'
import type { Dim, Graph, Model } from '../ir/graph.js'
import { inferTypes } from '../ir/infer.js'
import { UserError } from '../util/errors.js'
import { attentionTo2d } from './attention-2d.js'
import { foldGraph } from './fold-constants.js'
import type { Pass, PassContext, PassResult } from './pass.js'
import { cleanup } from '../ir/cleanup.js'

export const fixShapes: Pass = {
  name: 'fix-shapes',
  description: 'pin batch and sequence sizes, fold what they make constant, 2-D attention at batch 1',
  inPlace: true,
  run(model: Model, { options, warn }: PassContext): PassResult {
    if (!options.fixedShape) return { model, changed: false }
    const [B, S] = checkFixedShape(options.fixedShape)
    const g = model.graph
    const pinned = pinInputs(g, B, S)
    checkPositions(g, S)
    forgetInferredTypes(g)
    const folded = foldGraph(g, { foldLarge: options.foldLarge, warn })
    cleanup(g)
    forgetInferredTypes(g)
    const blocks = B === 1 ? attentionTo2d(g) : 0
    if (blocks) cleanup(g)
    forgetInferredTypes(g)
    inferTypes(g)
    const shapeOps = g.nodes.filter((n) => n.opType === 'Shape').length
    return { model, changed: true, stats: { batch: B, sequence: S, inputsPinned: pinned, nodesFolded: folded, attention2d: blocks, shapeOpsLeft: shapeOps } }
  },
}

/** [B, S] as positive integers, or a UserError naming the problem. */
export function checkFixedShape(shape: readonly number[]): [number, number] {
  if (shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new UserError(`fixed shape must be two positive integers B,S (got ${shape.join(',')})`)
  }
  return [shape[0]!, shape[1]!]
}

/** Pin every rank-2 or rank-3 integer (token) input: first axis B, last axis S; returns how many. */
function pinInputs(g: Graph, B: number, S: number): number {
  const names = new Map<string, number>()
  let pinned = 0
  for (const v of g.inputs) {
    const t = v.type?.tensor
    const tokens = t?.elemType === DataType.INT64 || t?.elemType === DataType.INT32
    if (v.const || !tokens || !t.shape || (t.shape.length !== 2 && t.shape.length !== 3)) continue
    const shape = [...t.shape]
    pinDim(v.name, shape, 0, B, names)
    pinDim(v.name, shape, shape.length - 1, S, names)
    t.shape = shape
    pinned++
  }
  substituteDims(g, names)
  return pinned
}

function pinDim(input: string, shape: Dim[], axis: number, size: number, names: Map<string, number>): void {
  const d = shape[axis]
  if (typeof d === 'number' && d !== size) throw new UserError(`input '${input}' has size ${d} on axis ${axis}; it cannot be pinned to ${size}`)
  if (typeof d === 'string') {
    const known = names.get(d)
    if (known !== undefined && known !== size) throw new UserError(`dimension '${d}' would be pinned to both ${known} and ${size}`)
    names.set(d, size)
  }
  shape[axis] = size
}

/** Declared shapes (outputs, value_info) with the pinned symbolic dimensions replaced by sizes. */
function substituteDims(g: Graph, names: Map<string, number>): void {
  for (const v of g.values.values()) {
    const shape = v.type?.tensor?.shape
    if (!shape) continue
    v.type!.tensor!.shape = shape.map((d) => (typeof d === 'string' && names.has(d) ? names.get(d)! : d))
  }
}

/** Types inference derived before pinning carry symbolic sizes: drop them so they are derived again. */
function forgetInferredTypes(g: Graph): void {
  for (const v of g.values.values()) if (v.type?.inferred) v.type = undefined
}

/**
 * The position embeddings: a float table sliced along axis 0 up to a size computed from the
 * inputs. A sequence longer than the table cannot run.
 */
function checkPositions(g: Graph, S: number): void {
  for (const n of g.nodes) {
    const table = n.inputs[0]?.const
    if (n.opType !== 'Slice' || !table || table.dims.length !== 2 || n.inputs[2]?.const) continue
    const axes = n.inputs[3]?.const?.toNumbers()
    if (axes && axes.join() !== '0') continue
    if (table.dims[0]! < S) throw new UserError(`sequence length ${S} is longer than the model's ${table.dims[0]} positions`)
  }
}
