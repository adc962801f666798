/**
 * quantize-int4: weight-only 4-bit quantization, in blocks of `blockSize` (32 by default) along the
 * reduction axis, symmetric or, with `asymmetric`, with a 4-bit zero point per block (see
 * int4-rounding.ts for how codes are chosen). Activations stay float.
 * - Every constant weight read only by MatMul/Gemm becomes com.microsoft MatMulNBits.
 * - Lookup tables (`int4Tables`, quantize-gather4.ts). By default the vocabulary (the word
 *   embeddings) becomes com.microsoft GatherBlockQuantized, 4-bit blocks along each row; a decoder
 *   tied to it reads the same bytes, scales and zero points through MatMulNBits. Other tables
 *   (positions, token types) stay int8 per row, as quantize-int8 stores them: 4 bits would save a
 *   few kilobytes there. `DequantizeLinear` does the same with standard ops instead: the word
 *   table int4 and the others int8, each dequantized whole by one DequantizeLinear that its
 *   readers read unchanged (the model is raised to opset 21, or the tables stay int8, with a
 *   warning, where an op would read differently there): what onnxruntime-web runs on wasm and
 *   WebGPU alike. `int8`: every table int8.
 * - A weight some fused Attention reads keeps the int8 path (QAttention), as quantize-int8 does.
 * - With `wholeBlocks`, a matrix whose reduction K is under one block stays float (onnxruntime-web's
 *   WebGPU MatMulNBits gives wrong numbers there, measured for N = 2; real ALBERTs have K ≥ 128).
 * Each shared weight is quantized once; no float copy stays.
 *
 * Rounding (`int4Rounding`): `mse` by default (each block's scale searched for the least squared
 * error: no model runs, the same bytes on every machine); `gptq` (error-compensating, calibrated
 * on sample inputs through the context's model runner: the most accurate, and the slowest);
 * `nearest` (the largest magnitude maps to −8). Tables are rounded by `mse` unless `nearest` is
 * asked (their rows are read as they are). For q4f16 the fp16 pass turns the scales float16 next.
 *
 * Safe up to quantization error; needs onnxruntime's contrib ops (MatMulNBits; GatherBlockQuantized
 * with a `bits` attribute: onnxruntime 1.30).
 */
import { DataType } from '../ir/dtype.js'
import { attrInt, type Graph, type Model, type Value } from '../ir/graph.js'
import { Tensor } from '../ir/tensor.js'
import { UserError } from '../util/errors.js'
import { cleanup } from '../ir/cleanup.js'
import { calibrationFeeds } from './calibrate.js'
import { collectHessians, type HessianRequest } from './int4-calibration.js'
import { packBlocks, roundBlocks, roundGptq, type BlockSpec, type Codes4, type Int4Rounding } from './int4-rounding.js'
import { weightAs } from './linear.js'
import { modelRunner, type ModelRunner, type Pass, type PassContext, type PassOptions, type PassResult } from './pass.js'
import { fusableBias, planWeights, type Use, type WeightPlan } from './quant-common.js'
import { applyInt8 } from './quantize-int8.js'
import { dequantizeTable4, dequantizeTable8, rewriteLookup4, storeTable4, tableAsMatMulB, type Table4 } from './quantize-gather4.js'

export const quantizeInt4: Pass = {
  name: 'quantize-int4',
  description: '4-bit block-quantized weights (MatMulNBits) and embeddings (GatherBlockQuantized)',
  inPlace: true,
  async run(model: Model, context: PassContext): Promise<PassResult> {
    const rounding = context.options.int4Rounding ?? 'mse'
    const runner = rounding === 'gptq' ? modelRunner('quantize-int4 (gptq rounding)', context) : undefined
    const result = await quantize(model, context.options, rounding, runner)
    for (const w of result.warnings ?? []) context.warn(w)
    return result
  },
}

type LinearUse = Extract<Use, { kind: 'linear' }>
type Orientation = 'KN' | 'NK'

/** A weight's 4-bit blocks as MatMulNBits reads them. */
interface StoredB {
  b: Value
  scales: Value
  zp: Value | null
  N: number
  K: number
}

