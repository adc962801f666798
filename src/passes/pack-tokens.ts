/**
 * pack-tokens: a batch costs its real tokens. After the embeddings, the rows of the hidden state
 * that hold padding are dropped once: the graph gathers the kept positions of the [B·S, X] rows
 * into a packed [T, X] tensor (T = kept tokens) and every token-wise op runs on it. Only the
 * attention core needs a sequence's tokens together: each com.microsoft Attention (fp32) or
 * QAttention (int8) node becomes a Loop over the batch rows whose body slices that row's packed
 * tokens (they are contiguous) and runs the same node on [1, tokens, hidden] with that row's mask,
 * so attention costs Σ lengthᵢ² instead of B·S². In a graph without fused attention nodes (the
 * default folder's models) the attention core stays on [B, S] as it was: its Q, K and V rows are
 * scattered there (the Reshapes of rows to [B, S, heads, head size]) and its context gathered
 * back to packed rows by the Reshape to [-1, hidden] that follows it. Per-token outputs are
 * scattered back to [B, S, X] by one Gather (each position picks its packed row, or an appended
 * fill row); pooled heads read the [CLS] rows straight from the packed tensor.
 *
 * With no padding (batch 1, equal lengths) the packing would be pure overhead, so by default the
 * graph becomes If(attention_mask has no 0, the graph as it was, the packed graph): both branches
 * read the same initializers (the file grows by nodes only) and an unpadded batch runs today's
 * graph bit for bit.
 *
 * Which positions are kept: every position with attention_mask ≠ 0, and position 0 of every row
 * (what pooled heads read; for right-padded batches it is a real token anyway). A position-0 pad
 * (left padding, or a row of no real token) is a query only: its mask stays 0, so no other token
 * attends to it, and its own output is what transformers computes there.
 *
 * What sits at padded positions afterwards: hidden states (the output of a LayerNormalization)
 * are 0; every other per-token output (logits) holds `padLogit` (default -10000: below any real
 * logit, finite, representable in fp16; a softmax over a row of it stays finite). A row with no
 * real token has only padding values in its per-token outputs; its pooled outputs are those of its
 * position 0 attending to itself alone (transformers gives other numbers there; neither means
 * anything).
 *
 * Safe when, between the gather and the scatter, there are token-wise ops only — ops whose output
 * row i depends on input row i alone: Gemm/MatMul (and their quantized forms) with a constant
 * weight, elementwise ops on rows or row-broadcast constants, LayerNormalization over the last
 * axis, GELU-style activations, and the Attention nodes it rewrites (all reading one 2-D
 * attention mask). The pass checks exactly that, starting from the Attention nodes (or, without
 * them, from the Reshapes of [B, S, ...] values to [-1, X] rows that token-wise ops read): every reader
 * of a row value must be token-wise, an Attention input, a Reshape to [B, S, X] (a per-token
 * output, or the attention core's Q, K, V: scattered) or, behind that Reshape, a Gather of
 * position 0 (a pooled head: the [CLS] rows). Anything else and the pass changes nothing and says why. One exception to "row i alone":
 * dynamic quantization (DynamicQuantizeMatMul) takes its activation scale from all the rows it is
 * given; packed, that is the real tokens only (padding no longer widens it).
 *
 * Run it last before the cleanup: after the fusions and after quantize-int8 (it moves the graph
 * into If branches and the attention nodes into loop bodies, where other passes do not look).
 */
import { DataType } from '../ir/dtype.js'
import { AttrType, Graph, attrInt, type Model, type Node, type Value } from '../ir/graph.js'
import { Tensor, bytesOf } from '../ir/tensor.js'
import { cleanup } from '../ir/cleanup.js'
import type { Pass, PassResult } from './pass.js'

export interface PackTokensOptions {
  /** The value per-token logits get at padded positions (default -10000). */
  padLogit?: number
  /**
   * Keep today's graph for batches without padding: the model becomes If(attention_mask has no
   * 0, unpacked graph, packed graph), so a batch of equal lengths pays nothing for the loops
   * (default true; needs the mask to come straight from a graph input).
   */
  unpaddedBranch?: boolean
}

export interface PackTokensStats {
  /** Whether the graph was rewritten. */
  packed: boolean
  /** Why not, when it was not. */
  reason?: string
  /** Attention nodes turned into loops over the batch rows. */
  attentionLoops: number
  /** Nodes that now run on the packed rows. */
  tokenwiseNodes: number
  /** Where the rows are gathered (usually 1: after the embeddings). */
  gathers: number
  /** Per-token outputs scattered back to [B, S, X]. */
  scatters: number
  /** Pooled heads reading the [CLS] rows from the packed tensor. */
  pooled: number
  /** Whether the graph is If(no padding, today's graph, the packed graph). */
  unpaddedBranch: boolean
}

