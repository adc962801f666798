/**
 * fold-constants: computes at build time what does not depend on model inputs — Constant nodes
 * become initializers, and shape arithmetic on constants or on values whose shape is static
 * (Shape → Gather → Unsqueeze → Concat, ConstantOfShape, Range, ...) becomes constants. Safe:
 * only ops evaluated exactly here are folded, small tensors only, except a Transpose of a weight
 * nothing else reads (folding it stores the weight once, in the layout its reader wants).
 */
import { evaluateNode, MAX_ELEMENTS } from '../ir/evaluate.js'
import { inferTypes } from '../ir/infer.js'
import { bitsOf, DataType } from '../ir/dtype.js'
import type { Graph, Model, Node, Value } from '../ir/graph.js'
import type { Pass, PassContext, PassResult } from './pass.js'
import { cleanup } from '../ir/cleanup.js'
import { printable } from '../util/printable.js'

/**
 * Limits on what folding may add, so that a small hostile file (a Gather of a constant that
 * repeats it a thousand times) cannot turn into gigabytes. A result no larger than its constant
 * inputs is always folded (a Transpose or Reshape of a weight, a Constant node); one that grows
 * them is folded when it is small, or at most FOLD_MAX_GROWTH times their size and FOLD_MAX_BYTES,
 * and while the pass has added less than FOLD_BUDGET_BYTES in all. The pass option `foldLarge`
 * lifts these limits (the evaluator's own, ir/evaluate.ts, stay).
 */
export const FOLD_SMALL_BYTES = 64e3
export const FOLD_MAX_BYTES = 16e6
export const FOLD_MAX_GROWTH = 2
export const FOLD_BUDGET_BYTES = 64e6

export const foldConstants: Pass = {
  name: 'fold-constants',
  description: 'turn Constant nodes and input-independent shape arithmetic into initializers',
  inPlace: true,
  run(model: Model, { options, warn }: PassContext): PassResult {
    const folded = foldGraph(model.graph, { foldLarge: options.foldLarge, warn })
    if (folded) cleanup(model.graph)
    return { model, changed: folded > 0, stats: { nodesFolded: folded }, warnings: [] }
  },
}

export function foldGraph(graph: Graph, options: { foldLarge?: boolean | undefined; warn?: (message: string) => void } = {}): number {
  graph.toposort()
  inferTypes(graph)
  const outputs = new Set(graph.outputs)
  const limits = options.foldLarge ? undefined : new FoldLimits()
  let folded = 0
  for (const node of [...graph.nodes]) {
    if (node.outputs.some((o) => o && outputs.has(o))) continue
    if (!worthFolding(node)) continue
    const inBytes = constantBytesIn(node)
    // Refused before evaluating when the declared types tell the size (only nodes that could fold: all inputs constant).
    const expected = limits && node.inputs.every((v) => !v || v.const) ? declaredBytes(node) : undefined
    if (limits && expected !== undefined && !limits.allows(node, expected, inBytes)) continue
    let result
    try {
      result = evaluateNode(node)
    } catch {
      result = undefined
    }
    if (!result || result.length !== node.outputs.length) continue
    // An output that is an input's own tensor (Identity) aliases that input: no second copy.
    const aliases = node.outputs.map((_, i) => node.inputs.find((v) => v?.const === result[i]))
    const outBytes = result.reduce((n, t, i) => n + (aliases[i] ? 0 : t.byteLength), 0)
    if (limits && !limits.allows(node, outBytes, inBytes)) continue
    limits?.add(outBytes, inBytes)
    graph.replaceByConstants(node, result)
    node.outputs.forEach((o, i) => {
      const same = aliases[i]
      if (o && same) {
        graph.replaceAllUses(o, same)
        o.const = undefined
      }
    })
    folded++
  }
  const refused = limits?.summary()
  if (refused) options.warn?.(refused)
  return folded
}

/** What folding has added so far, and what it left unfolded. */
class FoldLimits {
  private added = 0
  private refused = 0
  private largest: { node: Node; out: number; in: number } | undefined

  allows(node: Node, out: number, inBytes: number): boolean {
    if (node.opType === 'Constant' || out <= inBytes) return true
    const small = out <= FOLD_SMALL_BYTES
    const bounded = out <= FOLD_MAX_BYTES && out <= FOLD_MAX_GROWTH * inBytes
    if ((small || bounded) && this.added + (out - inBytes) <= FOLD_BUDGET_BYTES) return true
    this.refused++
    if (!this.largest || out > this.largest.out) this.largest = { node, out, in: inBytes }
    return false
  }

  add(out: number, inBytes: number): void {
    this.added += Math.max(0, out - inBytes)
  }

  summary(): string | undefined {
    const l = this.largest
    if (!l) return undefined
    const what = `${l.node.opType}${l.node.name ? ` '${printable(l.node.name)}'` : ''}`
    const others = this.refused > 1 ? ` (and ${this.refused - 1} more)` : ''
    return (
      `fold-constants: left ${what}${others} unfolded: it would make ${mb(l.out)} from ${mb(l.in)} of constants ` +
      `(folding stops at ×${FOLD_MAX_GROWTH} growth past ${mb(FOLD_SMALL_BYTES)}, ${mb(FOLD_MAX_BYTES)} a result, ${mb(FOLD_BUDGET_BYTES)} in all; pass option foldLarge lifts this)`
    )
  }
}

function mb(n: number): string {
  const [value, unit] = n >= 1e6 ? [n / 1e6, 'MB'] : [n / 1e3, 'kB']
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${unit}`
}

/** Bytes of the distinct constants a node reads. */
function constantBytesIn(node: Node): number {
  const seen = new Set<Value>()
  let n = 0
  for (const v of node.inputs) {
    if (!v?.const || seen.has(v)) continue
    seen.add(v)
    n += v.const.byteLength
  }
  return n
}

/** The bytes of a node's outputs when their types say (known element type and static shape), else undefined. */
function declaredBytes(node: Node): number | undefined {
  let n = 0
  for (const o of node.outputs) {
    if (!o) continue
    const t = o.elemType
    const shape = o.shape
    if (t === undefined || t === DataType.STRING || !shape || !shape.every((d) => typeof d === 'number' && d >= 0)) return undefined
    const bits = bitsOf(t)
    if (bits === undefined) return undefined
    n += Math.ceil((bits * (shape as number[]).reduce((a, b) => a * b, 1)) / 8)
  }
  return n
}

function worthFolding(node: Node): boolean {
  if (node.opType === 'Transpose') {
    const input = node.inputs[0]
    return !!input?.const && (input.const.size <= MAX_ELEMENTS || input.consumers.length === 1)
  }
  return true
}
