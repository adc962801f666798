/**
 * The graph IR every stage after the checkpoint readers works on: values with one producer and
 * their consumers, nodes in an order, constants as typed-array-backed tensors. No protobuf here:
 * `src/onnx/` converts to and from the file format at the edges.
 */
import { DataType } from './dtype.js'
import { Tensor } from './tensor.js'
import type { Int } from '../onnx/wire.js'

/** A dimension: a size, a symbolic name, or unknown. */
export type Dim = number | string | null

export interface TensorType {
  elemType: DataType
  /** undefined: rank unknown. */
  shape?: Dim[]
}

/** A value's declared type. Non-tensor types (sequences, maps, ...) are kept as encoded bytes. */
export interface ValueType {
  tensor?: TensorType
  /** TypeProto bytes of a type this IR does not model. */
  encoded?: Uint8Array
  denotation?: string
  /** Derived by inference here, not declared by the file: not written out as value_info. */
  inferred?: boolean
}

export interface StringPair {
  key: string
  value: string
}

/** Fields of a protobuf message that the IR keeps verbatim (tag included), to write back unchanged. */
export type Unknown = Uint8Array[]

export class Value {
  name: string
  type: ValueType | undefined
  producer: Node | null = null
  /** Each consuming node, once per input slot that reads this value. */
  readonly consumers: Node[] = []
  /** Set when the value is a constant (an initializer). */
  const: Tensor | undefined
  docString: string | undefined
  metadataProps: StringPair[] | undefined
  /** Fields of the value_info / initializer message the IR does not model. */
  unknown: Unknown | undefined
  readonly graph: Graph

  constructor(graph: Graph, name: string) {
    this.graph = graph
    this.name = name
  }

  get isInitializer(): boolean {
    return this.const !== undefined
  }

  get isGraphInput(): boolean {
    return this.graph.inputs.includes(this)
  }

  get isGraphOutput(): boolean {
    return this.graph.outputs.includes(this)
  }

  /** Element type when known (from the declared type or the constant). */
  get elemType(): DataType | undefined {
    return this.const?.dtype ?? this.type?.tensor?.elemType
  }

  /** Shape when known (from the constant or the declared type). */
  get shape(): Dim[] | undefined {
    if (this.const) return [...this.const.dims]
    return this.type?.tensor?.shape
  }

  setTensorType(elemType: DataType, shape?: Dim[]): void {
    this.type = { tensor: shape ? { elemType, shape } : { elemType } }
  }
}

export enum AttrType {
  UNDEFINED = 0,
  FLOAT = 1,
  INT = 2,
  STRING = 3,
  TENSOR = 4,
  GRAPH = 5,
  FLOATS = 6,
  INTS = 7,
  STRINGS = 8,
  TENSORS = 9,
  GRAPHS = 10,
  SPARSE_TENSOR = 11,
  SPARSE_TENSORS = 12,
  TYPE_PROTO = 13,
  TYPE_PROTOS = 14,
}

export interface Attribute {
  name: string
  type: AttrType
  f?: number
  i?: Int
  s?: Uint8Array
  t?: Tensor
  g?: Graph
  floats?: number[]
  ints?: Int[]
  strings?: Uint8Array[]
  tensors?: Tensor[]
  graphs?: Graph[]
  refAttrName?: string
  docString?: string
  /** Fields kept verbatim (sparse tensors, type protos, future fields). */
  unknown?: Unknown
}

export class Node {
  opType: string
  domain: string
  name: string
  readonly inputs: (Value | null)[] = []
  readonly outputs: (Value | null)[] = []
  attributes: Attribute[] = []
  docString: string | undefined
  overload: string | undefined
  metadataProps: StringPair[] | undefined
  unknown: Unknown | undefined
  graph: Graph

  constructor(graph: Graph, opType: string, domain = '', name = '') {
    this.graph = graph
    this.opType = opType
    this.domain = domain
    this.name = name
  }

  attr(name: string): Attribute | undefined {
    return this.attributes.find((a) => a.name === name)
  }

