/** Tensors compared by content: which of a list hold the same dtype, shape and bytes (dedup merges them; parameter counts count them once). */
import { createHash } from 'node:crypto'
import type { Tensor } from '../ir/tensor.js'

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
