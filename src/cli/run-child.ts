/**
 * The command process that cli/supervisor.ts starts: it receives the command line over the IPC
 * channel (never through its own argv or environment: onnxruntime-node crashes in a process whose
 * argv is longer than about 28 KB, and `--text` can be that long) and runs it with oclif.
 */
import { Worker } from 'node:worker_threads'
import { announceStagedOutputs } from '../util/staged-registry.js'
import type { RunMessage } from './supervisor.js'

// Ends this process if the supervisor dies (cli/watchdog.ts); it never keeps the process alive.
const watchdog = new Worker(new URL('./watchdog.js', import.meta.url), { workerData: { supervisor: process.ppid } })
watchdog.unref()

process.once('message', (message: RunMessage) => {
  // The channel stays open for the announcements, but must not keep the process alive.
  ;(process.channel as { unref?: () => void } | undefined)?.unref?.()
  if (message?.type !== 'run' || !Array.isArray(message.args)) {
    process.stderr.write('Error: the command process got no command line (internal error)\n')
    process.exitCode = 4
    return
  }
  announceStagedOutputs((m) => watchdog.postMessage(m))
  // oclif and the commands read the arguments from `args`; process.argv keeps them out too.
  void import('@oclif/core').then(({ execute }) => execute({ dir: message.bin, args: message.args }))
})
