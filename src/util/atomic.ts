/**
 * Outputs appear whole or not at all: everything is written under a temporary name in the
 * destination's own directory, then renamed into place. What may be replaced is the output
 * guard's decision (util/output-guard.ts); this module only moves bytes and names.
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

/** `.<name>.tmp-<pid>-<random>` beside `target`: hidden, and recognisably this run's. */
export function tempNameFor(target: string): string {
  const dir = path.dirname(target)
  return path.join(dir, `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`)
}

const TEMP_NAME = /^\.(.+)\.tmp-\d+-[0-9a-f]{8}$/

/** The name a temporary stands for (`.model.onnx.tmp-12-ab34cd56` → `model.onnx`), or the name itself. */
export function untemp(name: string): string {
  return TEMP_NAME.exec(name)?.[1] ?? name
}

/** Write byte pieces to `file` atomically (an existing file is replaced). */
export function writePiecesAtomic(file: string, pieces: readonly Uint8Array[]): number {
  return writeFilesAtomic([{ file, pieces }])[0]!
}

/**
 * Write several files atomically, as one step: all of them under temporary names first, then
 * renamed into place in the order given (a model's external data before the model that points to
 * it). Returns each file's byte count. On failure no temporary is left.
 */
export function writeFilesAtomic(files: readonly { file: string; pieces: readonly Uint8Array[] }[]): number[] {
  const tmps = files.map(({ file }) => {
    removeStaleTemporaries(file)
    const tmp = tempNameFor(file)
    live.add(tmp)
    stagedOutput(tmp, file)
    return tmp
  })
  installSignalCleanup()
  try {
    const sizes = files.map(({ pieces }, i) => writePieces(tmps[i]!, pieces))
    files.forEach(({ file }, i) => fs.renameSync(tmps[i]!, file))
    return sizes
  } catch (e) {
    for (const tmp of tmps) fs.rmSync(tmp, { force: true })
    throw e
  } finally {
    for (const tmp of tmps) {
      live.delete(tmp)
      stagedOutput(tmp, null)
    }
  }
}

/**
 * Write byte pieces to a new file (no rename); returns the byte count. A failed write (EFBIG past
 * `ulimit -f`, ENOSPC) names the file it was writing: `writev` errors carry no path of their own.
 */
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
  } catch (e) {
    const err = e as NodeJS.ErrnoException
    if (err && typeof err === 'object' && err.path === undefined) err.path = file
    throw e
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

/** The error a rename meets when something took the destination first (also what `commit` throws then). */
function existsError(file: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`EEXIST: file already exists, '${file}'`), { code: 'EEXIST', errno: -17, syscall: 'rename', path: file })
}

/**
 * A directory that becomes `target` only when `commit()` is called. Until then it lives under a
 * hidden temporary name beside the target (whose folder must exist); `abort()` removes it.
 */
export class StagedDir {
  readonly target: string
  readonly path: string
  private done = false

  constructor(target: string) {
    this.target = path.resolve(target)
    removeStaleTemporaries(this.target)
    this.path = tempNameFor(this.target)
    stagedOutput(this.path, this.target)
    fs.mkdirSync(this.path)
    live.add(this.path)
    installSignalCleanup()
  }

  /**
   * Move the staged directory into place. Without `replace`, an existing target is never touched
   * (EEXIST, even when it appeared a moment ago); with it, the target is swapped out and removed.
   */
  commit(replace: boolean): void {
    if (fs.existsSync(this.target) || isSymlink(this.target)) {
      if (!replace) throw existsError(this.target)
      const old = tempNameFor(this.target)
      live.add(old)
      try {
        fs.renameSync(this.target, old)
        try {
          fs.renameSync(this.path, this.target)
        } catch (e) {
          fs.renameSync(old, this.target)
          throw e
        }
        fs.rmSync(old, { recursive: true, force: true })
      } finally {
        live.delete(old)
      }
    } else {
      try {
        fs.renameSync(this.path, this.target)
      } catch (e) {
        // rename(2) puts a folder over an empty one, but not over anything else: someone was faster
        const code = (e as NodeJS.ErrnoException).code
        if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR') throw existsError(this.target)
        throw e
      }
    }
    this.finish()
  }

  /**
   * Move the staged directory's entries, in the order given, into the target's folder under the
   * same names (one ONNX file and its external data), then remove the empty stage. Without
   * `replace`, no existing file is touched: each goes in by a hard link, which fails with EEXIST
   * when the name is taken; what this call already put in place is taken back on failure.
   */
  commitEntries(names: readonly string[], replace: boolean): void {
    const dir = path.dirname(this.target)
    const placed: string[] = []
    try {
      for (const name of names) {
        const from = path.join(this.path, name)
        const to = path.join(dir, name)
        if (replace) {
          fs.renameSync(from, to)
          continue
        }
        try {
          fs.linkSync(from, to)
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code
          if (code === 'EEXIST') throw existsError(to)
          if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EXDEV') throw e
          // no hard links here: the next best is to look, then rename
          if (fs.existsSync(to) || isSymlink(to)) throw existsError(to)
          fs.renameSync(from, to)
        }
        placed.push(to)
      }
    } catch (e) {
      for (const to of placed) fs.rmSync(to, { force: true })
      throw e
    }
    fs.rmSync(this.path, { recursive: true, force: true })
    this.finish()
  }

  abort(): void {
    if (this.done) return
    fs.rmSync(this.path, { recursive: true, force: true })
    this.finish()
  }

  private finish(): void {
    live.delete(this.path)
    stagedOutput(this.path, null)
    this.done = true
  }
}

function isSymlink(file: string): boolean {
  try {
    return fs.lstatSync(file).isSymbolicLink()
  } catch {
    return false
  }
}
