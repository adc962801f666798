/**
 * The output guard (src/util/output-guard.ts) from the command line: every place an output may
 * never go is refused as a usage error (2) that names the path and why, with the files there left
 * as they were; --force replaces only what albertkit wrote; the place is checked before any input
 * is read; a failed file operation is one line naming the user's path and the cause in words, exit
 * code 3, with nothing left behind; and report.json is the same wherever the checkpoint lies.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync, type SpawnSyncOptions } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { BIN, fixtureDir, tempDir } from './support/helpers.js'
import { checkOutput, hasAlbertkitMetadata, type GuardedInput } from '../src/util/output-guard.js'
import { checkConvertOutput } from '../src/pipeline/convert.js'
import { checkOptimizeOutput } from '../src/pipeline/optimize.js'
import { UsageError, UserError } from '../src/util/errors.js'

const work = tempDir('albertkit-guard-')
// readable by the unprivileged user the permission test runs as
fs.chmodSync(work, 0o755)

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function albertkit(args: string[], opts: SpawnSyncOptions = {}): Run {
  const env = { ...process.env, ...opts.env }
  delete env.ALBERTKIT_DEBUG
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: work, encoding: 'utf8', ...opts, env })
  return { code: r.status, stdout: String(r.stdout), stderr: String(r.stderr) }
}

/** The CLI under a file-size limit of `kib` KiB (bash counts ulimit -f in 1024-byte blocks). */
function albertkitLimited(kib: number, args: string[]): Run {
  const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')
  const r = spawnSync('bash', ['-c', `ulimit -f ${kib}; exec '${process.execPath}' '${BIN}' ${quoted}`], { cwd: work, encoding: 'utf8' })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** A lean copy of the albert-model checkpoint, with a marker file of its own. */
function checkpoint(where: string): string {
  const dir = path.join(work, where)
  fs.mkdirSync(dir, { recursive: true })
  for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(fixtureDir('albert-model'), f), path.join(dir, f))
  fs.writeFileSync(path.join(dir, 'marker.txt'), `marker of ${where}`)
  return where
}

const TORCH_EXPORT = path.join(fixtureDir('albert-model'), 'export', 'model.onnx')

/** Every file under `dir` (relative to `work`) with its bytes. */
function snapshot(...dirs: string[]): Map<string, string> {
  const files = new Map<string, string>()
  const walk = (rel: string) => {
    const abs = path.join(work, rel)
    const st = fs.lstatSync(abs)
    if (st.isDirectory()) for (const n of fs.readdirSync(abs)) walk(path.join(rel, n))
    else files.set(rel, st.isSymbolicLink() ? `-> ${fs.readlinkSync(abs)}` : fs.readFileSync(abs).toString('base64'))
  }
  for (const d of dirs) walk(d)
  return files
}

/** Nothing in `work` named like a temporary (`.<name>.tmp-<pid>-<hex>`), at any depth. */
function temporaries(dir = work): string[] {
  const found: string[] = []
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (/\.tmp-\d+-[0-9a-f]{8}$/.test(e.name)) found.push(path.join(dir, e.name))
    else if (e.isDirectory() && !e.isSymbolicLink()) found.push(...temporaries(path.join(dir, e.name)))
  }
  return found
}

/** The command fails with exactly `line` on stderr and `code`, and every file of `keep` is as it was. */
function refused(args: string[], code: number, line: string, keep: string[], opts: SpawnSyncOptions = {}): void {
  const before = snapshot(...keep)
  assert.ok(before.size > 0, 'the test has files to protect')
  const r = albertkit([...args, '--quiet'], opts)
  assert.equal(r.stderr, `Error: ${line}\n`, `${args.join(' ')}: exit ${r.code}`)
  assert.equal(r.code, code, `${args.join(' ')}: exit code`)
  assert.deepEqual(snapshot(...keep), before, 'the files there are untouched')
  assert.deepEqual(temporaries(), [], 'no temporary left')
}

/** A folder albertkit wrote (from a checkpoint of its own), for the tests that replace one. */
function albertkitFolder(where: string): string {
  if (!fs.existsSync(path.join(work, 'source-ck'))) checkpoint('source-ck')
  const r = albertkit(['convert', 'source-ck', '--out', where, '--no-verify', '--quiet'])
  assert.equal(r.code, 0, r.stderr)
  return where
}

