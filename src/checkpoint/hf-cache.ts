/**
 * Checkpoints from the Hugging Face hub cache, offline: a checkpoint argument that names a Hub
 * model (`org/name`), a `models--org--name` folder, or a `snapshots/<commit>` folder becomes the
 * snapshot folder to open. Nothing is downloaded; what is missing is one line that names the cache
 * searched, the revisions present and the `hf download` command that fetches it.
 *
 * The layout is huggingface_hub's (file_download.py, utils/_cache_manager.py):
 *
 *     <cache>/models--org--name/refs/<revision>          40-hex commit, no newline (refs/pr/1 nests)
 *     <cache>/models--org--name/snapshots/<commit>/<file> -> ../../blobs/<etag>   (relative links)
 *     <cache>/models--org--name/blobs/<etag>             the bytes, or a link into the shared store
 *     <cache>/blobs/<xx>/<64-hex xet hash>               the cache-wide shared store (huggingface_hub ≥ 1.x)
 *
 * Where symlinks are not supported (Windows without developer mode) snapshot files are plain
 * copies; those are read as they are.
 *
 * Rules, in order:
 * - An existing path wins (lstat: even a dangling link is a path, for openCheckpoint to report).
 *   A `models--…` folder resolves through its refs (default `main`); a folder whose parent is
 *   `snapshots` inside a `models--…` folder (or a file in one) is checked as a cached snapshot and
 *   opened as it is. `--revision` with any other path is a usage error.
 * - A missing path of the Hub's id form `namespace/name` (huggingface_hub's validate_repo_id: ASCII
 *   letters, digits, `-_.`, no leading or trailing `-`/`.`, no `--` or `..`, not ending `.git`, at
 *   most 96 characters a part) is looked up in the cache. A single `name` is a Hub id only when the
 *   cache holds `models--name`; otherwise it stays a missing path (`no such file or folder`), as
 *   does `dir/name` that the cache does not hold when `dir` is a folder here (a mistyped path).
 * - The cache is `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE` (the legacy name), else
 *   `HF_HOME/hub`, else `XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`, each
 *   with `~` and `$VAR`/`${VAR}` expanded as huggingface_hub does (constants.py). An empty
 *   variable counts as unset (huggingface_hub would use the empty path, the current folder).
 * - A revision is a full 40-hex commit (looked up in snapshots/ directly, as huggingface_hub does),
 *   else a ref name (refs/<revision>: a branch, a tag, `refs/pr/N`, or a short hash that
 *   huggingface_hub cached as a ref), else a hex prefix of 7 to 39 characters that names exactly
 *   one snapshot (huggingface_hub offline does not resolve prefixes; the Hub does, online). A
 *   revision must be a valid git ref name (git check-ref-format): no `..`, no leading `/`, no
 *   control characters, `\`, `:` and the rest; at most 255 characters. Anything else is a usage error.
 * - A ref file must be a regular file (not a link) of at most 41 bytes holding 40 lowercase hex
 *   digits and at most one newline, and lie inside refs/ by its real path.
 * - Every entry of the snapshot is checked before anything is read: folders (real ones, no links)
 *   are walked, plain files are taken as they are, and a link must resolve (real path) to a regular
 *   file inside the repository's own blobs/ or the cache's shared store (`blobs/<xx>/<64 hex>`). A
 *   dangling link is an input error naming it; a link anywhere else, a pipe or a device, a link
 *   loop, and a text file holding a link's target (a cache copied without its links) are refused.
 *   The walk stops at 10,000 entries and 16 levels.
 * - A snapshot without config.json (or albert_config.json) or without any weights albertkit reads
 *   is a partial download: one line saying so, with the command that fetches the rest.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { UsageError, fail } from '../util/errors.js'
import { printable } from '../util/printable.js'
import { realpathOrUndefined, within, isDirectory } from '../util/paths.js'
import { closest, didYouMean } from '../util/suggest.js'

export interface HubCacheOptions {
  /** environment to read HF_HUB_CACHE, HF_HOME, … from (default process.env) */
  env?: NodeJS.ProcessEnv
  /** the home folder `~` stands for (default os.homedir()) */
  home?: string
}

