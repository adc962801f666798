/**
 * ONNX ModelProto bytes → graph IR. Tensor bytes stay views into the input buffer. Fields the IR
 * does not model are kept verbatim so that writing the model back loses nothing.
 */
import { DataType, bitsOf, byteLengthOf, dtypeName } from '../ir/dtype.js'
import {
  AttrType,
  Graph,
  Model,
  Node,
  type Attribute,
  type Dim,
  type StringPair,
  type Unknown,
  type Value,
  type ValueType,
} from '../ir/graph.js'
import { Tensor, bytesOf, elementCount, type TensorMeta } from '../ir/tensor.js'
import { undefinedValue } from '../ir/check.js'
import { ProtoReader, WireError, WIRE_LEN, readFloats, readInt64s } from '../protobuf/wire.js'
import type { Int } from '../util/int64.js'

/** Where an external tensor's bytes live, as the TensorProto says. */
export interface ExternalRef {
  location: string
  offset: number
  length: number | undefined
  tensorName: string
}

/** Supplies the bytes of a tensor stored outside the model file. */
export type ExternalResolver = (ref: ExternalRef) => Uint8Array

export interface DecodeOptions {
  external?: ExternalResolver
}

export class DecodeError extends Error {
  override name = 'DecodeError'
}

/** Limit on nesting of subgraphs, so a hostile file cannot exhaust the stack. */
const MAX_DEPTH = 64

/**
 * The most graph entries — nodes, initializers, inputs, outputs and value_info, subgraphs
 * included — a model may have: each costs about a kilobyte in memory and some time in every pass,
 * and an ALBERT graph has a few thousand. Counted before any node or value is made.
 */
export const MAX_GRAPH_ENTRIES = 1_000_000

export function decodeModel(bytes: Uint8Array, opts: DecodeOptions = {}): Model {
  try {
    return new Decoder(opts).model(new ProtoReader(bytes))
  } catch (e) {
    if (e instanceof WireError) throw new DecodeError(`not a valid ONNX model: ${e.message}`)
    throw e
  }
}

interface EntryCounts {
  nodes: number
  initializers: number
  io: number
  infos: number
}

class Decoder {
  private depth = 0
  private readonly counts: EntryCounts = { nodes: 0, initializers: 0, io: 0, infos: 0 }
  private entries = 0
  constructor(private readonly opts: DecodeOptions) {}

  model(r: ProtoReader): Model {
    const m = new Model()
    m.opsetImports = []
    let graphReader: ProtoReader | undefined
    const unknown: Unknown = []
    while (r.nextField()) {
      if (r.field === 1) m.irVersion = Number(r.int64())
      else if (r.field === 2) m.producerName = r.string()
      else if (r.field === 3) m.producerVersion = r.string()
      else if (r.field === 4) m.domain = r.string()
      else if (r.field === 5) m.modelVersion = r.int64()
      else if (r.field === 6) m.docString = r.string()
      else if (r.field === 7) graphReader = r.message()
      else if (r.field === 8) m.opsetImports.push(this.opset(r.message()))
      else if (r.field === 14) m.metadataProps.push(stringPair(r.message()))
      else if (r.field === 25) m.functions.push(r.bytes())
      else unknown.push(r.skipField())
    }
    if (!graphReader) throw new DecodeError('the model has no graph')
    m.graph = this.graph(graphReader, undefined)
    if (unknown.length) m.unknown = unknown
    return m
  }

  private opset(r: ProtoReader): { domain: string; version: number } {
    let domain = ''
    let version = 0
    while (r.nextField()) {
      if (r.field === 1) domain = r.string()
      else if (r.field === 2) version = Number(r.int64())
      else r.skipField()
    }
    return { domain, version }
  }

