/**
 * The output guard, one for every command that writes (`convert` a folder, `optimize` an ONNX
 * file): where the output may go and what it may replace, checked before any input is read, and
 * again when the output is put in place.
 *
 * - Never the root, the current folder, the home folder, nor any folder that contains one of them;
 *   never an input, a folder that holds an input, or a place inside one (real paths, symlinks
 *   resolved, both ways; a checkpoint folder's entries count with their link targets). These are
 *   usage errors (2), with or without `--force`.
 * - `--force` replaces only what albertkit wrote: a folder whose report.json carries albertkit's
 *   mark and that holds nothing else (util/mark.ts), an ONNX file whose metadata_props
 *   carry `albertkit.*` keys, or an empty folder. Anything else is refused as a usage error (2);
 *   without `--force` an existing output is an input/output error (3), as is losing the race for
 *   the output to another process.
 * - The place is checked before any input is read: the nearest existing folder on the way must be
 *   a folder albertkit can create things in. Missing folders on the way are created when the output
 *   is staged, and removed again if the command fails.
 * - A failed file operation becomes one line naming the user's path (never a temporary's name) and
 *   the cause in words, exit code 3, with the staged output and any folder this run created gone.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { StagedDir, tempNameFor, untemp } from './atomic.js'
import { UsageError, UserError } from './errors.js'
import { METADATA_PREFIX, folderMarkOf } from './mark.js'
import { realpathOrUndefined, within } from './paths.js'

export type OutputKind = 'folder' | 'onnx-file'

/** Something the command reads, which the output must keep clear of. */
export interface GuardedInput {
  /** as the user gave it */
  path: string
  /** how messages call it: 'the checkpoint', 'the input', 'the --text-file' */
  what: string
}

export interface OutputRequest {
  kind: OutputKind
  /** replace an existing output albertkit wrote */
  force: boolean
  inputs: readonly GuardedInput[]
  /** the flag that names the output, for messages (default --out) */
  flag?: string
}

const REPLACEABLE: Record<OutputKind, string> = {
  folder: 'a folder albertkit wrote, or an empty folder',
  'onnx-file': 'an ONNX file albertkit wrote',
}

/** report.json is read to decide on --force only up to this size; albertkit's are far smaller. */
const REPORT_LIMIT = 16 << 20
/** A folder with more entries than this is not one albertkit wrote. */
const FOLDER_ENTRY_LIMIT = 10_000

/**
 * Check where the output goes, before anything is read. Returns the checked output, which stages,
 * commits and cleans up; throws a UsageError (2) for a refused place, a UserError (3) for an
 * existing output without --force or a place that cannot be written.
 */
export function checkOutput(given: string, req: OutputRequest): CheckedOutput {
  const flag = req.flag ?? '--out'
  if (given === '') throw new UsageError(`${flag} is empty: name the ${req.kind === 'folder' ? 'folder' : 'ONNX file'} to write`)
  const target = path.resolve(given)
  const existing = lstat(target, given)
  const way = nearestFolder(given, target)
  const real = existing?.isSymbolicLink() ? (realpathOrUndefined(target) ?? path.join(way.real, path.basename(target))) : path.join(way.real, path.relative(way.dir, target))
  refusePlace(given, real, req.inputs)
  if (existing) {
    const why = notReplaceable(target, existing, req.kind)
    if (!req.force) throw new UserError(why ? `${given}: already exists and ${why}; choose another ${flag}` : `${given}: already exists (pass --force to replace it)`)
    if (why) throw new UsageError(`${given}: ${why}; --force replaces only ${REPLACEABLE[req.kind]}`)
  }
  probe(given, target, way)
  return new CheckedOutput(given, target, req)
}

/** An output that passed the guard: stages it, puts it in place, and cleans up after a failure. */
export class CheckedOutput {
  /** the first folder on the way that this run created (removed again on failure) */
  private created: string | undefined

  constructor(
    /** as the user gave it: what messages name */
    readonly given: string,
    readonly target: string,
    private readonly req: OutputRequest,
  ) {}

  /** Create the missing folders on the way and the hidden stage beside the target. */
  stage(): StagedDir {
    try {
      this.created ??= fs.mkdirSync(path.dirname(this.target), { recursive: true }) ?? undefined
      return new StagedDir(this.target)
    } catch (e) {
      throw this.failed(e)
    }
  }

  /** Where an ONNX-file output is written inside its stage (its external data goes beside it). */
  fileIn(stage: StagedDir): string {
    return path.join(stage.path, path.basename(this.target))
  }

