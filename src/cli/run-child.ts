/**
 * The command process that cli/supervisor.ts starts: it receives the command line over the IPC
 * channel (never through its own argv or environment: onnxruntime-node crashes in a process whose
 * argv is longer than about 28 KB, and `--text` can be that long) and runs it with oclif.
 *
 * If the supervisor dies (SIGKILL cannot be passed on), this process must not run on and commit
 * an output the user meant to stop: when its event loop is free it sees the IPC channel close and
 * ends as on SIGTERM; once it has staged an output, a watchdog thread (cli/watchdog.ts) ends it
 * even while it is busy. The thread starts only then, so commands that write nothing do not pay
 * for it.
 */
import { Worker } from 'node:worker_threads'
import fs from 'node:fs'
import { announceStagedOutputs, type StagedMessage } from '../util/staged-registry.js'
import type { RunMessage } from './supervisor.js'

const supervisor = process.ppid
let watchdog: Worker | undefined
const staged = new Set<string>()

/** Each staged output, before it is made: the watchdog hears of it, and none is made once the supervisor is gone. */
function watch(m: StagedMessage): void {
  if (m.type === 'staged') staged.add(m.path)
  else staged.delete(m.path)
  if (process.ppid !== supervisor) {
    for (const p of staged) fs.rmSync(p, { recursive: true, force: true })
    process.kill(process.pid, 'SIGKILL')
  }
  if (!watchdog) {
    watchdog = new Worker(new URL('./watchdog.js', import.meta.url), { workerData: { supervisor } })
    watchdog.unref()
  }
  watchdog.postMessage(m)
}

process.once('message', (message: RunMessage) => {
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'))
  // The channel stays open for the announcements, but must not keep the process alive.
  ;(process.channel as { unref?: () => void } | undefined)?.unref?.()
  if (message?.type !== 'run' || !Array.isArray(message.args)) {
    process.stderr.write('Error: the command process got no command line (internal error)\n')
    process.exitCode = 4
    return
  }
  announceStagedOutputs(watch)
  // oclif and the commands read the arguments from `args`; process.argv keeps them out too.
  void import('@oclif/core').then(({ execute }) => execute({ dir: message.bin, args: message.args }))
})
