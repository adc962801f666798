/**
 * Figures about weights: parameters stored, unique (equal tensors counted once), and as-if-unshared
 * (one copy per use, as exporters that unroll ALBERT's shared layers write them); bytes per dtype.
 *
 * A parameter is a weight element whatever it is stored as: float32, float16, or quantized. An
 * int8 weight (read by DynamicQuantizeMatMul, MatMulInteger, QAttention, a DequantizeLinear, or
 * gathered and then multiplied by its scales) counts its elements; a 4-bit MatMulNBits weight
 * counts K×N, and a 4-bit table GatherBlockQuantized reads two values a byte, not its packed bytes. The scales and zero points that come with quantized weights
 * are not parameters. So a model has the same parameter count in every precision, up to what its
 * passes change (dedup merges equal tensors; a tensor a pass must store twice counts twice).
 */
import { DataType, dtypeName, isFloat } from '../ir/dtype.js'
import type { Graph, Node, Value } from '../ir/graph.js'
import type { Tensor } from '../ir/tensor.js'
import { groupOfLayer, type AlbertConfig } from '../checkpoint/config.js'
import { equalTensorGroups } from './tensors.js'

export interface ParameterStats {
  /** Weight elements as stored (every float tensor of rank ≥ 1, and quantized weights by their logical size). */
  stored: number
  /** Of `stored`, the elements held quantized (int8, or 4-bit blocks). */
  quantized: number
  /** The same with byte-identical tensors counted once. */
  unique: number
  /** What one copy per use would hold (shared layers unrolled per layer call). */
  asIfUnshared: number
  tensors: number
  /** Bytes of every tensor, by element type. */
  bytesByDtype: Record<string, number>
}

function isParameter(t: Tensor): boolean {
  return t.dims.length >= 1 && isFloat(t.dtype)
}

function addBytes(acc: Record<string, number>, dtype: DataType, bytes: number): void {
  const k = dtypeName(dtype)
  acc[k] = (acc[k] ?? 0) + bytes
}

/**
 * Where quantized weights and their scales and zero points sit among an op's inputs (by type: the
 * com.microsoft ops and the standard ones have distinct names).
 */
const QUANTIZED_INPUTS: Record<string, { weight?: number; meta: number[] }> = {
  DequantizeLinear: { weight: 0, meta: [1, 2] },
  QuantizeLinear: { meta: [1, 2] },
  DynamicQuantizeMatMul: { weight: 1, meta: [2, 3] },
  MatMulInteger: { weight: 1, meta: [2, 3] },
  MatMulIntegerToFloat: { weight: 1, meta: [2, 3, 4, 5] },
  QAttention: { weight: 1, meta: [3, 4, 6, 7] },
  MatMulNBits: { weight: 1, meta: [2, 3] },
  GatherBlockQuantized: { weight: 0, meta: [2, 3] },
}

/** Ops a weight goes through unchanged in what it holds, on its way to a reader. */
const LAYOUT_OPS = new Set(['Cast', 'Transpose', 'Reshape', 'Unsqueeze', 'Squeeze', 'Identity', 'Flatten'])
/** Ops that read a weight to hand it on whole (dequantized) to its real readers. */
const HAND_ON_OPS = new Set([...LAYOUT_OPS, 'DequantizeLinear'])
/** The same, plus the lookups that pick rows of a table (tracing a value back to its table). */
const BACK_OPS = new Set([...LAYOUT_OPS, 'Gather', 'Slice'])

/** The initializer a value comes from through layout ops and row lookups, if any. */
function initializerBehind(v: Value | null | undefined): Value | undefined {
  for (let steps = 0; v && steps < 16; steps++) {
    if (v.const) return v
    const p = v.producer
    if (!p || !BACK_OPS.has(p.opType)) return undefined
    v = p.inputs[0]
  }
  return undefined
}

function isInteger(t: Tensor): boolean {
  return !isFloat(t.dtype) && t.strings === undefined
}

/** The types quantized weights are stored in (shape arithmetic never uses them). */
const QUANTIZED_TYPES = new Set<DataType>([DataType.INT8, DataType.UINT8, DataType.INT4, DataType.UINT4])

/**
 * The quantized weights of a graph (with their logical element counts) and the initializers that
 * are quantization scales or zero points.
 */