export const DEFAULT_PAD_LOGIT = -10000

const MS = 'com.microsoft'

/** The attention nodes this pass rewrites and what surrounds each. */
interface Site {
  node: Node
  /** QAttention's input quantization (DynamicQuantizeLinear of the 3-D input). */
  dql?: Node
  /** Reshape of the 2-D rows to [B, S, H] that the node (or its quantization) reads. */
  inReshape: Node
  /** Reshape of the node's [B, S, H] output back to 2-D rows. */
  outReshape: Node
}

class NotPackable extends Error {}

const fail = (why: string): never => {
  throw new NotPackable(why)
}

/**
 * Rewrites `model` as described above; returns its figures, or `packed: false` and a reason (the
 * model is then untouched). With `unpaddedBranch` (the default) the graph becomes
 * If(no padding in attention_mask, today's graph, the packed graph).
 */
export function packTokens(model: Model, options: PackTokensOptions = {}): PackTokensStats {
  const none = { attentionLoops: 0, tokenwiseNodes: 0, gathers: 0, scatters: 0, pooled: 0, unpaddedBranch: false }
  const g = model.graph
  g.toposort()
  let plan: Plan
  let maskInput: Value | undefined
  try {
    if (g.nodes.some((n) => [...n.subgraphs()].length)) fail('the graph already has subgraphs (control flow)')
    plan = analyse(g)
    maskInput = options.unpaddedBranch === false ? undefined : graphInputOf(plan.mask)
  } catch (e) {
    if (e instanceof NotPackable) return { packed: false, reason: e.message, ...none }
    throw e
  }
  const padLogit = options.padLogit ?? DEFAULT_PAD_LOGIT
  let scatters: number
  if (!maskInput) {
    scatters = rewrite(model, g, plan, padLogit)
  } else {
    // Both branches start as copies of the graph; the second one is packed.
    const unpadded = new Graph(g)
    unpadded.name = `${g.name || 'graph'}_unpadded`
    copyNodes(g, unpadded, '/unpadded')
    const packed = new Graph(g)
    packed.name = `${g.name || 'graph'}_packed`
    const copies = copyNodes(g, packed, '/packed')
    const again = analyse(packed, copies.get(plan.mask) ?? plan.mask)
    scatters = rewrite(model, packed, again, padLogit)
    branchOnPadding(g, maskInput, unpadded, packed)
  }
  cleanup(g)
  return {
    packed: true,
    attentionLoops: plan.sites.length,
    tokenwiseNodes: plan.region.size,
    gathers: plan.entries.length,
    scatters,
    pooled: plan.pooled.length,
    unpaddedBranch: !!maskInput,
  }
}

