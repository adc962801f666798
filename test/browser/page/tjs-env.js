// transformers.js in a test page, from this server only: models under /models/, onnxruntime-web's
// wasm from the copy transformers.js depends on (its default is a CDN), no browser cache, one thread.
import * as tf from '@huggingface/transformers'

tf.env.allowRemoteModels = false
tf.env.allowLocalModels = true
tf.env.localModelPath = '/models/'
tf.env.useBrowserCache = false
tf.env.useWasmCache = false
tf.env.backends.onnx.wasm.wasmPaths = '/pkg/transformers-ort/dist/'
tf.env.backends.onnx.wasm.numThreads = 1

export { tf }
