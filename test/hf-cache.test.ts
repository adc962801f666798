/**
 * Checkpoints from the Hugging Face cache (fixtures/hf-cache/hub, written by huggingface_hub's own
 * functions): by id, by `models--` folder and by snapshot folder they convert to models that match
 * the transformers goldens of the fixtures they came from; what is missing (a model, a revision, a
 * blob) is one line naming the cache and how to fetch it; hostile caches are refused before a
 * byte of weights is read.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { BIN, FIXTURES, fixtureDir, fixtureGolden, fixtureInputs, parityWithGolden, tempDir } from './support/helpers.js'
import { openCheckpoint } from '../src/checkpoint/index.js'
import { buildAlbert } from '../src/builder/albert.js'
import { resolveTask } from '../src/checkpoint/task.js'
import { checkRevision, hubCache, isRepoId, resolveCheckpoint, type ResolveOptions } from '../src/checkpoint/hf-cache.js'
import { UsageError, UserError } from '../src/util/errors.js'
import { createSession, runSession } from '../src/runtime/session.js'
import { compareTokens } from '../src/verify/compare.js'
import { tokenMask } from '../src/verify/inputs.js'
import { EXIT } from '../src/cli/exit-codes.js'
import { printable } from '../src/util/printable.js'
import { parseRecipe } from '../src/cli/recipe.js'

const HUB = path.join(FIXTURES, 'hf-cache', 'hub')
const SEQCLS = 'albertkit/tiny-seqcls'
const MLM = 'albertkit/tiny-mlm'
const MAIN = 'd907d15c0c9daa632f18f9678de6bb92830722e5'
const V1 = '7b8254494cf9dc181ac4af458742eff6e49bb61f'
const MLM_MAIN = '2cd034512c4e9a10dbd73bab6b952ee53d77dd22'
/** model.safetensors' blob in tiny-seqcls (manifest.json) */
const SEQCLS_WEIGHTS_BLOB = '5ea9a8fc43db9bc788da75e53d09e5e2ae10dd5418b0530fd3b3659b856ce241'
const FETCH = (id: string, rev = '') => `albertkit downloads nothing: fetch it with \`hf download ${id}${rev ? ` --revision ${rev}` : ''}\` and run again`
const TOLERANCE = 1e-5
const LOCAL_PATH = 'a local path, not a Hub model id (org/name), a models--org--name folder or a snapshot folder of the Hugging Face cache; a revision names a version of a cached model (drop it, or name the model by its id)'

const work = tempDir()
const cached = (extra: ResolveOptions = {}, hub = HUB): ResolveOptions => ({ env: { HF_HUB_CACHE: hub }, home: '/nonexistent-home', ...extra })
const seqclsFolder = (hub = HUB) => path.join(hub, 'models--albertkit--tiny-seqcls')
const snapshotOf = (commit: string, hub = HUB, repo = 'models--albertkit--tiny-seqcls') => path.join(hub, repo, 'snapshots', commit)

/** A copy of the fixture cache that a test may damage; links stay the relative links they are. */
function copyCache(name: string): string {
  const root = path.join(work, name)
  fs.cpSync(path.join(FIXTURES, 'hf-cache'), root, { recursive: true, verbatimSymlinks: true })
  return path.join(root, 'hub')
}

/** The message of the UserError `f` throws, checked to be one line. */
function errorOf(f: () => unknown, kind: typeof UserError = UserError): string {
  try {
    f()
  } catch (e) {
    assert.ok(e instanceof kind, `expected a ${kind.name}, got ${String(e)}`)
    if (kind === UserError) assert.ok(!(e instanceof UsageError), `an input error (3), not a usage error: ${e.message}`)
    assert.ok(!e.message.includes('\n'), `one line: ${e.message}`)
    return e.message
  }
  assert.fail('no error')
}

/** The worst max abs difference of a checkpoint's fp32 graph against a fixture's transformers golden. */
async function worstAgainstGolden(arg: string, opts: ResolveOptions, fixture: string): Promise<number> {
  const ckpt = openCheckpoint(arg, opts)
  const task = resolveTask(ckpt.config, undefined, ckpt.configFile)
  const { model } = buildAlbert(ckpt.config, ckpt.weights, { task, where: ckpt.dir, configFile: ckpt.configFile })
  const parity = await parityWithGolden(model, fixture, { optimization: 'disabled' })
  assert.deepEqual([...parity.keys()].sort(), [...fixtureGolden(fixture).keys()].sort())
  return Math.max(...[...parity.values()].map((p) => p.maxAbs))
}