/** The guard in this process, as the command would call it from `work`: the error it throws. */
function guardError(check: () => unknown): { code: number; message: string } {
  try {
    withCwd(work, check)
  } catch (e) {
    if (e instanceof UsageError) return { code: 2, message: e.message }
    if (e instanceof UserError) return { code: 3, message: e.message }
    throw e
  }
  return assert.fail('the guard let it through')
}

const convertOut = (checkpoint: string, out: string, force = true, read: GuardedInput[] = []) => () => checkConvertOutput({ checkpoint, out, force, read })
const optimizeOut = (input: string, output: string, force = true) => () => checkOptimizeOutput({ input, output, force })
const FOLDER_RULE = '--force replaces only a folder albertkit wrote, or an empty folder'
const FILE_RULE = '--force replaces only an ONNX file albertkit wrote'

describe('the output guard refuses, as a usage error, places an output may never go', () => {
  checkpoint('ck')
  fs.writeFileSync(path.join(work, 'marker.txt'), 'the current folder')

  it('the current folder: ".", "", a path that resolves to it, a folder that contains it', () => {
    refused(['convert', 'ck', '--out', '.', '--force'], 2, '.: is the current folder; name a folder of its own for the output', ['marker.txt', 'ck'])
    refused(['convert', 'ck', '--out', '', '--force'], 2, '--out is empty: name the folder to write', ['marker.txt', 'ck'])
    assert.deepEqual(guardError(convertOut('ck', 'ck/..')), { code: 2, message: 'ck/..: is the current folder; name a folder of its own for the output' })
    assert.deepEqual(guardError(optimizeOut(TORCH_EXPORT, '')), { code: 2, message: '--out is empty: name the ONNX file to write' })
    fs.mkdirSync(path.join(work, 'below'))
    const inBelow = () => withCwd(path.join(work, 'below'), () => checkConvertOutput({ checkpoint: '../ck', out: '..', force: true }))
    assert.deepEqual(guardError(inBelow), { code: 2, message: '..: contains the current folder' })
  })

  it('the root folder, the home folder, a folder that contains the home folder', () => {
    refused(['convert', 'ck', '--out', '/', '--force'], 2, '/: is the root folder', ['marker.txt', 'ck'])
    fs.mkdirSync(path.join(work, 'users', 'me'), { recursive: true })
    fs.writeFileSync(path.join(work, 'users', 'me', 'notes.txt'), 'mine')
    const HOME = path.join(work, 'users', 'me')
    refused(['convert', 'ck', '--out', 'users/me', '--force'], 2, 'users/me: is your home folder', ['users', 'ck'], { env: { HOME } })
    const home = process.env.HOME
    process.env.HOME = HOME
    try {
      assert.deepEqual(guardError(convertOut('ck', 'users')), { code: 2, message: 'users: contains your home folder' })
    } finally {
      process.env.HOME = home
    }
  })

  it('the checkpoint itself, a folder that contains it, a folder inside it (real paths, links resolved)', () => {
    refused(['convert', 'ck', '--out', 'ck', '--force'], 2, 'ck: is the checkpoint itself', ['ck'])
    checkpoint('nest/inner')
    refused(['convert', 'nest/inner', '--out', 'nest', '--force'], 2, 'nest: contains the checkpoint nest/inner', ['nest'])
    refused(['convert', 'ck', '--out', 'ck/onnx', '--force'], 2, 'ck/onnx: lies inside the checkpoint ck', ['ck'])
    assert.deepEqual(guardError(convertOut('ck/model.safetensors', './ck/')), { code: 2, message: './ck/: is the checkpoint itself' })
    fs.symlinkSync('ck', path.join(work, 'ck-link'))
    assert.deepEqual(guardError(convertOut('ck', 'ck-link/out')), { code: 2, message: 'ck-link/out: lies inside the checkpoint ck' })
    assert.deepEqual(guardError(convertOut('ck-link', 'ck')), { code: 2, message: 'ck: is the checkpoint ck-link' })
    assert.deepEqual(guardError(convertOut('ck-link', '.', false)), { code: 2, message: '.: is the current folder; name a folder of its own for the output' })
  })

  it("a checkpoint whose files are links elsewhere (the Hugging Face cache's blobs): the output keeps clear of their targets", () => {
    const hub = path.join(work, 'hub')
    fs.mkdirSync(path.join(hub, 'blobs'), { recursive: true })
    fs.mkdirSync(path.join(hub, 'snapshots', 'abc'), { recursive: true })
    for (const [f, blob] of [['config.json', 'b1'], ['model.safetensors', 'b2']] as const) {
      fs.copyFileSync(path.join(fixtureDir('albert-model'), f), path.join(hub, 'blobs', blob))
      fs.symlinkSync(`../../blobs/${blob}`, path.join(hub, 'snapshots', 'abc', f))
    }
    refused(['convert', 'hub/snapshots/abc', '--out', 'hub/blobs', '--force'], 2, 'hub/blobs: contains hub/snapshots/abc/config.json, part of the checkpoint', ['hub'])
    assert.deepEqual(guardError(convertOut('hub/snapshots/abc', 'hub/blobs/b2')), { code: 2, message: 'hub/blobs/b2: is hub/snapshots/abc/model.safetensors, part of the checkpoint' })
  })

  it('the input ONNX file itself, and a folder that contains it', () => {
    fs.mkdirSync(path.join(work, 'models'))
    fs.copyFileSync(TORCH_EXPORT, path.join(work, 'models', 'model.onnx'))
    refused(['optimize', 'models/model.onnx', '--out', 'models/model.onnx', '--force'], 2, 'models/model.onnx: is the input itself', ['models'])
    assert.deepEqual(guardError(optimizeOut('models/model.onnx', 'models/./model.onnx', false)), { code: 2, message: 'models/./model.onnx: is the input itself' })
    fs.symlinkSync('models/model.onnx', path.join(work, 'alias.onnx'))
    assert.deepEqual(guardError(optimizeOut('alias.onnx', 'models/model.onnx')), { code: 2, message: 'models/model.onnx: is the input alias.onnx' })
    assert.deepEqual(guardError(optimizeOut('models/model.onnx', 'models')), { code: 2, message: 'models: contains the input models/model.onnx' })
  })

  it('the other files a run reads: the --text-file, the recipe', () => {
    fs.mkdirSync(path.join(work, 'eval'))
    fs.writeFileSync(path.join(work, 'eval', 'texts.txt'), 'one text\n')
    refused(['convert', 'ck', '--out', 'eval', '--force', '--text-file', 'eval/texts.txt'], 2, 'eval: contains the --text-file eval/texts.txt', ['eval', 'ck'])
    const recipe = [{ path: 'eval/albertkit.json', what: 'the recipe' }]
    fs.writeFileSync(path.join(work, 'eval', 'albertkit.json'), '{}')
    assert.deepEqual(guardError(convertOut('ck', 'eval/albertkit.json', true, recipe)), { code: 2, message: 'eval/albertkit.json: is the recipe itself' })
  })

  it('with --force: a plain file that is not albertkit output', () => {
    fs.writeFileSync(path.join(work, 'plain.txt'), 'not albertkit output')
    refused(['convert', 'ck', '--out', 'plain.txt', '--force'], 2, `plain.txt: is a file, not a folder albertkit wrote; ${FOLDER_RULE}`, ['plain.txt', 'ck'])
    fs.copyFileSync(TORCH_EXPORT, path.join(work, 'torch.onnx'))
    refused(['optimize', TORCH_EXPORT, '--out', 'torch.onnx', '--force'], 2, `torch.onnx: is not an ONNX file albertkit wrote (no albertkit.* metadata); ${FILE_RULE}`, ['torch.onnx'])
    assert.deepEqual(guardError(optimizeOut(TORCH_EXPORT, 'plain.txt')), { code: 2, message: `plain.txt: is not an ONNX file albertkit wrote (no albertkit.* metadata); ${FILE_RULE}` })
  })

  it('with --force: a folder that holds anything albertkit did not write, or a link', () => {
    fs.mkdirSync(path.join(work, 'docs'))
    fs.writeFileSync(path.join(work, 'docs', 'notes.md'), 'notes')
    refused(['convert', 'ck', '--out', 'docs', '--force'], 2, `docs: is a folder albertkit did not write (no albertkit report.json); ${FOLDER_RULE}`, ['docs', 'ck'])
    // a report.json without albertkit's mark is not albertkit's
    fs.writeFileSync(path.join(work, 'docs', 'report.json'), JSON.stringify({ albertkit: '0.1.0' }))
    assert.deepEqual(guardError(convertOut('ck', 'docs')), { code: 2, message: `docs: is a folder albertkit did not write (no albertkit report.json); ${FOLDER_RULE}` })
    const built = albertkitFolder('built')
    refused(['convert', 'ck', '--out', built], 3, 'built: already exists (pass --force to replace it)', [built, 'ck'])
    fs.writeFileSync(path.join(work, built, 'notes.md'), 'added by hand')
    refused(['convert', 'ck', '--out', built, '--force'], 2, `built: holds notes.md, which albertkit did not write; ${FOLDER_RULE}`, [built, 'ck'])
    fs.rmSync(path.join(work, built, 'notes.md'))
    fs.mkdirSync(path.join(work, built, 'onnx', 'extra'))
    fs.writeFileSync(path.join(work, built, 'onnx', 'extra', 'keep.bin'), 'x')
    assert.deepEqual(guardError(convertOut('ck', built)), { code: 2, message: `built: holds onnx/extra/, which albertkit did not write; ${FOLDER_RULE}` })
    fs.rmSync(path.join(work, built, 'onnx', 'extra'), { recursive: true })
    fs.symlinkSync(built, path.join(work, 'built-link'))
    assert.deepEqual(guardError(convertOut('ck', 'built-link')), { code: 2, message: `built-link: is a symbolic link; ${FOLDER_RULE}` })
    assert.deepEqual(guardError(optimizeOut(TORCH_EXPORT, built)), { code: 2, message: `built: is a folder, not an ONNX file; ${FILE_RULE}` })
  })

  it('without --force an existing output is an input error (3), worded by whether --force would replace it', () => {
    refused(['convert', 'ck', '--out', 'docs'], 3, 'docs: already exists and is a folder albertkit did not write (no albertkit report.json); choose another --out', ['docs', 'ck'])
    assert.deepEqual(guardError(optimizeOut(TORCH_EXPORT, 'torch.onnx', false)), {
      code: 3,
      message: 'torch.onnx: already exists and is not an ONNX file albertkit wrote (no albertkit.* metadata); choose another --out',
    })
  })
})

