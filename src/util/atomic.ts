/**
 * Outputs appear whole or not at all: everything is written under a temporary name in the
 * destination's own directory, then renamed into place.
 */
import fs from 'node:fs'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { stagedOutput } from './staged-registry.js'

const live = new Set<string>()
let handlersInstalled = false

/** Remove temporaries if the process is interrupted (SIGKILL cannot be caught; the names stay hidden). */
function installSignalCleanup(): void {
  if (handlersInstalled) return
  handlersInstalled = true
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const p of live) fs.rmSync(p, { recursive: true, force: true })
      process.kill(process.pid, sig)
    })
  }
}

function tempNameFor(target: string): string {
  const dir = path.dirname(target)
  return path.join(dir, `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`)
}

/** Write byte pieces to `file` atomically. */
export function writePiecesAtomic(file: string, pieces: readonly Uint8Array[]): number {
  removeStaleTemporaries(file)
  const tmp = tempNameFor(file)
  live.add(tmp)
  stagedOutput(tmp, file)
  installSignalCleanup()
  try {
    const total = writePieces(tmp, pieces)
    fs.renameSync(tmp, file)
    return total
  } catch (e) {
    fs.rmSync(tmp, { force: true })
    throw e
  } finally {
    live.delete(tmp)
    stagedOutput(tmp, null)
  }
}

/** Write byte pieces to a new file (no rename); returns the byte count. */
export function writePieces(file: string, pieces: readonly Uint8Array[]): number {
  const fd = fs.openSync(file, 'wx')
  let total = 0
  try {
    const batch = 512
    for (let i = 0; i < pieces.length; i += batch) {
      let chunk = pieces.slice(i, i + batch)
      let want = chunk.reduce((n, p) => n + p.byteLength, 0)
      while (want > 0) {
        const wrote = fs.writevSync(fd, chunk)
        total += wrote
        want -= wrote
        if (want > 0) chunk = dropBytes(chunk, wrote)
      }
    }
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  return total
}

function dropBytes(chunk: Uint8Array[], n: number): Uint8Array[] {
  const out: Uint8Array[] = []
  for (const p of chunk) {
    if (n >= p.byteLength) {
      n -= p.byteLength
      continue
    }
    out.push(n > 0 ? p.subarray(n) : p)
    n = 0
  }
  return out
}

/**
 * Remove temporaries a killed run left beside `target` (`.<name>.tmp-<pid>-…` whose process is gone).
 * SIGKILL cannot be caught, so this is where its leftovers go.
 */
export function removeStaleTemporaries(target: string): void {
  const dir = path.dirname(target)
  const prefix = `.${path.basename(target)}.tmp-`
  let names: string[]
  try {
    names = fs.readdirSync(dir)
  } catch {
    return
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue
    const pid = Number(name.slice(prefix.length).split('-')[0])
    if (!Number.isInteger(pid) || pid === process.pid || isRunning(pid)) continue
    fs.rmSync(path.join(dir, name), { recursive: true, force: true })
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * A directory that becomes `target` only when `commit()` is called. Until then it lives under a
 * hidden temporary name beside the target; `abort()` removes it.
 */
export class StagedDir {
  readonly target: string
  readonly path: string
  private done = false

  constructor(target: string) {
    this.target = path.resolve(target)
    const parent = path.dirname(this.target)
    fs.mkdirSync(parent, { recursive: true })
    removeStaleTemporaries(this.target)
    this.path = tempNameFor(this.target)
    stagedOutput(this.path, this.target)
    fs.mkdirSync(this.path)
    live.add(this.path)
    installSignalCleanup()
  }

  /** Move the staged directory into place. An existing target is replaced only when `replace` is set. */
  commit(replace: boolean): void {
    if (fs.existsSync(this.target)) {
      if (!replace) throw new Error(`${this.target} already exists`)
      const old = tempNameFor(this.target)
      fs.renameSync(this.target, old)
      fs.renameSync(this.path, this.target)
      fs.rmSync(old, { recursive: true, force: true })
    } else {
      fs.renameSync(this.path, this.target)
    }
    live.delete(this.path)
    stagedOutput(this.path, null)
    this.done = true
  }

  abort(): void {
    if (this.done) return
    fs.rmSync(this.path, { recursive: true, force: true })
    live.delete(this.path)
    stagedOutput(this.path, null)
    this.done = true
  }
}
