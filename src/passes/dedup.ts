/**
 * dedup: stores every constant once. Constant nodes become initializers; initializers equal in
 * dtype, shape and bytes (hashed as streamed bytes, no size threshold) are merged; and a matrix
 * stored again as the transpose of another (what constant folding of nn.Linear weights leaves)
 * is dropped, its readers rewired to the one kept: Gemm by flipping transA/transB, anything else
 * through a Transpose node (which onnxruntime folds when it loads the model, not in the file).
 * Then nodes that compute the same thing from the same (now merged) inputs are merged (see cse).
 * Safe: readers see the same values. Initializers that are also graph inputs are left alone,
 * since a caller may feed them.
 */
import type { Graph, Model, Node, Value } from '../ir/graph.js'
import { attrInt, attrInts } from '../ir/graph.js'
import { byteLengthOf } from '../ir/dtype.js'
import { evaluateNode, transposeTensor } from '../ir/evaluate.js'
import type { Tensor } from '../ir/tensor.js'
import { createHash } from 'node:crypto'
import { equalTensorGroups } from '../analysis/tensors.js'
import { inPlacePass, type Pass, type Rewrite } from './pass.js'
import { cleanup } from '../ir/cleanup.js'
import { eliminateCommonSubexpressions } from './cse.js'

export const dedup: Pass = inPlacePass({
  name: 'dedup',
  description: 'store every constant once: merge equal initializers and transposed copies',
  rewrite(model: Model): Rewrite {
    const g = model.graph
    const constantsConverted = constantNodesToInitializers(g) + dropConstantIdentities(g)
    const exact = mergeEqual(g)
    const transposed = mergeTransposed(g)
    if (constantsConverted + exact.merged + transposed.merged) cleanup(g)
    // Merged constants make twin computations on them visible (Unsqueeze(x, axes) twice, ...).
    const nodesMerged = eliminateCommonSubexpressions(g)
    return {
      changed: constantsConverted + exact.merged + transposed.merged + nodesMerged > 0,
      stats: {
        constantNodes: constantsConverted,
        merged: exact.merged,
        transposedMerged: transposed.merged,
        nodesMerged,
        bytesSaved: exact.bytes + transposed.bytes,
      },
    }
  },
})

/** Constant nodes (any of their value forms) become initializers, so they can be merged too. */
function constantNodesToInitializers(g: Graph): number {
  const outputs = new Set(g.outputs)
  let n = 0
  for (const node of [...g.nodes]) {
    const t = node.opType === 'Constant' && node.domain === '' ? evaluateNode(node)?.[0] : undefined
    const out = node.outputs[0]
    if (!t || !out || outputs.has(out)) continue
    g.replaceByConstants(node, [t])
    n++
  }
  return n
}

/** Identity nodes that copy an initializer: their readers read the initializer itself. */
function dropConstantIdentities(g: Graph): number {
  const outputs = new Set(g.outputs)
  let n = 0
  for (const node of [...g.nodes]) {
    const src = node.inputs[0]
    const out = node.outputs[0]
    if (node.opType !== 'Identity' || node.domain !== '' || !src?.const || !out || outputs.has(out)) continue
    g.replaceAllUses(out, src)
    g.removeNode(node)
    n++
  }
  return n
}

function mergeable(g: Graph): Value[] {
  const inputs = new Set(g.inputs)
  return g.initializers.filter((v) => !inputs.has(v) && !v.const!.strings)
}

function mergeEqual(g: Graph): { merged: number; bytes: number } {
  let merged = 0
  let bytes = 0
  for (const group of equalTensorGroups(mergeable(g), (v) => v.const!)) {
    const [keep, ...dups] = group
    for (const d of dups) {
      g.replaceAllUses(d, keep!)
      merged++
      bytes += d.const!.byteLength
    }
  }
  return { merged, bytes }
}

/** Is b (C×R) the transpose of a (R×C)? Checks a sample first, then every element. */
export function isTransposeOf(a: Value, b: Value): boolean {
  const ta = a.const!
  const tb = b.const!
  if (ta.dtype !== tb.dtype || ta.dims.length !== 2 || tb.dims.length !== 2) return false
  const [R, C] = ta.dims as [number, number]
  if (tb.dims[0] !== C || tb.dims[1] !== R) return false
  const size = byteLengthOf(ta.dtype, 1)
  if (size * ta.size !== ta.byteLength) return false
  const da = ta.data
  const db = tb.data
  const same = (r: number, c: number) => {
    const ia = (r * C + c) * size
    const ib = (c * R + r) * size
    for (let k = 0; k < size; k++) if (da[ia + k] !== db[ib + k]) return false
    return true
  }
  let s = 12345
  for (let i = 0; i < 64; i++) {
    s = (s * 1103515245 + 12345) >>> 0
    if (!same(s % R, (s >>> 7) % C)) return false
  }
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) if (!same(r, c)) return false
  return true
}