export interface ResolveOptions extends HubCacheOptions {
  /** a branch, tag, ref or commit (default `main`) */
  revision?: string
  /** where `revision` came from, for messages: `--revision` (the default), or a recipe's `albertkit.json: revision` */
  revisionFrom?: string
}

export interface HubCache {
  dir: string
  /** where `dir` came from, for messages: 'HF_HUB_CACHE', 'HF_HOME/hub', … */
  source: string
}

export interface CachedRepo {
  /** `org/name` */
  id: string
  /** the `models--org--name` folder */
  folder: string
  /** the revision asked for (`main` by default; the commit for a snapshot folder) */
  revision: string
  commit: string
}

export interface ResolvedCheckpoint {
  /** what openCheckpoint opens: the argument itself, or the snapshot folder it names */
  path: string
  /** set when the checkpoint lies in a Hugging Face cache */
  repo?: CachedRepo
}

export const DEFAULT_REVISION = 'main'
/** Folder names of cached model repositories start with this (file_download.repo_folder_name). */
const MODEL_PREFIX = 'models--'
const COMMIT = /^[0-9a-f]{40}$/
/** A hex prefix this long or longer may name a snapshot (git's default abbreviation is 7). */
const MIN_PREFIX = 7
/** A ref file holds a 40-character hash; huggingface_hub writes no newline, one is tolerated. */
const REF_MAX_BYTES = 41
const MAX_REVISION_LENGTH = 255
/** How much of a snapshot, a refs/ folder or a cache is walked: a folder's worth, never a disk's. */
const MAX_ENTRIES = 10_000
const MAX_DEPTH = 16
/** A plain snapshot file this small may be a link's target written out as text. */
const LINK_TEXT_MAX_BYTES = 256
/** Files albertkit reads weights from (checkpoint/index.ts), and a TF1 checkpoint's config. */
const WEIGHT_FILES = ['model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin', 'pytorch_model.bin.index.json']
const TF_CONFIG = 'albert_config.json'
/** Revisions listed in a message before `and N more`. */
const LIST_LIMIT = 10

/** The hub cache folder, chosen as huggingface_hub chooses it (constants.py). */
export function hubCache(opts: HubCacheOptions = {}): HubCache {
  const env = opts.env ?? process.env
  const home = opts.home ?? os.homedir()
  const get = (name: string): string | undefined => {
    const v = env[name]
    return v === undefined || v === '' ? undefined : v
  }
  const expand = (p: string) => expandVars(expandUser(p, home), env)
  const hub = get('HF_HUB_CACHE')
  if (hub !== undefined) return { dir: expand(hub), source: 'HF_HUB_CACHE' }
  const legacy = get('HUGGINGFACE_HUB_CACHE')
  if (legacy !== undefined) return { dir: expand(legacy), source: 'HUGGINGFACE_HUB_CACHE' }
  const hfHome = get('HF_HOME')
  if (hfHome !== undefined) return { dir: path.join(expand(hfHome), 'hub'), source: 'HF_HOME/hub' }
  const xdg = get('XDG_CACHE_HOME')
  if (xdg !== undefined) return { dir: path.join(expand(xdg), 'huggingface', 'hub'), source: 'XDG_CACHE_HOME/huggingface/hub' }
  return { dir: path.join(home, '.cache', 'huggingface', 'hub'), source: 'the default; HF_HUB_CACHE and HF_HOME are not set' }
}

/** `~` and `~/…` (Python's os.path.expanduser; `~user` is left as it is). */
function expandUser(p: string, home: string): string {
  return p === '~' ? home : p.startsWith('~/') ? path.join(home, p.slice(2)) : p
}

/** `$NAME` and `${NAME}` from `env`, unknown ones left as they are (Python's posixpath.expandvars). */
function expandVars(p: string, env: NodeJS.ProcessEnv): string {
  return p.replace(/\$(\w+|\{[^}]*\})/g, (whole, name: string) => {
    const key = name.startsWith('{') ? name.slice(1, -1) : name
    const v = env[key]
    return v === undefined ? whole : v
  })
}

