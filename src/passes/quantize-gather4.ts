/**
 * 4-bit lookup tables (not a pass; quantize-int4 uses it): a table [rows, cols] is stored as
 * com.microsoft GatherBlockQuantized reads it — uint8 data [rows, cols / 2] two codes a byte (low
 * nibble first, `bits` 4), scales [rows, ceil(cols / block)] along each row (`quantize_axis` 1),
 * optional zero points [rows, ceil(blocks / 2)] packed the same way, else 8 — and every reader is
 * rewritten: Gather on axis 0 becomes GatherBlockQuantized (`gather_axis` 0); Slice on axis 0
 * (position tables) becomes GatherBlockQuantized of the same Slice of the row numbers 0..rows−1.
 * These are the only layouts onnxruntime's CPU kernel takes for uint8 data (gather axis 0,
 * quantize axis last); its WebGPU kernel takes them too. The data layout is MatMulNBits' when
 * `cols` is a multiple of the block, so a tied decoder (logits = h·Tᵀ) reads the same bytes
 * through a Reshape to [rows, blocks, block / 2] and the same scales and zero points.
 *
 * Indices out of range fail as they do in Gather; the output has the scales' float type.
 */
import { DataType } from '../ir/dtype.js'
import { attrInt, type Graph, type Value } from '../ir/graph.js'
import { Tensor, bytesOf } from '../ir/tensor.js'
import { packRows, type Codes4 } from './int4-rounding.js'
import type { Use } from './quant-common.js'

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