/** The graph input a mask is a cast or reshape of (attention_mask), if it is one. */
function graphInputOf(v: Value): Value | undefined {
  for (let x: Value | null | undefined = v, i = 0; x && i < 8; i++) {
    if (x.isGraphInput) return x
    const p: Node | null = x.producer
    if (!p || !['Cast', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity'].includes(p.opType)) return undefined
    x = p.inputs[0]
  }
  return undefined
}

/**
 * Copy every node of `src` (which has no subgraphs) into `dst`, a subgraph of it: graph inputs
 * and initializers are read from the outer graph, each node output gets a new value (named under
 * `prefix`), and the copies of src's outputs are dst's outputs. Returns each value's copy.
 */
function copyNodes(src: Graph, dst: Graph, prefix: string): Map<Value, Value> {
  const map = new Map<Value, Value>()
  for (const n of src.nodes) {
    const spec: { name: string; attrs: Node['attributes']; domain?: string } = { name: n.name, attrs: n.attributes.map((a) => ({ ...a })) }
    if (n.domain) spec.domain = n.domain
    const inputs = n.inputs.map((v) => (v ? (map.get(v) ?? v) : null))
    const copy = dst.addNode(n.opType, inputs, n.outputs.map((o) => `${prefix}${o?.name.startsWith('/') ? '' : '/'}${o?.name ?? 'unused'}`), spec)
    n.outputs.forEach((o, k) => {
      if (!o) return
      const c = copy.outputs[k]!
      map.set(o, c)
      if (o.type && !o.type.inferred) c.type = structuredClone(o.type)
    })
  }
  dst.outputs = src.outputs.map((v) => {
    const c = map.get(v)
    if (!c) fail(`graph output '${v.name}' is not computed by a node`)
    return c!
  })
  return map
}

/** The graph becomes If(attention_mask has no 0, unpadded, packed), its outputs keeping their names and types. */
function branchOnPadding(g: Graph, mask: Value, unpadded: Graph, packed: Graph): void {
  for (const n of [...g.nodes]) g.removeNode(n)
  const e = new Emit(g, '/pack_tokens')
  const smallest = e.op('ReduceMin', [mask], 'mask_min', [attrInt('keepdims', 0)])
  const zero = g.addInitializer(g.uniqueName('/pack_tokens/zero'), new Tensor(mask.elemType ?? DataType.INT64, [], new Uint8Array(dtypeBytes(mask.elemType ?? DataType.INT64))))
  const noPadding = e.op('Greater', [smallest, zero], 'no_padding')
  const outs = e.opN(
    'If',
    [noPadding],
    g.outputs.map((v) => `${v.name}_if`),
    [
      { name: 'then_branch', type: AttrType.GRAPH, g: unpadded },
      { name: 'else_branch', type: AttrType.GRAPH, g: packed },
    ],
  )
  const outputs = g.outputs
  outputs.forEach((old, k) => {
    const v = outs[k]!
    const name = old.name
    g.renameValue(old, g.uniqueName(`${name}_before_packing`))
    g.renameValue(v, name)
    v.type = old.type ? structuredClone(old.type) : undefined
    if (v.type) delete v.type.inferred
  })
  g.outputs = outs
}

function dtypeBytes(t: DataType): number {
  return t === DataType.INT32 || t === DataType.FLOAT ? 4 : t === DataType.BOOL || t === DataType.UINT8 || t === DataType.INT8 ? 1 : 8
}

export const packTokensPass: Pass = {
  name: 'pack-tokens',
  description: 'token-wise ops on real tokens only: padding gathered out after the embeddings, attention per row',
  inPlace: true,
  run(model: Model): PassResult {
    const s = packTokens(model)
    const stats: Record<string, number | string | boolean> = {
      attentionLoops: s.attentionLoops,
      tokenwiseNodes: s.tokenwiseNodes,
      scatters: s.scatters,
      pooled: s.pooled,
    }
    if (s.reason) stats.skipped = s.reason
    return { model, changed: s.packed, stats }
  },
}

// ---------------------------------------------------------------------------------------------
// Analysis: which values are token rows, where they start and end.

interface Plan {
  mask: Value
  sites: Site[]
  /** Values that are [B·S, X] token rows (before the rewrite), all in one row order. */
  rows: Set<Value>
  /** Nodes that read and write token rows only (they run unchanged on packed rows). */
  region: Set<Node>
  /** Row values made by a Reshape of the 3-D embeddings: where the rows are gathered. */
  entries: Value[]
  /** Reshapes of token rows to [B, S, X]: per-token outputs. */
  exits: Node[]
  /** Gathers of position 0 behind an exit Reshape: pooled heads. */
  pooled: { gather: Node; rows: Value }[]
}

const UNARY = new Set([
  'Tanh', 'Relu', 'Sigmoid', 'Erf', 'Exp', 'Log', 'Sqrt', 'Neg', 'Abs', 'Reciprocal', 'Softplus', 'Softsign', 'HardSwish',
  'HardSigmoid', 'LeakyRelu', 'Elu', 'Selu', 'Celu', 'Mish', 'Identity', 'Floor', 'Ceil', 'Round', 'Sign', 'Sin', 'Cos',
])
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'PRelu'])
/** com.microsoft activations: input 0 rows, input 1 (if any) a constant bias. */
const MS_ACTIVATIONS = new Set(['FastGelu', 'Gelu', 'BiasGelu', 'QuickGelu'])

/** A constant that broadcasts the same way to every row: rank ≤ 1, or a leading dimension of 1. */
function rowConstant(v: Value | null | undefined): boolean {
  const t = v?.const
  return !!t && (t.dims.length <= 1 || (t.dims.length === 2 && t.dims[0] === 1))
}

/**
 * A value computed from constants alone (a constant, or e.g. the Transpose of an int8 table that
 * the tied MLM decoder reads): the same for every row.
 */
function isConstant(v: Value, depth = 0): boolean {
  if (v.const) return true
  const p = v.producer
  if (!p || depth > 8 || p.inputs.length === 0 || [...p.subgraphs()].length) return false
  return p.inputs.every((x) => !x || isConstant(x, depth + 1))
}

/**
 * For a token-wise node: the input slots that carry rows (every other input must be a constant the
 * rule allows, or absent). undefined when the node is not token-wise.
 */
