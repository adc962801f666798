/**
 * Provenance: where a model came from, written into each emitted model's metadata_props so a
 * model file answers for itself (which albertkit, which checkpoint, which passes, what parity).
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import type { Model } from '../ir/graph.js'
import type { ArtifactVerdict } from '../verify/verdict.js'
import { VERSION } from '../util/version.js'
import { METADATA_PREFIX } from '../util/mark.js'

/** sha256 of a file, read in chunks. */
export function sha256File(file: string): string {
  const h = createHash('sha256')
  const fd = fs.openSync(file, 'r')
  try {
    const buf = Buffer.allocUnsafe(1 << 22)
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.byteLength, null)
      if (n === 0) break
      h.update(buf.subarray(0, n))
    }
  } finally {
    fs.closeSync(fd)
  }
  return h.digest('hex')
}

export interface SourceDigest {
  /** sha256 over the per-file lines below: one identity for the whole checkpoint */
  sha256: string
  files: { path: string; sha256: string }[]
}

/** The checkpoint's identity: sha256 of `name\0sha256\n` for config and weight files, sorted by name. */
export function digestCheckpoint(dir: string, files: string[]): SourceDigest {
  const entries = files
    .map((f) => ({ path: path.relative(dir, f), sha256: sha256File(f) }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  const h = createHash('sha256')
  for (const e of entries) h.update(`${e.path}\0${e.sha256}\n`)
  return { sha256: h.digest('hex'), files: entries }
}

export interface Provenance {
  sourceSha256: string
  /** the head built; absent for a model albertkit did not build (optimize --target on another exporter's file) */
  task?: string
  target: string
  precision: string
  passes: string[]
  verdict?: ArtifactVerdict
  /** labelled evaluation (convert --eval): plain JSON, stamped as albertkit.eval */
  eval?: object
  /** convert --precision auto: the plan chosen and every plan tried, plain JSON, stamped as albertkit.plan */
  plan?: object
}

const sig = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(6)) : String(x))

/** Stamp the model's metadata_props (replacing albertkit's earlier keys). */
export function stampProvenance(model: Model, p: Provenance): void {
  model.producerName = 'albertkit'
  model.producerVersion = VERSION
  model.metadataProps = model.metadataProps.filter((e) => !e.key.startsWith(METADATA_PREFIX))
  model.setMetadata('albertkit.version', VERSION)
  model.setMetadata('albertkit.source_sha256', p.sourceSha256)
  if (p.task !== undefined) model.setMetadata('albertkit.task', p.task)
  model.setMetadata('albertkit.target', p.target)
  model.setMetadata('albertkit.precision', p.precision)
  model.setMetadata('albertkit.passes', p.passes.join(','))
  if (p.verdict) {
    const parity = Object.fromEntries(
      p.verdict.outputs.map((o) => [o.name, { maxAbs: sig(o.maxAbs), meanAbs: sig(o.meanAbs), cosine: sig(o.cosine), ...(o.top1 !== undefined ? { top1: sig(o.top1) } : {}) }]),
    )
    model.setMetadata('albertkit.parity', JSON.stringify({ pass: p.verdict.pass, thresholds: p.verdict.thresholds, outputs: parity }))
  }
  if (p.eval) model.setMetadata('albertkit.eval', JSON.stringify(p.eval))
  if (p.plan) model.setMetadata('albertkit.plan', JSON.stringify(p.plan))
}

/** Stamp a model `optimize` wrote: which albertkit, which passes (the convert keys, if any, stay). */
export function stampOptimized(model: Model, passes: string[]): void {
  model.setMetadata('albertkit.optimize.version', VERSION)
  model.setMetadata('albertkit.optimize.passes', passes.join(','))
}
