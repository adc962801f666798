/**
 * Matching small subgraphs by shape: a pattern names an op and patterns for its inputs (either
 * order for Add and Mul), a constant with a value, or a variable that binds any value (the same
 * name must bind the same value everywhere in a match). Used by the fusion passes.
 */
import type { Node, Value } from './graph.js'

export type Pattern =
  | { op: string; inputs: Pattern[]; domain?: string; as?: string }
  | { const: number; tolerance?: number }
  | { any: string }

export const op = (name: string, inputs: Pattern[], as?: string): Pattern => (as ? { op: name, inputs, as } : { op: name, inputs })
export const val = (name: string): Pattern => ({ any: name })
export const num = (value: number, tolerance = 1e-6): Pattern => ({ const: value, tolerance })

export interface Match {
  values: Map<string, Value>
  nodes: Map<string, Node>
  /** Every node the match covers (to check nothing else reads their outputs). */
  covered: Node[]
}

const COMMUTATIVE = new Set(['Add', 'Mul'])

/** Match `pattern` rooted at value `v`; undefined when it does not match. */
export function match(v: Value | null | undefined, pattern: Pattern): Match | undefined {
  const m: Match = { values: new Map(), nodes: new Map(), covered: [] }
  return walk(v, pattern, m) ? m : undefined
}

function scalarOf(v: Value): number | undefined {
  const t = v.const
  if (!t || t.size !== 1) return undefined
  try {
    return t.toNumbers()[0]
  } catch {
    return undefined
  }
}

function walk(v: Value | null | undefined, p: Pattern, m: Match): boolean {
  if (!v) return false
  if ('any' in p) {
    const bound = m.values.get(p.any)
    if (bound) return bound === v
    m.values.set(p.any, v)
    return true
  }
  if ('const' in p) {
    const x = scalarOf(v)
    if (x === undefined) return false
    return Math.abs(x - p.const) <= (p.tolerance ?? 1e-6) * Math.max(1, Math.abs(p.const))
  }
  const n = v.producer
  if (!n || n.opType !== p.op || n.domain !== (p.domain ?? '') || n.inputs.length !== p.inputs.length) return false
  const orders = COMMUTATIVE.has(p.op) && p.inputs.length === 2 ? [[0, 1], [1, 0]] : [p.inputs.map((_, i) => i)]
  for (const order of orders) {
    const trial: Match = { values: new Map(m.values), nodes: new Map(m.nodes), covered: [...m.covered] }
    if (order.every((k, i) => walk(n.inputs[k], p.inputs[i]!, trial))) {
      m.values = trial.values
      m.nodes = trial.nodes
      m.covered = trial.covered
      if (p.as) m.nodes.set(p.as, n)
      m.covered.push(n)
      return true
    }
  }
  return false
}

/** Are the covered nodes read only inside the match (besides the root's own output)? */
export function isSelfContained(m: Match, root: Value): boolean {
  const inside = new Set(m.covered)
  for (const n of m.covered) {
    for (const o of n.outputs) {
      if (!o || o === root) continue
      if (o.isGraphOutput || o.consumers.some((c) => !inside.has(c))) return false
    }
  }
  return true
}