/** Readers that can take the transposed layout by a flag, without a new node. */
function flipsFreely(v: Value): boolean {
  return v.consumers.every((n) => n.opType === 'Gemm' && n.domain === '')
}

function mergeTransposed(g: Graph): { merged: number; bytes: number } {
  const candidates = mergeable(g).filter((v) => v.const!.dims.length === 2)
  // Candidates are bucketed by a sample of their elements, read so that a matrix and its
  // transpose land in the same bucket: each matrix is compared only with its bucket, in the order
  // of the candidates (a large bucket is split further by whole-content hashes), so a model with
  // many same-shaped constants costs linear time, not one comparison per pair.
  const buckets = new Map<string, Bucket>()
  for (const v of candidates) {
    const key = sampleKey(v.const!, false)
    const b = buckets.get(key)
    if (b) b.members.push(v)
    else buckets.set(key, { members: [v] })
  }
  let merged = 0
  let bytes = 0
  const gone = new Set<Value>()
  for (const a of candidates) {
    if (gone.has(a)) continue
    for (const b of partnersOf(a, buckets.get(sampleKey(a.const!, true)))) {
      if (b === a || gone.has(b) || gone.has(a) || !isTransposeOf(a, b)) continue
      // Keep the one whose readers cannot flip layout by a flag.
      const [keep, drop] = flipsFreely(b) || !flipsFreely(a) ? [a, b] : [b, a]
      rewireTransposed(g, drop, keep)
      gone.add(drop)
      merged++
      bytes += drop.const!.byteLength
    }
  }
  return { merged, bytes }
}

interface Bucket {
  members: Value[]
  /** members by the hash of their whole bytes, for a large bucket */
  byContent?: Map<string, Value[]>
}

/** Buckets up to this size are searched one by one. */
const SMALL_BUCKET = 8

/** The members of `bucket` that may be aᵀ, in candidate order. */
function partnersOf(a: Value, bucket: Bucket | undefined): Value[] {
  const t = a.const!
  const size = byteLengthOf(t.dtype, 1)
  if (!bucket || size * t.size !== t.byteLength) return []
  if (bucket.members.length <= SMALL_BUCKET) return bucket.members
  if (!bucket.byContent) {
    bucket.byContent = new Map()
    for (const v of bucket.members) {
      const key = contentHash(v.const!.data)
      const list = bucket.byContent.get(key)
      if (list) list.push(v)
      else bucket.byContent.set(key, [v])
    }
  }
  return bucket.byContent.get(contentHash(transposeTensor(t, [1, 0]).data)) ?? []
}

function contentHash(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

/**
 * dtype, shape and 64 sampled elements of a matrix B (R×C); with `transposed`, of Aᵀ read from A
 * (C×R) — the same key when B = Aᵀ.
 */
function sampleKey(t: Tensor, transposed: boolean): string {
  const [r0, c0] = t.dims as [number, number]
  const [R, C] = transposed ? [c0, r0] : [r0, c0]
  const size = byteLengthOf(t.dtype, 1)
  if (size * t.size !== t.byteLength || R * C === 0) return `${t.dtype}:${R}x${C}`
  const d = t.data
  let key = `${t.dtype}:${R}x${C}:`
  let s = 777
  for (let i = 0; i < 64; i++) {
    s = (s * 1103515245 + 12345) >>> 0
    const r = s % R
    const c = (s >>> 7) % C
    const at = (transposed ? c * c0 + r : r * C + c) * size
    for (let k = 0; k < size; k++) key += String.fromCharCode(d[at + k]!)
  }
  return key
}

/** Make every reader of `drop` read `keep` (= dropᵀ) instead. */
function rewireTransposed(g: Graph, drop: Value, keep: Value): void {
  let transposeNode: Node | undefined
  for (const n of [...drop.consumers]) {
    n.inputs.forEach((v, k) => {
      if (v !== drop) return
      if (n.opType === 'Gemm' && n.domain === '' && k < 2) {
        const flag = k === 0 ? 'transA' : 'transB'
        n.setAttr(attrInt(flag, n.attrInt(flag, 0) ? 0 : 1))
        n.setInput(k, keep)
        return
      }
      if (!transposeNode) {
        transposeNode = g.addNode('Transpose', [keep], [`${keep.name}_transposed`], {
          name: g.uniqueNodeName(`${keep.name}_transpose`),
          attrs: [attrInts('perm', [1, 0])],
        })
        g.insertNode(transposeNode, g.firstNode)
      }
      n.setInput(k, transposeNode.outputs[0]!)
    })
  }
  g.replaceAllUses(drop, transposeNode?.outputs[0] ?? keep)
}