/** The CLI with an environment where only `env`'s cache variables are set. */
function albertkit(args: string[], env: Record<string, string>, cwd?: string) {
  const base = { ...process.env }
  for (const k of ['HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_HOME', 'XDG_CACHE_HOME', 'ALBERTKIT_DEBUG']) delete base[k]
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...base, ...env }, ...(cwd ? { cwd } : {}) })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('the cache folder, chosen as huggingface_hub chooses it', () => {
  const all = { HF_HUB_CACHE: '/a', HUGGINGFACE_HUB_CACHE: '/b', HF_HOME: '/c', XDG_CACHE_HOME: '/d' }
  it('HF_HUB_CACHE, then HUGGINGFACE_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub', () => {
    const env: Record<string, string> = { ...all }
    assert.deepEqual(hubCache({ env, home: '/h' }), { dir: '/a', source: 'HF_HUB_CACHE' })
    delete env.HF_HUB_CACHE
    assert.deepEqual(hubCache({ env, home: '/h' }), { dir: '/b', source: 'HUGGINGFACE_HUB_CACHE' })
    delete env.HUGGINGFACE_HUB_CACHE
    assert.deepEqual(hubCache({ env, home: '/h' }), { dir: '/c/hub', source: 'HF_HOME/hub' })
    delete env.HF_HOME
    assert.deepEqual(hubCache({ env, home: '/h' }), { dir: '/d/huggingface/hub', source: 'XDG_CACHE_HOME/huggingface/hub' })
    delete env.XDG_CACHE_HOME
    assert.deepEqual(hubCache({ env, home: '/h' }), { dir: '/h/.cache/huggingface/hub', source: 'the default; HF_HUB_CACHE and HF_HOME are not set' })
  })

  it('an empty variable counts as unset; ~ and $VAR expand, unknown variables stay', () => {
    assert.equal(hubCache({ env: { ...all, HF_HUB_CACHE: '', HUGGINGFACE_HUB_CACHE: '' }, home: '/h' }).dir, '/c/hub')
    assert.equal(hubCache({ env: { HF_HOME: '~/hf' }, home: '/h' }).dir, '/h/hf/hub')
    assert.equal(hubCache({ env: { HF_HUB_CACHE: '~' }, home: '/h' }).dir, '/h')
    assert.equal(hubCache({ env: { HF_HUB_CACHE: '$BASE/hub', BASE: '/data' }, home: '/h' }).dir, '/data/hub')
    assert.equal(hubCache({ env: { HF_HUB_CACHE: '${BASE}x/$NOPE', BASE: '/data' }, home: '/h' }).dir, '/datax/$NOPE')
    assert.equal(hubCache({ env: { HF_HUB_CACHE: '~user/hub' }, home: '/h' }).dir, '~user/hub')
  })

  it('on real folders: HF_HUB_CACHE over HF_HOME, HF_HOME over the home folder, a linked cache folder works', () => {
    const empty = fs.mkdtempSync(path.join(work, 'empty-'))
    const hfHome = path.join(FIXTURES, 'hf-cache')
    assert.equal(
      errorOf(() => resolveCheckpoint(SEQCLS, { env: { HF_HUB_CACHE: empty, HF_HOME: hfHome }, home: '/nonexistent-home' })),
      `${SEQCLS}: no such file or folder, and the Hugging Face cache ${empty} (HF_HUB_CACHE) holds no models; ${FETCH(SEQCLS)}`,
    )
    assert.equal(resolveCheckpoint(SEQCLS, { env: { HF_HOME: hfHome, XDG_CACHE_HOME: empty }, home: empty }).path, snapshotOf(MAIN))
    const home = fs.mkdtempSync(path.join(work, 'home-'))
    fs.mkdirSync(path.join(home, '.cache', 'huggingface'), { recursive: true })
    fs.symlinkSync(HUB, path.join(home, '.cache', 'huggingface', 'hub'))
    const viaHome = path.join(home, '.cache', 'huggingface', 'hub')
    assert.equal(resolveCheckpoint(MLM, { env: {}, home }).path, snapshotOf(MLM_MAIN, viaHome, 'models--albertkit--tiny-mlm'))
    assert.equal(resolveCheckpoint(MLM, { env: { XDG_CACHE_HOME: path.join(home, '.cache') }, home: empty }).path, snapshotOf(MLM_MAIN, viaHome, 'models--albertkit--tiny-mlm'))
  })
})