/** `namespace/name` or `name` as huggingface_hub's validate_repo_id accepts it. */
export function isRepoId(arg: string): boolean {
  const parts = arg.split('/')
  if (parts.length > 2) return false
  for (const part of parts) if (!/^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$/.test(part)) return false
  return !arg.includes('--') && !arg.includes('..') && !arg.endsWith('.git')
}

/** The cache folder of a model repository: `org/name` → `models--org--name`. */
export function repoFolderName(id: string): string {
  return MODEL_PREFIX + id.split('/').join('--')
}

/** A usage error when `revision` is neither a commit hash nor a git ref name (git check-ref-format). */
export function checkRevision(revision: string, from = '--revision'): void {
  const problem = revisionProblem(revision)
  if (problem !== undefined) throw new UsageError(`${from} '${printable(revision, 80)}': ${problem}; give a branch, tag or commit of the model (default ${DEFAULT_REVISION})`)
}

/**
 * A revision against the checkpoint argument, before anything is read: a malformed revision, or
 * one given with an existing path that is no folder of the Hugging Face cache (a local checkpoint,
 * an ONNX file), is a usage error naming both. Whether a snapshot folder is the revision's commit
 * is known only once its refs are read (`resolveCheckpoint`).
 */
export function checkRevisionArgument(arg: string, opts: ResolveOptions): void {
  if (opts.revision === undefined) return
  checkRevision(opts.revision, opts.revisionFrom)
  if (kindOf(arg).kind === 'plain') throw revisionContradiction(arg, opts)
}

/** `revisionProblem` (exported for recipes: their own message names the file and the key). */
export function revisionProblem(r: string): string | undefined {
  if (r === '') return 'empty'
  if (r.length > MAX_REVISION_LENGTH) return `${r.length} characters, over the ${MAX_REVISION_LENGTH}-character limit`
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0020\u007f~^:?*[\\]/.test(r)) return 'holds a space, a control character or one of ~ ^ : ? * [ \\'
  if (r.includes('..')) return "holds '..'"
  if (r.includes('@{') || r === '@') return "holds '@{' or is '@'"
  if (r.startsWith('/') || r.endsWith('/') || r.includes('//')) return "starts or ends with '/' or holds '//'"
  if (r.endsWith('.')) return "ends with '.'"
  for (const part of r.split('/')) {
    if (part.startsWith('.')) return `the part '${part}' starts with '.'`
    if (part.endsWith('.lock')) return `the part '${part}' ends with '.lock'`
  }
  return undefined
}

/**
 * What a checkpoint argument names: the path itself, or a Hugging Face cache snapshot folder (see
 * the rules above). Throws a UserError (3) for a missing model, revision or blob, a UsageError (2)
 * for a malformed --revision or one that contradicts the folder given.
 */
