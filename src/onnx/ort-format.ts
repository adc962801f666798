/**
 * The operators of an ORT-format model (the flatbuffer file ORT Mobile loads, file identifier
 * "ORTM"; schema onnxruntime/core/flatbuffers/schema/ort.fbs): each node's domain and op type,
 * in the main graph and in graphs held by attributes, with the opsets the model imports. Only
 * what required_operators.config needs is read; every offset is checked against the buffer, so a
 * damaged file is an error naming the problem, never a read past its end.
 */

/** One operator of an ORT-format model: its domain ('' for ONNX) and the opset the model imports for it. */
export interface OrtOperator {
  domain: string
  opset: number
  op: string
}

/** Flatbuffer field slots (the order of the fields in ort.fbs). */
const SESSION_MODEL = 1
const MODEL_OPSETS = 1
const MODEL_GRAPH = 7
const OPSET_DOMAIN = 0
const OPSET_VERSION = 1
const GRAPH_NODES = 2
const NODE_DOMAIN = 2
const NODE_OP_TYPE = 5
const NODE_ATTRIBUTES = 10
const ATTRIBUTE_GRAPH = 7
const ATTRIBUTE_GRAPHS = 11

/** Graphs nested deeper than this are refused (a well-formed model nests a few levels). */
const MAX_DEPTH = 64

export class OrtFormatError extends Error {
  override name = 'OrtFormatError'
}

class Reader {
  private readonly view: DataView
  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  private check(pos: number, size: number, what: string): void {
    if (!Number.isInteger(pos) || pos < 0 || pos + size > this.bytes.byteLength) throw new OrtFormatError(`${what} lies outside the file (offset ${pos})`)
  }

  u32(pos: number, what: string): number {
    this.check(pos, 4, what)
    return this.view.getUint32(pos, true)
  }

  /** Where field `slot` of the table at `table` is, or undefined when the table leaves it out. */
  field(table: number, slot: number, what: string): number | undefined {
    this.check(table, 4, what)
    const vtable = table - this.view.getInt32(table, true)
    this.check(vtable, 4, `${what}'s field table`)
    const vtableSize = this.view.getUint16(vtable, true)
    const at = 4 + 2 * slot
    if (at + 2 > vtableSize) return undefined
    this.check(vtable + at, 2, `${what}'s field table`)
    const offset = this.view.getUint16(vtable + at, true)
    return offset === 0 ? undefined : table + offset
  }

  /** The table, string or vector a reference field points to. */
  deref(pos: number, what: string): number {
    return pos + this.u32(pos, what)
  }

  table(table: number, slot: number, what: string): number | undefined {
    const f = this.field(table, slot, what)
    return f === undefined ? undefined : this.deref(f, what)
  }

  string(table: number, slot: number, what: string): string {
    const f = this.field(table, slot, what)
    if (f === undefined) return ''
    const s = this.deref(f, what)
    const length = this.u32(s, what)
    this.check(s + 4, length, what)
    return new TextDecoder('utf-8', { fatal: true }).decode(this.bytes.subarray(s + 4, s + 4 + length))
  }

  int64(table: number, slot: number, what: string): number {
    const f = this.field(table, slot, what)
    if (f === undefined) return 0
    this.check(f, 8, what)
    const v = this.view.getBigInt64(f, true)
    if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw new OrtFormatError(`${what} is ${v}`)
    return Number(v)
  }

  /** The tables of a vector-of-tables field. */
  tables(table: number, slot: number, what: string): number[] {
    const f = this.field(table, slot, what)
    if (f === undefined) return []
    const v = this.deref(f, what)
    const n = this.u32(v, what)
    this.check(v + 4, n * 4, what)
    const out: number[] = []
    for (let i = 0; i < n; i++) out.push(this.deref(v + 4 + 4 * i, what))
    return out
  }
}

/** Whether `bytes` start like an ORT-format model (the "ORTM" file identifier). */
export function isOrtFormat(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 8 && bytes[4] === 0x4f && bytes[5] === 0x52 && bytes[6] === 0x54 && bytes[7] === 0x4d
}

/** Every distinct (domain, opset, op) of an ORT-format model, sorted by domain then op. */
export function ortOperators(bytes: Uint8Array): OrtOperator[] {
  if (!isOrtFormat(bytes)) throw new OrtFormatError('not an ORT-format model (no ORTM identifier)')
  const r = new Reader(bytes)
  const session = r.deref(0, 'the root table')
  const model = r.table(session, SESSION_MODEL, 'the model')
  if (model === undefined) throw new OrtFormatError('the file holds no model')
  const opsets = new Map<string, number>()
  for (const o of r.tables(model, MODEL_OPSETS, 'the opset imports')) {
    const domain = r.string(o, OPSET_DOMAIN, 'an opset domain')
    opsets.set(domain === 'ai.onnx' ? '' : domain, r.int64(o, OPSET_VERSION, 'an opset version'))
  }
  const graph = r.table(model, MODEL_GRAPH, 'the graph')
  if (graph === undefined) throw new OrtFormatError('the model has no graph')
  const seen = new Map<string, OrtOperator>()
  const visit = (g: number, depth: number) => {
    if (depth > MAX_DEPTH) throw new OrtFormatError(`graphs nest more than ${MAX_DEPTH} deep`)
    for (const node of r.tables(g, GRAPH_NODES, 'the nodes')) {
      const raw = r.string(node, NODE_DOMAIN, 'a node domain')
      const domain = raw === 'ai.onnx' ? '' : raw
      const op = r.string(node, NODE_OP_TYPE, 'a node op type')
      const opset = opsets.get(domain)
      if (opset === undefined) throw new OrtFormatError(`op ${op} of domain '${raw || 'ai.onnx'}' has no opset import`)
      seen.set(`${domain}\u0000${op}`, { domain, opset, op })
      for (const a of r.tables(node, NODE_ATTRIBUTES, 'the attributes')) {
        const sub = r.table(a, ATTRIBUTE_GRAPH, 'an attribute graph')
        if (sub !== undefined) visit(sub, depth + 1)
        for (const s of r.tables(a, ATTRIBUTE_GRAPHS, 'attribute graphs')) visit(s, depth + 1)
      }
    }
  }
  visit(graph, 0)
  return [...seen.values()].sort((a, b) => a.domain.localeCompare(b.domain) || (a.op < b.op ? -1 : a.op > b.op ? 1 : 0))
}
