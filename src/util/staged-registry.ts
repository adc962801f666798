/**
 * Staged outputs — the hidden folders and files that become the output when a run commits — are
 * announced to the supervising process (bin/run.js, cli/supervisor.ts) as they appear and go, so
 * that it can remove them when this process cannot: killed after a grace period because it was
 * busy in synchronous work when Ctrl-C came, or crashed in a native library.
 *
 * `process.send` writes to the IPC pipe before it returns (libuv writes at once when nothing is
 * queued), so a path announced here reaches the supervisor even if this process is killed on the
 * next line.
 */

/** What the command process tells its supervisor. */
export type StagedMessage = { type: 'staged'; path: string; target: string } | { type: 'unstaged'; path: string }

let announcing = false
let mirror: ((m: StagedMessage) => void) | undefined

/**
 * Announce staged outputs from now on (cli/run-child.ts calls this: the process has a
 * supervisor), to it and to `watchdog` (cli/watchdog.ts, which cleans up if the supervisor dies).
 */
export function announceStagedOutputs(watchdog?: (m: StagedMessage) => void): void {
  announcing = typeof process.send === 'function'
  mirror = watchdog
}

/**
 * `path` now holds a staged copy of `target` (it may not exist yet; removing it must be safe), or,
 * with `target` null, it no longer does (committed into place or removed).
 */
export function stagedOutput(path: string, target: string | null): void {
  if (!announcing) return
  const message: StagedMessage = target === null ? { type: 'unstaged', path } : { type: 'staged', path, target }
  mirror?.(message)
  if (!process.connected) return
  try {
    process.send!(message)
  } catch {
    // The supervisor is gone; nobody is left to clean up for.
  }
}
