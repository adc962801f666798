import { DataType, byteLengthOf, dtypeName } from './dtype.js'
import { bf16ArrayToFloat32, halfArrayToFloat32 } from '../util/half.js'

/** Most dimensions a tensor may have (torch and ONNX Runtime stop at 64 too). */
export const MAX_RANK = 64

/**
 * A constant tensor: element type, shape and its bytes, little-endian and packed as ONNX raw_data
 * packs them. `data` is usually a view into a file buffer; nothing here copies it unless asked.
 */
export class Tensor {
  readonly dtype: DataType
  readonly dims: readonly number[]
  readonly data: Uint8Array
  /** STRING tensors only: the UTF-8 bytes of each element. */
  readonly strings?: readonly Uint8Array[]
  /** What a TensorProto held beside the data (kept for tensors inside attributes). */
  meta: TensorMeta | undefined

  constructor(dtype: DataType, dims: readonly number[], data: Uint8Array, strings?: readonly Uint8Array[]) {
    this.dtype = dtype
    this.dims = dims
    this.data = data
    if (strings) this.strings = strings
    if (dtype !== DataType.STRING) {
      const want = byteLengthOf(dtype, elementCount(dims))
      if (data.byteLength !== want) {
        throw new Error(`tensor of ${dtypeName(dtype)}[${dims.join(',')}] needs ${want} bytes, got ${data.byteLength}`)
      }
    }
  }

  get size(): number {
    return elementCount(this.dims)
  }

  get byteLength(): number {
    return this.data.byteLength
  }

  /** The elements as float32: a view when the bytes are float32 and aligned, else a converted copy. */
  toFloat32(): Float32Array {
    switch (this.dtype) {
      case DataType.FLOAT:
        return viewAs(Float32Array, this.data)
      case DataType.FLOAT16:
        return halfArrayToFloat32(viewAs(Uint16Array, this.data))
      case DataType.BFLOAT16:
        return bf16ArrayToFloat32(viewAs(Uint16Array, this.data))
      case DataType.DOUBLE:
        return Float32Array.from(viewAs(Float64Array, this.data))
      default:
        throw new Error(`cannot read ${dtypeName(this.dtype)} tensor as float32`)
    }
  }

  /** The elements as int64 values (BigInt64Array view or copy). */
  toBigInt64(): BigInt64Array {
    if (this.dtype !== DataType.INT64) throw new Error(`tensor is ${dtypeName(this.dtype)}, not INT64`)
    return viewAs(BigInt64Array, this.data)
  }

  /** Integer elements (INT64, INT32, ...) as plain numbers: for small shape-like tensors only. */
  toNumbers(): number[] {
    switch (this.dtype) {
      case DataType.INT64:
        return Array.from(viewAs(BigInt64Array, this.data), Number)
      case DataType.INT32:
        return Array.from(viewAs(Int32Array, this.data))
      case DataType.UINT8:
      case DataType.BOOL:
        return Array.from(this.data)
      case DataType.INT8:
        return Array.from(viewAs(Int8Array, this.data))
      case DataType.FLOAT:
      case DataType.FLOAT16:
      case DataType.BFLOAT16:
      case DataType.DOUBLE:
        return Array.from(this.toFloat32())
      default:
        throw new Error(`cannot read ${dtypeName(this.dtype)} tensor as numbers`)
    }
  }

  static fromFloat32(dims: readonly number[], values: Float32Array): Tensor {
    return new Tensor(DataType.FLOAT, dims, bytesOf(values))
  }

  static fromInt64(dims: readonly number[], values: readonly (number | bigint)[]): Tensor {
    const arr = BigInt64Array.from(values, (v) => BigInt(v))
    return new Tensor(DataType.INT64, dims, bytesOf(arr))
  }

  static scalarFloat(value: number): Tensor {
    return Tensor.fromFloat32([], Float32Array.of(value))
  }
}

export interface TensorMeta {
  name?: string
  docString?: string
  /** Fields of the TensorProto the IR does not model, verbatim. */
  unknown?: Uint8Array[]
}

export function elementCount(dims: readonly number[]): number {
  let n = 1
  for (const d of dims) n *= d
  return n
}

type TypedArrayCtor<T> = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): T
  new (length: number): T
  readonly BYTES_PER_ELEMENT: number
}

/**
 * A typed-array view of `bytes` (no copy) when its offset is aligned, else an aligned copy.
 * The platform is little-endian (x86-64, arm64), as ONNX and safetensors data are.
 */
export function viewAs<T extends ArrayBufferView>(ctor: TypedArrayCtor<T>, bytes: Uint8Array): T {
  const size = ctor.BYTES_PER_ELEMENT
  if (bytes.byteLength % size !== 0) throw new Error(`byte length ${bytes.byteLength} is not a multiple of ${size}`)
  const n = bytes.byteLength / size
  if (bytes.byteOffset % size === 0) return new ctor(bytes.buffer, bytes.byteOffset, n)
  const copy = new ctor(n)
  new Uint8Array(copy.buffer, 0, bytes.byteLength).set(bytes)
  return copy
}

/** The bytes of a typed array, as a view. */
export function bytesOf(arr: ArrayBufferView): Uint8Array {
  return new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength)
}
