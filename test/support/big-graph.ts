/**
 * Large ONNX graphs for scale tests, written straight to protobuf bytes (no IR, so making a
 * million-node file costs a few seconds and little memory): a chain of Add/Relu pairs, each Add
 * reading a one-element constant. Options make the passes work: unnamed nodes (sort-and-name
 * names them all), shared constant values (dedup merges them into a few widely read ones), a
 * constant start (fold-constants folds the whole chain), and dead branches (remove-unused).
 */
import fs from 'node:fs'
import { DataType } from '../../src/ir/dtype.js'
import { ProtoWriter } from '../../src/protobuf/wire.js'

export interface ChainOptions {
  /** number of nodes, about (Add and Relu pairs, plus dead branches) */
  nodes: number
  /** give every node a name (default true); without, sort-and-name names them */
  named?: boolean
  /** distinct constant values (default: one per Add); a few means dedup merges them */
  distinctConstants?: number
  /** start the chain from a constant instead of the graph input: everything folds */
  constantStart?: boolean
  /** every `deadEvery`-th pair also gets a Relu of its constant that nothing reads */
  deadEvery?: number
  /** the op after each Add (default Relu; Neg folds) */
  second?: string
  /** shape of the constants (default [1]) */
  constantDims?: number[]
  /** each Add computed twice (cse merges the twins) */
  twins?: boolean
  /** every Relu's output is also a graph output */
  allOutputs?: boolean
  /** width of the [1, W] values (default 4) */
  width?: number
}

function valueInfo(name: string, width: number): ProtoWriter {
  return tensorInfo(name, [1, width])
}

function floatTensor(name: string, dims: number[], values: Float32Array): ProtoWriter {
  const w = new ProtoWriter()
  for (const d of dims) w.int64(1, d)
  w.int64(2, DataType.FLOAT)
  w.string(8, name)
  w.bytes(9, new Uint8Array(values.buffer, values.byteOffset, values.byteLength))
  return w
}

function node(op: string, inputs: string[], outputs: string[], name: string | undefined): ProtoWriter {
  const w = new ProtoWriter()
  for (const i of inputs) w.string(1, i)
  for (const o of outputs) w.string(2, o)
  if (name) w.string(3, name)
  w.string(4, op)
  return w
}

/** The model's bytes, as pieces. */
export function chainModel(o: ChainOptions): Uint8Array[] {
  const width = o.width ?? 4
  const named = o.named ?? true
  const graph = new ProtoWriter(1 << 16)
  let prev = 'x'
  let nodes = 0
  let pair = 0
  const constants: ProtoWriter[] = []
  const finals: string[] = []
  const distinct = o.distinctConstants
  const constName = (i: number) => `c${distinct ? i % distinct : i}`
  if (o.constantStart) constants.push(floatTensor('x', [1, width], new Float32Array(width).fill(0.5)))
  while (nodes < o.nodes) {
    const c = constName(pair)
    const cdims = o.constantDims ?? [1]
    const csize = cdims.reduce((a, b) => a * b, 1)
    if (!distinct || pair < distinct) constants.push(floatTensor(c, cdims, new Float32Array(csize).map((_, k) => ((pair % 13) - 6) / 8 + k)))
    graph.message(1, node('Add', [prev, c], [`a${pair}`], named ? `add${pair}` : undefined))
    let a = `a${pair}`
    if (o.twins) {
      graph.message(1, node('Add', [prev, c], [`t${pair}`], named ? `twin${pair}` : undefined))
      graph.message(1, node('Add', [`a${pair}`, `t${pair}`], [`s${pair}`], named ? `sum${pair}` : undefined))
      a = `s${pair}`
      nodes += 2
    }
    graph.message(1, node(o.second ?? 'Relu', [a], [`r${pair}`], named ? `relu${pair}` : undefined))
    if (o.allOutputs) finals.push(`r${pair}`)
    nodes += 2
    if (o.deadEvery && pair % o.deadEvery === 0) {
      graph.message(1, node('Relu', [c], [`dead${pair}`], named ? `dead${pair}` : undefined))
      nodes++
    }
    prev = `r${pair}`
    pair++
  }
  graph.string(2, 'chain')
  for (const t of constants) graph.message(5, t)
  if (!o.constantStart) graph.message(11, valueInfo('x', width))
  if (!o.allOutputs) finals.push(prev)
  for (const f of finals) graph.message(12, valueInfo(f, width))
  return modelOf(graph)
}

/** Write a chain model to `file`; returns its size in bytes. */
export function writeChainModel(file: string, o: ChainOptions): number {
  return writePiecesTo(file, chainModel(o))
}

/**
 * A small file whose constant folding would be huge: `gather` is a constant [1, N] table read by a
 * Gather of `repeat` zero indices ([repeat, N] out); `concat` is one constant [N] read `repeat`
 * times by a Concat. The folded node feeds an Add with the graph input, so it is not an output.
 */
export function foldBombModel(kind: 'gather' | 'concat', n: number, repeat: number): Uint8Array[] {
  const graph = new ProtoWriter(1 << 16)
  const table = new Float32Array(n).map((_, i) => (i % 97) / 97)
  const outDims = kind === 'gather' ? [repeat, n] : [repeat * n]
  if (kind === 'gather') {
    const idx = new ProtoWriter()
    idx.int64(1, repeat)
    idx.int64(2, DataType.INT64)
    idx.string(8, 'indices')
    idx.bytes(9, new Uint8Array(8 * repeat))
    graph.message(1, node('Gather', ['table', 'indices'], ['big'], 'bomb'))
    graph.message(5, floatTensor('table', [1, n], table))
    graph.message(5, idx)
  } else {
    const concat = node('Concat', new Array<string>(repeat).fill('table'), ['big'], 'bomb')
    const axis = new ProtoWriter()
    axis.string(1, 'axis')
    axis.int64(3, 0)
    axis.int64(20, 2)
    concat.message(5, axis)
    graph.message(1, concat)
    graph.message(5, floatTensor('table', [n], table))
  }
  graph.message(1, node('Add', ['big', 'x'], ['y'], 'add'))
  graph.string(2, 'fold-bomb')
  graph.message(11, tensorInfo('x', outDims))
  graph.message(12, tensorInfo('y', outDims))
  return modelOf(graph)
}

function tensorInfo(name: string, dimsList: number[]): ProtoWriter {
  const dims = new ProtoWriter()
  for (const d of dimsList) {
    const dim = new ProtoWriter()
    dim.int64(1, d)
    dims.message(1, dim)
  }
  const tensor = new ProtoWriter()
  tensor.int64(1, DataType.FLOAT)
  tensor.message(2, dims)
  const type = new ProtoWriter()
  type.message(1, tensor)
  const w = new ProtoWriter()
  w.string(1, name)
  w.message(2, type)
  return w
}

/** Write pieces to a file; returns its size. */
export function writePiecesTo(file: string, pieces: Uint8Array[]): number {
  const fd = fs.openSync(file, 'w')
  let bytes = 0
  try {
    for (const p of pieces) bytes += fs.writeSync(fd, p)
  } finally {
    fs.closeSync(fd)
  }
  return bytes
}

/** A ModelProto (IR 8, opset 17) around `graph`, encoded. */
function modelOf(graph: ProtoWriter): ReturnType<ProtoWriter['finish']> {
  const model = new ProtoWriter()
  model.int64(1, 8)
  model.string(2, 'albertkit-test')
  model.message(7, graph)
  const opset = new ProtoWriter()
  opset.int64(2, 17)
  model.message(8, opset)
  return model.finish()
}
