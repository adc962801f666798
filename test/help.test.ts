/**
 * Help as oclif users expect it: -h/--help/help [COMMAND], -v/--version/version, "did you mean"
 * for commands and flags (a usage error, never a question), flags grouped by purpose, USAGE lines
 * that say what a command takes, each command's own exit codes, and --help read from the oclif
 * manifest without importing any command. Shell completion from oclif's plugin, offline.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Config, Plugin } from '@oclif/core'
import { BIN, ROOT, fixtureDir, tempDir } from './support/helpers.js'
import { runCommandBounded } from './support/bounded.js'
import { FLAG_GROUPS, type ExitCodeRows } from '../src/cli/help.js'
import { closest, didYouMean } from '../src/util/suggest.js'
import { helpPageKey, storedHelpPage } from '../src/cli/help-pages.js'

const COMMANDS = ['convert', 'inspect', 'optimize', 'verify']
const pjson = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }
const VERSION_LINE = `albertkit/${pjson.version} ${process.platform}-${process.arch} node-${process.version}`

function albertkit(args: string[], env: NodeJS.ProcessEnv = {}) {
  const e = { ...process.env, ...env }
  delete e.ALBERTKIT_DEBUG
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: e, timeout: 30_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

const helpTexts = new Map<string, string>()

/** `albertkit COMMAND --help`, run once per command. */
function help(command: string): string {
  if (!helpTexts.has(command)) {
    const r = albertkit([command, '--help'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stderr, '')
    helpTexts.set(command, r.stdout)
  }
  return helpTexts.get(command)!
}

/** The section headers of a help text, in order. */
function headers(text: string): string[] {
  return text.split('\n').filter((l) => /^[A-Z][A-Z -]+$/.test(l))
}

/** The flag names a help section lists (`--name`, without the `[no-]`). */
function flagsIn(text: string, header: string): string[] {
  const start = text.indexOf(`\n${header}\n`)
  assert.ok(start >= 0, `no ${header} section`)
  const body = text.slice(start + header.length + 2).split(/\n\n[A-Z]/)[0]!
  return [...body.matchAll(/^ {2}(?:-\w, | {4})?--(?:\[no-\])?([\w-]+)/gm)].map((m) => m[1]!)
}

describe('help', () => {
  it('-h, --help, help and no command at all print the same root help, exit code 0', () => {
    const root = albertkit(['--help'])
    assert.equal(root.code, 0, root.stderr)
    assert.equal(root.stderr, '')
    for (const c of [...COMMANDS, 'help', 'version', 'autocomplete']) assert.match(root.stdout, new RegExp(`^ {2}${c} +\\S`, 'm'), `lists ${c}`)
    assert.match(root.stdout, /^ {2}version +Print the version of albertkit/m, 'version has a summary')
    for (const args of [['-h'], ['help'], []]) {
      const r = albertkit(args)
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
      assert.equal(r.stdout, root.stdout, `albertkit ${args.join(' ')}`)
    }
  })

  for (const c of COMMANDS) {
    it(`${c} --help, ${c} -h and help ${c} are the same`, () => {
      assert.equal(albertkit([c, '-h']).stdout, help(c))
      assert.equal(albertkit(['help', c]).stdout, help(c))
    })
  }

  it('USAGE says what each command takes: one checkpoint for verify, then one or more candidates', () => {
    const usage: Record<string, string> = {
      convert: '$ albertkit convert CHECKPOINT -o <folder> [FLAGS]',
      inspect: '$ albertkit inspect TARGET [FLAGS]',
      optimize: '$ albertkit optimize INPUT -o <file> [FLAGS]',
      verify: '$ albertkit verify REFERENCE CANDIDATES... [FLAGS]',
    }
    for (const c of COMMANDS) {
      const text = help(c)
      assert.match(text, new RegExp(`^USAGE\\n {2}${usage[c]!.replace(/[.$[\]]/g, '\\$&')}\\n\\n`, 'm'), c)
    }
    assert.match(help('verify').replace(/\s+/g, ' '), / ARGUMENTS REFERENCE the original checkpoint folder \(or org\/name in the Hugging Face cache\), or an ONNX model to check against CANDIDATES\.\.\. ONNX models/)
  })

  it('verify takes several candidates and no second checkpoint (the USAGE line is what the parser does)', () => {
    const r = albertkit(['verify', fixtureDir('albert-model'), '--json'])
    assert.equal(r.code, 2)
    assert.equal(JSON.parse(r.stdout).error.message, 'missing argument CANDIDATES (see albertkit verify --help)')
  })

  it('flags come in groups by purpose, in a fixed order; every flag is in one group', async () => {
    const groups: Record<string, string[][]> = {
      convert: [
        ['OUTPUT', 'out', 'force', 'quiet', 'verbose', 'json'],
        ['CHECKPOINT', 'revision'],
        ['MODEL', 'task', 'target', 'precision', 'fixed-shape', 'calibration'],
        ['GRAPH', 'standard-ops', 'refactor'],
        ['QUANTIZATION', 'per-tensor', 'block-size', 'asymmetric', 'keep-nodes', 'keep-ops'],
        ['VERIFICATION', 'verify', 'text', 'text-file', 'seed', 'batch', 'sequence', 'max-abs', 'cosine', 'top1'],
        ['EVALUATION', 'eval', 'max-drop', 'eval-metric', 'eval-limit', 'eval-seed'],
        ['RECIPE', 'recipe'],
      ],
      optimize: [
        ['OUTPUT', 'out', 'force', 'quiet', 'verbose', 'json'],
        ['MODEL', 'target', 'precision', 'keep-metadata', 'fixed-shape', 'calibration'],
        ['GRAPH', 'passes', 'standard-ops', 'refactor'],
        ['QUANTIZATION', 'per-tensor', 'block-size', 'asymmetric', 'keep-nodes', 'keep-ops'],
        ['VERIFICATION', 'verify', 'seed', 'batch', 'sequence', 'max-abs', 'cosine', 'top1'],
        ['RECIPE', 'recipe'],
      ],
      verify: [
        ['OUTPUT', 'quiet', 'json'],
        ['CHECKPOINT', 'revision'],
        ['VERIFICATION', 'task', 'golden', 'inputs', 'text', 'text-file', 'tokenizer', 'seed', 'batch', 'sequence', 'max-abs', 'cosine', 'top1'],
        ['EVALUATION', 'eval', 'max-drop', 'eval-metric', 'eval-limit', 'eval-seed'],
        ['RECIPE', 'recipe'],
      ],
      inspect: [
        ['OUTPUT', 'quiet', 'json'],
        ['CHECKPOINT', 'revision'],
      ],
    }
    const config = await Config.load(ROOT)
    for (const c of COMMANDS) {
      const text = help(c)
      const expected = groups[c]!
      assert.deepEqual(headers(text).filter((h) => h.endsWith(' FLAGS') || h === 'FLAGS'), expected.map(([g]) => `${g} FLAGS`), c)
      for (const [group, ...names] of expected) assert.deepEqual(flagsIn(text, `${group} FLAGS`), names, `${c}: ${group}`)
      const cmd = await config.findCommand(c)!.load()
      const defined = Object.keys({ ...cmd.baseFlags, ...cmd.flags }).sort()
      assert.deepEqual(expected.flatMap(([, ...names]) => names).sort(), defined, `${c}: every flag shown once`)
      for (const [name, flag] of Object.entries({ ...cmd.baseFlags, ...cmd.flags })) {
        assert.ok((FLAG_GROUPS as readonly string[]).includes(flag.helpGroup ?? ''), `${c} --${name} has a known helpGroup (${flag.helpGroup})`)
      }
    }
  })

  it('--json is described as what it does', () => {
    const text = help('inspect')
    assert.doesNotMatch(text, /Format output as json/)
    const flat = text.replace(/\s+/g, ' ')
    assert.match(flat, /--json print exactly one JSON document on stdout and nothing else: the result, or \{"error": \{"message", "kind", "exitCode"\}\} for exit codes 2 to 4; progress and warnings stay on stderr/)
  })

  it('each command lists its own exit codes and causes, nothing it cannot do', async () => {
    const config = await Config.load(ROOT)
    const codes: Record<string, number[]> = { convert: [0, 1, 2, 3, 4], verify: [0, 1, 2, 3, 4], inspect: [0, 2, 3, 4], optimize: [0, 1, 2, 3, 4] }
    for (const c of COMMANDS) {
      const rows = (config.findCommand(c) as unknown as { exitCodes?: ExitCodeRows }).exitCodes
      assert.ok(rows, `${c}: exit codes in the manifest`)
      assert.deepEqual(rows.map(([code]) => code), codes[c], c)
      const text = help(c)
      const section = text.slice(text.indexOf('\nEXIT CODES\n'))
      assert.deepEqual([...section.matchAll(/^ {2}(\d) {2}\S/gm)].map((m) => Number(m[1])), codes[c], `${c} --help`)
    }
    const text = (c: string) => (config.findCommand(c) as unknown as { exitCodes: ExitCodeRows }).exitCodes.map(([, t]) => t).join('\n')
    // inspect and verify write nothing and take no --force; inspect takes no recipe and no flag values.
    for (const c of ['inspect', 'verify']) assert.doesNotMatch(text(c), /--force|output (folder|file)|written|exists/, c)
    assert.doesNotMatch(text('inspect'), /recipe|flag value|contradict/)
    assert.doesNotMatch(text('optimize'), /checkpoint|tolerance/)
  })

  it('descriptions come in short paragraphs and no help line is wider than 80 columns', async () => {
    const config = await Config.load(ROOT)
    for (const c of COMMANDS) {
      const cmd = config.findCommand(c)!
      const paragraphs = cmd.description!.split('\n\n')
      assert.ok(paragraphs.length >= 3, `${c}: ${paragraphs.length} paragraphs`)
      for (const p of paragraphs) assert.ok(p.length <= 330, `${c}: a paragraph of ${p.length} characters: ${p}`)
      const text = help(c)
      for (const line of text.split('\n')) assert.ok(line.length <= 80, `${c} --help: ${line.length} columns: ${line}`)
    }
  })

  it('optimize --help lists the passes with what each does', () => {
    const text = help('optimize')
    assert.match(text, /^PASSES\n {2}dedup +store every constant once/m)
    assert.match(text, /^ {2}quantize-int4 +4-bit block-quantized weights/m)
  })
})

describe('version', () => {
  it('-v, --version and version print the same line, exit code 0', () => {
    for (const args of [['-v'], ['--version'], ['version']]) {
      const r = albertkit(args)
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout, `${VERSION_LINE}\n`, args.join(' '))
      assert.equal(r.stderr, '')
    }
  })

  it('version --json is one JSON document', () => {
    const r = albertkit(['version', '--json'])
    assert.equal(r.code, 0)
    assert.deepEqual(JSON.parse(r.stdout), { architecture: `${process.platform}-${process.arch}`, cliVersion: `albertkit/${pjson.version}`, nodeVersion: `node-${process.version}` })
  })
})

