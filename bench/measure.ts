/** Whole-process measurements: wall time and peak memory of a command, median over runs. */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
export const ROOT = path.resolve(here, '../..')
export const BIN = path.join(ROOT, 'bin', 'run.js')
const PROBE = path.join(here, 'rss-probe.js')

export interface ProcessRun {
  seconds: number
  peakMB: number
}

/** Run `node bin/run.js ...args` once; throws with its stderr if it fails. */
export function runAlbertkit(args: string[], before?: () => void): ProcessRun {
  before?.()
  const rssFile = path.join(os.tmpdir(), `albertkit-rss-${process.pid}-${Math.random().toString(36).slice(2)}`)
  const start = performance.now()
  const r = spawnSync(process.execPath, ['--import', PROBE, BIN, ...args], {
    env: { ...process.env, ALBERTKIT_RSS_FILE: rssFile },
    encoding: 'utf8',
  })
  const seconds = (performance.now() - start) / 1000
  if (r.status !== 0) throw new Error(`albertkit ${args.join(' ')} failed:\n${r.stderr}`)
  const kb = Number(fs.readFileSync(rssFile, 'utf8'))
  fs.rmSync(rssFile, { force: true })
  return { seconds, peakMB: kb / 1024 }
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** Median wall time and median peak memory over `n` runs. */
export function medianRuns(n: number, args: string[], before?: () => void): ProcessRun & { runs: ProcessRun[] } {
  const runs = Array.from({ length: n }, () => runAlbertkit(args, before))
  return { seconds: median(runs.map((r) => r.seconds)), peakMB: median(runs.map((r) => r.peakMB)), runs }
}