function rowSlots(n: Node): number[] | undefined {
  const ins = n.inputs
  const constant = (k: number) => !ins[k] || isConstant(ins[k]!)
  const onlyOutput0 = n.outputs.every((o, k) => k === 0 || !o || (o.consumers.length === 0 && !o.isGraphOutput))
  if (n.domain === '' || n.domain === 'ai.onnx') {
    switch (n.opType) {
      case 'Gemm':
        return n.attrInt('transA', 0) === 0 && constant(1) && (!ins[2] || rowConstant(ins[2])) ? [0] : undefined
      case 'MatMul':
        return ins[1] && isConstant(ins[1]) && (!ins[1].const || ins[1].const.dims.length === 2) ? [0] : undefined
      case 'LayerNormalization': {
        const axis = n.attrInt('axis', -1)
        return (axis === -1 || axis === 1) && constant(1) && constant(2) && onlyOutput0 ? [0] : undefined
      }
      case 'Softmax':
      case 'LogSoftmax': {
        const axis = n.attrInt('axis', -1)
        return axis === -1 || axis === 1 ? [0] : undefined
      }
      case 'Clip':
        return constant(1) && constant(2) ? [0] : undefined
      case 'Cast':
        return [0]
    }
    if (UNARY.has(n.opType)) return ins.length === 1 ? [0] : undefined
    if (BINARY.has(n.opType) && ins.length === 2) {
      const slots: number[] = []
      for (let k = 0; k < 2; k++) {
        if (rowConstant(ins[k])) continue
        if (ins[k]?.const) return undefined
        slots.push(k)
      }
      return slots.length ? slots : undefined
    }
    return undefined
  }
  if (n.domain !== MS) return undefined
  if (n.opType === 'DynamicQuantizeMatMul' || n.opType === 'MatMulNBits') {
    return ins.every((v, k) => k === 0 || !v || isConstant(v)) ? [0] : undefined
  }
  if (MS_ACTIVATIONS.has(n.opType)) return ins.length === 1 || (ins.length === 2 && rowConstant(ins[1])) ? [0] : undefined
  if (n.opType === 'SkipLayerNormalization') {
    const extraOutputsUnused = n.outputs.every((o, k) => k === 0 || k === 3 || !o || (o.consumers.length === 0 && !o.isGraphOutput))
    return extraOutputsUnused && ins.every((v, k) => k < 2 || !v || isConstant(v)) ? [0, 1] : undefined
  }
  return undefined
}

/** The constant ints of a value, if it is a constant. */
function ints(v: Value | null | undefined): number[] | undefined {
  return v?.const ? v.const.toNumbers() : undefined
}

/** A Reshape of [B, S, ...] to rows: a constant target [-1, X]. */
function isEntryReshape(n: Node): boolean {
  if (n.opType !== 'Reshape' || n.domain !== '') return false
  const target = ints(n.inputs[1])
  return target?.length === 2 && target[0] === -1
}

/**
 * A Reshape of rows to [B, S, X] (a per-token output) or [B, S, heads, head size] (the attention
 * core's Q, K or V): target Concat(<the 2 dims>, [X] or [heads, head size]) or a constant of rank 3.
 */
function isExitReshape(n: Node): boolean {
  if (n.opType !== 'Reshape' || n.domain !== '') return false
  const target = n.inputs[1]
  if (!target) return false
  if (target.const) return target.const.size === 3
  const p = target.producer
  if (p?.opType !== 'Concat' || p.inputs.length !== 2) return false
  const last = ints(p.inputs[1])
  if (!last || last.length < 1 || last.length > 2) return false
  const lead = p.inputs[0]
  const s = lead?.producer
  // [B, S]: a Shape of a rank-2 value (ids or mask), possibly its first two entries.
  if (s?.opType === 'Shape') {
    const start = s.attrInt('start', 0)
    const end = s.attrInt('end')
    const rank = s.inputs[0]?.shape?.length
    return start === 0 && (end === 2 || (end === undefined && (rank === undefined || rank === 2)))
  }
  return s?.opType === 'Slice' && ints(s.inputs[1])?.join() === '0' && ints(s.inputs[2])?.join() === '2'
}

/** The rank an exit Reshape makes (3: [B, S, X]; 4: [B, S, heads, head size]). */
function exitRank(n: Node): number {
  const target = n.inputs[1]!
  if (target.const) return target.const.size
  return 2 + ints(target.producer!.inputs[1])!.length
}

