/**
 * How long `albertkit --help` takes over bare Node (goal: within 0.15 s; oclif.manifest.json lets
 * help run without importing any command). Runs alternate between bare Node and each command line,
 * so that a busy machine slows them alike; medians. `node dist/bench/startup.js` prints it alone.
 */
import { spawnSync } from 'node:child_process'
import { pathToFileURL } from 'node:url'
import { BIN, median } from './measure.js'

export interface StartupFigures {
  runs: number
  bareNodeSeconds: number
  rows: { command: string; seconds: number; overBareSeconds: number }[]
}

const LINES = [['--help'], ['convert', '--help'], ['--version']]

function wall(args: string[]): number {
  const start = performance.now()
  const r = spawnSync(process.execPath, args, { stdio: 'ignore' })
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}`)
  return (performance.now() - start) / 1000
}

export function startupFigures(runs = 15): StartupFigures {
  const bare: number[] = []
  const times = LINES.map((): number[] => [])
  for (let i = 0; i < runs; i++) {
    bare.push(wall(['-e', '0']))
    LINES.forEach((args, j) => times[j]!.push(wall([BIN, ...args])))
  }
  const b = median(bare)
  return {
    runs,
    bareNodeSeconds: b,
    rows: LINES.map((args, j) => ({ command: `albertkit ${args.join(' ')}`, seconds: median(times[j]!), overBareSeconds: median(times[j]!) - b })),
  }
}

export function printStartup(f: StartupFigures): void {
  console.log(`\nstartup: median of ${f.runs} runs; bare Node (node -e 0) ${f.bareNodeSeconds.toFixed(3)} s`)
  console.log('')
  console.log('| command | wall time | over bare Node | goal |')
  console.log('|---|---|---|---|')
  for (const r of f.rows) console.log(`| ${r.command} | ${r.seconds.toFixed(3)} s | ${r.overBareSeconds.toFixed(3)} s | ${r.command.endsWith('--help') ? '≤ 0.15 s over bare Node' : ''} |`)
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) printStartup(startupFigures())
