/** `verify`: parity of ONNX models against a checkpoint (or PyTorch goldens), as figures and a verdict. */
import fs from 'node:fs'
import { openCheckpoint } from '../checkpoint/index.js'
import { readSafetensors } from '../checkpoint/safetensors.js'
import { buildAlbert, resolveTask } from '../builder/albert.js'
import { modelBytes, readModelFile } from '../onnx/file.js'
import { fail } from '../util/errors.js'
import {
  DEFAULT_INPUTS,
  goldenOutputs,
  precisionOfFile,
  randomInputs,
  referenceOutputs,
  verifyCandidates,
  type ArtifactVerdict,
  type InputSpec,
  type Thresholds,
} from '../verify/verify.js'

export interface VerifyOptions {
  checkpoint: string
  candidates: string[]
  task?: string
  /** safetensors of PyTorch outputs to compare against instead of the reference graph */
  golden?: string
  /** safetensors of model inputs instead of seeded random ones */
  inputs?: string
  spec?: InputSpec
  thresholds?: Thresholds
}

export interface VerifyReport {
  reference: string
  inputs: string
  pass: boolean
  artifacts: ArtifactVerdict[]
}

export async function verify(opts: VerifyOptions): Promise<VerifyReport> {
  const ckpt = openCheckpoint(opts.checkpoint)
  const task = resolveTask(ckpt.config, opts.task, ckpt.configFile)
  if (opts.golden && !opts.inputs) fail(opts.golden, 'goldens need the inputs they were computed on (--inputs)')
  const feeds = opts.inputs ? readSafetensors(opts.inputs).tensors : randomInputs(ckpt.config, task, opts.spec ?? DEFAULT_INPUTS)
  const reference = opts.golden
    ? goldenOutputs(readSafetensors(opts.golden).tensors)
    : await referenceOutputs(modelBytes(buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.dir, configFile: ckpt.configFile }).model), feeds)
  const candidates = opts.candidates.map((path) => {
    if (!fs.existsSync(path)) fail(path, 'no such file')
    const model = readModelFile(path)
    const stamped = model.metadataProps.find((p) => p.key === 'albertkit.precision')?.value
    return { path, bytes: modelBytes(model), precision: stamped ?? precisionOfFile(path) }
  })
  const artifacts = await verifyCandidates(reference, feeds, candidates, opts.thresholds)
  const spec = opts.spec ?? DEFAULT_INPUTS
  return {
    reference: opts.golden ?? `albertkit fp32 graph of ${ckpt.dir} (onnxruntime optimizations off)`,
    inputs: opts.inputs ?? `random, seed ${spec.seed}, batch ${spec.batch}, sequence ${spec.sequence}`,
    pass: artifacts.every((a) => a.pass),
    artifacts,
  }
}