  attrInt(name: string, fallback: number): number
  attrInt(name: string): number | undefined
  attrInt(name: string, fallback?: number): number | undefined {
    const a = this.attr(name)
    return a?.i !== undefined ? Number(a.i) : fallback
  }

  attrFloat(name: string, fallback: number): number
  attrFloat(name: string): number | undefined
  attrFloat(name: string, fallback?: number): number | undefined {
    return this.attr(name)?.f ?? fallback
  }

  attrInts(name: string): number[] | undefined {
    return this.attr(name)?.ints?.map(Number)
  }

  attrString(name: string): string | undefined {
    const s = this.attr(name)?.s
    return s ? new TextDecoder().decode(s) : undefined
  }

  setAttr(attr: Attribute): void {
    const i = this.attributes.findIndex((a) => a.name === attr.name)
    if (i >= 0) this.attributes[i] = attr
    else this.attributes.push(attr)
  }

  removeAttr(name: string): void {
    this.attributes = this.attributes.filter((a) => a.name !== name)
  }

  /** Point input slot `index` at `value` (null for an omitted optional input), keeping use lists right. */
  setInput(index: number, value: Value | null): void {
    const old = this.inputs[index]
    if (old) removeOne(old.consumers, this)
    while (this.inputs.length <= index) this.inputs.push(null)
    this.inputs[index] = value
    if (value) value.consumers.push(this)
  }

  /** Subgraphs held in this node's attributes. */
  *subgraphs(): Generator<Graph> {
    for (const a of this.attributes) {
      if (a.g) yield a.g
      if (a.graphs) yield* a.graphs
    }
  }

  toString(): string {
    return `${this.domain ? this.domain + '.' : ''}${this.opType} node '${this.name}'`
  }
}

export const attrInt = (name: string, i: Int): Attribute => ({ name, type: AttrType.INT, i })
export const attrInts = (name: string, ints: Int[]): Attribute => ({ name, type: AttrType.INTS, ints })
export const attrFloat = (name: string, f: number): Attribute => ({ name, type: AttrType.FLOAT, f })
export const attrFloats = (name: string, floats: number[]): Attribute => ({ name, type: AttrType.FLOATS, floats })
export const attrString = (name: string, s: string): Attribute => ({
  name,
  type: AttrType.STRING,
  s: new TextEncoder().encode(s),
})
export const attrTensor = (name: string, t: Tensor): Attribute => ({ name, type: AttrType.TENSOR, t })

export interface NodeSpec {
  name?: string
  domain?: string
  attrs?: Attribute[]
}

export class Graph {
  name = ''
  nodes: Node[] = []
  inputs: Value[] = []
  outputs: Value[] = []
  /** Every value defined in this graph (inputs, initializers, node outputs, declared value_info). */
  readonly values = new Map<string, Value>()
  docString: string | undefined
  metadataProps: StringPair[] | undefined
  /** Fields kept verbatim: sparse initializers, quantization annotations, future fields. */
  unknown: Unknown | undefined
  /** The graph whose node holds this one as an attribute; names resolve outwards through it. */
  readonly parent: Graph | undefined
  private nameCounter = 0

  constructor(parent?: Graph) {
    this.parent = parent
  }

  get root(): Graph {
    let g: Graph = this
    while (g.parent) g = g.parent
    return g
  }

  /** A value by name, from this graph or an enclosing one. */
  lookup(name: string): Value | undefined {
    return this.values.get(name) ?? this.parent?.lookup(name)
  }

  /** Values that are constants, in definition order. */
  get initializers(): Value[] {
    const out: Value[] = []
    for (const v of this.values.values()) if (v.const) out.push(v)
    return out
  }

  /** Create a value with exactly this name; it must be new to this graph. */
  addValue(name: string): Value {
    if (this.values.has(name)) throw new Error(`value '${name}' is defined twice`)
    const v = new Value(this, name)
    this.values.set(name, v)
    return v
  }

