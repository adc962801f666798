/**
 * Evaluating small constant subgraphs at build time: the shape arithmetic exporters leave behind
 * (Shape → Gather → Unsqueeze → Concat, Constant nodes, ConstantOfShape, Range, ...). Values are
 * plain number arrays, so this is only ever used on tensors of at most MAX_ELEMENTS elements;
 * the one op that may meet weights, Transpose, works on the typed bytes instead.
 */
import { DataType, byteLengthOf } from './dtype.js'
import type { Dim, Node } from './graph.js'
import { Tensor, bytesOf, elementCount } from './tensor.js'

/** The most elements of any tensor evaluated here, read or made (Transpose aside): values are plain number arrays. */
export const MAX_ELEMENTS = 1 << 16
/** The most elements of all a node's inputs together (a Concat of 2000 inputs reads them all). */
export const MAX_INPUT_ELEMENTS = 4 * MAX_ELEMENTS

interface Arr {
  dtype: DataType
  dims: number[]
  v: number[]
}

const NUMERIC = new Set([DataType.FLOAT, DataType.DOUBLE, DataType.INT64, DataType.INT32, DataType.INT8, DataType.UINT8, DataType.BOOL, DataType.INT16, DataType.UINT16])

function fromTensor(t: Tensor): Arr | undefined {
  if (!NUMERIC.has(t.dtype) || t.size > MAX_ELEMENTS) return undefined
  return { dtype: t.dtype, dims: [...t.dims], v: t.toNumbers() }
}

function toTensor(a: Arr): Tensor {
  const n = a.v.length
  switch (a.dtype) {
    case DataType.FLOAT:
      return new Tensor(a.dtype, a.dims, bytesOf(Float32Array.from(a.v)))
    case DataType.DOUBLE:
      return new Tensor(a.dtype, a.dims, bytesOf(Float64Array.from(a.v)))
    case DataType.INT64:
      return new Tensor(a.dtype, a.dims, bytesOf(BigInt64Array.from(a.v, (x) => BigInt(Math.trunc(x)))))
    case DataType.INT32:
      return new Tensor(a.dtype, a.dims, bytesOf(Int32Array.from(a.v)))
    case DataType.INT16:
      return new Tensor(a.dtype, a.dims, bytesOf(Int16Array.from(a.v)))
    case DataType.UINT16:
      return new Tensor(a.dtype, a.dims, bytesOf(Uint16Array.from(a.v)))
    case DataType.INT8:
      return new Tensor(a.dtype, a.dims, bytesOf(Int8Array.from(a.v)))
    case DataType.UINT8:
    case DataType.BOOL:
      return new Tensor(a.dtype, a.dims, Uint8Array.from(a.v, (x) => (a.dtype === DataType.BOOL ? (x ? 1 : 0) : x)))
    default:
      throw new Error(`cannot build a ${a.dtype} tensor of ${n} elements`)
  }
}

function strides(dims: number[]): number[] {
  const s = new Array<number>(dims.length).fill(1)
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1]! * dims[i + 1]!
  return s
}

function norm(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis
}

/** Element-wise op with numpy broadcasting. */
function broadcastOp(a: Arr, b: Arr, f: (x: number, y: number) => number, dtype = a.dtype): Arr | undefined {
  const rank = Math.max(a.dims.length, b.dims.length)
  const da = [...new Array(rank - a.dims.length).fill(1), ...a.dims]
  const db = [...new Array(rank - b.dims.length).fill(1), ...b.dims]
  const dims: number[] = []
  for (let i = 0; i < rank; i++) {
    if (da[i] !== db[i] && da[i] !== 1 && db[i] !== 1) return undefined
    dims.push(Math.max(da[i]!, db[i]!))
  }
  const n = elementCount(dims)
  if (n > MAX_ELEMENTS) return undefined
  const sa = strides(da)
  const sb = strides(db)
  const so = strides(dims)
  const v = new Array<number>(n)
  for (let i = 0; i < n; i++) {
    let ia = 0
    let ib = 0
    for (let k = 0; k < rank; k++) {
      const c = Math.floor(i / so[k]!) % dims[k]!
      if (da[k] !== 1) ia += c * sa[k]!
      if (db[k] !== 1) ib += c * sb[k]!
    }
    v[i] = f(a.v[ia]!, b.v[ib]!)
  }
  return { dtype, dims, v }
}

