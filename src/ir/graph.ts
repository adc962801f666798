/**
 * The graph IR every stage after the checkpoint readers works on: values with one producer and
 * their consumers, nodes in an order, constants as typed-array-backed tensors. No protobuf here:
 * `src/onnx/` converts to and from the file format at the edges.
 */
import { DataType } from './dtype.js'
import { Tensor } from './tensor.js'
import type { Int } from '../util/int64.js'

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

/** Use lists up to this long are searched when a reader goes; longer ones index their readers. */
const SHORT_USE_LIST = 32
/** The use list of a value nothing reads (shared; replaced on the first use). */
const NO_USES: (Node | null)[] = Object.freeze([]) as unknown as (Node | null)[]

export class Value {
  name: string
  type: ValueType | undefined
  producer: Node | null = null
  /** Readers in the order they started reading (null: a removed one, until compacted). */
  private uses: (Node | null)[] = NO_USES
  private holes = 0
  /** Positions in `uses` of each reader (one, or a queue when it reads in several slots), built once a long list loses a reader. */
  private positions: Map<Node, number | { at: number[]; next: number }> | undefined
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

  /** Each consuming node, once per input slot that reads this value, in the order they were added. */
  get consumers(): readonly Node[] {
    if (this.holes) this.compact()
    return this.uses as Node[]
  }

  /** @internal Node.setInput's half of keeping use lists right: `node` reads this value once more. */
  addUse(node: Node): void {
    if (this.uses === NO_USES) {
      this.uses = [node]
      return
    }
    const at = this.uses.push(node) - 1
    if (this.positions) this.note(node, at)
  }

  /**
   * @internal `node` reads this value once less: its first remaining use goes. Short lists are
   * searched; a long one keeps each reader's positions, so that removing every reader of a value
   * read by a million nodes stays linear.
   */
  removeUse(node: Node): void {
    if (!this.positions && this.uses.length <= SHORT_USE_LIST) {
      const i = this.uses.indexOf(node)
      if (i >= 0) this.uses.splice(i, 1)
      return
    }
    if (!this.positions) this.indexUses()
    const p = this.positions!.get(node)
    if (p === undefined) return
    let at: number
    if (typeof p === 'number') {
      at = p
      this.positions!.delete(node)
    } else {
      at = p.at[p.next++]!
      if (p.next === p.at.length) this.positions!.delete(node)
    }
    this.uses[at] = null
    this.holes++
  }

  /** @internal Every use moves elsewhere at once (replaceAllUses). */
  clearUses(): void {
    this.uses = NO_USES
    this.holes = 0
    this.positions = undefined
  }

  private note(node: Node, at: number): void {
    const p = this.positions!.get(node)
    if (p === undefined) this.positions!.set(node, at)
    else if (typeof p === 'number') this.positions!.set(node, { at: [p, at], next: 0 })
    else p.at.push(at)
  }

  private indexUses(): void {
    this.positions = new Map()
    this.uses.forEach((n, at) => this.note(n!, at))
  }

  private compact(): void {
    this.uses = this.uses.filter((n) => n !== null)
    this.holes = 0
    if (this.positions) this.indexUses()
  }

  get isInitializer(): boolean {
    return this.const !== undefined
  }

  get isGraphInput(): boolean {
    return this.graph.isInput(this)
  }