describe('what an argument names', () => {
  it('ids as huggingface_hub validates them', () => {
    for (const id of ['albertkit/tiny-seqcls', 'bert-base-uncased', 'a/b', 'Org_1/Name.v2', `${'a'.repeat(96)}/${'b'.repeat(96)}`]) assert.ok(isRepoId(id), id)
    for (const id of ['a/b/c', '/abs', './rel', 'a/', '-a/b', 'a/b.', 'a--b/c', 'a/b..c', 'a/b.git', `${'a'.repeat(97)}/b`, 'a b/c', 'é/x', '']) assert.ok(!isRepoId(id), id)
  })

  it('org/name resolves through refs/main; --revision takes a ref, a full commit or a unique prefix of 7 or more', () => {
    assert.deepEqual(resolveCheckpoint(SEQCLS, cached()), {
      path: snapshotOf(MAIN),
      repo: { id: SEQCLS, folder: seqclsFolder(), revision: 'main', commit: MAIN },
    })
    assert.equal(resolveCheckpoint(SEQCLS, cached({ revision: 'v1' })).path, snapshotOf(V1))
    assert.equal(resolveCheckpoint(SEQCLS, cached({ revision: V1 })).path, snapshotOf(V1))
    assert.equal(resolveCheckpoint(SEQCLS, cached({ revision: '7b82544' })).path, snapshotOf(V1))
    assert.equal(resolveCheckpoint(SEQCLS, cached({ revision: MAIN.slice(0, 12) })).path, snapshotOf(MAIN))
    assert.match(errorOf(() => resolveCheckpoint(SEQCLS, cached({ revision: '7b8254' }))), /^albertkit\/tiny-seqcls: no revision '7b8254' in /)
  })

  it('a models-- folder resolves through its refs; a snapshot folder (or a file in it) is opened as it is', () => {
    assert.equal(resolveCheckpoint(seqclsFolder(), { env: {} }).path, snapshotOf(MAIN))
    assert.equal(resolveCheckpoint(seqclsFolder() + '/', { env: {}, revision: 'v1' }).path, snapshotOf(V1))
    assert.deepEqual(resolveCheckpoint(snapshotOf(V1), { env: {} }), {
      path: snapshotOf(V1),
      repo: { id: SEQCLS, folder: path.join(snapshotOf(V1), '..', '..'), revision: V1, commit: V1 },
    })
    const file = path.join(snapshotOf(MAIN), 'config.json')
    assert.equal(resolveCheckpoint(file, { env: {} }).path, file)
    assert.equal(resolveCheckpoint(snapshotOf(V1), { env: {}, revision: 'v1' }).path, snapshotOf(V1))
  })

  it('--revision that a plain folder or another snapshot contradicts is a usage error', () => {
    assert.equal(
      errorOf(() => resolveCheckpoint(snapshotOf(V1), { env: {}, revision: 'main' }), UsageError),
      `--revision main: names commit ${MAIN}, but ${snapshotOf(V1)} is the snapshot of commit ${V1}`,
    )
    assert.equal(
      errorOf(() => resolveCheckpoint(fixtureDir('albert-mlm'), { env: {}, revision: 'main' }), UsageError),
      `--revision main contradicts ${fixtureDir('albert-mlm')}: ${LOCAL_PATH}`,
    )
  })

  it('an existing path wins over an id; a single name is an id only when the cache holds it', () => {
    const cwd = fs.mkdtempSync(path.join(work, 'cwd-'))
    fs.cpSync(fixtureDir('albert-mlm'), path.join(cwd, 'albertkit', 'tiny-seqcls'), { recursive: true })
    const hub = copyCache('single')
    fs.renameSync(path.join(hub, 'models--albertkit--tiny-mlm'), path.join(hub, 'models--tiny-mlm'))
    const before = process.cwd()
    process.chdir(cwd)
    try {
      assert.deepEqual(resolveCheckpoint(SEQCLS, cached()), { path: SEQCLS })
      assert.equal((openCheckpoint(SEQCLS, cached()).config.raw.architectures as string[])[0], 'AlbertForMaskedLM')
      assert.equal(resolveCheckpoint('tiny-mlm', cached({}, hub)).path, snapshotOf(MLM_MAIN, hub, 'models--tiny-mlm'))
      assert.deepEqual(resolveCheckpoint('tiny-nope', cached({}, hub)), { path: 'tiny-nope' })
      assert.equal(errorOf(() => openCheckpoint('tiny-nope', cached({}, hub))), 'tiny-nope: no such file or folder')
      // `albertkit/` is a folder here: a name in it that the cache does not hold is a mistyped path.
      assert.equal(errorOf(() => openCheckpoint('albertkit/tiny-seqcl', cached())), 'albertkit/tiny-seqcl: no such file or folder')
      assert.equal(resolveCheckpoint(MLM, cached()).path, snapshotOf(MLM_MAIN, HUB, 'models--albertkit--tiny-mlm'))
    } finally {
      process.chdir(before)
    }
  })
})