describe('--force replaces what albertkit wrote', () => {
  it('an albertkit folder (made where folders on the way were missing), an empty folder, an ONNX file albertkit wrote', () => {
    const ck = checkpoint('force-ck')
    const built = albertkitFolder('force/a/b')
    const report = JSON.parse(fs.readFileSync(path.join(work, built, 'report.json'), 'utf8'))
    assert.deepEqual(report.written, ['config.json', 'onnx/model.onnx', 'report.json'], 'report.json lists every file albertkit put there')
    const again = albertkit(['convert', ck, '--out', built, '--force', '--no-verify', '--precision', 'fp32,int8', '--quiet'])
    assert.equal(again.code, 0, again.stderr)
    assert.ok(fs.existsSync(path.join(work, built, 'onnx', 'model_quantized.onnx')))
    assert.ok(hasAlbertkitMetadata(path.join(work, built, 'onnx', 'model_int8.onnx')), "convert's models are albertkit's")
    fs.mkdirSync(path.join(work, 'empty'))
    const intoEmpty = albertkit(['convert', ck, '--out', 'empty', '--force', '--no-verify', '--quiet'])
    assert.equal(intoEmpty.code, 0, intoEmpty.stderr)
    const first = albertkit(['optimize', TORCH_EXPORT, '--out', 'opt.onnx', '--passes', 'dedup', '--quiet'])
    assert.equal(first.code, 0, first.stderr)
    assert.ok(hasAlbertkitMetadata(path.join(work, 'opt.onnx')), 'optimize marks what it writes')
    const second = albertkit(['optimize', TORCH_EXPORT, '--out', 'opt.onnx', '--passes', 'dedup,quantize-int8', '--force', '--quiet'])
    assert.equal(second.code, 0, second.stderr)
    assert.deepEqual(temporaries(), [])
  })

  it('reads an ONNX file only as far as its top-level fields: the graph is skipped, not decoded', () => {
    const varint = (n: number) => {
      const out: number[] = []
      for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n & 0x7f) | 0x80)
      out.push(n)
      return out
    }
    const field = (no: number, bytes: number[]) => [...varint(no * 8 + 2), ...varint(bytes.length), ...bytes]
    const entry = (key: string) => field(14, [...field(1, [...Buffer.from(key)]), ...field(2, [...Buffer.from('v')])])
    const garbageGraph = field(7, Array.from({ length: 5000 }, (_, i) => (i * 37) & 0xff))
    const file = (bytes: number[]) => {
      const f = path.join(work, `meta-${Math.random().toString(36).slice(2)}.onnx`)
      fs.writeFileSync(f, Buffer.from(bytes))
      return f
    }
    const irVersion = [0x08, 0x08]
    assert.equal(hasAlbertkitMetadata(file([...irVersion, ...garbageGraph, ...entry('albertkit.version')])), true)
    assert.equal(hasAlbertkitMetadata(file([...irVersion, ...garbageGraph, ...entry('producer.version')])), false, 'another key')
    assert.equal(hasAlbertkitMetadata(file([...irVersion, ...entry('albertkit.version')])), false, 'no graph: not a model')
    assert.equal(hasAlbertkitMetadata(file([...irVersion, ...garbageGraph, ...entry('albertkit.version')].slice(0, -1))), false, 'truncated')
    assert.equal(hasAlbertkitMetadata(file([...irVersion, ...garbageGraph, ...entry('albertkit.version'), 0x07])), false, 'a bad wire type')
    assert.equal(hasAlbertkitMetadata(path.join(work, 'no-such.onnx')), false)
  })
})