  get isGraphOutput(): boolean {
    return this.graph.isOutput(this)
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

/** AttributeProto.AttributeType, numbered as ONNX numbers them. */
export const AttrType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
  SPARSE_TENSOR: 11,
  SPARSE_TENSORS: 12,
  TYPE_PROTO: 13,
  TYPE_PROTOS: 14,
} as const

export type AttrType = (typeof AttrType)[keyof typeof AttrType]

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
  /** @internal The graph whose node list holds this node, and its neighbours there. */
  owner: Graph | null = null
  /** @internal */
  prev: Node | null = null
  /** @internal */
  next: Node | null = null
  /** @internal Graph.toposort's visit state. */
  mark = 0

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
    if (old) old.removeUse(this)
    while (this.inputs.length <= index) this.inputs.push(null)
    this.inputs[index] = value
    if (value) value.addUse(this)
  }

  /**
   * @internal For readers of files: give a node without inputs or outputs yet all of them at once
   * (arrays of exactly their size; a million nodes do not each carry room for 16).
   */
  wire(inputs: (Value | null)[], outputs: (Value | null)[]): void {
    if (this.inputs.length || this.outputs.length) throw new Error(`${this} is already wired`)
    ;(this as { inputs: (Value | null)[] }).inputs = inputs
    ;(this as { outputs: (Value | null)[] }).outputs = outputs
    for (const v of inputs) v?.addUse(this)
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
  /** The graph's inputs; replace the array or append to it (an element assigned in place goes unseen by isInput). */
  inputs: Value[] = []
  /** The graph's outputs; replace the array or append to it (an element assigned in place goes unseen by isOutput). */
  outputs: Value[] = []
  /** Every value defined in this graph (inputs, initializers, node outputs, declared value_info). */
  readonly values: Map<string, Value>
  docString: string | undefined
  metadataProps: StringPair[] | undefined
  /** Fields kept verbatim: sparse initializers, quantization annotations, future fields. */
  unknown: Unknown | undefined
  /** The graph whose node holds this one as an attribute; names resolve outwards through it. */
  readonly parent: Graph | undefined
  private nameCounter = 0
  /** Root graph only: how many subgraphs of the model define each value name (with the root's own values, uniqueName's lookup). */
  private readonly subgraphNames: Map<string, number>
  // The node list: linked, so that removing or inserting a node costs O(1); `nodes` is an array
  // view of it, rebuilt when read after a change.
  private head: Node | null = null
  private tail: Node | null = null
  private count = 0
  private view: Node[] | undefined

  constructor(parent?: Graph) {
    this.parent = parent
    this.subgraphNames = parent ? parent.root.subgraphNames : new Map()
    this.values = parent ? new CountingMap(this.subgraphNames) : new Map()
  }

  get root(): Graph {
    let g: Graph = this
    while (g.parent) g = g.parent
    return g
  }

  /**
   * The nodes in order, as an array. Change the order only through the methods below (appendNode,
   * insertNode, removeNode, ...) or by assigning a new order; an array read earlier is not updated
   * by a change other than an append.
   */
  get nodes(): readonly Node[] {
    let v = this.view
    if (!v) {
      v = new Array<Node>(this.count)
      let i = 0
      for (let n = this.head; n; n = n.next) v[i++] = n
      this.view = v
    }
    return v
  }

  /** Replace the node list by `order` (the same nodes in another order, or new ones). */
  set nodes(order: readonly Node[]) {
    for (let n = this.head; n; ) {
      const next: Node | null = n.next
      n.owner = n.prev = n.next = null
      n = next
    }
    this.head = this.tail = null
    this.count = 0
    this.view = undefined
    for (const n of order) this.link(n, null)
  }

  get nodeCount(): number {
    return this.count
  }

  get firstNode(): Node | undefined {
    return this.head ?? undefined
  }

  get lastNode(): Node | undefined {
    return this.tail ?? undefined
  }

  private inputIndex: ListIndex | undefined
  private outputIndex: ListIndex | undefined

  /** Whether `v` is one of this graph's inputs (a set lookup for long lists). */
  isInput(v: Value): boolean {
    if (this.inputs.length <= 16) return this.inputs.includes(v)
    return (this.inputIndex = indexOf(this.inputIndex, this.inputs)).set.has(v)
  }

  /** Whether `v` is one of this graph's outputs (a set lookup for long lists). */
  isOutput(v: Value): boolean {
    if (this.outputs.length <= 16) return this.outputs.includes(v)
    return (this.outputIndex = indexOf(this.outputIndex, this.outputs)).set.has(v)
  }

  /** Whether `node` is in this graph's node list. */
  contains(node: Node): boolean {
    return node.owner === this
  }

  /** The node after `node` in this graph, if any. */
  nodeAfter(node: Node): Node | undefined {
    return node.owner === this ? (node.next ?? undefined) : undefined
  }

  /** Put `node` (already wired) at the end of the node list. */
  appendNode(node: Node): void {
    this.link(node, null)
  }

  /** Link `node` before `before` (null: at the end), taking it out of any list it is in. */
  private link(node: Node, before: Node | null): void {
    if (node.owner) node.owner.unlink(node)
    node.owner = this
    this.count++
    if (before === null) {
      node.prev = this.tail
      node.next = null
      if (this.tail) this.tail.next = node
      else this.head = node
      this.tail = node
      this.view?.push(node)
      return
    }
    node.next = before
    node.prev = before.prev
    if (before.prev) before.prev.next = node
    else this.head = node
    before.prev = node
    this.view = undefined
  }

  private unlink(node: Node): void {
    if (node.owner !== this) return
    if (node.prev) node.prev.next = node.next
    else this.head = node.next
    if (node.next) node.next.prev = node.prev
    else this.tail = node.prev
    node.owner = node.prev = node.next = null
    this.count--
    this.view = undefined
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
    const taken = (name: string) => root.values.has(name) || root.subgraphNames.has(name)
    if (!taken(base)) return base
    for (;;) {
      const candidate = `${base}_${++root.nameCounter}`
      if (!taken(candidate)) return candidate
    }
  }

  private nodeNames: Set<string> | undefined
  /** For each base name, the suffix to try next (every smaller one is taken, and names are never freed). */
  private nodeNameNext = new Map<string, number>()

  /** A node name not used by any node of this graph (nodes added through addNode are tracked). */
  uniqueNodeName(base: string): string {
    const names = (this.nodeNames ??= new Set(this.nodes.map((n) => n.name)))
    let name = base
    if (names.has(name)) {
      let i = this.nodeNameNext.get(base) ?? 1
      do name = `${base}_${i++}`
      while (names.has(name))
      this.nodeNameNext.set(base, i)
    }
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
    this.link(node, null)
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
    const inPlace = old.owner === this
    if (inPlace) this.link(node, old)
    this.removeNode(old)
    for (const o of old.outputs) {
      if (o) o.producer = node
      node.outputs.push(o)
    }
    if (!inPlace) this.link(node, null)
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
    const node = this.tail
    if (!node) return
    this.unlink(node)
    this.link(node, before.owner === this ? before : null)
  }

  /** Insert an existing, already-wired node before `before` (or at the end); a node already listed moves (before itself: stays). */
  insertNode(node: Node, before?: Node): void {
    if (before === node && node.owner === this) return
    this.link(node, before && before.owner === this ? before : null)
  }

  /** Detach a node: its inputs lose it as a consumer, its outputs lose their producer. */
  removeNode(node: Node): void {
    this.unlink(node)
    node.inputs.forEach((v, k) => {
      if (v) node.setInput(k, null)
    })
    for (const o of node.outputs) if (o && o.producer === node) o.producer = null
  }

  /** Remove a value nothing reads or produces and that is no graph input or output. */
  deleteValue(v: Value): void {
    if (v.consumers.length > 0 || v.producer || this.isInput(v) || this.isOutput(v)) {
      throw new Error(`value '${v.name}' is still in use`)
    }
    this.values.delete(v.name)
  }

  /** Make every reader of `from` (nodes, graph outputs) read `to` instead. */
  replaceAllUses(from: Value, to: Value): void {
    const readers = from.consumers
    if (from === to) {
      for (const node of [...readers]) {
        node.inputs.forEach((v, k) => {
          if (v === from) node.setInput(k, to)
        })
      }
    } else if (readers.length) {
      // Every use moves at once: the same lists as moving them one setInput at a time, in linear time.
      const done = readers.length > 1 ? new Set<Node>() : undefined
      for (const node of readers) {
        if (done) {
          if (done.has(node)) continue
          done.add(node)
        }
        node.inputs.forEach((v, k) => {
          if (v !== from) return
          node.inputs[k] = to
          to.addUse(node)
        })
      }
      from.clearUses()
    }
    if (this.isOutput(from)) this.outputs = this.outputs.map((v) => (v === from ? to : v))
  }

  /** Rename a value (keeps the value map consistent). */
  renameValue(v: Value, name: string): void {
    if (v.name === name) return
    if (this.values.has(name)) throw new Error(`value '${name}' already exists`)
    this.values.delete(v.name)
    v.name = name
    this.values.set(name, v)
  }

  /** Sort nodes so that every producer precedes its consumers (depth first, stable); throws on a cycle, naming a node. */
  toposort(): void {
    // Marks instead of a Map: a node marked `visiting` is on the stack, `done` is placed; marks of
    // earlier sorts are smaller than both. The stack is three parallel arrays, no object per step.
    const visiting = (markEpoch += 2)
    const done = visiting + 1
    const order = new Array<Node>(this.count)
    let placed = 0
    const stack: Node[] = []
    const next: number[] = []
    const outer: (Node[] | null)[] = []
    const push = (n: Node) => {
      n.mark = visiting
      stack.push(n)
      next.push(0)
      outer.push(hasSubgraphs(n) ? dependencies(n) : null)
    }
    for (let start = this.head; start; start = start.next) {
      if (start.mark === visiting || start.mark === done) continue
      push(start)
      while (stack.length) {
        const top = stack.length - 1
        const node = stack[top]!
        const k = next[top]!
        const deps = outer[top]
        if (k < (deps ? deps.length : node.inputs.length)) {
          next[top] = k + 1
          const p = deps ? deps[k] : node.inputs[k]?.producer
          if (!p || p.owner !== this) continue
          if (p.mark === visiting) throw new Error(`the graph has a cycle through ${p}`)
          if (p.mark !== done) push(p)
        } else {
          node.mark = done
          order[placed++] = node
          stack.pop()
          next.pop()
          outer.pop()
        }
      }
    }
    // `order` holds exactly the listed nodes: relink them in that order and keep it as the view.
    for (let i = 0; i < placed; i++) {
      const n = order[i]!
      n.prev = order[i - 1] ?? null
      n.next = order[i + 1] ?? null
    }
    this.head = order[0] ?? null
    this.tail = order[placed - 1] ?? null
    this.view = order
  }

  /** Count nodes by op type (domain-qualified for non-standard domains). */
  opCounts(): Map<string, number> {
    const counts = new Map<string, number>()
    for (let n = this.head; n; n = n.next) {
      const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType
      counts.set(key, (counts.get(key) ?? 0) + 1)
    }
    return counts
  }
}

