/** An int64 (a protobuf int64 field, an ONNX attribute or dimension): a number where it is exact, a bigint beyond ±2^53. */
export type Int = number | bigint
