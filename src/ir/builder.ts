/**
 * Small helpers for adding nodes to a graph: one call per op, names scoped like a module path,
 * scalar and shape constants created once and shared.
 */
import { DataType } from './dtype.js'
import { Graph, attrInt, attrInts, attrFloat, type Attribute, type Value } from './graph.js'
import { Tensor, bytesOf } from './tensor.js'

export class GraphBuilder {
  readonly graph: Graph
  private scope: string[] = []
  private consts = new Map<string, Value>()

  constructor(graph: Graph) {
    this.graph = graph
  }

  /** Run `fn` with `name` appended to the node-name scope. */
  within<T>(name: string, fn: () => T): T {
    this.scope.push(name)
    try {
      return fn()
    } finally {
      this.scope.pop()
    }
  }

  private nodeName(op: string): string {
    return `/${[...this.scope, op].join('/')}`
  }

  /** Add a node with one output; returns that output. */
  op(opType: string, inputs: (Value | null)[], attrs: Attribute[] = [], opts: { domain?: string; label?: string } = {}): Value {
    return this.opN(opType, inputs, 1, attrs, opts)[0]!
  }

  /** Add a node with `count` outputs. */
  opN(opType: string, inputs: (Value | null)[], count: number, attrs: Attribute[] = [], opts: { domain?: string; label?: string } = {}): Value[] {
    const base = this.nodeName(opts.label ?? opType)
    const name = this.graph.uniqueNodeName(base)
    const outs = Array.from({ length: count }, (_, i) => (count === 1 ? name : `${name}:${i}`))
    const spec: { name: string; attrs: Attribute[]; domain?: string } = { name, attrs }
    if (opts.domain) spec.domain = opts.domain
    const node = this.graph.addNode(opType, inputs, outs, spec)
    return node.outputs as Value[]
  }

  /** A float32 scalar constant (one initializer per distinct value). */
  scalar(value: number, dtype: DataType = DataType.FLOAT): Value {
    const key = `${dtype}:${Object.is(value, -0) ? '-0' : value}`
    let v = this.consts.get(key)
    if (!v) {
      const t =
        dtype === DataType.FLOAT
          ? Tensor.scalarFloat(value)
          : dtype === DataType.INT64
            ? Tensor.fromInt64([], [value])
            : unsupported(dtype)
      v = this.graph.addInitializer(this.graph.uniqueName(constName(dtype, value)), t)
      this.consts.set(key, v)
    }
    return v
  }

  /** An int64 vector constant (shared per distinct content). */
  ints(values: readonly number[]): Value {
    const key = `ints:${values.join(',')}`
    let v = this.consts.get(key)
    if (!v) {
      v = this.graph.addInitializer(
        this.graph.uniqueName(`const_i64_${values.join('_').replace(/-/g, 'm')}`),
        new Tensor(DataType.INT64, [values.length], bytesOf(BigInt64Array.from(values, (x) => BigInt(x)))),
      )
      this.consts.set(key, v)
    }
    return v
  }

  add(a: Value, b: Value): Value {
    return this.op('Add', [a, b])
  }
  sub(a: Value, b: Value): Value {
    return this.op('Sub', [a, b])
  }
  mul(a: Value, b: Value): Value {
    return this.op('Mul', [a, b])
  }
  div(a: Value, b: Value): Value {
    return this.op('Div', [a, b])
  }
  matmul(a: Value, b: Value): Value {
    return this.op('MatMul', [a, b])
  }

  /** y = x·Wᵀ + b with W stored (out, in), as nn.Linear stores it; x is 2-D. */
  linear(x: Value, weight: Value, bias: Value | null, label = 'Gemm'): Value {
    return this.op('Gemm', bias ? [x, weight, bias] : [x, weight], [attrInt('transB', 1)], { label })
  }

  reshape(x: Value, shape: Value): Value {
    return this.op('Reshape', [x, shape])
  }

  transpose(x: Value, perm: number[]): Value {
    return this.op('Transpose', [x], [attrInts('perm', perm)])
  }

  layerNorm(x: Value, scale: Value, bias: Value, eps: number, label = 'LayerNormalization'): Value {
    return this.op('LayerNormalization', [x, scale, bias], [attrInt('axis', -1), attrFloat('epsilon', eps)], { label })
  }

  /** Shape of x, dims [start, end). */
  shape(x: Value, start?: number, end?: number): Value {
    const attrs: Attribute[] = []
    if (start !== undefined) attrs.push(attrInt('start', start))
    if (end !== undefined) attrs.push(attrInt('end', end))
    return this.op('Shape', [x], attrs)
  }

  concat(parts: Value[], axis = 0): Value {
    return this.op('Concat', parts, [attrInt('axis', axis)])
  }
}

function constName(dtype: DataType, value: number): string {
  const text = String(value).replace('-', 'm').replace('.', 'p').replace('+', '')
  return `const_${dtype === DataType.INT64 ? 'i64' : 'f32'}_${text}`
}

function unsupported(dtype: DataType): never {
  throw new Error(`scalar constants of type ${dtype} are not supported`)
}