function quantization(graph: Graph): { weights: Map<Value, number>; meta: Set<Value> } {
  const weights = new Map<Value, number>()
  const meta = new Set<Value>()
  const weight = (v: Value | undefined, node: Node) => {
    if (!v || !isInteger(v.const!) || v.const!.dims.length === 0 || weights.has(v)) return
    // MatMulNBits packs K×N 4-bit values in blocks, GatherBlockQuantized (uint8, bits 4) two a byte: count the values, not the bytes.
    const K = node.opType === 'MatMulNBits' ? node.attrInt('K') : undefined
    const N = node.opType === 'MatMulNBits' ? node.attrInt('N') : undefined
    const perByte = node.opType === 'GatherBlockQuantized' && v.const!.dtype === DataType.UINT8 ? 8 / node.attrInt('bits', 4) : 1
    weights.set(v, K !== undefined && N !== undefined ? K * N : v.const!.size * perByte)
  }
  for (const node of nodesDeep(graph)) {
    const slots = QUANTIZED_INPUTS[node.opType]
    if (slots) {
      if (slots.weight !== undefined) weight(initializerBehind(node.inputs[slots.weight]), node)
      for (const i of slots.meta) {
        const m = initializerBehind(node.inputs[i])
        if (m) meta.add(m)
      }
      continue
    }
    if (node.opType !== 'Mul' || node.inputs.length !== 2) continue
    // Dequantizing by hand: integer rows (or a dynamically quantized activation's scale) times scales.
    const [a, b] = node.inputs as [Value | null, Value | null]
    for (const [x, y] of [
      [a, b],
      [b, a],
    ] as const) {
      const from = initializerBehind(x)
      const rows = from !== undefined && QUANTIZED_TYPES.has(from.const!.dtype)
      if (!rows && x?.producer?.opType !== 'DynamicQuantizeLinear') continue
      if (rows) weight(from, node)
      const scale = initializerBehind(y)
      if (scale && isFloat(scale.const!.dtype)) meta.add(scale)
    }
  }
  for (const m of meta) weights.delete(m)
  return { weights, meta }
}

/**
 * Stats of a graph's initializers. A weight's "uses" is the largest number of its readers of one
 * op type, following it through layout ops (a Transpose, a Cast): twelve Gemms reading a shared
 * layer weight count 12, a tied embedding read by a Gather and a Gemm counts 1.
 */
export function graphParameterStats(graph: Graph): ParameterStats {
  const inits = graph.initializers
  const { weights, meta } = quantization(graph)
  const bytesByDtype: Record<string, number> = {}
  const params: { v: Value; n: number }[] = []
  for (const v of inits) {
    const t = v.const!
    addBytes(bytesByDtype, t.dtype, t.byteLength)
    const q = weights.get(v)
    if (q !== undefined) params.push({ v, n: q })
    else if (isParameter(t) && !meta.has(v)) params.push({ v, n: t.size })
  }
  let stored = 0
  let quantized = 0
  let asIfUnshared = 0
  const branches = ifBranches(graph)
  for (const { v, n } of params) {
    stored += n
    if (weights.has(v)) quantized += n
    asIfUnshared += n * usesOf(v, branches)
  }
  const unique = equalTensorGroups(params, (p) => p.v.const!).reduce((n, g) => n + g[0]!.n, 0)
  return { stored, quantized, unique, asIfUnshared, tensors: inits.length, bytesByDtype }
}

function usesOf(v: Value, branches: ReadonlyMap<Graph, string>): number {
  // per op type: readers outside any If branch, and per If the readers of each of its branches
  // (one branch runs: a weight both branches of a top-level If read counts once per run)
  const perOp = new Map<string, { plain: number; alternatives: Map<string, Map<string, number>> }>()
  const visit = (x: Value, depth: number) => {
    for (const n of x.consumers) {
      const out = n.outputs[0]
      if (HAND_ON_OPS.has(n.opType) && n.inputs[0] === x && out && depth < 16) {
        visit(out, depth + 1)
        continue
      }
      let c = perOp.get(n.opType)
      if (!c) perOp.set(n.opType, (c = { plain: 0, alternatives: new Map() }))
      const tag = branches.get(n.graph)
      if (!tag) {
        c.plain++
        continue
      }
      const [ifNode, branch] = tag.split('\n') as [string, string]
      let per = c.alternatives.get(ifNode)
      if (!per) c.alternatives.set(ifNode, (per = new Map()))
      per.set(branch, (per.get(branch) ?? 0) + 1)
    }
  }
  visit(v, 0)
  const counts = [...perOp.values()].map((c) => c.plain + [...c.alternatives.values()].reduce((sum, per) => sum + Math.max(...per.values()), 0))
  return Math.max(1, ...counts)
}

/** The nodes of a graph and of its subgraphs (a packed model's If branches, their loop bodies). */
export function* nodesDeep(graph: Graph): Generator<Node> {
  for (const n of graph.nodes) {
    yield n
    for (const sub of n.subgraphs()) yield* nodesDeep(sub)
  }
}

/** Every subgraph under a branch of one of the graph's If nodes: `If's name\nbranch attribute`. */
function ifBranches(graph: Graph): Map<Graph, string> {
  const tags = new Map<Graph, string>()
  const mark = (g: Graph, tag: string) => {
    tags.set(g, tag)
    for (const n of g.nodes) for (const sub of n.subgraphs()) mark(sub, tag)
  }
  for (const n of graph.nodes) {
    if (n.opType !== 'If') continue
    for (const a of n.attributes) if (a.g) mark(a.g, `${n.name}\n${a.name}`)
  }
  return tags
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
  return { stored, quantized: 0, unique, asIfUnshared, tensors: tensors.size, bytesByDtype }
}
