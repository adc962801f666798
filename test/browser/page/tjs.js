// albertkit's output folders through transformers.js pipelines in the browser (set up by
// tjs-env.js: this server only, no cache). Sessions log at verbose level (node placement).
import * as ort from 'onnxruntime-web/webgpu'
import { tf } from './tjs-env.js'
import { adapterInfo } from './common.js'
import { runPipeline } from './pipelines.js'

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
