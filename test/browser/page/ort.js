// albertkit's models straight through onnxruntime-web (the build `onnxruntime-web/webgpu` resolves
// to in a browser bundle: WebGPU and wasm providers, its wasm beside it), one single-threaded
// session per call, with the session log at verbose level so the test sees node placement.
import * as ort from '/pkg/onnxruntime-web/dist/ort.webgpu.bundle.min.mjs'
import { adapterInfo, fromTensors, toTensors } from './common.js'

ort.env.wasm.numThreads = 1

// onnxruntime-web drops its WebGPU device, and every shader it compiled for it, when its last
// WebGPU session is released. SwiftShader takes about a second per shader, so the first WebGPU
// session stays open for the page's life: later sessions share the device and its compiled
// shaders (each still places and runs its own graph).
let keeper = null

/** Run `model` (a URL) on `provider` ('wasm' or 'webgpu'); outputs, the kept log lines, timings. */
async function run({ model, provider, feeds }) {
  globalThis.takeOrtLog()
  const bytes = new Uint8Array(await (await fetch(model)).arrayBuffer())
  const t0 = performance.now()
  const session = await ort.InferenceSession.create(bytes, {
    executionProviders: [provider],
    graphOptimizationLevel: 'all',
    logSeverityLevel: 0,
    logVerbosityLevel: 0,
  })
  const t1 = performance.now()
  try {
    const missing = session.inputNames.filter((n) => !(n in feeds))
    if (missing.length) throw new Error(`no feed for model input(s) ${missing.join(', ')}`)
    const result = await session.run(toTensors(ort, Object.fromEntries(session.inputNames.map((n) => [n, feeds[n]]))))
    const t2 = performance.now()
    return { outputs: fromTensors(result), log: globalThis.takeOrtLog(), createMs: t1 - t0, runMs: t2 - t1 }
  } finally {
    if (provider === 'webgpu' && !keeper) keeper = session
    else await session.release()
  }
}

globalThis.harness = { run, adapter: adapterInfo, versions: { web: ort.env.versions.web } }
