/**
 * Graph IR → ONNX ModelProto, as a list of byte pieces: tensor bytes are referenced, never copied,
 * so a model can be streamed to a file. Fields are written in field-number order, as protobuf's own
 * serializers do; verbatim fields kept by the decoder go last.
 */
import { DataType } from '../ir/dtype.js'
import { AttrType, type Attribute, type Graph, type Model, type StringPair, type Value, type ValueType } from '../ir/graph.js'
import type { Tensor } from '../ir/tensor.js'
import { ProtoWriter } from '../protobuf/wire.js'

/** Where one external tensor goes: the data file's name and the byte offset in it. */
export interface ExternalPlacement {
  location: string
  offset: number
}

export interface EncodeOptions {
  /** Decide, per initializer, whether its bytes go to an external file instead of raw_data. */
  placeExternal?: (value: Value) => ExternalPlacement | undefined
}

export function encodeModel(model: Model, opts: EncodeOptions = {}): Uint8Array[] {
  const w = new ProtoWriter(256)
  w.int64(1, model.irVersion)
  if (model.producerName !== undefined) w.string(2, model.producerName)
  if (model.producerVersion !== undefined) w.string(3, model.producerVersion)
  if (model.domain !== undefined) w.string(4, model.domain)
  if (model.modelVersion !== undefined) w.int64(5, model.modelVersion)
  if (model.docString !== undefined) w.string(6, model.docString)
  w.message(7, encodeGraph(model.graph, opts))
  for (const o of model.opsetImports) {
    const ow = new ProtoWriter(32)
    if (o.domain) ow.string(1, o.domain)
    ow.int64(2, o.version)
    w.message(8, ow)
  }
  for (const p of model.metadataProps) w.message(14, stringPair(p))
  for (const f of model.functions) w.bytes(25, f)
  for (const u of model.unknown ?? []) w.appendRaw(u)
  return w.finish()
}

function encodeGraph(g: Graph, opts: EncodeOptions): ProtoWriter {
  const w = new ProtoWriter(1024)
  for (const n of g.nodes) {
    const nw = new ProtoWriter(128)
    for (const v of n.inputs) nw.string(1, v ? v.name : '')
    for (const v of n.outputs) nw.string(2, v ? v.name : '')
    if (n.name) nw.string(3, n.name)
    nw.string(4, n.opType)
    for (const a of n.attributes) nw.message(5, encodeAttribute(a, opts))
    if (n.docString !== undefined) nw.string(6, n.docString)
    if (n.domain) nw.string(7, n.domain)
    if (n.overload !== undefined) nw.string(8, n.overload)
    for (const p of n.metadataProps ?? []) nw.message(9, stringPair(p))
    for (const u of n.unknown ?? []) nw.appendRaw(u)
    w.message(1, nw)
  }
  if (g.name) w.string(2, g.name)
  const inputs = new Set(g.inputs)
  const outputs = new Set(g.outputs)
  for (const v of g.values.values()) {
    if (!v.const) continue
    const tw = encodeTensor(v.const, v.name, opts.placeExternal?.(v))
    if (v.docString !== undefined) tw.string(12, v.docString)
    for (const p of v.metadataProps ?? []) tw.message(16, stringPair(p))
    for (const u of v.unknown ?? []) tw.appendRaw(u)
    w.message(5, tw)
  }
  if (g.docString !== undefined) w.string(10, g.docString)
  for (const v of g.inputs) w.message(11, valueInfo(v))
  for (const v of g.outputs) w.message(12, valueInfo(v))
  for (const v of g.values.values()) {
    if (v.const || inputs.has(v) || outputs.has(v) || !v.type || v.type.inferred) continue
    w.message(13, valueInfo(v))
  }
  for (const p of g.metadataProps ?? []) w.message(16, stringPair(p))
  for (const u of g.unknown ?? []) w.appendRaw(u)
  return w
}

function encodeAttribute(a: Attribute, opts: EncodeOptions): ProtoWriter {
  const w = new ProtoWriter(64)
  w.string(1, a.name)
  if (a.f !== undefined) w.float(2, a.f)
  if (a.i !== undefined) w.int64(3, a.i)
  if (a.s !== undefined) w.bytes(4, a.s)
  if (a.t !== undefined) w.message(5, encodeAttrTensor(a.t))
  if (a.g !== undefined) w.message(6, encodeGraph(a.g, opts))
  for (const f of a.floats ?? []) w.float(7, f)
  for (const i of a.ints ?? []) w.int64(8, i)
  for (const s of a.strings ?? []) w.bytes(9, s)
  for (const t of a.tensors ?? []) w.message(10, encodeAttrTensor(t))
  for (const g of a.graphs ?? []) w.message(11, encodeGraph(g, opts))
  if (a.docString !== undefined) w.string(13, a.docString)
  if (a.type !== AttrType.UNDEFINED) w.int64(20, a.type)
  if (a.refAttrName !== undefined) w.string(21, a.refAttrName)
  for (const u of a.unknown ?? []) w.appendRaw(u)
  return w
}

function encodeAttrTensor(t: Tensor): ProtoWriter {
  const w = encodeTensor(t, t.meta?.name, undefined)
  if (t.meta?.docString !== undefined) w.string(12, t.meta.docString)
  for (const u of t.meta?.unknown ?? []) w.appendRaw(u)
  return w
}

/** TensorProto fields 1, 2, (6), 8, 9 or 13/14; the caller appends doc string and the rest. */
function encodeTensor(t: Tensor, name: string | undefined, external: ExternalPlacement | undefined): ProtoWriter {
  const w = new ProtoWriter(64)
  for (const d of t.dims) w.int64(1, d)
  w.int64(2, t.dtype)
  if (t.dtype === DataType.STRING) for (const s of t.strings ?? []) w.bytes(6, s)
  if (name !== undefined) w.string(8, name)
  if (t.dtype !== DataType.STRING && !external) w.bytes(9, t.data)
  if (external) {
    w.message(13, stringPair({ key: 'location', value: external.location }))
    w.message(13, stringPair({ key: 'offset', value: String(external.offset) }))
    w.message(13, stringPair({ key: 'length', value: String(t.byteLength) }))
    w.int64(14, 1)
  }
  return w
}

function valueInfo(v: Value): ProtoWriter {
  const w = new ProtoWriter(64)
  w.string(1, v.name)
  const type: ValueType | undefined = v.type ?? (v.const ? { tensor: { elemType: v.const.dtype, shape: [...v.const.dims] } } : undefined)
  if (type) w.message(2, typeProto(type))
  if (v.docString !== undefined && !v.const) w.string(3, v.docString)
  for (const p of (!v.const && v.metadataProps) || []) w.message(4, stringPair(p))
  return w
}

function typeProto(t: ValueType): ProtoWriter {
  const w = new ProtoWriter(32)
  if (t.encoded) {
    w.appendRaw(t.encoded)
    return w
  }
  if (t.tensor) {
    const tw = new ProtoWriter(32)
    tw.int64(1, t.tensor.elemType)
    if (t.tensor.shape) {
      const sw = new ProtoWriter(32)
      for (const d of t.tensor.shape) {
        const dw = new ProtoWriter(16)
        if (typeof d === 'number') dw.int64(1, d)
        else if (typeof d === 'string') dw.string(2, d)
        sw.message(1, dw)
      }
      tw.message(2, sw)
    }
    w.message(1, tw)
  }
  if (t.denotation !== undefined) w.string(6, t.denotation)
  return w
}

function stringPair(p: StringPair): ProtoWriter {
  const w = new ProtoWriter(32)
  w.string(1, p.key)
  w.string(2, p.value)
  return w
}
