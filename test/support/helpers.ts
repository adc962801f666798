import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { readSafetensors } from '../../src/checkpoint/safetensors.js'
import { Tensor, bytesOf } from '../../src/ir/tensor.js'
import { DataType } from '../../src/ir/dtype.js'
import { openCheckpoint } from '../../src/checkpoint/index.js'
import { buildAlbert } from '../../src/builder/albert.js'
import { resolveTask } from '../../src/checkpoint/task.js'
import type { Model } from '../../src/ir/graph.js'
import { modelBytes } from '../../src/onnx/file.js'
import { createSession, runSession, type SessionOptions } from '../../src/runtime/session.js'
import { compareOutputs, type Parity } from '../../src/verify/compare.js'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
export const FIXTURES = path.join(ROOT, 'fixtures')
export const BIN = path.join(ROOT, 'bin', 'run.js')

/** Committed fixtures that carry transformers goldens. */
export function goldenFixtures(): string[] {
  return fs
    .readdirSync(FIXTURES)
    .filter((n) => fs.existsSync(path.join(FIXTURES, n, 'golden.safetensors')))
    .sort()
}

export function fixtureDir(name: string): string {
  return path.join(FIXTURES, name)
}

export function loadTensors(file: string): Map<string, Tensor> {
  return readSafetensors(file).tensors
}

export function fixtureInputs(name: string): Map<string, Tensor> {
  return loadTensors(path.join(fixtureDir(name), 'inputs.safetensors'))
}

export function fixtureGolden(name: string): Map<string, Tensor> {
  return loadTensors(path.join(fixtureDir(name), 'golden.safetensors'))
}

const temporaries: string[] = []

/** A fresh temporary folder, removed when the process exits (one exit listener for them all). */
export function tempDir(prefix = 'albertkit-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  if (temporaries.push(dir) === 1) process.on('exit', () => temporaries.forEach((d) => fs.rmSync(d, { recursive: true, force: true })))
  return dir
}

/** Copy a fixture folder to a temporary place so a test can damage it. */
export function copyFixture(name: string): string {
  const dest = path.join(tempDir(), name)
  fs.cpSync(fixtureDir(name), dest, { recursive: true })
  return dest
}

/** The fp32 graph albertkit builds for a committed fixture. */
export function buildFixture(name: string): Model {
  const ckpt = openCheckpoint(fixtureDir(name))
  const task = resolveTask(ckpt.config, undefined, ckpt.configFile)
  return buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.dir, configFile: ckpt.configFile }).model
}

/** Run a model (IR or file path) on a fixture's inputs with onnxruntime; outputs by name. */
export async function runOnFixture(model: Model | string, name: string, opts: SessionOptions = {}) {
  const session = await createSession(typeof model === 'string' ? model : modelBytes(model), opts)
  return runSession(session, fixtureInputs(name))
}

/** Parity of every output against the fixture's transformers golden. */
export async function parityWithGolden(model: Model | string, name: string, opts: SessionOptions = {}): Promise<Map<string, Parity>> {
  const outputs = await runOnFixture(model, name, opts)
  const golden = fixtureGolden(name)
  const result = new Map<string, Parity>()
  for (const [k, ref] of golden) {
    const got = outputs.get(k)
    if (!got) throw new Error(`model has no output '${k}'`)
    result.set(k, compareOutputs(ref.toFloat32(), got.data, ref.dims[ref.dims.length - 1]))
  }
  return result
}

/** One unpadded row of token ids as model inputs ([1, n]; mask all 1, token types all 0). */
export function rowFeed(ids: readonly number[]): Map<string, Tensor> {
  const n = ids.length
  const t = (a: BigInt64Array) => new Tensor(DataType.INT64, [1, n], bytesOf(a))
  return new Map([
    ['input_ids', t(BigInt64Array.from(ids.map(BigInt)))],
    ['attention_mask', t(new BigInt64Array(n).fill(1n))],
    ['token_type_ids', t(new BigInt64Array(n))],
  ])
}