export function resolveCheckpoint(arg: string, opts: ResolveOptions = {}): ResolvedCheckpoint {
  if (opts.revision !== undefined) checkRevision(opts.revision, opts.revisionFrom)
  const kind = kindOf(arg)
  if (kind.kind === 'repo') return resolveInRepo(arg, kind.id, opts.revision ?? DEFAULT_REVISION, arg, undefined)
  if (kind.kind === 'snapshot') {
    const { snapshot, repoFolder, id, commit } = kind
    if (opts.revision !== undefined) {
      const wanted = resolveInRepo(repoFolder, id, opts.revision, repoFolder, undefined).repo!.commit
      if (wanted !== commit) throw new UsageError(`${opts.revisionFrom ?? '--revision'} ${opts.revision}: names commit ${wanted}, but ${arg} is the snapshot of commit ${printable(commit)}`)
    }
    const revision = opts.revision ?? commit
    checkSnapshot(snapshot, repoFolder, { id, revision })
    return { path: arg, repo: { id, folder: repoFolder, revision, commit } }
  }
  if (kind.kind !== 'missing' || !isRepoId(arg)) return plainPath(arg, opts)
  const cache = hubCache(opts)
  const repoFolder = path.join(cache.dir, repoFolderName(arg))
  const single = !arg.includes('/')
  if (!isDirectory(repoFolder)) {
    // A single name that the cache does not hold is a missing path, as it always was; so is
    // `dir/name` when `dir` is a folder here (a mistyped path, more likely than a Hub id).
    if (single || isDirectory(arg.split('/')[0]!)) return plainPath(arg, opts)
    const where = `the Hugging Face cache ${cache.dir} (${cache.source})`
    const fetch = fetchHint(arg, opts.revision ?? DEFAULT_REVISION)
    if (!isDirectory(cache.dir)) fail(arg, `no such file or folder, and ${where} does not exist; ${fetch}`)
    const models = cachedModels(cache.dir)
    if (models.length === 0) fail(arg, `no such file or folder, and ${where} holds no models; ${fetch}`)
    const near = didYouMean(closest(arg, models))
    fail(arg, `no such file or folder, and no model ${arg} in ${where}${near ? ` (${near})` : ''}; ${fetch}`)
  }
  return resolveInRepo(repoFolder, arg, opts.revision ?? DEFAULT_REVISION, arg, `the Hugging Face cache ${cache.dir} (${cache.source})`)
}

/**
 * The path `resolveCheckpoint` would open for `arg`, or `arg` itself when it names none: for
 * guarding the output before anything is read (the resolver's errors come when the checkpoint is opened).
 */
export function checkpointPathOf(arg: string, opts: ResolveOptions = {}): string {
  try {
    return resolveCheckpoint(arg, opts).path
  } catch {
    return arg
  }
}

type PathKind =
  | { kind: 'missing' }
  | { kind: 'unreadable' }
  | { kind: 'plain' }
  | { kind: 'repo'; id: string }
  | { kind: 'snapshot'; snapshot: string; repoFolder: string; id: string; commit: string }

/**
 * What an argument is on disk (lstat: even a dangling link is a path): missing, a `models--…`
 * folder, a snapshot folder of one (or a file in it), or any other path.
 */
function kindOf(arg: string): PathKind {
  let st: fs.Stats
  try {
    st = fs.lstatSync(arg)
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? { kind: 'missing' } : { kind: 'unreadable' }
  }
  const folder = st.isDirectory() || (st.isSymbolicLink() && isDirectory(arg))
  const abs = path.resolve(arg)
  if (folder && path.basename(abs).startsWith(MODEL_PREFIX)) return { kind: 'repo', id: idOfFolder(path.basename(abs)) }
  const snapshot = folder ? arg : path.dirname(arg)
  const absSnapshot = path.resolve(snapshot)
  const snapshots = path.dirname(absSnapshot)
  const repoAbs = path.dirname(snapshots)
  if (path.basename(snapshots) !== 'snapshots' || !path.basename(repoAbs).startsWith(MODEL_PREFIX)) return { kind: 'plain' }
  return { kind: 'snapshot', snapshot, repoFolder: path.join(snapshot, '..', '..'), id: idOfFolder(path.basename(repoAbs)), commit: path.basename(absSnapshot) }
}

/** A path that is no cache folder: opened as it is, and a revision has nothing to name. */
function plainPath(arg: string, opts: ResolveOptions): ResolvedCheckpoint {
  if (opts.revision !== undefined && fs.existsSync(arg)) throw revisionContradiction(arg, opts)
  return { path: arg }
}

function revisionContradiction(arg: string, opts: ResolveOptions): UsageError {
  return new UsageError(
    `${opts.revisionFrom ?? '--revision'} ${printable(opts.revision ?? '', 80)} contradicts ${arg}: a local path, not a Hub model id (org/name), a models--org--name folder or a snapshot folder of the Hugging Face cache; a revision names a version of a cached model (drop it, or name the model by its id)`,
  )
}

/**
 * The snapshot of `revision` in a `models--…` folder. `who` is what messages about the revision
 * name (the id or the folder as given); `cacheWhere` names the cache when an id led here.
 */
