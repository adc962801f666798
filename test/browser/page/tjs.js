// albertkit's output folders through transformers.js pipelines in the browser, from this server
// only: models under /models/, onnxruntime-web's wasm from the copy transformers.js depends on
// (its default is a CDN), no browser cache. Sessions log at verbose level (node placement).
import * as ort from 'onnxruntime-web/webgpu'
import * as tf from '@huggingface/transformers'
import { adapterInfo } from './common.js'
import { runPipeline } from './pipelines.js'

tf.env.allowRemoteModels = false
tf.env.allowLocalModels = true
tf.env.localModelPath = '/models/'
tf.env.useBrowserCache = false
tf.env.useWasmCache = false
tf.env.backends.onnx.wasm.wasmPaths = '/pkg/transformers-ort/dist/'
tf.env.backends.onnx.wasm.numThreads = 1

// As in ort.js: one WebGPU session (`keeper`, a model URL) stays open so that transformers.js's
// sessions share onnxruntime-web's device and the shaders compiled on it.
let keeper = null

async function run(spec) {
  if (spec.device === 'webgpu' && !keeper) {
    const bytes = new Uint8Array(await (await fetch(spec.keeper)).arrayBuffer())
    keeper = await ort.InferenceSession.create(bytes, { executionProviders: ['webgpu'] })
  }
  globalThis.takeOrtLog()
  const results = await runPipeline(tf, spec, { device: spec.device, session_options: { logSeverityLevel: 0, logVerbosityLevel: 0 } })
  return { results, log: globalThis.takeOrtLog() }
}

globalThis.harness = { run, adapter: adapterInfo, versions: { transformers: tf.env.version, web: ort.env.versions.web } }