async function quantize(model: Model, opts: Readonly<PassOptions>, rounding: Int4Rounding, runner: ModelRunner | undefined): Promise<PassResult> {
  const blockSize = opts.blockSize ?? 32
  if (blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) throw new UserError(`block size ${blockSize} must be a power of two, 16 or more`)
  if (opts.contribOps === false) throw new UserError('quantize-int4 needs com.microsoft MatMulNBits; it cannot run with standard ops only')
  const spec: BlockSpec = { blockSize, asymmetric: !!opts.asymmetric }
  const graph = model.graph
  const { plans, skipped } = planWeights(graph, { ...opts, perTensor: false })
  const linear = plans.filter((p) => p.uses.every((u) => u.kind === 'linear'))
  // with wholeBlocks, a matrix whose K is under one block stays float
  const narrow = opts.wholeBlocks ? linear.filter((p) => orientationsOf(p).some((o) => reduction(p, o) < blockSize)) : []
  const linearOnly = linear.filter((p) => !narrow.includes(p))
  const lookups = plans.filter((p) => !linear.includes(p))
  const mode = opts.int4Tables ?? 'GatherBlockQuantized'
  const blocker = mode === 'DequantizeLinear' ? opset21Blocker(model) : undefined
  const tables = mode === 'int8' || blocker ? [] : mode === 'DequantizeLinear' ? standardTables(lookups) : vocabularyTables(lookups, blockSize)
  const rest = lookups.filter((p) => !tables.includes(p))
  // standard ops: the small tables int8 too, but dequantized whole, so that WebGPU reads them as float
  const dequantized8 = mode === 'DequantizeLinear' && !blocker ? rest.filter(readAsFloat) : []
  const int8 = rest.filter((p) => !dequantized8.includes(p))
  const warnings = blocker ? [`lookup tables kept int8: 4-bit tables as standard ops need opset 21, where ${blocker} reads otherwise`] : []

  // Hessians come from the float model, so before any rewrite.
  let hessians: Map<string, Float64Array> | undefined
  let calibrationMs = 0
  if (rounding === 'gptq' && linearOnly.length) {
    const start = performance.now()
    const requests: HessianRequest[] = linearOnly.flatMap((plan) =>
      orientationsOf(plan).map((o) => ({ key: keyOf(plan, o), activations: linearUses(plan, o).map((u) => u.node.inputs[0]!), K: reduction(plan, o) })),
    )
    hessians = await collectHessians(model, requests, calibrationFeeds(graph, opts.calibration), runner!)
    calibrationMs = performance.now() - start
  }

  let readers = 0
  let gptqWeights = 0
  let gptqFallbacks = 0
  const codesOf = (plan: WeightPlan, o: Orientation, how: Int4Rounding): Codes4 => {
    const { data, rows: N, cols: K } = weightAs(plan.weight, o, 'NK')
    const h = how === 'gptq' ? hessians?.get(keyOf(plan, o)) : undefined
    if (h) {
      const c = roundGptq(data, N, K, h, spec)
      if (c) {
        gptqWeights++
        return c
      }
      gptqFallbacks++
    }
    return roundBlocks(data, N, K, spec, how === 'nearest' ? 'nearest' : 'mse')
  }

  for (const plan of linearOnly) {
    const stored = new Map<Orientation, StoredB>()
    for (const use of plan.uses as LinearUse[]) {
      let s = stored.get(use.orientation)
      if (!s) {
        s = storeB(graph, plan, use.orientation, codesOf(plan, use.orientation, rounding), stored.size > 0 || orientationsOf(plan).length > 1)
        stored.set(use.orientation, s)
      }
      rewriteLinear4(graph, use, s, blockSize, plan.weight.name)
      readers++
    }
  }
  const tableRounding = rounding === 'nearest' ? 'nearest' : 'mse'
  for (const plan of tables) {
    const c = codesOf(plan, 'NK', tableRounding)
    if (mode === 'DequantizeLinear') {
      dequantizeTable4(graph, plan.weight, c)
      readers += plan.uses.length
      continue
    }
    const table = storeTable4(graph, plan.weight, c)
    let tied: StoredB | undefined
    for (const use of plan.uses) {
      if (use.kind === 'lookup') rewriteLookup4(graph, use, table)
      else if (use.kind === 'linear') rewriteLinear4(graph, use, (tied ??= tableAsB(graph, table)), blockSize, plan.weight.name)
      readers++
    }
  }
  if (linearOnly.length || (tables.length && mode === 'GatherBlockQuantized')) model.requireOpset('com.microsoft', 1)
  if (tables.length && mode === 'DequantizeLinear') raiseToOpset21(model)
  readers += applyInt8(model, int8, true)
  for (const plan of dequantized8) {
    dequantizeTable8(graph, plan.weight)
    readers += plan.uses.length
  }
  graph.toposort()
  cleanup(graph)
  const stats: Record<string, number | string | boolean> = {
    weights4bit: linearOnly.length,
    tables4bit: tables.length,
    int8: int8.length + dequantized8.length,
    readers,
    leftFloat: skipped + narrow.length,
    blockSize,
    asymmetric: !!opts.asymmetric,
    rounding,
  }
  if (rounding === 'gptq') Object.assign(stats, { gptqWeights, gptqFallbacks, calibrationMs: Math.round(calibrationMs) })
  return { model, changed: plans.length > 0, stats, ...(warnings.length ? { warnings } : {}) }
}