  /** A name not used anywhere in the model (this graph, its ancestors or their subgraphs). */
  uniqueName(base: string): string {
    const root = this.root
    if (!root.nameTaken(base)) return base
    for (;;) {
      const candidate = `${base}_${++root.nameCounter}`
      if (!root.nameTaken(candidate)) return candidate
    }
  }

  private nameTaken(name: string): boolean {
    if (this.values.has(name)) return true
    for (const n of this.nodes) for (const g of n.subgraphs()) if (g.nameTaken(name)) return true
    return false
  }

  private nodeNames: Set<string> | undefined

  /** A node name not used by any node of this graph (nodes added through addNode are tracked). */
  uniqueNodeName(base: string): string {
    const names = (this.nodeNames ??= new Set(this.nodes.map((n) => n.name)))
    let name = base
    for (let i = 1; names.has(name); i++) name = `${base}_${i}`
    names.add(name)
    return name
  }

  /** A new value with a fresh name derived from `base`. */
  newValue(base: string): Value {
    return this.addValue(this.uniqueName(base))
  }

  /** A new constant value holding `tensor`. */
  addInitializer(name: string, tensor: Tensor): Value {
    const v = this.addValue(name)
    v.const = tensor
    return v
  }

  /**
   * Append a node. Inputs are values (or null for an omitted optional input); outputs are fresh
   * values named from `outputs` (names made unique). Returns the node.
   */
  addNode(opType: string, inputs: (Value | null)[], outputs: string[], spec: NodeSpec = {}): Node {
    const node = new Node(this, opType, spec.domain ?? '', spec.name ?? '')
    if (node.name) this.nodeNames?.add(node.name)
    if (spec.attrs) node.attributes = spec.attrs
    inputs.forEach((v, i) => node.setInput(i, v))
    for (const o of outputs) {
      const v = this.newValue(o)
      v.producer = node
      node.outputs.push(v)
    }
    this.nodes.push(node)
    return node
  }

  /**
   * Replace `old` by a new node computing the same outputs (the output values keep their names
   * and readers), placed where `old` was. Returns the new node.
   */
  replaceNode(old: Node, opType: string, inputs: (Value | null)[], spec: NodeSpec = {}): Node {
    const node = new Node(this, opType, spec.domain ?? '', spec.name ?? old.name)
    if (spec.attrs) node.attributes = spec.attrs
    inputs.forEach((v, i) => node.setInput(i, v))
    const at = this.nodes.indexOf(old)
    this.removeNode(old)
    for (const o of old.outputs) {
      if (o) o.producer = node
      node.outputs.push(o)
    }
    if (at >= 0) this.nodes.splice(at, 0, node)
    else this.nodes.push(node)
    return node
  }

  /** A new node with one fresh output named from `name`, placed just before `before`. */
  addNodeBefore(before: Node, opType: string, inputs: (Value | null)[], name: string, spec: Omit<NodeSpec, 'name'> = {}): Node {
    const node = this.addNode(opType, inputs, [name], { ...spec, name: this.uniqueNodeName(name) })
    this.moveLastBefore(before)
    return node
  }

  /** Detach `node` and let its outputs hold `tensors` as constants (readers unchanged). */
  replaceByConstants(node: Node, tensors: Tensor[]): void {
    this.removeNode(node)
    node.outputs.forEach((o, i) => {
      if (!o) return
      o.const = tensors[i]
      o.producer = null
      o.type = undefined
    })
  }

  /** Move the last node added to just before `before` (keeps nodes in topological order). */
  moveLastBefore(before: Node): void {
    const node = this.nodes.pop()!
    const at = this.nodes.indexOf(before)
    this.nodes.splice(at < 0 ? this.nodes.length : at, 0, node)
  }

  /** Insert an existing, already-wired node before `before` (or at the end). */
  insertNode(node: Node, before?: Node): void {
    const i = before ? this.nodes.indexOf(before) : -1
    if (i < 0) this.nodes.push(node)
    else this.nodes.splice(i, 0, node)
  }

