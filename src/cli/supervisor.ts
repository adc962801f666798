/**
 * bin/run.js: every command runs in a child Node process that this one supervises.
 *
 * Why: a command busy in synchronous work (decoding a model, a pass, a checkpoint reader) cannot
 * run JavaScript signal handlers, so Ctrl-C and SIGTERM used to do nothing until it finished. The
 * supervisor does nothing but wait, so it always sees the signal: it passes it on, gives the
 * child a short grace to clean up by itself (it does when its event loop is free), then kills it,
 * removes the staged outputs the child announced (util/staged-registry.ts) and prints one line;
 * exit code 128 + the signal's number (130 for SIGINT, 143 for SIGTERM). A child that dies of a
 * signal nobody sent (SIGSEGV in a native library, an abort) is one internal-error line, exit 4.
 *
 * The child gets the same node binary and node flags, inherits stdin, stdout and stderr (so
 * terminal detection, colours and every byte of output are its own) and receives the command
 * line over the IPC channel, not in its argv or environment: onnxruntime-node crashes (SIGSEGV)
 * in a process whose argv totals more than about 28 KB, which a long `--text` reaches. Its exit
 * code is passed through as it is.
 *
 * Help and version run in this process: they do no work worth interrupting. A help page the build
 * stored (help-pages.ts) is printed without loading oclif.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { StagedMessage } from '../util/staged-registry.js'
import { HELP_PAGES_FILE, helpPageKey, rendersAsBuilt, storedHelpPage } from './help-pages.js'

/** What the supervisor sends the command process. */
export interface RunMessage {
  type: 'run'
  /** the command line, without node and the script */
  args: string[]
  /** bin/run.js's URL: oclif finds the package from it */
  bin: string
}

/** How long a signalled child has to end by itself before it is killed (a child whose event loop is free ends in a few ms). */
export const GRACE_MS = 200
/**
 * After SIGKILL, how long to read the announcements still in the pipe before finishing without
 * waiting for the child's exit: the kernel takes a while to free a large process (half a second
 * for 2 GB on a busy machine), and the run is over for the user once the child can do nothing more.
 */
export const DRAIN_MS = 100

const HANDLED = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const
type Handled = keyof typeof HANDLED

const CHILD = fileURLToPath(new URL('./run-child.js', import.meta.url))

/** Run the command line of this process (bin/run.js's whole job). */
export async function main(bin: string): Promise<void> {
  const args = process.argv.slice(2)
  if (cheap(args)) {
    const page = storedPage(bin, args)
    if (page !== undefined) {
      process.stdout.write(page)
      return
    }
    const { execute } = await import('@oclif/core/execute')
    await execute({ dir: bin, args })
    return
  }
  supervise(bin, args)
}

/** The help page the build stored for `args` (help-pages.ts), if there is one to print. */
function storedPage(bin: string, args: readonly string[]): string | undefined {
  if (helpPageKey(args) === undefined || !rendersAsBuilt()) return undefined
  const root = path.dirname(path.dirname(fileURLToPath(bin)))
  try {
    const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }
    return storedHelpPage(path.join(root, HELP_PAGES_FILE), version, args)
  } catch {
    return undefined
  }
}

/** Help and version: nothing to interrupt, so no second process. */
function cheap(args: readonly string[]): boolean {
  if (args.length === 0) return true
  if (args.length > 2) return false
  return args.some((a) => a === '--help' || a === '-h' || a === 'help' || a === '--version' || a === '-v' || a === 'version')
}

function supervise(bin: string, args: string[]): void {
  const staged = new Map<string, string>()
  let signalled: Handled | undefined
  let killTimer: NodeJS.Timeout | undefined
  let finished = false

  const child = spawn(process.execPath, [...process.execArgv, CHILD], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'] })
  child.on('message', (m: StagedMessage) => {
    if (m?.type === 'staged' && typeof m.path === 'string' && typeof m.target === 'string') staged.set(m.path, m.target)
    else if (m?.type === 'unstaged' && typeof m.path === 'string') staged.delete(m.path)
  })
  // A write to a child that is already gone fails with EPIPE; the exit tells the rest.
  child.on('error', (e) => {
    if (child.pid === undefined) finish(null, null, `cannot start the command process: ${e.message}`)
  })
  child.send({ type: 'run', args, bin } satisfies RunMessage, (e) => {
    if (e && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })

  const onSignal = (sig: Handled) => {
    signalled ??= sig
    try {
      child.kill(sig)
    } catch {
      // already gone
    }
    killTimer ??= setTimeout(() => {
      child.kill('SIGKILL')
      killTimer = setTimeout(() => finish(null, 'SIGKILL', undefined, true), DRAIN_MS)
    }, GRACE_MS)
  }
  for (const sig of Object.keys(HANDLED) as Handled[]) process.on(sig, onSignal)

  // 'close' comes after the exit and after the IPC channel is drained: every announcement is in.
  child.on('close', (code, signal) => finish(code, signal))

  function finish(code: number | null, signal: NodeJS.Signals | null, startError?: string, early = false): void {
    if (finished) return
    finished = true
    if (killTimer) clearTimeout(killTimer)
    for (const sig of Object.keys(HANDLED) as Handled[]) process.off(sig, onSignal)
    const removed = removeStaged(staged)
    if (startError !== undefined) return fail(args, `${startError} (internal error; set ALBERTKIT_DEBUG=1 for details)`, 'internal', 4)
    if (signalled && !(code === 0 && signal === null)) {
      const exitCode = 128 + HANDLED[signalled]
      const line = `interrupted${removed.length ? `: removed ${removed.join(', ')} (staged)` : ''}`
      clearLiveLine()
      process.stderr.write(`${line}\n`)
      if (wantsJson(args)) writeJson({ message: line, kind: 'interrupted', exitCode })
      process.exitCode = exitCode
      // Not waiting for a killed child's exit (it can do nothing more): stdout and stderr are
      // written synchronously, so exiting now loses nothing.
      if (early) process.exit()
      return
    }
    if (signal !== null) {
      clearLiveLine()
      return fail(args, `${crashWords(signal)} (internal error; set ALBERTKIT_DEBUG=1 for details)`, 'internal', 4)
    }
    process.exitCode = code ?? 4
  }
}

/** Remove what the child left staged; the targets, as the user would name them. */
function removeStaged(staged: Map<string, string>): string[] {
  const targets: string[] = []
  for (const [p, target] of staged) {
    fs.rmSync(p, { recursive: true, force: true })
    const rel = path.relative(process.cwd(), target)
    const shown = rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : target
    if (!targets.includes(shown)) targets.push(shown)
  }
  return targets
}

function crashWords(signal: NodeJS.Signals): string {
  if (signal === 'SIGKILL') return 'albertkit was killed (SIGKILL: out of memory?)'
  if (signal === 'SIGABRT') return 'albertkit aborted (SIGABRT)'
  return `albertkit crashed (${signal})`
}

function fail(args: string[], message: string, kind: string, exitCode: number): void {
  process.stderr.write(`Error: ${message}\n`)
  if (wantsJson(args)) writeJson({ message, kind, exitCode })
  process.exitCode = exitCode
}

/** --json before any `--`: stdout must still hold one JSON document. */
function wantsJson(args: string[]): boolean {
  const end = args.indexOf('--')
  return (end < 0 ? args : args.slice(0, end)).includes('--json')
}

function writeJson(error: { message: string; kind: string; exitCode: number }): void {
  process.stdout.write(JSON.stringify({ error }, null, 2) + '\n')
}

/** A progress line the child was drawing when it was killed: clear it before our line. */
function clearLiveLine(): void {
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[2K')
}