describe('cache checkpoints convert to models that match the transformers goldens', () => {
  it(`by id (main, v1, a commit), by models-- folder and by snapshot folder, within ${TOLERANCE}`, async () => {
    assert.ok((await worstAgainstGolden(SEQCLS, cached(), 'albert-seqcls-text')) <= TOLERANCE)
    assert.ok((await worstAgainstGolden(SEQCLS, cached({ revision: 'v1' }), 'albert-seqcls-text')) <= TOLERANCE)
    assert.ok((await worstAgainstGolden(MLM, cached({ revision: MLM_MAIN }), 'albert-mlm')) <= TOLERANCE)
    assert.ok((await worstAgainstGolden(path.join(HUB, 'models--albertkit--tiny-mlm'), { env: {} }, 'albert-mlm')) <= TOLERANCE)
    assert.ok((await worstAgainstGolden(snapshotOf(MAIN), { env: {} }, 'albert-seqcls-text')) <= TOLERANCE)
    const v1 = openCheckpoint(SEQCLS, cached({ revision: 'v1' }))
    assert.deepEqual(v1.config.raw.id2label, { 0: 'LABEL_0', 1: 'LABEL_1' })
    assert.equal(v1.dir, snapshotOf(V1))
  })

  it('a cache without symlinks (plain files in the snapshots, as on Windows) works too', async () => {
    const root = path.join(work, 'windows')
    fs.cpSync(path.join(FIXTURES, 'hf-cache'), root, { recursive: true, dereference: true })
    const hub = path.join(root, 'hub')
    assert.ok(fs.lstatSync(path.join(snapshotOf(MAIN, hub), 'model.safetensors')).isFile())
    fs.rmSync(path.join(seqclsFolder(hub), 'blobs'), { recursive: true })
    assert.ok((await worstAgainstGolden(SEQCLS, cached({}, hub), 'albert-seqcls-text')) <= TOLERANCE)
  })

  it('convert albertkit/tiny-seqcls (HF_HUB_CACHE) and convert a models-- folder (HF_HOME unset): goldens within 1e-5, files copied', async () => {
    const runs: [string[], Record<string, string>, string, string][] = [
      [[SEQCLS], { HF_HUB_CACHE: HUB }, 'albert-seqcls-text', snapshotOf(MAIN)],
      [[path.join(HUB, 'models--albertkit--tiny-mlm')], {}, 'albert-mlm', snapshotOf(MLM_MAIN, HUB, 'models--albertkit--tiny-mlm')],
    ]
    for (const [[arg], env, fixture, snapshot] of runs) {
      const out = path.join(work, `cli-${fixture}`)
      const r = albertkit(['convert', arg!, '--out', out], env)
      assert.equal(r.code, EXIT.ok, r.stderr)
      const session = await createSession(path.join(out, 'onnx', 'model.onnx'), { optimization: 'disabled' })
      const inputs = fixtureInputs(fixture)
      const outputs = await runSession(session, inputs)
      for (const [name, ref] of fixtureGolden(fixture)) {
        // real positions only: padded ones hold 0 or -10000 (pack-tokens, README "Padded batches")
        const p = compareTokens(ref.toFloat32(), outputs.get(name)!.data, ref.dims, tokenMask(inputs), true)
        assert.ok(p.maxAbs <= TOLERANCE, `${arg} ${name}: max abs ${p.maxAbs}`)
      }
      for (const f of ['config.json', 'spiece.model', 'tokenizer.json']) {
        assert.ok(fs.lstatSync(path.join(out, f)).isFile(), `${f} is a file, not a link into the cache`)
        assert.deepEqual(fs.readFileSync(path.join(out, f)), fs.readFileSync(path.join(snapshot, f)))
      }
    }
  })
})