  graph(r: ProtoReader, parent: Graph | undefined): Graph {
    if (++this.depth > MAX_DEPTH) throw new DecodeError(`subgraphs nested deeper than ${MAX_DEPTH}`)
    const g = new Graph(parent)
    const nodeReaders: ProtoReader[] = []
    const inits: ProtoReader[] = []
    const inputs: ProtoReader[] = []
    const outputs: ProtoReader[] = []
    const infos: ProtoReader[] = []
    const unknown: Unknown = []
    const metadata: StringPair[] = []
    /** GraphProto's repeated message fields, read after the scan: node, initializer, input, output, value_info. */
    const messages: Record<number, ProtoReader[]> = { 1: nodeReaders, 5: inits, 11: inputs, 12: outputs, 13: infos }
    while (r.nextField()) {
      if (this.overLimit(r.field)) {
        r.skipField()
        continue
      }
      const repeated = messages[r.field]
      if (repeated) repeated.push(r.message())
      else if (r.field === 2) g.name = r.string()
      else if (r.field === 10) g.docString = r.string()
      else if (r.field === 16) metadata.push(stringPair(r.message()))
      else unknown.push(r.skipField())
    }
    if (this.entries > MAX_GRAPH_ENTRIES) throw this.tooLarge()
    if (unknown.length) g.unknown = unknown
    if (metadata.length) g.metadataProps = metadata

    for (const ir of inits) {
      const { tensor, name, docString, metadataProps, unknown: rest } = this.tensor(ir)
      if (!name) throw new DecodeError('an initializer has no name')
      if (g.values.has(name)) throw new DecodeError(`initializer '${name}' is defined twice`)
      const v = g.addInitializer(name, tensor)
      v.docString = docString
      v.metadataProps = metadataProps
      if (rest?.length) v.unknown = rest
    }
    for (const ir of inputs) {
      const info = valueInfo(ir)
      let v = g.values.get(info.name)
      if (v && !v.const) throw new DecodeError(`graph input '${info.name}' is listed twice`)
      if (!v) v = g.addValue(info.name)
      applyInfo(v, info)
      g.inputs.push(v)
    }
    for (const ir of infos) {
      const info = valueInfo(ir)
      const v = g.values.get(info.name) ?? g.addValue(info.name)
      applyInfo(v, info)
    }
    const graphInputs = new Set(g.inputs)
    for (const nr of nodeReaders) this.node(nr, g, graphInputs)
    for (const ir of outputs) {
      const info = valueInfo(ir)
      const v = g.lookup(info.name) ?? g.addValue(info.name)
      if (v.graph === g) applyInfo(v, info)
      g.outputs.push(v)
    }
    checkDefined(g)
    this.depth--
    return g
  }

  /** Count a graph entry (GraphProto fields 1, 5, 11, 12, 13); past the limit, true: only counted from then on. */
  private overLimit(field: number): boolean {
    const c = this.counts
    if (field === 1) c.nodes++
    else if (field === 5) c.initializers++
    else if (field === 11 || field === 12) c.io++
    else if (field === 13) c.infos++
    else return false
    return ++this.entries > MAX_GRAPH_ENTRIES
  }

  private tooLarge(): DecodeError {
    const c = this.counts
    const n = (x: number) => x.toLocaleString('en-US')
    return new DecodeError(
      `the graph is too large: ${n(c.nodes)} nodes, ${n(c.initializers)} initializers, ${n(c.io)} inputs and outputs, ${n(c.infos)} value_info ` +
        `(${n(this.entries)} entries, subgraphs included); albertkit reads at most ${n(MAX_GRAPH_ENTRIES)}`,
    )
  }

  private node(r: ProtoReader, g: Graph, graphInputs: ReadonlySet<Value>): void {
    const inputNames: string[] = []
    const outputNames: string[] = []
    const node = new Node(g, '')
    let unknown: Unknown | undefined
    let metadata: StringPair[] | undefined
    let attrReaders: ProtoReader[] | undefined
    while (r.nextField()) {
      if (r.field === 1) inputNames.push(r.string())
      else if (r.field === 2) outputNames.push(r.string())
      else if (r.field === 3) node.name = r.string()
      else if (r.field === 4) node.opType = r.string()
      else if (r.field === 5) (attrReaders ??= []).push(r.message())
      else if (r.field === 6) node.docString = r.string()
      else if (r.field === 7) node.domain = r.string()
      else if (r.field === 8) node.overload = r.string()
      else if (r.field === 9) (metadata ??= []).push(stringPair(r.message()))
      else (unknown ??= []).push(r.skipField())
    }
    if (!node.opType) throw new DecodeError(`node '${node.name}' has no op_type`)
    if (unknown) node.unknown = unknown
    if (metadata) node.metadataProps = metadata
    for (const ar of attrReaders ?? []) node.attributes.push(this.attribute(ar, g))
    const inputs = inputNames.map((name) => (name === '' ? null : (g.lookup(name) ?? g.addValue(name))))
    const outputs = outputNames.map((name) => {
      if (name === '') return null
      let v = g.values.get(name)
      if (v && (v.producer || v.const || graphInputs.has(v))) {
        throw new DecodeError(`value '${name}' is produced twice (by ${node} and another)`)
      }
      if (!v) v = g.addValue(name)
      v.producer = node
      return v
    })
    node.wire(inputs, outputs)
    g.appendNode(node)
  }

