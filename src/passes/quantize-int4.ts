/**
 * quantize-int4: weight-only 4-bit quantization with com.microsoft MatMulNBits. Every constant
 * weight read only by MatMul/Gemm becomes 4-bit in blocks of `blockSize` (32 by default) along
 * the reduction axis, symmetric (the largest-magnitude value of a block maps to −8) or, with
 * `asymmetric`, with a 4-bit zero point per block; activations stay float. Lookup tables (the
 * embeddings, and a decoder tied to them) go to int8 with per-row scales, as quantize-int8 stores
 * them, since no standard lookup reads 4-bit rows. Each shared weight is quantized once; no float
 * copy stays. Safe up to quantization error; needs onnxruntime's contrib ops.
 */
import { DataType } from '../ir/dtype.js'
import { attrInt, type Graph, type Model, type Value } from '../ir/graph.js'
import { Tensor } from '../ir/tensor.js'
import { UserError } from '../util/errors.js'
import type { Pass, PassContext, PassResult } from './pass.js'
import { fusableBias, planWeights, roundEven, type Use, type WeightPlan } from './quant-common.js'
import { applyInt8 } from './quantize-int8.js'
import { cleanup } from '../ir/cleanup.js'
import { weightAs } from './linear.js'

export const quantizeInt4: Pass = {
  name: 'quantize-int4',
  description: '4-bit block-quantized weights (MatMulNBits), embeddings int8',
  inPlace: true,
  run(model: Model, { options: opts }: PassContext): PassResult {
    const blockSize = opts.blockSize ?? 32
    if (blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) throw new UserError(`block size ${blockSize} must be a power of two, 16 or more`)
    if (opts.contribOps === false) throw new UserError('quantize-int4 needs com.microsoft MatMulNBits; it cannot run with standard ops only')
    const graph = model.graph
    const { plans, skipped } = planWeights(graph, { ...opts, perTensor: false })
    const linearOnly = plans.filter((p) => p.uses.every((u) => u.kind === 'linear'))
    const tables = plans.filter((p) => !linearOnly.includes(p))
    let readers = 0
    for (const plan of linearOnly) readers += applyInt4(graph, plan, blockSize, !!opts.asymmetric)
    if (linearOnly.length) model.requireOpset('com.microsoft', 1)
    readers += applyInt8(model, tables, true)
    graph.toposort()
    cleanup(graph)
    return {
      model,
      changed: plans.length > 0,
      stats: { weights4bit: linearOnly.length, tablesInt8: tables.length, readers, leftFloat: skipped, blockSize, asymmetric: !!opts.asymmetric },
    }
  },
}

export interface Packed4 {
  /** uint8 [N, blocks, blockSize / 2], two values a byte, low nibble first */
  b: Tensor
  /** float32 [N · blocks] */
  scales: Tensor
  /** uint8 [N · ceil(blocks / 2)], packed like b (asymmetric only) */
  zeroPoints?: Tensor
}

/** Quantize W (as [N, K]: rows are output channels) in blocks along K. */
export function pack4(w: Float32Array, N: number, K: number, blockSize: number, asymmetric: boolean): Packed4 {
  const blocks = Math.ceil(K / blockSize)
  const blob = blockSize / 2
  const b = new Uint8Array(N * blocks * blob)
  const scales = new Float32Array(N * blocks)
  const zpBytes = Math.ceil(blocks / 2)
  const zps = asymmetric ? new Uint8Array(N * zpBytes) : undefined
  for (let n = 0; n < N; n++) {
    for (let blk = 0; blk < blocks; blk++) {
      const k0 = blk * blockSize
      const k1 = Math.min(K, k0 + blockSize)
      let scale: number
      let zp = 8
      if (asymmetric) {
        let lo = 0
        let hi = 0
        for (let k = k0; k < k1; k++) {
          const x = w[n * K + k]!
          if (x < lo) lo = x
          if (x > hi) hi = x
        }
        scale = Math.fround(hi > lo ? (hi - lo) / 15 : 1)
        zp = Math.min(15, Math.max(0, roundEven(-lo / scale)))
        zps![n * zpBytes + (blk >> 1)]! |= zp << ((blk & 1) * 4)
      } else {
        scale = symmetricScale(w, n * K + k0, n * K + k1)
      }
      scales[n * blocks + blk] = scale
      const base = (n * blocks + blk) * blob
      for (let k = k0; k < k1; k++) {
        const q = Math.min(15, Math.max(0, roundEven(w[n * K + k]! / scale) + zp))
        const i = k - k0
        b[base + (i >> 1)]! |= q << ((i & 1) * 4)
      }
      // Padding past K holds the zero point, i.e. the value 0.
      for (let i = k1 - k0; i < blockSize; i++) b[base + (i >> 1)]! |= zp << ((i & 1) * 4)
    }
  }
  const out: Packed4 = {
    b: new Tensor(DataType.UINT8, [N, blocks, blob], b),
    scales: Tensor.fromFloat32([N * blocks], scales),
  }
  if (zps) out.zeroPoints = new Tensor(DataType.UINT8, [N * zpBytes], zps)
  return out
}

/** Symmetric 4-bit scale of one block: the value of largest magnitude maps to −8, so all 16 levels are used. */
function symmetricScale(w: Float32Array, start: number, end: number): number {
  let m = 0
  for (let k = start; k < end; k++) if (Math.abs(w[k]!) > Math.abs(m)) m = w[k]!
  return Math.fround(m !== 0 ? m / -8 : 1)
}

function applyInt4(graph: Graph, plan: WeightPlan, blockSize: number, asymmetric: boolean): number {
  const linear = plan.uses as Extract<Use, { kind: 'linear' }>[]
  const orientations = new Set(linear.map((u) => u.orientation))
  const stored = new Map<'KN' | 'NK', { b: Value; scales: Value; zp: Value | null; N: number; K: number }>()
  const store = (o: 'KN' | 'NK') => {
    let s = stored.get(o)
    if (!s) {
      const { data, rows: N, cols: K } = weightAs(plan.weight, o, 'NK')
      const p = pack4(data, N, K, blockSize, asymmetric)
      const base = orientations.size > 1 ? `${plan.weight.name}.${o}` : plan.weight.name
      s = {
        b: graph.addInitializer(graph.uniqueName(`${base}.q4`), p.b),
        scales: graph.addInitializer(graph.uniqueName(`${base}.q4_scales`), p.scales),
        zp: p.zeroPoints ? graph.addInitializer(graph.uniqueName(`${base}.q4_zero_points`), p.zeroPoints) : null,
        N,
        K,
      }
      stored.set(o, s)
    }
    return s
  }
  for (const use of linear) {
    const s = store(use.orientation)
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
    const name = graph.uniqueNodeName(`${node.name || plan.weight.name}_q4`)
    if (extraAdd) {
      const mm = graph.addNodeBefore(target, 'MatMulNBits', inputs, name, { domain: 'com.microsoft', attrs })
      graph.replaceNode(target, 'Add', [mm.outputs[0]!, extraAdd], { name: graph.uniqueNodeName(`${name}_bias`) })
    } else {
      graph.replaceNode(target, 'MatMulNBits', inputs, { name, domain: 'com.microsoft', attrs })
    }
  }
  return linear.length
}