/** A subgraph's value map, keeping the model-wide count of names defined in subgraphs (Graph.uniqueName) up to date. */
class CountingMap extends Map<string, Value> {
  constructor(private readonly names: Map<string, number>) {
    super()
  }

  override set(name: string, v: Value): this {
    if (!this.has(name)) this.names.set(name, (this.names.get(name) ?? 0) + 1)
    return super.set(name, v)
  }

  override delete(name: string): boolean {
    if (!super.delete(name)) return false
    const c = this.names.get(name) ?? 0
    if (c <= 1) this.names.delete(name)
    else this.names.set(name, c - 1)
    return true
  }

  override clear(): void {
    for (const name of [...this.keys()]) this.delete(name)
  }
}

/** A set of a graph's input or output list, valid while the list is the same array of the same length. */
interface ListIndex {
  list: Value[]
  length: number
  set: Set<Value>
}

function indexOf(known: ListIndex | undefined, list: Value[]): ListIndex {
  if (known && known.list === list && known.length === list.length) return known
  return { list, length: list.length, set: new Set(list) }
}

/** toposort's marks: each sort takes two fresh values. */
let markEpoch = 0

function hasSubgraphs(node: Node): boolean {
  for (const a of node.attributes) if (a.g || a.graphs) return true
  return false
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
    g.appendNode(c)
  }
  g.inputs = src.inputs.map((v) => map.get(v)!)
  g.outputs = src.outputs.map((v) => map.get(v) ?? v)
  return g
}
