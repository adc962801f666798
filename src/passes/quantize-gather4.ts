/**
 * 4-bit lookup tables (not a pass; quantize-int4 uses it), in two forms. The first: a table
 * [rows, cols] is stored as com.microsoft GatherBlockQuantized reads it — uint8 data [rows, cols / 2] two codes a byte (low
 * nibble first, `bits` 4), scales [rows, ceil(cols / block)] along each row (`quantize_axis` 1),
 * optional zero points [rows, ceil(blocks / 2)] packed the same way, else 8 — and every reader is
 * rewritten: Gather on axis 0 becomes GatherBlockQuantized (`gather_axis` 0); Slice on axis 0
 * (position tables) becomes GatherBlockQuantized of the same Slice of the row numbers 0..rows−1.
 * These are the only layouts onnxruntime's CPU kernel takes for uint8 data (gather axis 0,
 * quantize axis last); its WebGPU kernel takes them too. The data layout is MatMulNBits' when
 * `cols` is a multiple of the block, so a tied decoder (logits = h·Tᵀ) reads the same bytes
 * through a Reshape to [rows, blocks, block / 2] and the same scales and zero points.
 *
 * The second, `dequantizeTable4`, uses standard ops only (see there).
 *
 * Indices out of range fail as they do in Gather; the output has the scales' float type.
 */
import { DataType } from '../ir/dtype.js'
import { attrInt, type Graph, type Value } from '../ir/graph.js'
import { Tensor, bytesOf } from '../ir/tensor.js'
import { packRows, type Codes4 } from './int4-rounding.js'
import { int8Weight, type Use } from './quant-common.js'

export interface Table4 {
  data: Value
  /** float32 [rows, blocks] */
  scales: Value
  zeroPoints: Value | null
  rows: number
  cols: number
  blockSize: number
}

/** Store a table's codes (rows = the table's rows) as GatherBlockQuantized reads them. */
export function storeTable4(graph: Graph, weight: Value, c: Codes4): Table4 {
  const blocks = Math.ceil(c.K / c.blockSize)
  const packed = packRows(c)
  const base = weight.name
  return {
    data: graph.addInitializer(graph.uniqueName(`${base}.q4`), new Tensor(DataType.UINT8, [c.N, c.K / 2], packed.data)),
    scales: graph.addInitializer(graph.uniqueName(`${base}.q4_scales`), Tensor.fromFloat32([c.N, blocks], c.scales)),
    zeroPoints: packed.zeroPoints
      ? graph.addInitializer(graph.uniqueName(`${base}.q4_zero_points`), new Tensor(DataType.UINT8, [c.N, Math.ceil(blocks / 2)], packed.zeroPoints))
      : null,
    rows: c.N,
    cols: c.K,
    blockSize: c.blockSize,
  }
}

/** Rewrite one Gather/Slice reader of the table to GatherBlockQuantized. */
export function rewriteLookup4(graph: Graph, use: Extract<Use, { kind: 'lookup' }>, t: Table4): void {
  const node = use.node
  const name = node.name || `${t.data.name}_lookup`
  let indices = node.inputs[1]!
  if (use.op === 'Slice') {
    const rowNumbers = graph.addInitializer(graph.uniqueName(`${t.data.name}_row_numbers`), rowNumbersTensor(t.rows))
    const slice = graph.addNodeBefore(node, 'Slice', [rowNumbers, ...node.inputs.slice(1)], `${name}_rows`)
    indices = slice.outputs[0]!
  }
  const inputs = t.zeroPoints ? [t.data, indices, t.scales, t.zeroPoints] : [t.data, indices, t.scales]
  graph.replaceNode(node, 'GatherBlockQuantized', inputs, {
    name: graph.uniqueNodeName(`${name}_q4`),
    domain: 'com.microsoft',
    attrs: [attrInt('bits', 4), attrInt('block_size', t.blockSize), attrInt('gather_axis', 0), attrInt('quantize_axis', 1)],
  })
}

/**
 * A table stored 4-bit for standard ops (opset 21, IR 10): the codes as int4 [rows, cols] (less 8,
 * so no zero point is stored) or, asymmetric, as uint4 with uint4 zero points [rows, blocks]; the
 * scales [rows, blocks]; one DequantizeLinear (axis 1, `block_size`) at the graph's start makes the
 * float table, and every reader of the weight (Gather, Slice, a tied decoder's Transpose or MatMul)
 * reads that instead, unchanged. It runs where GatherBlockQuantized does not (onnxruntime-web's
 * browser builds on wasm) and on WebGPU; the table is dequantized whole on every run.
 */