  /**
   * Put the staged output in place. The guard's rules hold again here: an output that appeared
   * meanwhile is "already exists" (3), and with --force what stands there now must still be
   * albertkit's.
   */
  commit(stage: StagedDir): void {
    const now = lstat(this.target, this.given)
    if (now) {
      if (!this.req.force) throw new UserError(`${this.given}: already exists (it appeared while albertkit was writing)`)
      const why = notReplaceable(this.target, now, this.req.kind)
      if (why) throw new UserError(`${this.given}: ${why} (it changed while albertkit was writing); --force replaces only ${REPLACEABLE[this.req.kind]}`)
    }
    if (this.req.kind === 'folder') {
      stage.commit(now !== undefined)
    } else {
      // the model last: external data is in place before the file that points to it
      const model = path.basename(this.target)
      const names = fs.readdirSync(stage.path).sort((a, b) => Number(a === model) - Number(b === model) || (a < b ? -1 : a > b ? 1 : 0))
      stage.commitEntries(names, now !== undefined)
    }
  }

  /**
   * After a failure: remove the stage and the folders this run created, and return the error to
   * throw, a failed file operation made one line that names the user's path.
   */
  failed(err: unknown, stage?: StagedDir): unknown {
    try {
      stage?.abort()
    } catch {
      // the error that brought us here is the one to report
    }
    this.removeCreatedFolders()
    if (!isSystemError(err)) return err
    return new UserError(`${this.show(err.path, stage)}: ${fsCause(err)}`, { cause: err })
  }

  private removeCreatedFolders(): void {
    if (!this.created) return
    for (let dir = path.dirname(this.target); ; dir = path.dirname(dir)) {
      try {
        fs.rmdirSync(dir)
      } catch {
        break
      }
      if (dir === this.created || dir === path.dirname(dir)) break
    }
    this.created = undefined
  }

  /** A path a file operation named, as the user would name it. */
  private show(p: string | undefined, stage?: StagedDir): string {
    if (p === undefined) return this.given
    const abs = path.resolve(p)
    if (stage && (abs === stage.path || abs.startsWith(stage.path + path.sep))) {
      const parts = path.relative(stage.path, abs).split(path.sep).filter(Boolean).map(untemp)
      // the stage itself, or albertkit's own scratch inside it (.verify)
      if (parts.length === 0 || parts.some((x) => x.startsWith('.'))) return this.given
      if (this.req.kind === 'folder') return joinShown(this.given, parts)
      return parts.length === 1 && parts[0] === path.basename(this.target) ? this.given : joinShown(shownDir(this.given), parts)
    }
    const real = path.join(path.dirname(abs), untemp(path.basename(abs)))
    if (real === this.target) return this.given
    if (path.dirname(real) === path.dirname(this.target)) return joinShown(shownDir(this.given), [path.basename(real)])
    if (this.target.startsWith(abs + path.sep)) {
      let shown = this.given
      for (let up = path.relative(abs, this.target).split(path.sep).length; up > 0; up--) shown = shownDir(shown)
      return shown
    }
    return p
  }
}

/** The folder the output goes in, or the nearest one on the way that exists. */
interface Way {
  /** absolute */
  dir: string
  /** as the user would name it */
  shown: string
  real: string
}

function nearestFolder(given: string, target: string): Way {
  let dir = path.dirname(target)
  let shown = shownDir(given)
  for (;;) {
    let st: fs.Stats
    try {
      st = fs.statSync(dir)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if ((code === 'ENOENT' || code === 'ENOTDIR') && dir !== path.dirname(dir)) {
        dir = path.dirname(dir)
        shown = shownDir(shown)
        continue
      }
      throw new UserError(`${given}: cannot reach ${shown}: ${fsCause(e)}`, { cause: e })
    }
    if (!st.isDirectory()) throw new UserError(`${given}: ${shown} is a file, not a folder`)
    return { dir, shown, real: realpathOrUndefined(dir) ?? dir }
  }
}

/** Can this run create things where the output goes? Tried, with a hidden folder made and removed at once. */
function probe(given: string, target: string, way: Way): void {
  const child = path.relative(way.dir, target).split(path.sep)[0]!
  const trial = tempNameFor(path.join(way.dir, child))
  try {
    fs.mkdirSync(trial)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    // /proc and its like: the folder exists, but nothing can be created in it
    const cause = code === 'ENOENT' ? 'nothing can be created there' : fsCause(e)
    throw new UserError(`${given}: cannot write in ${way.shown}: ${cause}`, { cause: e })
  }
  fs.rmdirSync(trial)
}

