/**
 * The README as a new user follows it: every command in its ```sh blocks (after set-up) and every
 * ```js snippet runs, in order, in a fresh folder that has only what a clone has (fixtures, bin,
 * the installed packages), and exits as the README says: 0, or the code a trailing `# exits N`
 * names. Blocks fenced as ```text or ```console are illustrations and are not run.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { ROOT, tempDir } from './support/helpers.js'

interface Step {
  kind: 'sh' | 'js'
  text: string
  exit: number
  line: number
}

/** The runnable steps of a markdown file, in order. */
export function readmeSteps(markdown: string): Step[] {
  const steps: Step[] = []
  const lines = markdown.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\w+)\s*$/.exec(lines[i]!)
    if (!fence) continue
    const lang = fence[1]!
    const body: { text: string; line: number }[] = []
    let j = i + 1
    for (; j < lines.length && !lines[j]!.startsWith('```'); j++) body.push({ text: lines[j]!, line: j + 1 })
    if (lang === 'sh') {
      for (const { text, line } of body) {
        const command = text.replace(/\s+#.*$/, '').trim()
        if (!command || command.startsWith('#')) continue
        if (/^npm (ci|install|test)\b/.test(command)) continue // set-up: the suite is already running under it
        const exit = /#\s*exits (\d+)/.exec(text)
        steps.push({ kind: 'sh', text: command, exit: exit ? Number(exit[1]) : 0, line })
      }
    } else if (lang === 'js') {
      steps.push({ kind: 'js', text: body.map((b) => b.text).join('\n'), exit: 0, line: i + 2 })
    }
    i = j
  }
  return steps
}

describe('README, followed as written', () => {
  const markdown = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')
  const steps = readmeSteps(markdown)
  const cwd = tempDir('albertkit-readme-')
  for (const name of ['bin', 'fixtures', 'node_modules', 'package.json', 'dist']) {
    fs.symlinkSync(path.join(ROOT, name), path.join(cwd, name))
  }

  it('has commands to follow', () => {
    assert.ok(steps.filter((s) => s.kind === 'sh').length >= 8, `found ${steps.length} steps`)
    assert.ok(steps.some((s) => s.kind === 'js'), 'a transformers.js snippet')
  })

  for (const [n, step] of steps.entries()) {
    const title = step.kind === 'sh' ? step.text : `the js snippet at line ${step.line}`
    it(`README:${step.line} ${title}`, () => {
      let r
      if (step.kind === 'sh') {
        r = spawnSync('bash', ['-c', step.text], { cwd, encoding: 'utf8', env: { ...process.env, CI: '1' } })
      } else {
        const file = path.join(cwd, `snippet-${n}.mjs`)
        fs.writeFileSync(file, step.text)
        r = spawnSync(process.execPath, [file], { cwd, encoding: 'utf8' })
      }
      assert.equal(r.status, step.exit, `exit code ${r.status} (README says ${step.exit})\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`)
    })
  }
})
