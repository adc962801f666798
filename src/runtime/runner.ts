/**
 * The model runner the passes get (passes/pass.ts ModelRunner), backed by onnxruntime-node: the
 * model is written to bytes, loaded once, and run on each feed in turn on one thread (the same
 * sums in the same order on any machine, so calibration gives the same scales and choices).
 */
import type { Model } from '../ir/graph.js'
import { modelBytes } from '../onnx/file.js'
import type { ModelRunner, RunOptions } from '../passes/pass.js'
import type { Feed } from '../verify/inputs.js'
import type { OutputMap } from '../verify/verdict.js'
import { createSession, runSession } from './session.js'

export const ortRunner: ModelRunner = {
  async run(model: Model, feeds: readonly Feed[], options: RunOptions = {}): Promise<OutputMap> {
    const keep = options.keep ?? model.graph.outputs.map((v) => v.name)
    const session = await createSession(modelBytes(model), { optimization: options.exact ? 'disabled' : 'all', intraOpThreads: 1 })
    const parts = new Map<string, { data: Float32Array; dims: number[] }[]>()
    try {
      for (const feed of feeds) {
        const out = await runSession(session, feed)
        options.each?.(out)
        for (const name of keep) parts.set(name, [...(parts.get(name) ?? []), out.get(name)!])
      }
    } finally {
      await session.release()
    }
    return new Map([...parts].map(([name, list]) => [name, concatRows(list)]))
  },
}

function concatRows(list: { data: Float32Array; dims: number[] }[]): { data: Float32Array; dims: number[] } {
  if (list.length === 1) return list[0]!
  const data = new Float32Array(list.reduce((n, p) => n + p.data.length, 0))
  let at = 0
  for (const p of list) {
    data.set(p.data, at)
    at += p.data.length
  }
  const rows = list.reduce((n, p) => n + (p.dims[0] ?? 1), 0)
  return { data, dims: [rows, ...list[0]!.dims.slice(1)] }
}