  private attribute(r: ProtoReader, g: Graph): Attribute {
    const a: Attribute = { name: '', type: AttrType.UNDEFINED }
    const unknown: Unknown = []
    while (r.nextField()) {
      if (r.field === 1) a.name = r.string()
      else if (r.field === 2) a.f = r.fixed32Float()
      else if (r.field === 3) a.i = r.int64()
      else if (r.field === 4) a.s = r.bytes()
      else if (r.field === 5) a.t = this.attrTensor(r.message())
      else if (r.field === 6) a.g = this.graph(r.message(), g)
      else if (r.field === 7) readFloats(r, r.wire, (a.floats ??= []))
      else if (r.field === 8) readInt64s(r, r.wire, (a.ints ??= []))
      else if (r.field === 9) (a.strings ??= []).push(r.bytes())
      else if (r.field === 10) (a.tensors ??= []).push(this.attrTensor(r.message()))
      else if (r.field === 11) (a.graphs ??= []).push(this.graph(r.message(), g))
      else if (r.field === 13) a.docString = r.string()
      else if (r.field === 20) a.type = Number(r.int64()) as AttrType // as read: a type number this reader does not know is written back unchanged
      else if (r.field === 21) a.refAttrName = r.string()
      else unknown.push(r.skipField())
    }
    if (unknown.length) a.unknown = unknown
    if (a.type === AttrType.UNDEFINED) a.type = inferAttrType(a)
    return a
  }

  private attrTensor(r: ProtoReader): Tensor {
    const { tensor, name, docString, metadataProps, unknown } = this.tensor(r)
    const meta: TensorMeta = {}
    if (name !== undefined) meta.name = name
    if (docString !== undefined) meta.docString = docString
    if (unknown?.length || metadataProps) meta.unknown = unknown ?? []
    if (Object.keys(meta).length) tensor.meta = meta
    return tensor
  }

  tensor(r: ProtoReader): DecodedTensor {
    const dims: Int[] = []
    let dtype = DataType.UNDEFINED
    let name: string | undefined
    let docString: string | undefined
    let raw: Uint8Array | undefined
    let location = 0
    const external: StringPair[] = []
    const metadataProps: StringPair[] = []
    const unknown: Unknown = []
    const floatData: Uint8Array[] = []
    const floatSingles: number[] = []
    const int32s: Int[] = []
    const int64s: Int[] = []
    const doubles: number[] = []
    const uint64s: Int[] = []
    const strings: Uint8Array[] = []
    while (r.nextField()) {
      if (r.field === 1) readInt64s(r, r.wire, dims)
      else if (r.field === 2) dtype = Number(r.int64())
      else if (r.field === 4) {
        if (r.wire === WIRE_LEN) floatData.push(r.bytes())
        else floatSingles.push(r.fixed32Float())
      } else if (r.field === 5) readInt64s(r, r.wire, int32s)
      else if (r.field === 6) strings.push(r.bytes())
      else if (r.field === 7) readInt64s(r, r.wire, int64s)
      else if (r.field === 8) name = r.string()
      else if (r.field === 9) raw = r.bytes()
      else if (r.field === 10) {
        if (r.wire === WIRE_LEN) {
          const sub = r.message()
          while (!sub.done) doubles.push(sub.fixed64Double())
        } else doubles.push(r.fixed64Double())
      } else if (r.field === 11) readInt64s(r, r.wire, uint64s)
      else if (r.field === 12) docString = r.string()
      else if (r.field === 13) external.push(stringPair(r.message()))
      else if (r.field === 14) location = Number(r.int64())
      else if (r.field === 16) metadataProps.push(stringPair(r.message()))
      else unknown.push(r.skipField())
    }
    const label = name ? `tensor '${name}'` : 'a tensor'
    const shape = dims.map((d) => {
      const n = Number(d)
      if (!Number.isSafeInteger(n) || n < 0) throw new DecodeError(`${label} has an invalid dimension ${d}`)
      return n
    })
    const count = elementCount(shape)
    if (!Number.isSafeInteger(count)) throw new DecodeError(`${label} has an absurd element count`)
    let data: Uint8Array
    if (dtype === DataType.STRING) {
      if (strings.length !== count) throw new DecodeError(`${label} has ${strings.length} strings for ${count} elements`)
      const t = new Tensor(dtype, shape, new Uint8Array(0), strings)
      return pack(t)
    }
    if (bitsOf(dtype) === undefined) throw new DecodeError(`${label} has an unknown element type ${dtypeName(dtype)}`)
    const want = byteLengthOf(dtype, count)
    if (location === 1) {
      data = this.external(external, label, name ?? '', want)
    } else if (raw) {
      data = raw
    } else {
      data = typedFieldBytes(dtype, count, { floatData, floatSingles, int32s, int64s, doubles, uint64s }, label)
    }
    if (data.byteLength !== want) {
      throw new DecodeError(`${label} (${dtypeName(dtype)}[${shape.join(',')}]) holds ${data.byteLength} bytes, needs ${want}`)
    }
    return pack(new Tensor(dtype, shape, data))

    function pack(tensor: Tensor): DecodedTensor {
      const out: DecodedTensor = { tensor }
      if (name !== undefined) out.name = name
      if (docString !== undefined) out.docString = docString
      if (metadataProps.length) out.metadataProps = metadataProps
      if (unknown.length) out.unknown = unknown
      return out
    }
  }