describe('what is missing is one line: the cache searched, the revisions present, how to fetch it', () => {
  it('a missing revision', () => {
    const present = `revisions present: main (${MAIN.slice(0, 12)}), v1 (${V1.slice(0, 12)})`
    assert.equal(
      errorOf(() => openCheckpoint(SEQCLS, cached({ revision: 'v2' }))),
      `${SEQCLS}: no revision 'v2' in the Hugging Face cache ${HUB} (HF_HUB_CACHE); ${present}; ${FETCH(SEQCLS, 'v2')}`,
    )
    assert.equal(
      errorOf(() => resolveCheckpoint(seqclsFolder(), { env: {}, revision: 'refs/pr/1' })),
      `${seqclsFolder()}: no revision 'refs/pr/1' in this Hugging Face cache folder; ${present}; ${FETCH(SEQCLS, 'refs/pr/1')}`,
    )
    const full = 'f'.repeat(40)
    assert.equal(
      errorOf(() => resolveCheckpoint(MLM, cached({ revision: full }))),
      `${MLM}: no revision '${full}' in the Hugging Face cache ${HUB} (HF_HUB_CACHE); revisions present: main (${MLM_MAIN.slice(0, 12)}); ${FETCH(MLM, full)}`,
    )
  })

  it('a missing model, an empty cache, no cache at all', () => {
    assert.equal(
      errorOf(() => resolveCheckpoint('albertkit/tiny-seqcl', cached())),
      `albertkit/tiny-seqcl: no such file or folder, and no model albertkit/tiny-seqcl in the Hugging Face cache ${HUB} (HF_HUB_CACHE) (did you mean albertkit/tiny-seqcls?); ${FETCH('albertkit/tiny-seqcl')}`,
    )
    assert.equal(
      errorOf(() => resolveCheckpoint('google/albert-xxl', cached({ revision: 'v2' }))),
      `google/albert-xxl: no such file or folder, and no model google/albert-xxl in the Hugging Face cache ${HUB} (HF_HUB_CACHE); ${FETCH('google/albert-xxl', 'v2')}`,
    )
    const gone = path.join(work, 'no-such-cache')
    assert.equal(
      errorOf(() => resolveCheckpoint(SEQCLS, { env: { HF_HOME: gone } })),
      `${SEQCLS}: no such file or folder, and the Hugging Face cache ${gone}/hub (HF_HOME/hub) does not exist; ${FETCH(SEQCLS)}`,
    )
  })

  it('on the command line: an empty cache and a dangling blob link are exit code 3, one line, nothing written', () => {
    const empty = fs.mkdtempSync(path.join(work, 'empty-'))
    const out = path.join(work, 'never')
    const r = albertkit(['convert', SEQCLS, '--out', out], { HF_HUB_CACHE: empty })
    assert.equal(r.code, EXIT.input)
    assert.equal(r.stderr, `Error: ${SEQCLS}: no such file or folder, and the Hugging Face cache ${empty} (HF_HUB_CACHE) holds no models; ${FETCH(SEQCLS)}\n`)
    const hub = copyCache('dangling')
    fs.rmSync(path.join(seqclsFolder(hub), 'blobs', SEQCLS_WEIGHTS_BLOB))
    const link = path.join(snapshotOf(MAIN, hub), 'model.safetensors')
    const expected = `${link}: broken link into the Hugging Face cache: its blob ../../blobs/${SEQCLS_WEIGHTS_BLOB} is missing; ${FETCH(SEQCLS)}`
    const d = albertkit(['convert', SEQCLS, '--out', out], { HF_HUB_CACHE: hub })
    assert.equal(d.code, EXIT.input)
    assert.equal(d.stderr, `Error: ${expected}\n`)
    assert.equal(d.stdout, '')
    assert.ok(!fs.existsSync(out), 'nothing written')
    assert.equal(errorOf(() => resolveCheckpoint(snapshotOf(MAIN, hub), { env: {} })), expected.replace(FETCH(SEQCLS), FETCH(SEQCLS, MAIN)))
  })

  it('an output inside the cached snapshot an id names is refused (usage, exit code 2), the cache left as it was', () => {
    const hub = copyCache('guarded')
    const out = path.join(snapshotOf(MAIN, hub), 'out')
    const r = albertkit(['convert', SEQCLS, '--out', out], { HF_HUB_CACHE: hub })
    assert.equal(r.code, EXIT.usage)
    assert.equal(r.stderr, `Error: ${out}: lies inside the checkpoint ${snapshotOf(MAIN, hub)}\n`)
    assert.deepEqual(fs.readdirSync(snapshotOf(MAIN, hub)).sort(), ['config.json', 'model.safetensors', 'special_tokens_map.json', 'spiece.model', 'tokenizer.json', 'tokenizer_config.json'])
  })

  it('a ref to a snapshot that is not there, a partial download, an ambiguous prefix', () => {
    const hub = copyCache('partial')
    fs.rmSync(snapshotOf(V1, hub), { recursive: true })
    assert.equal(
      errorOf(() => resolveCheckpoint(SEQCLS, cached({ revision: 'v1' }, hub))),
      `${seqclsFolder(hub)}/refs/v1: names commit ${V1}, which has no snapshot folder in ${seqclsFolder(hub)}/snapshots (the download did not finish); ${FETCH(SEQCLS, 'v1')}`,
    )
    fs.rmSync(path.join(snapshotOf(MAIN, hub), 'model.safetensors'))
    assert.equal(
      errorOf(() => resolveCheckpoint(SEQCLS, cached({}, hub))),
      `${snapshotOf(MAIN, hub)}: this cached snapshot of ${SEQCLS} (main) holds config.json, special_tokens_map.json, spiece.model, tokenizer.json, tokenizer_config.json but no weights (model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json): a partial download; ${FETCH(SEQCLS)}`,
    )
    const twin = MAIN.slice(0, 8) + '0'.repeat(32)
    fs.cpSync(snapshotOf(MAIN, hub), snapshotOf(twin, hub), { recursive: true, verbatimSymlinks: true })
    assert.equal(
      errorOf(() => resolveCheckpoint(SEQCLS, cached({ revision: MAIN.slice(0, 7) }, hub))),
      `${SEQCLS}: revision '${MAIN.slice(0, 7)}' is the start of 2 cached commits (${twin}, ${MAIN}); give more of the hash`,
    )
  })
})

