/**
 * Running models in onnxruntime-web (its wasm backend, single-threaded, as a plain browser page
 * runs it) under Node: the runtime the mobile and web targets are checked in besides
 * onnxruntime-node. The wasm files ship inside the npm package.
 */
import type * as OrtWeb from 'onnxruntime-web'
import { DataType } from '../../src/ir/dtype.js'
import { viewAs, type Tensor } from '../../src/ir/tensor.js'
import type { OutputMap } from '../../src/verify/verdict.js'

let ort: typeof OrtWeb | undefined

export async function loadOrtWeb(): Promise<typeof OrtWeb> {
  if (!ort) {
    ort = await import('onnxruntime-web')
    ort.env.wasm.numThreads = 1
  }
  return ort
}

export async function createWebSession(model: Uint8Array): Promise<OrtWeb.InferenceSession> {
  const o = await loadOrtWeb()
  return o.InferenceSession.create(model, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' })
}

function toWebTensor(o: typeof OrtWeb, t: Tensor): OrtWeb.Tensor {
  const dims = [...t.dims]
  if (t.dtype === DataType.INT64) return new o.Tensor('int64', viewAs(BigInt64Array, t.data), dims)
  if (t.dtype === DataType.FLOAT) return new o.Tensor('float32', viewAs(Float32Array, t.data), dims)
  throw new Error(`inputs of type ${t.dtype} are not supported here`)
}

/** Run a session on named IR tensors; float32 outputs by name. */
export async function runWebSession(session: OrtWeb.InferenceSession, feeds: Map<string, Tensor>): Promise<OutputMap> {
  const o = await loadOrtWeb()
  const input: Record<string, OrtWeb.Tensor> = {}
  for (const name of session.inputNames) input[name] = toWebTensor(o, feeds.get(name) ?? missing(name))
  const result = await session.run(input)
  const out: OutputMap = new Map()
  for (const name of session.outputNames) {
    const r = result[name]!
    if (r.type !== 'float32') throw new Error(`output '${name}' is ${r.type}`)
    out.set(name, { data: r.data as Float32Array, dims: [...r.dims] })
  }
  return out
}

function missing(name: string): never {
  throw new Error(`no value for model input '${name}'`)
}