  private external(entries: StringPair[], label: string, tensorName: string, want: number): Uint8Array {
    const get = (k: string) => entries.find((e) => e.key === k)?.value
    const location = get('location')
    if (!location) throw new DecodeError(`${label} is stored externally but names no location`)
    const offset = Number(get('offset') ?? 0)
    const lengthText = get('length')
    const length = lengthText === undefined ? undefined : Number(lengthText)
    if (!Number.isSafeInteger(offset) || offset < 0) throw new DecodeError(`${label} has an invalid external offset`)
    if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) {
      throw new DecodeError(`${label} has an invalid external length`)
    }
    if (length !== undefined && length !== want) {
      throw new DecodeError(`${label} declares ${length} external bytes, needs ${want}`)
    }
    if (!this.opts.external) throw new DecodeError(`${label} is stored in external file '${location}', which was not loaded`)
    return this.opts.external({ location, offset, length: length ?? want, tensorName })
  }
}

export interface DecodedTensor {
  tensor: Tensor
  name?: string
  docString?: string
  metadataProps?: StringPair[]
  unknown?: Unknown
}

interface TypedFields {
  floatData: Uint8Array[]
  floatSingles: number[]
  int32s: Int[]
  int64s: Int[]
  doubles: number[]
  uint64s: Int[]
}

/** The element types ONNX stores one per int32_data entry, by the typed array each packs into. */
const INT32_DATA: readonly (readonly [{ from(values: ArrayLike<Int>, map: (v: Int) => number): ArrayBufferView }, readonly DataType[]])[] = [
  [Int32Array, [DataType.INT32]],
  [Int16Array, [DataType.INT16]],
  [Int8Array, [DataType.INT8]],
  [Uint16Array, [DataType.UINT16, DataType.FLOAT16, DataType.BFLOAT16]],
  [Uint8Array, [DataType.UINT8, DataType.BOOL, DataType.FLOAT8E4M3FN, DataType.FLOAT8E4M3FNUZ, DataType.FLOAT8E5M2, DataType.FLOAT8E5M2FNUZ, DataType.FLOAT8E8M0]],
]

