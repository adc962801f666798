/**
 * The one way tests bound and measure what work costs: CPU time and peak memory.
 *
 * A command (the CLI, or any process) runs under a bound on the CPU time of its whole process tree
 * (user + system, the CLI and every process it starts) and on the tree's peak resident memory,
 * both read from /proc every 10 ms (each process's utime + stime, and its VmHWM high-water mark,
 * summed over the tree). A run past either bound is killed (the whole tree, SIGKILL) and says which
 * bound it crossed, so a regression fails its test instead of taking the machine. CPU time, not
 * wall time, because wall time on a machine shared by several test suites says more about the
 * neighbours than about the work; a generous wall bound still kills a hang. Linux only (/proc).
 *
 * Work inside the test process is measured the same way: `cpuTimed` gives the CPU time it took.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import { BIN } from './helpers.js'

export interface Bounds {
  /** CPU seconds (user + system) the whole process tree may use */
  cpu: number
  /** peak resident memory limit of the process tree, in MB (1e6 bytes) */
  mb: number
  /** wall-clock seconds after which the run is killed anyway (a hang); default max(60, 10 × cpu) */
  wall?: number
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
  /** CPU time of the process tree (user + system), ms */
  cpuMs: number
  /** peak resident memory of the process tree, MB */
  peakMB: number
  /** set when the run was stopped for crossing a bound */
  killed?: 'cpu' | 'memory' | 'wall'
}

/** Linux's clock ticks per second for /proc/<pid>/stat times (USER_HZ). */
const TICKS_PER_SECOND = 100

/** `albertkit ...args` under `bounds`. */
export function runBounded(args: string[], bounds: Bounds): Promise<BoundedRun> {
  return runCommandBounded(process.execPath, [BIN, ...args], bounds)
}

/** Any command under `bounds`. */
export function runCommandBounded(command: string, args: string[], bounds: Bounds): Promise<BoundedRun> {
  const wallMs = (bounds.wall ?? Math.max(60, 10 * bounds.cpu)) * 1000
  return new Promise((resolve, reject) => {
    const start = performance.now()
    const child = spawn(command, args, { cwd: bounds.cwd, env: bounds.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.stdin.on('error', () => {})
    child.stdin.end(bounds.input ?? '')
    // Per process ever seen: its high-water mark (bytes) and its latest CPU ticks.
    const hwm = new Map<number, number>()
    const ticks = new Map<number, number>()
    let killed: BoundedRun['killed']
    const sum = (m: Map<number, number>) => [...m.values()].reduce((a, b) => a + b, 0)
    const peak = () => sum(hwm) / 1e6
    const cpuMs = () => (sum(ticks) * 1000) / TICKS_PER_SECOND
    const poll = () => {
      if (child.pid === undefined) return
      for (const pid of tree(child.pid)) {
        const kb = readHwmKb(pid)
        if (kb !== undefined) hwm.set(pid, Math.max(hwm.get(pid) ?? 0, kb * 1024))
        const t = readCpuTicks(pid)
        if (t !== undefined) ticks.set(pid, Math.max(ticks.get(pid) ?? 0, t))
      }
      if (killed) return
      if (peak() > bounds.mb) killed = 'memory'
      else if (cpuMs() > bounds.cpu * 1000) killed = 'cpu'
      else if (performance.now() - start > wallMs) killed = 'wall'
      if (killed) for (const pid of tree(child.pid)) tryKill(pid)
    }
    const timer = setInterval(poll, 10)
    child.on('error', (e) => {
      clearInterval(timer)
      reject(e)
    })
    child.on('close', (status, signal) => {
      clearInterval(timer)
      const run: BoundedRun = { status, signal, stdout, stderr, ms: performance.now() - start, cpuMs: cpuMs(), peakMB: peak() }
      if (killed) run.killed = killed
      resolve(run)
    })
  })
}

/** `12.3 s CPU, 40.1 s wall, 180 MB`: a run's figures, for messages. */
export function figures(run: BoundedRun): string {
  return `${(run.cpuMs / 1000).toFixed(2)} s CPU, ${(run.ms / 1000).toFixed(1)} s wall, ${run.peakMB.toFixed(0)} MB`
}

/** The CPU time (user + system, ms) `fn` takes in this process, and what it returned. */
export function cpuTimed<T>(fn: () => T): { value: T; cpuMs: number } {
  const start = process.cpuUsage()
  const value = fn()
  const used = process.cpuUsage(start)
  return { value, cpuMs: (used.user + used.system) / 1000 }
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

/** utime + stime of a process (all its threads), in clock ticks. */
function readCpuTicks(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    // the command name (field 2) may hold spaces: fields after its closing parenthesis, from field 3
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return Number(fields[11]) + Number(fields[12])
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