/** A Gather of index 0 along axis 1 (the [CLS] position of [B, S, X]). */
function isFirstPosition(n: Node): boolean {
  if (n.opType !== 'Gather' || n.domain !== '' || n.attrInt('axis', 0) !== 1) return false
  const idx = n.inputs[1]?.const
  return !!idx && idx.dims.length === 0 && idx.toNumbers()[0] === 0
}

function findSites(g: Graph): { sites: Site[]; mask: Value | undefined } {
  const sites: Site[] = []
  let mask: Value | undefined
  for (const n of g.nodes) {
    if (n.domain !== MS || (n.opType !== 'Attention' && n.opType !== 'QAttention')) continue
    const quantized = n.opType === 'QAttention'
    const maskSlot = quantized ? 5 : 3
    const allowed = quantized ? 7 : 4
    if (n.inputs.slice(allowed).some((v) => v)) fail(`${n} has inputs beyond the mask (past state or attention bias)`)
    if (n.attrInt('unidirectional', 0) !== 0) fail(`${n} is unidirectional`)
    if (n.outputs.slice(1).some((o) => o && (o.consumers.length || o.isGraphOutput))) fail(`${n}'s present state is read`)
    const m = n.inputs[maskSlot]
    if (!m) fail(`${n} has no attention mask`)
    if (m!.shape && m!.shape.length !== 2) fail(`${n}'s mask is not 2-D [batch, sequence]`)
    if (mask && m !== mask) fail('the Attention nodes read different masks')
    mask = m!
    let x3d = n.inputs[0]
    let dql: Node | undefined
    if (quantized) {
      const d = x3d?.producer
      if (d?.opType !== 'DynamicQuantizeLinear' || n.inputs[3] !== d.outputs[1] || n.inputs[6] !== d.outputs[2]) {
        fail(`${n} does not read its own DynamicQuantizeLinear`)
      }
      if (d!.outputs.some((o) => o!.consumers.some((c) => c !== n) || o!.isGraphOutput)) fail(`${d}'s outputs are read elsewhere`)
      dql = d!
      x3d = d!.inputs[0]
    }
    const inReshape = x3d?.producer
    if (inReshape?.opType !== 'Reshape' || !inReshape.inputs[0]) fail(`${n}'s input is not a Reshape of 2-D rows`)
    if (x3d!.consumers.length !== 1 || x3d!.isGraphOutput) fail(`${n}'s 3-D input is read elsewhere`)
    const out = n.outputs[0]!
    const readers = out.consumers
    const outReshape = readers[0]
    if (readers.length !== 1 || out.isGraphOutput || outReshape?.opType !== 'Reshape') fail(`${n}'s output is not only reshaped back to rows`)
    const target = ints(outReshape!.inputs[1])
    if (!target || target.length !== 2 || target[0] !== -1) fail(`${n}'s output is not reshaped to [-1, hidden]`)
    sites.push({ node: n, dql, inReshape: inReshape!, outReshape: outReshape! })
  }
  return { sites, mask }
}

/**
 * The 2-D attention mask a graph without fused attention nodes reads: its graph input
 * `attention_mask` ([batch, sequence], or [batch, choices, sequence] reshaped to 2-D before use).
 */
function maskInputOf(g: Graph): Value {
  const input = g.inputs.find((v) => v.name === 'attention_mask')
  if (!input) fail('no com.microsoft Attention or QAttention node and no attention_mask input')
  const rank = input!.shape?.length
  if (rank === 2) return input!
  // multiple choice: Reshape(attention_mask, [batch·choices, sequence]), the target computed or constant
  const flat = input!.consumers.find((c) => c.opType === 'Reshape' && c.inputs[0] === input && (ints(c.inputs[1])?.length === 2 || c.inputs[1]?.producer?.opType === 'Concat'))
  if (!flat) fail(`attention_mask is rank ${rank ?? 'unknown'} and not reshaped to [batch, sequence]`)
  return flat!.outputs[0]!
}