  /** Detach a node: its inputs lose it as a consumer, its outputs lose their producer. */
  removeNode(node: Node): void {
    const i = this.nodes.indexOf(node)
    if (i >= 0) this.nodes.splice(i, 1)
    node.inputs.forEach((v, k) => {
      if (v) node.setInput(k, null)
    })
    for (const o of node.outputs) if (o && o.producer === node) o.producer = null
  }

  /** Remove a value nothing reads or produces and that is no graph input or output. */
  deleteValue(v: Value): void {
    if (v.consumers.length > 0 || v.producer || this.inputs.includes(v) || this.outputs.includes(v)) {
      throw new Error(`value '${v.name}' is still in use`)
    }
    this.values.delete(v.name)
  }

  /** Make every reader of `from` (nodes, graph outputs) read `to` instead. */
  replaceAllUses(from: Value, to: Value): void {
    for (const node of [...from.consumers]) {
      node.inputs.forEach((v, k) => {
        if (v === from) node.setInput(k, to)
      })
    }
    this.outputs = this.outputs.map((v) => (v === from ? to : v))
  }

  /** Rename a value (keeps the value map consistent). */
  renameValue(v: Value, name: string): void {
    if (v.name === name) return
    if (this.values.has(name)) throw new Error(`value '${name}' already exists`)
    this.values.delete(v.name)
    v.name = name
    this.values.set(name, v)
  }

  /** Sort nodes so that every producer precedes its consumers; throws on a cycle, naming a node. */
  toposort(): void {
    const order: Node[] = []
    const state = new Map<Node, 1 | 2>()
    const inGraph = new Set(this.nodes)
    const visit = (start: Node): void => {
      const stack: [Node, number][] = [[start, 0]]
      state.set(start, 1)
      while (stack.length) {
        const top = stack[stack.length - 1]!
        const [node, k] = top
        const deps = dependencies(node)
        if (k < deps.length) {
          top[1]++
          const p = deps[k]!
          if (!inGraph.has(p)) continue
          const s = state.get(p)
          if (s === 1) throw new Error(`the graph has a cycle through ${p}`)
          if (s === undefined) {
            state.set(p, 1)
            stack.push([p, 0])
          }
        } else {
          state.set(node, 2)
          order.push(node)
          stack.pop()
        }
      }
    }
    for (const n of this.nodes) if (!state.has(n)) visit(n)
    this.nodes = order
  }

  /** Count nodes by op type (domain-qualified for non-standard domains). */
  opCounts(): Map<string, number> {
    const counts = new Map<string, number>()
    for (const n of this.nodes) {
      const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType
      counts.set(key, (counts.get(key) ?? 0) + 1)
    }
    return counts
  }
}

/** The nodes a node depends on: producers of its inputs and of outer values its subgraphs read. */
function dependencies(node: Node): Node[] {
  const deps: Node[] = []
  for (const v of node.inputs) if (v?.producer) deps.push(v.producer)
  for (const g of node.subgraphs()) for (const v of outerReads(g)) if (v.producer) deps.push(v.producer)
  return deps
}

/** Values from enclosing graphs that a subgraph (or its own subgraphs) reads. */
export function outerReads(g: Graph): Value[] {
  const out: Value[] = []
  for (const n of g.nodes) {
    for (const v of n.inputs) if (v && v.graph !== g && !isInside(v.graph, g)) out.push(v)
    for (const sub of n.subgraphs()) for (const v of outerReads(sub)) if (v.graph !== g && !isInside(v.graph, g)) out.push(v)
  }
  for (const v of g.outputs) if (v.graph !== g && !isInside(v.graph, g)) out.push(v)
  return out
}

function isInside(inner: Graph, outer: Graph): boolean {
  for (let g: Graph | undefined = inner; g; g = g.parent) if (g === outer) return true
  return false
}

function removeOne<T>(arr: T[], item: T): void {
  const i = arr.indexOf(item)
  if (i >= 0) arr.splice(i, 1)
}

export interface OperatorSet {
  domain: string
  version: number
}

