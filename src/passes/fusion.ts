/**
 * What the fusion passes share: the frame of one (types inferred on a sorted graph first;
 * com.microsoft imported and the graph cleaned up after, when something was fused), and what a
 * matcher looked at and what it left: every candidate counted, each miss filed under the
 * reason it did not match, and the one warning a fusion pass gives when some candidates were
 * left — `fuse-attention: 0 of 12 candidate blocks matched: <reason> (12: Softmax 'a', Softmax
 * 'b', Softmax 'c' and 9 more)`, the reasons in the order first met, joined by `; `.
 */
import type { Graph, Model, Node } from '../ir/graph.js'
import { inferTypes } from '../ir/infer.js'
import { cleanup } from '../ir/cleanup.js'
import { printable } from '../util/printable.js'
import { inPlacePass, type Pass, type Rewrite } from './pass.js'

/**
 * A pass that fuses patterns into com.microsoft ops: `fuse` runs on the sorted graph with types
 * inferred and says how many ops it wrote (`fused`) besides its figures and warnings.
 */
export function fusionPass(spec: { name: string; description: string; fuse(g: Graph): Rewrite & { fused: number } }): Pass {
  return inPlacePass({
    name: spec.name,
    description: spec.description,
    rewrite(model: Model): Rewrite {
      const g = model.graph
      g.toposort()
      inferTypes(g)
      const { fused, ...result } = spec.fuse(g)
      if (fused) {
        model.requireOpset('com.microsoft', 1)
        cleanup(g)
      }
      return result
    },
  })
}

export class Candidates {
  private count = 0
  private readonly misses = new Map<string, Node[]>()

  /** a candidate that matched */
  hit(): void {
    this.count++
  }

  /** a candidate that did not, and why */
  miss(reason: string, node: Node): void {
    this.count++
    const list = this.misses.get(reason)
    if (list) list.push(node)
    else this.misses.set(reason, [node])
  }

  get total(): number {
    return this.count
  }

  get matched(): number {
    let missed = 0
    for (const nodes of this.misses.values()) missed += nodes.length
    return this.count - missed
  }

  /** The pass's warning when a candidate was left (none when every one matched): `<pass>: M of N <what> matched: <why>`. */
  warnings(pass: string, what = 'candidates'): string[] {
    if (this.misses.size === 0) return []
    const why = [...this.misses].map(([reason, nodes]) => `${reason} (${nodes.length}: ${nodeList(nodes)})`).join('; ')
    return [`${pass}: ${this.matched} of ${this.count} ${what} matched: ${why}`]
  }
}

/** Up to three nodes by op and name, and how many more. */
export function nodeList(nodes: readonly Node[]): string {
  const shown = nodes.slice(0, 3).map((n) => `${n.opType} '${printable(n.name, 80)}'`)
  return nodes.length > 3 ? `${shown.join(', ')} and ${nodes.length - 3} more` : shown.join(', ')
}
