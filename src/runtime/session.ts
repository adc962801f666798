/** Running models with onnxruntime-node (loaded on first use: most commands never need it): sessions, inputs in, float32 outputs out. */
import type { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node'
import type { Tensor } from '../ir/tensor.js'
import { DataType, dtypeName } from '../ir/dtype.js'
import { viewAs } from '../ir/tensor.js'
import { describe } from '../util/errors.js'
import { printable } from '../util/printable.js'

type Ort = typeof import('onnxruntime-node')
let ort: Ort | undefined

/**
 * A model that onnxruntime refuses to load (an unknown op, an IR or opset it does not support) or
 * fails to run, or whose inputs or outputs do not fit verification. Not a UserError by itself: on a
 * user's model it is one (the caller names the model), on albertkit's own graph it is a bug.
 */
export class ModelRunError extends Error {
  override name = 'ModelRunError'
  constructor(
    /** load: onnxruntime refused the model; run: it failed running it; inputs / outputs: they do not fit */
    readonly stage: 'load' | 'run' | 'inputs' | 'outputs',
    message: string,
  ) {
    super(message)
  }
}

/** onnxruntime's reason, on one line: its source location and C++ signature, and the path it was given, left out. */
function ortReason(e: unknown): string {
  const text = describe(e)
    .replace(/^Load model from .*? failed:\s*/, '')
    .replace(/^\/?[\w./-]+\.(?:cc|cpp|h):\d+ [^(]*\([^)]*\)(?: const)?\s*/, '')
  return printable(text, 400)
}

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
    // errors only: its warnings (an old opset, ...) would print their own lines on stderr
    logSeverityLevel: 3,
  }
  if (opts.intraOpThreads) options.intraOpNumThreads = opts.intraOpThreads
  if (opts.disablePrepacking) options.extra = { session: { disable_prepacking: '1' } }
  try {
    return await (typeof model === 'string' ? o.InferenceSession.create(model, options) : o.InferenceSession.create(model, options))
  } catch (e) {
    throw new ModelRunError('load', `onnxruntime cannot load this model: ${ortReason(e)}`)
  }
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
      throw new ModelRunError('inputs', `inputs of type ${dtypeName(t.dtype)} are not supported (int64, int32 or float32)`)
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
    if (!t) throw new ModelRunError('inputs', `the model takes an input '${printable(name)}' that the verification inputs do not have`)
    ortFeeds[name] = await toOrtTensor(t)
  }
  let result: InferenceSession.OnnxValueMapType
  try {
    result = await session.run(ortFeeds)
  } catch (e) {
    throw new ModelRunError('run', `onnxruntime cannot run this model: ${ortReason(e)}`)
  }
  const out = new Map<string, { data: Float32Array; dims: number[] }>()
  for (const name of session.outputNames) {
    const r = result[name]!
    if (r.type !== 'float32') throw new ModelRunError('outputs', `output '${printable(name)}' is ${r.type}, expected float32`)
    out.set(name, { data: r.data as Float32Array, dims: [...r.dims] })
  }
  return out
}

/**
 * Save the model file `onnxFile` as the ORT-format model ORT Mobile loads (`ortFile`, a flatbuffer),
 * written by onnxruntime itself: it loads the model, applies its basic graph optimizations (the
 * ONNX-standard ones that hold on every platform; the extended level would bake in x86 kernels'
 * layouts) and saves the result in ORT format.
 */
export async function saveOrtFormat(onnxFile: string, ortFile: string): Promise<void> {
  const o = await loadOrt()
  let session: InferenceSession
  try {
    session = await o.InferenceSession.create(onnxFile, {
      graphOptimizationLevel: 'basic',
      executionProviders: ['cpu'],
      logSeverityLevel: 3,
      optimizedModelFilePath: ortFile,
      extra: { session: { save_model_format: 'ORT' } },
    })
  } catch (e) {
    throw new ModelRunError('load', `onnxruntime cannot save this model in ORT format: ${ortReason(e)}`)
  }
  await session.release()
}