/**
 * Default-domain ops that compute the same at opset 21 as at 17 with what albertkit's graphs give
 * them (opsets 18–21 added types, and attributes these nodes don't use). The Reduce ops (axes
 * become an input at 18), control flow and anything else are not raised.
 */
const SAME_AT_21 = new Set([
  'Abs', 'Add', 'And', 'ArgMax', 'Cast', 'Concat', 'Constant', 'ConstantOfShape', 'DequantizeLinear', 'Div', 'Equal', 'Erf',
  'Exp', 'Expand', 'Flatten', 'Gather', 'GatherElements', 'Gemm', 'Greater', 'Identity', 'LayerNormalization', 'Less',
  'MatMul', 'Max', 'Min', 'Mul', 'Neg', 'Not', 'Pow', 'Range', 'Reciprocal', 'Relu', 'Reshape', 'Shape', 'Sigmoid', 'Slice',
  'Softmax', 'Sqrt', 'Squeeze', 'Sub', 'Tanh', 'Transpose', 'Unsqueeze', 'Where',
])

/** The first default-domain op that would read differently at opset 21, or undefined when raising is safe. */
function opset21Blocker(model: Model): string | undefined {
  if ((model.opsetVersion('') ?? 0) > 21) return `opset ${model.opsetVersion('')}`
  return model.graph.nodes.find((n) => n.domain === '' && !SAME_AT_21.has(n.opType))?.opType
}

/** Opset 21 for the default domain, IR version 10 (int4 tensors). */
function raiseToOpset21(model: Model): void {
  const imported = model.opsetImports.find((o) => o.domain === '' || o.domain === 'ai.onnx')
  if (imported) imported.version = Math.max(imported.version, 21)
  else model.opsetImports.push({ domain: '', version: 21 })
  model.irVersion = Math.max(model.irVersion, 10)
}

/** Whether every reader of the weight takes a float table (lookups, linear layers; not a fused Attention). */
const readAsFloat = (p: WeightPlan) => p.uses.every((u) => u.kind === 'lookup' || u.kind === 'linear')

/**
 * The table stored 4-bit as standard ops: the vocabulary (the table with the most rows that a
 * Gather reads) when its readers take a float table and its rows pack whole bytes. The others
 * (positions, token types: a few kilobytes) are int8, dequantized whole: 4 bits cost accuracy
 * there (masked-token agreement on the trained MLM fixture fell from 0.82 to 0.69) for kilobytes.
 */
function standardTables(plans: WeightPlan[]): WeightPlan[] {
  const rows = (p: WeightPlan) => p.weight.const!.dims[0]!
  const gathered = plans.filter((p) => p.uses.some((u) => u.kind === 'lookup' && u.op === 'Gather'))
  const most = Math.max(0, ...gathered.map(rows))
  return gathered.filter((p) => rows(p) === most && p.weight.const!.dims.length === 2 && p.weight.const!.dims[1]! % 2 === 0 && readAsFloat(p))
}

function linearUses(plan: WeightPlan, o: Orientation): LinearUse[] {
  return plan.uses.filter((u): u is LinearUse => u.kind === 'linear' && u.orientation === o)
}

function orientationsOf(plan: WeightPlan): Orientation[] {
  return [...new Set(plan.uses.flatMap((u) => (u.kind === 'linear' ? [u.orientation] : [])))]
}

const keyOf = (plan: WeightPlan, o: Orientation) => `${plan.weight.name}|${o}`

/** The reduction width K of a weight read in orientation `o`. */
function reduction(plan: WeightPlan, o: Orientation): number {
  const [r, c] = plan.weight.const!.dims as [number, number]
  return o === 'KN' ? r : c
}

function storeB(graph: Graph, plan: WeightPlan, o: Orientation, c: Codes4, suffixed: boolean): StoredB {
  const blocks = Math.ceil(c.K / c.blockSize)
  const packed = packBlocks(c)
  const base = suffixed ? `${plan.weight.name}.${o}` : plan.weight.name
  return {
    b: graph.addInitializer(graph.uniqueName(`${base}.q4`), new Tensor(DataType.UINT8, [c.N, blocks, c.blockSize / 2], packed.data)),
    scales: graph.addInitializer(graph.uniqueName(`${base}.q4_scales`), Tensor.fromFloat32([c.N * blocks], c.scales)),
    zp: packed.zeroPoints ? graph.addInitializer(graph.uniqueName(`${base}.q4_zero_points`), new Tensor(DataType.UINT8, [packed.zeroPoints.length], packed.zeroPoints)) : null,
    N: c.N,
    K: c.K,
  }
}