describe('did you mean', () => {
  it('finds near names only', () => {
    assert.deepEqual(closest('forse', ['force', 'out', 'format']), ['force'])
    assert.deepEqual(closest('froce', ['force', 'out']), ['force'], 'two letters swapped')
    assert.deepEqual(closest('hepl', ['help', 'version']), ['help'])
    assert.deepEqual(closest('out', ['top1', 'json']), [])
    assert.deepEqual(closest('otu', ['out']), [], 'three letters allow one edit')
    assert.deepEqual(closest('sed', ['seed', 'sequence']), ['seed'])
    assert.deepEqual(closest('cnvert', ['convert', 'inspect']), ['convert'])
    assert.deepEqual(closest('xyz', ['convert', 'inspect', 'optimize', 'verify']), [])
    assert.equal(didYouMean([]), '')
    assert.equal(didYouMean(['--a', '--b', '--c']), 'did you mean --a, --b or --c?')
  })

  it('an unknown command names the nearest one: one line, exit code 2, the same from help', () => {
    const expected = "Error: unknown command 'verfy'; did you mean verify? (commands: convert, inspect, optimize, verify; see albertkit --help)\n"
    for (const args of [['verfy', 'a', 'b'], ['help', 'verfy'], ['verfy', '--help'], ['verfy', '-h']]) {
      const r = albertkit(args)
      assert.equal(r.code, 2, args.join(' '))
      assert.equal(r.stderr, expected, args.join(' '))
      assert.equal(r.stdout, '')
    }
    const far = albertkit(['transmogrify'])
    assert.equal(far.stderr, "Error: unknown command 'transmogrify' (commands: convert, inspect, optimize, verify; see albertkit --help)\n")
    assert.equal(albertkit(['-x']).stderr, "Error: unknown flag '-x' (commands: convert, inspect, optimize, verify; see albertkit --help)\n")
    const flag = albertkit(['--hepl'])
    assert.equal(flag.code, 2)
    assert.equal(flag.stderr, "Error: unknown flag '--hepl'; did you mean --help? (commands: convert, inspect, optimize, verify; see albertkit --help)\n")
    const json = albertkit(['inspcet', '--json'])
    assert.equal(json.code, 2)
    assert.deepEqual(JSON.parse(json.stdout), { error: { message: "unknown command 'inspcet'; did you mean inspect? (commands: convert, inspect, optimize, verify; see albertkit --help)", kind: 'usage', exitCode: 2 } })
  })

  it('an unknown command on a terminal is still one line and exit code 2: nothing asks y/n', () => {
    // script(1) gives the CLI a pseudo-terminal on stdin, stdout and stderr, as an interactive shell would.
    const r = spawnSync('script', ['-qec', `${process.execPath} ${BIN} conver`, '/dev/null'], { encoding: 'utf8', timeout: 30_000, input: '' })
    assert.equal(r.status, 2, r.stdout)
    assert.equal(r.stdout.replace(/\r/g, ''), "Error: unknown command 'conver'; did you mean convert? (commands: convert, inspect, optimize, verify; see albertkit --help)\n")
  })

  it('an unknown flag names the nearest flags of that command; nothing is read or written', () => {
    const out = path.join(tempDir(), 'out')
    const cases: [string[], string][] = [
      [['convert', fixtureDir('albert-model'), '--out', out, '--forse'], 'Nonexistent flag: --forse; did you mean --force? (see albertkit convert --help)'],
      [['convert', fixtureDir('albert-model'), '--out', out, '--no-verfy'], 'Nonexistent flag: --no-verfy; did you mean --no-verify? (see albertkit convert --help)'],
      [['convert', fixtureDir('albert-model'), '--out', out, '--precison=int8', '--jsn'], 'Nonexistent flags: --precison=int8, --jsn; did you mean --precision for --precison=int8 or --json for --jsn? (see albertkit convert --help)'],
      [['verify', fixtureDir('albert-model'), 'a.onnx', '--sequnce', '8'], 'Nonexistent flag: --sequnce; did you mean --sequence? (see albertkit verify --help)'],
      [['optimize', 'a.onnx', '--out', out, '--pases', 'dedup'], 'Nonexistent flag: --pases; did you mean --passes? (see albertkit optimize --help)'],
      [['inspect', fixtureDir('albert-model'), '--target', 'cpu'], 'Nonexistent flag: --target (see albertkit inspect --help)'],
    ]
    for (const [args, message] of cases) {
      const r = albertkit(args)
      assert.equal(r.code, 2, args.join(' '))
      assert.equal(r.stderr, `Error: ${message}\n`)
      assert.equal(r.stdout, '')
    }
    assert.ok(!fs.existsSync(out))
  })
})