function isInt(t: DataType): boolean {
  return t === DataType.INT64 || t === DataType.INT32 || t === DataType.INT16 || t === DataType.INT8 || t === DataType.UINT8
}

/** Transpose a constant of any size, byte-wise. */
export function transposeTensor(t: Tensor, perm: number[]): Tensor {
  const dims = t.dims
  const outDims = perm.map((p) => dims[p]!)
  const size = byteLengthOf(t.dtype, 1)
  if (size * t.size !== t.byteLength) throw new Error('sub-byte tensors cannot be transposed here')
  const out = new Uint8Array(t.byteLength)
  if (dims.length === 2 && perm[0] === 1 && perm[1] === 0) {
    const [R, C] = dims as [number, number]
    transpose2d(t.data, out, R, C, size)
    return new Tensor(t.dtype, outDims, out)
  }
  const inStrides = strides([...dims])
  const n = t.size
  const rank = dims.length
  const outStrides = strides(outDims)
  for (let i = 0; i < n; i++) {
    let src = 0
    for (let k = 0; k < rank; k++) src += (Math.floor(i / outStrides[k]!) % outDims[k]!) * inStrides[perm[k]!]!
    out.set(t.data.subarray(src * size, src * size + size), i * size)
  }
  return new Tensor(t.dtype, outDims, out)
}

/** Blocked 2-D transpose of R×C elements of `size` bytes (bits moved as integers). */
export function transpose2d(src: Uint8Array, dst: Uint8Array, R: number, C: number, size: number): void {
  const n = R * C
  const as = <T>(ctor: new (b: ArrayBufferLike, o: number, l: number) => T, a: Uint8Array) => new ctor(a.buffer, a.byteOffset, n)
  if (size === 1) return blocked(src, dst, R, C)
  const aligned = src.byteOffset % size === 0 && dst.byteOffset % size === 0
  if (aligned && size === 2) return blocked(as(Uint16Array, src), as(Uint16Array, dst), R, C)
  if (aligned && size === 4) return blocked(as(Uint32Array, src), as(Uint32Array, dst), R, C)
  if (aligned && size === 8) return blocked(as(BigUint64Array, src), as(BigUint64Array, dst), R, C)
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) dst.set(src.subarray((r * C + c) * size, (r * C + c + 1) * size), (c * R + r) * size)
}

function blocked<T extends { [i: number]: number | bigint }>(s: T, d: T, R: number, C: number): void {
  const B = 64
  for (let r0 = 0; r0 < R; r0 += B)
    for (let c0 = 0; c0 < C; c0 += B)
      for (let r = r0; r < Math.min(R, r0 + B); r++) for (let c = c0; c < Math.min(C, c0 + B); c++) d[c * R + r] = s[r * C + c]!
}

/**
 * Outputs of `node` when all its inputs are known constants (or, for Shape, a static shape).
 * Returns undefined when the op is not supported here or the tensors are too large.
 */
export function evaluateNode(node: Node): Tensor[] | undefined {
  const op = node.opType
  if (node.domain !== '' && node.domain !== 'ai.onnx') return undefined
  if (op === 'Shape') {
    const s = node.inputs[0]?.shape
    if (!s || !s.every((d: Dim) => typeof d === 'number')) return undefined
    const rank = s.length
    const clamp = (x: number) => Math.max(0, Math.min(rank, x < 0 ? x + rank : x))
    const part = (s as number[]).slice(clamp(node.attrInt('start', 0)), clamp(node.attrInt('end', rank)))
    return [Tensor.fromInt64([part.length], part)]
  }
  if (op === 'Constant') {
    const t = node.attr('value')?.t
    if (t) return [t]
    const a = node.attributes[0]
    if (!a) return undefined
    if (a.name === 'value_float') return [Tensor.scalarFloat(a.f!)]
    if (a.name === 'value_int') return [Tensor.fromInt64([], [a.i!])]
    if (a.name === 'value_ints') return [Tensor.fromInt64([a.ints!.length], a.ints!)]
    if (a.name === 'value_floats') return [Tensor.fromFloat32([a.floats!.length], Float32Array.from(a.floats!))]
    return undefined
  }
  const consts = node.inputs.map((v) => v?.const)
  if (node.inputs.some((v, i) => v && !consts[i])) return undefined
  if (op === 'Identity') return [consts[0]!]
  if (op === 'Transpose') {
    const t = consts[0]!
    const perm = node.attrInts('perm') ?? t.dims.map((_, i) => t.dims.length - 1 - i)
    return [transposeTensor(t, perm)]
  }
  let read = 0
  for (const t of consts) read += t?.size ?? 0
  if (read > MAX_INPUT_ELEMENTS) return undefined
  const args = consts.map((t) => (t ? fromTensor(t) : undefined))
  if (consts.some((t, i) => t && !args[i])) return undefined
  const r = evaluateSmall(node, args)
  return r?.map(toTensor)
}

