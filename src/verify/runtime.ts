/** Running models with onnxruntime-node (loaded on first use: most commands never need it). */
import type { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node'
import type { Tensor } from '../ir/tensor.js'
import { DataType, dtypeName } from '../ir/dtype.js'
import { viewAs } from '../ir/tensor.js'

type Ort = typeof import('onnxruntime-node')
let ort: Ort | undefined

export async function loadOrt(): Promise<Ort> {
  ort ??= await import('onnxruntime-node')
  return ort
}

export interface SessionOptions {
  /** 'disabled' runs the graph exactly as written (the reference); 'all' lets onnxruntime fuse. */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all'
  intraOpThreads?: number
  /** Skip onnxruntime's pre-packed weight copies (large models, where memory matters more than speed). */
  disablePrepacking?: boolean
}

export async function createSession(model: Uint8Array | string, opts: SessionOptions = {}): Promise<InferenceSession> {
  const o = await loadOrt()
  const options: InferenceSession.SessionOptions = {
    graphOptimizationLevel: opts.optimization ?? 'all',
    executionProviders: ['cpu'],
  }
  if (opts.intraOpThreads) options.intraOpNumThreads = opts.intraOpThreads
  if (opts.disablePrepacking) options.extra = { session: { disable_prepacking: '1' } }
  return typeof model === 'string' ? o.InferenceSession.create(model, options) : o.InferenceSession.create(model, options)
}

/** An IR tensor as an onnxruntime tensor (int64 and float32 are viewed, not copied). */
export async function toOrtTensor(t: Tensor): Promise<OrtTensor> {
  const o = await loadOrt()
  const dims = [...t.dims]
  switch (t.dtype) {
    case DataType.INT64:
      return new o.Tensor('int64', viewAs(BigInt64Array, t.data), dims)
    case DataType.FLOAT:
      return new o.Tensor('float32', viewAs(Float32Array, t.data), dims)
    case DataType.INT32:
      return new o.Tensor('int32', viewAs(Int32Array, t.data), dims)
    default:
      throw new Error(`inputs of type ${dtypeName(t.dtype)} are not supported`)
  }
}

/** Create a session, run it once on `feeds`, release it: float32 outputs by name. */
export async function runOnce(model: Uint8Array | string, feeds: Map<string, Tensor>, opts: SessionOptions = {}): Promise<Map<string, { data: Float32Array; dims: number[] }>> {
  const session = await createSession(model, opts)
  try {
    return await runSession(session, feeds)
  } finally {
    await session.release()
  }
}

/** Run a session on named IR tensors; returns float32 outputs by name. */
export async function runSession(session: InferenceSession, feeds: Map<string, Tensor>): Promise<Map<string, { data: Float32Array; dims: number[] }>> {
  const ortFeeds: Record<string, OrtTensor> = {}
  for (const name of session.inputNames) {
    const t = feeds.get(name)
    if (!t) throw new Error(`no value for model input '${name}'`)
    ortFeeds[name] = await toOrtTensor(t)
  }
  const result = await session.run(ortFeeds)
  const out = new Map<string, { data: Float32Array; dims: number[] }>()
  for (const name of session.outputNames) {
    const r = result[name]!
    if (r.type !== 'float32') throw new Error(`output '${name}' is ${r.type}, expected float32`)
    out.set(name, { data: r.data as Float32Array, dims: [...r.dims] })
  }
  return out
}