describe('the place is checked before any input is read', () => {
  fs.writeFileSync(path.join(work, 'plainfile'), 'a plain file')

  it('a file in the way of a folder (ENOTDIR), a folder nothing can be created in: exit 3, though the checkpoint does not even exist', () => {
    refused(['convert', 'no-such-checkpoint', '--out', 'plainfile/sub'], 3, 'plainfile/sub: plainfile is a file, not a folder', ['plainfile'])
    refused(['optimize', 'no-such.onnx', '--out', '/proc/albertkit-out.onnx'], 3, '/proc/albertkit-out.onnx: cannot write in /proc: nothing can be created there', ['plainfile'])
    assert.deepEqual(guardError(convertOut('no-such-checkpoint', 'plainfile/a/b')), { code: 3, message: 'plainfile/a/b: plainfile is a file, not a folder' })
    assert.deepEqual(guardError(optimizeOut('no-such.onnx', 'plainfile/x.onnx')), { code: 3, message: 'plainfile/x.onnx: plainfile is a file, not a folder' })
  })

  it('a folder the user may not write in (EACCES)', () => {
    const locked = path.join(work, 'locked')
    fs.mkdirSync(locked)
    fs.writeFileSync(path.join(locked, 'keep.txt'), 'kept')
    fs.chmodSync(locked, 0o555)
    checkpoint('ck-public')
    // root writes anywhere: run as nobody, which root may switch to
    const asRoot = process.getuid?.() === 0
    const opts: SpawnSyncOptions = asRoot ? { uid: 65534, gid: 65534, env: { HOME: work } } : {}
    refused(['convert', 'ck-public', '--out', 'locked/a/b'], 3, 'locked/a/b: cannot write in locked: permission denied', ['locked'], opts)
  })
})