describe('the oclif manifest', () => {
  it('is the one the built commands make (npm run build writes it; it is never committed)', async () => {
    const file = path.join(ROOT, 'oclif.manifest.json')
    assert.ok(fs.existsSync(file), 'oclif.manifest.json: run npm run build')
    const plugin = new Plugin({ root: ROOT, type: 'core', isRoot: true, ignoreManifest: true, errorOnManifestCreate: true, respectNoCacheDefault: true })
    await plugin.load()
    assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), JSON.parse(JSON.stringify(plugin.manifest)), 'stale: run npm run build')
    assert.deepEqual(Object.keys(plugin.manifest.commands).sort(), COMMANDS)
    const ignored = spawnSync('git', ['check-ignore', '-q', 'oclif.manifest.json'], { cwd: ROOT })
    assert.equal(ignored.status, 0, '.gitignore lists oclif.manifest.json')
  })

  it('--help into a pipe loads only the supervisor and the stored pages; rendered live, @oclif/core and the help class; never a command or onnxruntime', () => {
    // Every module the process loads: ES modules through a resolve hook, CommonJS from require.cache at exit.
    const hook = `export async function resolve(s, c, next) { const r = await next(s, c); if (r.url.startsWith('file:')) process.stderr.write('module ' + r.url + '\\n'); return r }`
    const tracer = [
      `import { register, createRequire } from 'node:module'`,
      `register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}))`,
      `const require = createRequire(${JSON.stringify(BIN)})`,
      `process.on('exit', () => { for (const k of Object.keys(require.cache)) process.stderr.write('module ' + k + '\\n') })`,
    ].join('\n')
    const base = ['dist/src/cli/supervisor.js', 'dist/src/cli/help-pages.js']
    const cases: [string[], NodeJS.ProcessEnv, string[], number][] = [
      // into a pipe: the page the build stored, node built-ins only
      [['--help'], {}, base, 10],
      [['convert', '--help'], {}, base, 10],
      // rendered live (a terminal, a forced width or colour): oclif's help class from the manifest
      [['convert', '--help'], { ALBERTKIT_LIVE_HELP: '1' }, [...base, 'dist/src/cli/help.js'], 130],
      [['-v'], {}, base, 130],
    ]
    for (const [args, env, expected, most] of cases) {
      const r = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(tracer)}`, BIN, ...args], { encoding: 'utf8', cwd: ROOT, env: { ...process.env, ...env } })
      assert.equal(r.status, 0, r.stderr)
      const modules = [...new Set(r.stderr.split('\n').filter((l) => l.startsWith('module ')).map((l) => l.slice(7).replace(/^file:\/\//, '')))]
      const ours = modules.filter((m) => m.startsWith(path.join(ROOT, 'dist'))).map((m) => path.relative(ROOT, m))
      // bin/run.js's supervisor serves help and version in its own process
      assert.deepEqual(ours, expected, args.join(' '))
      assert.ok(!modules.some((m) => /onnxruntime|@huggingface|protobuf/.test(m)), args.join(' '))
      // @oclif/core's execute path and what it needs; all of @oclif/core is ~160, with the commands ~460.
      assert.ok(modules.length <= most, `${args.join(' ')}: ${modules.length} modules`)
    }
  })

  it('--help starts in about the time of bare Node (a generous bound: npm run bench has the figure)', async () => {
    // CPU time of each process tree, the best of three of each: what starting costs, whatever the neighbours do.
    const [bare, helped]: number[][] = [[], []]
    for (let i = 0; i < 3; i++) {
      for (const [times, args] of [[bare, ['-e', '0']], [helped, [BIN, 'convert', '--help']]] as const) {
        const r = await runCommandBounded(process.execPath, [...args], { cpu: 10, mb: 400 })
        assert.equal(r.status, 0)
        times.push(r.cpuMs)
      }
    }
    const [b, h] = [Math.min(...bare), Math.min(...helped)]
    // A stored page costs a few ms over bare Node; oclif's help class made it 3 times bare Node, importing the commands and onnxruntime 10.
    assert.ok(h < 1.5 * b + 60, `convert --help ${h.toFixed(0)} ms of CPU, bare Node ${b.toFixed(0)} ms`)
  })
})

describe('stored help pages', () => {
  it("are oclif's own pages: every way to ask for each page prints what oclif renders live, byte for byte", () => {
    const stored = JSON.parse(fs.readFileSync(path.join(ROOT, 'help-pages.json'), 'utf8')) as { version: string; pages: Record<string, string> }
    assert.equal(stored.version, pjson.version)
    assert.deepEqual(Object.keys(stored.pages).sort(), ['', ...COMMANDS])
    const asks: [string, string[][]][] = [['', [[], ['--help'], ['-h'], ['help']]], ...COMMANDS.map((c): [string, string[][]] => [c, [[c, '--help'], [c, '-h'], ['help', c]]])]
    for (const [key, lines] of asks) {
      const live = albertkit(lines[0]!, { ALBERTKIT_LIVE_HELP: '1' })
      assert.equal(live.code, 0)
      assert.equal(stored.pages[key], live.stdout, `page '${key}'`)
      for (const args of lines) assert.deepEqual(albertkit(args), { code: 0, stdout: live.stdout, stderr: '' }, args.join(' '))
    }
    const ignored = spawnSync('git', ['check-ignore', '-q', 'help-pages.json'], { cwd: ROOT })
    assert.equal(ignored.status, 0, '.gitignore lists help-pages.json')
  })

  it('only a page the build stored, for this version, printed as the build printed it', () => {
    assert.equal(helpPageKey(['convert', '--help']), 'convert')
    assert.equal(helpPageKey(['help', 'verify']), 'verify')
    assert.equal(helpPageKey(['-h']), '')
    assert.equal(helpPageKey(['convert', '--help', 'x']), undefined)
    assert.equal(helpPageKey(['--version']), undefined)
    assert.equal(helpPageKey(['convert', 'ckpt']), undefined)
    const dir = tempDir()
    const file = path.join(dir, 'help-pages.json')
    fs.writeFileSync(file, JSON.stringify({ version: '0.0.1', pages: { '': 'old page' } }))
    assert.equal(storedHelpPage(file, '0.0.1', ['--help']), 'old page')
    assert.equal(storedHelpPage(file, pjson.version, ['--help']), undefined, 'another version')
    assert.equal(storedHelpPage(path.join(dir, 'none.json'), '0.0.1', ['--help']), undefined, 'no file')
    // a width or colour the build did not render: oclif renders it
    const narrow = albertkit(['convert', '--help'], { OCLIF_COLUMNS: '60' })
    assert.equal(narrow.code, 0)
    const stored = JSON.parse(fs.readFileSync(path.join(ROOT, 'help-pages.json'), 'utf8')) as { pages: Record<string, string> }
    assert.notEqual(narrow.stdout, stored.pages.convert, 'rendered for 60 columns, not the stored 80-column page')
    assert.ok(narrow.stdout.includes('EXIT CODES') && narrow.stdout.split('\n').length > stored.pages.convert!.split('\n').length)
  })
})

describe('shell completion (oclif plugin-autocomplete, offline)', () => {
  it('completes commands and flags in bash', () => {
    const cache = tempDir()
    const env = { ALBERTKIT_CACHE_DIR: cache }
    const setup = albertkit(['autocomplete', 'script', 'bash'], env)
    assert.equal(setup.code, 0, setup.stderr)
    assert.match(setup.stdout, /ALBERTKIT_AC_BASH_SETUP_PATH=.*autocomplete\/bash_setup/)
    assert.equal(albertkit(['autocomplete', '--refresh-cache'], env).code, 0)
    const complete = (words: string[]) => {
      const script = `${setup.stdout.trim()}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _albertkit_autocomplete; echo "\${COMPREPLY[*]}"`
      const r = spawnSync('bash', ['-c', script], { encoding: 'utf8' })
      assert.equal(r.status, 0, r.stderr)
      return r.stdout.trim()
    }
    assert.equal(complete(['albertkit', 'conv']), 'convert')
    assert.equal(complete(['albertkit', 'convert', '--for']), '--force')
    assert.equal(complete(['albertkit', 'verify', '--text-']), '--text-file')
    assert.equal(complete(['albertkit', '']).split(' ').sort().join(' '), 'autocomplete convert help inspect optimize verify version')
  })
})