/** The places an output may never be, whatever the flags. */
function refusePlace(given: string, real: string, inputs: readonly GuardedInput[]): void {
  const refuse = (why: string): never => {
    throw new UsageError(`${given}: ${why}`)
  }
  if (real === path.parse(real).root) refuse('is the root folder')
  const cwd = realpathOrUndefined(process.cwd())
  if (cwd !== undefined) {
    if (real === cwd) refuse('is the current folder; name a folder of its own for the output')
    if (within(cwd, real)) refuse('contains the current folder')
  }
  const home = realpathOrUndefined(os.homedir())
  if (home !== undefined) {
    if (real === home) refuse('is your home folder')
    if (within(home, real)) refuse('contains your home folder')
  }
  for (const input of inputs) {
    const abs = path.resolve(input.path)
    const r = realpathOrUndefined(abs) ?? abs
    if (real === r) refuse(path.resolve(given) === abs ? `is ${input.what} itself` : `is ${input.what} ${input.path}`)
    if (within(r, real)) refuse(`contains ${input.what} ${input.path}`)
    if (within(real, r)) refuse(`lies inside ${input.what} ${input.path}`)
    // a checkpoint's files may be links to elsewhere (the Hugging Face cache's blobs)
    for (const [name, linked] of linkedEntries(r)) {
      const part = `${input.path.replace(/\/+$/, '')}/${name}`
      if (real === linked) refuse(`is ${part}, part of ${input.what}`)
      if (within(linked, real)) refuse(`contains ${part}, part of ${input.what}`)
      if (within(real, linked)) refuse(`lies inside ${part}, part of ${input.what}`)
    }
  }
}

/** A folder's entries that are symbolic links, with their real paths. */
function linkedEntries(dir: string): [string, string][] {
  let entries: fs.Dirent[]
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true })
  } catch {
    return []
  }
  const out: [string, string][] = []
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  for (const e of entries.slice(0, FOLDER_ENTRY_LIMIT)) {
    if (!e.isSymbolicLink()) continue
    const r = realpathOrUndefined(path.join(dir, e.name))
    if (r !== undefined) out.push([e.name, r])
  }
  return out
}

/** Why --force may not replace what stands at `target`, or undefined when it may. */
function notReplaceable(target: string, st: fs.Stats, kind: OutputKind): string | undefined {
  if (st.isSymbolicLink()) return 'is a symbolic link'
  if (kind === 'onnx-file') {
    if (st.isDirectory()) return 'is a folder, not an ONNX file'
    if (!st.isFile()) return 'is not a plain file'
    return hasAlbertkitMetadata(target) ? undefined : 'is not an ONNX file albertkit wrote (no albertkit.* metadata)'
  }
  if (st.isFile()) return 'is a file, not a folder albertkit wrote'
  if (!st.isDirectory()) return 'is not a folder'
  let names: string[]
  try {
    names = fs.readdirSync(target)
  } catch (e) {
    return `cannot be read (${fsCause(e)})`
  }
  if (names.length === 0) return undefined
  const written = readFolderMark(path.join(target, 'report.json'))
  if (!written) return 'is a folder albertkit did not write (no albertkit report.json)'
  const stray = strayEntry(target, written)
  return stray === undefined ? undefined : `holds ${stray}, which albertkit did not write`
}

/** The files albertkit says it wrote, from a folder's report.json; undefined when it is not albertkit's. */
function readFolderMark(file: string): Set<string> | undefined {
  try {
    const st = fs.lstatSync(file)
    if (!st.isFile() || st.size > REPORT_LIMIT) return undefined
    const mark = folderMarkOf(JSON.parse(fs.readFileSync(file, 'utf8')))
    return mark && new Set(mark.written)
  } catch {
    return undefined
  }
}

/** The first entry of `dir` (walked without following links) that is not one of `written` or a folder on their way. */
function strayEntry(dir: string, written: Set<string>): string | undefined {
  const folders = new Set<string>()
  for (const f of written) for (let d = path.posix.dirname(f); d !== '.' && d !== '/'; d = path.posix.dirname(d)) folders.add(d)
  const pending = ['']
  let seen = 0
  while (pending.length > 0) {
    const rel = pending.pop()!
    let entries: fs.Dirent[]
    try {
      entries = fs.readdirSync(path.join(dir, rel), { withFileTypes: true })
    } catch {
      return rel || '.'
    }
    for (const e of entries) {
      if (++seen > FOLDER_ENTRY_LIMIT) return `more than ${FOLDER_ENTRY_LIMIT} entries`
      const name = rel ? `${rel}/${e.name}` : e.name
      if (e.isDirectory() && folders.has(name)) pending.push(name)
      else if (!e.isFile() || !written.has(name)) return e.isDirectory() ? `${name}/` : name
    }
  }
  return undefined
}

/**
 * Whether an ONNX file carries albertkit's metadata (a metadata_props key `albertkit.…`). Only the
 * model's top-level fields are walked, by their tags and lengths: the graph, however large, is
 * skipped unread. Anything that is not a well-formed top level ending exactly at the end of the
 * file is not albertkit's.
 */