describe('a failed write: one line naming the path as the user gave it, exit 3, nothing left behind', () => {
  const EFBIG = 'file too large (past the file-size limit ulimit -f sets)'

  it('convert past the file-size limit (ulimit -f: EFBIG, Node ignores SIGXFSZ)', () => {
    const ck = checkpoint('ck-big')
    const r = albertkitLimited(16, ['convert', ck, '--out', 'big/a/out', '--no-verify', '--quiet'])
    assert.equal(r.stderr, `Error: big/a/out/onnx/model.onnx: ${EFBIG}\n`)
    assert.equal(r.code, 3)
    assert.ok(!fs.existsSync(path.join(work, 'big')), 'no output, and the folders this run made on the way are gone')
    assert.deepEqual(temporaries(), [], 'no staged folder, no temporary file')
  })

  it('convert --force past the limit leaves the folder it would have replaced as it was', () => {
    const ck = checkpoint('ck-big2')
    const built = albertkitFolder('big-existing')
    const before = snapshot(built)
    const r = albertkitLimited(16, ['convert', ck, '--out', built, '--force', '--no-verify', '--quiet'])
    assert.equal(r.stderr, `Error: big-existing/onnx/model.onnx: ${EFBIG}\n`)
    assert.equal(r.code, 3)
    assert.deepEqual(snapshot(built), before)
    assert.deepEqual(temporaries(), [])
  })

  it('optimize past the limit', () => {
    const r = albertkitLimited(16, ['optimize', TORCH_EXPORT, '--out', 'opt-big/model.onnx', '--quiet'])
    assert.equal(r.stderr, `Error: opt-big/model.onnx: ${EFBIG}\n`)
    assert.equal(r.code, 3)
    assert.ok(!fs.existsSync(path.join(work, 'opt-big')))
    assert.deepEqual(temporaries(), [])
  })

  // ENOSPC, EROFS, EMFILE and the rest cannot be produced here without mounting a file system;
  // they reach the guard as the errors below, named after temporaries.
  for (const [code, syscall, where, line] of [
    ['ENOSPC', 'write', 'onnx/.model.onnx.tmp-123-0a1b2c3d', 'gen/out/onnx/model.onnx: no space left on the device'],
    ['EROFS', 'open', 'config.json', 'gen/out/config.json: read-only file system'],
    ['EMFILE', 'open', 'onnx/.model_int8.onnx.tmp-99-ffffffff', 'gen/out/onnx/model_int8.onnx: too many open files (the limit ulimit -n sets)'],
    ['EACCES', 'mkdir', 'onnx', 'gen/out/onnx: permission denied'],
    ['EDQUOT', 'write', 'report.json', 'gen/out/report.json: disk quota exceeded'],
    ['EISDIR', 'rename', '', 'gen/out: is a folder'],
    ['EEXIST', 'rename', '', 'gen/out: already exists'],
    ['ENOTEMPTY', 'rename', '', 'gen/out: folder not empty'],
    ['EIO', 'fsync', '.verify/0/model.onnx_data', 'gen/out: input/output error'],
  ] as const) {
    it(`${code} while writing: '${line}'`, () => {
      const shown = withCwd(work, () => checkOutput('gen/out', { kind: 'folder', force: false, inputs: [] }))
      const stage = withCwd(work, () => shown.stage())
      fs.writeFileSync(path.join(stage.path, 'partial'), 'x')
      const err = Object.assign(new Error(`${code}: some words, ${syscall} '${path.join(stage.path, where)}'`), { code, syscall, path: path.join(stage.path, where) })
      const thrown = shown.failed(err, stage)
      assert.ok(thrown instanceof UserError && !(thrown instanceof UsageError))
      assert.equal((thrown as Error).message, line)
      assert.ok(!fs.existsSync(path.join(work, 'gen')), 'the stage and the folder this run made are gone')
    })
  }

  it('an error with no path (writeFileSync on a full disk) names the output', () => {
    const shown = withCwd(work, () => checkOutput('gen2/model.onnx', { kind: 'onnx-file', force: false, inputs: [] }))
    const stage = withCwd(work, () => shown.stage())
    const err = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' })
    assert.equal((shown.failed(err, stage) as Error).message, 'gen2/model.onnx: no space left on the device')
    const data = Object.assign(new Error('EFBIG'), { code: 'EFBIG', syscall: 'write', path: path.join(stage.path, '.model.onnx_data.tmp-1-00000000') })
    assert.equal((shown.failed(data, stage) as Error).message, 'gen2/model.onnx_data: file too large (past the file-size limit ulimit -f sets)')
    assert.ok(!fs.existsSync(path.join(work, 'gen2')))
  })
})