function analyse(g: Graph, outerMask?: Value): Plan {
  const found = findSites(g)
  const sites = found.sites
  // Without fused attention nodes the attention core stays on [B, S]: its Q, K and V are
  // scattered there (Reshapes of rows to [B, S, heads, head size]) and its context gathered back.
  const mask = found.mask ?? outerMask ?? maskInputOf(g)
  const rows = new Set<Value>()
  const region = new Set<Node>()
  const entries: Value[] = []
  const exits = new Set<Node>()
  const siteOfInput = new Map<Node, Site>()
  for (const s of sites) siteOfInput.set(s.inReshape, s)
  const forward: Value[] = []
  const backward: Value[] = []
  const mark = (v: Value) => {
    if (rows.has(v)) return false
    if (v.isGraphOutput) fail(`'${v.name}' is a graph output holding [batch·sequence, X] rows`)
    rows.add(v)
    forward.push(v)
    return true
  }
  const enter = (n: Node) => {
    if (region.has(n)) return
    const slots = rowSlots(n)
    if (!slots) fail(`${n} reads token rows but is not token-wise`)
    region.add(n)
    for (const k of slots!) if (n.inputs[k]) backward.push(n.inputs[k]!)
    mark(n.outputs[0]!)
    if (n.opType === 'SkipLayerNormalization' && n.outputs[3]) mark(n.outputs[3]!)
  }
  for (const s of sites) {
    backward.push(s.inReshape.inputs[0]!)
    mark(s.outReshape.outputs[0]!)
  }
  if (!sites.length) {
    // where rows begin: Reshapes to [-1, X] that a token-wise op reads (not e.g. the ids of multiple choice)
    for (const n of g.nodes) {
      const v = n.outputs[0]!
      if (isEntryReshape(n) && v.consumers.some((c) => rowSlots(c)?.some((k) => c.inputs[k] === v))) backward.push(v)
    }
  }
  while (forward.length || backward.length) {
    const b = backward.pop()
    if (b) {
      // Every value in `rows` is already accounted for: a site's output, an entry, or a region node's output.
      if (rows.has(b)) continue
      if (b.const) fail(`constant '${b.name}' is used as token rows`)
      const p = b.producer
      if (!p) fail(`token rows '${b.name}' come from a graph input, not from the embeddings`)
      if (isEntryReshape(p!)) {
        const rank = p!.inputs[0]?.shape?.length
        if (rank !== undefined && rank < 3) fail(`${p} reshapes a rank-${rank} value to rows (expected [B, S, ...])`)
        if (!entries.includes(b)) entries.push(b)
        mark(b)
        continue
      }
      enter(p!)
      continue
    }
    const v = forward.pop()!
    for (const c of v.consumers) {
      if (region.has(c) || exits.has(c)) continue
      const site = siteOfInput.get(c)
      if (site) {
        if (c.inputs[0] !== v) fail(`${c} reads token rows as its shape`)
        continue
      }
      if (c.inputs[0] === v && c.inputs.slice(1).every((x) => x !== v) && isExitReshape(c)) {
        exits.add(c)
        continue
      }
      enter(c)
    }
  }
  if (!entries.length) fail('no Reshape of [batch, sequence, X] values to [-1, X] rows (token-wise ops must read 2-D rows, as in the graphs albertkit builds; 3-D MatMuls of an export are not packed)')
  const pooled: Plan['pooled'] = []
  for (const e of exits) {
    for (const c of e.outputs[0]!.consumers) if (isFirstPosition(c)) pooled.push({ gather: c, rows: e.inputs[0]! })
  }
  return { mask, sites, rows, region, entries, exits: [...exits], pooled }
}

// ---------------------------------------------------------------------------------------------
// Rewrite.

/** TypeProto of sequence(tensor(float)), as the IR keeps types it does not model. */
const FLOAT_SEQUENCE = new Uint8Array([0x22, 0x06, 0x0a, 0x04, 0x0a, 0x02, 0x08, DataType.FLOAT])

/** Adds nodes to a graph: names under `scope` unless they start with '/'; int64 constants made once, in `constGraph`. */
class Emit {
  private readonly consts: Map<string, Value>

  constructor(
    readonly g: Graph,
    private readonly scope: string,
    private readonly constGraph: Graph = g,
    shared?: Emit,
  ) {
    this.consts = shared ? shared.consts : new Map()
  }

  private path(name: string): string {
    return name.startsWith('/') ? name : `${this.scope}/${name}`
  }

  op(opType: string, inputs: (Value | null)[], name: string, attrs: Node['attributes'] = [], domain = ''): Value {
    return this.opN(opType, inputs, [name], attrs, domain)[0]!
  }

  opN(opType: string, inputs: (Value | null)[], names: string[], attrs: Node['attributes'] = [], domain = ''): Value[] {
    const spec: { name: string; attrs: Node['attributes']; domain?: string } = { name: this.g.uniqueNodeName(this.path(names[0]!)), attrs }
    if (domain) spec.domain = domain
    return this.g.addNode(opType, inputs, names.map((n) => this.path(n)), spec).outputs as Value[]
  }

  ints(values: number[], scalar = false): Value {
    const key = `${scalar}:${values.join(',')}`
    let v = this.consts.get(key)
    if (!v) {
      const t = new Tensor(DataType.INT64, scalar ? [] : [values.length], bytesOf(BigInt64Array.from(values, BigInt)))
      const g = this.constGraph
      v = g.addInitializer(g.uniqueName(`/pack_tokens/const_${scalar ? 'scalar_' : ''}${values.join('_').replace(/-/g, 'm')}`), t)
      this.consts.set(key, v)
    }
    return v
  }
}