/** Bytes of a tensor given in the typed repeated fields instead of raw_data. */
function typedFieldBytes(dtype: DataType, count: number, f: TypedFields, label: string): Uint8Array {
  const packed = INT32_DATA.find(([, types]) => types.includes(dtype))?.[0]
  if (packed) return bytesOf(packed.from(f.int32s, Number))
  switch (dtype) {
    case DataType.FLOAT:
    case DataType.COMPLEX64: {
      if (f.floatSingles.length) return bytesOf(Float32Array.from(f.floatSingles))
      if (f.floatData.length === 1) return f.floatData[0]!
      const out = new Uint8Array(f.floatData.reduce((n, b) => n + b.byteLength, 0))
      let off = 0
      for (const b of f.floatData) {
        out.set(b, off)
        off += b.byteLength
      }
      return out
    }
    case DataType.INT64:
      return bytesOf(BigInt64Array.from(f.int64s, (v) => BigInt(v)))
    case DataType.DOUBLE:
    case DataType.COMPLEX128:
      return bytesOf(Float64Array.from(f.doubles))
    case DataType.UINT32:
      return bytesOf(Uint32Array.from(f.uint64s, Number))
    case DataType.UINT64:
      return bytesOf(BigUint64Array.from(f.uint64s, (v) => BigInt.asUintN(64, BigInt(v))))
    default:
      if (count === 0) return new Uint8Array(0)
      throw new DecodeError(`${label}: ${dtypeName(dtype)} data outside raw_data is not supported`)
  }
}

interface ValueInfo {
  name: string
  type?: ValueType
  docString?: string
  metadataProps?: StringPair[]
}

function valueInfo(r: ProtoReader): ValueInfo {
  const info: ValueInfo = { name: '' }
  while (r.nextField()) {
    if (r.field === 1) info.name = r.string()
    else if (r.field === 2) info.type = typeProto(r.message())
    else if (r.field === 3) info.docString = r.string()
    else if (r.field === 4) (info.metadataProps ??= []).push(stringPair(r.message()))
    else r.skipField()
  }
  if (!info.name) throw new DecodeError('a graph input, output or value_info has no name')
  return info
}

function applyInfo(v: Value, info: ValueInfo): void {
  if (info.type) v.type = info.type
  if (info.docString !== undefined) v.docString = info.docString
  if (info.metadataProps) v.metadataProps = info.metadataProps
}

/** TypeProto: tensor element type and shape are modelled; anything more is kept encoded too. */
function typeProto(r: ProtoReader): ValueType {
  const whole = r.buf.subarray(r.pos, r.end)
  const t: ValueType = {}
  let exotic = false
  while (r.nextField()) {
    if (r.field === 1) {
      const tr = r.message()
      let elemType = DataType.UNDEFINED
      let shape: Dim[] | undefined
      while (tr.nextField()) {
        if (tr.field === 1) elemType = Number(tr.int64())
        else if (tr.field === 2) {
          const parsed = shapeProto(tr.message())
          shape = parsed.dims
          if (parsed.exotic) exotic = true
        } else {
          tr.skipField()
          exotic = true
        }
      }
      t.tensor = shape ? { elemType, shape } : { elemType }
    } else if (r.field === 6) {
      t.denotation = r.string()
    } else {
      r.skipField()
      exotic = true
    }
  }
  if (exotic) t.encoded = whole
  return t
}

function shapeProto(r: ProtoReader): { dims: Dim[]; exotic: boolean } {
  const dims: Dim[] = []
  let exotic = false
  while (r.nextField()) {
    if (r.field !== 1) {
      r.skipField()
      exotic = true
      continue
    }
    const dr = r.message()
    let dim: Dim = null
    while (dr.nextField()) {
      if (dr.field === 1) dim = Number(dr.int64())
      else if (dr.field === 2) dim = dr.string()
      else {
        dr.skipField()
        exotic = true
      }
    }
    dims.push(dim)
  }
  return { dims, exotic }
}

function stringPair(r: ProtoReader): StringPair {
  let key = ''
  let value = ''
  while (r.nextField()) {
    if (r.field === 1) key = r.string()
    else if (r.field === 2) value = r.string()
    else r.skipField()
  }
  return { key, value }
}

function inferAttrType(a: Attribute): AttrType {
  if (a.f !== undefined) return AttrType.FLOAT
  if (a.i !== undefined) return AttrType.INT
  if (a.s !== undefined) return AttrType.STRING
  if (a.t !== undefined) return AttrType.TENSOR
  if (a.g !== undefined) return AttrType.GRAPH
  if (a.floats) return AttrType.FLOATS
  if (a.ints) return AttrType.INTS
  if (a.strings) return AttrType.STRINGS
  if (a.tensors) return AttrType.TENSORS
  if (a.graphs) return AttrType.GRAPHS
  return AttrType.UNDEFINED
}

/** Every value read in a graph must be defined: an input, an initializer, a node output or an outer value. */
function checkDefined(g: Graph): void {
  const problem = undefinedValue(g)
  if (problem) throw new DecodeError(problem)
}