describe('hostile caches are refused before anything is read', () => {
  it('a revision that is no ref name (traversal, control characters, huge) is a usage error', () => {
    const bad: [string, string][] = [
      ['../../../../etc/passwd', "holds '..'"],
      ['main/../v1', "holds '..'"],
      ['/etc/passwd', "starts or ends with '/' or holds '//'"],
      ['a\\b', 'holds a space, a control character or one of ~ ^ : ? * [ \\'],
      ['v1\u0000', 'holds a space, a control character or one of ~ ^ : ? * [ \\'],
      ['.hidden', "the part '.hidden' starts with '.'"],
      ['main.lock', "the part 'main.lock' ends with '.lock'"],
      ['x'.repeat(256), '256 characters, over the 255-character limit'],
      ['', 'empty'],
    ]
    for (const [revision, problem] of bad) {
      const message = errorOf(() => resolveCheckpoint(SEQCLS, cached({ revision })), UsageError)
      assert.equal(message, `--revision '${printable(revision, 80)}': ${problem}; give a branch, tag or commit of the model (default main)`)
    }
    for (const ok of ['main', 'v1', 'refs/pr/1', 'release-2.0', MAIN]) checkRevision(ok)
  })

  it('ref files with junk, huge ref files, linked refs and refs that lead outside refs/ are refused', () => {
    const hub = copyCache('refs')
    const refs = path.join(seqclsFolder(hub), 'refs')
    fs.writeFileSync(path.join(refs, 'junk'), 'hello\u0007world')
    assert.equal(errorOf(() => resolveCheckpoint(SEQCLS, cached({ revision: 'junk' }, hub))), `${refs}/junk: holds 'hello\\x07world', not a 40-character commit hash`)
    fs.writeFileSync(path.join(refs, 'huge'), Buffer.alloc(1 << 20, 0x61))
    assert.equal(errorOf(() => resolveCheckpoint(SEQCLS, cached({ revision: 'huge' }, hub))), `${refs}/huge: 1048576 bytes: a ref holds a 40-character commit hash`)
    fs.symlinkSync('main', path.join(refs, 'linked'))
    assert.equal(
      errorOf(() => resolveCheckpoint(SEQCLS, cached({ revision: 'linked' }, hub))),
      `${refs}/linked: not a regular file: a ref is a file holding a 40-character commit hash (links are refused)`,
    )
    const outside = fs.mkdtempSync(path.join(work, 'outside-'))
    fs.writeFileSync(path.join(outside, '1'), V1)
    fs.symlinkSync(outside, path.join(refs, 'pr'))
    assert.equal(errorOf(() => resolveCheckpoint(SEQCLS, cached({ revision: 'pr/1' }, hub))), `${refs}/pr/1: lies outside ${refs} by its real path`)
    // A ref huggingface_hub wrote for a pull request (refs/pr/1 on the Hub), and one with a newline, work.
    fs.mkdirSync(path.join(refs, 'refs', 'pr'), { recursive: true })
    fs.writeFileSync(path.join(refs, 'refs', 'pr', '1'), V1 + '\n')
    assert.equal(resolveCheckpoint(SEQCLS, cached({ revision: 'refs/pr/1' }, hub)).path, snapshotOf(V1, hub))
  })

  it('snapshot links that lead outside the model blobs/, a pipe, a link loop, a linked snapshot are refused', () => {
    const cases: [string, (snap: string, hub: string) => void, (snap: string, hub: string) => string][] = [
      [
        'absolute link out of the cache',
        (snap) => {
          fs.rmSync(path.join(snap, 'config.json'))
          fs.symlinkSync(path.join(fixtureDir('albert-seqcls-text'), 'config.json'), path.join(snap, 'config.json'))
        },
        (snap, hub) => `${snap}/config.json: links to ${path.join(fixtureDir('albert-seqcls-text'), 'config.json')}, outside ${seqclsFolder(hub)}/blobs: links in a cached snapshot are followed only into the model's own blobs/`,
      ],
      [
        "another model's blob",
        (snap) => {
          fs.rmSync(path.join(snap, 'config.json'))
          fs.symlinkSync('../../../models--albertkit--tiny-mlm/blobs/858c8c5a8647ca15d63b0321df705b4e149ddbd9', path.join(snap, 'config.json'))
        },
        (snap, hub) => `${snap}/config.json: links to ${path.join(hub, 'models--albertkit--tiny-mlm', 'blobs', '858c8c5a8647ca15d63b0321df705b4e149ddbd9')}, outside ${seqclsFolder(hub)}/blobs: links in a cached snapshot are followed only into the model's own blobs/`,
      ],
      [
        'a pipe',
        (snap) => assert.equal(spawnSync('mkfifo', [path.join(snap, 'pipe')]).status, 0),
        (snap) => `${snap}/pipe: not a file, a folder or a link (a pipe, a socket or a device) in a cached snapshot`,
      ],
      [
        'a link loop',
        (snap) => {
          fs.symlinkSync('loop-b', path.join(snap, 'loop-a'))
          fs.symlinkSync('loop-a', path.join(snap, 'loop-b'))
        },
        (snap) => `${snap}/loop-a: a link loop (loop-b)`,
      ],
      [
        'a link to the blobs folder',
        (snap) => fs.symlinkSync('../../blobs', path.join(snap, 'blobs')),
        (snap) => `${snap}/blobs: links to ../../blobs, which is not a file`,
      ],
      [
        "a link's target written out as text (a checkout without symlinks)",
        (snap) => {
          fs.rmSync(path.join(snap, 'config.json'))
          fs.writeFileSync(path.join(snap, 'config.json'), '../../blobs/b866ff8782dd528558fa20f94fc9d8f1146332d0')
        },
        (snap) =>
          `${snap}/config.json: holds the text '../../blobs/b866ff8782dd528558fa20f94fc9d8f1146332d0' instead of the file: a copy of the cache made without its symbolic links (git with core.symlinks=false, a zip); ${FETCH(SEQCLS)}`,
      ],
    ]
    for (const [name, damage, message] of cases) {
      const hub = copyCache(`hostile-${name.replace(/\W+/g, '-')}`)
      const snap = snapshotOf(MAIN, hub)
      damage(snap, hub)
      assert.equal(errorOf(() => openCheckpoint(SEQCLS, cached({}, hub))), message(snap, hub), name)
    }
    // Node's cpSync without verbatimSymlinks rewrites relative links as absolute ones into the original cache.
    const rewritten = path.join(work, 'rewritten')
    fs.cpSync(path.join(FIXTURES, 'hf-cache'), rewritten, { recursive: true })
    assert.match(errorOf(() => resolveCheckpoint(SEQCLS, cached({}, path.join(rewritten, 'hub')))), /\/config\.json: links to .*fixtures\/hf-cache\/hub\/models--albertkit--tiny-seqcls\/blobs\/b866ff8782dd528558fa20f94fc9d8f1146332d0, outside .*rewritten\/hub\/models--albertkit--tiny-seqcls\/blobs: /)
    // A snapshot folder that is itself a link.
    const hub = copyCache('linked-snapshot')
    const elsewhere = path.join(work, 'elsewhere-snapshot')
    fs.renameSync(snapshotOf(MAIN, hub), elsewhere)
    fs.symlinkSync(elsewhere, snapshotOf(MAIN, hub))
    assert.equal(errorOf(() => resolveCheckpoint(SEQCLS, cached({}, hub))), `${snapshotOf(MAIN, hub)}: not a folder: a snapshot is a folder of files (a link or a file here is refused)`)
  })

  it("a blob that links into the cache's shared store (huggingface_hub's blobs/<xx>/<hash>) is followed; elsewhere in blobs/ it is not", async () => {
    const hub = copyCache('shared-store')
    const blob = path.join(seqclsFolder(hub), 'blobs', SEQCLS_WEIGHTS_BLOB)
    const store = path.join(hub, 'blobs', SEQCLS_WEIGHTS_BLOB.slice(0, 2))
    fs.mkdirSync(store, { recursive: true })
    fs.renameSync(blob, path.join(store, SEQCLS_WEIGHTS_BLOB))
    fs.symlinkSync(`../../blobs/${SEQCLS_WEIGHTS_BLOB.slice(0, 2)}/${SEQCLS_WEIGHTS_BLOB}`, blob)
    assert.ok((await worstAgainstGolden(SEQCLS, cached({}, hub), 'albert-seqcls-text')) <= TOLERANCE)
    const misplaced = path.join(hub, 'blobs', 'zz')
    fs.renameSync(store, misplaced)
    fs.rmSync(blob)
    fs.symlinkSync(`../../blobs/zz/${SEQCLS_WEIGHTS_BLOB}`, blob)
    assert.match(errorOf(() => resolveCheckpoint(SEQCLS, cached({}, hub))), /\/model\.safetensors: links to .*\/shared-store\/hub\/blobs\/zz\/5ea9a8fc[0-9a-f]+, outside /)
  })
})