interface Packing {
  /** [T] int64: flat position of each kept token. */
  idx: Value
  /** [B] int64: first and one-past-last packed row of each batch row. */
  starts: Value
  ends: Value
  /** [T] int32: attention mask value of each kept token. */
  packedMask: Value
  /** [B·S] int64: the packed row of each real position, T (the fill row) for padding. */
  posMap: Value
  /** [B·S] int64: the packed row of each kept position (position 0 of a padded row too), T for the rest. */
  keptMap: Value
  /** scalar int64: B, the loops' trip count. */
  batch: Value
}

function packing(e: Emit, mask: Value): Packing {
  const shape = e.op('Shape', [mask], 'mask_shape')
  const seq = e.op('Gather', [shape, e.ints([1], true)], 'sequence_length')
  const batch = e.op('Gather', [shape, e.ints([0], true)], 'batch_size')
  const positions = e.op('Range', [e.ints([0], true), seq, e.ints([1], true)], 'positions')
  const first = e.op('Equal', [positions, e.ints([0], true)], 'is_first')
  const real = e.op('Cast', [mask], 'is_real', [attrInt('to', DataType.BOOL)])
  const keep = e.op('Or', [real, first], 'keep')
  const keepFlat = e.op('Reshape', [keep, e.ints([-1])], 'keep_flat')
  const idx = e.op('Reshape', [e.op('NonZero', [keepFlat], 'kept'), e.ints([-1])], 'packed_positions')
  const keep64 = e.op('Cast', [keep], 'keep_int64', [attrInt('to', DataType.INT64)])
  const counts = e.op('ReduceSum', [keep64, e.ints([1])], 'tokens_per_row', [attrInt('keepdims', 0)])
  const ends = e.op('CumSum', [counts, e.ints([0], true)], 'row_ends')
  const starts = e.op('Sub', [ends, counts], 'row_starts')
  const maskFlat = e.op('Reshape', [mask, e.ints([-1])], 'mask_flat')
  const packedMask = e.op('Gather', [maskFlat, idx], 'packed_mask')
  const rank = e.op('Sub', [e.op('CumSum', [e.op('Reshape', [keep64, e.ints([-1])], 'keep_flat_int64'), e.ints([0], true)], 'kept_before'), e.ints([1], true)], 'packed_row')
  const tokens = e.op('Shape', [idx], 'tokens')
  const realFlat = e.op('Reshape', [real, e.ints([-1])], 'real_flat')
  const posMap = e.op('Where', [realFlat, rank, tokens], 'position_rows')
  const keptMap = e.op('Where', [keepFlat, rank, tokens], 'kept_position_rows')
  return { idx, starts, ends, packedMask, posMap, keptMap, batch }
}

/**
 * One attention node as a loop over the batch rows: the body slices the row's packed tokens (and
 * their mask), runs the node on [1, tokens, hidden] and appends the result to a sequence that is
 * concatenated back into packed rows.
 */
