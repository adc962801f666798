/**
 * upgrade-opset: a model importing the default ONNX domain at opset 11–16 (the TorchScript
 * exporter at 11 and 14, Optimum's older exports) is rewritten to opset 17, the opset of
 * albertkit's own graphs: LayerNormalization is a standard op there, per-channel
 * DequantizeLinear (13) is available to the quantizers, and every target's passes see one form.
 * What changed between those opsets, for the ops these graphs hold:
 *
 *   Unsqueeze, Squeeze, ReduceSum (13)  the axes attribute becomes an int64 input
 *   Split (13)                          the split attribute becomes an int64 input
 *   Softmax, LogSoftmax, Hardmax (13)   same result only over the last axis: the axis must be
 *                                       -1 or, with the rank known, rank − 1
 *   Dropout (12)                        ratio moves to an input; at inference it is Identity,
 *                                       so its attributes are dropped
 *
 * Every other op in the list below computes the same at 17 with the attributes it has. A model
 * holding an op outside that list (or a subgraph) is left unchanged and the op is reported;
 * models at opset 17 or newer are left as they are. The IR version is raised to 8 if lower
 * (opset 17 needs it). Safe: the same function, op by op.
 */
import { attrInt, type Graph, type Model, type Node } from '../ir/graph.js'
import { Tensor } from '../ir/tensor.js'
import { inferTypes } from '../ir/infer.js'
import { nodeList } from './fusion.js'
import { inPlacePass, type Pass, type Rewrite } from './pass.js'
import { exactRank } from './shape-expr.js'

const TARGET = 17

/** Ops whose meaning and attributes are the same from opset 11 to 17 (as exporters write them). */
const UNCHANGED = new Set([
  'Abs', 'Add', 'And', 'ArgMax', 'ArgMin', 'Cast', 'Ceil', 'Clip', 'Concat', 'Constant', 'ConstantOfShape', 'CumSum', 'Div',
  'Einsum', 'Equal', 'Erf', 'Exp', 'Expand', 'Flatten', 'Floor', 'Gather', 'GatherElements', 'GatherND', 'Gemm', 'Greater',
  'GreaterOrEqual', 'Identity', 'IsInf', 'IsNaN', 'LayerNormalization', 'Less', 'LessOrEqual', 'Log', 'MatMul', 'Max', 'Mean',
  'Min', 'Mod', 'Mul', 'Neg', 'NonZero', 'Not', 'OneHot', 'Or', 'Pow', 'Range', 'Reciprocal', 'ReduceL2', 'ReduceMax',
  'ReduceMean', 'ReduceMin', 'ReduceProd', 'ReduceSumSquare', 'Relu', 'Reshape', 'Round', 'Shape', 'Sigmoid', 'Sign', 'Size',
  'Slice', 'Sqrt', 'Sub', 'Sum', 'Tanh', 'Tile', 'TopK', 'Transpose', 'Where', 'Xor', 'Sin', 'Cos', 'Softplus', 'Trilu',
])
const AXES_TO_INPUT = new Set(['Unsqueeze', 'Squeeze', 'ReduceSum'])
const LAST_AXIS_ONLY = new Set(['Softmax', 'LogSoftmax', 'Hardmax'])

export const upgradeOpset: Pass = inPlacePass({
  name: 'upgrade-opset',
  description: 'rewrite a model below opset 17 to opset 17 (axes and split attributes become inputs)',
  rewrite(model: Model): Rewrite {
    const from = model.opsetVersion('')
    if (from === undefined || from >= TARGET) return { changed: false, stats: { from: from ?? 0, to: from ?? 0 } }
    if (from < 11) return { changed: false, stats: { from, to: from }, warnings: [`upgrade-opset: left at opset ${from}: only opsets 11 to 16 are upgraded`] }
    const g = model.graph
    inferTypes(g)
    const blockers = new Map<string, Node[]>()
    for (const n of g.nodes) {
      const why = blocker(n)
      if (!why) continue
      const list = blockers.get(why)
      if (list) list.push(n)
      else blockers.set(why, [n])
    }
    if (blockers.size) {
      const why = [...blockers].map(([reason, nodes]) => `${reason} (${nodeList(nodes)})`).join('; ')
      return { changed: false, stats: { from, to: from }, warnings: [`upgrade-opset: left at opset ${from}: ${why}`] }
    }
    let rewritten = 0
    for (const n of [...g.nodes]) if (rewrite(g, n)) rewritten++
    const entry = model.opsetImports.find((o) => o.domain === '' || o.domain === 'ai.onnx')!
    entry.version = TARGET
    if (model.irVersion < 8) model.irVersion = 8
    return { changed: true, stats: { from, to: TARGET, nodesRewritten: rewritten } }
  },
})

/** Why a node keeps the model from being upgraded, or undefined. */
function blocker(n: Node): string | undefined {
  if ([...n.subgraphs()].length) return `${n.opType} holds a subgraph`
  if (n.domain !== '' && n.domain !== 'ai.onnx') return undefined
  if (UNCHANGED.has(n.opType) || AXES_TO_INPUT.has(n.opType) || n.opType === 'Split' || n.opType === 'Dropout') return undefined
  if (LAST_AXIS_ONLY.has(n.opType)) {
    const axis = n.attrInt('axis', 1)
    const rank = exactRank(n.inputs[0])
    return axis === -1 || (rank !== undefined && axis === rank - 1) ? undefined : `${n.opType} not over the last axis (or its rank unknown)`
  }
  return `${n.opType} is not known to mean the same at opset ${TARGET}`
}

function ints(g: Graph, base: string, values: number[]) {
  return g.addInitializer(g.uniqueName(base), Tensor.fromInt64([values.length], values))
}

/** Bring one node to its opset-17 form; true when it changed. */
function rewrite(g: Graph, n: Node): boolean {
  if (n.domain !== '' && n.domain !== 'ai.onnx') return false
  if (AXES_TO_INPUT.has(n.opType)) {
    const axes = n.attrInts('axes')
    if (!axes) return false
    n.removeAttr('axes')
    n.setInput(1, ints(g, `${n.name || n.opType}_axes`, axes))
    return true
  }
  if (n.opType === 'Split') {
    const split = n.attrInts('split')
    if (!split) return false
    n.removeAttr('split')
    n.setInput(1, ints(g, `${n.name || 'Split'}_split`, split))
    return true
  }
  if (n.opType === 'Dropout' && n.attributes.length) {
    n.attributes = []
    return true
  }
  if (LAST_AXIS_ONLY.has(n.opType) && n.attr('axis') === undefined) {
    // Below 13 the default axis is 1; the blocker check made sure that is the last one.
    n.setAttr(attrInt('axis', -1))
    return true
  }
  return false
}