describe('losing the race for the output', () => {
  it('an output another process made meanwhile is "already exists" (3), and is left alone', () => {
    const output = withCwd(work, () => checkOutput('race/out', { kind: 'folder', force: false, inputs: [] }))
    const stage = withCwd(work, () => output.stage())
    fs.writeFileSync(path.join(stage.path, 'report.json'), '{}')
    fs.mkdirSync(path.join(work, 'race', 'out'))
    fs.writeFileSync(path.join(work, 'race', 'out', 'theirs.txt'), 'theirs')
    assert.throws(() => {
      try {
        output.commit(stage)
      } catch (e) {
        throw output.failed(e, stage)
      }
    }, (e: Error) => e instanceof UserError && !(e instanceof UsageError) && e.message === 'race/out: already exists (it appeared while albertkit was writing)')
    assert.equal(fs.readFileSync(path.join(work, 'race', 'out', 'theirs.txt'), 'utf8'), 'theirs')
    assert.deepEqual(fs.readdirSync(path.join(work, 'race')), ['out'], 'the stage is gone')
  })

  it('with --force, what stands there at commit time must still be albertkit output', () => {
    const built = albertkitFolder('race-force')
    const output = withCwd(work, () => checkOutput(built, { kind: 'folder', force: true, inputs: [] }))
    const stage = withCwd(work, () => output.stage())
    fs.writeFileSync(path.join(work, built, 'added.txt'), 'added meanwhile')
    assert.throws(
      () => output.commit(stage),
      (e: Error) => e instanceof UserError && e.message === 'race-force: holds added.txt, which albertkit did not write (it changed while albertkit was writing); --force replaces only a folder albertkit wrote, or an empty folder',
    )
    output.failed(undefined, stage)
    assert.equal(fs.readFileSync(path.join(work, built, 'added.txt'), 'utf8'), 'added meanwhile')
    assert.deepEqual(temporaries(), [])
  })
})