function attentionLoop(model: Model, e: Emit, site: Site, rowsIn: Value, p: Packing): Value {
  const g = e.g
  const n = site.node
  const name = n.name.replace(/\/[^/]*$/, '') || '/attention'
  const body = new Graph(g)
  body.name = `${name}/per_row`
  const b = new Emit(body, `${name}/per_row`, g, e)
  const iter = body.newValue(`${name}/per_row/row`)
  iter.setTensorType(DataType.INT64, [])
  const cond = body.newValue(`${name}/per_row/cond_in`)
  cond.setTensorType(DataType.BOOL, [])
  const seqIn = body.newValue(`${name}/per_row/outputs_in`)
  seqIn.type = { encoded: FLOAT_SEQUENCE }
  body.inputs = [iter, cond, seqIn]
  const at = b.op('Unsqueeze', [iter, b.ints([0])], 'row_1d')
  const start = b.op('Gather', [p.starts, at], 'start')
  const end = b.op('Gather', [p.ends, at], 'end')
  const axis0 = b.ints([0])
  const slice = (v: Value, label: string) => b.op('Unsqueeze', [b.op('Slice', [v, start, end, axis0], `${label}_rows`), axis0], label)
  const rowMask = slice(p.packedMask, 'mask')
  const attrs = n.attributes.map((a) => ({ ...a }))
  let out: Value
  if (site.dql) {
    // One quantization of all packed rows (outside the loop), sliced per row.
    const [q, scale, zero] = e.opN('DynamicQuantizeLinear', [rowsIn], [`${name}/input_quant`, `${name}/input_scale`, `${name}/input_zero_point`])
    const ins = [slice(q!, 'input'), n.inputs[1]!, n.inputs[2]!, scale!, n.inputs[4]!, rowMask, zero!]
    out = b.op('QAttention', ins, 'QAttention', attrs, MS)
  } else {
    const ins = [slice(rowsIn, 'input'), n.inputs[1]!, n.inputs[2] ?? null, rowMask]
    out = b.op('Attention', ins, 'Attention', attrs, MS)
  }
  const flat = b.op('Squeeze', [out, axis0], 'output_rows')
  const seqOut = b.op('SequenceInsert', [seqIn, flat], 'outputs')
  seqOut.type = { encoded: FLOAT_SEQUENCE }
  const condOut = b.op('Identity', [cond], 'cond')
  condOut.setTensorType(DataType.BOOL, [])
  body.outputs = [condOut, seqOut]
  // An empty [0, hidden] first element keeps the concatenation defined for a batch of 0 rows.
  const empty = e.op('Slice', [rowsIn, e.ints([0]), e.ints([0]), e.ints([0])], `${name}/no_rows`)
  const seq0 = e.op('SequenceConstruct', [empty], `${name}/outputs_init`)
  const loop = e.op('Loop', [p.batch, null, seq0], `${name}/per_row_loop`, [{ name: 'body', type: AttrType.GRAPH, g: body }])
  loop.type = { encoded: FLOAT_SEQUENCE }
  model.requireOpset(MS, 1)
  return e.op('ConcatFromSequence', [loop], `${name}/output_rows`, [attrInt('axis', 0)])
}

/** Rewrites the graph as planned; returns how many per-token outputs are scattered back. */
function rewrite(model: Model, g: Graph, plan: Plan, padLogit: number): number {
  const e = new Emit(g, '/pack_tokens')
  const p = packing(e, plan.mask)
  // Gather the rows once where they enter; every token-wise node then reads packed rows.
  for (const v of plan.entries) {
    const packed = e.op('Gather', [v, p.idx], `${v.name}_packed`, [attrInt('axis', 0)])
    for (const c of [...v.consumers]) {
      if (c === packed.producer) continue
      c.inputs.forEach((x, k) => {
        if (x === v) c.setInput(k, packed)
      })
    }
  }
  // Attention: the loop reads the packed rows the Reshape read; its output replaces the rows the
  // output Reshape made.
  for (const s of plan.sites) {
    const rowsIn = s.inReshape.inputs[0]!
    const rowsOut = s.outReshape.outputs[0]!
    const out = attentionLoop(model, e, s, rowsIn, p)
    g.replaceAllUses(rowsOut, out)
  }
  // Pooled heads: the [CLS] row of each batch row is its first packed row.
  for (const { gather, rows } of plan.pooled) {
    const cls = e.op('Gather', [rows, p.starts], `${gather.name}_packed`, [attrInt('axis', 0)])
    g.replaceAllUses(gather.outputs[0]!, cls)
  }
  // Per-token outputs: each position picks its packed row, padding the fill row appended last.
  const fills = new Map<number, Value>()
  let scatters = 0
  for (const x of plan.exits) {
    const rows = x.inputs[0]!
    const out = x.outputs[0]!
    // An exit only pooled heads read goes with the sweep.
    if (!out.isGraphOutput && out.consumers.every((c) => plan.pooled.some((q) => q.gather === c))) continue
    // 0 for hidden states and for the attention core's Q, K, V (masked there, or discarded);
    // padLogit for other per-token outputs (logits)
    const hidden = rows.producer?.opType === 'LayerNormalization' || rows.producer?.opType === 'SkipLayerNormalization'
    const core = exitRank(x) === 4
    const fill = hidden || core ? 0 : padLogit
    let fillValue = fills.get(fill)
    if (!fillValue) {
      fillValue = g.addInitializer(g.uniqueName(`/pack_tokens/fill_${fill}`.replace('-', 'm')), Tensor.scalarFloat(fill))
      fills.set(fill, fillValue)
    }
    const padded = e.op('Pad', [rows, e.ints([0, 0, 1, 0]), fillValue], `${x.name}_fill_row`)
    // the attention core sees every kept position (a left-padded row's position 0 is a query there)
    x.setInput(0, e.op('Gather', [padded, core ? p.keptMap : p.posMap], `${x.name}_positions`, [attrInt('axis', 0)]))
    scatters++
  }
  g.toposort()
  return scatters
}
