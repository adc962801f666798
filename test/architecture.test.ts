/**
 * The house's plan, checked against the code: docs/architecture.md lists the stages of src/,
 * lowest first, one folder each. Every import in src/ (static, `export ... from`, dynamic) goes to
 * its own stage or a lower one; no chain of imports comes back to where it started; every folder
 * of src/ is a listed stage and every listed stage a folder; no file lies at src/'s root.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { ROOT } from './support/helpers.js'

const SRC = path.join(ROOT, 'src')

/** The stages in the order docs/architecture.md gives them, lowest first. */
export function stagesOf(markdown: string): string[] {
  const section = /^## Stages, lowest first\n([\s\S]*?)(?=^## )/m.exec(markdown)
  assert.ok(section, 'docs/architecture.md has a "## Stages, lowest first" section')
  return [...section[1]!.matchAll(/^\d+\. `([a-z0-9-]+)\/`/gm)].map((m) => m[1]!)
}

/** Every .ts file under `dir`, as absolute paths. */
function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : []
  })
}

/** The src/ files a file imports (relative specifiers only; packages are outside the house). */
export function importsOf(file: string, text: string): string[] {
  const found = text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^import\s+)'(\.{1,2}\/[^']+)'/gm)
  return [...found].map((m) => path.resolve(path.dirname(file), m[1]!.replace(/\.js$/, '.ts')))
}

const stageOf = (file: string) => path.relative(SRC, file).split(path.sep)[0]!
const shown = (file: string) => path.relative(ROOT, file)

/** Imports from a stage into a higher one, as `importer → imported`. */
export function upwardImports(graph: ReadonlyMap<string, string[]>, stages: string[]): string[] {
  const rank = new Map(stages.map((s, i) => [s, i]))
  const upward: string[] = []
  for (const [file, deps] of graph) {
    for (const dep of deps) if (rank.get(stageOf(dep))! > rank.get(stageOf(file))!) upward.push(`${shown(file)} → ${shown(dep)}`)
  }
  return upward
}

/** Each chain of imports that comes back to where it started, as `a → b → a`. */
export function importCycles(graph: ReadonlyMap<string, string[]>): string[] {
  const state = new Map<string, 'open' | 'done'>()
  const cycles: string[] = []
  const trail: string[] = []
  const visit = (file: string) => {
    state.set(file, 'open')
    trail.push(file)
    for (const dep of graph.get(file) ?? []) {
      if (state.get(dep) === 'open') cycles.push([...trail.slice(trail.indexOf(dep)), dep].map(shown).join(' → '))
      else if (!state.has(dep)) visit(dep)
    }
    trail.pop()
    state.set(file, 'done')
  }
  for (const f of graph.keys()) if (!state.has(f)) visit(f)
  return cycles
}

describe('architecture', () => {
  const stages = stagesOf(fs.readFileSync(path.join(ROOT, 'docs', 'architecture.md'), 'utf8'))
  const files = sources(SRC)
  const graph = new Map(files.map((f) => [f, importsOf(f, fs.readFileSync(f, 'utf8'))]))

  it('docs/architecture.md lists every folder of src/ once, and only folders', () => {
    const folders = fs.readdirSync(SRC, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name)
    assert.ok(stages.length >= 10, `stages found: ${stages.join(', ')}`)
    assert.equal(new Set(stages).size, stages.length, 'each stage once')
    assert.deepEqual([...stages].sort(), [...folders].sort())
    assert.deepEqual(files.filter((f) => path.dirname(f) === SRC).map(shown), [], 'no file at the root of src/')
  })

  it('every import goes to the same stage or a lower one', () => {
    for (const [file, deps] of graph) for (const dep of deps) assert.ok(fs.existsSync(dep), `${shown(file)} imports ${shown(dep)}, which does not exist`)
    assert.deepEqual(upwardImports(graph, stages), [])
  })

  it('no import cycles', () => {
    assert.deepEqual(importCycles(graph), [])
  })

  it('reads imports of every form, and finds an upward import and a cycle where there is one', () => {
    const file = path.join(SRC, 'ir', 'x.ts')
    const text = "import { a } from '../util/a.js'\nexport { b } from './b.js'\nimport type { C } from '../passes/c.js'\nconst d = await import('../onnx/d.js')\nimport './e.js'\nimport fs from 'node:fs'\n"
    const deps = importsOf(file, text)
    assert.deepEqual(deps.map(shown), ['src/util/a.ts', 'src/ir/b.ts', 'src/passes/c.ts', 'src/onnx/d.ts', 'src/ir/e.ts'])
    assert.deepEqual(stagesOf('## Stages, lowest first\n\n1. `util/` — x\n2. `ir/` — y\n\n## Next\n'), ['util', 'ir'])
    const toy = new Map([[file, deps], [deps[1]!, [file]]])
    assert.deepEqual(upwardImports(toy, ['util', 'ir', 'onnx', 'passes']), ['src/ir/x.ts → src/passes/c.ts', 'src/ir/x.ts → src/onnx/d.ts'])
    assert.deepEqual(importCycles(toy), ['src/ir/x.ts → src/ir/b.ts → src/ir/x.ts'])
  })
})