export class Model {
  irVersion = 8
  opsetImports: OperatorSet[] = [{ domain: '', version: 17 }]
  producerName: string | undefined
  producerVersion: string | undefined
  domain: string | undefined
  modelVersion: Int | undefined
  docString: string | undefined
  graph: Graph
  metadataProps: StringPair[] = []
  /** FunctionProto messages, kept verbatim. */
  functions: Uint8Array[] = []
  /** Fields kept verbatim (training info, device configurations, future fields). */
  unknown: Unknown | undefined

  constructor(graph = new Graph()) {
    this.graph = graph
  }

  opsetVersion(domain = ''): number | undefined {
    const norm = (d: string) => (d === 'ai.onnx' ? '' : d)
    return this.opsetImports.find((o) => norm(o.domain) === norm(domain))?.version
  }

  /** Import `domain` at `version` if the model does not import it yet. */
  requireOpset(domain: string, version: number): void {
    if (this.opsetVersion(domain) === undefined) this.opsetImports.push({ domain, version })
  }

  setMetadata(key: string, value: string): void {
    const e = this.metadataProps.find((p) => p.key === key)
    if (e) e.value = value
    else this.metadataProps.push({ key, value })
  }
}

/**
 * A structural copy of a model: new graph, values, nodes and attributes; tensors (immutable
 * bytes) are shared, not copied. Passes can then edit the copy freely.
 */
export function cloneModel(model: Model): Model {
  const m = new Model(cloneGraph(model.graph, undefined, new Map()))
  m.irVersion = model.irVersion
  m.opsetImports = model.opsetImports.map((o) => ({ ...o }))
  m.producerName = model.producerName
  m.producerVersion = model.producerVersion
  m.domain = model.domain
  m.modelVersion = model.modelVersion
  m.docString = model.docString
  m.metadataProps = model.metadataProps.map((p) => ({ ...p }))
  m.functions = [...model.functions]
  if (model.unknown) m.unknown = [...model.unknown]
  return m
}

function cloneGraph(src: Graph, parent: Graph | undefined, outer: Map<Value, Value>): Graph {
  const g = new Graph(parent)
  g.name = src.name
  g.docString = src.docString
  if (src.metadataProps) g.metadataProps = src.metadataProps.map((p) => ({ ...p }))
  if (src.unknown) g.unknown = [...src.unknown]
  const map = new Map(outer)
  for (const v of src.values.values()) {
    const c = g.addValue(v.name)
    c.const = v.const
    c.docString = v.docString
    if (v.type) c.type = { ...v.type, ...(v.type.tensor ? { tensor: { ...v.type.tensor, ...(v.type.tensor.shape ? { shape: [...v.type.tensor.shape] } : {}) } } : {}) }
    if (v.metadataProps) c.metadataProps = v.metadataProps.map((p) => ({ ...p }))
    if (v.unknown) c.unknown = [...v.unknown]
    map.set(v, c)
  }
  for (const n of src.nodes) {
    const c = new Node(g, n.opType, n.domain, n.name)
    c.docString = n.docString
    c.overload = n.overload
    if (n.metadataProps) c.metadataProps = n.metadataProps.map((p) => ({ ...p }))
    if (n.unknown) c.unknown = [...n.unknown]
    c.attributes = n.attributes.map((a) => {
      const copy: Attribute = { ...a }
      if (a.g) copy.g = cloneGraph(a.g, g, map)
      if (a.graphs) copy.graphs = a.graphs.map((sg) => cloneGraph(sg, g, map))
      if (a.ints) copy.ints = [...a.ints]
      if (a.floats) copy.floats = [...a.floats]
      return copy
    })
    n.inputs.forEach((v, k) => c.setInput(k, v ? (map.get(v) ?? v) : null))
    for (const o of n.outputs) {
      const co = o ? map.get(o)! : null
      if (co) co.producer = c
      c.outputs.push(co)
    }
    g.nodes.push(c)
  }
  g.inputs = src.inputs.map((v) => map.get(v)!)
  g.outputs = src.outputs.map((v) => map.get(v) ?? v)
  return g
}
