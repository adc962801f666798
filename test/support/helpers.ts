import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { readSafetensors } from '../../src/checkpoint/safetensors.js'
import type { Tensor } from '../../src/ir/tensor.js'

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

/** A fresh temporary folder, removed when the process exits. */
export function tempDir(prefix = 'albertkit-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Copy a fixture folder to a temporary place so a test can damage it. */
export function copyFixture(name: string): string {
  const dest = path.join(tempDir(), name)
  fs.cpSync(fixtureDir(name), dest, { recursive: true })
  return dest
}