export function hasAlbertkitMetadata(file: string): boolean {
  let fd: number
  try {
    fd = fs.openSync(file, 'r')
  } catch {
    return false
  }
  try {
    const size = fs.fstatSync(fd).size
    const head = Buffer.alloc(24)
    let pos = 0
    let graph = false
    let marked = false
    for (let fields = 0; pos < size; fields++) {
      if (fields >= 1_000_000) return false
      const n = fs.readSync(fd, head, 0, head.length, pos)
      const tag = varint(head, 0, n)
      if (!tag || tag.value < 8) return false
      const field = Math.floor(tag.value / 8)
      const wire = tag.value % 8
      if (wire === 0) {
        const v = varint(head, tag.next, n)
        if (!v) return false
        pos += v.next
      } else if (wire === 1) {
        pos += tag.next + 8
      } else if (wire === 5) {
        pos += tag.next + 4
      } else if (wire === 2) {
        const len = varint(head, tag.next, n)
        if (!len) return false
        const start = pos + len.next
        if (field === 7) graph = true
        if (field === 14 && !marked && len.value <= 1 << 20 && start + len.value <= size) {
          const entry = Buffer.alloc(len.value)
          if (fs.readSync(fd, entry, 0, len.value, start) !== len.value) return false
          marked = entryKey(entry)?.startsWith(METADATA_PREFIX) ?? false
        }
        pos = start + len.value
      } else {
        return false
      }
    }
    return graph && marked && pos === size
  } catch {
    return false
  } finally {
    fs.closeSync(fd)
  }
}

/** The key (field 1) of a StringStringEntryProto. */
function entryKey(buf: Buffer): string | undefined {
  let at = 0
  while (at < buf.length) {
    const tag = varint(buf, at, buf.length)
    if (!tag) return undefined
    const wire = tag.value % 8
    if (wire === 0) {
      const v = varint(buf, tag.next, buf.length)
      if (!v) return undefined
      at = v.next
    } else if (wire === 2) {
      const len = varint(buf, tag.next, buf.length)
      if (!len || len.next + len.value > buf.length) return undefined
      if (Math.floor(tag.value / 8) === 1) return buf.toString('utf8', len.next, len.next + len.value)
      at = len.next + len.value
    } else {
      return undefined
    }
  }
  return undefined
}

/** A protobuf varint at `at` (up to `end`): its value (exact below 2^53) and where the next byte is. */
function varint(buf: Buffer, at: number, end: number): { value: number; next: number } | undefined {
  let value = 0
  let scale = 1
  for (let i = at; i < end && i < at + 10; i++) {
    const b = buf[i]!
    value += (b & 0x7f) * scale
    scale *= 128
    if (b < 0x80) return { value, next: i + 1 }
  }
  return undefined
}

/** A failed file operation (ENOENT, EACCES, EFBIG...): Node's errors with a code and a system call. */
export function isSystemError(err: unknown): err is NodeJS.ErrnoException & { code: string } {
  const e = err as { code?: unknown; syscall?: unknown } | undefined
  return err instanceof Error && typeof e?.code === 'string' && typeof e?.syscall === 'string'
}

const CAUSES: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or folder',
  EEXIST: 'already exists',
  EISDIR: 'is a folder',
  ENOTDIR: 'a part of the path is a file, not a folder',
  ENOTEMPTY: 'folder not empty',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EMFILE: 'too many open files (the limit ulimit -n sets)',
  ENFILE: 'too many open files on the system',
  EFBIG: 'file too large (past the file-size limit ulimit -f sets)',
  ENAMETOOLONG: 'name too long',
  ELOOP: 'too many levels of symbolic links',
  EXDEV: 'on another file system',
  EIO: 'input/output error',
  EBUSY: 'busy',
  ETXTBSY: 'busy',
}

/** The cause of a failed file operation in words: `permission denied`, `no space left on the device`. */
export function fsCause(err: unknown): string {
  const e = err as NodeJS.ErrnoException
  const words = typeof e?.code === 'string' ? CAUSES[e.code] : undefined
  if (words) return words
  // Node's own words, without the code and the path: "EXYZ: some words, open '/tmp/…'"
  const message = err instanceof Error ? err.message : String(err)
  return /^[A-Z0-9_]+: ([^,]*)/.exec(message)?.[1] ?? message
}

function lstat(target: string, given: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(target)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
    throw new UserError(`${given}: ${fsCause(e)}`, { cause: e })
  }
}


/** The folder a path the user gave lies in, as they would name it: `build/x` → `build`, `x` → `.`. */
function shownDir(shown: string): string {
  const trimmed = shown.length > 1 ? shown.replace(/\/+$/, '') : shown
  if (trimmed === '.' || path.basename(trimmed) === '..') return trimmed === '.' ? '..' : `${trimmed}/..`
  return path.dirname(trimmed)
}

function joinShown(dir: string, parts: string[]): string {
  return dir === '/' ? `/${parts.join('/')}` : `${dir.replace(/\/+$/, '')}/${parts.join('/')}`
}