function resolveInRepo(repoFolder: string, id: string, revision: string, who: string, cacheWhere: string | undefined): ResolvedCheckpoint {
  const snapshotsDir = path.join(repoFolder, 'snapshots')
  if (!isDirectory(snapshotsDir)) fail(repoFolder, `no snapshots folder: not a model folder of the Hugging Face cache (or its download never started); ${fetchHint(id, revision)}`)
  const refsDir = path.join(repoFolder, 'refs')
  const missing = (): never => {
    fail(who, `no revision '${revision}' in ${cacheWhere ?? 'this Hugging Face cache folder'}; ${revisionsPresent(repoFolder)}; ${fetchHint(id, revision)}`)
  }
  let commit: string | undefined
  let refFile: string | undefined
  if (COMMIT.test(revision)) commit = revision
  else {
    refFile = path.join(refsDir, ...revision.split('/'))
    const st = lstatOrUndefined(refFile)
    if (st !== undefined && !st.isDirectory()) commit = readRef(refFile, refsDir, st)
    else if (/^[0-9a-f]+$/.test(revision) && revision.length >= MIN_PREFIX) {
      const matches = snapshotNames(snapshotsDir).filter((n) => COMMIT.test(n) && n.startsWith(revision))
      if (matches.length > 1) fail(who, `revision '${revision}' is the start of ${matches.length} cached commits (${listed(matches.sort())}); give more of the hash`)
      commit = matches[0]
      refFile = undefined
    }
  }
  if (commit === undefined) return missing()
  const snapshot = path.join(snapshotsDir, commit)
  const st = lstatOrUndefined(snapshot)
  if (st === undefined) {
    if (refFile === undefined) return missing()
    fail(refFile, `names commit ${commit}, which has no snapshot folder in ${snapshotsDir} (the download did not finish); ${fetchHint(id, revision)}`)
  }
  if (!st.isDirectory()) fail(snapshot, 'not a folder: a snapshot is a folder of files (a link or a file here is refused)')
  const realSnapshots = fs.realpathSync(snapshotsDir)
  if (path.dirname(fs.realpathSync(snapshot)) !== realSnapshots) fail(snapshot, `lies outside ${snapshotsDir} by its real path`)
  checkSnapshot(snapshot, repoFolder, { id, revision })
  return { path: snapshot, repo: { id, folder: repoFolder, revision, commit } }
}

/** The commit a ref file names; anything but 40 hex digits (and one newline) is refused. */
function readRef(refFile: string, refsDir: string, st: fs.Stats): string {
  if (!st.isFile()) fail(refFile, 'not a regular file: a ref is a file holding a 40-character commit hash (links are refused)')
  const realRefs = fs.realpathSync(refsDir)
  if (!within(fs.realpathSync(refFile), realRefs)) fail(refFile, `lies outside ${refsDir} by its real path`)
  if (st.size > REF_MAX_BYTES) fail(refFile, `${st.size} bytes: a ref holds a 40-character commit hash`)
  let fd: number
  try {
    fd = fs.openSync(refFile, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0))
  } catch (e) {
    fail(refFile, `cannot open: ${(e as NodeJS.ErrnoException).code ?? String(e)}`)
  }
  let text: string
  try {
    const fst = fs.fstatSync(fd)
    if (!fst.isFile() || fst.size > REF_MAX_BYTES) fail(refFile, 'changed while it was read')
    const buf = Buffer.alloc(REF_MAX_BYTES + 1)
    const got = fs.readSync(fd, buf, 0, buf.length, 0)
    text = buf.subarray(0, got).toString('latin1')
  } finally {
    fs.closeSync(fd)
  }
  const m = /^([0-9a-f]{40})\n?$/.exec(text)
  if (!m) fail(refFile, `holds '${printable(text, 60)}', not a 40-character commit hash`)
  return m[1]!
}

interface SnapshotContext {
  id: string
  revision: string
}

/**
 * Every entry of a cached snapshot, before anything is read: plain files and real folders as they
 * are, links only into the repository's blobs/ (or the cache's shared store), none dangling.
 */
