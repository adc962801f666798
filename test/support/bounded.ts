/**
 * Run the CLI under a time and memory bound, measuring both: wall time, and the peak resident
 * memory of the whole process tree (the CLI and any process it starts), read from /proc every
 * 10 ms (VmHWM, each process's own high-water mark, summed over the tree). A run past either bound
 * is killed (the whole tree, SIGKILL) and says which bound it crossed, so a regression fails its
 * test instead of taking the machine. Linux only (/proc).
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import { BIN } from './helpers.js'

export interface Bounds {
  /** wall-clock limit in seconds */
  seconds: number
  /** peak resident memory limit of the process tree, in MB (1e6 bytes) */
  mb: number
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** written to the child's stdin, which is then closed */
  input?: string
}

export interface BoundedRun {
  status: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** wall time, ms */
  ms: number
  /** peak resident memory of the process tree, MB */
  peakMB: number
  /** set when the run was stopped for crossing a bound */
  killed?: 'time' | 'memory'
}

/** `albertkit ...args` under `bounds`. */
export function runBounded(args: string[], bounds: Bounds): Promise<BoundedRun> {
  return runCommandBounded(process.execPath, [BIN, ...args], bounds)
}

/** Any command under `bounds`. */
export function runCommandBounded(command: string, args: string[], bounds: Bounds): Promise<BoundedRun> {
  return new Promise((resolve, reject) => {
    const start = performance.now()
    const child = spawn(command, args, { cwd: bounds.cwd, env: bounds.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.stdin.on('error', () => {})
    child.stdin.end(bounds.input ?? '')
    const hwm = new Map<number, number>()
    let killed: BoundedRun['killed']
    const peak = () => [...hwm.values()].reduce((a, b) => a + b, 0) / 1e6
    const poll = () => {
      if (child.pid === undefined) return
      for (const pid of tree(child.pid)) {
        const kb = readHwmKb(pid)
        if (kb !== undefined) hwm.set(pid, Math.max(hwm.get(pid) ?? 0, kb * 1024))
      }
      if (killed) return
      if (peak() > bounds.mb) killed = 'memory'
      else if (performance.now() - start > bounds.seconds * 1000) killed = 'time'
      if (killed) for (const pid of tree(child.pid)) tryKill(pid)
    }
    const timer = setInterval(poll, 10)
    child.on('error', (e) => {
      clearInterval(timer)
      reject(e)
    })
    child.on('close', (status, signal) => {
      clearInterval(timer)
      const run: BoundedRun = { status, signal, stdout, stderr, ms: performance.now() - start, peakMB: peak() }
      if (killed) run.killed = killed
      resolve(run)
    })
  })
}

/** `pid` and its descendants, from /proc/<pid>/task/<tid>/children. */
function tree(pid: number): number[] {
  const out: number[] = []
  const queue = [pid]
  while (queue.length) {
    const p = queue.shift()!
    out.push(p)
    let tasks: string[] = []
    try {
      tasks = fs.readdirSync(`/proc/${p}/task`)
    } catch {
      continue
    }
    for (const t of tasks) {
      try {
        for (const c of fs.readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').split(' ')) if (c.trim()) queue.push(Number(c))
      } catch {
        // the task ended between the two reads
      }
    }
  }
  return out
}

function readHwmKb(pid: number): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) : undefined
  } catch {
    return undefined
  }
}

function tryKill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // already gone
  }
}
