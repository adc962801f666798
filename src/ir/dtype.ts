/** Element types, numbered as ONNX's TensorProto.DataType. */
export enum DataType {
  UNDEFINED = 0,
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  UINT16 = 4,
  INT16 = 5,
  INT32 = 6,
  INT64 = 7,
  STRING = 8,
  BOOL = 9,
  FLOAT16 = 10,
  DOUBLE = 11,
  UINT32 = 12,
  UINT64 = 13,
  COMPLEX64 = 14,
  COMPLEX128 = 15,
  BFLOAT16 = 16,
  FLOAT8E4M3FN = 17,
  FLOAT8E4M3FNUZ = 18,
  FLOAT8E5M2 = 19,
  FLOAT8E5M2FNUZ = 20,
  UINT4 = 21,
  INT4 = 22,
  FLOAT4E2M1 = 23,
  FLOAT8E8M0 = 24,
  UINT2 = 25,
  INT2 = 26,
  FLOAT6E2M3 = 27,
  FLOAT6E3M2 = 28,
}

const BITS: Partial<Record<DataType, number>> = {
  [DataType.FLOAT]: 32,
  [DataType.UINT8]: 8,
  [DataType.INT8]: 8,
  [DataType.UINT16]: 16,
  [DataType.INT16]: 16,
  [DataType.INT32]: 32,
  [DataType.INT64]: 64,
  [DataType.BOOL]: 8,
  [DataType.FLOAT16]: 16,
  [DataType.DOUBLE]: 64,
  [DataType.UINT32]: 32,
  [DataType.UINT64]: 64,
  [DataType.COMPLEX64]: 64,
  [DataType.COMPLEX128]: 128,
  [DataType.BFLOAT16]: 16,
  [DataType.FLOAT8E4M3FN]: 8,
  [DataType.FLOAT8E4M3FNUZ]: 8,
  [DataType.FLOAT8E5M2]: 8,
  [DataType.FLOAT8E5M2FNUZ]: 8,
  [DataType.UINT4]: 4,
  [DataType.INT4]: 4,
  [DataType.FLOAT4E2M1]: 4,
  [DataType.FLOAT8E8M0]: 8,
  [DataType.UINT2]: 2,
  [DataType.INT2]: 2,
  [DataType.FLOAT6E2M3]: 6,
  [DataType.FLOAT6E3M2]: 6,
}

/** Bits per element, or undefined for types without a fixed width (STRING, UNDEFINED, unknown). */
export function bitsOf(dtype: DataType): number | undefined {
  return BITS[dtype]
}

/** Bytes needed for `count` elements of `dtype` packed as ONNX raw_data packs them. */
export function byteLengthOf(dtype: DataType, count: number): number {
  const bits = BITS[dtype]
  if (bits === undefined) throw new Error(`no fixed byte size for element type ${dtypeName(dtype)}`)
  return Math.ceil((bits * count) / 8)
}

export function dtypeName(dtype: DataType): string {
  return DataType[dtype] ?? `type#${dtype}`
}

export function isFloat(dtype: DataType): boolean {
  return dtype === DataType.FLOAT || dtype === DataType.FLOAT16 || dtype === DataType.BFLOAT16 || dtype === DataType.DOUBLE
}