/** A table as MatMulNBits' B (a tied decoder, logits = h·Tᵀ): the table's own bytes, scales and zero points. */
function tableAsB(graph: Graph, t: Table4): StoredB {
  return { b: tableAsMatMulB(graph, t), scales: t.scales, zp: t.zeroPoints, N: t.rows, K: t.cols }
}

/**
 * The lookup tables stored 4-bit: the vocabulary (the table with the most rows that a Gather
 * reads, as analysis/factorization.ts finds the word embeddings), when its rows hold an even
 * number of values and a tied decoder, if any, can read the same bytes (it reads the table
 * transposed, and each row is whole blocks). The other tables (positions, token types: a few
 * kilobytes) and a vocabulary 4-bit cannot serve stay int8, per row.
 */
function vocabularyTables(plans: WeightPlan[], blockSize: number): WeightPlan[] {
  const rows = (p: WeightPlan) => p.weight.const!.dims[0]!
  const gathered = plans.filter((p) => p.uses.some((u) => u.kind === 'lookup' && u.op === 'Gather'))
  const most = Math.max(0, ...gathered.map(rows))
  return gathered.filter((p) => {
    const cols = p.weight.const!.dims[1]!
    if (rows(p) !== most || cols % 2 !== 0) return false
    return p.uses.every((u) => u.kind === 'lookup' || (u.kind === 'linear' && u.orientation === 'NK' && cols % blockSize === 0))
  })
}

/** Rewrite one linear reader (MatMul, with the Add of its bias; or Gemm) to MatMulNBits. */
function rewriteLinear4(graph: Graph, use: LinearUse, s: StoredB, blockSize: number, weightName: string): void {
  const node = use.node
  // read before a fused bias removes the MatMul (which clears its inputs)
  const activation = node.inputs[0]!
  let target = node
  let bias: Value | null = null
  let extraAdd: Value | null = null
  if (node.opType === 'Gemm' && node.inputs[2]) {
    const c = node.inputs[2]
    if (c.const?.dims.length === 1 && c.const.dims[0] === s.N) bias = c
    else extraAdd = c
  } else if (node.opType === 'MatMul') {
    const fused = fusableBias(node, s.N)
    if (fused) {
      bias = fused.bias
      graph.removeNode(node)
      target = fused.add
    }
  }
  const attrs = [attrInt('K', s.K), attrInt('N', s.N), attrInt('bits', 4), attrInt('block_size', blockSize)]
  const inputs = [activation, s.b, s.scales, s.zp, null, bias]
  while (inputs.length && inputs[inputs.length - 1] === null) inputs.pop()
  const name = graph.uniqueNodeName(`${node.name || weightName}_q4`)
  if (extraAdd) {
    const mm = graph.addNodeBefore(target, 'MatMulNBits', inputs, name, { domain: 'com.microsoft', attrs })
    graph.replaceNode(target, 'Add', [mm.outputs[0]!, extraAdd], { name: graph.uniqueNodeName(`${name}_bias`) })
  } else {
    graph.replaceNode(target, 'MatMulNBits', inputs, { name, domain: 'com.microsoft', attrs })
  }
}

/** Packed 4-bit blocks of W ([N, K]) as MatMulNBits reads them, rounded to nearest (tests, tools). */
export interface Packed4 {
  /** uint8 [N, blocks, blockSize / 2], two values a byte, low nibble first */
  b: Tensor
  /** float32 [N · blocks] */
  scales: Tensor
  /** uint8 [N · ceil(blocks / 2)], packed like b (asymmetric only) */
  zeroPoints?: Tensor
}

export function pack4(w: Float32Array, N: number, K: number, blockSize: number, asymmetric: boolean, how: 'nearest' | 'mse' = 'nearest'): Packed4 {
  const c = roundBlocks(w, N, K, { blockSize, asymmetric }, how)
  const p = packBlocks(c)
  const blocks = Math.ceil(K / blockSize)
  const out: Packed4 = { b: new Tensor(DataType.UINT8, [N, blocks, blockSize / 2], p.data), scales: Tensor.fromFloat32([N * blocks], c.scales) }
  if (p.zeroPoints) out.zeroPoints = new Tensor(DataType.UINT8, [p.zeroPoints.length], p.zeroPoints)
  return out
}
