/**
 * A worker thread in the command process that ends it when its supervisor is gone (killed with
 * SIGKILL, which it cannot pass on): the command would otherwise run on as an orphan and might
 * still commit its output after the user killed the run. A thread, because the command's own
 * thread may be busy in synchronous work for minutes; this one checks every 50 ms whether the
 * process has been handed to another parent, removes the staged outputs it was told of
 * (util/staged-registry.ts mirrors them here) and kills the process.
 */
import fs from 'node:fs'
import { parentPort, workerData } from 'node:worker_threads'
import type { StagedMessage } from '../util/staged-registry.js'

const supervisor = (workerData as { supervisor: number }).supervisor
const staged = new Set<string>()

parentPort?.on('message', (m: StagedMessage) => {
  if (m.type === 'staged') staged.add(m.path)
  else staged.delete(m.path)
})

const check = setInterval(() => {
  if (process.ppid === supervisor) return
  clearInterval(check)
  for (const p of staged) fs.rmSync(p, { recursive: true, force: true })
  process.kill(process.pid, 'SIGKILL')
}, 50)