function checkSnapshot(snapshot: string, repoFolder: string, ctx: SnapshotContext): void {
  const realBlobs = realpathOrUndefined(path.join(repoFolder, 'blobs'))
  const realStore = realpathOrUndefined(path.join(repoFolder, '..', 'blobs'))
  const refetch = fetchHint(ctx.id, ctx.revision)
  let seen = 0
  const walk = (dir: string, depth: number): void => {
    if (depth > MAX_DEPTH) fail(dir, `folders nest deeper than ${MAX_DEPTH} levels in a cached snapshot`)
    const names = readdirBounded(dir, MAX_ENTRIES - seen, true)
    if (names === undefined) fail(snapshot, `holds more than ${MAX_ENTRIES} entries; a model snapshot holds a few files`)
    for (const name of names.sort()) {
      seen++
      const entry = path.join(dir, name)
      const shown = printable(entry)
      const st = fs.lstatSync(entry)
      if (st.isDirectory()) walk(entry, depth + 1)
      else if (st.isFile()) checkPlainFile(entry, st, shown, refetch)
      else if (st.isSymbolicLink()) checkLink(entry, shown, realBlobs, realStore, repoFolder, refetch)
      else fail(shown, 'not a file, a folder or a link (a pipe, a socket or a device) in a cached snapshot')
    }
  }
  walk(snapshot, 0)
  const top = new Set(readdirBounded(snapshot, MAX_ENTRIES) ?? [])
  const missing: string[] = []
  if (!top.has('config.json') && !top.has(TF_CONFIG)) missing.push('config.json')
  if (!top.has(TF_CONFIG) && !WEIGHT_FILES.some((f) => top.has(f))) missing.push(`weights (${WEIGHT_FILES.join(', ')})`)
  if (missing.length > 0) {
    const holds = top.size === 0 ? 'is empty' : `holds ${listed([...top].sort().map((n) => printable(n, 80)))}`
    fail(snapshot, `this cached snapshot of ${ctx.id} (${printable(ctx.revision)}) ${holds} but no ${missing.join(' and no ')}: a partial download; ${refetch}`)
  }
}

/** A link must end, by its real path, at a regular file in the repository's blobs/ or the shared store. */
function checkLink(entry: string, shown: string, realBlobs: string | undefined, realStore: string | undefined, repoFolder: string, refetch: string): void {
  const target = printable(fs.readlinkSync(entry), 120)
  let real: string
  try {
    real = fs.realpathSync(entry)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOENT') fail(shown, `broken link into the Hugging Face cache: its blob ${target} is missing; ${refetch}`)
    if (code === 'ELOOP') fail(shown, `a link loop (${target})`)
    fail(shown, `cannot follow the link to ${target}: ${code ?? String(e)}`)
  }
  const inBlobs = realBlobs !== undefined && within(real, realBlobs)
  if (!inBlobs && !(realStore !== undefined && isStoreBlob(real, realStore))) {
    fail(shown, `links to ${printable(real, 160)}, outside ${path.join(repoFolder, 'blobs')}: links in a cached snapshot are followed only into the model's own blobs/`)
  }
  if (!fs.statSync(real).isFile()) fail(shown, `links to ${target}, which is not a file`)
}

/** `<cache>/blobs/<xx>/<64 hex>`, xx the hash's first two digits (utils/_shared_blobs.py). */
function isStoreBlob(real: string, realStore: string): boolean {
  const rel = path.relative(realStore, real).split(path.sep)
  return rel.length === 2 && /^[0-9a-f]{64}$/.test(rel[1]!) && rel[0] === rel[1]!.slice(0, 2)
}

/** A plain file is read as it is, unless it is a link's target written out as text. */
function checkPlainFile(entry: string, st: fs.Stats, shown: string, refetch: string): void {
  if (st.size === 0 || st.size > LINK_TEXT_MAX_BYTES) return
  const text = fs.readFileSync(entry, 'latin1')
  if (/^(?:\.\.\/)+blobs\/[0-9a-f]{40,64}\s*$/.test(text)) {
    fail(shown, `holds the text '${printable(text.trim())}' instead of the file: a copy of the cache made without its symbolic links (git with core.symlinks=false, a zip); ${refetch}`)
  }
}