describe('report.json holds no path of the machine that wrote it', () => {
  it('is byte-identical for copies of a checkpoint at two places, converted from two working folders', () => {
    const copies = [path.join(work, 'machine-a', 'models', 'albert'), path.join(work, 'machine-b', 'x', 'y', 'albert')]
    for (const c of copies) fs.cpSync(fixtureDir('albert-qa-text'), c, { recursive: true })
    fs.writeFileSync(path.join(work, 'machine-a', 'questions.txt'), 'Where is the library?\tThe library opens at nine.\n')
    fs.mkdirSync(path.join(work, 'elsewhere'))
    fs.copyFileSync(path.join(work, 'machine-a', 'questions.txt'), path.join(work, 'elsewhere', 'questions.txt'))
    // relative paths from one folder, absolute paths from another
    const a = albertkit(['convert', 'models/albert', '--out', 'out', '--text-file', 'questions.txt', '--precision', 'fp32,int8', '--quiet'], { cwd: path.join(work, 'machine-a') })
    assert.equal(a.code, 0, a.stderr)
    const outB = path.join(work, 'machine-b', 'out')
    const b = albertkit(['convert', copies[1]!, '--out', outB, '--text-file', path.join(work, 'elsewhere', 'questions.txt'), '--precision', 'fp32,int8', '--quiet'], { cwd: path.join(work, 'elsewhere') })
    assert.equal(b.code, 0, b.stderr)
    const reportA = fs.readFileSync(path.join(work, 'machine-a', 'out', 'report.json'), 'utf8')
    const reportB = fs.readFileSync(path.join(outB, 'report.json'), 'utf8')
    assert.equal(reportA, reportB)
    assert.ok(!reportA.includes(work), 'no absolute path in the report')
    const report = JSON.parse(reportA)
    assert.equal(report.source.name, 'albert')
    assert.equal(report.verification.text.source, 'questions.txt')
    assert.equal(report.verification.text.tokenizer, 'tokenizer.json')
    // and every other file of the two folders is the same too
    assert.deepEqual(snapshot('machine-a/out'), new Map([...snapshot('machine-b/out')].map(([k, v]) => [k.replace('machine-b', 'machine-a'), v])))
  })
})

/** Run `fn` with the process in `dir` (checkOutput resolves the path it is given as the user's shell would). */
function withCwd<T>(dir: string, fn: () => T): T {
  const before = process.cwd()
  process.chdir(dir)
  try {
    return fn()
  } finally {
    process.chdir(before)
  }
}
