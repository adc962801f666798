// What both harness pages share: the adapter's features, feeds in, outputs out.

/** The WebGPU adapter's features ([] with a reason when there is no adapter). */
export async function adapterInfo() {
  if (!('gpu' in navigator)) return { adapter: false, reason: 'navigator.gpu is missing', features: [] }
  const adapter = await navigator.gpu.requestAdapter()
  if (!adapter) return { adapter: false, reason: 'requestAdapter() gave no adapter', features: [] }
  const info = adapter.info ?? {}
  return { adapter: true, features: [...adapter.features].sort(), vendor: info.vendor ?? '', architecture: info.architecture ?? '' }
}

/** Plain feeds ({ name: { type, dims, data: number[] } }) as onnxruntime-web tensors. */
export function toTensors(ort, feeds) {
  const out = {}
  for (const [name, f] of Object.entries(feeds)) {
    if (f.type === 'int64') out[name] = new ort.Tensor('int64', BigInt64Array.from(f.data, (x) => BigInt(x)), f.dims)
    else if (f.type === 'float32') out[name] = new ort.Tensor('float32', Float32Array.from(f.data), f.dims)
    else throw new Error(`feed '${name}': type ${f.type} is not handled`)
  }
  return out
}

/** Session outputs as plain data (float32 only: every albertkit output is). */
export function fromTensors(result) {
  const out = {}
  for (const [name, t] of Object.entries(result)) {
    if (t.type !== 'float32') throw new Error(`output '${name}' is ${t.type}`)
    out[name] = { dims: [...t.dims], data: Array.from(t.data) }
  }
  return out
}