/** `revisions present: main (d907d15c0c9d), v1 (7b8254494cf9), commit 0123456789ab`, bounded. */
function revisionsPresent(repoFolder: string): string {
  const refs = listRefs(path.join(repoFolder, 'refs'))
  const snapshots = new Set(snapshotNames(path.join(repoFolder, 'snapshots')))
  const items: string[] = []
  const named = new Set<string>()
  for (const [name, commit] of refs) {
    named.add(commit)
    items.push(`${printable(name, 80)} (${commit.slice(0, 12)}${snapshots.has(commit) ? '' : ', no snapshot'})`)
  }
  for (const s of [...snapshots].sort()) if (!named.has(s)) items.push(`commit ${printable(s.slice(0, 12), 40)}`)
  return items.length === 0 ? 'no revisions present' : `revisions present: ${listed(items)}`
}

/** Ref name → commit for every well-formed ref file under refs/ (others are left out of the list). */
function listRefs(refsDir: string): [string, string][] {
  const out: [string, string][] = []
  let seen = 0
  const walk = (dir: string, prefix: string, depth: number): void => {
    if (depth > MAX_DEPTH) return
    const names = readdirBounded(dir, MAX_ENTRIES - seen)
    if (names === undefined) return
    for (const name of names.sort()) {
      seen++
      const file = path.join(dir, name)
      const st = lstatOrUndefined(file)
      if (st?.isDirectory()) walk(file, `${prefix}${name}/`, depth + 1)
      else if (st?.isFile() && st.size <= REF_MAX_BYTES) {
        try {
          const m = /^([0-9a-f]{40})\n?$/.exec(fs.readFileSync(file, 'latin1'))
          if (m) out.push([prefix + name, m[1]!])
        } catch {
          // unreadable: left out of the list
        }
      }
    }
  }
  walk(refsDir, '', 0)
  return out
}

function snapshotNames(snapshotsDir: string): string[] {
  return readdirBounded(snapshotsDir, MAX_ENTRIES) ?? []
}

/** The model ids a cache holds (its `models--…` folders), for a did-you-mean. */
function cachedModels(cacheDir: string): string[] {
  return (readdirBounded(cacheDir, MAX_ENTRIES) ?? []).filter((n) => n.startsWith(MODEL_PREFIX) && n.length > MODEL_PREFIX.length).map(idOfFolder)
}

/** `models--org--name` → `org/name` (huggingface_hub's scan: repo ids never hold `--`). */
function idOfFolder(name: string): string {
  return name.slice(MODEL_PREFIX.length).split('--').join('/')
}

function fetchHint(id: string, revision: string): string {
  const rev = revision === DEFAULT_REVISION ? '' : ` --revision ${printable(revision, 80)}`
  return `albertkit downloads nothing: fetch it with \`hf download ${printable(id, 200)}${rev}\` and run again`
}

/** `a, b, c and 4 more`. */
function listed(items: string[]): string {
  const shown = items.slice(0, LIST_LIMIT).join(', ')
  return items.length > LIST_LIMIT ? `${shown} and ${items.length - LIST_LIMIT} more` : shown
}

/** A folder's entry names, or undefined when it holds more than `limit`; [] when it cannot be read (an error when `strict`). */
function readdirBounded(dir: string, limit: number, strict = false): string[] | undefined {
  let d: fs.Dir
  try {
    d = fs.opendirSync(dir)
  } catch (e) {
    if (strict) fail(dir, `cannot read the folder: ${(e as NodeJS.ErrnoException).code ?? String(e)}`)
    return []
  }
  const names: string[] = []
  try {
    for (let e = d.readSync(); e !== null; e = d.readSync()) {
      if (names.length >= limit) return undefined
      names.push(e.name)
    }
  } finally {
    d.closeSync()
  }
  return names
}


function lstatOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p)
  } catch {
    return undefined
  }
}