function evaluateSmall(node: Node, args: (Arr | undefined)[]): Arr[] | undefined {
  const [a, b, c] = args
  const op = node.opType
  const arith = (f: (x: number, y: number) => number) => {
    if (!a || !b) return undefined
    const r = broadcastOp(a, b, f)
    return r ? [r] : undefined
  }
  const intDiv = (x: number, y: number) => Math.trunc(x / y)
  switch (op) {
    case 'Add':
      return arith((x, y) => x + y)
    case 'Sub':
      return arith((x, y) => x - y)
    case 'Mul':
      return arith((x, y) => x * y)
    case 'Div':
      return arith(isInt(a?.dtype ?? DataType.FLOAT) ? intDiv : (x, y) => x / y)
    case 'Equal':
    case 'Less':
    case 'Greater': {
      if (!a || !b) return undefined
      const f = op === 'Equal' ? (x: number, y: number) => +(x === y) : op === 'Less' ? (x: number, y: number) => +(x < y) : (x: number, y: number) => +(x > y)
      const r = broadcastOp(a, b, f, DataType.BOOL)
      return r ? [r] : undefined
    }
    case 'Not':
      return a ? [{ ...a, v: a.v.map((x) => +!x) }] : undefined
    case 'Neg':
      return a ? [{ ...a, v: a.v.map((x) => -x) }] : undefined
    case 'Sqrt':
      return a ? [{ ...a, v: a.v.map(Math.sqrt) }] : undefined
    case 'Where': {
      if (!a || !b || !c) return undefined
      const ab = broadcastOp(a, b, (cond, x) => (cond ? x : NaN), b.dtype)
      if (!ab) return undefined
      const r = broadcastOp(ab, c, (x, y) => (Number.isNaN(x) ? y : x), b.dtype)
      return r ? [r] : undefined
    }
    case 'Cast': {
      if (!a) return undefined
      const to = node.attrInt('to')!
      if (!NUMERIC.has(to)) return undefined
      const v = isInt(to) ? a.v.map(Math.trunc) : to === DataType.BOOL ? a.v.map((x) => +!!x) : to === DataType.FLOAT ? a.v.map(Math.fround) : a.v
      return [{ dtype: to, dims: a.dims, v }]
    }
    case 'Unsqueeze': {
      if (!a) return undefined
      const axes = b ? b.v : node.attrInts('axes')
      if (!axes) return undefined
      const rank = a.dims.length + axes.length
      const set = new Set(axes.map((x) => norm(x, rank)))
      const dims: number[] = []
      let k = 0
      for (let i = 0; i < rank; i++) dims.push(set.has(i) ? 1 : a.dims[k++]!)
      return [{ ...a, dims }]
    }
    case 'Squeeze': {
      if (!a) return undefined
      const axes = b ? b.v : node.attrInts('axes')
      const set = new Set((axes ?? a.dims.map((d, i) => (d === 1 ? i : -99))).map((x) => norm(x, a.dims.length)))
      return [{ ...a, dims: a.dims.filter((_, i) => !set.has(i)) }]
    }
    case 'Reshape': {
      if (!a || !b) return undefined
      const dims = b.v.map((d, i) => (d === 0 && node.attrInt('allowzero', 0) === 0 ? a.dims[i]! : d))
      const minus = dims.indexOf(-1)
      if (minus >= 0) dims[minus] = a.v.length / dims.reduce((x, d, i) => (i === minus ? x : x * d), 1)
      if (elementCount(dims) !== a.v.length) return undefined
      return [{ ...a, dims }]
    }
    case 'Concat': {
      const parts = args
      if (parts.some((p) => !p)) return undefined
      const rank = parts[0]!.dims.length
      const axis = norm(node.attrInt('axis', 0), rank)
      const outer = elementCount(parts[0]!.dims.slice(0, axis))
      const dims = [...parts[0]!.dims]
      dims[axis] = parts.reduce((s, p) => s + p!.dims[axis]!, 0)
      if (elementCount(dims) > MAX_ELEMENTS) return undefined
      const v: number[] = []
      for (let o = 0; o < outer; o++) {
        for (const p of parts) {
          const inner = elementCount(p!.dims.slice(axis))
          for (let k = o * inner, end = Math.min((o + 1) * inner, p!.v.length); k < end; k++) v.push(p!.v[k]!)
        }
      }
      return [{ dtype: parts[0]!.dtype, dims, v }]
    }
    case 'Gather': {
      if (!a || !b) return undefined
      const axis = norm(node.attrInt('axis', 0), a.dims.length)
      const outer = elementCount(a.dims.slice(0, axis))
      const inner = elementCount(a.dims.slice(axis + 1))
      const n = a.dims[axis]!
      if (outer * b.v.length * inner > MAX_ELEMENTS) return undefined
      const v: number[] = []
      for (let o = 0; o < outer; o++) {
        for (const raw of b.v) {
          const idx = raw < 0 ? raw + n : raw
          if (idx < 0 || idx >= n) return undefined
          for (let k = (o * n + idx) * inner, end = Math.min((o * n + idx + 1) * inner, a.v.length); k < end; k++) v.push(a.v[k]!)
        }
      }
      return [{ dtype: a.dtype, dims: [...a.dims.slice(0, axis), ...b.dims, ...a.dims.slice(axis + 1)], v }]
    }
    case 'Slice': {
      if (!a || !b || !c) return undefined
      const rank = a.dims.length
      const axes = (args[3]?.v ?? b.v.map((_, i) => i)).map((x) => norm(x, rank))
      const steps = args[4]?.v ?? b.v.map(() => 1)
      const ranges = a.dims.map((d) => ({ start: 0, end: d, step: 1 }))
      axes.forEach((ax, i) => {
        const d = a.dims[ax]!
        const step = steps[i]!
        const clampS = (x: number) => (x < 0 ? Math.max(x + d, step > 0 ? 0 : -1) : Math.min(x, step > 0 ? d : d - 1))
        ranges[ax] = { start: clampS(b.v[i]!), end: clampS(c.v[i]!), step }
      })
      if (ranges.some((r) => r.step === 0)) return undefined
      const idx = ranges.map((r) => {
        const out: number[] = []
        for (let x = r.start; r.step > 0 ? x < r.end : x > r.end; x += r.step) out.push(x)
        return out
      })
      const dims = idx.map((l) => l.length)
      const st = strides(a.dims)
      const v: number[] = []
      const rec = (k: number, off: number) => {
        if (k === rank) {
          v.push(a.v[off]!)
          return
        }
        for (const x of idx[k]!) rec(k + 1, off + x * st[k]!)
      }
      if (elementCount(dims) > 0) rec(0, 0)
      return [{ dtype: a.dtype, dims, v }]
    }
    case 'ConstantOfShape': {
      if (!a) return undefined
      const value = node.attr('value')?.t
      const dtype = value?.dtype ?? DataType.FLOAT
      const fill = value ? (value.toNumbers()[0] ?? 0) : 0
      const n = elementCount(a.v)
      if (n > MAX_ELEMENTS || !NUMERIC.has(dtype)) return undefined
      return [{ dtype, dims: a.v, v: new Array<number>(n).fill(fill) }]
    }
    case 'Range': {
      if (!a || !b || !c) return undefined
      const [start, limit, delta] = [a.v[0]!, b.v[0]!, c.v[0]!]
      if (delta === 0) return undefined
      const n = Math.max(Math.ceil((limit - start) / delta), 0)
      if (n > MAX_ELEMENTS) return undefined
      return [{ dtype: a.dtype, dims: [n], v: Array.from({ length: n }, (_, i) => start + i * delta) }]
    }
    case 'Expand': {
      if (!a || !b) return undefined
      const ones: Arr = { dtype: a.dtype, dims: b.v, v: new Array<number>(Math.min(elementCount(b.v), MAX_ELEMENTS + 1)).fill(0) }
      if (ones.v.length > MAX_ELEMENTS) return undefined
      const r = broadcastOp(a, ones, (x) => x)
      return r ? [r] : undefined
    }
    default:
      return undefined
  }
}