export function dequantizeTable4(graph: Graph, weight: Value, c: Codes4): void {
  const blocks = Math.ceil(c.K / c.blockSize)
  const packed = packRows(c)
  const base = weight.name
  let data: Tensor
  let zeroPoints: Value | null = null
  if (packed.zeroPoints) {
    data = new Tensor(DataType.UINT4, [c.N, c.K], packed.data)
    zeroPoints = graph.addInitializer(graph.uniqueName(`${base}.q4_zero_points`), new Tensor(DataType.UINT4, [c.N, blocks], packFlat(c.zeroPoints!)))
  } else {
    // code − 8 as a 4-bit two's complement number is the code with its top bit flipped
    for (let i = 0; i < packed.data.length; i++) packed.data[i] ^= 0x88
    data = new Tensor(DataType.INT4, [c.N, c.K], packed.data)
  }
  const inputs = [
    graph.addInitializer(graph.uniqueName(`${base}.q4`), data),
    graph.addInitializer(graph.uniqueName(`${base}.q4_scales`), Tensor.fromFloat32([c.N, blocks], c.scales)),
    ...(zeroPoints ? [zeroPoints] : []),
  ]
  const node = graph.addNode('DequantizeLinear', inputs, [`${base}_dequantized`], {
    name: graph.uniqueNodeName(`${base}_dequantize`),
    attrs: [attrInt('axis', 1), attrInt('block_size', c.blockSize)],
  })
  graph.moveLastBefore(graph.firstNode!)
  graph.replaceAllUses(weight, node.outputs[0]!)
}

/**
 * A (small) table as int8, one scale per row (symmetric), dequantized whole by one DequantizeLinear
 * (axis 0) at the graph's start that every reader then reads, unchanged: standard ops (opset 13)
 * that WebGPU runs, where a Gather of int8 rows falls back to the CPU provider.
 */
export function dequantizeTable8(graph: Graph, weight: Value): void {
  const qw = int8Weight(weight.const!, 0, false, false)
  const base = weight.name
  const q = graph.addInitializer(graph.uniqueName(`${base}.int8`), qw.q)
  const scale = graph.addInitializer(graph.uniqueName(`${base}.scale`), qw.scale)
  const node = graph.addNode('DequantizeLinear', [q, scale], [`${base}_dequantized`], { name: graph.uniqueNodeName(`${base}_dequantize`), attrs: [attrInt('axis', 0)] })
  graph.moveLastBefore(graph.firstNode!)
  graph.replaceAllUses(weight, node.outputs[0]!)
}

/** 4-bit values packed two a byte, low nibble first, row after row with no padding (ONNX's int4 layout). */
function packFlat(values: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(values.length / 2))
  for (let i = 0; i < values.length; i++) out[i >> 1]! |= values[i]! << ((i & 1) * 4)
  return out
}

/** int64 0, 1, ..., rows − 1 */
function rowNumbersTensor(rows: number): Tensor {
  const a = new BigInt64Array(rows)
  for (let i = 0; i < rows; i++) a[i] = BigInt(i)
  return new Tensor(DataType.INT64, [rows], bytesOf(a))
}

/**
 * The table's bytes as MatMulNBits' B [rows, blocks, block / 2] (a Reshape, which onnxruntime
 * folds at load); the layouts agree when `cols` is a multiple of the block size (the caller's check).
 */
export function tableAsMatMulB(graph: Graph, t: Table4): Value {
  if (t.cols % t.blockSize !== 0) throw new Error(`tableAsMatMulB: ${t.cols} columns are not whole blocks of ${t.blockSize}`)
  const blocks = t.cols / t.blockSize
  const shape = graph.addInitializer(graph.uniqueName(`${t.data.name}_blocks_shape`), Tensor.fromInt64([3], [t.rows, blocks, t.blockSize / 2]))
  const node = graph.addNode('Reshape', [t.data, shape], [`${t.data.name}_blocks`], { name: graph.uniqueNodeName(`${t.data.name}_as_blocks`) })
  graph.moveLastBefore(graph.firstNode!)
  return node.outputs[0]!
}