describe('--revision on the command line (convert, verify, inspect) and in a recipe', () => {
  /** `convert albertkit/tiny-seqcls --revision v1`, run once: its output folder. */
  let v1Folder: string | undefined
  const convertedV1 = (): string => {
    if (v1Folder) return v1Folder
    const out = path.join(work, 'cli-v1')
    const r = albertkit(['convert', SEQCLS, '--revision', 'v1', '--out', out, '--quiet'], { HF_HUB_CACHE: HUB })
    assert.equal(r.code, EXIT.ok, r.stderr)
    assert.equal(r.stderr, '')
    return (v1Folder = out)
  }

  it('convert org/name --revision v1: the v1 files, report.json naming the model, the revision and the commit; verify and inspect read the same', () => {
    const out = convertedV1()
    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'))
    assert.equal(report.source.name, SEQCLS)
    assert.deepEqual(report.source.hub, { id: SEQCLS, revision: 'v1', commit: V1 })
    assert.deepEqual(fs.readFileSync(path.join(out, 'config.json')), fs.readFileSync(path.join(snapshotOf(V1), 'config.json')))
    assert.notDeepEqual(fs.readFileSync(path.join(out, 'config.json')), fs.readFileSync(path.join(snapshotOf(MAIN), 'config.json')))
    const v = albertkit(['verify', SEQCLS, path.join(out, 'onnx', 'model.onnx'), '--revision', V1.slice(0, 10), '--json'], { HF_HUB_CACHE: HUB })
    assert.equal(v.code, EXIT.ok, v.stderr)
    const verdict = JSON.parse(v.stdout)
    assert.equal(verdict.reference, `albertkit fp32 graph of ${SEQCLS} at ${V1.slice(0, 10)} (commit ${V1.slice(0, 12)}) (onnxruntime optimizations off)`)
    assert.equal(verdict.pass, true)
    assert.ok(verdict.artifacts[0].outputs[0].maxAbs <= 1e-5, `max abs ${verdict.artifacts[0].outputs[0].maxAbs}`)
    const i = albertkit(['inspect', SEQCLS, '--revision', 'v1', '--json'], { HF_HUB_CACHE: HUB })
    assert.equal(i.code, EXIT.ok, i.stderr)
    assert.deepEqual(JSON.parse(i.stdout).hub, { id: SEQCLS, revision: 'v1', commit: V1 })
    const plain = albertkit(['inspect', MLM], { HF_HUB_CACHE: HUB })
    assert.equal(plain.code, EXIT.ok, plain.stderr)
    assert.equal(plain.stdout.split('\n').slice(0, 2).join('\n'), `${MLM} (checkpoint, safetensors)\n  hub cache      ${MLM} at main, commit ${MLM_MAIN}`)
  })

  it('a missing model and a missing revision are exit code 3, one line naming the cache and the revisions present; stdout empty', () => {
    for (const [args, message] of [
      [['inspect', SEQCLS, '--revision', 'v2'], `${SEQCLS}: no revision 'v2' in the Hugging Face cache ${HUB} (HF_HUB_CACHE); revisions present: main (${MAIN.slice(0, 12)}), v1 (${V1.slice(0, 12)}); ${FETCH(SEQCLS, 'v2')}`],
      [['verify', 'google/albert-base-v2', 'model.onnx'], `google/albert-base-v2: no such file or folder, and no model google/albert-base-v2 in the Hugging Face cache ${HUB} (HF_HUB_CACHE); ${FETCH('google/albert-base-v2')}`],
    ] as [string[], string][]) {
      const r = albertkit(args, { HF_HUB_CACHE: HUB })
      assert.equal(r.code, EXIT.input, args.join(' '))
      assert.equal(r.stderr, `Error: ${message}\n`)
      assert.equal(r.stdout, '')
    }
  })

  it('--revision with a local checkpoint or an ONNX file, or malformed, is a usage error (2) naming both, before anything is read or written', () => {
    const out = path.join(work, 'never-revision')
    const onnx = path.join(convertedV1(), 'onnx', 'model.onnx')
    const recipe = path.join(work, 'revision-recipe.json')
    fs.writeFileSync(recipe, JSON.stringify({ revision: 'v1' }))
    const cases: [string[], string][] = [
      [['convert', fixtureDir('albert-mlm'), '--revision', 'v1', '--out', out], `--revision v1 contradicts ${fixtureDir('albert-mlm')}: ${LOCAL_PATH}`],
      [['inspect', onnx, '--revision', 'main'], `--revision main contradicts ${onnx}: ${LOCAL_PATH}`],
      [['verify', fixtureDir('albert-mlm'), onnx, '--recipe', recipe], `${recipe}: revision v1 contradicts ${fixtureDir('albert-mlm')}: ${LOCAL_PATH}`],
      [['convert', SEQCLS, '--revision', 'main..v1', '--out', out], "--revision 'main..v1': holds '..'; give a branch, tag or commit of the model (default main)"],
      [['inspect', snapshotOf(V1), '--revision', 'main'], `--revision main: names commit ${MAIN}, but ${snapshotOf(V1)} is the snapshot of commit ${V1}`],
    ]
    for (const [args, message] of cases) {
      const r = albertkit(args, { HF_HUB_CACHE: HUB })
      assert.equal(r.code, EXIT.usage, args.join(' '))
      assert.equal(r.stderr, `Error: ${message}\n`)
    }
    assert.ok(!fs.existsSync(out), 'nothing written')
    // With the checkpoint named by its id, the recipe's revision is the one read.
    const r = albertkit(['verify', SEQCLS, onnx, '--recipe', recipe, '--json'], { HF_HUB_CACHE: HUB })
    assert.equal(JSON.parse(r.stdout).reference, `albertkit fp32 graph of ${SEQCLS} at v1 (commit ${V1.slice(0, 12)}) (onnxruntime optimizations off)`)
  })

  it('a recipe revision is checked as --revision is, naming the file and the key', () => {
    assert.equal(parseRecipe({ revision: 'v1' }, 'r.json').revision, 'v1')
    assert.throws(() => parseRecipe({ revision: 'a..b' }, 'r.json'), { name: 'UsageError', message: `r.json: revision "a..b" is no branch, tag or commit: holds '..'` })
    assert.throws(() => parseRecipe({ revision: 1 }, 'r.json'), { name: 'UsageError', message: 'r.json: revision must be a string, got 1' })
  })

  it('nothing is downloaded: no module of albertkit opens a network connection', () => {
    const offenders: string[] = []
    const walk = (dir: string): void => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name)
        if (e.isDirectory()) walk(p)
        else if (p.endsWith('.ts') && /from '(node:)?(http|https|http2|net|tls|dgram)'|\bfetch\(|XMLHttpRequest|WebSocket/.test(fs.readFileSync(p, 'utf8'))) offenders.push(p)
      }
    }
    walk(path.join(FIXTURES, '..', 'src'))
    assert.deepEqual(offenders, [])
  })
})
